// Helpers of the migration tests (issue 15): the CLI run as a child, keys in chosen slots, the
// migration records of the nodes (GET /migrations), and loops of clients recording a history
// for the linearizability checker.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { FlotillaClient } from '../../src/client/index.js';
import { slotOf } from '../../src/cluster/slots.js';
import type { HistoryOp } from '../sim/linearizability.js';
import { CLI, type TestCluster } from './cluster-harness.js';

export function cli(args: string[], env: Record<string, string>, ms = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`flotilla ${args.join(' ')} did not finish in ${ms / 1000} s`));
    }, ms);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** `n` keys whose slots are in first..last. */
export function keysIn(first: number, last: number, n: number, prefix = 'k'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${prefix}${i}`;
    const s = slotOf(k);
    if (s >= first && s <= last) out.push(k);
  }
  return out;
}

export interface MigrationRecordSeen {
  id: number;
  state: string;
  keys: number;
  bytes: number;
  holdMs?: number;
  fenceToFinishMs?: number;
}

/** Every node's records of migration `id` (GET /migrations), from the nodes that answer. */
export async function migrationRecords(cluster: TestCluster, id: number, live: number[]): Promise<MigrationRecordSeen[]> {
  const out: MigrationRecordSeen[] = [];
  for (const n of live) {
    try {
      const res = await fetch(`http://127.0.0.1:${cluster.node(n).adminPort}/migrations`, { signal: AbortSignal.timeout(3000) });
      const body = (await res.json()) as { records: MigrationRecordSeen[] };
      for (const r of body.records) if (r.id === id) out.push(r);
    } catch {
      // a killed node
    }
  }
  return out;
}

export async function postJson(port: number, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Clients putting unique values to and reading `keys`, recording a history until stop(). */
export class Workload {
  readonly history: HistoryOp[] = [];
  private stopping = false;
  private loops: Promise<void>[] = [];
  private nextId = 0;
  errors = new Map<string, number>();
  /** The values puts of this workload were acknowledged for, per key. */
  readonly acked = new Map<string, Set<string>>();

  constructor(private readonly clients: FlotillaClient[], private readonly keys: string[]) {}

  start(): void {
    this.loops = this.clients.map(async (c, client) => {
      for (let i = 0; !this.stopping; i++) {
        const key = this.keys[(i * 7 + client * 3) % this.keys.length]!;
        const id = this.nextId++;
        const invoke = performance.now();
        if (i % 2 === 0) {
          const value = `c${client}-${i}`;
          try {
            await c.put(key, value);
            this.history.push({ id, client, op: { kind: 'put', key, value }, invoke, complete: performance.now(), result: { kind: 'put' } });
            let s = this.acked.get(key);
            if (s === undefined) this.acked.set(key, (s = new Set()));
            s.add(value);
          } catch (e) {
            await this.count(e);
            // Not answered for sure: it may or may not have taken effect.
            this.history.push({ id, client, op: { kind: 'put', key, value }, invoke, complete: null, result: null });
          }
        } else {
          try {
            const value = await c.get(key);
            this.history.push({ id, client, op: { kind: 'get', key }, invoke, complete: performance.now(), result: { kind: 'get', value } });
          } catch (e) {
            await this.count(e); // a failed read had no effect
          }
        }
      }
    });
  }

  /** Counts a failure and waits a moment: a closed client fails at once, and a loop of only those would starve the timers. */
  private async count(e: unknown): Promise<void> {
    const code = (e as { code?: string }).code ?? 'ERROR';
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 5));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }
}
