// The deterministic cluster simulator as a test: many short seeds must pass every safety,
// liveness and linearizability check; a seed must replay identically; and deliberately broken
// hosts or networks must be caught, so that the checks are known not to be vacuous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSeeds, type SeedResult } from '../sim/pool.js';
import { runSeed } from '../sim/simulation.js';
import { defaultOptions, type BugKind } from '../sim/profile.js';
import { Prng } from '../sim/prng.js';
import { EventQueue } from '../sim/event-queue.js';

const SHORT_STEPS = 2500;
const SEEDS = Array.from({ length: 250 }, (_, i) => i + 1);

function failures(results: SeedResult[]): SeedResult[] {
  return results.filter((r) => r.outcome === 'failed' || r.outcome === 'violation').sort((a, b) => a.seed - b.seed);
}

test('the PRNG is deterministic, uniform enough, and forks independent streams', () => {
  const a = new Prng(42);
  const b = new Prng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.u32(), b.u32());
  const r = new Prng(7);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    counts[Math.floor(x * 10)]!++;
  }
  for (const c of counts) assert.ok(c > 9_500 && c < 10_500, `bucket count ${c}`);
  for (let i = 0; i < 1000; i++) {
    const v = r.int(3, 5);
    assert.ok(v >= 3 && v <= 5 && Number.isInteger(v));
  }
  const parent = new Prng(1);
  const f1 = parent.fork();
  const f2 = parent.fork();
  assert.notEqual(f1.u32(), f2.u32());
  assert.notEqual(new Prng(1).u32(), new Prng(2).u32());
});

test('the event queue runs events in time order, ties in scheduling order', () => {
  const q = new EventQueue(1000);
  const seen: string[] = [];
  q.at(5, () => seen.push('a5'));
  q.at(1, () => seen.push('b1'));
  q.at(5, () => seen.push('c5'));
  q.at(3, () => {
    seen.push('d3');
    q.after(2, () => seen.push('e5'));
  });
  q.runUntil(10);
  assert.deepEqual(seen, ['b1', 'd3', 'a5', 'c5', 'e5']);
  assert.equal(q.now, 10);
  assert.throws(() => q.at(9, () => {}));
});

test(`${SEEDS.length} short seeds pass every check`, async () => {
  const results = await runSeeds({ seeds: SEEDS, base: { steps: SHORT_STEPS } });
  assert.equal(results.length, SEEDS.length);
  const bad = failures(results);
  const ops = results.reduce((n, r) => n + r.ops, 0);
  assert.ok(ops > SEEDS.length * 50, `only ${ops} client ops in ${SEEDS.length} seeds`);
  assert.deepEqual(
    bad.map((r) => r.failure!.split('\n')[0]),
    [],
    `${bad.length} seed(s) failed; replay with npm run sim -- --seed S --steps ${SHORT_STEPS} --trace`,
  );
});

test('a seed replays to an identical trace', () => {
  const opts = { ...defaultOptions, seed: 12345, steps: 3000 };
  const a = runSeed(opts);
  const b = runSeed(opts);
  assert.equal(a.failure, b.failure);
  assert.notEqual(a.traceHash, '');
  assert.equal(a.traceHash, b.traceHash);
  assert.equal(a.ops, b.ops);
  assert.equal(a.events, b.events);
  const c = runSeed({ ...opts, seed: 12346 });
  assert.notEqual(c.traceHash, a.traceHash, 'another seed gives another run');
});

// Each bug must be caught by some seed in a small range, and the failure must name its seed.
const BUGS: { bug: BugKind; caughtBy: string; pattern: RegExp }[] = [
  { bug: 'forge-ack', caughtBy: 'safety invariants', pattern: /leader completeness|state-machine safety|log matching|committed entry changed|election safety/ },
  { bug: 'stale-read', caughtBy: 'the linearizability checker', pattern: /linearizability violation/ },
  { bug: 'apply-twice', caughtBy: 'the final state comparison', pattern: /hold different states/ },
];

for (const { bug, caughtBy, pattern } of BUGS) {
  test(`a deliberate bug is caught (${bug}, by ${caughtBy})`, async () => {
    const seeds = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const results = await runSeeds({ seeds, base: { steps: 3000, bug } });
    const bad = failures(results);
    assert.ok(bad.length > 0, `bug ${bug} went unnoticed in seeds ${seeds[0]}..${seeds[seeds.length - 1]}`);
    for (const r of bad) assert.match(r.failure!, new RegExp(`seed ${r.seed}\\b`));
    assert.ok(bad.some((r) => pattern.test(r.failure!)), `bug ${bug} was never caught by ${caughtBy}: ${bad.map((r) => r.failure!.split('\n')[0]).join(' | ')}`);
  });
}

// Seeds that once exposed core bugs in longer runs (test/sim/README.md, "What the core simulator found"), kept at their full
// length as regression tests: F1 snapshot ahead of the durable commit (31), F2 a removed leader
// stranding the group (429, 1073, 3155), F3 dropped appends never resent (619, 1993, 2041,
// 3329, 3996).
const REGRESSION_SEEDS = [31, 429, 619, 1073, 1993, 2041, 3155, 3329, 3996];

test('seeds that once found core bugs pass at full length', async () => {
  const results = await runSeeds({ seeds: REGRESSION_SEEDS, base: {} });
  const bad = failures(results);
  assert.deepEqual(bad.map((r) => r.failure!.split('\n')[0]), [], 'replay with npm run sim -- --seed S --trace');
});
