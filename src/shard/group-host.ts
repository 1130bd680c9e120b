// One group as a shard hosts it: the Raft core, the state machine, what has been applied, and
// the client requests waiting on this member (proposals by log index, linearizable reads by
// read id). The shard drives it; this file holds the per-group state and the small steps on it.
import { emptyConf } from '../raft/conf-change.js';
import { RaftNode } from '../raft/raft.js';
import { Role, type ConfState, type HardState, type NodeId } from '../raft/types.js';
import type { StateMachine } from './state-machine.js';
import type { AdminReply, GroupStatus } from './task.js';

/** A client write waiting for its outcome. */
export interface WaitingWrite {
  conn: number;
  requestId: number;
  /** The shard clock (ms) when the request was read. */
  t0: number;
}

/**
 * An entry proposed here, answered when it is applied (or when leadership is lost): one write,
 * or a batch entry's writes (command-batch.ts), the first here and the others in `rest`, in the
 * order of their commands.
 */
export interface PendingWrite extends WaitingWrite {
  term: number;
  rest: WaitingWrite[] | null;
}

/** A membership change proposed here by admin (member-changes.ts), answered once it has taken effect. */
export interface PendingChange {
  /** Index and term of its entry (the one that enters the joint configuration). */
  index: number;
  term: number;
  /** Its entry was applied with its term: it waits for the joint configuration to be left. */
  entered: boolean;
  t0: number;
  reply: (r: AdminReply) => void;
}

/** A linearizable read, answered once a ReadState confirms it and the state machine has applied its index. */
/** PendingRead.index of a confirmed read that was answered otherwise (timed out, aborted). */
export const READ_GONE = -2;

export interface PendingRead {
  conn: number;
  requestId: number;
  /** The command (copied out of the ring). */
  body: Uint8Array;
  /** Read index from the ReadState; -1 until it arrives. */
  index: number;
  t0: number;
  /** Confirmed by the leader's lease (ReadState.lease): served only if the lease still holds then. */
  lease: boolean;
}

const ROLE_NAMES: Record<Role, GroupStatus['role']> = {
  [Role.Follower]: 'follower',
  [Role.PreCandidate]: 'pre-candidate',
  [Role.Candidate]: 'candidate',
  [Role.Leader]: 'leader',
};


/**
 * The client writes waiting on this member: read this turn and staged, not proposed yet, and
 * proposed, by the index of their entry (client-requests.ts proposes and answers them).
 */
export class PendingWrites {
  /** Entries proposed here, answered once applied (or when leadership is lost), by index. */
  readonly proposals = new Map<number, PendingWrite>();
  /** Writes read this turn, not proposed yet: their commands (copied out of the ring) and who waits, in order. */
  readonly staged: Uint8Array[] = [];
  readonly stagedWaiting: WaitingWrite[] = [];
  stagedBytes = 0;
  /**
   * Index of the last entry this member proposed as leader (0: none this leadership): while it
   * is not committed, new writes wait in `staged` for it (ClientRequests.proposeStaged).
   */
  proposedLast = 0;
  /** Client writes waiting here, staged or proposed (an entry may carry many). */
  waiting = 0;
}

/** The linearizable reads waiting on this member (client-requests.ts serves them). */
export class PendingReads {
  /** Reads not yet confirmed by a ReadState, by read id. */
  readonly byId = new Map<number, PendingRead>();
  /**
   * Confirmed reads, in the order their ReadStates came (so by read index), served from
   * `readyHead` as `applied` reaches them; one taken out early (a timeout, an abort) has
   * index READ_GONE. A queue, not a scan of every read waiting: at hundreds of reads in flight
   * per group that scan was most of a read's cost.
   */
  ready: PendingRead[] = [];
  readyHead = 0;
  /** Reads with a ReadState, waiting for `applied` to reach their index. */
  confirmed = 0;
}

/** The group's snapshot images as far as this member goes (snapshots.ts takes and installs them). */
export class Imaging {
  /** The newest snapshot of this group the log records (taken here or installed). */
  index: number;
  /** Bytes of the newest snapshot image (taken here, installed, or loaded at start). */
  bytes = 0;
  /** Bytes of entry data applied since that image was taken. */
  appliedBytesSince = 0;
  /** Commands applied since that image (an entry may carry many: command-batch.ts). */
  appliedCommandsSince = 0;
  /** A local snapshot is being written. */
  taking = false;
  /** Snapshots from a leader handed out but not yet restored into `sm`. */
  installing = 0;

  constructor(index: number, bytes: number) {
    this.index = index;
    this.bytes = bytes;
  }
}

export class GroupHost {
  /** Index and term of the last entry applied to `sm` (or of the snapshot it was restored from). */
  applied: number;
  appliedTerm: number;
  /** Configuration as of `applied`, for snapshots. */
  conf: ConfState;
  /** Role as of the last soft state handed out (the shard answers waiting requests on changes). */
  role = Role.Follower;
  leader: NodeId = 0;
  term = 0;
  readonly writes = new PendingWrites();
  readonly reads = new PendingReads();
  /** The membership change waiting here, if any (one at a time). */
  change: PendingChange | null = null;
  /** The newest hard state whose only change was the commit index, not yet written (see Readies.handleReadyIo). */
  hardPending: HardState | null = null;
  readonly image: Imaging;
  /** Removed from the shard: late completions for it are ignored. */
  removed = false;

  constructor(
    readonly id: number,
    readonly core: RaftNode,
    public sm: StateMachine,
    snapshot: { index: number; term: number; conf: ConfState },
    /** Bytes of the snapshot image loaded at start (0: none). */
    imageBytes = 0,
  ) {
    this.applied = snapshot.index;
    this.appliedTerm = snapshot.term;
    this.conf = snapshot.index > 0 ? snapshot.conf : emptyConf();
    this.image = new Imaging(snapshot.index, imageBytes);
    this.term = core.term;
  }

  /** Client requests waiting here: writes (staged or proposed) and reads. */
  get pending(): number {
    return this.writes.waiting + this.reads.byId.size + this.reads.confirmed;
  }

  status(): GroupStatus {
    const c = this.core;
    return {
      group: this.id,
      role: ROLE_NAMES[c.role],
      leader: c.leader,
      term: c.term,
      commit: c.commit,
      applied: this.applied,
      lastIndex: c.lastIndex(),
      snapshotIndex: this.image.index,
      voters: [...this.conf.voters],
      learners: [...this.conf.learners],
    };
  }
}
