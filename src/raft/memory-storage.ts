// An in-memory LogStorage: what the simulator and unit tests use as "the disk". The host appends
// to it only what a Ready made durable, so the core's view of stable entries stays honest.
import { EntryType, type ConfState, type Entry, type HardState, type LogStorage, type NodeId, type Snapshot } from './types.js';
import { assert } from '../util/assert.js';
import { ChangeType, encodeConfChange } from './conf-change.js';

export class MemoryStorage implements LogStorage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  /** ents[0] is a sentinel carrying the snapshot's index and term. */
  private ents: Entry[];

  constructor(conf?: ConfState) {
    const c = conf ?? { voters: [], votersOutgoing: [], learners: [], learnersNext: [] };
    this.snap = { meta: { index: 0, term: 0, conf: c }, data: new Uint8Array(0) };
    this.ents = [{ index: 0, term: 0, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  firstIndex(): number { return this.ents[0]!.index + 1; }
  lastIndex(): number { return this.ents[0]!.index + this.ents.length - 1; }

  term(index: number): number {
    const off = this.ents[0]!.index;
    assert(index >= off && index <= this.lastIndex(), `term(${index}) outside [${off}, ${this.lastIndex()}]`);
    return this.ents[index - off]!.term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    const off = this.ents[0]!.index;
    assert(lo > off && hi <= this.lastIndex() + 1 && lo <= hi, `entries(${lo}, ${hi}) outside (${off}, ${this.lastIndex()}]`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - off]!;
      bytes += e.data.length;
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot { return this.snap; }

  /** Appends entries, replacing any suffix they conflict with (a new leader's log wins). */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const off = this.ents[0]!.index;
    const first = entries[0]!.index;
    assert(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    if (first <= off) {
      // Entries already covered by the snapshot are dropped.
      entries = entries.filter((e) => e.index > off);
      if (entries.length === 0) return;
    }
    this.ents.length = entries[0]!.index - off;
    for (const e of entries) this.ents.push(e);
  }

  /** Installs a snapshot received from a leader: the log restarts after it. */
  applySnapshot(snap: Snapshot): void {
    const off = this.ents[0]!.index;
    assert(snap.meta.index >= off, `snapshot ${snap.meta.index} older than ${off}`);
    this.snap = snap;
    this.ents = [{ index: snap.meta.index, term: snap.meta.term, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Records a snapshot the host took of its own state machine at `index` (≤ last index). */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    assert(index >= this.snap.meta.index && index <= this.lastIndex(), `snapshot at ${index} out of range`);
    this.snap = { meta: { index, term: this.term(index), conf }, data };
    return this.snap;
  }

  /** Drops entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: number): void {
    const off = this.ents[0]!.index;
    if (index <= off) return;
    assert(index <= this.snap.meta.index, `compact(${index}) beyond snapshot ${this.snap.meta.index}`);
    const e = this.ents[index - off]!;
    this.ents = [{ index: e.index, term: e.term, type: EntryType.Normal, data: new Uint8Array(0) }, ...this.ents.slice(index - off + 1)];
  }
}

/**
 * Makes `storage` the log of a founding member of a new group: entry 1 (term 1) is the
 * conf change that adds `voters`, already committed. Members added later start empty and
 * receive that entry (or a snapshot) from the leader, so every member derives its
 * configuration from the log alone.
 */
export function bootstrap(storage: MemoryStorage, voters: NodeId[]): void {
  assert(storage.lastIndex() === 0, 'bootstrap needs an empty log');
  const data = encodeConfChange({ leave: false, changes: voters.map((node) => ({ type: ChangeType.AddVoter, node })) });
  storage.append([{ index: 1, term: 1, type: EntryType.ConfChange, data }]);
  storage.hardState = { term: 1, vote: 0, commit: 1 };
}
