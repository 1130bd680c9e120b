// One benchmark row of a peer system, Redis or etcd, driven by the project's own load generator
// (bench/load.ts) so that its figures sit beside Flotilla's: same closed loop, same key draws,
// same latency histogram, same record (bench/result.ts).
//
//   node dist/bench/peers/run.js --system redis|etcd [--appendfsync always|everysec|off] [--members 1|3]
//        [--clients 4] [--pipeline 16] [--value-bytes 256] [--keys 10000] [--op put|get|mixed]
//        [--duration 10] [--warmup 2] [--seed 1] [--dir PARENT] [--json FILE]
//
// Installs the peer with apt-get if it is missing, starts it in a fresh directory under PARENT
// (default the system's temp dir, which should be on the same disk as Flotilla's benchmark data),
// loads every key once before a get or mixed run (not measured), runs the load, prints one line,
// and stops every process it started, by PID, whatever happens.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, parseOrExit, parsePositiveInt, type CommandSpec, type OptionValues } from '../../src/cli/args.js';
import { clockTicks, cpuTicks } from '../bench-cluster.js';
import { runLoad, type LoadConnection, type LoadDriver, type LoadShape, type SecondReport } from '../load.js';
import type { BenchResult, ProcessCpu } from '../result.js';
import { EtcdDriver, startEtcd } from './etcd.js';
import { ensurePeers } from './install.js';
import { RedisDriver, startRedis, type Appendfsync } from './redis.js';
import type { ServerProcess } from './server-process.js';

export interface PeerRunOptions extends LoadShape {
  system: 'redis' | 'etcd';
  /** Redis only; default always. */
  appendfsync?: Appendfsync;
  /** etcd only; default 1. */
  members?: 1 | 3;
  seed?: number;
  /** Where the run's data directory is made; default os.tmpdir(). */
  dirParent?: string;
  /** Progress: the processes started, the preload, anything worth knowing; nothing by default. */
  log?: (line: string) => void;
  onSecond?: (s: SecondReport) => void;
}

/** Loading every key before a get run: bounded, as everything. */
const PRELOAD_MS_MAX = 300_000;
const VALUE_BYTES_MAX = 1 << 20;

/** The stop() of every peer a runPeer() in this process has running now, for signal handlers. */
const running = new Set<() => Promise<void>>();

/** Stops every peer that a runPeer() still has running (a signal came): each by its PID. */
export async function stopRunningPeers(): Promise<void> {
  await Promise.allSettled([...running].map((stop) => stop()));
}

interface Peer {
  mode: string;
  syncForce: boolean;
  transport: string;
  processes: ServerProcess[];
  driver: LoadDriver & { failure: Error | undefined };
  /** A note on failed requests, when the driver has one. */
  firstError(): string | undefined;
  stop(): Promise<void>;
}

export async function runPeer(o: PeerRunOptions): Promise<BenchResult> {
  check(o);
  const log = o.log ?? ((): void => undefined);
  const bins = await ensurePeers([o.system]);
  const dir = fs.mkdtempSync(path.join(o.dirParent ?? os.tmpdir(), `flotilla-peer-${o.system}-`));
  const removeDir = (): void => fs.rmSync(dir, { recursive: true, force: true });
  // A signal's handler exits once stop() is done, so stop() removes the directory too; the servers
  // themselves are SIGKILLed on exit by their own listeners, should a start be cut short.
  process.on('exit', removeDir);
  let peer: Peer | undefined;
  const stop = async (): Promise<void> => {
    await peer?.stop();
    removeDir();
  };
  running.add(stop);
  try {
    peer = o.system === 'redis' ? await startRedisPeer(o, bins.redisServer, dir) : await startEtcdPeer(o, bins.etcd, dir);
    for (const p of peer.processes) log(`${p.name}: pid ${p.pid}`);
    log(`data in ${dir}`);

    if (o.op !== 'put') {
      const t0 = performance.now();
      await preload(peer.driver, o);
      log(`loaded ${o.keys} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    const hz = clockTicks();
    const processes = peer.processes;
    type Sample = { at: number; ticks: number[]; client: NodeJS.CpuUsage };
    const sample = (): Sample => ({ at: performance.now(), ticks: processes.map((p) => cpuTicks(p.pid).total), client: process.cpuUsage() });
    const driver = peer.driver;
    // Checked every second too, so that a run whose server died ends then, not at its full length.
    const ensureAlive = (): void => {
      for (const p of processes) {
        const gone = p.exitReason();
        if (gone !== undefined) throw new Error(`${gone} during the run; output:\n${p.output()}`);
      }
      if (driver.failure !== undefined) throw driver.failure;
    };
    // The measured phase begins right after the last warm-up second is reported and ends with its own last second.
    let start = o.warmupS === 0 ? sample() : undefined;
    let end: Sample | undefined;
    let endIso = '';
    const load = await runLoad(driver, {
      clients: o.clients, pipeline: o.pipeline, keys: o.keys, op: o.op, warmupS: o.warmupS, durationS: o.durationS, seed: o.seed ?? 1,
      onSecond: (s) => {
        ensureAlive();
        if (s.warmup && s.second === o.warmupS) start = sample();
        if (!s.warmup && s.second === o.durationS) {
          end = sample();
          endIso = new Date().toISOString();
        }
        o.onSecond?.(s);
      },
    });
    ensureAlive();
    if (load.errors > 0) log(`${load.errors} requests failed; the first: ${peer.firstError() ?? 'no detail'}`);
    if (start === undefined || end === undefined) throw new Error('the load generator did not report its seconds');
    const wallS = (end.at - start.at) / 1000;
    const cpu: Record<string, ProcessCpu> = {};
    processes.forEach((p, i) => {
      cpu[p.name] = { name: p.name, pid: p.pid, percent: round1((100 * (end!.ticks[i]! - start!.ticks[i]!)) / hz / wallS) };
    });
    const clientUs = end.client.user + end.client.system - start.client.user - start.client.system;
    cpu['client'] = { name: 'client', pid: process.pid, percent: round1((100 * clientUs) / 1e6 / wallS) };
    return {
      system: o.system, mode: peer.mode, op: o.op, nodes: o.system === 'etcd' ? (o.members ?? 1) : 1, groups: 1,
      clients: o.clients, pipeline: o.pipeline, valueBytes: o.valueBytes, keys: o.keys,
      syncForce: peer.syncForce, transport: peer.transport,
      durationS: load.durationS, ops: load.ops, opsPerSec: load.opsPerSec, errors: load.errors, latencyMs: load.latencyMs,
      cpu, at: endIso,
    };
  } finally {
    running.delete(stop);
    await stop();
    process.off('exit', removeDir);
  }
}

function check(o: PeerRunOptions): void {
  if (o.system !== 'redis' && o.system !== 'etcd') throw new UsageError(`system must be redis or etcd, got ${JSON.stringify(o.system)}`);
  if (o.system !== 'redis' && o.appendfsync !== undefined) throw new UsageError('appendfsync is for redis only');
  if (o.system !== 'etcd' && o.members !== undefined) throw new UsageError('members is for etcd only');
  if (o.appendfsync !== undefined && !['always', 'everysec', 'off'].includes(o.appendfsync)) throw new UsageError(`appendfsync must be always, everysec or off, got ${o.appendfsync}`);
  if (o.members !== undefined && o.members !== 1 && o.members !== 3) throw new UsageError(`members must be 1 or 3, got ${o.members}`);
  if (!['put', 'get', 'mixed'].includes(o.op)) throw new UsageError(`op must be put, get or mixed, got ${o.op}`);
  for (const [name, v] of [['clients', o.clients], ['pipeline', o.pipeline], ['value bytes', o.valueBytes], ['keys', o.keys], ['duration', o.durationS]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(o.warmupS) || o.warmupS < 0) throw new UsageError(`warm-up must be a whole number of seconds, got ${o.warmupS}`);
  if (o.valueBytes > VALUE_BYTES_MAX) throw new UsageError(`value bytes must be at most ${VALUE_BYTES_MAX}`);
  if (o.keys > 0xffff_ffff) throw new UsageError('keys must be below 2^32');
}

async function startRedisPeer(o: PeerRunOptions, binary: string, dir: string): Promise<Peer> {
  const appendfsync = o.appendfsync ?? 'always';
  const server = await startRedis({ appendfsync, dir: path.join(dir, 'redis'), binary });
  const driver = new RedisDriver(server.port, o.valueBytes, o.pipeline);
  return {
    mode: `appendfsync ${appendfsync}`, syncForce: appendfsync === 'always', transport: 'tcp',
    processes: [server.process], driver, firstError: () => undefined, stop: server.stop,
  };
}

async function startEtcdPeer(o: PeerRunOptions, binary: string, dir: string): Promise<Peer> {
  const members = o.members ?? 1;
  const cluster = await startEtcd({ members, dir: path.join(dir, 'etcd'), binary });
  const leader = await cluster.leaderIndex();
  o.log?.(`etcd leader: member ${cluster.members[leader]!.id}`);
  const driver = new EtcdDriver(cluster.members.map((m) => m.clientPort), o.valueBytes, o.pipeline);
  return {
    mode: `members ${members}`, syncForce: true, transport: 'grpc',
    processes: cluster.members.map((m) => m.process), driver, firstError: () => driver.firstError, stop: cluster.stop,
  };
}

/** Puts every key once, over `clients` connections with `pipeline` in flight each; fails on any failed put. */
async function preload(driver: LoadDriver & { failure: Error | undefined }, o: PeerRunOptions): Promise<void> {
  const conns: LoadConnection[] = [];
  let next = 0;
  let done = 0;
  let failed = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const dirty = new Set<LoadConnection>();
  const flushDirty = (): void => {
    for (const c of dirty) c.flush();
    dirty.clear();
  };
  const replyOf = (i: number) => (tag: number, ok: boolean): void => {
    done++;
    if (!ok) failed++;
    if (next < o.keys) {
      const c = conns[i]!;
      c.send(tag, 'put', next++);
      if (dirty.size === 0) queueMicrotask(flushDirty);
      dirty.add(c);
    }
    if (done === o.keys) finish();
  };
  try {
    for (let i = 0; i < o.clients; i++) conns.push(await driver.open(i, replyOf(i)));
    for (let i = 0; i < conns.length; i++) {
      for (let tag = 0; tag < o.pipeline && next < o.keys; tag++) conns[i]!.send(tag, 'put', next++);
      conns[i]!.flush();
    }
    const deadline = Date.now() + PRELOAD_MS_MAX;
    let timer: NodeJS.Timeout | undefined;
    const watch = new Promise<void>((_, reject) => {
      const poll = (): void => {
        if (driver.failure !== undefined) reject(driver.failure);
        else if (Date.now() > deadline) reject(new Error(`loading ${o.keys} keys took more than ${PRELOAD_MS_MAX / 1000} s (${done} done)`));
        else timer = setTimeout(poll, 100);
      };
      poll();
    });
    try {
      await Promise.race([finished, watch]);
    } finally {
      clearTimeout(timer);
    }
    if (failed > 0) throw new Error(`${failed} of ${o.keys} puts failed while loading the keys`);
  } finally {
    for (const c of conns) c.close();
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export const PEER_RUN_SPEC = {
  name: 'node dist/bench/peers/run.js',
  summary: 'One benchmark run against a peer system (Redis or etcd) installed and started on 127.0.0.1.',
  options: {
    system: { type: 'string', value: 'redis|etcd', help: 'the system to run (required)' },
    appendfsync: { type: 'string', value: 'always|everysec|off', help: 'Redis: its appendfsync' },
    members: { type: 'string', value: '1|3', help: 'etcd: members' },
    clients: { type: 'string', value: 'C', help: 'connections (default 4)' },
    pipeline: { type: 'string', value: 'P', help: 'requests in flight per connection (default 16)' },
    'value-bytes': { type: 'string', value: 'B', help: 'bytes of each value (default 256)' },
    keys: { type: 'string', value: 'K', help: 'distinct keys (default 10000)' },
    op: { type: 'string', value: 'put|get|mixed', help: 'what each request does (default put)' },
    duration: { type: 'string', value: 'S', help: 'measured seconds (default 10)' },
    warmup: { type: 'string', value: 'S', help: 'warm-up seconds (default 2)' },
    seed: { type: 'string', value: 'N', help: 'seed of the key sequence (default 1)' },
    dir: { type: 'string', value: 'PARENT', help: 'where the peer keeps its data' },
    json: { type: 'string', value: 'FILE', help: 'write the result as JSON' },
  },
} as const satisfies CommandSpec;

export function parsePeerFlags(flags: OptionValues<typeof PEER_RUN_SPEC.options>): { options: PeerRunOptions; json: string | undefined } {
  const int = (name: keyof typeof flags, dflt: number): number => (flags[name] === undefined ? dflt : parsePositiveInt(flags[name], `--${name}`));
  const warmup = flags['warmup'] ?? '2';
  if (!/^\d+$/.test(warmup)) throw new UsageError(`--warmup must be a whole number of seconds, got ${JSON.stringify(warmup)}`);
  const options: PeerRunOptions = {
    system: flags['system'] as PeerRunOptions['system'],
    clients: int('clients', 4),
    pipeline: int('pipeline', 16),
    valueBytes: int('value-bytes', 256),
    keys: int('keys', 10_000),
    op: (flags['op'] ?? 'put') as PeerRunOptions['op'],
    durationS: int('duration', 10),
    warmupS: Number(warmup),
    seed: int('seed', 1),
  };
  if (flags['system'] === undefined) throw new UsageError('--system redis|etcd is needed');
  if (flags['appendfsync'] !== undefined) options.appendfsync = flags['appendfsync'] as Appendfsync;
  if (flags['members'] !== undefined) options.members = parsePositiveInt(flags['members'], '--members', 3) as 1 | 3;
  if (flags['dir'] !== undefined) options.dirParent = flags['dir'];
  check(options);
  return { options, json: flags['json'] };
}

async function main(): Promise<void> {
  const { options: parsed } = parseOrExit(PEER_RUN_SPEC, process.argv.slice(2), (p) => parsePeerFlags(p.values));
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    // A second signal exits at once; the exit listeners still SIGKILL what we started.
    if (signalled) process.exit(1);
    signalled = true;
    console.error(`${signal}: stopping the peers`);
    void stopRunningPeers().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const o = parsed.options;
  const r = await runPeer({
    ...o,
    log: (line) => console.error(line),
    onSecond: (s) => console.error(`${s.warmup ? 'warm-up' : 'second'} ${s.second}: ${s.ops} ops, ${s.errors} errors, p99 ${s.p99Ms.toFixed(2)} ms`),
  });
  const cpu = Object.values(r.cpu).map((c) => `${c.name} ${c.percent.toFixed(0)}%`).join(', ');
  console.log(`${r.system} ${r.mode} ${r.op} clients ${r.clients} pipeline ${r.pipeline} value ${r.valueBytes} B keys ${r.keys}: `
    + `${r.opsPerSec.toLocaleString('en-US')} ops/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}; CPU ${cpu}`);
  if (parsed.json !== undefined) fs.writeFileSync(parsed.json, `${JSON.stringify(r, null, 2)}\n`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`peer run failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
