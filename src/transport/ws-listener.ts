// The pure-JS WebSocket client listener: the `ws` package over node:http. Used when
// uWebSockets.js does not load, when FLOTILLA_NATIVE_FREE=1, or when asked for by name
// (websocket-listener.ts chooses). Same contract as every client listener (client-listener.ts):
// one binary message per frame each way. That it runs with no native add-on loaded is proven by
// native-free/ (the guard, a driver and their tests).
//
// `ws` loads the native `bufferutil` when it is installed; with FLOTILLA_NATIVE_FREE=1 this
// file tells it not to (WS_NO_BUFFER_UTIL, WS_NO_UTF_8_VALIDATE) before loading it, which only
// works when nothing in the process loaded `ws` earlier.

import * as http from 'node:http';
import type * as net from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { frameBytesAt } from './client-framing.js';
import { MessageConnection } from './client-connection.js';
import type { ClientHandler, ClientListener, ListenerOptions } from './client-listener.js';
import { ListenerCore, listenServer } from './listener-core.js';
import { checkListenerOptions } from './listener-limits.js';
import { FRAME_READ_TIMEOUT_MS_DEFAULT } from './tcp-listener.js';
import { ORIGIN_LOG_EVERY, ORIGIN_REFUSED, OriginPolicy } from './ws-origins.js';

interface WsModule {
  WebSocketServer: typeof WebSocketServer;
}

let wsModule: Promise<WsModule> | null = null;

function loadWs(): Promise<WsModule> {
  if (wsModule === null) {
    if (process.env['FLOTILLA_NATIVE_FREE'] === '1') {
      process.env['WS_NO_BUFFER_UTIL'] ??= '1';
      process.env['WS_NO_UTF_8_VALIDATE'] ??= '1';
    }
    wsModule = import('ws') as Promise<WsModule>;
  }
  return wsModule;
}

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** Sweeps per frameReadTimeoutMs, as in tcp-listener.ts. */
const FRAME_READ_SWEEPS = 4;

/** The part of `ws`'s receiver (8.x, not public) that says whether a frame is half read; absent: never swept. */
interface WsReceiverState {
  _bufferedBytes?: number;
  _totalPayloadLength?: number;
}

class WsConnection extends MessageConnection {
  /** The TCP socket under the WebSocket, to cork a turn's frames into one write. */
  private readonly socket: net.Socket | null;
  private messages = 0;
  private stuckAt = -1;
  private stuckSweeps = 0;

  constructor(core: ListenerCore, private readonly ws: WebSocket, remote: string) {
    super(core, 'ws', remote);
    this.socket = (ws as unknown as { _socket?: net.Socket })._socket ?? null;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => {
      // With binaryType 'nodebuffer' a message is one Buffer, its fragments joined.
      this.messages++;
      this.message(data as Buffer, isBinary, false);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      core.log.info({ conn: this.id, remote: this.remote, err: err.message, code: err.code }, 'client WebSocket error');
    });
    ws.on('close', () => this.socketClosed());
  }

  /**
   * One read-timeout sweep (tcp-listener.ts has the rule): a WebSocket frame or fragmented
   * message half read by `ws`, the same one FRAME_READ_SWEEPS + 1 sweeps in a row, closes the
   * connection with BAD_FRAME.
   */
  sweep(timeoutMs: number): void {
    const r = (this.ws as unknown as { _receiver?: WsReceiverState | null })._receiver;
    const partial = r !== undefined && r !== null && ((r._bufferedBytes ?? 0) > 0 || (r._totalPayloadLength ?? 0) > 0);
    if (!this.isOpen || !partial || this.deliveryPaused || this.messages !== this.stuckAt) {
      this.stuckAt = partial ? this.messages : -1;
      this.stuckSweeps = partial ? 1 : 0;
      return;
    }
    if (++this.stuckSweeps < FRAME_READ_SWEEPS + 1) return;
    this.core.log.info({ conn: this.id, remote: this.remote, frameReadTimeoutMs: timeoutMs },
      'client connection closed: a WebSocket frame not completed within frameReadTimeoutMs');
    this.badFrame(`frame not completed within frameReadTimeoutMs (${timeoutMs} ms)`, 0);
  }

  protected socketPendingBytes(): number {
    return this.ws.bufferedAmount;
  }

  protected writeOut(bytes: Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    // Corked: `ws` writes each message with its own uncork; the outer cork keeps them together.
    this.socket?.cork();
    let at = 0;
    while (at < bytes.length) {
      const n = frameBytesAt(bytes, at);
      const last = at + n >= bytes.length;
      // `ws` sends the bytes without copying them: they are ours no more (see ConnectionBase).
      this.ws.send(bytes.subarray(at, at + n), SEND_OPTIONS, last ? this.afterWrite : undefined);
      at += n;
    }
    this.socket?.uncork();
  }

  private readonly afterWrite = (): void => {
    this.written();
  };

  protected stopReading(): void {
    this.ws.pause();
  }

  protected startReading(): void {
    this.ws.resume();
  }

  protected endSocket(): void {
    this.ws.close(this.closeCode);
    // Keep reading so that the peer's close frame is seen.
    this.ws.resume();
  }

  protected destroySocket(): void {
    this.ws.terminate();
  }
}

/** Listens for WebSocket clients with the `ws` package over node:http. */
export async function listenWs(opts: ListenerOptions, handler: ClientHandler): Promise<ClientListener> {
  checkListenerOptions(opts);
  const { WebSocketServer } = await loadWs();
  const core = new ListenerCore(opts, handler);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.frameBytesMax,
    perMessageDeflate: false,
    clientTracking: false,
    // Text messages are refused whatever they hold: no need to validate their UTF-8.
    skipUTF8Validation: true,
  });
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
    res.end('WebSocket only\n');
  });
  // The upgrade request itself must arrive within the same bound as a frame.
  const timeoutMs = opts.frameReadTimeoutMs ?? FRAME_READ_TIMEOUT_MS_DEFAULT;
  server.headersTimeout = timeoutMs;
  server.requestTimeout = timeoutMs;
  const sweeper = setInterval(() => {
    for (const conn of core.conns) (conn as WsConnection).sweep(timeoutMs);
  }, Math.max(1, Math.floor(timeoutMs / FRAME_READ_SWEEPS)));
  sweeper.unref();
  let closing: Promise<void> | null = null;
  const origins = new OriginPolicy(opts.wsOrigins ?? '', opts.host);
  let originsRefused = 0;

  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => undefined); // `ws` reports errors of upgraded sockets itself
    const origin = req.headers.origin;
    if (!origins.allows(origin)) {
      // Logged once per ORIGIN_LOG_EVERY: a page can retry in a loop.
      if (originsRefused++ % ORIGIN_LOG_EVERY === 0) {
        core.log.warn({ origin, remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, refused: originsRefused },
          'WebSocket upgrade refused: origin not in wsOrigins');
      }
      const body = `${ORIGIN_REFUSED}: origin ${String(origin)} is not allowed (wsOrigins)\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, () => socket.destroy());
      return;
    }
    if (closing !== null || core.full()) {
      core.log.warn({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, connectionsMax: opts.connectionsMax },
        'client connection refused: too many connections');
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', () => socket.destroy());
      return;
    }
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (closing !== null || core.full()) {
        ws.close(1013, 'too many connections');
        return;
      }
      core.opened(new WsConnection(core, ws, remote));
    });
  });

  return listenServer(server, opts, core, 'ws', () => {
    server.closeIdleConnections();
    clearInterval(sweeper);
    closing = core.closeAll().then(() => {
      wss.close();
    });
    return closing;
  });
}
