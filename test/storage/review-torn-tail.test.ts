// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 5): a torn tail is only recognised in the *last*
// segment file, but a segment file is created (roll) while the batch is gathered, before the
// frames in front of it are written. A crash in the middle of writing the last frame of
// segment N, once segment N+1 exists, leaves a torn frame in a segment that is not the last:
// recovery then refuses to open with WAL_CORRUPT although nothing acknowledged is damaged.
// (Written with `reserveBytes: 0`: a file's size is where its frames end, and the tests tear by it.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Wal, WalError } from '../../src/storage/wal.js';
import { big, cleanup, crashCopy, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

test('a torn last frame followed by an empty newer segment (power loss while a batch synced and the next one rolled) is cut, not corruption', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } }]);
  const [s1] = segmentFiles(dir);
  const before = fs.statSync(path.join(dir, s1!)).size;
  await wal.append([{ group: 1, entries: [big(4, 1, 4000)] }]); // batch 1: segment 1
  const after = fs.statSync(path.join(dir, s1!)).size;
  await wal.append([{ group: 1, entries: [big(5, 1, 6000)] }]); // rolls: segment 2
  await wal.close();
  // The crash image: batch 1's frame half on disk, segment 2 created but nothing in it.
  const atCrash = crashCopy(dir);
  const files = segmentFiles(atCrash);
  assert.equal(files.length, 2);
  fs.truncateSync(path.join(atCrash, files[0]!), before + Math.floor((after - before) / 2));
  fs.truncateSync(path.join(atCrash, files[1]!), 0);
  const again = Wal.open({ dir: atCrash, segmentBytes: 8192 });
  try {
    assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
    assert.deepEqual(segmentFiles(atCrash), [files[0]!], 'the empty newer segment is removed');
  } finally {
    await again.close();
  }
});

test('a batch that spans a roll syncs the older segment before writing the newer one, so a torn older frame with an intact newer one is corruption', async () => {
  // The writer fdatasyncs segment 1 before it writes the batch's frame into segment 2. A crash
  // image with segment 1's frame torn and segment 2's intact therefore means synced data was
  // lost: recovery must say so (file and offset), never cut acknowledged frames silently.
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
  await wal.append([{ group: 1, entries: [big(4, 1, 4000), big(5, 1, 6000)] }]);
  await wal.close();
  const [s1] = segmentFiles(dir);
  const f1 = path.join(dir, s1!);
  fs.truncateSync(f1, fs.statSync(f1).size - 1000);
  assert.throws(() => Wal.open({ dir, segmentBytes: 8192 }), (e: unknown) => e instanceof WalError && e.code === 'WAL_CORRUPT' && e.file === f1);
});
