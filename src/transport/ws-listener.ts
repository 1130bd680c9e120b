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

class WsConnection extends MessageConnection {
  /** The TCP socket under the WebSocket, to cork a turn's frames into one write. */
  private readonly socket: net.Socket | null;

  constructor(core: ListenerCore, private readonly ws: WebSocket, remote: string) {
    super(core, 'ws', remote);
    this.socket = (ws as unknown as { _socket?: net.Socket })._socket ?? null;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => {
      // With binaryType 'nodebuffer' a message is one Buffer, its fragments joined.
      this.message(data as Buffer, isBinary, false);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      core.log.info({ conn: this.id, remote: this.remote, err: err.message, code: err.code }, 'client WebSocket error');
    });
    ws.on('close', () => this.socketClosed());
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
  let closing: Promise<void> | null = null;

  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => undefined); // `ws` reports errors of upgraded sockets itself
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
    closing = core.closeAll().then(() => {
      wss.close();
    });
    return closing;
  });
}
