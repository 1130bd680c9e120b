// The client router's byte budget per connection (src/node/client-routing.ts): a connection is
// read no further once its requests in flight, the responses expected for them and its unsent
// output pass inflightBytesPerConnMax, and is read again once they fall a quarter below it. The
// shard's side is a second view of the in ring; responses are handed to deliver() as the
// out-ring drain would.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { RECORD_HEADER_BYTES } from '../../src/ring/records.js';
import { encodeFrame, FrameFlag, FrameKind } from '../../src/protocol/client-frame.js';
import { InRingWriter } from '../../src/node/in-ring.js';
import { ClientRouter } from '../../src/node/client-routing.js';
import type { ShardSlot } from '../../src/node/shard-pool.js';
import type { ClientConnection } from '../../src/transport/client-listener.js';
import type { ProtocolErrorCode } from '../../src/protocol/client-frame.js';

const RING_BYTES = 1 << 20;
const KiB = 1024;
const MiB = 1024 * KiB;

class FakeConn implements ClientConnection {
  readonly transport = 'tcp' as const;
  readonly remote = '127.0.0.1:1';
  paused = false;
  /** Bytes sent and not yet "written" by the socket. */
  pendingBytes = 0;
  constructor(readonly id: number) {}
  send(bytes: Uint8Array): void {
    this.pendingBytes += bytes.length;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  closeWithError(_code: ProtocolErrorCode, _message: string): void {}
  close(): void {}
}

function router(t: TestContext, budget: number): { r: ClientRouter; shard: SpscRing } {
  const inSab = SpscRing.allocate(RING_BYTES);
  const outRing = new SpscRing(SpscRing.allocate(RING_BYTES));
  const input = new InRingWriter(new SpscRing(inSab));
  const shard = new SpscRing(inSab);
  const slot: ShardSlot = { index: 0, input, outRing, counters: new Float64Array(64), state: 'ready', done: Promise.resolve() };
  t.after(() => {
    input.ring.close();
    shard.close();
    outRing.close();
  });
  return { r: new ClientRouter([slot], { inflightPerConnMax: 4096, inflightBytesPerConnMax: budget, pendingBytesHigh: 256 * KiB, responseBytesMax: RING_BYTES / 4 - RECORD_HEADER_BYTES }), shard };
}

/** Reads and releases what the router wrote to the in ring; returns how many records. */
function drain(shard: SpscRing): number {
  let n = 0;
  for (let at = shard.read(); at >= 0; at = shard.read()) {
    shard.release();
    n++;
  }
  shard.notifyRoom();
  return n;
}

const get = (id: number): Uint8Array => encodeFrame(FrameKind.Command, FrameFlag.Read, id, 1, new Uint8Array(16));
const result = (id: number, bytes: number): Uint8Array => encodeFrame(FrameKind.Result, 0, id, 1, new Uint8Array(bytes));

/** Offers frames until the router pauses the connection; returns how many it took. */
function offerUntilPaused(r: ClientRouter, c: FakeConn, from: number, max: number): number {
  let n = 0;
  while (!c.paused && n < max) {
    const f = get(from + n);
    r.onFrame(c, f, 0, f.length);
    n++;
  }
  return n;
}

test('a new connection is counted at the largest response until answers show their size', (t) => {
  const budget = 4 * MiB;
  const { r, shard } = router(t, budget);
  const c = new FakeConn(1);
  r.onOpen(c);
  const guess = RING_BYTES / 4 - RECORD_HEADER_BYTES;
  const first = offerUntilPaused(r, c, 1, 10_000);
  const perRequest = guess + get(0).length;
  assert.equal(first, Math.floor(budget / perRequest) + 1, 'paused once the worst-case guesses pass the budget');
  assert.equal(drain(shard), first);
  // Small answers come back: the guess falls, and the connection is read again.
  const batch = new Uint8Array(first * result(0, 8).length);
  for (let i = 0; i < first; i++) batch.set(result(i + 1, 8), i * result(0, 8).length);
  r.deliver(1, batch, 0, batch.length);
  assert.equal(c.paused, false);
  const u = r.usage(1)!;
  assert.equal(u.inflight, 0);
  assert.equal(u.requestBytes, 0, 'request bytes settle to zero when nothing is in flight');
  assert.ok(u.responseGuess < guess, `guess fell (${u.responseGuess})`);
});

test('a reader that never reads is paused near the budget, not at inflightPerConnMax; it resumes once its output drains', (t) => {
  const budget = 4 * MiB;
  const { r, shard } = router(t, budget);
  const c = new FakeConn(2);
  r.onOpen(c);
  const valueBytes = 250 * KiB;
  let id = 1;
  let admitted = 0;
  // Rounds of: read until paused, then answer everything in flight with 250 KB results.
  for (let round = 0; round < 20 && !c.paused; round++) {
    const n = offerUntilPaused(r, c, id, 10_000);
    admitted += n;
    drain(shard);
    const u = r.usage(2)!;
    for (let i = 0; i < u.inflight; i++) {
      const f = result(id + i, valueBytes);
      r.deliver(2, f, 0, f.length);
    }
    id += n;
  }
  assert.equal(c.paused, true, 'paused: the output it does not read stays under way');
  assert.equal(r.usage(2)!.inflight, 0);
  // Everything admitted was answered and sits unsent: bounded by the budget plus one answer round.
  assert.ok(c.pendingBytes <= budget + valueBytes * 2, `unsent ${c.pendingBytes} bytes against a budget of ${budget}`);
  assert.ok(admitted < 4096, `admitted ${admitted} requests, not inflightPerConnMax`);
  assert.ok(admitted * valueBytes >= budget / 2, 'the budget is used, not starved');
  // Stays paused while the output is above the low mark; the drain below it resumes reading.
  c.pendingBytes = budget - budget / 8;
  r.onDrain(c);
  assert.equal(c.paused, true, 'above the low mark (a quarter under the budget)');
  c.pendingBytes = 100 * KiB;
  r.onDrain(c);
  assert.equal(c.paused, false);
});

test('large requests count by their own bytes: pipelined puts of large values pause the connection', (t) => {
  const budget = 4 * MiB;
  const { r, shard } = router(t, budget);
  const c = new FakeConn(3);
  r.onOpen(c);
  // Small answers first, so the response guess no longer matters.
  const f0 = get(1);
  r.onFrame(c, f0, 0, f0.length);
  drain(shard);
  for (let k = 0; k < 20; k++) {
    const a = result(1, 8);
    r.deliver(3, a, 0, a.length);
    const f = get(1);
    r.onFrame(c, f, 0, f.length);
    drain(shard);
  }
  const put = encodeFrame(FrameKind.Command, 0, 99, 1, new Uint8Array(128 * KiB));
  let n = 0;
  while (!c.paused && n < 1000) {
    r.onFrame(c, put, 0, put.length);
    drain(shard);
    n++;
  }
  assert.equal(c.paused, true);
  assert.ok(n * put.length <= budget + put.length && n * put.length > budget / 2, `${n} puts of ${put.length} bytes in flight`);
});
