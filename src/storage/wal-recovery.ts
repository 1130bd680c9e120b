// Recovery of a write-ahead log directory: which segment files there are, where the intact
// frames of each end, and every record in them, in order. The rules (docs/storage.md,
// "Recovery"): segment numbers must be contiguous; a damaged frame is a torn tail only if no
// intact frame follows it, in its segment or a later one (the writer syncs a segment before it
// writes the next), and it is not a complete frame that one flipped bit explains (a torn write
// cannot look like that); anything else is WAL_CORRUPT, never a silently shorter log. Every cut
// is reported to the caller (`onCut`: file, offset, bytes dropped), which logs it. A segment's
// written part also ends cleanly, with nothing to cut, at the end of its file, at a zero end
// mark, or at an intact frame that another segment wrote: the leftovers of a recycled file.
import * as path from 'node:path';
import type { FileSystem } from '../io/file-system.js';
import {
  FRAME_HEADER_BYTES, FRAME_MAGIC, frameBodyBytes, frameFlippedBit, frameOwnedBy, frameProblem, frameSeq, isEndMark,
  parseSegmentName, parseSpareName, readRecords, segmentName, spareName, type RecordVisitor,
} from './wal-format.js';

export type WalCorruptReporter = (message: string, file: string, offset: number) => never;

/** Bytes recovery cut off the log (a torn tail, or a later segment after one): the log must say so. */
export interface WalCut {
  file: string;
  /** Where the file now ends (0: the file was removed). */
  offset: number;
  bytesDropped: number;
  /** Why: the damage found at `offset`, or the torn tail the file came after. */
  reason: string;
}

export interface RecoveredSegment {
  seq: number;
  file: string;
  /** Where its intact frames end: the next frame goes there. */
  end: number;
}

export interface Recovery {
  /** In order; the last may have been cut back to its intact frames. */
  segments: RecoveredSegment[];
  /** Sequence number of the last intact frame (0 for an empty log). */
  frameSeq: number;
  /** Spare files (deleted segments kept for reuse), by path, with the highest spare number seen. */
  spares: string[];
  spareMax: number;
}

/**
 * Reads every segment of `dir` in order, handing each record to `visitorFor(segment seq)`, cuts a
 * torn tail (and removes the later segments, which then hold no intact frame), telling `onCut`
 * about each, and reports any other damage through `corrupt` (which throws).
 */
export function recoverSegments(
  fs: FileSystem, dir: string, visitorFor: (seq: number) => RecordVisitor, corrupt: WalCorruptReporter, onCut: (cut: WalCut) => void,
): Recovery {
  const seqs = fs.readdirSync(dir).map(parseSegmentName).filter((s): s is number => s !== null).sort((a, b) => a - b);
  const fileOf = (seq: number): string => path.join(dir, segmentName(seq));
  for (let i = 1; i < seqs.length; i++) {
    // Segments are only ever deleted oldest first, so a hole means a file went missing.
    if (seqs[i] !== seqs[i - 1]! + 1) corrupt(`segment ${fileOf(seqs[i - 1]! + 1)} is missing`, fileOf(seqs[i - 1]! + 1), 0);
  }
  const names = fs.readdirSync(dir);
  const spareNums = names.map(parseSpareName).filter((n): n is number => n !== null).sort((a, b) => a - b);
  const out: Recovery = { segments: [], frameSeq: 0, spares: spareNums.map((n) => path.join(dir, spareName(n))), spareMax: spareNums.at(-1) ?? 0 };
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const file = fileOf(seq);
    const data = fs.readFileSync(file);
    const later = seqs.slice(i + 1);
    const { end, torn } = replaySegment(fs, seq, file, data, later, fileOf, out, visitorFor(seq), corrupt);
    if (torn !== null) {
      fs.truncateSync(file, end);
      onCut({ file, offset: end, bytesDropped: data.length - end, reason: torn });
    }
    out.segments.push({ seq, file, end });
    if (torn !== null) {
      // A torn tail: the later segments hold no intact frame (checked); they go.
      for (const s of later) {
        const bytes = fs.readFileSync(fileOf(s)).length;
        fs.unlinkSync(fileOf(s));
        onCut({ file: fileOf(s), offset: 0, bytesDropped: bytes, reason: `a later segment than the torn tail of ${file}, holding no intact frame` });
      }
      break;
    }
  }
  return out;
}

/** Replays one segment; returns where its intact frames end, and what is wrong with the torn frame there (null: none). */
function replaySegment(
  fs: FileSystem, seq: number, file: string, data: Buffer, later: number[], fileOf: (seq: number) => string, out: Recovery,
  visit: RecordVisitor, corrupt: WalCorruptReporter,
): { end: number; torn: string | null } {
  let off = 0;
  while (off < data.length) {
    if (isEndMark(data, off) || isForeignFrame(data, off, seq)) return { end: off, torn: null };
    const bad = frameProblem(data, off, out.frameSeq);
    if (bad !== null) {
      // A damaged frame is a torn tail only if no intact frame follows it, in this segment
      // or a later one (a batch syncs a segment before writing the next); anything else is
      // corruption, and serving a shorter log would be wrong.
      const goodLater = goodFrameAfter(data, off + 1, seq, out.frameSeq) || later.some((s) => goodFrameAfter(fs.readFileSync(fileOf(s)), 0, s, out.frameSeq));
      if (goodLater) corrupt(`corrupt log record at ${file}:${off} (${bad}; an intact frame follows it)`, file, off);
      // The last frame written. A torn write of it is cut; but one that is complete in the
      // file and spoiled by one flipped bit was written whole, perhaps acknowledged, and then
      // damaged: cutting it could drop an acknowledged write without a trace.
      const flip = frameFlippedBit(data, off, out.frameSeq);
      if (flip === null) return { end: off, torn: bad };
      corrupt(`corrupt log record at ${file}:${off} (${bad}: the last frame is complete and one flipped bit, bit ${flip.bit} of byte ${flip.at}, explains it; a torn write does not look like that)`, file, off);
    }
    const bodyBytes = frameBodyBytes(data, off);
    out.frameSeq = frameSeq(data, off);
    const start = off + FRAME_HEADER_BYTES;
    readRecords(data, start, start + bodyBytes, visit, (at, why) => corrupt(`bad record at ${file}:${at} (${why})`, file, at));
    off = start + bodyBytes;
  }
  return { end: off, torn: null };
}

/** An intact frame that another segment wrote: left in a recycled file by the segment it held before. */
function isForeignFrame(data: Buffer, off: number, seq: number): boolean {
  return frameProblem(data, off, -1) === null && !frameOwnedBy(data, off, seq);
}

/** Whether an intact frame of segment `seq`, newer than `seqAfter`, starts anywhere from `from` on. */
function goodFrameAfter(data: Buffer, from: number, seq: number, seqAfter: number): boolean {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(FRAME_MAGIC, 0);
  for (let at = data.indexOf(magic, from); at >= 0; at = data.indexOf(magic, at + 1)) {
    if (frameProblem(data, at, seqAfter) === null && frameOwnedBy(data, at, seq)) return true;
  }
  return false;
}
