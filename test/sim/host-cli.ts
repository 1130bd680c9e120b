// The host simulator's command line (host-sim.ts):
//   node dist/test/sim/host-cli.js --seeds N [--seed-start B] [--jobs J] [--steps K] [--sync-force on|off]
//   node dist/test/sim/host-cli.js --seed S [--trace]          (replay one seed, with its trace)
// Prints one line per failing seed with the command that replays it, then ops checked, faults
// injected by kind, and the time taken; exits 1 if any seed failed.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { runHostSeed, type HostSimResult } from './host-sim.js';
import { hostSimDefaults, type HostSimOptions } from './host-profile.js';

const USAGE = 'usage: host-cli --seeds N [--seed-start B] [--jobs J] [--steps K] [--nodes N] [--groups G] [--sync-force on|off] | --seed S [--trace]';

function options(): { seeds: number[]; base: Omit<HostSimOptions, 'seed'>; jobs: number; replay: boolean } {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' }, 'seed-start': { type: 'string' }, seed: { type: 'string' }, jobs: { type: 'string' },
      steps: { type: 'string' }, nodes: { type: 'string' }, groups: { type: 'string' }, 'sync-force': { type: 'string' },
      trace: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, dflt: number, min = 1): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} needs an integer ≥ ${min}, got ${v}\n${USAGE}`);
    return n;
  };
  const sf = values['sync-force'];
  if (sf !== undefined && sf !== 'on' && sf !== 'off') throw new Error(`--sync-force is on or off, got ${sf}\n${USAGE}`);
  const base: Omit<HostSimOptions, 'seed'> = {
    ...hostSimDefaults,
    steps: int('steps', values.steps, hostSimDefaults.steps),
    nodes: int('nodes', values.nodes, hostSimDefaults.nodes),
    groups: int('groups', values.groups, hostSimDefaults.groups),
    syncForce: sf === undefined ? null : sf === 'on',
    trace: values.trace === true,
  };
  if (values.seed !== undefined) return { seeds: [int('seed', values.seed, 1, 0)], base, jobs: 1, replay: true };
  const count = int('seeds', values.seeds, 100);
  const start = int('seed-start', values['seed-start'], 1, 0);
  return { seeds: Array.from({ length: count }, (_, i) => start + i), base, jobs: int('jobs', values.jobs, availableParallelism()), replay: false };
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
  const o = options();
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
      if (!o.replay) console.log(`  replay: node dist/test/sim/host-cli.js --seed ${r.seed} --trace`);
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
