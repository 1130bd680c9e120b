// The state of one member of one group, shared by the parts that make up its behaviour.
//
// `RaftNode` (raft.ts) is the member's public face; what it does is written per concept, as
// functions of this state, in files named after the concept: election.ts, replication.ts,
// proposals.ts, read-index.ts and lease.ts, quiescence.ts, transfer.ts, membership.ts,
// ready.ts. Each concept's own fields sit in a small object of its file (`Lease`,
// `Quiescence`, `Proposals`, `Outbox`); what every part reads (term, vote, role, leader, the
// log, the tracker, the timers) sits here.
import { Lease } from './lease.js';
import { Proposals } from './proposals.js';
import { Quiescence } from './quiescence.js';
import type { RaftLog } from './raft-log.js';
import { READS_PENDING_MAX } from './read-index.js';
import { ReadOnly } from './read-only.js';
import { Outbox } from './ready.js';
import type { Tracker } from './tracker.js';
import { NONE, Role, type NodeId, type RaftConfig } from './types.js';

/** The member's clocks, in ticks. */
export class Timers {
  /** Every tick this member took: leases and read rounds are timed by it. */
  ticks = 0;
  /** Follower and candidate: ticks since the leader was last heard (or the campaign began).
   *  Leader: ticks into the current check-quorum (and transfer) window. */
  electionElapsed = 0;
  /** Leader: ticks since the last heartbeat broadcast. */
  heartbeatElapsed = 0;
  /** This role's election timeout, drawn from `random` on every role change. */
  electionTimeoutRandomized = 0;
}

export class RaftState {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly log: RaftLog;
  readonly trk: Tracker;
  term = 0;
  vote: NodeId = NONE;
  role = Role.Follower;
  leader: NodeId = NONE;
  readonly time = new Timers();
  /** What the next Ready hands out (ready.ts). */
  readonly out = new Outbox();
  readonly reads = new ReadOnly(READS_PENDING_MAX);
  readonly lease = new Lease();
  readonly quiet = new Quiescence();
  readonly proposals = new Proposals();
  /** Leader: the member a leader transfer hands over to (transfer.ts); NONE when none. */
  transferee: NodeId = NONE;
  /** Made just now by the host (RaftConfig.startedFresh): it cannot have been in anyone's lease. */
  startedFresh = false;

  constructor(cfg: RaftConfig, log: RaftLog, trk: Tracker) {
    this.id = cfg.id;
    this.cfg = cfg;
    this.log = log;
    this.trk = trk;
  }
}
