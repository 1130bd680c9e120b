// The segment files of one log and the spares kept for reuse: which exist, which one is being
// written, starting the next (from a spare when one is durable), and retiring one that no group
// needs any more (to a spare, or deleted). Directory entries that changed are synced with the
// next batch (`syncDirectories`).
import * as path from 'node:path';
import type { FileSystem } from '../io/file-system.js';
import type { WalStats } from './wal-error.js';
import { segmentName, spareName } from './wal-format.js';
import type { Recovery } from './wal-recovery.js';

export interface Segment {
  seq: number;
  file: string;
  fd: number;
  /** Bytes assigned to frames so far (written or pending). */
  assigned: number;
  /** Bytes known to be written. */
  written: number;
  /** The file is allocated (written, with frames or with zeros) up to here (wal-writer.ts, reserve). */
  reserved: number;
  /**
   * Made by this process, so every frame in it names its segment: its file may become a spare.
   * (A recovered one may hold frames of an older format, which name none.)
   */
  recyclable: boolean;
}

/**
 * Deleted segments' files kept for reuse. A new segment takes one (renamed) instead of a new
 * file that grows with every batch: an fdatasync on a file that does not grow writes no
 * metadata (the size and extents are already on disk), which on ext4 is most of its cost.
 */
export const WAL_SPARES_MAX = 2;

interface Spare {
  file: string;
  fd: number;
  /** Bytes of its file known to be allocated (0 when recovered: not known). */
  reserved: number;
  /** Its rename to a spare name is durable (a directory sync followed it): only then reused. */
  durable: boolean;
}

export class SegmentFiles {
  readonly bySeq = new Map<number, Segment>();
  /** The segment new frames go to. */
  current!: Segment;
  private nextSeq = 1;
  private readonly spares: Spare[] = [];
  private spareSeq = 0;
  /** Entries of the log's directory changed (a segment or spare created, renamed or deleted). */
  private dirNeedsSync = false;
  /** Directories whose entries must be made durable with the next batch: the log's own parents, when open created them. */
  private readonly parentsNeedSync: string[] = [];

  constructor(private readonly fs: FileSystem, private readonly dir: string, private readonly stats: WalStats) {}

  get size(): number { return this.bySeq.size; }

  oldestSeq(): number {
    return Math.min(...this.bySeq.keys());
  }

  /** Creates the log's directory; when that made new directories, their parents are synced with the first batch. */
  createDirectory(): void {
    const first = this.fs.mkdirSync(this.dir);
    if (first !== undefined) {
      // A new directory is durable only once its parent is synced: without that, a power loss
      // soon after the first acknowledged batch could take the whole log with it.
      for (let d = this.dir; ; d = path.dirname(d)) {
        this.parentsNeedSync.push(path.dirname(d));
        if (d === first || path.dirname(d) === d) break;
      }
    }
  }

  /** Takes over what recovery found: its segments (kept as they are) and its spares (up to WAL_SPARES_MAX). */
  adopt(r: Recovery): void {
    this.spareSeq = r.spareMax;
    for (const file of r.spares) {
      if (this.spares.length >= WAL_SPARES_MAX) {
        this.fs.unlinkSync(file);
        continue;
      }
      // Not trusted as durable until the next directory sync (syncRecovered makes one).
      this.spares.push({ file, fd: this.fs.openSync(file, 'r+'), reserved: 0, durable: false });
      this.dirNeedsSync = true;
    }
    for (const { seq, file, end } of r.segments) {
      const fd = this.fs.openSync(file, 'r+');
      this.bySeq.set(seq, { seq, file, fd, assigned: end, written: end, reserved: end, recyclable: false });
      this.nextSeq = seq + 1;
    }
  }

  /** The newest segment recovered, to go on writing in, or undefined. */
  newest(): Segment | undefined {
    return this.bySeq.get(this.nextSeq - 1);
  }

  /** Continues in the recovered segment `s`. */
  resume(s: Segment): void {
    this.current = s;
  }

  /** Starts the next segment, in a durable spare's file when there is one; it becomes current. */
  startNext(): Segment {
    const seq = this.nextSeq++;
    const file = path.join(this.dir, segmentName(seq));
    let fd: number;
    let reserved = 0;
    const k = this.spares.findIndex((sp) => sp.durable);
    if (k >= 0) {
      // Its old frames stay in the file until overwritten; recovery tells them by the segment
      // number in their headers, and finds the end of what this segment wrote at its end mark.
      const sp = this.spares.splice(k, 1)[0]!;
      this.fs.renameSync(sp.file, file);
      fd = sp.fd;
      reserved = sp.reserved;
      this.stats.segmentsRecycled++;
    } else {
      fd = this.fs.openSync(file, 'wx+');
    }
    const s: Segment = { seq, file, fd, assigned: 0, written: 0, reserved, recyclable: true };
    this.bySeq.set(seq, s);
    this.current = s;
    this.stats.segments++;
    this.dirNeedsSync = true;
    return s;
  }

  /**
   * Retires a segment no group needs: its file goes now (so deletions stay oldest first). One
   * still under a background sync (`underSync`) is unlinked and its fd left to the caller, to
   * close when the sync ends; else it becomes a spare when it can, or is deleted.
   */
  retire(s: Segment, underSync: boolean): void {
    if (underSync) {
      this.fs.unlinkSync(s.file);
    } else if (s.recyclable && this.spares.length < WAL_SPARES_MAX) {
      const file = path.join(this.dir, spareName(++this.spareSeq));
      this.fs.renameSync(s.file, file);
      this.spares.push({ file, fd: s.fd, reserved: Math.max(s.reserved, s.written), durable: false });
    } else {
      this.fs.closeSync(s.fd);
      this.fs.unlinkSync(s.file);
    }
    this.bySeq.delete(s.seq);
    this.stats.segmentsDeleted++;
    this.dirNeedsSync = true;
  }

  /** Syncs the directory entries that changed (spares renamed before it are durable after it), then the new parents. */
  async syncDirectories(syncDir: (dir: string) => Promise<void>): Promise<void> {
    if (this.dirNeedsSync) {
      this.dirNeedsSync = false;
      const renamed = this.spares.filter((sp) => !sp.durable);
      await syncDir(this.dir);
      for (const sp of renamed) sp.durable = true;
    }
    while (this.parentsNeedSync.length > 0) {
      await syncDir(this.parentsNeedSync[0]!);
      this.parentsNeedSync.shift();
    }
  }

  closeAll(): void {
    for (const s of this.bySeq.values()) this.fs.closeSync(s.fd);
    for (const sp of this.spares) this.fs.closeSync(sp.fd);
  }
}
