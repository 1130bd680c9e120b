// Fuzz: the decoders of client bytes (server side: FrameReader of the TCP stream, the check of a
// WebSocket message as one frame; client side: the response FrameReader). Whatever the bytes and
// however the stream is cut, a decoder hands out only frames whose header checks out, reports
// a problem at most once and then takes nothing more, never throws and always returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame, FRAME_HEADER_BYTES, FrameKind, headerProblem } from '../../src/protocol/client-frame.js';
import { FrameReader, messageProblem } from '../../src/transport/client-framing.js';
import { FrameReader as ResponseReader } from '../../src/client/frame-reader.js';
import { params } from './fuzz-config.js';

const FRAME_BYTES_MAX = 4096;

/** Bytes: pure noise, or valid frames with some bytes changed, so both the shallow and deep paths are reached. */
function streamArb(kinds: number[]): fc.Arbitrary<Uint8Array> {
  const frame = fc.record({
    kind: fc.constantFrom(...kinds),
    flags: fc.constantFrom(0, 1, 3, 2, 0x80),
    requestId: fc.integer({ min: 0, max: 0xffffffff }),
    group: fc.integer({ min: 0, max: 0xffffffff }),
    body: fc.uint8Array({ maxLength: 300 }),
  }).map((f) => encodeFrame(f.kind as FrameKind, f.flags, f.requestId, f.group, f.body));
  const frames = fc.array(frame, { maxLength: 8 }).map((fs) => Uint8Array.from(fs.flatMap((f) => [...f])));
  const mutated = fc.tuple(frames, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }))
    .map(([b, edits]) => {
      const out = Uint8Array.from(b);
      for (const [at, v] of edits) if (out.length > 0) out[at % out.length] = v;
      return out;
    });
  return fc.oneof(fc.uint8Array({ maxLength: 2000 }), frames, mutated);
}

/** Cut points for a stream of `n` bytes. */
const cutsArb = fc.array(fc.nat(), { maxLength: 10 });

function chunks(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % (b.length + 1))))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let p = 0;
  for (const c of [...at, b.length]) {
    out.push(b.subarray(p, c));
    p = c;
  }
  return out;
}

test('fuzz: the server FrameReader delivers only checked frames, fails at most once, whatever the chunking', () => {
  fc.assert(fc.property(streamArb([1, 2, 3, 0x81, 0x7e]), cutsArb, (bytes, cuts) => {
    const frames: Uint8Array[] = [];
    let bads = 0;
    const reader = new FrameReader(FRAME_BYTES_MAX, {
      readerPaused: false,
      frame: (buf, at, n) => {
        assert.equal(bads, 0, 'no frame after a problem');
        assert.equal(headerProblem(buf, at, FRAME_BYTES_MAX, true), null);
        assert.equal(new DataView(buf.buffer, buf.byteOffset + at, 4).getUint32(0, true), n);
        frames.push(Uint8Array.from(buf.subarray(at, at + n)));
      },
      bad: () => void bads++,
    });
    for (const c of chunks(bytes, cuts)) {
      const stop = reader.consume(c, 0);
      assert.ok(stop >= 0 && stop <= c.length);
    }
    assert.ok(bads <= 1);
    // Delivered frames are the stream's own bytes, in order, from its start.
    const joined = Uint8Array.from(frames.flatMap((f) => [...f]));
    assert.deepEqual(joined, bytes.subarray(0, joined.length));
  }), params(3000));
});

test('fuzz: a WebSocket message is one frame or a problem, never an exception', () => {
  fc.assert(fc.property(streamArb([1, 2, 3, 0x82, 0]), (bytes) => {
    const problem = messageProblem(bytes, 0, bytes.length, FRAME_BYTES_MAX);
    if (problem === null) {
      assert.ok(bytes.length >= FRAME_HEADER_BYTES);
      assert.equal(headerProblem(bytes, 0, FRAME_BYTES_MAX, true), null);
    } else {
      assert.equal(typeof problem, 'string');
    }
  }), params(3000));
});

test('fuzz: the client response reader hands out checked frames or reports once, whatever the server sends', () => {
  fc.assert(fc.property(streamArb([0x81, 0x82, 0x83, 0x84, 1, 9]), cutsArb, (bytes, cuts) => {
    let problems = 0;
    let afterProblem = 0;
    const reader = new ResponseReader(FRAME_BYTES_MAX, (buf, at, n) => {
      if (problems > 0) afterProblem++;
      assert.ok(n >= FRAME_HEADER_BYTES && at + n <= buf.length);
    }, () => void problems++);
    for (const c of chunks(bytes, cuts)) reader.push(Buffer.from(c));
    assert.ok(problems <= 1);
    assert.equal(afterProblem, 0);
  }), params(3000));
});
