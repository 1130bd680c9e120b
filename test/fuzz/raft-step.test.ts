// Fuzz: what a peer can make a Raft core do. Arbitrary messages, from members and strangers, at
// plausible and absurd indexes and terms, are stepped into the members of a live 3-member
// group (a leader with committed entries, two followers), and the group is run on. Nothing may
// throw: a message no correct peer sends is refused (step returns its reason, message-check.ts),
// never asserted on (issue 12, item 2: an append whose entries skip an index with a commit
// beyond them used to reach RaftLog.commitTo's assertion and stop the node).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EntryType, type Entry, type Message, type MessageType } from '../../src/raft/types.js';
import { MESSAGE_PROBLEMS } from '../../src/raft/message-check.js';
import { ledByOne, text } from '../raft/harness.js';
import { params } from './fuzz-config.js';

const small = fc.integer({ min: 0, max: 12 });
const anyIndex = fc.oneof({ weight: 6, arbitrary: small }, { weight: 1, arbitrary: fc.maxSafeNat() });
const node = fc.constantFrom(0, 1, 2, 3, 4, 9);

/** Entries: numbered right after `index` (as a leader sends them) or anyhow. */
function entriesArb(): fc.Arbitrary<(index: number) => Entry[]> {
  const one = fc.record({ term: small, index: anyIndex, type: fc.constantFrom(EntryType.Normal, EntryType.Batch), data: fc.uint8Array({ maxLength: 8 }) },
    { noNullPrototype: true });
  return fc.tuple(fc.array(one, { maxLength: 4 }), fc.boolean()).map(([es, contiguous]) => (index: number) =>
    contiguous ? es.map((e, i) => ({ ...e, index: index + 1 + i })) : es);
}

const messageArb: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: 1, max: 10 }),
  from: node, to: fc.constantFrom(1, 2, 3),
  term: fc.oneof({ weight: 6, arbitrary: small }, { weight: 1, arbitrary: fc.maxSafeNat() }),
  index: anyIndex, logTerm: small, commit: anyIndex, reject: fc.boolean(), rejectHint: anyIndex,
  context: anyIndex, quiesce: fc.boolean(), entries: entriesArb(),
  snap: fc.option(fc.record({
    index: anyIndex, term: small,
    voters: fc.array(fc.constantFrom(1, 2, 3, 4), { maxLength: 4 }),
    learners: fc.array(fc.constantFrom(4, 5), { maxLength: 2 }),
  }), { nil: null }),
}).map((r) => ({
  type: r.type as MessageType, from: r.from, to: r.to, term: r.term, index: r.index, logTerm: r.logTerm,
  entries: r.entries(r.index), commit: r.commit, reject: r.reject, rejectHint: r.rejectHint, context: r.context,
  snapshot: r.snap === null ? null : {
    meta: { index: r.snap.index, term: r.snap.term, conf: { voters: [...new Set(r.snap.voters)], votersOutgoing: [], learners: [...new Set(r.snap.learners)], learnersNext: [] } },
    data: new Uint8Array(0),
  },
  quiesce: r.quiesce,
}));

test('fuzz: no message, from anyone, makes a Raft core throw; refusals carry a known reason', () => {
  // `anchored`: the message's (index, logTerm) taken from the recipient's own log, so that
  // appends get past the log-matching check and reach what follows it.
  const anchoredArb = fc.array(fc.boolean(), { maxLength: 12 });
  fc.assert(fc.property(fc.array(messageArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(3), { maxLength: 12 }), anchoredArb, (msgs, ticks, anchored) => {
    const c = ledByOne();
    c.get(1).propose(text('a'));
    c.get(1).propose(text('b'));
    c.settle();
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (anchored[i] === true) {
        const st = c.member(m.to).storage;
        // Within what the storage still holds (a snapshot install compacts it).
        m.index = Math.max(Math.min(m.index, st.lastIndex()), st.firstIndex() - 1);
        m.logTerm = m.index === 0 ? 0 : st.term(m.index);
        if (m.term < m.logTerm) m.term = m.logTerm;
        for (const e of m.entries) e.term = Math.max(e.term, m.logTerm);
      }
      const problem = c.get(m.to).step(m);
      if (problem !== null) assert.ok(MESSAGE_PROBLEMS.includes(problem), `reason ${problem}`);
      c.settle(20_000);
      for (let t = 0; t < (ticks[i] ?? 0); t++) c.tickAll();
      c.settle(20_000);
    }
  }), params(1000));
});
