// Quiescence: an idle group stops ticking (docs/raft.md, "Quiescence").
//
// A leader with nothing to do for `ticksQuiesce` ticks sends one last, flagged heartbeat and
// ignores ticks from then on; a follower whose log equals the leader's follows it into
// silence. Anything that gives the group work (a request, a message, the host's `wake()`)
// wakes the member again. Only *when* members act on ticks changes, never what they accept.
import { restartCheckQuorum } from './election.js';
import { ProgressState } from './progress.js';
import { broadcastHeartbeat } from './replication.js';
import type { RaftState } from './state.js';
import { isJoint } from './conf-change.js';
import { message, MessageType, NONE, Role, type Message } from './types.js';

export class Quiescence {
  /** The group is idle and this member ignores ticks until something wakes it (see quiesce). */
  quiesced = false;
  /** Leader: consecutive ticks with nothing to do (see quiescable). */
  ticksIdle = 0;
  /** Leader: the first heartbeat round sent in the current idle stretch. */
  roundIdleFirst = 0;
  /**
   * The read round of the quiesce heartbeat this member sent (leader) or followed (follower);
   * 0: none in this role. Messages about older rounds carry no news and do not wake it (see
   * staleWhileQuiesced).
   */
  round = 0;
  /** Leader: broadcast a heartbeat at the next Ready (it was just woken). */
  heartbeatWanted = false;
}

/**
 * The leader's tick, as far as quiescence goes: counts idle ticks and quiesces once there were
 * enough. Returns true when the leader has just gone quiet (its tick ends there).
 */
export function tickQuiesce(r: RaftState): boolean {
  if (r.cfg.ticksQuiesce <= 0) return false;
  const q = r.quiet;
  if (!quiescable(r)) {
    q.ticksIdle = 0;
    return false;
  }
  if (q.ticksIdle++ === 0) q.roundIdleFirst = r.reads.round + 1;
  // Only a leader that a quorum answered while idle goes quiet: one that is cut off keeps
  // heartbeating (and with check-quorum steps down) rather than sleep on as leader.
  if (q.ticksIdle >= r.cfg.ticksQuiesce && r.reads.roundQuorum >= q.roundIdleFirst) {
    quiesce(r);
    return true;
  }
  return false;
}

/**
 * The leader has nothing to do: every member (voters and learners) holds its whole log, all
 * of it committed and applied here, and no read, configuration change or transfer is under
 * way. Followers need nothing more from it but its heartbeats.
 */
function quiescable(r: RaftState): boolean {
  const log = r.log;
  const last = log.lastIndex();
  if (log.committed !== last || log.applied !== last) return false;
  if (r.transferee !== NONE || !r.trk.isVoter(r.id)) return false;
  if (isJoint(r.trk.conf) || r.proposals.pendingConfIndex > log.applied) return false;
  if (r.reads.size > 0 || r.reads.roundWanted || r.reads.held.length > 0) return false;
  // A leader asked for reads within the last ticksQuiesce ticks is in use, writes or not: gone
  // quiet it would forfeit its lease, and the next reads would each wait for a round.
  if (r.time.ticks - r.lease.readTick < r.cfg.ticksQuiesce) return false;
  if (r.proposals.appendWanted || r.quiet.heartbeatWanted) return false;
  for (const id of r.trk.members) {
    const pr = r.trk.progress.get(id)!;
    if (pr.match !== last || pr.state === ProgressState.Snapshot) return false;
  }
  return true;
}

/**
 * The leader goes quiet: one last heartbeat, flagged, tells every member the commit index
 * (which is the last index) and that no heartbeat follows; then it ignores ticks. Its lease
 * goes too: with its clock stopped it could not tell when the lease runs out, and the
 * followers it relied on may be woken and vote meanwhile. Only a round sent after it wakes
 * starts a new one.
 */
function quiesce(r: RaftState): void {
  const q = r.quiet;
  q.quiesced = true;
  q.ticksIdle = 0;
  r.time.heartbeatElapsed = 0;
  broadcastHeartbeat(r, true);
  q.round = r.reads.round;
  r.lease.forfeit(q.round + 1);
  // No round sent so far may extend the lease now: their send times can go (1.5 KB a group).
  r.reads.forgetSent();
}

/**
 * Wakes a quiesced member. A follower's election timer resumes where it stopped (a message
 * from the leader restarts it, as always): if the leader stays silent, the follower campaigns
 * after its election timeout. A leader heartbeats at the next Ready, so that every follower
 * wakes, and starts its check-quorum window afresh: who answered before the group went quiet
 * says nothing about who is there now.
 */
export function unquiesce(r: RaftState): void {
  const q = r.quiet;
  if (!q.quiesced) return;
  q.quiesced = false;
  if (r.role !== Role.Leader) return;
  q.ticksIdle = 0;
  q.heartbeatWanted = true;
  r.time.electionElapsed = 0;
  restartCheckQuorum(r);
}

/**
 * A message to a quiesced member that carries no news, about a heartbeat round older than the
 * quiesce heartbeat: at the leader, a follower's late answer to such a round (a follower that
 * quiesced does not answer the quiesce heartbeat itself); at a follower, such a heartbeat from
 * its leader, overtaken by the quiesce heartbeat. Waking on it would only undo the quiescence
 * (and a follower woken so would campaign, since its leader stays silent). It is dropped, as
 * the network might have dropped it. Round 0 is a learner's nudge (nudgeLeader), not stale.
 *
 * Also a campaign (Vote or PreVote) from a node that is not a voter: typically a replica
 * removed from the group while it was away, which never learned it and campaigns every
 * election timeout. A quiesced member's configuration is the group's current one (it quiesced
 * with the leader's whole log, and a new configuration would have to be replicated, which
 * wakes it), so such a node cannot be elected; woken by each of its campaigns, the group would
 * never stay quiet.
 */
export function staleWhileQuiesced(r: RaftState, m: Message): boolean {
  if ((m.type === MessageType.Vote || m.type === MessageType.PreVote) && !r.trk.isVoter(m.from)) return true;
  if (m.term !== r.term || m.context >= r.quiet.round) return false;
  if (r.role === Role.Leader) return m.type === MessageType.HeartbeatResp && m.context > 0;
  return m.type === MessageType.Heartbeat && m.from === r.leader;
}

/**
 * A follower got a heartbeat flagged `quiesce`. It follows the leader into silence only with a
 * log equal to the leader's: it ends at the commit index, with an entry of the leader's term
 * (a leader's last entry always is), hence the same entries before it (log matching).
 * Otherwise it answers, which wakes the leader. Returns whether it went quiet. (Any other
 * heartbeat, `quiesce` unset, leaves it awake: this runs for every heartbeat.)
 */
export function followQuiesce(r: RaftState, m: Message): boolean {
  const q = r.quiet;
  q.quiesced = m.quiesce && r.log.lastIndex() === m.commit && r.log.committed === m.commit &&
    r.log.term(m.commit) === m.term;
  if (q.quiesced) q.round = m.context;
  return q.quiesced;
}

/**
 * A learner never campaigns, so a silent leader would never hear from it: were the leader
 * quiesced while this learner is awake (woken by its host, or by a message that arrived out of
 * order), the learner would stay awake for good. It nudges the leader instead, once per
 * election timeout of silence: a HeartbeatResp of round 0 answers no round, and wakes a
 * quiesced leader. Its election timer runs on untouched (it decides whether the member heeds
 * votes, and a learner's view of the configuration may be behind). Called when the election
 * timer has run out on a member that may not campaign.
 */
export function nudgeLeader(r: RaftState): void {
  const t = r.time;
  // Only a learner: a member that knows it was removed has nothing to ask of the leader.
  const learner = r.trk.conf.learners.includes(r.id) || r.trk.conf.learnersNext.includes(r.id);
  if (r.cfg.ticksQuiesce > 0 && r.role === Role.Follower && r.leader !== NONE && learner &&
      (t.electionElapsed - t.electionTimeoutRandomized) % r.cfg.ticksElection === 0) {
    r.out.send(message(MessageType.HeartbeatResp, r.id, r.leader, r.term));
  }
}
