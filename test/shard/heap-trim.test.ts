// HeapTrim (src/shard/heap-trim.ts): a shard that has gone quiet after its heap grew collects
// fully twice, a quiet stretch apart, then its young generation once a tick for a few ticks; a
// busy one, or one whose heap did not grow, never does.
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
    collectYoung: () => log.push(-1),
    usedBytes: () => used.bytes,
    quietTicksMin: 3,
    growthBytesMin: 16 * MiB,
    youngCollections: 2,
  });
}

test('a quiet shard whose heap grew collects after quietTicksMin ticks, once more a quiet stretch later, then its young generation', () => {
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
  t.tick(false);
  t.tick(true);
  t.tick(true);
  assert.deepEqual(log, [100 * MiB, 10 * MiB, -1, -1], 'then the young generation, a quiet tick at a time');
  for (let i = 0; i < 20; i++) t.tick(true);
  assert.equal(t.collections, 2, 'nothing grew since: no more');
  assert.equal(t.collectionsYoung, 2);
  used.bytes = 40 * MiB;
  for (let i = 0; i < 3; i++) t.tick(true);
  assert.equal(t.collections, 3, 'a later burst is trimmed too');
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

test('v8HeapTrim runs real collections: dead objects of the old generation go', () => {
  let junk: object[] | null = [];
  const t = v8HeapTrim({ quietTicksMin: 1, growthBytesMin: 1, youngCollections: 1 });
  for (let i = 0; i < 300_000; i++) junk.push({ i, s: `x${i}` });
  junk = null;
  const before = process.memoryUsage().heapUsed;
  t.tick(true);
  const after = process.memoryUsage().heapUsed;
  assert.equal(t.collections, 1);
  assert.ok(after < before - 5 * MiB, `heap used ${before} → ${after}`);
  t.tick(true);
  t.tick(true);
  assert.equal(t.collections, 2);
  assert.equal(t.collectionsYoung, 1);
});
