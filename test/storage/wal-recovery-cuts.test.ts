// Recovery's cuts and its rule for the last frame (docs/storage.md, "Recovery"): a torn tail is
// cut and every cut is reported (file, offset, bytes dropped); a last frame that is complete in
// the file and spoiled by one flipped bit is corruption, never cut.
// The logs here are written with `reserveBytes: 0` (no space reserved ahead), so a file's size is
// where its frames end: the tests tear and flip bytes by position from there.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32, crc32SingleBitError } from '../../src/storage/checksum.js';
import { END_MARK_BYTES, FRAME_HEADER_BYTES } from '../../src/storage/wal-format.js';
import { Wal, WalError, type WalCut } from '../../src/storage/wal.js';
import { big, cleanup, range, segmentFiles, texts, tmpdir } from './wal-helpers.js';

after(cleanup);

/** A log of two batches in one segment; the second frame is the last. Returns its bounds. */
async function twoFrames(lastBytes = 3000): Promise<{ dir: string; file: string; last: number; end: number }> {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 1 << 20, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 3, 1), hardState: { term: 1, vote: 1, commit: 3 } }]);
  const file = path.join(dir, segmentFiles(dir)[0]!);
  const last = fs.statSync(file).size - END_MARK_BYTES;
  await wal.append([{ group: 1, entries: [big(4, 1, lastBytes, 7)], hardState: { term: 1, vote: 1, commit: 4 } }]);
  await wal.close();
  const end = fs.statSync(file).size - END_MARK_BYTES;
  return { dir, file, last, end };
}

function copyDir(dir: string): string {
  const to = tmpdir();
  for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(to, f));
  return to;
}

/** Opening `dir` keeps the first frame's three entries and reports one cut, at `offset`. */
async function assertOneCutAt(dir: string, offset: number): Promise<void> {
  const { wal, cuts } = openCuts(dir);
  try {
    assert.equal(texts(wal, 1).length, 3);
    assert.equal(cuts.length, 1);
    assert.equal(cuts[0]!.offset, offset);
  } finally {
    await wal.close();
  }
}

function openCuts(dir: string): { wal: Wal; cuts: WalCut[] } {
  const cuts: WalCut[] = [];
  const wal = Wal.open({ dir, segmentBytes: 1 << 20, reserveBytes: 0, onCut: (c) => cuts.push(c) });
  return { wal, cuts };
}

test('one flipped bit anywhere in the last complete frame is WAL_CORRUPT naming the file and the frame, not a cut', async () => {
  const { dir, file, last, end } = await twoFrames();
  const original = fs.readFileSync(file);
  // Every header byte (magic, length, CRC, segment, seq) and a spread of body bytes.
  const positions = [...Array.from({ length: FRAME_HEADER_BYTES }, (_, i) => last + i)];
  for (let p = last + FRAME_HEADER_BYTES; p < end; p += 97) positions.push(p);
  positions.push(end - 1);
  for (const [k, at] of positions.entries()) {
    const bit = k % 8;
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    const bytes = Buffer.from(original);
    bytes[at] = bytes[at]! ^ (1 << bit);
    fs.writeFileSync(f, bytes);
    const cuts: WalCut[] = [];
    assert.throws(() => Wal.open({ dir: copy, segmentBytes: 1 << 20, onCut: (c) => cuts.push(c) }), (e: unknown) => {
      assert.ok(e instanceof WalError, `byte ${at} bit ${bit}: ${String(e)}`);
      assert.equal(e.code, 'WAL_CORRUPT', `byte ${at} bit ${bit}`);
      assert.equal(e.file, f);
      assert.equal(e.offset, last);
      assert.match(e.message, new RegExp(`bit ${bit} of byte ${at}\\b`));
      return true;
    });
    assert.deepEqual(cuts, [], `byte ${at} bit ${bit}: nothing is cut`);
    assert.equal(fs.statSync(f).size, original.length, 'the file is left as it was, for the operator');
  }
});

test('a last frame the file ends inside (a torn write) is cut, and the cut is reported with file, offset and bytes dropped', async () => {
  const { dir, file, last, end } = await twoFrames();
  for (const keep of [last + 3, last + FRAME_HEADER_BYTES + 10, end - 1]) {
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    fs.truncateSync(f, keep);
    const { wal, cuts } = openCuts(copy);
    try {
      assert.deepEqual(texts(wal, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
      assert.equal(cuts.length, 1);
      assert.equal(cuts[0]!.file, f);
      assert.equal(cuts[0]!.offset, last);
      assert.equal(cuts[0]!.bytesDropped, keep - last);
      assert.match(cuts[0]!.reason, /truncated/);
    } finally {
      await wal.close();
    }
  }
});

test('a complete last frame with a sector of zeros or of stale bytes in it (a torn write) is cut and reported', async () => {
  const { dir, file, last, end } = await twoFrames(5000);
  const original = fs.readFileSync(file);
  // The first whole 512-byte sector inside the second frame's body.
  const sector = Math.ceil((last + FRAME_HEADER_BYTES) / 512) * 512;
  assert.ok(sector + 512 <= end);
  for (const fill of ['zeros', 'stale'] as const) {
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    const bytes = Buffer.from(original);
    if (fill === 'zeros') bytes.fill(0, sector, sector + 512);
    else for (let i = 0; i < 512; i++) bytes[sector + i] = (i * 131 + 17) & 0xff;
    fs.writeFileSync(f, bytes);
    const { wal, cuts } = openCuts(copy);
    try {
      assert.deepEqual(texts(wal, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1'], fill);
      assert.equal(cuts.length, 1, fill);
      assert.deepEqual({ file: cuts[0]!.file, offset: cuts[0]!.offset, bytesDropped: cuts[0]!.bytesDropped },
        { file: f, offset: last, bytesDropped: bytes.length - last }, fill);
      assert.match(cuts[0]!.reason, /checksum mismatch/);
    } finally {
      await wal.close();
    }
  }
});

test('a tear that differs from the frame by one bit is still a tear: end mark missing, or the bit alone in a zero sector', async () => {
  const { dir, file, last, end } = await twoFrames();
  const original = fs.readFileSync(file);
  // (1) The write stopped inside the end mark, stale bytes there (a recycled file), and the
  // frame's last byte is stale too, one bit off.
  {
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    const bytes = Buffer.from(original);
    bytes[end - 1] = bytes[end - 1]! ^ 0x04;
    bytes.fill(0x5a, end + 10, end + END_MARK_BYTES);
    fs.writeFileSync(f, bytes);
    await assertOneCutAt(copy, last);
  }
  // (2) The frame's tail lies alone in a sector that was never written (zeros), and those few
  // bytes held one set bit: zeroing them is a one-bit difference, but it is a torn write.
  {
    const dir2 = tmpdir();
    const wal = Wal.open({ dir: dir2, segmentBytes: 1 << 20, reserveBytes: 0 });
    await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
    const f = path.join(dir2, segmentFiles(dir2)[0]!);
    const at = fs.statSync(f).size - END_MARK_BYTES;
    // Size the second frame so that it ends one byte into a sector, that byte being the high
    // byte of the f64 commit, 0x40 (one bit).
    const overhead = FRAME_HEADER_BYTES + 5 + 12 + 13 + 25; // frame, entries record, one entry, hard state
    const target = Math.ceil((at + overhead + 600) / 512) * 512 + 1;
    await wal.append([{ group: 1, entries: [big(4, 1, target - at - overhead, 9)], hardState: { term: 1, vote: 1, commit: 4 } }]);
    await wal.close();
    const bytes = fs.readFileSync(f);
    const frameEnd = bytes.length - END_MARK_BYTES;
    assert.equal(frameEnd % 512, 1, 'the frame ends one byte into a sector');
    assert.equal(bytes[frameEnd - 1], 0x40);
    bytes[frameEnd - 1] = 0;
    fs.writeFileSync(f, bytes);
    const cuts: WalCut[] = [];
    const again = Wal.open({ dir: dir2, segmentBytes: 1 << 20, onCut: (c) => cuts.push(c) });
    try {
      assert.equal(texts(again, 1).length, 3);
      assert.equal(cuts.length, 1);
      assert.equal(cuts[0]!.offset, at);
    } finally {
      await again.close();
    }
  }
  // (3) The same frame with a flip in a byte whose sector holds written data is corruption.
  {
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    const bytes = Buffer.from(original);
    bytes[end - 1] = bytes[end - 1]! ^ 0x04;
    fs.writeFileSync(f, bytes);
    assert.throws(() => Wal.open({ dir: copy, segmentBytes: 1 << 20 }), (e: unknown) => e instanceof WalError && e.code === 'WAL_CORRUPT' && e.offset === last);
  }
  // (4) A write torn at its very last byte, mid-sector, over zeros (nothing promises that a disk
  // writes whole sectors; the simulator tears at any byte): that byte, the f64 commit's high
  // byte 0x40, reads zero, as does all after it. One bit explains it, and so does the tear.
  {
    const copy = copyDir(dir);
    const f = path.join(copy, path.basename(file));
    const bytes = Buffer.from(original);
    assert.equal(bytes[end - 1], 0x40, "the frame ends with the hard state's commit, 4 as an f64");
    assert.notEqual(end % 512, 1, 'the byte shares its sector with the rest of the write');
    bytes[end - 1] = 0;
    fs.writeFileSync(f, bytes);
    await assertOneCutAt(copy, last);
  }
});

test('the later segments removed after a torn tail are reported, each with its size', async () => {
  const dir = tmpdir();
  const wal = Wal.open({ dir, segmentBytes: 8192, reserveBytes: 0 });
  await wal.append([{ group: 1, entries: range(1, 3, 1) }]);
  const [s1] = segmentFiles(dir);
  const before = fs.statSync(path.join(dir, s1!)).size;
  await wal.append([{ group: 1, entries: [big(4, 1, 4000)] }]);
  await wal.append([{ group: 1, entries: [big(5, 1, 6000)] }]); // rolls to segment 2
  await wal.close();
  const files = segmentFiles(dir);
  assert.equal(files.length, 2);
  const f1 = path.join(dir, files[0]!);
  const f2 = path.join(dir, files[1]!);
  fs.truncateSync(f1, before + 100);
  fs.writeFileSync(f2, Buffer.alloc(300)); // created, nothing intact in it
  const cuts: WalCut[] = [];
  const again = Wal.open({ dir, segmentBytes: 8192, onCut: (c) => cuts.push(c) });
  try {
    assert.deepEqual(texts(again, 1), ['1/1:e1t1', '2/1:e2t1', '3/1:e3t1']);
    assert.equal(cuts.length, 2);
    assert.deepEqual({ file: cuts[0]!.file, offset: cuts[0]!.offset, bytesDropped: cuts[0]!.bytesDropped },
      { file: f1, offset: before - END_MARK_BYTES, bytesDropped: 100 + END_MARK_BYTES });
    assert.deepEqual({ file: cuts[1]!.file, offset: cuts[1]!.offset, bytesDropped: cuts[1]!.bytesDropped }, { file: f2, offset: 0, bytesDropped: 300 });
  } finally {
    await again.close();
  }
});

test('a clean log is opened with no cut reported', async () => {
  const { dir } = await twoFrames();
  const { wal, cuts } = openCuts(dir);
  try {
    assert.equal(texts(wal, 1).length, 4);
    assert.deepEqual(cuts, []);
  } finally {
    await wal.close();
  }
});

test('crc32SingleBitError finds the one flipped bit from the syndrome, and nothing for two', () => {
  let seed = 12345;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + (next() % 3000);
    const msg = Buffer.alloc(n);
    for (let i = 0; i < n; i++) msg[i] = next() & 0xff;
    const byte = next() % n;
    const bit = next() % 8;
    const bad = Buffer.from(msg);
    bad[byte] = bad[byte]! ^ (1 << bit);
    assert.deepEqual(crc32SingleBitError(crc32(msg) ^ crc32(bad), n), { byte, bit }, `trial ${trial}`);
    if (n > 1) {
      const other = (byte + 1 + (next() % (n - 1))) % n;
      bad[other] = bad[other]! ^ 0x81;
      const found = crc32SingleBitError(crc32(msg) ^ crc32(bad), n);
      if (found !== null) {
        // Possible in principle (a syndrome collision), never with the true position.
        assert.notDeepEqual(found, { byte, bit });
      }
    }
  }
  assert.equal(crc32SingleBitError(0, 10), null);
});
