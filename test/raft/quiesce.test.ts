// Quiescence of idle groups: a leader with nothing to do sends one last, flagged heartbeat and
// stops ticking; its followers stop their election timers; anything that gives the group work
// (a request, any other message, the host's wake) wakes it. Quiescence only changes when
// members tick, never what they accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, ledByOne, msg, text } from './harness.js';
import { ChangeType } from '../../src/raft/conf-change.js';
import { decodeHeartbeats, decodeRaftMessage, encodeHeartbeats, encodeRaftMessage, heartbeatsBytes, raftMessageBytes } from '../../src/protocol/raft-codec.js';
import { MessageType, Role, type Message, type NodeId, type RaftConfig } from '../../src/raft/types.js';

const QUIET = 3;
const ELECTION = 10;

/** A 3-member group led by 1 that quiesces after QUIET idle ticks. */
function quietGroup(overrides: Partial<RaftConfig> = {}): Cluster {
  return ledByOne({ ticksQuiesce: QUIET, ...overrides });
}

/** Ticks as a host does: quiesced members are skipped. */
function tickHost(c: Cluster, n: number, ids: NodeId[] = [...c.members.keys()]): void {
  for (let i = 0; i < n; i++) {
    for (const id of ids) if (!c.get(id).quiesced) c.get(id).tick();
    c.settle();
  }
}

/** A quiet group led by 1 with learner 4 added, every member quiesced. */
function quietGroupWithLearner(): Cluster {
  const c = quietGroup();
  c.add(4, null);
  assert.ok(c.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  c.settle();
  tickHost(c, QUIET + 4);
  assert.deepEqual(quiesced(c), [1, 2, 3, 4]);
  return c;
}

function quiesced(c: Cluster): NodeId[] {
  return [...c.members.keys()].filter((id) => c.get(id).quiesced);
}

const quiesceHeartbeats = (c: Cluster, from: NodeId): Message[] => c.sentWhere(MessageType.Heartbeat, from).filter((m) => m.quiesce);

test('an idle group quiesces: after one flagged heartbeat, leader and followers send nothing more', () => {
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  const last = c.get(1).lastIndex();
  const flagged = quiesceHeartbeats(c, 1);
  assert.deepEqual(flagged.map((m) => [m.to, m.commit]), [[2, last], [3, last]], 'one per follower, carrying the commit index');
  const round = flagged[0]!.context;
  assert.equal(c.sentWhere(MessageType.HeartbeatResp).filter((m) => m.context === round).length, 0, 'a follower that quiesces does not answer');
  for (const id of [2, 3]) assert.equal(c.get(id).commit, last);
  // A host skips them; a core ticked anyway ignores the ticks.
  const sent = c.sent.length;
  tickHost(c, 100);
  c.tickAll(100);
  assert.equal(c.sent.length, sent, 'nothing sent in 200 ticks');
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);
});

test('with ticksQuiesce 0 (the core default) a group never quiesces', () => {
  const c = ledByOne();
  tickHost(c, 5 * ELECTION);
  assert.deepEqual(quiesced(c), []);
  assert.equal(quiesceHeartbeats(c, 1).length, 0);
});

test('a proposal wakes a quiesced group and commits; the group quiesces again once idle', () => {
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  const r = c.propose(1, 'a');
  assert.ok(r.ok);
  assert.deepEqual(quiesced(c), [], 'the append woke the followers');
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a']);
  assert.equal(c.get(2).commit, r.ok ? r.index : -1);
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  assert.equal(c.get(1).term, 2);
});

test('a leader with work left does not quiesce: a follower behind, a pending read, a transfer under way', () => {
  const lagging = quietGroup();
  lagging.isolate(3);
  assert.ok(lagging.propose(1, 'a').ok);
  tickHost(lagging, 3 * ELECTION, [1, 2]);
  assert.equal(lagging.get(1).quiesced, false, 'member 3 lacks an entry');
  lagging.heal();
  tickHost(lagging, QUIET + 3);
  assert.deepEqual(quiesced(lagging), [1, 2, 3]);
  assert.deepEqual(lagging.appliedData(3), ['a']);

  const reading = quietGroup();
  reading.filter = (m) => m.type !== MessageType.HeartbeatResp;
  assert.ok(reading.get(1).readIndex(7).ok);
  tickHost(reading, ELECTION - 1);
  assert.equal(reading.get(1).quiesced, false, 'a read waits for its round');
  reading.filter = () => true;
  tickHost(reading, QUIET + 2);
  assert.deepEqual(reading.member(1).reads.map((r) => r.requestId), [7]);
  assert.equal(reading.get(1).quiesced, true);

  const handing = quietGroup();
  handing.isolate(3);
  assert.ok(handing.get(1).transferLeader(3).ok);
  tickHost(handing, ELECTION - 1, [1, 2]);
  assert.equal(handing.get(1).quiesced, false, 'a transfer is under way');
});

test('a follower quiesces only on its leader\'s quiesce heartbeat, with a log equal to the leader\'s', () => {
  const c = ledByOne();
  const last = c.get(1).lastIndex();
  const term = c.get(1).term;
  // Ordinary heartbeats do not quiesce anyone.
  c.tickAll(3);
  assert.deepEqual(quiesced(c), []);
  // A quiesce heartbeat of an older term is refused like any stale message.
  c.inject(msg(MessageType.Heartbeat, 1, 2, term - 1, { commit: last, quiesce: true }));
  assert.equal(c.get(2).quiesced, false);
  // One whose commit is beyond the follower's log (or not of the leader's term there) is
  // answered, which would wake the leader, and the follower keeps its timer.
  let out = c.answer(msg(MessageType.Heartbeat, 1, 2, term, { commit: last + 1, quiesce: true, context: 9 }));
  assert.equal(c.get(2).quiesced, false);
  assert.deepEqual(out.map((m) => [MessageType[m.type], m.context]), [['HeartbeatResp', 9]]);
  out = c.answer(msg(MessageType.Heartbeat, 1, 2, term, { commit: 1, quiesce: true, context: 10 }));
  assert.equal(c.get(2).quiesced, false, 'entry 1 is of term 1, not the leader\'s');
  assert.equal(out.length, 1);
  // The leader's own: quiet, and no answer.
  out = c.answer(msg(MessageType.Heartbeat, 1, 2, term, { commit: last, quiesce: true, context: 11 }));
  assert.equal(c.get(2).quiesced, true);
  assert.deepEqual(out, []);
  // Any other message wakes it; an ordinary heartbeat from the leader restarts its timer too.
  out = c.answer(msg(MessageType.Heartbeat, 1, 2, term, { commit: last, context: 12 }));
  assert.equal(c.get(2).quiesced, false);
  assert.equal(out.length, 1);
});

test('a quiesce heartbeat from a new leader of a higher term makes the follower follow it and quiesce', () => {
  const c = ledByOne();
  c.isolate(3);
  // 2 leads term 3 with 1 (a transfer); 3 hears of it first through a quiesce heartbeat.
  assert.ok(c.get(1).transferLeader(2).ok);
  c.settle();
  assert.equal(c.get(2).role, Role.Leader);
  const last = c.get(2).lastIndex();
  c.heal();
  // 3 lacks the new term's no-op: it cannot quiesce, and answers.
  let out = c.answer(msg(MessageType.Heartbeat, 2, 3, 3, { commit: last, quiesce: true, context: 40 }));
  assert.equal(c.get(3).quiesced, false);
  assert.equal(c.get(3).term, 3);
  assert.equal(c.get(3).leader, 2);
  assert.equal(out.length, 1);
  c.tick(2);
  assert.equal(c.get(3).lastIndex(), last);
  out = c.answer(msg(MessageType.Heartbeat, 2, 3, 3, { commit: last, quiesce: true, context: 41 }));
  assert.equal(c.get(3).quiesced, true);
  assert.deepEqual(out, []);
});

test('a follower that missed the quiesce heartbeat pre-votes after its timeout; that wakes the leader, which keeps leading', () => {
  const c = quietGroup();
  c.filter = (m) => !(m.quiesce && m.to === 3);
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2]);
  c.filter = () => true;
  tickHost(c, 2 * ELECTION + 2);
  assert.ok(c.deliveredWhere(MessageType.PreVote, 3).length > 0, 'member 3 timed out');
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2, 'the pre-vote changed no term');
  assert.equal(c.get(3).role, Role.Follower);
  assert.equal(c.get(3).leader, 1);
  tickHost(c, QUIET + 3);
  assert.deepEqual(quiesced(c), [1, 2, 3], 'and quiesces again, 3 included');
});

test('a woken follower whose leader is gone campaigns after its election timeout, and a new leader is elected', () => {
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  c.isolate(1);
  // Without a wake, quiesced followers wait for good: nothing ticks.
  tickHost(c, 5 * ELECTION, [2, 3]);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
  // The host's failure detector (the link to node 1 went down) wakes them.
  c.get(2).wake();
  c.get(3).wake();
  c.settle();
  assert.equal(c.sent.filter((m) => m.from === 2 || m.from === 3).length > 0 && c.get(2).role !== Role.Follower, false, 'waking alone sends nothing');
  let ticks = 0;
  while (c.leader() === 1 || c.get(c.leader()!).term === 2) {
    tickHost(c, 1, [2, 3]);
    assert.ok(++ticks <= 2 * ELECTION + 2, 'a new leader within one randomized election timeout (plus the vote)');
  }
  assert.ok(ticks >= ELECTION, `no campaign before the election timeout (${ticks} ticks)`);
  const l = c.leader()!;
  assert.ok(l === 2 || l === 3);
  assert.ok(c.propose(l, 'after').ok);
  assert.deepEqual(c.appliedData(l), ['after']);
  // The old leader, still quiesced and cut off, believes it leads term 2 until something wakes it.
  assert.equal(c.get(1).role, Role.Leader);
  c.heal();
  c.get(l).tick();
  c.settle();
  assert.equal(c.get(1).role, Role.Follower, 'the new leader\'s heartbeat woke it and it stepped down');
  assert.equal(c.get(1).leader, l);
});

test('host wake of a leader: one heartbeat to every follower wakes the group', () => {
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  const before = c.sent.length;
  c.get(1).wake();
  c.settle();
  const out = c.sent.slice(before);
  assert.deepEqual(out.filter((m) => m.from === 1).map((m) => [MessageType[m.type], m.to, m.quiesce]), [['Heartbeat', 2, false], ['Heartbeat', 3, false]]);
  assert.deepEqual(quiesced(c), []);
  tickHost(c, QUIET + 2);
  assert.deepEqual(quiesced(c), [1, 2, 3]);
});

test('requests wake a quiesced leader (read, transfer, membership); a refused one leaves a follower quiet', () => {
  const read = quietGroup();
  tickHost(read, QUIET + 2);
  assert.ok(read.get(1).readIndex(5).ok);
  read.settle();
  assert.deepEqual(read.member(1).reads.map((r) => r.requestId), [5]);
  assert.equal(read.get(1).quiesced, false);

  const transfer = quietGroup();
  tickHost(transfer, QUIET + 2);
  assert.ok(transfer.get(1).transferLeader(2).ok);
  transfer.settle();
  assert.equal(transfer.get(2).role, Role.Leader);
  assert.deepEqual(quiesced(transfer), []);

  const conf = quietGroup();
  tickHost(conf, QUIET + 2);
  conf.add(4, null);
  assert.ok(conf.get(1).proposeConfChange({ leave: false, changes: [{ type: ChangeType.AddLearner, node: 4 }] }).ok);
  conf.settle();
  assert.deepEqual(conf.get(1).confState().learners, [4]);
  tickHost(conf, QUIET + 4);
  assert.deepEqual(quiesced(conf), [1, 2, 3, 4], 'the learner quiesces too, once it holds the whole log');

  const refused = quietGroup();
  tickHost(refused, QUIET + 2);
  assert.equal(refused.get(2).propose(text('x')).ok, false);
  assert.equal(refused.get(2).readIndex(1).ok, false);
  assert.equal(refused.get(2).quiesced, true, 'a refused request changes nothing');
  refused.get(2).campaign();
  refused.settle();
  assert.equal(refused.get(2).quiesced, false);
});

test('a learner woken while its leader is quiet nudges the leader after an election timeout, and the group quiets again', () => {
  const c = quietGroupWithLearner();
  // Its host wakes it (say its link to the leader went down and came back): a learner never
  // campaigns, so without a nudge it would stay awake, ticking, for good.
  c.get(4).wake();
  const before = c.sent.length;
  let ticks = 0;
  while (c.get(1).quiesced) {
    tickHost(c, 1);
    assert.ok(++ticks <= 2 * ELECTION, 'nudged within its randomized election timeout');
  }
  assert.ok(ticks >= ELECTION, `not before an election timeout (${ticks})`);
  const nudge = c.sent.slice(before).find((m) => m.from === 4)!;
  assert.deepEqual([MessageType[nudge.type], nudge.to, nudge.context], ['HeartbeatResp', 1, 0]);
  tickHost(c, QUIET + 3);
  assert.deepEqual(quiesced(c), [1, 2, 3, 4]);
  assert.equal(c.get(1).term, 2);
});

test('a learner\'s nudges leave its election timer alone: past a timeout without its leader, it heeds votes', () => {
  const c = quietGroupWithLearner();
  c.isolate(1);
  c.get(4).wake();
  const before = c.sent.length;
  for (let i = 0; i < 3 * ELECTION && !c.sent.slice(before).some((m) => m.from === 4); i++) tickHost(c, 1, [4]);
  assert.ok(c.sent.slice(before).some((m) => m.from === 4 && m.type === MessageType.HeartbeatResp), 'it nudged');
  tickHost(c, 1, [4]);
  // A vote for the next term (say its configuration is behind and it is a voter already): the
  // learner has not heard from its leader for over an election timeout, so it listens.
  c.inject(msg(MessageType.Vote, 2, 4, 3, { index: c.get(2).lastIndex(), logTerm: 2 }));
  assert.equal(c.get(4).term, 3);
  assert.equal(c.deliveredWhere(MessageType.VoteResp, 4, 2).filter((m) => !m.reject).length, 1);
});

test('a quiesced leader does not serve lease reads: the first read after waking needs a heartbeat round', () => {
  const c = quietGroup({ leaseRead: true });
  c.tickAll(1);
  assert.ok(c.get(1).readIndex(1).ok);
  c.flush();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1], 'within its lease, a read is served at once');
  tickHost(c, QUIET + 2);
  assert.equal(c.get(1).quiesced, true);
  c.hold = (m) => m.type === MessageType.HeartbeatResp;
  assert.ok(c.get(1).readIndex(2).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1], 'no lease after quiescing');
  c.release();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1, 2], 'served once a quorum answered a round');
  // The round it took starts a new lease.
  assert.ok(c.get(1).readIndex(3).ok);
  c.flush();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [1, 2, 3]);
});

test('check-quorum does not depose a freshly woken leader, and judges it only on what it hears after waking', () => {
  // Woken after a long quiet spell, with followers that answer: it keeps leading.
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  c.tickAll(1000);
  assert.ok(c.propose(1, 'a').ok);
  tickHost(c, 1);
  c.hold = (m) => m.type === MessageType.HeartbeatResp; // answers arrive late, within the window
  tickHost(c, ELECTION - 2);
  c.release();
  tickHost(c, 3 * ELECTION);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 2);

  // Woken while cut off: the followers' answers from before quiescing do not count; it steps
  // down one election timeout after waking.
  const d = quietGroup();
  tickHost(d, QUIET + 2);
  d.isolate(1);
  assert.ok(d.get(1).propose(text('lost')).ok);
  d.settle();
  let ticks = 0;
  while (d.get(1).role === Role.Leader) {
    tickHost(d, 1, [1]);
    ticks++;
    assert.ok(ticks <= ELECTION);
  }
  assert.equal(ticks, ELECTION);
});

test('with check-quorum, a leader cut off from its followers does not quiesce; it steps down', () => {
  const c = quietGroup();
  c.isolate(1);
  tickHost(c, 2 * ELECTION, [1]);
  assert.equal(c.get(1).quiesced, false);
  assert.equal(c.get(1).role, Role.Follower);
});

test('messages about rounds older than the quiesce heartbeat wake nobody: late answers at the leader, overtaken heartbeats at a follower', () => {
  const c = quietGroup();
  tickHost(c, QUIET + 2);
  const round = quiesceHeartbeats(c, 1)[0]!.context;
  const sent = c.sent.length;
  c.inject(msg(MessageType.HeartbeatResp, 2, 1, 2, { context: round - 1 }));
  assert.equal(c.get(1).quiesced, true);
  c.inject(msg(MessageType.Heartbeat, 1, 2, 2, { context: round - 1, commit: c.get(1).commit }));
  assert.equal(c.get(2).quiesced, true);
  assert.equal(c.sent.length, sent, 'and nobody answers them');
  // An answer to the quiesce heartbeat itself means the follower did not follow: that wakes it.
  c.inject(msg(MessageType.HeartbeatResp, 2, 1, 2, { context: round }));
  assert.equal(c.get(1).quiesced, false);

  // A heartbeat of a later round (its leader woke meanwhile) wakes a follower, and it answers.
  const d = quietGroup();
  tickHost(d, QUIET + 2);
  const out = d.answer(msg(MessageType.Heartbeat, 1, 3, 2, { context: round + 1, commit: d.get(1).commit }));
  assert.equal(d.get(3).quiesced, false);
  assert.deepEqual(out.map((m) => [MessageType[m.type], m.context]), [['HeartbeatResp', round + 1]]);
});

test('the quiesce flag crosses the wire: in a Heartbeat message and in a coalesced heartbeat item', () => {
  const m = msg(MessageType.Heartbeat, 1, 2, 7, { commit: 40, context: 3, quiesce: true });
  const buf = new Uint8Array(raftMessageBytes(m));
  encodeRaftMessage(m, buf, 0);
  assert.deepEqual(decodeRaftMessage(buf, 0, buf.length), m);
  const items = [{ group: 5, m }, { group: 6, m: { ...m, quiesce: false } }];
  const hb = new Uint8Array(heartbeatsBytes(2));
  const end = encodeHeartbeats(items, hb, 0);
  const seen: [number, boolean][] = [];
  decodeHeartbeats(hb, 0, end, () => true, (g, x) => seen.push([g, x.quiesce]));
  assert.deepEqual(seen, [[5, true], [6, false]]);
});
