// Giving back the heap a burst left behind, once the shard is quiet.
//
// V8 runs a full (mark-compact) collection when the old generation grows past its limit; a
// shard whose groups have all quiesced allocates next to nothing, so that never comes, and
// whatever a burst promoted into the old generation stays resident for good. Start-up is such
// a burst: at 10,000 groups the bootstraps, elections and first appends of one turn outlive the
// young generation's collections, and an idle worker kept ≈ 100 MB of dead objects beside
// ≈ 65 MB of live ones (docs/benchmarks.md, "Idle memory"). So when no group has been awake for
// `quietTicksMin` ticks and the used heap has grown by `growthBytesMin` since the last trim, the
// shard collects: once to free the dead objects, and once more `quietTicksMin` ticks later,
// which is when V8 hands the pages the first one emptied back to the system. A collection
// of that heap blocks the shard for 0.1–0.3 s, harmless while every group is quiet (nothing
// ticks, and a message that arrives meanwhile waits that long); a shard that stays busy never
// trims, and needs to not: its own allocation keeps V8 collecting.
import { setFlagsFromString, getHeapStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { assert } from '../util/assert.js';

/** Quiet ticks (no group awake) before a collection: 3 s at the default 100 ms tick. */
export const TRIM_QUIET_TICKS_MIN = 30;
/** Growth of the used heap since the last trim that makes one worth it. */
export const TRIM_GROWTH_BYTES_MIN = 16 << 20;

export interface HeapTrimOptions {
  /** A full collection (synchronous). */
  collect: () => void;
  /** Bytes of the heap in use now (live and not yet collected). */
  usedBytes: () => number;
  quietTicksMin?: number;
  growthBytesMin?: number;
}

export class HeapTrim {
  /** Collections run (tests, and the docs' figures). */
  collections = 0;
  private readonly collect: () => void;
  private readonly usedBytes: () => number;
  private readonly quietTicksMin: number;
  private readonly growthBytesMin: number;
  private quietTicks = 0;
  /** Used bytes after the last trim (at first: when the shard was made). */
  private usedAfter: number;
  /** The first collection of a trim ran; the second is due after the next quiet stretch. */
  private secondDue = false;

  constructor(o: HeapTrimOptions) {
    this.collect = o.collect;
    this.usedBytes = o.usedBytes;
    this.quietTicksMin = o.quietTicksMin ?? TRIM_QUIET_TICKS_MIN;
    this.growthBytesMin = o.growthBytesMin ?? TRIM_GROWTH_BYTES_MIN;
    assert(this.quietTicksMin > 0 && this.growthBytesMin > 0, 'heap trim needs positive bounds');
    this.usedAfter = this.usedBytes();
  }

  /** Once per shard tick: `quiet` when no group is awake. */
  tick(quiet: boolean): void {
    if (!quiet) {
      this.quietTicks = 0;
      return;
    }
    if (++this.quietTicks < this.quietTicksMin) return;
    if (this.secondDue) {
      this.secondDue = false;
      this.run();
      this.usedAfter = this.usedBytes();
      return;
    }
    if (this.usedBytes() - this.usedAfter < this.growthBytesMin) return;
    this.run();
    this.secondDue = true;
    this.usedAfter = this.usedBytes();
  }

  private run(): void {
    this.collect();
    this.collections++;
    this.quietTicks = 0;
  }
}

/**
 * A HeapTrim on this thread's V8 heap. Node offers no call that runs a full collection
 * without `--expose-gc`; the flag is set here, for contexts made from now on, and `gc` is taken
 * from a fresh context (the flag changes nothing else).
 */
export function v8HeapTrim(bounds: { quietTicksMin?: number; growthBytesMin?: number } = {}): HeapTrim {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return new HeapTrim({ collect: gc, usedBytes: () => getHeapStatistics().used_heap_size, ...bounds });
}
