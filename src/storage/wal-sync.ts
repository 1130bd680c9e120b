// Making written segments durable: fdatasync of segment files and the directory syncs that go
// with them, counted as one "sync" in the stats; and, with syncForce off, the background sync
// that runs right after each batch, one at a time, each covering everything written while the
// last one ran.
import type { Clock } from '../io/clock.js';
import type { FileSystem } from '../io/file-system.js';
import type { WalStats } from './wal-error.js';
import type { Segment, SegmentFiles } from './wal-segment-files.js';

export class SegmentSync {
  /** syncForce off: segments written since the background sync last started, the ones it syncs, and the sync itself. */
  private readonly unsynced = new Set<Segment>();
  private syncing: Segment[] = [];
  private running: Promise<void> | null = null;
  /** Files of deleted segments whose background sync was still running when they went. */
  private closeAfterSync: number[] = [];
  /** Background syncs started, and the last one that finished well (numbered from 1). */
  private started = 0;
  private finished = 0;
  /** Work waiting for the background sync numbered `after` to finish (see afterCovered). */
  private waiting: { after: number; run: () => void }[] = [];
  /** Syncs of space reserved ahead of frames (syncReserved) under way, and their segments. */
  private readonly reserveSyncs = new Set<Promise<void>>();
  private readonly reserveSyncing = new Set<Segment>();

  /**
   * `failed` tells whether the log has stopped; `fail` stops it (a background sync that fails
   * stops the log as a failed write does: what it had acknowledged may not survive a power loss).
   */
  constructor(
    private readonly fs: FileSystem,
    private readonly clock: Clock,
    private readonly files: SegmentFiles,
    private readonly stats: WalStats,
    private readonly failed: () => boolean,
    private readonly fail: (e: unknown) => void,
  ) {}

  /** Resolves once no background sync is under way (close waits for it). */
  async whenIdle(): Promise<void> {
    while (this.running !== null || this.reserveSyncs.size > 0) {
      await Promise.allSettled([this.running, ...this.reserveSyncs]);
    }
  }

  /**
   * Makes the zeros just reserved ahead of `seg`'s frames durable, in the background
   * (wal-writer.ts reserve): the blocks they allocated and the size they gave the file are then
   * on the disk before any frame reaches them, and the batches' own fdatasyncs write data only
   * (with the zeros left to them, the one after each reservation also wrote a MiB of zeros and
   * the allocation's metadata: 0.7 against 0.2 ms at p99 for 100 KB batches on this disk).
   *
   * On a descriptor of its own: Linux reports a failed writeback once per open file, so a sync
   * on the log's own descriptor could take the error a batch's fdatasync must see. A failure
   * here stops the log too (the disk is failing).
   */
  syncReserved(seg: Segment): void {
    if (this.reserveSyncing.has(seg) || this.failed()) return;
    let fd: number;
    try {
      fd = this.fs.openSync(seg.file, 'r+');
    } catch (e) {
      // Retired and gone already: nothing to make durable.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.fail(e);
      return;
    }
    this.reserveSyncing.add(seg);
    const p = this.fdatasync(fd)
      .then(() => { this.stats.reserveSyncs++; }, (e: unknown) => { if (!this.failed()) this.fail(e); })
      .finally(() => {
        this.fs.closeSync(fd);
        this.reserveSyncing.delete(seg);
        this.reserveSyncs.delete(p);
      });
    this.reserveSyncs.add(p);
  }

  /** Whether `seg` was written and is not known to be synced yet (waiting for, or under, a background sync). */
  isUnsynced(seg: Segment): boolean {
    return this.unsynced.has(seg) || this.syncing.includes(seg);
  }

  /** Syncs `seg` now, ahead of the background sync (the first write to a newer segment needs it). */
  async syncNow(seg: Segment): Promise<void> {
    await this.fdatasync(seg.fd);
    this.unsynced.delete(seg);
  }

  /**
   * `seg` is being retired: it needs no sync any more. Returns true when a background sync is
   * running on it: its fd is then closed when that sync ends, not by the caller.
   */
  release(seg: Segment): boolean {
    this.unsynced.delete(seg);
    if (!this.syncing.includes(seg)) return false;
    this.closeAfterSync.push(seg.fd);
    return true;
  }

  /** fdatasync of `segments`, then the directory entries that changed: one "sync" in the stats. */
  async syncAll(segments: Iterable<Segment>): Promise<void> {
    const t0 = this.clock.nowMs();
    for (const seg of segments) await this.fdatasync(seg.fd);
    await this.files.syncDirectories((dir) => this.syncDir(dir));
    this.stats.fsyncMsTotal += this.clock.nowMs() - t0;
    this.stats.fsyncs++;
  }

  /**
   * syncForce off: runs `fn` once everything written so far is synced, i.e. after the background
   * sync that takes the segments now waiting (or the one running, if it took them). A segment
   * may be deleted only then: its deletion must not reach the disk before the records that made
   * it unneeded (the directory sync that makes a deletion durable would otherwise run beside an
   * fdatasync called before those records were written). Dropped if the log fails.
   */
  afterCovered(fn: () => void): void {
    const after = this.unsynced.size > 0 ? this.started + 1 : this.started;
    if (after <= this.finished) {
      fn();
      return;
    }
    this.waiting.push({ after, run: fn });
  }

  /** syncForce off: `segments` were written; the background sync covers them (starting now if idle). */
  syncLater(segments: Iterable<Segment>): void {
    for (const seg of segments) this.unsynced.add(seg);
    if (this.running !== null) return;
    const run = async (): Promise<void> => {
      while (this.unsynced.size > 0 && !this.failed()) {
        const batch = [...this.unsynced];
        this.unsynced.clear();
        this.syncing = batch;
        const n = ++this.started;
        let ok = false;
        try {
          await this.syncAll(batch);
          ok = true;
        } catch (e) {
          if (!this.failed()) this.fail(e);
        } finally {
          this.syncing = [];
        }
        for (const fd of this.closeAfterSync) this.fs.closeSync(fd);
        this.closeAfterSync = [];
        if (!ok) {
          this.waiting = [];
          continue;
        }
        this.finished = n;
        const due = this.waiting.filter((w) => w.after <= n);
        this.waiting = this.waiting.filter((w) => w.after > n);
        for (const w of due) w.run();
      }
    };
    this.running = run().finally(() => {
      this.running = null;
    });
  }

  private fdatasync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => this.fs.fdatasync(fd, (e) => (e === null ? resolve() : reject(e))));
  }

  private syncDir(dir: string): Promise<void> {
    return new Promise((resolve, reject) => this.fs.syncDir(dir, (e) => (e === null ? resolve() : reject(e))));
  }
}
