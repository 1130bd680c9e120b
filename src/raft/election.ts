// Elections and roles: the election timer, pre-vote and vote campaigns, granting votes,
// check-quorum, and the role changes (follower, candidate, leader) with what each resets.
import { assert } from '../util/assert.js';
import { hasUnappliedConfChanges } from './membership.js';
import { appendLocal } from './proposals.js';
import { nudgeLeader } from './quiescence.js';
import { VoteResult } from './quorum.js';
import type { RaftState } from './state.js';
import { EntryType, message, MessageType, NONE, Role, type Message, type NodeId } from './types.js';

/** Context value of a Vote that comes from a leader transfer: it may cut through leases. */
export const CAMPAIGN_TRANSFER = 1;

const EMPTY = new Uint8Array(0);

/** A follower's or candidate's tick: campaigns once the election timeout has passed. */
export function tickElection(r: RaftState): void {
  const t = r.time;
  t.electionElapsed++;
  if (t.electionElapsed < t.electionTimeoutRandomized) return;
  if (promotable(r)) {
    t.electionElapsed = 0;
    hup(r, false);
  } else {
    nudgeLeader(r);
  }
}

/**
 * Check-quorum, at the end of each of the leader's election timeouts: a leader that has not
 * heard from a quorum since the last one steps down. Returns false when it did.
 */
export function checkQuorum(r: RaftState): boolean {
  if (r.cfg.checkQuorum && !r.trk.quorumActive(r.id)) {
    becomeFollower(r, r.term, NONE);
    return false;
  }
  return true;
}

/** Starts a new check-quorum window: only the leader itself counts as heard from. */
export function restartCheckQuorum(r: RaftState): void {
  if (!r.cfg.checkQuorum) return;
  for (const [id, pr] of r.trk.progress) pr.recentActive = id === r.id;
}

/**
 * A member that hears from a live leader ignores campaigns (Vote or PreVote of a higher term,
 * unless a leader transfer started them): this is what keeps a partitioned or removed member
 * from disrupting the group, and what makes leases sound.
 */
export function ignoresCampaign(r: RaftState, m: Message): boolean {
  const force = m.context === CAMPAIGN_TRANSFER;
  // With lease reads, a member that just started may have been in a leader's lease
  // before it crashed: it keeps out of elections for its first election timeout.
  const inLease = r.cfg.checkQuorum && r.time.electionElapsed < r.cfg.ticksElection &&
    (r.leader !== NONE || inStartQuiet(r));
  return !force && inLease;
}

/**
 * The first election timeout of a member that restarted, with lease reads: it ignores
 * campaigns, since it may have been inside a leader's lease before it went down. Not a replica
 * the host made just now (RaftConfig.startedFresh): it never acknowledged anyone.
 */
export function inStartQuiet(r: RaftState): boolean {
  return r.cfg.leaseRead && !r.startedFresh && r.time.ticks < r.cfg.ticksElection;
}

export function promotable(r: RaftState): boolean {
  return r.trk.isVoter(r.id) && !r.log.unhandedSnapshot();
}

/** Campaigns, with a pre-vote first unless it is off or this is a leader transfer. */
export function hup(r: RaftState, transfer: boolean): void {
  if (r.role === Role.Leader || !promotable(r)) return;
  if (hasUnappliedConfChanges(r)) return;
  if (r.cfg.preVote && !transfer) campaignPre(r);
  else campaignReal(r, transfer);
}

function campaignPre(r: RaftState): void {
  resetRole(r);
  r.role = Role.PreCandidate;
  r.leader = NONE;
  requestVotes(r, MessageType.PreVote, r.term + 1, false);
}

function campaignReal(r: RaftState, transfer: boolean): void {
  resetRole(r);
  r.term++;
  r.vote = r.id;
  r.role = Role.Candidate;
  r.leader = NONE;
  requestVotes(r, MessageType.Vote, r.term, transfer);
}

function requestVotes(r: RaftState, type: MessageType, term: number, transfer: boolean): void {
  r.trk.resetVotes();
  r.trk.recordVote(r.id, true);
  if (r.trk.voteResult() === VoteResult.Won) {
    if (type === MessageType.PreVote) campaignReal(r, transfer);
    else becomeLeader(r);
    return;
  }
  const lastIndex = r.log.lastIndex();
  const lastTerm = r.log.lastTerm();
  for (const id of r.trk.voterIds()) {
    if (id === r.id) continue;
    const m = message(type, r.id, id, term);
    m.index = lastIndex;
    m.logTerm = lastTerm;
    if (transfer) m.context = CAMPAIGN_TRANSFER;
    r.out.send(m);
  }
}

/** A Vote or PreVote of this member's term or newer (step has settled the term). */
export function handleVote(r: RaftState, m: Message): void {
  const pre = m.type === MessageType.PreVote;
  const canVote = r.vote === m.from ||
    (r.vote === NONE && r.leader === NONE) ||
    (pre && m.term > r.term);
  const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
  if (canVote && r.log.isUpToDate(m.index, m.logTerm)) {
    // The grant carries the campaign's term so that the candidate counts it.
    r.out.send(message(respType, r.id, m.from, m.term));
    if (!pre) {
      r.time.electionElapsed = 0;
      r.vote = m.from;
    }
  } else {
    const resp = message(respType, r.id, m.from, r.term);
    resp.reject = true;
    r.out.send(resp);
  }
}

/** A candidate or pre-candidate counts an answer to its campaign. */
export function handleVoteResp(r: RaftState, m: Message): void {
  if ((m.type === MessageType.PreVoteResp) !== (r.role === Role.PreCandidate)) return;
  r.trk.recordVote(m.from, !m.reject);
  const result = r.trk.voteResult();
  if (result === VoteResult.Won) {
    if (r.role === Role.PreCandidate) campaignReal(r, false);
    else becomeLeader(r);
  } else if (result === VoteResult.Lost) {
    becomeFollower(r, r.term, NONE);
  }
}

export function becomeFollower(r: RaftState, term: number, leader: NodeId): void {
  if (term !== r.term) {
    r.term = term;
    r.vote = NONE;
  }
  resetRole(r);
  r.role = Role.Follower;
  r.leader = leader;
}

function becomeLeader(r: RaftState): void {
  assert(r.role === Role.Candidate, 'only a candidate becomes leader');
  resetRole(r);
  r.role = Role.Leader;
  r.leader = r.id;
  const last = r.log.lastIndex();
  r.trk.resetProgress(last + 1);
  const self = r.trk.progress.get(r.id);
  if (self !== undefined) {
    self.match = r.log.stableIndex();
    self.becomeReplicate();
    self.recentActive = true;
  }
  // Conservative: an unapplied conf change may sit anywhere in the log we inherited.
  r.proposals.pendingConfIndex = last;
  r.lease.voidForTerm = false;
  r.lease.forfeit(r.reads.round + 1);
  r.lease.readTick = r.time.ticks;
  // The no-op of the new term: committing it commits everything before it.
  appendLocal(r, EntryType.Normal, EMPTY);
  r.proposals.resetUncommitted();
}

/** What every role change resets. */
function resetRole(r: RaftState): void {
  if (r.role === Role.Leader) {
    for (const id of r.reads.abort()) r.out.readsAborted.push(id);
  }
  const t = r.time;
  t.electionElapsed = 0;
  t.heartbeatElapsed = 0;
  const q = r.quiet;
  q.quiesced = false;
  q.ticksIdle = 0;
  q.round = 0;
  q.heartbeatWanted = false;
  t.electionTimeoutRandomized = r.cfg.ticksElection + Math.floor(r.cfg.random() * r.cfg.ticksElection);
  r.transferee = NONE;
  r.proposals.appendWanted = false;
  r.proposals.resetUncommitted();
  r.trk.resetVotes();
}
