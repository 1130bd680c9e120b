// `flotilla bench`: starts a cluster of real node processes on 127.0.0.1 (as `flotilla cluster`
// does) or targets a running one (--servers), drives it with the closed-loop load generator of
// load.ts, and reports throughput, latency (hdr-histogram) and the CPU of every process. In
// raft mode it also measures the echo ceiling (the same load against a node in `mode: echo`,
// where shards answer without Raft or the log) and reports the raft figure as a fraction of it.
import * as fs from 'node:fs';
import {
  UsageError, parseBool, parseOneOf, parsePositiveInt, parseSeconds, parseServers, type CommandSpec, type OptionValues,
} from '../src/cli/args.js';
import { clockTicks, cpuTicks, metricSum, startBenchCluster, waitFor, type BenchCluster } from './bench-cluster.js';
import { FlotillaDriver } from './flotilla-driver.js';
import { FlotillaClient } from '../src/client/client.js';
import { META_GROUP } from '../src/cluster/meta-group.js';
import { slotOf } from '../src/cluster/slots.js';
import type { KeyMap } from '../src/cluster/key-map.js';
import { runLoad, type LoadResult, type LoadShape, type SecondReport } from './load.js';
import type { BenchResult, ProcessCpu } from './result.js';

export interface FlotillaBenchOptions extends LoadShape {
  mode: 'raft' | 'echo';
  nodes: number;
  groups: number;
  shards: number;
  syncForce: boolean;
  transport: 'tcp' | 'ws';
  /** Client addresses of a running cluster; absent: start one. */
  servers: string[] | null;
  /** Raft mode: seconds of the echo run that gives the ceiling (0: none). */
  echoS: number;
  json: string | null;
  /** Write the nodes' V8 CPU profiles (--cpu-prof) into this directory. */
  cpuProfDir: string | null;
  /** More keys for every node's configuration file (--node-config JSON), for tuning runs. */
  nodeConfig: Record<string, unknown>;
}

export const BENCH_SPEC = {
  name: 'flotilla bench',
  summary: `Benchmark: starts N nodes on 127.0.0.1 (or drives --servers), keeps C connections with
P requests in flight each, prints ops/s and latency each second and a summary. In raft mode it
then runs echo mode (shards answer without Raft or the log) for the ceiling. docs/benchmarks.md.`,
  options: {
    mode: { type: 'string', value: 'raft|echo', help: 'raft: the engine; echo: the front end alone (default raft)' },
    nodes: { type: 'string', value: '1|3', help: 'nodes to start (default 3; with --servers, their number)' },
    groups: { type: 'string', value: 'G', help: 'groups of the cluster started here (default 1; not with --servers: the key map says where keys live)' },
    shards: { type: 'string', value: 'S', help: 'shard workers per node (default 1)' },
    clients: { type: 'string', value: 'C', help: 'connections (default 8)' },
    pipeline: { type: 'string', value: 'P', help: 'requests in flight per connection (default 128)' },
    'value-bytes': { type: 'string', value: 'B', help: 'bytes of each value (default 256)' },
    keys: { type: 'string', value: 'K', help: 'distinct keys (default 100,000)' },
    op: { type: 'string', value: 'put|get|mixed', help: 'what each request does (default put)' },
    duration: { type: 'string', value: 'S', help: 'measured seconds (default 30)' },
    warmup: { type: 'string', value: 'S', help: 'seconds of warm-up before measuring (default 5)' },
    'sync-force': { type: 'string', value: 'true|false', help: 'fdatasync before acknowledging (default true)' },
    transport: { type: 'string', value: 'tcp|ws', help: 'client transport (default tcp)' },
    servers: { type: 'string', value: 'H:P,...', help: 'client addresses of a running cluster to drive instead' },
    'echo-baseline': { type: 'string', value: 'S', help: 'raft mode: seconds of the echo run after it (default 10; 0: none)' },
    json: { type: 'string', value: 'FILE', help: 'write the result record as JSON' },
    'cpu-prof': { type: 'string', value: 'DIR', help: 'write the nodes\' V8 CPU profiles here' },
    'node-config': { type: 'string', value: 'JSON', help: 'more keys for every node\'s config, e.g. {"turnRecordsMax":256}' },
  },
} as const satisfies CommandSpec;

export function parseBenchFlags(flags: OptionValues<typeof BENCH_SPEC.options>): FlotillaBenchOptions {
  const oneOf = <T extends string>(name: keyof typeof flags, values: readonly T[], dflt: T): T => parseOneOf(flags[name], `--${name}`, values, dflt);
  const int = (name: keyof typeof flags, dflt: number, max?: number): number => (flags[name] === undefined ? dflt : parsePositiveInt(flags[name], `--${name}`, max));
  const seconds = (name: keyof typeof flags, dflt: number): number => {
    const v = flags[name];
    return v === undefined ? dflt : parseSeconds(v, `--${name}`);
  };
  const servers = flags['servers'] === undefined ? null : parseServers(flags['servers']);
  const mode = oneOf('mode', ['raft', 'echo'] as const, 'raft');
  const o: FlotillaBenchOptions = {
    mode,
    nodes: servers?.length ?? int('nodes', 3, 9),
    groups: int('groups', 1, 100_000),
    shards: int('shards', 1, 64),
    clients: int('clients', 8, 10_000),
    pipeline: int('pipeline', 128, 4096),
    valueBytes: int('value-bytes', 256, 1024 * 1024),
    keys: int('keys', 100_000, 10_000_000),
    op: oneOf('op', ['put', 'get', 'mixed'] as const, 'put'),
    durationS: seconds('duration', 30),
    warmupS: seconds('warmup', 5),
    syncForce: flags['sync-force'] === undefined ? true : parseBool(flags['sync-force'], '--sync-force'),
    transport: oneOf('transport', ['tcp', 'ws'] as const, 'tcp'),
    servers,
    echoS: mode === 'echo' ? 0 : seconds('echo-baseline', 10),
    json: flags['json'] ?? null,
    cpuProfDir: flags['cpu-prof'] ?? null,
    nodeConfig: parseNodeConfig(flags['node-config']),
  };
  if (o.durationS < 1) throw new UsageError('--duration must be at least 1 second');
  if (servers !== null && flags['groups'] !== undefined) {
    throw new UsageError('--groups is for the cluster bench starts; with --servers, keys go where the cluster\'s key map says');
  }
  if (servers !== null && o.transport === 'ws' && mode === 'raft') {
    throw new UsageError('--servers with --transport ws: the key map is read over TCP; give the TCP client ports (or let bench start the cluster)');
  }
  if (servers !== null && flags['nodes'] !== undefined && Number(flags['nodes']) !== servers.length) {
    throw new UsageError(`--nodes ${flags['nodes']} does not match the ${servers.length} --servers given`);
  }
  return o;
}

function parseNodeConfig(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--node-config must be a JSON object: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError('--node-config must be a JSON object, e.g. {"turnRecordsMax":256}');
  return v as Record<string, unknown>;
}

interface Run {
  load: LoadResult;
  cpu: Record<string, ProcessCpu>;
  driver: FlotillaDriver;
  /** Per node, engine counters over the measured phase, per second (own cluster only). */
  engine: Record<string, EngineRates>;
  /** Per node, the groups it led when the measured phase ended (own cluster only). */
  leaders: Record<string, number>;
}

/** How many data groups each node leads, by the nodes' /status (the meta group is not counted). */
async function leadersByNode(cluster: BenchCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const id of [...cluster.nodes.keys()].sort((a, b) => a - b)) {
    out[`node ${id}`] = (await cluster.status(id)).filter((g) => g.role === 'leader' && g.group !== META_GROUP).length;
  }
  return out;
}

/** What a node's /metrics says it did each second of the measured phase. */
export interface EngineRates {
  turns: number;
  walAppends: number;
  /** Mean time of a log append (write and, with syncForce, fdatasync), ms. */
  walAppendMs: number;
  raftMsgsOut: number;
  raftMsgsIn: number;
  linkFramesOut: number;
  applied: number;
}

const ENGINE_SERIES: [keyof EngineRates, string, Record<string, string>][] = [
  ['turns', 'flotilla_shard_turns_total', {}],
  ['walAppends', 'flotilla_wal_appends_total', {}],
  ['walAppendMs', 'flotilla_wal_append_seconds_total', {}],
  ['raftMsgsOut', 'flotilla_raft_messages_total', { direction: 'out' }],
  ['raftMsgsIn', 'flotilla_raft_messages_total', { direction: 'in' }],
  ['linkFramesOut', 'flotilla_link_frames_total', { direction: 'out' }],
  ['applied', 'flotilla_applied_total', {}],
];

async function engineSample(cluster: BenchCluster): Promise<Map<number, Record<keyof EngineRates, number>>> {
  const out = new Map<number, Record<keyof EngineRates, number>>();
  for (const id of cluster.nodes.keys()) {
    const text = await cluster.metrics(id);
    const v = {} as Record<keyof EngineRates, number>;
    for (const [k, name, match] of ENGINE_SERIES) v[k] = metricSum(text, name, match);
    out.set(id, v);
  }
  return out;
}

function engineRates(a: Map<number, Record<keyof EngineRates, number>>, b: Map<number, Record<keyof EngineRates, number>>, wallS: number): Record<string, EngineRates> {
  const out: Record<string, EngineRates> = {};
  for (const [id, end] of b) {
    const start = a.get(id)!;
    const d = (k: keyof EngineRates): number => end[k] - start[k];
    const appends = d('walAppends');
    out[`node ${id}`] = {
      turns: Math.round(d('turns') / wallS),
      walAppends: Math.round(appends / wallS),
      walAppendMs: appends === 0 ? 0 : Math.round((1e6 * d('walAppendMs')) / appends) / 1000,
      raftMsgsOut: Math.round(d('raftMsgsOut') / wallS),
      raftMsgsIn: Math.round(d('raftMsgsIn') / wallS),
      linkFramesOut: Math.round(d('linkFramesOut') / wallS),
      applied: Math.round(d('applied') / wallS),
    };
  }
  return out;
}

/** Runs the benchmark as the options say and returns its record (written to --json too). */
export async function runFlotillaBench(o: FlotillaBenchOptions, out: (line: string) => void = (l) => void process.stdout.write(l + '\n')): Promise<BenchResult> {
  out(`flotilla bench: ${o.mode}, ${o.servers === null ? `${o.nodes} node${o.nodes > 1 ? 's' : ''} started here` : `servers ${o.servers.join(',')}`}, ` +
    `${o.groups} group${o.groups > 1 ? 's' : ''}, ${o.clients} x ${o.pipeline} in flight, ${o.op} of ${o.valueBytes} B over ${o.keys.toLocaleString('en-US')} keys, ` +
    `syncForce ${o.syncForce}, ${o.transport}; ${o.warmupS} s warm-up, ${o.durationS} s measured`);
  const main = await runOnce(o, o.mode, out);
  let echo: Run | null = null;
  if (o.mode === 'raft' && o.echoS > 0 && o.servers === null) {
    out(`echo ceiling: the same load against 1 node in echo mode for ${o.echoS} s`);
    echo = await runOnce({ ...o, nodes: 1, durationS: o.echoS, warmupS: Math.min(o.warmupS, 2), cpuProfDir: null }, 'echo', out);
  }
  const result: FlotillaRecord = {
    system: 'flotilla',
    mode: o.mode,
    op: o.op,
    nodes: o.nodes,
    groups: o.groups,
    clients: o.clients,
    pipeline: o.pipeline,
    valueBytes: o.valueBytes,
    keys: o.keys,
    syncForce: o.syncForce,
    transport: o.transport,
    durationS: main.load.durationS,
    ops: main.load.ops,
    opsPerSec: main.load.opsPerSec,
    errors: main.load.errors,
    latencyMs: main.load.latencyMs,
    cpu: main.cpu,
    at: new Date().toISOString(),
  };
  result.engine = main.engine;
  if (Object.keys(main.leaders).length > 0) result.leaders = main.leaders;
  if (main.driver.counts.errors.size > 0) result.errorsByCode = Object.fromEntries(main.driver.counts.errors);
  if (echo !== null) {
    result.echoOpsPerSec = echo.load.opsPerSec;
    result.echoFraction = Math.round((1000 * main.load.opsPerSec) / Math.max(1, echo.load.opsPerSec)) / 1000;
  }
  out(summary(result, main.driver));
  if (o.json !== null) fs.writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
  return result;
}

async function runOnce(o: FlotillaBenchOptions, mode: 'raft' | 'echo', out: (line: string) => void): Promise<Run> {
  let cluster: BenchCluster | null = null;
  try {
    let servers = o.servers;
    /** Where the key map is asked for: the nodes' TCP client ports. */
    let mapServers = o.servers ?? [];
    if (servers === null) {
      if (o.cpuProfDir !== null) fs.mkdirSync(o.cpuProfDir, { recursive: true });
      cluster = await startBenchCluster({
        nodes: o.nodes,
        groups: o.groups,
        shards: o.shards,
        syncForce: o.syncForce,
        // `mode` is written only for echo, so that raft runs also work against builds older than echo mode.
        extra: { ...(mode === 'echo' ? { mode } : {}), websocket: o.transport === 'ws' ? 'auto' : 'off', ...o.nodeConfig },
        ...(o.cpuProfDir !== null ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] } : {}),
      });
      const nodes = [...cluster.nodes.values()].sort((a, b) => a.id - b.id);
      const ports = await Promise.all(nodes.map(async (n) => (o.transport === 'ws' ? wsPortOf(n.configFile) : n.clientPort)));
      servers = ports.map((p) => `127.0.0.1:${p}`);
      mapServers = nodes.map((n) => `127.0.0.1:${n.clientPort}`);
      if (mode === 'raft') await leadersElected(cluster, o.groups);
    }
    // Keys go where the cluster's key map says (echo mode answers any group: spread by slot).
    let placement: { groupOfKey: (key: string) => number; groupIdMax: number };
    if (mode === 'raft') {
      const map = await keyMapOf(mapServers);
      const groups = map.groups();
      placement = { groupOfKey: (key) => map.ownerOf(slotOf(key)), groupIdMax: Math.max(...groups) };
      if (o.servers !== null) o.groups = groups.length;
    } else {
      placement = { groupOfKey: (key) => 1 + (slotOf(key) % o.groups), groupIdMax: o.groups };
    }
    const driver = new FlotillaDriver({ servers, transport: o.transport, ...placement, keys: o.keys, valueBytes: o.valueBytes, pipeline: o.pipeline, echo: mode === 'echo' });
    if (o.op !== 'put' && mode === 'raft') await preload(driver, o, out);
    const pids = cluster === null ? [] : [...cluster.nodes.values()].map((n) => ({ name: `node ${n.id}`, pid: n.pid }));
    let cpu0: { total: number; main: number }[] = [];
    let self0 = process.cpuUsage();
    let t0 = 0;
    let wallS = 1;
    const cpu: Record<string, ProcessCpu> = {};
    let engine0: Promise<Map<number, Record<keyof EngineRates, number>>> | null = null;
    let engine1: Promise<Map<number, Record<keyof EngineRates, number>>> | null = null;
    let leaders: Promise<Record<string, number>> | null = null;
    const progress = new Progress(o.warmupS + o.durationS);
    const load = await runLoad(driver, {
      clients: o.clients, pipeline: o.pipeline, keys: o.keys, op: o.op, warmupS: o.warmupS, durationS: o.durationS,
      onSecond: (s) => {
        progress.clear();
        out(secondLine(mode, s));
        progress.tick(s, o.warmupS);
      },
      onMeasureStart: () => {
        cpu0 = pids.map((p) => cpuTicks(p.pid));
        self0 = process.cpuUsage();
        t0 = performance.now();
        if (cluster !== null) engine0 = engineSample(cluster);
      },
      onMeasureEnd: () => {
        wallS = (performance.now() - t0) / 1000;
        if (cluster !== null) engine1 = engineSample(cluster);
        if (cluster !== null && mode === 'raft') leaders = leadersByNode(cluster);
        const hz = clockTicks();
        pids.forEach((p, i) => {
          const c = cpuTicks(p.pid);
          cpu[p.name] = {
            name: p.name, pid: p.pid,
            percent: round1((100 * (c.total - cpu0[i]!.total)) / hz / wallS),
            mainPercent: round1((100 * (c.main - cpu0[i]!.main)) / hz / wallS),
          };
        });
        const self = process.cpuUsage(self0);
        cpu['client'] = { name: 'client', pid: process.pid, percent: round1((self.user + self.system) / 1e4 / wallS) };
      },
    });
    progress.done();
    const engine = engine0 !== null && engine1 !== null ? engineRates(await engine0, await engine1, wallS) : {};
    return { load, cpu, driver, engine, leaders: leaders === null ? {} : await leaders };
  } finally {
    if (cluster !== null) {
      await cluster.stop();
      cluster.removeData();
    }
  }
}

/** Gets measure reads of keys that are there: every key is written once first (not measured). */
async function preload(driver: FlotillaDriver, o: FlotillaBenchOptions, out: (line: string) => void): Promise<void> {
  out(`writing each of the ${o.keys.toLocaleString('en-US')} keys once before reading`);
  const pipeline = Math.min(o.pipeline, 256);
  const conn = await driver.open(0, (tag) => next(tag));
  let key = 0;
  let answered = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  let flushQueued = false;
  const flush = (): void => {
    flushQueued = false;
    conn.flush();
  };
  const next = (tag: number): void => {
    answered++;
    if (answered === o.keys) finish();
    if (key < o.keys) {
      conn.send(tag, 'put', key++);
      if (!flushQueued) {
        flushQueued = true;
        queueMicrotask(flush);
      }
    }
  };
  for (let tag = 0; tag < pipeline && key < o.keys; tag++) conn.send(tag, 'put', key++);
  conn.flush();
  const timer = setTimeout(() => finish(), 120_000);
  await finished;
  clearTimeout(timer);
  conn.close();
  if (answered < o.keys) throw new Error(`preload wrote ${answered} of ${o.keys} keys in 120 s`);
}

/** The key map, from the first of `servers` that gives one (waiting while a new cluster makes it). */
async function keyMapOf(servers: string[]): Promise<KeyMap> {
  const client = await FlotillaClient.connect({ servers });
  try {
    return client.keyMap;
  } finally {
    await client.close();
  }
}

/** Every data group 1..groups has a leader on some node, by the nodes' /status (the meta group's does not count). */
async function leadersElected(cluster: BenchCluster, groups: number): Promise<void> {
  await waitFor(async () => {
    const led = new Set<number>();
    for (const id of cluster.nodes.keys()) {
      for (const g of await cluster.status(id)) if (g.role === 'leader' && g.group !== META_GROUP) led.add(g.group);
    }
    return led.size >= groups;
  }, 120_000, `a leader for each of ${groups} groups`, 200);
}

function wsPortOf(configFile: string): number {
  const c = JSON.parse(fs.readFileSync(configFile, 'utf8')) as { wsPort?: number };
  if (typeof c.wsPort !== 'number') throw new Error(`${configFile} has no wsPort`);
  return c.wsPort;
}

function secondLine(mode: string, s: SecondReport): string {
  const phase = s.warmup ? 'warm-up' : mode;
  return `  ${phase.padEnd(7)} ${String(s.second).padStart(3)} s  ${s.ops.toLocaleString('en-US').padStart(10)} ops/s  p99 ${s.p99Ms.toFixed(2).padStart(8)} ms` +
    (s.errors > 0 ? `  errors ${s.errors}` : '');
}

type FlotillaRecord = BenchResult & {
  echoOpsPerSec?: number; echoFraction?: number; errorsByCode?: Record<string, number>; engine?: Record<string, EngineRates>;
  leaders?: Record<string, number>;
};

function summary(r: FlotillaRecord, driver: FlotillaDriver): string {
  const l = r.latencyMs;
  const rows: [string, string][] = [
    ['mode', r.mode],
    ['nodes / groups', `${r.nodes} / ${r.groups}`],
    ['load', `${r.clients} connections x ${r.pipeline} in flight, ${r.op}, ${r.valueBytes} B values, ${r.transport}`],
    ['syncForce', String(r.syncForce)],
    ['ops', `${r.ops.toLocaleString('en-US')} in ${r.durationS} s`],
    ['ops/s', r.opsPerSec.toLocaleString('en-US')],
    ['latency ms', `p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}`],
    ['errors', r.errors === 0 ? '0' : `${r.errors} (${Object.entries(r.errorsByCode ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')})`],
    ['resent', `${driver.counts.redirects} to a hinted leader, ${driver.counts.retries} after a pause`],
    ['CPU % of a core', Object.values(r.cpu).map((c) => `${c.name} ${c.percent}${c.mainPercent !== undefined ? ` (main ${c.mainPercent})` : ''}`).join(', ')],
  ];
  if (r.leaders !== undefined) rows.push(['groups led', Object.entries(r.leaders).map(([n, c]) => `${n} ${c}`).join(', ')]);
  for (const [name, e] of Object.entries(r.engine ?? {})) {
    rows.push([`${name} per s`, `turns ${e.turns}, log appends ${e.walAppends} (${e.walAppendMs} ms each), raft msgs out ${e.raftMsgsOut} in ${e.raftMsgsIn}, link frames out ${e.linkFramesOut}, applied ${e.applied}`]);
  }
  if (r.echoOpsPerSec !== undefined) rows.push(['echo ceiling', `${r.echoOpsPerSec.toLocaleString('en-US')} ops/s; this run is ${r.echoFraction} of it`]);
  rows.push(['latency method', 'closed loop: each request timed from its own send; coordinated omission not corrected']);
  const w = Math.max(...rows.map(([k]) => k.length));
  return ['', 'summary', ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join('\n');
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** A progress bar on stderr when it is a terminal (the per-second lines go to stdout either way). */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private shown = false;
  constructor(private readonly totalS: number) {}

  tick(s: SecondReport, warmupS: number): void {
    if (!this.tty) return;
    const done = s.warmup ? s.second : warmupS + s.second;
    const width = 30;
    const fill = Math.min(width, Math.round((width * done) / this.totalS));
    process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.totalS} s`);
    this.shown = true;
  }

  /** Wipes the bar so that a line can be printed where it was. */
  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }

  done(): void {
    this.clear();
    this.shown = false;
  }
}
