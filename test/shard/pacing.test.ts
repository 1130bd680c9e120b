// Proposal pacing (ClientRequests.proposeStaged): while a group's last entry is not committed,
// the writes that arrive meanwhile wait staged and go as one entry once it commits, where they
// used to go as one entry per turn. Real shards and logs (the shard harness).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardCounter } from '../../src/shard/counters.js';
import { resultOf, ShardCluster, type Response } from './harness.js';

test('writes that arrive while the last entry is uncommitted are proposed together once it commits', async () => {
  // While the followers' answers are held back the leader hears from no quorum: an election
  // timeout of 1 s (not the harness's 100 ms) keeps it leading while a loaded machine sends
  // the writes one turn apart (check-quorum would depose it, and the writes end OUTCOME_UNKNOWN).
  const c = new ShardCluster([1, 2, 3], { ticksElection: 100 });
  try {
    for (const id of c.ids) await c.start(id);
    const g = 1;
    const leader = await c.leaderOf(g);
    assert.deepEqual(resultOf(await c.put(leader, g, 'warm', 'up')), { op: 'put' });
    const lastOf = async (): Promise<number> => (await c.status(leader)).find((s) => s.group === g)!.lastIndex;
    const before = await lastOf();
    // The followers' answers are held back: the first write's entry cannot commit.
    c.drop = (from, to) => to === leader && from !== leader;
    const writes: Promise<Response>[] = [];
    const requests = (): number => c.counter(leader, ShardCounter.Requests);
    const send = async (i: number): Promise<void> => {
      const n = requests();
      writes.push(c.put(leader, g, `k${i}`, String(i)));
      // Each write read in a turn of its own before the next is sent.
      await c.until(() => requests() > n, 10_000, `write ${i} read by the shard`);
      await c.moreTurns([leader], 1);
    };
    await send(0);
    const first = await lastOf();
    assert.equal(first, before + 1, 'the first write is proposed at once');
    for (let i = 1; i <= 5; i++) await send(i);
    c.drop = () => false;
    for (const r of await Promise.all(writes)) assert.deepEqual(resultOf(r), { op: 'put' });
    // The five later writes went as one entry (two if the pacing bound, 50 ms, ran out while
    // they were being sent on a slow machine); one per turn without pacing: five.
    const entries = (await lastOf()) - first;
    assert.ok(entries >= 1 && entries <= 2, `the five writes read while the first was uncommitted took ${entries} entries`);
    assert.equal(c.counter(leader, ShardCounter.Proposals) >= 7, true);
    await c.checkOneResponseEach();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
