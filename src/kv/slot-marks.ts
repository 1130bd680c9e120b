// The slot marks of a KV group (issue 15, online migration; docs/key-map.md "Migration"): which
// slots the group must not serve whatever its node's slot table says, as replicated state.
//   fenced(M)      the group is the source of migration M: it answers every client command on a
//                  key of the slot with MIGRATING (retry after a short backoff), applying nothing,
//                  so the slot's keys stay as they were exported.
//   moved(M, to)   the slot is not the group's: migration M moved it away (to = its new owner),
//                  or M is bringing it here and has not finished (to = its owner meanwhile). The
//                  group answers WRONG_GROUP naming `to`.
//   sealed(M, to)  as moved, in the target once M's copy is complete (seal counted it): a late
//                  clear or import of M no longer changes the slot, only accept (or discard,
//                  after an abort) does.
// The slot table a shard checks at admission (src/shard/slot-owners.ts) is a node's copy of the
// map and may be stale; these marks go through the group's log, so every replica refuses the
// same commands from the same entry on, and a stale table cannot make a source serve a slot
// after it moved. A mark is changed only by a command of a migration at least as new as the
// mark's (ids only grow: a migration's id is the map version its begin made), so a late command
// of an old migration (a deposed driver's) cannot undo a newer one's. A slot keeps the id of the
// last migration that touched it after that migration lifted its mark (unfence, accept: state
// none), so a late step of that same migration is refused too: a clear of M arriving after M's
// accept would otherwise delete the slot's keys in their new owner (kv-migration.ts has the
// rules of each command).
//
// Marks cost nothing while a group has none: the state machine tests one boolean per command;
// the arrays (13 bytes a slot) are made at a group's first migration.
import { SLOT_COUNT } from '../cluster/slots.js';

export const enum MarkState {
  None = 0,
  Fenced = 1,
  Moved = 2,
  /** The target's copy of M is complete (counted at seal): refused like moved until accept; no clear or import of M changes it. */
  Sealed = 3,
}

/** A run of slots with one mark, as the marks query answers and the snapshot keeps them. */
export interface MarkRun {
  first: number;
  last: number;
  state: MarkState;
  id: number;
  to: number;
}

export class SlotMarks {
  readonly state = new Uint8Array(SLOT_COUNT);
  readonly id = new Float64Array(SLOT_COUNT);
  readonly to = new Uint32Array(SLOT_COUNT);
  /** Slots marked. */
  count = 0;

  /** Sets slot s's mark to `state` of migration m (the callers check that m may: kv-migration.ts). */
  set(s: number, state: MarkState, m: number, to: number): void {
    if (this.state[s] === MarkState.None && state !== MarkState.None) this.count++;
    else if (this.state[s] !== MarkState.None && state === MarkState.None) this.count--;
    this.state[s] = state;
    this.id[s] = m;
    this.to[s] = state === MarkState.Moved || state === MarkState.Sealed ? to : 0;
  }

  /** The marks as runs of equal marks, ascending; slots no migration touched left out. */
  runs(): MarkRun[] {
    const out: MarkRun[] = [];
    let cur: MarkRun | null = null;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const st = this.state[s]! as MarkState;
      if (this.id[s] === 0) {
        cur = null;
        continue;
      }
      if (cur !== null && cur.state === st && cur.id === this.id[s] && cur.to === this.to[s] && cur.last === s - 1) {
        cur.last = s;
        continue;
      }
      cur = { first: s, last: s, state: st, id: this.id[s]!, to: this.to[s]! };
      out.push(cur);
    }
    return out;
  }

  /** Bytes of encodeRuns for these marks. */
  static runsBytes(runs: readonly MarkRun[]): number {
    return 4 + runs.length * RUN_BYTES;
  }
}

/** A run: u16 first, u16 last, u8 state (0 none: the id of the migration that last lifted a mark there), u32 id high, u32 id low, u32 to. */
const RUN_BYTES = 2 + 2 + 1 + 4 + 4 + 4;

/** Writes runs at `at` (u32 count, then the runs; big-endian like the KV layout); returns the end. */
export function writeRuns(buf: Buffer, at: number, runs: readonly MarkRun[]): number {
  buf.writeUInt32BE(runs.length, at);
  at += 4;
  for (const r of runs) {
    buf.writeUInt16BE(r.first, at);
    buf.writeUInt16BE(r.last, at + 2);
    buf[at + 4] = r.state;
    buf.writeUInt32BE(Math.floor(r.id / 0x1_0000_0000), at + 5);
    buf.writeUInt32BE(r.id >>> 0, at + 9);
    buf.writeUInt32BE(r.to, at + 13);
    at += RUN_BYTES;
  }
  return at;
}

/** Reads runs written by writeRuns at `at`; throws Error with `what` on bytes that are not runs. */
export function readRuns(b: Uint8Array, at: number, what: string): { runs: MarkRun[]; end: number } {
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (at + 4 > v.length) throw new Error(`${what}: truncated mark runs`);
  const n = v.readUInt32BE(at);
  at += 4;
  if (n > SLOT_COUNT || at + n * RUN_BYTES > v.length) throw new Error(`${what}: ${n} mark runs do not fit`);
  const runs: MarkRun[] = [];
  let prevLast = -1;
  for (let i = 0; i < n; i++) {
    const first = v.readUInt16BE(at);
    const last = v.readUInt16BE(at + 2);
    const state = v[at + 4]!;
    const id = v.readUInt32BE(at + 5) * 0x1_0000_0000 + v.readUInt32BE(at + 9);
    const to = v.readUInt32BE(at + 13);
    at += RUN_BYTES;
    if (first <= prevLast || last < first || last >= SLOT_COUNT) throw new Error(`${what}: mark run ${first}-${last} out of order or range`);
    if (state > MarkState.Sealed) throw new Error(`${what}: unknown mark state ${state}`);
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`${what}: mark id ${id} is not a migration id`);
    prevLast = last;
    runs.push({ first, last, state: state as MarkState, id, to });
  }
  return { runs, end: at };
}

/** Marks made from runs (null when there are none). */
export function marksOfRuns(runs: readonly MarkRun[]): SlotMarks | null {
  if (runs.length === 0) return null;
  const m = new SlotMarks();
  for (const r of runs) for (let s = r.first; s <= r.last; s++) m.set(s, r.state, r.id, r.to);
  return m;
}
