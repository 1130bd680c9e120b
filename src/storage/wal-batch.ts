// The batch being gathered: the records of every append since the last batch went to the
// writer, laid out in frames (one per segment the batch touches) in reused buffers. Positions
// are known as the bytes are laid out, so each group's in-memory index is updated here, at once.
import { assert } from '../util/assert.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import type { GroupLog } from './group-log.js';
import {
  COMPACT_RECORD_BYTES, END_MARK_BYTES, entriesHeadBytes, entryBytes, FRAME_HEADER_BYTES, HARD_STATE_RECORD_BYTES, RecordKind,
  REMOVE_RECORD_BYTES, snapshotRecordBytes, writeCompact, writeEntriesHead, writeEntry, writeHardState, writeRemove, writeSnapshot,
} from './wal-format.js';
import type { Segment, SegmentFiles } from './wal-segment-files.js';

/** What one group hands the log in one turn: the parts of a Ready to make durable, in order. */
export interface GroupWrite {
  group: number;
  /** A snapshot installed from a leader: the group's log restarts after it. */
  snapshot?: SnapshotMeta | null;
  entries?: Entry[];
  hardState?: HardState | null;
}

export interface PendingFrame {
  seg: Segment;
  start: number;
  buf: Buffer;
  /** A view over `buf`, made once per buffer rather than once per record. */
  dv: DataView;
  len: number;
}

export const BUFFER_BYTES_MIN = 64 << 10;
/** Reused frame buffers (one batch writes while the next gathers: two are enough). */
const BUFFERS_KEPT_MAX = 2;
/** A buffer larger than this (grown for an oversized batch) is not kept for reuse. */
const BUFFER_BYTES_KEPT_MAX = 4 * BUFFER_BYTES_MIN * 16;

export class BatchLayout {
  /** Frames of the batch being gathered. */
  pending: PendingFrame[] = [];
  private buffers: Buffer[] = [];

  /**
   * `roll` starts the next segment when a record does not fit the current one (the log's roll,
   * which may rewrite small groups into the new segment, through this layout).
   */
  constructor(private readonly files: SegmentFiles, private readonly segmentBytes: number, private readonly roll: () => void) {}

  /** Hands the gathered frames over (to be written) and starts an empty batch. */
  take(): PendingFrame[] {
    const frames = this.pending;
    this.pending = [];
    return frames;
  }

  /** A written frame's buffer, for the next batch. */
  recycle(buf: Buffer): void {
    if (buf.length <= BUFFER_BYTES_KEPT_MAX && this.buffers.length < BUFFERS_KEPT_MAX) this.buffers.push(buf);
  }

  write(g: GroupLog, w: GroupWrite): void {
    if (w.snapshot !== undefined && w.snapshot !== null) this.snapshot(g, w.snapshot, true);
    if (w.entries !== undefined && w.entries.length > 0) this.entries(g, w.entries, RecordKind.Entries);
    if (w.hardState !== undefined && w.hardState !== null) {
      const at = this.reserve(HARD_STATE_RECORD_BYTES);
      writeHardState(at.frame.buf, at.frame.dv, at.pos, g.id, w.hardState);
      g.placeHardState({ ...w.hardState }, at.frame.seg.seq);
    }
  }

  snapshot(g: GroupLog, meta: SnapshotMeta, reset: boolean): void {
    const at = this.reserve(snapshotRecordBytes(meta.conf));
    writeSnapshot(at.frame.buf, at.frame.dv, at.pos, g.id, meta, reset);
    g.placeSnapshot(meta, reset, at.frame.seg.seq);
  }

  compact(g: GroupLog, index: number, term: number): void {
    const at = this.reserve(COMPACT_RECORD_BYTES);
    writeCompact(at.frame.buf, at.frame.dv, at.pos, g.id, index, term);
    g.placeCompact(index, term, at.frame.seg.seq);
  }

  remove(group: number): void {
    const at = this.reserve(REMOVE_RECORD_BYTES);
    writeRemove(at.frame.buf, at.pos, group);
  }

  /**
   * Entries of one group, split into records that each fit a segment. Positions are known as
   * the bytes are laid out, so the group's index is updated here.
   */
  entries(g: GroupLog, entries: Entry[], kind: RecordKind.Entries | RecordKind.Rewrite): void {
    const head = entriesHeadBytes(kind);
    if (kind === RecordKind.Rewrite) {
      // A rewrite restates the whole log in one record, so it must fit one segment: start a
      // fresh one if needed (rewrites are bounded by rewriteBytesMax, well below a segment).
      let bytes = head;
      for (const e of entries) bytes += entryBytes(e);
      if (bytes > this.roomInSegment() && this.files.current.assigned > 0) this.roll();
    }
    let k = 0;
    while (k < entries.length) {
      // As many entries as fit the room left in the segment (at least one: a fresh segment
      // takes an oversized entry on its own).
      const room = kind === RecordKind.Rewrite ? Infinity : this.roomInSegment() - head;
      let bytes = 0;
      let n = 0;
      while (k + n < entries.length) {
        const add = entryBytes(entries[k + n]!);
        if (n > 0 && bytes + add > room) break;
        if (n === 0 && add > room && this.files.current.assigned > 0) break;
        bytes += add;
        n++;
      }
      if (n === 0) {
        this.roll();
        continue;
      }
      const at = this.reserve(head + bytes);
      const { buf, dv } = at.frame;
      const first = entries[k]!.index;
      const prevTerm = kind === RecordKind.Rewrite ? g.compactedTerm : null;
      let p = writeEntriesHead(buf, dv, at.pos, kind, g.id, first, n, prevTerm ?? 0);
      const seg = at.frame.seg.seq;
      const frameFileStart = at.frame.start;
      const positions: { term: number; type: number; off: number; len: number; data: Uint8Array | undefined }[] = new Array(n);
      for (let j = 0; j < n; j++) {
        const e = entries[k + j]!;
        assert(e.index === first + j, `group ${g.id}: entries are not contiguous at ${e.index}`);
        const end = writeEntry(buf, dv, p, e);
        positions[j] = { term: e.term, type: e.type, off: frameFileStart + end - e.data.length, len: e.data.length, data: e.data };
        p = end;
      }
      g.placeEntries(first, n, prevTerm, seg, (j) => positions[j]!);
      k += n;
    }
  }

  /** A segment keeps room for the end mark after its last frame. */
  private get segmentBytesUsable(): number {
    return this.segmentBytes - END_MARK_BYTES;
  }

  private roomInSegment(): number {
    const f = this.openFrame();
    const used = f === null ? this.files.current.assigned + FRAME_HEADER_BYTES : f.start + f.len;
    return this.segmentBytesUsable - used;
  }

  private openFrame(): PendingFrame | null {
    const f = this.pending[this.pending.length - 1];
    return f !== undefined && f.seg === this.files.current ? f : null;
  }

  /** Space for a record of `bytes` in the batch's frame, rolling the segment if it would not fit. */
  private reserve(bytes: number): { frame: PendingFrame; pos: number } {
    let f = this.openFrame();
    const current = this.files.current;
    const end = f === null ? current.assigned + FRAME_HEADER_BYTES + bytes : f.start + f.len + bytes;
    if (end > this.segmentBytesUsable && (current.assigned > 0 || (f !== null && f.len > FRAME_HEADER_BYTES))) {
      this.roll();
      f = null;
    }
    const seg = this.files.current;
    if (f === null) {
      const buf = this.takeBuffer(FRAME_HEADER_BYTES + bytes + END_MARK_BYTES);
      f = { seg, start: seg.assigned, buf, dv: dataView(buf), len: FRAME_HEADER_BYTES };
      seg.assigned += FRAME_HEADER_BYTES;
      this.pending.push(f);
    }
    if (f.len + bytes + END_MARK_BYTES > f.buf.length) {
      let cap = f.buf.length * 2;
      while (cap < f.len + bytes + END_MARK_BYTES) cap *= 2;
      const nb = Buffer.allocUnsafe(cap);
      f.buf.copy(nb, 0, 0, f.len);
      f.buf = nb;
      f.dv = dataView(nb);
    }
    const pos = f.len;
    f.len += bytes;
    seg.assigned += bytes;
    return { frame: f, pos };
  }

  private takeBuffer(bytes: number): Buffer {
    const b = this.buffers.pop();
    if (b !== undefined && b.length >= bytes) return b;
    return Buffer.allocUnsafe(Math.max(BUFFER_BYTES_MIN, bytes));
  }
}

function dataView(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
