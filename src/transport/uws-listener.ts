// The WebSocket client listener on uWebSockets.js (`@trufflesuite/uws-js-unofficial`), the fast
// engine: one binary message per request frame, one per response frame.
//
// The package is optional and native. Its own loader falls back, with a console warning, to a
// pure-JS imitation when its binary does not load; Flotilla has its own pure-JS engine
// (ws-listener.ts), so this file loads the binary itself and reports it missing
// instead. FLOTILLA_NATIVE_FREE=1 switches it off (native-free/README.md).
//
// uWebSockets.js cannot stop reading a WebSocket (version 20.30 has no pause), so a paused
// connection holds the frames that still arrive, copied, up to pendingBytesMax bytes, and is
// closed with OVERLOADED beyond (MessageConnection in client-connection.ts). Its ArrayBuffers are
// only valid during a callback: frames are handed to the handler in place and copied only when
// held.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { frameBytesAt } from './client-framing.js';
import { MessageConnection } from './client-connection.js';
import type { ClientHandler, ClientListener, ListenerOptions } from './client-listener.js';
import { ListenerCore } from './listener-core.js';
import { checkListenerOptions } from './listener-limits.js';
import { ORIGIN_LOG_EVERY, ORIGIN_REFUSED, OriginPolicy } from './ws-origins.js';

// The part of the uWebSockets.js API used here (the package's own types may be absent).
interface UwsWebSocket {
  /** 1: sent, 0: sent and buffered (backpressure), 2: dropped (above maxBackpressure). */
  send(message: Uint8Array, isBinary: boolean, compress: boolean): number;
  getBufferedAmount(): number;
  end(code?: number, shortMessage?: string): void;
  close(): void;
  cork(cb: () => void): unknown;
  getUserData(): UserData;
  getRemoteAddressAsText(): ArrayBuffer;
}
interface UwsHttpResponse {
  writeStatus(status: string): UwsHttpResponse;
  writeHeader(key: string, value: string): UwsHttpResponse;
  end(body?: string, closeConnection?: boolean): UwsHttpResponse;
  upgrade(userData: UserData, key: string, protocol: string, extensions: string, context: unknown): void;
}
interface UwsHttpRequest {
  getHeader(lowerCaseKey: string): string;
}
interface UwsBehavior {
  maxPayloadLength: number;
  maxBackpressure: number;
  closeOnBackpressureLimit: boolean;
  idleTimeout: number;
  compression: number;
  sendPingsAutomatically: boolean;
  upgrade(res: UwsHttpResponse, req: UwsHttpRequest, context: unknown): void;
  open(ws: UwsWebSocket): void;
  message(ws: UwsWebSocket, message: ArrayBuffer, isBinary: boolean): void;
  drain(ws: UwsWebSocket): void;
  close(ws: UwsWebSocket, code: number, message: ArrayBuffer): void;
}
interface UwsApp {
  ws(pattern: string, behavior: UwsBehavior): UwsApp;
  any(pattern: string, handler: (res: UwsHttpResponse, req: UwsHttpRequest) => void): UwsApp;
  listen(host: string, port: number, cb: (listenSocket: unknown) => void): UwsApp;
}
interface UwsModule {
  App(): UwsApp;
  us_listen_socket_close(listenSocket: unknown): void;
  us_socket_local_port(socket: unknown): number;
  DISABLED: number;
}
interface UserData {
  conn: UwsConnection | null;
}

const PACKAGE = '@trufflesuite/uws-js-unofficial';

let loaded: { uws: UwsModule | null; problem: string | null } | null = null;

function load(): { uws: UwsModule | null; problem: string | null } {
  if (loaded !== null) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve(`${PACKAGE}/package.json`));
    const prefix = `uws_${process.platform}_${process.arch}_`;
    const binary = path.join(dir, 'binaries', `${prefix}${process.versions.modules}.node`);
    if (!fs.existsSync(binary)) {
      // The usual case on a Node newer than the build (Node 22 and later for 20.30): say which
      // ABIs it does have, so the reader sees it is the Node version and not a broken install.
      const abis = fs.readdirSync(path.join(dir, 'binaries'))
        .filter((f) => f.startsWith(prefix) && f.endsWith('.node'))
        .map((f) => Number(f.slice(prefix.length, -'.node'.length)))
        .sort((a, b) => a - b);
      loaded = {
        uws: null,
        problem: `${PACKAGE} has no binary for Node ABI ${process.versions.modules} on ${process.platform}-${process.arch}`
          + ` (it has ABI ${abis.length > 0 ? abis.join(', ') : 'none'}): ${binary}`,
      };
      return loaded;
    }
    const mod = require(binary) as Partial<UwsModule> | null;
    if (typeof mod?.App !== 'function' || typeof mod.us_listen_socket_close !== 'function' || typeof mod.us_socket_local_port !== 'function') {
      loaded = { uws: null, problem: `${binary} does not look like uWebSockets.js` };
    } else {
      loaded = { uws: mod as UwsModule, problem: null };
    }
  } catch (err) {
    // First line only: require's message goes on with a "Require stack" that names this file.
    loaded = { uws: null, problem: `${PACKAGE} does not load here: ${String((err as Error).message).split('\n')[0]}` };
  }
  return loaded;
}

/**
 * Why uWebSockets.js cannot be used in this process, or null when it can. Loads it on the first
 * call (not when FLOTILLA_NATIVE_FREE=1, which is read at every call).
 */
export function uwsProblem(): string | null {
  if (process.env['FLOTILLA_NATIVE_FREE'] === '1') return 'FLOTILLA_NATIVE_FREE=1';
  return load().problem;
}

class UwsConnection extends MessageConnection {
  /** The handle may be used: uWS invalidates it when its close handler has run. */
  private live = true;
  private corkBytes: Buffer | null = null;
  private dropped = false;

  constructor(core: ListenerCore, private readonly ws: UwsWebSocket) {
    super(core, 'ws', Buffer.from(ws.getRemoteAddressAsText()).toString('latin1'));
  }

  onMessage(message: ArrayBuffer, isBinary: boolean): void {
    this.message(new Uint8Array(message), isBinary, true);
  }

  /** uWS wrote some of its buffered bytes. */
  onDrain(): void {
    this.written();
  }

  onUwsClose(): void {
    this.live = false;
    this.socketClosed();
  }

  protected socketPendingBytes(): number {
    return this.live ? this.ws.getBufferedAmount() : 0;
  }

  protected writeOut(bytes: Buffer): void {
    if (!this.live) return;
    this.corkBytes = bytes;
    this.dropped = false;
    // Corked: one syscall for every frame of the turn.
    this.ws.cork(this.sendCorked);
    this.corkBytes = null;
    if (this.dropped) {
      // maxBackpressure is set well above pendingBytesMax, which send() enforces: not expected.
      this.core.log.warn({ conn: this.id, remote: this.remote }, 'client connection destroyed: uWebSockets.js dropped a message');
      this.destroy();
      return;
    }
    // uWS writes at once what the socket takes and calls drain only for what it had to buffer.
    this.written();
  }

  private readonly sendCorked = (): void => {
    const bytes = this.corkBytes!;
    let at = 0;
    while (at < bytes.length) {
      const n = frameBytesAt(bytes, at);
      if (this.ws.send(bytes.subarray(at, at + n), true, false) === 2) this.dropped = true;
      at += n;
    }
  };

  protected stopReading(): void {
    // uWS cannot stop reading a WebSocket: MessageConnection holds what arrives while paused.
  }

  protected startReading(): void {
    // See stopReading.
  }

  protected endSocket(): void {
    if (this.live) this.ws.end(this.closeCode); // calls the close handler at once
  }

  protected destroySocket(): void {
    if (this.live) this.ws.close(); // calls the close handler at once
  }
}

/** Listens for WebSocket clients with uWebSockets.js; rejects when it is unavailable. */
export function listenUws(opts: ListenerOptions, handler: ClientHandler): Promise<ClientListener> {
  checkListenerOptions(opts);
  const problem = uwsProblem();
  if (problem !== null) return Promise.reject(new Error(`uWebSockets.js is unavailable: ${problem}`));
  const uws = load().uws!;
  const core = new ListenerCore(opts, handler);
  let listenSocket: unknown = null;
  let closing: Promise<void> | null = null;
  const origins = new OriginPolicy(opts.wsOrigins ?? '', opts.host);
  let originsRefused = 0;

  const app = uws.App();
  app.ws('/*', {
    maxPayloadLength: opts.frameBytesMax,
    // Never reached: send() destroys a connection past pendingBytesMax first; a message uWS drops
    // past this bound would be lost, so it is set well above.
    maxBackpressure: 2 * opts.pendingBytesMax + 2 * opts.frameBytesMax,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    compression: uws.DISABLED,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      if (closing !== null || core.full()) {
        core.log.warn({ connectionsMax: opts.connectionsMax }, 'client connection refused: too many connections');
        res.writeStatus('503 Service Unavailable').end('too many connections', true);
        return;
      }
      const origin = req.getHeader('origin');
      if (!origins.allows(origin)) {
        if (originsRefused++ % ORIGIN_LOG_EVERY === 0) {
          core.log.warn({ origin, refused: originsRefused }, 'WebSocket upgrade refused: origin not in wsOrigins');
        }
        res.writeStatus('403 Forbidden').end(`${ORIGIN_REFUSED}: origin ${origin} is not allowed (wsOrigins)\n`, true);
        return;
      }
      const userData: UserData = { conn: null };
      res.upgrade(userData, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      if (closing !== null || core.full()) {
        ws.end(1013, 'too many connections');
        return;
      }
      const conn = new UwsConnection(core, ws);
      ws.getUserData().conn = conn;
      core.opened(conn);
    },
    message: (ws, message, isBinary) => {
      ws.getUserData().conn?.onMessage(message, isBinary);
    },
    drain: (ws) => {
      ws.getUserData().conn?.onDrain();
    },
    close: (ws) => {
      const ud = ws.getUserData();
      const conn = ud.conn;
      ud.conn = null;
      conn?.onUwsClose();
    },
  });
  app.any('/*', (res) => {
    res.writeStatus('426 Upgrade Required').end('WebSocket only', true);
  });

  return new Promise((resolve, reject) => {
    app.listen(opts.host, opts.port, (ls) => {
      if (ls === false || ls === null || ls === undefined) {
        reject(new Error(`uWebSockets.js cannot listen on ${opts.host}:${opts.port}`));
        return;
      }
      listenSocket = ls;
      resolve({
        port: uws.us_socket_local_port(ls),
        engine: 'uws',
        connections: () => core.conns.size,
        close: () => {
          if (closing === null) {
            uws.us_listen_socket_close(listenSocket);
            closing = core.closeAll();
          }
          return closing;
        },
      });
    });
  });
}
