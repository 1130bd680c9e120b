// Three shards (nodes 1, 2, 3; one shard each) in one process, real logs in temp directories
// with real fsync, the test relaying peer records between them and acting as the client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameFlag, FrameKind } from '../../src/protocol/client-frame.js';
import { ShardCounter } from '../../src/shard/counters.js';
import { errorOf, resultOf, ShardCluster } from './harness.js';

const GROUPS = [1, 2, 3, 4];

test('three shards elect leaders, serve writes and reads, refuse what they must, and recover from their logs', async () => {
  const c = new ShardCluster([1, 2, 3]);
  try {
    for (const id of c.ids) await c.start(id);

    // A leader for every group.
    const leaders = new Map<number, number>();
    for (const g of GROUPS) leaders.set(g, await c.leaderOf(g));

    // Puts through the leader get a Result.
    for (const g of GROUPS) {
      const r = resultOf(await c.put(leaders.get(g)!, g, 'k', `v${g}`));
      assert.deepEqual(r, { op: 'put' });
    }

    // A put on a follower: NOT_LEADER with a hint that names the leader.
    const g1 = 1;
    const leader = leaders.get(g1)!;
    const follower = c.ids.find((id) => id !== leader)!;
    const refused = errorOf(await c.put(follower, g1, 'k', 'x'));
    assert.equal(refused.code, 'NOT_LEADER');
    assert.equal(refused.leader?.id, leader);
    assert.equal(refused.leader?.clientPort, 7000 + leader);
    // A linearizable read on a follower is refused the same way.
    assert.equal(errorOf(await c.get(follower, g1, 'k', 'linearizable')).code, 'NOT_LEADER');

    // Linearizable get after put, on the leader.
    for (const g of GROUPS) {
      assert.deepEqual(resultOf(await c.get(leaders.get(g)!, g, 'k', 'linearizable')), { op: 'get', value: `v${g}` });
    }
    // A stale get on the follower eventually sees the put.
    await c.until(async () => {
      const r = resultOf(await c.get(follower, g1, 'k', 'stale'));
      return r.op === 'get' && r.value === 'v1';
    }, 5000, 'the follower to apply the put');

    // Many writes in flight at once, all answered, in one group and across groups.
    const puts = [];
    for (let i = 0; i < 200; i++) puts.push(c.put(leaders.get(GROUPS[i % 4]!)!, GROUPS[i % 4]!, `key-${i}`, `value-${i}`));
    for (const r of await Promise.all(puts)) assert.deepEqual(resultOf(r), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(leaders.get(2)!, 2, 'key-1', 'linearizable')), { op: 'get', value: 'value-1' });

    // Unknown group: NO_GROUP.
    assert.equal(errorOf(await c.put(leader, 999, 'k', 'v')).code, 'NO_GROUP');
    // A malformed KV command is proposed and applied as an error result, on every replica alike.
    const bad = await c.request(leader, FrameKind.Command, 0, g1, new Uint8Array([0xff, 1, 2]));
    const badResult = resultOf(bad);
    assert.equal(badResult.op, 'error');
    assert.equal((badResult as { code: string }).code, 'BAD_COMMAND');
    // A malformed read, an empty command and a Stale flag without Read: BAD_REQUEST.
    assert.equal(errorOf(await c.request(leader, FrameKind.Command, FrameFlag.Read | FrameFlag.Stale, g1, new Uint8Array([0xff]))).code, 'BAD_REQUEST');
    assert.equal(errorOf(await c.request(leader, FrameKind.Command, FrameFlag.Read, g1, new Uint8Array([0xff]))).code, 'BAD_REQUEST');
    assert.equal(errorOf(await c.request(leader, FrameKind.Command, 0, g1, new Uint8Array(0))).code, 'BAD_REQUEST');
    assert.equal(errorOf(await c.request(leader, FrameKind.Command, FrameFlag.Stale, g1, new Uint8Array([2, 0, 1, 0x6b]))).code, 'BAD_REQUEST');
    // A write (put) sent with the Read flag is not a read: BAD_REQUEST, from the state machine's query.
    assert.equal(errorOf(await c.kv(leader, g1, { op: 'put', key: 'k', value: 'no' }, FrameFlag.Read | FrameFlag.Stale)).code, 'BAD_REQUEST');
    // ...and the shard keeps serving.
    assert.deepEqual(resultOf(await c.put(leader, g1, 'after-bad', 'yes')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(leader, g1, 'after-bad', 'linearizable')), { op: 'get', value: 'yes' });

    // Counters move.
    assert.ok(c.counter(leader, ShardCounter.Proposals) > 0);
    assert.ok(c.counter(leader, ShardCounter.Applied) > 0);
    assert.ok(c.counter(leader, ShardCounter.Appends) > 0);
    assert.ok(c.counter(follower, ShardCounter.ErrorsNotLeader) >= 2);
    assert.equal(c.counter(leader, ShardCounter.Groups), 4);
    const leading = c.ids.reduce((n, id) => n + c.counter(id, ShardCounter.Leaders), 0);
    assert.equal(leading, 4, 'the Leaders counters add up to one per group');

    // Metrics: latency histograms of appends and requests, each bucket count adding up to the total.
    const m = await c.admin(leader, { op: 'metrics' });
    assert.ok(m.ok && m.latency !== undefined);
    assert.ok(m.latency.append!.count > 0 && m.latency.append!.sumSeconds > 0);
    assert.ok(m.latency.request!.count > 0);
    for (const h of [m.latency.append!, m.latency.request!]) assert.equal(h.buckets.reduce((a, b) => a + b, 0), h.count);

    await c.checkOneResponseEach();

    // Stop all three and start them again from the same directories.
    await c.stopAll();
    for (const id of c.ids) await c.start(id);
    for (const g of GROUPS) leaders.set(g, await c.leaderOf(g));
    for (const g of GROUPS) {
      assert.deepEqual(resultOf(await c.get(leaders.get(g)!, g, 'k', 'linearizable')), { op: 'get', value: `v${g}` }, `group ${g} kept its data`);
    }
    assert.deepEqual(resultOf(await c.get(leaders.get(3)!, 3, 'key-198', 'linearizable')), { op: 'get', value: 'value-198' });
    // Writes continue.
    for (const g of GROUPS) assert.deepEqual(resultOf(await c.put(leaders.get(g)!, g, 'k2', 'after-restart')), { op: 'put' });
    for (const g of GROUPS) {
      assert.deepEqual(resultOf(await c.get(leaders.get(g)!, g, 'k2', 'linearizable')), { op: 'get', value: 'after-restart' });
    }
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('a leader that loses its followers answers its waiting writes, and requests pending at stop get UNAVAILABLE', async () => {
  const c = new ShardCluster([1, 2, 3], { requestTimeoutMs: 600, pendingPerGroupMax: 4 });
  try {
    for (const id of c.ids) await c.start(id);
    const leader = await c.leaderOf(1);
    // Cut the leader off: its writes cannot commit; they end as TIMEOUT or OUTCOME_UNKNOWN
    // (check-quorum deposes it), never without an answer. Past 4 waiting: OVERLOADED.
    c.drop = (from, to) => from === leader || to === leader;
    const stuck = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => c.put(leader, 1, `cut-${i}`, 'x')));
    const codes = stuck.map((r) => errorOf(r).code);
    for (const code of codes) assert.ok(['TIMEOUT', 'OUTCOME_UNKNOWN', 'NOT_LEADER', 'OVERLOADED'].includes(code), code);
    const overloaded = codes.filter((code) => code === 'OVERLOADED').length;
    assert.ok(overloaded >= 1 && overloaded <= 2, `codes ${codes.join(', ')}`);
    assert.ok(c.counter(leader, ShardCounter.ErrorsOverloaded) >= 1);
    c.drop = () => false;
    const again = await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.put(again, 1, 'healed', 'yes')), { op: 'put' });

    // Writes waiting in a group that cannot commit when the shard stops: each gets UNAVAILABLE.
    const other = c.ids.find((id) => id !== again)!;
    c.drop = (from, to) => from === again || to === again;
    const requests = c.counter(again, ShardCounter.Requests);
    const pending = [c.put(again, 1, 'p1', 'x'), c.put(again, 1, 'p2', 'x')];
    await c.until(() => c.counter(again, ShardCounter.Requests) >= requests + 2, 10_000, 'both writes read by the shard');
    await c.stop(again);
    for (const r of await Promise.all(pending)) assert.ok(['UNAVAILABLE', 'OUTCOME_UNKNOWN', 'TIMEOUT'].includes(errorOf(r).code), errorOf(r).code);
    c.drop = () => false;
    assert.ok(c.nodes.has(other));
    await c.checkOneResponseEach();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
