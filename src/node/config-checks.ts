// Checking configuration values: one value read from JSON (the file, the embedding API's
// options) or from text (environment, flags) against its key's schema, the peer list in both
// forms, the rules between keys (checkRelations), and the words of the errors (a value shown,
// "did you mean").
import { groupsMax, membersPerGroupMax, nodesMax } from '../cluster/key-map.js';
import type { PeerInfo } from '../shard/task.js';
import { ConfigError, configSchema, FRAME_RECORD_OVERHEAD_BYTES, GiB, KiB, MiB, U32_MAX, type ConfigKey, type NodeConfig } from './config-schema.js';

export type Parsed = { value: unknown } | string;

/** A value from a JSON file: JSON types must match (numbers are numbers, booleans booleans). */
export function fromJson(key: ConfigKey, raw: unknown): Parsed {
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
export function fromString(key: ConfigKey, raw: string): Parsed {
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
export function checkRelations(c: NodeConfig, fail: (keys: ConfigKey[], text: string) => void): void {
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

  // The key map (src/cluster/key-map.ts) founds groups 1..groups with every peer as a voter and
  // names every peer: a cluster it cannot describe would never get a map.
  if (c.groups > groupsMax) fail(['groups'], `${c.groups} groups: the key map holds at most ${groupsMax} (one a slot)`);
  if (c.groups > 0 && c.peers.length > membersPerGroupMax) {
    fail(['groups', 'peers'], `${c.peers.length} peers would each be a voter of the founding groups; a group has at most ${membersPerGroupMax} voters`);
  }
  if (c.peers.length > nodesMax) fail(['peers'], `${c.peers.length} peers: the key map names at most ${nodesMax} nodes`);

  if (c.ticksHeartbeat >= c.ticksElection) {
    fail(['ticksHeartbeat', 'ticksElection'], `the heartbeat (${c.ticksHeartbeat} ticks) must be shorter than the election timeout (${c.ticksElection} ticks)`);
  }
  if (!(c.pendingBytesLow < c.pendingBytesHigh && c.pendingBytesHigh < c.pendingBytesMax)) {
    fail(['pendingBytesLow', 'pendingBytesHigh', 'pendingBytesMax'],
      `need pendingBytesLow < pendingBytesHigh < pendingBytesMax, got ${c.pendingBytesLow}, ${c.pendingBytesHigh}, ${c.pendingBytesMax}`);
  }
  // The budget pauses a connection only while its output is above pendingBytesHigh or answers
  // are still to come, so the listener's drain (below pendingBytesLow) always lifts the pause;
  // and what a paused connection still receives must fit under pendingBytesMax.
  if (!(c.pendingBytesHigh < c.inflightBytesPerConnMax && c.inflightBytesPerConnMax <= c.pendingBytesMax)) {
    fail(['inflightBytesPerConnMax', 'pendingBytesHigh', 'pendingBytesMax'],
      `need pendingBytesHigh < inflightBytesPerConnMax ≤ pendingBytesMax, got ${c.inflightBytesPerConnMax} against ${c.pendingBytesHigh} and ${c.pendingBytesMax}`);
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

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  return JSON.stringify(v) ?? String(v);
}

/** ` (did you mean X?)` for a near miss, else ''. */
export function suggest(name: string, known: string[], prefix = ''): string {
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
