// Client listeners of the main thread: they accept client connections, cut the bytes into
// request frames (src/protocol/client-frame.ts), hand each well-formed frame to a handler and
// write the handler's response frames back. Nothing here decodes a frame body.
//
// Three engines share the contract below: node:net for plain TCP (this file), uWebSockets.js
// (uws-listener.ts) and the pure-JS `ws` package (native-free/ws-listener.ts) for WebSocket,
// chosen by websocket-listener.ts. This file also holds what the engines share: the options
// check, the per-turn flush, the output queue, pause and backpressure, and the Error frame.
//
// Backpressure, for every engine:
// - the handler pauses a connection when it cannot take more requests (a full ring, too many
//   in flight) and resumes it later; a paused connection delivers no frame, even one already
//   read in the same chunk;
// - the listener pauses reading a connection by itself while its unsent output is above
//   pendingBytesHigh (a client that sends and never reads), and lifts that pause, calling
//   onDrain, once the output is below pendingBytesLow;
// - a connection whose unsent output would go above pendingBytesMax is destroyed.
//
// Output is copied into a per-connection buffer on send() and written once per event-loop turn
// (setImmediate), so that a turn costs one write per connection however many frames it sends.

import * as net from 'node:net';
import { pack } from 'msgpackr';
import {
  encodeFrame, FRAME_HEADER_BYTES, FrameKind, headerProblem, type ErrorBody, type ProtocolErrorCode,
} from '../protocol/client-frame.js';

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
}

export interface ClientListener {
  readonly port: number;
  readonly engine: 'net' | 'uws' | 'ws';
  connections(): number;
  /** Stops listening and closes every connection; resolves once all are closed. */
  close(): Promise<void>;
}

/** How long a closing connection may take to write its last bytes before it is destroyed. */
export const CLOSE_LINGER_MS = 2000;

const LOG_NONE: ListenerLog = { warn: () => undefined, info: () => undefined };

/** Throws on options that cannot work: a configuration error, reported before listening. */
export function checkListenerOptions(opts: ListenerOptions): void {
  const whole = (name: keyof ListenerOptions, min: number): void => {
    const v = opts[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new RangeError(`listener option ${name} must be an integer ≥ ${min}, got ${String(v)}`);
    }
  };
  whole('port', 0);
  whole('frameBytesMax', FRAME_HEADER_BYTES);
  whole('connectionsMax', 1);
  whole('pendingBytesLow', 1);
  whole('pendingBytesHigh', 1);
  whole('pendingBytesMax', 1);
  if (opts.frameBytesMax > 0xffffffff) throw new RangeError('listener option frameBytesMax must fit in a u32');
  if (!(opts.pendingBytesLow < opts.pendingBytesHigh && opts.pendingBytesHigh < opts.pendingBytesMax)) {
    throw new RangeError(`listener options need pendingBytesLow < pendingBytesHigh < pendingBytesMax, got ${opts.pendingBytesLow}, ${opts.pendingBytesHigh}, ${opts.pendingBytesMax}`);
  }
  if (typeof opts.nextId !== 'function') throw new TypeError('listener option nextId must be a function');
}

/** A whole Error frame for `requestId`, group 0, body msgpack `{ code, message }`. */
export function errorFrame(code: ProtocolErrorCode, message: string, requestId: number): Uint8Array {
  return encodeFrame(FrameKind.Error, 0, requestId >>> 0, 0, pack({ code, message } satisfies ErrorBody) as Uint8Array);
}

/** The requestId of a frame that may be cut short: 0 unless its first 12 bytes are there. */
export function requestIdOf(buf: Uint8Array, at: number, have: number): number {
  if (have < 12) return 0;
  return (buf[at + 8]! | (buf[at + 9]! << 8) | (buf[at + 10]! << 16) | (buf[at + 11]! << 24)) >>> 0;
}

function u32At(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

// A scratch header for checking the first bytes of a header before all 16 have arrived.
const scratch = new Uint8Array(FRAME_HEADER_BYTES);

/**
 * Why the first `have` (< 16) bytes of a header already make it malformed, or null. The bytes
 * not there yet are taken as ones that would pass (each field is judged once its bytes are all
 * there, the reserved u16 byte by byte), so a peer that sends a bad length and waits is
 * answered at once instead of holding the connection.
 */
export function partialHeaderProblem(buf: Uint8Array, at: number, have: number, frameBytesMax: number): string | null {
  // Below 4 bytes the length is not known: its upper bytes may still make any value.
  if (have < 4) return null;
  scratch.fill(0);
  scratch[0] = FRAME_HEADER_BYTES; // frameBytes 16 (the upper bytes are 0), kind Command
  scratch[4] = FrameKind.Command;
  for (let i = 0; i < have; i++) scratch[i] = buf[at + i]!;
  return headerProblem(scratch, 0, frameBytesMax, true);
}

/** Why a WebSocket message is not exactly one well-formed request frame, or null. */
export function messageProblem(buf: Uint8Array, at: number, bytes: number, frameBytesMax: number): string | null {
  if (bytes < FRAME_HEADER_BYTES) return `message of ${bytes} bytes is shorter than a frame header`;
  const problem = headerProblem(buf, at, frameBytesMax, true);
  if (problem !== null) return problem;
  const frameBytes = u32At(buf, at);
  if (frameBytes !== bytes) return `message of ${bytes} bytes carries a frame of ${frameBytes} bytes`;
  return null;
}

/** Throws unless `bytes` is a run of whole frames (what a WebSocket send needs). */
export function assertWholeFrames(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) {
    const frameBytes = at + 4 <= bytes.length ? u32At(bytes, at) : 0;
    if (frameBytes < FRAME_HEADER_BYTES || frameBytes > bytes.length - at) {
      throw new Error(`send(): ${bytes.length} bytes are not whole frames (at ${at}: frameBytes ${frameBytes})`);
    }
    at += frameBytes;
  }
}

// ---------------------------------------------------------------------------------------------
// What every engine shares: the set of connections and the per-turn flush.

const enum State { Open, Closing, Closed }

/** One listener's connections and its once-per-turn flush. */
export class ListenerCore {
  readonly log: ListenerLog;
  readonly conns = new Set<ConnectionBase>();
  private dirty: ConnectionBase[] = [];
  private flushing: ConnectionBase[] = [];
  private flushScheduled = false;
  private closedWaiters: Array<() => void> = [];

  constructor(readonly opts: ListenerOptions, readonly handler: ClientHandler) {
    this.log = opts.log ?? LOG_NONE;
  }

  nextId(): number {
    const id = this.opts.nextId();
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`nextId() returned ${id}: connection ids are positive integers`);
    return id;
  }

  /** At capacity: a new connection is to be turned away. */
  full(): boolean {
    return this.conns.size >= this.opts.connectionsMax;
  }

  opened(conn: ConnectionBase): void {
    this.conns.add(conn);
    this.handler.onOpen(conn);
  }

  closed(conn: ConnectionBase): void {
    this.conns.delete(conn);
    this.handler.onClose(conn);
    if (this.conns.size === 0 && this.closedWaiters.length > 0) {
      const waiters = this.closedWaiters;
      this.closedWaiters = [];
      for (const w of waiters) w();
    }
  }

  scheduleFlush(conn: ConnectionBase): void {
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    // Swap the lists so that sends made while flushing (from an onDrain) go to the next turn.
    const list = this.dirty;
    this.dirty = this.flushing;
    this.flushing = list;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  };

  /** Closes every connection; resolves when the last one has called onClose. */
  closeAll(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      if (this.conns.size === 0) resolve();
      else this.closedWaiters.push(resolve);
    });
    for (const conn of [...this.conns]) conn.close();
    return done;
  }
}

/**
 * A connection of any engine: the output queue, the pause flags and the close states. An engine
 * supplies how to write, how to stop and restart reading, and how frames held while paused are
 * delivered again.
 */
export abstract class ConnectionBase implements ClientConnection {
  readonly id: number;
  protected state = State.Open;
  /** Paused by the handler. */
  protected userPaused = false;
  /** Paused by the listener: output above pendingBytesHigh, not yet below pendingBytesLow. */
  protected writePaused = false;
  private out: Buffer | null = null;
  private outLen = 0;
  /** How much the last flush wrote: the next output buffer starts that big. */
  private outHint = 0;
  private lingerTimer: NodeJS.Timeout | null = null;

  constructor(protected readonly core: ListenerCore, readonly transport: 'tcp' | 'ws', readonly remote: string) {
    this.id = core.nextId();
  }

  /** Bytes the socket (or the engine) holds, not yet sent. */
  protected abstract socketPendingBytes(): number;
  /** Writes `bytes` (whole frames, owned by the socket from now on). */
  protected abstract writeOut(bytes: Buffer): void;
  protected abstract stopReading(): void;
  /** Delivers what was held while paused (in a later turn), then reads again. */
  protected abstract restartReading(): void;
  /** Closes after what was written is sent. */
  protected abstract endSocket(): void;
  protected abstract destroySocket(): void;

  get pendingBytes(): number {
    return this.socketPendingBytes() + this.outLen;
  }

  get isOpen(): boolean {
    return this.state === State.Open;
  }

  /** Frames must not be delivered now. */
  protected get deliveryPaused(): boolean {
    return this.userPaused || this.writePaused || this.state !== State.Open;
  }

  send(bytes: Uint8Array): void {
    if (this.state !== State.Open) return;
    if (this.transport === 'ws') assertWholeFrames(bytes);
    if (bytes.length === 0) return;
    const pending = this.pendingBytes + bytes.length;
    if (pending > this.core.opts.pendingBytesMax) {
      this.core.log.warn({ conn: this.id, remote: this.remote, pendingBytes: pending, pendingBytesMax: this.core.opts.pendingBytesMax },
        'client connection destroyed: it does not read its responses');
      this.destroy();
      return;
    }
    this.enqueue(bytes);
    if (!this.writePaused && pending > this.core.opts.pendingBytesHigh) this.enterWritePause();
  }

  private enqueue(bytes: Uint8Array): void {
    const need = this.outLen + bytes.length;
    if (this.out === null) {
      // Small buffers come from Node's shared pool; a busy connection starts at its last size.
      this.out = Buffer.allocUnsafe(Math.max(need, this.outHint, 1024));
      this.core.scheduleFlush(this);
    } else if (need > this.out.length) {
      // Bounded: send() keeps outLen at most pendingBytesMax.
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(2 * this.out.length, this.core.opts.pendingBytesMax)));
      grown.set(this.out.subarray(0, this.outLen), 0);
      this.out = grown;
    }
    this.out.set(bytes, this.outLen);
    this.outLen = need;
  }

  /** Writes what is queued (the per-turn flush, and before closing). */
  flush(): void {
    if (this.out === null || this.state === State.Closed) return;
    const bytes = this.out.subarray(0, this.outLen);
    this.outHint = Math.min(this.outLen, 1024 * 1024);
    this.out = null;
    this.outLen = 0;
    this.writeOut(bytes);
    if (this.state === State.Open && !this.writePaused && this.pendingBytes > this.core.opts.pendingBytesHigh) this.enterWritePause();
  }

  private enterWritePause(): void {
    this.writePaused = true;
    this.stopReading();
  }

  /** The engine calls this when the socket has written some bytes. */
  protected written(): void {
    if (!this.writePaused || this.state !== State.Open) return;
    if (this.pendingBytes >= this.core.opts.pendingBytesLow) return;
    this.writePaused = false;
    if (!this.userPaused) this.restartReading();
    this.core.handler.onDrain(this);
  }

  pause(): void {
    if (this.userPaused || this.state !== State.Open) return;
    this.userPaused = true;
    this.stopReading();
  }

  resume(): void {
    if (!this.userPaused) return;
    this.userPaused = false;
    if (!this.writePaused && this.state === State.Open) this.restartReading();
  }

  closeWithError(code: ProtocolErrorCode, message: string, requestId = 0): void {
    if (this.state !== State.Open) return;
    // An Error frame is small: it goes out even past pendingBytesMax, since the connection ends.
    this.enqueue(errorFrame(code, message, requestId));
    this.close();
  }

  close(): void {
    if (this.state !== State.Open) return;
    this.state = State.Closing;
    this.flush();
    this.endSocket();
    if (this.state === State.Closing) {
      this.lingerTimer = setTimeout(() => this.destroySocket(), CLOSE_LINGER_MS);
      this.lingerTimer.unref();
    }
  }

  /** Closes at once, dropping what is unsent. */
  destroy(): void {
    if (this.state === State.Closed) return;
    this.state = State.Closing;
    this.out = null;
    this.outLen = 0;
    this.destroySocket();
  }

  /** The engine calls this once the socket is closed, whatever closed it. */
  protected socketClosed(): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    this.out = null;
    this.outLen = 0;
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.core.closed(this);
  }

  /** Hands one frame to the handler. */
  protected deliver(buf: Uint8Array, at: number, frameBytes: number): void {
    this.core.handler.onFrame(this, buf, at, frameBytes);
  }

  /** A malformed frame: log it, answer BAD_FRAME and close. */
  protected badFrame(problem: string, requestId: number): void {
    this.core.log.info({ conn: this.id, remote: this.remote, problem }, 'client sent a malformed frame');
    this.closeWithError('BAD_FRAME', problem, requestId);
  }
}

/**
 * A connection that receives one frame per message (both WebSocket engines): frames that arrive
 * while paused are held, in order, and delivered on resume. The engine stops its socket when it
 * can; what still arrives is bounded by pendingBytesMax, beyond which the connection is closed
 * with OVERLOADED (uWebSockets.js cannot stop reading a WebSocket, so there this is the bound).
 */
export abstract class MessageConnection extends ConnectionBase {
  private held: Uint8Array[] = [];
  private heldAt = 0;
  private heldBytes = 0;
  private redeliverScheduled = false;

  /**
   * One message from the socket. `copyIfHeld`: the bytes are only valid during the call (uWS),
   * so a held message must be copied.
   */
  protected message(buf: Uint8Array, isBinary: boolean, copyIfHeld: boolean): void {
    if (this.state !== State.Open) return;
    if (!isBinary) {
      this.badFrame('text message: frames travel as binary messages', 0);
      return;
    }
    const problem = messageProblem(buf, 0, buf.length, this.core.opts.frameBytesMax);
    if (problem !== null) {
      this.badFrame(problem, requestIdOf(buf, 0, buf.length));
      return;
    }
    if (this.deliveryPaused || this.held.length > this.heldAt) {
      this.heldBytes += buf.length;
      if (this.heldBytes > this.core.opts.pendingBytesMax) {
        this.core.log.warn({ conn: this.id, remote: this.remote, heldBytes: this.heldBytes },
          'client connection closed: it kept sending while paused');
        this.closeWithError('OVERLOADED', 'too many requests while paused', requestIdOf(buf, 0, buf.length));
        return;
      }
      this.held.push(copyIfHeld ? buf.slice() : buf);
      return;
    }
    this.deliver(buf, 0, buf.length);
  }

  protected override restartReading(): void {
    if (this.held.length > this.heldAt) {
      if (!this.redeliverScheduled) {
        this.redeliverScheduled = true;
        setImmediate(this.redeliver);
      }
      return;
    }
    this.startReading();
  }

  protected abstract startReading(): void;

  private readonly redeliver = (): void => {
    this.redeliverScheduled = false;
    while (this.held.length > this.heldAt) {
      if (this.deliveryPaused) return; // a later resume() schedules the rest
      const buf = this.held[this.heldAt]!;
      this.held[this.heldAt++] = EMPTY;
      this.heldBytes -= buf.length;
      this.deliver(buf, 0, buf.length);
    }
    this.held.length = 0;
    this.heldAt = 0;
    if (!this.deliveryPaused) this.startReading();
  };

  protected override socketClosed(): void {
    this.held = [];
    this.heldAt = 0;
    this.heldBytes = 0;
    super.socketClosed();
  }

  /** The WebSocket close code for closing after an Error frame with `code`. */
  protected closeCode = 1000;

  override closeWithError(code: ProtocolErrorCode, message: string, requestId = 0): void {
    if (this.state !== State.Open) return;
    this.closeCode = wsCloseCode(code);
    super.closeWithError(code, message, requestId);
  }
}

/** WebSocket close codes (RFC 6455 §7.4.1) for the errors a listener closes with. */
export function wsCloseCode(code: ProtocolErrorCode): number {
  switch (code) {
    case 'BAD_FRAME': return 1008;   // policy violation
    case 'TOO_LARGE': return 1009;   // message too big
    case 'OVERLOADED': return 1013;  // try again later
    case 'UNAVAILABLE': return 1001; // going away
    default: return 1011;            // internal error
  }
}

/** The length of the frame at `at` (for splitting output checked by assertWholeFrames). */
export function frameBytesAt(buf: Uint8Array, at: number): number {
  return u32At(buf, at);
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// TCP: frames back to back on a byte stream.

/** Where a frame reader hands what it finds. */
export interface FrameSink {
  /** True: stop before the next frame (the reader reports where it stopped). */
  readonly readerPaused: boolean;
  frame(buf: Uint8Array, at: number, frameBytes: number): void;
  /** A malformed header; the reader stops for good. */
  bad(problem: string, requestId: number): void;
}

/**
 * Cuts a byte stream into frames. A frame inside one chunk is handed over in place; a frame that
 * spans chunks is assembled in a buffer of the length its checked header gives (never more than
 * frameBytesMax). Headers are checked as their bytes arrive, so a bad length is caught early.
 */
export class FrameReader {
  private asm: Buffer | null = null;
  /** Bytes of the frame being assembled so far (0: none). */
  private asmHave = 0;
  /** Its length once its header is complete, else 0. */
  private asmNeed = 0;
  private broken = false;
  private readonly header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);

  constructor(private readonly frameBytesMax: number, private readonly sink: FrameSink) {}

  /** Bytes held for a frame not yet complete. */
  get partialBytes(): number {
    return this.asmHave;
  }

  /**
   * Reads chunk[at..]. Returns where it stopped: chunk.length when all was taken, less when the
   * sink paused (the caller feeds the rest later) or a bad frame stopped the reader.
   */
  consume(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    const max = this.frameBytesMax;
    while (at < end) {
      if (this.broken || this.sink.readerPaused) return at;
      if (this.asmHave > 0) {
        at = this.assemble(chunk, at);
        continue;
      }
      const have = end - at;
      if (have < FRAME_HEADER_BYTES) {
        const problem = partialHeaderProblem(chunk, at, have, max);
        if (problem !== null) return this.fail(problem, requestIdOf(chunk, at, have), at);
        this.header.set(chunk.subarray(at, end), 0);
        this.asmHave = have;
        return end;
      }
      const problem = headerProblem(chunk, at, max, true);
      if (problem !== null) return this.fail(problem, requestIdOf(chunk, at, have), at);
      const frameBytes = u32At(chunk, at);
      if (frameBytes <= have) {
        this.sink.frame(chunk, at, frameBytes);
        at += frameBytes;
        continue;
      }
      this.startAssembly(frameBytes);
      this.asm!.set(chunk.subarray(at, end), 0);
      this.asmHave = have;
      return end;
    }
    return at;
  }

  /** Continues a frame that started in an earlier chunk; returns the new offset. */
  private assemble(chunk: Uint8Array, at: number): number {
    const end = chunk.length;
    if (this.asmNeed === 0) {
      // The header is still incomplete: it sits in `this.header`.
      const take = Math.min(FRAME_HEADER_BYTES - this.asmHave, end - at);
      this.header.set(chunk.subarray(at, at + take), this.asmHave);
      this.asmHave += take;
      at += take;
      if (this.asmHave < FRAME_HEADER_BYTES) {
        const problem = partialHeaderProblem(this.header, 0, this.asmHave, this.frameBytesMax);
        if (problem !== null) return this.fail(problem, requestIdOf(this.header, 0, this.asmHave), end);
        return at;
      }
      const problem = headerProblem(this.header, 0, this.frameBytesMax, true);
      if (problem !== null) return this.fail(problem, requestIdOf(this.header, 0, FRAME_HEADER_BYTES), end);
      const frameBytes = u32At(this.header, 0);
      if (frameBytes === FRAME_HEADER_BYTES) {
        this.asmHave = 0;
        this.sink.frame(this.header, 0, frameBytes);
        return at;
      }
      this.startAssembly(frameBytes);
      this.asm!.set(this.header, 0);
    }
    const take = Math.min(this.asmNeed - this.asmHave, end - at);
    this.asm!.set(chunk.subarray(at, at + take), this.asmHave);
    this.asmHave += take;
    at += take;
    if (this.asmHave === this.asmNeed) {
      const frame = this.asm!;
      const frameBytes = this.asmNeed;
      this.asmHave = 0;
      this.asmNeed = 0;
      // Keep a small assembly buffer for the next spanning frame; let a large one go.
      if (frame.length > 65536) this.asm = null;
      this.sink.frame(frame, 0, frameBytes);
    }
    return at;
  }

  /** `frameBytes` has been checked against frameBytesMax by headerProblem. */
  private startAssembly(frameBytes: number): void {
    if (this.asm === null || this.asm.length < frameBytes) this.asm = Buffer.allocUnsafe(Math.max(frameBytes, 1024));
    this.asmNeed = frameBytes;
  }

  private fail(problem: string, requestId: number, at: number): number {
    this.broken = true;
    this.asm = null;
    this.asmHave = 0;
    this.sink.bad(problem, requestId);
    return at;
  }
}

class TcpConnection extends ConnectionBase implements FrameSink {
  private readonly reader: FrameReader;
  /** The rest of a chunk not read because the connection was paused. */
  private heldChunk: Buffer | null = null;
  private heldAt = 0;
  private redeliverScheduled = false;

  constructor(core: ListenerCore, private readonly socket: net.Socket) {
    super(core, 'tcp', `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`);
    this.reader = new FrameReader(core.opts.frameBytesMax, this);
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      core.log.info({ conn: this.id, remote: this.remote, err: err.message, code: err.code }, 'client socket error');
    });
    socket.on('close', () => this.socketClosed());
  }

  get readerPaused(): boolean {
    return this.deliveryPaused;
  }

  frame(buf: Uint8Array, at: number, frameBytes: number): void {
    this.deliver(buf, at, frameBytes);
  }

  bad(problem: string, requestId: number): void {
    this.badFrame(problem, requestId);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.isOpen) return; // closing: what the peer still sends is read and dropped
    if (this.heldChunk !== null) {
      // The socket was paused, yet data came: keep the order behind what is held.
      this.heldChunk = Buffer.concat([this.heldChunk.subarray(this.heldAt), chunk]);
      this.heldAt = 0;
      return;
    }
    this.read(chunk, 0);
  };

  private read(chunk: Buffer, at: number): void {
    const stop = this.reader.consume(chunk, at);
    if (stop < chunk.length && this.isOpen) {
      // Paused mid-chunk: keep the rest (a chunk from the socket is never reused by Node).
      this.heldChunk = chunk;
      this.heldAt = stop;
      this.socket.pause();
    }
  }

  protected socketPendingBytes(): number {
    return this.socket.writableLength;
  }

  protected writeOut(bytes: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(bytes, this.afterWrite);
  }

  private readonly afterWrite = (): void => {
    this.written();
  };

  protected stopReading(): void {
    this.socket.pause();
  }

  protected restartReading(): void {
    if (this.heldChunk === null) {
      this.socket.resume();
      return;
    }
    if (!this.redeliverScheduled) {
      this.redeliverScheduled = true;
      setImmediate(this.redeliver);
    }
  }

  private readonly redeliver = (): void => {
    this.redeliverScheduled = false;
    if (this.deliveryPaused || this.heldChunk === null) return;
    const chunk = this.heldChunk;
    const at = this.heldAt;
    this.heldChunk = null;
    this.heldAt = 0;
    this.read(chunk, at);
    if (!this.deliveryPaused && this.heldChunk === null) this.socket.resume();
  };

  protected endSocket(): void {
    this.heldChunk = null;
    this.socket.end();
    // Read and drop what the peer still sends, so that closing does not reset the connection
    // before the peer has read our last frame.
    this.socket.resume();
  }

  protected destroySocket(): void {
    this.socket.destroy();
  }
}

/** Listens for plain TCP clients: request frames back to back on the stream. */
export function listenTcp(opts: ListenerOptions, handler: ClientHandler): Promise<ClientListener> {
  checkListenerOptions(opts);
  const core = new ListenerCore(opts, handler);
  const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false });
  let closing: Promise<void> | null = null;

  server.on('connection', (socket) => {
    if (closing !== null) {
      socket.destroy();
      return;
    }
    if (core.full()) {
      core.log.warn({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, connectionsMax: opts.connectionsMax },
        'client connection refused: too many connections');
      socket.on('error', () => undefined);
      socket.setNoDelay(true);
      socket.end(errorFrame('OVERLOADED', `too many connections (${opts.connectionsMax})`, 0), () => socket.destroy());
      setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
      return;
    }
    core.opened(new TcpConnection(core, socket));
  });

  return listenServer(server, opts, core, 'net', () => {
    closing = core.closeAll();
    return closing;
  });
}

/**
 * Starts `server` listening and resolves with its ClientListener. `closeConnections` ends every
 * connection (and whatever else the engine holds); close() waits for it and for the server.
 */
export function listenServer(
  server: net.Server,
  opts: ListenerOptions,
  core: ListenerCore,
  engine: ClientListener['engine'],
  closeConnections: () => Promise<void>,
): Promise<ClientListener> {
  let closing: Promise<void> | null = null;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      server.on('error', (err) => core.log.warn({ err: err.message }, 'client listener error'));
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        engine,
        connections: () => core.conns.size,
        close: () => {
          closing ??= Promise.all([
            new Promise<void>((done) => server.close(() => done())),
            closeConnections(),
          ]).then(() => undefined);
          return closing;
        },
      });
    });
  });
}
