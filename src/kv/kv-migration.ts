// The KV state machine's part in online migration (issue 15): applying the internal commands
// (kv-migration-command.ts) to the store and the slot marks (slot-marks.ts), answering the
// export and marks queries, and the check of a client command against the marks. Deterministic
// like the rest of the state machine: every replica applies the same internal entries and ends
// with the same keys and marks. Bad bytes are an error result, never an exception.
import { slotOfRange } from '../cluster/slots.js';
import { commandKeySpans } from './kv-command.js';
import {
  InternalBytesError, InternalReader, InternalTag, pairBytes, writePair,
} from './kv-migration-command.js';
import { encodeKvResult, noopResult } from './kv-result.js';
import type { KvStore } from './kv-store.js';
import { batchOpsMax } from './kv-types.js';
import { MarkState, SlotMarks, writeRuns } from './slot-marks.js';

const spans = new Int32Array(2 * batchOpsMax);

/**
 * The result refusing a client command (`data`) with a key in a marked slot, or null when none
 * of its keys is. Called only when some slot of the group is fenced or moved.
 */
export function markedRefusal(marks: SlotMarks, data: Uint8Array): Uint8Array | null {
  const n = commandKeySpans(data, spans);
  for (let i = 0; i < n; i++) {
    const slot = slotOfRange(data, spans[2 * i]!, spans[2 * i + 1]!);
    const st = marks.state[slot]!;
    if (st === MarkState.Fenced) {
      return encodeKvResult({ op: 'error', code: 'MIGRATING', message: `slot ${slot} is moving (migration ${marks.id[slot]}); retry after a short backoff, refreshing the key map` });
    }
    if (st === MarkState.Moved || st === MarkState.Sealed) {
      return encodeKvResult({ op: 'error', code: 'WRONG_GROUP', message: `slot ${slot} is group ${marks.to[slot]}'s (migration ${marks.id[slot]}); refresh the key map` });
    }
  }
  return null;
}

/** Whether every slot of the ranges is in `set` form: a 16,384-entry membership array. */
function slotSet(ranges: readonly { first: number; last: number }[]): Uint8Array {
  const s = new Uint8Array(16384);
  for (const r of ranges) s.fill(1, r.first, r.last + 1);
  return s;
}

/** How many keys of the store have their slot in `inSet`. */
function countKeysOf(store: KvStore, inSet: Uint8Array): number {
  let n = 0;
  for (let id = store.first(); id !== -1; id = store.after(id)) {
    const loc = store.locationOf(id);
    const at = store.keyAt(loc);
    if (inSet[slotOfRange(store.chunkOf(loc), at, at + store.keyLength(loc))] === 1) n++;
  }
  return n;
}

/** Whether every slot of the ranges is fenced for migration `id`. */
function fencedFor(marks: SlotMarks | null, ranges: readonly { first: number; last: number }[], id: number): boolean {
  for (const g of ranges) {
    for (let s = g.first; s <= g.last; s++) if (marks === null || marks.state[s] !== MarkState.Fenced || marks.id[s] !== id) return false;
  }
  return true;
}

/** Deletes every key of the store whose slot is in `inSet`. */
function deleteKeysOf(store: KvStore, inSet: Uint8Array): void {
  const doomed: Uint8Array[] = [];
  for (let id = store.first(); id !== -1; id = store.after(id)) {
    const loc = store.locationOf(id);
    const c = store.chunkOf(loc);
    const at = store.keyAt(loc);
    const kn = store.keyLength(loc);
    if (inSet[slotOfRange(c, at, at + kn)] === 1) doomed.push(c.slice(at, at + kn));
  }
  for (const k of doomed) store.delete(k, 0, k.length);
}

/**
 * Applies an internal command; returns the marks after it and the result. Each command of
 * migration M changes a slot only as below (st, id: the slot's mark and the migration that set
 * it), so steps are idempotent, and neither a late step of an older migration nor a late step of
 * M itself after M moved on can undo anything:
 *   fence    id < M, or fenced(M)              → fenced(M)
 *   unfence  fenced(M)                         → none(M)
 *   clear    id < M, or moved(M)               → keys deleted, moved(M, owner)
 *   import   moved(M)                          → puts
 *   seal     every slot moved(M) or sealed(M), and the slots hold `count` keys → sealed(M)
 *            (else nothing changes: COPY_INCOMPLETE)
 *   drop     id < M, or fenced(M) or moved(M)  → keys deleted, moved(M, to)
 *   accept   id < M, or moved(M) or sealed(M)  → none(M)
 *   discard  id < M, or moved(M) or sealed(M)  → keys deleted, moved(M, owner)
 * Seal is what makes two drivers safe: a deposed driver's clear of M, landing in the target after
 * the new driver's copy, would delete it; once sealed, it cannot, and a copy a clear cut short
 * does not count up to the source's keys, so it is not sealed and is made again.
 */
export function applyInternal(store: KvStore, marks: SlotMarks | null, data: Uint8Array): { marks: SlotMarks | null; result: Uint8Array } {
  let r: InternalReader;
  let tag: number;
  let id: number;
  let ranges: { first: number; last: number }[];
  try {
    r = new InternalReader(data);
    tag = r.u8();
    id = r.id();
    ranges = r.ranges();
  } catch (e) {
    return { marks, result: bad(e) };
  }
  const m = marks ?? new SlotMarks();
  const older = (s: number): boolean => m.id[s]! < id;
  const at = (s: number, st: MarkState): boolean => m.id[s] === id && m.state[s] === st;
  try {
    switch (tag) {
      case InternalTag.Fence:
        r.end();
        for (const g of ranges) for (let s = g.first; s <= g.last; s++) if (older(s) || at(s, MarkState.Fenced)) m.set(s, MarkState.Fenced, id, 0);
        break;
      case InternalTag.Unfence:
        r.end();
        for (const g of ranges) for (let s = g.first; s <= g.last; s++) if (at(s, MarkState.Fenced)) m.set(s, MarkState.None, id, 0);
        break;
      case InternalTag.Accept:
        r.end();
        for (const g of ranges) {
          for (let s = g.first; s <= g.last; s++) if (older(s) || at(s, MarkState.Moved) || at(s, MarkState.Sealed)) m.set(s, MarkState.None, id, 0);
        }
        break;
      case InternalTag.Seal: {
        const want = r.u32();
        r.end();
        for (const g of ranges) {
          for (let s = g.first; s <= g.last; s++) {
            if (!at(s, MarkState.Moved) && !at(s, MarkState.Sealed)) {
              return { marks, result: encodeKvResult({ op: 'error', code: 'COPY_INCOMPLETE', message: `slot ${s} was not cleared for migration ${id} here` }) };
            }
          }
        }
        const have = countKeysOf(store, slotSet(ranges));
        if (have !== want) {
          return { marks, result: encodeKvResult({ op: 'error', code: 'COPY_INCOMPLETE', message: `the slots hold ${have} keys here, the source ${want}` }) };
        }
        for (const g of ranges) for (let s = g.first; s <= g.last; s++) m.set(s, MarkState.Sealed, id, m.to[s]!);
        break;
      }
      case InternalTag.Clear:
      case InternalTag.Drop:
      case InternalTag.Discard: {
        const other = r.u32();
        r.end();
        const set = new Uint8Array(16384);
        for (const g of ranges) {
          for (let s = g.first; s <= g.last; s++) {
            if (older(s) || at(s, MarkState.Moved) || (tag === InternalTag.Drop && at(s, MarkState.Fenced)) || (tag === InternalTag.Discard && at(s, MarkState.Sealed))) {
              m.set(s, MarkState.Moved, id, other);
              set[s] = 1;
            }
          }
        }
        deleteKeysOf(store, set);
        break;
      }
      case InternalTag.Import: {
        const n = r.u32();
        const inSet = slotSet(ranges);
        const ps: { kAt: number; kn: number; vAt: number; vn: number }[] = [];
        for (let i = 0; i < n; i++) ps.push(r.pair());
        r.end();
        for (const p of ps) {
          const s = slotOfRange(data, p.kAt, p.kAt + p.kn);
          // Only into slots cleared for this migration: a late import lands nowhere.
          if (inSet[s] === 1 && at(s, MarkState.Moved)) store.put(data, p.kAt, p.kn, data, p.vAt, p.vn);
        }
        break;
      }
      default:
        return { marks, result: bad(new InternalBytesError(`unknown internal command tag ${tag}`)) };
    }
  } catch (e) {
    if (!(e instanceof InternalBytesError)) throw e;
    return { marks, result: bad(e) };
  }
  // A command that touched nothing in a group no migration ever marked leaves it without marks.
  return { marks: marks === null && m.runs().length === 0 ? null : m, result: noopResult() };
}

function bad(e: unknown): Uint8Array {
  return encodeKvResult({ op: 'error', code: 'BAD_COMMAND', message: e instanceof Error ? e.message : String(e) });
}

/** Answers an internal query (export or marks); throws InternalBytesError on a malformed one. */
export function queryInternal(store: KvStore, marks: SlotMarks | null, data: Uint8Array): Uint8Array {
  const r = new InternalReader(data);
  const tag = r.u8();
  if (tag === InternalTag.Marks) {
    r.end();
    const runs = marks === null ? [] : marks.runs();
    const buf = Buffer.alloc(SlotMarks.runsBytes(runs));
    writeRuns(buf, 0, runs);
    return buf;
  }
  if (tag === InternalTag.Count) {
    const id = r.id();
    const ranges = r.ranges();
    r.end();
    if (!fencedFor(marks, ranges, id)) return Uint8Array.of(1, 0, 0, 0, 0);
    const buf = Buffer.alloc(5);
    buf.writeUInt32BE(countKeysOf(store, slotSet(ranges)), 1);
    return buf;
  }
  if (tag !== InternalTag.Export) throw new InternalBytesError(`unknown internal query tag ${tag}`);
  const id = r.id();
  const ranges = r.ranges();
  const skip = r.u32();
  const bytesMax = r.u32();
  r.end();
  if (!fencedFor(marks, ranges, id)) return Uint8Array.of(1, 0, 0, 0, 0, 0);
  const inSet = slotSet(ranges);
  // The slots' keys form a subsequence of the insertion order that cannot change while they are
  // fenced (no put or delete of them applies), so "after the first `skip` of them" is stable
  // from page to page even as other keys come and go.
  const picked: number[] = [];
  let seen = 0;
  let bytes = 0;
  let done = true;
  for (let id2 = store.first(); id2 !== -1; id2 = store.after(id2)) {
    const loc = store.locationOf(id2);
    const c = store.chunkOf(loc);
    const at = store.keyAt(loc);
    const kn = store.keyLength(loc);
    if (inSet[slotOfRange(c, at, at + kn)] !== 1) continue;
    if (seen++ < skip) continue;
    if (picked.length > 0 && bytes >= bytesMax) {
      done = false;
      break;
    }
    picked.push(loc);
    bytes += pairBytes(kn, store.valueLength(loc));
  }
  const buf = Buffer.alloc(6 + bytes);
  buf[0] = 0;
  buf[1] = done ? 1 : 0;
  buf.writeUInt32BE(picked.length, 2);
  let at = 6;
  for (const loc of picked) {
    const c = store.chunkOf(loc);
    at = writePair(buf, at, c, store.keyAt(loc), store.keyLength(loc), c, store.valueAt(loc), store.valueLength(loc));
  }
  return buf;
}
