// The contract of the client listeners of the main thread: they accept client connections,
// cut the bytes into request frames (src/protocol/client-frame.ts), hand each well-formed frame
// to a handler and write the handler's response frames back. Nothing here decodes a frame body.
//
// Three engines keep this contract: node:net for plain TCP (tcp-listener.ts), uWebSockets.js
// (uws-listener.ts) and the pure-JS `ws` package (ws-listener.ts) for WebSocket, chosen by
// websocket-listener.ts. What they share is in files of its own: the bounds and the options
// check (listener-limits.ts), framing and header checks (client-framing.ts), a connection's
// output queue, pause and close states (client-connection.ts), the set of connections and the
// per-turn flush (listener-core.ts).
//
// Backpressure, for every engine:
// - the handler pauses a connection when it cannot take more requests (a full ring, too many
//   in flight, too many bytes under way: inflightBytesPerConnMax) and resumes it later; a paused connection delivers no frame, even one already
//   read in the same chunk;
// - the listener pauses reading a connection by itself while its unsent output is above
//   pendingBytesHigh (a client that sends and never reads), and lifts that pause, calling
//   onDrain, once the output is below pendingBytesLow;
// - a connection whose unsent output would go above pendingBytesMax is destroyed.
//
// Output is copied into a per-connection buffer on send() and written once per event-loop turn
// (setImmediate), so that a turn costs one write per connection however many frames it sends.

import type { ProtocolErrorCode } from '../protocol/client-frame.js';

export interface ClientConnection {
  /** From opts.nextId(): unique across all listeners of a node, never 0. */
  readonly id: number;
  readonly transport: 'tcp' | 'ws';
  /** The peer's address ("ip:port" when the engine knows the port, else "ip"). */
  readonly remote: string;
  /**
   * Queues bytes: one or more whole response frames. Over WebSocket each frame becomes one
   * binary message: the bytes are split by the frames' headers, and bytes that are not whole
   * frames are a bug (throws). Queued bytes are written once per event-loop turn, not per call.
   * The bytes are copied before this returns: the caller may reuse them. Ignored once the
   * connection is closing or closed. Destroys the connection when its pendingBytes would go
   * above pendingBytesMax.
   */
  send(bytes: Uint8Array): void;
  /** Bytes queued or buffered by the socket and not yet sent. */
  readonly pendingBytes: number;
  /** Stops delivering frames (idempotent; a boolean, not a count). */
  pause(): void;
  /** Restarts delivering frames; those held while paused come first, in a later turn. */
  resume(): void;
  /** Sends an Error frame (msgpack {code, message}) and closes the connection after it is written. */
  closeWithError(code: ProtocolErrorCode, message: string, requestId?: number): void;
  /** Writes what is queued, then closes. */
  close(): void;
}

export interface ClientHandler {
  onOpen(conn: ClientConnection): void;
  /**
   * One well-formed request frame (headerProblem(...) === null with requestKinds=true):
   * buf[at, at + frameBytes). Valid only during the call: copy what must outlive it.
   */
  onFrame(conn: ClientConnection, buf: Uint8Array, at: number, frameBytes: number): void;
  /** The connection's pendingBytes fell below pendingBytesLow after having been above pendingBytesHigh. */
  onDrain(conn: ClientConnection): void;
  /** Once per connection that had onOpen, after which the connection ignores every call. */
  onClose(conn: ClientConnection): void;
}

export interface ListenerLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface ListenerOptions {
  host: string;
  /** 0 = ephemeral. */
  port: number;
  frameBytesMax: number;
  /** Beyond: accept then close at once (TCP, after an OVERLOADED Error frame) / reject the upgrade with 503 (ws). */
  connectionsMax: number;
  /** Above: the listener pauses reading that connection by itself, until below pendingBytesLow. */
  pendingBytesHigh: number;
  pendingBytesLow: number;
  /** Above: the connection is destroyed (logged through opts.log). */
  pendingBytesMax: number;
  nextId: () => number;
  log?: ListenerLog;
  /** TCP: longest a frame may take from its first bytes to its last (tcp-listener.ts); default 10 s. */
  frameReadTimeoutMs?: number;
  /** WebSocket engines: the browser origins allowed (config wsOrigins, ws-origins.ts); default 'self' (this host only). */
  wsOrigins?: string;
}

export interface ClientListener {
  readonly port: number;
  readonly engine: 'net' | 'uws' | 'ws';
  connections(): number;
  /** Stops listening and closes every connection; resolves once all are closed. */
  close(): Promise<void>;
}
