// Log replication: log matching and repair, the commit rule, flow control (pipelining and
// message bounds), durability before acknowledgement, and the limits on what a leader accepts.
import { APP_NO_ANSWER } from '../../src/raft/types.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, msg, text, ledByOne, entry } from './harness.js';
import { EntryType, MessageType, Role, type Entry } from '../../src/raft/types.js';


test('log matching: a follower rejects an append whose previous entry does not match, and keeps its log', () => {
  const c = ledByOne();
  assert.ok(c.propose(1, 'a').ok);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2']);
  // Same index, other term.
  let out = c.answer(msg(MessageType.App, 1, 2, 2, { index: 3, logTerm: 1, entries: [entry(4, 2, 'b')], commit: 3 }));
  assert.equal(out.length, 1);
  assert.equal(out[0]!.type, MessageType.AppResp);
  assert.equal(out[0]!.reject, true);
  assert.equal(out[0]!.index, 3);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2']);
  // Beyond the end of the log: the hint points at the follower's last entry.
  out = c.answer(msg(MessageType.App, 1, 2, 2, { index: 9, logTerm: 2, entries: [entry(10, 2, 'b')], commit: 3 }));
  assert.equal(out[0]!.reject, true);
  assert.equal(out[0]!.rejectHint, 3);
  assert.equal(out[0]!.logTerm, 2);
  assert.equal(c.get(2).lastIndex(), 3);
  // A matching one is accepted.
  out = c.answer(msg(MessageType.App, 1, 2, 2, { index: 3, logTerm: 2, entries: [entry(4, 2, 'b')], commit: 3 }));
  assert.deepEqual(out.map((m) => [m.type, m.reject, m.index]), [[MessageType.AppResp, false, 4]]);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2', '4:2']);
});

test('a follower\'s rejection skips every entry of a term newer than the probe\'s', () => {
  // 2's log ends with a long run of term-3 entries (5..30) that the term-5 leader does not have.
  const c = new Cluster([1, 2, 3], { checkQuorum: false });
  c.settle();
  const ents: Entry[] = [entry(2, 2), entry(3, 2), entry(4, 2)];
  for (let i = 5; i <= 30; i++) ents.push(entry(i, 3));
  c.answer(msg(MessageType.App, 3, 2, 3, { index: 1, logTerm: 1, entries: ents, commit: 1 }));
  assert.equal(c.get(2).lastIndex(), 30);
  const out = c.answer(msg(MessageType.App, 1, 2, 5, { index: 40, logTerm: 2, entries: [], commit: 1 }));
  assert.equal(out[0]!.reject, true);
  assert.equal(out[0]!.rejectHint, 4, 'the last entry whose term is at most the probe\'s');
  assert.equal(out[0]!.logTerm, 2);
});

test('fast backtracking: a follower with a long divergent tail is repaired in a few round trips, not one per entry', () => {
  const c = ledByOne();
  assert.ok(c.propose(1, 'a').ok);
  assert.ok(c.propose(1, 'b').ok);
  // 1 is cut off but still leads in its own eyes: 50 entries of term 2 (5..54) that nobody else sees.
  c.isolate(1);
  for (let i = 0; i < 50; i++) assert.ok(c.get(1).propose(text(`stale${i}`)).ok);
  c.settle();
  assert.equal(c.get(1).lastIndex(), 54);
  // 2 and 3 elect a leader for term 3 which writes 50 entries of its own (5..55), then hands
  // over to the other, so that the new leader starts probing 1 at its own (long) log's end.
  const l3 = c.tickUntilLeader([2, 3]);
  for (let i = 0; i < 50; i++) assert.ok(c.get(l3).propose(text(`new${i}`)).ok);
  c.settle();
  const l4 = l3 === 2 ? 3 : 2;
  assert.ok(c.get(l3).transferLeader(l4).ok);
  c.settle();
  assert.equal(c.get(l4).role, Role.Leader);
  assert.equal(c.get(l4).lastIndex(), 56);
  c.heal();
  const before = c.delivered.length;
  c.tickAll(3);
  const traffic = c.delivered.slice(before);
  const rejects = traffic.filter((m) => m.type === MessageType.AppResp && m.from === 1 && m.reject);
  assert.ok(rejects.length >= 1, 'the divergence was found by a rejection');
  assert.ok(rejects.length <= 2, `rejections: ${rejects.length} (one per entry would be about 50)`);
  const apps = traffic.filter((m) => m.type === MessageType.App && m.to === 1);
  assert.ok(apps.length <= 4, `appends to 1: ${apps.length}`);
  assert.deepEqual(c.logTerms(1), c.logTerms(l4));
  assert.deepEqual(c.appliedData(1), c.appliedData(l4));
  assert.ok(!c.appliedData(1).some((d) => d.startsWith('stale')));
});

test('a conflicting uncommitted suffix is replaced by the leader\'s entries', () => {
  const c = ledByOne();
  // 2 and 3 receive x and y but their acknowledgements are held: nothing past 2 commits.
  c.hold = (m) => m.type === MessageType.AppResp;
  c.propose(1, 'x');
  c.propose(1, 'y');
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2', '4:2']);
  assert.equal(c.get(2).commit, 2);
  // A term-3 leader (3) whose log has a different entry at 3.
  const out = c.answer(msg(MessageType.App, 3, 2, 3, { index: 2, logTerm: 2, entries: [entry(3, 3, 'z')], commit: 2 }));
  assert.deepEqual(out.map((m) => [m.type, m.reject, m.index, m.to]), [[MessageType.AppResp, false, 3, 3]]);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:3']);
  const st = c.member(2).storage;
  assert.equal(st.lastIndex(), 3, 'the stale suffix is gone from storage too');
  assert.equal(st.term(3), 3);
  assert.equal(c.get(2).leader, 3);
  assert.equal(c.get(2).term, 3);
});

test('an append that repeats entries the follower has (a duplicate) changes nothing and is acknowledged', () => {
  const c = ledByOne();
  c.hold = (m) => m.type === MessageType.AppResp;
  c.propose(1, 'x');
  c.propose(1, 'y');
  assert.equal(c.get(2).commit, 2);
  const out = c.answer(msg(MessageType.App, 1, 2, 2, { index: 2, logTerm: 2, entries: [entry(3, 2, 'x')], commit: 2 }));
  assert.deepEqual(out.map((m) => [m.reject, m.index]), [[false, 3]]);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2', '4:2'], 'entry 4 is kept: the append did not conflict');
});

test('committed entries are never overwritten: an append below the commit index is answered with the commit index and ignored', () => {
  const c = ledByOne();
  c.propose(1, 'x');
  c.propose(1, 'y');
  assert.equal(c.get(2).commit, 4);
  // A late duplicate from the current leader.
  let out = c.answer(msg(MessageType.App, 1, 2, 2, { index: 1, logTerm: 1, entries: [entry(2, 2)], commit: 2 }));
  assert.deepEqual(out.map((m) => [m.reject, m.index]), [[false, 4]]);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2', '4:2']);
  // An append from a higher term whose entries conflict with committed ones (no correct leader
  // sends this: it would lack committed entries and could not have been elected).
  out = c.answer(msg(MessageType.App, 3, 2, 9, { index: 2, logTerm: 2, entries: [entry(3, 9, 'evil'), entry(4, 9, 'evil')], commit: 2 }));
  assert.deepEqual(out.map((m) => [m.reject, m.index]), [[false, 4]]);
  assert.deepEqual(c.logTerms(2), ['1:1', '2:2', '3:2', '4:2']);
  assert.equal(c.get(2).commit, 4);
  assert.deepEqual(c.appliedData(2), ['x', 'y']);
});

test('leader completeness: an entry committed just before the leader fails is kept by the next leader', () => {
  const c = new Cluster([1, 2, 3, 4, 5]);
  c.settle();
  assert.ok(c.elect(1));
  for (const id of [4, 5]) c.isolate(id);
  assert.ok(c.propose(1, 'x').ok);
  assert.equal(c.get(1).commit, 3);
  c.heal();
  c.isolate(1);
  const l = c.tickUntilLeader([2, 3, 4, 5]);
  assert.ok(l === 2 || l === 3, `leader ${l} lacks the committed entry`);
  c.tickAll(2);
  for (const id of [2, 3, 4, 5]) {
    assert.deepEqual(c.appliedData(id), ['x'], `member ${id}`);
    assert.equal(c.get(id).entryTerm(3), 2);
  }
});

/**
 * Figure 8 of the Raft paper, with 5 members (our logs start with the bootstrap entry at 1 and
 * the term-2 no-op at 2, so the paper's index 2 is our 3). Ends in state (c): 1 leads in term 4,
 * entry 3 (term 2) is on 1, 2, 3 and 4, and the term-4 no-op at 4 only on 1 and 2.
 */
function figure8(): Cluster {
  const c = new Cluster([1, 2, 3, 4, 5], { preVote: false, checkQuorum: false, entriesPerMsgMax: 1 });
  c.settle();
  assert.ok(c.elect(1));
  // (a) 1 writes x at 3 in term 2; only 2 receives it.
  for (const id of [3, 4, 5]) c.cutLink(1, id);
  assert.ok(c.propose(1, 'x').ok);
  assert.equal(c.get(2).entryTerm(3), 2);
  // (b) 1 crashes; 5 wins term 3 with 3 and 4 and writes its no-op at 3, which nobody receives.
  c.heal();
  c.isolate(1);
  c.filter = (m) => !(m.from === 5 && m.type === MessageType.App);
  assert.ok(c.elect(5));
  assert.equal(c.get(5).term, 3);
  assert.equal(c.get(5).entryTerm(3), 3);
  // (c) 5 crashes; 1 restarts and wins term 4 (after a lost term-3 attempt). Its no-op reaches
  // only 2: the copies for 3 and 4 are stripped of term-4 entries, so 3 and 4 end up with x.
  c.heal();
  c.isolate(5);
  c.filter = (m) => {
    if (m.type === MessageType.App && m.from === 1 && (m.to === 3 || m.to === 4)) m.entries = m.entries.filter((e) => e.term !== 4);
    return true;
  };
  c.restart(1);
  c.settle();
  for (let i = 0; i < 5 && !c.elect(1); i++);
  assert.equal(c.get(1).role, Role.Leader);
  assert.equal(c.get(1).term, 4);
  return c;
}

test('Figure 8: an entry of an old term on a majority is not committed by counting replicas', () => {
  const c = figure8();
  for (const id of [1, 2, 3, 4]) assert.equal(c.get(id).entryTerm(3), 2, `x on ${id}`);
  assert.equal(c.matchOf(1, 3), 3);
  assert.equal(c.matchOf(1, 4), 3);
  assert.equal(c.get(1).commit, 2, 'x sits on 4 of 5 members but is of term 2');
  for (const id of [1, 2, 3, 4]) assert.deepEqual(c.appliedData(id), [], `nothing new applied on ${id}`);
  // (e) Once an entry of term 4 is on a majority, it commits, and x with it.
  c.filter = () => true;
  assert.ok(c.propose(1, 'y').ok);
  assert.equal(c.get(1).commit, 5);
  c.tickAll(1);
  for (const id of [1, 2, 3, 4]) assert.deepEqual(c.appliedData(id), ['x', 'y'], `member ${id}`);
});

test('Figure 8: ...because a later leader may still overwrite it', () => {
  const c = figure8();
  // (d) 1 crashes; 5 restarts and wins term 5 with 3 and 4, whose last term (2) is older than its own (3).
  c.filter = () => true;
  c.heal();
  c.isolate(1);
  c.restart(5);
  c.settle();
  for (let i = 0; i < 5 && !c.elect(5); i++);
  assert.equal(c.get(5).role, Role.Leader);
  c.tickAll(2);
  for (const id of [2, 3, 4, 5]) {
    assert.equal(c.get(id).entryTerm(3), 3, `entry 3 on ${id} replaced`);
    assert.ok(c.get(id).commit >= 4);
    assert.ok(!c.appliedData(id).includes('x'), `x was never committed, so never applied (${id})`);
  }
});

test('the commit index never regresses (across restarts too), and members never apply different entries at one index', () => {
  const c = new Cluster([1, 2, 3, 4, 5]);
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const commits = new Map<number, number>();
  const appliedAt = new Map<number, string>();
  c.onReady = (id, rd) => {
    if (rd.hardState !== null) {
      assert.ok(rd.hardState.commit >= (commits.get(id) ?? 0), `hard state commit of ${id} went back`);
      commits.set(id, rd.hardState.commit);
    }
    for (const e of rd.committedEntries) {
      const k = `${e.term}/${new TextDecoder().decode(e.data)}`;
      const prev = appliedAt.get(e.index);
      assert.ok(prev === undefined || prev === k, `index ${e.index}: ${prev} then ${k} (on ${id})`);
      appliedAt.set(e.index, k);
    }
  };
  const seen = new Map<number, number>();
  const check = (): void => {
    for (const id of [1, 2, 3, 4, 5]) {
      const now = c.get(id).commit;
      assert.ok(now >= (seen.get(id) ?? 0), `commit of ${id} went from ${seen.get(id)} to ${now}`);
      seen.set(id, now);
    }
  };
  c.settle();
  let proposals = 0;
  for (let step = 0; step < 400; step++) {
    const r = rand(10);
    if (r < 5) c.tickAll();
    else if (r < 8) {
      const l = c.leader();
      if (l !== null && c.get(l).propose(text(`p${proposals++}`)).ok) c.settle();
    } else if (r === 8) {
      c.heal();
      c.isolate(1 + rand(5));
    } else if (rand(2) === 0) {
      c.restart(1 + rand(5));
      c.settle();
    } else {
      c.heal();
    }
    check();
  }
  c.heal();
  c.tickAll(30);
  const l = c.leader();
  assert.ok(l !== null);
  assert.ok(c.get(l).commit > 20, `progress was made: commit ${c.get(l).commit}`);
});

test('pipelining: with inflightMsgsMax = 3 a leader sends at most 3 appends to a silent follower, and resumes when it answers', () => {
  const c = ledByOne({ inflightMsgsMax: 3 });
  c.hold = (m) => m.type === MessageType.AppResp && m.from === 2;
  const before = c.delivered.length;
  for (let i = 0; i < 10; i++) assert.ok(c.propose(1, `e${i}`).ok);
  const toTwo = c.delivered.slice(before).filter((m) => m.type === MessageType.App && m.to === 2 && m.entries.length > 0);
  assert.equal(toTwo.length, 3);
  assert.equal(c.get(2).lastIndex(), 5);
  assert.equal(c.get(1).commit, 12, '3 keeps the group committing');
  c.release();
  assert.equal(c.get(2).lastIndex(), 12);
  assert.equal(c.get(2).commit, 12);
  assert.equal(c.appliedData(2).length, 10);
});

test('pipelining: the inflight window is bounded in bytes as well (inflightBytesMax)', () => {
  const c = ledByOne({ inflightBytesMax: 100 });
  c.hold = (m) => m.type === MessageType.AppResp && m.from === 2;
  const before = c.delivered.length;
  for (let i = 0; i < 6; i++) assert.ok(c.propose(1, 'x'.repeat(40)).ok);
  const toTwo = c.delivered.slice(before).filter((m) => m.type === MessageType.App && m.to === 2 && m.entries.length > 0);
  // 40, 80, then 120 ≥ 100 bytes in flight: the window is full after the third.
  assert.equal(toTwo.length, 3);
  c.release();
  assert.equal(c.get(2).lastIndex(), c.get(1).lastIndex());
});

test('an append lost in the network is sent again after a heartbeat, without waiting for a new proposal', () => {
  const c = ledByOne();
  // The appends carrying 'a' to both followers are lost: nothing commits, nothing else is proposed.
  const lost = new Set([2, 3]);
  c.filter = (m) => !(m.type === MessageType.App && m.entries.length > 0 && lost.delete(m.to));
  assert.ok(c.propose(1, 'a').ok);
  assert.equal(c.get(2).lastIndex(), 2);
  assert.equal(c.get(3).lastIndex(), 2);
  c.tickAll(5);
  assert.equal(c.get(1).commit, 3);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a'], `member ${id}`);
});

test('a lost append to one follower is repaired when the commit index moves', () => {
  const c = ledByOne();
  let drops = 1;
  c.filter = (m) => !(m.type === MessageType.App && m.to === 2 && m.entries.length > 0 && drops-- > 0);
  assert.ok(c.propose(1, 'a').ok);
  // 3 committed it, and the leader's next append (carrying the commit) exposed 2's gap.
  assert.equal(c.get(1).commit, 3);
  assert.deepEqual(c.appliedData(2), ['a']);
});

test('news of the commit index alone is not answered by a follower that accepts it, but a follower that cannot still answers', () => {
  const c = ledByOne();
  assert.ok(c.propose(1, 'a').ok);
  const notices = c.deliveredWhere(MessageType.App, 1).filter((m) => m.entries.length === 0 && m.context === APP_NO_ANSWER);
  assert.ok(notices.length > 0, 'the commit of "a" went out as a notice that wants no answer');
  const notice = notices[notices.length - 1]!;
  assert.deepEqual(c.answer({ ...notice }), [], 'a notice was answered');
  // A follower whose log lacks the entry before the notice (it lost its tail) rejects it, and says so.
  const answers = c.answer({ ...notice, index: notice.index + 5, commit: notice.index }).filter((m) => m.type === MessageType.AppResp);
  assert.equal(answers.length, 1);
  assert.equal(answers[0]!.reject, true);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a'], `member ${id}`);
});

test('a leader whose whole inflight window was lost resumes replication', () => {
  const c = ledByOne({ inflightMsgsMax: 2 });
  c.filter = (m) => !(m.type === MessageType.App && m.entries.length > 0);
  for (let i = 0; i < 2; i++) assert.ok(c.propose(1, `e${i}`).ok);
  c.filter = () => true;
  c.tickAll(5);
  assert.ok(c.propose(1, 'e2').ok);
  c.tickAll(5);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['e0', 'e1', 'e2'], `member ${id}`);
});

test('entries per append are bounded by entriesPerMsgMax', () => {
  const c = new Cluster([1, 2, 3], { entriesPerMsgMax: 4 });
  c.settle();
  c.isolate(3);
  assert.ok(c.elect(1));
  for (let i = 0; i < 20; i++) assert.ok(c.propose(1, `e${i}`).ok);
  c.heal();
  const before = c.delivered.length;
  c.tickAll(3);
  const apps = c.delivered.slice(before).filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
  assert.ok(apps.every((m) => m.entries.length <= 4), `sizes ${apps.map((m) => m.entries.length).join(',')}`);
  assert.ok(apps.length >= 6, `21 entries need at least 6 appends, got ${apps.length}`);
  assert.deepEqual(c.logTerms(3), c.logTerms(1));
  assert.equal(c.appliedData(3).length, 20);
});

test('entries per append are bounded by bytesPerMsgMax (one oversized entry still goes alone)', () => {
  const c = new Cluster([1, 2, 3], { bytesPerMsgMax: 100 });
  c.settle();
  c.isolate(3);
  assert.ok(c.elect(1));
  for (let i = 0; i < 9; i++) assert.ok(c.propose(1, `e${i}`.padEnd(30, '.')).ok);
  assert.ok(c.propose(1, 'big'.padEnd(250, '.')).ok);
  for (let i = 0; i < 3; i++) assert.ok(c.propose(1, `f${i}`.padEnd(30, '.')).ok);
  c.heal();
  const before = c.delivered.length;
  c.tickAll(3);
  const apps = c.delivered.slice(before).filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
  for (const m of apps) {
    const bytes = m.entries.reduce((n, e) => n + e.data.length, 0);
    assert.ok(m.entries.length === 1 || bytes <= 100, `${m.entries.length} entries, ${bytes} bytes`);
  }
  assert.ok(apps.some((m) => m.entries.length === 1 && m.entries[0]!.data.length === 250), 'the big entry went alone');
  assert.ok(apps.some((m) => m.entries.length === 3), 'three 30-byte entries fit in 100 bytes');
  assert.equal(c.appliedData(3).length, 13);
});

test('a leader counts itself toward a commit only once its own Ready is persisted', () => {
  const c = ledByOne();
  c.manual.add(1);
  c.cutLink(3, 1); // only 2 answers
  const r = c.get(1).propose(text('a'));
  assert.ok(r.ok);
  const rd = c.get(1).ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  // The appends go out at once, before the leader's own write.
  assert.deepEqual(rd.messages.filter((m) => m.type === MessageType.App).map((m) => m.to).sort(), [2, 3]);
  assert.equal(rd.messagesAfterPersist.length, 0);
  c.send(rd.messages);
  c.settle();
  assert.equal(c.matchOf(1, 2), 3, '2 acknowledged');
  assert.equal(c.get(1).commit, 2, '2 alone is not a quorum while the leader\'s copy is not durable');
  c.persist(1, rd);
  assert.equal(c.get(1).commit, 3);
  c.manual.delete(1);
  c.settle();
  c.tickAll(1);
  assert.deepEqual(c.appliedData(2), ['a']);
});

test('two followers are a quorum without the leader\'s own write, but the leader applies only what it has made durable', () => {
  const c = ledByOne();
  c.manual.add(1);
  assert.ok(c.get(1).propose(text('a')).ok);
  const rd = c.get(1).ready();
  c.send(rd.messages);
  c.settle();
  assert.equal(c.get(1).commit, 3, 'committed by 2 and 3 before the leader persisted');
  const rd2 = c.get(1).ready();
  assert.deepEqual(rd2.committedEntries, [], 'entry 3 is not durable on the leader yet');
  c.persist(1, rd);
  c.persist(1, rd2);
  const rd3 = c.get(1).ready();
  assert.deepEqual(rd3.committedEntries.map((e) => e.index), [3]);
  c.persist(1, rd3);
  assert.deepEqual(c.appliedData(1), ['a']);
});

test('a follower acknowledges an append only after persisting it (AppResp is in messagesAfterPersist)', () => {
  const c = ledByOne();
  c.manual.add(2);
  c.propose(1, 'a');
  const rd = c.get(2).ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.equal(rd.messages.filter((m) => m.type === MessageType.AppResp).length, 0);
  assert.ok(rd.messagesAfterPersist.length > 0);
  assert.ok(rd.messagesAfterPersist.every((m) => m.type === MessageType.AppResp && m.index === 3));
});

test('a vote is granted only after it is persisted (VoteResp is in messagesAfterPersist, with the vote in the hard state)', () => {
  const c = new Cluster([1, 2, 3], { preVote: false });
  c.settle();
  c.manual.add(2);
  c.get(1).campaign();
  const cand = c.get(1).ready();
  // The candidate's own vote for itself must be durable before it asks.
  assert.equal(cand.messages.filter((m) => m.type === MessageType.Vote).length, 0);
  assert.equal(cand.messagesAfterPersist.filter((m) => m.type === MessageType.Vote).length, 2);
  assert.deepEqual(cand.hardState, { term: 2, vote: 1, commit: 1 });
  c.get(2).step(cand.messagesAfterPersist.find((m) => m.to === 2)!);
  const rd = c.get(2).ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.equal(rd.messages.filter((m) => m.type === MessageType.VoteResp).length, 0);
  assert.deepEqual(rd.messagesAfterPersist.map((m) => [m.type, m.to, m.reject]), [[MessageType.VoteResp, 1, false]]);
});

test('across elections and replication, AppResp, Vote and VoteResp are never sent before persisting', () => {
  const c = new Cluster([1, 2, 3]);
  const early: string[] = [];
  c.onReady = (id, rd) => {
    for (const m of rd.messages) {
      if (m.type === MessageType.AppResp || m.type === MessageType.Vote || m.type === MessageType.VoteResp) early.push(`${id}:${MessageType[m.type]}`);
    }
  };
  c.settle();
  c.tickUntilLeader([1, 2, 3]);
  const l = c.leader()!;
  for (let i = 0; i < 5; i++) c.propose(l, `p${i}`);
  c.isolate(l);
  c.tickUntilLeader([1, 2, 3].filter((id) => id !== l));
  c.heal();
  c.tickAll(5);
  assert.ok(c.sent.some((m) => m.type === MessageType.AppResp) && c.sent.some((m) => m.type === MessageType.VoteResp));
  assert.deepEqual(early, []);
});

test('a proposal to a follower is refused with NOT_LEADER and the leader\'s id', () => {
  const c = ledByOne();
  assert.deepEqual(c.get(2).propose(text('a')), { ok: false, code: 'NOT_LEADER', leader: 1 });
  const fresh = new Cluster([1, 2, 3]);
  fresh.settle();
  assert.deepEqual(fresh.get(2).propose(text('a')), { ok: false, code: 'NOT_LEADER', leader: 0 }, 'no leader known yet');
});

test('beyond uncommittedEntriesMax a leader answers OVERLOADED, and accepts again once entries commit', () => {
  const c = ledByOne({ uncommittedEntriesMax: 3 });
  c.hold = (m) => m.type === MessageType.App && m.from === 1;
  for (let i = 0; i < 3; i++) assert.ok(c.propose(1, `e${i}`).ok);
  assert.deepEqual(c.propose(1, 'e3'), { ok: false, code: 'OVERLOADED', leader: 1 });
  c.release();
  assert.equal(c.get(1).commit, 5);
  assert.ok(c.propose(1, 'e3').ok);
  assert.deepEqual(c.appliedData(2), ['e0', 'e1', 'e2', 'e3']);
});

test('beyond uncommittedBytesMax a leader answers OVERLOADED, and accepts again once entries commit', () => {
  const c = ledByOne({ uncommittedBytesMax: 10 });
  c.hold = (m) => m.type === MessageType.App && m.from === 1;
  assert.ok(c.propose(1, 'aaaaaa').ok);
  assert.deepEqual(c.propose(1, 'bbbbbb'), { ok: false, code: 'OVERLOADED', leader: 1 });
  assert.ok(c.propose(1, 'cccc').ok, 'exactly at the bound is allowed');
  assert.equal(c.propose(1, 'd').ok, false);
  c.release();
  assert.ok(c.propose(1, 'bbbbbb').ok);
  assert.deepEqual(c.appliedData(3), ['aaaaaa', 'cccc', 'bbbbbb']);
});

test('a single proposal larger than uncommittedBytesMax is accepted when nothing else is uncommitted', () => {
  const c = ledByOne({ uncommittedBytesMax: 10 });
  assert.ok(c.propose(1, 'x'.repeat(50)).ok);
  assert.equal(c.appliedData(2).length, 1);
});

test('a heartbeat tick sends nothing while every member answers appends, and heartbeats to all once one does not', () => {
  const c = ledByOne();
  const heartbeats = (): number => c.sentWhere(MessageType.Heartbeat, 1).length;
  // Busy: a proposal between ticks, answered by both followers.
  const before = heartbeats();
  for (let i = 0; i < 5; i++) {
    assert.ok(c.propose(1, `e${i}`).ok);
    c.tick(1);
    c.settle();
  }
  assert.equal(heartbeats(), before, 'a busy group sent heartbeats');
  // 3 stops answering: the next ticks heartbeat to everyone, and 3 is still repaired later.
  c.isolate(3);
  assert.ok(c.propose(1, 'lost to 3').ok);
  c.tick(1);
  c.settle();
  c.tick(1);
  c.settle();
  const sent = c.sentWhere(MessageType.Heartbeat, 1).slice(before);
  assert.ok(sent.some((m) => m.to === 2) && sent.some((m) => m.to === 3), `heartbeats went to ${sent.map((m) => m.to).join(',')}`);
  c.heal();
  c.tick(1);
  c.settle();
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['e0', 'e1', 'e2', 'e3', 'e4', 'lost to 3'], `member ${id}`);
  // A read waiting for a round is never left without one.
  c.tick(1);
  c.settle();
  assert.ok(c.get(1).readIndex(9).ok);
  c.settle();
  assert.deepEqual(c.member(1).reads.map((r) => r.requestId), [9]);
});
