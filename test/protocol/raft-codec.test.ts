// The Raft message codec: every message type survives a round trip with its entries, snapshots
// cross in chunks and reassemble, heartbeats of many groups share one body, and malformed bytes
// (truncated, padded, corrupted) are refused with a CodecError rather than a crash or a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../src/util/assert.js';
import { EntryType, MessageType, message, type ConfState, type Entry, type Message } from '../../src/raft/types.js';
import {
  CodecError,
  decodeHeartbeats,
  decodeRaftMessage,
  encodeHeartbeats,
  encodeRaftMessage,
  heartbeatsBytes,
  raftMessageBytes,
  type GroupMessage,
} from '../../src/protocol/raft-codec.js';
import { decodeSnapChunk, encodeSnapChunk, snapChunkBytes } from '../../src/protocol/snap-chunk-codec.js';

const T = { timeout: 20_000 };
const SAFE = Number.MAX_SAFE_INTEGER;

function prng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function bytes(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

function entry(term: number, index: number, data: Uint8Array, type = EntryType.Normal): Entry {
  return { term, index, type, data };
}

/** A message with every field set to something other than its default. */
function full(type: MessageType, entries: Entry[] = []): Message {
  const m = message(type, 0xfffffffe, 7, SAFE);
  m.index = 2 ** 32;
  m.logTerm = 2 ** 32 - 1;
  m.commit = SAFE - 1;
  m.reject = true;
  m.rejectHint = 123_456_789_012;
  m.context = 2 ** 40 + 3;
  m.entries = entries;
  m.quiesce = type === MessageType.Heartbeat;
  return m;
}

function encode(m: Message, lead = 0, tail = 0): { buf: Uint8Array; at: number; end: number } {
  const buf = new Uint8Array(lead + raftMessageBytes(m) + tail).fill(0xee);
  const end = encodeRaftMessage(m, buf, lead);
  assert.equal(end, lead + raftMessageBytes(m));
  return { buf, at: lead, end };
}

function assertThrowsCodec(f: () => unknown, what: string): void {
  assert.throws(f, (e: unknown) => e instanceof CodecError && e.code === 'BAD_MESSAGE', what);
}

test('every message type but Snap round-trips with all its fields', T, () => {
  const types = [
    MessageType.App, MessageType.AppResp, MessageType.Vote, MessageType.VoteResp, MessageType.PreVote,
    MessageType.PreVoteResp, MessageType.Heartbeat, MessageType.HeartbeatResp, MessageType.TimeoutNow,
  ];
  for (const type of types) {
    for (const reject of [false, true]) {
      for (const quiesce of type === MessageType.Heartbeat ? [false, true] : [false]) {
        const m = full(type);
        m.reject = reject;
        m.quiesce = quiesce;
        const { buf, at, end } = encode(m, 5, 3);
        assert.deepEqual(decodeRaftMessage(buf, at, end), m, `type ${type} reject ${reject} quiesce ${quiesce}`);
      }
    }
    const zero = message(type, 1, 2, 0);
    const z = encode(zero);
    assert.deepEqual(decodeRaftMessage(z.buf, z.at, z.end), zero);
  }
});

test('an append carries empty, binary and conf-change entries with large terms and indexes', T, () => {
  const base = SAFE - 100;
  const entries = [
    entry(SAFE, base + 1, new Uint8Array(0)),
    entry(SAFE, base + 2, bytes(100, 1)),
    entry(SAFE, base + 3, new Uint8Array([0, 0xff, 0x80, 0x7f])),
    entry(2 ** 32, base + 4, bytes(3, 2), EntryType.ConfChange),
    entry(1, base + 5, new Uint8Array(0)),
    entry(0, 0, bytes(70_000, 3)),
  ];
  const m = full(MessageType.App, entries);
  const { buf, at, end } = encode(m, 11, 0);
  const d = decodeRaftMessage(buf, at, end);
  assert.deepEqual(d, m);
  // The payloads are copies: the ring memory they came from is reused at once.
  buf.fill(0);
  assert.deepEqual(d.entries[1]!.data, entries[1]!.data);
  assert.deepEqual(d.entries[5]!.data, entries[5]!.data);
  assert.notEqual(d.entries[1]!.data.buffer, buf.buffer);
  assert.equal(d.entries[1]!.data.constructor, Uint8Array);
});

test('decoding from a Node Buffer still copies the payloads', T, () => {
  const m = full(MessageType.App, [entry(3, 4, bytes(33, 4))]);
  const { buf, at, end } = encode(m);
  const nodeBuf = Buffer.from(buf);
  const d = decodeRaftMessage(nodeBuf, at, end);
  nodeBuf.fill(0);
  assert.deepEqual(d.entries[0]!.data, m.entries[0]!.data);
});

test('payloads decoded one after another from reused ring memory never share bytes', T, () => {
  // Ring memory: one SharedArrayBuffer, records at offsets, overwritten as soon as read.
  const ring = new Uint8Array(new SharedArrayBuffer(64 * 1024), 4096);
  const kept: Array<[Message, Message]> = [];
  for (let i = 0; i < 3000; i++) {
    const n = i % 7;
    const es: Entry[] = [];
    for (let k = 0; k < n; k++) es.push(entry(i, i * 10 + k, bytes((i * 13 + k * 101) % 3000, i * 7 + k + 1)));
    const m = full(MessageType.App, es);
    const at = (i * 97) % 8192;
    const end = encodeRaftMessage(m, ring, at);
    kept.push([m, decodeRaftMessage(ring, at, end)]);
    ring.fill(i & 0xff, at, end);
  }
  for (const [m, d] of kept) assert.deepEqual(d, m);
});

test('a 1024-entry append round-trips', T, () => {
  const entries: Entry[] = [];
  for (let i = 0; i < 1024; i++) entries.push(entry(9, 1000 + i, bytes(i % 17, i + 1)));
  const m = full(MessageType.App, entries);
  const { buf, at, end } = encode(m);
  assert.deepEqual(decodeRaftMessage(buf, at, end), m);
});

test('encoding refuses a Snap message and fields that are not safe integers or u32 node ids', T, () => {
  const snap = message(MessageType.Snap, 1, 2, 3);
  assert.throws(() => encodeRaftMessage(snap, new Uint8Array(1000), 0), /encodeSnapChunk/);
  const bad: Array<(m: Message) => void> = [
    (m) => (m.term = SAFE + 1),
    (m) => (m.index = -1),
    (m) => (m.commit = 1.5),
    (m) => (m.context = NaN),
    (m) => (m.from = 2 ** 32),
    (m) => (m.to = -1),
    (m) => (m.entries = [entry(2 ** 53, 1, new Uint8Array(0))]),
    (m) => (m.quiesce = true), // only a Heartbeat carries it
  ];
  for (const f of bad) {
    const m = full(MessageType.App);
    f(m);
    assert.throws(() => encodeRaftMessage(m, new Uint8Array(raftMessageBytes(m)), 0), AssertionError);
  }
  const m = full(MessageType.App, [entry(1, 1, bytes(10, 5))]);
  assert.throws(() => encodeRaftMessage(m, new Uint8Array(raftMessageBytes(m) - 1), 0), AssertionError);
});

test('a message truncated at every byte offset, or followed by extra bytes, is a BAD_MESSAGE', T, () => {
  const m = full(MessageType.App, [entry(5, 6, bytes(9, 6)), entry(5, 7, new Uint8Array(0)), entry(5, 8, bytes(4, 7))]);
  const { buf, at, end } = encode(m, 0, 1);
  for (let cut = at; cut < end; cut++) {
    assertThrowsCodec(() => decodeRaftMessage(buf, at, cut), `cut at ${cut}`);
  }
  assertThrowsCodec(() => decodeRaftMessage(buf, at, end + 1), 'one trailing byte');
  assert.deepEqual(decodeRaftMessage(buf, at, end), m);
});

test('unknown types, flags, reserved bytes, oversized counts and unsafe u64s are refused', T, () => {
  const m = full(MessageType.App, [entry(5, 6, bytes(9, 8))]);
  const { buf, end } = encode(m);
  const corrupt = (offset: number, value: number, what: string): void => {
    const b = buf.slice();
    b[offset] = value;
    assertThrowsCodec(() => decodeRaftMessage(b, 0, end), what);
  };
  corrupt(0, 0, 'message type 0');
  corrupt(0, MessageType.Snap, 'Snap outside a chunk');
  corrupt(0, 11, 'message type 11');
  corrupt(0, 255, 'message type 255');
  corrupt(1, 2, 'quiesce flag on an App');
  corrupt(1, 4, 'unknown flag');
  corrupt(2, 1, 'reserved byte');
  // term's high word: bytes 16..19; 0x00200000 is 2^21, the first unsafe value.
  const b = buf.slice();
  b[16] = 0; b[17] = 0; b[18] = 0x20; b[19] = 0;
  assertThrowsCodec(() => decodeRaftMessage(b, 0, end), 'term 2^53');
  corrupt(64 + 20, 3, 'entry type 3');
  corrupt(64 + 21, 1, 'entry reserved byte');
  // Entry count: 0xffffffff entries cannot fit; refused before anything is allocated.
  for (const count of [0xffffffff, 3, 1 << 20]) {
    const c = buf.slice();
    c[60] = count & 0xff; c[61] = (count >>> 8) & 0xff; c[62] = (count >>> 16) & 0xff; c[63] = count >>> 24;
    assert.throws(() => decodeRaftMessage(c, 0, end), (e: unknown) => e instanceof CodecError && /cannot fit/.test(e.message), `count ${count}`);
  }
  // An entry length past the end.
  const l = buf.slice();
  l[64 + 16] = 0xff; l[64 + 17] = 0xff; l[64 + 18] = 0xff; l[64 + 19] = 0xff;
  assertThrowsCodec(() => decodeRaftMessage(l, 0, end), 'entry length past end');
});

test('random corruption of encoded messages is refused or decoded, never anything else', T, () => {
  const r = prng(42);
  const samples = [
    full(MessageType.App, [entry(5, 6, bytes(9, 9)), entry(5, 7, bytes(1, 10))]),
    full(MessageType.VoteResp),
    full(MessageType.App, []),
  ];
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const { buf, end } = encode(samples[i % samples.length]!);
    const flips = 1 + Math.floor(r() * 4);
    for (let k = 0; k < flips; k++) buf[Math.floor(r() * end)] = Math.floor(r() * 256);
    try {
      const d = decodeRaftMessage(buf, 0, end);
      assert.ok(d.type >= 1 && d.type <= 10 && d.type !== MessageType.Snap);
      for (const e of d.entries) assert.ok(Number.isSafeInteger(e.term) && Number.isSafeInteger(e.index));
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      refused++;
    }
  }
  assert.ok(refused > 0);
});

// ---- heartbeats ----

function heartbeat(type: MessageType, group: number): GroupMessage {
  const m = message(type, 3, 9, SAFE - group);
  if (type === MessageType.Heartbeat) m.commit = 2 ** 33 + group;
  m.context = group * 7;
  m.reject = group % 5 === 0;
  m.quiesce = type === MessageType.Heartbeat && group % 3 === 0;
  return { group, m };
}

test('a thousand groups\' heartbeats share one body and the own filter skips the others', T, () => {
  for (const type of [MessageType.Heartbeat, MessageType.HeartbeatResp]) {
    const list: GroupMessage[] = [];
    for (let g = 0; g < 1000; g++) list.push(heartbeat(type, g * 3 + (g === 999 ? 0xffffffff - 2997 - 1 : 0)));
    const buf = new Uint8Array(heartbeatsBytes(list.length) + 8);
    const end = encodeHeartbeats(list, buf, 4);
    assert.equal(end, 4 + heartbeatsBytes(1000));
    const seen: GroupMessage[] = [];
    let asked = 0;
    let shared: Message | null = null;
    decodeHeartbeats(buf, 4, end, (g) => (asked++, g % 2 === 0), (g, m) => {
      shared ??= m;
      assert.equal(m, shared, 'one reused message object per call');
      seen.push({ group: g, m: { ...m } });
    });
    assert.equal(asked, 1000);
    const want = list.filter((x) => x.group % 2 === 0);
    assert.deepEqual(seen, want);
  }
});

test('an empty heartbeat batch round-trips; mixed types are refused when encoding', T, () => {
  const buf = new Uint8Array(heartbeatsBytes(0));
  const end = encodeHeartbeats([], buf, 0);
  let visits = 0;
  decodeHeartbeats(buf, 0, end, () => true, () => visits++);
  assert.equal(visits, 0);
  const mixed = [heartbeat(MessageType.Heartbeat, 1), heartbeat(MessageType.HeartbeatResp, 2)];
  assert.throws(() => encodeHeartbeats(mixed, new Uint8Array(heartbeatsBytes(2)), 0), AssertionError);
  assert.throws(() => encodeHeartbeats([heartbeat(MessageType.App, 1)], new Uint8Array(heartbeatsBytes(1)), 0), AssertionError);
});

test('malformed heartbeat bodies are a BAD_MESSAGE', T, () => {
  const list = [heartbeat(MessageType.Heartbeat, 1), heartbeat(MessageType.Heartbeat, 2)];
  const buf = new Uint8Array(heartbeatsBytes(2));
  const end = encodeHeartbeats(list, buf, 0);
  for (let cut = 0; cut < end; cut++) {
    let visits = 0;
    assertThrowsCodec(() => decodeHeartbeats(buf, 0, cut, () => true, () => visits++), `cut at ${cut}`);
    assert.equal(visits, 0, 'a short body is refused before any visit');
  }
  const corrupt = (offset: number, value: number, what: string): void => {
    const b = buf.slice();
    b[offset] = value;
    assertThrowsCodec(() => decodeHeartbeats(b, 0, end, () => true, () => {}), what);
  };
  corrupt(0, 3, 'count too large');
  corrupt(3, 0xff, 'count 2^32 − 1');
  corrupt(4, MessageType.App, 'type App');
  corrupt(5, 1, 'reserved header byte');
  corrupt(8 + 12, 4, 'unknown item flag');
  const resps = [heartbeat(MessageType.HeartbeatResp, 1)];
  const rb = new Uint8Array(heartbeatsBytes(1));
  const rend = encodeHeartbeats(resps, rb, 0);
  rb[8 + 12] = 2;
  assertThrowsCodec(() => decodeHeartbeats(rb, 0, rend, () => true, () => {}), 'quiesce flag in a HeartbeatResp');
  corrupt(8 + 16 + 7, 0x01, 'term not safe');
});

// ---- snapshot chunks ----

function snapMessage(dataBytes: number, conf: ConfState): Message {
  const m = message(MessageType.Snap, 1, 4, 2 ** 45);
  m.commit = 77;
  m.snapshot = { meta: { index: SAFE - 1, term: 2 ** 45, conf }, data: bytes(dataBytes, dataBytes + 1) };
  return m;
}

const JOINT: ConfState = { voters: [1, 2, 3], votersOutgoing: [1, 2, 5], learners: [6, 0xffffffff], learnersNext: [5] };

test('a snapshot with a joint configuration and learners crosses in many chunks and reassembles', T, () => {
  for (const [dataBytes, chunkBytes] of [[100_003, 4096], [8192, 4096], [1, 4096], [0, 4096], [777, 1]] as const) {
    const m = snapMessage(dataBytes, JOINT);
    const data = m.snapshot!.data;
    const out = new Uint8Array(dataBytes);
    let received = 0;
    let chunks = 0;
    for (let off = 0; off < dataBytes || (dataBytes === 0 && chunks === 0); off += chunkBytes) {
      const len = Math.min(chunkBytes, dataBytes - off);
      const buf = new Uint8Array(3 + snapChunkBytes(m, len));
      const end = encodeSnapChunk(m, off, len, buf, 3);
      assert.equal(end, buf.length);
      const c = decodeSnapChunk(buf, 3, end);
      buf.fill(0); // the chunk's data is a copy
      assert.equal(c.totalBytes, dataBytes);
      assert.equal(c.offset, off);
      assert.equal(c.data.length, len);
      assert.deepEqual(c.m.snapshot!.meta, m.snapshot!.meta);
      assert.equal(c.m.snapshot!.data.length, 0);
      assert.deepEqual({ ...c.m, snapshot: null }, { ...m, snapshot: null });
      out.set(c.data, c.offset);
      received += c.data.length;
      chunks++;
    }
    assert.equal(received, dataBytes);
    assert.deepEqual(out, data);
    assert.equal(chunks, Math.max(1, Math.ceil(dataBytes / chunkBytes)));
  }
});

test('encodeSnapChunk refuses other messages and ranges outside the data', T, () => {
  const m = snapMessage(10, JOINT);
  const buf = new Uint8Array(1000);
  assert.throws(() => encodeSnapChunk(m, 5, 6, buf, 0), AssertionError);
  assert.throws(() => encodeSnapChunk(m, -1, 1, buf, 0), AssertionError);
  assert.throws(() => encodeSnapChunk(full(MessageType.App), 0, 0, buf, 0), AssertionError);
  assert.throws(() => encodeSnapChunk(m, 0, 10, new Uint8Array(snapChunkBytes(m, 10) - 1), 0), AssertionError);
});

test('a snapshot chunk truncated at every offset, padded or with impossible counts is a BAD_MESSAGE', T, () => {
  const m = snapMessage(50, JOINT);
  const buf = new Uint8Array(snapChunkBytes(m, 20) + 1);
  const end = encodeSnapChunk(m, 30, 20, buf, 0);
  for (let cut = 0; cut < end; cut++) assertThrowsCodec(() => decodeSnapChunk(buf, 0, cut), `cut at ${cut}`);
  assertThrowsCodec(() => decodeSnapChunk(buf, 0, end + 1), 'trailing byte');
  const corrupt = (offset: number, value: number, what: string): void => {
    const b = buf.slice();
    b[offset] = value;
    assertThrowsCodec(() => decodeSnapChunk(b, 0, end), what);
  };
  corrupt(0, MessageType.App, 'not a Snap');
  corrupt(60 + 16 + 3, 0xff, 'voters count 2^24+3');
  corrupt(60 + 28, 200, 'learnersNext count too large');
  const tail = 60 + 32 + 4 * 9;
  corrupt(tail, 40, 'totalBytes smaller than offset + len');
  corrupt(tail + 8, 31, 'offset + len past totalBytes');
  corrupt(tail + 16, 21, 'data length past end');
  corrupt(tail + 16, 19, 'data length short of end');
  assert.deepEqual(decodeSnapChunk(buf, 0, end).data, m.snapshot!.data.subarray(30, 50));
});

test('random corruption of snapshot chunks and heartbeats is refused or decoded, never anything else', T, () => {
  const r = prng(7);
  const m = snapMessage(40, JOINT);
  const chunk = new Uint8Array(snapChunkBytes(m, 40));
  encodeSnapChunk(m, 0, 40, chunk, 0);
  const hb = new Uint8Array(heartbeatsBytes(3));
  encodeHeartbeats([1, 2, 3].map((g) => heartbeat(MessageType.Heartbeat, g)), hb, 0);
  for (let i = 0; i < 20_000; i++) {
    const b = (i % 2 === 0 ? chunk : hb).slice();
    for (let k = 0; k < 3; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    try {
      if (i % 2 === 0) decodeSnapChunk(b, 0, b.length);
      else decodeHeartbeats(b, 0, b.length, () => true, () => {});
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
    }
  }
});
