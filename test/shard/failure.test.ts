// A shard whose log fails (an fdatasync error) stops: the writes waiting on it are answered
// STORAGE_FAILED, it reports a 'failed' event, sets the Failed counter, and its task rejects.
// A restart from the same directory recovers what was durable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsCjs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { ShardCounter } from '../../src/shard/counters.js';
import { errorOf, resultOf, ShardCluster } from './harness.js';

test('a failed fdatasync fails the shard cleanly: one STORAGE_FAILED answer each, a failed event, a rejection', async () => {
  const c = new ShardCluster([1], { bootstrapGroups: [1], logLevel: 'silent' });
  const orig = fsCjs.fdatasync;
  const restore = (): void => {
    fsCjs.fdatasync = orig;
    syncBuiltinESMExports();
  };
  try {
    const n = await c.start(1);
    await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.put(1, 1, 'durable', 'yes')), { op: 'put' });

    (fsCjs as { fdatasync: unknown }).fdatasync = (_fd: number, cb: (e: NodeJS.ErrnoException | null) => void): void => {
      const e: NodeJS.ErrnoException = new Error('EIO: i/o error, fdatasync');
      e.code = 'EIO';
      process.nextTick(cb, e);
    };
    syncBuiltinESMExports();
    const lost = await Promise.all([c.put(1, 1, 'lost-1', 'x'), c.put(1, 1, 'lost-2', 'x')]);
    for (const r of lost) assert.equal(errorOf(r).code, 'STORAGE_FAILED');
    const err = await c.ended(1);
    restore();
    assert.ok(err !== null && /EIO|log stopped/.test(err.message), `rejected with ${err?.message}`);
    const failed = n.events.find((e) => e.type === 'failed');
    assert.ok(failed !== undefined && failed.shard === 0 && typeof failed.message === 'string');
    assert.equal(n.counters[ShardCounter.Failed], 1);
    await c.checkOneResponseEach();

    await c.start(1);
    await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.get(1, 1, 'durable', 'linearizable')), { op: 'get', value: 'yes' });
    assert.deepEqual(resultOf(await c.put(1, 1, 'again', 'yes')), { op: 'put' });
    await c.stopAll();
  } finally {
    restore();
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
