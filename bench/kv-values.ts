// CPU per put of the KV state machine, and of the ways it could hold a value's bytes: why
// values are byte strings (kv-types.ts ByteString) and not Uint8Array copies.
//
//   npx tsc -p . && node dist/bench/kv-values.js [--puts N] [--keys K] [--value-bytes B]
//
// Each row runs in a process of its own (a fresh heap) and applies N puts of B-byte values to
// K keys in a fixed pseudo-random order, then prints CPU (user + system of the whole process,
// the GC's helper threads included) per put and the RSS after. "apply" feeds KvStateMachine
// encoded put commands (encoded before the clock starts, 65,536 of them, reused in turn); the
// other rows store the same bytes in a Map<string, …> directly: the representation alone.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseOrExit, parsePositiveInt, type CommandSpec } from '../src/cli/args.js';
import { encodeCommand } from '../src/kv/kv-command.js';
import { KvStateMachine } from '../src/kv/kv-state-machine.js';
import { IMAGE_STEP_BYTES } from '../src/shard/snapshots.js';

const ROWS = ['apply', 'uint8array', 'bytestring'] as const;
type Row = (typeof ROWS)[number];
const ROW_TITLES: Record<Row, string> = {
  apply: 'KvStateMachine.applyEncoded',
  uint8array: 'Map of Uint8Array copies',
  bytestring: 'Map of byte strings',
};
const COMMANDS_ENCODED = 1 << 16;

const SPEC = {
  name: 'node dist/bench/kv-values.js',
  summary: 'CPU per put of the KV state machine and of two ways to hold value bytes, each row in a fresh process.',
  options: {
    puts: { type: 'string', value: 'N', help: 'puts per row (default 1,000,000)' },
    keys: { type: 'string', value: 'K', help: 'distinct keys (default 100,000)' },
    'value-bytes': { type: 'string', value: 'B', help: 'bytes of each value (default 256)' },
    row: { type: 'string', value: 'ROW', help: `run one row in this process: ${ROWS.join(', ')}` },
  },
} as const satisfies CommandSpec;

const { options } = parseOrExit(SPEC, process.argv.slice(2), (p) => {
  const row = p.values.row;
  if (row !== undefined && !(ROWS as readonly string[]).includes(row)) throw new Error(`--row must be one of ${ROWS.join(', ')}`);
  return {
    puts: p.values.puts === undefined ? 1_000_000 : parsePositiveInt(p.values.puts, '--puts'),
    keys: p.values.keys === undefined ? 100_000 : parsePositiveInt(p.values.keys, '--keys'),
    valueBytes: p.values['value-bytes'] === undefined ? 256 : parsePositiveInt(p.values['value-bytes'], '--value-bytes'),
    row: row as Row | undefined,
  };
});

function keyOrder(n: number, keyCount: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % keyCount;
  }
  return out;
}

function runRow(row: Row): void {
  const { puts, keys: keyCount, valueBytes } = options;
  const order = keyOrder(puts, keyCount);
  const keys = Array.from({ length: keyCount }, (_, i) => `key:${i}`);
  // 64 distinct values, so that nothing can keep one shared copy.
  const values = Array.from({ length: 64 }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(valueBytes));
  const source = Buffer.from(values.join(''), 'utf8');
  const commands = row === 'apply'
    ? Array.from({ length: Math.min(COMMANDS_ENCODED, puts) }, (_, i) => encodeCommand({ op: 'put', key: keys[order[i]!]!, value: values[i & 63]! }))
    : [];
  const t0 = process.cpuUsage();
  let kept: unknown;
  let imageLine = '';
  let putsCpu: NodeJS.CpuUsage | null = null;
  if (row === 'apply') {
    const kv = new KvStateMachine();
    for (let i = 0; i < puts; i++) kv.applyEncoded(commands[i % commands.length]!);
    kept = kv;
    putsCpu = process.cpuUsage(t0);
    // And one image of the state, as a snapshot makes it (in steps of IMAGE_STEP_BYTES).
    const i0 = process.cpuUsage();
    const steps = kv.serializeInSteps();
    let image: Uint8Array | null = null;
    while ((image = steps.step(IMAGE_STEP_BYTES)) === null);
    const ic = process.cpuUsage(i0);
    imageLine = `; an image of its ${kv.size.toLocaleString('en-US')} keys (${(image.length / (1 << 20)).toFixed(1)} MiB): ${((ic.user + ic.system) / 1000).toFixed(1)} ms CPU`;
  } else if (row === 'uint8array') {
    const m = new Map<string, Uint8Array>();
    for (let i = 0; i < puts; i++) {
      const at = (i & 63) * valueBytes;
      m.set(keys[order[i]!]!, new Uint8Array(source.subarray(at, at + valueBytes)));
    }
    kept = m;
  } else {
    const m = new Map<string, string>();
    for (let i = 0; i < puts; i++) {
      const at = (i & 63) * valueBytes;
      m.set(keys[order[i]!]!, source.toString('latin1', at, at + valueBytes));
    }
    kept = m;
  }
  const cpu = putsCpu ?? process.cpuUsage(t0);
  if (imageLine !== '') console.log(`  (${row}${imageLine})`);
  const ns = ((cpu.user + cpu.system) * 1000) / puts;
  const rss = process.memoryUsage().rss / (1 << 20);
  console.log(`  ${ROW_TITLES[row].padEnd(30)} ${ns.toFixed(0).padStart(6)} ns CPU per put   RSS ${rss.toFixed(0)} MiB${kept === null ? '' : ''}`);
}

if (options.row !== undefined) {
  runRow(options.row);
} else {
  const { puts, keys, valueBytes } = options;
  console.log(`${puts.toLocaleString('en-US')} puts of ${valueBytes} B values over ${keys.toLocaleString('en-US')} keys, Node ${process.version}`);
  const self = fileURLToPath(import.meta.url);
  for (const row of ROWS) {
    const r = spawnSync(process.execPath, [self, '--row', row, '--puts', String(puts), '--keys', String(keys), '--value-bytes', String(valueBytes)], { stdio: 'inherit' });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
