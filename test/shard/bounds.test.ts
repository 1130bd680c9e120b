// The shard's named bounds on work that grows with clients (issue 12, item 5): the response bytes
// one turn gathers (Outbox.clientBytesMax: linearizable reads past it wait for the next turn,
// stale reads get OVERLOADED), and the batches waiting for the log (BATCHES_IN_FLIGHT_MAX: past
// it the shard takes no input until the oldest is durable). Real shards on this thread
// (harness.ts), a 1 MiB out ring, so clientBytesMax is 1 MiB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsCjs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { FrameKind } from '../../src/protocol/client-frame.js';
import { ShardCounter } from '../../src/shard/counters.js';
import { BATCHES_IN_FLIGHT_MAX } from '../../src/shard/readies.js';
import { errorOf, resultOf, RING_BYTES, ShardCluster, sleep, type Response } from './harness.js';

const VALUE_BYTES = 200 * 1024;
/** Responses of VALUE_BYTES that fit under clientBytesMax (one ring's worth). */
const PER_TURN = Math.ceil(RING_BYTES / VALUE_BYTES);

test('stale reads past a turn\'s response bytes get OVERLOADED; linearizable reads past it wait a turn and are all served', async () => {
  // A group per write: a group whose last entry is uncommitted keeps new writes staged
  // (pacing), so only writes to groups without one make a batch each.
  const groups = Array.from({ length: 3 * BATCHES_IN_FLIGHT_MAX }, (_, i) => i + 1);
  const c = new ShardCluster([1], { bootstrapGroups: groups, logLevel: 'silent' });
  try {
    await c.start(1);
    await c.leaderOf(1);
    const value = 'x'.repeat(VALUE_BYTES);
    assert.deepEqual(resultOf(await c.put(1, 1, 'big', value)), { op: 'put' });

    // One turn: every stale get at once (the shard runs on this thread: all are in the ring before it turns).
    const stale = await Promise.all(Array.from({ length: 30 }, () => c.get(1, 1, 'big', 'stale')));
    const served = stale.filter((r) => r.kind === FrameKind.Result);
    const refused = stale.filter((r) => r.kind === FrameKind.Error);
    for (const r of served) assert.deepEqual(resultOf(r), { op: 'get', value });
    for (const r of refused) assert.equal(errorOf(r).code, 'OVERLOADED');
    assert.ok(served.length >= 1 && served.length <= PER_TURN, `${served.length} stale gets served in one turn`);
    assert.equal(refused.length, 30 - served.length);

    // Linearizable gets: served over several turns, none lost; while they are being served, the
    // turns' outbox is full, so a stale get that arrives meanwhile is refused.
    const gets = Array.from({ length: 60 }, () => c.get(1, 1, 'big', 'linearizable'));
    await Promise.race(gets);
    const during: Response = await c.get(1, 1, 'big', 'stale');
    assert.equal(during.kind, FrameKind.Error, 'the deferred reads fill the next turn too');
    assert.equal(errorOf(during).code, 'OVERLOADED');
    for (const r of await Promise.all(gets)) assert.deepEqual(resultOf(r), { op: 'get', value });
    // And once they are served, stale reads are served again.
    assert.deepEqual(resultOf(await c.get(1, 1, 'big', 'stale')), { op: 'get', value });
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('while the log does not sync, the shard takes in no more than BATCHES_IN_FLIGHT_MAX turns of writes; all are answered once it syncs', async () => {
  // A group per write: a group whose last entry is uncommitted keeps new writes staged
  // (pacing), so only writes to groups without one make a batch each.
  const groups = Array.from({ length: 3 * BATCHES_IN_FLIGHT_MAX }, (_, i) => i + 1);
  const c = new ShardCluster([1], { bootstrapGroups: groups, logLevel: 'silent' });
  const orig = fsCjs.fdatasync;
  const held: (() => void)[] = [];
  let holding = false;
  const restore = (): void => {
    fsCjs.fdatasync = orig;
    syncBuiltinESMExports();
  };
  try {
    const n = await c.start(1);
    for (const g of groups) await c.leaderOf(g);
    assert.deepEqual(resultOf(await c.put(1, 1, 'first', '1')), { op: 'put' });
    (fsCjs as { fdatasync: unknown }).fdatasync = (fd: number, cb: (e: NodeJS.ErrnoException | null) => void): void => {
      if (!holding) {
        orig(fd, cb);
        return;
      }
      held.push(() => orig(fd, cb));
    };
    syncBuiltinESMExports();
    holding = true;
    const before = n.counters[ShardCounter.Proposals]!;
    // One write per turn, each to a group of its own: each makes a batch of its own that waits
    // for the held sync.
    const writes: Promise<Response>[] = [];
    const total = groups.length;
    for (let i = 0; i < total; i++) {
      writes.push(c.put(1, groups[i]!, `k${i}`, String(i)));
      await sleep(1);
    }
    // Every write is in the in ring (or taken from it); the shard's next turns take what they will.
    await c.until(() => n.queue.length === 0 && !n.writing, 10_000, 'every write handed to the in ring');
    await c.moreTurns([1], 3);
    const taken = n.counters[ShardCounter.Proposals]! - before;
    assert.ok(held.length > 0, 'a sync is held');
    assert.ok(taken <= BATCHES_IN_FLIGHT_MAX + 1, `the shard took ${taken} writes while the log was stalled (bound ${BATCHES_IN_FLIGHT_MAX} batches)`);
    assert.ok(taken >= 1);
    // The disk comes back: every write is answered.
    holding = false;
    for (const f of held.splice(0)) f();
    const results = await Promise.all(writes);
    for (const r of results) assert.deepEqual(resultOf(r), { op: 'put' });
    assert.equal(n.counters[ShardCounter.Proposals]! - before, total);
    restore();
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    holding = false;
    for (const f of held.splice(0)) f();
    restore();
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
