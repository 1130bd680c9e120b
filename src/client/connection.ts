// One TCP connection from the client to one server's client port. It pipelines: up to
// `inflightMax` requests are on the wire at once, matched to their responses by request id,
// and responses may come back in any order. Requests beyond that wait in a bounded queue; a
// request beyond that bound is refused at once (OVERLOADED), so a stalled server cannot make
// the client grow without limit. The frames of one event-loop turn go out in one socket write.
//
// The connection knows nothing of groups, leaders or retries: it reports each outcome to the
// request's Exchange, including whether the request's bytes had been handed to the socket
// before a failure, which is what decides whether a write may be sent again.
import * as net from 'node:net';
import { unpack } from 'msgpackr';
import { FRAME_HEADER_BYTES, FrameKind, type ErrorBody } from '../protocol/client-frame.js';
import { InflightRequests, TurnRequests, WaitingRequests } from './connection-requests.js';
import { FlotillaError } from './errors.js';
import { FrameReader } from './frame-reader.js';

/** A request as the connection sees it; the dispatcher's Op implements it. */
export interface Exchange {
  readonly kind: FrameKind;
  readonly flags: number;
  readonly group: number;
  readonly body: Uint8Array;
  /** Set by the connection: the request id once admitted to the in-flight set, else 0. */
  id: number;
  /** Set by the connection once the frame was handed to the socket. */
  written: boolean;
  /** Set through Connection.cancel: the owner no longer wants an answer. */
  abandoned: boolean;
  /** A Result, Pong or AdminResult. `body` stays valid after the call. */
  onResponse(conn: Connection, kind: FrameKind, body: Uint8Array): void;
  /** An Error frame answering this request. */
  onServerError(conn: Connection, error: ErrorBody): void;
  /** The connection failed before an answer came. `written`: the frame had reached the socket. */
  onConnectionFailure(conn: Connection, error: FlotillaError, written: boolean): void;
}

export interface ConnectionOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  inflightMax: number;
  queuedMax: number;
  frameBytesMax: number;
  /** Where request ids start (the first one used is the next after it); for tests. */
  requestIdLast?: number;
  /** Called once when the connection closes, before its requests are failed. */
  onClose?: (conn: Connection, error: FlotillaError) => void;
}

/** A turn's frames are written early once they reach this many bytes. */
const TURN_BYTES_MAX = 256 * 1024;

export type ConnectionState = 'connecting' | 'open' | 'closed';

export class Connection {
  readonly address: string;
  state: ConnectionState = 'connecting';
  /** True once the TCP connection was established (false: the connect itself failed). */
  wasOpen = false;
  /** The error the connection closed with. */
  closeError: FlotillaError | null = null;
  /** Socket writes made; one per event-loop turn with requests to send. */
  socketWrites = 0;
  /** Frames received: a count that moves shows the server is alive (attempt timeouts read it). */
  framesIn = 0;
  /** Bytes read so far: the first ones tell a Flotilla client port from another service. */
  private bytesIn = 0;

  private readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly inflight: InflightRequests;
  private readonly waiting = new WaitingRequests();
  private readonly turn = new TurnRequests();
  /** The socket's buffer is over its high-water mark: admit nothing until it drains. */
  private writeBlocked = false;
  private connectTimer: NodeJS.Timeout | null;
  /** `opened` and what settles it. */
  private readonly settleOpened = deferred();

  constructor(private readonly opts: ConnectionOptions) {
    this.address = formatAddress(opts.host, opts.port);
    this.inflight = new InflightRequests(opts.requestIdLast ?? 0);
    // Nobody has to wait for `opened`; a failed connect is reported through the exchanges.
    this.opened.catch(() => undefined);
    this.reader = new FrameReader(
      opts.frameBytesMax,
      (buf, at, n) => this.onFrame(buf, at, n),
      (why) => this.fail(new FlotillaError('BAD_FRAME', `malformed response from ${this.address}: ${why}`)),
    );
    this.socket = net.connect({ host: opts.host, port: opts.port });
    this.socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => {
      this.fail(new FlotillaError('UNAVAILABLE', `connecting to ${this.address} took over ${opts.connectTimeoutMs} ms`));
    }, opts.connectTimeoutMs);
    this.socket.once('connect', () => this.onConnect());
    this.socket.on('data', (chunk: Buffer) => {
      if (this.bytesIn === 0) {
        const wrong = wrongPort(chunk);
        if (wrong !== null) {
          this.fail(new FlotillaError('WRONG_PORT', `${this.address} ${wrong}`));
          return;
        }
      }
      this.bytesIn += chunk.length;
      this.reader.push(chunk);
      this.pump();
    });
    this.socket.on('drain', () => {
      this.writeBlocked = false;
      this.pump();
    });
    this.socket.on('error', (e: Error) => {
      this.fail(new FlotillaError('UNAVAILABLE', `connection to ${this.address} failed: ${e.message}`));
    });
    this.socket.on('close', () => {
      // A Raft port reads the request as a bad peer hello and closes without a word.
      const hint = this.bytesIn === 0 && this.socketWrites > 0 ? ' before answering anything (is this the Raft port? clients use the client port, Raft port + 1 by default)' : '';
      this.fail(new FlotillaError('UNAVAILABLE', `connection to ${this.address} was closed${hint}`));
    });
  }

  /** Resolves when connected; rejects (with the close error) when the connect fails. */
  get opened(): Promise<void> {
    return this.settleOpened.promise;
  }

  /** Requests on the wire or admitted this turn. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Requests waiting for an in-flight slot. */
  get queuedCount(): number {
    return this.waiting.count;
  }

  /**
   * Sends a request, or queues it until a slot is free. Returns an error instead when the
   * request cannot be taken (the queue is full, or the connection is closed); the exchange's
   * callbacks are then never called.
   */
  send(x: Exchange): FlotillaError | null {
    x.id = 0;
    x.written = false;
    x.abandoned = false;
    if (this.state === 'closed') return this.closeError ?? new FlotillaError('UNAVAILABLE', `connection to ${this.address} is closed`);
    const waiting = this.waiting;
    if (this.state === 'open' && !this.writeBlocked && waiting.count === 0 && this.inflight.size < this.opts.inflightMax) {
      this.admit(x);
      return null;
    }
    if (waiting.count >= this.opts.queuedMax) {
      return new FlotillaError(
        'OVERLOADED',
        `${this.opts.inflightMax} requests in flight and ${waiting.count} queued for ${this.address}`,
      );
    }
    waiting.push(x);
    return null;
  }

  /**
   * The owner gives up on a request (its deadline passed, or it goes to another server). One
   * not yet written is dropped; one on the wire keeps its id until its answer comes, since the
   * server still counts it, and that answer is still reported to its exchange.
   */
  cancel(x: Exchange): void {
    if (x.abandoned || x.written) return;
    x.abandoned = true;
    if (x.id === 0) this.waiting.abandoned(this.opts.queuedMax);
  }

  /** Closes the connection; its requests fail with `error`. */
  close(error?: FlotillaError): void {
    this.fail(error ?? new FlotillaError('UNAVAILABLE', `connection to ${this.address} closed by the client`));
  }

  // ------------------------------------------------------------------------------------------

  private onConnect(): void {
    if (this.state !== 'connecting') return;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.state = 'open';
    this.wasOpen = true;
    this.settleOpened.resolve();
    this.pump();
  }

  private admit(x: Exchange): void {
    this.inflight.admit(x);
    const turn = this.turn;
    turn.add(x);
    if (turn.bytes >= TURN_BYTES_MAX) {
      this.flush();
    } else if (!turn.flushScheduled) {
      turn.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Moves queued requests into free in-flight slots. */
  private pump(): void {
    const waiting = this.waiting;
    while (this.state === 'open' && !this.writeBlocked && waiting.count > 0 && this.inflight.size < this.opts.inflightMax) {
      this.admit(waiting.shift());
    }
    waiting.trim();
  }

  /** Writes every frame admitted this turn in one socket write. */
  private flush(): void {
    this.turn.flushScheduled = false;
    if (this.turn.empty || this.state !== 'open') return;
    const xs = this.turn.take();
    let bytes = 0;
    for (const x of xs) {
      if (x.abandoned) this.inflight.delete(x.id);
      else bytes += FRAME_HEADER_BYTES + x.body.length;
    }
    if (bytes === 0) {
      this.pump();
      return;
    }
    const out = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (const x of xs) {
      if (x.abandoned) continue;
      const n = FRAME_HEADER_BYTES + x.body.length;
      out.writeUInt32LE(n, at);
      out[at + 4] = x.kind;
      out[at + 5] = x.flags;
      out[at + 6] = 0;
      out[at + 7] = 0;
      out.writeUInt32LE(x.id, at + 8);
      out.writeUInt32LE(x.group, at + 12);
      out.set(x.body, at + FRAME_HEADER_BYTES);
      at += n;
      x.written = true;
    }
    this.socketWrites++;
    if (!this.socket.write(out)) this.writeBlocked = true;
  }

  private onFrame(buf: Buffer, at: number, frameBytes: number): void {
    this.framesIn++;
    const kind = buf[at + 4]! as FrameKind;
    const id = buf.readUInt32LE(at + 8);
    const body = buf.subarray(at + FRAME_HEADER_BYTES, at + frameBytes);
    const x = this.inflight.get(id);
    if (id === 0 || (x === undefined && kind === FrameKind.Error)) {
      // An error about the connection, not a request (id 0; or the id of a frame the server
      // could not read, such as a BAD_FRAME): the server closes the connection after it.
      const e = kind === FrameKind.Error ? decodeErrorBody(body) : null;
      if (e === null) {
        this.fail(new FlotillaError('BAD_FRAME', `response from ${this.address} with request id ${id} is not an error frame`));
      } else {
        this.fail(new FlotillaError(e.code, `${this.address} closed the connection: ${e.message}`, e.leader));
      }
      return;
    }
    if (x === undefined || !x.written) {
      this.fail(new FlotillaError('BAD_FRAME', `response from ${this.address} to request ${id}, which is not in flight`));
      return;
    }
    const expected =
      x.kind === FrameKind.Command ? FrameKind.Result : x.kind === FrameKind.Admin ? FrameKind.AdminResult : x.kind === FrameKind.MapRequest ? FrameKind.Map : FrameKind.Pong;
    if (kind !== expected && kind !== FrameKind.Error) {
      this.fail(new FlotillaError('BAD_FRAME', `response of kind 0x${kind.toString(16)} from ${this.address} to a request of kind 0x${x.kind.toString(16)}`));
      return;
    }
    let error: ErrorBody | null = null;
    if (kind === FrameKind.Error) {
      error = decodeErrorBody(body);
      if (error === null) {
        this.fail(new FlotillaError('BAD_FRAME', `error body from ${this.address} is not msgpack { code, message }`));
        return;
      }
    }
    this.inflight.delete(id);
    if (error !== null) x.onServerError(this, error);
    else x.onResponse(this, kind, body);
  }

  private fail(error: FlotillaError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeError = error;
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.reader.stop();
    this.socket.destroy();
    this.settleOpened.reject(error);
    this.opts.onClose?.(this, error);
    const inflight = this.inflight.takeAll();
    const queued = this.waiting.takeAll();
    this.turn.take();
    for (const x of inflight) if (!x.abandoned) x.onConnectionFailure(this, error, x.written);
    for (const x of queued) if (!x.abandoned) x.onConnectionFailure(this, error, false);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function decodeErrorBody(body: Uint8Array): ErrorBody | null {
  let v: unknown;
  try {
    v = unpack(body);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const e = v as Record<string, unknown>;
  if (typeof e.code !== 'string' || typeof e.message !== 'string') return null;
  const out: ErrorBody = { code: e.code as ErrorBody['code'], message: e.message };
  const l = e.leader as Record<string, unknown> | undefined | null;
  if (l !== undefined && l !== null && typeof l === 'object' && typeof l.host === 'string' && typeof l.clientPort === 'number') {
    out.leader = {
      id: typeof l.id === 'number' ? l.id : 0,
      host: l.host,
      clientPort: l.clientPort,
      wsPort: typeof l.wsPort === 'number' ? l.wsPort : 0,
    };
  }
  if (typeof e.version === 'number' && Number.isSafeInteger(e.version) && e.version >= 0) out.version = e.version;
  if (typeof e.group === 'number' && Number.isInteger(e.group) && e.group >= 0) out.group = e.group;
  if (typeof e.slot === 'number' && Number.isInteger(e.slot) && e.slot >= 0) out.slot = e.slot;
  return out;
}

/** "host:port", with brackets around an IPv6 host. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Splits "host:port" (or "[v6]:port"); null when it is not one. */
export function parseAddress(address: string): { host: string; port: number } | null {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return null;
  let host = address.slice(0, colon);
  const portText = address.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.length === 0) return null;
  return { host, port };
}

const HTTP_PREFIX = Buffer.from('HTTP/');
/** The first bytes of a peer link's hello: LINK_MAGIC ('FLT1' as a little-endian u32). */
const LINK_MAGIC_BYTES = Buffer.from([0x31, 0x54, 0x4c, 0x46]);

/**
 * Why the first bytes a server sent are not a Flotilla client port's, or null: an HTTP answer
 * (the admin port, or a web server) or a peer hello (the Raft port). A response frame starts
 * with its length, which for these would read as a frame of about a gigabyte.
 */
export function wrongPort(first: Buffer): string | null {
  const n = Math.min(first.length, HTTP_PREFIX.length);
  if (n >= 4 && first.subarray(0, n).equals(HTTP_PREFIX.subarray(0, n))) {
    return 'answered in HTTP: this looks like the admin HTTP port, not a client port (the client port is the admin port - 1 by default)';
  }
  if (first.length >= 4 && first.subarray(0, 4).equals(LINK_MAGIC_BYTES)) {
    return 'answered with a peer hello: this looks like the Raft port, not a client port (the client port is the Raft port + 1 by default)';
  }
  return null;
}
