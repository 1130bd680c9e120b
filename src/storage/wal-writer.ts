// Group commit: the promises of appends, the loop that writes and syncs batches until nothing is
// pending (one write and one sync per segment a batch touches), and what a failed write or sync
// does (the log stops; each segment is cut back to what was written before the batch).
//
// Appends made while a batch is being written and synced gather into the next batch, so the
// disk is never idle while work waits and never synced more than once per batch. With
// `syncForce: false` a batch counts as done once the OS has it (a process crash loses nothing);
// its fdatasync still starts right away, not waited on, so a power loss loses at most what was
// written since the last background sync finished.
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

/** What the writer asks of the purge: which segments a sealed batch still needs, and deleting the rest once it is durable. */
export interface BatchRetirement {
  segmentNeeded(): number;
  deleteUnneeded(needed: number): void;
}

export class BatchWriter {
  private waiters: Waiter[] = [];
  private flushing = false;
  private failed: WalError | null = null;
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
  ) {}

  get error(): WalError | null { return this.failed; }
  get isFlushing(): boolean { return this.flushing; }
  get hasFailed(): boolean { return this.failed !== null; }

  /** Sequence number of the last frame written (recovery sets where it goes on from). */
  resumeAfter(frameSeq: number): void {
    this.frameSeq = frameSeq;
  }

  markClosed(): void {
    this.closed = true;
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

  /** Writes and syncs batches until nothing is pending: one write and one sync per segment touched. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.layout.pending.length > 0 || this.waiters.length > 0) {
        const needed = this.retirement.segmentNeeded();
        const frames = this.layout.take();
        const waiters = this.waiters;
        this.waiters = [];
        this.inflight = frames;
        try {
          await this.writeBatch(frames);
          this.inflight = [];
          // With syncForce off the batch is not synced yet: segments go once it is (wal-sync.ts).
          if (this.syncForce) this.retirement.deleteUnneeded(needed);
          else this.sync.afterCovered(() => this.retirement.deleteUnneeded(needed));
          for (const w of waiters) w.resolve();
        } catch (e) {
          this.inflight = [];
          this.fail(e, frames);
          for (const w of [...waiters, ...this.waiters]) w.reject(this.refusal()!);
          this.waiters = [];
          this.layout.pending = [];
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
      if (prev !== null && prev !== f.seg && (touched.has(prev) || this.sync.isUnsynced(prev))) {
        // The first write to a newer segment: the older one is synced first, so a torn frame
        // is never followed by an intact one (recovery relies on it), whatever syncForce says.
        // So at most the newest segment is ever unsynced.
        await this.sync.syncNow(prev);
      }
      this.lastWritten = f.seg;
      sealFrame(f.buf, f.len, f.seg.seq, ++this.frameSeq);
      f.buf.fill(0, f.len, f.len + END_MARK_BYTES);
      this.writeFully(f.seg.fd, f.buf, f.len + END_MARK_BYTES, f.start);
      f.seg.written = f.start + f.len;
      touched.add(f.seg);
      this.stats.bytes += f.len;
    }
    if (this.syncForce) {
      await this.sync.syncAll(touched);
    } else {
      // Done once the OS has it; the sync still starts now, so that a power loss loses at most
      // what was written since the last sync finished (docs/storage.md).
      this.sync.syncLater(touched);
    }
    this.stats.batches++;
    for (const f of frames) this.layout.recycle(f.buf);
  }

  /**
   * A write or sync failed: the log stops taking writes (the node stops acknowledging) and cuts
   * each segment back to what was written before the batch, so a restart finds a clean log.
   */
  fail(e: unknown, frames: PendingFrame[]): void {
    const err = e as NodeJS.ErrnoException;
    const code: WalErrorCode = err.code === 'ENOSPC' ? 'WAL_NO_SPACE' : 'WAL_IO';
    this.failed = new WalError(code, `${err.code ?? 'error'} writing ${this.dir}: ${err.message}`, undefined, undefined, { cause: e });
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
}
