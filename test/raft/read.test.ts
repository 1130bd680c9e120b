// Linearizable reads: ReadIndex rounds batched on heartbeats, and leader leases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, msg, ledByOne } from './harness.js';
import { ChangeType } from '../../src/raft/conf-change.js';
import { MessageType, Role } from '../../src/raft/types.js';

const heartbeatsFrom = (c: Cluster, id: number): number => c.sentWhere(MessageType.Heartbeat, id).length;

test('ReadIndex: every read between two Readys shares one heartbeat round', () => {
  const c = ledByOne();
  const hb = heartbeatsFrom(c, 1);
  for (let i = 1; i <= 100; i++) assert.deepEqual(c.get(1).readIndex(i), { ok: true });
  c.settle();
  assert.equal(heartbeatsFrom(c, 1) - hb, 2, 'one heartbeat per follower for all 100 reads');
  const reads = c.member(1).reads;
  assert.equal(reads.length, 100);
  assert.deepEqual(reads.map((r) => r.requestId), Array.from({ length: 100 }, (_, i) => i + 1));
  assert.ok(reads.every((r) => r.index === 2));
});

test('ReadIndex: a ReadState carries the commit index at the time of the request', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  assert.ok(c.propose(1, 'a').ok);
  assert.equal(c.get(1).commit, 3);
  assert.ok(c.get(1).readIndex(2).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, [], 'no round acknowledged yet');
  c.release();
  assert.deepEqual(c.member(1).reads, [{ requestId: 1, index: 2, lease: false }, { requestId: 2, index: 3, lease: false }]);
});

test('ReadIndex: a read is not served until a quorum acknowledges its round', () => {
  const c = ledByOne();
  c.cutLink(2, 1);
  c.cutLink(3, 1);
  assert.ok(c.get(1).readIndex(7).ok);
  c.settle();
  c.tick(1, 3);
  assert.deepEqual(c.member(1).reads, []);
  // One follower's answer makes a quorum of three with the leader.
  c.heal();
  c.cutLink(3, 1);
  c.tick(1);
  assert.deepEqual(c.member(1).reads, [{ requestId: 7, index: 2, lease: false }]);
});

test('ReadIndex: an acknowledgement of an older round does not confirm a newer read', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  c.tick(1); // every member answered an append since the last tick: no heartbeat (tickHeartbeat)
  assert.equal(c.deliveredWhere(MessageType.Heartbeat, 1).length, 0);
  c.tick(1); // round r goes out; its answers are held
  assert.ok(c.get(1).readIndex(5).ok); // needs round r + 1
  c.settle();
  c.hold = (m) => m.type === MessageType.HeartbeatResp && m.context > 1;
  const older = c.held.splice(0);
  assert.deepEqual(older.map((m) => m.context), [1, 1, 2, 2]);
  for (const m of older) c.queue.push(m);
  c.settle();
  assert.equal(c.deliveredWhere(MessageType.HeartbeatResp, undefined, 1).filter((m) => m.context === 1).length, 2);
  assert.deepEqual(c.member(1).reads, [], 'round 1 was sent before the read arrived');
  c.release();
  assert.deepEqual(c.member(1).reads, [{ requestId: 5, index: 2, lease: false }]);
});

test('ReadIndex: a leader that is deposed aborts its pending reads', () => {
  const c = ledByOne();
  c.isolate(1);
  assert.ok(c.get(1).readIndex(7).ok);
  assert.ok(c.get(1).readIndex(8).ok);
  c.settle();
  // 2 and 3 elect a leader for term 3; 1 learns of it when it can hear again.
  let l = 0;
  for (let i = 0; i < 100 && l === 0; i++) {
    c.tick(2);
    c.tick(3);
    l = [2, 3].find((id) => c.get(id).role === Role.Leader) ?? 0;
  }
  assert.notEqual(l, 0);
  c.heal();
  c.tick(l);
  assert.equal(c.get(1).role, Role.Follower);
  assert.deepEqual(c.member(1).readsAborted, [7, 8]);
  assert.deepEqual(c.member(1).reads, []);
});

test('ReadIndex: reads on a new leader wait until its no-op commits (and are aborted if it is deposed first)', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  c.hold = (m) => m.type === MessageType.App && m.from === 1;
  assert.ok(c.elect(1));
  assert.equal(c.get(1).commit, 1, 'the no-op has not committed');
  assert.deepEqual(c.get(1).readIndex(7), { ok: true });
  c.tickAll(3);
  assert.deepEqual(c.member(1).reads, [], 'heartbeats alone do not serve it');
  c.release();
  assert.equal(c.get(1).commit, 2);
  assert.deepEqual(c.member(1).reads, [{ requestId: 7, index: 2, lease: false }]);

  const d = new Cluster([1, 2, 3]);
  d.settle();
  d.hold = (m) => m.type === MessageType.App && m.from === 1;
  assert.ok(d.elect(1));
  assert.ok(d.get(1).readIndex(9).ok);
  d.inject(msg(MessageType.AppResp, 2, 1, 5)); // 2 saw a newer term
  assert.equal(d.get(1).role, Role.Follower);
  assert.deepEqual(d.member(1).readsAborted, [9]);
});

test('ReadIndex: a follower answers NOT_LEADER with the leader\'s id', () => {
  const c = ledByOne();
  assert.deepEqual(c.get(2).readIndex(1), { ok: false, code: 'NOT_LEADER', leader: 1 });
});

test('ReadIndex: a single-member group serves reads at once', () => {
  const c = new Cluster([1]);
  c.settle();
  c.tick(1, 20);
  assert.equal(c.get(1).role, Role.Leader);
  assert.ok(c.get(1).readIndex(3).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, [{ requestId: 3, index: 2, lease: false }]);
});

test('ReadIndex: pending reads are bounded; beyond the bound a leader answers OVERLOADED', () => {
  const c = ledByOne();
  c.cutLink(2, 1);
  c.cutLink(3, 1);
  let accepted = 0;
  while (c.get(1).readIndex(accepted + 1).ok) {
    accepted++;
    if (accepted > 1 << 20) break;
  }
  assert.ok(accepted >= 1024 && accepted <= 1 << 20, `accepted ${accepted} before refusing`);
  assert.deepEqual(c.get(1).readIndex(0), { ok: false, code: 'OVERLOADED', leader: 1 });
  c.heal();
  c.tick(1);
  assert.equal(c.member(1).reads.length, accepted);
  assert.ok(c.get(1).readIndex(0).ok, 'room again once they are served');
});

test('lease reads are off by default: a read right after an acknowledged heartbeat still needs a round', () => {
  const c = ledByOne();
  c.tickAll(1);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  const hb = heartbeatsFrom(c, 1);
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.equal(heartbeatsFrom(c, 1) - hb, 2);
  assert.deepEqual(c.member(1).reads, []);
  c.release();
  assert.deepEqual(c.member(1).reads, [{ requestId: 1, index: 2, lease: false }]);
});

test('lease reads: right after a quorum-acknowledged heartbeat a read is served without a round', () => {
  const c = ledByOne({ leaseRead: true });
  c.tickAll(1);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  const hb = heartbeatsFrom(c, 1);
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.equal(heartbeatsFrom(c, 1) - hb, 0, 'no heartbeat was needed');
  assert.deepEqual(c.member(1).reads, [{ requestId: 1, index: 2, lease: true }]);
});

test('lease reads: a new leader has no lease until a round of its own is acknowledged', () => {
  const c = ledByOne({ leaseRead: true });
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, []);
});

test('lease reads need check-quorum: with it off, reads take a round', () => {
  const c = ledByOne({ leaseRead: true, checkQuorum: false });
  c.tickAll(1);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, []);
});

test('lease reads: the lease ends ticksElection - ticksLeaseMargin ticks after the last acknowledged round was sent', () => {
  const c = ledByOne({ leaseRead: true });
  c.tickAll(1); // round sent at tick T and acknowledged
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  c.tick(1, 7); // T + 7 < T + 10 - 2
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, [{ requestId: 1, index: 2, lease: true }]);
  c.tick(1); // T + 8: the lease is over
  assert.equal(c.get(1).role, Role.Leader);
  assert.ok(c.get(1).readIndex(2).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1]);
});

test('lease reads: no lease once a leader transfer begins', () => {
  const c = ledByOne({ leaseRead: true });
  c.tickAll(1);
  c.isolate(3); // the transfer cannot complete
  assert.ok(c.get(1).transferLeader(3).ok);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.equal(c.get(1).role, Role.Leader);
  assert.deepEqual(c.member(1).reads, []);
});

test('lease reads: a configuration change ends the lease', () => {
  const c = ledByOne({ leaseRead: true });
  c.add(4, null);
  c.tickAll(1);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  c.settle();
  assert.deepEqual(c.get(1).confState().learners, [4]);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, []);
});

test('lease reads stay linearizable when a follower restarts during the lease', () => {
  const c = ledByOne({ leaseRead: true });
  assert.ok(c.propose(1, 'a').ok);
  c.tickAll(1); // 1 holds a lease acknowledged by 2 and 3
  // 3 can no longer hear 1 (nor 1 hear 3); 2 keeps acknowledging 1's rounds.
  c.cutLink(1, 3);
  c.cutLink(3, 1);
  c.tickAll(3);
  assert.equal(c.get(1).role, Role.Leader);
  // 2 crashes and comes back at once: it forgot that it heard from 1 a tick ago.
  c.restart(2);
  c.settle();
  // 3 campaigns. If 2 helps it win within 1's lease, the new leader commits b...
  let bIndex = Infinity;
  if (c.elect(3)) {
    const r = c.propose(3, 'b');
    if (r.ok && c.get(3).commit >= r.index) bIndex = r.index;
  }
  // ...and a read that starts after b committed must see it.
  assert.ok(c.get(1).readIndex(99).ok || c.get(1).role !== Role.Leader);
  c.settle();
  for (const r of c.member(1).reads) {
    assert.ok(r.index >= bIndex || bIndex === Infinity,
      `stale read: old leader served read ${r.requestId} at index ${r.index}, but b was committed at ${bIndex} by leader 3 (term ${c.get(3).term}) before the read began`);
  }
});

test('lease reads on the host clock: the lease ends leaseMs after the round was sent, even while ticks say it holds', () => {
  let now = 1000;
  const c = ledByOne({ leaseRead: true, leaseMs: 50, nowMs: () => now });
  c.tickAll(1); // round sent at host time 1000 and acknowledged
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  now = 1049; // still inside: served by the lease
  assert.ok(c.get(1).readIndex(1).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads, [{ requestId: 1, index: 2, lease: true }]);
  assert.equal(c.get(1).leaseUntilMs(), 1050);
  now = 1050; // no tick has passed (a late shard), but the host's clock says the lease is over
  assert.equal(c.get(1).leaseUntilMs(), -Infinity);
  assert.ok(c.get(1).readIndex(2).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1], 'the second read waits for a round');
  c.release();
  assert.deepEqual(c.member(1).reads.map((r) => [r.requestId, r.lease]), [[1, true], [2, false]]);
});

test('lease reads: a recovered member keeps out of elections for its first election timeout, a replica made just now does not', () => {
  // Recovered (startedFresh absent): every vote is refused until ticksElection ticks have passed.
  const recovered = new Cluster([1, 2, 3], { leaseRead: true });
  recovered.settle();
  assert.equal(recovered.get(2).inStartQuiet, true);
  assert.equal(recovered.elect(1), false, 'members that may have been in a lease refuse');
  recovered.filter = () => false;
  recovered.tickAll(10);
  recovered.filter = () => true;
  assert.equal(recovered.get(2).inStartQuiet, false);
  assert.equal(recovered.elect(1), true, 'after the first election timeout they vote');
  // Made just now by the host: nobody was in a lease, so the first campaign wins at once.
  const fresh = new Cluster([1, 2, 3], { leaseRead: true, startedFresh: true });
  fresh.settle();
  assert.equal(fresh.get(2).inStartQuiet, false);
  assert.equal(fresh.elect(1), true);
  // Without lease reads there is no such rule.
  const index = new Cluster([1, 2, 3], {});
  index.settle();
  assert.equal(index.get(2).inStartQuiet, false);
  assert.equal(index.elect(1), true);
});

test('lease reads: without reads for an election timeout the leader stops heartbeating while appends flow both ways; the next read takes a round and starts the lease again', () => {
  const c = ledByOne({ leaseRead: true });
  // Writes every tick: appends and their answers flow both ways.
  let hb: number[] = [];
  for (let i = 0; i < 25; i++) {
    assert.ok(c.propose(1, `w${i}`).ok);
    c.tickAll(1);
    hb.push(heartbeatsFrom(c, 1));
  }
  // For the first election timeout after the election the lease is kept fresh; then not.
  assert.ok(hb[2]! > hb[0]!, 'heartbeats while a read may come soon after the election');
  assert.equal(hb[24], hb[11], 'no heartbeats once no read came for an election timeout');
  // The lease ran out meanwhile (its last round is more than an election timeout old): the
  // next read waits for a round...
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(1).ok);
  c.tickAll(1);
  assert.deepEqual(c.member(1).reads, [], 'no lease: the read waits for its round');
  c.release();
  assert.deepEqual(c.member(1).reads.map((r) => [r.requestId, r.lease]), [[1, false]]);
  // ...whose acknowledgement is a lease again.
  assert.ok(c.get(1).readIndex(2).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads.map((r) => [r.requestId, r.lease]), [[1, false], [2, true]]);
  // And reads coming keep the rounds going.
  hb = [];
  for (let i = 0; i < 4; i++) {
    assert.ok(c.get(1).readIndex(10 + i).ok);
    assert.ok(c.propose(1, `x${i}`).ok);
    c.tickAll(1);
    hb.push(heartbeatsFrom(c, 1));
  }
  assert.ok(hb[3]! > hb[0]!, 'heartbeats while reads come');
});
