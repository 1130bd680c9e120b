// Membership changes through a shard's admin path (src/shard/member-changes.ts): an empty
// replica joins (joinGroup), is added as a learner, catches up, is promoted; a member and the
// leader itself are removed; each answered once it has taken effect, or with a clear code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdminReply } from '../../src/shard/task.js';
import { errorOf, resultOf, ShardCluster } from './harness.js';

function codeOf(r: AdminReply): string {
  return r.ok ? 'OK' : r.code;
}

test('a node joins a group as a learner, is promoted, and members (the leader too) are removed, each once in effect', async () => {
  const c = new ShardCluster([1, 2, 3, 4], { bootstrapGroups: [] });
  try {
    for (const id of c.ids) await c.start(id);
    const G = 5;
    for (const id of [1, 2, 3]) assert.deepEqual(await c.admin(id, { op: 'addGroup', group: G, members: [1, 2, 3] }), { ok: true });
    const leader = await c.leaderOf(G);
    for (let i = 0; i < 20; i++) assert.deepEqual(resultOf(await c.put(leader, G, `k${i}`, `v${i}`)), { op: 'put' });
    const follower = [1, 2, 3].find((id) => id !== leader)!;

    // Refusals before anything changes.
    assert.equal(codeOf(await c.admin(follower, { op: 'addMember', group: G, node: 4, learner: true })), 'NOT_LEADER');
    assert.equal(codeOf(await c.admin(4, { op: 'addMember', group: G, node: 4, learner: true })), 'NO_GROUP');
    assert.equal(codeOf(await c.admin(leader, { op: 'promote', group: G, node: 4 })), 'NOT_MEMBER');
    assert.equal(codeOf(await c.admin(leader, { op: 'removeMember', group: G, node: 9 })), 'NOT_MEMBER');
    assert.equal(codeOf(await c.admin(leader, { op: 'addMember', group: G, node: follower, learner: true })), 'ALREADY_MEMBER');
    assert.equal(codeOf(await c.admin(leader, { op: 'addMember', group: G, node: 0, learner: true } as never)), 'BAD_REQUEST');
    assert.equal(codeOf(await c.admin(leader, { op: 'addMember', group: G, node: 4, learner: 'yes' } as never)), 'BAD_REQUEST');

    // Node 4: an empty replica (idempotent), then a learner; it catches up and serves stale reads.
    assert.deepEqual(await c.admin(4, { op: 'joinGroup', group: G }), { ok: true });
    assert.deepEqual(await c.admin(4, { op: 'joinGroup', group: G }), { ok: true });
    const empty = (await c.status(4)).find((s) => s.group === G)!;
    assert.deepEqual([empty.voters, empty.learners, empty.lastIndex], [[], [], 0]);
    const added = await c.admin(leader, { op: 'addMember', group: G, node: 4, learner: true });
    assert.deepEqual(added, { ok: true, members: { voters: [1, 2, 3], learners: [4] } });
    assert.deepEqual(await c.admin(leader, { op: 'addMember', group: G, node: 4, learner: true }), added, 'again: already in effect');
    await c.until(async () => {
      const r = await c.get(4, G, 'k19', 'stale');
      return JSON.stringify(resultOf(r)) === JSON.stringify({ op: 'get', value: 'v19' });
    }, 10_000, 'the learner to catch up');
    assert.equal(errorOf(await c.get(4, G, 'k19', 'linearizable')).code, 'NOT_LEADER');

    // Promotion; a second change asked meanwhile is refused while the first is under way.
    const [promoted, meanwhile] = await Promise.all([
      c.admin(leader, { op: 'promote', group: G, node: 4 }),
      c.admin(leader, { op: 'removeMember', group: G, node: follower }),
    ]);
    assert.deepEqual(promoted, { ok: true, members: { voters: [1, 2, 3, 4], learners: [] } });
    assert.equal(codeOf(meanwhile), 'CHANGE_IN_PROGRESS');
    assert.deepEqual(await c.admin(leader, { op: 'promote', group: G, node: 4 }), promoted, 'again: already a voter');
    for (const id of c.ids) {
      await c.until(async () => (await c.status(id)).find((s) => s.group === G)?.voters.length === 4, 5000, `node ${id} to apply the promotion`);
    }

    // The leader removes itself: answered once in effect, then another voter leads.
    const left = await c.admin(leader, { op: 'removeMember', group: G, node: leader });
    assert.ok(left.ok);
    assert.deepEqual(left.members, { voters: [1, 2, 3, 4].filter((id) => id !== leader), learners: [] });
    const rest = c.ids.filter((id) => id !== leader);
    let next = 0;
    await c.until(async () => {
      for (const id of rest) if ((await c.status(id)).find((s) => s.group === G)?.role === 'leader') next = id;
      return next !== 0;
    }, 10_000, 'a new leader among the remaining voters');
    assert.deepEqual(resultOf(await c.put(next, G, 'after', 'removal')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(next, G, 'k0', 'linearizable')), { op: 'get', value: 'v0' });
    assert.equal(codeOf(await c.admin(next, { op: 'removeMember', group: G, node: leader })), 'NOT_MEMBER');

    // After a restart of every node the joined replica is recovered with its configuration.
    await c.stopAll();
    for (const id of c.ids) await c.start(id);
    await c.until(async () => {
      for (const id of rest) {
        const s = (await c.status(id)).find((x) => x.group === G);
        if (s?.role === 'leader') next = id;
      }
      return next !== 0 && (await c.status(next)).find((x) => x.group === G)?.role === 'leader';
    }, 10_000, 'a leader after the restart');
    const s4 = (await c.status(4)).find((s) => s.group === G)!;
    assert.deepEqual(s4.voters, rest);
    await c.putAnywhere(G, 'after', 'restart');
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('a membership change that cannot take effect times out, and a removed group answers its waiting change', async () => {
  const c = new ShardCluster([1, 2, 3], { bootstrapGroups: [], requestTimeoutMs: 600 });
  try {
    for (const id of c.ids) await c.start(id);
    const [G, H] = [8, 9];
    for (const g of [G, H]) for (const id of c.ids) assert.deepEqual(await c.admin(id, { op: 'addGroup', group: g, members: [1, 2, 3] }), { ok: true });
    const leader = await c.leaderOf(G);
    const leaderH = await c.leaderOf(H);
    // One follower stopped: the leader keeps its quorum, but a fourth voter that does not run
    // (node 7) makes the new configuration need three of four, so the change cannot commit (and
    // check-quorum in the joint configuration soon deposes the leader: the change still waits).
    const down = c.ids.find((id) => id !== leader && id !== leaderH)!;
    await c.stop(down);
    const timedOut = await c.admin(leader, { op: 'addMember', group: G, node: 7, learner: false });
    assert.equal(codeOf(timedOut), 'TIMEOUT', JSON.stringify(timedOut));
    // A change waiting on a group that is removed gets NO_GROUP.
    const waiting = c.admin(leaderH, { op: 'addMember', group: H, node: 7, learner: false });
    assert.deepEqual(await c.admin(leaderH, { op: 'removeGroup', group: H }), { ok: true });
    assert.equal(codeOf(await waiting), 'NO_GROUP');
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
