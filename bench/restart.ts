// Restart of a whole cluster: N node processes hosting G groups are all SIGKILLed at once and
// started again on their data, and the bench times how long the groups go without a leader.
// For each of --runs restarts:
//   healthy: spawn of the new processes → every node's /health answers 200;
//   led:     every node healthy → every group has a leader all members agree on (/status
//            polled every --poll-ms);
// and how the leaderships came out: per node, and the elections each group held (term after −
// term before; 1 is one election, more is split votes or campaigns that lost).
// Before the first kill, --puts puts spread over the groups give the logs something to replay.
//
//   node dist/bench/restart.js [--groups 1024] [--nodes 3] [--shards S] [--runs 3] [--puts 20000]
//                              [--tick-ms 100] [--ticks-election 10] [--poll-ms 100] [--json FILE]
import * as fs from 'node:fs';
import { parseIntIn, parseOrExit, type CommandSpec, type OptionValues } from '../src/cli/args.js';
import { FlotillaClient } from '../src/client/client.js';
import { configDefaults } from '../src/node/config-schema.js';
import { agreement, allStatus, sleep, startBenchCluster, waitFor, type BenchCluster, type Led } from './bench-cluster.js';

const RESTART_SPEC = {
  name: 'node dist/bench/restart.js',
  summary: 'Time from a whole-cluster SIGKILL and restart to every group led again (see the header of bench/restart.ts).',
  options: {
    groups: { type: 'string', value: 'G', help: 'groups (default 1024)' },
    nodes: { type: 'string', value: 'N', help: 'nodes (default 3)' },
    shards: { type: 'string', value: 'S', help: 'shard workers per node (default: the config default, one per core)' },
    runs: { type: 'string', value: 'R', help: 'restarts measured (default 3)' },
    puts: { type: 'string', value: 'P', help: 'puts before the first restart (default 20000)' },
    'tick-ms': { type: 'string', value: 'T', help: 'Raft tick (default 100)' },
    'ticks-election': { type: 'string', value: 'N', help: 'election timeout in ticks (default 10)' },
    'poll-ms': { type: 'string', value: 'MS', help: 'interval of /status polls while waiting (default 100)' },
    json: { type: 'string', value: 'FILE', help: 'write the runs as JSON' },
  },
} as const satisfies CommandSpec;

const RESTART_DEFAULTS = { groups: '1024', nodes: '3', runs: '3', puts: '20000', 'tick-ms': '100', 'ticks-election': '10', 'poll-ms': '100' } as const;
/** Longest wait for health and for leaders, per run. */
const WAIT_MS_MAX = 120_000;

function restartOptions(v: OptionValues<typeof RESTART_SPEC.options>) {
  const g = (k: keyof typeof RESTART_DEFAULTS): string => v[k] ?? RESTART_DEFAULTS[k];
  return {
    groups: parseIntIn(g('groups'), '--groups', 1, 100_000),
    nodes: parseIntIn(g('nodes'), '--nodes', 1, 64),
    shards: v.shards === undefined ? configDefaults.shards : parseIntIn(v.shards, '--shards', 1, 256),
    runs: parseIntIn(g('runs'), '--runs', 1, 1000),
    puts: parseIntIn(g('puts'), '--puts', 0, 100_000_000),
    tickMs: parseIntIn(g('tick-ms'), '--tick-ms', 1, 60_000),
    ticksElection: parseIntIn(g('ticks-election'), '--ticks-election', 2, 1000),
    pollMs: parseIntIn(g('poll-ms'), '--poll-ms', 10, 10_000),
    json: v.json,
  };
}

const { options: o } = parseOrExit(RESTART_SPEC, process.argv.slice(2), (p) => restartOptions(p.values));

interface RunRow {
  run: number;
  /** Spawn of the new processes → every /health 200, ms. */
  healthyMs: number;
  /** Every node healthy → every group led with all members agreeing, ms. */
  ledMs: number;
  /** Groups led by each node once all were led, in node id order. */
  leadersPerNode: number[];
  /** Elections per group over the restart (term after − term before): histogram, "1" → groups. */
  elections: Record<string, number>;
}

async function loadPuts(c: BenchCluster): Promise<void> {
  if (o.puts === 0) return;
  const servers = [...c.nodes.values()].map((n) => `127.0.0.1:${n.clientPort}`);
  const client = await FlotillaClient.connect({ servers });
  try {
    const value = 'x'.repeat(256);
    const inFlight = 512;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < o.puts) {
        const i = next++;
        await client.put(`k${i}`, value);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    await client.close();
  }
}

function electionsHistogram(before: Map<number, number>, after: Map<number, number>): Record<string, number> {
  const h: Record<string, number> = {};
  for (const [g, t] of after) {
    const k = String(t - (before.get(g) ?? 0));
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}

async function terms(c: BenchCluster): Promise<Map<number, number>> {
  const m = new Map<number, number>();
  for (const list of await allStatus(c)) for (const s of list) m.set(s.group, Math.max(m.get(s.group) ?? 0, s.term));
  return m;
}

async function main(): Promise<void> {
  process.stdout.write(`restart bench: ${o.nodes} nodes × ${o.groups} groups (${o.shards} shards per node), ${o.runs} runs, ${o.puts} puts first, tick ${o.tickMs} ms × ${o.ticksElection}\n`);
  const c = await startBenchCluster({ nodes: o.nodes, groups: o.groups, shards: o.shards, tickMs: o.tickMs, ticksElection: o.ticksElection, nodeArgs: [] });
  const ids = [...c.nodes.keys()].sort((a, b) => a - b);
  const rows: RunRow[] = [];
  try {
    const allLed = async (): Promise<Led> => {
      let led: Led = { led: 0, termMax: 0, view: new Map() };
      await waitFor(async () => (led = agreement(await allStatus(c), o.groups)).led === o.groups, WAIT_MS_MAX, `all ${o.groups} groups led`, o.pollMs);
      return led;
    };
    await allLed();
    await loadPuts(c);
    process.stdout.write(`  cluster up, all groups led, ${o.puts} puts done\n`);
    for (let run = 1; run <= o.runs; run++) {
      await sleep(2000); // calm: the last heartbeats and applies are out
      const before = await terms(c);
      await Promise.all(ids.map((id) => c.kill(id)));
      const t0 = performance.now();
      for (const id of ids) c.spawnNode(id);
      await c.waitHealthy(ids, WAIT_MS_MAX);
      const t1 = performance.now();
      const led = await allLed();
      const t2 = performance.now();
      const leadersPerNode = ids.map((id) => [...led.view.values()].filter((v) => v.startsWith(`${id}@`)).length);
      const row: RunRow = {
        run, healthyMs: Math.round(t1 - t0), ledMs: Math.round(t2 - t1), leadersPerNode,
        elections: electionsHistogram(before, await terms(c)),
      };
      rows.push(row);
      process.stdout.write(`  run ${run}: healthy ${(row.healthyMs / 1000).toFixed(2)} s after spawn, all led ${(row.ledMs / 1000).toFixed(2)} s after healthy; leaders per node ${leadersPerNode.join('/')}; elections per group ${JSON.stringify(row.elections)}\n`);
    }
  } finally {
    await c.stop();
    c.removeData();
  }
  const sorted = rows.map((r) => r.ledMs).sort((a, b) => a - b);
  process.stdout.write(`median all-led after healthy: ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s\n`);
  if (o.json !== undefined) fs.writeFileSync(o.json, JSON.stringify({ options: o, rows }, null, 2));
}

const stopOnSignal = (signal: NodeJS.Signals): void => {
  process.stdout.write(`\n${signal}: stopping the nodes\n`);
  process.exit(130); // BenchCluster's exit hook SIGKILLs every node still running
};
process.once('SIGINT', stopOnSignal);
process.once('SIGTERM', stopOnSignal);
await main();
