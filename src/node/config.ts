// A node's configuration: the embedded defaults, the four sources layered over them, and the
// checks that keep a bad value from reaching a socket, a ring or the log.
//
// Precedence, lowest first: defaults < config file (JSON) < environment (FLOTILLA_<SNAKE_UPPER>)
// < command-line flags (--kebab-case value). Every key, its default and meaning are listed in
// docs/configuration.md; a test keeps that page and the table below in step.
//
// Unknown keys are errors in the file and the flags, so a typo fails loudly instead of silently
// running on a default. An unknown FLOTILLA_* variable is only a warning (configWarnings): the
// environment is shared with other tools, and a variable meant for one of them must not stop a
// node. Errors name the key and where its value came from.
//
// The parts: config-schema.ts (keys, defaults, schema), config-checks.ts (values and the rules
// between keys); this file loads and layers the sources.
import * as fs from 'node:fs';
import { checkRelations, fromJson, fromString, show, suggest } from './config-checks.js';
import {
  ConfigError, clusterIdOf, configDefaults, configKeys, configSchema, envName, envNotConfig, flagName, type ConfigKey, type NodeConfig,
} from './config-schema.js';

export { parsePeers } from './config-checks.js';
export {
  ConfigError, clusterIdOf, configDefaults, configKeys, configSchema, envName, envNotConfig, flagName, type ConfigKey, type NodeConfig,
} from './config-schema.js';

/** Warnings of each configuration loadConfig built, for the node to log once it has a logger. */
const warningsOf = new WeakMap<NodeConfig, readonly string[]>();

/** What loadConfig noticed but did not refuse (unknown FLOTILLA_* variables); [] for any other object. */
export function configWarnings(config: NodeConfig): readonly string[] {
  return warningsOf.get(config) ?? [];
}

const byEnv = new Map(configKeys.map((k) => [envName(k), k]));
const byFlag = new Map(configKeys.map((k) => [flagName(k), k]));

// ---------------------------------------------------------------------------------------------
// Loading

type Source =
  | { kind: 'default' } | { kind: 'file'; file: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string }
  | { kind: 'option' };

function describe(key: string, src: Source): string {
  switch (src.kind) {
    case 'default': return `${key} (default)`;
    case 'file': return `${key} (file ${src.file})`;
    case 'env': return `${key} (env ${src.name})`;
    case 'flag': return `${key} (flag --${src.name})`;
    case 'option': return `${key} (option)`;
  }
}

/**
 * Builds a node's configuration from the defaults, then a JSON file, then environment variables,
 * then flags; each later source wins. Pass `env: process.env` to read the environment: without
 * it no variable is read. Flags are keyed by their kebab-case name (`'sync-force'`, with or
 * without the leading dashes). Throws ConfigError listing every problem found; what it only
 * warns about is in configWarnings(config), and startNode logs it.
 */
export function loadConfig(opts: { file?: string; env?: Record<string, string | undefined>; flags?: Record<string, string> }): NodeConfig {
  return loadConfigWithSources(opts).config;
}

/** Where a key's effective value came from (`flotilla config` prints it): the file's path, the variable's or flag's name. */
export interface ConfigSource {
  source: 'default' | 'file' | 'env' | 'flag';
  from?: string;
}

/** loadConfig, and for every key where its value came from. */
export function loadConfigWithSources(opts: { file?: string; env?: Record<string, string | undefined>; flags?: Record<string, string> }): {
  config: NodeConfig;
  sources: Record<ConfigKey, ConfigSource>;
} {
  const values = new Map<ConfigKey, unknown>();
  const sources = new Map<ConfigKey, Source>();
  const problems: string[] = [];
  const warnings: string[] = [];

  const set = (key: ConfigKey, raw: unknown, src: Source, fromText: boolean): void => {
    const r = fromText ? fromString(key, raw as string) : fromJson(key, raw);
    if (typeof r === 'string') {
      problems.push(`${describe(key, src)}: ${r}`);
      return;
    }
    values.set(key, r.value);
    sources.set(key, src);
  };

  if (opts.file !== undefined) {
    const src: Source = { kind: 'file', file: opts.file };
    const obj = readConfigFile(opts.file);
    for (const [name, raw] of Object.entries(obj)) {
      if (!Object.hasOwn(configSchema, name)) {
        problems.push(`${name} (file ${opts.file}): not a configuration key${suggest(name, configKeys)}`);
        continue;
      }
      set(name as ConfigKey, raw, src, false);
    }
  }

  if (opts.env !== undefined) {
    for (const [name, raw] of Object.entries(opts.env)) {
      if (!name.startsWith('FLOTILLA_') || raw === undefined || raw === '' || envNotConfig.has(name)) continue;
      const key = byEnv.get(name);
      if (key === undefined) {
        warnings.push(`env ${name}: not a configuration variable, ignored${suggest(name, [...byEnv.keys()])}`);
        continue;
      }
      set(key, raw, { kind: 'env', name }, true);
    }
  }

  if (opts.flags !== undefined) {
    for (const [given, raw] of Object.entries(opts.flags)) {
      const name = given.replace(/^--?/, '');
      const key = byFlag.get(name);
      if (key === undefined) {
        problems.push(`flag --${name}: not a configuration flag${suggest(name, [...byFlag.keys()], '--')}`);
        continue;
      }
      set(key, raw, { kind: 'flag', name }, true);
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const config = { ...configDefaults } as unknown as Record<ConfigKey, unknown>;
  for (const [k, v] of values) config[k] = v;
  const c = config as unknown as NodeConfig;
  if (!values.has('peers')) {
    c.peers = [{ id: c.nodeId, host: c.host, raftPort: c.raftPort, clientPort: c.clientPort, adminPort: c.adminPort, wsPort: c.wsPort }];
    sources.set('peers', { kind: 'default' });
  } else {
    c.peers = c.peers.map((p) => ({ ...p }));
  }

  const src = (k: ConfigKey): Source => sources.get(k) ?? { kind: 'default' };
  checkRelations(c, (keys, text) => problems.push(`${keys.map((k) => describe(k, src(k))).join(', ')}: ${text}`));
  if (problems.length > 0) throw new ConfigError(problems);
  if (warnings.length > 0) warningsOf.set(c, warnings);
  const where = {} as Record<ConfigKey, ConfigSource>;
  for (const k of configKeys) {
    const s = src(k);
    where[k] = s.kind === 'file' ? { source: 'file', from: s.file } : s.kind === 'env' || s.kind === 'flag' ? { source: s.kind, from: s.name } : { source: 'default' };
  }
  return { config: c, sources: where };
}

/**
 * Builds a node's configuration from the defaults and `given`, the options of a program that
 * embeds a node (src/index.ts): values are JSON types, as in a config file, and pass the same
 * checks as loadConfig's. A key given as undefined counts as absent; `peers` absent means this
 * node alone. Throws ConfigError listing every problem found.
 */
export function resolveConfig(given: Partial<NodeConfig>): NodeConfig {
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new ConfigError(`options: expected an object of configuration keys, got ${show(given)}`);
  }
  const values = new Map<ConfigKey, unknown>();
  const problems: string[] = [];
  const src: Source = { kind: 'option' };
  for (const [name, raw] of Object.entries(given)) {
    if (raw === undefined) continue;
    if (!Object.hasOwn(configSchema, name)) {
      problems.push(`${name} (option): not a configuration key${suggest(name, configKeys)}`);
      continue;
    }
    const key = name as ConfigKey;
    const r = fromJson(key, raw);
    if (typeof r === 'string') problems.push(`${describe(key, src)}: ${r}`);
    else values.set(key, r.value);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = { ...configDefaults } as unknown as Record<ConfigKey, unknown>;
  for (const [k, v] of values) config[k] = v;
  const c = config as unknown as NodeConfig;
  if (!values.has('peers')) {
    c.peers = [{ id: c.nodeId, host: c.host, raftPort: c.raftPort, clientPort: c.clientPort, adminPort: c.adminPort, wsPort: c.wsPort }];
  }
  checkRelations(c, (keys, text) => problems.push(`${keys.map((k) => describe(k, values.has(k) ? src : { kind: 'default' })).join(', ')}: ${text}`));
  if (problems.length > 0) throw new ConfigError(problems);
  return c;
}

/** Reads and parses a JSON config file; the top level must be an object. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`config file ${file}: ${err.code === 'ENOENT' ? 'not found' : err.message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ConfigError(`config file ${file}: the top level must be a JSON object of configuration keys`);
  }
  return obj as Record<string, unknown>;
}
