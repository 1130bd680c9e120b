// Crash tests on real processes: crash-child.ts appends to a write-ahead log (syncForce on,
// 256 KiB segments) until this test kills it with SIGKILL at a random moment; then the log is
// opened here and every group is checked against what the child reported durable. Then torn
// tails (a cut inside the bytes written after the last report, or garbage appended), and
// flipped bits in frames that are not the tail, which must stop recovery with WAL_CORRUPT.
//
// The seed (FLOTILLA_CRASH_SEED, else the clock) fixes the child's ops, every byte it writes,
// and where this test cuts or flips; the moment of each kill is real time and is not replayed.
// Every assertion message of these random runs starts with the seed. The crash-image tests at
// the end take the files at chosen moments instead, and replay exactly without one.
//
// What must hold after a crash, for each group on its own: its state (first and last index,
// the term of every live entry and of the one before, the hard state, the snapshot marker) is
// the state after all the ops the child reported done, followed by some prefix of the ops it
// submitted but had not reported — the last of them possibly in part, a prefix of its entries
// without its hard state, because one call's records can span two segments. A reported op is
// therefore superseded only by a later op that was itself submitted, and nothing is invented:
// every entry's bytes are those the generator makes for its (group, index, term).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Prng } from '../sim/prng.js';
import { Wal, WalError } from '../../src/storage/wal.js';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, frameOwnedBy, parseSegmentName } from '../../src/storage/wal-format.js';
import { segmentFiles } from './wal-helpers.js';
import {
  CONF, entryData, groupIds, segmentSpan, walOptions, type ChildLine, type Op, type SegmentSpan,
} from './crash-child.js';

const SEED = Number(process.env.FLOTILLA_CRASH_SEED ?? Date.now() % 1_000_000_007) >>> 0;
const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const READY_TIMEOUT_MS = 10_000;
const FLIPS = 20;
/** Set FLOTILLA_CRASH_KEEP=1 to keep the log directories of failed runs for a post-mortem. */
const KEEP_ON_FAILURE = process.env.FLOTILLA_CRASH_KEEP === '1';

const tmpdir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-crash-'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// --- The child process ---

interface Child {
  proc: ChildProcess;
  lines: ChildLine[];
  /** Lines that were not protocol JSON (a bug in the child): reported after the kill. */
  junk: string[];
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ready: Promise<void>;
}

function startChild(dir: string, seed: number, mode: 'seq' | 'pipe'): Child {
  const proc = spawn(process.execPath, [CHILD, dir, String(seed), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let onReady: () => void = () => {};
  const child: Child = {
    proc,
    lines: [],
    junk: [],
    stderr: '',
    exited: new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal }))),
    ready: new Promise<void>((resolve) => { onReady = resolve; }),
  };
  let partial = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      // Only whole lines count: a line the kill cut short was never reported.
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let line: ChildLine;
      try {
        line = JSON.parse(text) as ChildLine;
      } catch {
        child.junk.push(text);
        continue;
      }
      child.lines.push(line);
      if (line.k === 'ready') onReady();
    }
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => { child.stderr += chunk; });
  return child;
}

/** Runs the child until it is ready, lets it work for `workMs`, then kills it by its PID. */
async function crashChild(ctx: string, dir: string, seed: number, mode: 'seq' | 'pipe', workMs: number): Promise<Child> {
  const child = startChild(dir, seed, mode);
  const early = child.exited.then((x) => ({ early: x }));
  try {
    const timeout = sleep(READY_TIMEOUT_MS).then(() => 'timeout' as const);
    const first = await Promise.race([child.ready.then(() => 'ready' as const), early, timeout]);
    if (first === 'timeout') assert.fail(`${ctx}: the child was not ready after ${READY_TIMEOUT_MS} ms: ${child.stderr}`);
    if (first !== 'ready') assert.fail(`${ctx}: the child exited before it was ready (${JSON.stringify(first)}): ${child.stderr}`);
    const during = await Promise.race([sleep(workMs).then(() => 'slept' as const), early]);
    if (during !== 'slept') assert.fail(`${ctx}: the child exited by itself (${JSON.stringify(during)}): ${child.stderr}`);
  } finally {
    // Not reaped yet (a zombie still holds its PID): the kill cannot reach another process.
    if (child.proc.exitCode === null && child.proc.signalCode === null) process.kill(child.proc.pid!, 'SIGKILL');
    await child.exited;
  }
  const how = await child.exited;
  assert.equal(how.signal, 'SIGKILL', `${ctx}: the child ended with ${JSON.stringify(how)}: ${child.stderr}`);
  assert.deepEqual(child.junk, [], `${ctx}: the child printed lines that are not its protocol`);
  return child;
}

// --- The model: what each group may look like after a crash ---

interface GroupModel {
  first: number;
  last: number;
  /** Term of every index in [first - 1, last] (index 0 excluded). */
  terms: Map<number, number>;
  hs: HardState;
  snap: { index: number; term: number };
}

const emptyModel = (): GroupModel => ({ first: 1, last: 0, terms: new Map(), hs: { term: 0, vote: 0, commit: 0 }, snap: { index: 0, term: 0 } });
const cloneModel = (m: GroupModel): GroupModel => ({ first: m.first, last: m.last, terms: new Map(m.terms), hs: { ...m.hs }, snap: { ...m.snap } });

function opGroups(op: Op): number[] {
  return op.t === 'w' ? op.w.map((w) => w[0]) : [op.g];
}

/**
 * The states op leaves group `g` in, in order: for a write with entries, first each prefix of
 * its entries without its hard state (the call's records may span two segments and the crash
 * may come between them), then all of it. The last element is the complete op.
 */
function statesAfter(m: GroupModel, op: Op, g: number): GroupModel[] {
  switch (op.t) {
    case 'w': {
      const out: GroupModel[] = [];
      for (const [id, from, to, term, hsTerm, hsVote, hsCommit] of op.w) {
        if (id !== g) continue;
        let cur = m;
        for (let upto = from; upto <= to; upto++) {
          const s = cloneModel(cur);
          for (let i = s.last; i >= upto; i--) if (i >= s.first) s.terms.delete(i);
          s.terms.set(upto, term);
          s.last = upto;
          out.push(s);
          cur = s;
        }
        const full = cloneModel(cur);
        full.hs = { term: hsTerm, vote: hsVote, commit: hsCommit };
        out.push(full);
      }
      return out;
    }
    case 's': {
      const s = cloneModel(m);
      s.snap = { index: op.index, term: op.term };
      return [s];
    }
    case 'c': {
      const s = cloneModel(m);
      for (const i of [...s.terms.keys()]) if (i < op.index) s.terms.delete(i);
      s.first = op.index + 1;
      s.last = Math.max(s.last, op.index);
      return [s];
    }
  }
}

/**
 * Why the recovered group differs from `m`, or null when it matches; checks the bytes too.
 * Entries the snapshot covers may be gone although no compaction reached them (recovery may
 * restart the log after a snapshot marker): that loses nothing, the snapshot stands for them.
 */
function mismatch(seed: number, wal: Wal, g: number, m: GroupModel): string | null {
  const r = wal.group(g);
  const first = r.firstIndex();
  const firstMax = Math.max(m.first, Math.min(m.snap.index, m.last) + 1);
  if (first < m.first || first > firstMax || r.lastIndex() !== m.last) {
    return `log [${first}, ${r.lastIndex()}] instead of [${m.first}${firstMax > m.first ? ` to ${firstMax}` : ''}, ${m.last}]`;
  }
  const hs = r.hardState;
  if (hs.term !== m.hs.term || hs.vote !== m.hs.vote || hs.commit !== m.hs.commit) return `hard state ${JSON.stringify(hs)} instead of ${JSON.stringify(m.hs)}`;
  if (r.snap.index !== m.snap.index || r.snap.term !== m.snap.term) return `snapshot ${r.snap.index}/${r.snap.term} instead of ${m.snap.index}/${m.snap.term}`;
  if (m.snap.index > 0 && JSON.stringify(r.snap.conf) !== JSON.stringify(CONF)) return `snapshot configuration ${JSON.stringify(r.snap.conf)}`;
  if (first > 1 && r.term(first - 1) !== m.terms.get(first - 1)) return `term(${first - 1}) = ${r.term(first - 1)} instead of ${m.terms.get(first - 1)}`;
  if (m.last < first) return null;
  const entries: Entry[] = r.entries(first, m.last + 1, Infinity);
  if (entries.length !== m.last - first + 1) return `${entries.length} entries read for [${first}, ${m.last}]`;
  for (const e of entries) {
    const term = m.terms.get(e.index);
    if (e.term !== term) return `entry ${e.index} has term ${e.term} instead of ${term}`;
    if (e.type !== EntryType.Normal) return `entry ${e.index} has type ${e.type}`;
    if (!Buffer.from(entryData(seed, g, e.index, e.term)).equals(Buffer.from(e.data))) return `entry ${e.index} (term ${e.term}) has other bytes than the generator's`;
  }
  return null;
}

/** `m` with the log starting where recovery starts it (see `mismatch`). */
function startingAt(m: GroupModel, first: number): GroupModel {
  const s = cloneModel(m);
  for (const i of [...s.terms.keys()]) if (i < first - 1) s.terms.delete(i);
  s.first = first;
  return s;
}

interface RoundResult { models: Map<number, GroupModel>; reported: number; submitted: number; beyondReported: number }

/**
 * Checks the log in `dir` against what the child reported: returns, for every group, the state
 * recovery found (one of the allowed ones), which is where the next child carries on from.
 */
async function verifyRecovery(ctx: string, seed: number, dir: string, before: Map<number, GroupModel>, lines: ChildLine[]): Promise<RoundResult> {
  const submits = new Map<number, Op>();
  const reported: number[] = [];
  for (const line of lines) {
    if (line.k === 'submit') {
      assert.equal(line.n, submits.size + 1, `${ctx}: submit lines out of order`);
      submits.set(line.n, line.op);
    } else if (line.k === 'done') {
      assert.equal(line.n, reported.length + 1, `${ctx}: op ${line.n} was reported done before op ${reported.length + 1}`);
      assert.ok(submits.has(line.n), `${ctx}: op ${line.n} reported done before it was submitted`);
      reported.push(line.n);
    }
  }

  // The state after every reported op, checked against the child's own summary of each.
  const reportedState = new Map<number, GroupModel>();
  for (const g of groupIds) reportedState.set(g, cloneModel(before.get(g) ?? emptyModel()));
  for (const line of lines) {
    if (line.k !== 'done') continue;
    const op = submits.get(line.n)!;
    for (const g of new Set(opGroups(op))) {
      const states = statesAfter(reportedState.get(g)!, op, g);
      reportedState.set(g, states[states.length - 1]!);
    }
    for (const [g, last, term] of line.sum) {
      const m = reportedState.get(g)!;
      assert.ok(m.last === last && (m.terms.get(last) ?? 0) === term, `${ctx}: after op ${line.n} the child says group ${g} ends at ${last}/${term}, the model at ${m.last}/${m.terms.get(last)}`);
    }
  }

  let wal: Wal;
  try {
    wal = Wal.open({ dir, ...walOptions });
  } catch (e) {
    assert.fail(`${ctx}: recovery failed after ${reported.length} reported ops: ${(e as Error).message}`);
  }
  try {
    return checkGroups(ctx, seed, wal, reportedState, reported.length, submits);
  } finally {
    // Closing writes only what recovery itself queued (rewrites when it started a segment).
    await wal.close();
  }
}

function checkGroups(ctx: string, seed: number, wal: Wal, reportedState: Map<number, GroupModel>, reportedCount: number, submits: Map<number, Op>): RoundResult {
  const known = new Set(groupIds);
  for (const g of wal.groupIds()) assert.ok(known.has(g), `${ctx}: recovery invented group ${g}`);

  const unreported = [...submits.keys()].filter((n) => n > reportedCount).map((n) => submits.get(n)!);
  const models = new Map<number, GroupModel>();
  let beyondReported = 0;
  for (const g of groupIds) {
    // Allowed: the reported state, then each state the unreported ops pass through, in order.
    const allowed: GroupModel[] = [reportedState.get(g)!];
    let cur = reportedState.get(g)!;
    for (const op of unreported) {
      if (!opGroups(op).includes(g)) continue;
      const states = statesAfter(cur, op, g);
      allowed.push(...states);
      cur = states[states.length - 1]!;
    }
    const why: string[] = [];
    const k = allowed.findIndex((m) => {
      const w = mismatch(seed, wal, g, m);
      if (w !== null) why.push(w);
      return w === null;
    });
    if (k < 0) {
      const r = wal.group(g);
      assert.fail(`${ctx}: group ${g} recovered as [${r.firstIndex()}, ${r.lastIndex()}] hs ${JSON.stringify(r.hardState)} snap ${r.snap.index}, `
        + `which is none of the ${allowed.length} states allowed after ${reportedCount} reported and ${unreported.length} unreported ops; `
        + `against the reported state: ${why[0]}; against the last: ${why[why.length - 1]}`);
    }
    if (k > 0) beyondReported++;
    models.set(g, startingAt(allowed[k]!, wal.group(g).firstIndex()));
  }
  return { models, reported: reportedCount, submitted: submits.size, beyondReported };
}

// --- Damage ---

/** The segments when the last op was reported (or recovery finished): where its bytes end. */
function lastReportedSpan(lines: ChildLine[]): SegmentSpan {
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!;
    if (l.k === 'done' || l.k === 'ready') return { oldest: l.oldest, seg: l.seg, size: l.size };
  }
  return { oldest: null, seg: null, size: 0 };
}

/**
 * Tears the tail of the log the way a crash in the middle of a write would: cuts the newest
 * segment somewhere in the bytes written after the last report, or appends garbage to it.
 *
 * A cut must never reach below what the log made durable, which no recovery can undo. Bytes
 * written after the last report are not all unacknowledged, though: a batch may carry
 * rewrites of older records, and once it is durable the log may delete the segments those
 * came from; a crash between that and the report leaves acknowledged data only in the new
 * bytes. So a cut is made only when no segment was deleted since the last report.
 */
function tearTail(dir: string, lines: ChildLine[], how: 'cut' | 'garbage', rng: Prng): string {
  const reported = lastReportedSpan(lines);
  const now = segmentSpan(dir);
  if (now.seg === null) return 'no segment';
  const file = path.join(dir, now.seg);
  // A segment started after the last report holds nothing that was durable then.
  const floor = now.seg === reported.seg ? reported.size : 0;
  const purgedSince = reported.oldest !== null && now.oldest !== reported.oldest;
  if (how === 'cut' && now.size > floor && !purgedSince) {
    const at = rng.int(floor, now.size - 1);
    fs.truncateSync(file, at);
    return `cut ${now.seg} from ${now.size} to ${at} bytes (reported end ${floor})`;
  }
  let garbage: Buffer;
  if (rng.chance(0.5)) {
    garbage = Buffer.from(Array.from({ length: rng.int(1, 4096) }, () => rng.int(0, 255)));
  } else {
    // Something that starts like a frame: magic, a length, a wrong checksum, then noise.
    garbage = Buffer.alloc(FRAME_HEADER_BYTES + rng.int(0, 600));
    for (let i = 0; i < garbage.length; i++) garbage[i] = rng.int(0, 255);
    garbage.writeUInt32LE(FRAME_MAGIC, 0);
    garbage.writeUInt32LE(rng.chance(0.5) ? garbage.length - FRAME_HEADER_BYTES : rng.int(0, 1 << 20), 4);
  }
  fs.appendFileSync(file, garbage);
  return `appended ${garbage.length} bytes of garbage to ${now.seg} (${now.size} bytes${purgedSince ? '; segments were purged since the last report' : ''})`;
}

// --- The runs ---

/** Runs `body`, then deletes `dir` (kept after a failure when FLOTILLA_CRASH_KEEP=1). */
async function cleanedUp(dir: string, body: () => Promise<void>): Promise<void> {
  let ok = false;
  try {
    await body();
    ok = true;
  } finally {
    if (ok || !KEEP_ON_FAILURE) fs.rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`seed=${SEED}: kept ${dir}\n`);
  }
}

interface RunOptions { mode: 'seq' | 'pipe'; rounds: number; damage: 'none' | 'cut' | 'garbage' }

interface RunResult { reported: number; beyond: number; notes: string[]; models: Map<number, GroupModel> }

/** Kills and recovers the child `opts.rounds` times in `dir`; `models`: what `dir` holds at the start. */
async function crashRounds(name: string, opts: RunOptions, dir: string, start = new Map<number, GroupModel>()): Promise<RunResult> {
  const rng = new Prng(SEED ^ Math.imul(name.length + opts.rounds, 0x9e3779b1));
  let models = start;
  let reported = 0;
  let beyond = 0;
  const notes: string[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const ctx = `seed=${SEED} ${name} round ${round}`;
    const child = await crashChild(ctx, dir, SEED, opts.mode, rng.int(50, 300));
    let note = '';
    if (opts.damage !== 'none') note = tearTail(dir, child.lines, opts.damage === 'cut' && rng.chance(0.8) ? 'cut' : 'garbage', rng);
    let res: RoundResult;
    if (KEEP_ON_FAILURE) {
      fs.rmSync(`${dir}.pre`, { recursive: true, force: true });
      fs.cpSync(dir, `${dir}.pre`, { recursive: true });
    }
    try {
      res = await verifyRecovery(note === '' ? ctx : `${ctx} (${note})`, SEED, dir, models, child.lines);
    } catch (e) {
      if (KEEP_ON_FAILURE) fs.writeFileSync(`${dir}.lines`, child.lines.map((l) => JSON.stringify(l)).join('\n'));
      throw e;
    }
    models = res.models;
    reported += res.reported;
    beyond += res.beyondReported;
    notes.push(`round ${round}: ${res.reported}/${res.submitted} ops reported${note === '' ? '' : `; ${note}`}`);
  }
  return { reported, beyond, notes, models };
}

test('killed with SIGKILL at random moments, the log keeps every reported batch and invents nothing', { timeout: 30_000 }, async (t) => {
  const dir = tmpdir();
  await cleanedUp(dir, async () => {
    const res = await crashRounds('kill', { mode: 'pipe', rounds: 8, damage: 'none' }, dir);
    t.diagnostic(`seed=${SEED}: ${res.reported} reported ops; ${res.beyond} group states beyond the reported one. ${res.notes.join('; ')}`);
    assert.ok(res.reported >= 8, `seed=${SEED}: only ${res.reported} ops were reported in 8 rounds`);
  });
});

test('a torn tail (cut after the last report, or garbage) is cut off by recovery and the reported batches are served', { timeout: 30_000 }, async (t) => {
  const dir = tmpdir();
  await cleanedUp(dir, async () => {
    const cut = await crashRounds('torn-cut', { mode: 'seq', rounds: 8, damage: 'cut' }, dir);
    t.diagnostic(`seed=${SEED}: ${cut.notes.join('; ')}`);
    const garbage = await crashRounds('torn-garbage', { mode: 'seq', rounds: 4, damage: 'garbage' }, dir, cut.models);
    t.diagnostic(`seed=${SEED}: ${garbage.notes.join('; ')}`);
    assert.ok(cut.reported + garbage.reported >= 12, `seed=${SEED}: only ${cut.reported + garbage.reported} ops were reported`);
  });
});

interface FrameAt { file: string; off: number; bytes: number }

function framesOf(dir: string): FrameAt[] {
  const out: FrameAt[] = [];
  // Segments only (a spare's stale frames are no longer the log's), and in each only the frames it
  // wrote itself: a recycled file may still hold the frames of the segment it was before.
  for (const name of segmentFiles(dir)) {
    const seq = parseSegmentName(name)!;
    const file = path.join(dir, name);
    const data = fs.readFileSync(file);
    let off = 0;
    while (off + FRAME_HEADER_BYTES <= data.length && data.readUInt32LE(off) === FRAME_MAGIC && frameOwnedBy(data, off, seq)) {
      const bytes = FRAME_HEADER_BYTES + data.readUInt32LE(off + 4);
      if (off + bytes > data.length) break;
      out.push({ file: name, off, bytes });
      off += bytes;
    }
  }
  return out;
}

test('a flipped bit in a frame that is not the tail stops recovery with WAL_CORRUPT naming the file and offset', { timeout: 30_000 }, async (t) => {
  const dir = tmpdir();
  const copies: string[] = [];
  try {
    await crashRounds('flip-setup', { mode: 'pipe', rounds: 3, damage: 'none' }, dir);
    const frames = framesOf(dir);
    // Every frame but the very last one of the log is followed by an intact frame.
    const candidates = frames.slice(0, -1);
    assert.ok(candidates.length >= 3, `seed=${SEED}: only ${frames.length} frames are left in the log`);
    const rng = new Prng(SEED ^ 0x5bd1e995);
    for (let trial = 1; trial <= FLIPS; trial++) {
      const f = rng.pick(candidates);
      // Any bit of the frame: header (magic, length, checksum, reserved word, sequence) or body.
      const at = f.off + rng.int(0, f.bytes - 1);
      const bit = rng.int(0, 7);
      const copy = tmpdir();
      copies.push(copy);
      fs.cpSync(dir, copy, { recursive: true });
      const file = path.join(copy, f.file);
      const bytes = fs.readFileSync(file);
      bytes[at] = bytes[at]! ^ (1 << bit);
      fs.writeFileSync(file, bytes);
      const ctx = `seed=${SEED} flip trial ${trial}: bit ${bit} of byte ${at} (frame at ${f.off}, ${f.bytes} bytes) in ${f.file}`;
      assert.throws(() => Wal.open({ dir: copy, ...walOptions }), (e: unknown) => {
        assert.ok(e instanceof WalError, `${ctx}: threw ${String(e)}`);
        assert.equal(e.code, 'WAL_CORRUPT', `${ctx}: code ${e.code}`);
        assert.equal(e.file, file, `${ctx}: names file ${e.file}`);
        assert.equal(e.offset, f.off, `${ctx}: names offset ${e.offset}`);
        assert.ok(e.message.includes(`${file}:${f.off}`), `${ctx}: message "${e.message}" does not name ${file}:${f.off}`);
        return true;
      }, `${ctx}: recovery did not refuse the log`);
    }
    t.diagnostic(`seed=${SEED}: ${FLIPS} flips over ${candidates.length} frames in ${new Set(frames.map((f) => f.file)).size} segments`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const c of copies) fs.rmSync(c, { recursive: true, force: true });
  }
});

// --- Crash images: the files as a crash at one exact moment leaves them ---
//
// A copy of the log's directory taken synchronously, while batches are still queued in memory,
// is what a SIGKILL at that moment leaves on disk (the OS keeps what was written). These tests
// take such copies at chosen moments, so they replay exactly.

const enc = new TextEncoder();
const entry = (index: number, term: number, bytes: number, fill: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(bytes).fill(fill) });

function crashImage(dir: string): string {
  const copy = tmpdir();
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}

test('a segment is deleted only once the records that replace it are durable (crash image after a purge)', async () => {
  const dir = tmpdir();
  const images: string[] = [];
  try {
    const wal = Wal.open({ dir, segmentBytes: 8192 });
    // Group 2 writes once and is acknowledged; from then on only the log's rewrites move it.
    await wal.append([{ group: 2, entries: [entry(1, 1, 40, 2), entry(2, 1, 40, 2)], hardState: { term: 1, vote: 2, commit: 2 } }]);
    let next = 1;
    for (let round = 1; round <= 60; round++) {
      // One batch is being written; the next turn's calls queue behind it. The compaction
      // purges: group 2 is rewritten into the queued batch and its old segment goes.
      const rewrittenBefore = wal.stats.groupsRewritten;
      const writing = wal.append([{ group: 1, entries: Array.from({ length: 8 }, (_, k) => entry(next + k, 1, 100, 1)), hardState: { term: 1, vote: 1, commit: next + 7 } }]);
      next += 8;
      const queued = [wal.recordSnapshot(1, { index: next - 3, term: 1, conf: CONF }), wal.compact(1, next - 3)];
      const image = crashImage(dir);
      images.push(image);
      await Promise.all([writing, ...queued]);
      let recovered: Wal;
      try {
        recovered = Wal.open({ dir: image, segmentBytes: 8192 });
      } catch (e) {
        assert.fail(`round ${round}: a crash now leaves a log that does not open: ${(e as Error).message}`);
      }
      const g2 = recovered.group(2);
      const got = { first: g2.firstIndex(), last: g2.lastIndex(), hs: g2.hardState };
      await recovered.close();
      assert.deepEqual(got, { first: 1, last: 2, hs: { term: 1, vote: 2, commit: 2 } },
        `round ${round} (${wal.stats.groupsRewritten - rewrittenBefore} groups rewritten into the queued batch; ${wal.stats.segmentsDeleted} segments deleted so far): a crash now loses group 2's acknowledged entries or hard state: ${JSON.stringify(got)}`);
    }
    assert.ok(wal.stats.groupsRewritten > 0 && wal.stats.segmentsDeleted > 0, 'the scenario never purged');
    await wal.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    for (const i of images) fs.rmSync(i, { recursive: true, force: true });
  }
});

test('a torn frame at the end of a segment, followed only by the empty segment the same batch started, is a torn tail', async () => {
  const dir = tmpdir();
  try {
    const wal = Wal.open({ dir, segmentBytes: 8192 });
    await wal.append([{ group: 1, entries: Array.from({ length: 20 }, (_, k) => entry(k + 1, 1, 100, 1)), hardState: { term: 1, vote: 1, commit: 20 } }]);
    // One batch whose records do not fit the rest of the segment: a frame at the end of this
    // segment, and a new segment for the rest.
    await wal.append([{ group: 1, entries: Array.from({ length: 60 }, (_, k) => entry(21 + k, 1, 100, 1)) }]);
    await wal.close();
    const names = fs.readdirSync(dir).filter((f) => f.endsWith('.wal')).sort();
    assert.equal(names.length, 2, `the batch should span two segments: ${names.join(', ')}`);
    const [first, second] = names.map((n) => path.join(dir, n)) as [string, string];
    const frames = framesOf(dir).filter((f) => f.file === names[0]);
    const last = frames[frames.length - 1]!;
    assert.ok(last.off > 0 && last.bytes > 4096, 'the batch\'s first frame is the second frame of the first segment');
    // The kill came while the first frame was being written (a write of several pages can stop
    // part-way at a fatal signal); the new segment already existed, empty.
    fs.truncateSync(first, last.off + 4096);
    fs.truncateSync(second, 0);
    let again: Wal;
    try {
      again = Wal.open({ dir, segmentBytes: 8192 });
    } catch (e) {
      assert.fail(`recovery refuses a log whose only damage is the unacknowledged last batch: ${(e as Error).message}`);
    }
    assert.equal(again.group(1).lastIndex(), 20);
    assert.deepEqual(again.group(1).hardState, { term: 1, vote: 1, commit: 20 });
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a flipped bit in a frame header\'s sequence number does not silently cut acknowledged frames', async () => {
  const dir = tmpdir();
  try {
    const wal = Wal.open({ dir });
    for (let i = 1; i <= 4; i++) await wal.append([{ group: 1, entries: [{ index: i, term: 1, type: EntryType.Normal, data: enc.encode(`entry ${i}`) }] }]);
    await wal.close();
    const [name] = fs.readdirSync(dir).filter((f) => f.endsWith('.wal'));
    const file = path.join(dir, name!);
    const frames = framesOf(dir);
    assert.equal(frames.length, 4);
    const bytes = fs.readFileSync(file);
    // Bit 61 of the second frame's sequence number (an f64 at header offset 16): 2 becomes 2^513.
    bytes[frames[1]!.off + 16 + 7] = bytes[frames[1]!.off + 16 + 7]! ^ 0x20;
    fs.writeFileSync(file, bytes);
    let served = -1;
    let error: unknown = null;
    try {
      const again = Wal.open({ dir });
      served = again.group(1).lastIndex();
      await again.close();
    } catch (e) {
      error = e;
    }
    // Either the damage is reported, or every acknowledged entry is still served.
    assert.ok((error instanceof WalError && error.code === 'WAL_CORRUPT') || served === 4,
      `recovery served entries up to ${served} of 4 and reported nothing${error === null ? '' : ` (threw ${String(error)})`}; the file is now ${fs.statSync(file).size} bytes, was ${bytes.length}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
