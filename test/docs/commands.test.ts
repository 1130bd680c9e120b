// Every command shown in README.md and docs/*.md is run or checked here, so the docs cannot
// drift from the code. What counts as a command:
//   - in a fenced block marked sh, bash, shell or console: every line that is not a comment
//     (with `$ ` prompts, only the prompt lines; the rest is output); `\` continues a line;
//   - in an unmarked fenced block: the lines that start like a command (`node dist/...`,
//     `npm ...`, `flotilla ...`, `curl ...`, `VAR=value ...`); the rest is output;
//   - an inline code span that starts like a command.
// `a && b` and `a; b` are separate commands. Each one is, by what it does:
//   - run for real against a 3-node cluster this test starts (127.0.0.1, free ports, a temp
//     dir): flotilla kv/admin/status/config/version/help and curl. The docs' ports are those of
//     the defaults and of `flotilla cluster` (node i on 7001 + 10(i-1): Raft, client, admin,
//     ws) and are mapped to the test cluster's; FLOTILLA_SERVERS points at it. Exit code 0 is
//     expected;
//   - parse-checked with --dry-run (the shared parser's check-only mode) when it would start
//     something long-running: flotilla start/cluster/bench, the benchmarks, the simulator;
//   - a synopsis (`[--flag X]`, `a|b`, `...`, placeholders like FILE or N): the command must
//     exist and every --flag in it must be in that command's --help;
//   - or listed in SKIP below with the reason.
// Anything else fails the test: a new command in the docs must be one of these.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, waitFor, type TestCluster } from '../cluster/cluster-harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI_PATH = 'dist/src/cli/flotilla.js';
const COMMAND_START = /^(?:[A-Z][A-Z0-9_]*=\S*\s+)*(?:node |npm |npx |flotilla |curl |git |cd )/;
const RUN_SUBCOMMANDS = new Set(['kv', 'admin', 'status', 'config', 'version', 'help', '--version', '--help']);
const PARSE_SUBCOMMANDS = new Set(['start', 'cluster', 'bench']);
const RUN_MS_MAX = 30_000;

/** Commands the test does not run, each with why. Keys are the command as extracted. */
const SKIP: Record<string, string> = {
  'npm install': 'installs the dependencies: CI does it before anything else',
  'npm test': 'the whole suite: CI runs it',
  'npm run test:native-free': 'the whole suite without native add-ons: CI runs it',
  'npm run build': 'the build: the suite runs on it',
  'git clone <flotilla repository> flotilla': 'needs the network and a repository address',
  'cd flotilla': 'part of setting up another project from a clone',
  'cd ../your-project': 'part of setting up another project from a clone',
  'node counter-service.mjs': 'test/embed/embed.test.ts writes the page\'s example files, runs this and compares its output with the page',
  'node /opt/flotilla/dist/src/cli/flotilla.js start --config /etc/flotilla/flotilla.json': 'the command of the systemd unit (config/flotilla.service), with the paths of an installed system',
  'flotilla echo': 'the name of a row of the benchmark table, not a command',
  'npm run sim:mutations -- [SEEDS_MAX]': 'builds a copy of the engine per deliberate bug and runs hundreds of seeds on each (minutes): run by hand, as test/sim/README.md says',
  'npm run sim:mutations -- 200 lease-by-ticks': 'one deliberate bug of test/sim/mutations, built into a copy of the engine and run for seeds until one fails (a minute): run by hand, as test/sim/README.md says',
  'npm pack': 'packs the package: test/package/pack.test.ts packs a copy of the repo',
  'npm install path/to/flotilla-0.1.0.tgz': 'installs the packed package into another project: test/package/pack.test.ts does',
  'npm install ../flotilla/flotilla-0.1.0.tgz': 'installs the packed package into another project: test/package/pack.test.ts does',
  'PATH="$(.ci/node-bin.sh):$PATH" npm test': 'the whole suite on the CI Node version: .ci/run runs it',
  'node N client ws HOST:PORT (uws|ws)': 'a line `flotilla start` prints, not a command',
  'node 1 client tcp 127.0.0.1:7002': 'a line `flotilla start` prints, not a command',
};

interface DocCommand {
  where: string;
  text: string;
}

/** The commands of one Markdown file, in order. */
function extract(file: string): DocCommand[] {
  const rel = path.relative(ROOT, file);
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: DocCommand[] = [];
  const add = (line: number, text: string): void => {
    for (const part of splitCompound(text)) out.push({ where: `${rel}:${line}`, text: part });
  };
  let fence: string | null = null;
  let block: { line: number; text: string }[] = [];
  const prose: { line: number; text: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const m = /^\s*```(\S*)/.exec(l);
    if (m !== null) {
      if (fence === null) {
        fence = m[1]!;
        block = [];
      } else {
        blockCommands(fence, block, add);
        fence = null;
      }
      continue;
    }
    if (fence !== null) block.push({ line: i + 1, text: l });
    else prose.push({ line: i + 1, text: l });
  }
  // Inline spans may wrap across lines within a paragraph: join each paragraph first.
  let para: { line: number; text: string } | null = null;
  const flush = (): void => {
    if (para === null) return;
    for (const s of para.text.matchAll(/`([^`]+)`/g)) {
      const span = s[1]!.replace(/\\\|/g, '|').replace(/\s+/g, ' ').trim();
      if (COMMAND_START.test(span)) add(para.line + (para.text.slice(0, s.index).match(/\n/g)?.length ?? 0), span);
    }
    para = null;
  };
  for (const p of prose) {
    if (p.text.trim() === '') flush();
    else if (para === null) para = { line: p.line, text: p.text };
    else para.text += `\n${p.text}`;
  }
  flush();
  return out;
}

function blockCommands(info: string, block: { line: number; text: string }[], add: (line: number, text: string) => void): void {
  const shell = ['sh', 'bash', 'shell', 'console'].includes(info);
  if (!shell && info !== '') return;
  const prompts = block.some((b) => b.text.startsWith('$ '));
  for (let i = 0; i < block.length; i++) {
    let { text } = block[i]!;
    const line = block[i]!.line;
    if (prompts) {
      if (!text.startsWith('$ ')) continue;
      text = text.slice(2);
    }
    while (text.endsWith('\\') && i + 1 < block.length) text = text.slice(0, -1) + ' ' + block[++i]!.text.trim();
    text = stripComment(text).trim();
    if (text === '') continue;
    if (!shell && !COMMAND_START.test(text)) continue;
    add(line, text);
  }
}

/** Drops a trailing `# comment` (a # after whitespace, outside quotes). */
function stripComment(s: string): string {
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === '\'') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

/** `a && b; c` → [a, b, c] (outside quotes). */
function splitCompound(s: string): string[] {
  return s.split(/\s*(?:&&|;)\s*/).map((x) => x.trim()).filter((x) => x.length > 0);
}

type Plan =
  | { kind: 'run'; argv: string[]; shell: string | null; env: Record<string, string> }
  | { kind: 'parse'; argv: string[]; env: Record<string, string> }
  | { kind: 'synopsis'; tool: string[]; commands: string[][]; flags: string[] }
  | { kind: 'skip'; reason: string }
  | { kind: 'unknown'; why: string };

const SCRIPTS = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** The command as words, after VAR=value prefixes (returned apart). Quotes are not expected in the docs' commands. */
function words(text: string): { env: Record<string, string>; argv: string[] } {
  const argv = text.split(/\s+/);
  const env: Record<string, string> = {};
  while (argv.length > 0 && /^[A-Z][A-Z0-9_]*=/.test(argv[0]!)) {
    const w = argv.shift()!;
    const eq = w.indexOf('=');
    env[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return { env, argv };
}

function isSynopsis(text: string): boolean {
  // `[fd00::3]` in an address is not an optional part; ` [--flag X]` is.
  return /(^|\s)\[|\.\.\.|…|\S\|\S|<|\b[A-Z][A-Z0-9_:]*\b/.test(text.replace(/^(?:[A-Z][A-Z0-9_]*=\S*\s+)+/, ''));
}

/** How one command is checked. `tool` is the program as argv (node and its script). */
export function plan(text: string): Plan {
  const skip = SKIP[text];
  if (skip !== undefined) return { kind: 'skip', reason: skip };
  const { env, argv } = words(text);
  let tool: string[];
  let args: string[];
  if (argv[0] === 'flotilla') {
    tool = ['node', CLI_PATH];
    args = argv.slice(1);
  } else if (argv[0] === 'node' && argv[1] !== undefined && argv[1].startsWith('dist/')) {
    tool = ['node', argv[1]];
    args = argv.slice(2);
  } else if (argv[0] === 'npm' && (argv[1] === 'run' || argv[1] === 'start')) {
    const name = argv[1] === 'start' ? 'start' : argv[2];
    const script = name === undefined ? undefined : SCRIPTS[name];
    if (script === undefined) return { kind: 'unknown', why: `no npm script ${JSON.stringify(name)} in package.json` };
    // Scripts are "npm run build --silent && node FILE [ARGS]": the part after the build.
    const m = /(?:^|&&\s*)node (dist\/\S+\.js)((?: [a-z][a-z-]*)*)\s*$/.exec(script);
    if (m === null) return { kind: 'unknown', why: `npm script ${name} does not end in "node dist/FILE.js": list it in SKIP with a reason` };
    tool = ['node', m[1]!];
    const rest = argv.slice(argv[1] === 'start' ? 2 : 3);
    if (rest.length > 0 && rest[0] !== '--') return { kind: 'unknown', why: 'npm run arguments must follow --' };
    args = [...m[2]!.trim().split(' ').filter((w) => w.length > 0), ...rest.slice(1)];
  } else if (argv[0] === 'curl') {
    if (isSynopsis(text.replace(/\s\|\s/g, ' '))) return { kind: 'unknown', why: 'a curl synopsis cannot be checked' };
    return { kind: 'run', argv, shell: text, env };
  } else {
    return { kind: 'unknown', why: 'not a command this test knows how to check' };
  }

  const sub = args[0];
  // Help runs nothing else, whatever the command.
  if (args.includes('--help') || args.includes('-h')) return { kind: 'run', argv: [...tool, ...args], shell: null, env };
  // A command named in prose (`flotilla cluster`, `flotilla bench`): it must exist.
  const bare = tool[1] === CLI_PATH && args.length > 0 && args.length <= 2 && args.every((w) => /^[a-z][a-z-]*$/.test(w))
    && (PARSE_SUBCOMMANDS.has(sub!) || (Object.hasOwn(GROUPED, sub!) && args.length === 1));
  if (isSynopsis(text) || bare) {
    const flags = [...args.join(' ').matchAll(/(?:^|[\s[|])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
    const commands = tool[1] === CLI_PATH ? cliCommandsIn(args) : [[]];
    if (commands.length === 0) return { kind: 'unknown', why: 'names no flotilla command' };
    return { kind: 'synopsis', tool, commands, flags };
  }
  if (tool[1] === CLI_PATH && sub !== undefined && RUN_SUBCOMMANDS.has(sub) && !/\s\|\s/.test(text)) return { kind: 'run', argv: [...tool, ...args], shell: null, env };
  if (tool[1] === CLI_PATH && (sub === undefined || !PARSE_SUBCOMMANDS.has(sub))) return { kind: 'unknown', why: `flotilla ${sub ?? ''}: not a command the test runs or parses` };
  return { kind: 'parse', argv: [...tool, ...args], env };
}

const GROUPED: Record<string, string[]> = { kv: ['put', 'get', 'delete'], admin: ['add-group', 'remove-group', 'transfer-leader', 'slots', 'migrate', 'members', 'add-member', 'promote', 'remove-member'] };

/** The flotilla commands a synopsis names: `kv put|get|delete` → kv put, kv get, kv delete. */
function cliCommandsIn(args: string[]): string[][] {
  const first = args[0];
  if (first === undefined || first.startsWith('-')) return [];
  if (!Object.hasOwn(GROUPED, first) || args.length === 1) return [[first]];
  const ops = args.slice(1).flatMap((w) => w.split('|')).filter((w) => GROUPED[first]!.includes(w));
  return [...new Set(ops)].map((op) => [first, op]);
}

interface Ran { status: number | null; stdout: string; stderr: string }

function run(argv: string[], env: Record<string, string>, shell: string | null = null): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = shell !== null ? ['sh', '-c', shell] : argv;
    const exe = cmd === 'node' ? process.execPath : cmd!;
    const child = spawn(exe, rest, { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout.length < 65_536 && (stdout += d.toString())));
    child.stderr.on('data', (d: Buffer) => void (stderr.length < 65_536 && (stderr += d.toString())));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${shell ?? argv.join(' ')} did not finish in ${RUN_MS_MAX} ms`));
    }, RUN_MS_MAX);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const DOC_FILES = [path.join(ROOT, 'README.md'), ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(ROOT, 'docs', f))];
const COMMANDS = DOC_FILES.flatMap(extract);

test('the extraction finds the commands of the docs, and each one is accounted for', (t) => {
  const kinds: Record<string, number> = {};
  for (const c of COMMANDS) {
    const k = plan(c.text).kind;
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  t.diagnostic(`${COMMANDS.length} commands: ${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}`);
  assert.ok(COMMANDS.length >= 30, `only ${COMMANDS.length} commands found`);
  const texts = COMMANDS.map((c) => c.text);
  for (const known of ['node dist/src/cli/flotilla.js kv put greeting hello', 'npm run bench:matrix -- --json-dir /tmp/mx/json', 'curl -s localhost:7003/metrics | head']) {
    assert.ok(texts.includes(known), `${known} not extracted`);
  }
  const unknown = COMMANDS.map((c) => ({ c, p: plan(c.text) })).filter(({ p }) => p.kind === 'unknown');
  assert.deepEqual(unknown.map(({ c, p }) => `${c.where}: ${c.text}: ${(p as { why: string }).why}`), []);
  // Every skip is still in the docs: a stale entry would hide nothing but mislead.
  for (const k of Object.keys(SKIP)) assert.ok(texts.includes(k), `SKIP lists "${k}", which no doc shows any more`);
});

test('the classification: run, parse, synopsis, skip and unknown', () => {
  assert.equal(plan('node dist/src/cli/flotilla.js kv get greeting').kind, 'run');
  assert.equal(plan('node dist/src/cli/flotilla.js cluster --nodes 3 --dir ./data/cluster').kind, 'parse');
  assert.equal(plan('npm run sim -- --seed S').kind, 'synopsis');
  assert.deepEqual(plan('npm run bench:raft -- --seconds 3'), { kind: 'parse', argv: ['node', 'dist/bench/raft-core.js', '--seconds', '3'], env: {} });
  assert.deepEqual(plan('npm start'), { kind: 'synopsis', tool: ['node', CLI_PATH], commands: [['start']], flags: [] });
  assert.deepEqual(plan('npm start -- --tick-ms 5'), { kind: 'parse', argv: ['node', CLI_PATH, 'start', '--tick-ms', '5'], env: {} });
  const syn = plan('node dist/src/cli/flotilla.js kv put|get|delete ... [--servers host:port,...] [--json]');
  assert.deepEqual(syn.kind === 'synopsis' ? [syn.commands, syn.flags] : null, [[['kv', 'put'], ['kv', 'get'], ['kv', 'delete']], ['--servers', '--json']]);
  assert.equal(plan('npm test').kind, 'skip');
  assert.equal(plan('flotilla frobnicate now').kind, 'unknown');
  assert.equal(plan('rm -rf /tmp/x').kind, 'unknown');
});

test('synopses: each names a command that exists, and each of its flags is in that command\'s --help', { timeout: 120_000 }, async () => {
  const helps = new Map<string, Ran>();
  const helpOf = async (argv: string[]): Promise<Ran> => {
    const key = argv.join(' ');
    if (!helps.has(key)) helps.set(key, await run([...argv, '--help'], {}));
    return helps.get(key)!;
  };
  for (const c of COMMANDS) {
    const p = plan(c.text);
    if (p.kind !== 'synopsis') continue;
    const texts: string[] = [];
    for (const cmd of p.commands) {
      const h = await helpOf([...p.tool, ...cmd]);
      assert.equal(h.status, 0, `${c.where}: ${[...p.tool, ...cmd].join(' ')} --help failed: ${h.stderr}`);
      assert.match(h.stdout, /^usage: /, `${c.where}: ${cmd.join(' ')} --help printed no usage`);
      texts.push(h.stdout);
    }
    for (const f of p.flags) {
      if (f === '--') continue;
      // `--key value` in `start [--key value ...]` stands for any configuration flag.
      if (f === '--key') continue;
      assert.ok(texts.some((t) => new RegExp(`(^|[\\s,])${f.replace(/[-]/g, '\\-')}[\\s=]`, 'm').test(t)), `${c.where}: ${c.text}: ${f} is not a flag of ${p.commands.map((x) => x.join(' ')).join(', ') || p.tool.join(' ')}`);
    }
  }
});

test('long-running commands parse: --dry-run accepts them', { timeout: 120_000 }, async () => {
  for (const c of COMMANDS) {
    const p = plan(c.text);
    if (p.kind !== 'parse') continue;
    const r = await run(p.argv.includes('--dry-run') ? p.argv : [...p.argv, '--dry-run'], p.env);
    assert.equal(r.status, 0, `${c.where}: ${c.text} --dry-run: ${r.stderr}`);
    assert.match(r.stdout, /^\{"command":/, `${c.where}: ${c.text} --dry-run printed no parse`);
  }
});

let cluster: TestCluster;

before(async () => {
  // The defaults' 64 groups, so that commands without --groups address this cluster as shown.
  cluster = await startCluster({ nodes: 3, groups: 64, shards: 1 });
  for (const id of [1, 2, 3]) await waitFor(async () => (await cluster.status(id)).every((s) => s.leader !== 0), 60_000, `node ${id} sees every leader`);
}, { timeout: 120_000 });

after(async () => {
  await cluster?.stop();
}, { timeout: 30_000 });

/** The docs' ports (7001 + 10(i-1) + 0..3) → the test cluster's; any other port in 7001..7099 fails. */
function mapPorts(text: string): string {
  return text.replace(/\b(localhost|127\.0\.0\.1):(70\d\d)\b/g, (_, host: string, p: string) => {
    const port = Number(p);
    const id = Math.floor((port - 7001) / 10) + 1;
    const k = (port - 7001) % 10;
    const n = cluster.nodes.get(id);
    if (n === undefined || k > 3) throw new Error(`port ${port} in the docs is no port of node ${id} of a 3-node cluster`);
    return `${host}:${[n.raftPort, n.clientPort, n.adminPort, n.wsPort][k]}`;
  });
}

test('the other commands run against a real cluster and succeed', { timeout: 180_000 }, async () => {
  const env = { FLOTILLA_SERVERS: cluster.servers().join(',') };
  let ran = 0;
  for (const c of COMMANDS) {
    const p = plan(c.text);
    if (p.kind !== 'run') continue;
    const r = p.shell !== null ? await run([], { ...env, ...p.env }, mapPorts(p.shell)) : await run(p.argv.map(mapPorts), { ...env, ...p.env });
    assert.equal(r.status, 0, `${c.where}: ${c.text}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    ran++;
  }
  assert.ok(ran >= 5, `only ${ran} commands run`);
});
