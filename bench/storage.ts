// Throughput of the shared write-ahead log against the raw ceiling of this disk, side by side
// from one run: 100-byte records, for 1, 16 and 256 groups × batches of 1, 10, 100 and 1,000
// records, with syncForce on and off.
//
//   npm run bench:storage -- [--seconds S] [--json FILE]
//
// raw:   a loop of write + fdatasync of one batch's bytes (batch × 100, no framing) into a
//        pre-created, pre-allocated file; with syncForce off, the write alone.
// store: `wal.append` with that many records spread over the groups, the next call issued as
//        soon as the previous one resolves (inflight 1), as a worker turn would; the rows with
//        inflight 4 keep four calls outstanding, so calls gather into shared batches (group
//        commit). Groups are snapshotted and compacted every COMPACT_EVERY_RECORDS records so
//        that disk use stays bounded, as a host would.
// ratio: store records/s ÷ raw records/s at the same batch size and syncForce.
// MB/s counts record payload (10^6 bytes), not framing.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseOrExit, type CommandSpec } from '../src/cli/args.js';
import { Wal, type GroupWrite } from '../src/storage/wal.js';
import { crc32Implementation, crc32Native, crc32Zlib, type Crc32Function } from '../src/storage/checksum.js';
import { EntryType, type Entry } from '../src/raft/types.js';

const { options: values } = parseOrExit({
  name: 'node dist/bench/storage.js',
  summary: 'The write-ahead log alone: records/s and MB/s by group count, batch and syncForce, against raw appends with fdatasync.',
  options: {
    seconds: { type: 'string', value: 'S', help: 'seconds per cell (default 1)' },
    json: { type: 'string', value: 'FILE', help: 'write the rows as JSON' },
  },
} as const satisfies CommandSpec, process.argv.slice(2));
const secondsPerCell = Number(values.seconds ?? '1');
if (!(secondsPerCell > 0)) throw new Error('--seconds must be a positive number');

const RECORD_BYTES = 100;
const GROUP_COUNTS = [1, 16, 256];
const BATCHES = [1, 10, 100, 1000];
const PIPELINED_GROUPS = 16;
const PIPELINE_DEPTH = 4;
const RAW_FILE_BYTES = 64 << 20;
const COMPACT_EVERY_RECORDS = 200_000;
const WARMUP_FRACTION = 0.1;
const CONF = { voters: [1], votersOutgoing: [], learners: [], learnersNext: [] };

interface Row {
  groups: number;
  batch: number;
  syncForce: boolean;
  inflight: number;
  recordsPerSec: number;
  mbPerSec: number;
  rawRecordsPerSec: number;
  ratio: number;
  /** Batches the log wrote per second (one write, and with syncForce one fdatasync, each). */
  logBatchesPerSec: number;
  /** Mean duration of one fdatasync (ms), in the log and in the raw loop (syncForce on only). */
  fsyncMs: number | null;
  rawFsyncMs: number | null;
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-storage-'));
// However the run ends (including a closed stdout), the temp dir goes.
process.once('exit', () => fs.rmSync(root, { recursive: true, force: true }));
const payload = new Uint8Array(RECORD_BYTES).fill(0x5a);

/** The disk alone: write (+ fdatasync) of batch × RECORD_BYTES bytes in a loop. */
function raw(batch: number, syncForce: boolean, fd: number): { recordsPerSec: number; fsyncMs: number | null } {
  const bytes = Buffer.alloc(batch * RECORD_BYTES, 0x5a);
  let pos = 0;
  let records = 0;
  let syncs = 0;
  let syncMs = 0;
  const step = (): void => {
    fs.writeSync(fd, bytes, 0, bytes.length, pos);
    if (syncForce) {
      const t = performance.now();
      fs.fdatasyncSync(fd);
      syncMs += performance.now() - t;
      syncs++;
    }
    pos += bytes.length;
    if (pos + bytes.length > RAW_FILE_BYTES) pos = 0;
  };
  const warmupEnd = performance.now() + secondsPerCell * WARMUP_FRACTION * 1000;
  while (performance.now() < warmupEnd) step();
  syncs = 0;
  syncMs = 0;
  const t0 = performance.now();
  const end = t0 + secondsPerCell * 1000;
  while (performance.now() < end) {
    step();
    records += batch;
  }
  return { recordsPerSec: records / ((performance.now() - t0) / 1000), fsyncMs: syncs > 0 ? syncMs / syncs : null };
}

/** The log: `inflight` appends of `batch` records over `groups` groups kept outstanding. */
async function store(groups: number, batch: number, syncForce: boolean, inflight: number): Promise<{ recordsPerSec: number; logBatchesPerSec: number; fsyncMs: number | null }> {
  const dir = fs.mkdtempSync(path.join(root, 'wal-'));
  const wal = Wal.open({ dir, syncForce });
  const last = new Array<number>(groups).fill(0);
  let cursor = 0;
  let sinceCompaction = 0;
  const nextBatch = (): GroupWrite[] => {
    // Records go to groups round-robin; each group's share is one run of consecutive entries.
    const perGroup = new Map<number, Entry[]>();
    for (let j = 0; j < batch; j++) {
      const g = (cursor + j) % groups;
      let list = perGroup.get(g);
      if (list === undefined) perGroup.set(g, (list = []));
      list.push({ index: ++last[g]!, term: 1, type: EntryType.Normal, data: payload });
    }
    cursor = (cursor + batch) % groups;
    const writes: GroupWrite[] = [];
    for (const [g, entries] of perGroup) writes.push({ group: g + 1, entries });
    return writes;
  };
  const compactAll = (): Promise<void>[] => {
    const calls: Promise<void>[] = [];
    for (let g = 0; g < groups; g++) {
      if (last[g] === 0) continue;
      calls.push(wal.recordSnapshot(g + 1, { index: last[g]!, term: 1, conf: CONF }));
      calls.push(wal.compact(g + 1, last[g]!));
    }
    return calls;
  };
  const run = async (ms: number): Promise<number> => {
    const end = performance.now() + ms;
    const outstanding: Promise<void>[] = [];
    let records = 0;
    while (performance.now() < end) {
      outstanding.push(wal.append(nextBatch()));
      records += batch;
      sinceCompaction += batch;
      if (sinceCompaction >= COMPACT_EVERY_RECORDS) {
        sinceCompaction = 0;
        outstanding.push(...compactAll());
      }
      while (outstanding.length >= inflight) await outstanding.shift();
    }
    await Promise.all(outstanding);
    return records;
  };
  await run(secondsPerCell * WARMUP_FRACTION * 1000);
  const { batches: batches0, fsyncs: fsyncs0, fsyncMsTotal: fsyncMs0 } = wal.stats;
  const t0 = performance.now();
  const records = await run(secondsPerCell * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const logBatches = wal.stats.batches - batches0;
  const fsyncs = wal.stats.fsyncs - fsyncs0;
  const fsyncMs = fsyncs > 0 ? (wal.stats.fsyncMsTotal - fsyncMs0) / fsyncs : null;
  await wal.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { recordsPerSec: records / seconds, logBatchesPerSec: logBatches / seconds, fsyncMs };
}

function crcMbPerSec(fn: Crc32Function): number {
  const buf = Buffer.alloc(1 << 20);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
  let n = 0;
  let sink = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 300) {
    sink ^= fn(buf, 0);
    n++;
  }
  if (sink === 0.5) console.log(sink); // keeps the loop from being optimised away
  return n / ((performance.now() - t0) / 1000);
}

const fmt = (n: number, width: number): string => Math.round(n).toLocaleString('en-US').padStart(width);
const fmt2 = (n: number, width: number): string => n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2).padStart(width);

async function main(): Promise<void> {
  const fsType = (() => {
    try {
      return fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '))
        .filter((p) => p.length > 2 && os.tmpdir().startsWith(p[1]!)).sort((a, b) => b[1]!.length - a[1]!.length)[0]?.[2] ?? 'unknown';
    } catch {
      return 'unknown';
    }
  })();
  console.log(`Storage: one write-ahead log, ${RECORD_BYTES}-byte records, ${secondsPerCell}s a cell; Node ${process.version}, `
    + `${os.cpus().length} cores, ${os.tmpdir()} on ${fsType}`);
  console.log(`crc32: ${crc32Implementation} runs; 1 MiB buffers: zlib ${crc32Zlib === null ? 'unavailable' : `${fmt(crcMbPerSec(crc32Zlib), 0)} MB/s`}, `
    + `@node-rs/crc32 ${crc32Native === null ? 'not installed (or does not load)' : `${fmt(crcMbPerSec(crc32Native), 0)} MB/s`}`);

  const rawFile = path.join(root, 'raw.bin');
  const rawFd = fs.openSync(rawFile, 'w+');
  // Pre-create: every block allocated and on disk, so the loop measures the write and sync alone.
  const chunk = Buffer.alloc(1 << 20);
  for (let off = 0; off < RAW_FILE_BYTES; off += chunk.length) fs.writeSync(rawFd, chunk, 0, chunk.length, off);
  fs.fsyncSync(rawFd);

  const rows: Row[] = [];
  console.log('');
  console.log('syncForce  groups  batch  inflight      store rec/s  store MB/s        raw rec/s  raw MB/s  ratio  log batches/s  fsync ms store/raw');
  for (const syncForce of [true, false]) {
    for (const batch of BATCHES) {
      const r = raw(batch, syncForce, rawFd);
      const rawRecordsPerSec = r.recordsPerSec;
      const cells: { groups: number; inflight: number }[] = GROUP_COUNTS.map((groups) => ({ groups, inflight: 1 }));
      cells.push({ groups: PIPELINED_GROUPS, inflight: PIPELINE_DEPTH });
      for (const { groups, inflight } of cells) {
        const s = await store(groups, batch, syncForce, inflight);
        const row: Row = {
          groups, batch, syncForce, inflight,
          recordsPerSec: Math.round(s.recordsPerSec),
          mbPerSec: Number((s.recordsPerSec * RECORD_BYTES / 1e6).toFixed(2)),
          rawRecordsPerSec: Math.round(rawRecordsPerSec),
          ratio: Number((s.recordsPerSec / rawRecordsPerSec).toFixed(3)),
          logBatchesPerSec: Math.round(s.logBatchesPerSec),
          fsyncMs: s.fsyncMs === null ? null : Number(s.fsyncMs.toFixed(3)),
          rawFsyncMs: r.fsyncMs === null ? null : Number(r.fsyncMs.toFixed(3)),
        };
        rows.push(row);
        console.log(`${(syncForce ? 'on' : 'off').padEnd(9)}  ${String(groups).padStart(6)}  ${String(batch).padStart(5)}  ${String(inflight).padStart(8)}  `
          + `${fmt(row.recordsPerSec, 15)}  ${fmt2(row.mbPerSec, 10)}  ${fmt(row.rawRecordsPerSec, 15)}  ${fmt2(rawRecordsPerSec * RECORD_BYTES / 1e6, 8)}  `
          + `${row.ratio.toFixed(2).padStart(5)}  ${fmt(row.logBatchesPerSec, 13)}  `
          // syncForce off: the store still syncs each batch in the background, the raw loop never.
          + `${row.fsyncMs === null ? '      –' : row.fsyncMs.toFixed(2).padStart(7)} / ${row.rawFsyncMs === null ? '–' : row.rawFsyncMs.toFixed(2)}`);
      }
    }
  }
  fs.closeSync(rawFd);
  if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
}

await main();
