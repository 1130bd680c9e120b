// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 2): a group's Rewrite record cannot be replayed over an
// older segment that survives (pinned by another group) and still holds some of the group's
// original entries. Recovery turns those stale entries into a "gap", and `placeEntries` then
// skips every rewritten entry below the gap (`if (i <= this.prevIndex) continue`). Without a
// compact marker the log refuses to open; with one, `checkRecovered` passes and entries are
// silently lost and term(prevIndex) is invented as 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { RaftNode } from '../../src/raft/raft.js';
import { configDefaults } from '../../src/raft/types.js';
import { big, cleanup, conf, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

const opts = (dir: string) => ({ dir, segmentBytes: 4096, rewriteBytesMax: 2000 });

/**
 * segment 1: g1 1..5, g2 #1        segment 2: g2 #2, g1 6..10, g2 snapshot+compact at 1
 * segment 3: (roll) g1 rewritten (1..10), g3 #1 — segment 1 deleted, segment 2 kept for g2.
 */
async function build(dir: string, compactG1: boolean): Promise<void> {
  const wal = Wal.open(opts(dir));
  await wal.append([{ group: 1, entries: range(1, 5, 1), hardState: { term: 1, vote: 1, commit: 5 } }]);
  if (compactG1) {
    await wal.recordSnapshot(1, { index: 2, term: 1, conf });
    await wal.compact(1, 2);
  }
  await wal.append([{ group: 2, entries: [big(1, 1, 3000)] }]);
  await wal.append([{ group: 2, entries: [big(2, 1, 3000)] }]); // segment 2
  await wal.append([{ group: 1, entries: range(6, 10, 1), hardState: { term: 1, vote: 1, commit: 10 } }]);
  await wal.recordSnapshot(2, { index: 1, term: 1, conf });
  await wal.compact(2, 1);
  await wal.append([{ group: 3, entries: [big(1, 1, 3000)] }]); // segment 3: rewrites g1, deletes segment 1
  assert.equal(wal.stats.groupsRewritten, 1);
  assert.deepEqual(segmentFiles(dir).map((f) => Number(f.slice(8, 28))), [2, 3]);
  // Before the reopen everything is right.
  assert.equal(texts(wal, 1).length, compactG1 ? 8 : 10);
  await wal.close();
}

test('a rewritten group whose older entries sit in a surviving segment reopens (no compaction)', async () => {
  const dir = tmpdir();
  await build(dir, false);
  const again = Wal.open(opts(dir)); // throws WAL_CORRUPT "entries 1..5 are missing"
  try {
    assert.deepEqual(texts(again, 1).map((t) => t.split(':')[0]), range(1, 10, 1).map((e) => `${e.index}/1`));
  } finally {
    await again.close();
  }
});

test('a rewritten, compacted group does not silently lose entries across a reopen', async () => {
  const dir = tmpdir();
  await build(dir, true);
  const again = Wal.open(opts(dir));
  try {
    const g = again.group(1);
    assert.equal(g.firstIndex(), 3, 'the snapshot is at 2, so the log starts at 3');
    assert.deepEqual(texts(again, 1).map((t) => t.split(':')[0]), range(3, 10, 1).map((e) => `${e.index}/1`));
    assert.equal(g.term(g.firstIndex() - 1), 1, 'term of the compaction point is not invented');
  } finally {
    await again.close();
  }
});

test('consequence: after the restart the Raft core does not skip entries the state machine never applied', async () => {
  const dir = tmpdir();
  await build(dir, true);
  const again = Wal.open(opts(dir));
  try {
    const s = again.group(1);
    const applied = s.snapshot().meta.index; // the host restores its state machine from the snapshot at 2
    const node = new RaftNode({ ...configDefaults, id: 1, random: () => 0.5, applied }, s, s.hardState);
    const first = node.ready().committedEntries[0]?.index;
    assert.equal(first, applied + 1, `state machine at ${applied}, but the first entry handed out to apply is ${first}`);
  } finally {
    await again.close();
  }
});
