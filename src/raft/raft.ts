// RaftNode: one member of one Raft group, as a pure state machine.
//
// The host feeds it messages (`step`), time (`tick`) and requests (`propose`, `readIndex`,
// `transferLeader`, `proposeConfChange`), and drains what it must do with `ready()` /
// `persisted()`. Nothing here touches a disk, a socket or a clock, and the only randomness is
// the injected `random`, so that the deterministic simulator can replay any run from a seed.
//
// This file is the member's public face and its map: `tick` and `step` say which part acts on
// what, and each part lives in a file named after it (docs/raft.md, "Where things are"):
// election.ts, replication.ts, proposals.ts, read-index.ts, lease.ts, quiescence.ts,
// transfer.ts, membership.ts, ready.ts; the state they share is in state.ts.
import { assert } from '../util/assert.js';
import { messageProblem, type MessageProblem } from './message-check.js';
import { ChangeType, type ConfChange } from './conf-change.js';
import {
  becomeFollower, checkQuorum, handleVote, handleVoteResp, hup, ignoresCampaign, inStartQuiet, restartCheckQuorum, tickElection,
} from './election.js';
import { proposeConfChange, replayConfChanges } from './membership.js';
import type { Progress } from './progress.js';
import { propose } from './proposals.js';
import { staleWhileQuiesced, tickQuiesce, unquiesce } from './quiescence.js';
import { RaftLog } from './raft-log.js';
import { readIndex } from './read-index.js';
import { leaseUntilMs } from './lease.js';
import { hasReady, persisted, ready } from './ready.js';
import {
  handleAppend, handleAppendResp, handleHeartbeat, handleHeartbeatResp, handleSnapshot, tickHeartbeat,
  reportSnapshot, tickSnapshots,
} from './replication.js';
import { RaftState } from './state.js';
import { Tracker } from './tracker.js';
import { abandonTransfer, transferLeader } from './transfer.js';
import {
  EntryType, message, MessageType, NONE, Role,
  type ConfState, type HardState, type LogStorage, type Message, type NodeId,
  type ProposeResult, type RaftConfig, type ReadResult, type Ready,
} from './types.js';

export class RaftNode {
  private readonly r: RaftState;

  constructor(cfg: RaftConfig, storage: LogStorage, hard: HardState) {
    assert(cfg.id > 0, 'node id must be positive');
    assert(cfg.ticksHeartbeat > 0 && cfg.ticksElection > cfg.ticksHeartbeat, 'need 0 < ticksHeartbeat < ticksElection');
    const snap = storage.snapshot();
    // Whatever a snapshot holds was applied, hence committed, even if the hard state that
    // said so was lost with a torn write.
    const log = new RaftLog(storage, Math.max(hard.commit, snap.meta.index), cfg.applied);
    const trk = new Tracker(cfg.inflightMsgsMax, cfg.inflightBytesMax);
    trk.setConf(snap.meta.conf, log.lastIndex() + 1);
    const r = new RaftState(cfg, log, trk);
    this.r = r;
    // Conf changes between the snapshot and `applied` were applied by the host before a
    // restart; replay them so that the configuration matches the applied index.
    replayConfChanges(r, snap.meta.index + 1, log.applied);
    r.term = hard.term;
    r.vote = hard.vote;
    r.startedFresh = cfg.startedFresh === true;
    r.out.handedHard = { term: hard.term, vote: hard.vote, commit: log.committed };
    r.out.handedSoft = { role: Role.Follower, leader: NONE, term: hard.term };
    becomeFollower(r, r.term, NONE);
  }

  // --- Inspection ---

  get id(): NodeId { return this.r.id; }
  get term(): number { return this.r.term; }
  get vote(): NodeId { return this.r.vote; }
  get role(): Role { return this.r.role; }
  get leader(): NodeId { return this.r.leader; }
  get commit(): number { return this.r.log.committed; }
  /** Until when (host ms, cfg.nowMs) this leader's lease holds; -Infinity when it does not now. */
  leaseUntilMs(): number { return leaseUntilMs(this.r); }
  get applied(): number { return this.r.log.applied; }
  firstIndex(): number { return this.r.log.firstIndex(); }
  lastIndex(): number { return this.r.log.lastIndex(); }
  entryTerm(index: number): number | null { return this.r.log.term(index); }
  confState(): ConfState { return this.r.trk.conf; }
  /** The leader's view of a follower, for status pages and tests. */
  progressOf(id: NodeId): Readonly<Progress> | undefined { return this.r.trk.progress.get(id); }
  get transferee(): NodeId { return this.r.transferee; }
  /**
   * This member restarted with lease reads on and is in its first election timeout: it ignores
   * campaigns (docs/raft.md, "Leases"), and so, most likely, do the others restarted with it.
   */
  get inStartQuiet(): boolean { return inStartQuiet(this.r); }
  /**
   * The group is idle: this member's timers are stopped and `tick()` does nothing, so the host
   * need not call it. Anything that gives the group work wakes it (docs/raft.md, "Quiescence").
   */
  get quiesced(): boolean { return this.r.quiet.quiesced; }

  // --- Time ---

  tick(): void {
    const r = this.r;
    // Defensive: a host skips quiesced members, and they have no timer running to advance.
    if (r.quiet.quiesced) return;
    r.time.ticks++;
    if (r.role === Role.Leader) this.tickLeader();
    else tickElection(r);
  }

  private tickLeader(): void {
    const r = this.r;
    const t = r.time;
    t.heartbeatElapsed++;
    t.electionElapsed++;
    if (t.electionElapsed >= r.cfg.ticksElection) {
      t.electionElapsed = 0;
      if (!checkQuorum(r)) return;
      abandonTransfer(r);
      if (r.role !== Role.Leader) return;
      restartCheckQuorum(r);
    }
    tickSnapshots(r);
    if (tickQuiesce(r)) return;
    if (t.heartbeatElapsed >= r.cfg.ticksHeartbeat) {
      t.heartbeatElapsed = 0;
      tickHeartbeat(r);
    }
  }

  /**
   * For the host: wake this member (a no-op unless quiesced). A host calls it when it suspects
   * the group's leader is gone, e.g. when the link to the leader's node went down; a follower
   * woken so campaigns after its election timeout unless the leader speaks first.
   */
  wake(): void {
    unquiesce(this.r);
  }

  // --- Requests from the host ---

  /** Appends `data` (one command, or with type Batch several the host packed) if this member leads. */
  propose(data: Uint8Array, type: EntryType.Normal | EntryType.Batch = EntryType.Normal): ProposeResult {
    return propose(this.r, data, type);
  }

  /** Starts a membership change (joint consensus; the leader leaves the joint configuration itself). */
  proposeConfChange(cc: ConfChange): ProposeResult & { reason?: string } {
    return proposeConfChange(this.r, cc);
  }

  /**
   * Asks for a linearizable read. On success a ReadState with `requestId` arrives in a later
   * Ready (or `readsAborted` lists it if leadership is lost first).
   */
  readIndex(requestId: number): ReadResult {
    return readIndex(this.r, requestId);
  }

  transferLeader(to: NodeId): ReadResult {
    return transferLeader(this.r, to);
  }

  /** Starts an election now, as if the election timeout had passed. */
  campaign(): void {
    if (this.r.role === Role.Leader) return;
    unquiesce(this.r);
    hup(this.r, false);
  }

  /** The host delivered (ok) or gave up on (not ok) a snapshot sent to `to`. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    reportSnapshot(this.r, to, ok);
  }

  // --- Messages ---

  /**
   * Steps one message in. Returns null, or why the message was refused and dropped unread
   * (message-check.ts): messages come from the wire, so a malformed one is input to count, not
   * a bug to assert on. Messages for another member or of term 0 are ignored (null).
   */
  step(m: Message): MessageProblem | null {
    const r = this.r;
    if (m.to !== r.id || m.term === 0) return null;
    const problem = messageProblem(r, m);
    if (problem !== null) return problem;
    this.stepChecked(m);
    return null;
  }

  private stepChecked(m: Message): void {
    const r = this.r;
    if (r.quiet.quiesced && !m.quiesce) {
      // Any message but a quiesce heartbeat wakes a quiesced member; those are handled below.
      if (staleWhileQuiesced(r, m)) return;
      unquiesce(r);
    }
    if (m.term > r.term) {
      if ((m.type === MessageType.Vote || m.type === MessageType.PreVote) && ignoresCampaign(r, m)) return;
      if (m.type === MessageType.PreVote || (m.type === MessageType.PreVoteResp && !m.reject)) {
        // A pre-vote does not change anyone's term.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        becomeFollower(r, m.term, m.from);
      } else {
        becomeFollower(r, m.term, NONE);
      }
    } else if (m.term < r.term) {
      if ((r.cfg.checkQuorum || r.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader learns of the newer term (with pre-vote, it would never hear otherwise).
        r.out.send(message(MessageType.AppResp, r.id, m.from, r.term));
      } else if (m.type === MessageType.PreVote) {
        const resp = message(MessageType.PreVoteResp, r.id, m.from, r.term);
        resp.reject = true;
        r.out.send(resp);
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      handleVote(r, m);
      return;
    }
    switch (r.role) {
      case Role.Leader: this.stepLeader(m); break;
      case Role.Follower: this.stepFollower(m); break;
      default: this.stepCandidate(m); break;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.r.trk.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.AppResp: handleAppendResp(this.r, m, pr); return;
      case MessageType.HeartbeatResp: handleHeartbeatResp(this.r, m, pr); return;
      default: return;
    }
  }

  private stepFollower(m: Message): void {
    const r = this.r;
    switch (m.type) {
      case MessageType.App:
        r.time.electionElapsed = 0;
        r.leader = m.from;
        handleAppend(r, m);
        return;
      case MessageType.Heartbeat:
        r.time.electionElapsed = 0;
        r.leader = m.from;
        handleHeartbeat(r, m);
        return;
      case MessageType.Snap:
        r.time.electionElapsed = 0;
        r.leader = m.from;
        handleSnapshot(r, m);
        return;
      case MessageType.TimeoutNow:
        // Leader transfer: campaign at once, skipping pre-vote, through any lease.
        hup(r, true);
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
        becomeFollower(this.r, m.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.PreVoteResp:
      case MessageType.VoteResp:
        handleVoteResp(this.r, m);
        return;
      default:
        return;
    }
  }

  // --- Handing work to the host (ready.ts) ---

  hasReady(): boolean {
    return hasReady(this.r);
  }

  ready(): Ready {
    return ready(this.r);
  }

  /** The host made everything in `rd` durable. */
  persisted(rd: Ready): void {
    persisted(this.r, rd);
  }
}

export { ChangeType };
