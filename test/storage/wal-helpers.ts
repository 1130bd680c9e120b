// Helpers shared by the write-ahead log tests (wal.test.ts and the review-*.test.ts reproductions, see docs/storage.md). Not a test file.
import fsCjs from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
import { EntryType, type Entry } from '../../src/raft/types.js';
import type { Wal } from '../../src/storage/wal.js';

const dirs: string[] = [];

export function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-review-'));
  dirs.push(d);
  return d;
}

export function cleanup(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export const conf = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };

const enc = new TextEncoder();
export const ent = (index: number, term: number, text = `e${index}t${term}`): Entry => ({ index, term, type: EntryType.Normal, data: enc.encode(text) });
export const big = (index: number, term: number, bytes: number, fill = index & 0xff): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(bytes).fill(fill) });
export const range = (a: number, b: number, term: number): Entry[] => Array.from({ length: b - a + 1 }, (_, k) => ent(a + k, term));

/** "index/term:text" of every entry the group holds. */
export function texts(wal: Wal, g: number): string[] {
  const s = wal.group(g);
  if (s.lastIndex() < s.firstIndex()) return [];
  const dec = new TextDecoder();
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity).map((e) => `${e.index}/${e.term}:${dec.decode(e.data)}`);
}

export function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith('segment-') && f.endsWith('.wal')).sort();
}

/** Copies the log directory as it is on disk right now: what a `kill -9` at this instant leaves. */
export function crashCopy(dir: string): string {
  const to = tmpdir();
  for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(to, f));
  return to;
}

type FsName = 'write' | 'writeSync' | 'fdatasync' | 'openSync';

/** Replaces a function of node:fs for the code under test (ESM namespace included). */
export function patchFs<K extends FsName>(name: K, make: (orig: (typeof fsCjs)[K]) => (typeof fsCjs)[K]): () => void {
  const orig = fsCjs[name];
  (fsCjs as unknown as Record<string, unknown>)[name] = make(orig);
  syncBuiltinESMExports();
  return () => {
    (fsCjs as unknown as Record<string, unknown>)[name] = orig;
    syncBuiltinESMExports();
  };
}

export function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

/** Private state of a Wal, for assertions about timing. */
export interface WalInside {
  /** src/storage/wal-segment-files.ts */
  files: {
    current: { seq: number; fd: number; assigned: number; written: number };
    bySeq: Map<number, { seq: number; fd: number; file: string; assigned: number; written: number }>;
  };
  /** src/storage/wal-batch.ts */
  layout: { pending: unknown[] };
  cache: { bytes: number; groups: unknown[]; datas: Uint8Array[]; head: number };
}
export const inside = (wal: Wal): WalInside => wal as unknown as WalInside;

/**
 * Holds every fs.write (or fs.fdatasync) until `release()`: the instant between "laid out in
 * memory" and "on disk", made deterministic. `held()` counts the calls waiting.
 */
export function hold(name: 'write' | 'fdatasync'): { release: () => void; held: () => number; restore: () => void } {
  let queue: (() => void)[] = [];
  let holding = true;
  const restore = patchFs(name, (orig) => ((...args: unknown[]) => {
    const go = (): void => { (orig as (...a: unknown[]) => void)(...args); };
    if (holding) queue.push(go); else go();
  }) as never);
  return {
    held: () => queue.length,
    release: () => { holding = false; const q = queue; queue = []; for (const go of q) go(); },
    restore: () => { holding = false; const q = queue; queue = []; for (const go of q) go(); restore(); },
  };
}
