// The write-ahead log of one shard worker: one append-only sequence of segment files for all
// of its groups, written in batches with one write and one fdatasync per batch (group commit).
//
// Appends made while a batch is being written and synced gather into the next batch, so the
// disk is never idle while work waits and never synced more than once per batch. With
// `syncForce: false` a batch counts as done once the OS has it (a process crash loses nothing);
// its fdatasync still starts right away, not waited on, so a power loss loses at most what was
// written since the last background sync finished.
import * as path from 'node:path';
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../io/clock.js';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import { assert, AssertionError } from '../util/assert.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { EntryCache, GroupLog, type SnapshotDataSource } from './group-log.js';
import {
  COMPACT_RECORD_BYTES, END_MARK_BYTES, entriesHeadBytes, entryBytes, FRAME_HEADER_BYTES, HARD_STATE_RECORD_BYTES, RecordKind,
  REMOVE_RECORD_BYTES, sealFrame, segmentName, snapshotRecordBytes, spareName, writeCompact, writeEntriesHead, writeEntry,
  writeHardState, writeRemove, writeSnapshot, type RecordVisitor,
} from './wal-format.js';
import { recoverSegments } from './wal-recovery.js';

export interface WalOptions {
  /** `<dataDir>/wal/shard-<k>`; created if missing. */
  dir: string;
  segmentBytes?: number;
  syncForce?: boolean;
  /** Budget for payloads of recent entries kept in memory, across all groups. */
  cacheBytesMax?: number;
  /** A group whose live entries are at most this many bytes is rewritten to free an old segment. */
  rewriteBytesMax?: number;
  /** Where a group's snapshot data comes from, when the core sends a snapshot. */
  snapshotData?: SnapshotDataSource;
  /** The file system, clock and timers (node's own unless a simulator passes its). */
  fs?: FileSystem;
  clock?: Clock;
  scheduler?: Scheduler;
}

export const walDefaults = {
  segmentBytes: 64 << 20,
  syncForce: true,
  cacheBytesMax: 64 << 20,
  rewriteBytesMax: 1 << 20,
};

export type WalErrorCode = 'WAL_CORRUPT' | 'WAL_NO_SPACE' | 'WAL_IO' | 'WAL_FAILED' | 'WAL_CLOSED';

export class WalError extends Error {
  constructor(readonly code: WalErrorCode, message: string, readonly file?: string, readonly offset?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** What one group hands the log in one turn: the parts of a Ready to make durable, in order. */
export interface GroupWrite {
  group: number;
  /** A snapshot installed from a leader: the group's log restarts after it. */
  snapshot?: SnapshotMeta | null;
  entries?: Entry[];
  hardState?: HardState | null;
}

export interface WalStats {
  batches: number;
  bytes: number;
  fsyncs: number;
  segments: number;
  segmentsDeleted: number;
  /** New segments that reused a deleted one's file (already allocated: its syncs write no size). */
  segmentsRecycled: number;
  groupsRewritten: number;
  failures: number;
  lastError: string | null;
  /** Sum and count of fdatasync durations (ms), for a mean; the engine keeps histograms. */
  fsyncMsTotal: number;
}

interface Segment {
  seq: number;
  file: string;
  fd: number;
  /** Bytes assigned to frames so far (written or pending). */
  assigned: number;
  /** Bytes known to be written. */
  written: number;
  /**
   * Made by this process, so every frame in it names its segment: its file may become a spare.
   * (A recovered one may hold frames of an older format, which name none.)
   */
  recyclable: boolean;
}

interface PendingFrame {
  seg: Segment;
  start: number;
  buf: Buffer;
  /** A view over `buf`, made once per buffer rather than once per record. */
  dv: DataView;
  len: number;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

const BUFFER_BYTES_MIN = 64 << 10;
/**
 * Deleted segments' files kept for reuse. A new segment takes one (renamed) instead of a new
 * file that grows with every batch: an fdatasync on a file that does not grow writes no
 * metadata (the size and extents are already on disk), which on ext4 is most of its cost.
 */
export const WAL_SPARES_MAX = 2;
const SPARES_MAX = WAL_SPARES_MAX;

interface Spare {
  file: string;
  fd: number;
  /** Its rename to a spare name is durable (a directory sync followed it): only then reused. */
  durable: boolean;
}

export class Wal {
  readonly opts: Required<Omit<WalOptions, 'snapshotData' | 'fs' | 'clock' | 'scheduler'>> & { snapshotData: SnapshotDataSource };
  private readonly fs: FileSystem;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  readonly stats: WalStats = {
    batches: 0, bytes: 0, fsyncs: 0, segments: 0, segmentsDeleted: 0, segmentsRecycled: 0, groupsRewritten: 0,
    failures: 0, lastError: null, fsyncMsTotal: 0,
  };
  private readonly groups = new Map<number, GroupLog>();
  private readonly cache: EntryCache;
  private readonly segments = new Map<number, Segment>();
  private current!: Segment;
  private nextSeq = 1;
  private frameSeq = 0;
  /** Frames of the batch being gathered. */
  private pending: PendingFrame[] = [];
  private waiters: Waiter[] = [];
  private flushing = false;
  private failed: WalError | null = null;
  private closed = false;
  private dirNeedsSync = false;
  /** syncForce off: segments written since the background sync last started, the ones it syncs, and the sync itself. */
  private readonly unsynced = new Set<Segment>();
  private syncing: Segment[] = [];
  private bgSync: Promise<void> | null = null;
  /** The segment the last frame went to. */
  private lastWritten: Segment | null = null;
  /** Files of deleted segments whose background sync was still running when they went. */
  private closeAfterSync: number[] = [];
  /** Directories whose entries must be made durable with the next batch: the log's own parents, when open created them. */
  private parentsNeedSync: string[] = [];
  private purging = false;
  private closing: Promise<void> | null = null;
  /** Frames being written by the batch in flight (readable until written). */
  private inflight: PendingFrame[] = [];
  /** Reused frame buffers (one batch writes while the next gathers: two are enough). */
  private spare: Buffer[] = [];
  private readonly spares: Spare[] = [];
  private spareSeq = 0;

  private constructor(opts: WalOptions) {
    const { fs, clock, scheduler, ...settings } = opts;
    this.opts = {
      ...walDefaults,
      ...Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)),
      dir: opts.dir,
      snapshotData: opts.snapshotData ?? (() => new Uint8Array(0)),
    } as Wal['opts'];
    this.fs = fs ?? nodeFileSystem;
    this.clock = clock ?? systemClock;
    this.scheduler = scheduler ?? systemScheduler;
    assert(this.opts.segmentBytes >= 4096, 'segmentBytes must be at least 4 KiB');
    this.cache = new EntryCache(this.opts.cacheBytesMax);
  }

  /** Opens (and recovers) the log in `opts.dir`. Throws WalError WAL_CORRUPT on damage that is not a torn tail. */
  static open(opts: WalOptions): Wal {
    const wal = new Wal(opts);
    try {
      wal.recover();
    } catch (e) {
      for (const s of wal.segments.values()) wal.fs.closeSync(s.fd);
      for (const sp of wal.spares) wal.fs.closeSync(sp.fd);
      throw e;
    }
    return wal;
  }

  /**
   * Makes what recovery found durable: the previous process may have written records that it
   * never synced (its sync was still running when it died), which the OS still holds and
   * recovery read as part of the log. Until they are synced, a power loss could take them, and
   * with them entries this node goes on to acknowledge or votes it goes on to keep. The host
   * awaits this before it acts on the log.
   */
  syncRecovered(): Promise<void> {
    return this.segments.size === 0 ? Promise.resolve() : this.syncAll(this.segments.values());
  }

  group(id: number): GroupLog {
    let g = this.groups.get(id);
    if (g === undefined) {
      g = new GroupLog(id, (seg, off, len) => this.readAt(seg, off, len), this.opts.snapshotData, this.cache);
      this.groups.set(id, g);
    }
    return g;
  }

  groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  get cachedBytes(): number { return this.cache.bytes; }
  get segmentCount(): number { return this.segments.size; }
  get error(): WalError | null { return this.failed; }

  /**
   * Adds everything of one turn to the current batch; resolves when that batch is durable
   * (written, with syncForce off). The in-memory index reflects the writes at once.
   */
  append(writes: GroupWrite[]): Promise<void> {
    const refused = this.refusal();
    if (refused !== null) return Promise.reject(refused);
    try {
      for (const w of writes) this.encodeWrite(w);
    } catch (e) {
      return this.failNow(e);
    }
    return this.commit();
  }

  /** An error while laying out a batch (e.g. creating the next segment): the log stops. */
  private failNow(e: unknown): Promise<never> {
    if (e instanceof AssertionError) throw e;
    this.fail(e, []);
    const err = this.refusal()!;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.pending = [];
    return Promise.reject(err);
  }

  /** Records that the host snapshotted `group` at `meta.index` (the log is kept). */
  recordSnapshot(group: number, meta: SnapshotMeta): Promise<void> {
    const refused = this.refusal();
    if (refused !== null) return Promise.reject(refused);
    try {
      this.encodeSnapshot(this.group(group), meta, false);
    } catch (e) {
      return this.failNow(e);
    }
    return this.commit();
  }

  /** Drops `group`'s entries up to `index`, which a snapshot must cover. */
  compact(group: number, index: number): Promise<void> {
    const refused = this.refusal();
    if (refused !== null) return Promise.reject(refused);
    const g = this.group(group);
    assert(index <= g.snap.index, `compact(${index}) beyond group ${group}'s snapshot ${g.snap.index}`);
    try {
      if (index > g.compactedIndex && index <= g.lastIndex()) this.encodeCompact(g, index, g.term(index));
    } catch (e) {
      return this.failNow(e);
    }
    return this.commit();
  }

  /** Forgets `group` (it left this shard); its records are freed with their segments. */
  removeGroup(group: number): Promise<void> {
    const refused = this.refusal();
    if (refused !== null) return Promise.reject(refused);
    const g = this.groups.get(group);
    if (g === undefined) return Promise.resolve();
    try {
      const at = this.reserve(REMOVE_RECORD_BYTES);
      writeRemove(at.frame.buf, at.pos, group);
    } catch (e) {
      return this.failNow(e);
    }
    this.groups.delete(group);
    return this.commit();
  }

  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    if (this.failed === null) {
      try { await this.commitIfPending(); } catch { /* reported to the appenders */ }
    }
    while (this.flushing) await new Promise<void>((r) => this.scheduler.after(1, r));
    if (this.bgSync !== null) await this.bgSync;
    this.closed = true;
    for (const s of this.segments.values()) this.fs.closeSync(s.fd);
    for (const sp of this.spares) this.fs.closeSync(sp.fd);
  }

  // --- Encoding ---

  private refusal(): WalError | null {
    if (this.closed) return new WalError('WAL_CLOSED', 'the log is closed');
    if (this.failed !== null) return new WalError('WAL_FAILED', `the log stopped after an I/O error: ${this.failed.message}`, undefined, undefined, { cause: this.failed });
    return null;
  }

  private encodeWrite(w: GroupWrite): void {
    const g = this.group(w.group);
    if (w.snapshot !== undefined && w.snapshot !== null) this.encodeSnapshot(g, w.snapshot, true);
    if (w.entries !== undefined && w.entries.length > 0) this.encodeEntries(g, w.entries, RecordKind.Entries);
    if (w.hardState !== undefined && w.hardState !== null) {
      const at = this.reserve(HARD_STATE_RECORD_BYTES);
      writeHardState(at.frame.buf, at.frame.dv, at.pos, g.id, w.hardState);
      g.placeHardState({ ...w.hardState }, at.frame.seg.seq);
    }
  }

  private encodeSnapshot(g: GroupLog, meta: SnapshotMeta, reset: boolean): void {
    const at = this.reserve(snapshotRecordBytes(meta.conf));
    writeSnapshot(at.frame.buf, at.frame.dv, at.pos, g.id, meta, reset);
    g.placeSnapshot(meta, reset, at.frame.seg.seq);
  }

  private encodeCompact(g: GroupLog, index: number, term: number): void {
    const at = this.reserve(COMPACT_RECORD_BYTES);
    writeCompact(at.frame.buf, at.frame.dv, at.pos, g.id, index, term);
    g.placeCompact(index, term, at.frame.seg.seq);
  }

  /**
   * Entries of one group, split into records that each fit a segment. Positions are known as
   * the bytes are laid out, so the group's index is updated here.
   */
  private encodeEntries(g: GroupLog, entries: Entry[], kind: RecordKind.Entries | RecordKind.Rewrite): void {
    const head = entriesHeadBytes(kind);
    if (kind === RecordKind.Rewrite) {
      // A rewrite restates the whole log in one record, so it must fit one segment: start a
      // fresh one if needed (rewrites are bounded by rewriteBytesMax, well below a segment).
      let bytes = head;
      for (const e of entries) bytes += entryBytes(e);
      if (bytes > this.roomInSegment() && this.current.assigned > 0) this.roll();
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
        if (n === 0 && add > room && this.current.assigned > 0) break;
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
    return this.opts.segmentBytes - END_MARK_BYTES;
  }

  private roomInSegment(): number {
    const f = this.openFrame();
    const used = f === null ? this.current.assigned + FRAME_HEADER_BYTES : f.start + f.len;
    return this.segmentBytesUsable - used;
  }

  private openFrame(): PendingFrame | null {
    const f = this.pending[this.pending.length - 1];
    return f !== undefined && f.seg === this.current ? f : null;
  }

  /** Space for a record of `bytes` in the batch's frame, rolling the segment if it would not fit. */
  private reserve(bytes: number): { frame: PendingFrame; pos: number } {
    let f = this.openFrame();
    const end = f === null ? this.current.assigned + FRAME_HEADER_BYTES + bytes : f.start + f.len + bytes;
    if (end > this.segmentBytesUsable && (this.current.assigned > 0 || (f !== null && f.len > FRAME_HEADER_BYTES))) {
      this.roll();
      f = null;
    }
    if (f === null) {
      const buf = this.takeBuffer(FRAME_HEADER_BYTES + bytes + END_MARK_BYTES);
      f = { seg: this.current, start: this.current.assigned, buf, dv: dataView(buf), len: FRAME_HEADER_BYTES };
      this.current.assigned += FRAME_HEADER_BYTES;
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
    this.current.assigned += bytes;
    return { frame: f, pos };
  }

  private takeBuffer(bytes: number): Buffer {
    const b = this.spare.pop();
    if (b !== undefined && b.length >= bytes) return b;
    return Buffer.allocUnsafe(Math.max(BUFFER_BYTES_MIN, bytes));
  }

  // --- Segments ---

  private roll(): void {
    const seq = this.nextSeq++;
    const file = path.join(this.opts.dir, segmentName(seq));
    let fd: number;
    const k = this.spares.findIndex((sp) => sp.durable);
    if (k >= 0) {
      // Its old frames stay in the file until overwritten; recovery tells them by the segment
      // number in their headers, and finds the end of what this segment wrote at its end mark.
      const sp = this.spares.splice(k, 1)[0]!;
      this.fs.renameSync(sp.file, file);
      fd = sp.fd;
      this.stats.segmentsRecycled++;
    } else {
      fd = this.fs.openSync(file, 'wx+');
    }
    const s: Segment = { seq, file, fd, assigned: 0, written: 0, recyclable: true };
    this.segments.set(seq, s);
    this.current = s;
    this.stats.segments++;
    this.dirNeedsSync = true;
    this.purge();
  }

  /**
   * Rewrites small groups that hold the oldest segment back, so that an idle group cannot pin
   * disk forever. (A group with more live data than `rewriteBytesMax` should be snapshotted by
   * its host: see `groupsPinning`.) Segments are deleted only once a batch that made them
   * unneeded is durable: see `deleteUnneeded`.
   */
  private purge(): void {
    if (this.purging || this.segments.size <= 2) return;
    this.purging = true;
    try {
      const oldest = Math.min(...this.segments.keys());
      for (const g of this.groups.values()) {
        if (g.oldestSegmentNeeded() === oldest && g.liveBytes <= this.opts.rewriteBytesMax) this.rewriteGroup(g);
      }
    } finally {
      this.purging = false;
    }
  }

  /** The oldest segment any group needs, given every record laid out so far. */
  private segmentNeeded(): number {
    let needed = this.current.seq;
    if (this.segments.size <= 1) return needed;
    for (const g of this.groups.values()) needed = Math.min(needed, g.oldestSegmentNeeded());
    return needed;
  }

  /**
   * Deletes segments older than `needed`, computed when the batch just made durable was sealed:
   * the records that made them unneeded are on disk now, and no later record can need an
   * older segment again (records only ever go to the current one).
   */
  private deleteUnneeded(needed: number): void {
    for (const s of [...this.segments.values()]) {
      if (s.seq >= needed || s === this.current) continue;
      if (this.pending.some((f) => f.seg === s)) continue;
      // One waiting for a background sync need not be synced at all; one under it keeps its fd
      // until the sync ends (the file goes now, so deletions stay oldest first).
      this.unsynced.delete(s);
      if (this.syncing.includes(s)) {
        this.closeAfterSync.push(s.fd);
        this.fs.unlinkSync(s.file);
      } else if (s.recyclable && this.spares.length < SPARES_MAX) {
        const file = path.join(this.opts.dir, spareName(++this.spareSeq));
        this.fs.renameSync(s.file, file);
        this.spares.push({ file, fd: s.fd, durable: false });
      } else {
        this.fs.closeSync(s.fd);
        this.fs.unlinkSync(s.file);
      }
      this.segments.delete(s.seq);
      this.stats.segmentsDeleted++;
      this.dirNeedsSync = true;
    }
  }

  /** Groups holding the oldest segment back that are too large to rewrite: snapshot them. */
  groupsPinning(): number[] {
    if (this.segments.size <= 2) return [];
    const oldest = Math.min(...this.segments.keys());
    return [...this.groups.values()].filter((g) => g.oldestSegmentNeeded() === oldest).map((g) => g.id);
  }

  private rewriteGroup(g: GroupLog): void {
    this.stats.groupsRewritten++;
    if (g.snap.index > 0) this.encodeSnapshot(g, g.snap, false);
    const live = g.liveEntries();
    if (live.length > 0) this.encodeEntries(g, live, RecordKind.Rewrite);
    else if (g.compactedIndex > 0) this.encodeCompact(g, g.compactedIndex, g.compactedTerm);
    if (g.hardStateSeg >= 0) this.encodeWrite({ group: g.id, hardState: g.hardState });
  }

  private readAt(seg: number, off: number, len: number): Uint8Array {
    const s = this.segments.get(seg);
    assert(s !== undefined, `segment ${seg} was deleted while still needed`);
    if (off + len > s.written) {
      // Not on disk yet: still in a frame being written or gathered.
      for (const f of [...this.inflight, ...this.pending]) {
        if (f.seg === s && off >= f.start && off + len <= f.start + f.len) {
          return Buffer.from(f.buf.subarray(off - f.start, off - f.start + len));
        }
      }
    }
    const out = Buffer.allocUnsafe(len);
    const n = this.fs.readSync(s.fd, out, 0, len, off);
    if (n !== len) throw new WalError('WAL_IO', `short read at ${s.file}:${off} (${n} of ${len} bytes)`, s.file, off);
    return out;
  }

  // --- Writing batches ---

  private commit(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private commitIfPending(): Promise<void> {
    return this.pending.length > 0 || this.flushing ? this.commit() : Promise.resolve();
  }

  /** Writes and syncs batches until nothing is pending: one write and one sync per segment touched. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0 || this.waiters.length > 0) {
        const frames = this.pending;
        const waiters = this.waiters;
        const needed = this.segmentNeeded();
        this.pending = [];
        this.waiters = [];
        this.inflight = frames;
        try {
          await this.writeBatch(frames);
          this.inflight = [];
          this.deleteUnneeded(needed);
          for (const w of waiters) w.resolve();
        } catch (e) {
          this.inflight = [];
          this.fail(e, frames);
          for (const w of [...waiters, ...this.waiters]) w.reject(this.refusal()!);
          this.waiters = [];
          this.pending = [];
          return;
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeBatch(frames: PendingFrame[]): Promise<void> {
    const touched = new Set<Segment>();
    for (const f of frames) {
      const prev = this.lastWritten;
      if (prev !== null && prev !== f.seg && (touched.has(prev) || this.unsynced.has(prev) || this.syncing.includes(prev))) {
        // The first write to a newer segment: the older one is synced first, so a torn frame
        // is never followed by an intact one (recovery relies on it), whatever syncForce says.
        // So at most the newest segment is ever unsynced.
        await this.fdatasync(prev.fd);
        this.unsynced.delete(prev);
      }
      this.lastWritten = f.seg;
      sealFrame(f.buf, f.len, f.seg.seq, ++this.frameSeq);
      f.buf.fill(0, f.len, f.len + END_MARK_BYTES);
      this.writeFully(f.seg.fd, f.buf, f.len + END_MARK_BYTES, f.start);
      f.seg.written = f.start + f.len;
      touched.add(f.seg);
      this.stats.bytes += f.len;
    }
    if (this.opts.syncForce) {
      await this.syncAll(touched);
    } else {
      // Done once the OS has it; the sync still starts now, so that a power loss loses at most
      // what was written since the last sync finished (docs/storage.md).
      for (const seg of touched) this.unsynced.add(seg);
      this.syncInBackground();
    }
    this.stats.batches++;
    for (const f of frames) if (f.buf.length <= 4 * BUFFER_BYTES_MIN * 16 && this.spare.length < 2) this.spare.push(f.buf);
  }

  /** fdatasync of `segments`, then the directory entries that changed: one "sync" in the stats. */
  private async syncAll(segments: Iterable<Segment>): Promise<void> {
    const t0 = this.clock.nowMs();
    for (const seg of segments) await this.fdatasync(seg.fd);
    if (this.dirNeedsSync) {
      this.dirNeedsSync = false;
      const renamed = this.spares.filter((sp) => !sp.durable);
      await this.syncDir(this.opts.dir);
      for (const sp of renamed) sp.durable = true;
    }
    while (this.parentsNeedSync.length > 0) {
      await this.syncDir(this.parentsNeedSync[0]!);
      this.parentsNeedSync.shift();
    }
    this.stats.fsyncMsTotal += this.clock.nowMs() - t0;
    this.stats.fsyncs++;
  }

  /**
   * With syncForce off: syncs what batches wrote, one sync at a time, the next covering
   * everything written while the last ran. A failed sync stops the log, as a failed write
   * does: what it had acknowledged may not survive a power loss, and it must not go on as if.
   */
  private syncInBackground(): void {
    if (this.bgSync !== null) return;
    const run = async (): Promise<void> => {
      while (this.unsynced.size > 0 && this.failed === null) {
        const segments = [...this.unsynced];
        this.unsynced.clear();
        this.syncing = segments;
        try {
          await this.syncAll(segments);
        } catch (e) {
          if (this.failed === null) this.fail(e, []);
        } finally {
          this.syncing = [];
        }
        for (const fd of this.closeAfterSync) this.fs.closeSync(fd);
        this.closeAfterSync = [];
      }
    };
    this.bgSync = run().finally(() => {
      this.bgSync = null;
    });
  }


  /**
   * A write or sync failed: the log stops taking writes (the node stops acknowledging) and cuts
   * each segment back to what was written before the batch, so a restart finds a clean log.
   */
  private fail(e: unknown, frames: PendingFrame[]): void {
    const err = e as NodeJS.ErrnoException;
    const code: WalErrorCode = err.code === 'ENOSPC' ? 'WAL_NO_SPACE' : 'WAL_IO';
    this.failed = new WalError(code, `${err.code ?? 'error'} writing ${this.opts.dir}: ${err.message}`, undefined, undefined, { cause: e });
    this.stats.failures++;
    this.stats.lastError = this.failed.message;
    const cut = new Map<Segment, number>();
    for (const f of frames) cut.set(f.seg, Math.min(cut.get(f.seg) ?? Infinity, f.start, f.seg.written));
    for (const [seg, size] of cut) {
      try { this.fs.ftruncateSync(seg.fd, size); } catch { /* best effort: recovery cuts a torn tail anyway */ }
    }
  }

  /**
   * Writes the whole frame synchronously: copying a batch into the page cache takes microseconds,
   * less than a round trip through libuv's thread pool; only the fdatasync goes there.
   */
  private writeFully(fd: number, buf: Buffer, len: number, position: number): void {
    let done = 0;
    while (done < len) done += this.fs.writeSync(fd, buf, done, len - done, position + done);
  }

  private fdatasync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => this.fs.fdatasync(fd, (e) => (e === null ? resolve() : reject(e))));
  }

  private syncDir(dir: string): Promise<void> {
    return new Promise((resolve, reject) => this.fs.syncDir(dir, (e) => (e === null ? resolve() : reject(e))));
  }

  // --- Recovery ---

  private recover(): void {
    const first = this.fs.mkdirSync(this.opts.dir);
    if (first !== undefined) {
      // A new directory is durable only once its parent is synced: without that, a power loss
      // soon after the first acknowledged batch could take the whole log with it.
      for (let d = this.opts.dir; ; d = path.dirname(d)) {
        this.parentsNeedSync.push(path.dirname(d));
        if (d === first || path.dirname(d) === d) break;
      }
    }
    const r = recoverSegments(this.fs, this.opts.dir, (seq) => this.placer(seq), (message, file, offset) => {
      throw new WalError('WAL_CORRUPT', message, file, offset);
    });
    this.frameSeq = r.frameSeq;
    this.spareSeq = r.spareMax;
    for (const file of r.spares) {
      if (this.spares.length >= SPARES_MAX) {
        this.fs.unlinkSync(file);
        continue;
      }
      // Not trusted as durable until the next directory sync (syncRecovered makes one).
      this.spares.push({ file, fd: this.fs.openSync(file, 'r+'), durable: false });
      this.dirNeedsSync = true;
    }
    for (const { seq, file, end } of r.segments) {
      const fd = this.fs.openSync(file, 'r+');
      this.segments.set(seq, { seq, file, fd, assigned: end, written: end, recyclable: false });
      this.nextSeq = seq + 1;
    }
    for (const g of this.groups.values()) {
      const problem = g.checkRecovered();
      if (problem !== null) throw new WalError('WAL_CORRUPT', `${this.opts.dir}: ${problem}`);
    }
    const last = this.segments.get(this.nextSeq - 1);
    if (last !== undefined && last.assigned < this.opts.segmentBytes / 2) this.current = last;
    else this.roll();
  }

  /** What recovery does with the records of segment `seq`: it places them in the groups' indexes. */
  private placer(seq: number): RecordVisitor {
    return {
      entries: (group, first, count, prevTerm, positions) => this.group(group).placeEntries(first, count, prevTerm, seq, (j) => positions[j]!),
      hardState: (group, hs) => this.group(group).placeHardState(hs, seq),
      snapshot: (group, meta, reset) => this.group(group).placeSnapshot(meta, reset, seq),
      compact: (group, index, term) => this.group(group).placeCompact(index, term, seq),
      remove: (group) => {
        this.groups.delete(group);
      },
    };
  }
}

function dataView(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}


