// A node's configuration: the embedded defaults, the four sources layered over them, and the
// checks that keep a bad value from reaching a socket, a ring or the log.
//
// Precedence, lowest first: defaults < config file (JSON) < environment (FLOTILLA_<SNAKE_UPPER>)
// < command-line flags (--kebab-case value). Every key, its default and meaning are listed in
// docs/configuration.md; a test keeps that page and the table below in step.
//
// Unknown keys are errors in the file and the flags, so a typo fails loudly instead of silently
// running on a default. An unknown FLOTILLA_* variable is only a warning (configWarnings): the
// environment is shared with other tools, and a variable meant for one of them must not stop a
// node. Errors name the key and where its value came from.
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { PeerInfo } from '../shard/task.js';


/** Bytes a ring record needs around a client frame's body: record, sub-record, message and entry headers. */
const FRAME_RECORD_OVERHEAD_BYTES = 1024;
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
  connectionsMax: number;
  pendingBytesHigh: number;
  pendingBytesLow: number;
  pendingBytesMax: number;
  pendingPerGroupMax: number;
  requestTimeoutMs: number;
  turnRecordsMax: number;
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

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const U32_MAX = 0xffff_ffff;

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
  connectionsMax: 10_000,
  pendingBytesHigh: 4 * MiB,
  pendingBytesLow: 1 * MiB,
  pendingBytesMax: 64 * MiB,
  pendingPerGroupMax: 10_000,
  requestTimeoutMs: 10_000,
  turnRecordsMax: 4096,
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
  connectionsMax: { kind: 'int', min: 1, max: 1_000_000 },
  pendingBytesHigh: { kind: 'int', min: 1, max: 16 * GiB, bytes: true },
  pendingBytesLow: { kind: 'int', min: 0, max: 16 * GiB, bytes: true },
  pendingBytesMax: { kind: 'int', min: 1, max: 16 * GiB, bytes: true },
  pendingPerGroupMax: { kind: 'int', min: 1, max: 10_000_000 },
  requestTimeoutMs: { kind: 'int', min: 1, max: MS_MAX },
  turnRecordsMax: { kind: 'int', min: 1, max: 1_000_000 },
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

/** Warnings of each configuration loadConfig built, for the node to log once it has a logger. */
const warningsOf = new WeakMap<NodeConfig, readonly string[]>();

/** What loadConfig noticed but did not refuse (unknown FLOTILLA_* variables); [] for any other object. */
export function configWarnings(config: NodeConfig): readonly string[] {
  return warningsOf.get(config) ?? [];
}

const byEnv = new Map(configKeys.map((k) => [envName(k), k]));
const byFlag = new Map(configKeys.map((k) => [flagName(k), k]));

// ---------------------------------------------------------------------------------------------
// Loading

type Source =
  | { kind: 'default' } | { kind: 'file'; file: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string }
  | { kind: 'option' };

function describe(key: string, src: Source): string {
  switch (src.kind) {
    case 'default': return `${key} (default)`;
    case 'file': return `${key} (file ${src.file})`;
    case 'env': return `${key} (env ${src.name})`;
    case 'flag': return `${key} (flag --${src.name})`;
    case 'option': return `${key} (option)`;
  }
}

/**
 * Builds a node's configuration from the defaults, then a JSON file, then environment variables,
 * then flags; each later source wins. Pass `env: process.env` to read the environment: without
 * it no variable is read. Flags are keyed by their kebab-case name (`'sync-force'`, with or
 * without the leading dashes). Throws ConfigError listing every problem found; what it only
 * warns about is in configWarnings(config), and startNode logs it.
 */
export function loadConfig(opts: { file?: string; env?: Record<string, string | undefined>; flags?: Record<string, string> }): NodeConfig {
  return loadConfigWithSources(opts).config;
}

/** Where a key's effective value came from (`flotilla config` prints it): the file's path, the variable's or flag's name. */
export interface ConfigSource {
  source: 'default' | 'file' | 'env' | 'flag';
  from?: string;
}

/** loadConfig, and for every key where its value came from. */
export function loadConfigWithSources(opts: { file?: string; env?: Record<string, string | undefined>; flags?: Record<string, string> }): {
  config: NodeConfig;
  sources: Record<ConfigKey, ConfigSource>;
} {
  const values = new Map<ConfigKey, unknown>();
  const sources = new Map<ConfigKey, Source>();
  const problems: string[] = [];
  const warnings: string[] = [];

  const set = (key: ConfigKey, raw: unknown, src: Source, fromText: boolean): void => {
    const r = fromText ? fromString(key, raw as string) : fromJson(key, raw);
    if (typeof r === 'string') {
      problems.push(`${describe(key, src)}: ${r}`);
      return;
    }
    values.set(key, r.value);
    sources.set(key, src);
  };

  if (opts.file !== undefined) {
    const src: Source = { kind: 'file', file: opts.file };
    const obj = readConfigFile(opts.file);
    for (const [name, raw] of Object.entries(obj)) {
      if (!Object.hasOwn(configSchema, name)) {
        problems.push(`${name} (file ${opts.file}): not a configuration key${suggest(name, configKeys)}`);
        continue;
      }
      set(name as ConfigKey, raw, src, false);
    }
  }

  if (opts.env !== undefined) {
    for (const [name, raw] of Object.entries(opts.env)) {
      if (!name.startsWith('FLOTILLA_') || raw === undefined || raw === '' || envNotConfig.has(name)) continue;
      const key = byEnv.get(name);
      if (key === undefined) {
        warnings.push(`env ${name}: not a configuration variable, ignored${suggest(name, [...byEnv.keys()])}`);
        continue;
      }
      set(key, raw, { kind: 'env', name }, true);
    }
  }

  if (opts.flags !== undefined) {
    for (const [given, raw] of Object.entries(opts.flags)) {
      const name = given.replace(/^--?/, '');
      const key = byFlag.get(name);
      if (key === undefined) {
        problems.push(`flag --${name}: not a configuration flag${suggest(name, [...byFlag.keys()], '--')}`);
        continue;
      }
      set(key, raw, { kind: 'flag', name }, true);
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const config = { ...configDefaults } as unknown as Record<ConfigKey, unknown>;
  for (const [k, v] of values) config[k] = v;
  const c = config as unknown as NodeConfig;
  if (!values.has('peers')) {
    c.peers = [{ id: c.nodeId, host: c.host, raftPort: c.raftPort, clientPort: c.clientPort, adminPort: c.adminPort, wsPort: c.wsPort }];
    sources.set('peers', { kind: 'default' });
  } else {
    c.peers = c.peers.map((p) => ({ ...p }));
  }

  const src = (k: ConfigKey): Source => sources.get(k) ?? { kind: 'default' };
  checkRelations(c, (keys, text) => problems.push(`${keys.map((k) => describe(k, src(k))).join(', ')}: ${text}`));
  if (problems.length > 0) throw new ConfigError(problems);
  if (warnings.length > 0) warningsOf.set(c, warnings);
  const where = {} as Record<ConfigKey, ConfigSource>;
  for (const k of configKeys) {
    const s = src(k);
    where[k] = s.kind === 'file' ? { source: 'file', from: s.file } : s.kind === 'env' || s.kind === 'flag' ? { source: s.kind, from: s.name } : { source: 'default' };
  }
  return { config: c, sources: where };
}

/**
 * Builds a node's configuration from the defaults and `given`, the options of a program that
 * embeds a node (src/index.ts): values are JSON types, as in a config file, and pass the same
 * checks as loadConfig's. A key given as undefined counts as absent; `peers` absent means this
 * node alone. Throws ConfigError listing every problem found.
 */
export function resolveConfig(given: Partial<NodeConfig>): NodeConfig {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new ConfigError(`options: expected an object of configuration keys, got ${show(given)}`);
  }
  const values = new Map<ConfigKey, unknown>();
  const problems: string[] = [];
  const src: Source = { kind: 'option' };
  for (const [name, raw] of Object.entries(given)) {
    if (raw === undefined) continue;
    if (!Object.hasOwn(configSchema, name)) {
      problems.push(`${name} (option): not a configuration key${suggest(name, configKeys)}`);
      continue;
    }
    const key = name as ConfigKey;
    const r = fromJson(key, raw);
    if (typeof r === 'string') problems.push(`${describe(key, src)}: ${r}`);
    else values.set(key, r.value);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = { ...configDefaults } as unknown as Record<ConfigKey, unknown>;
  for (const [k, v] of values) config[k] = v;
  const c = config as unknown as NodeConfig;
  if (!values.has('peers')) {
    c.peers = [{ id: c.nodeId, host: c.host, raftPort: c.raftPort, clientPort: c.clientPort, adminPort: c.adminPort, wsPort: c.wsPort }];
  }
  checkRelations(c, (keys, text) => problems.push(`${keys.map((k) => describe(k, values.has(k) ? src : { kind: 'default' })).join(', ')}: ${text}`));
  if (problems.length > 0) throw new ConfigError(problems);
  return c;
}

/** Reads and parses a JSON config file; the top level must be an object. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`config file ${file}: ${err.code === 'ENOENT' ? 'not found' : err.message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(`config file ${file}: the top level must be a JSON object of configuration keys`);
  }
  return obj as Record<string, unknown>;
}

type Parsed = { value: unknown } | string;

/** A value from a JSON file: JSON types must match (numbers are numbers, booleans booleans). */
function fromJson(key: ConfigKey, raw: unknown): Parsed {
  const spec = configSchema[key];
  switch (spec.kind) {
    case 'int':
      if (typeof raw !== 'number') return `expected an integer, got ${show(raw)}`;
      return checkInt(spec, raw);
    case 'bool':
      if (typeof raw !== 'boolean') return `expected true or false, got ${show(raw)}`;
      return { value: raw };
    case 'string':
      if (typeof raw !== 'string') return `expected a string, got ${show(raw)}`;
      return checkString(raw);
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) return `expected one of ${spec.values.join(', ')}, got ${show(raw)}`;
      return { value: raw };
    case 'peers':
      if (typeof raw === 'string') return peersOrProblem(raw);
      if (!Array.isArray(raw)) return `expected an array of {id, host, raftPort[, clientPort, adminPort, wsPort]} or a string "id@host:port,...", got ${show(raw)}`;
      return peersFromJson(raw);
  }
}

/** A value from the environment or a flag: text. */
function fromString(key: ConfigKey, raw: string): Parsed {
  const spec = configSchema[key];
  const text = raw.trim();
  switch (spec.kind) {
    case 'int': {
      const n = parseIntText(text, spec.bytes === true);
      if (n === null) return `expected ${spec.bytes === true ? 'an integer (optionally with KiB, MiB or GiB)' : 'an integer'}, got ${show(raw)}`;
      return checkInt(spec, n);
    }
    case 'bool':
      if (text === 'true' || text === '1') return { value: true };
      if (text === 'false' || text === '0') return { value: false };
      return `expected true or false, got ${show(raw)}`;
    case 'string':
      return checkString(text);
    case 'enum':
      if (!spec.values.includes(text)) return `expected one of ${spec.values.join(', ')}, got ${show(raw)}`;
      return { value: text };
    case 'peers':
      return peersOrProblem(text);
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: KiB, kib: KiB, m: MiB, mib: MiB, g: GiB, gib: GiB };

function parseIntText(text: string, bytes: boolean): number | null {
  const m = /^(-?\d+)\s*([a-zA-Z]*)$/.exec(text.replace(/_/g, ''));
  if (m === null) return null;
  const unit = m[2]!.toLowerCase();
  if (unit !== '' && !bytes) return null;
  const mul = SIZE_UNITS[unit];
  if (mul === undefined) return null;
  return Number(m[1]) * mul;
}

function checkInt(spec: { min: number; max: number; pow2?: boolean }, n: number): Parsed {
  if (!Number.isSafeInteger(n)) return `expected an integer, got ${show(n)}`;
  if (n < spec.min || n > spec.max) return `${n} is out of range ${spec.min}..${spec.max}`;
  if (spec.pow2 === true && (n & (n - 1)) !== 0) return `${n} is not a power of two`;
  return { value: n };
}

function checkString(s: string): Parsed {
  if (s.length === 0) return 'must not be empty';
  return { value: s };
}

function peersOrProblem(text: string): Parsed {
  try {
    return { value: parsePeers(text) };
  } catch (e) {
    return (e as Error).message;
  }
}

const PEER_FIELDS = ['id', 'host', 'raftPort', 'clientPort', 'adminPort', 'wsPort'];

function peersFromJson(list: unknown[]): Parsed {
  const out: PeerInfo[] = [];
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    if (p === null || typeof p !== 'object' || Array.isArray(p)) return `peers[${i}]: expected an object, got ${show(p)}`;
    const o = p as Record<string, unknown>;
    for (const f of Object.keys(o)) {
      if (!PEER_FIELDS.includes(f)) return `peers[${i}]: unknown field ${f} (fields: ${PEER_FIELDS.join(', ')})`;
    }
    const id = o['id'];
    const host = o['host'];
    const raftPort = o['raftPort'];
    if (!isIntIn(id, 1, U32_MAX)) return `peers[${i}].id: expected an integer 1..${U32_MAX}, got ${show(id)}`;
    if (typeof host !== 'string' || host.length === 0) return `peers[${i}].host: expected a non-empty string, got ${show(host)}`;
    if (!isIntIn(raftPort, 0, 65535)) return `peers[${i}].raftPort: expected a port 0..65535, got ${show(raftPort)}`;
    const peer: PeerInfo = { id, host, raftPort, clientPort: raftPort + 1, adminPort: raftPort + 2, wsPort: raftPort + 3 };
    for (const f of ['clientPort', 'adminPort', 'wsPort'] as const) {
      const v = o[f];
      if (v === undefined) continue;
      if (!isIntIn(v, 0, 65535)) return `peers[${i}].${f}: expected a port 0..65535, got ${show(v)}`;
      peer[f] = v;
    }
    out.push(peer);
  }
  return { value: out };
}

function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/**
 * Parses `id@host:raftPort[:clientPort:adminPort:wsPort],...`; missing ports are raftPort+1,
 * +2, +3 (client, admin, WebSocket). An IPv6 host goes in brackets: `2@[::1]:7011`.
 */
export function parsePeers(s: string): PeerInfo[] {
  const out: PeerInfo[] = [];
  const items = s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  if (items.length === 0) throw new ConfigError('peers: empty list; expected id@host:raftPort[:clientPort:adminPort:wsPort],...');
  for (const item of items) {
    const m = /^(\d+)@(\[[^\]]+\]|[^:@\s]+)((?::\d+)+)$/.exec(item);
    const bad = (why: string): ConfigError =>
      new ConfigError(`peers: "${item}": ${why}; expected id@host:raftPort[:clientPort:adminPort:wsPort]`);
    if (m === null) throw bad('not understood');
    const id = Number(m[1]);
    if (!isIntIn(id, 1, U32_MAX)) throw bad(`id must be 1..${U32_MAX}`);
    const host = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
    const ports = m[3]!.slice(1).split(':').map(Number);
    if (ports.length !== 1 && ports.length !== 4) throw bad('give one port (raft) or four (raft, client, admin, ws)');
    for (const p of ports) if (!isIntIn(p, 0, 65535)) throw bad(`port ${p} is out of range 0..65535`);
    const raftPort = ports[0]!;
    out.push(ports.length === 4
      ? { id, host, raftPort, clientPort: ports[1]!, adminPort: ports[2]!, wsPort: ports[3]! }
      : { id, host, raftPort, clientPort: raftPort + 1, adminPort: raftPort + 2, wsPort: raftPort + 3 });
  }
  return out;
}

/** Checks between keys; `fail` gets the keys involved (for their sources) and what is wrong. */
function checkRelations(c: NodeConfig, fail: (keys: ConfigKey[], text: string) => void): void {
  // Ports of this node: distinct, except that 0 (ephemeral) may repeat.
  const ports: [ConfigKey, number][] = [['raftPort', c.raftPort], ['clientPort', c.clientPort], ['adminPort', c.adminPort], ['wsPort', c.wsPort]];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [ki, pi] = ports[i]!;
      const [kj, pj] = ports[j]!;
      if (pi !== 0 && pi === pj) fail([ki, kj], `both are ${pi}; every listener needs its own port`);
    }
  }

  // Peers: unique ids, self present with this node's ports, no two listeners on one host:port.
  const ids = new Set<number>();
  const endpoints = new Map<string, string>();
  for (const p of c.peers) {
    if (ids.has(p.id)) fail(['peers'], `node ${p.id} is listed twice`);
    ids.add(p.id);
    for (const f of ['raftPort', 'clientPort', 'adminPort', 'wsPort'] as const) {
      const port = p[f];
      if (port === 0) {
        if (p.id !== c.nodeId) fail(['peers'], `node ${p.id} has ${f} 0; other nodes must be reachable on fixed ports`);
        continue;
      }
      const at = `${p.host}:${port}`;
      const who = `node ${p.id} ${f}`;
      const prev = endpoints.get(at);
      if (prev !== undefined) fail(['peers'], `${prev} and ${who} are both ${at}`);
      else endpoints.set(at, who);
    }
  }
  const self = c.peers.find((p) => p.id === c.nodeId);
  if (self === undefined) {
    fail(['peers', 'nodeId'], `peers do not include node ${c.nodeId} (this node)`);
  } else {
    for (const [k, port] of ports) {
      const f = k as 'raftPort' | 'clientPort' | 'adminPort' | 'wsPort';
      if (self[f] !== port) fail(['peers', k], `peers say node ${c.nodeId} has ${f} ${self[f]}, but ${k} is ${port}`);
    }
  }

  if (c.ticksHeartbeat >= c.ticksElection) {
    fail(['ticksHeartbeat', 'ticksElection'], `the heartbeat (${c.ticksHeartbeat} ticks) must be shorter than the election timeout (${c.ticksElection} ticks)`);
  }
  if (!(c.pendingBytesLow < c.pendingBytesHigh && c.pendingBytesHigh < c.pendingBytesMax)) {
    fail(['pendingBytesLow', 'pendingBytesHigh', 'pendingBytesMax'],
      `need pendingBytesLow < pendingBytesHigh < pendingBytesMax, got ${c.pendingBytesLow}, ${c.pendingBytesHigh}, ${c.pendingBytesMax}`);
  }
  for (const o of c.wsOrigins.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    if (o !== '*' && o !== 'self' && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(o)) fail(['wsOrigins'], `${JSON.stringify(o)} is not an origin (scheme://host[:port]), self or *`);
  }
  if (c.linkBackoffMsMin > c.linkBackoffMsMax) {
    fail(['linkBackoffMsMin', 'linkBackoffMsMax'], `the first redial delay ${c.linkBackoffMsMin} ms exceeds the largest ${c.linkBackoffMsMax} ms`);
  }
  // A client frame becomes one ring record (at most a quarter of the ring), and its body later
  // one entry of a Raft message in an out-ring record: leave 1 KiB for the headers around it.
  if (c.frameBytesMax > c.ringBytes / 4 - FRAME_RECORD_OVERHEAD_BYTES) {
    fail(['frameBytesMax', 'ringBytes'], `a frame of ${c.frameBytesMax} bytes must fit in one ring record with its headers (at most ${c.ringBytes / 4 - FRAME_RECORD_OVERHEAD_BYTES} bytes for ringBytes ${c.ringBytes})`);
  }
  if (c.frameBytesMax >= c.linkFrameBytesMax) {
    fail(['frameBytesMax', 'linkFrameBytesMax'], 'a client frame must fit in a link frame with its Raft message around it');
  }
  if (c.snapChunkBytes > c.ringBytes / 2) {
    fail(['snapChunkBytes', 'ringBytes'], `a snapshot chunk of ${c.snapChunkBytes} bytes must fit in half a ring (${c.ringBytes / 2} bytes)`);
  }
  if (c.snapChunkBytes >= c.linkFrameBytesMax) {
    fail(['snapChunkBytes', 'linkFrameBytesMax'], 'a snapshot chunk must fit in a link frame with its header');
  }
  if (c.snapshotBytesMax < c.snapChunkBytes) {
    fail(['snapshotBytesMax', 'snapChunkBytes'], 'the largest snapshot is smaller than one chunk');
  }
  if (c.linkSendQueueBytesMax < c.linkFrameBytesMax) {
    fail(['linkSendQueueBytesMax', 'linkFrameBytesMax'], 'a link send queue must hold at least one whole link frame');
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  return JSON.stringify(v) ?? String(v);
}

/** ` (did you mean X?)` for a near miss, else ''. */
function suggest(name: string, known: string[], prefix = ''): string {
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean ${prefix}${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
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
