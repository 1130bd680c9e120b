// The plain TCP client listener (node:net): request frames back to back on the stream, cut by
// FrameReader (client-framing.ts). A connection paused in the middle of a chunk keeps the rest
// of that chunk and pauses its socket; resume() reads the rest in a later turn.
//
// A frame must be complete within frameReadTimeoutMs of its first bytes (a client that sends half
// a header and waits would otherwise hold its connection forever): one sweep per listener every
// quarter of that time closes, with BAD_FRAME, a connection whose same frame it has found
// incomplete FRAME_READ_SWEEPS times in a row, so between 1 and 1.25 times the bound. No timer
// per connection or frame, nothing on the path of a frame that arrives in one chunk; a
// connection the node itself stopped reading (backpressure) is not counted.

import * as net from 'node:net';
import { errorFrame, FrameReader, type FrameSink } from './client-framing.js';
import { ConnectionBase } from './client-connection.js';
import type { ClientHandler, ClientListener, ListenerOptions } from './client-listener.js';
import { ListenerCore, listenServer } from './listener-core.js';
import { checkListenerOptions, CLOSE_LINGER_MS } from './listener-limits.js';

/** frameReadTimeoutMs when the options do not say (config default). */
export const FRAME_READ_TIMEOUT_MS_DEFAULT = 10_000;
/** Sweeps per frameReadTimeoutMs; a frame found incomplete by this many in a row closes its connection. */
const FRAME_READ_SWEEPS = 4;

class TcpConnection extends ConnectionBase implements FrameSink {
  private readonly reader: FrameReader;
  /** The rest of a chunk not read because the connection was paused. */
  private heldChunk: Buffer | null = null;
  private heldAt = 0;
  private redeliverScheduled = false;
  /** The reader's `partials` when a sweep last found a frame held, and how many sweeps in a row did. */
  private stuckPartial = -1;
  private stuckSweeps = 0;

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

  /** One read-timeout sweep: true when this connection's frame has been incomplete too long (it is closed). */
  sweep(timeoutMs: number): boolean {
    const r = this.reader;
    if (!this.isOpen || r.partialBytes === 0 || this.deliveryPaused || this.heldChunk !== null || r.partials !== this.stuckPartial) {
      this.stuckPartial = r.partialBytes === 0 ? -1 : r.partials;
      this.stuckSweeps = this.stuckPartial === -1 ? 0 : 1;
      return false;
    }
    if (++this.stuckSweeps < FRAME_READ_SWEEPS + 1) return false;
    this.core.log.info({ conn: this.id, remote: this.remote, partialBytes: r.partialBytes, frameReadTimeoutMs: timeoutMs },
      'client connection closed: a frame not completed within frameReadTimeoutMs');
    this.badFrame(`frame not completed within frameReadTimeoutMs (${timeoutMs} ms)`, 0);
    return true;
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

  const timeoutMs = opts.frameReadTimeoutMs ?? FRAME_READ_TIMEOUT_MS_DEFAULT;
  const sweeper = setInterval(() => {
    for (const conn of core.conns) (conn as TcpConnection).sweep(timeoutMs);
  }, Math.max(1, Math.floor(timeoutMs / FRAME_READ_SWEEPS)));
  sweeper.unref();

  return listenServer(server, opts, core, 'net', () => {
    clearInterval(sweeper);
    closing = core.closeAll();
    return closing;
  });
}
