// The shared write-ahead log on real files with real fsync: appends, recovery, truncation by a
// new leader, compaction and segment deletion, torn tails and corruption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { END_MARK_BYTES } from '../../src/storage/wal-format.js';
import { Wal, WalError } from '../../src/storage/wal.js';
import { after } from 'node:test';
import { cleanup, conf, ent, inside, range, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

test('entries and hard states of many groups survive a reopen', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  await wal.append([
    { group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 2 } },
    { group: 2, entries: range(1, 1, 4), hardState: { term: 4, vote: 0, commit: 0 } },
  ]);
  await wal.append([{ group: 1, entries: range(4, 5, 1) }]);
  const before1 = texts(wal, 1);
  await wal.close();
  const again = Wal.open({ dir });
  assert.deepEqual(again.groupIds(), [1, 2]);
  assert.deepEqual(texts(again, 1), before1);
  assert.equal(again.group(1).lastIndex(), 5);
  assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 2 });
  assert.deepEqual(texts(again, 2), ['1/4:e1t4']);
  assert.equal(again.group(2).term(1), 4);
  await again.close();
});

test('appends made while a batch syncs are gathered into the next batch (group commit)', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  const all: Promise<void>[] = [];
  for (let i = 1; i <= 200; i++) all.push(wal.append([{ group: i % 7, entries: [ent(Math.floor(i / 7) + 1, 1)] }]));
  await Promise.all(all);
  assert.ok(wal.stats.fsyncs < 200, `200 appends took ${wal.stats.fsyncs} fsyncs`);
  assert.ok(wal.stats.fsyncs >= 1);
  await wal.close();
});

test('a new leader\'s entries replace a conflicting suffix, by record, across a reopen', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  await wal.append([{ group: 9, entries: range(1, 6, 1) }]);
  await wal.append([{ group: 9, entries: range(4, 5, 2) }]);
  assert.deepEqual(texts(wal, 9).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1', '4/2', '5/2']);
  await wal.close();
  const again = Wal.open({ dir });
  assert.deepEqual(texts(again, 9).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1', '4/2', '5/2']);
  await again.close();
});

test('entries read back from the file once evicted from the cache', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, cacheBytesMax: 64 });
  await wal.append([{ group: 1, entries: range(1, 50, 3) }]);
  assert.ok(wal.cachedBytes <= 64, `cache holds ${wal.cachedBytes} bytes`);
  assert.equal(texts(wal, 1)[0], '1/3:e1t3');
  assert.equal(texts(wal, 1)[49], '50/3:e50t3');
  await wal.close();
});

test('compaction after a snapshot frees segments; an idle group is rewritten rather than pinning disk', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192 });
  // Group 2 writes once and then idles; group 1 keeps writing and compacting.
  await wal.append([{ group: 2, entries: range(1, 2, 1), hardState: { term: 1, vote: 2, commit: 2 } }]);
  let next = 1;
  for (let round = 0; round < 60; round++) {
    await wal.append([{ group: 1, entries: range(next, next + 19, 1).map((e) => ({ ...e, data: new Uint8Array(100) })), hardState: { term: 1, vote: 1, commit: next + 19 } }]);
    next += 20;
    await wal.recordSnapshot(1, { index: next - 5, term: 1, conf });
    await wal.compact(1, next - 5);
  }
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.wal'));
  assert.ok(wal.stats.segments > 10, `only ${wal.stats.segments} segments were used`);
  assert.ok(files.length <= 4, `${files.length} segment files remain: ${files.join(', ')}`);
  assert.ok(wal.stats.groupsRewritten > 0);
  await wal.close();
  const again = Wal.open({ dir, segmentBytes: 8192 });
  assert.deepEqual(again.group(2).hardState, { term: 1, vote: 2, commit: 2 });
  assert.deepEqual(texts(again, 2), ['1/1:e1t1', '2/1:e2t1']);
  assert.equal(again.group(1).firstIndex(), next - 4);
  assert.equal(again.group(1).lastIndex(), next - 1);
  assert.equal(again.group(1).snapshot().meta.index, next - 5);
  assert.deepEqual(again.group(1).snapshot().meta.conf, conf);
  await again.close();
});

test('an installed snapshot restarts the group\'s log after it', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  await wal.append([{ group: 3, entries: range(1, 4, 1) }]);
  await wal.append([{ group: 3, snapshot: { index: 10, term: 2, conf }, entries: [ent(11, 2)], hardState: { term: 2, vote: 0, commit: 10 } }]);
  await wal.close();
  const again = Wal.open({ dir });
  const g = again.group(3);
  assert.equal(g.firstIndex(), 11);
  assert.equal(g.lastIndex(), 11);
  assert.equal(g.term(10), 2);
  assert.equal(g.snapshot().meta.index, 10);
  await again.close();
});

/** A log holding two batches of group 1 (entries 1..3, then 4..6) in one segment file. */
async function twoBatches(): Promise<{ dir: string; file: string }> {
  const dir = tmpdir();
  const wal = Wal.open({ dir, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
  await wal.append([{ group: 1, entries: range(4, 6, 1) }]);
  await wal.close();
  const file = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.wal'))!);
  return { dir, file };
}

test('a torn tail is cut off; what came before it survives', async () => {
  const { dir, file } = await twoBatches();
  const size = fs.statSync(file).size;
  // Into the last frame (the file ends with the end mark after it).
  fs.truncateSync(file, size - END_MARK_BYTES - 7);
  const again = Wal.open({ dir });
  assert.equal(again.group(1).lastIndex(), 3);
  await again.append([{ group: 1, entries: range(4, 4, 2) }]);
  await again.close();
  const third = Wal.open({ dir });
  assert.deepEqual(texts(third, 1).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1', '4/2']);
  await third.close();
});

test('a flipped bit that is not at the tail stops recovery with the file and offset', async () => {
  const { dir, file } = await twoBatches();
  const bytes = fs.readFileSync(file);
  bytes[40] = bytes[40]! ^ 0x10; // inside the first frame
  fs.writeFileSync(file, bytes);
  assert.throws(() => Wal.open({ dir }), (e: unknown) => {
    assert.ok(e instanceof WalError);
    assert.equal(e.code, 'WAL_CORRUPT');
    assert.equal(e.file, file);
    assert.equal(e.offset, 0);
    assert.match(e.message, /segment-0+1\.wal:0/);
    return true;
  });
});

test('a failed write stops the log from acknowledging and leaves it recoverable', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  await wal.append([{ group: 1, entries: range(1, 2, 1) }]);
  // Make the next write fail the way a full disk would: the segment's descriptor goes bad.
  const seg = inside(wal).files.current;
  fs.closeSync(seg.fd);
  seg.fd = fs.openSync(path.join(dir, 'readonly'), 'w+');
  fs.closeSync(seg.fd);
  await assert.rejects(wal.append([{ group: 1, entries: range(3, 3, 1) }]), (e: unknown) => e instanceof WalError && e.code === 'WAL_FAILED');
  assert.equal(wal.stats.failures, 1);
  await assert.rejects(wal.append([{ group: 1, entries: range(3, 3, 1) }]), (e: unknown) => e instanceof WalError && e.code === 'WAL_FAILED');
  const again = Wal.open({ dir });
  assert.equal(again.group(1).lastIndex(), 2);
  await again.close();
});
