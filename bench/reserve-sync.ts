// What syncing the log's reserved space ahead buys (docs/storage.md, "Space reserved ahead"):
// fdatasync latency of a loop of batch writes into a file that grows by 1 MiB steps of zeros,
// in three ways, alternated:
//   next-batch  the zeros are written when a batch would pass them and synced by that batch's
//               own fdatasync (the log before the reservation ran ahead);
//   ahead       the zeros are written half a step early and synced at once, apart from the
//               batches (the log now; here in line, there in the background);
//   allocated   the file is written whole and synced before the loop (the floor: no allocation).
//
//   npx tsc -p . && node dist/bench/reserve-sync.js [--batch-bytes B] [--batches N] [--rounds R]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseOrExit, parsePositiveInt, type CommandSpec } from '../src/cli/args.js';

const SPEC = {
  name: 'node dist/bench/reserve-sync.js',
  summary: 'fdatasync latency of batch writes with the file\'s space reserved as the log does, before and after syncing it ahead.',
  options: {
    'batch-bytes': { type: 'string', value: 'B', help: 'bytes of each batch (default 100,000)' },
    batches: { type: 'string', value: 'N', help: 'batches per run (default 1,000)' },
    rounds: { type: 'string', value: 'R', help: 'alternating rounds (default 2)' },
  },
} as const satisfies CommandSpec;
const { options } = parseOrExit(SPEC, process.argv.slice(2));
const batchBytes = parsePositiveInt(options['batch-bytes'] ?? '100000', '--batch-bytes');
const batches = parsePositiveInt(options.batches ?? '1000', '--batches');
const rounds = parsePositiveInt(options.rounds ?? '2', '--rounds');

const STEP = 1 << 20;
const MODES = ['next-batch', 'ahead', 'allocated'] as const;
type Mode = (typeof MODES)[number];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-reserve-sync-'));
process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const zeros = Buffer.alloc(STEP);
const data = Buffer.alloc(batchBytes, 0x5a);

function run(mode: Mode): number[] {
  const file = path.join(dir, `${mode}.bin`);
  const fd = fs.openSync(file, 'w+');
  let reserved = 0;
  if (mode === 'allocated') {
    while (reserved < batches * batchBytes + STEP) {
      fs.writeSync(fd, zeros, 0, STEP, reserved);
      reserved += STEP;
    }
    fs.fsyncSync(fd);
  }
  const lat: number[] = [];
  let pos = 0;
  for (let i = 0; i < batches; i++) {
    const end = pos + batchBytes;
    if (mode === 'next-batch') {
      while (end > reserved) {
        fs.writeSync(fd, zeros, 0, STEP, reserved);
        reserved += STEP;
      }
    } else if (mode === 'ahead') {
      while (end + STEP / 2 > reserved) {
        fs.writeSync(fd, zeros, 0, STEP, reserved);
        reserved += STEP;
        fs.fdatasyncSync(fd);
      }
    }
    fs.writeSync(fd, data, 0, batchBytes, pos);
    pos = end;
    const t = performance.now();
    fs.fdatasyncSync(fd);
    lat.push(performance.now() - t);
  }
  fs.closeSync(fd);
  fs.unlinkSync(file);
  return lat.sort((a, b) => a - b);
}

const q = (l: number[], p: number): string => l[Math.min(l.length - 1, Math.floor(p * l.length))]!.toFixed(3);
console.log(`fdatasync after each batch of ${batchBytes.toLocaleString('en-US')} B, ${batches.toLocaleString('en-US')} batches a run, in ${os.tmpdir()} (ms)`);
console.log('mode          p50     p90     p99     p99.9   max');
for (let r = 0; r < rounds; r++) {
  for (const m of MODES) {
    const l = run(m);
    console.log(`${m.padEnd(12)} ${q(l, 0.5)}   ${q(l, 0.9)}   ${q(l, 0.99)}   ${q(l, 0.999)}   ${l[l.length - 1]!.toFixed(3)}`);
  }
}
