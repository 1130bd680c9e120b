// Messages from the wire that no correct peer sends reach a shard as input, not as a bug: an
// append whose entries skip an index, with a commit beyond them (issue 12, item 2: it used to
// reach RaftLog.commitTo's assertion and fail the shard), is dropped and counted, and the
// shard keeps serving. Three shards in one process (harness.ts), the test injecting the bad
// record as if node 2's link had carried it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InKind } from '../../src/ring/records.js';
import { PayloadBuilder } from '../../src/protocol/peer-wire.js';
import { ShardCounter } from '../../src/shard/counters.js';
import { EntryType, MessageType, message } from '../../src/raft/types.js';
import { resultOf, ShardCluster } from './harness.js';

test('an append whose entry index skips ahead, with a commit beyond it, is dropped and counted; the shard keeps serving', { timeout: 60_000 }, async () => {
  const c = new ShardCluster([1, 2, 3]);
  try {
    for (const id of c.ids) await c.start(id);
    const group = 1;
    const leader = await c.leaderOf(group);
    const victim = c.ids.find((id) => id !== leader)!;
    const sender = c.ids.find((id) => id !== leader && id !== victim)!;
    assert.deepEqual(resultOf(await c.put(leader, group, 'before', '1')), { op: 'put' });

    // From a member, at a far higher term, entries at 1000 and 1001 after index 2, commit 5000.
    const bad = message(MessageType.App, sender, victim, 1_000);
    bad.index = 2;
    bad.logTerm = 1;
    bad.commit = 5_000;
    bad.entries = [
      { term: 1_000, index: 1_000, type: EntryType.Normal, data: new Uint8Array([1]) },
      { term: 1_000, index: 1_001, type: EntryType.Normal, data: new Uint8Array([2]) },
    ];
    const pb = new PayloadBuilder();
    pb.appendRaft(group, bad);
    // A second one whose entry terms go backwards, and a third with entries on a Heartbeat-like Vote.
    const back = message(MessageType.App, sender, victim, 1_000);
    back.index = 2;
    back.logTerm = 1;
    back.entries = [
      { term: 5, index: 3, type: EntryType.Normal, data: new Uint8Array(0) },
      { term: 4, index: 4, type: EntryType.Normal, data: new Uint8Array(0) },
    ];
    pb.appendRaft(group, back);
    c.enqueue(c.node(victim), InKind.Peer, sender, pb.finish()!);

    await c.until(() => c.counter(victim, ShardCounter.PeerDropBadEntries) === 2, 5_000, 'both appends counted as badEntries');
    // Still serving: the group takes writes and the victim applies them.
    const now = await c.leaderOf(group);
    assert.deepEqual(resultOf(await c.put(now, group, 'after', '2')), { op: 'put' });
    await c.until(async () => {
      const r = resultOf(await c.get(victim, group, 'after', 'stale'));
      return r.op === 'get' && r.value === '2';
    }, 5_000, 'the victim to apply the put after the bad appends');
    assert.equal(c.node(victim).events.some((e) => e.type === 'failed'), false);
    await c.stopAll();
  } finally {
    c.cleanup();
  }
});
