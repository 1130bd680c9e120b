// The byte writer and reader of the key map's layouts: growth past the first buffer, the bound,
// u64 as safe integers, texts, and the reader's refusals with the caller's code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter, MapBytesError } from '../../src/cluster/map-bytes.js';

test('a writer grows from a small buffer and reads back field by field', () => {
  const w = new ByteWriter(1 << 20, 'TOO_LARGE', 1);
  for (let i = 0; i < 1000; i++) {
    w.u8(i & 0xff);
    w.u16(i);
    w.u32(i * 65537);
    w.u64(i * 2 ** 40 + i);
    w.text8(`t${i}`);
    w.text16('é'.repeat(i % 7));
    w.bytes(Uint8Array.of(i & 0xff, 1));
  }
  const r = new ByteReader(w.finish(), 'BAD_X');
  for (let i = 0; i < 1000; i++) {
    assert.equal(r.u8(), i & 0xff);
    assert.equal(r.u16(), i);
    assert.equal(r.u32(), (i * 65537) >>> 0);
    assert.equal(r.u64(), i * 2 ** 40 + i);
    assert.equal(r.text8(), `t${i}`);
    assert.equal(r.text16(), 'é'.repeat(i % 7));
    assert.equal(r.u8(), i & 0xff);
    assert.equal(r.u8(), 1);
  }
  r.end();
});

test('a writer refuses to pass its bound, with its code', () => {
  const w = new ByteWriter(10, 'TOO_LARGE', 4);
  w.u64(1);
  w.u16(2);
  assert.throws(() => w.u8(3), (e: unknown) => e instanceof MapBytesError && e.code === 'TOO_LARGE');
  assert.equal(w.finish().length, 10);
  assert.throws(() => new ByteWriter(1000, 'TOO_LARGE').text8('x'.repeat(256)), (e: unknown) => e instanceof MapBytesError);
});

test('a reader refuses truncation, trailing bytes, u64 past 2^53 and bad UTF-8, with its code', () => {
  const code = (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_X';
  assert.throws(() => new ByteReader(Uint8Array.of(1), 'BAD_X').u16(), code);
  assert.throws(() => new ByteReader(Uint8Array.of(1, 2), 'BAD_X').end(), code);
  assert.equal(new ByteReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0), 'BAD_X').u64(), Number.MAX_SAFE_INTEGER);
  assert.throws(() => new ByteReader(Uint8Array.of(0, 0, 0, 0, 0, 0, 0x20, 0), 'BAD_X').u64(), code);
  assert.throws(() => new ByteReader(Uint8Array.of(2, 0xc3, 0x28), 'BAD_X').text8(), code);
  assert.throws(() => new ByteReader(Uint8Array.of(5, 0x61), 'BAD_X').text8(), code);
  // A view into a larger buffer reads only its own bytes.
  const big = Uint8Array.of(9, 9, 7, 0, 9);
  const r = new ByteReader(big.subarray(2, 4), 'BAD_X');
  assert.equal(r.u16(), 7);
  r.end();
});
