// Redis as a benchmark peer: a redis-server of our own on 127.0.0.1, configured on its command
// line only (no config file, so /etc/redis is never read), and a LoadDriver that speaks RESP over
// one TCP socket per connection, written by hand.
//
// Durability is Redis's append-only file: appendfsync always fsyncs the AOF before the replies
// of an event-loop turn are sent (a group commit per turn), everysec fsyncs once a second in the
// background, and off here means no AOF at all (and no RDB snapshots either: --save "").
import assert from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { freePortBase } from '../../src/cli/cluster.js';
import { sleep } from '../bench-cluster.js';
import type { LoadConnection, LoadDriver, LoadOp } from '../load.js';
import { KEY_BYTES_MAX, keyLength, writeDecimal, writeKey } from './key.js';
import { ServerProcess } from './server-process.js';

export type Appendfsync = 'always' | 'everysec' | 'off';

export interface RedisOptions {
  appendfsync: Appendfsync;
  /** A free one is found when not given. */
  port?: number;
  /** The server's working directory (the AOF goes there); created if missing, removed by stop(). */
  dir: string;
  binary?: string;
}

export interface RedisServer {
  port: number;
  pid: number;
  process: ServerProcess;
  /** Stops the server by its PID and removes its directory. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_MS_MAX = 10_000;
const POLL_MS = 100;
const CONNECT_MS_MAX = 10_000;

export async function startRedis(o: RedisOptions): Promise<RedisServer> {
  const port = o.port ?? (await freePortBase(1, HOST));
  fs.mkdirSync(o.dir, { recursive: true });
  const durability = o.appendfsync === 'off' ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', o.appendfsync];
  const args = [
    '--port', String(port), '--bind', HOST, '--save', '', '--dir', o.dir, '--daemonize', 'no', '--protected-mode', 'no',
    '--loglevel', 'warning', ...durability,
  ];
  const server = new ServerProcess('redis', o.binary ?? '/usr/bin/redis-server', args);
  const removeDir = (): void => fs.rmSync(o.dir, { recursive: true, force: true });
  process.on('exit', removeDir);
  const stop = async (): Promise<void> => {
    await server.stop();
    removeDir();
    process.off('exit', removeDir);
  };
  try {
    const deadline = Date.now() + READY_MS_MAX;
    while (!(await pingOk(port))) {
      const gone = server.exitReason();
      if (gone !== undefined) throw new Error(`${gone}; output:\n${server.output()}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${READY_MS_MAX / 1000} s; output:\n${server.output()}`);
      await sleep(POLL_MS);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, pid: server.pid, process: server, stop };
}

/** True when a fresh connection to the port gets +PONG to PING. */
function pingOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let got = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

// RESP requests: SET key value as a three-element array, GET key as two, each element a bulk string.
const SET_HEAD = Buffer.from('*3\r\n$3\r\nSET\r\n');
const GET_HEAD = Buffer.from('*2\r\n$3\r\nGET\r\n');
/** "$" + up to 2 digits of key length + CRLF + key + CRLF. */
const KEY_PART_BYTES_MAX = 1 + 2 + 2 + KEY_BYTES_MAX + 2;

const CR = 13;
const LF = 10;
const PLUS = 0x2b;
const MINUS = 0x2d;
const COLON = 0x3a;
const DOLLAR = 0x24;

/**
 * The load driver: connection i is one TCP socket to the server. Redis answers a connection's
 * requests in order, so each connection keeps the tags of its requests in flight in a ring of
 * `pipeline` slots and matches each reply to the oldest.
 */
export class RedisDriver implements LoadDriver {
  /** Set when a connection failed (the server went away); its requests in flight get no reply. */
  failure: Error | undefined;
  /** "$<n>\r\n<value>\r\n": the value bulk string of every SET, encoded once. */
  private readonly valuePart: Buffer;

  constructor(readonly port: number, valueBytes: number, private readonly pipeline: number) {
    const len = String(valueBytes);
    this.valuePart = Buffer.alloc(1 + len.length + 2 + valueBytes + 2, 'v'.charCodeAt(0));
    let at = this.valuePart.write(`$${len}\r\n`, 0, 'latin1');
    at += valueBytes;
    this.valuePart.write('\r\n', at, 'latin1');
  }

  open(index: number, reply: (tag: number, ok: boolean) => void): Promise<LoadConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: HOST, port: this.port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`redis connection ${index}: no connection to port ${this.port} within ${CONNECT_MS_MAX / 1000} s`));
      }, CONNECT_MS_MAX);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`redis connection ${index}: ${e.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RedisConnection(socket, reply, this.pipeline, this.valuePart, (e) => {
          this.failure ??= new Error(`redis connection ${index}: ${e.message}`);
        }));
      });
    });
  }
}

class RedisConnection implements LoadConnection {
  /** Requests queued by send() since the last flush(); at most `pipeline` of them fit. */
  private readonly out: Buffer;
  private outBytes = 0;
  /** Tags in flight, oldest at `head`. */
  private readonly tags: Int32Array;
  private head = 0;
  private inflight = 0;
  private closing = false;
  // Reply parser, resumable at any byte: the type byte of the line being read (0 between replies),
  // the integer on it so far, and the bytes of a bulk string body (and its CRLF) still to skip.
  private type = 0;
  private num = 0;
  private negative = false;
  private skipBytes = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly reply: (tag: number, ok: boolean) => void,
    private readonly pipeline: number,
    private readonly valuePart: Buffer,
    private readonly failed: (e: Error) => void,
  ) {
    this.out = Buffer.allocUnsafe(pipeline * (SET_HEAD.length + KEY_PART_BYTES_MAX + valuePart.length));
    this.tags = new Int32Array(pipeline);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  send(tag: number, op: LoadOp, key: number): void {
    assert(this.inflight < this.pipeline, 'more requests in flight than the pipeline allows');
    const out = this.out;
    let at = this.outBytes;
    at += (op === 'put' ? SET_HEAD : GET_HEAD).copy(out, at);
    out[at++] = DOLLAR;
    at = writeDecimal(out, at, keyLength(key));
    out[at++] = CR;
    out[at++] = LF;
    at = writeKey(out, at, key);
    out[at++] = CR;
    out[at++] = LF;
    if (op === 'put') at += this.valuePart.copy(out, at);
    this.outBytes = at;
    this.tags[(this.head + this.inflight) % this.pipeline] = tag;
    this.inflight++;
  }

  flush(): void {
    if (this.outBytes === 0 || this.closing) return;
    // A copy: the socket may hold on to what it is given until it drains, and `out` is reused at once.
    this.socket.write(Buffer.from(this.out.subarray(0, this.outBytes)));
    this.outBytes = 0;
  }

  close(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.destroy();
    this.failed(e);
  }

  private complete(ok: boolean): void {
    if (this.inflight === 0) {
      this.fail(new Error('a reply with no request in flight'));
      return;
    }
    const tag = this.tags[this.head]!;
    this.head = (this.head + 1) % this.pipeline;
    this.inflight--;
    this.reply(tag, ok);
  }

  /** Replies: +OK (SET), $n bulk or $-1 nil (GET; nil is a successful get of a missing key), -ERR (ok false), :n. */
  private onData(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n && !this.closing) {
      if (this.skipBytes > 0) {
        const take = Math.min(this.skipBytes, n - i);
        this.skipBytes -= take;
        i += take;
        if (this.skipBytes === 0) this.complete(true);
        continue;
      }
      const b = chunk[i++]!;
      if (this.type === 0) {
        this.type = b;
        this.num = 0;
        this.negative = false;
        continue;
      }
      if (b === LF) {
        this.endLine();
        continue;
      }
      if (b === CR) continue;
      if (this.type === DOLLAR || this.type === COLON) {
        if (b === MINUS) this.negative = true;
        else this.num = this.num * 10 + (b - 0x30);
      } else {
        // The text of +OK or of an error: nothing in it is needed, so jump to its line end.
        const lf = chunk.indexOf(LF, i);
        i = lf < 0 ? n : lf;
      }
    }
  }

  private endLine(): void {
    const type = this.type;
    this.type = 0;
    switch (type) {
      case PLUS:
      case COLON:
        this.complete(true);
        return;
      case MINUS:
        this.complete(false);
        return;
      case DOLLAR:
        if (this.negative) this.complete(true);
        else this.skipBytes = this.num + 2;
        return;
      default:
        this.fail(new Error(`unexpected RESP reply type ${JSON.stringify(String.fromCharCode(type))}`));
    }
  }
}
