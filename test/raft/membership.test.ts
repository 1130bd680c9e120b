// Membership changes by joint consensus: learners, adding and removing voters, the joint
// configuration's double majorities, and removing the leader itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, text, ledByOne } from './harness.js';
import { ChangeType, decodeConfChange, isJoint, type Change } from '../../src/raft/conf-change.js';
import { EntryType, MessageType, Role, type ConfState } from '../../src/raft/types.js';

const conf = (voters: number[], votersOutgoing: number[] = [], learners: number[] = [], learnersNext: number[] = []): ConfState =>
  ({ voters, votersOutgoing, learners, learnersNext });

const change = (c: Cluster, leader: number, ...changes: Change[]): ReturnType<Cluster['propose']> =>
  c.get(leader).proposeConfChange({ leave: false, changes });

const addLearner = (node: number): Change => ({ type: ChangeType.AddLearner, node });
const addVoter = (node: number): Change => ({ type: ChangeType.AddVoter, node });
const removeVoter = (node: number): Change => ({ type: ChangeType.RemoveVoter, node });

test('a learner receives the log but never votes and never campaigns', () => {
  const c = ledByOne();
  assert.ok(c.propose(1, 'a').ok);
  c.add(4, null);
  assert.ok(change(c, 1, addLearner(4)).ok);
  c.settle();
  c.tickAll(2);
  for (const id of [1, 2, 3, 4]) assert.deepEqual(c.get(id).confState(), conf([1, 2, 3], [], [4]), `member ${id}`);
  assert.deepEqual(c.appliedData(4), ['a']);
  assert.ok(c.propose(1, 'b').ok);
  assert.deepEqual(c.appliedData(4), ['a', 'b']);
  // An election without 1: nobody asks 4, and 4 asks nobody.
  c.isolate(1);
  const l = c.tickUntilLeader([2, 3]);
  c.tickAll(50);
  assert.equal(c.leader(), l);
  for (const t of [MessageType.PreVote, MessageType.Vote]) {
    assert.equal(c.sentWhere(t, undefined, 4).length, 0, `${MessageType[t]} sent to the learner`);
    assert.equal(c.sentWhere(t, 4).length, 0, `${MessageType[t]} sent by the learner`);
  }
  // Alone, for as long as it likes, a learner stays a follower.
  c.isolate(4);
  c.tick(4, 100);
  assert.equal(c.get(4).role, Role.Follower);
  assert.equal(c.sentWhere(MessageType.PreVote, 4).length, 0);
});

test('a learner is promoted to voter through a joint configuration, and can then lead', () => {
  const c = ledByOne();
  c.add(4, null);
  assert.ok(change(c, 1, addLearner(4)).ok);
  c.settle();
  assert.ok(change(c, 1, addVoter(4)).ok);
  c.settle();
  const confs = c.member(1).confs;
  assert.deepEqual(confs.slice(-2), [conf([1, 2, 3, 4], [1, 2, 3]), conf([1, 2, 3, 4])]);
  for (const id of [1, 2, 3, 4]) assert.deepEqual(c.get(id).confState(), conf([1, 2, 3, 4]), `member ${id}`);
  assert.ok(c.get(1).transferLeader(4).ok);
  c.settle();
  assert.equal(c.get(4).role, Role.Leader);
});

test('joint consensus: adding and removing voters passes through C_old,new, then the leader leaves it by itself', () => {
  const c = ledByOne();
  c.add(4, null);
  const r = change(c, 1, addVoter(4), removeVoter(3));
  assert.ok(r.ok);
  c.settle();
  c.tickAll(2);
  const joint = conf([1, 2, 4], [1, 2, 3]);
  const final = conf([1, 2, 4]);
  for (const id of [1, 2]) {
    const confs = c.member(id).confs;
    assert.deepEqual(confs.slice(-2), [joint, final], `member ${id} saw ${JSON.stringify(confs)}`);
  }
  // (4 may apply both entries in one Ready: it only reports the configuration after them.)
  for (const id of [1, 2, 4]) assert.deepEqual(c.get(id).confState(), final, `member ${id}`);
  assert.ok(c.member(3).confs.some((cs) => isJoint(cs)), 'the removed member took part in the joint configuration');
  // The log holds the proposal and, right after it, the leader's own "leave" entry.
  const confEntries = c.member(1).applied.filter((e) => e.type === EntryType.ConfChange && e.index > 1);
  assert.equal(confEntries.length, 2);
  assert.equal(confEntries[0]!.index, r.ok ? r.index : -1);
  assert.equal(decodeConfChange(confEntries[0]!.data).leave, false);
  assert.equal(decodeConfChange(confEntries[1]!.data).leave, true);
  assert.equal(confEntries[1]!.term, 2);
  // A new empty member received everything from the bootstrap entry on.
  assert.equal(c.get(4).entryTerm(1), 1);
  assert.equal(c.get(4).firstIndex(), 1);
  // The new configuration works without 3.
  c.isolate(3);
  assert.ok(c.propose(1, 'x').ok);
  for (const id of [1, 2, 4]) assert.deepEqual(c.appliedData(id), ['x']);
});

test('joint consensus: while joint, nothing commits without a majority of the new voters', () => {
  const c = ledByOne();
  c.add(4, null);
  c.add(5, null);
  // C_old = {1,2,3}, C_new = {1,4,5}. Everything to and from 4 and 5 is delayed.
  c.hold = (m) => [4, 5].includes(m.to) || [4, 5].includes(m.from);
  assert.ok(change(c, 1, addVoter(4), addVoter(5), removeVoter(2), removeVoter(3)).ok);
  c.settle();
  // The entering entry committed under C_old; the leader is now joint and has appended "leave".
  assert.deepEqual(c.get(1).confState(), conf([1, 4, 5], [1, 2, 3]));
  const stuck = c.get(1).commit;
  assert.equal(c.get(1).lastIndex(), stuck + 1, 'the leave entry is waiting');
  assert.ok(c.propose(1, 'y').ok);
  c.tickAll(3);
  assert.equal(c.get(1).commit, stuck, '2 and 3 acknowledged, but they are only the old majority');
  c.release();
  c.tickAll(3);
  assert.ok(c.get(1).commit >= stuck + 2);
  for (const id of [1, 4, 5]) {
    assert.deepEqual(c.get(id).confState(), conf([1, 4, 5]), `member ${id}`);
    assert.deepEqual(c.appliedData(id), ['y']);
  }
});

test('joint consensus: while joint, nothing commits without a majority of the old voters', () => {
  const c = ledByOne();
  c.add(4, null);
  c.add(5, null);
  // Once 1 is joint, its appends to 2 and 3 are delayed.
  c.hold = (m) => isJoint(c.get(1).confState()) && m.from === 1 && m.type === MessageType.App && (m.to === 2 || m.to === 3);
  assert.ok(change(c, 1, addVoter(4), addVoter(5), removeVoter(2), removeVoter(3)).ok);
  c.settle();
  c.tickAll(2);
  assert.deepEqual(c.get(1).confState(), conf([1, 4, 5], [1, 2, 3]));
  const stuck = c.get(1).commit;
  assert.ok(c.get(4).lastIndex() > stuck, '4 and 5 have the leave entry');
  assert.ok(c.propose(1, 'y').ok);
  c.tickAll(2);
  assert.equal(c.get(1).commit, stuck, '4 and 5 acknowledged, but they are only the new majority');
  c.release();
  c.tickAll(3);
  for (const id of [1, 4, 5]) {
    assert.deepEqual(c.get(id).confState(), conf([1, 4, 5]), `member ${id}`);
    assert.deepEqual(c.appliedData(id), ['y']);
  }
});

test('joint consensus: an election needs a majority of both configurations', () => {
  const c = ledByOne();
  c.add(4, null);
  c.add(5, null);
  assert.ok(change(c, 1, addLearner(4), addLearner(5)).ok);
  c.settle();
  // Enter C_old = {1,2,3}, C_new = {1,4,5} everywhere, but hold the leave back.
  c.hold = (m) => m.entries.some((e) => e.type === EntryType.ConfChange && decodeConfChange(e.data).leave);
  assert.ok(change(c, 1, addVoter(4), addVoter(5), removeVoter(2), removeVoter(3)).ok);
  c.settle();
  c.tickAll(3);
  for (const id of [1, 2, 3, 4, 5]) assert.ok(isJoint(c.get(id).confState()), `${id} is joint`);
  // 1 fails; 2 and 3 are a majority of C_old but nobody of C_new: they cannot elect.
  for (const id of [1, 4, 5]) c.isolate(id);
  for (let i = 0; i < 100; i++) {
    c.tick(2);
    c.tick(3);
  }
  assert.notEqual(c.get(2).role, Role.Leader);
  assert.notEqual(c.get(3).role, Role.Leader);
  // With 4 and 5 back (1 still gone), 2 and 3 with 4 and 5 are majorities of both.
  c.heal();
  c.isolate(1);
  const l = c.tickUntilLeader([2, 3, 4, 5], 200);
  assert.ok(c.get(l).term > 2);
});

test('check-quorum in a joint configuration: a leader that hears only from the old majority steps down', () => {
  const c = ledByOne();
  c.add(4, null);
  c.add(5, null);
  c.hold = (m) => [4, 5].includes(m.to) || [4, 5].includes(m.from);
  assert.ok(change(c, 1, addVoter(4), addVoter(5), removeVoter(2), removeVoter(3)).ok);
  c.settle();
  assert.ok(isJoint(c.get(1).confState()));
  let t = 0;
  while (c.get(1).role === Role.Leader && t < 50) {
    c.tick(1);
    t++;
  }
  assert.ok(t <= 20, `still leading after ${t} ticks`);
});

test('a removed member that never learns of its removal does not disrupt the group', () => {
  const c = ledByOne();
  // 3 takes part in the joint configuration, then loses contact before the leave entry.
  c.hold = (m) => isJoint(c.get(1).confState()) && m.from === 1 && m.to === 3;
  assert.ok(change(c, 1, removeVoter(3)).ok);
  c.settle();
  assert.deepEqual(c.get(1).confState(), conf([1, 2]));
  const cs3 = c.get(3).confState();
  assert.ok(cs3.voters.includes(3) || cs3.votersOutgoing.includes(3), '3 still believes it is a voter');
  c.held.length = 0;
  c.hold = () => false;
  c.tickAll(200);
  assert.ok(c.sentWhere(MessageType.PreVote, 3).length > 0, '3 did try to campaign');
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
  assert.equal(c.get(2).term, 2);
  assert.ok(c.propose(1, 'still fine').ok);
  assert.deepEqual(c.appliedData(2), ['still fine']);
});

test('a member does not campaign while a committed configuration change is not yet applied', () => {
  const c = ledByOne({ random: () => 0 });
  c.add(4, null);
  c.manual.add(2);
  assert.ok(change(c, 1, addLearner(4)).ok);
  c.settle();
  // 2 has the entries and knows they committed (1 and 3 are a quorum), but it has not written
  // them yet. It writes them, and its host does not drain another Ready (which would apply
  // them) before the next ticks.
  const rd = c.get(2).ready();
  assert.ok(rd.entries.some((e) => e.type === EntryType.ConfChange));
  c.persist(2, rd);
  c.settle();
  assert.ok(c.get(2).commit >= rd.lastIndex, 'committed');
  assert.ok(c.get(2).applied < rd.lastIndex, 'not applied');
  assert.ok(c.get(2).hasReady(), 'a Ready with the committed entries is waiting');
  c.isolate(1);
  for (let i = 0; i < 15; i++) c.get(2).tick();
  assert.equal(c.get(2).role, Role.Follower, 'its view of the voters may be stale: it waits');
  c.manual.delete(2);
  c.settle();
  for (let i = 0; i < 10 && c.get(2).role === Role.Follower; i++) c.get(2).tick();
  assert.notEqual(c.get(2).role, Role.Follower, 'once applied, it campaigns');
});

test('a second configuration change while one is pending is refused with CONF_CHANGE_PENDING', () => {
  const c = ledByOne();
  c.add(4, null);
  c.add(5, null);
  assert.ok(change(c, 1, addLearner(4)).ok);
  assert.deepEqual(change(c, 1, addLearner(5)), { ok: false, code: 'CONF_CHANGE_PENDING', leader: 1 });
  // Joint but not yet left (the leave entry's acknowledgements are held): still pending.
  c.hold = (m) => isJoint(c.get(1).confState()) && m.type === MessageType.AppResp;
  c.settle();
  assert.ok(isJoint(c.get(1).confState()));
  assert.deepEqual(change(c, 1, addLearner(5)), { ok: false, code: 'CONF_CHANGE_PENDING', leader: 1 });
  c.release();
  assert.ok(!isJoint(c.get(1).confState()));
  assert.ok(change(c, 1, addLearner(5)).ok);
  c.settle();
  assert.deepEqual(c.get(5).confState(), conf([1, 2, 3], [], [4, 5]));
});

test('invalid configuration changes are refused with BAD_CONF_CHANGE and leave the log alone', () => {
  const c = ledByOne();
  c.add(4, null);
  assert.ok(change(c, 1, addLearner(4)).ok);
  c.settle();
  const last = c.get(1).lastIndex();
  const bad: Array<[string, Change[]]> = [
    ['no changes', []],
    ['add an existing voter', [addVoter(2)]],
    ['add an existing learner', [addLearner(4)]],
    ['remove a non-member', [removeVoter(9)]],
    ['remove every voter', [removeVoter(1), removeVoter(2), removeVoter(3)]],
    ['change one node twice', [addVoter(5), removeVoter(5)]],
    ['node id 0', [addVoter(0)]],
    ['unknown change type', [{ type: 99 as ChangeType, node: 5 }]],
  ];
  for (const [name, changes] of bad) {
    const r = c.get(1).proposeConfChange({ leave: false, changes });
    assert.equal(r.ok, false, name);
    assert.equal(r.ok ? '' : r.code, 'BAD_CONF_CHANGE', name);
  }
  const leave = c.get(1).proposeConfChange({ leave: true, changes: [] });
  assert.equal(leave.ok ? '' : leave.code, 'BAD_CONF_CHANGE', 'leave is the leader\'s own business');
  assert.equal(c.get(1).lastIndex(), last);
  assert.deepEqual(change(c, 2, addLearner(5)), { ok: false, code: 'NOT_LEADER', leader: 1 });
});

test('removing the leader: it leads through the joint configuration, hands over after leaving it, and a remaining voter leads', () => {
  const c = ledByOne();
  const roleAtConf: Array<[boolean, Role]> = [];
  c.onReady = (id, rd) => {
    if (id === 1 && rd.conf !== null) roleAtConf.push([isJoint(rd.conf), c.get(1).role]);
  };
  assert.ok(change(c, 1, removeVoter(1)).ok);
  c.settle();
  assert.deepEqual(c.member(1).confs.slice(-2), [conf([2, 3], [1, 2, 3]), conf([2, 3])]);
  assert.deepEqual(roleAtConf[roleAtConf.length - 2], [true, Role.Leader], 'still leading in the joint configuration');
  // The leave entry was written by 1, in its own term.
  const leaveIndex = c.get(1).lastIndex() >= 4 ? 4 : -1;
  assert.equal(c.get(2).entryTerm(leaveIndex), 2);
  assert.equal(decodeConfChange(c.member(1).applied.find((e) => e.index === leaveIndex)!.data).leave, true);
  // Out of the configuration, it accepts nothing more.
  assert.equal(c.get(1).propose(text('late')).ok, false);
  const l = c.tickUntilLeader([2, 3], 30);
  assert.ok(c.get(l).term > 2);
  assert.equal(c.get(1).role, Role.Follower);
  c.tickAll(2);
  for (const id of [2, 3]) assert.deepEqual(c.get(id).confState(), conf([2, 3]), `member ${id}`);
  assert.ok(c.propose(l, 'after').ok);
  for (const id of [2, 3]) assert.deepEqual(c.appliedData(id), ['after']);
  assert.deepEqual(c.appliedData(1), []);
  const quietFrom = c.sent.length;
  c.tickAll(50);
  assert.equal(c.sent.slice(quietFrom).filter((m) => m.from === 1).length, 0, 'the removed member stays quiet');
  assert.equal(c.leader(), l);
});

test('removing the leader while the remaining voters do not know the change committed: the group still gets a leader', () => {
  const c = ledByOne();
  // 1 learns that the leave entry committed, but everything it sends after that is lost.
  let leaveCommitted = false;
  c.onReady = (id, rd) => {
    if (id === 1 && rd.conf !== null && !isJoint(rd.conf) && rd.conf.voters.length === 2) leaveCommitted = true;
  };
  c.filter = (m) => !(leaveCommitted && m.from === 1);
  assert.ok(change(c, 1, removeVoter(1)).ok);
  c.settle();
  assert.ok(leaveCommitted);
  for (const id of [2, 3]) assert.ok(isJoint(c.get(id).confState()), `${id} is still joint`);
  c.filter = () => true;
  const l = c.tickUntilLeader([2, 3], 100);
  c.tickAll(3);
  assert.equal(c.get(1).role, Role.Follower);
  for (const id of [2, 3]) assert.deepEqual(c.get(id).confState(), conf([2, 3]), `member ${id}`);
  assert.ok(c.propose(l, 'after').ok);
  for (const id of [2, 3]) assert.deepEqual(c.appliedData(id), ['after']);
});

test('removing the leader: if the voter it hands over to fails, another voter still takes over', () => {
  const c = new Cluster([1, 2, 3, 4]);
  c.settle();
  assert.ok(c.elect(1));
  // 2 fails the moment 1 is out of the configuration (after the leave entry committed).
  let out = false;
  c.onReady = (id, rd) => {
    if (id === 1 && rd.conf !== null && !isJoint(rd.conf) && !rd.conf.voters.includes(1)) out = true;
  };
  c.filter = (m) => !(out && (m.to === 2 || m.from === 2));
  assert.ok(change(c, 1, removeVoter(1)).ok);
  c.settle();
  assert.ok(out);
  // 3 and 4 are a majority of {2, 3, 4}: the group must get a leader that accepts writes.
  const l = c.tickUntilLeader([3, 4], 200);
  assert.ok(c.propose(l, 'x').ok);
  assert.deepEqual(c.appliedData(l === 3 ? 4 : 3), ['x']);
});

test('a demoted voter keeps voting in the joint configuration and is a learner after it', () => {
  const c = ledByOne();
  assert.ok(change(c, 1, addLearner(3)).ok);
  c.settle();
  assert.deepEqual(c.member(1).confs.slice(-2), [conf([1, 2], [1, 2, 3], [], [3]), conf([1, 2], [], [3])]);
  c.tickAll(1);
  assert.deepEqual(c.get(3).confState(), conf([1, 2], [], [3]));
  assert.ok(c.propose(1, 'z').ok);
  assert.deepEqual(c.appliedData(3), ['z']);
});

test('demoting the leader to a learner: it hands over, then follows as a learner that receives the log', () => {
  const c = ledByOne();
  assert.ok(change(c, 1, addLearner(1)).ok);
  c.settle();
  const l = c.tickUntilLeader([2, 3], 30);
  c.tickAll(2);
  assert.equal(c.get(1).role, Role.Follower);
  for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).confState(), conf([2, 3], [], [1]), `member ${id}`);
  assert.ok(c.propose(l, 'z').ok);
  c.tickAll(1);
  assert.deepEqual(c.appliedData(1), ['z']);
  const from = c.sent.length;
  c.isolate(l);
  c.tickAll(50);
  const campaigns = c.sent.slice(from).filter((m) => m.from === 1 && (m.type === MessageType.PreVote || m.type === MessageType.Vote));
  assert.deepEqual(campaigns, [], 'a learner never campaigns, even with the leader gone');
});

test('check-quorum counts voters only: a leader that hears only from a learner steps down', () => {
  const c = ledByOne();
  c.add(4, null);
  assert.ok(change(c, 1, addLearner(4)).ok);
  c.settle();
  for (const id of [2, 3]) {
    c.cutLink(1, id);
    c.cutLink(id, 1);
  }
  c.tick(1, 25);
  assert.equal(c.get(1).role, Role.Follower);
});

test('a new empty member added as a voter receives the bootstrap entry and ends with the group\'s configuration', () => {
  const c = ledByOne();
  for (let i = 0; i < 5; i++) c.propose(1, `e${i}`);
  c.add(4, null);
  assert.equal(c.get(4).lastIndex(), 0);
  assert.ok(change(c, 1, addVoter(4)).ok);
  c.settle();
  c.tickAll(1);
  assert.deepEqual(c.logTerms(4), c.logTerms(1));
  assert.deepEqual(c.get(4).confState(), conf([1, 2, 3, 4]));
  const first = c.member(4).applied[0]!;
  assert.equal(first.index, 1);
  assert.equal(first.type, EntryType.ConfChange, 'the bootstrap entry, from which 4 learned the founding voters');
  assert.deepEqual(c.appliedData(4), ['e0', 'e1', 'e2', 'e3', 'e4']);
  // 4 counts now: of four voters, 1, 2 and 4 are a majority; 1 and 4 alone are not.
  c.isolate(3);
  assert.ok(c.propose(1, 'f').ok);
  assert.deepEqual(c.appliedData(4).at(-1), 'f');
  c.isolate(2);
  assert.ok(c.get(1).propose(text('g')).ok);
  c.settle();
  assert.notEqual(c.appliedData(1).at(-1), 'g', 'two of four voters do not commit');
});
