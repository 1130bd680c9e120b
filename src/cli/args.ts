// The one command-line parser of Flotilla's programs: the `flotilla` CLI, the benchmarks and
// the simulator. node:util.parseArgs does the splitting; this file adds what every program
// needs on top: typed options declared once, usage errors with a stable code (USAGE, exit 2)
// and a message that names the flag, a flag given twice refused, help generated from the
// declarations, and `--dry-run`, which checks a command line and prints what it would run
// (the docs test uses it on commands that would start long-running things).
import { parseArgs } from 'node:util';

/** Exit code of a usage or configuration error (0 done, 1 the operation failed). */
export const EXIT_USAGE = 2;

/** A mistake in how the command was called; the program prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** One line for the help. */
  help: string;
  /** What the value looks like in the help (`--servers H:P,...`); string options only. */
  value?: string;
  short?: string;
  /** May be given more than once (string options): the values come as a list. */
  multiple?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** Parsed values by flag name: strings for string options, true for a switch given, absent otherwise. */
export type OptionValues<O extends OptionSpecs> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K] extends { multiple: true } ? string[] : string;
};

export interface CommandSpec<O extends OptionSpecs = OptionSpecs> {
  /** The command as typed, e.g. `flotilla kv get` or `node dist/bench/idle.js`. */
  name: string;
  /** The operands in the usage line, e.g. `KEY VALUE`. */
  operands?: string;
  operandsMin?: number;
  operandsMax?: number;
  /** What the command does: the help's paragraph. */
  summary: string;
  options: O;
  /** Text after the flags in the help (defaults, examples). */
  notes?: string;
}

export interface ParsedCommand<O extends OptionSpecs> {
  /** --help or -h was given: print helpText(spec) and do nothing else. */
  help: boolean;
  /** --dry-run was given: check everything, run nothing. */
  dryRun: boolean;
  values: OptionValues<O>;
  operands: string[];
}

/** Options every command takes. */
export const COMMON_OPTIONS = {
  'dry-run': { type: 'boolean', help: 'check the command line, print what would run (JSON) and exit 0' },
  help: { type: 'boolean', short: 'h', help: 'print this help and exit' },
} as const satisfies OptionSpecs;

/**
 * Parses argv (the words after the command's name) against the spec. `--help` anywhere before
 * `--` wins over every other problem, so a half-typed command still gets its help. Throws
 * UsageError for an unknown flag (with "did you mean"), a missing value, a value on a switch,
 * a flag given twice, or the wrong number of operands. `--` ends the flags.
 */
export function parseCommand<O extends OptionSpecs>(spec: CommandSpec<O>, argv: readonly string[]): ParsedCommand<O> {
  const end = argv.indexOf('--');
  const flagWords = end < 0 ? argv : argv.slice(0, end);
  if (flagWords.includes('--help') || flagWords.includes('-h')) return { help: true, dryRun: false, values: {}, operands: [] };

  const all: OptionSpecs = { ...spec.options, ...COMMON_OPTIONS };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(all)) {
    options[name] = { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}), ...(o.multiple === true ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    throw usageFromNode(spec, all, e);
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name) && all[t.name]?.multiple !== true) throw new UsageError(`${spec.name}: flag --${t.name} is given twice`);
    seen.add(t.name);
  }
  const operands = parsed.positionals;
  const min = spec.operandsMin ?? 0;
  const max = spec.operandsMax ?? 0;
  if (operands.length < min || operands.length > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    const what = spec.operands === undefined ? '' : ` (${spec.operands})`;
    if (max === 0) throw new UsageError(`${spec.name} takes no operand, got ${JSON.stringify(operands[0])}`);
    throw new UsageError(`${spec.name} takes ${want} operand(s)${what}, got ${operands.length}`);
  }
  const values = { ...parsed.values } as Record<string, unknown>;
  const dryRun = values['dry-run'] === true;
  delete values['dry-run'];
  delete values['help'];
  return { help: false, dryRun, values: values as OptionValues<O>, operands };
}

/** node:util's parse errors, said in our words with the flag's name and what the command takes. */
function usageFromNode(spec: CommandSpec, all: OptionSpecs, e: unknown): UsageError {
  const err = e as { code?: string; message?: string };
  const message = err.message ?? String(e);
  const flag = /'(-{1,2}[^' ]+)/.exec(message)?.[1] ?? '';
  const name = flag.replace(/^-+/, '').replace(/=.*$/, '');
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const known = Object.keys(all);
      return new UsageError(`${spec.name}: unknown flag ${flag}${suggest(name, known)} (flags: ${known.map((k) => `--${k}`).join(', ')})`);
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (all[name]?.type === 'boolean') return new UsageError(`${spec.name}: flag --${name} is a switch and takes no value`);
      return new UsageError(`${spec.name}: flag --${name} needs a value${/ambiguous/.test(message) ? ` (for one that starts with "-", write --${name}=VALUE)` : ''}`);
    default:
      return new UsageError(`${spec.name}: ${message}`);
  }
}

/** The help of one command: usage line, summary, flags (common ones last), notes. */
export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [];
  const all: OptionSpecs = { ...spec.options, ...COMMON_OPTIONS };
  for (const [name, o] of Object.entries(all)) {
    const left = `${o.short !== undefined ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}${o.multiple === true ? ' ...' : ''}`;
    rows.push([left, o.help]);
  }
  const width = Math.min(32, Math.max(...rows.map(([l]) => l.length)));
  const lines = [`usage: ${spec.name}${spec.operands !== undefined ? ` ${spec.operands}` : ''} [flags]`, '', indent(spec.summary, 2), '', 'flags:'];
  for (const [l, r] of rows) lines.push(l.length > width ? `  ${l}\n  ${' '.repeat(width)}  ${r}` : `  ${l.padEnd(width)}  ${r}`);
  if (spec.notes !== undefined) lines.push('', indent(spec.notes, 0));
  return lines.join('\n') + '\n';
}

function indent(text: string, n: number): string {
  return text.split('\n').map((l) => (l.length > 0 ? ' '.repeat(n) + l : l)).join('\n');
}

/**
 * For a program with one command (a benchmark, the simulator): parses, and on --help prints
 * the help and exits 0, on --dry-run prints the parsed command line as JSON and exits 0, on a
 * usage error prints `NAME: USAGE: message` and exits 2. Otherwise returns the parse.
 * `check` (optional) turns the values into the program's options, so --dry-run checks them too.
 */
export function parseOrExit<O extends OptionSpecs, T = OptionValues<O>>(
  spec: CommandSpec<O>,
  argv: readonly string[],
  check?: (p: ParsedCommand<O>) => T,
): { parsed: ParsedCommand<O>; options: T } {
  try {
    const parsed = parseCommand(spec, argv);
    if (parsed.help) {
      process.stdout.write(helpText(spec));
      process.exit(0);
    }
    const options = check === undefined ? (parsed.values as unknown as T) : check(parsed);
    if (parsed.dryRun) {
      process.stdout.write(JSON.stringify({ command: spec.name, values: parsed.values, operands: parsed.operands }) + '\n');
      process.exit(0);
    }
    return { parsed, options };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${spec.name.replace(/ --$/, '')}: USAGE: ${e.message} (see --help)\n`);
    process.exit(EXIT_USAGE);
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** `host:port,host:port` → ['host:port', ...], each checked. `what` names the source in errors. */
export function parseServers(s: string, what = '--servers'): string[] {
  const out = s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  if (out.length === 0) throw new UsageError(`${what} needs at least one host:port`);
  for (const server of out) {
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(server);
    if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`${what}: "${server}" is not host:port`);
  }
  return out;
}

/** A positive integer operand or flag value (`what` names it in the error). */
export function parsePositiveInt(s: string | undefined, what: string, max = 0xffff_ffff): number {
  return parseIntIn(s, what, 1, max);
}

/** An integer in min..max (`what` names it in the error). */
export function parseIntIn(s: string | undefined, what: string, min: number, max: number): number {
  const kind = min >= 1 ? 'a positive integer' : 'an integer';
  if (s === undefined || !/^\d+$/.test(s)) throw new UsageError(`${what} must be ${kind}, got ${s === undefined ? 'nothing' : JSON.stringify(s)}`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`${what} must be ${min}..${max}, got ${n}`);
  return n;
}

/** A number of seconds ≥ 0 (decimals allowed). */
export function parseSeconds(s: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(s)) throw new UsageError(`${what} must be a number of seconds, got ${JSON.stringify(s)}`);
  return Number(s);
}

/** `1,2,3` → [1, 2, 3]: distinct node ids. */
export function parseMembers(s: string | undefined): number[] {
  if (s === undefined) throw new UsageError('--members is required, e.g. --members 1,2,3');
  const ids = s.split(',').map((x) => x.trim()).filter((x) => x.length > 0).map((x) => parsePositiveInt(x, 'a member id'));
  if (ids.length === 0) throw new UsageError('--members needs at least one node id');
  if (new Set(ids).size !== ids.length) throw new UsageError(`--members lists a node twice: ${s}`);
  return ids;
}

export function parseBool(s: string, what: string): boolean {
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0') return false;
  throw new UsageError(`${what} must be true or false, got ${JSON.stringify(s)}`);
}

export function parseOneOf<T extends string>(s: string | undefined, what: string, values: readonly T[], dflt: T): T {
  if (s === undefined) return dflt;
  if (!(values as readonly string[]).includes(s)) throw new UsageError(`${what} must be one of ${values.join(', ')}, got ${JSON.stringify(s)}`);
  return s as T;
}

/** ` (did you mean --X?)` for a near miss, else ''. */
function suggest(name: string, known: string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return name.length > 0 && bestD <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean --${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
