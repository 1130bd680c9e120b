// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 12): close() checks `closed` only on entry and sets it
// after awaiting, so two overlapping calls both close every segment descriptor: the second
// closeSync throws EBADF — or, had the number been reused in between (snapshot files, sockets),
// closes somebody else's descriptor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { cleanup, range, tmpdir } from './wal-helpers.js';

after(cleanup);

test('two overlapping close() calls both resolve', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir });
  await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
  const pending = wal.append([{ group: 1, entries: range(4, 5, 1) }]);
  await assert.doesNotReject(Promise.all([wal.close(), wal.close(), pending]));
});
