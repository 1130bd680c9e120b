// `flotilla start` and `flotilla config`: the two commands that read a node's configuration
// (defaults < file < environment < flags), one to run the node in this process until a signal,
// one to show what it would run with and where each value came from.
import {
  configDefaults, configKeys, envName, flagName, loadConfig, loadConfigWithSources, type ConfigKey,
} from '../node/config.js';
import type { CommandSpec, OptionSpecs } from './args.js';
import { CLIENT_OPTIONS } from './client-target.js';
import { hostPort } from './cluster.js';
import { report } from './exit-report.js';

const STOP_MS_MAX = 60_000;


/** Every configuration key as a flag (--node-id, --sync-force, ...), for start and config. */
const CONFIG_KEY_OPTIONS: OptionSpecs = Object.fromEntries(configKeys.map((k) => [flagName(k), {
  type: 'string' as const,
  value: 'VALUE',
  help: `${k} (env ${envName(k)}; default ${JSON.stringify(configDefaults[k]).slice(0, 40)})`,
}]));

const CONFIG_FILE_OPTION = { config: { type: 'string', value: 'FILE', help: 'a JSON config file' } } as const satisfies OptionSpecs;

export const NODE_SPECS = {
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
} as const satisfies Record<string, CommandSpec>;

/** The file and flags of start/config: `--config` apart, every other flag a configuration key. */
export function configOptions(v: Record<string, string | boolean | undefined>): { file?: string; flags: Record<string, string> } {
  const flags: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'config' && k !== 'json' && typeof x === 'string') flags[k] = x;
  const file = v['config'];
  return typeof file === 'string' ? { file, flags } : { flags };
}

export function showConfig(v: Record<string, string | boolean | undefined>): number {
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

export async function runNode(config: ReturnType<typeof loadConfig>): Promise<void> {
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
