#!/usr/bin/env node
// The `flotilla` command: run a node, run a local cluster, talk to one (kv, admin, status), and
// show the configuration a node would run with. Parsing is args.ts (the shared parser); each
// command is declared once below (its flags and help) and run by its function. Exit codes: 0
// done, 1 the operation failed (`flotilla: CODE: message`), 2 a usage or configuration error.
import '../native-free-env.js';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, configDefaults, configKeys, envName, flagName, loadConfig, loadConfigWithSources, type ConfigKey,
} from '../node/config.js';
import {
  EXIT_USAGE, UsageError, helpText, parseCommand, parseIntIn, parseMembers, parsePositiveInt, parseServers,
  type CommandSpec, type OptionSpecs, type OptionValues, type ParsedCommand,
} from './args.js';
import { CLUSTER_SPEC, hostPort, parseClusterFlags, runCluster } from './cluster.js';
import { adminOfClient, judgeStatus, probeNode, statusLines } from './status.js';

/** Where kv, admin and status find the cluster when --servers is not given. */
export const SERVERS_ENV = 'FLOTILLA_SERVERS';
const SERVERS_DEFAULT = '127.0.0.1:7002';
/** kv and admin commands give up after this long rather than hang on an unreachable cluster. */
const CLIENT_COMMAND_MS_MAX = 30_000;
/** One /health or /status request of `flotilla status`. */
const STATUS_REQUEST_MS = 5_000;
const STOP_MS_MAX = 60_000;

const CLIENT_OPTIONS = {
  servers: { type: 'string', value: 'H:P,...', help: `client addresses (TCP client ports) of the nodes; default $${SERVERS_ENV}, else ${SERVERS_DEFAULT}` },
  groups: { type: 'string', value: 'G', help: `the cluster's group count; default $FLOTILLA_GROUPS, else ${configDefaults.groups}` },
  json: { type: 'boolean', help: 'print the answer as one JSON object' },
} as const satisfies OptionSpecs;

/** Every configuration key as a flag (--node-id, --sync-force, ...), for start and config. */
const CONFIG_KEY_OPTIONS: OptionSpecs = Object.fromEntries(configKeys.map((k) => [flagName(k), {
  type: 'string' as const,
  value: 'VALUE',
  help: `${k} (env ${envName(k)}; default ${JSON.stringify(configDefaults[k]).slice(0, 40)})`,
}]));

const CONFIG_FILE_OPTION = { config: { type: 'string', value: 'FILE', help: 'a JSON config file' } } as const satisfies OptionSpecs;

const SPECS = {
  start: {
    name: 'flotilla start',
    summary: `Runs a node. Configuration: defaults < FILE (JSON) < FLOTILLA_<KEY> environment
variables < flags (--node-id 2, --sync-force false, ...); docs/configuration.md lists every key.
SIGINT or SIGTERM stops the node cleanly. --dry-run checks the configuration and prints it.`,
    options: { ...CONFIG_FILE_OPTION, ...CONFIG_KEY_OPTIONS },
  },
  config: {
    name: 'flotilla config',
    summary: `Prints the configuration a node started with the same file, environment and flags
would run with: every key, its value, and where the value came from (default, file, env, flag).`,
    options: { ...CONFIG_FILE_OPTION, json: CLIENT_OPTIONS.json, ...CONFIG_KEY_OPTIONS },
  },
  'kv put': {
    name: 'flotilla kv put', operands: 'KEY VALUE', operandsMin: 2, operandsMax: 2,
    summary: 'Writes VALUE under KEY; prints OK. Put "--" before operands that start with "-".',
    options: CLIENT_OPTIONS,
  },
  'kv get': {
    name: 'flotilla kv get', operands: 'KEY', operandsMin: 1, operandsMax: 1,
    summary: 'Prints the value of KEY, or (nil). Linearizable unless --stale.',
    options: { ...CLIENT_OPTIONS, stale: { type: 'boolean', help: 'read from whichever member answers, possibly stale' } },
  },
  'kv delete': {
    name: 'flotilla kv delete', operands: 'KEY', operandsMin: 1, operandsMax: 1,
    summary: 'Deletes KEY; prints OK, or (nil) when the key was not there.',
    options: CLIENT_OPTIONS,
  },
  'admin add-group': {
    name: 'flotilla admin add-group', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Creates group G with these voters on every server listed (each node changes only
itself: list the client address of every member). Adding it again with the same members is OK.`,
    options: { ...CLIENT_OPTIONS, members: { type: 'string', value: '1,2,3', help: 'the voters (required)' } },
  },
  'admin remove-group': {
    name: 'flotilla admin remove-group', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Removes group G from every server listed. OK when at least one server removed it and the
others did not host it (a retry after a partial failure); NO_GROUP (exit 1) when no server hosts
it, a retry after a full success included: a node cannot tell "removed" from "never here".`,
    options: CLIENT_OPTIONS,
  },
  'admin transfer-leader': {
    name: 'flotilla admin transfer-leader', operands: 'G', operandsMin: 1, operandsMax: 1,
    summary: `Asks group G's leader to hand leadership to node --to. Only the leader can: a follower
answers NOT_LEADER, and this command then tries the leader it names or the next server.`,
    options: { ...CLIENT_OPTIONS, to: { type: 'string', value: 'N', help: 'the node id to lead (required)' } },
  },
  status: {
    name: 'flotilla status',
    summary: `Per node: serving or not, groups led and followed, groups lagging behind their
leader's commit, groups with no leader. Asks each node's admin HTTP port (/health, /status).
--servers lists client ports, as for kv; each node's admin port is taken to be its client port
+ 1 (the layout of the defaults and of flotilla cluster), or give --admin. Exits 1 unless every
node answers, serves, and sees a leader for each of its groups.`,
    options: {
      servers: CLIENT_OPTIONS.servers,
      admin: { type: 'string', value: 'H:P,...', help: 'admin HTTP addresses of the nodes, instead of client port + 1' },
      'lag-entries': { type: 'string', value: 'N', help: 'a member lags when its applied index is more than N behind commit (default 1000)' },
      json: CLIENT_OPTIONS.json,
    },
  },
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

const GROUPED: Record<string, string[]> = { kv: ['put', 'get', 'delete'], admin: ['add-group', 'remove-group', 'transfer-leader'] };

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
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
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
      await start(config);
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
    case 'status': {
      const servers = str('admin') !== undefined ? parseServers(str('admin')!, '--admin') : clientServers(str('servers')).map(adminOfClient);
      const lag = str('lag-entries') === undefined ? 1000 : parseIntIn(str('lag-entries'), '--lag-entries', 0, Number.MAX_SAFE_INTEGER);
      if (p.dryRun) return dry({ admin: servers });
      const report = judgeStatus(await Promise.all(servers.map((s) => probeNode(s, STATUS_REQUEST_MS))), lag);
      process.stdout.write(v['json'] === true ? JSON.stringify(report) + '\n' : statusLines(report).join('\n') + '\n');
      return report.healthy ? 0 : 1;
    }
    default:
      return clientCommand(name, p, dry);
  }
}

/** The file and flags of start/config: `--config` apart, every other flag a configuration key. */
function configOptions(v: Record<string, string | boolean | undefined>): { file?: string; flags: Record<string, string> } {
  const flags: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'config' && k !== 'json' && typeof x === 'string') flags[k] = x;
  const file = v['config'];
  return typeof file === 'string' ? { file, flags } : { flags };
}

function showConfig(v: Record<string, string | boolean | undefined>): number {
  const { config, sources } = loadConfigWithSources({ ...configOptions(v), env: process.env });
  const keys = {} as Record<ConfigKey, { value: unknown; source: string; from?: string }>;
  for (const k of configKeys) keys[k] = { value: config[k], ...sources[k] };
  if (v['json'] === true) {
    process.stdout.write(JSON.stringify({ keys }) + '\n');
    return 0;
  }
  const width = Math.max(...configKeys.map((k) => k.length));
  for (const k of configKeys) {
    const s = sources[k];
    const value = JSON.stringify(config[k]);
    process.stdout.write(`${k.padEnd(width)}  ${value.length > 60 ? value.slice(0, 57) + '...' : value}  (${s.source}${s.from !== undefined ? ` ${s.source === 'flag' ? '--' : ''}${s.from}` : ''})\n`);
  }
  return 0;
}

/** --servers, else $FLOTILLA_SERVERS, else the default node's client port. */
function clientServers(flag: string | undefined): string[] {
  if (flag !== undefined) return parseServers(flag, '--servers');
  const env = process.env[SERVERS_ENV];
  if (env !== undefined && env.trim() !== '') return parseServers(env, SERVERS_ENV);
  return parseServers(SERVERS_DEFAULT);
}

function clientGroups(flag: string | undefined): number {
  if (flag !== undefined) return parsePositiveInt(flag, '--groups');
  const env = process.env['FLOTILLA_GROUPS'];
  if (env !== undefined && env.trim() !== '') return parsePositiveInt(env.trim(), 'FLOTILLA_GROUPS');
  return configDefaults.groups;
}

async function clientCommand(name: Name, p: ParsedCommand<OptionSpecs>, dry: (extra?: Record<string, unknown>) => number): Promise<number> {
  const v = p.values as Record<string, string | boolean | undefined>;
  const json = v['json'] === true;
  const target = { servers: clientServers(v['servers'] as string | undefined), groups: clientGroups(v['groups'] as string | undefined) };
  const [a, b] = p.operands as [string, string | undefined];
  const print = (text: string, obj: Record<string, unknown>): void => void process.stdout.write(json ? JSON.stringify(obj) + '\n' : text + '\n');
  switch (name) {
    case 'kv put':
      if (p.dryRun) return dry({ servers: target.servers, groups: target.groups });
      return withClient(target, async (client) => {
        await client.put(a, b!);
        print('OK', { ok: true, key: a });
        return 0;
      });
    case 'kv get': {
      if (p.dryRun) return dry({ servers: target.servers, groups: target.groups });
      const stale = v['stale'] === true;
      return withClient(target, async (client) => {
        const value = showValue(await client.get(a, { stale }));
        print(value ?? '(nil)', { key: a, found: value !== null, value });
        return 0;
      });
    }
    case 'kv delete':
      if (p.dryRun) return dry({ servers: target.servers, groups: target.groups });
      return withClient(target, async (client) => {
        // delete says whether the key was there.
        const existed = (await client.delete(a)) !== false;
        print(existed ? 'OK' : '(nil)', { key: a, existed });
        return 0;
      });
    case 'admin add-group': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      const members = parseMembers(v['members'] as string | undefined);
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        await client.admin.addGroup(group, members);
        print('OK', { ok: true, group, members, servers: target.servers });
        return 0;
      });
    }
    case 'admin remove-group': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      if (p.dryRun) return dry({ servers: target.servers });
      return removeGroup(target, group, json);
    }
    case 'admin transfer-leader': {
      const group = parsePositiveInt(a, 'the group id', 0xffff_fffe);
      const to = parsePositiveInt(v['to'] as string | undefined, '--to');
      if (p.dryRun) return dry({ servers: target.servers });
      return withClient(target, async (client) => {
        await client.admin.transferLeader(group, to);
        print('OK', { ok: true, group, to });
        return 0;
      });
    }
    default:
      throw new Error(`no runner for ${name}`);
  }
}

/**
 * Removes the group from each server on its own connection, so that each server's answer is
 * known: NO_GROUP from some is fine when another removed it (a retry after a partial failure).
 */
async function removeGroup(target: ClientTarget, group: number, json: boolean): Promise<number> {
  const removed: string[] = [];
  const absent: string[] = [];
  const failed: { server: string; code: string; message: string }[] = [];
  await Promise.all(target.servers.map(async (server) => {
    try {
      await withClient({ servers: [server], groups: target.groups }, async (client) => {
        await client.admin.removeGroup(group);
        return 0;
      });
      removed.push(server);
    } catch (e) {
      const code = errCode(e);
      if (code === 'NO_GROUP') absent.push(server);
      else failed.push({ server, code, message: e instanceof Error ? e.message : String(e) });
    }
  }));
  const ok = failed.length === 0 && removed.length > 0;
  const code = failed.length > 0 ? failed[0]!.code : removed.length === 0 ? 'NO_GROUP' : null;
  if (json) {
    process.stdout.write(JSON.stringify({ ok, group, removed, absent, failed, ...(code !== null ? { code } : {}) }) + '\n');
    return ok ? 0 : 1;
  }
  for (const f of failed) process.stderr.write(`flotilla: ${f.code}: ${f.server}: ${f.message}\n`);
  if (removed.length === 0 && failed.length === 0) {
    process.stderr.write(`flotilla: NO_GROUP: no server listed hosts group ${group} (${absent.join(', ')})\n`);
    return 1;
  }
  if (ok) {
    if (absent.length > 0) process.stderr.write(`flotilla: group ${group} was not on ${absent.join(', ')}\n`);
    process.stdout.write('OK\n');
  }
  return ok ? 0 : 1;
}

async function start(config: ReturnType<typeof loadConfig>): Promise<void> {
  // A signal during start is kept and acted on once the node is up (stop() needs a node).
  let signalled: string | null = null;
  let stopNode: ((signal: string) => void) | null = null;
  const onSignal = (signal: string): void => {
    if (signalled !== null) {
      process.stderr.write(`flotilla: ${signal} again: exiting without waiting\n`);
      process.exit(1);
    }
    signalled = signal;
    stopNode?.(signal);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const { startNode } = await import('../node/node.js');
  // A failed shard stops the whole node (docs/operations.md): a supervisor restarts it and it
  // recovers from its log, rather than serving with a hole where the shard's groups were.
  let stopping = false;
  let started: { stop(): Promise<void> } | null = null;
  const node = await startNode(config, {
    onFatal: (err) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`flotilla: ${err.message}; stopping\n`);
      setTimeout(() => process.exit(1), STOP_MS_MAX).unref();
      (started?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
    },
  });
  started = node;
  const h = config.host;
  const id = config.nodeId;
  process.stdout.write(`node ${id} raft ${hostPort(h, node.ports.raft)}\n`);
  process.stdout.write(`node ${id} client tcp ${hostPort(h, node.ports.client)}\n`);
  if (node.ports.ws !== null) process.stdout.write(`node ${id} client ws ${hostPort(h, node.ports.ws)} (${node.wsEngine ?? 'ws'})\n`);
  process.stdout.write(`node ${id} admin http ${hostPort(h, node.ports.admin)}\n`);

  stopNode = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`node ${id} stopping (${signal})\n`);
    setTimeout(() => {
      process.stderr.write(`flotilla: node ${id} did not stop in ${STOP_MS_MAX / 1000} s\n`);
      process.exit(1);
    }, STOP_MS_MAX).unref();
    node.stop().then(() => {
      process.stdout.write(`node ${id} stopped\n`);
      process.exit(0);
    }, (err: unknown) => {
      report(err);
      process.exit(1);
    });
  };
  if (signalled !== null) stopNode(signalled);
}

interface ClientTarget {
  servers: string[];
  groups: number;
}

type Client = Awaited<ReturnType<typeof import('../client/index.js').FlotillaClient.connect>>;

/** Connects, runs `f`, closes; the whole bounded by CLIENT_COMMAND_MS_MAX. */
async function withClient(target: ClientTarget, f: (client: Client) => Promise<number>): Promise<number> {
  const { FlotillaClient } = await import('../client/index.js');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${CLIENT_COMMAND_MS_MAX / 1000} s from ${target.servers.join(', ')}`), { code: 'TIMEOUT' })), CLIENT_COMMAND_MS_MAX);
  });
  let client: Client | null = null;
  try {
    return await Promise.race([
      (async () => {
        client = await FlotillaClient.connect({ servers: target.servers, groups: target.groups });
        return f(client);
      })(),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
    if (client !== null) await (client as Client).close().catch(() => undefined);
  }
}

/** A value as text, or null for no value. */
function showValue(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  return JSON.stringify(v);
}

function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'ERROR';
}

/** Prints `flotilla: CODE: message` for an error (and a JSON object on stdout after --json); returns the exit code it deserves. */
function report(err: unknown, json = false): number {
  let code = errCode(err);
  let message = err instanceof Error ? err.message : String(err);
  let exit = 1;
  if (err instanceof UsageError) {
    message = `${message} (see --help)`;
    exit = EXIT_USAGE;
  } else if (err instanceof ConfigError) {
    code = 'BAD_CONFIG';
    exit = EXIT_USAGE;
  } else if (code === 'BAD_CONFIG' || code === 'CONFIG_MISMATCH') {
    // A configuration the node refused (e.g. a data directory made with another shard count)
    // will not get better by retrying: same exit code as a bad config file.
    exit = EXIT_USAGE;
  }
  process.stderr.write(`flotilla: ${code}: ${message}\n`);
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  return exit;
}

const argv = process.argv.slice(2);
process.stdout.on('error', () => undefined);
main(argv).then((outcome) => {
  if (outcome !== 'running') process.exit(outcome);
}, (err: unknown) => {
  const end = argv.indexOf('--');
  process.exit(report(err, (end < 0 ? argv : argv.slice(0, end)).includes('--json')));
});
