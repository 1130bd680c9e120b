// The on-disk layout of the write-ahead log shared by all groups of one shard worker.
//
// A segment file is a sequence of frames. One frame is what one batch (one turn of the worker,
// every group it touched) wrote with one write; a torn write can only damage the last frame.
//
//   frame  := header(24) body
//   header := magic u32 | bodyBytes u32 | crc32 u32 | segment u32 | seq f64
//             (the CRC-32 covers bodyBytes, segment, seq and the body; `segment` is the number of
//             the segment the frame was written to, 0 in logs written before segments were
//             recycled: a frame left in a reused file by the segment it held before is known
//             by it)
//   body   := record*
//   record := kind u8 | group u32 | payload
//
// All integers are little-endian; indexes and terms are f64 (exact up to 2^53). The frame's
// CRC-32 covers its header fields and every record in it, so a record carries only its length
// (implied by its kind and counts); `seq` numbers frames across segments and lets recovery tell
// a torn tail from a damaged record that is followed by good frames.
//
// This file is the one place that knows these bytes: the writer (wal.ts) lays records out with
// the write* functions, recovery (wal-recovery.ts) reads them back with readRecords.
//
// Payloads by kind:
//   Entries     firstIndex f64 | count u32 | (term f64 | type u8 | bytes u32 | data)*
//               — replaces the group's log from firstIndex on (a new leader's entries win)
//   HardState   term f64 | vote u32 | commit f64
//   Snapshot    index f64 | term f64 | reset u8 | conf
//               — reset 1: a leader's snapshot was installed, the log restarts after it;
//                 reset 0: the host snapshotted its state machine, the log is kept
//   Compact     index f64 | term f64 — entries up to index (whose term that is) are no longer
//               needed (covered by a snapshot)
//   Rewrite     firstIndex f64 | count u32 | prevTerm f64 | entries as in Entries
//               — the group's whole live log written again to free an old segment: the log is
//                 exactly these entries, after (firstIndex - 1, prevTerm)
//   Remove      (nothing) — the group left this shard
//   conf := 4 lists (voters, outgoing, learners, learnersNext), each count u16 | id u32*
import type { ConfState, Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { crc32, crc32SingleBitError } from './checksum.js';

export const FRAME_MAGIC = 0x31574c46; // "FLW1" read as little-endian bytes
export const FRAME_HEADER_BYTES = 24;

export enum RecordKind {
  Entries = 1,
  HardState = 2,
  Snapshot = 3,
  Compact = 4,
  Rewrite = 5,
  Remove = 6,
}

export const RECORD_HEADER_BYTES = 5;
export const ENTRY_HEADER_BYTES = 13;

export function confBytes(c: ConfState): number {
  return 8 + 4 * (c.voters.length + c.votersOutgoing.length + c.learners.length + c.learnersNext.length);
}

export function writeConf(view: DataView, at: number, c: ConfState): number {
  for (const list of [c.voters, c.votersOutgoing, c.learners, c.learnersNext]) {
    view.setUint16(at, list.length, true);
    at += 2;
    for (const id of list) { view.setUint32(at, id, true); at += 4; }
  }
  return at;
}

export function readConf(view: DataView, at: number): { conf: ConfState; at: number } {
  const lists: number[][] = [];
  for (let l = 0; l < 4; l++) {
    const n = view.getUint16(at, true);
    at += 2;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) { ids.push(view.getUint32(at, true)); at += 4; }
    lists.push(ids);
  }
  return { conf: { voters: lists[0]!, votersOutgoing: lists[1]!, learners: lists[2]!, learnersNext: lists[3]! }, at };
}

/**
 * Every frame is written with this many zero bytes after it (overwritten by the next frame), so
 * that in a recycled segment, whose file still holds an older segment's bytes, the end of what
 * was written is a zero header rather than stale data. Segments keep room for it at their end.
 */
export const END_MARK_BYTES = FRAME_HEADER_BYTES;

/**
 * A zero header where a frame would start (or zeros up to the end of the file, an end mark cut
 * short): nothing was written from here on (see END_MARK_BYTES).
 */
export function isEndMark(data: Buffer, off: number): boolean {
  const end = Math.min(off + END_MARK_BYTES, data.length);
  for (let i = off; i < end; i++) if (data[i] !== 0) return false;
  return end > off;
}

/** A deleted segment's file kept for reuse (its size already allocated): see Wal, "Spares". */
export function spareName(n: number): string {
  return `spare-${String(n).padStart(20, '0')}.wal`;
}

export function parseSpareName(name: string): number | null {
  const m = /^spare-(\d{20})\.wal$/.exec(name);
  return m === null ? null : Number(m[1]);
}

export function segmentName(seq: number): string {
  return `segment-${String(seq).padStart(20, '0')}.wal`;
}

export function parseSegmentName(name: string): number | null {
  const m = /^segment-(\d{20})\.wal$/.exec(name);
  return m === null ? null : Number(m[1]);
}

// --- Frames ---

/** Fills in a frame's header (magic, body length, segment, sequence, CRC) over a body already in place. */
export function sealFrame(buf: Buffer, frameBytes: number, segment: number, seq: number): void {
  buf.writeUInt32LE(FRAME_MAGIC, 0);
  buf.writeUInt32LE(frameBytes - FRAME_HEADER_BYTES, 4);
  buf.writeUInt32LE(segment >>> 0, 12);
  buf.writeDoubleLE(seq, 16);
  buf.writeUInt32LE(frameCrc(buf, 0, frameBytes - FRAME_HEADER_BYTES), 8);
}

/** The frame's CRC covers its length, sequence number and body: every field but magic and itself. */
export function frameCrc(buf: Buffer, off: number, bodyBytes: number): number {
  let c = crc32(buf.subarray(off + 4, off + 8));
  c = crc32(buf.subarray(off + 12, off + FRAME_HEADER_BYTES), c);
  return crc32(buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + bodyBytes), c);
}

/** The segment a frame says it was written to (0: a log from before recycling, any). */
export function frameSegment(data: Buffer, off: number): number {
  return data.readUInt32LE(off + 12);
}

/** Whether the frame belongs to segment `seq` (see the header layout). */
export function frameOwnedBy(data: Buffer, off: number, seq: number): boolean {
  const s = frameSegment(data, off);
  return s === 0 || s === (seq >>> 0);
}

/** Why the frame at `off` is not an intact frame following sequence `seqAfter`, or null. */
export function frameProblem(data: Buffer, off: number, seqAfter: number): string | null {
  if (off + FRAME_HEADER_BYTES > data.length) return 'truncated frame header';
  if (data.readUInt32LE(off) !== FRAME_MAGIC) return 'bad magic';
  const bodyBytes = data.readUInt32LE(off + 4);
  if (off + FRAME_HEADER_BYTES + bodyBytes > data.length) return 'truncated frame';
  const seq = data.readDoubleLE(off + 16);
  if (frameCrc(data, off, bodyBytes) !== data.readUInt32LE(off + 8)) return 'checksum mismatch';
  if (seq <= seqAfter) return `frame sequence ${seq} after ${seqAfter}`;
  return null;
}

/** A bit of the file: `data[at] ^ (1 << bit)` undoes it. */
export interface FlippedBit {
  at: number;
  bit: number;
}

/**
 * Whether the damaged frame at `off` is a complete frame spoiled by exactly one flipped bit: the
 * bit whose flip makes it an intact frame after `seqAfter` whose records parse, or null. Every
 * field is tried: the magic, the length (a flip there moves the frame's end, so each of its 32
 * bits is tried with the extent it implies), the stored CRC, and every byte the CRC covers
 * (located in one pass from the CRC's syndrome: see crc32SingleBitError). A torn write leaves
 * whole sectors zero or stale, or the file ending inside the frame; it does not look like this.
 * So that a tear cannot pass for a flip, the whole write must show: the frame's end mark in
 * full, the flipped bit's sector not all zeros (see wholeWriteOnDisk), and not everything from
 * the flipped bit on zero (tornIntoZeros: a tear at that very byte).
 * Recovery (wal-recovery.ts) calls it only for a damaged frame that no intact frame follows.
 */
export function frameFlippedBit(data: Buffer, off: number, seqAfter: number): FlippedBit | null {
  if (off + FRAME_HEADER_BYTES > data.length) return null;
  const candidates: FlippedBit[] = [];
  const magicDiff = (data.readUInt32LE(off) ^ FRAME_MAGIC) >>> 0;
  if (magicDiff !== 0) {
    if (isPowerOfTwo(magicDiff)) candidates.push(fieldBit(off, magicDiff));
  } else {
    const bodyBytes = data.readUInt32LE(off + 4);
    if (off + FRAME_HEADER_BYTES + bodyBytes <= data.length) {
      const syndrome = (data.readUInt32LE(off + 8) ^ frameCrc(data, off, bodyBytes)) >>> 0;
      if (isPowerOfTwo(syndrome)) candidates.push(fieldBit(off + 8, syndrome));
      // The CRC covers bodyBytes (stream bytes 0..4, tried below with their own extents),
      // segment and seq (4..16), then the body.
      const e = crc32SingleBitError(syndrome, 16 + bodyBytes);
      if (e !== null && e.byte >= 4) candidates.push({ at: e.byte < 16 ? off + 12 + (e.byte - 4) : off + FRAME_HEADER_BYTES + (e.byte - 16), bit: e.bit });
    }
    for (let k = 0; k < 32; k++) {
      if (off + FRAME_HEADER_BYTES + ((bodyBytes ^ (2 ** k)) >>> 0) <= data.length) candidates.push({ at: off + 4 + (k >> 3), bit: k & 7 });
    }
  }
  for (const c of candidates) {
    // Tried in place (the buffer is recovery's own copy of the file) and put back.
    data[c.at] = data[c.at]! ^ (1 << c.bit);
    const end = off + FRAME_HEADER_BYTES + frameBodyBytes(data, off);
    const ok = frameProblem(data, off, seqAfter) === null && recordsParse(data, off + FRAME_HEADER_BYTES, end);
    data[c.at] = data[c.at]! ^ (1 << c.bit);
    if (ok && wholeWriteOnDisk(data, off, end, c.at) && !tornIntoZeros(data, c.at, end)) return c;
  }
  return null;
}

/**
 * Whether the frame may be a write torn at byte `at` over zeros (a file's fresh or reserved
 * space), which a flipped bit there would also explain: the byte at `at` and everything after it
 * up to the end mark read zero. Disks usually write whole sectors, but nothing promises it (and
 * the simulator tears at any byte); a tear there lost a byte with one bit set.
 */
function tornIntoZeros(data: Buffer, at: number, end: number): boolean {
  const to = Math.min(data.length, end + END_MARK_BYTES);
  for (let i = at; i < to; i++) if (data[i] !== 0) return false;
  return true;
}

/** The sector size torn writes are reasoned about in (the smallest a disk writes whole). */
const SECTOR_BYTES = 512;

/**
 * Whether the write of the frame [off, end) plainly reached the disk in full around `at`: its
 * end mark (written with it, after it) is there in full, and the bytes of `at`'s sector that
 * belong to the write are not all zero (an unwritten sector of a file that grew reads as
 * zeros; a frame whose tail lay alone in such a sector could differ from what was written by
 * one bit, and is a torn write).
 */
function wholeWriteOnDisk(data: Buffer, off: number, end: number, at: number): boolean {
  if (end + END_MARK_BYTES > data.length) return false;
  for (let i = end; i < end + END_MARK_BYTES; i++) if (data[i] !== 0) return false;
  const from = Math.max(off, at - (at % SECTOR_BYTES));
  const to = Math.min(end + END_MARK_BYTES, at - (at % SECTOR_BYTES) + SECTOR_BYTES);
  for (let i = from; i < to; i++) if (data[i] !== 0) return true;
  return false;
}

function isPowerOfTwo(n: number): boolean {
  return n !== 0 && (n & (n - 1)) === 0;
}

/** The bit of a little-endian u32 field at `at` that `diff` (one bit set) names. */
function fieldBit(at: number, diff: number): FlippedBit {
  const p = 31 - Math.clz32(diff);
  return { at: at + (p >> 3), bit: p & 7 };
}

const ignoreRecords: RecordVisitor = { entries() {}, hardState() {}, snapshot() {}, compact() {}, remove() {} };

function recordsParse(data: Buffer, start: number, end: number): boolean {
  const bad = new Error('record does not parse');
  try {
    readRecords(data, start, end, ignoreRecords, () => { throw bad; });
    return true;
  } catch (e) {
    if (e === bad || e instanceof RangeError) return false;
    throw e;
  }
}

export function frameBodyBytes(data: Buffer, off: number): number {
  return data.readUInt32LE(off + 4);
}

export function frameSeq(data: Buffer, off: number): number {
  return data.readDoubleLE(off + 16);
}

// --- Records: sizes and writers (each writes one record at `at` and returns where it ends) ---

export const HARD_STATE_RECORD_BYTES = RECORD_HEADER_BYTES + 20;
export const COMPACT_RECORD_BYTES = RECORD_HEADER_BYTES + 16;
export const REMOVE_RECORD_BYTES = RECORD_HEADER_BYTES;

export function snapshotRecordBytes(conf: ConfState): number {
  return RECORD_HEADER_BYTES + 17 + confBytes(conf);
}

/** Bytes of an Entries (or Rewrite) record's fixed part, before its entries. */
export function entriesHeadBytes(kind: RecordKind.Entries | RecordKind.Rewrite): number {
  return RECORD_HEADER_BYTES + (kind === RecordKind.Rewrite ? 20 : 12);
}

export function entryBytes(e: Entry): number {
  return ENTRY_HEADER_BYTES + e.data.length;
}

function writeRecordHeader(buf: Buffer, at: number, kind: RecordKind, group: number): number {
  buf[at] = kind;
  buf.writeUInt32LE(group, at + 1);
  return at + RECORD_HEADER_BYTES;
}

export function writeHardState(buf: Buffer, view: DataView, at: number, group: number, hs: HardState): number {
  const p = writeRecordHeader(buf, at, RecordKind.HardState, group);
  view.setFloat64(p, hs.term, true);
  view.setUint32(p + 8, hs.vote, true);
  view.setFloat64(p + 12, hs.commit, true);
  return p + 20;
}

export function writeSnapshot(buf: Buffer, view: DataView, at: number, group: number, meta: SnapshotMeta, reset: boolean): number {
  const p = writeRecordHeader(buf, at, RecordKind.Snapshot, group);
  view.setFloat64(p, meta.index, true);
  view.setFloat64(p + 8, meta.term, true);
  view.setUint8(p + 16, reset ? 1 : 0);
  return writeConf(view, p + 17, meta.conf);
}

export function writeCompact(buf: Buffer, view: DataView, at: number, group: number, index: number, term: number): number {
  const p = writeRecordHeader(buf, at, RecordKind.Compact, group);
  view.setFloat64(p, index, true);
  view.setFloat64(p + 8, term, true);
  return p + 16;
}

export function writeRemove(buf: Buffer, at: number, group: number): number {
  return writeRecordHeader(buf, at, RecordKind.Remove, group);
}

/** The fixed part of an Entries or Rewrite record (prevTerm only for Rewrite); its entries follow. */
export function writeEntriesHead(
  buf: Buffer, view: DataView, at: number, kind: RecordKind.Entries | RecordKind.Rewrite, group: number,
  first: number, count: number, prevTerm: number,
): number {
  const p = writeRecordHeader(buf, at, kind, group);
  view.setFloat64(p, first, true);
  view.setUint32(p + 8, count, true);
  if (kind === RecordKind.Rewrite) {
    view.setFloat64(p + 12, prevTerm, true);
    return p + 20;
  }
  return p + 12;
}

/** One entry of an Entries or Rewrite record; its data starts at the returned end minus its length. */
export function writeEntry(buf: Buffer, view: DataView, at: number, e: Entry): number {
  view.setFloat64(at, e.term, true);
  view.setUint8(at + 8, e.type);
  view.setUint32(at + 9, e.data.length, true);
  buf.set(e.data, at + ENTRY_HEADER_BYTES);
  return at + ENTRY_HEADER_BYTES + e.data.length;
}

// --- Records: the reader ---

/** Where an entry read back lies in its frame (`off` is relative to the start of `data`). */
export interface EntryPosition {
  term: number;
  type: number;
  off: number;
  len: number;
  data: undefined;
}

export interface RecordVisitor {
  entries(group: number, first: number, count: number, rewritePrevTerm: number | null, positions: EntryPosition[]): void;
  hardState(group: number, hs: HardState): void;
  snapshot(group: number, meta: SnapshotMeta, reset: boolean): void;
  compact(group: number, index: number, term: number): void;
  remove(group: number): void;
}

/**
 * Reads the records of one frame body, data[start, end), in order, handing each to `visit`.
 * `fail(at, why)` reports a record that does not parse (it must throw).
 */
export function readRecords(data: Buffer, start: number, end: number, visit: RecordVisitor, fail: (at: number, why: string) => never): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let p = start;
  while (p < end) {
    if (p + RECORD_HEADER_BYTES > end) fail(p, 'truncated record');
    const kind = data[p]! as RecordKind;
    const group = data.readUInt32LE(p + 1);
    const at = p + RECORD_HEADER_BYTES;
    switch (kind) {
      case RecordKind.Entries:
      case RecordKind.Rewrite: {
        const first = view.getFloat64(at, true);
        const n = view.getUint32(at + 8, true);
        const prevTerm = kind === RecordKind.Rewrite ? view.getFloat64(at + 12, true) : null;
        const positions: EntryPosition[] = [];
        let q = at + (prevTerm === null ? 12 : 20);
        for (let j = 0; j < n; j++) {
          if (q + ENTRY_HEADER_BYTES > end) fail(p, 'truncated entry');
          const len = view.getUint32(q + 9, true);
          positions.push({ term: view.getFloat64(q, true), type: view.getUint8(q + 8), off: q + ENTRY_HEADER_BYTES, len, data: undefined });
          q += ENTRY_HEADER_BYTES + len;
        }
        if (q > end) fail(p, 'entry beyond frame');
        visit.entries(group, first, n, prevTerm, positions);
        p = q;
        break;
      }
      case RecordKind.HardState:
        visit.hardState(group, { term: view.getFloat64(at, true), vote: view.getUint32(at + 8, true), commit: view.getFloat64(at + 12, true) });
        p = at + 20;
        break;
      case RecordKind.Snapshot: {
        const index = view.getFloat64(at, true);
        const term = view.getFloat64(at + 8, true);
        const reset = view.getUint8(at + 16) === 1;
        const c = readConf(view, at + 17);
        visit.snapshot(group, { index, term, conf: c.conf }, reset);
        p = c.at;
        break;
      }
      case RecordKind.Compact:
        visit.compact(group, view.getFloat64(at, true), view.getFloat64(at + 8, true));
        p = at + 16;
        break;
      case RecordKind.Remove:
        visit.remove(group);
        p = at;
        break;
      default:
        fail(p, `unknown record kind ${String(kind)}`);
    }
  }
}
