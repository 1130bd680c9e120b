// The outbox on a small ring: what does not fit one record is cut between frames or
// sub-records, snapshots go in chunks that reassemble, heartbeats are coalesced, and a full
// ring is waited out rather than dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpack } from 'msgpackr';
import { EntryType, message, MessageType, type Message } from '../../src/raft/types.js';
import { OutKind, RECORD_HEADER_BYTES, recordArg } from '../../src/ring/records.js';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { FRAME_HEADER_BYTES, FrameKind, readHeader, type ErrorBody } from '../../src/protocol/client-frame.js';
import { decodeHeartbeats, decodeRaftMessage } from '../../src/protocol/raft-codec.js';
import { decodeSnapChunk } from '../../src/protocol/snap-chunk-codec.js';
import { SUB_HEADER_BYTES, SubKind, subBytes, subGroup, subKind } from '../../src/protocol/peer-wire.js';
import { Outbox } from '../../src/shard/outbox.js';
import { SnapshotAssembler } from '../../src/shard/snapshot-assembler.js';

interface Rec { kind: number; arg: number; payload: Uint8Array }

/** Reads records off the ring while `flush` runs (the ring holds only a few of them). */
async function drainWhile(ring: SpscRing, p: Promise<void>): Promise<Rec[]> {
  const out: Rec[] = [];
  let done = false;
  void p.then(() => { done = true; });
  for (;;) {
    for (let at = ring.read(); at >= 0; at = ring.read()) {
      out.push({ kind: ring.data[at]!, arg: recordArg(ring.data, at), payload: ring.data.slice(at + RECORD_HEADER_BYTES, at + ring.readBytes) });
      ring.release();
    }
    ring.notifyRoom();
    if (done) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  await p;
  for (let at = ring.read(); at >= 0; at = ring.read()) {
    out.push({ kind: ring.data[at]!, arg: recordArg(ring.data, at), payload: ring.data.slice(at + RECORD_HEADER_BYTES, at + ring.readBytes) });
    ring.release();
  }
  return out;
}

function app(from: number, to: number, index: number, bytes: number): Message {
  const m = message(MessageType.App, from, to, 3);
  m.index = index - 1;
  m.logTerm = 3;
  m.entries = [{ index, term: 3, type: EntryType.Normal, data: new Uint8Array(bytes).fill(index & 0xff) }];
  m.commit = index - 1;
  return m;
}

test('responses, messages, snapshots and heartbeats larger than a record are split, none lost', async () => {
  const sab = SpscRing.allocate(4096);
  const producer = new SpscRing(sab);
  const consumer = new SpscRing(sab);
  const outbox = new Outbox(producer, 300);
  assert.equal(outbox.payloadBytesMax, 1024 - RECORD_HEADER_BYTES);

  for (let i = 0; i < 30; i++) outbox.respond(5, FrameKind.Result, 100 + i, 1, new Uint8Array(100).fill(i));
  outbox.respond(5, FrameKind.Result, 999, 1, new Uint8Array(2000));
  for (let i = 1; i <= 20; i++) outbox.raft(7, app(1, 2, i, 200));
  const snap = message(MessageType.Snap, 1, 2, 3);
  const image = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
  snap.snapshot = { meta: { index: 40, term: 3, conf: { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] } }, data: image };
  outbox.raft(7, snap);
  for (let g = 1; g <= 100; g++) {
    const hb = message(MessageType.Heartbeat, 1, 3, 3);
    hb.commit = g;
    hb.context = 5;
    outbox.raft(g, hb);
  }
  outbox.adminReply(42, { ok: true });
  outbox.event({ type: 'ready', shard: 0 });
  assert.ok(!outbox.empty);

  const recs = await drainWhile(consumer, outbox.flush());
  assert.ok(outbox.empty);
  assert.ok(outbox.ringWaits > 0, 'the small ring filled up and the flush waited for room');
  for (const r of recs) assert.ok(r.payload.length <= outbox.payloadBytesMax);

  // Client: 31 frames for connection 5, in order, over several records; the oversized one is TOO_LARGE.
  const frames: { id: number; kind: number; body: Uint8Array }[] = [];
  for (const r of recs.filter((x) => x.kind === OutKind.Client)) {
    assert.equal(r.arg, 5);
    for (let p = 0; p < r.payload.length;) {
      const h = readHeader(r.payload, p);
      frames.push({ id: h.requestId, kind: h.kind, body: r.payload.slice(p + FRAME_HEADER_BYTES, p + h.frameBytes) });
      p += h.frameBytes;
    }
  }
  assert.ok(recs.filter((x) => x.kind === OutKind.Client).length >= 4);
  assert.deepEqual(frames.map((f) => f.id), [...Array.from({ length: 30 }, (_, i) => 100 + i), 999]);
  for (let i = 0; i < 30; i++) assert.deepEqual(frames[i]!.body, new Uint8Array(100).fill(i));
  assert.equal(frames[30]!.kind, FrameKind.Error);
  assert.equal((unpack(frames[30]!.body) as ErrorBody).code, 'TOO_LARGE');

  // Peer: node 2 gets the 20 appends and the snapshot in chunks; node 3 the 100 heartbeats.
  const apps: Message[] = [];
  const assembler = new SnapshotAssembler(1 << 20, 2 << 20);
  let whole: Message | null = null;
  let chunks = 0;
  const beats: number[] = [];
  for (const r of recs.filter((x) => x.kind === OutKind.Peer)) {
    for (let p = 0; p < r.payload.length; p += subBytes(r.payload, p)) {
      const end = p + subBytes(r.payload, p);
      const body = p + SUB_HEADER_BYTES;
      switch (subKind(r.payload, p)) {
        case SubKind.RaftMessage:
          assert.equal(r.arg, 2);
          assert.equal(subGroup(r.payload, p), 7);
          apps.push(decodeRaftMessage(r.payload, body, end));
          break;
        case SubKind.SnapChunk: {
          assert.equal(r.arg, 2);
          chunks++;
          const c = decodeSnapChunk(r.payload, body, end);
          assert.ok(c.data.length <= 300);
          const m = assembler.add(subGroup(r.payload, p), c);
          if (m !== null) whole = m;
          break;
        }
        case SubKind.Heartbeats:
          assert.equal(r.arg, 3);
          decodeHeartbeats(r.payload, body, end, () => true, (g, m) => {
            assert.equal(m.commit, g);
            beats.push(g);
          });
          break;
        default:
          assert.fail(`unexpected sub-record kind ${subKind(r.payload, p)}`);
      }
    }
  }
  assert.deepEqual(apps.map((m) => m.entries[0]!.index), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.deepEqual(apps[4]!.entries[0]!.data, new Uint8Array(200).fill(5));
  assert.equal(chunks, Math.ceil(5000 / 300));
  assert.ok(whole !== null, 'the snapshot reassembled');
  assert.deepEqual((whole as Message).snapshot!.data, image);
  assert.equal((whole as Message).snapshot!.meta.index, 40);
  assert.deepEqual(beats.sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1));

  const admin = recs.find((x) => x.kind === OutKind.AdminReply)!;
  assert.equal(admin.arg, 42);
  assert.deepEqual(unpack(admin.payload), { ok: true });
  assert.deepEqual(unpack(recs.find((x) => x.kind === OutKind.Event)!.payload), { type: 'ready', shard: 0 });
});

test('snapshot reassembly refuses oversized, out-of-order and abandoned transfers, within its memory bound', () => {
  const meta = { index: 9, term: 2, conf: { voters: [1, 2], votersOutgoing: [], learners: [], learnersNext: [] } };
  const chunk = (from: number, total: number, offset: number, len: number, index = 9) => {
    const m = message(MessageType.Snap, from, 2, 2);
    m.snapshot = { meta: { ...meta, index }, data: new Uint8Array(0) };
    return { m, totalBytes: total, offset, data: new Uint8Array(len).fill(offset & 0xff) };
  };
  const a = new SnapshotAssembler(1000, 1500);
  assert.equal(a.add(1, chunk(1, 2000, 0, 100)), null, 'larger than bytesMax');
  assert.equal(a.transfersInProgress, 0);
  assert.equal(a.add(1, chunk(1, 1000, 0, 400)), null);
  assert.equal(a.add(1, chunk(1, 1000, 500, 100)), null, 'a gap drops the transfer');
  assert.equal(a.transfersInProgress, 0);
  assert.equal(a.add(1, chunk(1, 1000, 0, 500)), null);
  assert.equal(a.add(1, chunk(1, 1000, 500, 500, 10)), null, 'a chunk of another snapshot drops the transfer');
  // Two transfers of 1000 bytes do not fit the 1500-byte bound: the older one goes.
  assert.equal(a.add(1, chunk(1, 1000, 0, 500)), null);
  assert.equal(a.add(2, chunk(3, 1000, 0, 500)), null);
  assert.equal(a.transfersInProgress, 1);
  assert.equal(a.add(1, chunk(1, 1000, 500, 500)), null, 'the evicted transfer does not complete');
  const done = a.add(2, chunk(3, 1000, 500, 500));
  assert.ok(done !== null && done.snapshot!.data.length === 1000);
  assert.equal(done.snapshot!.data[0], 0);
  assert.equal(done.snapshot!.data[999], 500 & 0xff);
  // An empty snapshot completes with its one chunk; a broken link drops a sender's transfers.
  assert.ok(a.add(4, chunk(1, 0, 0, 0)) !== null);
  a.add(5, chunk(1, 800, 0, 100));
  a.dropFrom(1);
  assert.equal(a.transfersInProgress, 0);
});
