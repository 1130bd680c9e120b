// Safety properties of one group, checked while the simulation runs (Raft paper, figure 3):
// election safety (at most one leader per term), log matching, leader completeness and
// state-machine safety, plus what a host can see of them: commit and applied indexes that never
// go back, and committed entries that never change in anybody's log.
//
// "Known committed" means committed by a leader (seen when its commit index moves) or applied by
// some replica: either way committed for good, and every leader of a later term must hold it.
import { hashBytes } from './hash.js';

/** What the checks read of a live replica. */
export interface LogView {
  readonly id: number;
  firstIndex(): number;
  lastIndex(): number;
  entryTerm(index: number): number | null;
  readonly commit: number;
}

export type Fail = (what: string) => never;

export class GroupInvariants {
  /** term → the replica that led it. */
  private readonly leaderOfTerm = new Map<number, number>();
  /** index → term and fingerprint of the entry applied there (dense from 1; 0 = unknown). */
  private appliedTerm: number[] = [0];
  private appliedHash: number[] = [0];
  /**
   * index → term of the entry committed there, and term of the leader seen committing it
   * (0 = unknown). Leaders commit before anybody applies, so this runs ahead of `appliedTerm`.
   */
  private committedTerm: number[] = [0];
  private committedBy: number[] = [0];
  /** Highest index applied by any replica. */
  maxApplied = 0;
  /** Highest index a leader was seen to commit. */
  maxCommitted = 0;

  constructor(
    private readonly fail: Fail,
    /** Bound on indexes tracked; a run that commits more is misconfigured. */
    private readonly indexMax: number,
  ) {}

  private grow(index: number): void {
    if (index >= this.indexMax) this.fail(`index ${index} beyond the simulator's bound ${this.indexMax}`);
    while (this.appliedTerm.length <= index) {
      this.appliedTerm.push(0);
      this.appliedHash.push(0);
      this.committedTerm.push(0);
      this.committedBy.push(0);
    }
  }

  /** Election safety: `replica` reports that it leads `term`. */
  onLeader(replica: number, term: number): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== replica) {
      this.fail(`election safety: two leaders in term ${term}: replica ${prev} and replica ${replica}`);
    }
    this.leaderOfTerm.set(term, replica);
  }

  /** The leader of `term` has committed (from, to]; `entryTerm` reads its log. */
  onLeaderCommit(leader: LogView, term: number, from: number, to: number): void {
    this.grow(to);
    for (let i = Math.max(from + 1, leader.firstIndex()); i <= to; i++) {
      const t = leader.entryTerm(i);
      if (t === null) continue;
      const known = this.committedTerm[i]!;
      if (known === 0) {
        this.committedTerm[i] = t;
        this.committedBy[i] = term;
      } else if (known !== t) {
        this.fail(`committed entry changed: leader ${leader.id} of term ${term} commits index ${i} with term ${t}, committed earlier with term ${known}`);
      }
    }
    if (to > this.maxCommitted) this.maxCommitted = to;
  }

  /** State-machine safety: `replica` applies the entry (index, term, type, data). */
  onApply(replica: number, index: number, term: number, type: number, data: Uint8Array): void {
    this.grow(index);
    const h = hashBytes(data, (0x811c9dc5 ^ type) >>> 0);
    const t = this.appliedTerm[index]!;
    if (t === 0) {
      this.appliedTerm[index] = term;
      this.appliedHash[index] = h;
    } else if (t !== term || this.appliedHash[index] !== h) {
      this.fail(
        `state-machine safety: replica ${replica} applies index ${index} term ${term} (hash ${h.toString(16)}), ` +
          `but index ${index} was applied elsewhere with term ${t} (hash ${this.appliedHash[index]!.toString(16)})`,
      );
    }
    const c = this.committedTerm[index]!;
    if (c !== 0 && c !== term) this.fail(`replica ${replica} applies index ${index} term ${term}, but a leader committed term ${c} there`);
    if (c === 0) this.committedTerm[index] = term;
    if (index > this.maxApplied) this.maxApplied = index;
  }

  /**
   * Leader completeness: a new leader of `term` holds every entry that a leader of an earlier
   * term committed, with its term, from its first index on (what it compacted it had applied,
   * hence held). Entries committed in later terms are not its business: a candidate can win
   * an old term late (its vote responses were delayed, or it was frozen) and lead a stale
   * term that can never commit anything.
   */
  checkLeaderCompleteness(leader: LogView, term: number): void {
    const first = Math.max(1, leader.firstIndex());
    const last = leader.lastIndex();
    for (let i = first; i <= this.maxCommitted; i++) {
      const by = this.committedBy[i]!;
      if (by === 0 || by >= term) continue;
      const t = this.committedTerm[i]!;
      if (i > last) {
        this.fail(`leader completeness: replica ${leader.id} leads term ${term} with last index ${last}, but index ${i} (term ${t}) was committed in term ${by}`);
      }
      const mine = leader.entryTerm(i);
      if (mine !== null && mine !== t) {
        this.fail(`leader completeness: replica ${leader.id} leads term ${term} with term ${mine} at index ${i}, but term ${t} was committed there in term ${by}`);
      }
    }
  }

  /**
   * Log matching between two logs: where they hold an entry with the same index and term, they
   * agree on every earlier entry both still hold. Also, nobody's committed prefix contradicts
   * what was applied.
   */
  checkLogMatching(a: LogView, b: LogView): void {
    const lo = Math.max(a.firstIndex(), b.firstIndex(), 1);
    const hi = Math.min(a.lastIndex(), b.lastIndex());
    let agreed = -1;
    for (let i = hi; i >= lo; i--) {
      const ta = a.entryTerm(i);
      const tb = b.entryTerm(i);
      if (ta === null || tb === null) continue;
      if (ta === tb) {
        if (agreed < 0) agreed = i;
      } else if (agreed >= 0) {
        this.fail(`log matching: replicas ${a.id} and ${b.id} agree at index ${agreed} but differ at index ${i} (terms ${ta} vs ${tb})`);
      }
    }
  }

  checkCommittedPrefix(r: LogView): void {
    const lo = Math.max(1, r.firstIndex());
    const hi = Math.min(r.commit, r.lastIndex(), this.committedTerm.length - 1);
    for (let i = lo; i <= hi; i++) {
      const t = this.committedTerm[i]!;
      if (t === 0) continue;
      const mine = r.entryTerm(i);
      if (mine !== null && mine !== t) {
        this.fail(`committed entry changed: replica ${r.id} holds term ${mine} at committed index ${i}, applied elsewhere with term ${t}`);
      }
    }
  }
}
