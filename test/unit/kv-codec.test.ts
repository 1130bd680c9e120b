import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import {
  commandBytes,
  decodeCommand,
  encodeCommand,
  keyOpBytes,
  putBytes,
  writeCommand,
  writeKeyOp,
  writePut,
} from '../../src/kv/kv-command.js';
import { encodeCasResult, encodeGetResult } from '../../src/kv/kv-result.js';
import {
  KvError,
  KvTag,
  textByteString,
  keyBytesMax,
  valueBytesMax,
  type KvCommand,
  type KvSingleCommand,
} from '../../src/kv/kv-types.js';

// The layout as docs/protocol.md states it, written here independently of the codec (plain
// arrays, TextEncoder) so that the codec is held to the document, not to itself.
function reference(cmd: KvCommand): number[] {
  const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];
  const u16 = (n: number): number[] => [n >> 8, n & 0xff];
  const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const key = (s: string): number[] => [...u16(utf8(s).length), ...utf8(s)];
  const value = (s: string): number[] => [...u32(utf8(s).length), ...utf8(s)];
  const single = (c: KvSingleCommand): number[] => {
    switch (c.op) {
      case 'put':
        return [1, ...key(c.key), ...value(c.value)];
      case 'get':
        return [2, ...key(c.key)];
      case 'delete':
        return [3, ...key(c.key)];
      case 'cas':
        return [4, ...key(c.key), ...(c.expect === null ? [0] : [1, ...value(c.expect)]), ...value(c.value)];
    }
  };
  return cmd.op === 'batch' ? [5, ...u16(cmd.ops.length), ...cmd.ops.flatMap(single)] : single(cmd);
}

function sampleCommands(): KvCommand[] {
  const strings = ['', 'a', 'user:42', 'ключ', '値 🚣', 'lone \ud800 surrogate', 'x'.repeat(300), 'é'.repeat(512)];
  const cmds: KvCommand[] = [];
  for (const k of strings) {
    cmds.push({ op: 'get', key: k }, { op: 'delete', key: k });
    for (const v of strings) {
      cmds.push({ op: 'put', key: k, value: v });
      cmds.push({ op: 'cas', key: k, expect: null, value: v });
      cmds.push({ op: 'cas', key: k, expect: v, value: k });
    }
  }
  cmds.push({ op: 'batch', ops: [] });
  cmds.push({ op: 'batch', ops: [{ op: 'put', key: 'a', value: 'b' }, { op: 'get', key: 'a' }, { op: 'cas', key: 'é', expect: null, value: '' }] });
  return cmds;
}

test('the KV codec writes the documented command layout', () => {
  assert.deepEqual([...encodeCommand({ op: 'put', key: 'ab', value: 'c' })], [1, 0, 2, 0x61, 0x62, 0, 0, 0, 1, 0x63]);
  assert.deepEqual([...encodeCommand({ op: 'cas', key: 'k', expect: null, value: '' })], [4, 0, 1, 0x6b, 0, 0, 0, 0, 0]);
  for (const c of sampleCommands()) {
    const bytes = encodeCommand(c);
    assert.deepEqual([...bytes], reference(c), JSON.stringify(c));
    assert.equal(commandBytes(c), bytes.length);
  }
});

test('commands decode to what was encoded, lone surrogates as U+FFFD', () => {
  for (const c of sampleCommands()) {
    const expected: unknown = JSON.parse(JSON.stringify(c), (_k, v: unknown) => (typeof v === 'string' ? v.replace(/\ud800/g, '\ufffd') : v));
    assert.deepEqual(decodeCommand(encodeCommand(c)), expected);
  }
});

test('the in-place writers (key and value as bytes) write the bytes encodeCommand writes', () => {
  const buf = Buffer.alloc(64 + putBytes(keyBytesMax, 300));
  for (const [k, v] of [['', ''], ['k1', 'x'.repeat(300)], ['ключ', '値']] as const) {
    const kb = Buffer.from(k, 'utf8');
    const vb = Buffer.from(v, 'utf8');
    let end = writePut(buf, 5, kb, vb);
    assert.equal(end - 5, putBytes(kb.length, vb.length));
    assert.deepEqual([...buf.subarray(5, end)], [...encodeCommand({ op: 'put', key: k, value: v })]);
    end = writeKeyOp(buf, 7, KvTag.Get, kb);
    assert.equal(end - 7, keyOpBytes(kb.length));
    assert.deepEqual([...buf.subarray(7, end)], [...encodeCommand({ op: 'get', key: k })]);
    const batch: KvCommand = { op: 'batch', ops: [{ op: 'put', key: k, value: v }, { op: 'delete', key: k }] };
    end = writeCommand(buf, 3, batch);
    assert.deepEqual([...buf.subarray(3, end)], [...encodeCommand(batch)]);
  }
  assert.throws(() => writePut(Buffer.alloc(putBytes(keyBytesMax + 1, 0)), 0, Buffer.alloc(keyBytesMax + 1), Buffer.alloc(0)), (e: unknown) => e instanceof KvError && e.code === 'TOO_LARGE');
});

test('the KV codec refuses keys, values and batches over their bounds, and what is not a command', () => {
  const tooLarge: KvCommand[] = [
    { op: 'get', key: 'k'.repeat(keyBytesMax + 1) },
    { op: 'get', key: 'é'.repeat(keyBytesMax / 2 + 1) },
    { op: 'put', key: 'k', value: 'v'.repeat(valueBytesMax + 1) },
    { op: 'cas', key: 'k', expect: 'v'.repeat(valueBytesMax + 1), value: '' },
  ];
  for (const c of tooLarge) {
    assert.throws(() => encodeCommand(c), (e: unknown) => e instanceof KvError && e.code === 'TOO_LARGE');
  }
  assert.deepEqual([...encodeCommand({ op: 'get', key: 'k'.repeat(keyBytesMax) })], reference({ op: 'get', key: 'k'.repeat(keyBytesMax) }));
  const notString = { op: 'put', key: 5, value: 'v' } as unknown as KvCommand;
  assert.throws(() => encodeCommand(notString), (e: unknown) => e instanceof KvError && e.code === 'BAD_COMMAND');
  const nested = { op: 'batch', ops: [{ op: 'batch', ops: [] }] } as unknown as KvCommand;
  assert.throws(() => encodeCommand(nested), (e: unknown) => e instanceof KvError && e.code === 'BAD_COMMAND');
  const unknownOp = { op: 'incr', key: 'k' } as unknown as KvCommand;
  assert.throws(() => encodeCommand(unknownOp), (e: unknown) => e instanceof KvError && e.code === 'BAD_COMMAND');
});

test('get and cas results written from value bytes are the bytes msgpackr writes for the same maps', () => {
  const values = [null, '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(200), 'y'.repeat(300), 'z'.repeat(70_000)];
  for (const v of values) {
    const b = v === null ? null : textByteString(v);
    assert.deepEqual(Buffer.from(encodeGetResult(b)), Buffer.from(pack({ op: 'get', value: v })), `get of ${v?.length}`);
    for (const ok of [true, false]) {
      assert.deepEqual(Buffer.from(encodeCasResult(ok, b)), Buffer.from(pack({ op: 'cas', ok, value: v })), `cas ${ok} of ${v?.length}`);
    }
  }
});
