// Command-line parsing for `flotilla`: pure functions, no I/O, unit-tested.

/** A mistake in how the command was called; the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

export interface ParsedArgs {
  /** Words that are not flags, in order (the command and its operands). */
  positionals: string[];
  /** `--name value`, `--name=value`, or a switch (`--name` alone, value 'true'); by name without dashes. */
  flags: Record<string, string>;
}

/**
 * Splits argv into positionals and flags. A flag takes the next word as its value unless it
 * is one of `switches` or is written `--name=value`; a flag given twice is an error, and so is
 * a flag with no value. `--` ends the flags: every word after it is a positional.
 */
export function parseArgv(argv: readonly string[], switches: ReadonlySet<string> = new Set()): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('--') || word.length === 2) {
      if (word === '-h') flags['help'] = 'true';
      else positionals.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    const name = eq < 0 ? word.slice(2) : word.slice(2, eq);
    if (name.length === 0) throw new UsageError(`bad flag ${word}`);
    if (Object.hasOwn(flags, name)) throw new UsageError(`flag --${name} is given twice`);
    if (eq >= 0) {
      flags[name] = word.slice(eq + 1);
    } else if (switches.has(name)) {
      flags[name] = 'true';
    } else {
      const value = argv[i + 1];
      if (value === undefined || (value.startsWith('--') && value.length > 2)) throw new UsageError(`flag --${name} needs a value`);
      flags[name] = value;
      i++;
    }
  }
  return { positionals, flags };
}

/** Fails on a flag the command does not take. */
export function onlyFlags(flags: Record<string, string>, allowed: readonly string[], command: string): void {
  for (const name of Object.keys(flags)) {
    if (!allowed.includes(name)) {
      throw new UsageError(`${command} takes no flag --${name}${allowed.length > 0 ? ` (it takes ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`);
    }
  }
}

/** `host:port,host:port` → ['host:port', ...], each checked. */
export function parseServers(s: string): string[] {
  const out = s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  if (out.length === 0) throw new UsageError('--servers needs at least one host:port');
  for (const server of out) {
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(server);
    if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--servers: "${server}" is not host:port`);
  }
  return out;
}

/** A positive integer operand or flag value (`what` names it in the error). */
export function parsePositiveInt(s: string | undefined, what: string, max = 0xffff_ffff): number {
  if (s === undefined || !/^\d+$/.test(s)) throw new UsageError(`${what} must be a positive integer, got ${s === undefined ? 'nothing' : JSON.stringify(s)}`);
  const n = Number(s);
  if (n < 1 || n > max) throw new UsageError(`${what} must be 1..${max}, got ${n}`);
  return n;
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
