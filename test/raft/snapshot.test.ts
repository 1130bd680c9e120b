// Snapshots: a leader whose log was compacted sends its snapshot instead of entries; followers
// install it, ignore stale ones, and the leader resends one that was lost. A member restarts
// from a snapshot plus the entries after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, msg, text } from './harness.js';
import { ChangeType } from '../../src/raft/conf-change.js';
import { MessageType, type ConfState } from '../../src/raft/types.js';
import { ProgressState } from '../../src/raft/progress.js';

const voters123: ConfState = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };

/** The host of `id` snapshots its state machine at `index` and drops the entries it covers. */
function compact(c: Cluster, id: number, index: number, confState: ConfState): void {
  const st = c.member(id).storage;
  st.createSnapshot(index, confState, text(`state@${index}`));
  st.compact(index);
}

/** 1 leads; 3 was cut off from the start and missed entries 2..12, which 1 then compacted away. */
function laggingBehindSnapshot(): Cluster {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  c.isolate(3);
  assert.ok(c.elect(1));
  for (let i = 0; i < 10; i++) assert.ok(c.propose(1, `e${i}`).ok);
  assert.equal(c.get(1).applied, 12);
  compact(c, 1, 12, voters123);
  assert.equal(c.get(1).firstIndex(), 13);
  assert.ok(c.propose(1, 'after0').ok);
  assert.ok(c.propose(1, 'after1').ok);
  return c;
}


test('a follower that needs compacted entries is sent the snapshot, installs it, then receives the rest', () => {
  const c = laggingBehindSnapshot();
  c.heal();
  c.tickAll(3);
  assert.equal(c.deliveredWhere(MessageType.Snap, 1, 3).length, 1);
  const snaps = c.member(3).snapshots;
  assert.equal(snaps.length, 1, 'Ready.snapshot handed the snapshot to the host');
  assert.equal(snaps[0]!.meta.index, 12);
  assert.equal(snaps[0]!.meta.term, 2);
  assert.equal(new TextDecoder().decode(snaps[0]!.data), 'state@12');
  assert.ok(c.deliveredWhere(MessageType.AppResp, 3, 1).some((m) => m.index === 12 && !m.reject), 'acknowledged the snapshot');
  // Entries before the snapshot came inside it, not as entries.
  assert.deepEqual(c.appliedData(3), ['after0', 'after1']);
  assert.equal(c.get(3).firstIndex(), 13);
  assert.equal(c.get(3).commit, 14);
  assert.deepEqual(c.get(3).confState(), voters123);
  assert.deepEqual(c.logTerms(3, 12), ['12:2', '13:2', '14:2']);
  assert.equal(c.get(1).progressOf(3)?.state, ProgressState.Replicate);
});

test('a new member added after compaction gets the snapshot and the configuration changes after it', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  for (let i = 0; i < 5; i++) assert.ok(c.propose(1, `e${i}`).ok);
  compact(c, 1, 7, voters123);
  c.add(4, null);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddVoter, node: 4 }] }).ok);
  c.settle();
  c.tickAll(3);
  assert.equal(c.member(4).snapshots.length, 1);
  assert.deepEqual(c.member(4).snapshots[0]!.meta.conf, voters123);
  assert.deepEqual(c.get(4).confState(), { voters: [1, 2, 3, 4], votersOutgoing: [], learners: [], learnersNext: [] });
  assert.equal(c.get(4).lastIndex(), c.get(1).lastIndex());
  assert.ok(c.propose(1, 'x').ok);
  assert.deepEqual(c.appliedData(4), ['x']);
});

test('a stale snapshot (index at or below the commit index) is ignored', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  for (let i = 0; i < 3; i++) assert.ok(c.propose(1, `e${i}`).ok);
  assert.equal(c.get(2).commit, 5);
  const before = c.logTerms(2);
  const snap = { meta: { index: 4, term: 2, conf: voters123 }, data: text('old') };
  const out = c.answer(msg(MessageType.Snap, 1, 2, 2, { snapshot: snap }));
  assert.deepEqual(out.map((m) => [m.type, m.reject, m.index]), [[MessageType.AppResp, false, 5]]);
  assert.deepEqual(c.member(2).snapshots, []);
  assert.deepEqual(c.logTerms(2), before);
  assert.equal(c.get(2).commit, 5);
});

test('a snapshot the follower\'s log already contains only moves its commit index', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  c.hold = (m) => m.type === MessageType.AppResp;
  for (let i = 0; i < 3; i++) c.propose(1, `e${i}`);
  assert.equal(c.get(2).commit, 2);
  assert.equal(c.get(2).lastIndex(), 5);
  const snap = { meta: { index: 4, term: 2, conf: voters123 }, data: text('s') };
  const out = c.answer(msg(MessageType.Snap, 1, 2, 2, { snapshot: snap }));
  assert.deepEqual(out.map((m) => [m.reject, m.index]), [[false, 4]]);
  assert.deepEqual(c.member(2).snapshots, []);
  assert.equal(c.get(2).lastIndex(), 5, 'entry 5 is kept');
  assert.equal(c.get(2).commit, 4);
  assert.deepEqual(c.appliedData(2), ['e0', 'e1'], 'entries up to 4 applied from the log');
});

test('a snapshot lost in the network is sent again after reportSnapshot(to, false)', () => {
  const c = laggingBehindSnapshot();
  let snapsLost = 1;
  c.filter = (m) => !(m.type === MessageType.Snap && snapsLost-- > 0);
  c.heal();
  c.tickAll(5);
  assert.equal(c.sentWhere(MessageType.Snap, 1, 3).length, 1);
  assert.equal(c.member(3).snapshots.length, 0);
  assert.equal(c.get(1).progressOf(3)?.state, ProgressState.Snapshot, 'waiting for the snapshot, sending nothing else');
  c.get(1).reportSnapshot(3, false);
  c.tickAll(3);
  assert.equal(c.sentWhere(MessageType.Snap, 1, 3).length, 2);
  assert.equal(c.member(3).snapshots.length, 1);
  assert.deepEqual(c.appliedData(3), ['after0', 'after1']);
});

test('a snapshot lost in the network is sent again after the resend timeout, without any report', () => {
  const c = laggingBehindSnapshot();
  let snapsLost = 1;
  c.filter = (m) => !(m.type === MessageType.Snap && snapsLost-- > 0);
  c.heal();
  c.tickAll(50);
  assert.equal(c.sentWhere(MessageType.Snap, 1, 3).length, 1, 'not resent too eagerly');
  c.tickAll(70);
  assert.equal(c.sentWhere(MessageType.Snap, 1, 3).length, 2);
  assert.equal(c.member(3).snapshots.length, 1);
  assert.deepEqual(c.appliedData(3), ['after0', 'after1']);
});

test('reportSnapshot(to, true): the leader goes on with the entries after the snapshot', () => {
  const c = laggingBehindSnapshot();
  // The acknowledgement of the snapshot is lost, but the host knows it was delivered.
  c.filter = (m) => !(m.type === MessageType.AppResp && m.from === 3 && m.index === 12);
  c.heal();
  c.tickAll(1);
  assert.equal(c.member(3).snapshots.length, 1);
  assert.equal(c.get(1).progressOf(3)?.state, ProgressState.Snapshot);
  c.filter = () => true;
  c.get(1).reportSnapshot(3, true);
  c.tickAll(3);
  assert.equal(c.sentWhere(MessageType.Snap, 1, 3).length, 1, 'no second snapshot');
  assert.deepEqual(c.appliedData(3), ['after0', 'after1']);
});

test('while a snapshot is in flight the leader sends that follower no appends', () => {
  const c = laggingBehindSnapshot();
  let snapsLost = 1;
  c.filter = (m) => !(m.type === MessageType.Snap && snapsLost-- > 0);
  c.heal();
  c.tickAll(2);
  assert.equal(c.get(1).progressOf(3)?.state, ProgressState.Snapshot);
  const from = c.delivered.length;
  for (let i = 0; i < 3; i++) assert.ok(c.propose(1, `more${i}`).ok);
  c.tickAll(3);
  assert.deepEqual(c.delivered.slice(from).filter((m) => m.to === 3 && m.type !== MessageType.Heartbeat), []);
  assert.deepEqual(c.appliedData(2).slice(-3), ['more0', 'more1', 'more2']);
});

test('a snapshot taken in a joint configuration carries it, and the follower leaves it with the group', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  c.isolate(3);
  assert.ok(c.elect(1));
  c.add(4, null);
  c.cutLink(1, 4);
  // 2's acknowledgement of the leave entry is held: the group stays joint.
  c.hold = (m) => m.type === MessageType.AppResp && m.from === 2 && m.index >= 4;
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  c.settle();
  const joint = c.get(1).confState();
  assert.deepEqual(joint, { voters: [1, 2, 3], votersOutgoing: [1, 2, 3], learners: [4], learnersNext: [] });
  const applied = c.get(1).applied;
  compact(c, 1, applied, joint);
  // 3 comes back: it needs the snapshot (joint), then the leave entry, which it acknowledges.
  c.heal();
  c.tickAll(3);
  assert.deepEqual(c.member(3).snapshots.map((x) => x.meta.conf), [joint]);
  const final = { voters: [1, 2, 3], votersOutgoing: [], learners: [4], learnersNext: [] };
  for (const id of [1, 3, 4]) assert.deepEqual(c.get(id).confState(), final, `member ${id}`);
});

test('restart from storage with a snapshot: the configuration is reproduced and entries after the snapshot are applied again', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  c.propose(1, 'a');
  c.propose(1, 'b'); // 4
  c.add(4, null);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok); // 5, leave at 6
  c.settle();
  c.propose(1, 'c'); // 7
  c.tickAll(1);
  const expected = c.get(1).confState();
  assert.deepEqual(expected.learners, [4]);
  compact(c, 2, 4, voters123);
  const m = c.restart(2);
  assert.deepEqual(m.raft.confState(), voters123, 'right after the restart: the snapshot\'s configuration');
  c.settle();
  assert.deepEqual(m.applied.map((e) => e.index), [5, 6, 7]);
  assert.deepEqual(c.appliedData(2), ['c']);
  assert.deepEqual(c.get(2).confState(), expected);
  assert.equal(c.get(2).commit, 7);
});

test('restart with applied past the snapshot: conf changes up to applied are replayed, nothing is applied twice', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  c.propose(1, 'a');
  c.propose(1, 'b');
  c.add(4, null);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  c.settle();
  c.propose(1, 'c');
  c.tickAll(1);
  compact(c, 2, 4, voters123);
  const m = c.restart(2, 7);
  assert.deepEqual(m.raft.confState(), c.get(1).confState());
  c.settle();
  assert.deepEqual(m.applied, []);
  assert.ok(c.propose(1, 'd').ok);
  assert.deepEqual(c.appliedData(2), ['d']);
});

test('the leader itself restarts from a snapshot and leads again', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  assert.ok(c.elect(1));
  for (let i = 0; i < 4; i++) c.propose(1, `e${i}`);
  compact(c, 1, 6, voters123);
  c.restart(1);
  c.settle();
  assert.deepEqual(c.get(1).confState(), voters123);
  assert.equal(c.get(1).commit, 6);
  const l = c.tickUntilLeader([1, 2, 3]);
  assert.ok(c.propose(l, 'x').ok);
  for (const id of [1, 2, 3]) assert.equal(c.appliedData(id).at(-1), 'x');
});
