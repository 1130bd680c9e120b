// A model-based test of the shared log: random appends (with conflicting suffixes), snapshots
// with compaction, installed snapshots, removed groups and reopens, over tiny segments so that
// rolls, rewrites and deletions happen all the time; after every step and every reopen the log
// must agree with a plain in-memory model. Each failure prints its seed and the last ops.
// (This is how the recovery bugs around gaps left by deleted segments were found.)
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Wal, type WalOptions } from '../../src/storage/wal.js';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';

const SEEDS = Number(process.env['FLOTILLA_WAL_MODEL_SEEDS'] ?? 6);
const STEPS = 1500;
const GROUPS = 5;
const conf = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };

interface Model { prev: number; prevTerm: number; ents: Map<number, Entry>; last: number; hs: HardState | null; snap: number }

async function runSeed(seed: number): Promise<void> {
  let s = seed;
  const rnd = (): number => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x80000000; };
  const ri = (a: number, b: number): number => a + Math.floor(rnd() * (b - a + 1));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-wal-model-'));
  const opts: WalOptions = { dir, segmentBytes: 4096, cacheBytesMax: ri(0, 1) ? 2048 : 1 << 20, rewriteBytesMax: ri(0, 1) ? 3000 : 1 << 20 };
  let wal = Wal.open(opts);
  const model = new Map<number, Model>();
  const of = (g: number): Model => {
    let m = model.get(g);
    if (m === undefined) { m = { prev: 0, prevTerm: 0, ents: new Map(), last: 0, hs: null, snap: 0 }; model.set(g, m); }
    return m;
  };
  const dataFor = (g: number, i: number, t: number, n: number): Uint8Array => {
    const d = new Uint8Array(n);
    for (let k = 0; k < n; k++) d[k] = (g * 31 + i * 7 + t * 13 + k) & 0xff;
    return d;
  };
  const ops: string[] = [];
  const check = (where: string): void => {
    for (const [g, m] of model) {
      const l = wal.group(g);
      const fail = (msg: string): never => { throw new Error(`seed ${seed} ${where} group ${g}: ${msg}\nlast ops:\n${ops.slice(-12).join('\n')}`); };
      if (l.firstIndex() !== m.prev + 1) fail(`firstIndex ${l.firstIndex()}, model ${m.prev + 1}`);
      if (l.lastIndex() !== m.last) fail(`lastIndex ${l.lastIndex()}, model ${m.last}`);
      if (l.term(m.prev) !== m.prevTerm) fail(`term(${m.prev}) ${l.term(m.prev)}, model ${m.prevTerm}`);
      if (m.last > m.prev) {
        for (const e of l.entries(m.prev + 1, m.last + 1, Infinity)) {
          const want = m.ents.get(e.index)!;
          if (e.term !== want.term) fail(`term of ${e.index} is ${e.term}, model ${want.term}`);
          if (Buffer.compare(Buffer.from(e.data), Buffer.from(want.data)) !== 0) fail(`payload of ${e.index} differs`);
        }
      }
      if (m.hs !== null && JSON.stringify(l.hardState) !== JSON.stringify(m.hs)) fail(`hard state ${JSON.stringify(l.hardState)}, model ${JSON.stringify(m.hs)}`);
      if (l.snap.index !== m.snap) fail(`snapshot ${l.snap.index}, model ${m.snap}`);
    }
    if (wal.cachedBytes < 0) throw new Error(`seed ${seed} ${where}: cachedBytes ${wal.cachedBytes}`);
  };
  let term = 1;
  try {
    for (let step = 0; step < STEPS; step++) {
      const g = ri(1, GROUPS);
      const m = of(g);
      const r = rnd();
      if (r < 0.55) {
        const lo = Math.max(m.prev, m.snap) + 1;
        const from = ri(0, 3) === 0 && m.last >= lo ? ri(lo, m.last) : m.last + 1;
        if (from <= m.last) term++;
        const ents: Entry[] = [];
        for (let k = 0, n = ri(1, 6); k < n; k++) {
          const size = ri(0, 20) === 0 ? ri(3000, 9000) : ri(0, 400);
          ents.push({ index: from + k, term, type: EntryType.Normal, data: dataFor(g, from + k, term, size) });
        }
        const hs = ri(0, 1) === 1 ? { term, vote: ri(0, 3), commit: Math.min(from - 1, m.last) } : null;
        ops.push(`append g${g} ${from}..${from + ents.length - 1} t${term}`);
        await wal.append([{ group: g, entries: ents, hardState: hs }]);
        for (let i = from; i <= m.last; i++) m.ents.delete(i);
        for (const e of ents) m.ents.set(e.index, e);
        m.last = from + ents.length - 1;
        if (hs !== null) m.hs = hs;
      } else if (r < 0.75) {
        if (m.last <= m.prev || m.last < Math.max(m.prev + 1, m.snap)) continue;
        const idx = ri(Math.max(m.prev + 1, m.snap), m.last);
        const c = ri(m.prev, idx);
        ops.push(`snapshot g${g} ${idx}, compact ${c}`);
        await wal.recordSnapshot(g, { index: idx, term: m.ents.get(idx)!.term, conf });
        m.snap = idx;
        await wal.compact(g, c);
        if (c > m.prev) {
          m.prevTerm = m.ents.get(c)!.term;
          for (let i = m.prev + 1; i <= c; i++) m.ents.delete(i);
          m.prev = c;
        }
      } else if (r < 0.82) {
        term++;
        const idx = m.last + ri(1, 10);
        ops.push(`install g${g} ${idx} t${term}`);
        await wal.append([{ group: g, snapshot: { index: idx, term, conf }, hardState: { term, vote: 0, commit: idx } }]);
        m.ents.clear();
        Object.assign(m, { prev: idx, prevTerm: term, last: idx, snap: idx, hs: { term, vote: 0, commit: idx } });
      } else if (r < 0.85) {
        ops.push(`remove g${g}`);
        await wal.removeGroup(g);
        model.delete(g);
      } else if (r < 0.92) {
        ops.push('reopen');
        await wal.close();
        wal = Wal.open(opts);
        check('after reopen');
      }
      check(`step ${step}`);
    }
    await wal.close();
    wal = Wal.open(opts);
    check('final reopen');
  } finally {
    await wal.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test(`the log agrees with a model through ${SEEDS} random histories of ${STEPS} steps (seeds 1..${SEEDS})`, async () => {
  for (let seed = 1; seed <= SEEDS; seed++) await runSeed(seed);
});
