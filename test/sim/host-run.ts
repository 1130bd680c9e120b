// Runs seeds of the host simulator in this thread: node dist/test/sim/host-run.js FIRST [COUNT] [--trace]
import { runHostSeed } from './host-sim.js';
import { hostSimDefaults } from './host-profile.js';

const first = Number(process.argv[2] ?? 1);
const count = Number(process.argv[3] ?? 1);
const trace = process.argv.includes('--trace');
let failed = 0;
for (let seed = first; seed < first + count; seed++) {
  const t0 = performance.now();
  const r = await runHostSeed({ ...hostSimDefaults, seed, trace });
  const ms = performance.now() - t0;
  console.log(`seed ${seed}: ${r.outcome} ${r.ops} ops (${r.opsIndeterminate} indeterminate) ${r.events} events ${ms.toFixed(0)}ms trace ${r.traceHash} ${JSON.stringify(r.stats)}`);
  if (r.outcome !== "ok" || process.argv.includes("--show")) {
    failed++;
    console.log(`  ${r.failure}\n  profile: ${r.profile}`);
    if (trace) for (const l of r.trace.slice(-80)) console.log(`  ${l}`);
  }
}
console.log(`${count - failed} passed, ${failed} failed`);
