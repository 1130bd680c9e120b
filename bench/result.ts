// The record every benchmark row leaves behind (`--json FILE`), Flotilla's and the peers' alike;
// bench/matrix.ts reads these back to write the table and the chart.
import type { LatencyMs } from './load.js';

export interface ProcessCpu {
  /** Which process: "node 1", "client", "redis", "etcd 2", ... */
  name: string;
  pid: number;
  /** CPU time over the measured phase as a percentage of one core (all threads). */
  percent: number;
  /** The main thread alone, where it can be told apart (Flotilla nodes); else absent. */
  mainPercent?: number;
}

export interface BenchResult {
  /** What ran: "flotilla", "etcd", "redis". */
  system: string;
  /** raft | echo for Flotilla; for peers their configuration ("appendfsync always", "members 3"). */
  mode: string;
  op: 'put' | 'get' | 'mixed';
  nodes: number;
  groups: number;
  clients: number;
  pipeline: number;
  valueBytes: number;
  keys: number;
  /** Flotilla's syncForce; for peers whether each acknowledged write was fsynced first. */
  syncForce: boolean;
  transport: string;
  durationS: number;
  ops: number;
  opsPerSec: number;
  errors: number;
  latencyMs: LatencyMs;
  cpu: Record<string, ProcessCpu>;
  /** ISO time the measured phase ended. */
  at: string;
}
