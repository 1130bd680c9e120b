// The error a node answers with, carrying the protocol's stable code (protocol.md), and the
// settle functions of a request the main thread waits on (in-process commands, admin).

import type { ErrorBody, ProtocolErrorCode } from '../protocol/client-frame.js';

/** An error answered by a node, with the protocol's stable code. */
export class NodeError extends Error {
  constructor(readonly code: ProtocolErrorCode | string, message: string, readonly leader?: ErrorBody['leader']) {
    super(message);
  }
}

export interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}
