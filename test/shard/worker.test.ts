// The same shards in worker threads, as the node runs them: they start, elect, serve, stop on
// an InKind.Stop record, and their threads then exit by themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorOf, resultOf, ShardCluster } from './harness.js';

test('shards in worker threads serve a cluster, stop, exit cleanly and restart from their logs', async () => {
  const c = new ShardCluster([1, 2, 3], { bootstrapGroups: [1, 2] }, true);
  try {
    for (const id of c.ids) await c.start(id);
    const leader = await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.put(leader, 1, 'k', 'v')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(leader, 1, 'k', 'linearizable')), { op: 'get', value: 'v' });
    const follower = c.ids.find((id) => id !== leader)!;
    assert.equal(errorOf(await c.put(follower, 1, 'k', 'x')).code, 'NOT_LEADER');
    await c.until(async () => (resultOf(await c.get(follower, 1, 'k', 'stale')) as { value?: string | null }).value === 'v', 5000, 'the follower to apply');
    await c.stopAll();

    for (const id of c.ids) await c.start(id);
    const again = await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.get(again, 1, 'k', 'linearizable')), { op: 'get', value: 'v' });
    assert.deepEqual(resultOf(await c.put(again, 1, 'k', 'w')), { op: 'put' });
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
