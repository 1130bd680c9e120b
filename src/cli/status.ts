// `flotilla status`: what each node says about itself over admin HTTP (/health and /status),
// and what that means per node: groups led and followed, groups that lag behind their
// leader's commit, groups that see no leader. The judging is a pure function (tested alone);
// fetching is bounded in time per request.
import type { GroupStatus } from '../shard/task.js';
import { parseIntIn, parseServers, UsageError, type CommandSpec } from './args.js';
import { CLIENT_OPTIONS, clientServers } from './client-target.js';

/** One /health or /status request of `flotilla status`. */
const STATUS_REQUEST_MS = 5_000;
/** Groups asked for per /status request (the most a page holds). */
const STATUS_PAGE = 10_000;

export const STATUS_SPEC = {
  name: 'flotilla status',
  summary: `Per node: serving or not, groups led and followed, groups lagging behind their
leader's commit, groups with no leader. Asks each node's admin HTTP port (/health, /status).
--servers lists client ports, as for kv; each node's admin port is taken to be its client port
+ 1 (the layout of the defaults and of flotilla cluster), or give --admin. Exits 1 unless every
node answers, serves, and sees a leader for each of its groups.`,
  options: {
    servers: CLIENT_OPTIONS.servers,
    admin: { type: 'string', value: 'H:P,...', help: 'admin HTTP addresses of the nodes, instead of client port + 1' },
    'lag-entries': { type: 'string', value: 'N', help: 'a member lags when its applied index is more than N behind commit (default 1000)' },
    json: CLIENT_OPTIONS.json,
  },
} as const satisfies CommandSpec;

/** Runs `flotilla status` with its flags `v`: exit 0 when every node is healthy, else 1. */
export async function statusCommand(v: Record<string, string | boolean | undefined>, dryRun: boolean, dry: (extra?: Record<string, unknown>) => number): Promise<number> {
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const servers = str('admin') !== undefined ? parseServers(str('admin')!, '--admin') : clientServers(str('servers')).map(adminOfClient);
  const lag = str('lag-entries') === undefined ? 1000 : parseIntIn(str('lag-entries'), '--lag-entries', 0, Number.MAX_SAFE_INTEGER);
  if (dryRun) return dry({ admin: servers });
  const report = judgeStatus(await Promise.all(servers.map((s) => probeNode(s, STATUS_REQUEST_MS))), lag);
  process.stdout.write(v['json'] === true ? JSON.stringify(report) + '\n' : statusLines(report).join('\n') + '\n');
  return report.healthy ? 0 : 1;
}

/** The admin address of a client address, in the layout every node uses by default
 *  (raftPort P, clientPort P+1, adminPort P+2, wsPort P+3: `flotilla cluster`, the defaults). */
export function adminOfClient(server: string): string {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(server);
  if (m === null) throw new UsageError(`"${server}" is not host:port`);
  const port = Number(m[2]) + 1;
  if (port > 65535) throw new UsageError(`${server}: no admin port after client port ${m[2]}`);
  return `${m[1]}:${port}`;
}

/** What one node answered; `error` when it did not. */
export interface NodeProbe {
  admin: string;
  health: { serving: boolean; nodeId: number; shards: unknown[] } | null;
  status: { nodeId: number; groups: GroupStatus[] } | null;
  error: string | null;
}

export interface NodeReport {
  /** The admin address asked. */
  admin: string;
  nodeId: number | null;
  reachable: boolean;
  serving: boolean;
  error: string | null;
  groups: number;
  leads: number[];
  follows: number[];
  /** Groups whose applied index here is more than lagEntries behind the group's commit. */
  lagging: { group: number; applied: number; commit: number }[];
  /** Groups for which this node knows no leader. */
  leaderless: number[];
}

export interface StatusReport {
  nodes: NodeReport[];
  /** Every node answered, serves, and sees a leader for each of its groups. */
  healthy: boolean;
}

/**
 * Judges the probes. A group's commit is the one its leader reports (when the leader is among
 * the nodes asked and names itself), else the highest any asked node reports: a member lags when
 * its applied index is more than `lagEntries` behind it.
 */
export function judgeStatus(probes: NodeProbe[], lagEntries: number): StatusReport {
  const commitOf = new Map<number, number>();
  const leaderCommit = new Map<number, number>();
  for (const p of probes) {
    for (const g of p.status?.groups ?? []) {
      commitOf.set(g.group, Math.max(commitOf.get(g.group) ?? 0, g.commit));
      if (g.role === 'leader') leaderCommit.set(g.group, g.commit);
    }
  }
  const nodes = probes.map((p): NodeReport => {
    const r: NodeReport = {
      admin: p.admin,
      nodeId: p.health?.nodeId ?? p.status?.nodeId ?? null,
      reachable: p.health !== null,
      serving: p.health?.serving === true,
      error: p.error,
      groups: p.status?.groups.length ?? 0,
      leads: [],
      follows: [],
      lagging: [],
      leaderless: [],
    };
    for (const g of p.status?.groups ?? []) {
      if (g.role === 'leader') r.leads.push(g.group);
      else r.follows.push(g.group);
      if (g.leader === 0) r.leaderless.push(g.group);
      const commit = leaderCommit.get(g.group) ?? commitOf.get(g.group) ?? g.commit;
      if (commit - g.applied > lagEntries) r.lagging.push({ group: g.group, applied: g.applied, commit });
    }
    return r;
  });
  const healthy = nodes.every((n) => n.reachable && n.serving && n.error === null && n.leaderless.length === 0);
  return { nodes, healthy };
}

/** Lines for a terminal: one per node, with the groups that need a look listed (bounded). */
export function statusLines(report: StatusReport): string[] {
  const out: string[] = [];
  const LIST_MAX = 20;
  const list = (xs: number[]): string => (xs.length <= LIST_MAX ? xs.join(',') : `${xs.slice(0, LIST_MAX).join(',')},... (${xs.length})`);
  for (const n of report.nodes) {
    const who = `node ${n.nodeId ?? '?'} (admin ${n.admin})`;
    if (!n.reachable) {
      out.push(`${who}: unreachable: ${n.error ?? 'no answer'}`);
      continue;
    }
    let line = `${who}: ${n.serving ? 'serving' : 'NOT serving'}; ${n.groups} groups, leads ${n.leads.length}, follows ${n.follows.length}, lagging ${n.lagging.length}, leaderless ${n.leaderless.length}`;
    if (n.lagging.length > 0) line += `; lagging: ${list(n.lagging.map((l) => l.group))}`;
    if (n.leaderless.length > 0) line += `; leaderless: ${list(n.leaderless)}`;
    if (n.error !== null) line += `; ${n.error}`;
    out.push(line);
  }
  out.push(report.healthy ? 'cluster: healthy' : 'cluster: NOT healthy');
  return out;
}

/**
 * Every group's status from one node's /status, a page at a time (a node with many groups
 * answers each page quickly); each request bounded by `timeoutMs`. Throws when a page is not
 * answered 200.
 */
export async function fetchStatus(admin: string, timeoutMs: number): Promise<{ nodeId: number; groups: GroupStatus[] }> {
  const groups: GroupStatus[] = [];
  for (;;) {
    const res = await fetch(`http://${admin}/status?offset=${groups.length}&limit=${STATUS_PAGE}`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) throw new Error(`/status answered ${res.status}`);
    const page = (await res.json()) as { nodeId: number; total: number; groups: GroupStatus[] };
    groups.push(...page.groups);
    if (page.groups.length === 0 || groups.length >= page.total) return { nodeId: page.nodeId, groups };
  }
}

/** Asks one node for /health and /status, each bounded by `timeoutMs`. */
export async function probeNode(admin: string, timeoutMs: number): Promise<NodeProbe> {
  const probe: NodeProbe = { admin, health: null, status: null, error: null };
  try {
    // /health answers 503 with its JSON when the node is not serving: both are answers.
    const h = await fetch(`http://${admin}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    probe.health = (await h.json()) as NodeProbe['health'];
    probe.status = await fetchStatus(admin, timeoutMs);
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    probe.error = err.cause?.code ?? err.message;
  }
  return probe;
}
