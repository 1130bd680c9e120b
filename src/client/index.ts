// The Flotilla client library: see client.ts, and docs/protocol.md for the wire protocol.
export { FlotillaClient, type ClientAdmin, type ClientOptions, type CommandOptions } from './client.js';
export { FlotillaError, type ClientErrorCode, type LeaderHint } from './errors.js';
export { fnv1a32, fnv1a32Utf8, groupOfKey } from './group-of.js';
export type { KvSingleCommand, KvSingleResult } from '../kv/kv-state-machine.js';
