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

export class FlotillaError extends Error {
  readonly code: string;
  /** Where the group's leader is, when a server said so (NOT_LEADER). */
  readonly leader?: LeaderHint;

  constructor(code: ClientErrorCode | string, message: string, leader?: LeaderHint) {
    super(message);
    this.name = 'FlotillaError';
    this.code = code;
    if (leader !== undefined) this.leader = leader;
  }
}
