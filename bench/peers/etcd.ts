// etcd as a benchmark peer: a cluster of 1 or 3 etcd members of our own on 127.0.0.1 (etcd 3.4,
// Debian's etcd-server), and a LoadDriver that speaks gRPC to etcd's KV service over HTTP/2 with
// Node's own node:http2: no gRPC library, the few protobuf fields needed are written by hand.
//
// Durability is etcd's normal and only mode: every entry is in the WAL, fsynced, before the
// leader counts it, and a put is answered once a majority has it so (each member fsyncs its own
// WAL) and it has been applied.
// A get (Range) is linearizable, etcd's default (serializable=false): the member asks the leader
// for a read index first, so a get costs a round trip to the leader but no disk write.
import { AsyncResource } from 'node:async_hooks';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePortBase, PORT_STRIDE } from '../../src/cli/cluster.js';
import { sleep } from '../bench-cluster.js';
import type { LoadConnection, LoadDriver, LoadOp } from '../load.js';
import { KEY_BYTES_MAX, keyLength, writeKey } from './key.js';
import { ServerProcess, stopAll } from './server-process.js';

export interface EtcdOptions {
  members: 1 | 3;
  /** Parent of the members' data directories (DIR/m1, ...); created if missing, removed by stop(). */
  dir: string;
  binary?: string;
}

export interface EtcdMember {
  /** 1-based; the member's name is m<id>. */
  id: number;
  pid: number;
  clientPort: number;
  peerPort: number;
  process: ServerProcess;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Index into `members` (0-based) of the member that is leader now. */
  leaderIndex(): Promise<number>;
  /** Stops every member by its PID and removes the data directories. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_MS_MAX = 30_000;
const POLL_MS = 200;
const HTTP_MS_MAX = 5_000;
const CONNECT_MS_MAX = 10_000;

export async function startEtcd(o: EtcdOptions): Promise<EtcdCluster> {
  fs.mkdirSync(o.dir, { recursive: true });
  // Member i (0-based) listens for clients on base + PORT_STRIDE·i and for peers on the port after it.
  const base = await freePortBase(o.members, HOST);
  const plan = Array.from({ length: o.members }, (_, i) => ({ id: i + 1, clientPort: base + PORT_STRIDE * i, peerPort: base + PORT_STRIDE * i + 1 }));
  const initialCluster = plan.map((m) => `m${m.id}=http://${HOST}:${m.peerPort}`).join(',');
  const token = `flotilla-bench-${randomBytes(6).toString('hex')}`;
  // etcd also reads its flags from ETCD_* variables; none of the caller's may change ours.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  const members: EtcdMember[] = [];
  const removeDir = (): void => fs.rmSync(o.dir, { recursive: true, force: true });
  process.on('exit', removeDir);
  const stop = async (): Promise<void> => {
    await stopAll(members.map((m) => m.process));
    removeDir();
    process.off('exit', removeDir);
  };
  try {
    for (const m of plan) {
      const client = `http://${HOST}:${m.clientPort}`;
      const peer = `http://${HOST}:${m.peerPort}`;
      const args = [
        '--name', `m${m.id}`, '--data-dir', path.join(o.dir, `m${m.id}`),
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
        // 3.4's default logger (capnslog) ignores --log-level and is deprecated; zap takes it.
        '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
      ];
      const server = new ServerProcess(`etcd ${m.id}`, o.binary ?? '/usr/bin/etcd', args, env);
      members.push({ ...m, pid: server.pid, process: server });
    }
    await waitReady(members);
  } catch (e) {
    await stop();
    throw e;
  }
  return { members, leaderIndex: () => leaderIndex(members), stop };
}

function outputs(members: EtcdMember[]): string {
  return members.map((m) => `--- etcd ${m.id} (pid ${m.pid}):\n${m.process.output()}`).join('\n');
}

/** Every member's /health says true (which needs a leader), then a put through member 1 succeeds. */
async function waitReady(members: EtcdMember[]): Promise<void> {
  const deadline = Date.now() + READY_MS_MAX;
  const check = (): void => {
    for (const m of members) {
      const gone = m.process.exitReason();
      if (gone !== undefined) throw new Error(`${gone}; output:\n${outputs(members)}`);
    }
    if (Date.now() > deadline) throw new Error(`etcd not ready within ${READY_MS_MAX / 1000} s; output:\n${outputs(members)}`);
  };
  for (const m of members) {
    while (!(await healthy(m.clientPort))) {
      check();
      await sleep(POLL_MS);
    }
  }
  const key = Buffer.from('flotilla-bench-ready').toString('base64');
  while (!(await gatewayPost(members[0]!.clientPort, '/v3/kv/put', { key, value: Buffer.from('1').toString('base64') }).then(() => true, () => false))) {
    check();
    await sleep(POLL_MS);
  }
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${HOST}:${port}/health`, { signal: AbortSignal.timeout(HTTP_MS_MAX) });
    const body = (await res.json()) as { health?: string };
    return res.status === 200 && body.health === 'true';
  } catch {
    return false;
  }
}

/** A call through etcd's JSON gateway (grpc-gateway, /v3 in etcd 3.4). */
async function gatewayPost(port: number, route: string, body: unknown): Promise<unknown> {
  const res = await fetch(`http://${HOST}:${port}${route}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(HTTP_MS_MAX) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${route} on port ${port} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as unknown;
}

interface StatusReply {
  header: { member_id: string };
  leader: string;
}

/** Asks every member for its status: its own id, and the leader's id as it sees it. */
async function leaderIndex(members: EtcdMember[]): Promise<number> {
  const statuses = (await Promise.all(members.map((m) => gatewayPost(m.clientPort, '/v3/maintenance/status', {})))) as StatusReply[];
  const leader = statuses.map((s) => s.leader).find((id) => id !== undefined && id !== '0');
  const index = statuses.findIndex((s) => s.header.member_id === leader);
  if (index < 0) throw new Error(`no member is leader (statuses: ${JSON.stringify(statuses)})`);
  return index;
}

// gRPC over HTTP/2: a request is one stream, a POST of one length-prefixed message (1 byte
// compressed flag, 4 bytes big-endian length, the protobuf), and its outcome is grpc-status in
// the trailers (or in the headers of a trailers-only response).
const PUT_HEADERS = { ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' };
const RANGE_HEADERS = { ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', te: 'trailers' };
const GRPC_PREFIX_BYTES = 5;
/** Protobuf tags: field 1 (key) and field 2 (value), wire type 2 (length-delimited). */
const TAG_KEY = 0x0a;
const TAG_VALUE = 0x12;
/** Our receive windows: replies are small, but a deep pipeline of Range replies should never wait on a window update. */
const WINDOW_BYTES = 4 << 20;
const SESSION_MEMORY_MB = 64;

/** A protobuf varint at buf[at..]; returns the offset after it. */
function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/**
 * The load driver: connection i is one HTTP/2 session to member i mod members, as a client that
 * spreads its connections would (followers forward puts to the leader, and ask it for the read
 * index of a get). Pipeline N is N concurrent HTTP/2 streams on the session.
 */
export class EtcdDriver implements LoadDriver {
  /** Set when a session failed (the member went away); its requests from then on get no reply. */
  failure: Error | undefined;
  /** The first failed request's grpc-status and grpc-message, for reports. */
  firstError: string | undefined;
  /** Field 2 of every PutRequest (tag, varint length, value), encoded once. */
  private readonly valuePart: Buffer;

  constructor(readonly clientPorts: number[], valueBytes: number, private readonly pipeline: number) {
    this.valuePart = Buffer.alloc(1 + varintLength(valueBytes) + valueBytes, 'v'.charCodeAt(0));
    this.valuePart[0] = TAG_VALUE;
    writeVarint(this.valuePart, 1, valueBytes);
  }

  open(index: number, reply: (tag: number, ok: boolean) => void): Promise<LoadConnection> {
    const port = this.clientPorts[index % this.clientPorts.length]!;
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://${HOST}:${port}`, {
        settings: { initialWindowSize: WINDOW_BYTES, enablePush: false },
        maxSessionMemory: SESSION_MEMORY_MB,
      });
      const timer = setTimeout(() => {
        session.destroy();
        reject(new Error(`etcd connection ${index}: no HTTP/2 session with port ${port} within ${CONNECT_MS_MAX / 1000} s`));
      }, CONNECT_MS_MAX);
      session.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`etcd connection ${index} to port ${port}: ${e.message}`));
      });
      // The server's SETTINGS tell how many streams it allows at once; fewer than the pipeline would cap it.
      session.once('remoteSettings', (settings) => {
        clearTimeout(timer);
        const streamsMax = settings.maxConcurrentStreams ?? 0xffff_ffff;
        if (streamsMax < this.pipeline) {
          session.destroy();
          reject(new Error(`etcd allows ${streamsMax} concurrent streams per connection, fewer than the pipeline ${this.pipeline}`));
          return;
        }
        session.setLocalWindowSize(WINDOW_BYTES);
        resolve(new EtcdConnection(session, reply, this.pipeline, this.valuePart, (e) => {
          this.failure ??= new Error(`etcd connection ${index} to port ${port}: ${e.message}`);
        }, (why) => {
          this.firstError ??= why;
        }));
      });
    });
  }
}

class EtcdConnection implements LoadConnection {
  private readonly slots: StreamSlot[] = [];
  private closing = false;

  constructor(
    private readonly session: http2.ClientHttp2Session,
    readonly reply: (tag: number, ok: boolean) => void,
    pipeline: number,
    private readonly valuePart: Buffer,
    private readonly failed: (e: Error) => void,
    readonly requestFailed: (why: string) => void,
  ) {
    const bodyBytes = GRPC_PREFIX_BYTES + 2 + KEY_BYTES_MAX + valuePart.length;
    for (let tag = 0; tag < pipeline; tag++) this.slots.push(new StreamSlot(this, tag, Buffer.allocUnsafe(bodyBytes)));
    session.on('error', (e) => this.fail(e));
    session.on('goaway', (code) => this.fail(new Error(`GOAWAY (code ${code}) from the server`)));
    session.on('close', () => this.fail(new Error('session closed by the server')));
  }

  send(tag: number, op: LoadOp, key: number): void {
    if (this.closing) return;
    const slot = this.slots[tag]!;
    const body = slot.body;
    let at = GRPC_PREFIX_BYTES;
    body[at++] = TAG_KEY;
    body[at++] = keyLength(key); // at most KEY_BYTES_MAX, so a one-byte varint
    at = writeKey(body, at, key);
    if (op === 'put') at += this.valuePart.copy(body, at);
    body[0] = 0; // not compressed
    body.writeUInt32BE(at - GRPC_PREFIX_BYTES, 1);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = request(this.session, op === 'put' ? PUT_HEADERS : RANGE_HEADERS);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    slot.start(stream);
    stream.end(body.subarray(0, at));
  }

  /** Node writes the frames of a turn's new streams together; there is nothing to push. */
  flush(): void {}

  close(): void {
    this.closing = true;
    this.session.destroy();
  }

  private fail(e: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.session.destroy();
    this.failed(e);
  }
}

// Node 20's AsyncResource#bind gives every bound function an `asyncResource` getter wrapped by
// deprecate() (DEP0172), and that wrapper's Object.setPrototypeOf on a fresh function throws away
// V8's inline caches, process-wide. http2's request() binds once per stream, so the client paid
// about twice the CPU per request for it (measured against a Node HTTP/2 server, 4 × 16 streams:
// ~160 µs against ~85 µs, and half the requests per second): the etcd rows would have shown our
// client, not etcd. Node 24 stopped changing the prototype there (nodejs/node#59195). So, where
// bind still attaches the getter, it is replaced for the duration of request() only, by a bind
// that keeps the async context and attaches nothing; request() runs no user code meanwhile.
const BIND_ATTACHES_GETTER = Object.getOwnPropertyDescriptor(new AsyncResource('probe').bind(() => undefined), 'asyncResource')?.get !== undefined;
const nodeBind = AsyncResource.prototype.bind;

function bindInScope(this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown): (...args: unknown[]) => unknown {
  if (thisArg !== undefined) return this.runInAsyncScope.bind(this, fn, thisArg) as (...args: unknown[]) => unknown;
  const resource = this;
  return function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
  if (!BIND_ATTACHES_GETTER) return session.request(headers);
  AsyncResource.prototype.bind = bindInScope as typeof nodeBind;
  try {
    return session.request(headers);
  } finally {
    AsyncResource.prototype.bind = nodeBind;
  }
}

/**
 * The request in flight on one tag. Its listeners are made once and attached to each new stream
 * of the tag: a tag has one stream at a time, and a stream emits nothing after 'close'. The body
 * buffer is reused likewise: by 'close' the stream's request has been written out.
 */
class StreamSlot {
  private grpcStatus: string | undefined;
  private httpStatus = 0;
  private grpcMessage: string | undefined;

  constructor(private readonly conn: EtcdConnection, private readonly tag: number, readonly body: Buffer) {}

  start(stream: http2.ClientHttp2Stream): void {
    this.grpcStatus = undefined;
    this.httpStatus = 0;
    this.grpcMessage = undefined;
    stream.on('response', this.onHeaders);
    stream.on('trailers', this.onHeaders);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
    // The reply message itself is not read: only its status counts.
    stream.resume();
  }

  private readonly onHeaders = (headers: http2.IncomingHttpHeaders): void => {
    const status = headers[':status'];
    if (status !== undefined) this.httpStatus = Number(status);
    const grpc = headers['grpc-status'];
    if (grpc !== undefined) this.grpcStatus = String(grpc);
    const message = headers['grpc-message'];
    if (message !== undefined) this.grpcMessage = String(message);
  };

  private readonly onError = (e: Error): void => {
    this.grpcMessage ??= e.message;
  };

  private readonly onClose = (): void => {
    const ok = this.httpStatus === 200 && this.grpcStatus === '0';
    if (!ok) this.conn.requestFailed(`HTTP ${this.httpStatus}, grpc-status ${this.grpcStatus ?? 'none'}${this.grpcMessage === undefined ? '' : `: ${percentDecoded(this.grpcMessage)}`}`);
    this.conn.reply(this.tag, ok);
  };
}

/** grpc-message is percent-encoded; a malformed one is shown as it came. */
function percentDecoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
