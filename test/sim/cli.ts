// The simulator's command line:
//   npm run sim:core -- --seeds N [--seed-start B] [--steps K] [--nodes N] [--groups G] [--clients C] [--jobs J]
//   npm run sim:core -- --seed S [--trace] [--steps K] ...      (replay one seed, with details)
// A step is one simulated millisecond of the chaos phase (default 10000, i.e. 10 s); the heal
// and settle phases that follow are bounded separately (ten election timeouts each).
// Prints one line per failing seed and a summary; exits 1 if any seed failed.
import { UsageError, parseIntIn, parseOneOf, parseOrExit, type CommandSpec, type OptionValues } from '../../src/cli/args.js';
import { defaultJobs, runSeeds, type SeedResult } from './pool.js';
import { defaultOptions, type BugKind, type SimOptions } from './profile.js';

interface Args {
  seeds: number[];
  replay: boolean;
  base: Partial<Omit<SimOptions, 'seed'>>;
  jobs: number;
  verbose: boolean;
  demo: boolean;
}

const DEMO_BANNER = `Flotilla: the engine (storage, shard workers, network, client protocol) is not built yet.
This is the deterministic cluster simulator demo instead: each seed runs 5 simulated nodes
hosting 4 Raft groups for 10 simulated seconds, with message loss, delay, duplication,
partitions, clock skew, crashes that lose unsynced writes, membership changes, leader
transfers and snapshots, while clients run put/get/delete/compare-and-set. Every step is
checked for Raft's safety invariants, and every client history for linearizability.
Any seed can be replayed exactly: npm run sim:core -- --seed S --trace
`;

const SIM_SPEC = {
  name: 'npm run sim:core --',
  summary: `Runs seeded simulations of a whole cluster (one line per failing seed, with the command
that replays it, then a summary; exit 1 if any seed failed), or replays one seed with --seed.`,
  options: {
    seeds: { type: 'string', value: 'N', help: 'how many seeds to run (default 100)' },
    'seed-start': { type: 'string', value: 'B', help: 'the first seed (default 1)' },
    seed: { type: 'string', value: 'S', help: 'replay this one seed, with details' },
    steps: { type: 'string', value: 'K', help: 'simulated milliseconds of the chaos phase (default 10000)' },
    nodes: { type: 'string', value: 'N', help: 'nodes' },
    groups: { type: 'string', value: 'G', help: 'groups' },
    replicas: { type: 'string', value: 'R', help: 'replicas per group' },
    clients: { type: 'string', value: 'C', help: 'clients' },
    keys: { type: 'string', value: 'K', help: 'keys per group' },
    jobs: { type: 'string', value: 'J', help: 'worker processes (default: the cores)' },
    trace: { type: 'boolean', help: 'keep and print the trace' },
    verbose: { type: 'boolean', help: 'print every failure in full' },
    demo: { type: 'boolean', help: 'the demo: 24 seeds with a banner' },
    bug: { type: 'string', value: 'apply-twice|stale-read|forge-ack', help: 'plant a known bug (the checkers must catch it)' },
  },
} as const satisfies CommandSpec;

function parseSimArgs(v: OptionValues<typeof SIM_SPEC.options>): Args {
  const num = (name: keyof typeof v): number | undefined => (v[name] === undefined ? undefined : parseIntIn(v[name] as string, `--${name}`, 0, Number.MAX_SAFE_INTEGER));
  const base: Partial<Omit<SimOptions, 'seed'>> = {};
  const set = <K extends keyof typeof base>(k: K, x: (typeof base)[K] | undefined): void => {
    if (x !== undefined) base[k] = x;
  };
  set('steps', num('steps'));
  set('nodes', num('nodes'));
  set('groups', num('groups'));
  set('replicasPerGroup', num('replicas'));
  set('clients', num('clients'));
  set('keysPerGroup', num('keys'));
  if (v.trace === true) base.trace = true;
  if (v.bug !== undefined) base.bug = parseOneOf(v.bug, '--bug', ['apply-twice', 'stale-read', 'forge-ack'], 'apply-twice') as BugKind;
  const demo = v.demo === true;
  const count = num('seeds') ?? (demo ? 24 : 100);
  const start = num('seed-start') ?? 1;
  const single = num('seed') ?? null;
  const jobs = Math.max(1, num('jobs') ?? defaultJobs());
  const verbose = v.verbose === true;
  if ((base.nodes ?? defaultOptions.nodes) < 1 || (base.groups ?? defaultOptions.groups) < 1) throw new UsageError('need at least one node and one group');
  if (single !== null) return { seeds: [single], replay: true, base, jobs: 1, verbose: true, demo };
  return { seeds: Array.from({ length: count }, (_, i) => start + i), replay: false, base, jobs, verbose, demo };
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

async function main(): Promise<void> {
  const { options: args } = parseOrExit(SIM_SPEC, process.argv.slice(2), (p) => parseSimArgs(p.values));
  if (args.demo) console.log(DEMO_BANNER);
  const t0 = performance.now();
  let failures = 0;
  let undecided = 0;
  let ops = 0;
  let indeterminate = 0;
  const totals: Record<string, number> = {};
  const onResult = (r: SeedResult): void => {
    ops += r.ops;
    indeterminate += r.opsIndeterminate;
    for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    if (r.outcome === 'undecided') {
      undecided++;
      if (args.verbose) console.log(`UNDECIDED ${firstLine(r.failure ?? '')}`);
    }
    if (r.outcome === 'failed' || r.outcome === 'violation') {
      failures++;
      console.log(`FAIL ${args.verbose ? r.failure : firstLine(r.failure ?? '')}`);
      if (!args.replay) console.log(`  replay: npm run sim:core -- --seed ${r.seed}${argsForReplay(args)} --trace`);
    }
    if (args.replay) {
      console.log(`seed ${r.seed}: ${r.outcome}; ${r.ops} ops (${r.opsIndeterminate} indeterminate), ${r.simMs.toFixed(0)} simulated ms, ${r.events} events, trace ${r.traceHash}`);
      console.log(`  profile: ${r.profile}`);
      console.log(`  stats: ${JSON.stringify(r.stats)}`);
      if (r.trace.length > 0) {
        console.log(`  last ${r.trace.length} trace lines:`);
        for (const l of r.trace) console.log(`  ${l}`);
      }
    }
  };
  await runSeeds({ seeds: args.seeds, base: args.base, jobs: args.jobs, onResult });
  const wallS = (performance.now() - t0) / 1000;
  console.log(
    `seeds ${args.seeds.length}, failures ${failures}, undecided ${undecided}, ops checked ${ops}, ` +
      `wall ${wallS.toFixed(1)}s (${args.jobs} job${args.jobs === 1 ? '' : 's'})`,
  );
  if (args.verbose || args.seeds.length > 1) {
    console.log(`  ${indeterminate} ops indeterminate; faults and events: ${Object.entries(totals).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  process.exitCode = failures > 0 ? 1 : 0;
}

function argsForReplay(a: Args): string {
  const b = a.base;
  let s = '';
  if (b.steps !== undefined) s += ` --steps ${b.steps}`;
  if (b.nodes !== undefined) s += ` --nodes ${b.nodes}`;
  if (b.groups !== undefined) s += ` --groups ${b.groups}`;
  if (b.replicasPerGroup !== undefined) s += ` --replicas ${b.replicasPerGroup}`;
  if (b.clients !== undefined) s += ` --clients ${b.clients}`;
  if (b.keysPerGroup !== undefined) s += ` --keys ${b.keysPerGroup}`;
  if (b.bug !== undefined && b.bug !== null) s += ` --bug ${b.bug}`;
  return s;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 2;
});
