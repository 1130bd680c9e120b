// The host simulator in CI: a batch of seeds through the production shard, WAL, snapshot store
// and codecs (host-sim.ts), and a replay that must give the same trace. A failure prints the
// seed and the command that replays it. More seeds: npm run sim -- --seeds 1000.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runHostSeed } from './host-sim.js';
import { hostSimDefaults } from './host-profile.js';

const SEEDS = Number(process.env.FLOTILLA_HOST_SIM_SEEDS ?? 120);

test(`${SEEDS} seeds of the host simulator: safety, liveness after the heal, equal states, linearizable histories`, async (t) => {
  const failures: string[] = [];
  let ops = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await runHostSeed({ ...hostSimDefaults, seed });
    ops += r.ops;
    if (r.outcome === 'failed' || r.outcome === 'violation') {
      failures.push(`${r.failure ?? ''}\n  replay: npm run sim -- --seed ${seed}`);
    }
  }
  t.diagnostic(`${SEEDS} seeds, ${ops} ops checked`);
  assert.deepEqual(failures, []);
});

test('syncForce off: a node whose machine crash took committed entries (its unsynced tail) is repaired, and nothing acknowledged is lost', async () => {
  // The first seeds from 1 that show such a loss: found within a bound, or the faults no longer reach it.
  let repaired = 0;
  for (let seed = 1; seed <= 40 && repaired === 0; seed++) {
    const r = await runHostSeed({ ...hostSimDefaults, seed, syncForce: false });
    assert.ok(r.outcome === 'ok' || r.outcome === 'undecided', `${r.failure ?? ''}\n  replay: npm run sim -- --seed ${seed} --sync-force off`);
    repaired += r.stats.tailsRepaired;
  }
  assert.ok(repaired > 0, 'no syncForce-off seed of 1..40 lost committed entries in a machine crash and was repaired');
});

test('a seed replays exactly: the same trace hash twice', async () => {
  const a = await runHostSeed({ ...hostSimDefaults, seed: 7 });
  const b = await runHostSeed({ ...hostSimDefaults, seed: 7 });
  assert.equal(a.outcome, 'ok', a.failure ?? '');
  assert.equal(a.traceHash, b.traceHash);
  assert.equal(a.events, b.events);
  assert.ok(a.ops > 0);
});

// The deliberate bug that can be built into a run (host-profile.ts `bug`): reads served from any
// replica's own state. Some seed in a small range must fail on it, naming its seed. The bugs
// in production code are in test/sim/mutations (run by hand: a build per bug).
test('a deliberate bug is caught: stale reads, by the linearizability checker', async () => {
  const caught: string[] = [];
  for (let seed = 1; seed <= 30 && caught.length === 0; seed++) {
    const r = await runHostSeed({ ...hostSimDefaults, seed, bug: 'stale-read' });
    if (r.outcome === 'violation') {
      assert.match(r.failure ?? '', new RegExp(`^seed ${seed}: linearizability violation`));
      caught.push(r.failure!);
    }
  }
  assert.ok(caught.length > 0, 'stale reads went unnoticed in seeds 1..30');
});

test('membership changes run through the admin path and take effect', async () => {
  let asked = 0;
  let done = 0;
  for (let seed = 1; seed <= 10; seed++) {
    const r = await runHostSeed({ ...hostSimDefaults, seed });
    asked += r.stats.memberChangesAsked;
    done += r.stats.memberChangesDone;
  }
  assert.ok(done > 0 && done <= asked, `${done} of ${asked} membership changes in effect in seeds 1..10`);
});

test('a node joins a group it did not found with an empty replica (joinGroup), is added as a learner, catches up and is promoted', async () => {
  // Seeds with a newcomer (host-profile.ts): the group is founded by addGroup on the other machines.
  let voters = 0;
  let joins = 0;
  for (let seed = 1; seed <= 20 && voters === 0; seed++) {
    const r = await runHostSeed({ ...hostSimDefaults, seed });
    assert.ok(r.outcome === 'ok' || r.outcome === 'undecided', `${r.failure ?? ''}\n  replay: npm run sim -- --seed ${seed}`);
    joins += r.stats.joinsAsked;
    voters += r.stats.newcomerVoters;
  }
  assert.ok(joins > 0 && voters > 0, `in seeds 1..20, ${joins} joins asked and ${voters} newcomers ended as voters`);
});
