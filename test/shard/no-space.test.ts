// A shard whose disk is full stays up (docs/operations.md, "Failures"): writes are answered
// NO_SPACE (the ones waiting when the disk filled "may still be applied", new ones "not
// applied"), reads go on, the NoSpace counter says why, and writes resume by themselves once
// there is room, without a restart. A follower on a full disk acknowledges nothing it could not
// write, stays a follower, and catches up once there is room.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsCjs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { ShardCounter } from '../../src/shard/counters.js';
import { errorOf, resultOf, ShardCluster, withTimeout } from './harness.js';

/**
 * Makes the disk under `prefix` full: every write to a file opened there fails with ENOSPC
 * (a frame's or a reservation's: `writes`), and statfs says nothing is free (`statfs`). `restore` frees it.
 */
function diskFull(prefix: () => string | null, how = { writes: true, statfs: true }): { fill: (on: boolean) => void; restore: () => void } {
  const origOpen = fsCjs.openSync;
  const origWrite = fsCjs.writeSync;
  const origStatfs = fsCjs.statfsSync;
  const paths = new Map<number, string>();
  let full = false;
  const under = (p: string): boolean => {
    const pre = prefix();
    return pre !== null && p.startsWith(pre);
  };
  (fsCjs as { openSync: unknown }).openSync = (file: fsCjs.PathLike, ...rest: unknown[]): number => {
    const fd = (origOpen as (...a: unknown[]) => number)(file, ...rest);
    paths.set(fd, String(file));
    return fd;
  };
  (fsCjs as { writeSync: unknown }).writeSync = (fd: number, ...rest: unknown[]): number => {
    if (full && how.writes && under(paths.get(fd) ?? '')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (origWrite as (...a: unknown[]) => number)(fd, ...rest);
  };
  (fsCjs as { statfsSync: unknown }).statfsSync = (p: fsCjs.PathLike, ...rest: unknown[]): fsCjs.StatsFs => {
    const st = (origStatfs as (...a: unknown[]) => fsCjs.StatsFs)(p, ...rest);
    return full && how.statfs && under(String(p)) ? { ...st, bavail: 0, bfree: 0 } : st;
  };
  syncBuiltinESMExports();
  return {
    fill: (on) => {
      full = on;
    },
    restore: () => {
      fsCjs.openSync = origOpen;
      fsCjs.writeSync = origWrite;
      fsCjs.statfsSync = origStatfs;
      syncBuiltinESMExports();
    },
  };
}

test('a full disk: the shard stays up, writes answer NO_SPACE, reads go on, and writes resume once there is room', async () => {
  const c = new ShardCluster([1], { bootstrapGroups: [1], logLevel: 'silent' });
  // Writes fail, statfs does not tell: the first write after is the one that meets the full disk.
  const disk = diskFull(() => c.root, { writes: true, statfs: false });
  try {
    const n = await c.start(1);
    await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.put(1, 1, 'before', 'yes')), { op: 'put' });

    disk.fill(true);
    // The write that meets the full disk: its batch is held, it is answered NO_SPACE at once.
    const first = errorOf(await withTimeout(c.put(1, 1, 'inflight', 'x'), 5000, 'the write that met the full disk'));
    assert.equal(first.code, 'NO_SPACE');
    assert.match(first.message, /may still be applied/);
    assert.equal(n.counters[ShardCounter.NoSpace], 1);
    // New writes are refused before they are proposed.
    const refused = errorOf(await c.put(1, 1, 'refused', 'x'));
    assert.equal(refused.code, 'NO_SPACE');
    assert.match(refused.message, /not applied/);
    // Reads go on, linearizable ones too (ReadIndex writes nothing).
    assert.deepEqual(resultOf(await c.get(1, 1, 'before', 'linearizable')), { op: 'get', value: 'yes' });
    assert.deepEqual(resultOf(await c.get(1, 1, 'before', 'stale')), { op: 'get', value: 'yes' });
    assert.ok(n.counters[ShardCounter.ErrorsNoSpace]! >= 2);
    assert.equal(n.counters[ShardCounter.Failed], 0, 'the shard did not fail');

    disk.fill(false);
    await c.until(() => n.counters[ShardCounter.NoSpace] === 0, 5000, 'the shard to see room again');
    assert.deepEqual(resultOf(await c.put(1, 1, 'after', 'yes')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(1, 1, 'after', 'linearizable')), { op: 'get', value: 'yes' });
    // The write answered "may still be applied" was written once there was room, and committed.
    assert.deepEqual(resultOf(await c.get(1, 1, 'inflight', 'linearizable')), { op: 'get', value: 'x' });
    assert.deepEqual(resultOf(await c.get(1, 1, 'refused', 'linearizable')), { op: 'get', value: null }, 'the refused write was not applied');
    await c.checkOneResponseEach();
    await c.stopAll();
    // What was written survives a restart.
    await c.start(1);
    await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.get(1, 1, 'after', 'linearizable')), { op: 'get', value: 'yes' });
    await c.stopAll();
  } finally {
    disk.restore();
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('a disk nearly full (statfs) refuses writes before any batch meets it; reads go on; writes resume once there is room', async () => {
  const c = new ShardCluster([1], { bootstrapGroups: [1], logLevel: 'silent' });
  const disk = diskFull(() => c.root, { writes: false, statfs: true });
  try {
    const n = await c.start(1);
    await c.leaderOf(1);
    assert.deepEqual(resultOf(await c.put(1, 1, 'before', 'yes')), { op: 'put' });
    disk.fill(true);
    await c.until(() => n.counters[ShardCounter.NoSpace] === 1, 5000, 'the shard to see its disk nearly full');
    const refused = errorOf(await c.put(1, 1, 'refused', 'x'));
    assert.equal(refused.code, 'NO_SPACE');
    assert.match(refused.message, /not applied/);
    assert.deepEqual(resultOf(await c.get(1, 1, 'before', 'linearizable')), { op: 'get', value: 'yes' });
    disk.fill(false);
    await c.until(() => n.counters[ShardCounter.NoSpace] === 0, 5000, 'the shard to see room again');
    assert.deepEqual(resultOf(await c.put(1, 1, 'after', 'yes')), { op: 'put' });
    assert.deepEqual(resultOf(await c.get(1, 1, 'refused', 'linearizable')), { op: 'get', value: null });
    await c.checkOneResponseEach();
    await c.stopAll();
  } finally {
    disk.restore();
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});

test('a follower on a full disk acknowledges nothing it cannot write, stays a follower, and catches up once there is room', async () => {
  const c = new ShardCluster([1, 2, 3], { bootstrapGroups: [1], logLevel: 'silent' });
  let followerDir: string | null = null;
  const disk = diskFull(() => followerDir);
  try {
    await Promise.all([c.start(1), c.start(2), c.start(3)]);
    const leader = await c.leaderOf(1);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const other = [1, 2, 3].find((id) => id !== leader && id !== follower)!;
    followerDir = c.node(follower).dir;
    disk.fill(true);
    await c.until(() => c.counter(follower, ShardCounter.NoSpace) === 1, 5000, 'the follower to see its disk full');
    // The other two still make a quorum.
    for (let i = 0; i < 20; i++) assert.deepEqual(resultOf(await c.put(leader, 1, `k${i}`, `v${i}`)), { op: 'put' });
    const lead = (await c.status(leader)).find((g) => g.group === 1)!;
    const stuck = (await c.status(follower)).find((g) => g.group === 1)!;
    assert.equal(stuck.role, 'follower');
    assert.equal(stuck.leader, leader);
    assert.ok(stuck.applied < lead.applied, `the follower applies nothing it has not written (${stuck.applied} < ${lead.applied})`);
    // Now take the other follower away: with only the full one left, nothing can commit.
    await c.stop(other);
    const waiting = c.put(leader, 1, 'needs-two', 'x');
    let last = 0;
    await c.until(async () => {
      last = (await c.status(leader)).find((g) => g.group === 1)!.lastIndex;
      return (await c.status(follower)).find((g) => g.group === 1)!.lastIndex >= last && last > lead.lastIndex;
    }, 5000, 'the follower to receive the new entry');
    // It holds the entry in memory but cannot write it: no acknowledgement, so no commit.
    const l = (await c.status(leader)).find((g) => g.group === 1)!;
    assert.ok(l.commit < last, `the leader commits nothing the full follower has not written (commit ${l.commit}, last ${last})`);
    disk.fill(false);
    assert.deepEqual(resultOf(await withTimeout(waiting, 8000, 'the write to commit once the follower can write')), { op: 'put' });
    await c.until(async () => {
      const f = (await c.status(follower)).find((g) => g.group === 1)!;
      const l = (await c.status(leader)).find((g) => g.group === 1)!;
      return f.applied === l.applied && f.role === 'follower';
    }, 8000, 'the follower to catch up');
    await c.until(() => c.counter(follower, ShardCounter.NoSpace) === 0, 5000, 'the follower to see room again');
    assert.equal(c.counter(follower, ShardCounter.Failed), 0);
    await c.stopAll();
  } finally {
    disk.restore();
    await c.stopAll().catch(() => undefined);
    c.cleanup();
  }
});
