// The data the Raft core exchanges with its host: entries, messages, hard state, snapshots,
// configuration and the Ready batch. Nothing here does I/O; everything is plain data so that
// a host can encode it however it likes (the engine copies entry payloads as bytes).

/** A member of a group. Node ids are positive integers below 2^32; 0 means "none". */
export type NodeId = number;
export const NONE: NodeId = 0;

export enum EntryType {
  /** Application data (an empty payload is the no-op a new leader appends). */
  Normal = 0,
  /** A membership change, encoded by `encodeConfChange` (see conf-change.ts). */
  ConfChange = 1,
  /**
   * Application data that the host packed from several proposals (see the host's layout:
   * src/shard/command-batch.ts). The core treats it as Normal; only the host looks inside.
   */
  Batch = 2,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/**
 * Membership of a group. `voters` is the incoming configuration; `votersOutgoing` is non-empty
 * only while the group is in a joint configuration (C_old,new), where every decision needs a
 * majority of both. Learners receive the log but never vote.
 */
export interface ConfState {
  voters: NodeId[];
  votersOutgoing: NodeId[];
  learners: NodeId[];
  /** Learners that become voters when the joint configuration is left (demoted voters). */
  learnersNext: NodeId[];
}

export interface SnapshotMeta {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** Opaque state-machine image. The core never looks inside. */
  data: Uint8Array;
}

export enum MessageType {
  /** Leader → follower: entries after (index, logTerm), and the leader's commit. */
  App = 1,
  /** Follower → leader: accepted up to `index`, or `reject` with a hint. */
  AppResp = 2,
  Vote = 3,
  VoteResp = 4,
  PreVote = 5,
  PreVoteResp = 6,
  /** Leader → follower: "I am alive", commit (bounded by the follower's match), read round. */
  Heartbeat = 7,
  HeartbeatResp = 8,
  /** Leader → follower: install this snapshot. */
  Snap = 9,
  /** Leader → transfer target: campaign now, ignoring leases. */
  TimeoutNow = 10,
}

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: index of the entry before `entries`. AppResp: last accepted index, or the rejected index.
   *  Vote/PreVote: candidate's last index. */
  index: number;
  /** App: term of `index`. Vote/PreVote: candidate's last term. AppResp(reject): term of `rejectHint`. */
  logTerm: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp(reject): the follower's suggestion of where the leader should probe next. */
  rejectHint: number;
  /** Heartbeat/HeartbeatResp: the leader's read round (see read-only.ts). Vote/PreVote: 1 when
   *  the campaign is a leader transfer, which lets it through leases. App: APP_NO_ANSWER when
   *  it carries no entries, only the commit index, to a follower known to hold everything up
   *  to `index` (replication.ts): accepted, it is not answered. */
  context: number;
  snapshot: Snapshot | null;
  /** Heartbeat only: the leader's last word before it goes quiet (docs/raft.md, "Quiescence").
   *  A follower whose log matches the leader's up to `commit` stops its election timer. */
  quiesce: boolean;
}

/** An App's `context` when it only carries the commit index and wants no answer (see Message.context). */
export const APP_NO_ANSWER = 1;

export function message(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type, from, to, term,
    index: 0, logTerm: 0, entries: [], commit: 0,
    reject: false, rejectHint: 0, context: 0, snapshot: null, quiesce: false,
  };
}

export enum Role {
  Follower = 0,
  PreCandidate = 1,
  Candidate = 2,
  Leader = 3,
}

/** A linearizable read that may be served once the state machine has applied `index`. */
export interface ReadState {
  /** The caller's id for the read, as given to `readIndex`. */
  requestId: number;
  index: number;
  /**
   * Confirmed by the leader's lease rather than by a round: valid only while the lease holds,
   * so a host that serves it later than the turn it asked in checks `leaseUntilMs()` first.
   */
  lease: boolean;
}

/**
 * What the host must do for one member, handed out by `RaftNode.ready()`:
 * 1. send `messages` now (they do not depend on anything being durable);
 * 2. make `snapshot`, `entries` and `hardState` durable, in that order, after everything handed
 *    out by earlier Readys (writes complete in order);
 * 3. once durable, call `persisted(ready)` and then send `messagesAfterPersist`;
 * 4. apply `committedEntries` in order (they are always durable locally already), and serve
 *    `readStates` once applied reaches their index.
 */
export interface Ready {
  /** Set when role, term or known leader changed since the last Ready. */
  soft: SoftState | null;
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
  /** Reads accepted by `readIndex` that will never be confirmed: leadership was lost. */
  readsAborted: number[];
  /** The configuration after the conf changes in `committedEntries` (null if unchanged). */
  conf: ConfState | null;
  /** What `persisted` marks stable: last entry handed out (0 if none) and its term. */
  lastIndex: number;
  lastTerm: number;
}

export interface SoftState {
  role: Role;
  leader: NodeId;
  term: number;
}

/** The durable log as the core reads it. Only entries already reported persisted are here. */
export interface LogStorage {
  /** Index of the first entry still held (snapshot index + 1 after compaction). */
  firstIndex(): number;
  lastIndex(): number;
  /** Term of entry `index`, for snapshotIndex ≤ index ≤ lastIndex; throws otherwise. */
  term(index: number): number;
  /** Entries in [lo, hi), at least one if lo < hi, stopping before `bytesMax` is exceeded. */
  entries(lo: number, hi: number, bytesMax: number): Entry[];
  /** The newest snapshot (data may be empty for the initial one at index 0). */
  snapshot(): Snapshot;
}

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized up to 2×). */
  ticksElection: number;
  ticksHeartbeat: number;
  /** A source of uniform numbers in [0, 1); injected so that runs are deterministic. */
  random: () => number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Lease-based reads: off by default; needs checkQuorum and bounded clock drift (docs/raft.md). */
  leaseRead: boolean;
  /** Ticks subtracted from the lease to absorb clock drift between members. */
  ticksLeaseMargin: number;
  /**
   * The lease's length on the host's monotonic clock (`nowMs`), from the send time of the round
   * that gave it; 0: bounded by ticks alone. A host whose ticks can run late (a busy or paused
   * thread skips timer firings) needs it: ticks alone would let a late leader's lease outlast
   * its followers' election timeouts (docs/raft.md, "Leases").
   */
  leaseMs: number;
  /** The host's monotonic clock, read when a round is sent and when a lease is checked (ms). */
  nowMs: () => number;
  entriesPerMsgMax: number;
  bytesPerMsgMax: number;
  inflightMsgsMax: number;
  inflightBytesMax: number;
  uncommittedEntriesMax: number;
  uncommittedBytesMax: number;
  /**
   * Ticks a leader must have nothing to do before it quiesces its group (0: never). A quiesced
   * group sends nothing and its members ignore ticks until a request, a message or the host's
   * `wake()` wakes them (docs/raft.md, "Quiescence").
   */
  ticksQuiesce: number;
  /**
   * Index already applied by the host's state machine (at least the snapshot index). This and
   * `startedFresh` are read by the constructor only, so a host may make all its members from
   * one config object set anew before each (GroupTable does: thousands of members then share
   * one object, where a copy each cost ≈ 0.7 KB and a hidden class of its own).
   */
  applied: number;
  /**
   * The host made this replica just now (a new group, or an empty replica joining one), not
   * recovered it: it has acknowledged no leader, so with lease reads it need not keep out of
   * elections at start (election.ts, inStartQuiet). Absent: recovered.
   */
  startedFresh?: boolean;
}

export const configDefaults: Omit<RaftConfig, 'id' | 'random' | 'applied'> = {
  ticksElection: 10,
  ticksHeartbeat: 1,
  preVote: true,
  checkQuorum: true,
  leaseRead: false,
  ticksLeaseMargin: 2,
  leaseMs: 0,
  nowMs: () => 0,
  entriesPerMsgMax: 1024,
  bytesPerMsgMax: 1 << 20,
  inflightMsgsMax: 256,
  inflightBytesMax: 32 << 20,
  uncommittedEntriesMax: 1 << 16,
  uncommittedBytesMax: 64 << 20,
  ticksQuiesce: 0,
};

export type ErrorCode =
  | 'NOT_LEADER'
  | 'OVERLOADED'
  | 'LEADER_TRANSFERRING'
  | 'CONF_CHANGE_PENDING'
  | 'BAD_CONF_CHANGE'
  | 'NOT_VOTER';

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; code: ErrorCode; leader: NodeId };

export type ReadResult =
  | { ok: true }
  | { ok: false; code: ErrorCode; leader: NodeId };
