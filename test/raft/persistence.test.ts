// Durability: what a member promised survives a restart, what it never made durable is lost
// without harm, and Readys may be in flight (pipelined) while earlier ones are being written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, msg, text, ledByOne, entry } from './harness.js';
import { EntryType, MessageType, Role, type Entry, type Message } from '../../src/raft/types.js';


test('a restart keeps term and vote: a member that voted in term T does not vote for another candidate in T', () => {
  const c = new Cluster([1, 2, 3], { preVote: false });
  c.settle();
  const vote = (from: number, term: number): Message => msg(MessageType.Vote, from, 3, term, { index: 1, logTerm: 1 });
  assert.deepEqual(c.answer(vote(1, 5)).map((m) => m.reject), [false]);
  assert.deepEqual(c.member(3).storage.hardState, { term: 5, vote: 1, commit: 1 });
  const m = c.restart(3);
  assert.equal(m.raft.term, 5);
  assert.equal(m.raft.vote, 1);
  c.settle();
  assert.deepEqual(c.answer(vote(2, 5)).map((x) => x.reject), [true], 'already voted for 1 in term 5');
  assert.deepEqual(c.answer(vote(1, 5)).map((x) => x.reject), [false], 'the same candidate may ask again');
});

test('a vote that was never persisted was never sent, so after a crash the member may vote afresh', () => {
  const c = new Cluster([1, 2, 3], { preVote: false });
  c.settle();
  c.manual.add(3);
  c.get(3).step(msg(MessageType.Vote, 1, 3, 5, { index: 1, logTerm: 1 }));
  const rd = c.get(3).ready();
  assert.deepEqual(rd.hardState, { term: 5, vote: 1, commit: 1 });
  assert.equal(rd.messages.length, 0);
  assert.equal(rd.messagesAfterPersist.length, 1);
  // Crash before the write: the grant never left.
  const m = c.restart(3);
  assert.equal(m.raft.term, 1);
  assert.equal(m.raft.vote, 0);
  c.settle();
  assert.deepEqual(c.answer(msg(MessageType.Vote, 2, 3, 5, { index: 1, logTerm: 1 })).map((x) => x.reject), [false]);
});

test('entries handed to a follower\'s host but not persisted before a crash are lost, and the member recovers', () => {
  const c = ledByOne();
  c.manual.add(2);
  assert.ok(c.propose(1, 'a').ok);
  const rd = c.get(2).ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.equal(c.get(1).commit, 3, 'committed by 1 and 3');
  // 2 crashes before writing: its storage ends at 2, and it never acknowledged 3.
  assert.equal(c.deliveredWhere(MessageType.AppResp, 2, 1).filter((m) => m.index === 3).length, 0);
  const m = c.restart(2);
  assert.equal(m.raft.lastIndex(), 2);
  assert.equal(m.raft.term, 2);
  assert.ok(m.raft.commit <= 2);
  c.settle();
  c.tickAll(3);
  assert.deepEqual(c.logTerms(2), c.logTerms(1));
  assert.deepEqual(c.appliedData(2), ['a']);
  assert.ok(c.propose(1, 'b').ok);
  assert.deepEqual(c.appliedData(2), ['a', 'b']);
});

test('a leader that crashes before persisting its own entry loses it locally, but the followers\' quorum keeps it', () => {
  const c = ledByOne();
  c.manual.add(1);
  assert.ok(c.get(1).propose(text('a')).ok);
  const rd = c.get(1).ready();
  c.send(rd.messages);
  c.settle();
  assert.equal(c.get(1).commit, 3, 'committed by the two followers');
  assert.equal(c.member(1).storage.lastIndex(), 2);
  const m = c.restart(1);
  assert.equal(m.raft.lastIndex(), 2);
  assert.equal(m.raft.role, Role.Follower);
  c.settle();
  const l = c.tickUntilLeader([2, 3]);
  c.tickAll(2);
  assert.ok(c.get(l).term > 2);
  for (const id of [1, 2, 3]) {
    assert.deepEqual(c.appliedData(id), ['a'], `member ${id}`);
    assert.equal(c.get(id).entryTerm(3), 2);
  }
});

test('pipelined Readys: a second Ready is handed out before the first is persisted; each acknowledges and applies only after its own write', () => {
  const c = ledByOne();
  c.manual.add(2);
  assert.ok(c.propose(1, 'a').ok);
  const rd1 = c.get(2).ready();
  assert.ok(c.propose(1, 'b').ok);
  const rd2 = c.get(2).ready();
  assert.deepEqual(rd1.entries.map((e) => e.index), [3]);
  assert.deepEqual(rd2.entries.map((e) => e.index), [4], 'rd1\'s entries are not handed out twice');
  assert.deepEqual(rd2.committedEntries, [], 'entry 3 is committed but not yet durable here');
  assert.ok(rd1.messagesAfterPersist.every((m) => m.type === MessageType.AppResp && m.index === 3));
  assert.ok(rd2.messagesAfterPersist.some((m) => m.type === MessageType.AppResp && m.index === 4));
  c.persist(2, rd1);
  const rd3 = c.get(2).ready();
  assert.deepEqual(rd3.committedEntries.map((e) => e.index), [3], 'durable and committed: 3 may be applied');
  c.persist(2, rd2);
  c.persist(2, rd3);
  c.manual.delete(2);
  c.settle();
  c.tickAll(1);
  assert.deepEqual(c.member(2).storage.lastIndex(), 4);
  assert.deepEqual(c.appliedData(2), ['a', 'b']);
});

test('persisted() for a Ready whose entries were overwritten since is ignored', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.AppResp; // nothing new commits
  c.manual.add(2);
  c.propose(1, 'x');
  c.propose(1, 'y');
  const rd1 = c.get(2).ready();
  assert.deepEqual(rd1.entries.map((e) => `${e.index}:${e.term}`), ['3:2', '4:2']);
  // Before rd1 is written, a term-3 leader (3) replaces entry 3 and everything after it.
  c.get(2).step(msg(MessageType.App, 3, 2, 3, { index: 2, logTerm: 2, entries: [entry(3, 3, 'z')], commit: 2 }));
  const rd2 = c.get(2).ready();
  assert.deepEqual(rd2.entries.map((e) => `${e.index}:${e.term}`), ['3:3']);
  c.persist(2, rd1); // the host writes x and y, then learns they are stale
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:3']);
  // 3 says entry 3 is committed. It is not durable here yet (rd2 is not written): not applied.
  c.get(2).step(msg(MessageType.App, 3, 2, 3, { index: 3, logTerm: 3, entries: [], commit: 3 }));
  const rd3 = c.get(2).ready();
  assert.deepEqual(rd3.committedEntries, []);
  c.persist(2, rd2);
  c.persist(2, rd3);
  const rd4 = c.get(2).ready();
  assert.deepEqual(rd4.committedEntries.map((e) => `${e.index}:${e.term}`), ['3:3']);
  c.persist(2, rd4);
  assert.deepEqual(c.appliedData(2), ['z']);
  assert.equal(c.member(2).storage.lastIndex(), 3);
  assert.equal(c.member(2).storage.term(3), 3);
});

test('persisted() for a Ready whose tail was overwritten since does not mark the new tail durable', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.AppResp;
  c.manual.add(2);
  c.propose(1, 'x');
  c.propose(1, 'y');
  const rd1 = c.get(2).ready(); // 3:2, 4:2
  c.get(2).step(msg(MessageType.App, 3, 2, 3, { index: 3, logTerm: 2, entries: [entry(4, 3, 'w')], commit: 4 }));
  const rd2 = c.get(2).ready();
  assert.deepEqual(rd2.entries.map((e) => `${e.index}:${e.term}`), ['4:3']);
  c.persist(2, rd1);
  const rd3 = c.get(2).ready();
  assert.ok(!rd3.committedEntries.some((e) => e.index === 4), 'entry 4 (term 3) is not durable yet');
  c.persist(2, rd2);
  c.persist(2, rd3);
  const rd4 = c.get(2).ready();
  const applied = [...rd3.committedEntries, ...rd4.committedEntries].map((e) => `${e.index}:${e.term}`);
  assert.deepEqual(applied, ['3:2', '4:3']);
});

test('a member restarted with a longer log than it acknowledged keeps the extra entries until a leader says otherwise', () => {
  // 2 wrote entry 3 but crashed before sending its acknowledgement.
  const c = ledByOne();
  c.manual.add(2);
  c.cutLink(1, 3);
  assert.ok(c.propose(1, 'a').ok);
  const rd = c.get(2).ready();
  c.member(2).storage.append(rd.entries);
  if (rd.hardState !== null) c.member(2).storage.hardState = rd.hardState;
  const m = c.restart(2);
  assert.equal(m.raft.lastIndex(), 3);
  assert.equal(c.get(1).commit, 2);
  c.heal();
  c.settle();
  c.tickAll(2);
  assert.equal(c.get(1).commit, 3);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a']);
});
