// The simulator's own parts that every run rests on: the seeded PRNG (a seed must replay a run)
// and the event queue (events in time order, ties in scheduling order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from './prng.js';
import { EventQueue } from './event-queue.js';

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

test('the event queue runs events in time order, ties in scheduling order, and refuses the past', () => {
  const q = new EventQueue(1000);
  const seen: string[] = [];
  q.at(5, () => seen.push('a5'));
  q.at(1, () => seen.push('b1'));
  q.at(5, () => seen.push('c5'));
  q.at(3, () => {
    seen.push('d3');
    q.after(2, () => seen.push('e5'));
  });
  while (q.peekTime() <= 10) q.step();
  assert.deepEqual(seen, ['b1', 'd3', 'a5', 'c5', 'e5']);
  assert.equal(q.now, 5);
  assert.equal(q.eventsRun, 5);
  assert.equal(q.step(), false);
  assert.throws(() => q.at(4, () => {}), /in the past/);
  const small = new EventQueue(2);
  small.at(1, () => {});
  small.at(2, () => {});
  assert.throws(() => small.at(3, () => {}), /over its bound/);
});
