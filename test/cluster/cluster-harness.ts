// Real node processes on 127.0.0.1 for cluster tests: a cluster started by `flotilla cluster`
// (the project's own command), nodes killed by PID and restarted with `flotilla start`, and
// small helpers to read /status and wait for conditions. Everything is bounded in time.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortBase, planCluster } from '../../src/cli/cluster.js';
import { fetchStatus } from '../../src/cli/status.js';
import type { GroupStatus } from '../../src/shard/task.js';
import { META_GROUP } from '../../src/cluster/meta-group.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/flotilla.js');

export interface ClusterNode {
  id: number;
  pid: number;
  clientPort: number;
  adminPort: number;
  wsPort: number;
  raftPort: number;
  configFile: string;
  /** Set when the harness itself started this node (after a restart). */
  proc: ChildProcess | null;
}

export interface ClusterOptions {
  nodes: number;
  groups: number;
  shards?: number;
  syncForce?: boolean;
  tickMs?: number;
  snapshotEntries?: number;
  snapshotKeepEntries?: number;
  /** Extra keys for every node's config file. */
  extra?: Record<string, unknown>;
}

export class TestCluster {
  readonly nodes = new Map<number, ClusterNode>();
  output = '';

  constructor(readonly dir: string, readonly basePort: number, private readonly proc: ChildProcess) {}

  servers(): string[] {
    return [...this.nodes.values()].map((n) => `127.0.0.1:${n.clientPort}`);
  }

  node(id: number): ClusterNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  async status(id: number): Promise<GroupStatus[]> {
    try {
      return (await fetchStatus(`127.0.0.1:${this.node(id).adminPort}`, 5000)).groups;
    } catch (e) {
      throw new Error(`node ${id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async healthy(id: number): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.node(id).adminPort}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * Data group → leader id, as the given live nodes report it (leaders agreeing on their own
   * role). The meta group (META_GROUP) is left out: it is not one of the cluster's `groups`.
   */
  async leaders(live: number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const id of live) {
      for (const g of await this.status(id)) if (g.role === 'leader' && g.group !== META_GROUP) out.set(g.group, id);
    }
    return out;
  }

  /** SIGKILL by PID: the node gets no chance to flush anything. */
  kill(id: number): void {
    const n = this.node(id);
    process.kill(n.pid, 'SIGKILL');
  }

  /** SIGSTOP by PID: the node freezes with its sockets open (the kernel still accepts and buffers). */
  pause(id: number): void {
    process.kill(this.node(id).pid, 'SIGSTOP');
  }

  /** SIGCONT by PID: a paused node runs on. */
  resume(id: number): void {
    process.kill(this.node(id).pid, 'SIGCONT');
  }

  /** Starts a stopped or killed node again on its own config and data. */
  async restart(id: number): Promise<void> {
    const n = this.node(id);
    const child = spawn(process.execPath, [CLI, 'start', '--config', n.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => void (this.output += `[restart ${id}] ${d.toString()}`));
    child.stderr!.on('data', (d: Buffer) => void (this.output += `[restart ${id}] ${d.toString()}`));
    n.proc = child;
    n.pid = child.pid!;
    await waitFor(() => this.healthy(id), 30_000, `node ${id} healthy after restart`);
  }

  async stop(): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const n of this.nodes.values()) if (n.proc !== null) exits.push(terminate(n.proc));
    exits.push(terminate(this.proc));
    await Promise.all(exits);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts `flotilla cluster` in a fresh directory with pre-written configs and waits for "cluster ready". */
export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-cluster-'));
  const basePort = await freePortBase(opts.nodes, '127.0.0.1');
  const plans = planCluster({
    nodes: opts.nodes, dir, basePort, host: '127.0.0.1', groups: opts.groups, shards: opts.shards ?? 1,
    syncForce: opts.syncForce ?? true, tickMs: opts.tickMs ?? 50,
  });
  for (const plan of plans) {
    const config = {
      ...plan.config,
      snapshotEntries: opts.snapshotEntries ?? 10_000,
      snapshotKeepEntries: opts.snapshotKeepEntries ?? 100,
      logLevel: 'warn',
      ...opts.extra,
    };
    fs.mkdirSync(path.dirname(plan.configFile), { recursive: true });
    fs.writeFileSync(plan.configFile, JSON.stringify(config, null, 2));
  }
  const proc = spawn(process.execPath, [
    CLI, 'cluster', '--nodes', String(opts.nodes), '--dir', dir, '--base-port', String(basePort),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const cluster = new TestCluster(dir, basePort, proc);
  let lines = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster not ready in 60 s; output:\n${cluster.output}`)), 60_000);
    proc.stdout!.on('data', (d: Buffer) => {
      const text = d.toString();
      cluster.output += text;
      lines += text;
      for (;;) {
        const nl = lines.indexOf('\n');
        if (nl < 0) break;
        const line = lines.slice(0, nl);
        lines = lines.slice(nl + 1);
        const m = /^node (\d+) pid (\d+) raft [\d.]+:(\d+) client [\d.]+:(\d+) admin [\d.]+:(\d+) ws [\d.]+:(\d+)/.exec(line);
        if (m !== null) {
          const id = Number(m[1]);
          cluster.nodes.set(id, {
            id, pid: Number(m[2]), raftPort: Number(m[3]), clientPort: Number(m[4]), adminPort: Number(m[5]), wsPort: Number(m[6]),
            configFile: path.join(dir, `node-${id}`, 'flotilla.json'), proc: null,
          });
        }
        if (line.startsWith('cluster ready')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => void (cluster.output += d.toString()));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`flotilla cluster exited with ${code}; output:\n${cluster.output}`));
    });
  });
  try {
    await ready;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

export interface CliRun { status: number | null; stdout: string; stderr: string }

/** Runs the CLI with a clean environment (PATH, plus `env`), bounded in time. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 40_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`flotilla ${args.join(' ')} did not finish in ${timeoutMs} ms: ${stdout} ${stderr}`));
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function terminate(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}
