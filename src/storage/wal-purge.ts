// Freeing disk: which segments no group needs any more, deleting them (oldest first, only once
// the batch that made them unneeded is durable), and rewriting the live state of small groups
// that hold the oldest segment back, so that an idle group cannot pin disk forever. A group
// with more live data than `rewriteBytesMax` should be snapshotted by its host: see
// `groupsPinning`.
import type { BatchLayout } from './wal-batch.js';
import type { WalStats } from './wal-error.js';
import type { GroupLog } from './group-log.js';
import { RecordKind } from './wal-format.js';
import type { SegmentFiles } from './wal-segment-files.js';
import type { SegmentSync } from './wal-sync.js';
import type { BatchRetirement } from './wal-writer.js';

export class SegmentPurge implements BatchRetirement {
  private purging = false;
  /** Set once, after construction (the layout's roll runs the purge). */
  layout!: BatchLayout;

  constructor(
    private readonly files: SegmentFiles,
    private readonly groups: ReadonlyMap<number, GroupLog>,
    private readonly sync: SegmentSync,
    private readonly stats: WalStats,
    private readonly rewriteBytesMax: number,
  ) {}

  /** After a new segment was started: rewrites the small groups that hold the oldest one back into it. */
  rewriteHolders(): void {
    if (this.purging || this.files.size <= 2) return;
    this.purging = true;
    try {
      const oldest = this.files.oldestSeq();
      for (const g of this.groups.values()) {
        if (g.oldestSegmentNeeded() === oldest && g.liveBytes <= this.rewriteBytesMax) this.rewriteGroup(g);
      }
    } finally {
      this.purging = false;
    }
  }

  /** The oldest segment any group needs, given every record laid out so far. */
  segmentNeeded(): number {
    let needed = this.files.current.seq;
    if (this.files.size <= 1) return needed;
    for (const g of this.groups.values()) needed = Math.min(needed, g.oldestSegmentNeeded());
    return needed;
  }

  /**
   * Deletes segments older than `needed`, computed when the batch just made durable was sealed:
   * the records that made them unneeded are on disk now, and no later record can need an
   * older segment again (records only ever go to the current one).
   */
  deleteUnneeded(needed: number): void {
    for (const s of [...this.files.bySeq.values()]) {
      if (s.seq >= needed || s === this.files.current) continue;
      if (this.layout.pending.some((f) => f.seg === s)) continue;
      // One waiting for a background sync need not be synced at all; one under it keeps its fd
      // until the sync ends (the file goes now, so deletions stay oldest first).
      this.files.retire(s, this.sync.release(s));
    }
  }

  /** Groups holding the oldest segment back that are too large to rewrite: snapshot them. */
  groupsPinning(): number[] {
    if (this.files.size <= 2) return [];
    const oldest = this.files.oldestSeq();
    return [...this.groups.values()].filter((g) => g.oldestSegmentNeeded() === oldest).map((g) => g.id);
  }

  private rewriteGroup(g: GroupLog): void {
    this.stats.groupsRewritten++;
    if (g.snap.index > 0) this.layout.snapshot(g, g.snap, false);
    const live = g.liveEntries();
    if (live.length > 0) this.layout.entries(g, live, RecordKind.Rewrite);
    else if (g.compactedIndex > 0) this.layout.compact(g, g.compactedIndex, g.compactedTerm);
    if (g.hardStateSeg >= 0) this.layout.write(g, { group: g.id, hardState: g.hardState });
  }
}
