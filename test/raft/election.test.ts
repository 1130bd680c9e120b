// Leader election: pre-vote, the vote restriction, terms, randomized timeouts, check-quorum and
// the leases that keep a partitioned member from disrupting a healthy group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, msg, ledByOne } from './harness.js';
import { MessageType, Role } from '../../src/raft/types.js';

/** A three-member group where 1 leads at term 2 and every member has applied the bootstrap. */
function ledByOneAtTerm2(overrides = {}): Cluster {
  const c = ledByOne(overrides);
  assert.equal(c.get(1).term, 2);
  return c;
}

/** Ticks `id` alone, without delivering anything, until it leaves the follower role. */
function ticksToCampaign(c: Cluster, id: number, ticksMax = 100): number {
  for (let t = 1; t <= ticksMax; t++) {
    c.get(id).tick();
    if (c.get(id).role !== Role.Follower) return t;
  }
  throw new Error(`${id} did not campaign within ${ticksMax} ticks`);
}


test('a follower that times out pre-votes first and bumps its term only once the pre-vote wins', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  const t = ticksToCampaign(c, 1);
  assert.ok(t >= 10 && t < 20, `campaigned after ${t} ticks`);
  // Pre-candidate: asks for term 2 without having moved to it.
  assert.equal(c.get(1).role, Role.PreCandidate);
  assert.equal(c.get(1).term, 1);
  assert.equal(c.get(1).vote, 0);
  c.flush();
  const preVotes = c.queue.filter((m) => m.type === MessageType.PreVote);
  assert.deepEqual(preVotes.map((m) => [m.to, m.term]), [[2, 2], [3, 2]]);
  assert.equal(c.queue.filter((m) => m.type === MessageType.Vote).length, 0);
  c.settle();
  // The pre-vote won, then the real vote: term 2, and the pre-votes did not move anyone's term.
  const kinds = c.delivered.filter((m) => m.from === 1 || m.to === 1).map((m) => MessageType[m.type]);
  const firstVote = kinds.indexOf('Vote');
  assert.ok(firstVote > kinds.indexOf('PreVoteResp'), `order: ${kinds.join(',')}`);
  assert.ok(kinds.slice(0, firstVote).every((k) => k === 'PreVote' || k === 'PreVoteResp'));
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
  for (const id of [2, 3]) {
    assert.equal(c.get(id).term, 2);
    assert.equal(c.get(id).vote, 1);
    assert.equal(c.get(id).leader, 1);
  }
});

test('a member grants at most one vote per term (and may repeat its grant to the same candidate)', () => {
  const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: false });
  c.settle();
  const last = { index: 1, logTerm: 1 };
  let out = c.answer(msg(MessageType.Vote, 1, 3, 5, last));
  assert.deepEqual(out.map((m) => [m.type, m.to, m.term, m.reject]), [[MessageType.VoteResp, 1, 5, false]]);
  assert.equal(c.get(3).vote, 1);
  out = c.answer(msg(MessageType.Vote, 2, 3, 5, last));
  assert.deepEqual(out.map((m) => [m.type, m.to, m.reject]), [[MessageType.VoteResp, 2, true]]);
  assert.equal(c.get(3).vote, 1);
  out = c.answer(msg(MessageType.Vote, 1, 3, 5, last));
  assert.deepEqual(out.map((m) => [m.type, m.to, m.reject]), [[MessageType.VoteResp, 1, false]]);
  // A new term frees the vote.
  out = c.answer(msg(MessageType.Vote, 2, 3, 6, last));
  assert.deepEqual(out.map((m) => [m.type, m.to, m.term, m.reject]), [[MessageType.VoteResp, 2, 6, false]]);
  assert.equal(c.get(3).vote, 2);
});

test('two candidates in one term cannot both win: the vote each member gave holds', () => {
  const c = new Cluster([1, 2, 3, 4, 5], { preVote: false, checkQuorum: false });
  c.settle();
  // 1 and 2 campaign in term 2 at once; 1's requests to 4 and 5 are slow and arrive after 2's.
  c.hold = (m) => m.type === MessageType.Vote && m.from === 1 && (m.to === 4 || m.to === 5);
  c.get(1).campaign();
  c.get(2).campaign();
  c.settle();
  assert.equal(c.get(2).role, Role.Leader);
  assert.equal(c.get(2).term, 2);
  assert.equal(c.get(3).vote, 1, '3 heard from 1 first');
  c.release();
  // 4 and 5 already voted for 2 in term 2: 1's late requests are refused, and 1 loses.
  const late = c.deliveredWhere(MessageType.VoteResp, undefined, 1).filter((m) => m.from === 4 || m.from === 5);
  assert.deepEqual(late.map((m) => m.reject), [true, true]);
  assert.equal(c.get(4).vote, 2);
  assert.equal(c.get(5).vote, 2);
  assert.notEqual(c.get(1).role, Role.Leader);
  assert.equal(c.get(2).role, Role.Leader);
  assert.equal(c.get(1).leader, 2);
});

test('vote restriction: a candidate whose log is less up-to-date is refused', () => {
  const c = ledByOneAtTerm2({ preVote: false, checkQuorum: false });
  assert.ok(c.propose(1, 'a').ok);
  // 2's log: 1:1, 2:2, 3:2.
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2']);
  const cases: Array<[string, number, number, boolean]> = [
    ['lower last term, longer log', 1, 9, true],
    ['same last term, shorter log', 2, 2, true],
    ['same last term, same length', 2, 3, false],
    ['same last term, longer log', 2, 4, false],
    ['higher last term, shorter log', 3, 2, false],
  ];
  let term = 10;
  for (const [name, logTerm, index, refused] of cases) {
    term++;
    const out = c.answer(msg(MessageType.Vote, 3, 2, term, { index, logTerm }));
    assert.equal(out.length, 1, name);
    assert.equal(out[0]!.reject, refused, name);
    assert.equal(c.get(2).vote, refused ? 0 : 3, name);
    // Refused or not, the member moved to the candidate's term.
    assert.equal(c.get(2).term, term, name);
  }
});

test('a member that missed a committed entry cannot be elected', () => {
  const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: false });
  c.settle();
  c.isolate(3);
  assert.ok(c.elect(1));
  assert.ok(c.propose(1, 'x').ok);
  assert.deepEqual(c.appliedData(1), ['x']);
  c.heal();
  // 3 never heard of term 2: it campaigns with last entry (1, term 1) and loses every time.
  for (let i = 0; i < 5; i++) {
    assert.equal(c.elect(3), false);
    assert.notEqual(c.get(3).role, Role.Leader);
  }
  const l = c.tickUntilLeader([1, 2]);
  assert.ok(c.get(l).term > 2);
  c.settle();
  assert.deepEqual(c.appliedData(3), ['x']);
});

test('a candidate needs a majority: one that reaches only a minority never leads', () => {
  const c = new Cluster([1, 2, 3, 4, 5], { preVote: false });
  c.settle();
  for (const other of [3, 4, 5]) {
    c.cutLink(1, other);
    c.cutLink(other, 1);
  }
  for (let i = 0; i < 3; i++) assert.equal(c.elect(1), false);
  assert.equal(c.get(1).role, Role.Candidate);
  assert.equal(c.get(2).vote, 1);
});

test('a leader that hears of a higher term steps down, and its uncommitted entries are replaced', () => {
  const c = ledByOneAtTerm2();
  c.isolate(1);
  // 1 still believes it leads and accepts a proposal nobody will see.
  assert.ok(c.propose(1, 'lost').ok);
  // 2 and 3 elect 3 in term 3 (1 does not tick: it has not yet noticed it lost its quorum).
  for (let i = 0; i < 100 && c.get(3).role !== Role.Leader && c.get(2).role !== Role.Leader; i++) {
    c.tick(2);
    c.tick(3);
  }
  const newLeader = c.get(3).role === Role.Leader ? 3 : 2;
  assert.equal(c.get(newLeader).term, 3);
  assert.ok(c.propose(newLeader, 'kept').ok);
  c.heal();
  c.tick(newLeader);
  assert.equal(c.get(1).role, Role.Follower);
  assert.equal(c.get(1).term, 3);
  assert.equal(c.get(1).leader, newLeader);
  c.tick(newLeader);
  assert.deepEqual(c.appliedData(1), ['kept']);
  assert.deepEqual(c.logTerms(1), c.logTerms(newLeader));
});

test('a leader steps down when a member answers with a higher term', () => {
  const c = ledByOneAtTerm2();
  // 2 saw a term-7 election that 1 missed; 1's next heartbeat reaches it and it answers.
  c.inject(msg(MessageType.AppResp, 2, 1, 7));
  assert.equal(c.get(1).role, Role.Follower);
  assert.equal(c.get(1).term, 7);
  assert.equal(c.get(1).leader, 0);
});

test('randomized election timeout: a follower campaigns after ticksElection + floor(random · ticksElection) ticks', () => {
  for (const [r, expected] of [[0, 10], [0.5, 15], [0.9999, 19]] as const) {
    const c = new Cluster([1, 2, 3], { random: () => r });
    c.settle();
    assert.equal(ticksToCampaign(c, 1), expected, `random ${r}`);
  }
  const seen = new Set<number>();
  for (let seed = 1; seed <= 30; seed++) {
    const c = new Cluster([seed, seed + 100, seed + 200]);
    c.settle();
    const t = ticksToCampaign(c, seed);
    assert.ok(t >= 10 && t < 20, `seed ${seed}: ${t}`);
    seen.add(t);
  }
  assert.ok(seen.size >= 4, `timeouts should vary between members: ${[...seen].join(',')}`);
});

test('randomized election timeout: every new attempt draws a new timeout in [ticksElection, 2·ticksElection)', () => {
  const c = new Cluster([1, 2, 3]);
  c.settle();
  c.isolate(1);
  const starts: number[] = [];
  for (let t = 1; t <= 300; t++) {
    const before = c.sentWhere(MessageType.PreVote, 1).length;
    c.tick(1);
    if (c.sentWhere(MessageType.PreVote, 1).length > before) starts.push(t);
  }
  const gaps = starts.map((t, i) => t - (i === 0 ? 0 : starts[i - 1]!));
  assert.ok(gaps.length >= 15, `attempts: ${gaps.length}`);
  for (const g of gaps) assert.ok(g >= 10 && g < 20, `gap ${g}`);
  assert.ok(new Set(gaps).size > 1, 'the timeout is drawn again for each attempt');
  // Isolated, the pre-votes never win, so the term never moved.
  assert.equal(c.get(1).term, 1);
});

test('pre-vote: a partitioned member that rejoins does not bump the term or depose the leader', () => {
  const c = ledByOneAtTerm2();
  c.isolate(3);
  c.tickAll(100);
  assert.ok(c.sentWhere(MessageType.PreVote, 3).length > 0, '3 tried to campaign');
  assert.equal(c.sentWhere(MessageType.Vote, 3).length, 0, '3 never got past the pre-vote');
  assert.equal(c.get(3).term, 2);
  c.heal();
  c.tickAll(30);
  assert.equal(c.get(1).role, Role.Leader);
  for (const id of [1, 2, 3]) {
    assert.equal(c.get(id).term, 2, `term of ${id}`);
    assert.equal(c.get(id).leader, 1, `leader of ${id}`);
  }
});

test('without pre-vote, the same rejoining member does depose the leader (what pre-vote prevents)', () => {
  const c = ledByOneAtTerm2({ preVote: false });
  c.isolate(3);
  c.tickAll(100);
  assert.ok(c.get(3).term > 2);
  c.heal();
  c.tickAll(50);
  assert.ok(c.get(1).term > 2, 'the group moved to the rejoining member\'s term');
});

test('check-quorum: a leader cut off from a quorum steps down within 2·ticksElection ticks', () => {
  const c = ledByOneAtTerm2();
  c.isolate(1);
  let t = 0;
  while (c.get(1).role === Role.Leader && t < 100) {
    c.tick(1);
    t++;
  }
  assert.ok(t <= 20, `stepped down after ${t} ticks`);
  assert.ok(t > 10, `a leader that heard from its followers in the last interval keeps leading (stepped down after ${t})`);
  assert.equal(c.get(1).role, Role.Follower);
  assert.equal(c.get(1).term, 2, 'stepping down does not change the term');
  assert.equal(c.get(1).leader, 0);
  assert.equal(c.get(1).propose(new Uint8Array([1])).ok, false);
});

test('check-quorum: a leader that hears from a quorum keeps leading', () => {
  const c = ledByOneAtTerm2();
  c.isolate(3);
  c.tickAll(100);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
});

test('check-quorum off: an isolated leader keeps believing it leads', () => {
  const c = ledByOneAtTerm2({ checkQuorum: false });
  c.isolate(1);
  c.tick(1, 100);
  assert.equal(c.get(1).role, Role.Leader);
});

test('lease: followers that hear from a live leader ignore Vote and PreVote of a higher term', () => {
  const c = ledByOneAtTerm2();
  c.tickAll(2);
  for (const type of [MessageType.PreVote, MessageType.Vote]) {
    const out = c.answer(msg(type, 3, 2, 9, { index: 100, logTerm: 9 }));
    assert.deepEqual(out, [], `${MessageType[type]} got an answer`);
    assert.equal(c.get(2).term, 2);
    assert.equal(c.get(2).vote, 1);
    assert.equal(c.get(2).leader, 1);
  }
  // The leader, too, ignores them while its followers answer.
  assert.deepEqual(c.answer(msg(MessageType.Vote, 3, 1, 9, { index: 100, logTerm: 9 })), []);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
});

test('lease: once a follower has not heard from the leader for ticksElection ticks, it votes again', () => {
  const c = ledByOneAtTerm2({ random: () => 0.99 });
  c.isolate(2);
  // 2's election timeout is 19 ticks: after 10 silent ticks it is out of the lease but has not campaigned.
  for (let i = 0; i < 10; i++) c.get(2).tick();
  assert.equal(c.get(2).role, Role.Follower);
  c.heal();
  const out = c.answer(msg(MessageType.Vote, 3, 2, 9, { index: 100, logTerm: 9 }));
  assert.deepEqual(out.map((m) => [m.type, m.reject, m.term]), [[MessageType.VoteResp, false, 9]]);
  assert.equal(c.get(2).vote, 3);
});

test('a leader-transfer campaign cuts through the lease', () => {
  const c = ledByOneAtTerm2();
  const out = c.answer(msg(MessageType.Vote, 3, 2, 3, { index: 2, logTerm: 2, context: 1 }));
  assert.deepEqual(out.map((m) => [m.type, m.reject, m.term]), [[MessageType.VoteResp, false, 3]]);
});

test('a single-member group elects itself and commits alone', () => {
  const c = new Cluster([1]);
  c.settle();
  const t = ticksToCampaign(c, 1);
  assert.ok(t >= 10 && t < 20);
  c.settle();
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
  assert.equal(c.sent.length, 0, 'no one to ask or replicate to');
  assert.ok(c.propose(1, 'solo').ok);
  assert.deepEqual(c.appliedData(1), ['solo']);
  assert.equal(c.get(1).commit, 3);
});
