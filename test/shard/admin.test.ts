// Admin through a shard: node-level requests (InKind.Admin) and group-level ones (client frames
// of kind Admin): add and remove groups, transfer leadership, status, metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pack, unpack } from 'msgpackr';
import { FrameKind } from '../../src/protocol/client-frame.js';
import { ShardCounter } from '../../src/shard/counters.js';
import type { AdminReply } from '../../src/shard/task.js';
import { errorOf, resultOf, ShardCluster } from './harness.js';

test('groups are added and removed through admin, idempotently, and leadership moves on request', async () => {
  const c = new ShardCluster([1, 2, 3], { bootstrapGroups: [1] });
  try {
    for (const id of c.ids) await c.start(id);
    const G = 10;
    assert.equal(errorOf(await c.put(1, G, 'k', 'v')).code, 'NO_GROUP');

    // addGroup on every member, then again (idempotent); different members are refused.
    for (const id of c.ids) assert.deepEqual(await c.admin(id, { op: 'addGroup', group: G, members: [1, 2, 3] }), { ok: true });
    assert.deepEqual(await c.admin(2, { op: 'addGroup', group: G, members: [3, 2, 1] }), { ok: true });
    const differs = await c.admin(2, { op: 'addGroup', group: G, members: [1, 2] });
    assert.equal(differs.ok, false);
    assert.equal((differs as { code: string }).code, 'BAD_REQUEST');
    const notMine = await c.admin(2, { op: 'addGroup', group: 11, members: [1, 3] });
    assert.equal((notMine as { code: string }).code, 'BAD_REQUEST', 'a group this node is not a member of');
    const malformed = await c.admin(2, { op: 'addGroup', group: 0, members: [1] } as never);
    assert.equal((malformed as { code: string }).code, 'BAD_REQUEST');
    assert.equal(c.counter(1, ShardCounter.Groups), 2);

    const leader = await c.leaderOf(G);
    assert.deepEqual(resultOf(await c.put(leader, G, 'k', 'v')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(leader, G, 'k', 'linearizable')), { op: 'get', value: 'v' });

    // Group-level admin in a client frame: status of the frame's group.
    const st = await c.request(leader, FrameKind.Admin, 0, G, pack({ op: 'status' }) as Uint8Array);
    assert.equal(st.kind, FrameKind.AdminResult);
    const stReply = unpack(st.body) as AdminReply;
    assert.ok(stReply.ok && stReply.groups !== undefined && stReply.groups.length === 1);
    assert.equal(stReply.groups[0]!.group, G);
    assert.equal(stReply.groups[0]!.role, 'leader');
    assert.deepEqual(stReply.groups[0]!.voters, [1, 2, 3]);
    // A body that is not msgpack, and one naming another group: BAD_REQUEST.
    assert.equal(errorOf(await c.request(leader, FrameKind.Admin, 0, G, new Uint8Array([0xc1]))).code, 'BAD_REQUEST');
    assert.equal(errorOf(await c.request(leader, FrameKind.Admin, 0, G, pack({ op: 'status', group: 1 }) as Uint8Array)).code, 'BAD_REQUEST');

    // transferLeader through a client frame; the group's leader moves to the target.
    const target = c.ids.find((id) => id !== leader)!;
    const tr = await c.request(leader, FrameKind.Admin, 0, G, pack({ op: 'transferLeader', to: target }) as Uint8Array);
    assert.deepEqual(unpack(tr.body), { ok: true });
    await c.until(async () => (await c.status(target)).find((s) => s.group === G)?.role === 'leader', 5000, `node ${target} to lead group ${G}`);
    assert.deepEqual(resultOf(await c.put(target, G, 'k', 'moved')), { op: 'put' });
    // transferLeader on a follower: NOT_LEADER.
    const onFollower = await c.admin(leader, { op: 'transferLeader', group: G, to: leader });
    assert.equal((onFollower as { code: string }).code, 'NOT_LEADER');

    // removeGroup everywhere: waiting requests and later ones get NO_GROUP, status drops it.
    for (const id of c.ids) assert.deepEqual(await c.admin(id, { op: 'removeGroup', group: G }), { ok: true });
    const removedAgain = await c.admin(1, { op: 'removeGroup', group: G });
    assert.equal(removedAgain.ok === false ? removedAgain.code : 'OK', 'NO_GROUP', 'removing again: the node no longer hosts it');
    for (const id of c.ids) {
      assert.equal(errorOf(await c.put(id, G, 'k', 'v')).code, 'NO_GROUP');
      assert.ok(!(await c.status(id)).some((s) => s.group === G));
    }
    assert.equal(c.counter(1, ShardCounter.Groups), 1);

    // After a restart the removal holds, and the group can be created anew.
    await c.stopAll();
    for (const id of c.ids) await c.start(id);
    for (const id of c.ids) assert.ok(!(await c.status(id)).some((s) => s.group === G));
    for (const id of c.ids) assert.deepEqual(await c.admin(id, { op: 'addGroup', group: G, members: [1, 2, 3] }), { ok: true });
    const again = await c.leaderOf(G);
    assert.deepEqual(resultOf(await c.get(again, G, 'k', 'linearizable')), { op: 'get', value: null }, 'a new group starts empty');

    const metrics = await c.admin(again, { op: 'metrics' });
    assert.ok(metrics.ok && metrics.latency?.append !== undefined && metrics.latency.request !== undefined);
    const unknownOp = await c.admin(1, { op: 'nope' } as never);
    assert.equal((unknownOp as { code: string }).code, 'BAD_REQUEST');
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
