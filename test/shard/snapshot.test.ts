// Snapshots across real shards: leaders snapshot and compact every snapshotEntries applied
// commands; a follower that was down while the log moved past what the leader kept catches up
// by installing the leader's snapshot (sent in chunks), and recovers from it after a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardCounter } from '../../src/shard/counters.js';
import { resultOf, ShardCluster } from './harness.js';

const WRITES = 400;

test('a follower that missed many entries catches up by snapshot and holds the same state', async () => {
  // Small snapshots and chunks, so that the transfer takes several chunks and records.
  const c = new ShardCluster([1, 2, 3], { snapshotEntries: 50, snapshotKeepEntries: 10, snapChunkBytes: 1024 });
  try {
    for (const id of c.ids) await c.start(id);
    const g = 1;
    await c.leaderOf(g);
    await c.putAnywhere(g, 'before', 'down');
    const lagging = 3;
    await c.stop(lagging);

    for (let i = 0; i < WRITES; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, k) => c.putAnywhere(g, `key-${i + k}`, `value-${i + k}-${'x'.repeat(40)}`)));
    }
    const leader = await c.leaderOf(g);
    assert.notEqual(leader, lagging);
    assert.ok(c.counter(leader, ShardCounter.SnapshotsTaken) > 0, 'the leader snapshotted');
    // The leader images its state once 50 commands and as many bytes as its last image have
    // been applied since (every key here is new, so the state doubles between images: about
    // 50, 100, 200, 400 writes); the last one may still be on its way to disk. (The writes of
    // one turn share an entry, so log indexes run well behind the writes.)
    let ls = (await c.status(leader)).find((s) => s.group === g)!;
    await c.until(async () => {
      ls = (await c.status(leader)).find((s) => s.group === g)!;
      return ls.snapshotIndex >= ls.applied / 2;
    }, 5000, 'the leader to snapshot');

    await c.start(lagging);
    await c.until(async () => {
      const s = (await c.status(lagging)).find((x) => x.group === g)!;
      return s.applied >= ls.applied;
    }, 15_000, 'the lagging follower to catch up');
    assert.ok(c.counter(lagging, ShardCounter.SnapshotsInstalled) > 0, 'the follower installed a snapshot');

    // Same state: every key, read from the follower's own state machine.
    for (let i = 0; i < WRITES; i += 37) {
      assert.deepEqual(resultOf(await c.get(lagging, g, `key-${i}`, 'stale')), { op: 'get', value: `value-${i}-${'x'.repeat(40)}` });
    }
    assert.deepEqual(resultOf(await c.get(lagging, g, 'before', 'stale')), { op: 'get', value: 'down' });

    // The follower keeps replicating after the install, and recovers from the installed snapshot.
    await c.putAnywhere(g, 'after', 'install');
    await c.until(async () => resultOf(await c.get(lagging, g, 'after', 'stale')).op === 'get' &&
      (resultOf(await c.get(lagging, g, 'after', 'stale')) as { value: string | null }).value === 'install', 5000, 'replication after the install');
    await c.stop(lagging);
    await c.start(lagging);
    assert.deepEqual(resultOf(await c.get(lagging, g, 'key-7', 'stale')), { op: 'get', value: `value-7-${'x'.repeat(40)}` });
    assert.deepEqual(resultOf(await c.get(lagging, g, 'after', 'stale')), { op: 'get', value: 'install' });

    // A full restart of every node recovers from snapshots plus the kept log.
    await c.stopAll();
    for (const id of c.ids) await c.start(id);
    const l2 = await c.leaderOf(g);
    assert.deepEqual(resultOf(await c.get(l2, g, `key-${WRITES - 1}`, 'linearizable')), { op: 'get', value: `value-${WRITES - 1}-${'x'.repeat(40)}` });
    await c.putAnywhere(g, 'last', 'write');
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
