// Recycled segments (wal.ts, "Spares"): a deleted segment's file is kept and reused for a later
// segment, so that syncs write into a file that does not grow. Its old frames stay behind the
// new ones until overwritten; recovery must tell them from both live frames and torn ones.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { END_MARK_BYTES } from '../../src/storage/wal-format.js';
import { Wal, WAL_SPARES_MAX } from '../../src/storage/wal.js';
import { big, cleanup, conf, crashCopy, inside, segmentFiles, tmpdir } from './wal-helpers.js';

after(cleanup);

const SEGMENT_BYTES = 16 << 10;
const opts = (dir: string) => ({ dir, segmentBytes: SEGMENT_BYTES });

/** One group written in batches of ~2 KiB entries, snapshotted and compacted as it goes, so old segments die. */
async function churn(wal: Wal, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) {
    await wal.append([{ group: 1, entries: [big(i, 1, 2000)], hardState: { term: 1, vote: 1, commit: i } }]);
    if (i % 4 === 0) {
      await wal.recordSnapshot(1, { index: i - 1, term: 1, conf });
      await wal.compact(1, i - 1);
    }
  }
}

function spareFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith('spare-'));
}

test('deleted segments are kept as spares and reused, at most WAL_SPARES_MAX at a time', async () => {
  const dir = tmpdir();
  const wal = Wal.open(opts(dir));
  await churn(wal, 1, 120);
  assert.ok(wal.stats.segmentsDeleted >= 10, `segments deleted: ${wal.stats.segmentsDeleted}`);
  assert.ok(wal.stats.segmentsRecycled >= 5, `segments recycled: ${wal.stats.segmentsRecycled}`);
  assert.ok(spareFiles(dir).length <= WAL_SPARES_MAX);
  const g = wal.group(1);
  assert.equal(g.lastIndex(), 120);
  await wal.close();
  const again = Wal.open(opts(dir));
  try {
    const h = again.group(1);
    assert.equal(h.lastIndex(), 120);
    const live = h.entries(h.firstIndex(), 121, Infinity);
    assert.ok(live.length >= 1);
    for (const e of live) assert.ok(e.data.every((b) => b === (e.index & 0xff)), `entry ${e.index} reads back intact`);
    // Spares found at open are reused after the next directory sync.
    await again.syncRecovered();
    await churn(again, 121, 160);
    assert.ok(again.stats.segmentsRecycled >= 1);
  } finally {
    await again.close();
  }
});

test('a recycled segment ends cleanly where its new frames end: no cut, whatever old frames follow', async () => {
  const dir = tmpdir();
  const wal = Wal.open(opts(dir));
  await churn(wal, 1, 60);
  assert.ok(wal.stats.segmentsRecycled >= 1);
  await wal.close();
  const sizes = new Map(segmentFiles(dir).map((f) => [f, fs.statSync(path.join(dir, f)).size]));
  const again = Wal.open(opts(dir));
  try {
    assert.equal(again.group(1).lastIndex(), 60);
    // Nothing was torn, so nothing was cut: recycled files keep their size (their old frames).
    for (const [f, size] of sizes) assert.equal(fs.statSync(path.join(dir, f)).size, size, f);
  } finally {
    await again.close();
  }
});

test('a torn frame in a recycled segment is a torn tail, even with old intact frames behind it', async () => {
  const dir = tmpdir();
  const wal = Wal.open(opts(dir));
  await churn(wal, 1, 60);
  const recycled = wal.stats.segmentsRecycled;
  assert.ok(recycled >= 1);
  const last = segmentFiles(dir).at(-1)!;
  const before = inside(wal).files.current.assigned;
  await wal.append([{ group: 1, entries: [big(61, 1, 2000)] }]);
  const after = inside(wal).files.current.assigned;
  await wal.close();
  assert.equal(segmentFiles(dir).at(-1), last, 'the last batch went to the same segment');
  // The crash image: the last frame half written over the recycled file's old bytes.
  const image = crashCopy(dir);
  const file = path.join(image, last);
  const bytes = fs.readFileSync(file);
  const tornAt = before + Math.floor((after - before) / 2);
  const old = Buffer.alloc(after + END_MARK_BYTES - tornAt, 0x5a); // what the file held there before
  old.copy(bytes, tornAt);
  fs.writeFileSync(file, bytes);
  const again = Wal.open(opts(image));
  try {
    assert.equal(again.group(1).lastIndex(), 60, 'the torn batch is gone, everything before it is there');
  } finally {
    await again.close();
  }
});
