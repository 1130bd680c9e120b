// Real node processes on 127.0.0.1 for benchmarks: a cluster started by `flotilla cluster` (the
// project's own command) on config files written beforehand, and what a benchmark reads from the
// outside: /status, /metrics, and /proc/<pid> (CPU time of every thread, resident memory).
//
// Every node this module starts is stopped by stop(), and also, should the benchmark die first,
// by a synchronous SIGKILL of each node's PID on process exit (which also removes the data). A PID is signalled only while
// /proc/<pid>/cmdline still names that node's config file, so a recycled PID is left alone.
// Everything that waits is bounded in time.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortBase, planCluster } from '../src/cli/cluster.js';
import { fetchStatus } from '../src/cli/status.js';
import type { GroupStatus, PeerInfo } from '../src/shard/task.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/flotilla.js');

/** `flotilla cluster` gives up on health after 120 s (src/cli/cluster.ts); we wait a little longer. */
const READY_MS_MAX = 150_000;
/** After SIGTERM to `flotilla cluster` (which stops its nodes within 10 s), then SIGKILL. */
const STOP_MS_MAX = 20_000;
/** Output of the cluster kept for error reports. */
const OUTPUT_KEEP_CHARS = 16_384;
const HTTP_MS_MAX = 30_000;
const NODE_LINES_KEPT = 100;

export interface BenchClusterOptions {
  nodes: number;
  groups: number;
  shards?: number;
  syncForce?: boolean;
  tickMs?: number;
  ticksElection?: number;
  /** Extra keys for every node's config file. */
  extra?: Record<string, unknown>;
  /**
   * Node.js flags for every node (e.g. --cpu-prof, which NODE_OPTIONS does not take). Given, the
   * nodes are spawned here one by one rather than by `flotilla cluster` (same configs, same
   * `flotilla start`), and "ready" means every node's /health answers 200.
   */
  nodeArgs?: string[];
}

export interface BenchNode {
  id: number;
  pid: number;
  adminPort: number;
  clientPort: number;
  raftPort: number;
  configFile: string;
}

/** CPU time of a process in clock ticks, all threads and split: the main thread (tid = pid) and the rest. */
export interface CpuTicks {
  total: number;
  main: number;
  others: number;
  /** Ticks per thread name (comm), summed over threads of that name. */
  byName: Map<string, number>;
}

let clockTicksPerSecond = 0;
/** Clock ticks per second of /proc's utime and stime (`getconf CLK_TCK`, 100 almost everywhere). */
export function clockTicks(): number {
  if (clockTicksPerSecond === 0) {
    try {
      clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicksPerSecond = 100;
    }
  }
  return clockTicksPerSecond;
}

/** utime + stime of /proc/<pid>[/task/<tid>]/stat, in clock ticks; fields after the command name, which may hold spaces. */
function statTicks(file: string): { comm: string; ticks: number } {
  const text = fs.readFileSync(file, 'utf8');
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return { comm: text.slice(open + 1, close), ticks: Number(rest[11]) + Number(rest[12]) };
}

export function cpuTicks(pid: number): CpuTicks {
  const total = statTicks(`/proc/${pid}/stat`).ticks;
  let main = 0;
  let sum = 0;
  const byName = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let s: { comm: string; ticks: number };
    try {
      s = statTicks(`/proc/${pid}/task/${tid}/stat`);
    } catch {
      continue; // the thread ended meanwhile
    }
    if (Number(tid) === pid) main = s.ticks;
    sum += s.ticks;
    byName.set(s.comm, (byName.get(s.comm) ?? 0) + s.ticks);
  }
  // The process total also counts threads that have ended; "others" is everything but main.
  return { total, main, others: Math.max(total, sum) - main, byName };
}

/** VmRSS of the process in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Sum of the samples of a Prometheus metric whose labels include `match` (text exposition 0.0.4). */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const c = line.charCodeAt(name.length);
    if (c !== 123 /* { */ && c !== 32 /* space */) continue;
    const labels: Record<string, string> = {};
    let valueText: string;
    if (c === 123) {
      const close = line.indexOf('}');
      for (const m of line.slice(name.length + 1, close).matchAll(/(\w+)="([^"]*)"/g)) labels[m[1]!] = m[2]!;
      valueText = line.slice(close + 1).trim();
    } else {
      valueText = line.slice(name.length + 1).trim();
    }
    if (Object.entries(match).some(([k, v]) => labels[k] !== v)) continue;
    sum += Number(valueText.split(' ')[0]);
  }
  return sum;
}

export class BenchCluster {
  readonly nodes = new Map<number, BenchNode>();
  /** The last OUTPUT_KEEP_CHARS characters of what the cluster and its nodes printed. */
  output = '';
  /** Lines printed by the nodes (each prefixed "[node i]" by the cluster) but their listener lines: warnings, errors. */
  nodeLines = 0;
  /** The first NODE_LINES_KEPT of them. */
  readonly nodeLinesKept: string[] = [];
  private stopped = false;
  /** Nodes spawned here that exited when nobody asked them to. */
  private readonly exited: string[] = [];
  private readonly onExit = (): void => {
    this.killNodesNow();
    this.removeData();
  };

  /** `flotilla cluster`, or the nodes themselves when spawned here (nodeArgs). */
  constructor(readonly dir: string, readonly basePort: number, private readonly procs: ChildProcess[]) {
    process.on('exit', this.onExit);
  }

  nodeLine(line: string): void {
    // The listener lines every node prints at start are not news.
    if (/^\[node \d+\] node \d+ (raft|client|admin) /.test(line)) return;
    this.nodeLines++;
    if (this.nodeLinesKept.length < NODE_LINES_KEPT) this.nodeLinesKept.push(line.slice(0, 2000));
  }

  node(id: number): BenchNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  async status(id: number): Promise<GroupStatus[]> {
    try {
      return (await fetchStatus(`127.0.0.1:${this.node(id).adminPort}`, HTTP_MS_MAX)).groups;
    } catch (e) {
      throw new Error(`node ${id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async metrics(id: number): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.node(id).adminPort}/metrics`, { signal: AbortSignal.timeout(HTTP_MS_MAX) });
    if (res.status !== 200) throw new Error(`node ${id} /metrics answered ${res.status}`);
    return res.text();
  }

  /** True while the node's process is there and still runs that node's config. */
  alive(id: number): boolean {
    const n = this.node(id);
    try {
      return fs.readFileSync(`/proc/${n.pid}/cmdline`, 'utf8').includes(n.configFile);
    } catch {
      return false;
    }
  }

  /** SIGTERM to `flotilla cluster` (it stops its nodes) or to each node, then SIGKILL to any still there. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const deadline = Date.now() + STOP_MS_MAX;
    const exits = this.procs.filter(running).map((p) => {
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      return exited;
    });
    await Promise.race([Promise.all(exits), sleep(STOP_MS_MAX)]);
    while ([...this.nodes.keys()].some((id) => this.alive(id)) && Date.now() < deadline) await sleep(100);
    this.killNodesNow();
    process.off('exit', this.onExit);
  }

  /** Synchronous last resort (also run on process exit): SIGKILL what we spawned, and every node still running its config. */
  private killNodesNow(): void {
    for (const p of this.procs) if (running(p)) p.kill('SIGKILL');
    for (const [id, n] of this.nodes) {
      if (!this.alive(id)) continue;
      try {
        process.kill(n.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  /**
   * Starts node `id` again (`node ...nodeArgs flotilla start --config FILE`) on its config and
   * data; its output joins the cluster's. For clusters whose nodes run apart, and for nodes
   * killed by the benchmark.
   */
  spawnNode(id: number, nodeArgs: string[] = []): void {
    const n = this.node(id);
    const p = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--config', n.configFile], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(n.configFile) });
    this.procs.push(p);
    n.pid = p.pid!;
    for (const stream of [p.stdout!, p.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        this.output = (this.output + text).slice(-OUTPUT_KEEP_CHARS);
        for (const l of text.split('\n')) if (l.length > 0) this.nodeLine(`[node ${id}] ${l}`);
      });
    }
    p.on('exit', (code, signal) => {
      if (!this.stopped && n.pid === p.pid) this.exited.push(`node ${id} exited (${signal ?? code})`);
    });
  }

  /** SIGKILL of node `id` (its PID, while it still runs its config), returning once it is gone. */
  async kill(id: number): Promise<void> {
    const n = this.node(id);
    if (!this.alive(id)) return;
    const pid = n.pid;
    n.pid = 0; // its exit is expected
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + STOP_MS_MAX;
    while (fs.existsSync(`/proc/${pid}`) && Date.now() < deadline) await sleep(10);
  }

  /** Waits until each of `ids` answers /health with 200; throws if one exits meanwhile. */
  async waitHealthy(ids: number[], ms: number): Promise<void> {
    const healthy = async (port: number): Promise<boolean> => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    };
    await waitFor(async () => {
      if (this.exited.length > 0) throw new Error(`${this.exited.join(', ')}; output:\n${this.output}`);
      return (await Promise.all(ids.map((id) => healthy(this.node(id).adminPort)))).every(Boolean);
    }, ms, 'every node healthy', 20);
  }

  removeData(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts `flotilla cluster` in a fresh directory with pre-written configs and waits for "cluster ready". */
export async function startBenchCluster(opts: BenchClusterOptions): Promise<BenchCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-'));
  const basePort = await freePortBase(opts.nodes, '127.0.0.1');
  const plans = planCluster({
    nodes: opts.nodes, dir, basePort, host: '127.0.0.1', groups: opts.groups, shards: opts.shards ?? 1,
    syncForce: opts.syncForce ?? true, tickMs: opts.tickMs ?? 100,
  });
  for (const plan of plans) {
    const config = { ...plan.config, ticksElection: opts.ticksElection ?? 10, logLevel: 'warn', ...opts.extra };
    fs.mkdirSync(path.dirname(plan.configFile), { recursive: true });
    fs.writeFileSync(plan.configFile, JSON.stringify(config, null, 2));
  }
  const peers = plans.map((p) => p.config['peers'] as PeerInfo[]).at(0)!;
  if (opts.nodeArgs !== undefined) return startNodes(dir, basePort, peers, opts.nodeArgs);
  const proc = spawn(process.execPath, [CLI, 'cluster', '--nodes', String(opts.nodes), '--dir', dir, '--base-port', String(basePort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cluster = new BenchCluster(dir, basePort, [proc]);
  const keep = (text: string): void => {
    cluster.output = (cluster.output + text).slice(-OUTPUT_KEEP_CHARS);
  };
  let lines = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster not ready in ${READY_MS_MAX / 1000} s; output:\n${cluster.output}`)), READY_MS_MAX);
    proc.stdout!.on('data', (d: Buffer) => {
      const text = d.toString();
      keep(text);
      lines += text;
      for (;;) {
        const nl = lines.indexOf('\n');
        if (nl < 0) break;
        const line = lines.slice(0, nl);
        lines = lines.slice(nl + 1);
        if (line.startsWith('[node ')) cluster.nodeLine(line);
        const m = /^node (\d+) pid (\d+) raft [\d.]+:(\d+) client [\d.]+:(\d+) admin [\d.]+:(\d+)/.exec(line);
        if (m !== null) {
          const id = Number(m[1]);
          cluster.nodes.set(id, {
            id, pid: Number(m[2]), raftPort: Number(m[3]), clientPort: Number(m[4]), adminPort: Number(m[5]),
            configFile: path.join(dir, `node-${id}`, 'flotilla.json'),
          });
        }
        if (line.startsWith('cluster ready')) {
          clearTimeout(timer);
          resolve();
        }
        if (line.startsWith('cluster not ready')) {
          clearTimeout(timer);
          reject(new Error(`${line}; output:\n${cluster.output}`));
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      keep(text);
      for (const l of text.split('\n')) if (l.startsWith('[node ')) cluster.nodeLine(l);
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`flotilla cluster exited with ${code}; output:\n${cluster.output}`));
    });
  });
  try {
    await ready;
  } catch (e) {
    await cluster.stop();
    cluster.removeData();
    throw e;
  }
  return cluster;
}

/** Spawns each node with `node ...nodeArgs flotilla start --config FILE` and waits for every /health. */
async function startNodes(dir: string, basePort: number, peers: { id: number; raftPort: number; clientPort: number; adminPort: number }[], nodeArgs: string[]): Promise<BenchCluster> {
  const cluster = new BenchCluster(dir, basePort, []);
  try {
    for (const peer of peers) {
      cluster.nodes.set(peer.id, {
        id: peer.id, pid: 0, raftPort: peer.raftPort, clientPort: peer.clientPort, adminPort: peer.adminPort,
        configFile: path.join(dir, `node-${peer.id}`, 'flotilla.json'),
      });
      cluster.spawnNode(peer.id, nodeArgs);
    }
    await cluster.waitHealthy([...cluster.nodes.keys()], READY_MS_MAX);
  } catch (e) {
    await cluster.stop();
    cluster.removeData();
    throw e;
  }
  return cluster;
}

function running(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

export interface Led {
  led: number;
  termMax: number;
  /** group → "leader@term" as all members agree on it ("" when they do not). */
  view: Map<number, string>;
}

/** Which groups have a leader that every member agrees on, at one term. */
export function agreement(statuses: GroupStatus[][], groups: number): Led {
  const byGroup = new Map<number, GroupStatus[]>();
  for (const list of statuses) {
    for (const g of list) {
      let a = byGroup.get(g.group);
      if (a === undefined) byGroup.set(g.group, (a = []));
      a.push(g);
    }
  }
  let led = 0;
  let termMax = 0;
  const view = new Map<number, string>();
  for (let g = 1; g <= groups; g++) {
    const a = byGroup.get(g) ?? [];
    const first = a[0];
    let ok = a.length === statuses.length && first !== undefined && first.leader !== 0;
    if (ok) {
      ok = a.every((s) => s.leader === first!.leader && s.term === first!.term)
        && a.filter((s) => s.role === 'leader').length === 1;
    }
    for (const s of a) termMax = Math.max(termMax, s.term);
    if (ok) led++;
    view.set(g, ok ? `${first!.leader}@${first!.term}` : '');
  }
  return { led, termMax, view };
}

/** /status of every node, in node id order of the map. */
export async function allStatus(c: BenchCluster): Promise<GroupStatus[][]> {
  return Promise.all([...c.nodes.keys()].map((id) => c.status(id)));
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, pollMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
