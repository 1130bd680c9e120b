// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 3): recovery does not notice a segment file missing from
// the middle of the log. Segment numbers and frame sequence numbers are only checked to increase,
// not to be consecutive, and `checkRecovered` is vacuous for any group that has a Compact record
// (its floor is `prevIndex` itself, i.e. the end of the gap). The log opens and silently serves
// a shorter, gapped log with an invented term 0 — what docs/storage.md promises never happens.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Wal, WalError } from '../../src/storage/wal.js';
import { cleanup, conf, range, segmentFiles, tmpdir } from './wal-helpers.js';

after(cleanup);

const opts = (dir: string) => ({ dir, segmentBytes: 4096, rewriteBytesMax: 0 }); // no rewrites: keep the layout simple

async function build(dir: string): Promise<void> {
  const wal = Wal.open(opts(dir));
  const pad = (from: number, to: number) => range(from, to, 1).map((e) => ({ ...e, data: new Uint8Array(200) }));
  await wal.append([{ group: 1, entries: pad(1, 10) }]);
  await wal.recordSnapshot(1, { index: 3, term: 1, conf });
  await wal.compact(1, 3);
  await wal.append([{ group: 1, entries: pad(11, 20) }]); // 11..18 in segment 1, 19..20 in segment 2
  await wal.append([{ group: 1, entries: pad(21, 30) }]); // segment 2
  await wal.append([{ group: 1, entries: pad(31, 40), hardState: { term: 1, vote: 1, commit: 40 } }]); // 31..36 in segment 2, 37..40 in segment 3
  assert.equal(segmentFiles(dir).length, 3);
  await wal.close();
}

test('a segment missing from the middle of the log is reported, not served around', async () => {
  const dir = tmpdir();
  await build(dir);
  fs.unlinkSync(path.join(dir, segmentFiles(dir)[1]!)); // lost: entries 19..36
  let opened: Wal | undefined;
  try {
    assert.throws(() => { opened = Wal.open(opts(dir)); }, (e: unknown) => e instanceof WalError && e.code === 'WAL_CORRUPT');
  } finally {
    if (opened !== undefined) {
      const g = opened.group(1);
      console.log(`# opened anyway: group 1 firstIndex ${g.firstIndex()} lastIndex ${g.lastIndex()} term(${g.firstIndex() - 1}) = ${g.term(g.firstIndex() - 1)}, snapshot at ${g.snap.index}`);
      await opened.close();
    }
  }
});
