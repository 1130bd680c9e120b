// One group's view of the shared write-ahead log: its hard state, its latest snapshot marker,
// and an index from log index to where each live entry sits (segment, offset, length), with
// the payloads of recent entries cached in memory. It implements the Raft core's LogStorage,
// so the core reads entries from here: from memory in the common case, from the segment file
// for laggards.
import { assert } from '../util/assert.js';
import { emptyConf } from '../raft/conf-change.js';
import type { Entry, EntryType, HardState, LogStorage, Snapshot, SnapshotMeta } from '../raft/types.js';

export type SegmentReader = (seg: number, offset: number, bytes: number) => Uint8Array;
export type SnapshotDataSource = (group: number, meta: SnapshotMeta) => Uint8Array;

const EMPTY = new Uint8Array(0);
/** Slots of a group's log at first (an idle group holds one or two live entries). */
const CAPACITY_MIN = 8;
/**
 * Numbers per slot, in one Float64Array: term, segment, offset, and length × 256 + type (exact:
 * a length is below 2^32). One array a group, not one per field: at thousands of groups each
 * typed array and its ArrayBuffer cost more than the slots they held.
 */
const SLOT = 4;
// (A log record holds an entry's type in a byte and its length in 32 bits: wal-format.ts.)
const TERM = 0;
const SEG = 1;
const OFF = 2;
const LEN_TYPE = 3;
const TYPES = 256;

function lenOf(lenType: number): number {
  return (lenType / TYPES) >>> 0;
}
const ENTRIES_CACHED_MAX = 1 << 20;

export class GroupLog implements LogStorage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  snap: SnapshotMeta = { index: 0, term: 0, conf: emptyConf() };
  /**
   * Segments holding this group's newest hard state, newest snapshot marker, and the record
   * that set where its log starts (an installed snapshot, a compaction or a rewrite); -1: none.
   * Together with the segments of its live entries, these are what the group needs kept.
   */
  hardStateSeg = -1;
  snapSeg = -1;
  baseSeg = -1;

  /** Live entries are (prevIndex, lastIdx]; prevTerm is the term of prevIndex. */
  private prevIndex = 0;
  private prevTerm = 0;
  /** False while recovery has seen entries after a gap and no record yet saying where the log starts. */
  private prevKnown = true;
  /** While the start is unknown: the newest compaction seen below the gap, which may turn out to be the start. */
  private hintIndex = -1;
  private hintTerm = 0;
  private lastIdx = 0;
  // Slot s holds index slotBase + s, at slots[s * SLOT ...] (see SLOT).
  private slotBase = 1;
  private slots = new Float64Array(CAPACITY_MIN * SLOT);
  private cached: (Uint8Array | undefined)[] = [];
  /** Bytes of live entry payloads, for deciding whether rewriting this group is cheap. */
  liveBytes = 0;

  constructor(
    readonly id: number,
    private readonly read: SegmentReader,
    private readonly snapshotData: SnapshotDataSource,
    private readonly cache: EntryCache,
  ) {}

  // --- LogStorage ---

  firstIndex(): number { return this.prevIndex + 1; }
  lastIndex(): number { return this.lastIdx; }

  term(index: number): number {
    if (index === this.prevIndex) return this.prevTerm;
    assert(index > this.prevIndex && index <= this.lastIdx, `group ${this.id}: term(${index}) outside [${this.prevIndex}, ${this.lastIdx}]`);
    return this.slots[(index - this.slotBase) * SLOT + TERM]!;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    assert(lo > this.prevIndex && hi <= this.lastIdx + 1 && lo <= hi, `group ${this.id}: entries(${lo}, ${hi}) outside (${this.prevIndex}, ${this.lastIdx}]`);
    const out: Entry[] = [];
    let bytes = 0;
    const slots = this.slots;
    for (let i = lo; i < hi; i++) {
      const s = i - this.slotBase;
      const lenType = slots[s * SLOT + LEN_TYPE]!;
      const len = lenOf(lenType);
      bytes += len;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push({ index: i, term: slots[s * SLOT + TERM]!, type: (lenType - len * TYPES) as EntryType, data: this.payload(s, len) });
    }
    return out;
  }

  snapshot(): Snapshot {
    return { meta: this.snap, data: this.snap.index === 0 ? EMPTY : this.snapshotData(this.id, this.snap) };
  }

  // --- Positions of live entries, for the log ---

  /** Segment of the oldest record this group still needs, or Infinity if none. */
  oldestSegmentNeeded(): number {
    let s = Infinity;
    if (this.hardStateSeg >= 0) s = Math.min(s, this.hardStateSeg);
    if (this.snapSeg >= 0) s = Math.min(s, this.snapSeg);
    if (this.baseSeg >= 0) s = Math.min(s, this.baseSeg);
    if (this.lastIdx > this.prevIndex) s = Math.min(s, this.slots[(this.prevIndex + 1 - this.slotBase) * SLOT + SEG]!);
    return s;
  }

  /** Live entries with their payloads (for rewriting them into a newer segment). */
  liveEntries(): Entry[] {
    return this.lastIdx > this.prevIndex ? this.entries(this.prevIndex + 1, this.lastIdx + 1, Infinity) : [];
  }

  get compactedTerm(): number { return this.prevTerm; }
  get compactedIndex(): number { return this.prevIndex; }

  // --- Applying records (as written, and again during recovery) ---

  /**
   * Entries starting at `first` replace the log from there on. With `rewritePrevTerm` (a
   * Rewrite record) they are the group's whole log, after (first - 1, rewritePrevTerm): the
   * record restates everything, so it also stands alone once older segments are deleted.
   * During recovery, a start beyond the end is a gap left by deleted segments; a later record
   * must say where the log starts (see `checkRecovered`).
   */
  placeEntries(first: number, count: number, rewritePrevTerm: number | null, seg: number, at: (k: number) => { term: number; type: number; off: number; len: number; data: Uint8Array | undefined }): void {
    if (rewritePrevTerm !== null) {
      this.resetSlots(first - 1, rewritePrevTerm);
      this.prevKnown = true;
      this.baseSeg = seg;
    } else if (count === 0) {
      return;
    } else if (first > this.lastIdx + 1 || (!this.prevKnown && first <= this.prevIndex + 1)) {
      // A gap, or (while the start is unknown) entries from before the gap's start: either
      // way the log now runs from `first`, and where it starts is still to be told.
      const known = first === 1 || this.hintIndex === first - 1;
      this.resetSlots(first - 1, known && first > 1 ? this.hintTerm : 0);
      this.prevKnown = known;
    } else if (first <= this.lastIdx) {
      this.truncateFrom(Math.max(first, this.prevIndex + 1));
    }
    this.ensureCapacity(first + count - 1);
    const slots = this.slots;
    for (let k = 0; k < count; k++) {
      const i = first + k;
      if (i <= this.prevIndex) continue;
      const s = i - this.slotBase;
      const e = at(k);
      slots[s * SLOT + TERM] = e.term;
      slots[s * SLOT + SEG] = seg;
      slots[s * SLOT + OFF] = e.off;
      slots[s * SLOT + LEN_TYPE] = e.len * TYPES + e.type;
      this.liveBytes += e.len;
      this.lastIdx = i;
      if (e.data !== undefined) {
        this.cached[s] = e.data;
        this.cache.add(this, i, e.term, e.data.length);
      }
    }
  }

  /** A leader's snapshot was installed (reset) or the host took one (no reset). */
  placeSnapshot(meta: SnapshotMeta, reset: boolean, seg: number): void {
    this.snap = meta;
    this.snapSeg = seg;
    if (reset) {
      this.resetSlots(meta.index, meta.term);
      this.prevKnown = true;
      this.baseSeg = seg;
    }
  }

  /**
   * Entries up to `index` (whose term is `term`) are no longer needed. The record also states
   * where the log starts; restating the current start (a rewrite of a group with no live
   * entries) moves only the record the group needs.
   */
  placeCompact(index: number, term: number, seg: number): void {
    if (index < this.prevIndex) {
      if (!this.prevKnown) {
        this.hintIndex = index;
        this.hintTerm = term;
        this.baseSeg = seg;
      }
      return;
    }
    this.baseSeg = seg;
    this.prevKnown = true;
    if (index === this.prevIndex) {
      this.prevTerm = term;
      return;
    }
    if (index >= this.lastIdx) {
      this.resetSlots(index, term);
      return;
    }
    for (let i = this.prevIndex + 1; i <= index; i++) {
      const s = i - this.slotBase;
      this.liveBytes -= lenOf(this.slots[s * SLOT + LEN_TYPE]!);
      this.dropCached(s);
    }
    this.prevIndex = index;
    this.prevTerm = term;
    // Reclaim the slots in front once they are the larger part.
    const dead = index + 1 - this.slotBase;
    if (dead > CAPACITY_MIN && dead * 2 * SLOT > this.slots.length) this.shiftSlots(dead);
  }

  placeHardState(hs: HardState, seg: number): void {
    this.hardState = hs;
    this.hardStateSeg = seg;
  }

  /** After recovery: a gap left by deleted segments must have been followed by a record saying where the log starts. */
  checkRecovered(): string | null {
    return this.prevKnown ? null : `group ${this.id}: entries up to ${this.prevIndex} are missing from the log`;
  }

  private payload(s: number, len: number): Uint8Array {
    const c = this.cached[s];
    if (c !== undefined) return c;
    return len === 0 ? EMPTY : this.read(this.slots[s * SLOT + SEG]!, this.slots[s * SLOT + OFF]!, len);
  }

  private truncateFrom(first: number): void {
    for (let i = first; i <= this.lastIdx; i++) {
      const s = i - this.slotBase;
      this.liveBytes -= lenOf(this.slots[s * SLOT + LEN_TYPE]!);
      this.dropCached(s);
    }
    this.lastIdx = first - 1;
  }

  private resetSlots(prevIndex: number, prevTerm: number): void {
    for (let i = this.prevIndex + 1; i <= this.lastIdx; i++) this.dropCached(i - this.slotBase);
    this.prevIndex = prevIndex;
    this.prevTerm = prevTerm;
    this.lastIdx = prevIndex;
    this.slotBase = prevIndex + 1;
    this.liveBytes = 0;
    this.cached = [];
    if (this.slots.length > CAPACITY_MIN * 4 * SLOT) this.allocate(CAPACITY_MIN);
  }

  private dropCached(s: number): void {
    const c = this.cached[s];
    if (c !== undefined) {
      this.cached[s] = undefined;
      this.cache.released(c.length);
    }
  }

  /** Called by the cache: drops the payload of (index, term) if still cached; returns its bytes. */
  evict(index: number, term: number): number {
    if (index <= this.prevIndex || index > this.lastIdx) return 0;
    const s = index - this.slotBase;
    const c = this.cached[s];
    if (c === undefined || this.slots[s * SLOT + TERM] !== term) return 0;
    this.cached[s] = undefined;
    return c.length;
  }

  private ensureCapacity(lastIndex: number): void {
    const need = lastIndex - this.slotBase + 1;
    let cap = this.slots.length / SLOT;
    if (need <= cap) return;
    while (cap < need) cap *= 2;
    this.allocate(cap);
  }

  private allocate(cap: number): void {
    const n = Math.min(this.lastIdx - this.slotBase + 1, cap);
    const slots = new Float64Array(cap * SLOT);
    if (n > 0) slots.set(this.slots.subarray(0, n * SLOT));
    this.slots = slots;
  }

  private shiftSlots(dead: number): void {
    const n = this.lastIdx - this.slotBase + 1;
    this.slots.copyWithin(0, dead * SLOT, n * SLOT);
    this.cached = this.cached.slice(dead);
    this.slotBase += dead;
  }
}

/**
 * A byte budget for the payloads of recent entries across all groups of a worker. Oldest
 * first out. The queue holds only (group, index, term), never the payload, so an entry that
 * left its group's log by other means (compaction, truncation) costs nothing until its turn
 * comes, when it is skipped.
 */
export class EntryCache {
  bytes = 0;
  private groups: GroupLog[] = [];
  private indexes: number[] = [];
  private terms: number[] = [];
  private head = 0;

  constructor(readonly bytesMax: number) {}

  add(group: GroupLog, index: number, term: number, bytes: number): void {
    this.groups.push(group);
    this.indexes.push(index);
    this.terms.push(term);
    this.bytes += bytes;
    // The count bound matters when entries leave by compaction faster than bytes accumulate.
    while ((this.bytes > this.bytesMax || this.groups.length - this.head > ENTRIES_CACHED_MAX) && this.head < this.groups.length) {
      this.bytes -= this.groups[this.head]!.evict(this.indexes[this.head]!, this.terms[this.head]!);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.groups.length) {
      this.groups = this.groups.slice(this.head);
      this.indexes = this.indexes.slice(this.head);
      this.terms = this.terms.slice(this.head);
      this.head = 0;
    }
  }

  released(bytes: number): void {
    this.bytes -= bytes;
  }
}
