// The standard benchmark matrix: Flotilla (echo ceiling, Raft across nodes × syncForce × groups,
// linearizable reads, a low-concurrency latency row) and its peers (Redis, etcd), each row run as
// a child process, one after another, under the same load; then a table in docs/benchmarks.md
// and a chart beside it.
//
//   npm run bench:matrix [-- --duration 10 --warmup 3 --only <substring>... --no-peers
//                            --out docs/benchmarks.md --svg docs/benchmarks-matrix.svg --json-dir DIR]
//
// Rows run `flotilla bench ... --json FILE` or `node dist/bench/peers/run.js ... --json FILE`;
// a row succeeds when its child exits 0 having written a BenchResult (bench/result.ts) to FILE.
// A row that fails is reported as failed with the last lines of its output, and the matrix goes
// on. The report rewrites only the part of the Markdown file between the two markers below.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UsageError, parseOrExit, type CommandSpec, type OptionValues } from '../src/cli/args.js';
import { renderMatrixSvg, type ChartRow } from './chart.js';
import { describeMachine, type MachineInfo } from './machine.js';
import type { BenchResult } from './result.js';

// ---- The matrix --------------------------------------------------------------------------------

const VALUE_BYTES = 256;
const KEYS = 100_000;
const DURATION_S_DEFAULT = 10;
const WARMUP_S_DEFAULT = 3;
/** Requests in flight on the throughput rows, the same for every system: 8 × 128 = 1,024. */
const CLIENTS = 8;
const PIPELINE = 128;
/** The latency row: 100 requests in flight, far from saturation. */
const LATENCY_CLIENTS = 4;
const LATENCY_PIPELINE = 25;
const FLOTILLA_NODES = [1, 3];
const FLOTILLA_SYNC_FORCE = [true, false];
const FLOTILLA_GROUPS = [1, 64, 1024];
const TRANSPORT = 'tcp';

/** A row may take this long beyond its warm-up and measured phase (start-up, elections, teardown). */
const ROW_SLACK_S = 120;
/** After SIGTERM to a row's child, SIGKILL if it has not exited by then. */
const KILL_GRACE_MS = 15_000;
/** Pause between rows, so that the previous one's processes, ports and dirty pages settle. */
const SETTLE_MS = 2_000;
/** Output lines of a row kept to explain its failure. */
const TAIL_LINES = 25;

const DOC_DEFAULT = 'docs/benchmarks.md';
const SVG_DEFAULT = 'docs/benchmarks-matrix.svg';

export const MARKER_START = '<!-- bench:matrix:start -->';
export const MARKER_END = '<!-- bench:matrix:end -->';

export type System = 'flotilla' | 'redis' | 'etcd';

export interface RowSpec {
  /** Its label in the table and the chart; --only matches against it. */
  name: string;
  system: System;
  /** Flotilla: "raft" or "echo"; peers: their setting ("appendfsync always", "members 3"). */
  config: string;
  op: 'put' | 'get';
  nodes: number;
  /** Raft groups (Flotilla); 0 for the peers, which have none to choose. */
  groups: number;
  /** Whether a write is fsynced before it is acknowledged (Redis always, etcd: yes). */
  syncForce: boolean;
  clients: number;
  pipeline: number;
  /** The CLI's flags that set this row apart; the common ones are added by commandOf(). */
  flags: string[];
}

function flotillaRow(name: string, mode: 'raft' | 'echo', nodes: number, groups: number, syncForce: boolean,
  op: 'put' | 'get', clients: number, pipeline: number): RowSpec {
  return {
    name, system: 'flotilla', config: mode, op, nodes, groups, syncForce, clients, pipeline,
    flags: [
      '--mode', mode, '--nodes', String(nodes), '--groups', String(groups), '--sync-force', String(syncForce), '--transport', TRANSPORT,
      // The matrix has its own echo row: no second, per-row echo run (which would double the time).
      ...(mode === 'raft' ? ['--echo-baseline', '0'] : []),
    ],
  };
}

function peerRow(name: string, system: 'redis' | 'etcd', config: string, nodes: number, syncForce: boolean, op: 'put' | 'get', flags: string[]): RowSpec {
  return { name, system, config, op, nodes, groups: 0, syncForce, clients: CLIENTS, pipeline: PIPELINE, flags: ['--system', system, ...flags] };
}

const syncWord = (syncForce: boolean): string => (syncForce ? 'sync' : 'nosync');

/** Every row of the matrix, in the order they run and are reported. */
export function matrixRows(): RowSpec[] {
  const rows: RowSpec[] = [];
  // The ceiling: the same front end and client, replies without Raft or storage.
  rows.push(flotillaRow('flotilla echo', 'echo', 1, 1, false, 'put', CLIENTS, PIPELINE));
  for (const nodes of FLOTILLA_NODES) {
    for (const syncForce of FLOTILLA_SYNC_FORCE) {
      for (const groups of FLOTILLA_GROUPS) {
        rows.push(flotillaRow(`flotilla ${nodes}n ${syncWord(syncForce)} ${groups}g`, 'raft', nodes, groups, syncForce, 'put', CLIENTS, PIPELINE));
      }
    }
  }
  rows.push(flotillaRow('flotilla 3n sync 1g get', 'raft', 3, 1, true, 'get', CLIENTS, PIPELINE));
  rows.push(flotillaRow(`flotilla 3n sync 1g ${LATENCY_CLIENTS}×${LATENCY_PIPELINE}`, 'raft', 3, 1, true, 'put', LATENCY_CLIENTS, LATENCY_PIPELINE));
  rows.push(peerRow('redis always', 'redis', 'appendfsync always', 1, true, 'put', ['--appendfsync', 'always']));
  rows.push(peerRow('redis everysec', 'redis', 'appendfsync everysec', 1, false, 'put', ['--appendfsync', 'everysec']));
  rows.push(peerRow('redis off', 'redis', 'appendfsync off', 1, false, 'put', ['--appendfsync', 'off']));
  rows.push(peerRow('etcd 1m', 'etcd', 'members 1', 1, true, 'put', ['--members', '1']));
  rows.push(peerRow('etcd 3m', 'etcd', 'members 3', 3, true, 'put', ['--members', '3']));
  rows.push(peerRow('etcd 3m get', 'etcd', 'members 3', 3, true, 'get', ['--members', '3']));
  return rows;
}

/** The rows that --only (any of the substrings, when given) and --no-peers leave. */
export function selectRows(rows: readonly RowSpec[], only: readonly string[], peers: boolean): RowSpec[] {
  return rows.filter((r) => (peers || r.system === 'flotilla') && (only.length === 0 || only.some((s) => r.name.includes(s))));
}

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The two CLIs, as compiled beside this file (dist/bench/). */
export const FLOTILLA_CLI = path.resolve(BENCH_DIR, '../src/cli/flotilla.js');
export const PEERS_CLI = path.resolve(BENCH_DIR, 'peers/run.js');

/** The script and arguments (after `node`) that run one row and leave its record in jsonFile. */
export function commandOf(row: RowSpec, o: { durationS: number; warmupS: number; jsonFile: string }): { script: string; args: string[] } {
  const common = [
    '--clients', String(row.clients), '--pipeline', String(row.pipeline), '--value-bytes', String(VALUE_BYTES),
    '--keys', String(KEYS), '--op', row.op, '--duration', String(o.durationS), '--warmup', String(o.warmupS), '--json', o.jsonFile,
  ];
  return row.system === 'flotilla'
    ? { script: FLOTILLA_CLI, args: ['bench', ...row.flags, ...common] }
    : { script: PEERS_CLI, args: [...row.flags, ...common] };
}

/** A rough guess of a row's wall time: warm-up, measured phase, and start-up of its servers. */
export function estimateRowS(row: RowSpec, durationS: number, warmupS: number): number {
  let startS = 3;
  if (row.system === 'flotilla') startS = 4 + (row.nodes > 1 ? 2 : 0) + (row.groups >= 1024 ? 8 : row.groups >= 64 ? 1 : 0);
  else if (row.system === 'etcd') startS = row.nodes > 1 ? 6 : 4;
  // A get row first writes every key (etcd: some 20 s for 100,000 of them here).
  if (row.op === 'get') startS += row.system === 'etcd' ? 25 : row.system === 'flotilla' ? 10 : 3;
  return warmupS + durationS + startS + 2 + SETTLE_MS / 1000;
}

// ---- Results, ratios, the report (pure) --------------------------------------------------------

export interface RowOutcome {
  row: RowSpec;
  /** The child's record; absent when the row failed. */
  result?: BenchResult;
  /** Why the row failed: how the child ended and the last lines it printed. */
  error?: string;
  wallS: number;
}

/** Reads a record back, checking the fields the report uses; throws on anything else. */
export function parseRecord(text: string): BenchResult {
  const r = JSON.parse(text) as Partial<BenchResult> | null;
  if (r === null || typeof r !== 'object') throw new Error('the record is not a JSON object');
  for (const k of ['opsPerSec', 'ops', 'errors', 'durationS'] as const) {
    if (typeof r[k] !== 'number' || !Number.isFinite(r[k])) throw new Error(`the record's ${k} is not a number`);
  }
  const l = r.latencyMs;
  if (l === undefined || l === null || typeof l !== 'object') throw new Error("the record has no latencyMs");
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) {
    if (typeof l[k] !== 'number') throw new Error(`the record's latencyMs.${k} is not a number`);
  }
  if (r.cpu !== undefined && (r.cpu === null || typeof r.cpu !== 'object')) throw new Error("the record's cpu is not an object");
  return { cpu: {}, ...r } as BenchResult;
}

export interface RowRatios {
  /** Row ops/s ÷ the echo row's, for Flotilla rows at the echo row's clients × pipeline. */
  echo?: number;
  /** Row ops/s ÷ the fastest peer's with the same durability, op and clients × pipeline. */
  peer?: { ratio: number; name: string };
  /** The same, among peers with as many nodes (members) as the row: replication against replication. */
  peerSameNodes?: { ratio: number; name: string };
}

const sameLoad = (a: RowSpec, b: RowSpec): boolean => a.clients === b.clients && a.pipeline === b.pipeline;
const okOps = (o: RowOutcome): number | undefined => (o.result !== undefined && o.result.opsPerSec > 0 ? o.result.opsPerSec : undefined);

/** The two ratios of each outcome (same order); a ratio is absent when its reference did not run. */
export function ratiosOf(outcomes: readonly RowOutcome[]): RowRatios[] {
  const echo = outcomes.find((o) => o.row.system === 'flotilla' && o.row.config === 'echo' && okOps(o) !== undefined);
  return outcomes.map((o) => {
    const ops = okOps(o);
    const ratios: RowRatios = {};
    if (ops === undefined || o.row.system !== 'flotilla') return ratios;
    if (echo !== undefined && sameLoad(echo.row, o.row)) ratios.echo = ops / okOps(echo)!;
    // Echo stores nothing, so it has no durability to match a peer on.
    if (o.row.config === 'echo') return ratios;
    const bestPeer = (sameNodes: boolean): RowOutcome | undefined => {
      let best: RowOutcome | undefined;
      for (const p of outcomes) {
        if (p.row.system === 'flotilla' || okOps(p) === undefined) continue;
        if (p.row.syncForce !== o.row.syncForce || p.row.op !== o.row.op || !sameLoad(p.row, o.row)) continue;
        if (sameNodes && p.row.nodes !== o.row.nodes) continue;
        if (best === undefined || okOps(p)! > okOps(best)!) best = p;
      }
      return best;
    };
    const best = bestPeer(false);
    if (best !== undefined) ratios.peer = { ratio: ops / okOps(best)!, name: best.row.name };
    const same = bestPeer(true);
    if (same !== undefined) ratios.peerSameNodes = { ratio: ops / okOps(same)!, name: same.row.name };
    return ratios;
  });
}

/** 1234567 → "1,234,567". */
export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds with about three significant figures: 0.412, 4.12, 41.2, 412. */
export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  return ms.toFixed(3);
}

export function formatRatio(r: number): string {
  return r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

/** CPU of the servers (every process but the client, summed) and of the client, as % of one core. */
export function cpuSplit(result: BenchResult): { servers?: number; client?: number } {
  let servers: number | undefined;
  let client: number | undefined;
  for (const p of Object.values(result.cpu ?? {})) {
    if (typeof p?.percent !== 'number') continue;
    if (p.name.startsWith('client')) client = (client ?? 0) + p.percent;
    else servers = (servers ?? 0) + p.percent;
  }
  return { servers, client };
}

const DASH = '—';
const pct = (x: number | undefined): string => (x === undefined ? DASH : `${Math.round(x)}%`);

/** The Markdown table: a header and one line per outcome, failed rows marked as such. */
export function buildTable(outcomes: readonly RowOutcome[]): string {
  const ratios = ratiosOf(outcomes);
  const head = ['row', 'system', 'config', 'op', 'nodes', 'groups', 'syncForce', 'clients×pipeline', 'ops/s',
    'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'CPU servers', 'CPU client', '×echo', '×peer', '×peer, same nodes'];
  const align = ['---', '---', '---', '---', '--:', '--:', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '---', '---'];
  const lines = [`| ${head.join(' | ')} |`, `|${align.join('|')}|`];
  outcomes.forEach((o, i) => {
    const w = o.row;
    const fixed = [w.name, w.system, w.config, w.op, String(w.nodes), w.groups > 0 && w.config !== 'echo' ? String(w.groups) : DASH,
      w.config === 'echo' ? DASH : w.syncForce ? 'true' : 'false', `${w.clients}×${w.pipeline}`];
    let figures: string[];
    if (o.result === undefined) {
      figures = ['**failed**', ...new Array<string>(11).fill(DASH)];
    } else {
      const r = o.result;
      const l = r.latencyMs;
      const cpu = cpuSplit(r);
      const { echo, peer, peerSameNodes } = ratios[i]!;
      figures = [formatInt(r.opsPerSec), formatMs(l.p50), formatMs(l.p90), formatMs(l.p99), formatMs(l.p999), formatMs(l.max),
        formatInt(r.errors), pct(cpu.servers), pct(cpu.client),
        echo === undefined ? DASH : formatRatio(echo),
        peer === undefined ? DASH : `${formatRatio(peer.ratio)} (${peer.name})`,
        peerSameNodes === undefined ? DASH : `${formatRatio(peerSameNodes.ratio)} (${peerSameNodes.name})`];
    }
    lines.push(`| ${[...fixed, ...figures].join(' | ')} |`);
  });
  return lines.join('\n');
}

/** The failed rows, each with how its child ended and its last lines; '' when none failed. */
export function buildFailures(outcomes: readonly RowOutcome[]): string {
  const failed = outcomes.filter((o) => o.result === undefined);
  if (failed.length === 0) return '';
  const items = failed.map((o) => {
    const text = (o.error ?? 'no record').replace(/```/g, "'''").trimEnd();
    const [first, ...rest] = text.split('\n');
    const block = rest.length === 0 ? '' : `\n\n  \`\`\`\n${rest.map((l) => `  ${l}`).join('\n')}\n  \`\`\``;
    return `- \`${o.row.name}\`: ${first}${block}`;
  });
  return `Failed rows (the last lines each printed):\n\n${items.join('\n')}`;
}

export interface SectionInput {
  /** When the matrix began (ISO). */
  startedAt: string;
  wallS: number;
  /** How it was run, as a reader would type it. */
  command: string;
  machine: MachineInfo;
  durationS: number;
  warmupS: number;
  outcomes: readonly RowOutcome[];
  /** The chart, relative to the Markdown file; absent, no image is linked. */
  svgHref?: string;
}

function machineLines(m: MachineInfo): string[] {
  const [l1, l5, l15] = m.loadAvg.map((x) => x.toFixed(2));
  return [
    `- CPU: ${m.cores} cores (\`os.availableParallelism()\`), ${m.cpuModel}; memory ${m.memoryGiB} GiB.`,
    `- Software: ${m.os}, ${m.kernel}, Node ${m.node}.`,
    `- Disk: the temp dir \`${m.tmpDir}\` (\`os.tmpdir()\`, where the benchmark clusters keep their data) is ${m.filesystem} on \`${m.device}\` (\`df -PT\`); `
      + `${m.fsync.samples} × (append ${m.fsync.bytes / 1024} KiB + \`fdatasync\`) there took p50 ${formatMs(m.fsync.p50Ms)} ms, `
      + `p99 ${formatMs(m.fsync.p99Ms)} ms, max ${formatMs(m.fsync.maxMs)} ms.`,
    `- Load average at start: ${l1} / ${l5} / ${l15} (1 / 5 / 15 min).`,
  ];
}

/** Everything between the markers (the markers excluded). */
export function buildSection(s: SectionInput): string {
  const failures = buildFailures(s.outcomes);
  const ok = s.outcomes.filter((o) => o.result !== undefined).length;
  const parts = [
    '## Standard matrix',
    'Generated by `npm run bench:matrix` (`bench/matrix.ts`); everything between the `bench:matrix` markers is rewritten on each run.',
    `Run ${s.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${Math.round(s.wallS)} s in all; ${ok} of ${s.outcomes.length} rows succeeded. Command:\n\n\`\`\`\n${s.command}\n\`\`\``,
    ['Machine:', '', ...machineLines(s.machine)].join('\n'),
    `Load: every row is one closed loop (\`runLoad\` in \`bench/load.ts\`): \`clients\` connections each keep \`pipeline\` requests in flight, `
      + `and a reply is at once replaced by the next request on its slot; a latency is a reply timed against its own send. `
      + `Coordinated omission is not corrected: a server that stalls also stalls the sends, so the percentiles are the service times of `
      + `requests actually sent, lower bounds of what an open-loop client would see under saturation. The throughput rows keep `
      + `${CLIENTS} × ${PIPELINE} = ${formatInt(CLIENTS * PIPELINE)} requests in flight on every system; the latency row `
      + `${LATENCY_CLIENTS} × ${LATENCY_PIPELINE}. Values of ${VALUE_BYTES} bytes, keys drawn uniformly from ${formatInt(KEYS)}, `
      + `${s.warmupS} s of warm-up then ${s.durationS} s measured per row, one row at a time, servers and client on this one machine `
      + `(so they share its cores: CPU is a percentage of one core, servers summed over their processes).`,
    buildTable(s.outcomes),
    [
      '- **×echo** = the row\'s ops/s ÷ the `flotilla echo` row\'s (the same front end, transport and client, replying without Raft or '
        + 'storage): the share of the ceiling left once replication and the log are in the path. Flotilla rows with the echo row\'s clients × pipeline only.',
      '- **×peer** = the row\'s ops/s ÷ the fastest peer row\'s (named) with the same durability, the same op and the same clients × pipeline, '
        + 'whatever its replication. Same durability: syncForce true ↔ Redis `appendfsync always` and etcd (which fsyncs its log before it acknowledges); '
        + 'syncForce false ↔ Redis `appendfsync everysec` and `off`. Above 1, Flotilla is faster.',
      '- **×peer, same nodes** = the same, among the peers run with as many nodes as the row (3 nodes: etcd with 3 members; 1 node: Redis and etcd with 1): replication against replication.',
    ].join('\n'),
  ];
  if (failures !== '') parts.push(failures);
  if (s.svgHref !== undefined) parts.push(`![Throughput and p99 latency of each row of the matrix](${s.svgHref})`);
  return parts.join('\n\n');
}

/**
 * The document with `section` between the markers: in place of what was there, or, with no
 * markers yet, after the first paragraph that is not a heading (else at the end). Everything
 * outside the markers is kept byte for byte.
 */
export function spliceSection(doc: string, section: string): string {
  const block = `${MARKER_START}\n${section.trimEnd()}\n${MARKER_END}`;
  const start = doc.indexOf(MARKER_START);
  const end = doc.indexOf(MARKER_END);
  if (start >= 0 || end >= 0) {
    if (start < 0 || end < start || doc.indexOf(MARKER_START, start + 1) >= 0 || doc.indexOf(MARKER_END, end + 1) >= 0) {
      throw new Error(`expected one ${MARKER_START} followed by one ${MARKER_END}`);
    }
    return doc.slice(0, start) + block + doc.slice(end + MARKER_END.length);
  }
  // Paragraphs are separated by blank lines; find the end of the first that is not a heading.
  let offset = 0;
  let inParagraph = false;
  let isText = false;
  while (offset < doc.length) {
    const nl = doc.indexOf('\n', offset);
    const line = doc.slice(offset, nl < 0 ? doc.length : nl);
    if (line.trim() === '') {
      if (inParagraph && isText) return `${doc.slice(0, offset)}\n${block}\n${doc.slice(offset)}`;
      inParagraph = false;
    } else if (!inParagraph) {
      inParagraph = true;
      isText = !line.startsWith('#');
    }
    offset = nl < 0 ? doc.length : nl + 1;
  }
  // No blank line after the first text paragraph (or none at all): at the end.
  const sep = doc === '' ? '' : doc.endsWith('\n\n') ? '' : doc.endsWith('\n') ? '\n' : '\n\n';
  return `${doc}${sep}${block}\n`;
}

/** The chart's rows: label, system, and the two figures where the row succeeded. */
export function chartRows(outcomes: readonly RowOutcome[]): ChartRow[] {
  return outcomes.map((o) => ({
    label: o.row.name,
    system: o.row.system,
    opsPerSec: o.result?.opsPerSec,
    p99Ms: o.result?.latencyMs.p99,
    failed: o.result === undefined,
  }));
}

// ---- Running the rows --------------------------------------------------------------------------

interface Flags {
  durationS: number;
  warmupS: number;
  only: string[];
  peers: boolean;
  out: string;
  svg: string;
  jsonDir?: string;
}

export const MATRIX_SPEC = {
  name: 'npm run bench:matrix --',
  summary: `The standard matrix, row by row: Flotilla echo and raft rows, then Redis and etcd (installed
from Debian packages: needs root and apt). Writes the table into the Markdown file and the chart.`,
  options: {
    duration: { type: 'string', value: 'S', help: `measured seconds per row (default ${DURATION_S_DEFAULT})` },
    warmup: { type: 'string', value: 'S', help: `warm-up seconds per row (default ${WARMUP_S_DEFAULT})` },
    only: { type: 'string', value: 'S', multiple: true, help: 'run only the rows whose name contains S (repeatable: any of them)' },
    'no-peers': { type: 'boolean', help: 'skip the Redis and etcd rows' },
    out: { type: 'string', value: 'FILE', help: `Markdown file whose generated section is rewritten (default ${DOC_DEFAULT})` },
    svg: { type: 'string', value: 'FILE', help: `chart to write (default ${SVG_DEFAULT})` },
    'json-dir': { type: 'string', value: 'DIR', help: 'keep each row\'s raw record (DIR/<row>.json) and machine.json' },
  },
} as const satisfies CommandSpec;

function matrixFlags(values: OptionValues<typeof MATRIX_SPEC.options>): Flags {
  const seconds = (v: string | undefined, dflt: number, min: number, name: string): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}, not ${JSON.stringify(v)}`);
    return n;
  };
  return {
    durationS: seconds(values.duration, DURATION_S_DEFAULT, 1, 'duration'),
    warmupS: seconds(values.warmup, WARMUP_S_DEFAULT, 0, 'warmup'),
    only: values.only ?? [],
    peers: values['no-peers'] !== true,
    out: values.out ?? DOC_DEFAULT,
    svg: values.svg ?? SVG_DEFAULT,
    jsonDir: values['json-dir'],
  };
}

const slug = (name: string): string => name.replace(/×/g, 'x').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');

function clock(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${Math.round(s - m * 60)} s` : `${Math.round(s)} s`;
}

/** The child running the current row, so that a signal to us stops it (and only it). */
let current: ChildProcess | undefined;
let interrupted = false;

function stopChild(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, KILL_GRACE_MS);
  t.unref();
}

async function runRow(row: RowSpec, f: Flags, jsonFile: string): Promise<RowOutcome> {
  const t0 = performance.now();
  const wallS = (): number => (performance.now() - t0) / 1000;
  const { script, args } = commandOf(row, { durationS: f.durationS, warmupS: f.warmupS, jsonFile });
  if (!fs.existsSync(script)) return { row, error: `not built: ${path.relative(process.cwd(), script)} does not exist`, wallS: wallS() };
  fs.rmSync(jsonFile, { force: true });

  const tail: string[] = [];
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  current = child;
  const forward = (stream: NodeJS.ReadableStream): void => {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      process.stdout.write(`  ${row.name} | ${line}\n`);
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    });
  };
  forward(child.stdout!);
  forward(child.stderr!);

  const limitS = f.durationS + f.warmupS + ROW_SLACK_S;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.stdout.write(`  ${row.name} | (no end after ${limitS} s: stopping pid ${child.pid})\n`);
    stopChild(child);
  }, limitS * 1000);
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once('error', (e) => resolve({ code: null, signal: null, spawnError: e }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  current = undefined;

  const lastLines = tail.length > 0 ? `\n${tail.join('\n')}` : '';
  if (ended.spawnError !== undefined) return { row, error: `could not start: ${ended.spawnError.message}`, wallS: wallS() };
  if (timedOut) return { row, error: `timed out after ${limitS} s and was stopped${lastLines}`, wallS: wallS() };
  if (ended.code !== 0) {
    const how = ended.signal !== null ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
    return { row, error: `${how}${lastLines}`, wallS: wallS() };
  }
  try {
    return { row, result: parseRecord(fs.readFileSync(jsonFile, 'utf8')), wallS: wallS() };
  } catch (e) {
    return { row, error: `exited 0 but left no usable record in ${jsonFile}: ${(e as Error).message}${lastLines}`, wallS: wallS() };
  }
}

function commandLine(argv: readonly string[]): string {
  const quoted = argv.map((a) => (/^[\w./:=,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`));
  return quoted.length === 0 ? 'npm run bench:matrix' : `npm run bench:matrix -- ${quoted.join(' ')}`;
}

async function main(): Promise<number> {
  const { options: f } = parseOrExit(MATRIX_SPEC, process.argv.slice(2), (p) => matrixFlags(p.values));
  const rows = selectRows(matrixRows(), f.only, f.peers);
  if (rows.length === 0) {
    process.stderr.write(`no row matches ${f.only.map((s) => JSON.stringify(s)).join(' or ')}\n`);
    return 2;
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      if (current !== undefined) current.kill('SIGKILL');
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping the current row; no report will be written (again to force)\n`);
    if (current !== undefined) stopChild(current);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  process.stdout.write('measuring the machine (load average, fdatasync in the temp dir)...\n');
  const machine = describeMachine();
  process.stdout.write(`  ${machine.cores} cores, ${machine.cpuModel}; ${machine.filesystem} on ${machine.device}, `
    + `fdatasync p50 ${formatMs(machine.fsync.p50Ms)} ms p99 ${formatMs(machine.fsync.p99Ms)} ms; load ${machine.loadAvg.map((x) => x.toFixed(2)).join(' ')}\n`);

  const estimateS = rows.reduce((s, r) => s + estimateRowS(r, f.durationS, f.warmupS), 0);
  process.stdout.write(`${rows.length} rows, ${f.warmupS} s warm-up + ${f.durationS} s each: about ${clock(estimateS)} with start-up\n`);

  const jsonDir = f.jsonDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-matrix-'));
  fs.mkdirSync(jsonDir, { recursive: true });
  if (f.jsonDir !== undefined) fs.writeFileSync(path.join(jsonDir, 'machine.json'), `${JSON.stringify(machine, null, 2)}\n`);

  const outcomes: RowOutcome[] = [];
  try {
    for (const [i, row] of rows.entries()) {
      if (interrupted) break;
      if (i > 0) await new Promise((r) => setTimeout(r, SETTLE_MS));
      process.stdout.write(`[${i + 1}/${rows.length}] ${row.name} (${row.clients}×${row.pipeline}, ${row.op})\n`);
      const o = await runRow(row, f, path.join(jsonDir, `${slug(row.name)}.json`));
      outcomes.push(o);
      const total = clock((performance.now() - t0) / 1000);
      if (o.result !== undefined) {
        process.stdout.write(`[${i + 1}/${rows.length}] ${row.name}: ${formatInt(o.result.opsPerSec)} ops/s, p50 ${formatMs(o.result.latencyMs.p50)} ms, `
          + `p99 ${formatMs(o.result.latencyMs.p99)} ms, ${o.result.errors} errors (row ${clock(o.wallS)}, total ${total})\n`);
      } else {
        process.stdout.write(`[${i + 1}/${rows.length}] ${row.name}: FAILED, ${o.error!.split('\n')[0]} (row ${clock(o.wallS)}, total ${total})\n`);
      }
    }
  } finally {
    if (f.jsonDir === undefined) fs.rmSync(jsonDir, { recursive: true, force: true });
  }
  if (interrupted) return 130;

  const wallS = (performance.now() - t0) / 1000;
  const svgHref = path.relative(path.dirname(path.resolve(f.out)), path.resolve(f.svg)).split(path.sep).join('/');
  const section = buildSection({
    startedAt, wallS, command: commandLine(process.argv.slice(2)), machine, durationS: f.durationS, warmupS: f.warmupS, outcomes, svgHref,
  });
  const doc = fs.existsSync(f.out) ? fs.readFileSync(f.out, 'utf8') : '# Benchmarks\n';
  fs.mkdirSync(path.dirname(path.resolve(f.out)), { recursive: true });
  fs.writeFileSync(f.out, spliceSection(doc, section));
  const svg = renderMatrixSvg(chartRows(outcomes), {
    title: 'Flotilla benchmark matrix',
    subtitle: `${startedAt.slice(0, 10)} · ${machine.cores} cores, ${machine.cpuModel} · closed loop, ${CLIENTS}×${PIPELINE} in flight `
      + `(latency row ${LATENCY_CLIENTS}×${LATENCY_PIPELINE}) · ${VALUE_BYTES} B values · ${f.durationS} s per row`,
  });
  fs.mkdirSync(path.dirname(path.resolve(f.svg)), { recursive: true });
  fs.writeFileSync(f.svg, svg);

  const failed = outcomes.filter((o) => o.result === undefined).length;
  process.stdout.write(`wrote ${f.out} and ${f.svg} in ${clock(wallS)}; ${failed === 0 ? 'every row succeeded' : `${failed} of ${outcomes.length} rows failed`}\n`);
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
