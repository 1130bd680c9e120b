// Many groups in one write-ahead log: a thousand groups interleaved batch by batch, with new
// leaders' conflicting suffixes, installed snapshots and compactions, recovered exactly after
// a close; and a long run over small segments in which disk use must stay under a bound
// derived from the workload, while some groups go idle for good.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Prng } from '../sim/prng.js';
import { Wal, type GroupWrite } from '../../src/storage/wal.js';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { confBytes, ENTRY_HEADER_BYTES, FRAME_HEADER_BYTES, RECORD_HEADER_BYTES } from '../../src/storage/wal-format.js';

const SEED = Number(process.env.FLOTILLA_STORAGE_SEED ?? 20_240_611) >>> 0;
const CONF = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [] };

const tmpdir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-groups-'));

/** Payload of (group, index, term): `bytes` long (default 0–199), every byte determined by the key. */
function payload(group: number, index: number, term: number, bytes?: number): Uint8Array {
  let h = Math.imul(group ^ 0x9e3779b1, 0x85ebca6b) ^ Math.imul(index, 0xc2b2ae35) ^ Math.imul(term, 0x27d4eb2d);
  h = (h ^ (h >>> 15)) >>> 0;
  const out = new Uint8Array(bytes ?? h % 200);
  for (let i = 0; i < out.length; i++) {
    h = Math.imul(h ^ (h >>> 13), 0x5bd1e995) >>> 0;
    out[i] = h >>> 24;
  }
  return out;
}

/** What one group's log must hold. */
class GroupModel {
  first = 1;
  last = 0;
  /** Term of every index in [first - 1, last] (index 0 excluded). */
  readonly terms = new Map<number, number>();
  hs: HardState = { term: 0, vote: 0, commit: 0 };
  snap = { index: 0, term: 0 };
  term = 1;

  /** `entryBytes`: every payload this long (default: 0–199 bytes, varying). */
  constructor(readonly id: number, readonly entryBytes?: number) {}

  entries(from: number, to: number, term: number): Entry[] {
    for (let i = this.last; i >= from; i--) this.terms.delete(i);
    const out: Entry[] = [];
    for (let i = from; i <= to; i++) {
      this.terms.set(i, term);
      out.push({ index: i, term, type: EntryType.Normal, data: payload(this.id, i, term, this.entryBytes) });
    }
    this.last = to;
    return out;
  }

  compact(index: number): void {
    for (const i of [...this.terms.keys()]) if (i < index) this.terms.delete(i);
    this.first = index + 1;
  }

  /** A leader's snapshot at `index` replaces the whole log. */
  install(index: number, term: number): void {
    this.terms.clear();
    this.terms.set(index, term);
    this.first = index + 1;
    this.last = index;
    this.snap = { index, term };
  }
}

/** Why the recovered group differs from the model (null: it does not), bytes included. */
function difference(wal: Wal, m: GroupModel): string | null {
  const r = wal.group(m.id);
  if (r.firstIndex() !== m.first || r.lastIndex() !== m.last) return `log [${r.firstIndex()}, ${r.lastIndex()}], expected [${m.first}, ${m.last}]`;
  if (JSON.stringify(r.hardState) !== JSON.stringify(m.hs)) return `hard state ${JSON.stringify(r.hardState)}, expected ${JSON.stringify(m.hs)}`;
  if (r.snap.index !== m.snap.index || r.snap.term !== m.snap.term) return `snapshot ${r.snap.index}/${r.snap.term}, expected ${m.snap.index}/${m.snap.term}`;
  if (m.first > 1 && r.term(m.first - 1) !== m.terms.get(m.first - 1)) return `term(${m.first - 1}) = ${r.term(m.first - 1)}, expected ${m.terms.get(m.first - 1)}`;
  if (m.last < m.first) return null;
  for (const e of r.entries(m.first, m.last + 1, Infinity)) {
    if (e.term !== m.terms.get(e.index)) return `entry ${e.index} has term ${e.term}, expected ${m.terms.get(e.index)}`;
    if (!Buffer.from(e.data).equals(Buffer.from(payload(m.id, e.index, e.term, m.entryBytes)))) return `entry ${e.index} has other bytes`;
  }
  return null;
}

function checkAll(ctx: string, wal: Wal, models: Iterable<GroupModel>): void {
  const wrong: string[] = [];
  let n = 0;
  for (const m of models) {
    n++;
    const d = difference(wal, m);
    if (d !== null) wrong.push(`group ${m.id}: ${d}`);
  }
  assert.equal(wrong.length, 0, `${ctx}: ${wrong.length} of ${n} groups differ, e.g. ${wrong.slice(0, 5).join('; ')}`);
}

function reopen(ctx: string, opts: { dir: string }): Wal {
  try {
    return Wal.open(opts);
  } catch (e) {
    assert.fail(`${ctx}: reopening fails: ${(e as Error).message}`);
  }
}

// --- A thousand groups ---

const GROUPS = 1000;
const GROUPS_PER_BATCH = 100;

/** One round: every group writes once, in batches of 100 groups; returns the rounds' stats. */
async function writeRound(wal: Wal, models: GroupModel[], rng: Prng, round: number): Promise<{ conflicts: number; installs: number }> {
  let conflicts = 0;
  let installs = 0;
  const order = rng.shuffle([...models]);
  const pending: Promise<void>[] = [];
  for (let b = 0; b < order.length; b += GROUPS_PER_BATCH) {
    const writes: GroupWrite[] = [];
    for (const m of order.slice(b, b + GROUPS_PER_BATCH)) {
      const w: GroupWrite = { group: m.id };
      if (round === 4 && m.id % 50 === 0) {
        // A leader's snapshot: the log restarts after it, then goes on.
        m.term++;
        m.install(m.last + 10, m.term);
        w.snapshot = { index: m.snap.index, term: m.snap.term, conf: CONF };
        installs++;
      }
      if (m.last > m.hs.commit && w.snapshot === undefined && rng.chance(0.15)) {
        // A new leader's entries replace the uncommitted tail.
        m.term++;
        const from = rng.int(m.hs.commit + 1, m.last);
        w.entries = m.entries(from, from + rng.int(0, 4), m.term);
        conflicts++;
      } else {
        w.entries = m.entries(m.last + 1, m.last + rng.int(1, 8), m.term);
      }
      m.hs = { term: m.term, vote: 1 + (m.id % 3), commit: Math.max(m.hs.commit, m.last - rng.int(0, 3)) };
      w.hardState = m.hs;
      writes.push(w);
    }
    // Several batches in flight, as a busy worker has: they gather into shared fsyncs.
    pending.push(wal.append(writes));
    if (pending.length >= 4) await pending.shift();
  }
  await Promise.all(pending);
  return { conflicts, installs };
}

async function compactSome(wal: Wal, models: GroupModel[], every: number): Promise<number> {
  const calls: Promise<void>[] = [];
  for (const m of models) {
    if (m.id % every !== 0 || m.hs.commit < m.first + 1) continue;
    const index = m.hs.commit;
    m.snap = { index, term: m.terms.get(index)! };
    calls.push(wal.recordSnapshot(m.id, { index, term: m.snap.term, conf: CONF }));
    const upTo = index - 1; // keep one entry behind the snapshot
    calls.push(wal.compact(m.id, upTo));
    m.compact(upTo);
  }
  await Promise.all(calls);
  return calls.length / 2;
}

test('a thousand groups interleaved in one log, with conflicts, snapshots and compactions, are recovered exactly', async (t) => {
  const dir = tmpdir();
  try {
    const rng = new Prng(SEED);
    // Group ids spread over the u32 range.
    const models = Array.from({ length: GROUPS }, (_, k) => new GroupModel(1 + k * 4_294_967 + (k % 7)));
    const opts = { dir, segmentBytes: 1 << 20 };
    let wal = Wal.open(opts);
    let conflicts = 0;
    let installs = 0;
    let compacted = 0;
    for (let round = 1; round <= 6; round++) {
      const r = await writeRound(wal, models, rng, round);
      conflicts += r.conflicts;
      installs += r.installs;
      if (round === 3) compacted += await compactSome(wal, models, 7);
      if (round === 5) compacted += await compactSome(wal, models, 3);
    }
    checkAll(`seed=${SEED} before closing`, wal, models);
    const stats = { ...wal.stats };
    await wal.close();
    assert.ok(conflicts > 100 && installs === GROUPS / 50 && compacted > 300, `seed=${SEED}: the workload did too little (${conflicts} conflicts, ${installs} installs, ${compacted} compactions)`);

    wal = reopen(`seed=${SEED}`, opts);
    assert.deepEqual(wal.groupIds(), models.map((m) => m.id).sort((a, b) => a - b), `seed=${SEED}: recovered group ids`);
    checkAll(`seed=${SEED} after reopening`, wal, models);
    // And once more after writing on top of the recovered log.
    await writeRound(wal, models, rng, 7);
    await wal.close();
    wal = reopen(`seed=${SEED} second time`, opts);
    checkAll(`seed=${SEED} after a second reopen`, wal, models);
    await wal.close();
    t.diagnostic(`seed=${SEED}: ${conflicts} conflicting suffixes, ${installs} installed snapshots, ${compacted} compactions; `
      + `${stats.batches} batches, ${stats.fsyncs} fsyncs, ${stats.segments} segments used, ${stats.segmentsDeleted} deleted, ${stats.groupsRewritten} group rewrites`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('groups interleaved across segments without compaction survive the rewrites that free old segments', async () => {
  // The simplest shape of the workload above: every group appends one entry per batch, nothing
  // is compacted, and the log rewrites small groups to free its oldest segments.
  const dir = tmpdir();
  try {
    const opts = { dir, segmentBytes: 64 << 10, syncForce: false };
    const wal = Wal.open(opts);
    const models = Array.from({ length: 40 }, (_, k) => new GroupModel(k + 1));
    for (let batch = 0; batch < 60; batch++) {
      await wal.append(models.map((m) => {
        const entries = m.entries(m.last + 1, m.last + 1, 1);
        m.hs = { term: 1, vote: 1, commit: m.last };
        return { group: m.id, entries, hardState: m.hs };
      }));
    }
    checkAll('before closing', wal, models);
    await wal.close();
    // After the close: with syncForce off, deletions wait for the background sync (wal-sync.ts).
    assert.ok(wal.stats.groupsRewritten > 0 && wal.stats.segmentsDeleted > 0, 'the log neither rewrote nor deleted anything');
    const again = reopen('40 groups', opts);
    checkAll('after reopening', again, models);
    await again.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// --- Bounded disk use ---

test('with groups compacting and some idle for good, disk use stays under a bound for the whole run', async (t) => {
  // The workload, and the bound it implies.
  //
  // ACTIVE groups take turns: each turn, GROUPS_PER_TURN of them (round-robin) append
  // ENTRIES_PER_WRITE entries of ENTRY_BYTES and a hard state, then record a snapshot and
  // compact so that only that write's entries stay live. So an active group is touched every
  // TURNS_PER_TOUCH turns, and each touch writes everything the group still needs (entries,
  // hard state, snapshot and compact markers) anew: all of it is at most TURNS_PER_TOUCH + 1
  // turns old (the markers may go into the batch after the turn's). IDLE groups write once at
  // the start and never again; they are small (below rewriteBytesMax), so the log rewrites them
  // whenever they hold the oldest segment back, and the compactions purge every turn.
  //
  // Hence the oldest segment still needed holds a byte written in the last TURNS_PER_TOUCH + 1
  // turns, or holds only idle groups and goes at the next purge. Bytes written in those turns
  // are at most (TURNS_PER_TOUCH + 1) × (turn bytes + one rewrite of every idle group); they
  // span at most ceil(that / usable bytes of a segment) + 1 segments; add the current segment
  // and one segment pinned only by idle groups until the next purge.
  const SEGMENT_BYTES = 64 << 10;
  const ACTIVE = 200;
  const IDLE = 5;
  const GROUPS_PER_TURN = 20;
  const ENTRIES_PER_WRITE = 4;
  const ENTRY_BYTES = 100;
  const IDLE_ENTRIES = 2;
  const TURNS = 2500;
  const REWRITE_BYTES_MAX = 300; // idle groups hold 200 bytes; an active one 400–800 (never rewritten)

  const TURNS_PER_TOUCH = ACTIVE / GROUPS_PER_TURN;
  const entriesRecord = (n: number, bytes: number): number => RECORD_HEADER_BYTES + 12 + n * (ENTRY_HEADER_BYTES + bytes);
  const hardStateRecord = RECORD_HEADER_BYTES + 20;
  const snapshotRecord = RECORD_HEADER_BYTES + 17 + confBytes(CONF);
  const compactRecord = RECORD_HEADER_BYTES + 16;
  // A turn is up to three batches (the append starts a write at once; the markers queue).
  const turnBytesMax = GROUPS_PER_TURN * (entriesRecord(ENTRIES_PER_WRITE, ENTRY_BYTES) + hardStateRecord + snapshotRecord + compactRecord) + 3 * FRAME_HEADER_BYTES;
  // A rewrite restates a group's markers, entries (with the term before them) and hard state.
  const idleRewriteBytes = IDLE * (snapshotRecord + compactRecord + entriesRecord(IDLE_ENTRIES, ENTRY_BYTES) + 8 + hardStateRecord) + FRAME_HEADER_BYTES;
  const recordBytesMax = entriesRecord(ENTRIES_PER_WRITE, ENTRY_BYTES) + FRAME_HEADER_BYTES;
  const usableSegmentBytes = SEGMENT_BYTES - recordBytesMax;
  const windowBytes = (TURNS_PER_TOUCH + 1) * (turnBytesMax + idleRewriteBytes);
  const segmentsMax = Math.ceil(windowBytes / usableSegmentBytes) + 1 + 2;
  // A segment may run over by what a rewrite placed in it before the record that started it.
  const segmentFileBytesMax = SEGMENT_BYTES + idleRewriteBytes + recordBytesMax;
  const diskBytesMax = segmentsMax * segmentFileBytesMax;

  const dir = tmpdir();
  try {
    // syncForce on: a freed segment goes as soon as the batch that freed it is durable. (Off, it
    // waits for the background sync after that batch (wal-sync.ts, afterCovered), and a writer
    // that never waits for a sync can fill any number of segments meanwhile.)
    const opts = { dir, segmentBytes: SEGMENT_BYTES, syncForce: true, rewriteBytesMax: REWRITE_BYTES_MAX };
    const wal = Wal.open(opts);
    const active = Array.from({ length: ACTIVE }, (_, k) => new GroupModel(100 + k, ENTRY_BYTES));
    const idle = Array.from({ length: IDLE }, (_, k) => new GroupModel(10_000 + k, ENTRY_BYTES));
    const fixed = (m: GroupModel, from: number, to: number): Entry[] => m.entries(from, to, 1);
    await wal.append(idle.map((m) => {
      const entries = fixed(m, 1, IDLE_ENTRIES);
      m.hs = { term: 1, vote: 1, commit: IDLE_ENTRIES };
      return { group: m.id, entries, hardState: m.hs };
    }));

    let segmentsSeen = 0;
    let diskSeen = 0;
    const measure = (turn: number): void => {
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.wal'));
      let bytes = 0;
      for (const f of files) {
        const size = fs.statSync(path.join(dir, f)).size;
        assert.ok(size <= segmentFileBytesMax, `turn ${turn}: ${f} has ${size} bytes, more than ${segmentFileBytesMax}`);
        bytes += size;
      }
      segmentsSeen = Math.max(segmentsSeen, files.length);
      diskSeen = Math.max(diskSeen, bytes);
      assert.ok(files.length <= segmentsMax, `turn ${turn}: ${files.length} segment files, more than the bound ${segmentsMax}: ${files.sort().join(', ')}`);
      assert.ok(bytes <= diskBytesMax, `turn ${turn}: ${bytes} bytes of segments, more than the bound ${diskBytesMax}`);
    };

    for (let turn = 0; turn < TURNS; turn++) {
      const touched = active.slice((turn % TURNS_PER_TOUCH) * GROUPS_PER_TURN, (turn % TURNS_PER_TOUCH + 1) * GROUPS_PER_TURN);
      const calls: Promise<void>[] = [];
      calls.push(wal.append(touched.map((m) => {
        const entries = fixed(m, m.last + 1, m.last + ENTRIES_PER_WRITE);
        m.hs = { term: 1, vote: 1, commit: m.last };
        return { group: m.id, entries, hardState: m.hs };
      })));
      for (const m of touched) {
        const upTo = m.last - ENTRIES_PER_WRITE;
        if (upTo < m.first) continue;
        m.snap = { index: upTo, term: 1 };
        calls.push(wal.recordSnapshot(m.id, { index: upTo, term: 1, conf: CONF }));
        calls.push(wal.compact(m.id, upTo));
        m.compact(upTo);
      }
      await Promise.all(calls);
      measure(turn);
    }

    assert.ok(wal.stats.segments > 10 * segmentsMax, `only ${wal.stats.segments} segments were used: the run does not show a bound`);
    assert.ok(wal.stats.groupsRewritten > 0, 'no idle group was ever rewritten');
    // The idle groups' entries are still served (from the segments they were moved to).
    checkAll('idle groups at the end', wal, idle);
    checkAll('active groups at the end', wal, active);
    await wal.close();
    t.diagnostic(`bound: ${segmentsMax} segment files of at most ${segmentFileBytesMax} bytes, ${diskBytesMax} bytes in all `
      + `(window ${windowBytes} bytes over ${TURNS_PER_TOUCH + 1} turns); seen at most ${segmentsSeen} files and ${diskSeen} bytes; `
      + `${wal.stats.segments} segments used, ${wal.stats.segmentsDeleted} deleted, ${wal.stats.groupsRewritten} group rewrites, ${wal.stats.bytes} bytes written`);

    await t.test('and the log reopens with every group exact', async () => {
      const again = reopen('after the long run', opts);
      checkAll('idle groups after reopening', again, idle);
      checkAll('active groups after reopening', again, active);
      await again.close();
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
