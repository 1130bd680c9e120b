// Fuzz: the decoders of bytes from other nodes. The link handshake (HelloReader, helloProblem),
// the link frame splitter (LinkFrameReader) and the sub-record chain check (payloadProblem) on
// the main thread; the Raft message bodies (decodeRaftMessage, decodeHeartbeats,
// decodeSnapChunk) in the shard. Each returns a clear problem or throws CodecError, never
// anything else, and always returns; what encodes decodes to the same message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  HELLO_BYTES, HelloReader, helloProblem, LinkFrameReader, PayloadBuilder, payloadProblem, SUB_HEADER_BYTES, SubKind, subBytes, subKind,
  encodeHello,
} from '../../src/protocol/peer-wire.js';
import { CodecError, decodeHeartbeats, decodeRaftMessage } from '../../src/protocol/raft-codec.js';
import { decodeSnapChunk } from '../../src/protocol/snap-chunk-codec.js';
import { EntryType, MessageType, type Message } from '../../src/raft/types.js';
import { params } from './fuzz-config.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u53 = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.maxSafeNat());

/** A Raft message as a shard would send it (any type but Snap, which travels in chunks). */
const messageArb: fc.Arbitrary<Message> = fc.record({
  type: fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 10) as fc.Arbitrary<MessageType>,
  from: u32, to: u32, term: u53, index: u53, logTerm: u53, commit: u53,
  reject: fc.boolean(), rejectHint: u53, context: u53, quiesce: fc.boolean(),
  entries: fc.array(fc.record({
    term: u53, index: u53, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange, EntryType.Batch),
    data: fc.uint8Array({ maxLength: 64 }),
  }, { noNullPrototype: true }), { maxLength: 5 }),
}, { noNullPrototype: true }).map((m) => ({ ...m, quiesce: m.quiesce && m.type === MessageType.Heartbeat, snapshot: null }));

/** Encoded messages with some bytes changed, and plain noise. */
function mutatedArb(encoded: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 600 }),
    fc.tuple(encoded, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat())
      .map(([b, edits, cut]) => {
        const out = Uint8Array.from(b);
        for (const [at, v] of edits) if (out.length > 0) out[at % out.length] = v;
        return cut % 4 === 0 && out.length > 0 ? out.subarray(0, cut % out.length) : out;
      }),
  );
}

function onlyCodecErrors(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
    assert.match(e.code, /^BAD_(MESSAGE|FRAME)$/);
  }
}

test('fuzz: a hello is read from any split of any 20 bytes and judged without throwing', () => {
  const helloArb = fc.oneof(
    fc.uint8Array({ minLength: HELLO_BYTES, maxLength: HELLO_BYTES }),
    fc.tuple(u32, u32, u32).map(([c, f, t]) => encodeHello(c, f, t)),
  );
  fc.assert(fc.property(helloArb, fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 1, max: 20 }), (hello, rest, step) => {
    const r = new HelloReader();
    const stream = Uint8Array.from([...hello, ...rest]);
    let taken = 0;
    for (let p = 0; p < stream.length && r.hello === null; p += step) taken += r.push(stream.subarray(p, Math.min(p + step, stream.length)));
    assert.equal(taken, HELLO_BYTES);
    const problem = helloProblem(r.hello!, 7, 2);
    if (problem !== null) assert.match(problem.code, /^(BAD_HELLO|CLUSTER_MISMATCH)$/);
  }), params(2000));
});

test('fuzz: LinkFrameReader splits any stream into payloads within its bound, or one error after which it takes nothing', () => {
  const MAX = 512;
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
    const r = new LinkFrameReader(MAX);
    let error: string | null = null;
    const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
    let p = 0;
    for (const c of [...at, bytes.length]) {
      const e = r.push(bytes.subarray(p, c), (buf, from, end) => {
        assert.equal(error, null);
        assert.ok(0 <= from && from <= end && end <= buf.length && end - from <= MAX);
        // What the main thread does with each payload: the check never throws and never loops.
        const problem = payloadProblem(buf, from, end);
        assert.ok(problem === null || typeof problem === 'string');
      });
      if (e !== null) error = e;
      p = c;
    }
  }), params(2000));
});

test('fuzz: payloadProblem accepts only chains the shard can walk', () => {
  const chainArb = fc.array(fc.record({
    group: fc.oneof(u32, fc.constant(0xffffffff)),
    kind: fc.integer({ min: 0, max: 6 }),
    body: fc.uint8Array({ maxLength: 40 }),
    lie: fc.integer({ min: -14, max: 14 }),
  }), { maxLength: 6 }).map((subs) => {
    const parts: number[] = [];
    for (const s of subs) {
      const bytes = Math.max(0, SUB_HEADER_BYTES + s.body.length + (s.lie % 5 === 0 ? s.lie : 0));
      const h = new Uint8Array(SUB_HEADER_BYTES);
      const v = new DataView(h.buffer);
      v.setUint32(0, bytes, true);
      v.setUint32(4, s.group, true);
      h[8] = s.kind;
      parts.push(...h, ...s.body);
    }
    return Uint8Array.from(parts);
  });
  fc.assert(fc.property(fc.oneof(chainArb, fc.uint8Array({ maxLength: 300 })), (b) => {
    if (payloadProblem(b, 0, b.length) !== null) return;
    // Valid: each sub-record lies inside the payload, with a known kind.
    for (let p = 0; p < b.length; p += subBytes(b, p)) {
      assert.ok(subBytes(b, p) >= SUB_HEADER_BYTES && p + subBytes(b, p) <= b.length);
      assert.ok(subKind(b, p) >= SubKind.RaftMessage && subKind(b, p) <= SubKind.HeartbeatResps);
    }
  }), params(3000));
});

/** The body of the one sub-record a PayloadBuilder made for `m`. */
function encodedBody(m: Message): Uint8Array {
  const pb = new PayloadBuilder(1 << 20);
  if (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp) pb.appendHeartbeat(5, m);
  else pb.appendRaft(5, m);
  return pb.finish()!.subarray(SUB_HEADER_BYTES);
}

test('fuzz: a Raft message round-trips through its encoding', () => {
  fc.assert(fc.property(messageArb.filter((m) => m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResp), (m) => {
    const body = encodedBody(m);
    const back = decodeRaftMessage(body, 0, body.length);
    assert.deepEqual({ ...back, entries: back.entries.map((e) => ({ ...e, data: Uint8Array.from(e.data) })) }, m);
  }), params(1500));
});

test('fuzz: Raft message, heartbeat and snapshot chunk decoders throw only CodecError on damaged or random bytes', () => {
  const raw = mutatedArb(messageArb.filter((m) => m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResp).map(encodedBody));
  const beats = mutatedArb(fc.array(messageArb.map((m) => ({ ...m, type: MessageType.Heartbeat, entries: [] })), { minLength: 1, maxLength: 4 })
    .map((ms) => {
      const pb = new PayloadBuilder(1 << 20);
      for (const m of ms) pb.appendHeartbeat(3, m);
      return pb.finish()!.subarray(SUB_HEADER_BYTES);
    }));
  const chunk = mutatedArb(fc.tuple(messageArb, fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.array(u32, { minLength: 1, maxLength: 5 }), fc.nat())
    .map(([m, data, voters, off]) => {
      const snap: Message = {
        ...m, type: MessageType.Snap, entries: [], quiesce: false,
        snapshot: { meta: { index: 7, term: 2, conf: { voters, votersOutgoing: [], learners: [], learnersNext: [] } }, data },
      };
      const offset = off % data.length;
      const pb = new PayloadBuilder(1 << 20);
      pb.appendSnapChunk(4, snap, offset, data.length - offset);
      return pb.finish()!.subarray(SUB_HEADER_BYTES);
    }));
  fc.assert(fc.property(raw, beats, chunk, (a, b, c) => {
    onlyCodecErrors(() => void decodeRaftMessage(a, 0, a.length));
    onlyCodecErrors(() => decodeHeartbeats(b, 0, b.length, () => true, (group, m) => {
      assert.ok(group >>> 0 === group && Number.isSafeInteger(m.term));
    }));
    onlyCodecErrors(() => {
      const x = decodeSnapChunk(c, 0, c.length);
      assert.ok(x.offset + x.data.length <= x.totalBytes);
    });
    // Any body under any decoder: still only CodecError.
    onlyCodecErrors(() => void decodeSnapChunk(a, 0, a.length));
    onlyCodecErrors(() => decodeHeartbeats(c, 0, c.length, () => true, () => undefined));
  }), params(3000));
});
