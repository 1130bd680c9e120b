// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 7): EntryCache.add runs its eviction loop while the entry
// just added is not yet part of its group's log (placeEntries raises lastIdx only after
// cache.add). When the loop reaches that newest entry, GroupLog.evict refuses it (index >
// lastIdx), the queue moves past it, and its bytes are never taken off `cache.bytes`: it stays
// cached and counted for good. From then on `bytes` never gets back under the budget, so every
// later entry meets the same fate: the cache keeps every payload until compaction.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, tmpdir } from './wal-helpers.js';

after(cleanup);

test('cacheBytesMax 0 keeps nothing in memory', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, cacheBytesMax: 0, syncForce: false });
  for (let i = 1; i <= 100; i++) await wal.append([{ group: 1, entries: [big(i, 1, 1000)] }]);
  assert.equal(wal.cachedBytes, 0, `cache holds ${wal.cachedBytes} bytes`);
  await wal.close();
});

test('one entry larger than the budget does not switch the budget off for good', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, cacheBytesMax: 64 << 10, syncForce: false });
  await wal.append([{ group: 1, entries: [big(1, 1, 100 << 10)] }]); // one 100 KiB entry
  for (let i = 2; i <= 500; i++) await wal.append([{ group: 1, entries: [big(i, 1, 1000)] }]);
  assert.ok(wal.cachedBytes <= 64 << 10, `cache holds ${wal.cachedBytes} bytes with a budget of ${64 << 10}`);
  await wal.close();
});
