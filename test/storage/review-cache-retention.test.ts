// Review reproduction (docs/storage.md, "Regression tests from the storage review"; bug 8): the cache's eviction queue keeps a reference to every
// payload it was given until the queue head passes it, and the head only moves while `bytes` is
// over budget. Payloads that leave by compaction or truncation are subtracted from `bytes` at
// once but stay referenced by the queue, so with a steady "append, snapshot, compact" pattern the
// queue never moves and retains up to ENTRIES_CACHED_MAX (1M) payloads: memory is not bounded by
// cacheBytesMax at all.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Wal } from '../../src/storage/wal.js';
import { big, cleanup, conf, tmpdir } from './wal-helpers.js';

after(cleanup);

test('payloads of compacted entries are not retained beyond the cache budget', async () => {
  const dir = tmpdir();
  const budget = 1 << 20;
  const wal = Wal.open({ dir, cacheBytesMax: budget, syncForce: false, segmentBytes: 4 << 20 });
  for (let i = 1; i <= 64; i++) {
    await wal.append([{ group: 1, entries: [big(i, 1, 256 << 10)] }]); // 256 KiB each, 16 MiB in all
    await wal.recordSnapshot(1, { index: i, term: 1, conf });
    await wal.compact(1, i);
  }
  try {
    assert.equal(wal.cachedBytes, 0, 'accounting says nothing is cached');
    // Structural: nothing the log keeps refers to a payload of a compacted entry. The eviction
    // queue holds (group, index, term) only, and the group's slots hold no payload.
    const inner = wal as unknown as { cache: Record<string, unknown>; groups: Map<number, { cached: unknown[] }> };
    for (const [k, v] of Object.entries(inner.cache)) {
      if (Array.isArray(v)) assert.ok(v.every((x) => !(x instanceof Uint8Array)), `cache field ${k} holds payloads`);
    }
    assert.equal(inner.groups.get(1)!.cached.filter((x) => x !== undefined).length, 0, 'group 1 caches compacted payloads');
  } finally {
    await wal.close();
  }
});
