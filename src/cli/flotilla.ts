#!/usr/bin/env node
// The `flotilla` command: run a node, run a local cluster, talk to one (kv, admin, status), and
// show the configuration a node would run with. Parsing is args.ts (the shared parser); each
// command is declared once (its flags and help), in the file of its group, and run by its
// function there: start and config node-commands.ts, kv kv-commands.ts, admin
// admin-commands.ts, status status.ts, cluster cluster.ts, bench bench/flotilla-bench.ts. This
// file finds the command, prints the help and exits. Exit codes: 0 done, 1 the operation
// failed (`flotilla: CODE: message`, exit-report.ts), 2 a usage or configuration error.
import '../native-free-env.js';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../node/config.js';
import { ADMIN_SPECS, adminCommand } from './admin-commands.js';
import {
  EXIT_USAGE, UsageError, helpText, parseCommand, type CommandSpec, type OptionSpecs, type OptionValues, type ParsedCommand,
} from './args.js';
import { CLIENT_OPTIONS, SERVERS_ENV } from './client-target.js';
import { CLUSTER_SPEC, parseClusterFlags, runCluster } from './cluster.js';
import { report } from './exit-report.js';
import { KV_SPECS, kvCommand } from './kv-commands.js';
import { MEMBER_SPECS, memberCommand } from './member-commands.js';
import { configOptions, NODE_SPECS, runNode, showConfig } from './node-commands.js';
import { STATUS_SPEC, statusCommand } from './status.js';

const SPECS = {
  ...NODE_SPECS,
  ...KV_SPECS,
  ...ADMIN_SPECS,
  ...MEMBER_SPECS,
  status: STATUS_SPEC,
  version: { name: 'flotilla version', summary: 'Prints the package version (also flotilla --version).', options: { json: CLIENT_OPTIONS.json } },
} as const satisfies Record<string, CommandSpec>;

type Name = keyof typeof SPECS | 'cluster' | 'bench';

/** The commands in the order of the global help, with one line each. */
const INDEX: [Name | 'help', string, string][] = [
  ['start', '[--config FILE] [--<key> VALUE ...]', 'run a node'],
  ['cluster', '--nodes N [--dir DIR] [--groups G] ...', 'run N nodes on this machine'],
  ['kv put', 'KEY VALUE', 'write a key'],
  ['kv get', 'KEY [--stale]', 'read a key'],
  ['kv delete', 'KEY', 'delete a key'],
  ['admin add-group', 'G --members 1,2,3', 'create a group on every server listed'],
  ['admin remove-group', 'G', 'remove a group from every server listed'],
  ['admin transfer-leader', 'G --to N', 'move a group\'s leadership'],
  ['admin slots', '[--json]', 'print the key map: slot owners, groups, nodes, migrations'],
  ['admin migrate', 'SLOTS --to G | --abort ID', 'move slots to another group online, or abort a migration'],
  ['admin members', 'G', 'a group\'s voters and learners'],
  ['admin add-member', 'G NODE [--learner]', 'add a node to a group (a learner first, a voter once caught up)'],
  ['admin promote', 'G NODE', 'make a learner a voter'],
  ['admin remove-member', 'G NODE', 'remove a node from a group'],
  ['status', '[--servers H:P,...]', 'health, leaders, lagging and leaderless groups per node'],
  ['config', '[--config FILE] [--<key> VALUE ...]', 'the effective configuration and where each value came from'],
  ['bench', '[--mode raft|echo] [--nodes 1|3] ...', 'the benchmark (docs/benchmarks.md)'],
  ['version', '', 'the package version'],
  ['help', '[COMMAND]', 'this help, or a command\'s'],
];

function globalHelp(): string {
  const width = Math.max(...INDEX.map(([n, o]) => `${n} ${o}`.length));
  return `flotilla ${packageVersion()}: a Multi-Raft key-value engine

usage: flotilla COMMAND [operands] [flags]      flotilla COMMAND --help for its own help

${INDEX.map(([n, o, s]) => `  ${`${n} ${o}`.trimEnd().padEnd(width)}  ${s}`).join('\n')}

Every command takes --help and --dry-run (check the command line, print what would run, exit 0).
kv, admin and status find the cluster in --servers, else $${SERVERS_ENV} (host:port,... of client ports).
exit codes: 0 ok, 1 the operation failed (prints "flotilla: CODE: message"), 2 bad usage or config.
`;
}

/** The version in the package.json beside dist/ (read once, at the first call). */
let versionCache: string | null = null;
export function packageVersion(): string {
  if (versionCache === null) {
    const file = fileURLToPath(new URL('../../../package.json', import.meta.url));
    versionCache = (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return versionCache;
}

/** What main decided: exit now with a code, or keep running (a node, a cluster). */
type Outcome = number | 'running';

const GROUPED: Record<string, string[]> = { kv: ['put', 'get', 'delete'], admin: ['add-group', 'remove-group', 'transfer-leader', 'slots', 'migrate', 'members', 'add-member', 'promote', 'remove-member'] };

/** Finds the command named by the first words of argv; returns its name and the words after it. */
function resolve(argv: readonly string[]): { name: Name | 'help'; rest: string[] } | { group: string; rest: string[] } {
  const [first, second, ...more] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') return { name: 'help', rest: argv.slice(1) };
  if (first === '--version' || first === '-v') return { name: 'version', rest: argv.slice(1) };
  if (Object.hasOwn(GROUPED, first)) {
    if (second !== undefined && GROUPED[first]!.includes(second)) return { name: `${first} ${second}` as Name, rest: more };
    if (second === undefined || second.startsWith('-')) return { group: first, rest: argv.slice(1) };
    throw new UsageError(`${first} has no command ${JSON.stringify(second)} (it has ${GROUPED[first]!.join(', ')})`);
  }
  if (first === 'cluster' || first === 'bench' || Object.hasOwn(SPECS, first)) return { name: first as Name, rest: argv.slice(1) };
  throw new UsageError(`unknown command ${JSON.stringify(first)} (commands: ${INDEX.map(([n]) => n.split(' ')[0]).filter((n, i, a) => a.indexOf(n) === i).join(', ')})`);
}

function groupHelp(group: string): string {
  const rows = INDEX.filter(([n]) => n.startsWith(`${group} `));
  return `usage: flotilla ${group} ${GROUPED[group]!.join('|')} ...\n\n${rows.map(([n, o, s]) => `  flotilla ${n} ${o}\n      ${s}`).join('\n')}\n\nflotilla ${group} COMMAND --help for its flags.\n`;
}

async function specOf(name: Name): Promise<CommandSpec> {
  if (name === 'cluster') return CLUSTER_SPEC;
  if (name === 'bench') return (await import('../../bench/flotilla-bench.js')).BENCH_SPEC;
  return SPECS[name];
}

async function main(argv: string[]): Promise<Outcome> {
  const r = resolve(argv);
  if ('group' in r) {
    if (r.rest.includes('--help') || r.rest.includes('-h')) {
      process.stdout.write(groupHelp(r.group));
      return 0;
    }
    if (r.rest.length === 0) {
      // A usage error: the help goes where errors go.
      process.stderr.write(groupHelp(r.group));
      return EXIT_USAGE;
    }
    throw new UsageError(`${r.group} needs a command: ${GROUPED[r.group]!.join(', ')}`);
  }
  if (r.name === 'help') {
    const topic = r.rest.filter((w) => !w.startsWith('-'));
    if (topic.length === 0) {
      process.stdout.write(globalHelp());
      return 0;
    }
    const t = resolve(topic);
    if ('group' in t) process.stdout.write(groupHelp(t.group));
    else if (t.name === 'help') process.stdout.write(globalHelp());
    else process.stdout.write(helpText(await specOf(t.name)));
    return 0;
  }
  const spec = await specOf(r.name);
  const p = parseCommand(spec, r.rest);
  if (p.help) {
    process.stdout.write(helpText(spec));
    return 0;
  }
  return run(r.name, p, spec);
}

async function run(name: Name, p: ParsedCommand<OptionSpecs>, spec: CommandSpec): Promise<Outcome> {
  const v = p.values as Record<string, string | boolean | undefined>;
  const dry = (extra: Record<string, unknown> = {}): number => {
    process.stdout.write(JSON.stringify({ command: spec.name, values: p.values, operands: p.operands, ...extra }) + '\n');
    return 0;
  };
  switch (name) {
    case 'version':
      process.stdout.write(v['json'] === true ? JSON.stringify({ version: packageVersion() }) + '\n' : `flotilla ${packageVersion()}\n`);
      return 0;
    case 'start': {
      const opts = configOptions(v);
      const config = loadConfig({ ...opts, env: process.env });
      if (p.dryRun) return dry({ config });
      await runNode(config);
      return 'running';
    }
    case 'config':
      return showConfig(v);
    case 'cluster': {
      const o = parseClusterFlags(v as OptionValues<typeof CLUSTER_SPEC.options>);
      if (p.dryRun) return dry();
      await runCluster(o, fileURLToPath(import.meta.url));
      return 'running';
    }
    case 'bench': {
      // The benchmark lives in bench/ (compiled beside src/); loaded only for this command.
      const { parseBenchFlags, runFlotillaBench } = await import('../../bench/flotilla-bench.js');
      const o = parseBenchFlags(v as Parameters<typeof parseBenchFlags>[0]);
      if (p.dryRun) return dry();
      const result = await runFlotillaBench(o);
      return result.errors > 0 && result.ops === result.errors ? 1 : 0;
    }
    case 'status':
      return statusCommand(v, p.dryRun, dry);
    default:
      if (name.startsWith('kv ')) return kvCommand(name, p, dry);
      return name in MEMBER_SPECS ? memberCommand(name, p, dry) : adminCommand(name, p, dry);
  }
}

const argv = process.argv.slice(2);
process.stdout.on('error', () => undefined);
main(argv).then((outcome) => {
  if (outcome !== 'running') process.exit(outcome);
}, (err: unknown) => {
  const end = argv.indexOf('--');
  process.exit(report(err, (end < 0 ? argv : argv.slice(0, end)).includes('--json')));
});
