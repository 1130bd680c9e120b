// Leader transfer: the leader catches the target up and sends it TimeoutNow, which makes it
// campaign at once, skipping pre-vote and through leases. Also the hand-over of a leader that
// was removed from the configuration, which is a transfer the leader starts itself.
import { becomeFollower } from './election.js';
import { unquiesce } from './quiescence.js';
import { sendAppend } from './replication.js';
import type { RaftState } from './state.js';
import { message, MessageType, NONE, Role, type NodeId, type ReadResult } from './types.js';

export function transferLeader(r: RaftState, to: NodeId): ReadResult {
  if (r.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: r.leader };
  if (to === r.id) return { ok: true };
  if (!r.trk.isVoter(to)) return { ok: false, code: 'NOT_VOTER', leader: r.id };
  if (r.transferee === to) return { ok: true };
  unquiesce(r);
  r.transferee = to;
  // The target will campaign through every follower's lease, so ours is void for the term.
  r.lease.voidForTerm = true;
  r.lease.forfeit(Infinity);
  // The transfer is abandoned if it has not happened within an election timeout.
  r.time.electionElapsed = 0;
  const pr = r.trk.progress.get(to)!;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, to);
  else sendAppend(r, to, true);
  return { ok: true };
}

/** The target has the leader's whole log: tell it to campaign now. */
export function sendTimeoutNow(r: RaftState, to: NodeId): void {
  r.out.send(message(MessageType.TimeoutNow, r.id, to, r.term));
}

/**
 * At the end of each of the leader's election timeouts: a transfer not done by then is
 * abandoned; a leader that is no longer a voter tries another target (see handOver).
 */
export function abandonTransfer(r: RaftState): void {
  const failed = r.transferee;
  r.transferee = NONE;
  if (!r.trk.isVoter(r.id)) handOver(r, failed);
}

/**
 * This leader was removed (or demoted) and the joint configuration is left. Stepping down at
 * once could strand the group: the voters may not know yet that the change committed (so
 * they still need this member's vote) while this member's log is ahead of theirs. Instead it
 * keeps replicating, without counting itself, until the most caught-up voter has everything,
 * and then tells it to campaign. The target is the most caught-up voter heard from lately,
 * other than `failed` (the previous target, which did not take over in time), so retries
 * every election timeout rotate past a dead voter; check-quorum still deposes it if it is
 * cut off.
 */
export function handOver(r: RaftState, failed: NodeId): void {
  let best: NodeId = NONE;
  let bestScore = -Infinity;
  for (const id of r.trk.voterIds()) {
    const pr = r.trk.progress.get(id);
    if (pr === undefined || id === r.id) continue;
    // Liveness first, then progress; the failed target only as a last resort.
    const score = (id === failed ? 0 : 2) + (pr.recentActive ? 1 : 0);
    const s = score * 1e15 + pr.match;
    if (s > bestScore) { best = id; bestScore = s; }
  }
  const bestMatch = best === NONE ? -1 : r.trk.progress.get(best)!.match;
  if (best === NONE) {
    becomeFollower(r, r.term, NONE);
    return;
  }
  r.transferee = best;
  r.lease.voidForTerm = true;
  r.lease.forfeit(Infinity);
  r.proposals.appendWanted = true;
  if (bestMatch === r.log.lastIndex()) sendTimeoutNow(r, best);
}
