// A group whose live log is too large for the log to rewrite, and that goes quiet before it
// reaches snapshotEntries, would hold every later segment on disk. The shard snapshots and
// compacts such groups (wal.groupsPinning), so the log's segments stay bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resultOf, ShardCluster } from './harness.js';

const VALUE = 'v'.repeat(10_000);

function segments(dir: string): number {
  return fs.readdirSync(path.join(dir, 'wal')).filter((f) => f.endsWith('.wal')).length;
}

test('groups that pin old log segments are snapshotted and compacted, so segments are freed', async () => {
  const c = new ShardCluster([1], { segmentBytes: 256 << 10, requestTimeoutMs: 15_000, bootstrapGroups: [1, 2] });
  try {
    const n = await c.start(1);
    await c.leaderOf(1);
    await c.leaderOf(2);
    // Group 1: 1.5 MiB of live log (more than the log rewrites), far below snapshotEntries; then quiet.
    for (let i = 0; i < 150; i += 10) await Promise.all(Array.from({ length: 10 }, (_, k) => c.put(1, 1, `a${i + k}`, VALUE)));
    // Group 2 keeps writing: new segments keep coming.
    for (let i = 0; i < 400; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => c.put(1, 2, `b${i + k}`, VALUE)));
    // Both groups hold the oldest segment with more than the log rewrites: they get snapshotted.
    await c.until(async () => (await c.status(1)).every((s) => s.snapshotIndex >= s.applied - 1), 20_000, 'snapshots of the pinning groups');
    // (Its 150 writes went in as about 15 entries: the writes of one turn share an entry.)
    const quiet = (await c.status(1)).find((s) => s.group === 1)!;
    assert.ok(quiet.snapshotIndex > 1 && quiet.snapshotIndex >= quiet.applied - 1, 'the quiet group was snapshotted');
    const before = segments(n.dir);
    assert.ok(before >= 15, `${before} segments before any is freed`);
    // Segments are freed as the log moves on to new ones (group 2 keeps writing): without the
    // snapshots about 24 would stay.
    for (let i = 0; i < 100; i += 20) await Promise.all(Array.from({ length: 20 }, (_, k) => c.put(1, 2, `c${i + k}`, VALUE)));
    await c.until(() => segments(n.dir) <= 6, 20_000, `log segments to be freed (now ${segments(n.dir)})`);
    await c.stop(1);
    await c.start(1);
    await c.leaderOf(1);
    await c.leaderOf(2);
    assert.deepEqual(resultOf(await c.get(1, 1, 'a7', 'linearizable')), { op: 'get', value: VALUE });
    assert.deepEqual(resultOf(await c.get(1, 2, 'b399', 'linearizable')), { op: 'get', value: VALUE });
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
