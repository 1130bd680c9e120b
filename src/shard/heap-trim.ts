// Giving back the heap a burst left behind, once the shard is quiet.
//
// V8 runs a full (mark-compact) collection when the old generation grows past its limit; a
// shard whose groups have all quiesced allocates next to nothing, so that never comes, and
// whatever a burst promoted into the old generation stays resident for good. Start-up is such
// a burst: at 10,000 groups the bootstraps, elections and first appends of one turn outlive the
// young generation's collections, and an idle worker kept ≈ 100 MB of dead objects beside
// ≈ 65 MB of live ones, and a young generation grown to its 2 × shardSemiSpaceMb
// (docs/benchmarks.md, "Idle memory"). So when no group has been awake for `quietTicksMin`
// ticks and the used heap has grown by `growthBytesMin` since the last trim, the shard
// collects: fully, once to free the dead objects and once more `quietTicksMin` ticks later,
// which is when V8 hands the pages the first one emptied back to the system; then the young
// generation, once a tick for `youngCollections` ticks (V8 halves a young generation that a
// collection finds allocated slowly into). A full collection of that heap blocks the shard for
// 0.1–0.3 s, harmless while every group is quiet (nothing ticks, and a message that arrives
// meanwhile waits that long); a young one costs well under a millisecond. A shard that stays
// busy never trims, and needs to not: its own allocation keeps V8 collecting.
import { setFlagsFromString, getHeapStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { assert } from '../util/assert.js';

/** Quiet ticks (no group awake) before a collection: 1 s at the default 100 ms tick. */
export const TRIM_QUIET_TICKS_MIN = 10;
/** Growth of the used heap since the last trim that makes one worth it. */
export const TRIM_GROWTH_BYTES_MIN = 16 << 20;
/** Young collections after the full ones: each may halve the young generation (32 MiB → 0.5). */
export const TRIM_YOUNG_COLLECTIONS = 7;

export interface HeapTrimOptions {
  /** A full collection (synchronous). */
  collect: () => void;
  /** A collection of the young generation only. */
  collectYoung: () => void;
  /** Bytes of the heap in use now (live and not yet collected). */
  usedBytes: () => number;
  quietTicksMin?: number;
  growthBytesMin?: number;
  youngCollections?: number;
}

const enum Phase {
  /** Waiting for the heap to grow and the shard to be quiet. */
  Watch,
  /** The first full collection ran; the second waits for the next quiet stretch. */
  SecondDue,
  /** Young collections, one a quiet tick. */
  Young,
}

export class HeapTrim {
  /** Full and young collections run (tests, and the docs' figures). */
  collections = 0;
  collectionsYoung = 0;
  private readonly o: Required<HeapTrimOptions>;
  private phase = Phase.Watch;
  private quietTicks = 0;
  private youngLeft = 0;
  /** Used bytes after the last trim (at first: when the shard was made). */
  private usedAfter: number;

  constructor(o: HeapTrimOptions) {
    this.o = { quietTicksMin: TRIM_QUIET_TICKS_MIN, growthBytesMin: TRIM_GROWTH_BYTES_MIN, youngCollections: TRIM_YOUNG_COLLECTIONS, ...o };
    assert(this.o.quietTicksMin > 0 && this.o.growthBytesMin > 0 && this.o.youngCollections >= 0, 'heap trim needs positive bounds');
    this.usedAfter = o.usedBytes();
  }

  /** Once per shard tick: `quiet` when no group is awake. */
  tick(quiet: boolean): void {
    if (!quiet) {
      this.quietTicks = 0;
      return;
    }
    this.quietTicks++;
    switch (this.phase) {
      case Phase.Watch:
        if (this.quietTicks < this.o.quietTicksMin || this.o.usedBytes() - this.usedAfter < this.o.growthBytesMin) return;
        this.full();
        this.phase = Phase.SecondDue;
        return;
      case Phase.SecondDue:
        if (this.quietTicks < this.o.quietTicksMin) return;
        this.full();
        this.phase = Phase.Young;
        this.youngLeft = this.o.youngCollections;
        return;
      case Phase.Young:
        if (this.youngLeft === 0) {
          this.phase = Phase.Watch;
          this.usedAfter = this.o.usedBytes();
          return;
        }
        this.youngLeft--;
        this.o.collectYoung();
        this.collectionsYoung++;
        return;
    }
  }

  private full(): void {
    this.o.collect();
    this.collections++;
    this.quietTicks = 0;
  }
}

/**
 * A HeapTrim on this thread's V8 heap. Node offers no call that runs a collection without
 * `--expose-gc`; the flag is set here, for contexts made from now on, and `gc` is taken from a
 * fresh context (the flag changes nothing else).
 */
export function v8HeapTrim(bounds: { quietTicksMin?: number; growthBytesMin?: number; youngCollections?: number } = {}): HeapTrim {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (o?: { type: 'major' | 'minor' }) => void;
  return new HeapTrim({
    collect: () => gc(),
    collectYoung: () => gc({ type: 'minor' }),
    usedBytes: () => getHeapStatistics().used_heap_size,
    ...bounds,
  });
}
