// Review reproduction (REVIEW.md, bug 5): a torn tail is only recognised in the *last*
// segment file, but a segment file is created (roll) while the batch is gathered, before the
// frames in front of it are written. A crash in the middle of writing the last frame of
// segment N, once segment N+1 exists, leaves a torn frame in a segment that is not the last:
// recovery then refuses to open with WAL_CORRUPT although nothing acknowledged is damaged.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Wal, WalError } from '../../src/storage/wal.js';
import { big, cleanup, crashCopy, patchFs, range, segmentFiles, texts, tmpdir } from './review-helpers.js';

after(cleanup);

test('kill -9 while a batch is being written, after the next batch rolled to a new segment: recovery cuts the torn tail', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192 });
  await wal.append([{ group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } }]);
  // The next write stops half-way (a fatal signal during a multi-page write returns short) and the process dies.
  let halfWritten!: () => void;
  const died = new Promise<void>((r) => { halfWritten = r; });
  const restore = patchFs('write', (orig) => ((fd: number, buf: Buffer, off: number, len: number, pos: number, _cb: unknown) => {
    (orig as (...a: unknown[]) => void)(fd, buf, off, Math.floor(len / 2), pos, () => halfWritten());
  }) as never);
  try {
    void wal.append([{ group: 1, entries: [big(4, 1, 4000)] }]).catch(() => {}); // batch 1: segment 1
    void wal.append([{ group: 1, entries: [big(5, 1, 6000)] }]).catch(() => {}); // gathered meanwhile: rolls, creates segment 2
    assert.equal(segmentFiles(dir).length, 2);
    await died;
  } finally {
    restore();
  }
  const atCrash = crashCopy(dir);
  assert.equal(fs.statSync(path.join(atCrash, segmentFiles(atCrash)[1]!)).size, 0, 'segment 2 is empty');
  const again = Wal.open({ dir: atCrash, segmentBytes: 8192 }); // WAL_CORRUPT: "corrupt log record at segment-…1.wal:… (truncated frame)"
  try {
    assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
  } finally {
    await again.close();
  }
});

test('a batch that spans a roll syncs the older segment before writing the newer one, so a torn older frame with an intact newer one is corruption', async () => {
  // The writer fdatasyncs segment 1 before it writes the batch's frame into segment 2. A crash
  // image with segment 1's frame torn and segment 2's intact therefore means synced data was
  // lost: recovery must say so (file and offset), never cut acknowledged frames silently.
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192 });
  await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
  await wal.append([{ group: 1, entries: [big(4, 1, 4000), big(5, 1, 6000)] }]);
  await wal.close();
  const [s1] = segmentFiles(dir);
  const f1 = path.join(dir, s1!);
  fs.truncateSync(f1, fs.statSync(f1).size - 1000);
  assert.throws(() => Wal.open({ dir, segmentBytes: 8192 }), (e: unknown) => e instanceof WalError && e.code === 'WAL_CORRUPT' && e.file === f1);
});
