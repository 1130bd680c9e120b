#!/usr/bin/env node
// The `flotilla` command: run a node, run a local cluster, and talk to one (kv, admin).
// Parsing lives in args.ts (pure, tested); this file does the I/O. Exit codes: 0 done, 1 the
// operation failed (the message carries the server's code), 2 a usage or configuration error.
import '../native-free-env.js';
import { fileURLToPath } from 'node:url';
import { ConfigError, configDefaults, loadConfig } from '../node/config.js';
import { UsageError, onlyFlags, parseArgv, parseMembers, parsePositiveInt, parseServers } from './args.js';
import { hostPort, parseClusterFlags, runCluster } from './cluster.js';

const SWITCHES: ReadonlySet<string> = new Set(['stale', 'help']);
const CLIENT_FLAGS = ['servers', 'groups'];
/** kv and admin commands give up after this long rather than hang on an unreachable cluster. */
const CLIENT_COMMAND_MS_MAX = 30_000;
const STOP_MS_MAX = 60_000;

const HELP = `flotilla: a Multi-Raft key-value engine

usage:
  flotilla start [--config FILE] [--<key> VALUE ...]
      Run a node. Configuration: defaults < FILE (JSON) < FLOTILLA_<KEY> environment
      variables < flags (--node-id 2, --sync-force false, ...); see docs/configuration.md.
      SIGINT or SIGTERM stops the node cleanly.
  flotilla cluster --nodes N [--dir DIR] [--groups G] [--sync-force true|false]
                   [--base-port P] [--shards S] [--tick-ms T] [--host H]
      Run N nodes on this machine (node i on ports P+10(i-1) .. +3; default P 7001, DIR
      ./data/cluster). Reuses DIR/node-i/flotilla.json when it exists. Prints "cluster
      ready" once every node is healthy; SIGINT or SIGTERM stops them all.
  flotilla kv put KEY VALUE | get KEY [--stale] | delete KEY [--servers H:P,...] [--groups G]
      Read and write the key-value store (default --servers 127.0.0.1:7002, --groups ${configDefaults.groups};
      --groups must match the cluster's). get prints the value or (nil); delete prints OK,
      or (nil) when the key was not there. Put "--" before operands that start with "--".
  flotilla admin add-group G --members 1,2,3 | remove-group G [--servers H:P,...] [--groups G]
      Create group G with these voters, or remove it. Each node changes only itself: list
      the client address of every member in --servers.
  flotilla bench [--mode raft|echo] [--nodes 1|3] [--groups G] [--clients C] [--pipeline P]
                 [--value-bytes B] [--keys K] [--op put|get|mixed] [--duration S] [--warmup S]
                 [--sync-force true|false] [--transport tcp|ws] [--shards S] [--servers H:P,...]
                 [--echo-baseline S] [--json FILE] [--cpu-prof DIR] [--node-config JSON]
      Benchmark: starts N nodes on 127.0.0.1 (or drives --servers), keeps C connections with
      P requests in flight each, prints ops/s and latency each second and a summary.
      Defaults: raft, 3 nodes, 1 group, 8 x 128, 256-byte values, 100,000 keys, put, 30 s after
      5 s of warm-up, syncForce true, tcp; then 10 s of echo mode for the ceiling (docs/benchmarks.md).
  flotilla help

exit codes: 0 ok, 1 the operation failed (prints "flotilla: CODE: message"), 2 bad usage or config.
`;

/** What main decided: exit now with a code, or keep running (a node, a cluster). */
type Outcome = number | 'running';

async function main(argv: string[]): Promise<Outcome> {
  const { positionals, flags } = parseArgv(argv, SWITCHES);
  const [command, ...operands] = positionals;
  if (flags['help'] !== undefined || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  switch (command) {
    case 'start':
      if (operands.length > 0) throw new UsageError(`start takes no operand ${JSON.stringify(operands[0])}`);
      await start(flags);
      return 'running';
    case 'cluster':
      if (operands.length > 0) throw new UsageError(`cluster takes no operand ${JSON.stringify(operands[0])}`);
      await runCluster(parseClusterFlags(flags), fileURLToPath(import.meta.url));
      return 'running';
    case 'kv':
      return kv(operands, flags);
    case 'admin':
      return admin(operands, flags);
    case 'bench': {
      if (operands.length > 0) throw new UsageError(`bench takes no operand ${JSON.stringify(operands[0])}`);
      // The benchmark lives in bench/ (compiled beside src/); loaded only for this command.
      const { parseBenchFlags, runFlotillaBench } = await import('../../bench/flotilla-bench.js');
      const result = await runFlotillaBench(parseBenchFlags(flags));
      return result.errors > 0 && result.ops === result.errors ? 1 : 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

async function start(flags: Record<string, string>): Promise<void> {
  const { config: file, ...rest } = flags;
  const config = loadConfig({ ...(file !== undefined ? { file } : {}), env: process.env, flags: rest });

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

function clientTarget(flags: Record<string, string>, allowed: string[], command: string): ClientTarget {
  onlyFlags(flags, allowed, command);
  return {
    servers: parseServers(flags['servers'] ?? '127.0.0.1:7002'),
    groups: flags['groups'] === undefined ? configDefaults.groups : parsePositiveInt(flags['groups'], '--groups'),
  };
}

async function kv(operands: string[], flags: Record<string, string>): Promise<number> {
  const [op, key, value, ...extra] = operands;
  const arity: Record<string, number> = { put: 2, get: 1, delete: 1 };
  if (op === undefined || !Object.hasOwn(arity, op)) throw new UsageError('kv needs put KEY VALUE, get KEY or delete KEY');
  const given = operands.length - 1;
  if (given !== arity[op] || extra.length > 0) throw new UsageError(`kv ${op} takes ${arity[op]} operand(s), got ${given}`);
  const target = clientTarget(flags, op === 'get' ? [...CLIENT_FLAGS, 'stale'] : CLIENT_FLAGS, `kv ${op}`);
  const stale = flags['stale'] === 'true';

  return withClient(target, async (client) => {
    if (op === 'put') {
      await client.put(key!, value!);
      process.stdout.write('OK\n');
    } else if (op === 'get') {
      const v: unknown = await client.get(key!, { stale });
      process.stdout.write(showValue(v) + '\n');
    } else {
      // delete says whether the key was there.
      const existed: unknown = await client.delete(key!);
      process.stdout.write(existed === false ? '(nil)\n' : 'OK\n');
    }
    return 0;
  });
}

async function admin(operands: string[], flags: Record<string, string>): Promise<number> {
  const [op, groupText, ...extra] = operands;
  if (op !== 'add-group' && op !== 'remove-group') throw new UsageError('admin needs add-group G --members 1,2,3 or remove-group G');
  if (extra.length > 0) throw new UsageError(`admin ${op} takes one operand, the group id`);
  const group = parsePositiveInt(groupText, 'the group id', 0xffff_fffe);
  const target = clientTarget(flags, op === 'add-group' ? [...CLIENT_FLAGS, 'members'] : CLIENT_FLAGS, `admin ${op}`);
  const members = op === 'add-group' ? parseMembers(flags['members']) : [];

  return withClient(target, async (client) => {
    const reply: unknown = op === 'add-group' ? await client.admin.addGroup(group, members) : await client.admin.removeGroup(group);
    if (isFailedReply(reply)) {
      process.stderr.write(`flotilla: ${reply.code}: ${reply.message}\n`);
      return 1;
    }
    process.stdout.write('OK\n');
    return 0;
  });
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

function isFailedReply(r: unknown): r is { ok: false; code: string; message: string } {
  return typeof r === 'object' && r !== null && (r as { ok?: unknown }).ok === false;
}

function showValue(v: unknown): string {
  if (v === null || v === undefined) return '(nil)';
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  return JSON.stringify(v);
}

/** Prints `flotilla: CODE: message` for an error; returns the exit code it deserves. */
function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`flotilla: USAGE: ${err.message} (see flotilla help)\n`);
    return 2;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`flotilla: BAD_CONFIG: ${err.message}\n`);
    return 2;
  }
  const code = typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'ERROR';
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`flotilla: ${code}: ${message}\n`);
  // A configuration the node refused (e.g. a data directory made with another shard count)
  // will not get better by retrying: same exit code as a bad config file.
  return code === 'BAD_CONFIG' || code === 'CONFIG_MISMATCH' ? 2 : 1;
}

process.stdout.on('error', () => undefined);
main(process.argv.slice(2)).then((outcome) => {
  if (outcome !== 'running') process.exit(outcome);
}, (err: unknown) => {
  process.exit(report(err));
});
