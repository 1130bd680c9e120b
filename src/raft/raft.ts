// Status: ready for integration (API as documented to the simulator).
// RaftNode: one member of one Raft group, as a pure state machine.
//
// The host feeds it messages (`step`), time (`tick`) and requests (`propose`, `readIndex`,
// `transferLeader`, `proposeConfChange`), and drains what it must do with `ready()` /
// `persisted()`. Nothing here touches a disk, a socket or a clock, and the only randomness is
// the injected `random`, so that the deterministic simulator can replay any run from a seed.
import { assert } from './assert.js';
import { applyConfChange, ChangeType, decodeConfChange, encodeConfChange, isJoint, type ConfChange } from './conf-change.js';
import { ProgressState, type Progress } from './progress.js';
import { VoteResult } from './quorum.js';
import { RaftLog } from './raft-log.js';
import { ReadOnly } from './read-only.js';
import { Tracker } from './tracker.js';
import {
  EntryType, message, MessageType, NONE, Role,
  type ConfState, type Entry, type ErrorCode, type HardState, type LogStorage, type Message, type NodeId,
  type ProposeResult, type RaftConfig, type ReadResult, type ReadState, type Ready, type SoftState,
} from './types.js';

/** Context value of a Vote that comes from a leader transfer: it may cut through leases. */
const CAMPAIGN_TRANSFER = 1;
/** Bound on the bytes of committed entries handed out by one Ready. */
const BYTES_APPLY_MAX = 8 << 20;
/** Bound on reads waiting for a round, per member. */
const READS_PENDING_MAX = 1 << 16;
/** Leader ticks a snapshot may stay unacknowledged before it is presumed lost and resent. */
const TICKS_SNAPSHOT_RESEND_FACTOR = 10;

const EMPTY = new Uint8Array(0);

export class RaftNode {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  role = Role.Follower;
  leader: NodeId = NONE;

  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;
  private readonly trk: Tracker;
  private readonly reads = new ReadOnly(READS_PENDING_MAX);

  private ticks = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private electionTimeoutRandomized = 0;
  /** Index of the latest conf change appended by this leader; none may follow until it applies. */
  private pendingConfIndex = 0;
  private leadTransferee: NodeId = NONE;
  private uncommittedEntries = 0;
  private uncommittedBytes = 0;
  /** New entries were proposed: broadcast them at the next Ready, once for all of them. */
  private appendWanted = false;
  /** Tick at which the lease began (the send time of the last round a quorum acknowledged). */
  private leaseStartTick = -Infinity;
  /** Only rounds from this one on may extend the lease (see forfeitLease). */
  private leaseRoundMin = Infinity;
  /** A leader transfer began this term: no lease until the next term. */
  private leaseVoidForTerm = false;
  /** Reads that arrived before this leader committed an entry of its term. */
  private readsBeforeCommit: number[] = [];
  /** The group is idle and this member ignores ticks until something wakes it (see quiesce). */
  private isQuiesced = false;
  /** Leader: consecutive ticks with nothing to do (see quiescable). */
  private ticksIdle = 0;
  /** Leader: the first heartbeat round sent in the current idle stretch. */
  private roundIdleFirst = 0;
  /**
   * The read round of the quiesce heartbeat this member sent (leader) or followed (follower);
   * 0: none in this role. Messages about older rounds carry no news and do not wake it (see
   * staleWhileQuiesced).
   */
  private quiesceRound = 0;
  /** Leader: broadcast a heartbeat at the next Ready (it was just woken). */
  private heartbeatWanted = false;

  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  private readStates: ReadState[] = [];
  private readsAborted: number[] = [];
  private confChanged = false;
  private handedHard: HardState;
  private handedSoft: SoftState;

  constructor(cfg: RaftConfig, storage: LogStorage, hard: HardState) {
    assert(cfg.id > 0, 'node id must be positive');
    assert(cfg.ticksHeartbeat > 0 && cfg.ticksElection > cfg.ticksHeartbeat, 'need 0 < ticksHeartbeat < ticksElection');
    this.id = cfg.id;
    this.cfg = cfg;
    const snap = storage.snapshot();
    // Whatever a snapshot holds was applied, hence committed, even if the hard state that
    // said so was lost with a torn write.
    this.log = new RaftLog(storage, Math.max(hard.commit, snap.meta.index), cfg.applied);
    this.trk = new Tracker(cfg.inflightMsgsMax, cfg.inflightBytesMax);
    this.trk.setConf(snap.meta.conf, this.log.lastIndex() + 1);
    // Conf changes between the snapshot and `applied` were applied by the host before a
    // restart; replay them so that the configuration matches the applied index.
    this.replayConfChanges(snap.meta.index + 1, this.log.applied);
    this.term = hard.term;
    this.vote = hard.vote;
    this.handedHard = { term: hard.term, vote: hard.vote, commit: this.log.committed };
    this.handedSoft = { role: Role.Follower, leader: NONE, term: hard.term };
    this.becomeFollower(this.term, NONE);
  }

  // --- Inspection ---

  get commit(): number { return this.log.committed; }
  get applied(): number { return this.log.applied; }
  firstIndex(): number { return this.log.firstIndex(); }
  lastIndex(): number { return this.log.lastIndex(); }
  entryTerm(index: number): number | null { return this.log.term(index); }
  confState(): ConfState { return this.trk.conf; }
  /** The leader's view of a follower, for status pages and tests. */
  progressOf(id: NodeId): Readonly<Progress> | undefined { return this.trk.progress.get(id); }
  get transferee(): NodeId { return this.leadTransferee; }
  /**
   * The group is idle: this member's timers are stopped and `tick()` does nothing, so the host
   * need not call it. Anything that gives the group work wakes it (docs/raft.md, "Quiescence").
   */
  get quiesced(): boolean { return this.isQuiesced; }

  // --- Time ---

  tick(): void {
    // Defensive: a host skips quiesced members, and they have no timer running to advance.
    if (this.isQuiesced) return;
    this.ticks++;
    if (this.role === Role.Leader) this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed < this.electionTimeoutRandomized) return;
    if (this.promotable()) {
      this.electionElapsed = 0;
      this.hup(false);
    } else if (this.cfg.ticksQuiesce > 0 && this.role === Role.Follower && this.leader !== NONE && !this.trk.isVoter(this.id) &&
        (this.electionElapsed - this.electionTimeoutRandomized) % this.cfg.ticksElection === 0) {
      // A learner never campaigns, so a silent leader would never hear from it: were the leader
      // quiesced while this learner is awake (woken by its host, or by a message that arrived
      // out of order), the learner would stay awake for good. It nudges the leader instead,
      // once per election timeout of silence: a HeartbeatResp of round 0 answers no round, and
      // wakes a quiesced leader. Its election timer runs on untouched (it decides whether the
      // member heeds votes, and a learner's view of the configuration may be behind).
      this.send(message(MessageType.HeartbeatResp, this.id, this.leader, this.term));
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.ticksElection) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.trk.quorumActive(this.id)) {
        this.becomeFollower(this.term, NONE);
        return;
      }
      // A transfer not done within an election timeout is abandoned.
      const failed = this.leadTransferee;
      this.leadTransferee = NONE;
      if (!this.trk.isVoter(this.id)) this.handOver(failed);
      if (this.role !== Role.Leader) return;
      if (this.cfg.checkQuorum) {
        for (const [id, pr] of this.trk.progress) pr.recentActive = id === this.id;
      }
    }
    const ticksSnapshotMax = this.cfg.ticksElection * TICKS_SNAPSHOT_RESEND_FACTOR;
    for (const id of this.trk.members) {
      const pr = this.trk.progress.get(id)!;
      if (pr.state === ProgressState.Snapshot && ++pr.ticksInSnapshot >= ticksSnapshotMax) pr.becomeProbe();
    }
    if (this.cfg.ticksQuiesce > 0) {
      if (!this.quiescable()) {
        this.ticksIdle = 0;
      } else {
        if (this.ticksIdle++ === 0) this.roundIdleFirst = this.reads.round + 1;
        // Only a leader that a quorum answered while idle goes quiet: one that is cut off keeps
        // heartbeating (and with check-quorum steps down) rather than sleep on as leader.
        if (this.ticksIdle >= this.cfg.ticksQuiesce && this.reads.roundQuorum >= this.roundIdleFirst) {
          this.quiesce();
          return;
        }
      }
    }
    if (this.heartbeatElapsed >= this.cfg.ticksHeartbeat) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(false);
    }
  }

  // --- Quiescence ---

  /**
   * The leader has nothing to do: every member (voters and learners) holds its whole log, all
   * of it committed and applied here, and no read, configuration change or transfer is under
   * way. Followers need nothing more from it but its heartbeats.
   */
  private quiescable(): boolean {
    const last = this.log.lastIndex();
    if (this.log.committed !== last || this.log.applied !== last) return false;
    if (this.leadTransferee !== NONE || !this.trk.isVoter(this.id)) return false;
    if (isJoint(this.trk.conf) || this.pendingConfIndex > this.log.applied) return false;
    if (this.reads.size > 0 || this.reads.roundWanted || this.readsBeforeCommit.length > 0) return false;
    if (this.appendWanted || this.heartbeatWanted) return false;
    for (const id of this.trk.members) {
      const pr = this.trk.progress.get(id)!;
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
  private quiesce(): void {
    this.isQuiesced = true;
    this.ticksIdle = 0;
    this.heartbeatElapsed = 0;
    this.broadcastHeartbeat(true);
    this.quiesceRound = this.reads.round;
    this.forfeitLease(this.quiesceRound + 1);
  }

  /**
   * Wakes a quiesced member. A follower's election timer resumes where it stopped (a message
   * from the leader restarts it, as always): if the leader stays silent, the follower campaigns
   * after its election timeout. A leader heartbeats at the next Ready, so that every follower
   * wakes, and starts its check-quorum window afresh: who answered before the group went quiet
   * says nothing about who is there now.
   */
  private unquiesce(): void {
    if (!this.isQuiesced) return;
    this.isQuiesced = false;
    if (this.role !== Role.Leader) return;
    this.ticksIdle = 0;
    this.heartbeatWanted = true;
    this.electionElapsed = 0;
    if (this.cfg.checkQuorum) {
      for (const [id, pr] of this.trk.progress) pr.recentActive = id === this.id;
    }
  }

  /**
   * For the host: wake this member (a no-op unless quiesced). A host calls it when it suspects
   * the group's leader is gone, e.g. when the link to the leader's node went down; a follower
   * woken so campaigns after its election timeout unless the leader speaks first.
   */
  wake(): void {
    this.unquiesce();
  }

  /**
   * A message to a quiesced member that carries no news, about a heartbeat round older than the
   * quiesce heartbeat: at the leader, a follower's late answer to such a round (a follower that
   * quiesced does not answer the quiesce heartbeat itself); at a follower, such a heartbeat from
   * its leader, overtaken by the quiesce heartbeat. Waking on it would only undo the quiescence
   * (and a follower woken so would campaign, since its leader stays silent). It is dropped, as
   * the network might have dropped it. Round 0 is a learner's nudge (tickElection), not stale.
   */
  private staleWhileQuiesced(m: Message): boolean {
    if (m.term !== this.term || m.context >= this.quiesceRound) return false;
    if (this.role === Role.Leader) return m.type === MessageType.HeartbeatResp && m.context > 0;
    return m.type === MessageType.Heartbeat && m.from === this.leader;
  }

  // --- Requests from the host ---

  propose(data: Uint8Array): ProposeResult {
    const refused = this.refusal();
    if (refused !== null) return refused;
    if (this.uncommittedEntries > 0 &&
        (this.uncommittedEntries >= this.cfg.uncommittedEntriesMax || this.uncommittedBytes + data.length > this.cfg.uncommittedBytesMax)) {
      return { ok: false, code: 'OVERLOADED', leader: this.id };
    }
    return this.appendLocal(EntryType.Normal, data);
  }

  /** Starts a membership change (joint consensus; the leader leaves the joint configuration itself). */
  proposeConfChange(cc: ConfChange): ProposeResult & { reason?: string } {
    const refused = this.refusal();
    if (refused !== null) return refused;
    if (this.pendingConfIndex > this.log.applied || isJoint(this.trk.conf)) {
      return { ok: false, code: 'CONF_CHANGE_PENDING', leader: this.id };
    }
    if (cc.leave) return { ok: false, code: 'BAD_CONF_CHANGE', leader: this.id, reason: 'leave is proposed by the leader itself' };
    const next = applyConfChange(this.trk.conf, cc);
    if (typeof next === 'string') return { ok: false, code: 'BAD_CONF_CHANGE', leader: this.id, reason: next };
    const res = this.appendLocal(EntryType.ConfChange, encodeConfChange(cc));
    if (res.ok) this.pendingConfIndex = res.index;
    return res;
  }

  /**
   * Asks for a linearizable read. On success a ReadState with `requestId` arrives in a later
   * Ready (or `readsAborted` lists it if leadership is lost first).
   */
  readIndex(requestId: number): ReadResult {
    if (this.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: this.leader };
    this.unquiesce();
    if (this.log.term(this.log.committed) !== this.term) {
      // Until an entry of its own term commits, a new leader does not know the commit index;
      // its no-op commits within a round trip, and the read waits for it.
      if (this.readsBeforeCommit.length + this.reads.size >= READS_PENDING_MAX) return { ok: false, code: 'OVERLOADED', leader: this.id };
      this.readsBeforeCommit.push(requestId);
      return { ok: true };
    }
    if (this.trk.voterIds().length === 1 && this.trk.isVoter(this.id)) {
      this.readStates.push({ requestId, index: this.log.committed });
      return { ok: true };
    }
    if (this.leaseValid()) {
      this.readStates.push({ requestId, index: this.log.committed });
      return { ok: true };
    }
    if (!this.reads.add(requestId, this.log.committed)) return { ok: false, code: 'OVERLOADED', leader: this.id };
    return { ok: true };
  }

  transferLeader(to: NodeId): ReadResult {
    if (this.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: this.leader };
    if (to === this.id) return { ok: true };
    if (!this.trk.isVoter(to)) return { ok: false, code: 'NOT_VOTER', leader: this.id };
    if (this.leadTransferee === to) return { ok: true };
    this.unquiesce();
    this.leadTransferee = to;
    // The target will campaign through every follower's lease, so ours is void for the term.
    this.leaseVoidForTerm = true;
    this.forfeitLease(Infinity);
    // The transfer is abandoned if it has not happened within an election timeout.
    this.electionElapsed = 0;
    const pr = this.trk.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send(message(MessageType.TimeoutNow, this.id, to, this.term));
    else this.sendAppend(to, true);
    return { ok: true };
  }

  /** Starts an election now, as if the election timeout had passed. */
  campaign(): void {
    if (this.role === Role.Leader) return;
    this.unquiesce();
    this.hup(false);
  }

  /** The host delivered (ok) or gave up on (not ok) a snapshot sent to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.trk.progress.get(to);
    if (this.role !== Role.Leader || pr === undefined || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or the next heartbeat) before probing.
    pr.probeSent = true;
  }

  private refusal(): { ok: false; code: ErrorCode; leader: NodeId } | null {
    if (this.role !== Role.Leader) return { ok: false, code: 'NOT_LEADER', leader: this.leader };
    // A leader removed from the configuration only hands over (see handOver): were its log to
    // grow past the voters', it would refuse their candidates as less up to date.
    if (!this.trk.isVoter(this.id)) return { ok: false, code: 'NOT_LEADER', leader: this.leadTransferee };
    if (this.leadTransferee !== NONE) return { ok: false, code: 'LEADER_TRANSFERRING', leader: this.leadTransferee };
    return null;
  }

  private appendLocal(type: EntryType, data: Uint8Array): { ok: true; index: number; term: number } {
    // New entries (a proposal, a configuration change) wake the group.
    this.unquiesce();
    const index = this.log.lastIndex() + 1;
    this.log.append([{ term: this.term, index, type, data }]);
    this.uncommittedEntries++;
    this.uncommittedBytes += data.length;
    this.appendWanted = true;
    return { ok: true, index, term: this.term };
  }

  // --- Messages ---

  step(m: Message): void {
    if (m.to !== this.id || m.term === 0) return;
    if (this.isQuiesced && !m.quiesce) {
      // Any message but a quiesce heartbeat wakes a quiesced member; those are handled below.
      if (this.staleWhileQuiesced(m)) return;
      this.unquiesce();
    }
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        // With lease reads, a member that just started may have been in a leader's lease
        // before it crashed: it keeps out of elections for its first election timeout.
        const inLease = this.cfg.checkQuorum && this.electionElapsed < this.cfg.ticksElection &&
          (this.leader !== NONE || (this.cfg.leaseRead && this.ticks < this.cfg.ticksElection));
        // A member that hears from a live leader ignores campaigns: this is what keeps a
        // partitioned or removed member from disrupting the group, and what makes leases sound.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote || (m.type === MessageType.PreVoteResp && !m.reject)) {
        // A pre-vote does not change anyone's term.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader learns of the newer term (with pre-vote, it would never hear otherwise).
        this.send(message(MessageType.AppResp, this.id, m.from, this.term));
      } else if (m.type === MessageType.PreVote) {
        const r = message(MessageType.PreVoteResp, this.id, m.from, this.term);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVote(m);
      return;
    }
    switch (this.role) {
      case Role.Leader: this.stepLeader(m); break;
      case Role.Follower: this.stepFollower(m); break;
      default: this.stepCandidate(m); break;
    }
  }

  private handleVote(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote = this.vote === m.from ||
      (this.vote === NONE && this.leader === NONE) ||
      (pre && m.term > this.term);
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The grant carries the campaign's term so that the candidate counts it.
      this.send(message(respType, this.id, m.from, m.term));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r = message(respType, this.id, m.from, this.term);
      r.reject = true;
      this.send(r);
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.AppResp:
        pr.recentActive = true;
        if (m.reject) {
          let hint = m.rejectHint;
          if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
          if (pr.maybeDecrTo(m.index, hint)) {
            if (pr.state === ProgressState.Replicate) pr.becomeProbe();
            this.sendAppend(m.from, false);
          }
          return;
        }
        if (m.index > this.log.lastIndex()) return;
        if (pr.maybeUpdate(m.index)) {
          if (pr.state === ProgressState.Probe) {
            pr.becomeReplicate();
          } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
            // The follower has what it needs to continue from the log (usually the snapshot).
            pr.becomeProbe();
            pr.becomeReplicate();
          } else if (pr.state === ProgressState.Replicate) {
            pr.inflights.freeLE(m.index);
          }
          if (this.maybeCommit()) this.appendWanted = true;
          else this.sendAppend(m.from, false);
          while (pr.state === ProgressState.Replicate && pr.next <= this.log.lastIndex() && this.sendAppend(m.from, false)) { /* drain */ }
          if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
            this.send(message(MessageType.TimeoutNow, this.id, m.from, this.term));
          }
        } else if (pr.state === ProgressState.Probe && pr.match < this.log.lastIndex()) {
          this.sendAppend(m.from, false);
        }
        return;
      case MessageType.HeartbeatResp:
        pr.recentActive = true;
        pr.probeSent = false;
        // Even with nothing new to send: an append whose entries the follower dropped would
        // otherwise never be resent, and an empty append makes it say where it stands.
        // A window full of appends that were all lost would block the follower for good.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
        if (m.context > pr.roundAcked && m.context <= this.reads.round) {
          pr.roundAcked = m.context;
          this.confirmRounds();
        }
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        // The leader goes quiet. Follow it only with a log equal to the leader's: it ends at the
        // commit index, with an entry of the leader's term (a leader's last entry always is),
        // hence the same entries before it (log matching). Otherwise answer, which wakes it.
        this.isQuiesced = m.quiesce && this.log.lastIndex() === m.commit && this.log.committed === m.commit &&
          this.log.term(m.commit) === m.term;
        if (this.isQuiesced) {
          this.quiesceRound = m.context;
          return;
        }
        {
          const r = message(MessageType.HeartbeatResp, this.id, m.from, this.term);
          r.context = m.context;
          this.send(r);
        }
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // Leader transfer: campaign at once, skipping pre-vote, through any lease.
        this.hup(true);
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        // Someone won this term.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp: {
        if ((m.type === MessageType.PreVoteResp) !== (this.role === Role.PreCandidate)) return;
        this.trk.recordVote(m.from, !m.reject);
        const result = this.trk.voteResult();
        if (result === VoteResult.Won) {
          if (this.role === Role.PreCandidate) this.campaignReal(false);
          else this.becomeLeader();
        } else if (result === VoteResult.Lost) {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        return;
    }
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      const r = message(MessageType.AppResp, this.id, m.from, this.term);
      r.index = this.log.committed;
      this.send(r);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      const r = message(MessageType.AppResp, this.id, m.from, this.term);
      r.index = lastNew;
      this.send(r);
      return;
    }
    // Mismatch: point the leader at the last entry that can possibly match, skipping every
    // entry of a term newer than the leader's (index, logTerm).
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const r = message(MessageType.AppResp, this.id, m.from, this.term);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint;
    r.logTerm = this.log.term(hint) ?? 0;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === null) return;
    const r = message(MessageType.AppResp, this.id, m.from, this.term);
    if (snap.meta.index <= this.log.committed) {
      r.index = this.log.committed;
    } else if (this.log.restore(snap)) {
      this.trk.setConf(snap.meta.conf, this.log.lastIndex() + 1);
      this.confChanged = true;
      r.index = snap.meta.index;
    } else {
      r.index = this.log.committed;
    }
    this.send(r);
  }

  // --- Role changes ---

  private promotable(): boolean {
    return this.trk.isVoter(this.id) && !this.log.unhandedSnapshot();
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return;
    if (this.cfg.preVote && !transfer) this.campaignPre();
    else this.campaignReal(transfer);
  }

  /** A committed conf change not yet applied means our view of the voters may be stale. */
  private hasUnappliedConfChanges(): boolean {
    const hi = this.log.applicableIndex();
    for (let lo = this.log.applied + 1; lo <= hi;) {
      const ents = this.log.slice(lo, hi + 1, BYTES_APPLY_MAX);
      if (ents === null || ents.length === 0) return false;
      for (const e of ents) if (e.type === EntryType.ConfChange) return true;
      lo += ents.length;
    }
    return false;
  }

  private campaignPre(): void {
    this.resetRole();
    this.role = Role.PreCandidate;
    this.leader = NONE;
    this.requestVotes(MessageType.PreVote, this.term + 1, false);
  }

  private campaignReal(transfer: boolean): void {
    this.resetRole();
    this.term++;
    this.vote = this.id;
    this.role = Role.Candidate;
    this.leader = NONE;
    this.requestVotes(MessageType.Vote, this.term, transfer);
  }

  private requestVotes(type: MessageType, term: number, transfer: boolean): void {
    this.trk.resetVotes();
    this.trk.recordVote(this.id, true);
    if (this.trk.voteResult() === VoteResult.Won) {
      if (type === MessageType.PreVote) this.campaignReal(transfer);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      const m = message(type, this.id, id, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (transfer) m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private becomeFollower(term: number, leader: NodeId): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.resetRole();
    this.role = Role.Follower;
    this.leader = leader;
  }

  private becomeLeader(): void {
    assert(this.role === Role.Candidate, 'only a candidate becomes leader');
    this.resetRole();
    this.role = Role.Leader;
    this.leader = this.id;
    const last = this.log.lastIndex();
    this.trk.resetProgress(last + 1);
    const self = this.trk.progress.get(this.id);
    if (self !== undefined) {
      self.match = this.log.stableIndex();
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservative: an unapplied conf change may sit anywhere in the log we inherited.
    this.pendingConfIndex = last;
    this.leaseVoidForTerm = false;
    this.forfeitLease(this.reads.round + 1);
    // The no-op of the new term: committing it commits everything before it.
    this.appendLocal(EntryType.Normal, EMPTY);
    this.uncommittedEntries = 0;
    this.uncommittedBytes = 0;
  }

  /** What every role change resets. */
  private resetRole(): void {
    if (this.role === Role.Leader) {
      for (const id of this.reads.abort()) this.readsAborted.push(id);
      for (const id of this.readsBeforeCommit) this.readsAborted.push(id);
      this.readsBeforeCommit = [];
    }
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.isQuiesced = false;
    this.ticksIdle = 0;
    this.quiesceRound = 0;
    this.heartbeatWanted = false;
    this.electionTimeoutRandomized = this.cfg.ticksElection + Math.floor(this.cfg.random() * this.cfg.ticksElection);
    this.leadTransferee = NONE;
    this.appendWanted = false;
    this.uncommittedEntries = 0;
    this.uncommittedBytes = 0;
    this.trk.resetVotes();
  }

  // --- Replication (leader) ---

  private maybeCommit(): boolean {
    if (!this.log.maybeCommit(this.trk.committed(), this.term)) return false;
    if (this.readsBeforeCommit.length > 0) {
      for (const id of this.readsBeforeCommit) this.reads.add(id, this.log.committed);
      this.readsBeforeCommit = [];
    }
    return true;
  }

  private broadcastAppend(): void {
    for (const id of this.trk.members) if (id !== this.id) this.sendAppend(id, true);
  }

  /** Sends the next entries (or a snapshot) to `to` unless its flow is paused. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prev = pr.next - 1;
    const prevTerm = this.log.term(prev);
    const last = this.log.lastIndex();
    const ents = prevTerm === null ? null :
      this.log.slice(pr.next, Math.min(last + 1, pr.next + this.cfg.entriesPerMsgMax), this.cfg.bytesPerMsgMax);
    if (prevTerm === null || ents === null) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = message(MessageType.App, this.id, to, this.term);
    m.index = prev;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.log.committed;
    let bytes = 0;
    for (const e of ents) bytes += e.data.length;
    pr.sentEntries(ents.length, prev + ents.length, bytes);
    this.send(m);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snap = this.log.snapshot();
    assert(snap.meta.index > 0, 'entries were compacted but there is no snapshot');
    pr.becomeSnapshot(snap.meta.index);
    const m = message(MessageType.Snap, this.id, to, this.term);
    m.snapshot = snap;
    this.send(m);
    return true;
  }

  private broadcastHeartbeat(quiesce: boolean): void {
    const round = this.reads.startRound(this.ticks);
    for (const id of this.trk.members) {
      if (id === this.id) continue;
      const pr = this.trk.progress.get(id)!;
      const m = message(MessageType.Heartbeat, this.id, id, this.term);
      // A follower may not have the leader's commit index yet: never tell it more than it has.
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = round;
      m.quiesce = quiesce;
      this.send(m);
    }
    this.confirmRounds();
  }

  private confirmRounds(): void {
    const r = this.trk.roundQuorum(this.id, this.reads.round);
    if (r <= this.reads.roundQuorum) return;
    this.reads.confirm(r, this.readStates);
    const sent = this.reads.sentTick(r);
    if (r >= this.leaseRoundMin && sent > this.leaseStartTick) this.leaseStartTick = sent;
  }

  /**
   * Ends the current lease; only rounds numbered `roundMin` or later may start a new one. Used
   * when the set of members whose silence the lease relies on may have changed (new term,
   * configuration change) or when they may be told to ignore it (leader transfer).
   */
  private forfeitLease(roundMin: number): void {
    this.leaseStartTick = -Infinity;
    this.leaseRoundMin = roundMin;
  }

  private leaseValid(): boolean {
    return this.cfg.leaseRead && this.cfg.checkQuorum && this.role === Role.Leader && !this.leaseVoidForTerm && !this.isQuiesced &&
      this.ticks < this.leaseStartTick + this.cfg.ticksElection - this.cfg.ticksLeaseMargin;
  }

  private send(m: Message): void {
    switch (m.type) {
      // These promise something about this member's durable state (an entry, a vote, a term),
      // so they wait until what was handed out before them is durable.
      case MessageType.AppResp:
      case MessageType.Vote:
      case MessageType.VoteResp:
        this.msgsAfterPersist.push(m);
        break;
      default:
        this.msgs.push(m);
    }
  }

  // --- Configuration ---

  private applyConfEntry(e: Entry): void {
    const next = applyConfChange(this.trk.conf, decodeConfChange(e.data));
    // A committed change that does not apply is ignored by every member alike (only a change
    // proposed by a deposed leader can be stale; proposals are validated).
    if (typeof next === 'string') return;
    this.trk.setConf(next, this.log.lastIndex() + 1);
    this.confChanged = true;
    if (this.role !== Role.Leader) return;
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.leadTransferee = NONE;
    if (!this.trk.isVoter(this.id) && !isJoint(next)) this.handOver(NONE);
    this.forfeitLease(this.reads.round + 1);
    const self = this.trk.progress.get(this.id);
    if (self !== undefined && self.match === 0) self.match = this.log.stableIndex();
    if (this.maybeCommit()) this.appendWanted = true;
    this.confirmRounds();
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
  private handOver(failed: NodeId): void {
    let best: NodeId = NONE;
    let bestScore = -Infinity;
    for (const id of this.trk.voterIds()) {
      const pr = this.trk.progress.get(id);
      if (pr === undefined || id === this.id) continue;
      // Liveness first, then progress; the failed target only as a last resort.
      const score = (id === failed ? 0 : 2) + (pr.recentActive ? 1 : 0);
      const s = score * 1e15 + pr.match;
      if (s > bestScore) { best = id; bestScore = s; }
    }
    const bestMatch = best === NONE ? -1 : this.trk.progress.get(best)!.match;
    if (best === NONE) {
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.leadTransferee = best;
    this.leaseVoidForTerm = true;
    this.forfeitLease(Infinity);
    this.appendWanted = true;
    if (bestMatch === this.log.lastIndex()) this.send(message(MessageType.TimeoutNow, this.id, best, this.term));
  }

  private replayConfChanges(lo: number, hi: number): void {
    while (lo <= hi) {
      const ents = this.log.slice(lo, hi + 1, BYTES_APPLY_MAX);
      if (ents === null || ents.length === 0) return;
      for (const e of ents) if (e.type === EntryType.ConfChange) this.applyConfEntry(e);
      lo += ents.length;
    }
  }

  // --- Handing work to the host ---

  hasReady(): boolean {
    if (this.msgs.length > 0 || this.msgsAfterPersist.length > 0 || this.readStates.length > 0 || this.readsAborted.length > 0) return true;
    if (this.log.hasUnhandedEntries() || this.log.unhandedSnapshot() !== null) return true;
    if (this.appendWanted || this.reads.roundWanted || this.heartbeatWanted || this.confChanged) return true;
    if (this.log.unhandedSnapshot() === null && this.log.hasApplicable()) return true;
    const h = this.handedHard;
    if (h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed) return true;
    const s = this.handedSoft;
    return s.role !== this.role || s.leader !== this.leader || s.term !== this.term;
  }

  ready(): Ready {
    // Apply first: a conf change may step this leader down or add members to send to.
    const committedEntries = this.nextCommitted();
    if (this.role === Role.Leader && isJoint(this.trk.conf) && this.pendingConfIndex <= this.log.applied) {
      const leave = this.appendLocal(EntryType.ConfChange, encodeConfChange({ leave: true, changes: [] }));
      this.pendingConfIndex = leave.index;
    }
    if (this.role === Role.Leader) {
      if (this.appendWanted) {
        this.appendWanted = false;
        this.broadcastAppend();
      }
      if (this.reads.roundWanted || this.heartbeatWanted) {
        this.heartbeatWanted = false;
        this.heartbeatElapsed = 0;
        this.broadcastHeartbeat(false);
      }
    }

    const snapshot = this.log.unhandedSnapshot();
    const entries = this.log.hasUnhandedEntries() ? this.log.unhandedEntries() : [];
    const last = entries.length > 0 ? entries[entries.length - 1]! : null;
    let hardState: HardState | null = null;
    const h = this.handedHard;
    if (h.term !== this.term || h.vote !== this.vote || h.commit !== this.log.committed) {
      hardState = { term: this.term, vote: this.vote, commit: this.log.committed };
      this.handedHard = hardState;
    }
    let soft: SoftState | null = null;
    const s = this.handedSoft;
    if (s.role !== this.role || s.leader !== this.leader || s.term !== this.term) {
      soft = { role: this.role, leader: this.leader, term: this.term };
      this.handedSoft = soft;
    }
    const rd: Ready = {
      soft,
      hardState,
      snapshot,
      entries,
      messages: this.msgs,
      messagesAfterPersist: this.msgsAfterPersist,
      committedEntries,
      readStates: this.readStates,
      readsAborted: this.readsAborted,
      conf: this.confChanged ? this.trk.conf : null,
      lastIndex: last === null ? 0 : last.index,
      lastTerm: last === null ? 0 : last.term,
    };
    this.log.markHanded();
    this.msgs = [];
    this.msgsAfterPersist = [];
    this.readStates = [];
    this.readsAborted = [];
    this.confChanged = false;
    return rd;
  }

  private nextCommitted(): Entry[] {
    if (this.log.unhandedSnapshot() !== null || !this.log.hasApplicable()) return [];
    const hi = this.log.applicableIndex();
    const ents = this.log.slice(this.log.applied + 1, hi + 1, BYTES_APPLY_MAX);
    assert(ents !== null, `committed entries after ${this.log.applied} were compacted before being applied`);
    for (const e of ents) {
      this.log.applied = e.index;
      if (this.role === Role.Leader) {
        this.uncommittedEntries = Math.max(0, this.uncommittedEntries - 1);
        this.uncommittedBytes = Math.max(0, this.uncommittedBytes - e.data.length);
      }
      if (e.type === EntryType.ConfChange) this.applyConfEntry(e);
    }
    return ents;
  }

  /** The host made everything in `rd` durable. */
  persisted(rd: Ready): void {
    if (rd.snapshot !== null) this.log.stableSnapTo(rd.snapshot.meta.index);
    if (rd.lastIndex > 0) this.log.stableTo(rd.lastIndex, rd.lastTerm);
    if (this.role !== Role.Leader || rd.lastIndex === 0) return;
    // The leader counts itself toward a quorum only for what is durable on its own disk.
    const self = this.trk.progress.get(this.id);
    if (self !== undefined && this.log.term(rd.lastIndex) === rd.lastTerm && self.maybeUpdate(Math.min(rd.lastIndex, this.log.stableIndex()))) {
      if (this.maybeCommit()) this.appendWanted = true;
    }
  }
}

export { ChangeType };
