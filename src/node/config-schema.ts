// A node's configuration keys: their types (NodeConfig), embedded defaults, and the schema that
// says what each accepts (one line per key), with the names a key has in the environment and
// on the command line. Loading (config.ts) and checking values (config-checks.ts) read it.
import * as os from 'node:os';
import type { PeerInfo } from '../shard/task.js';

/** Bytes a ring record needs around a client frame's body: record, sub-record, message and entry headers. */
export const FRAME_RECORD_OVERHEAD_BYTES = 1024;
export interface NodeConfig {
  /** This node's id (≥ 1): its identity in every group it is a member of. */
  nodeId: number;
  /** Listen and advertise address of every listener. */
  host: string;
  raftPort: number;
  clientPort: number;
  adminPort: number;
  wsPort: number;
  /** Every member of the cluster, this node included, with where each listens. */
  peers: PeerInfo[];
  dataDir: string;
  /** Shard worker threads; fixed for the life of a data directory. */
  shards: number;
  /** Groups 1..groups are created at a node's first start with every peer as a voter. */
  groups: number;
  syncForce: boolean;
  segmentBytes: number;
  tickMs: number;
  ticksElection: number;
  ticksHeartbeat: number;
  /** Idle ticks after which a group's leader quiesces it (0: never); docs/raft.md "Quiescence". */
  ticksQuiesce: number;
  snapshotEntries: number;
  snapshotLogRatio: number;
  snapshotKeepEntries: number;
  /** Bytes of each ring (main → shard and shard → main) per shard; a power of two. */
  ringBytes: number;
  frameBytesMax: number;
  linkFrameBytesMax: number;
  inflightPerConnMax: number;
  /**
   * Bytes one connection may have under way: request bytes in flight, plus the responses
   * expected for them, plus responses not yet written to its socket. Above it the node stops
   * reading that connection (client-routing.ts).
   */
  inflightBytesPerConnMax: number;
  connectionsMax: number;
  pendingBytesHigh: number;
  pendingBytesLow: number;
  pendingBytesMax: number;
  pendingPerGroupMax: number;
  requestTimeoutMs: number;
  turnRecordsMax: number;
  /**
   * The young generation of each shard's JavaScript heap: V8's semi-space size, MiB, as its
   * least and its most (0: V8's own sizing, the default). 16 gave one group 10 % more puts a
   * second and cost 1,024 groups about 20 % (docs/benchmarks.md).
   */
  shardSemiSpaceMb: number;
  snapChunkBytes: number;
  snapshotBytesMax: number;
  linkBackoffMsMin: number;
  linkBackoffMsMax: number;
  linkSendQueueBytesMax: number;
  /** Longest a peer link may take from connect to a checked hello. */
  linkHandshakeTimeoutMs: number;
  /**
   * Sent and checked in every peer hello: a node of another cluster is refused (CLUSTER_MISMATCH).
   * 0: derived from the address of the lowest-numbered node in `peers` (clusterIdOf).
   */
  clusterId: number;
  /** Longest a client connection may hold part of a frame (header or body) without completing it. */
  frameReadTimeoutMs: number;
  websocket: 'auto' | 'uws' | 'ws' | 'off';
  /**
   * Origins allowed to open a WebSocket, comma-separated (`https://app.example:8443`); `self`:
   * pages from this node's own host (the default); `*`: any. Clients that send no Origin (not
   * a browser) are always allowed (src/transport/ws-origins.ts).
   */
  wsOrigins: string;
  /**
   * raft: the engine. echo: a benchmark mode in which shards answer every client command at
   * once with an empty Result, without Raft or the log (docs/benchmarks.md, "echo").
   */
  mode: 'raft' | 'echo';
  /**
   * How a leader confirms a linearizable read: `index`, a heartbeat round per batch of reads
   * (ReadIndex); `lease`, at once while its lease holds on the monotonic clock (docs/raft.md,
   * "Leases"). Every node of a cluster must use the same.
   */
  readMode: 'index' | 'lease';
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** auto: readable lines (pino-pretty) when standard output is a terminal, JSON lines otherwise. */
  logFormat: 'auto' | 'json' | 'pretty';
  /** Above this many groups hosted, /metrics leaves out the per-group series (aggregates stay). */
  metricsPerGroupMax: number;
}

export type ConfigKey = keyof NodeConfig;

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
  /** Each problem found, one sentence each; `message` joins them. */
  readonly problems: string[];

  constructor(problems: string | string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('; '));
    this.name = 'ConfigError';
    this.problems = list;
  }
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const U32_MAX = 0xffff_ffff;

const DEFAULT_NODE_ID = 1;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_RAFT_PORT = 7001;

/** The embedded defaults (frozen). `peers` here is this default node alone; a loaded config
 *  without `peers` gets itself, with its own id, host and ports. */
export const configDefaults: NodeConfig = deepFreeze({
  nodeId: DEFAULT_NODE_ID,
  host: DEFAULT_HOST,
  raftPort: DEFAULT_RAFT_PORT,
  clientPort: DEFAULT_RAFT_PORT + 1,
  adminPort: DEFAULT_RAFT_PORT + 2,
  wsPort: DEFAULT_RAFT_PORT + 3,
  peers: [{
    id: DEFAULT_NODE_ID, host: DEFAULT_HOST,
    raftPort: DEFAULT_RAFT_PORT, clientPort: DEFAULT_RAFT_PORT + 1, adminPort: DEFAULT_RAFT_PORT + 2, wsPort: DEFAULT_RAFT_PORT + 3,
  }],
  dataDir: './data',
  shards: Math.max(1, Math.min(256, os.availableParallelism())),
  groups: 64,
  syncForce: true,
  segmentBytes: 64 * MiB,
  tickMs: 100,
  ticksElection: 10,
  ticksHeartbeat: 1,
  ticksQuiesce: 20,
  snapshotEntries: 100_000,
  snapshotLogRatio: 2,
  snapshotKeepEntries: 1_000,
  ringBytes: 8 * MiB,
  frameBytesMax: 1 * MiB,
  linkFrameBytesMax: 64 * MiB,
  inflightPerConnMax: 4096,
  inflightBytesPerConnMax: 32 * MiB,
  connectionsMax: 10_000,
  pendingBytesHigh: 4 * MiB,
  pendingBytesLow: 1 * MiB,
  pendingBytesMax: 64 * MiB,
  pendingPerGroupMax: 10_000,
  requestTimeoutMs: 10_000,
  turnRecordsMax: 4096,
  shardSemiSpaceMb: 0,
  snapChunkBytes: 512 * KiB,
  snapshotBytesMax: 1 * GiB,
  linkBackoffMsMin: 50,
  linkBackoffMsMax: 2_000,
  linkSendQueueBytesMax: 64 * MiB,
  linkHandshakeTimeoutMs: 5_000,
  clusterId: 0,
  frameReadTimeoutMs: 10_000,
  websocket: 'auto',
  wsOrigins: 'self',
  mode: 'raft',
  readMode: 'lease',
  logLevel: 'info',
  logFormat: 'auto',
  metricsPerGroupMax: 256,
});

function deepFreeze(c: NodeConfig): NodeConfig {
  for (const p of c.peers) Object.freeze(p);
  Object.freeze(c.peers);
  return Object.freeze(c);
}

// ---------------------------------------------------------------------------------------------
// The schema: one line per key. `bytes` keys also take KiB/MiB/GiB suffixes from env and flags.

type Spec =
  | { kind: 'int'; min: number; max: number; bytes?: boolean; pow2?: boolean }
  | { kind: 'bool' }
  | { kind: 'string' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'peers' };

const PORT: Spec = { kind: 'int', min: 0, max: 65535 };
const MS_MAX = 3_600_000;

export const configSchema: Readonly<Record<ConfigKey, Spec>> = {
  nodeId: { kind: 'int', min: 1, max: U32_MAX },
  host: { kind: 'string' },
  raftPort: PORT,
  clientPort: PORT,
  adminPort: PORT,
  wsPort: PORT,
  peers: { kind: 'peers' },
  dataDir: { kind: 'string' },
  shards: { kind: 'int', min: 1, max: 256 },
  groups: { kind: 'int', min: 0, max: 1_000_000 },
  syncForce: { kind: 'bool' },
  segmentBytes: { kind: 'int', min: 4 * KiB, max: 1 * GiB, bytes: true },
  tickMs: { kind: 'int', min: 1, max: 60_000 },
  ticksElection: { kind: 'int', min: 2, max: 10_000 },
  ticksHeartbeat: { kind: 'int', min: 1, max: 10_000 },
  ticksQuiesce: { kind: 'int', min: 0, max: 1_000_000 },
  snapshotEntries: { kind: 'int', min: 1, max: 1_000_000_000 },
  snapshotLogRatio: { kind: 'int', min: 0, max: 1_000 },
  snapshotKeepEntries: { kind: 'int', min: 0, max: 1_000_000_000 },
  ringBytes: { kind: 'int', min: 64 * KiB, max: 1 * GiB, bytes: true, pow2: true },
  frameBytesMax: { kind: 'int', min: 1 * KiB, max: 256 * MiB, bytes: true },
  linkFrameBytesMax: { kind: 'int', min: 64 * KiB, max: 1 * GiB, bytes: true },
  inflightPerConnMax: { kind: 'int', min: 1, max: 1_000_000 },
  inflightBytesPerConnMax: { kind: 'int', min: 64 * KiB, max: 16 * GiB, bytes: true },
  connectionsMax: { kind: 'int', min: 1, max: 1_000_000 },
  pendingBytesHigh: { kind: 'int', min: 1, max: 16 * GiB, bytes: true },
  pendingBytesLow: { kind: 'int', min: 0, max: 16 * GiB, bytes: true },
  pendingBytesMax: { kind: 'int', min: 1, max: 16 * GiB, bytes: true },
  pendingPerGroupMax: { kind: 'int', min: 1, max: 10_000_000 },
  requestTimeoutMs: { kind: 'int', min: 1, max: MS_MAX },
  turnRecordsMax: { kind: 'int', min: 1, max: 1_000_000 },
  shardSemiSpaceMb: { kind: 'int', min: 0, max: 256 },
  snapChunkBytes: { kind: 'int', min: 1 * KiB, max: 256 * MiB, bytes: true },
  snapshotBytesMax: { kind: 'int', min: 1 * KiB, max: 1024 * GiB, bytes: true },
  linkBackoffMsMin: { kind: 'int', min: 1, max: 600_000 },
  linkBackoffMsMax: { kind: 'int', min: 1, max: 600_000 },
  linkSendQueueBytesMax: { kind: 'int', min: 64 * KiB, max: 16 * GiB, bytes: true },
  linkHandshakeTimeoutMs: { kind: 'int', min: 1, max: MS_MAX },
  clusterId: { kind: 'int', min: 0, max: U32_MAX },
  frameReadTimeoutMs: { kind: 'int', min: 1, max: MS_MAX },
  websocket: { kind: 'enum', values: ['auto', 'uws', 'ws', 'off'] },
  wsOrigins: { kind: 'string' },
  mode: { kind: 'enum', values: ['raft', 'echo'] },
  readMode: { kind: 'enum', values: ['index', 'lease'] },
  logLevel: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
  logFormat: { kind: 'enum', values: ['auto', 'json', 'pretty'] },
  metricsPerGroupMax: { kind: 'int', min: 0, max: 1_000_000 },
};

export const configKeys = Object.keys(configSchema) as ConfigKey[];

/** FLOTILLA_* variables that are read elsewhere and are not configuration keys (FLOTILLA_SERVERS: the CLI's endpoints). */
export const envNotConfig: ReadonlySet<string> = new Set(['FLOTILLA_NATIVE_FREE', 'FLOTILLA_SERVERS']);

export function envName(key: ConfigKey): string {
  return 'FLOTILLA_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export function flagName(key: ConfigKey): string {
  return key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/**
 * The cluster id a node sends and expects in peer hellos: `clusterId`, or when it is 0 the
 * FNV-1a-32 of "host:raftPort" of the lowest-numbered node in `peers` (never 0). Every node of
 * one cluster lists the same peers, so they agree without being told; two clusters differ as
 * soon as their first nodes' addresses do. Set it explicitly when clusters may share addresses.
 */
export function clusterIdOf(c: Pick<NodeConfig, 'clusterId' | 'peers'>): number {
  if (c.clusterId !== 0) return c.clusterId;
  let first = c.peers[0];
  for (const p of c.peers) if (first === undefined || p.id < first.id) first = p;
  if (first === undefined) return 1;
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(`${first.host}:${first.raftPort}`)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h === 0 ? 1 : h;
}
