// The Flotilla client library (the package's "flotilla/client" export): see client.ts, and
// docs/protocol.md for the wire protocol. It loads no server code — only this directory,
// src/protocol/client-frame.ts, the KV codec and the key map's pure codec (src/cluster/: slots,
// the map and its image) — so a program that only talks to a cluster
// does not pay for the engine (test/package/client-imports.test.ts holds that).
export { CLIENT_DEFAULTS, FlotillaClient, type ClientAdmin, type ClientOptions, type CommandOptions } from './client.js';
export { FlotillaError, type ClientErrorCode, type LeaderHint, type WrongGroup } from './errors.js';
export type { AddMemberOptions, Members } from './member-admin.js';
// Where keys live: slots and the key map the client routes by (docs/key-map.md).
export { slotOf, SLOT_COUNT } from '../cluster/slots.js';
export type { KeyMap, NodeAddresses } from '../cluster/key-map.js';
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
