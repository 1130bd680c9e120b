// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 9): after a leader's snapshot is installed (reset at i,
// term t) the only record of "the log starts after (i, t)" is that Snapshot record. Once the
// host records a newer snapshot of its own, `snapSeg` moves on, nothing pins the reset record's
// segment, and it is deleted. On reopen the entries after i look like a gap: prevIndex = i with
// prevTerm = 0, which `checkRecovered` accepts (the newer snapshot is above i), so term(i) is
// invented as 0 and the Raft core sends App(index i, logTerm 0) that no follower can match.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, conf, range, segmentFiles, tmpdir } from './wal-helpers.js';

after(cleanup);

test('term(firstIndex - 1) survives the deletion of the installed-snapshot record', async () => {
  const dir = tmpdir();
  const opts = { dir, segmentBytes: 4096 };
  const wal = Wal.open(opts);
  await wal.append([{ group: 1, snapshot: { index: 10, term: 3, conf }, hardState: { term: 3, vote: 0, commit: 10 } }]);
  await wal.append([{ group: 2, entries: [big(1, 1, 3000)] }]);
  await wal.append([{ group: 2, entries: [big(2, 1, 3000)] }]); // segment 2
  await wal.append([{ group: 1, entries: range(11, 12, 3), hardState: { term: 3, vote: 0, commit: 12 } }]);
  await wal.recordSnapshot(1, { index: 12, term: 3, conf }); // the host snapshots; it keeps entries 11..12 for laggards
  await wal.recordSnapshot(2, { index: 2, term: 1, conf });
  await wal.compact(2, 2); // group 2 no longer needs segment 1; group 1 still does (its log starts there)
  assert.equal(wal.group(1).term(10), 3);
  assert.ok(segmentFiles(dir).length >= 1);
  await wal.close();
  const again = Wal.open(opts);
  try {
    const g = again.group(1);
    assert.equal(g.firstIndex(), 11);
    assert.equal(g.term(10), 3, 'term of the entry before the first is what it was, not invented');
  } finally {
    await again.close();
  }
});
