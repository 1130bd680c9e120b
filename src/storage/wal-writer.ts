// Group commit: the promises of appends, the loop that writes and syncs batches until nothing is
// pending (one write and one sync per segment a batch touches), the space reserved ahead of the
// frames, and what a failed write or sync does: a full disk (ENOSPC) holds the batch and tries it
// again until there is room ("no space"); any other error stops the log. Either way each segment
// is cut back to what was written before the batch, and no append of the batch is resolved.
//
// Appends made while a batch is being written and synced gather into the next batch, so the
// disk is never idle while work waits and never synced more than once per batch. With
// `syncForce: false` a batch counts as done once the OS has it (a process crash loses nothing);
// its fdatasync still starts right away, not waited on, so a power loss loses at most what was
// written since the last background sync finished.
import type { Cancel, Scheduler } from '../io/clock.js';
import type { FileSystem } from '../io/file-system.js';
import type { BatchLayout, PendingFrame } from './wal-batch.js';
import { WalError, type WalErrorCode, type WalStats } from './wal-error.js';
import { END_MARK_BYTES, sealFrame } from './wal-format.js';
import type { Segment } from './wal-segment-files.js';
import type { SegmentSync } from './wal-sync.js';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Space is reserved ahead of the frames in steps of this many bytes by default (`reserveBytes`;
 * the segment's size, if smaller): zeros written past the end of what is written, so that a full disk is met by that
 * write, before any byte of a batch, rather than halfway through a frame. On tmpfs and ext4 a
 * write of zeros allocates the blocks (ftruncate would not). A recycled segment's file is already
 * that large and needs none. A zero tail reads as an end mark at recovery.
 */
export const WAL_RESERVE_BYTES = 1 << 20;
/** A batch held by a full disk is tried again after this long, doubling up to the max. */
export const WAL_NO_SPACE_RETRY_MS_MIN = 25;
export const WAL_NO_SPACE_RETRY_MS_MAX = 1000;

/** A zeroed buffer for reserving space (written, never changed), and its size. */
const ZEROS_BYTES = 256 << 10;
let zeros: Buffer | null = null;

/** What the writer asks of the purge: which segments a sealed batch still needs, and deleting the rest once it is durable. */
export interface BatchRetirement {
  segmentNeeded(): number;
  deleteUnneeded(needed: number): void;
}

export class BatchWriter {
  private waiters: Waiter[] = [];
  private flushing = false;
  private failed: WalError | null = null;
  /** The disk was full at the last try of the batch being written (it waits and is tried again). */
  private noSpaceError: WalError | null = null;
  /** Ends the wait before the next try (close gives up on a held batch). */
  private retryWait: { cancel: Cancel; resolve: () => void } | null = null;
  private giveUp = false;
  private closed = false;
  private frameSeq = 0;
  /** The segment the last frame went to. */
  private lastWritten: Segment | null = null;
  /** Frames being written by the batch in flight (readable until written). */
  inflight: PendingFrame[] = [];
  /** Set once, after construction (the purge needs the layout, which needs the log's roll). */
  retirement!: BatchRetirement;

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private readonly syncForce: boolean,
    private readonly layout: BatchLayout,
    private readonly sync: SegmentSync,
    private readonly stats: WalStats,
    private readonly scheduler: Scheduler,
    private readonly segmentBytes: number,
    /** Space reserved ahead of the frames, a step at a time (0: none, the file grows with each frame). */
    private readonly reserveBytes: number,
    /** Told when a batch is held by a full disk and when it is written at last (see `noSpace`). */
    private readonly onNoSpace: () => void,
  ) {}

  get error(): WalError | null { return this.failed; }
  /** Non-null while a batch is held by a full disk (appends still gather behind it). */
  get noSpace(): WalError | null { return this.noSpaceError; }
  get isFlushing(): boolean { return this.flushing; }
  get hasFailed(): boolean { return this.failed !== null; }

  /** Sequence number of the last frame written (recovery sets where it goes on from). */
  resumeAfter(frameSeq: number): void {
    this.frameSeq = frameSeq;
  }

  markClosed(): void {
    this.closed = true;
  }

  /**
   * Stops trying a batch held by a full disk (the log is closing): its appends, and those behind
   * it, are rejected with WAL_NO_SPACE (they were never durable), and the log stops.
   */
  abandonHeld(): void {
    // From now on a full disk fails the batch at once (the log is closing), held or not.
    this.giveUp = true;
    const w = this.retryWait;
    this.retryWait = null;
    if (w !== null) {
      w.cancel();
      w.resolve();
    }
  }

  /** Why an append is refused now (closed, or stopped after an I/O error), or null. */
  refusal(): WalError | null {
    if (this.closed) return new WalError('WAL_CLOSED', 'the log is closed');
    if (this.failed !== null) return new WalError('WAL_FAILED', `the log stopped after an I/O error: ${this.failed.message}`, undefined, undefined, { cause: this.failed });
    return null;
  }

  /** Resolves once the batch being gathered is durable (written, with syncForce off). */
  commit(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  commitIfPending(): Promise<void> {
    return this.layout.pending.length > 0 || this.flushing ? this.commit() : Promise.resolve();
  }

  /** An error while laying out a batch (e.g. creating the next segment): the log stops. */
  failNow(e: unknown): Promise<never> {
    this.fail(e, []);
    const err = this.refusal()!;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.layout.pending = [];
    return Promise.reject(err);
  }

  /**
   * Writes and syncs batches until nothing is pending: one write and one sync per segment touched.
   * A batch the disk has no room for is cut back, held, and tried again (bounded backoff) until
   * it is written; appends made meanwhile gather behind it.
   */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.layout.pending.length > 0 || this.waiters.length > 0) {
        const needed = this.retirement.segmentNeeded();
        const frames = this.layout.take();
        const waiters = this.waiters;
        this.waiters = [];
        this.inflight = frames;
        let retryMs = WAL_NO_SPACE_RETRY_MS_MIN;
        for (;;) {
          try {
            await this.writeBatch(frames);
            break;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOSPC' || this.giveUp || this.closed) {
              this.inflight = [];
              this.fail(e, frames);
              const err = this.giveUp && this.failed?.code === 'WAL_NO_SPACE' ? this.failed : this.refusal()!;
              for (const w of [...waiters, ...this.waiters]) w.reject(err);
              this.waiters = [];
              this.layout.pending = [];
              this.clearNoSpace();
              return;
            }
            // Not durable, so not acknowledged: the frames stay in memory (readable through
            // `inflight`) and are written again, whole, once there is room.
            this.cutBack(frames);
            this.stats.noSpaceRetries++;
            if (this.noSpaceError === null) {
              const err = e as NodeJS.ErrnoException;
              this.noSpaceError = new WalError('WAL_NO_SPACE', `no space left writing ${this.dir}: ${err.message}`, undefined, undefined, { cause: e });
              this.stats.lastError = this.noSpaceError.message;
              this.onNoSpace();
            }
            await this.waitToRetry(retryMs);
            retryMs = Math.min(WAL_NO_SPACE_RETRY_MS_MAX, retryMs * 2);
          }
        }
        this.inflight = [];
        this.clearNoSpace();
        // With syncForce off the batch is not synced yet: segments go once it is (wal-sync.ts).
        if (this.syncForce) this.retirement.deleteUnneeded(needed);
        else this.sync.afterCovered(() => this.retirement.deleteUnneeded(needed));
        for (const w of waiters) w.resolve();
      }
    } finally {
      this.flushing = false;
    }
  }

  private clearNoSpace(): void {
    if (this.noSpaceError === null) return;
    this.noSpaceError = null;
    this.onNoSpace();
  }

  private waitToRetry(ms: number): Promise<void> {
    if (this.giveUp) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const cancel = this.scheduler.after(ms, () => {
        this.retryWait = null;
        resolve();
      });
      this.retryWait = { cancel, resolve };
    });
  }

  /**
   * Makes sure the file of `seg` is allocated up to `end`: zeros written where no frame is yet,
   * to the next step boundary (a full disk fails here, before any byte of the frame). And ahead:
   * once the frames come within half a step of the end of what is reserved, the next step is
   * reserved and synced in the background (SegmentSync.syncReserved), so that the frames find
   * their blocks allocated and durable. A full disk met ahead only stops the reserving ahead.
   */
  private reserve(seg: Segment, end: number): void {
    if (this.reserveBytes === 0) return;
    const step = Math.min(this.reserveBytes, this.segmentBytes);
    // To the next step boundary, and never past the segment's size (unless one oversized frame is).
    if (end > seg.reserved) this.zeroTo(seg, Math.min(Math.max(this.segmentBytes, end), Math.ceil(end / step) * step));
    if (seg.reserved >= this.segmentBytes || end + (step >>> 1) <= seg.reserved) return;
    try {
      this.zeroTo(seg, Math.min(this.segmentBytes, seg.reserved + step));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return;
      throw e;
    }
    this.sync.syncReserved(seg);
  }

  /** Zeros from what is written or reserved of `seg` up to `to`. */
  private zeroTo(seg: Segment, to: number): void {
    zeros ??= Buffer.alloc(ZEROS_BYTES);
    const from = Math.max(seg.reserved, seg.written);
    for (let at = from; at < to;) {
      const n = Math.min(zeros.length, to - at);
      at += this.fs.writeSync(seg.fd, zeros, 0, n, at);
    }
    seg.reserved = to;
    this.stats.bytesReserved += to - from;
  }

  private async writeBatch(frames: PendingFrame[]): Promise<void> {
    const touched = new Set<Segment>();
    for (const f of frames) {
      const prev = this.lastWritten;
      if (prev !== null && prev !== f.seg && (touched.has(prev) || this.sync.isUnsynced(prev))) {
        // The first write to a newer segment: the older one is synced first, so a torn frame
        // is never followed by an intact one (recovery relies on it), whatever syncForce says.
        // So at most the newest segment is ever unsynced.
        await this.sync.syncNow(prev);
      }
      // Room first: a full disk fails here, before any byte of the frame is written.
      this.reserve(f.seg, f.start + f.len + END_MARK_BYTES);
      this.lastWritten = f.seg;
      sealFrame(f.buf, f.len, f.seg.seq, ++this.frameSeq);
      f.buf.fill(0, f.len, f.len + END_MARK_BYTES);
      this.writeFully(f.seg.fd, f.buf, f.len + END_MARK_BYTES, f.start);
      f.seg.written = f.start + f.len;
      touched.add(f.seg);
    }
    if (this.syncForce) {
      await this.sync.syncAll(touched);
    } else {
      // Done once the OS has it; the sync still starts now, so that a power loss loses at most
      // what was written since the last sync finished (docs/storage.md).
      this.sync.syncLater(touched);
    }
    this.stats.batches++;
    // Counted once written (a batch held by a full disk is tried more than once).
    for (const f of frames) {
      this.stats.bytes += f.len;
      this.layout.recycle(f.buf);
    }
  }

  /**
   * A write or sync failed for good: the log stops taking writes (the node stops acknowledging)
   * and cuts each segment back to what was written before the batch, so a restart finds a clean log.
   */
  fail(e: unknown, frames: PendingFrame[]): void {
    const err = e as NodeJS.ErrnoException;
    const code: WalErrorCode = err.code === 'ENOSPC' ? 'WAL_NO_SPACE' : 'WAL_IO';
    this.failed = new WalError(code, `${err.code ?? 'error'} writing ${this.dir}: ${err.message}`, undefined, undefined, { cause: e });
    this.stats.failures++;
    this.stats.lastError = this.failed.message;
    this.cutBack(frames);
  }

  /** Cuts each segment `frames` touch back to where the first of them starts (the batch's start). */
  private cutBack(frames: PendingFrame[]): void {
    const cut = new Map<Segment, number>();
    for (const f of frames) cut.set(f.seg, Math.min(cut.get(f.seg) ?? Infinity, f.start, f.seg.written));
    for (const [seg, size] of cut) {
      seg.written = size;
      // Truncating frees what was reserved past the cut too (it is reserved again on the next try).
      seg.reserved = Math.min(seg.reserved, size);
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
}
