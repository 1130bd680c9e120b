// The byte layout of a snapshot file, written once: its constants, the header codec, and the
// errors a reader reports. The writer (snapshot-writer.ts) and the reader (snapshot-reader.ts)
// both go through it.
//
// File layout, all integers little-endian:
//
//   header
//     0   8  magic "FLOTSNAP"
//     8   4  u32 format version (1)
//    12   4  u32 bytesPerChunkMax of the writer (chunk lengths are checked against it)
//    16   8  u64 index
//    24   8  u64 term
//    32  16  u32 × 4 counts of voters, votersOutgoing, learners, learnersNext
//    48  4k  u32 node ids of those four lists, in that order (k = sum of the counts)
//    ..   4  u32 CRC-32 of every header byte before it
//   chunks, zero or more, each
//     0   4  u32 data length n, 1 ≤ n ≤ bytesPerChunkMax
//     4   4  u32 CRC-32 of the 4 length bytes followed by the n data bytes
//     8   n  state-machine data
//   trailer (20 bytes)
//     0   4  u32 0: the end marker (no chunk is empty)
//     4   8  u64 total data bytes in all chunks
//    12   4  u32 CRC-32 of all data, as one stream
//    16   4  u32 CRC-32 of the 16 trailer bytes before it
//   and nothing after it.
//
// Every byte is under a CRC or checked against the file's size, so truncation and bit flips are
// reported as a `SnapshotCorruptError` naming the file and the offset of the structure that
// failed (the header, a chunk or the trailer). The whole-data CRC and length in the trailer catch
// chunks that are individually intact but missing, repeated or reordered.
//

import type { ConfState, NodeId, SnapshotMeta } from '../raft/types.js';
import { crc32 } from './checksum.js';

export const snapshotFormatVersion = 1;
/** The most a writer may put in one chunk, whatever it is configured with; bounds what a reader allocates per chunk. */
export const bytesPerChunkLimit = 64 << 20;
/** The most node ids a ConfState may hold (all four lists together). */
export const confIdsMax = 4096;

export const magic = Buffer.from('FLOTSNAP', 'latin1');
export const headerFixedBytes = 48;
export const frameBytes = 8;
export const trailerBytes = 20;
export const u32Limit = 2 ** 32;

/** A snapshot file failed verification. `offset` is where the failing structure starts. */
export class SnapshotCorruptError extends Error {
  readonly code = 'SNAPSHOT_CORRUPT';
  constructor(readonly file: string, readonly offset: number, readonly reason: string) {
    super(`snapshot file ${file} is corrupt at offset ${offset}: ${reason}`);
    this.name = 'SnapshotCorruptError';
  }
}

/** `readAll` was asked for a snapshot larger than `bytesReadAllMax`. */
export class SnapshotTooLargeError extends Error {
  readonly code = 'SNAPSHOT_TOO_LARGE';
  constructor(readonly file: string, readonly bytes: number, readonly bytesMax: number) {
    super(`snapshot file ${file} holds up to ${bytes} data bytes, more than readAll loads (${bytesMax}); stream it`);
    this.name = 'SnapshotTooLargeError';
  }
}

export function snapshotFileName(index: number, term: number): string {
  return `snapshot-${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}`;
}

export function headerBytes(conf: ConfState): number {
  return headerFixedBytes + 4 * confLists(conf).reduce((n, list) => n + list.length, 0) + 4;
}

export function confLists(conf: ConfState): NodeId[][] {
  return [conf.voters, conf.votersOutgoing, conf.learners, conf.learnersNext];
}

export function encodeHeader(meta: SnapshotMeta, chunkMax: number): Buffer {
  checkIntegerIn('snapshot index', meta.index, 0, Number.MAX_SAFE_INTEGER);
  checkIntegerIn('snapshot term', meta.term, 0, Number.MAX_SAFE_INTEGER);
  const lists = confLists(meta.conf);
  const header = Buffer.alloc(headerBytes(meta.conf));
  if ((header.length - headerFixedBytes - 4) / 4 > confIdsMax) {
    throw new RangeError(`snapshot conf lists ${(header.length - headerFixedBytes - 4) / 4} node ids, more than ${confIdsMax}`);
  }
  magic.copy(header, 0);
  header.writeUInt32LE(snapshotFormatVersion, 8);
  header.writeUInt32LE(chunkMax, 12);
  writeU64(header, 16, meta.index);
  writeU64(header, 24, meta.term);
  let at = headerFixedBytes;
  lists.forEach((list, i) => {
    header.writeUInt32LE(list.length, 32 + 4 * i);
    for (const id of list) {
      checkIntegerIn('node id', id, 1, u32Limit - 1);
      header.writeUInt32LE(id, at);
      at += 4;
    }
  });
  header.writeUInt32LE(crc32(header.subarray(0, at)), at);
  return header;
}

export function copyMeta(meta: SnapshotMeta): SnapshotMeta {
  const c = meta.conf;
  return {
    index: meta.index,
    term: meta.term,
    conf: { voters: [...c.voters], votersOutgoing: [...c.votersOutgoing], learners: [...c.learners], learnersNext: [...c.learnersNext] },
  };
}

export function writeU64(buf: Buffer, at: number, value: number): void {
  buf.writeUInt32LE(value % u32Limit, at);
  buf.writeUInt32LE(Math.floor(value / u32Limit), at + 4);
}

/** A u64 as a number; values above 2^53 (never written) come back unsafe and fail the checks they meet. */
export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * u32Limit + buf.readUInt32LE(at);
}

export function checkIntegerIn(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}

export function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
