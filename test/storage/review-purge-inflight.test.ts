// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 4): purge closes the descriptor of a segment that the
// batch in flight has written to but not yet fdatasync'ed; that fdatasync then fails with
// EBADF (or syncs whatever file reused the number) and the whole log stops with WAL_FAILED.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, conf, ent, hold, tmpdir } from './wal-helpers.js';

after(cleanup);

test('compacting while a batch that spans a roll is syncing does not fail the log', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 4096 });
  await wal.append([{ group: 1, entries: [big(1, 1, 1500), big(2, 1, 1500)] }]);
  const syncs = hold('fdatasync');
  let batch: Promise<void>;
  try {
    // One batch: entry 3 still fits segment 1, entry 4 rolls to segment 2.
    batch = wal.append([{ group: 1, entries: [ent(3, 1), big(4, 1, 3000)], hardState: { term: 1, vote: 1, commit: 4 } }]);
    while (syncs.held() === 0) await new Promise((r) => setImmediate(r)); // both frames written, now syncing
    // Meanwhile the host snapshots at 3 and compacts: segment 1 is no longer needed ...
    const more = Promise.allSettled([wal.recordSnapshot(1, { index: 3, term: 1, conf }), wal.compact(1, 3)]);
    syncs.release();
    await batch; // ... but the batch in flight still has to fdatasync it
    await more;
  } finally {
    syncs.restore();
  }
  assert.equal(wal.error, null);
  assert.equal(wal.stats.failures, 0);
  await wal.close();
});
