// Reads V8 CPU profiles (.cpuprofile, as `flotilla bench --cpu-prof DIR` leaves them, one per
// thread) and prints where the time went: self time by function, and total (inclusive) time
// of the functions that matter, per profile. The figures behind docs/benchmarks.md "Profile".
//
//   node dist/bench/profile-top.js DIR|FILE... [--top 25]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseOrExit, parsePositiveInt, type CommandSpec } from '../src/cli/args.js';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface TopRow { name: string; selfMs: number; totalMs: number; selfPct: number; totalPct: number }

function label(f: CallFrame): string {
  const file = f.url === '' ? '' : path.basename(f.url.replace(/^file:\/\//, ''));
  const fn = f.functionName === '' ? '(anonymous)' : f.functionName;
  return file === '' ? fn : `${fn} ${file}:${f.lineNumber + 1}`;
}

/** Self and inclusive time per function label; inclusive counts a label once per sample even when it recurs. */
export function topOf(p: Profile): { rows: TopRow[]; wallMs: number; busyMs: number } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const id = p.samples[i]!;
    const node = byId.get(id)!;
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + dt);
    if (node.callFrame.functionName !== '(idle)' && node.callFrame.functionName !== '(program)') busy += dt;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = label(byId.get(at)!.callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + dt);
    }
  }
  const wallMs = (p.endTime - p.startTime) / 1000;
  const rows = [...self.entries()].map(([name, ms]) => ({
    name, selfMs: ms, totalMs: total.get(name) ?? ms, selfPct: (100 * ms) / wallMs, totalPct: (100 * (total.get(name) ?? ms)) / wallMs,
  }));
  rows.sort((a, b) => b.selfMs - a.selfMs);
  return { rows, wallMs, busyMs: busy };
}

const PROFILE_TOP_SPEC = {
  name: 'node dist/bench/profile-top.js',
  operands: 'DIR|FILE...', operandsMin: 1, operandsMax: 1000,
  summary: 'The functions with the most self time in V8 .cpuprofile files (a directory: every profile in it).',
  options: { top: { type: 'string', value: 'N', help: 'functions to list per profile (default 25)' } },
} as const satisfies CommandSpec;

function main(argv: string[]): void {
  const { parsed, options: top } = parseOrExit(PROFILE_TOP_SPEC, argv, (p) => (p.values.top === undefined ? 25 : parsePositiveInt(p.values.top, '--top')));
  const files: string[] = [];
  for (const operand of parsed.operands) {
    if (fs.statSync(operand).isDirectory()) {
      for (const f of fs.readdirSync(operand).sort()) if (f.endsWith('.cpuprofile')) files.push(path.join(operand, f));
    } else files.push(operand);
  }
  for (const f of files) {
    const { rows, wallMs, busyMs } = topOf(JSON.parse(fs.readFileSync(f, 'utf8')) as Profile);
    console.log(`\n${path.basename(f)}: ${(wallMs / 1000).toFixed(1)} s, busy ${((100 * busyMs) / wallMs).toFixed(1)}% (not idle, not program)`);
    console.log('   self%  total%  function');
    for (const r of rows.slice(0, top)) console.log(`  ${r.selfPct.toFixed(1).padStart(6)}  ${r.totalPct.toFixed(1).padStart(6)}  ${r.name}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1]))) main(process.argv.slice(2));
