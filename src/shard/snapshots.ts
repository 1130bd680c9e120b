// Snapshots of the shard's groups: taken here every snapshotEntries applied commands (image the
// state machine, write it to the store, record it in the log, compact the log behind it),
// installed from a leader (to the store, then into the state machine, before the batch that
// carries it is appended), and the newest image of each group kept in memory (`images`) for the
// log to hand a leader's core synchronously. Store writes run one at a time, in order.
import type { Snapshot, SnapshotMeta } from '../raft/types.js';
import type { SnapshotStore } from '../storage/snapshot-store.js';
import type { Wal } from '../storage/wal.js';
import type { ClientRequests } from './client-requests.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import type { GroupHost } from './group-host.js';
import type { ShardLogger } from './log.js';
import type { LoopControl } from './loop-control.js';
import type { ImageSteps } from './state-machine.js';
import type { ShardTask } from './task.js';

const noop = (): void => {};
/** An install the disk has no room for is tried again after this long, doubling up to the max. */
const INSTALL_RETRY_MS_MIN = 50;
const INSTALL_RETRY_MS_MAX = 2000;

/**
 * Image bytes made between two turns when a state machine images in steps: about a
 * millisecond of copying, so that a large state's image shows in no turn's latency.
 */
export const IMAGE_STEP_BYTES = 1 << 20;

export class Snapshots {
  private readonly task: ShardTask;
  private readonly wal: Wal;
  private readonly log: ShardLogger;
  private readonly counters: Float64Array;
  private readonly control: LoopControl;
  /** Snapshot store writes run one at a time, in order (installs, local snapshots, removals). */
  private snapChain: Promise<void> = Promise.resolve();

  constructor(
    ctx: ShardContext,
    private readonly store: SnapshotStore,
    private readonly groups: Map<number, GroupHost>,
    /** The newest snapshot image of each group that has one, for leaders to send (see Shard.open). */
    readonly images: Map<number, Snapshot>,
    private readonly requests: ClientRequests,
  ) {
    this.task = ctx.task;
    this.wal = ctx.wal;
    this.log = ctx.log;
    this.counters = ctx.counters;
    this.control = ctx.control;
  }

  private serialSnapshotWork<T>(work: () => Promise<T>): Promise<T> {
    const run = this.snapChain.then(work);
    this.snapChain = run.then(noop, noop);
    return run;
  }

  /** Removes the group's snapshot files, after any snapshot write of it still queued. */
  removeGroup(group: number): Promise<void> {
    return this.serialSnapshotWork(() => this.store.removeGroup(group));
  }

  /** A leader's snapshot: to the store first, then into the state machine (the append follows). */
  async install(h: GroupHost, snap: Snapshot): Promise<void> {
    if (h.removed) return;
    // A full disk holds the install (and every later batch, readies.ts) until there is room.
    for (let ms = INSTALL_RETRY_MS_MIN; ; ms = Math.min(INSTALL_RETRY_MS_MAX, ms * 2)) {
      try {
        await this.serialSnapshotWork(() => this.store.write(h.id, snap.meta, snap.data));
        break;
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'ENOSPC' || this.control.fatal !== null || this.control.abandoning) throw e;
        this.log.warn({ group: h.id, index: snap.meta.index, err: (e as Error).message }, 'snapshot from the leader not written: the disk is full; trying again');
        await this.control.sleep(ms);
        if (h.removed) return;
      }
    }
    h.image.installing--;
    if (h.removed) return;
    h.sm.restore(snap.data);
    h.image.bytes = snap.data.length;
    h.image.appliedBytesSince = 0;
    h.image.appliedCommandsSince = 0;
    h.applied = snap.meta.index;
    h.appliedTerm = snap.meta.term;
    h.conf = snap.meta.conf;
    h.image.index = snap.meta.index;
    this.counters[ShardCounter.SnapshotsInstalled]!++;
    for (const [index, p] of h.writes.proposals) {
      if (index > snap.meta.index) continue;
      h.writes.proposals.delete(index);
      this.requests.rejectWrite(h, p, 'OUTCOME_UNKNOWN', `a snapshot from the leader replaced the log of group ${h.id}`);
    }
    this.log.info({ group: h.id, index: snap.meta.index, term: snap.meta.term, bytes: snap.data.length }, 'snapshot installed');
  }

  /**
   * Every snapshotEntries applied commands: image the state machine, write it to the store,
   * record it in the log, and compact the log up to snapshotKeepEntries behind it (followers a
   * little behind still get entries rather than the whole snapshot).
   */
  maybeSnapshot(h: GroupHost, keepEntries = this.task.snapshotKeepEntries): void {
    if (h.image.taking || h.image.installing > 0 || h.removed) return;
    if (keepEntries === 0) {
      if (h.applied === h.image.index) return;
    } else if (h.image.appliedCommandsSince < this.task.snapshotEntries || h.image.appliedBytesSince < this.task.snapshotLogRatio * h.image.bytes) {
      // Imaging costs the size of the state; waiting until the log since the last image is
      // snapshotLogRatio times as large keeps that cost at most 1/ratio of the cost of writing
      // the log, however large the state.
      return;
    }
    h.image.taking = true;
    h.image.appliedBytesSince = 0;
    h.image.appliedCommandsSince = 0;
    const meta: SnapshotMeta = { index: h.applied, term: h.appliedTerm, conf: h.conf };
    const steps = h.sm.snapshotInSteps?.();
    const imaged = steps === undefined ? Promise.resolve(h.sm.snapshot()) : this.imageInSteps(h, steps);
    this.control.track(imaged
      .then((image) => {
        if (image === null) return;
        h.image.bytes = image.length;
        return this.serialSnapshotWork(() => this.takeSnapshot(h, meta, image, keepEntries));
      })
      .catch((e: unknown) => {
        // A full disk is no failure: the old snapshot and the log still hold everything, and the
        // next one is tried after snapshotEntries more commands (or by the unpin sweep).
        if ((e as { code?: unknown }).code === 'ENOSPC') this.log.warn({ group: h.id, err: (e as Error).message }, 'snapshot not written: the disk is full');
        else this.control.failWith(e);
      })
      .finally(() => {
        h.image.taking = false;
      }));
  }

  /** Makes the image a step between turns; null if the group went away meanwhile. */
  private async imageInSteps(h: GroupHost, steps: ImageSteps): Promise<Uint8Array | null> {
    for (;;) {
      const image = steps.step(IMAGE_STEP_BYTES);
      if (image !== null) return image;
      await this.control.yieldToTurns();
      if (h.removed) return null;
    }
  }

  /**
   * The log deletes a segment only once no group needs it, and rewrites small groups that hold
   * the oldest one back; a group with more live log than that (rewriteBytesMax) that went quiet
   * before reaching snapshotEntries would keep every later segment on disk. Such groups are
   * snapshotted now and compacted right up to the snapshot. Checked with the request sweep.
   */
  unpin(): void {
    for (const g of this.wal.groupsPinning()) {
      const h = this.groups.get(g);
      if (h === undefined || h.image.taking || h.image.installing > 0) continue;
      if (h.applied > h.image.index) {
        this.maybeSnapshot(h, 0);
      } else if (this.wal.group(g).compactedIndex < h.image.index) {
        this.control.track(this.wal.compact(g, h.image.index).catch((e: unknown) => this.control.failWith(e)));
      }
    }
  }

  private async takeSnapshot(h: GroupHost, meta: SnapshotMeta, image: Uint8Array, keepEntries: number): Promise<void> {
    if (h.removed || h.image.index >= meta.index) return;
    await this.store.write(h.id, meta, image);
    if (h.removed || h.image.index >= meta.index) return;
    // In one synchronous step: the image for snapshotData, and the log's marker it answers to.
    this.images.set(h.id, { meta, data: image });
    h.image.index = meta.index;
    const recorded = this.wal.recordSnapshot(h.id, meta);
    const to = meta.index - keepEntries;
    const compacted = to > this.wal.group(h.id).compactedIndex ? this.wal.compact(h.id, to) : Promise.resolve();
    await Promise.all([recorded, compacted]);
    // Older snapshot files may go only once the log's marker for this one is durable.
    await this.store.prune(h.id);
    this.counters[ShardCounter.SnapshotsTaken]!++;
  }
}
