// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 1): a segment is deleted as soon as the records that make
// it unneeded (a Rewrite, a Compact, ...) are laid out in memory, before they are written or
// synced. A crash, or a failed write, in between loses data that was acknowledged long before.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal, WalError } from '../../src/storage/wal.js';
import { big, cleanup, conf, crashCopy, errno, hold, patchFs, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

/** Group 1 writes once (segment 1); group 2 fills segments 1-2 and compacts, so only group 1 pins segment 1. */
async function setup(dir: string): Promise<Wal> {
  const wal = Wal.open({ dir, segmentBytes: 4096 });
  await wal.append([{ group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } }]);
  await wal.append([{ group: 2, entries: [big(1, 1, 3000)] }]);
  await wal.append([{ group: 2, entries: [big(2, 1, 3000)] }]); // rolls to segment 2
  await wal.recordSnapshot(2, { index: 2, term: 1, conf });
  await wal.compact(2, 2);
  assert.deepEqual(segmentFiles(dir).length, 2);
  return wal;
}

test('a crash right after a roll that rewrote an idle group loses that group (old segment already unlinked)', async () => {
  const dir = tmpdir();
  const wal = await setup(dir);
  // This append rolls to segment 3: group 1 is rewritten into it and segment 1 is unlinked,
  // synchronously, inside append() — before the rewrite is written.
  const writes = hold('write');
  let atCrash: string;
  try {
    const p = wal.append([{ group: 2, entries: [big(3, 1, 3000)] }]);
    atCrash = crashCopy(dir); // kill -9 now
    writes.release();
    await p;
  } finally {
    writes.restore();
  }
  await wal.close();
  const again = Wal.open({ dir: atCrash, segmentBytes: 4096 });
  try {
    assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1'], 'group 1 entries acknowledged long ago');
    assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 3 }, 'group 1 vote acknowledged long ago');
  } finally {
    await again.close();
  }
});

test('ENOSPC on the batch that carries a rewrite loses the rewritten group for good', async () => {
  const dir = tmpdir();
  const wal = await setup(dir);
  // The log writes frames with writeSync (only the fdatasync is asynchronous). A full disk holds
  // the batch (it is cut back and tried again, docs/storage.md "A full disk"), never resolving
  // it before it is written; a crash meanwhile must find group 1 intact.
  const restore = patchFs('writeSync', () => (() => {
    throw errno('ENOSPC');
  }) as never);
  let atCrash: string;
  let settled = false;
  let p: Promise<void>;
  try {
    p = wal.append([{ group: 2, entries: [big(3, 1, 3000)] }]);
    void p.then(() => { settled = true; }, () => { settled = true; });
    while (wal.noSpace === null) await new Promise((r) => setTimeout(r, 5));
    assert.equal(settled, false, 'nothing resolves while the disk is full');
    assert.ok(wal.noSpace instanceof WalError && wal.noSpace.code === 'WAL_NO_SPACE');
    atCrash = crashCopy(dir); // kill -9 while the batch is held
  } finally {
    restore();
  }
  await p; // written once there is room
  assert.equal(wal.noSpace, null);
  await wal.close();
  // docs/storage.md: "The segment is cut back to what was written before the failed batch, so a restart finds a clean log."
  for (const d of [atCrash, dir]) {
    const again = Wal.open({ dir: d, segmentBytes: 4096 });
    try {
      assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
      assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 3 });
      assert.equal(again.group(2).lastIndex(), d === dir ? 3 : 2, 'the held entry is there once written, not before');
    } finally {
      await again.close();
    }
  }
});

test('compact() unlinks segments before its own Compact/Snapshot records are durable', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 4096 });
  // Group 1: entries 1..2 in segment 1, hard state in segment 2 (so only its entries pin segment 1).
  await wal.append([{ group: 1, entries: [big(1, 1, 1500), big(2, 1, 1500)] }]);
  await wal.append([{ group: 1, entries: [big(3, 1, 3000)], hardState: { term: 1, vote: 1, commit: 3 } }]);
  assert.equal(segmentFiles(dir).length, 2);
  // The host snapshots at 2 and compacts, without awaiting in between (both are just queued writes).
  const writes = hold('write');
  let atCrash: string;
  try {
    const p1 = wal.recordSnapshot(1, { index: 2, term: 1, conf });
    const p2 = wal.compact(1, 2);
    atCrash = crashCopy(dir); // kill -9 before that batch is written
    writes.release();
    await Promise.all([p1, p2]);
  } finally {
    writes.restore();
  }
  await wal.close();
  // Entries 1..2 were acknowledged, and neither the snapshot marker nor the compaction is on
  // disk in the crash image: entries 1..2 must still be there.
  let again: Wal | undefined;
  try {
    again = Wal.open({ dir: atCrash, segmentBytes: 4096 });
    assert.equal(again.group(1).firstIndex(), 1, 'entries 1..2 survive');
    assert.equal(again.group(1).lastIndex(), 3);
  } finally {
    await again?.close();
  }
});

test('Wal.open alone (rolling at open) must not unlink a segment whose rewrite is only queued in memory', async () => {
  const dir = tmpdir();
  const wal = await setup(dir);
  await wal.close();
  // The last segment is more than half full, so open() rolls: group 1 is rewritten (queued,
  // nothing written) and segment 1 is unlinked, before the host appends anything.
  const reopened = Wal.open({ dir, segmentBytes: 4096 });
  const atCrash = crashCopy(dir); // the process dies before its first append
  await reopened.close();
  const again = Wal.open({ dir: atCrash, segmentBytes: 4096 });
  try {
    assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
    assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 3 });
  } finally {
    await again.close();
  }
});
