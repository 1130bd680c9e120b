// Errors the client library surfaces. Every one carries a stable `code`: the server's code
// (docs/protocol.md, "Error codes") when a server answered, or one the library chose for what
// it saw itself (a lost connection, a deadline, a malformed response).
import type { LeaderHint, ProtocolErrorCode } from '../protocol/client-frame.js';

export type { LeaderHint };

/**
 * Codes a FlotillaError can carry: the protocol's, plus `BAD_RESULT` for a Result body that
 * is not what the KV service returns, and `WRONG_PORT` when the server's first bytes show it
 * is not a client port (an HTTP answer: the admin port; a peer hello: the Raft port). Servers
 * may add codes; treat unknown ones as final.
 */
export type ClientErrorCode = ProtocolErrorCode | 'BAD_RESULT' | 'WRONG_PORT';

/** What a WRONG_GROUP answer says: the answering node's map version and the slot's owner there. */
export interface WrongGroup {
  version: number;
  /** The group that owns the slot in that map (0: none does). */
  group: number;
  slot: number;
  /** The node that answered ("host:port"): it holds a map of at least that version. */
  server: string;
}

export class FlotillaError extends Error {
  readonly code: string;
  /** Where the group's leader is, when a server said so (NOT_LEADER; WRONG_GROUP: the owner's, if known). */
  readonly leader?: LeaderHint;
  /** WRONG_GROUP: where the key lives in the answering node's map. */
  readonly wrongGroup?: WrongGroup;

  constructor(code: ClientErrorCode | string, message: string, leader?: LeaderHint, wrongGroup?: WrongGroup) {
    super(message);
    this.name = 'FlotillaError';
    this.code = code;
    if (leader !== undefined) this.leader = leader;
    if (wrongGroup !== undefined) this.wrongGroup = wrongGroup;
  }
}
