// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 10): rewriteGroup writes the group's Snapshot marker
// (reset 0) before its Compact marker and entries. On recovery, once the older segments are
// gone, placeSnapshot's "recovery only" branch (meta.index > lastIdx) restarts the log after the
// snapshot, the Compact marker below it is ignored, and the rewritten entries up to the
// snapshot index are skipped: entries the host kept on purpose (compact(i - k) for laggards)
// disappear after a restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, conf, range, segmentFiles, tmpdir } from './wal-helpers.js';

after(cleanup);

test('a rewritten group keeps the entries between its compaction point and its snapshot', async () => {
  const dir = tmpdir();
  const opts = { dir, segmentBytes: 4096 };
  const wal = Wal.open(opts);
  await wal.append([{ group: 1, entries: range(1, 10, 1), hardState: { term: 1, vote: 1, commit: 10 } }]);
  await wal.recordSnapshot(1, { index: 8, term: 1, conf });
  await wal.compact(1, 5); // keep 6..10 for followers that lag a little
  await wal.append([{ group: 2, entries: [big(1, 1, 3000)] }]);
  await wal.append([{ group: 2, entries: [big(2, 1, 3000)] }]); // segment 2
  await wal.recordSnapshot(2, { index: 2, term: 1, conf });
  await wal.compact(2, 2);
  await wal.append([{ group: 2, entries: [big(3, 1, 3000)] }]); // segment 3: group 1 rewritten, segment 1 deleted
  assert.equal(wal.stats.groupsRewritten, 1);
  assert.ok(!segmentFiles(dir).includes('segment-00000000000000000001.wal'));
  assert.equal(wal.group(1).firstIndex(), 6);
  await wal.close();
  const again = Wal.open(opts);
  try {
    assert.equal(again.group(1).firstIndex(), 6, 'entries 6..8 are still there after a restart');
    assert.equal(again.group(1).lastIndex(), 10);
  } finally {
    await again.close();
  }
});
