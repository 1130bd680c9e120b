// The log as one member sees it: the stable part in LogStorage (already durable) followed by an
// unstable tail held in memory until the host reports it durable. A snapshot received from a
// leader also waits here until it is durable.
import { assert } from '../util/assert.js';
import type { Entry, LogStorage, Snapshot } from './types.js';

export class RaftLog {
  /** Highest index known to be committed (durable on a quorum). */
  committed: number;
  /** Highest index handed to the host for applying. */
  applied: number;

  // The unstable tail: `entries[0]` has index `offset`; entries from `offsetInProgress` on have
  // not been handed out by a Ready yet.
  private entries: Entry[] = [];
  private offset: number;
  private offsetInProgress: number;
  private snap: Snapshot | null = null;
  private snapInProgress = false;

  constructor(readonly storage: LogStorage, committed: number, applied: number) {
    this.offset = storage.lastIndex() + 1;
    this.offsetInProgress = this.offset;
    const first = storage.firstIndex();
    assert(committed <= storage.lastIndex(), `commit ${committed} beyond stored log ${storage.lastIndex()}`);
    this.committed = Math.max(committed, first - 1);
    assert(applied <= this.committed, `applied ${applied} beyond commit ${this.committed}`);
    this.applied = Math.max(applied, first - 1);
  }

  firstIndex(): number {
    return this.snap !== null ? this.snap.meta.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snap !== null) return this.snap.meta.index;
    return this.offset - 1;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The term of entry `index`, or null if it was compacted away or is beyond the end. */
  term(index: number): number | null {
    if (index >= this.offset) {
      const i = index - this.offset;
      if (i < this.entries.length) return this.entries[i]!.term;
      if (i === -1 && this.snap !== null) return this.snap.meta.term;
      return null;
    }
    if (this.snap !== null) return index === this.snap.meta.index ? this.snap.meta.term : null;
    if (index < this.storage.firstIndex() - 1 || index > this.storage.lastIndex()) return null;
    return this.storage.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  isUpToDate(index: number, term: number): boolean {
    const lastTerm = this.lastTerm();
    return term > lastTerm || (term === lastTerm && index >= this.lastIndex());
  }

  /** Highest index that is durable locally (0 while a received snapshot is not). */
  stableIndex(): number {
    if (this.snap !== null) return 0;
    return Math.min(this.offset - 1, this.storage.lastIndex());
  }

  /**
   * Entries in [lo, hi), stopping before `bytesMax` (at least one), or null if `lo` was
   * compacted away (the caller sends a snapshot instead).
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | null {
    if (lo < this.firstIndex()) return null;
    assert(hi <= this.lastIndex() + 1, `slice(${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < this.offset) {
      out = this.storage.entries(lo, Math.min(hi, this.offset), bytesMax);
      for (const e of out) bytes += e.data.length;
      if (out.length < Math.min(hi, this.offset) - lo) return out;
    }
    for (let i = Math.max(lo, this.offset); i < hi; i++) {
      const e = this.entries[i - this.offset]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Handles an append from the leader: entries after (index, logTerm). Returns the index of the
   * last entry now known to match the leader, or null if the log does not contain (index, logTerm).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed ${this.committed}`);
      this.append(ents.slice(conflict - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** The first entry of `ents` that is new or differs from the log, or 0. */
  private findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The highest index ≤ `index` whose term is ≤ `term`: where a leader should probe next after
   * a rejection, skipping whole terms that cannot match.
   */
  findConflictByTerm(index: number, term: number): number {
    for (let i = index; i > 0; i--) {
      const t = this.term(i);
      if (t === null || t <= term) return i;
    }
    return 0;
  }

  /** Appends to the unstable tail, replacing whatever it conflicts with. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0]!.index;
    assert(from > this.committed, `append at ${from} would overwrite committed ${this.committed}`);
    assert(from <= this.lastIndex() + 1, `append at ${from} leaves a gap after ${this.lastIndex()}`);
    if (from === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // Replaces the whole tail, and stable entries from `from` on (the host truncates them
      // when it writes these).
      this.offset = from;
      this.entries = ents.slice();
      this.offsetInProgress = from;
    } else {
      this.entries.length = from - this.offset;
      for (const e of ents) this.entries.push(e);
      this.offsetInProgress = Math.min(this.offsetInProgress, from);
    }
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Commits `index` if its entry is of `term` (a leader commits only entries of its own term). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  /** Installs a snapshot from the leader. Returns false if the log already had it. */
  restore(snap: Snapshot): boolean {
    if (this.matchTerm(snap.meta.index, snap.meta.term)) {
      this.commitTo(snap.meta.index);
      return false;
    }
    this.snap = snap;
    this.snapInProgress = false;
    this.entries = [];
    this.offset = snap.meta.index + 1;
    this.offsetInProgress = this.offset;
    this.committed = snap.meta.index;
    this.applied = Math.max(this.applied, snap.meta.index);
    return true;
  }

  snapshot(): Snapshot {
    return this.snap ?? this.storage.snapshot();
  }

  // --- Handing work to the host ---

  hasUnhandedEntries(): boolean {
    return this.offsetInProgress < this.offset + this.entries.length;
  }

  unhandedEntries(): Entry[] {
    return this.entries.slice(this.offsetInProgress - this.offset);
  }

  unhandedSnapshot(): Snapshot | null {
    return this.snap !== null && !this.snapInProgress ? this.snap : null;
  }

  /** Everything unstable has been handed to the host in a Ready. */
  markHanded(): void {
    this.offsetInProgress = this.offset + this.entries.length;
    if (this.snap !== null) this.snapInProgress = true;
  }

  /** The host made entries up to (index, term) durable; ignored if the log moved on since. */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return;
    const i = index - this.offset;
    if (i >= this.entries.length || this.entries[i]!.term !== term) return;
    this.entries = this.entries.slice(i + 1);
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
  }

  stableSnapTo(index: number): void {
    if (this.snap !== null && this.snap.meta.index === index) {
      this.snap = null;
      this.snapInProgress = false;
    }
  }

  /** Highest index that may be handed out for applying: committed and durable here. */
  applicableIndex(): number {
    return Math.min(this.committed, this.stableIndex());
  }

  hasApplicable(): boolean {
    return this.applicableIndex() > this.applied;
  }
}
