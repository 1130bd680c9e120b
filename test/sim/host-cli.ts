// The host simulator's command line (host-sim.ts), `npm run sim`:
//   npm run sim -- --seeds N [--seed-start B] [--jobs J] [--steps K] [--sync-force on|off]
//   npm run sim -- --seed S [--trace]          (replay one seed, with its trace)
// Prints one line per failing seed with the command that replays it, then ops checked, faults
// injected by kind, and the time taken; exits 1 if any seed failed.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { parseIntIn, parseOneOf, parseOrExit, type CommandSpec, type OptionValues } from '../../src/cli/args.js';
import { runHostSeed, type HostSimResult } from './host-sim.js';
import { hostSimDefaults, type HostSimOptions } from './host-profile.js';

const SPEC = {
  name: 'npm run sim --',
  summary: `Runs seeds of the host simulator: machines running the production shard, write-ahead log,
snapshot store and codecs on simulated disks, clocks and network (test/sim/README.md). One line
per failing seed, with the command that replays it, then ops checked and faults injected by
kind; exit 1 if any seed failed. --seed replays one seed with its trace.`,
  options: {
    seeds: { type: 'string', value: 'N', help: 'how many seeds to run (default 100)' },
    'seed-start': { type: 'string', value: 'B', help: 'the first seed (default 1)' },
    seed: { type: 'string', value: 'S', help: 'replay this one seed, with its trace' },
    jobs: { type: 'string', value: 'J', help: 'worker threads (default: the cores)' },
    steps: { type: 'string', value: 'K', help: `simulated milliseconds of the chaos phase (default ${hostSimDefaults.steps})` },
    nodes: { type: 'string', value: 'N', help: `machines (default ${hostSimDefaults.nodes})` },
    groups: { type: 'string', value: 'G', help: `groups (default ${hostSimDefaults.groups})` },
    'sync-force': { type: 'string', value: 'on|off', help: 'syncForce for every seed (default: the seed chooses, on in about 3 of 4)' },
    trace: { type: 'boolean', help: 'keep the trace (printed with --seed)' },
  },
} as const satisfies CommandSpec;

interface Options {
  seeds: number[];
  base: Omit<HostSimOptions, 'seed'>;
  jobs: number;
  replay: boolean;
}

function options(v: OptionValues<typeof SPEC.options>): Options {
  const int = (name: keyof typeof v, dflt: number, min = 1): number => (v[name] === undefined ? dflt : parseIntIn(v[name] as string, `--${name}`, min, Number.MAX_SAFE_INTEGER));
  const sf = v['sync-force'] === undefined ? null : parseOneOf(v['sync-force'], '--sync-force', ['on', 'off'], 'on') === 'on';
  const base: Omit<HostSimOptions, 'seed'> = {
    ...hostSimDefaults,
    steps: int('steps', hostSimDefaults.steps),
    nodes: int('nodes', hostSimDefaults.nodes),
    groups: int('groups', hostSimDefaults.groups),
    syncForce: sf,
    trace: v.trace === true || v.seed !== undefined,
  };
  if (v.seed !== undefined) return { seeds: [int('seed', 1, 0)], base, jobs: 1, replay: true };
  const count = int('seeds', 100);
  const start = int('seed-start', 1, 0);
  return { seeds: Array.from({ length: count }, (_, i) => start + i), base, jobs: int('jobs', availableParallelism()), replay: false };
}

async function runAll(seeds: number[], base: Omit<HostSimOptions, 'seed'>, jobs: number, onResult: (r: HostSimResult) => void): Promise<void> {
  if (jobs === 1) {
    for (const seed of seeds) onResult(await runHostSeed({ ...base, seed }));
    return;
  }
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(jobs, seeds.length) }, () => new Promise<void>((resolve, reject) => {
    const w = new Worker(new URL('./host-worker.js', import.meta.url));
    const feed = (): void => {
      if (next < seeds.length) w.postMessage({ ...base, seed: seeds[next++]! });
      else w.postMessage(null);
    };
    w.on('message', (r: HostSimResult) => {
      onResult(r);
      feed();
    });
    w.on('error', reject);
    w.on('exit', () => resolve());
    feed();
  })));
}

async function main(): Promise<void> {
  const o = parseOrExit(SPEC, process.argv.slice(2), (p) => options(p.values)).options;
  const t0 = performance.now();
  let failed = 0;
  let undecided = 0;
  let ops = 0;
  const faults: Record<string, number> = {};
  await runAll(o.seeds, o.base, o.jobs, (r) => {
    ops += r.ops;
    for (const [k, v] of Object.entries(r.stats)) faults[k] = (faults[k] ?? 0) + v;
    if (r.outcome === 'undecided') undecided++;
    if (r.outcome === 'failed' || r.outcome === 'violation') {
      failed++;
      console.log(`FAIL ${o.replay ? r.failure : (r.failure ?? '').split('\n')[0]}`);
      if (!o.replay) console.log(`  replay: npm run sim -- --seed ${r.seed}${o.base.syncForce === null ? '' : ` --sync-force ${o.base.syncForce ? 'on' : 'off'}`}`);
    }
    if (o.replay) {
      console.log(`seed ${r.seed}: ${r.outcome}; ${r.ops} ops (${r.opsIndeterminate} indeterminate), ${r.simMs.toFixed(0)} simulated ms, ${r.events} events, trace ${r.traceHash}`);
      console.log(`  profile: ${r.profile}`);
      for (const l of r.trace) console.log(`  ${l}`);
    }
  });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`seeds ${o.seeds.length}, ops checked ${ops}, undecided ${undecided}, wall ${s}s (${o.jobs} job${o.jobs === 1 ? '' : 's'})`);
  console.log(`faults: ${Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`${o.seeds.length - failed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 2;
});
