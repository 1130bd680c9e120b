// Leadership transfer: the leader brings the target up to date, then tells it to campaign at
// once (TimeoutNow), and refuses proposals meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, text, ledByOne } from './harness.js';
import { ChangeType } from '../../src/raft/conf-change.js';
import { MessageType, Role } from '../../src/raft/types.js';

test('transfer to an up-to-date follower: it leads the next term at once, without an election timeout', () => {
  const c = ledByOne();
  assert.ok(c.propose(1, 'a').ok);
  assert.deepEqual(c.get(1).transferLeader(2), { ok: true });
  c.settle(); // no tick at all
  assert.equal(c.get(2).role, Role.Leader);
  assert.equal(c.get(2).term, 3);
  assert.equal(c.deliveredWhere(MessageType.TimeoutNow, 1, 2).length, 1);
  assert.equal(c.deliveredWhere(MessageType.PreVote, 2).length, 0, 'a transfer skips the pre-vote');
  for (const id of [1, 3]) {
    assert.equal(c.get(id).role, Role.Follower);
    assert.equal(c.get(id).leader, 2);
    assert.equal(c.get(id).term, 3);
  }
  assert.ok(c.propose(2, 'b').ok);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a', 'b']);
});

test('transfer to a lagging follower: the leader catches it up first, then sends TimeoutNow', () => {
  const c = ledByOne();
  c.cutLink(1, 3);
  for (let i = 0; i < 3; i++) assert.ok(c.propose(1, `e${i}`).ok);
  c.heal();
  assert.equal(c.get(3).lastIndex(), 2);
  let targetLastAtTimeoutNow = -1;
  c.filter = (m) => {
    if (m.type === MessageType.TimeoutNow) targetLastAtTimeoutNow = c.get(3).lastIndex();
    return true;
  };
  const before = c.delivered.length;
  assert.ok(c.get(1).transferLeader(3).ok);
  c.settle();
  assert.equal(targetLastAtTimeoutNow, 5, 'TimeoutNow went out only once 3 had every entry');
  const toThree = c.delivered.slice(before).filter((m) => m.to === 3).map((m) => MessageType[m.type]);
  assert.ok(toThree.indexOf('App') < toThree.indexOf('TimeoutNow'), toThree.join(','));
  assert.equal(c.get(3).role, Role.Leader);
  assert.equal(c.get(3).term, 3);
  c.tickAll(1);
  assert.deepEqual(c.appliedData(3), ['e0', 'e1', 'e2']);
});

test('proposals during a transfer are refused with LEADER_TRANSFERRING', () => {
  const c = ledByOne();
  c.isolate(3);
  assert.ok(c.get(1).transferLeader(3).ok);
  assert.deepEqual(c.get(1).propose(text('a')), { ok: false, code: 'LEADER_TRANSFERRING', leader: 3 });
  const cc = c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] });
  assert.equal(cc.ok, false);
  assert.equal(cc.ok ? '' : cc.code, 'LEADER_TRANSFERRING');
  assert.equal(c.get(1).lastIndex(), 2);
});

test('a transfer to an unreachable target is abandoned after ticksElection ticks', () => {
  const c = ledByOne();
  c.isolate(3);
  assert.ok(c.get(1).transferLeader(3).ok);
  c.tick(1, 9);
  assert.equal(c.get(1).transferee, 3);
  assert.equal(c.get(1).propose(text('a')).ok, false);
  c.tick(1);
  assert.equal(c.get(1).transferee, 0);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
  assert.ok(c.propose(1, 'a').ok);
  assert.deepEqual(c.appliedData(2), ['a']);
});

test('a transfer to a learner or a non-member is refused with NOT_VOTER', () => {
  const c = ledByOne();
  c.add(4, null);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  c.settle();
  assert.deepEqual(c.get(1).confState().learners, [4]);
  assert.deepEqual(c.get(1).transferLeader(4), { ok: false, code: 'NOT_VOTER', leader: 1 });
  assert.deepEqual(c.get(1).transferLeader(9), { ok: false, code: 'NOT_VOTER', leader: 1 });
  assert.equal(c.get(1).transferee, 0);
  assert.ok(c.propose(1, 'still accepting').ok);
});

test('transfer: a follower answers NOT_LEADER, and a transfer to the leader itself changes nothing', () => {
  const c = ledByOne();
  assert.deepEqual(c.get(2).transferLeader(3), { ok: false, code: 'NOT_LEADER', leader: 1 });
  assert.deepEqual(c.get(1).transferLeader(1), { ok: true });
  c.settle();
  assert.equal(c.get(1).transferee, 0);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
});

test('transfer: the old leader aborts its pending reads when it hands over', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(4).ok);
  c.settle();
  assert.ok(c.get(1).transferLeader(2).ok);
  c.settle();
  assert.equal(c.get(2).role, Role.Leader);
  assert.deepEqual(c.member(1).readsAborted, [4]);
});
