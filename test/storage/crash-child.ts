// The process that crash.test.ts kills. It opens (and so recovers) a write-ahead log with
// syncForce on and small segments, then appends batches over many groups forever: new entries,
// now and then a new leader's conflicting suffix (a higher term rewrites a group's tail), and
// now and then a snapshot marker followed by a compaction. Everything it writes is derived
// from the seed, so the parent can recompute every byte.
//
//   node dist/test/storage/crash-child.js <dir> <seed> <mode>
//
// mode `seq`: one call at a time, awaited before the next; every report also names the newest
//             segment file and its size, which is then exactly where the reported bytes end.
// mode `pipe`: up to PIPELINE_DEPTH calls outstanding, so calls gather into shared batches.
//
// Protocol: one JSON line per event on stdout (written with writeSync, so a line that is
// printed is in the pipe before the next call starts):
//   {"k":"ready","oldest","seg","size"}                recovery done
//   {"k":"submit","n":n,"op":Op}                       about to hand op n to the log
//   {"k":"done","n":n,"sum":[[g,last,term]...],"oldest","seg","size"}  op n is durable
// (oldest/seg: the oldest and newest segment files then; size: the newest one's size.)
// The parent may only rely on ops that reached "done"; "submit" bounds what may be on disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Prng } from '../sim/prng.js';
import { Wal, type GroupWrite } from '../../src/storage/wal.js';
import { EntryType, type Entry } from '../../src/raft/types.js';

export const GROUP_COUNT = 50;
export const SEGMENT_BYTES = 256 << 10;
/** How the child opens the log; the parent opens it the same way to check it. */
export const walOptions = { segmentBytes: SEGMENT_BYTES, syncForce: true };
export const PIPELINE_DEPTH = 4;
export const CONF = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };

/** Group ids: spread over the u32 range rather than 1..50, so a wrong id width shows. */
export function groupId(k: number): number {
  return 1 + k * 85_000_007;
}

export const groupIds: number[] = Array.from({ length: GROUP_COUNT }, (_, k) => groupId(k));

/** One write of one group: entries from..to (none when to < from) at `term`, then the hard state. */
export type WriteOp = [group: number, from: number, to: number, term: number, hsTerm: number, hsVote: number, hsCommit: number];

export type Op =
  | { t: 'w'; w: WriteOp[] }
  | { t: 's'; g: number; index: number; term: number }
  | { t: 'c'; g: number; index: number };

export type ChildLine =
  | ({ k: 'ready' } & SegmentSpan)
  | { k: 'submit'; n: number; op: Op }
  | ({ k: 'done'; n: number; sum: [number, number, number][] } & SegmentSpan);

function mix(h: number, v: number): number {
  h = Math.imul(h ^ (v >>> 0), 0x9e3779b1);
  h = Math.imul(h ^ Math.floor(v / 4294967296), 0x85ebca6b);
  return (h ^ (h >>> 15)) >>> 0;
}

/** The payload of entry (group, index, term) of a run: 8–157 bytes, all determined by its key. */
export function entryData(seed: number, group: number, index: number, term: number): Uint8Array {
  let h = mix(mix(mix(mix(0x2545f491, seed), group), index), term);
  const out = new Uint8Array(8 + (h % 150));
  for (let i = 0; i < out.length; i++) {
    // xorshift32: cheap, and every byte depends on the key.
    h ^= h << 13; h >>>= 0;
    h ^= h >>> 17;
    h ^= h << 5; h >>>= 0;
    out[i] = h & 0xff;
  }
  return out;
}

export interface SegmentSpan {
  /** The oldest segment file (null when there is none): a purge deletes from this end. */
  oldest: string | null;
  /** The newest segment file and its size: appends go here. */
  seg: string | null;
  size: number;
}

export function segmentSpan(dir: string): SegmentSpan {
  const names = fs.readdirSync(dir).filter((f) => /^segment-\d{20}\.wal$/.test(f)).sort();
  const seg = names[names.length - 1] ?? null;
  return { oldest: names[0] ?? null, seg, size: seg === null ? 0 : fs.statSync(path.join(dir, seg)).size };
}

interface GroupState {
  id: number;
  compacted: number;
  last: number;
  term: number;
  vote: number;
  commit: number;
  snap: number;
  /** Term of each index in (compacted, last] (and of `compacted` itself). */
  terms: Map<number, number>;
}

function say(line: ChildLine): void {
  const s = `${JSON.stringify(line)}\n`;
  let off = 0;
  const buf = Buffer.from(s);
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

async function main(): Promise<void> {
  const [dir, seedArg, mode] = process.argv.slice(2);
  if (dir === undefined || seedArg === undefined || (mode !== 'seq' && mode !== 'pipe')) {
    throw new Error('usage: crash-child.js <dir> <seed> <seq|pipe>');
  }
  const seed = Number(seedArg) >>> 0;
  const wal = Wal.open({ dir, ...walOptions });

  // Carry on from whatever recovery found; the op stream depends on it so that each restart
  // does something new, yet one seed and one recovered state replay the same ops.
  let fingerprint = seed;
  const groups: GroupState[] = groupIds.map((id) => {
    const g = wal.group(id);
    const last = g.lastIndex();
    const compacted = g.firstIndex() - 1;
    const terms = new Map<number, number>();
    for (let i = compacted; i <= last; i++) if (i > 0) terms.set(i, g.term(i));
    const lastTerm = last > 0 ? g.term(last) : 0;
    fingerprint = mix(fingerprint, last);
    return {
      id, compacted, last, terms,
      term: Math.max(g.hardState.term, lastTerm, 1),
      vote: g.hardState.vote,
      commit: Math.max(compacted, Math.min(g.hardState.commit, last)),
      snap: g.snap.index,
    };
  });
  const rng = new Prng(fingerprint);
  say({ k: 'ready', ...segmentSpan(dir) });

  const toEntries = (g: GroupState, from: number, to: number): Entry[] => {
    const out: Entry[] = [];
    for (let i = from; i <= to; i++) out.push({ index: i, term: g.term, type: EntryType.Normal, data: entryData(seed, g.id, i, g.term) });
    return out;
  };

  // Applies an op to the model and returns what the log is asked to do.
  let queued: Op | null = null;
  const nextOp = (): Op => {
    if (queued !== null) { const op = queued; queued = null; return op; }
    const r = rng.next();
    if (r < 0.1) {
      const ready = groups.filter((g) => g.commit - g.compacted >= 20);
      if (ready.length > 0) {
        const g = rng.pick(ready);
        const index = g.commit;
        // The compaction keeps a few entries behind the snapshot, as a leader would for laggards.
        queued = { t: 'c', g: g.id, index: Math.max(g.compacted + 1, index - rng.int(0, 3)) };
        return { t: 's', g: g.id, index, term: g.terms.get(index)! };
      }
    }
    if (r < 0.16) {
      const open = groups.filter((g) => g.last > g.commit);
      if (open.length > 0) {
        const g = rng.pick(open);
        const from = rng.int(g.commit + 1, g.last);
        const to = from + rng.int(0, 5);
        return { t: 'w', w: [[g.id, from, to, g.term + 1, g.term + 1, 1 + ((g.term + 1) % 3), g.commit]] };
      }
    }
    const w: WriteOp[] = [];
    for (const g of rng.shuffle([...groups]).slice(0, rng.int(1, 6))) {
      if (rng.chance(0.1)) {
        w.push([g.id, g.last + 1, g.last, g.term, g.term, 1 + (g.term % 3), g.commit]);
      } else {
        const to = g.last + rng.int(1, 20);
        const commit = Math.max(g.commit, to - rng.int(0, 6));
        w.push([g.id, g.last + 1, to, g.term, g.term, 1 + (g.term % 3), commit]);
      }
    }
    return { t: 'w', w };
  };

  const byId = new Map(groups.map((g) => [g.id, g]));
  const apply = (op: Op): { call: () => Promise<void>; sum: [number, number, number][] } => {
    switch (op.t) {
      case 'w': {
        const writes: GroupWrite[] = op.w.map(([id, from, to, term, hsTerm, hsVote, hsCommit]) => {
          const g = byId.get(id)!;
          g.term = term;
          const entries = toEntries(g, from, to);
          if (to >= from) {
            for (let i = from; i <= to; i++) g.terms.set(i, term);
            for (let i = to + 1; i <= g.last; i++) g.terms.delete(i);
            g.last = to;
          }
          g.term = hsTerm;
          g.vote = hsVote;
          g.commit = hsCommit;
          return { group: id, entries, hardState: { term: hsTerm, vote: hsVote, commit: hsCommit } };
        });
        return { call: () => wal.append(writes), sum: op.w.map(([id]) => [id, byId.get(id)!.last, byId.get(id)!.terms.get(byId.get(id)!.last) ?? 0]) };
      }
      case 's': {
        const g = byId.get(op.g)!;
        g.snap = op.index;
        return { call: () => wal.recordSnapshot(op.g, { index: op.index, term: op.term, conf: CONF }), sum: [[op.g, g.last, g.terms.get(g.last) ?? 0]] };
      }
      case 'c': {
        const g = byId.get(op.g)!;
        for (let i = g.compacted; i < op.index; i++) g.terms.delete(i);
        g.compacted = op.index;
        return { call: () => wal.compact(op.g, op.index), sum: [[op.g, g.last, g.terms.get(g.last) ?? 0]] };
      }
    }
  };

  const depth = mode === 'seq' ? 1 : PIPELINE_DEPTH;
  const outstanding: Promise<void>[] = [];
  for (let n = 1; ; n++) {
    const op = nextOp();
    say({ k: 'submit', n, op });
    const { call, sum } = apply(op);
    outstanding.push(call().then(() => {
      // In seq mode nothing else is in flight now, so the newest segment ends where op n does.
      say({ k: 'done', n, sum, ...segmentSpan(dir) });
    }));
    if (outstanding.length >= depth) await outstanding.shift();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`crash-child: ${e instanceof Error ? `${(e as { code?: string }).code ?? ''} ${e.stack}` : String(e)}\n`);
    process.exit(1);
  });
}
