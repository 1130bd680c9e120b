import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { AssertionError } from '../../src/util/assert.js';
import type { SnapshotMeta } from '../../src/raft/types.js';
import { crc32, crc32Implementation, crc32Native, crc32Zlib } from '../../src/storage/checksum.js';
import {
  SnapshotCorruptError,
  SnapshotStore,
  SnapshotTooLargeError,
  snapshotFileName,
  type SnapshotStoreOptions,
  type SnapshotWriteFile,
} from '../../src/storage/snapshot-store.js';

const storeModuleUrl = new URL('../../src/storage/snapshot-store.js', import.meta.url).href;

function meta(index: number, term: number, voters: number[] = [1, 2, 3]): SnapshotMeta {
  return { index, term, conf: { voters, votersOutgoing: [], learners: [], learnersNext: [] } };
}

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'flotilla-snapshot-test-'));
}

/** Runs `fn` with a store in a fresh temporary directory, and removes the directory after. */
async function withStore(
  options: Partial<SnapshotStoreOptions>,
  fn: (store: SnapshotStore, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(await SnapshotStore.open(dir, options), dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function isCorrupt(file: string, offset?: number) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SnapshotCorruptError, `expected SnapshotCorruptError, got ${String(err)}`);
    assert.equal(err.code, 'SNAPSHOT_CORRUPT');
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file) && err.message.includes(`offset ${err.offset}`), err.message);
    if (offset !== undefined) assert.equal(err.offset, offset, err.message);
    return true;
  };
}

// ---- crc32 ----

test('crc32 gives the IEEE CRC-32 of known vectors', () => {
  const vectors: [string, number][] = [
    ['', 0],
    ['a', 0xe8b7be43],
    ['abc', 0x352441c2],
    ['123456789', 0xcbf43926],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ];
  for (const [input, expected] of vectors) {
    assert.equal(crc32(Buffer.from(input, 'latin1')), expected, input);
    assert.equal(crc32(new TextEncoder().encode(input)), expected, input);
  }
  assert.ok(crc32Implementation === 'native' || crc32Implementation === 'zlib');
  assert.equal(crc32Implementation === 'native', crc32Native !== null);
});

test('crc32 chains through its initial value and respects views into larger buffers', () => {
  const all = new TextEncoder().encode('123456789');
  for (let cut = 0; cut <= all.length; cut++) {
    assert.equal(crc32(all.subarray(cut), crc32(all.subarray(0, cut))), 0xcbf43926);
  }
  const big = randomBytes(10_000);
  const view = new Uint8Array(big.buffer, big.byteOffset + 123, 4567);
  assert.equal(crc32(view), zlib.crc32(Buffer.from(view)));
});

test('crc32 agrees with zlib, and the native add-on (when it loads) agrees with zlib', (t) => {
  for (const size of [0, 1, 3, 64, 1000, 65_537, 1 << 20]) {
    const data = randomBytes(size);
    const initial = randomBytes(4).readUInt32LE(0);
    assert.equal(crc32(data), zlib.crc32(data));
    // zlib answers 0 for an empty buffer without backing memory (a NULL pointer in C), whatever
    // the initial value; the CRC of nothing is the initial value, which is what crc32 returns.
    const expected = size === 0 ? initial : zlib.crc32(data, initial);
    assert.equal(crc32(data, initial), expected);
    assert.ok(crc32Zlib !== null);
    if (size > 0) assert.equal(crc32Zlib(data, initial), expected);
    if (crc32Native !== null) assert.equal(crc32Native(data, initial), expected);
  }
  if (crc32Native === null) t.diagnostic('@node-rs/crc32 is not installed: only the zlib implementation was checked');
});

// ---- round trips ----

test('a small snapshot round-trips under a zero-padded name', async () => {
  await withStore({}, async (store, dir) => {
    assert.equal(await store.latest(1), null);
    assert.equal(await store.readAll(1), null);
    assert.equal(await store.openReader(1), null);

    const m: SnapshotMeta = {
      index: 10, term: 2,
      conf: { voters: [1, 2, 3], votersOutgoing: [1, 2, 4], learners: [5], learnersNext: [4] },
    };
    const data = new TextEncoder().encode('hello, snapshot');
    assert.deepEqual(await store.write(1, m, data), m);

    const name = 'snapshot-00000000000000000010-00000000000000000002';
    assert.equal(snapshotFileName(10, 2), name);
    assert.deepEqual(await store.list(1), [{ index: 10, term: 2, file: path.join(dir, 'group-1', name) }]);
    assert.deepEqual(await store.latest(1), m);
    assert.deepEqual(await store.readAll(1), { meta: m, data });
    assert.deepEqual(await store.readAll(1, 10), { meta: m, data });
    assert.deepEqual(await store.readAll(1, 10, 2), { meta: m, data });
    assert.equal(await store.readAll(1, 10, 3), null);
    assert.equal(await store.readAll(1, 11), null);
    assert.deepEqual(await store.groups(), [1]);
  });
});

test('an empty snapshot (the initial one) round-trips', async () => {
  await withStore({}, async (store) => {
    await store.write(0, meta(0, 0, []), new Uint8Array(0));
    assert.deepEqual(await store.readAll(0), { meta: meta(0, 0, []), data: new Uint8Array(0) });
  });
});

test('a 5 MiB snapshot streams in chunks of at most 1 MiB and round-trips', async () => {
  await withStore({}, async (store) => {
    const data = new Uint8Array(randomBytes(5 << 20));
    const w = await store.createWriter(3, meta(1000, 7));
    // Odd-sized writes: gathered into full chunks and split where they cross a boundary.
    for (let off = 0; off < data.length;) {
      const n = Math.min(data.length - off, 1 + Math.floor(Math.random() * 700_000));
      await w.write(data.subarray(off, off + n));
      off += n;
    }
    assert.deepEqual(await w.finish(), meta(1000, 7));

    const r = await store.openReader(3);
    assert.ok(r !== null);
    assert.deepEqual(r.meta, meta(1000, 7));
    const chunks = await collect(r.chunks());
    await r.close();
    assert.equal(chunks.length, 5);
    for (const c of chunks) assert.equal(c.length, 1 << 20);
    assert.ok(Buffer.from(concat(chunks)).equals(data));

    const all = await store.readAll(3);
    assert.ok(all !== null && Buffer.from(all.data).equals(data));
  });
});

test('writes are split and gathered into chunks of bytesPerChunkMax, last one short', async () => {
  await withStore({ bytesPerChunkMax: 1000 }, async (store) => {
    const sizes = [1, 999, 1000, 2500, 3, 0, 7000, 1];
    const parts = sizes.map((n) => new Uint8Array(randomBytes(n)));
    const w = await store.createWriter(1, meta(5, 1));
    // Not awaited one by one: writes are queued and land in call order.
    const pending = parts.map((p) => w.write(p));
    await w.finish();
    await Promise.all(pending);
    const r = await store.openReader(1);
    assert.ok(r !== null);
    const chunks = await collect(r.chunks());
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.deepEqual(chunks.map((c) => c.length), [...Array(Math.floor(total / 1000)).fill(1000), total % 1000]);
    assert.ok(Buffer.from(concat(chunks)).equals(Buffer.from(concat(parts))));
  });
});

test('a chunk the caller reuses after write resolves does not change the snapshot', async () => {
  await withStore({ bytesPerChunkMax: 64 }, async (store) => {
    const w = await store.createWriter(1, meta(1, 1));
    const scratch = new Uint8Array(10);
    const expected: number[] = [];
    for (let i = 0; i < 20; i++) {
      scratch.fill(i);
      await w.write(scratch);
      expected.push(...scratch);
    }
    await w.finish();
    assert.deepEqual((await store.readAll(1))!.data, new Uint8Array(expected));
  });
});

// ---- retention, lookup, removal ----

test('after a finish only the newest maxKeepSnapshots of the group remain', async () => {
  await withStore({}, async (store) => {
    for (const index of [10, 20, 30, 40]) await store.write(1, meta(index, 1), new Uint8Array([index]));
    await store.write(2, meta(5, 1), new Uint8Array([5]));
    assert.deepEqual((await store.list(1)).map((s) => s.index), [30, 40]);
    assert.deepEqual((await store.list(2)).map((s) => s.index), [5]);
    assert.deepEqual((await store.latest(1))?.index, 40);
    assert.deepEqual((await store.readAll(1, 30))?.data, new Uint8Array([30]));
    assert.equal(await store.readAll(1, 20), null);
  });
  await withStore({ maxKeepSnapshots: 3 }, async (store) => {
    for (const index of [1, 2, 3, 4, 5]) await store.write(9, meta(index, 1), new Uint8Array(0));
    assert.deepEqual((await store.list(9)).map((s) => s.index), [3, 4, 5]);
  });
});

test('latest orders by index, not by term or by write order', async () => {
  await withStore({ maxKeepSnapshots: 5 }, async (store) => {
    await store.write(1, meta(200, 3), new Uint8Array(0));
    await store.write(1, meta(150, 9), new Uint8Array(0));
    assert.deepEqual(await store.latest(1), meta(200, 3));
  });
});

test('removeGroup deletes every snapshot of one group only', async () => {
  await withStore({}, async (store, dir) => {
    await store.write(1, meta(1, 1), new Uint8Array([1]));
    await store.write(2, meta(2, 1), new Uint8Array([2]));
    assert.deepEqual(await store.groups(), [1, 2]);
    await store.removeGroup(1);
    await store.removeGroup(77); // no such group: nothing to do
    assert.deepEqual(await store.groups(), [2]);
    assert.equal(await store.latest(1), null);
    assert.deepEqual((await store.readAll(2))?.data, new Uint8Array([2]));
    await assert.rejects(fs.stat(path.join(dir, 'group-1')), { code: 'ENOENT' });
  });
});

test('readAll refuses a snapshot larger than bytesReadAllMax; streaming still reads it', async () => {
  await withStore({ bytesReadAllMax: 1000 }, async (store) => {
    await store.write(1, meta(1, 1), new Uint8Array(5000));
    await assert.rejects(store.readAll(1), (err) => err instanceof SnapshotTooLargeError && err.code === 'SNAPSHOT_TOO_LARGE');
    const r = await store.openReader(1);
    assert.equal(concat(await collect(r!.chunks())).length, 5000);
  });
});

test('bad metadata and misuse are refused', async () => {
  await withStore({}, async (store, dir) => {
    await assert.rejects(store.createWriter(1, meta(-1, 1)), RangeError);
    await assert.rejects(store.createWriter(1, meta(1.5, 1)), RangeError);
    await assert.rejects(store.createWriter(1, meta(1, 1, [0])), RangeError);
    await assert.rejects(store.createWriter(1, meta(1, 1, [2 ** 32])), RangeError);
    await assert.rejects(store.createWriter(-1, meta(1, 1)), AssertionError);
    await assert.rejects(SnapshotStore.open(path.join(dir, 'x'), { bytesPerChunkMax: 0 }), RangeError);
    await assert.rejects(SnapshotStore.open(path.join(dir, 'x'), { maxKeepSnapshots: 0 }), RangeError);

    const w = await store.createWriter(1, meta(1, 1));
    await w.finish();
    await assert.rejects(w.write(new Uint8Array(1)), AssertionError);
    await w.abort(); // a no-op after finish
    assert.deepEqual(await store.latest(1), meta(1, 1));
  });
});

// ---- crashes and aborts ----

test('an unfinished snapshot is invisible, and abort removes its temporary file', async () => {
  await withStore({}, async (store, dir) => {
    await store.write(1, meta(5, 1), new Uint8Array([5]));
    const w = await store.createWriter(1, meta(9, 2));
    await w.write(new Uint8Array(3000));
    assert.deepEqual(await store.latest(1), meta(5, 1));
    assert.deepEqual((await store.list(1)).map((s) => s.index), [5]);
    const names = await fs.readdir(path.join(dir, 'group-1'));
    assert.equal(names.filter((n) => n.startsWith('.tmp-')).length, 1);
    await w.abort();
    await w.abort();
    assert.deepEqual(await fs.readdir(path.join(dir, 'group-1')), [snapshotFileName(5, 1)]);
  });
});

test('a process killed mid-write leaves no snapshot visible, and reopening removes its temporary file', async () => {
  const dir = await tempDir();
  try {
    const store = await SnapshotStore.open(dir);
    await store.write(7, meta(5, 1), new Uint8Array([1, 2, 3]));
    const script = `
      const { SnapshotStore } = await import(${JSON.stringify(storeModuleUrl)});
      const store = await SnapshotStore.open(${JSON.stringify(dir)}, { bytesPerChunkMax: 4096 });
      const w = await store.createWriter(7, { index: 9, term: 2, conf: { voters: [1], votersOutgoing: [], learners: [], learnersNext: [] } });
      for (let i = 0; i < 10; i++) await w.write(new Uint8Array(10000).fill(i));
      console.log('written');
      process.kill(process.pid, 'SIGKILL');
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    assert.match(child.stdout, /written/);

    const groupDir = path.join(dir, 'group-7');
    const temps = (await fs.readdir(groupDir)).filter((n) => n.startsWith('.tmp-'));
    assert.equal(temps.length, 1);
    assert.ok((await fs.stat(path.join(groupDir, temps[0]!))).size > 90_000);
    // Visible to nobody even before the cleanup.
    assert.deepEqual(await store.latest(7), meta(5, 1));

    const reopened = await SnapshotStore.open(dir);
    assert.deepEqual(await fs.readdir(groupDir), [snapshotFileName(5, 1)]);
    assert.deepEqual(await reopened.readAll(7), { meta: meta(5, 1), data: new Uint8Array([1, 2, 3]) });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

// ---- operating errors ----

/** Opens real files whose writes or syncs fail as a full or failing disk would. */
function faultyOpen(fault: { writeBytesBeforeFailure?: number; failSync?: boolean; code: string; shortWrites?: boolean }) {
  return async (file: string): Promise<SnapshotWriteFile> => {
    const fh = await fs.open(file, 'wx');
    let written = 0;
    const fail = () => Object.assign(new Error(`${fault.code}: injected`), { code: fault.code });
    return {
      async writev(buffers, position) {
        const bytes = buffers.reduce((n, b) => n + b.length, 0);
        if (fault.writeBytesBeforeFailure !== undefined && written + bytes > fault.writeBytesBeforeFailure) throw fail();
        if (fault.shortWrites) {
          // Write at most half of what was asked (at least one byte), as a kernel may.
          const first = buffers[0]!;
          const part = first.subarray(0, Math.max(1, Math.floor(first.length / 2)));
          const r = await fh.writev([part], position);
          written += r.bytesWritten;
          return r;
        }
        const r = await fh.writev(buffers, position);
        written += r.bytesWritten;
        return r;
      },
      async sync() {
        if (fault.failSync) throw fail();
        await fh.sync();
      },
      close: () => fh.close(),
    };
  };
}

test('a full disk (ENOSPC) rejects with its code and leaves nothing behind', async () => {
  await withStore({ openFileForWrite: faultyOpen({ writeBytesBeforeFailure: 2 << 20, code: 'ENOSPC' }) }, async (store, dir) => {
    await store.write(1, meta(5, 1), new Uint8Array([5]));
    await assert.rejects(store.write(1, meta(9, 1), new Uint8Array(3 << 20)), { code: 'ENOSPC' });
    assert.deepEqual(await fs.readdir(path.join(dir, 'group-1')), [snapshotFileName(5, 1)]);
    assert.deepEqual(await store.latest(1), meta(5, 1));

    // A streaming caller sees the same error on every later call, and abort is harmless.
    const w = await store.createWriter(1, meta(10, 1));
    await assert.rejects(w.write(new Uint8Array(3 << 20)), { code: 'ENOSPC' });
    await assert.rejects(w.write(new Uint8Array(1)), { code: 'ENOSPC' });
    await assert.rejects(w.finish(), { code: 'ENOSPC' });
    await w.abort();
    assert.deepEqual(await fs.readdir(path.join(dir, 'group-1')), [snapshotFileName(5, 1)]);
  });
});

test('an I/O error on fsync (EIO) rejects with its code and leaves nothing behind', async () => {
  await withStore({ openFileForWrite: faultyOpen({ failSync: true, code: 'EIO' }) }, async (store, dir) => {
    await assert.rejects(store.write(1, meta(9, 1), new Uint8Array(1000)), { code: 'EIO' });
    assert.deepEqual(await fs.readdir(path.join(dir, 'group-1')), []);
    assert.equal(await store.latest(1), null);
  });
});

test('short writes are continued, not mistaken for complete ones', async () => {
  await withStore({ bytesPerChunkMax: 1000, openFileForWrite: faultyOpen({ shortWrites: true, code: 'EIO' }) }, async (store) => {
    const data = new Uint8Array(randomBytes(12_345));
    const w = await store.createWriter(1, meta(3, 1));
    await w.write(data.subarray(0, 100));
    await w.write(data.subarray(100));
    await w.finish();
    assert.deepEqual(await store.readAll(1), { meta: meta(3, 1), data });
  });
});

// ---- corruption ----

// With bytesPerChunkMax 100, voters [1, 2, 3] and 250 data bytes the file is:
//   header 0..64 (48 fixed + 3 ids × 4 + CRC 4), chunks at 64, 172, 280 (8 + 100, 8 + 100, 8 + 50),
//   trailer at 338..358.
const layout = { header: 0, chunks: [64, 172, 280], trailer: 338, size: 358 };

async function withCorruptible(fn: (store: SnapshotStore, file: string, original: Buffer, data: Uint8Array) => Promise<void>) {
  await withStore({ bytesPerChunkMax: 100 }, async (store) => {
    const data = new Uint8Array(randomBytes(250));
    await store.write(4, meta(42, 6), data);
    const file = (await store.list(4))[0]!.file;
    const original = await fs.readFile(file);
    assert.equal(original.length, layout.size);
    await fn(store, file, original, data);
  });
}

async function flipped(file: string, original: Buffer, at: number, bit = 0): Promise<void> {
  const copy = Buffer.from(original);
  copy[at]! ^= 1 << bit;
  await fs.writeFile(file, copy);
}

test('a flipped bit in the header is reported at offset 0, by latest as well', async () => {
  await withCorruptible(async (store, file, original) => {
    await flipped(file, original, 20); // inside the index
    await assert.rejects(store.latest(4), isCorrupt(file, 0));
    await assert.rejects(store.readAll(4), isCorrupt(file, 0));
    await assert.rejects(store.openReader(4, 42, 6), isCorrupt(file, 0));
    await flipped(file, original, 3); // the magic
    await assert.rejects(store.latest(4), isCorrupt(file, 0));
    await flipped(file, original, 35, 7); // a count: more ids than any conf may hold
    await assert.rejects(store.latest(4), isCorrupt(file, 32));
  });
});

test('a flipped bit in a chunk is reported at that chunk, after the good chunks before it', async () => {
  await withCorruptible(async (store, file, original, data) => {
    await flipped(file, original, layout.chunks[1]! + 8 + 57, 3); // data of the second chunk
    // latest reads only the header, so it still answers; reading reports the corruption.
    assert.deepEqual(await store.latest(4), meta(42, 6));
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.chunks[1]));
    const r = await store.openReader(4);
    const seen: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const c of r!.chunks()) seen.push(c);
    }, isCorrupt(file, layout.chunks[1]));
    assert.deepEqual(seen, [data.subarray(0, 100)]);

    await flipped(file, original, layout.chunks[2]! + 1); // the length of the third chunk
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.chunks[2]));
    await flipped(file, original, layout.chunks[0]! + 5); // the CRC of the first chunk
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.chunks[0]));
  });
});

test('a flipped bit in the trailer is reported at the trailer', async () => {
  await withCorruptible(async (store, file, original) => {
    for (const at of [4, 12, 16]) {
      await flipped(file, original, layout.trailer + at);
      await assert.rejects(store.readAll(4), isCorrupt(file, layout.trailer));
    }
    await flipped(file, original, layout.trailer); // the end marker, read as a chunk length
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.trailer));
  });
});

test('every single-bit flip anywhere in the file is detected, at or before the flipped byte', async () => {
  await withCorruptible(async (store, file, original) => {
    for (let at = 0; at < original.length; at++) {
      await flipped(file, original, at, at % 8);
      await assert.rejects(store.readAll(4), (err) => {
        isCorrupt(file)(err);
        const offset = (err as SnapshotCorruptError).offset;
        assert.ok(offset <= at, `flip at ${at} reported at ${offset}`);
        return true;
      });
    }
  });
});

test('truncation at every length, and bytes appended, are detected', async () => {
  await withCorruptible(async (store, file, original) => {
    for (let size = 0; size < original.length; size++) {
      await fs.writeFile(file, original.subarray(0, size));
      await assert.rejects(store.readAll(4), (err) => {
        isCorrupt(file)(err);
        assert.match((err as Error).message, /truncated/);
        return true;
      }, `truncated to ${size}`);
    }
    await fs.writeFile(file, original.subarray(0, layout.trailer));
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.trailer));
    await fs.writeFile(file, original.subarray(0, layout.chunks[2]! + 30));
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.chunks[2]));
    await fs.writeFile(file, Buffer.concat([original, Buffer.from([0])]));
    await assert.rejects(store.readAll(4), isCorrupt(file, layout.size));
    await fs.writeFile(file, original);
    assert.ok((await store.readAll(4)) !== null);
  });
});

test('chunks that are each intact but reordered are caught by the whole-data CRC', async () => {
  await withStore({ bytesPerChunkMax: 100 }, async (store) => {
    const data = new Uint8Array(randomBytes(200));
    await store.write(4, meta(42, 6), data);
    const file = (await store.list(4))[0]!.file;
    const b = await fs.readFile(file);
    const swapped = Buffer.concat([b.subarray(0, 64), b.subarray(172, 280), b.subarray(64, 172), b.subarray(280)]);
    await fs.writeFile(file, swapped);
    await assert.rejects(store.readAll(4), (err) => isCorrupt(file, 280)(err) && /data CRC/.test((err as Error).message));
  });
});

test('latest does not fall back to an older snapshot when the newest is corrupt', async () => {
  await withStore({}, async (store) => {
    await store.write(1, meta(10, 1), new Uint8Array([1]));
    await store.write(1, meta(20, 1), new Uint8Array([2]));
    const newest = (await store.list(1)).at(-1)!.file;
    await fs.writeFile(newest, Buffer.from('garbage'));
    await assert.rejects(store.latest(1), isCorrupt(newest, 0));
    // The older one is still there for a caller that decides to use it.
    assert.deepEqual(await store.readAll(1, 10), { meta: meta(10, 1), data: new Uint8Array([1]) });
  });
});

test('a file renamed to another snapshot name is caught by the name check', async () => {
  await withStore({}, async (store, dir) => {
    await store.write(1, meta(10, 1), new Uint8Array([1]));
    const moved = path.join(dir, 'group-1', snapshotFileName(11, 1));
    await fs.rename(path.join(dir, 'group-1', snapshotFileName(10, 1)), moved);
    await assert.rejects(store.latest(1), isCorrupt(moved, 16));
  });
});
