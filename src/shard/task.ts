// What the main thread hands each shard task when it starts it (through piscina), and the
// admin requests it may send afterwards. Plain data: it crosses threads by structured clone,
// except the SharedArrayBuffers, which are shared.
import type { LogLevel, LogOutput } from '../log/logger.js';

/** A member of the cluster and where it listens. */
export interface PeerInfo {
  id: number;
  host: string;
  raftPort: number;
  clientPort: number;
  wsPort: number;
  adminPort: number;
}

/** Where a user-supplied state machine comes from: a module a worker can import. */
export interface StateMachineModule {
  /** A file URL or a package specifier, resolvable from the worker. */
  module: string;
  /** Name of the exported factory `(group: number) => StateMachine`; default `createStateMachine`. */
  export?: string;
}

export interface ShardTask {
  shard: number;
  shards: number;
  nodeId: number;
  peers: PeerInfo[];
  inRing: SharedArrayBuffer;
  outRing: SharedArrayBuffer;
  /** Float64Array of `ShardCounter` slots (counters.ts), written by the shard, read by main. */
  counters: SharedArrayBuffer;
  /** `<dataDir>/shard-<k>`: the shard's `wal/` and `snapshots/` live under it. */
  dir: string;
  /** Groups of this shard to create at start if the log does not have them; members: every peer. */
  bootstrapGroups: number[];
  /**
   * The meta group's voters when this shard creates it at the node's first start (the shard
   * owns META_GROUP and this node is one of them), else absent (src/cluster/meta-group.ts).
   */
  bootstrapMeta?: number[];
  /**
   * The node's slot table (src/shard/slot-owners.ts): which group owns each slot in the node's
   * copy of the key map, written by the main thread, read here to refuse WRONG_GROUP. Absent:
   * nothing is refused (a shard driven without a node, as in the simulator).
   */
  slotTable?: SharedArrayBuffer;
  syncForce: boolean;
  segmentBytes: number;
  tickMs: number;
  ticksElection: number;
  ticksHeartbeat: number;
  /** Idle ticks before a leader quiesces its group (0: never; absent: 2 × ticksElection). */
  ticksQuiesce?: number;
  /** Take a snapshot of a group after this many commands applied since its last one... */
  snapshotEntries: number;
  /** ...and this many times as many bytes of commands as its last image holds (0: no byte rule). */
  snapshotLogRatio: number;
  /** Entries kept behind a snapshot for followers that lag a little. */
  snapshotKeepEntries: number;
  /** Writes and reads waiting in one group before new ones get OVERLOADED. */
  pendingPerGroupMax: number;
  /** A request with no outcome after this long gets TIMEOUT. */
  requestTimeoutMs: number;
  /** Most in-ring records handled in one turn, so a flood cannot starve ticks and the log. */
  turnRecordsMax: number;
  /** Largest piece of a snapshot sent in one sub-record. */
  snapChunkBytes: number;
  /** Largest snapshot a follower accepts. */
  snapshotBytesMax: number;
  stateMachine: StateMachineModule | null;
  /** Benchmark mode: every client command is answered at once with an empty Result (no Raft, no log). */
  echo?: boolean;
  /** How leaders confirm linearizable reads (config `readMode`; absent: index). */
  readMode?: 'index' | 'lease';
  logLevel: LogLevel;
  /** Log lines as JSON (absent: json) or pretty, as the main thread resolved `logFormat`. */
  logFormat?: LogOutput['format'];
  /** ANSI colours in pretty lines (absent: none). */
  logColor?: boolean;
}

/** Admin requests (msgpack payload of InKind.Admin) and what each replies. */
export type AdminRequest =
  /** Creates the group here with these voters (idempotent when it exists with them). */
  | { op: 'addGroup'; group: number; members: number[] }
  /** Forgets the group here: its log records, snapshots and state machine. */
  | { op: 'removeGroup'; group: number }
  | { op: 'transferLeader'; group: number; to: number }
  /**
   * Creates here an empty replica of an existing group (no founding entry, no configuration):
   * it waits for the group's leader to send it the log or a snapshot once the leader adds this
   * node (addMember). Idempotent. Never for a node whose replica of the group was removed: it
   * would come back without the votes it gave (member-changes.ts, docs/operations.md).
   */
  | { op: 'joinGroup'; group: number }
  | MemberChangeRequest
  /** Per-group status of every group on the shard, or of the listed ones it hosts (the others are left out). */
  | { op: 'status'; groups?: number[] }
  /** The ids of the groups on the shard, ascending (a page of /status is chosen from them). */
  | { op: 'groupIds' }
  /** Latency histograms (bucket counts) since the shard started. */
  | { op: 'metrics' };

/**
 * Membership changes, asked of the group's leader; each is one joint-consensus change, answered
 * once it has taken effect (src/shard/member-changes.ts).
 */
export type MemberChangeRequest =
  /** Adds `node` as a learner (it receives the log, never votes) or straight as a voter. */
  | { op: 'addMember'; group: number; node: number; learner: boolean }
  /** Makes the learner `node` a voter. */
  | { op: 'promote'; group: number; node: number }
  /** Removes the voter or learner `node` (the leader too: it hands over leadership). */
  | { op: 'removeMember'; group: number; node: number };

export interface GroupStatus {
  group: number;
  role: 'follower' | 'pre-candidate' | 'candidate' | 'leader';
  leader: number;
  term: number;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  voters: number[];
  learners: number[];
}

/**
 * A latency histogram since the shard started: `buckets[i]` observations fell in
 * (LATENCY_BOUNDS_US[i-1], LATENCY_BOUNDS_US[i]] (src/shard/latency.ts), the last one above
 * every bound. Not cumulative; the main thread makes Prometheus' cumulative buckets of it.
 */
export interface LatencySummary {
  buckets: number[];
  count: number;
  /** Sum of all observations, seconds. */
  sumSeconds: number;
}

export type AdminReply =
  | { ok: true; groups?: GroupStatus[]; groupIds?: number[]; latency?: Record<string, LatencySummary>; members?: { voters: number[]; learners: number[] } }
  | { ok: false; code: string; message: string };
