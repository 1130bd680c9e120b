// The write-ahead log of one shard worker: one append-only sequence of segment files for all
// of its groups, written in batches with one write and one fdatasync per batch (group commit).
//
// `Wal` is the log's face: its options, the groups' indexes, reading entries back, and the
// wiring of its parts, one concept a file:
//   wal-format.ts         the byte layout of frames and records, written once
//   wal-recovery.ts       reading a log directory back at open
//   wal-segment-files.ts  segment files and spares (recycled segments)
//   wal-batch.ts          laying out the records of the batch being gathered
//   wal-writer.ts         group commit: writing batches, space reserved ahead, a full disk, failure
//   wal-sync.ts           fdatasync and directory syncs, the background sync of syncForce off
//   wal-purge.ts          deleting unneeded segments, rewriting small groups that pin one
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../io/clock.js';
import { nodeFileSystem, type FileSystem } from '../io/file-system.js';
import { assert, AssertionError } from '../util/assert.js';
import type { SnapshotMeta } from '../raft/types.js';
import { EntryCache, GroupLog, type SnapshotDataSource } from './group-log.js';
import { BatchLayout, type GroupWrite } from './wal-batch.js';
import { newWalStats, WalError, type WalStats } from './wal-error.js';
import type { RecordVisitor } from './wal-format.js';
import { SegmentPurge } from './wal-purge.js';
import { recoverSegments, type WalCut } from './wal-recovery.js';
import { SegmentFiles } from './wal-segment-files.js';
import { SegmentSync } from './wal-sync.js';
import { BatchWriter, WAL_RESERVE_BYTES } from './wal-writer.js';

export type { GroupWrite } from './wal-batch.js';
export { WalError, type WalErrorCode, type WalStats } from './wal-error.js';
export { WAL_SPARES_MAX } from './wal-segment-files.js';
export type { WalCut } from './wal-recovery.js';

export interface WalOptions {
  /** `<dataDir>/wal/shard-<k>`; created if missing. */
  dir: string;
  segmentBytes?: number;
  syncForce?: boolean;
  /** Budget for payloads of recent entries kept in memory, across all groups. */
  cacheBytesMax?: number;
  /** A group whose live entries are at most this many bytes is rewritten to free an old segment. */
  rewriteBytesMax?: number;
  /**
   * Space reserved ahead of the frames, a step of this many bytes at a time (zeros written past
   * the end), so that a full disk is met before a batch rather than inside one. 0: none (each
   * file grows with its frames; its size is then where its frames end).
   */
  reserveBytes?: number;
  /** Where a group's snapshot data comes from, when the core sends a snapshot. */
  snapshotData?: SnapshotDataSource;
  /** The file system, clock and timers (node's own unless a simulator passes its). */
  fs?: FileSystem;
  clock?: Clock;
  scheduler?: Scheduler;
  /** Told of every cut recovery makes (a torn tail, a later segment removed); the shard logs each at warn. */
  onCut?: (cut: WalCut) => void;
  /**
   * Told when the log turns short of space (the error) and when it has room again (null): a
   * batch met a full disk (the log holds it and tries again; appends gather behind it, none
   * resolves until it is written), or checkSpace found less than reserveBytes free.
   */
  onNoSpace?: (e: WalError | null) => void;
}

export const walDefaults = {
  segmentBytes: 64 << 20,
  syncForce: true,
  cacheBytesMax: 64 << 20,
  rewriteBytesMax: 1 << 20,
  reserveBytes: WAL_RESERVE_BYTES,
};

export class Wal {
  readonly opts: Required<Omit<WalOptions, 'snapshotData' | 'fs' | 'clock' | 'scheduler' | 'onCut' | 'onNoSpace'>> & { snapshotData: SnapshotDataSource };
  private readonly fs: FileSystem;
  private readonly scheduler: Scheduler;
  private readonly onCut: (cut: WalCut) => void;
  readonly stats: WalStats = newWalStats();
  private readonly groups = new Map<number, GroupLog>();
  private readonly cache: EntryCache;
  /** Reads entries back for every group's log (one function for all, not a closure each). */
  private readonly reader = (seg: number, off: number, len: number): Uint8Array => this.readAt(seg, off, len);
  private readonly files: SegmentFiles;
  private readonly layout: BatchLayout;
  private readonly sync: SegmentSync;
  private readonly writer: BatchWriter;
  private readonly purge: SegmentPurge;
  private closing: Promise<void> | null = null;
  private readonly onNoSpace: (e: WalError | null) => void;
  /** checkSpace found less than reserveBytes free (cleared by the next check that finds more). */
  private spaceLow: WalError | null = null;
  /** What onNoSpace was last told (so it hears of changes only). */
  private noSpaceTold: WalError | null = null;

  private constructor(opts: WalOptions) {
    const { fs, clock, scheduler, onCut, onNoSpace, ...settings } = opts;
    this.opts = {
      ...walDefaults,
      ...Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)),
      dir: opts.dir,
      snapshotData: opts.snapshotData ?? (() => new Uint8Array(0)),
    } as Wal['opts'];
    this.fs = fs ?? nodeFileSystem;
    this.scheduler = scheduler ?? systemScheduler;
    this.onCut = onCut ?? ((): void => {});
    this.onNoSpace = onNoSpace ?? ((): void => {});
    assert(this.opts.segmentBytes >= 4096, 'segmentBytes must be at least 4 KiB');
    assert(this.opts.reserveBytes >= 0, 'reserveBytes must not be negative');
    this.cache = new EntryCache(this.opts.cacheBytesMax);
    this.files = new SegmentFiles(this.fs, this.opts.dir, this.stats);
    this.layout = new BatchLayout(this.files, this.opts.segmentBytes, () => this.roll());
    this.sync = new SegmentSync(this.fs, clock ?? systemClock, this.files, this.stats, () => this.writer.hasFailed, (e) => this.writer.fail(e, []));
    this.writer = new BatchWriter(this.fs, this.opts.dir, this.opts.syncForce, this.layout, this.sync, this.stats, this.scheduler,
      this.opts.segmentBytes, this.opts.reserveBytes, () => this.tellNoSpace());
    this.purge = new SegmentPurge(this.files, this.groups, this.sync, this.stats, this.opts.rewriteBytesMax);
    this.purge.layout = this.layout;
    this.writer.retirement = this.purge;
  }

  /** Opens (and recovers) the log in `opts.dir`. Throws WalError WAL_CORRUPT on damage that is not a torn tail. */
  static open(opts: WalOptions): Wal {
    const wal = new Wal(opts);
    try {
      wal.recover();
    } catch (e) {
      wal.files.closeAll();
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
    return this.files.size === 0 ? Promise.resolve() : this.sync.syncAll(this.files.bySeq.values());
  }

  group(id: number): GroupLog {
    let g = this.groups.get(id);
    if (g === undefined) {
      g = new GroupLog(id, this.reader, this.opts.snapshotData, this.cache);
      this.groups.set(id, g);
    }
    return g;
  }

  groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  get cachedBytes(): number { return this.cache.bytes; }
  get segmentCount(): number { return this.files.size; }
  get error(): WalError | null { return this.writer.error; }
  /**
   * Non-null while the log is short of space: a batch is held by a full disk (tried again;
   * appends wait behind it), or the last checkSpace found less than reserveBytes free.
   */
  get noSpace(): WalError | null { return this.writer.noSpace ?? this.spaceLow; }
  /** A batch is held by a full disk (its appends wait until it is written). */
  get batchHeld(): boolean { return this.writer.noSpace !== null; }

  /**
   * Asks the file system how much is free (statfs): below reserveBytes the log reports no space
   * (onNoSpace) before a batch meets a full disk, so that writes can be refused while what is
   * reserved still takes the records Raft must write (votes, a follower's entries). Called by the
   * host on a timer (a syscall: not per batch); with reserveBytes 0 it checks nothing.
   */
  checkSpace(): void {
    if (this.opts.reserveBytes === 0 || this.writer.hasFailed) return;
    let free: number;
    try {
      free = this.fs.freeBytesSync(this.opts.dir);
    } catch {
      return; // statfs unsupported here: the held batch alone tells of a full disk
    }
    if (free < this.opts.reserveBytes) {
      this.spaceLow ??= new WalError('WAL_NO_SPACE', `${free} bytes free for ${this.opts.dir}, less than reserveBytes (${this.opts.reserveBytes})`);
    } else {
      this.spaceLow = null;
    }
    this.tellNoSpace();
  }

  private tellNoSpace(): void {
    // Told of each change of cause too (space low, then a batch held): one error object per cause.
    const now = this.noSpace;
    if (now === this.noSpaceTold) return;
    this.noSpaceTold = now;
    this.onNoSpace(now);
  }

  /**
   * Adds everything of one turn to the current batch; resolves when that batch is durable
   * (written, with syncForce off). The in-memory index reflects the writes at once.
   */
  append(writes: GroupWrite[]): Promise<void> {
    return this.laidOut(() => {
      for (const w of writes) this.layout.write(this.group(w.group), w);
    });
  }

  /** Records that the host snapshotted `group` at `meta.index` (the log is kept). */
  recordSnapshot(group: number, meta: SnapshotMeta): Promise<void> {
    return this.laidOut(() => this.layout.snapshot(this.group(group), meta, false));
  }

  /** Drops `group`'s entries up to `index`, which a snapshot must cover. */
  compact(group: number, index: number): Promise<void> {
    const refused = this.writer.refusal();
    if (refused !== null) return Promise.reject(refused);
    const g = this.group(group);
    assert(index <= g.snap.index, `compact(${index}) beyond group ${group}'s snapshot ${g.snap.index}`);
    return this.laidOut(() => {
      if (index > g.compactedIndex && index <= g.lastIndex()) this.layout.compact(g, index, g.term(index));
    });
  }

  /** Forgets `group` (it left this shard); its records are freed with their segments. */
  removeGroup(group: number): Promise<void> {
    const refused = this.writer.refusal();
    if (refused !== null) return Promise.reject(refused);
    if (!this.groups.has(group)) return Promise.resolve();
    return this.laidOut(() => {
      this.layout.remove(group);
      this.groups.delete(group);
    });
  }

  /** Groups holding the oldest segment back that are too large to rewrite: snapshot them. */
  groupsPinning(): number[] {
    return this.purge.groupsPinning();
  }

  /** Gives up on a batch held by a full disk: its appends, and those behind it, reject with WAL_NO_SPACE; the log stops. */
  abandonHeld(): void {
    this.writer.abandonHeld();
  }

  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    // A batch held by a full disk would wait for space for ever: its appends are rejected.
    this.writer.abandonHeld();
    if (!this.writer.hasFailed) {
      try { await this.writer.commitIfPending(); } catch { /* reported to the appenders */ }
    }
    while (this.writer.isFlushing) await new Promise<void>((r) => this.scheduler.after(1, r));
    await this.sync.whenIdle();
    this.writer.markClosed();
    this.files.closeAll();
  }

  /**
   * Lays records out into the batch being gathered (unless the log refuses) and commits it. An
   * error while laying out (say, creating the next segment) stops the log; a bug still throws.
   */
  private laidOut(layOut: () => void): Promise<void> {
    const refused = this.writer.refusal();
    if (refused !== null) return Promise.reject(refused);
    try {
      layOut();
    } catch (e) {
      if (e instanceof AssertionError) throw e;
      return this.writer.failNow(e);
    }
    return this.writer.commit();
  }

  private roll(): void {
    this.files.startNext();
    this.purge.rewriteHolders();
  }

  private readAt(seg: number, off: number, len: number): Uint8Array {
    const s = this.files.bySeq.get(seg);
    assert(s !== undefined, `segment ${seg} was deleted while still needed`);
    if (off + len > s.written) {
      // Not on disk yet: still in a frame being written or gathered.
      for (const f of [...this.writer.inflight, ...this.layout.pending]) {
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

  // --- Recovery ---

  private recover(): void {
    this.files.createDirectory();
    const r = recoverSegments(this.fs, this.opts.dir, (seq) => this.placer(seq), (message, file, offset) => {
      throw new WalError('WAL_CORRUPT', message, file, offset);
    }, this.onCut);
    this.writer.resumeAfter(r.frameSeq);
    this.files.adopt(r);
    for (const g of this.groups.values()) {
      const problem = g.checkRecovered();
      if (problem !== null) throw new WalError('WAL_CORRUPT', `${this.opts.dir}: ${problem}`);
    }
    const last = this.files.newest();
    if (last !== undefined && last.assigned < this.opts.segmentBytes / 2) this.files.resume(last);
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
