// Flotilla's public surface (the package's "." export). `createNode` starts a whole node in the
// calling process (shard worker threads, listeners, peer links, admin HTTP) with a state machine
// of the program's own, for programs that use Flotilla as the replicated backend of a sharded
// store. docs/embedding.md is the guide; the rest here is re-exported for such programs and for
// clients.
import './native-free-env.js';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, parsePeers, resolveConfig, type NodeConfig } from './node/config.js';
import { startNode, type FlotillaNode, type NodeOptions } from './node/node.js';
import { STATE_MACHINE_EXPORT_DEFAULT } from './shard/state-machine-loader.js';
import type { PeerInfo, StateMachineModule } from './shard/task.js';

export { startNode, NodeError, type FlotillaNode, type NodeOptions } from './node/node.js';
export { ConfigError, configDefaults, loadConfig, resolveConfig, type NodeConfig } from './node/config.js';
export { FlotillaClient, FlotillaError, type ClientOptions, type CommandOptions, type LeaderHint } from './client/index.js';
export type { StateMachine, StateMachineFactory } from './shard/state-machine.js';
export { META_GROUP } from './cluster/meta-group.js';
export { slotOf, SLOT_COUNT } from './cluster/slots.js';
export type { KeyMap } from './cluster/key-map.js';
export type { PeerInfo, StateMachineModule } from './shard/task.js';
export { createKvStateMachine } from './kv/kv-service.js';
export { encodeCommand } from './kv/kv-command.js';
export { decodeKvResult } from './kv/kv-result.js';
export {
  KvError,
  KvResultError,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from './kv/kv-types.js';

export type CreateNodeOptions = Partial<NodeConfig> & {
  /**
   * The module whose export (default `createStateMachine`) makes each group's state machine;
   * imported by every shard worker. `module` is a file URL, an absolute path or a package name.
   * Null or absent: the built-in key-value store.
   */
  stateMachine?: StateMachineModule | null;
  /**
   * Called at most once, if a shard of the node createNode returned fails; the node then stops
   * serving and should be stopped. A failure while starting rejects createNode instead. Default: log.
   */
  onFatal?: (err: Error) => void;
};

/** What createNode uses for keys the options leave out, where it differs from configDefaults. */
const embeddingDefaults = Object.freeze({
  /** Ports: this node's entry in `peers` when given, else 0 (the system picks; see node.ports). */
  port: 0,
  host: '127.0.0.1',
  websocket: 'off',
  logLevel: 'warn',
} as const);

/**
 * Starts a node in this process. Options are NodeConfig keys (checked as loadConfig checks a
 * config file; see docs/configuration.md) plus the state machine; `dataDir` is required.
 * Unlike the command line, a node made here listens on ephemeral ports unless `peers` or the
 * port keys say otherwise, serves no WebSocket unless `websocket` is set, and logs at `warn`.
 * Throws ConfigError (code BAD_CONFIG) for bad options, before touching the data directory;
 * the errors of startNode otherwise.
 */
export async function createNode(options: CreateNodeOptions): Promise<FlotillaNode> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError('createNode takes an object of options');
  }
  const { stateMachine, onFatal, ...given } = options;
  const config = resolveConfig(withEmbeddingDefaults(given));
  if (onFatal !== undefined && typeof onFatal !== 'function') throw new ConfigError('onFatal (option): expected a function');
  const nodeOptions: NodeOptions = { stateMachine: await checkStateMachine(stateMachine) };
  if (onFatal === undefined) return startNode(config, nodeOptions);

  // onFatal is for a node the program holds. A shard that fails while the node starts makes
  // createNode reject instead (startNode reports it both ways); one that fails after the shards
  // were ready but before startNode returned is reported once the caller has the node.
  let started = false;
  let held: Error | null = null;
  nodeOptions.onFatal = (err) => {
    if (started) onFatal(err);
    else held = err;
  };
  const node = await startNode(config, nodeOptions);
  started = true;
  if (held !== null) {
    const err: Error = held;
    setImmediate(() => onFatal(err));
  }
  return node;
}

/** The options with what createNode assumes for keys they leave out. */
function withEmbeddingDefaults(given: Partial<NodeConfig>): Partial<NodeConfig> {
  if (given.dataDir === undefined) {
    throw new ConfigError('dataDir (option): required; a node keeps its log and snapshots there');
  }
  const out: Record<string, unknown> = { ...given };
  const fill = (key: keyof NodeConfig, value: unknown): void => {
    if (out[key] === undefined) out[key] = value;
  };
  // Peers as text are parsed here to find this node's own entry (resolveConfig checks the rest).
  const peers: unknown = typeof given.peers === 'string' ? parsePeers(given.peers) : given.peers;
  if (Array.isArray(peers)) {
    out['peers'] = peers;
    if (peers.length > 1 && given.nodeId === undefined) {
      throw new ConfigError(`nodeId (option): required when peers lists ${peers.length} nodes; it says which one this is`);
    }
    const id = given.nodeId ?? 1;
    const self = (peers as Partial<PeerInfo>[]).find((p) => p !== null && typeof p === 'object' && p.id === id);
    if (self !== undefined) {
      // This node listens where the others will look for it. Missing ports of a peer entry
      // default as they do in a config file: raftPort + 1, + 2, + 3.
      const raft = self.raftPort;
      const next = (k: number): number | undefined => (typeof raft === 'number' ? raft + k : undefined);
      fill('host', self.host);
      fill('raftPort', raft);
      fill('clientPort', self.clientPort ?? next(1));
      fill('adminPort', self.adminPort ?? next(2));
      fill('wsPort', self.wsPort ?? next(3));
    }
  }
  fill('host', embeddingDefaults.host);
  for (const k of ['raftPort', 'clientPort', 'adminPort', 'wsPort'] as const) fill(k, embeddingDefaults.port);
  fill('websocket', embeddingDefaults.websocket);
  fill('logLevel', embeddingDefaults.logLevel);
  return out as Partial<NodeConfig>;
}

/**
 * Checks the state machine option and imports its module once here, so that a wrong path or
 * export name fails as a ConfigError now rather than as a shard that does not start. Returns
 * the spec with `module` as the workers will import it.
 */
async function checkStateMachine(spec: StateMachineModule | null | undefined): Promise<StateMachineModule | null> {
  if (spec === undefined || spec === null) return null;
  const where = 'stateMachine (option)';
  if (typeof spec !== 'object' || typeof spec.module !== 'string' || spec.module.length === 0) {
    throw new ConfigError(`${where}: expected { module: string, export?: string }`);
  }
  if (spec.export !== undefined && (typeof spec.export !== 'string' || spec.export.length === 0)) {
    throw new ConfigError(`${where}: export must be a non-empty string (default ${STATE_MACHINE_EXPORT_DEFAULT})`);
  }
  let module = spec.module;
  if (module.startsWith('./') || module.startsWith('../')) {
    // The workers would resolve it from inside Flotilla, not from the caller.
    throw new ConfigError(`${where}: module ${JSON.stringify(module)} is relative; pass new URL(${JSON.stringify(module)}, import.meta.url).href or an absolute path`);
  }
  if (path.isAbsolute(module)) module = pathToFileURL(module).href;
  const name = spec.export ?? STATE_MACHINE_EXPORT_DEFAULT;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(module)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`${where}: module ${module} could not be imported: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof mod[name] !== 'function') {
    throw new ConfigError(`${where}: module ${module} has no exported function ${name}`);
  }
  return spec.export === undefined ? { module } : { module, export: name };
}
