// The link between two nodes: the handshake, link frames split out of a TCP stream however it
// is cut, the sub-record chain the main thread checks before routing, and payloads a shard
// builds for one destination with its heartbeats coalesced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../src/util/assert.js';
import { EntryType, MessageType, message, type Message } from '../../src/raft/types.js';
import {
  decodeHello,
  encodeHello,
  GROUP_BROADCAST,
  HELLO_BYTES,
  HelloReader,
  helloProblem,
  LINK_FRAME_HEADER_BYTES,
  LINK_MAGIC,
  LINK_VERSION,
  LinkFrameReader,
  PayloadBuilder,
  payloadProblem,
  SUB_HEADER_BYTES,
  subBytes,
  subGroup,
  SubKind,
  subKind,
  writeSubHeader,
} from '../../src/protocol/peer-wire.js';
import { CodecError, decodeHeartbeats, decodeRaftMessage, raftMessageBytes } from '../../src/protocol/raft-codec.js';
import { decodeSnapChunk } from '../../src/protocol/snap-chunk-codec.js';

const T = { timeout: 20_000 };

function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function frame(payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(LINK_FRAME_HEADER_BYTES + payload.length);
  new DataView(f.buffer).setUint32(0, payload.length, true);
  f.set(payload, LINK_FRAME_HEADER_BYTES);
  return f;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function payloadOf(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

// ---- handshake ----

test('a hello round-trips and is judged', T, () => {
  const b = encodeHello(9, 3, 0xfffffffe);
  assert.equal(b.length, HELLO_BYTES);
  assert.deepEqual(Array.from(b.subarray(0, 4)), [0x31, 0x54, 0x4c, 0x46], '"FLT1" read as a little-endian u32');
  const h = decodeHello(b, 0);
  assert.deepEqual(h, { magic: LINK_MAGIC, version: LINK_VERSION, clusterId: 9, fromNode: 3, toNode: 0xfffffffe });
  const reason = (p: { code: string; reason: string } | null): string => `${p!.code}: ${p!.reason}`;
  assert.equal(helloProblem(h, 9, 0xfffffffe), null);
  assert.equal(helloProblem(h, 9, 0xfffffffe, 3), null);
  assert.match(reason(helloProblem(h, 9, 5)), /^BAD_HELLO: .*for node/);
  assert.match(reason(helloProblem(h, 9, 0xfffffffe, 4)), /dialed node 4/);
  assert.match(reason(helloProblem({ ...h, magic: 0x48545450 }, 9, 0xfffffffe)), /magic/);
  assert.match(reason(helloProblem({ ...h, version: 1 }, 9, 0xfffffffe)), /version/);
  assert.match(reason(helloProblem({ ...h, fromNode: 0xfffffffe }, 9, 0xfffffffe)), /from node/);
  assert.match(reason(helloProblem(h, 10, 0xfffffffe)), /^CLUSTER_MISMATCH: hello from cluster 9, this node is in cluster 10/);
  assert.throws(() => decodeHello(b, 1), (e: unknown) => e instanceof CodecError && e.code === 'BAD_FRAME');
});

test('a hello followed by frames is read however the stream is cut', T, () => {
  const payloads = [payloadOf(3, 1), payloadOf(0, 2), payloadOf(40, 3)];
  const stream = concat([encodeHello(1, 1, 2), ...payloads.map(frame)]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const hr = new HelloReader();
    const fr = new LinkFrameReader(1024);
    const got: number[][] = [];
    for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) {
      const taken = hr.push(chunk);
      if (hr.hello === null) {
        assert.equal(taken, chunk.length);
        continue;
      }
      assert.equal(fr.push(chunk.subarray(taken), (b, at, end) => got.push(Array.from(b.subarray(at, end)))), null);
    }
    assert.deepEqual(hr.hello, decodeHello(encodeHello(1, 1, 2), 0));
    assert.deepEqual(got, payloads.map((p) => Array.from(p)), `cut at ${cut}`);
  }
});

// ---- link frames ----

test('frames are split out of a stream cut at every offset, in two and in three', T, () => {
  const payloads = [payloadOf(1, 1), payloadOf(0, 2), payloadOf(300, 3), payloadOf(4, 4), payloadOf(0, 5), payloadOf(77, 6)];
  const stream = concat(payloads.map(frame));
  const want = payloads.map((p) => Array.from(p));
  const run = (chunks: Uint8Array[], what: string): void => {
    const reader = new LinkFrameReader(300);
    const got: number[][] = [];
    for (const c of chunks) assert.equal(reader.push(c, (b, at, end) => got.push(Array.from(b.subarray(at, end)))), null);
    assert.deepEqual(got, want, what);
    assert.equal(reader.partial(), false);
  };
  for (let i = 0; i <= stream.length; i++) {
    run([stream.subarray(0, i), stream.subarray(i)], `cut at ${i}`);
    for (let j = i; j <= stream.length; j += 7) run([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)], `cut at ${i}, ${j}`);
  }
  const ones: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i++) ones.push(stream.subarray(i, i + 1));
  run(ones, 'one byte at a time');
});

test('a frame inside one chunk is handed over without a copy; a split one is reassembled', T, () => {
  const stream = concat([frame(payloadOf(10, 1)), frame(payloadOf(10, 2))]);
  const reader = new LinkFrameReader(64);
  const bufs: Uint8Array[] = [];
  reader.push(stream, (b) => bufs.push(b));
  assert.deepEqual(bufs, [stream, stream]);
  bufs.length = 0;
  reader.push(stream.subarray(0, 9), (b) => bufs.push(b));
  assert.equal(reader.partial(), true);
  reader.push(stream.subarray(9), (b) => bufs.push(b));
  assert.equal(bufs.length, 2);
  assert.notEqual(bufs[0]!.buffer, stream.buffer);
});

test('a length above frameBytesMax is an error, reported once and then for good, without allocating', T, () => {
  const reader = new LinkFrameReader(1 << 20);
  const huge = new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
  let calls = 0;
  const before = process.memoryUsage().arrayBuffers;
  const err = reader.push(huge, () => calls++);
  assert.match(err!, /4294967295 bytes exceeds linkFrameBytesMax 1048576/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  assert.equal(reader.push(frame(new Uint8Array(1)), () => calls++), err);
  assert.equal(calls, 0);
  // Exactly at the bound is fine, split over two chunks as well.
  const ok = new LinkFrameReader(16);
  const f = frame(payloadOf(16, 9));
  assert.equal(ok.push(f.subarray(0, 2), () => calls++), null);
  assert.equal(ok.push(f.subarray(2, 10), () => calls++), null);
  assert.equal(ok.push(f.subarray(10), () => calls++), null);
  assert.equal(calls, 1);
  const over = new LinkFrameReader(16);
  assert.match(over.push(frame(payloadOf(17, 9)).subarray(0, 3), () => calls++) ?? 'none', /none/);
  assert.match(over.push(frame(payloadOf(17, 9)).subarray(3), () => calls++)!, /17 bytes exceeds/);
});

// ---- sub-records ----

function sub(kind: number, group: number, body: number[]): number[] {
  const b = new Uint8Array(SUB_HEADER_BYTES + body.length);
  writeSubHeader(b, 0, b.length, group, SubKind.RaftMessage);
  b[8] = kind;
  b.set(body, SUB_HEADER_BYTES);
  return Array.from(b);
}

test('sub-record headers round-trip', T, () => {
  const b = new Uint8Array(20);
  writeSubHeader(b, 4, 16, 0xfffffffe, SubKind.HeartbeatResps);
  assert.equal(subBytes(b, 4), 16);
  assert.equal(subGroup(b, 4), 0xfffffffe);
  assert.equal(subKind(b, 4), SubKind.HeartbeatResps);
  assert.deepEqual(Array.from(b.subarray(13, 16)), [0, 0, 0]);
  assert.throws(() => writeSubHeader(b, 0, 11, 1, SubKind.RaftMessage), AssertionError);
});

test('payloadProblem accepts well-formed chains and names what is wrong with the others', T, () => {
  const good = [...sub(1, 5, [1, 2, 3]), ...sub(2, 0, []), ...sub(3, GROUP_BROADCAST, [9]), ...sub(4, GROUP_BROADCAST, [])];
  const check = (bytes: number[], lead = 0): string | null => {
    const b = new Uint8Array(lead + bytes.length + 2).fill(0xaa);
    b.set(bytes, lead);
    return payloadProblem(b, lead, lead + bytes.length);
  };
  assert.equal(check(good), null);
  assert.equal(check(good, 3), null);
  assert.equal(check([]), null);
  assert.match(check(good.slice(0, good.length - 1))!, /runs past|too few/);
  for (let cut = 1; cut < good.length; cut++) {
    const boundary = [15, 27, 40, 52].includes(cut);
    assert.equal(check(good.slice(0, cut)) === null, boundary, `cut at ${cut}`);
  }
  const bytesField = (n: number): number[] => { const s = sub(1, 5, []); s[0] = n & 0xff; s[1] = n >>> 8; return s; };
  assert.match(check(bytesField(11))!, /less than its header/);
  assert.match(check(bytesField(0))!, /less than its header/);
  assert.match(check(bytesField(13))!, /runs past/);
  assert.match(check(sub(0, 5, []))!, /unknown kind 0/);
  assert.match(check(sub(5, 5, []))!, /unknown kind 5/);
  const reserved = sub(1, 5, []);
  reserved[10] = 1;
  assert.match(check(reserved)!, /reserved/);
  assert.match(check(sub(3, 5, []))!, /not for group 0xffffffff/);
  assert.match(check(sub(1, GROUP_BROADCAST, []))!, /is for group 0xffffffff/);
  assert.match(check([...good, 1, 2, 3])!, /too few/);
});

// ---- payloads ----

function app(from: number, to: number, n: number): Message {
  const m = message(MessageType.App, from, to, 7);
  m.index = 100;
  m.logTerm = 6;
  m.commit = 99;
  for (let i = 0; i < n; i++) m.entries.push({ term: 7, index: 101 + i, type: EntryType.Normal, data: payloadOf(i * 10, i + 1) });
  return m;
}

function hb(type: MessageType, group: number): Message {
  const m = message(type, 1, 2, 5);
  if (type === MessageType.Heartbeat) m.commit = group;
  m.context = group + 1;
  return m;
}

interface Decoded { kind: number; group: number; what: unknown }

function decodePayload(p: Uint8Array): Decoded[] {
  assert.equal(payloadProblem(p, 0, p.length), null);
  const out: Decoded[] = [];
  for (let at = 0; at < p.length; at += subBytes(p, at)) {
    const kind = subKind(p, at);
    const group = subGroup(p, at);
    const body = at + SUB_HEADER_BYTES;
    const end = at + subBytes(p, at);
    if (kind === SubKind.RaftMessage) out.push({ kind, group, what: decodeRaftMessage(p, body, end) });
    else if (kind === SubKind.SnapChunk) out.push({ kind, group, what: decodeSnapChunk(p, body, end) });
    else {
      const items: Array<[number, Message]> = [];
      decodeHeartbeats(p, body, end, () => true, (g, m) => items.push([g, { ...m }]));
      out.push({ kind, group, what: items });
    }
  }
  return out;
}

test('a payload keeps Raft messages and chunks in order and coalesces heartbeats into one sub-record each', T, () => {
  const pb = new PayloadBuilder(1 << 20, 16); // tiny start: growth is exercised
  assert.equal(pb.finish(), null);
  const snap = message(MessageType.Snap, 1, 2, 5);
  snap.snapshot = { meta: { index: 50, term: 4, conf: { voters: [1, 2], votersOutgoing: [1, 3], learners: [4], learnersNext: [3] } }, data: payloadOf(1000, 5) };
  const steps: Array<[number, Message, number]> = [
    [10, app(1, 2, 3), 0], [11, hb(MessageType.Heartbeat, 11), 0], [12, hb(MessageType.HeartbeatResp, 12), 0],
    [13, hb(MessageType.Heartbeat, 13), 0], [14, snap, 0], [15, app(1, 2, 0), 0], [16, hb(MessageType.HeartbeatResp, 16), 0],
  ];
  let expectBytes = 0;
  for (const [group, m] of steps) {
    const add = pb.appendBytes(m, m.type === MessageType.Snap ? 400 : 0);
    if (m.type === MessageType.Heartbeat || m.type === MessageType.HeartbeatResp) pb.appendHeartbeat(group, m);
    else if (m.type === MessageType.Snap) pb.appendSnapChunk(group, m, 600, 400);
    else pb.appendRaft(group, m);
    expectBytes += add;
    assert.equal(pb.bytes(), expectBytes);
  }
  const p = pb.finish()!;
  assert.equal(p.length, expectBytes);
  const d = decodePayload(p);
  assert.deepEqual(d.map((x) => [x.kind, x.group]), [
    [SubKind.RaftMessage, 10], [SubKind.SnapChunk, 14], [SubKind.RaftMessage, 15],
    [SubKind.Heartbeats, GROUP_BROADCAST], [SubKind.HeartbeatResps, GROUP_BROADCAST],
  ]);
  assert.deepEqual(d[0]!.what, steps[0]![1]);
  assert.deepEqual(d[2]!.what, steps[5]![1]);
  const chunk = d[1]!.what as ReturnType<typeof decodeSnapChunk>;
  assert.deepEqual([chunk.offset, chunk.totalBytes], [600, 1000]);
  assert.deepEqual(chunk.data, snap.snapshot.data.subarray(600, 1000));
  assert.deepEqual(d[3]!.what, [[11, steps[1]![1]], [13, steps[3]![1]]]);
  assert.deepEqual(d[4]!.what, [[12, steps[2]![1]], [16, steps[6]![1]]]);

  // Reset by finish: the next payload starts empty and reuses the buffer.
  assert.equal(pb.bytes(), 0);
  assert.equal(pb.finish(), null);
  pb.appendHeartbeat(1, hb(MessageType.Heartbeat, 1));
  const v = pb.finishView()!;
  assert.deepEqual(decodePayload(v).map((x) => x.kind), [SubKind.Heartbeats]);
  // finish() gives a copy of its own; finishView a view the next append overwrites.
  assert.notEqual(p.buffer, v.buffer);
});

test('a thousand groups\' heartbeats and a wrapped frame go through the reader to decoded messages', T, () => {
  const pb = new PayloadBuilder();
  for (let g = 0; g < 1000; g++) pb.appendHeartbeat(g, hb(MessageType.Heartbeat, g));
  pb.appendRaft(5000, app(1, 2, 2));
  const p = pb.finish()!;
  const stream = frame(p);
  const reader = new LinkFrameReader(1 << 20);
  let groups = 0;
  let msgs = 0;
  const r = prng(3);
  for (let at = 0; at < stream.length;) {
    const n = 1 + Math.floor(r() * 5000);
    assert.equal(reader.push(stream.subarray(at, at + n), (b, s, e) => {
      assert.equal(payloadProblem(b, s, e), null);
      for (let q = s; q < e; q += subBytes(b, q)) {
        if (subKind(b, q) === SubKind.Heartbeats) {
          decodeHeartbeats(b, q + SUB_HEADER_BYTES, q + subBytes(b, q), (g) => g % 4 === 1, (g, m) => {
            assert.equal(m.commit, g);
            groups++;
          });
        } else {
          decodeRaftMessage(b, q + SUB_HEADER_BYTES, q + subBytes(b, q));
          msgs++;
        }
      }
    }), null);
    at += n;
  }
  assert.equal(groups, 250);
  assert.equal(msgs, 1);
});

test('a payload never passes its bound; appendBytes says when to finish first', T, () => {
  const m = app(1, 2, 2);
  const one = SUB_HEADER_BYTES + raftMessageBytes(m);
  const pb = new PayloadBuilder(one * 2 + 10);
  pb.appendRaft(1, m);
  pb.appendRaft(2, m);
  assert.ok(pb.appendBytes(m) > pb.bytesMax - pb.bytes());
  assert.throws(() => pb.appendRaft(3, m), AssertionError);
  assert.throws(() => pb.appendHeartbeat(3, hb(MessageType.Heartbeat, 3)), AssertionError);
  assert.equal(pb.bytes(), one * 2, 'a refused append leaves nothing behind');
  assert.equal(decodePayload(pb.finish()!).length, 2);
  assert.throws(() => pb.appendRaft(GROUP_BROADCAST, m), AssertionError);
  assert.throws(() => pb.appendHeartbeat(1, m), AssertionError);
  assert.equal(pb.bytes(), 0);
});
