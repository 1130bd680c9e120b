// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 6): the entry cache evicts payloads of entries whose frame
// is not written yet (same batch, or the batch in flight); the only copy is then the unwritten
// frame buffer. A rewrite (on roll) reads such entries back with fs.readSync, gets a short read,
// and append() throws synchronously in the middle of laying out a turn (the log is not even
// marked failed; half of the turn stays queued).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, hold, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

test('a rewrite on roll does not read entries whose frame is not written yet', async () => {
  const dir = tmpdir();
  const opts = { dir, segmentBytes: 16384, cacheBytesMax: 8192 };
  const wal = Wal.open(opts);
  await wal.append([{ group: 1, entries: range(1, 2, 1) }]); // group 1 holds segment 1 back
  await wal.append([{ group: 2, entries: [big(1, 1, 5000), big(2, 1, 5000), big(3, 1, 5000)] }]);
  await wal.append([{ group: 2, entries: [big(4, 1, 5000)] }]); // segment 2
  assert.equal(segmentFiles(dir).length, 2);
  const writes = hold('write'); // the disk is busy: nothing below is written yet
  const done: Promise<void>[] = [];
  let threw: unknown = null;
  try {
    // Group 1's new entries go to segment 2; the oldest of them are evicted at once (budget 8 KiB).
    done.push(wal.append([{ group: 1, entries: Array.from({ length: 6 }, (_, k) => big(3 + k, 1, 1500)) }]));
    // The next turn rolls to segment 3, which rewrites group 1 — reading entries 3.. from segment 2.
    try { done.push(wal.append([{ group: 2, entries: [big(5, 1, 6000)] }])); } catch (e) { threw = e; }
  } finally {
    writes.restore();
    await Promise.allSettled(done);
  }
  await wal.close();
  assert.equal(threw, null, `append threw: ${String(threw)}`);
  const again = Wal.open(opts);
  try {
    assert.equal(again.group(1).lastIndex(), 8);
    assert.equal(again.group(2).lastIndex(), 5);
  } finally {
    await again.close();
  }
});
