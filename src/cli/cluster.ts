// `flotilla cluster`: a local cluster of N node processes for development and tests. Writes one
// config file per node (or reuses the ones already there, so a cluster restarts on its data),
// starts `flotilla start` per node, waits until every node's /health answers 200, and stops
// them all on SIGINT/SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { configDefaults, loadConfig, type NodeConfig } from '../node/config.js';
import type { PeerInfo } from '../shard/task.js';
import { UsageError, parseBool, parsePositiveInt, type CommandSpec, type OptionValues } from './args.js';

export interface ClusterOptions {
  nodes: number;
  dir: string;
  basePort: number;
  host: string;
  groups?: number;
  syncForce?: boolean;
  shards?: number;
  tickMs?: number;
  /** --base-port / --host were given (not defaults): a reused config that disagrees gets a warning. */
  basePortGiven?: boolean;
  hostGiven?: boolean;
}

export interface ClusterNodePlan {
  id: number;
  configFile: string;
  /** What is written to configFile when it does not exist yet. */
  config: Record<string, unknown>;
}

export const CLUSTER_SPEC = {
  name: 'flotilla cluster',
  summary: `Runs N nodes on this machine, as separate processes: node i on ports P+10(i-1) (raft),
+1 (client TCP), +2 (admin HTTP), +3 (client WebSocket). Writes DIR/node-i/flotilla.json, or
reuses it when it exists (so a cluster restarts on its data; flags that disagree with a reused
file are ignored, with a warning). Prints "cluster ready" once every node's /health answers
200; SIGINT or SIGTERM stops them all.`,
  options: {
    nodes: { type: 'string', value: 'N', help: 'how many nodes (required, 1..64)' },
    dir: { type: 'string', value: 'DIR', help: 'where the nodes keep config and data (default ./data/cluster)' },
    groups: { type: 'string', value: 'G', help: `groups created at the first start (default ${configDefaults.groups})` },
    'sync-force': { type: 'string', value: 'true|false', help: 'fdatasync before acknowledging (default true)' },
    'base-port': { type: 'string', value: 'P', help: 'raft port of node 1 (default 7001)' },
    shards: { type: 'string', value: 'S', help: 'shard workers per node (default: one per core)' },
    'tick-ms': { type: 'string', value: 'T', help: 'Raft tick in milliseconds (default 100)' },
    host: { type: 'string', value: 'H', help: 'address every node listens on (default 127.0.0.1)' },
  },
} as const satisfies CommandSpec;

const NODES_MAX = 64;
/** Node i uses basePort + PORT_STRIDE·(i−1) and the three ports after it. */
export const PORT_STRIDE = 10;
const READY_MS_MAX = 120_000;
const POLL_MS = 250;
const STOP_MS_MAX = 10_000;

export function parseClusterFlags(flags: OptionValues<typeof CLUSTER_SPEC.options>): ClusterOptions {
  const nodes = parsePositiveInt(flags['nodes'], '--nodes', NODES_MAX);
  const basePort = flags['base-port'] === undefined ? 7001 : parsePositiveInt(flags['base-port'], '--base-port', 65535);
  if (basePort + PORT_STRIDE * (nodes - 1) + 3 > 65535) throw new UsageError(`--base-port ${basePort} leaves no room for ${nodes} nodes below port 65536`);
  const o: ClusterOptions = { nodes, dir: flags['dir'] ?? './data/cluster', basePort, host: flags['host'] ?? '127.0.0.1' };
  if (flags['base-port'] !== undefined) o.basePortGiven = true;
  if (flags['host'] !== undefined) o.hostGiven = true;
  if (flags['groups'] !== undefined) o.groups = parsePositiveInt(flags['groups'], '--groups');
  if (flags['sync-force'] !== undefined) o.syncForce = parseBool(flags['sync-force'], '--sync-force');
  if (flags['shards'] !== undefined) o.shards = parsePositiveInt(flags['shards'], '--shards');
  if (flags['tick-ms'] !== undefined) o.tickMs = parsePositiveInt(flags['tick-ms'], '--tick-ms');
  return o;
}

/** The config file of each node: ports base+10(i−1)..+3, data under DIR/node-i/data, every node a peer. */
export function planCluster(o: ClusterOptions): ClusterNodePlan[] {
  const dir = path.resolve(o.dir);
  const peers: PeerInfo[] = [];
  for (let id = 1; id <= o.nodes; id++) {
    const p = o.basePort + PORT_STRIDE * (id - 1);
    peers.push({ id, host: o.host, raftPort: p, clientPort: p + 1, adminPort: p + 2, wsPort: p + 3 });
  }
  return peers.map((self) => {
    const nodeDir = path.join(dir, `node-${self.id}`);
    const config: Record<string, unknown> = {
      nodeId: self.id,
      host: self.host,
      raftPort: self.raftPort,
      clientPort: self.clientPort,
      adminPort: self.adminPort,
      wsPort: self.wsPort,
      peers,
      dataDir: path.join(nodeDir, 'data'),
      // Written out rather than left to the default: a data directory keeps its shard count.
      shards: o.shards ?? configDefaults.shards,
      groups: o.groups ?? configDefaults.groups,
      syncForce: o.syncForce ?? configDefaults.syncForce,
    };
    if (o.tickMs !== undefined) config['tickMs'] = o.tickMs;
    return { id: self.id, configFile: path.join(nodeDir, 'flotilla.json'), config };
  });
}

/**
 * What the flags asked for that a reused config file says otherwise: the file wins (a data
 * directory keeps its groups and shards), so each difference is a warning naming both values.
 */
export function reuseConflicts(o: ClusterOptions, plan: ClusterNodePlan, file: Record<string, unknown> | null): string[] {
  if (file === null) return [];
  const out: string[] = [];
  const check = (flag: string, key: string, given: unknown, shown: unknown = given): void => {
    const inFile = Object.hasOwn(file, key) ? file[key] : configDefaults[key as keyof typeof configDefaults];
    if (given !== undefined && inFile !== given) {
      out.push(`node ${plan.id}: --${flag} ${String(shown)} is ignored: ${plan.configFile} has ${key} ${JSON.stringify(inFile)} (remove the directory to start a new cluster)`);
    }
  };
  check('groups', 'groups', o.groups);
  check('sync-force', 'syncForce', o.syncForce);
  check('shards', 'shards', o.shards);
  check('tick-ms', 'tickMs', o.tickMs);
  if (o.basePortGiven === true) check('base-port', 'raftPort', plan.config['raftPort'], `${o.basePort} (raft port ${String(plan.config['raftPort'])} for node ${plan.id})`);
  if (o.hostGiven === true) check('host', 'host', o.host);
  return out;
}

/** A JSON object from a file, or null when it is not one (loadConfig reports that properly). */
function readJsonObject(file: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * A base port for `nodes` nodes on `host` whose ports (base + PORT_STRIDE·i + 0..3) are all free
 * now, picked at random in [20000, 50000): for tests and benchmarks that start clusters.
 */
export async function freePortBase(nodes: number, host: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + PORT_STRIDE * Math.floor(Math.random() * 3000);
    let ok = true;
    for (let i = 0; i < nodes && ok; i++) {
      for (let k = 0; k < 4 && ok; k++) ok = await portFree(base + PORT_STRIDE * i + k, host);
    }
    if (ok) return base;
  }
  throw new Error(`no free range of ports found for ${nodes} nodes`);
}

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

interface Running {
  id: number;
  config: NodeConfig;
  proc: ChildProcess;
  exited: boolean;
}

/**
 * Runs the cluster until a signal. `cliFile` is the flotilla CLI each node is started with.
 * Resolves never on success (the process exits from the signal handler); throws ConfigError
 * before starting anything when a config file is bad.
 */
export async function runCluster(o: ClusterOptions, cliFile: string): Promise<void> {
  const plans = planCluster(o);
  const configs: NodeConfig[] = [];
  for (const plan of plans) {
    if (fs.existsSync(plan.configFile)) {
      process.stdout.write(`node ${plan.id} reuses ${plan.configFile}\n`);
      for (const w of reuseConflicts(o, plan, readJsonObject(plan.configFile))) process.stderr.write(`flotilla cluster: warning: ${w}\n`);
    } else {
      fs.mkdirSync(path.dirname(plan.configFile), { recursive: true });
      fs.writeFileSync(plan.configFile, JSON.stringify(plan.config, null, 2) + '\n');
    }
  }
  // Read back exactly what each node will run with (its environment is ours).
  for (const plan of plans) configs.push(loadConfig({ file: plan.configFile, env: process.env }));

  const nodes: Running[] = [];
  let stopping = false;
  for (let i = 0; i < plans.length; i++) {
    const plan = plans[i]!;
    const c = configs[i]!;
    // The nodes write to our pipes, so `logFormat: auto` would give JSON there: on a terminal,
    // ask for the readable lines that a node started there by hand would print.
    const logFlags = c.logFormat === 'auto' && process.stdout.isTTY === true ? ['--log-format', 'pretty'] : [];
    const proc = spawn(process.execPath, [cliFile, 'start', '--config', plan.configFile, ...logFlags], { stdio: ['ignore', 'pipe', 'pipe'] });
    const node: Running = { id: plan.id, config: c, proc, exited: false };
    nodes.push(node);
    prefixLines(proc.stdout!, process.stdout, `[node ${plan.id}] `);
    prefixLines(proc.stderr!, process.stderr, `[node ${plan.id}] `);
    proc.on('error', (err) => process.stderr.write(`node ${plan.id}: could not start: ${err.message}\n`));
    proc.on('exit', () => void (node.exited = true));
    // 'close' comes after the child's last output lines, so the report follows them.
    proc.on('close', (code, signal) => {
      node.exited = true;
      if (stopping) return;
      const how = signal !== null ? `signal ${signal}` : `code ${code}`;
      const live = nodes.filter((n) => !n.exited).length;
      process.stdout.write(`node ${plan.id} pid ${proc.pid} exited (${how}); ${live} node(s) still running\n`);
    });
    const h = c.host;
    process.stdout.write(`node ${plan.id} pid ${proc.pid} raft ${hostPort(h, c.raftPort)} client ${hostPort(h, c.clientPort)}`
      + ` admin ${hostPort(h, c.adminPort)} ws ${hostPort(h, c.wsPort)}\n`);
  }

  const stopAll = async (signal: string): Promise<void> => {
    if (stopping) {
      // A second signal: no more waiting.
      for (const n of nodes) if (!n.exited) n.proc.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`cluster stopping (${signal})\n`);
    for (const n of nodes) if (!n.exited && n.proc.pid !== undefined) signalPid(n.proc.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_MS_MAX;
    while (nodes.some((n) => !n.exited) && Date.now() < deadline) await sleep(50);
    for (const n of nodes) {
      if (!n.exited && n.proc.pid !== undefined) {
        process.stdout.write(`node ${n.id} pid ${n.proc.pid} did not stop in ${STOP_MS_MAX / 1000} s: SIGKILL\n`);
        signalPid(n.proc.pid, 'SIGKILL');
      }
    }
    process.stdout.write('cluster stopped\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void stopAll('SIGINT'));
  process.on('SIGTERM', () => void stopAll('SIGTERM'));

  const deadline = Date.now() + READY_MS_MAX;
  const healthy = new Set<number>();
  while (!stopping) {
    await Promise.all(nodes.map(async (n) => {
      if (n.exited || healthy.has(n.id)) return;
      if (await isHealthy(n.config)) healthy.add(n.id);
    }));
    if (healthy.size === nodes.length) {
      process.stdout.write(`cluster ready: ${nodes.length} node(s)\n`);
      return;
    }
    if (nodes.every((n) => n.exited || healthy.has(n.id))) {
      const gone = nodes.filter((n) => n.exited && !healthy.has(n.id)).map((n) => n.id);
      const rest = healthy.size > 0 ? '; the others keep running' : '';
      process.stdout.write(`cluster not ready: node(s) ${gone.join(', ')} exited before serving${rest}\n`);
      return;
    }
    if (Date.now() > deadline) {
      const slow = nodes.filter((n) => !healthy.has(n.id)).map((n) => n.id);
      process.stdout.write(`cluster not ready after ${READY_MS_MAX / 1000} s: node(s) ${slow.join(', ')} not healthy; the others keep running\n`);
      return;
    }
    await sleep(POLL_MS);
  }
}

async function isHealthy(c: NodeConfig): Promise<boolean> {
  const host = c.host === '0.0.0.0' ? '127.0.0.1' : c.host === '::' ? '::1' : c.host;
  try {
    const res = await fetch(`http://${hostPort(host, c.adminPort)}/health`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Copies a child's output line by line with a prefix, so lines of different nodes never mix. */
function prefixLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let rest = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    rest += chunk;
    let at = 0;
    let out = '';
    for (let nl = rest.indexOf('\n', at); nl >= 0; nl = rest.indexOf('\n', at)) {
      out += prefix + rest.slice(at, nl + 1);
      at = nl + 1;
    }
    rest = rest.slice(at);
    // A line with no end in sight is passed on anyway, so one child cannot hold memory.
    if (rest.length > 64 * 1024) {
      out += prefix + rest + '\n';
      rest = '';
    }
    if (out.length > 0) to.write(out);
  });
  from.on('end', () => {
    if (rest.length > 0) to.write(prefix + rest + '\n');
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
