// HeapTrim (src/shard/heap-trim.ts): a shard that has gone quiet after its heap grew collects
// twice, a quiet stretch apart; a busy one, or one whose heap did not grow, never does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapTrim, v8HeapTrim } from '../../src/shard/heap-trim.js';

const MiB = 1 << 20;

function fake(used: { bytes: number }, log: number[]): HeapTrim {
  return new HeapTrim({
    collect: () => {
      log.push(used.bytes);
      used.bytes = 10 * MiB; // what a collection leaves
    },
    usedBytes: () => used.bytes,
    quietTicksMin: 3,
    growthBytesMin: 16 * MiB,
  });
}

test('a quiet shard whose heap grew collects after quietTicksMin ticks, and once more a quiet stretch later', () => {
  const used = { bytes: 10 * MiB };
  const log: number[] = [];
  const t = fake(used, log);
  used.bytes = 100 * MiB; // start-up
  t.tick(true);
  t.tick(true);
  assert.deepEqual(log, []);
  t.tick(true);
  assert.deepEqual(log, [100 * MiB]);
  t.tick(true);
  t.tick(true);
  assert.equal(t.collections, 1);
  t.tick(true);
  assert.equal(t.collections, 2, 'the second collection, which hands the emptied pages back');
  for (let i = 0; i < 20; i++) t.tick(true);
  assert.equal(t.collections, 2, 'nothing grew since: no more');
});

test('a tick with a group awake starts the quiet stretch over', () => {
  const used = { bytes: 10 * MiB };
  const log: number[] = [];
  const t = fake(used, log);
  used.bytes = 100 * MiB;
  for (let i = 0; i < 10; i++) {
    t.tick(true);
    t.tick(true);
    t.tick(false);
  }
  assert.equal(t.collections, 0);
});

test('growth below growthBytesMin does not collect', () => {
  const used = { bytes: 10 * MiB };
  const log: number[] = [];
  const t = fake(used, log);
  used.bytes = 25 * MiB;
  for (let i = 0; i < 10; i++) t.tick(true);
  assert.equal(t.collections, 0);
  used.bytes = 27 * MiB;
  for (let i = 0; i < 3; i++) t.tick(true);
  assert.equal(t.collections, 1);
});

test('v8HeapTrim runs a real full collection: dead objects of the old generation go', () => {
  let junk: object[] | null = [];
  const t = v8HeapTrim({ quietTicksMin: 1, growthBytesMin: 1 });
  for (let i = 0; i < 300_000; i++) junk.push({ i, s: `x${i}` });
  junk = null;
  const before = process.memoryUsage().heapUsed;
  t.tick(true);
  const after = process.memoryUsage().heapUsed;
  assert.equal(t.collections, 1);
  assert.ok(after < before - 5 * MiB, `heap used ${before} → ${after}`);
});
