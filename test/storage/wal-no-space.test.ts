// A full disk (docs/storage.md, "A full disk"): the batch that meets ENOSPC is cut back and held,
// never resolved before it is written, and written by itself once there is room; appends made
// meanwhile gather behind it. Space is reserved ahead of the frames, so that the write that meets
// a full disk is the reservation's, before any byte of a frame. checkSpace reports a disk nearly
// full before any batch meets it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fsCjs from 'node:fs';
import * as path from 'node:path';
import { nodeFileSystem, type FileSystem } from '../../src/io/file-system.js';
import { Wal, WalError } from '../../src/storage/wal.js';
import { END_MARK_BYTES } from '../../src/storage/wal-format.js';
import { cleanup, crashCopy, errno, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

/** node:fs with a switch: while `full`, a write that would grow its file fails with ENOSPC (as on a full tmpfs or ext4). */
function fullableFs(): { fs: FileSystem; state: { full: boolean; free: number; failedZeros: boolean[] } } {
  const state = { full: false, free: Number.MAX_SAFE_INTEGER, failedZeros: [] as boolean[] };
  const fs: FileSystem = {
    ...nodeFileSystem,
    writeSync(fd, buf, offset, length, position) {
      if (state.full && position + length > fsCjs.fstatSync(fd).size) {
        state.failedZeros.push(buf.subarray(offset, offset + length).every((b) => b === 0));
        throw errno('ENOSPC');
      }
      return nodeFileSystem.writeSync(fd, buf, offset, length, position);
    },
    freeBytesSync: () => state.free,
  };
  return { fs, state };
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function tracked(p: Promise<void>): { p: Promise<void>; settled: () => boolean } {
  let done = false;
  void p.then(() => { done = true; }, () => { done = true; });
  return { p, settled: () => done };
}

test('a batch that meets a full disk is held, not failed: nothing resolves before it is written, and it is written once there is room', async () => {
  const dir = tmpdir();
  const { fs, state } = fullableFs();
  const told: (string | null)[] = [];
  // No reservation: the frames themselves meet the full disk, halfway through the batch.
  const wal = Wal.open({ dir, fs, reserveBytes: 0, onNoSpace: (e) => told.push(e === null ? null : e.code) });
  await wal.append([{ group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } }]);
  const file = path.join(dir, segmentFiles(dir)[0]!);
  const sizeBefore = fsCjs.statSync(file).size;

  state.full = true;
  const held = tracked(wal.append([{ group: 1, entries: range(4, 6, 1) }, { group: 2, entries: range(1, 1, 1) }]));
  await until('the log to report no space', () => wal.noSpace !== null);
  assert.ok(wal.noSpace instanceof WalError && wal.noSpace.code === 'WAL_NO_SPACE');
  assert.equal(wal.batchHeld, true);
  assert.equal(wal.error, null, 'the log has not stopped');
  assert.deepEqual(told, ['WAL_NO_SPACE']);
  const behind = tracked(wal.append([{ group: 1, entries: range(7, 7, 1) }]));
  await until('two more tries', () => wal.stats.noSpaceRetries >= 3);
  assert.equal(held.settled() || behind.settled(), false, 'no append resolves (or fails) while its batch is not written');
  assert.equal(fsCjs.statSync(file).size, sizeBefore - END_MARK_BYTES, 'the segment is cut back to where the batch starts (the last frame\'s end mark is where it would have gone)');
  // Still readable from memory meanwhile (a leader sends these entries to its followers).
  assert.deepEqual(texts(wal, 1).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1', '4/1', '5/1', '6/1', '7/1']);
  const atCrash = crashCopy(dir); // kill -9 while the batch is held

  state.full = false;
  await held.p;
  await behind.p;
  assert.equal(wal.noSpace, null);
  assert.deepEqual(told, ['WAL_NO_SPACE', null]);
  await wal.close();

  const crashed = Wal.open({ dir: atCrash });
  assert.deepEqual(texts(crashed, 1).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1'], 'a crash while held finds the log as before the batch');
  await crashed.close();
  const again = Wal.open({ dir });
  assert.deepEqual(texts(again, 1).map((t) => t.split(':')[0]), ['1/1', '2/1', '3/1', '4/1', '5/1', '6/1', '7/1']);
  assert.equal(again.group(2).lastIndex(), 1);
  assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 3 });
  await again.close();
});

test('space is reserved ahead: writes go on into what is reserved, and a full disk is met by the reservation, before any byte of a frame', async () => {
  const dir = tmpdir();
  const { fs, state } = fullableFs();
  const reserveBytes = 16 << 10;
  const wal = Wal.open({ dir, fs, reserveBytes, segmentBytes: 1 << 20 });
  await wal.append([{ group: 1, entries: range(1, 1, 1) }]);
  const file = path.join(dir, segmentFiles(dir)[0]!);
  assert.equal(fsCjs.statSync(file).size, reserveBytes, 'the file is allocated a step ahead of its frames');

  state.full = true;
  // Into the reserved part: written although the disk is full.
  let next = 2;
  for (; next < 40; next++) await wal.append([{ group: 1, entries: range(next, next, 1) }]);
  assert.equal(wal.noSpace, null);
  // A batch past the reserved step meets the full disk in the reservation's write.
  const big = tracked(wal.append([{ group: 1, entries: [{ index: next, term: 1, type: 0, data: new Uint8Array(reserveBytes) }] }]));
  await until('the log to report no space', () => wal.batchHeld);
  assert.ok(state.failedZeros.length > 0 && state.failedZeros.every((z) => z), `every failed write was a reservation's (zeros): ${state.failedZeros.join()}`);
  assert.equal(big.settled(), false);
  state.full = false;
  await big.p;
  await wal.close();
  const again = Wal.open({ dir });
  assert.equal(again.group(1).lastIndex(), next);
  await again.close();
});

test('checkSpace reports a disk nearly full before any batch meets it, and clears once there is room', async () => {
  const dir = tmpdir();
  const { fs, state } = fullableFs();
  const told: (string | null)[] = [];
  const wal = Wal.open({ dir, fs, reserveBytes: 64 << 10, onNoSpace: (e) => told.push(e === null ? null : e.message) });
  await wal.append([{ group: 1, entries: range(1, 1, 1) }]);
  wal.checkSpace();
  assert.equal(wal.noSpace, null);
  state.free = 1000;
  wal.checkSpace();
  const low = wal.noSpace as WalError | null;
  assert.ok(low !== null && /1000 bytes free/.test(low.message), String(low?.message));
  assert.equal(wal.batchHeld, false);
  // Raft's own writes (votes, a follower's entries) still go into what is reserved.
  await wal.append([{ group: 1, entries: range(2, 2, 1) }]);
  wal.checkSpace();
  assert.equal(told.length, 1, 'told once');
  state.free = 1 << 30;
  wal.checkSpace();
  assert.equal(wal.noSpace, null);
  assert.equal(told.at(-1), null);
  await wal.close();
});

test('closing with a batch held rejects its appends with WAL_NO_SPACE and leaves a clean log', async () => {
  const dir = tmpdir();
  const { fs, state } = fullableFs();
  const wal = Wal.open({ dir, fs, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 2, 1) }]);
  state.full = true;
  const held = wal.append([{ group: 1, entries: range(3, 3, 1) }]);
  const rejected = held.then(() => null, (e: unknown) => e);
  await until('the batch to be held', () => wal.batchHeld);
  const t0 = Date.now();
  await wal.close();
  assert.ok(Date.now() - t0 < 1000, 'close does not wait for room');
  const e = await rejected;
  assert.ok(e instanceof WalError && e.code === 'WAL_NO_SPACE', `rejected with ${String(e)}`);
  state.full = false;
  const again = Wal.open({ dir });
  assert.equal(again.group(1).lastIndex(), 2);
  await again.close();
});

test('space is reserved a step ahead of the frames and synced in the background on a descriptor of its own, before the frames reach it', async () => {
  const dir = tmpdir();
  const mainFds = new Set<number>();
  /** Per reserve sync: the file's size when it was started (what it makes durable). */
  const reserveSyncSizes: number[] = [];
  const frameEnds: { end: number; coveredBy: number }[] = [];
  const fs: FileSystem = {
    ...nodeFileSystem,
    openSync(file, flags) {
      const fd = nodeFileSystem.openSync(file, flags);
      if (flags === 'wx+') mainFds.add(fd);
      return fd;
    },
    writeSync(fd, buf, offset, length, position) {
      const zeros = buf.subarray(offset, offset + length).every((b) => b === 0);
      if (!zeros) frameEnds.push({ end: position + length, coveredBy: Math.max(0, ...reserveSyncSizes) });
      return nodeFileSystem.writeSync(fd, buf, offset, length, position);
    },
    fdatasync(fd, done) {
      if (!mainFds.has(fd)) reserveSyncSizes.push(fsCjs.fstatSync(fd).size);
      nodeFileSystem.fdatasync(fd, done);
    },
  };
  const reserveBytes = 16 << 10;
  const wal = Wal.open({ dir, fs, reserveBytes, segmentBytes: 1 << 20 });
  const value = new Uint8Array(700).fill(7);
  for (let i = 1; i <= 200; i++) await wal.append([{ group: 1, entries: [{ index: i, term: 1, type: 0, data: value }] }]);
  await wal.close();
  assert.ok(wal.stats.reserveSyncs >= 5, `reserve syncs: ${wal.stats.reserveSyncs}`);
  assert.ok(reserveSyncSizes.length >= 5, 'the reserve syncs ran on descriptors other than the log\'s');
  // Every frame after the first step was written into space whose sync had started before it.
  const late = frameEnds.filter((f) => f.end > reserveBytes);
  assert.ok(late.length > 100);
  for (const f of late) assert.ok(f.end <= f.coveredBy, `a frame ending at ${f.end} met space reserved up to ${f.coveredBy} only`);
  const again = Wal.open({ dir });
  assert.equal(again.group(1).lastIndex(), 200);
  await again.close();
});
