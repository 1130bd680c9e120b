// A client connection's state, for every engine: the output queue (copied on send(), written
// once per turn by the listener's flush), the two pause flags (the handler's, and the
// listener's own while output is above pendingBytesHigh), and the close states. An engine
// subclass supplies how to write, how to stop and restart reading, and how frames held while
// paused are delivered again: TcpConnection (tcp-listener.ts) keeps the unread rest of a chunk;
// MessageConnection (below, for both WebSocket engines) keeps whole messages.

import type { ProtocolErrorCode } from '../protocol/client-frame.js';
import { assertWholeFrames, errorFrame, messageProblem, requestIdOf } from './client-framing.js';
import type { ClientConnection } from './client-listener.js';
import type { ListenerCore } from './listener-core.js';
import { CLOSE_LINGER_MS, OUT_BUFFER_BYTES_MIN, OUT_BUFFER_HINT_BYTES_MAX } from './listener-limits.js';

const enum State { Open, Closing, Closed }

const EMPTY = new Uint8Array(0);

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
      this.out = Buffer.allocUnsafe(Math.max(need, this.outHint, OUT_BUFFER_BYTES_MIN));
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
    this.outHint = Math.min(this.outLen, OUT_BUFFER_HINT_BYTES_MAX);
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
