// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 11): creating the next segment (fs.openSync 'wx+' in roll,
// also unlinkSync/closeSync in purge) happens synchronously while a turn is being laid out.
// If it fails (ENOSPC, EMFILE, EDQUOT...) append() throws synchronously instead of rejecting, the
// log is not marked failed, and the part of the turn laid out before the roll stays queued and
// already applied to the in-memory index: the next append writes half a Ready to disk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal, WalError } from '../../src/storage/wal.js';
import { big, cleanup, errno, patchFs, range, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

test('a failure to create the next segment rejects the append and stops the log', async () => {
  const dir = tmpdir();
  const opts = { dir, segmentBytes: 4096 };
  const wal = Wal.open(opts);
  await wal.append([{ group: 1, entries: range(1, 2, 1) }]);
  const restore = patchFs('openSync', (orig) => ((file: string, flags: string, ...rest: unknown[]) => {
    if (flags === 'wx+') throw errno('ENOSPC');
    return (orig as (...a: unknown[]) => number)(file, flags, ...rest);
  }) as never);
  let threw: unknown = null;
  let p: Promise<void> | undefined;
  try {
    // Entries 3..4 fit segment 1, entry 5 needs a new segment.
    p = wal.append([{ group: 1, entries: [...range(3, 4, 1), big(5, 1, 4000)], hardState: { term: 1, vote: 1, commit: 4 } }]);
  } catch (e) {
    threw = e;
  } finally {
    restore();
  }
  const rejection = p === undefined ? null : await p.then(() => null, (e: unknown) => e);
  const inMemory = wal.group(1).lastIndex();
  await wal.append([{ group: 2, entries: range(1, 1, 1) }]).catch(() => {});
  await wal.close();
  const again = Wal.open(opts);
  const onDisk = texts(again, 1).length;
  await again.close();
  assert.equal(threw, null, `append threw synchronously: ${String(threw)} (in-memory lastIndex ${inMemory}; after the next append, group 1 has ${onDisk} entries on disk)`);
  assert.ok(rejection instanceof WalError && rejection.code === 'WAL_FAILED', 'the append is rejected with WAL_FAILED');
  assert.notEqual(wal.error, null, 'the log stopped');
});
