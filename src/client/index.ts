// The Flotilla client library (the package's "flotilla/client" export): see client.ts, and
// docs/protocol.md for the wire protocol. It loads no server code — only this directory,
// src/protocol/client-frame.ts and the KV codec — so a program that only talks to a cluster
// does not pay for the engine (test/package/client-imports.test.ts holds that).
export { CLIENT_DEFAULTS, FlotillaClient, type ClientAdmin, type ClientOptions, type CommandOptions } from './client.js';
export { FlotillaError, type ClientErrorCode, type LeaderHint } from './errors.js';
export { fnv1a32, fnv1a32Utf8, groupOfKey } from './group-of.js';
// For FlotillaClient.command with the built-in KV service's own bytes.
export { encodeCommand } from '../kv/kv-command.js';
export { decodeKvResult } from '../kv/kv-result.js';
export {
  KvError,
  KvResultError,
  type KvCommand,
  type KvErrorCode,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from '../kv/kv-types.js';
