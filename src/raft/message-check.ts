// What the core refuses to step: messages no correct peer sends. Messages come from the wire,
// so "impossible" is an input error here, not a bug: such a message is dropped and its reason
// returned (the host counts it), never asserted on; the core's assertions stay for its own
// invariants, which these checks protect (an append whose entries skip an index would otherwise
// reach RaftLog.commitTo with a commit beyond the log).
//
// Checked: the sender (not 0, not this member); entries only on App, numbered from index + 1
// without a gap, their terms not decreasing, not below logTerm and not above the message's term;
// a Snap's snapshot present, at index ≥ 1, of a term ≤ the message's, with voters; an AppResp's
// index within this member's log; responses (AppResp, HeartbeatResp, VoteResp, PreVoteResp) only
// from members of the configuration. Requests (App, Heartbeat, Snap, Vote, PreVote, TimeoutNow)
// from a node outside the configuration are let through: a member that has not applied the
// change that added the sender yet must still hear from it (a new leader, or a candidate it has
// to vote for), as in Raft's own rule that a server acts on RPCs from servers not in its
// configuration.
import { MessageType, Role, type Message } from './types.js';
import type { RaftState } from './state.js';

/** Why a message was refused; stable names, used as metric labels. */
export type MessageProblem = 'badSender' | 'badEntries' | 'badSnapshot' | 'badIndex' | 'notMember';

export const MESSAGE_PROBLEMS: readonly MessageProblem[] = ['badSender', 'badEntries', 'badSnapshot', 'badIndex', 'notMember'];

/** Why `m` must not be stepped into `r`, or null. Cost: one pass over the entries of an App. */
export function messageProblem(r: RaftState, m: Message): MessageProblem | null {
  if (m.from === 0 || m.from === r.id) return 'badSender';
  const es = m.entries;
  switch (m.type) {
    case MessageType.App: {
      if (m.logTerm > m.term || (m.index === 0 && m.logTerm !== 0)) return 'badEntries';
      let prev = m.logTerm;
      for (let i = 0; i < es.length; i++) {
        const e = es[i]!;
        if (e.index !== m.index + 1 + i || e.term < prev || e.term > m.term) return 'badEntries';
        prev = e.term;
      }
      return null;
    }
    case MessageType.Snap: {
      if (es.length !== 0) return 'badEntries';
      const s = m.snapshot;
      if (s === null || s.meta.index < 1 || s.meta.term < 1 || s.meta.term > m.term || s.meta.conf.voters.length === 0) return 'badSnapshot';
      return null;
    }
    case MessageType.AppResp:
      if (es.length !== 0) return 'badEntries';
      // Only a leader reads an AppResp's index; one reaching a member that stepped down is stale, not bad.
      if (r.role === Role.Leader && (m.index > r.log.lastIndex() || (m.reject && m.rejectHint > m.index))) return 'badIndex';
      return r.trk.progress.has(m.from) ? null : 'notMember';
    case MessageType.HeartbeatResp:
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      if (es.length !== 0) return 'badEntries';
      return r.trk.progress.has(m.from) ? null : 'notMember';
    default:
      return es.length !== 0 ? 'badEntries' : null;
  }
}
