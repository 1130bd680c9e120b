// The load generator's view of Flotilla: KV puts and gets written straight as protocol frames
// (docs/protocol.md), without the client library's promise per request, so that the client
// costs little of the machine it shares with the nodes.
//
// One benchmark connection is a logical client: it opens a socket to each node it needs and
// sends each request to its group's leader as last learned from NOT_LEADER hints (the first
// guess is group % nodes). A request turned away (NOT_LEADER, LEADER_TRANSFERRING, an election
// under way) is sent again, to the hinted leader or after a short pause; it counts once, when it
// is answered. Echo mode answers on any node, so connection i sends everything to node i % nodes.
import * as net from 'node:net';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { keyOpBytes, putBytes, writeKeyOp, writePut } from '../src/kv/kv-command.js';
import { KvTag } from '../src/kv/kv-types.js';
import { FRAME_HEADER_BYTES, FrameFlag, FrameKind, type ErrorBody } from '../src/protocol/client-frame.js';
import type { LoadConnection, LoadDriver, LoadOp } from './load.js';

export interface FlotillaDriverOptions {
  /** Where each node listens for clients: host:port of its TCP (or, with transport ws, WebSocket) port. */
  servers: string[];
  transport: 'tcp' | 'ws';
  /** The group of a key (key k is the string `k<k>`): the cluster's key map's owner of its slot. */
  groupOfKey: (key: string) => number;
  /** The largest group id groupOfKey returns (sizes the leader table). */
  groupIdMax: number;
  keys: number;
  valueBytes: number;
  /** Most requests in flight on one connection (sizes the per-request tables). */
  pipeline: number;
  echo: boolean;
}

/** Pause before resending a request no leader took, so an election is not flooded. */
const RETRY_MS = 20;
/** A request turned away this many times counts as an error. */
const RETRIES_MAX = 500;
/** Bytes of socket input held while a frame is incomplete; a frame larger than this is a protocol error here. */
const CARRY_BYTES_MAX = 16 * 1024 * 1024;

/** Why requests failed or were sent again, by protocol error code. */
export interface DriverCounts {
  errors: Map<string, number>;
  redirects: number;
  retries: number;
}

export class FlotillaDriver implements LoadDriver {
  readonly counts: DriverCounts = { errors: new Map(), redirects: 0, retries: 0 };
  /** Leader of each group as a server index, -1 until learned. */
  readonly leader: Int32Array;
  readonly groupOf: Uint32Array;
  readonly keyBytes: Buffer[];
  readonly value: Buffer;
  private readonly hosts: { host: string; port: number }[];
  private readonly conns = new Set<FlotillaConnection>();

  constructor(readonly o: FlotillaDriverOptions) {
    this.hosts = o.servers.map((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
    });
    this.leader = new Int32Array(o.groupIdMax + 1).fill(-1);
    this.groupOf = new Uint32Array(o.keys);
    this.keyBytes = new Array<Buffer>(o.keys);
    for (let k = 0; k < o.keys; k++) {
      const key = `k${k}`;
      this.keyBytes[k] = Buffer.from(key, 'latin1');
      this.groupOf[k] = o.groupOfKey(key);
    }
    this.value = Buffer.alloc(o.valueBytes, 0x76);
  }

  async open(index: number, reply: (tag: number, ok: boolean) => void): Promise<LoadConnection> {
    const c = new FlotillaConnection(this, index, reply);
    this.conns.add(c);
    // Connect eagerly to the node this connection starts with, so a bad address fails here.
    await c.link(this.o.echo ? index % this.hosts.length : 0).ready;
    return c;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close();
    this.conns.clear();
  }

  hostCount(): number {
    return this.hosts.length;
  }

  host(i: number): { host: string; port: number } {
    return this.hosts[i]!;
  }

  /** Server index of a hint's node, by its advertised port of our transport; -1 if not among ours. */
  serverOfHint(e: ErrorBody): number {
    const l = e.leader;
    if (l === undefined) return -1;
    const port = this.o.transport === 'ws' ? l.wsPort : l.clientPort;
    return this.hosts.findIndex((h) => h.port === port && (h.host === l.host || l.host === '0.0.0.0' || h.host === '127.0.0.1'));
  }

  countError(code: string): void {
    this.counts.errors.set(code, (this.counts.errors.get(code) ?? 0) + 1);
  }
}

/** One socket (or WebSocket) to one node, shared by the requests of one logical connection. */
class Link {
  readonly ready: Promise<void>;
  private sock: net.Socket | null = null;
  private ws: WebSocket | null = null;
  private out: Buffer;
  private outBytes = 0;
  private carry: Buffer | null = null;
  /** WebSocket frames made before the connection opened; at most a pipeline's worth. */
  private readonly wsPending: Buffer[] = [];
  closed = false;

  constructor(private readonly conn: FlotillaConnection, readonly server: number, frameBytesMax: number) {
    this.out = Buffer.allocUnsafe(frameBytesMax * 64);
    const { host, port } = conn.driver.host(server);
    if (conn.driver.o.transport === 'ws') {
      const ws = new WebSocket(`ws://${host.includes(':') ? `[${host}]` : host}:${port}/`);
      ws.binaryType = 'nodebuffer';
      this.ws = ws;
      this.ready = new Promise((resolve, reject) => {
        ws.once('open', () => {
          // Frames made while connecting go first, in order (a TCP socket buffers them itself).
          for (const m of this.wsPending) ws.send(m, { binary: true });
          this.wsPending.length = 0;
          resolve();
        });
        ws.once('error', reject);
      });
      ws.on('message', (data: Buffer) => this.conn.frame(data, 0, data.length));
      ws.on('close', () => this.lost());
      ws.on('error', () => this.lost());
    } else {
      const sock = net.connect({ host, port, noDelay: true });
      this.sock = sock;
      this.ready = new Promise((resolve, reject) => {
        sock.once('connect', () => resolve());
        sock.once('error', reject);
      });
      sock.on('data', (d: Buffer) => this.data(d));
      sock.on('close', () => this.lost());
      sock.on('error', () => undefined);
    }
  }

  /** Room for one frame of `bytes`; returns where to write it. */
  reserve(bytes: number): number {
    if (this.ws !== null) {
      // One WebSocket message per frame: each is sent as it is made.
      if (this.out.length < bytes) this.out = Buffer.allocUnsafe(bytes);
      this.outBytes = 0;
      return 0;
    }
    if (this.outBytes + bytes > this.out.length) {
      this.flush();
      if (this.out.length < bytes) this.out = Buffer.allocUnsafe(bytes);
    }
    const at = this.outBytes;
    this.outBytes += bytes;
    return at;
  }

  get buffer(): Buffer {
    return this.out;
  }

  /** WebSocket: sends the frame just written at 0 (held until the connection is open). */
  sendMessage(bytes: number): void {
    const ws = this.ws;
    if (ws === null || this.closed) return;
    const m = Buffer.from(this.out.subarray(0, bytes));
    if (ws.readyState === WebSocket.CONNECTING) this.wsPending.push(m);
    else ws.send(m, { binary: true });
  }

  flush(): void {
    if (this.outBytes === 0 || this.sock === null) return;
    // The socket keeps what it is given until written: it gets a copy of just the bytes of this
    // flush (from Node's pool when small), and the frame buffer is reused.
    const chunk = Buffer.allocUnsafe(this.outBytes);
    this.out.copy(chunk, 0, 0, this.outBytes);
    this.outBytes = 0;
    if (!this.closed) this.sock.write(chunk);
  }

  private data(d: Buffer): void {
    let buf = d;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, d]);
      this.carry = null;
    }
    let at = 0;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const bytes = buf.readUInt32LE(at);
      if (bytes < FRAME_HEADER_BYTES) {
        this.conn.fail(`node sent a frame of ${bytes} bytes`);
        return;
      }
      if (buf.length - at < bytes) break;
      this.conn.frame(buf, at, bytes);
      at += bytes;
    }
    if (at < buf.length) {
      if (buf.length - at > CARRY_BYTES_MAX) {
        this.conn.fail('a frame larger than the driver holds');
        return;
      }
      this.carry = buf.subarray(at);
    }
  }

  private lost(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.linkLost(this);
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
    this.ws?.terminate();
  }
}

class FlotillaConnection implements LoadConnection {
  private readonly links: (Link | null)[];
  private readonly dirty = new Set<Link>();
  private readonly opOf: Uint8Array;
  private readonly keyOf: Uint32Array;
  private readonly tries: Uint16Array;
  /** Server each tag was last sent to (-1: not in flight). */
  private readonly sentTo: Int16Array;
  private readonly frameBytesMax: number;
  private closed = false;

  constructor(readonly driver: FlotillaDriver, readonly index: number, private readonly reply: (tag: number, ok: boolean) => void) {
    const p = driver.o.pipeline;
    this.links = new Array<Link | null>(driver.hostCount()).fill(null);
    this.opOf = new Uint8Array(p);
    this.keyOf = new Uint32Array(p);
    this.tries = new Uint16Array(p);
    this.sentTo = new Int16Array(p).fill(-1);
    let keyMax = 1;
    for (const k of driver.keyBytes) keyMax = Math.max(keyMax, k.length);
    this.frameBytesMax = FRAME_HEADER_BYTES + putBytes(keyMax, driver.o.valueBytes);
  }

  link(server: number): Link {
    let l = this.links[server];
    if (l === null || l === undefined || l.closed) {
      l = new Link(this, server, this.frameBytesMax);
      l.ready.catch(() => undefined);
      this.links[server] = l;
    }
    return l;
  }

  send(tag: number, op: LoadOp, key: number): void {
    this.opOf[tag] = op === 'put' ? KvTag.Put : KvTag.Get;
    this.keyOf[tag] = key;
    this.tries[tag] = 0;
    this.write(tag);
  }

  private write(tag: number): void {
    if (this.closed) return;
    const d = this.driver;
    const key = this.keyOf[tag]!;
    const group = d.groupOf[key]!;
    const n = d.hostCount();
    const server = d.o.echo ? this.index % n : d.leader[group]! >= 0 ? d.leader[group]! : group % n;
    const link = this.link(server);
    this.sentTo[tag] = server;
    const k = d.keyBytes[key]!;
    const put = this.opOf[tag] === KvTag.Put;
    const bodyBytes = put ? putBytes(k.length, d.value.length) : keyOpBytes(k.length);
    const bytes = FRAME_HEADER_BYTES + bodyBytes;
    let at = link.reserve(bytes);
    const b = link.buffer;
    b.writeUInt32LE(bytes, at);
    b[at + 4] = FrameKind.Command;
    b[at + 5] = put ? 0 : FrameFlag.Read;
    b.writeUInt16LE(0, at + 6);
    b.writeUInt32LE(tag, at + 8);
    b.writeUInt32LE(group, at + 12);
    at += FRAME_HEADER_BYTES;
    // The KV codec's layout, written in place from the key and value bytes encoded once.
    if (put) writePut(b, at, k, d.value);
    else writeKeyOp(b, at, KvTag.Get, k);
    if (d.o.transport === 'ws') link.sendMessage(bytes);
    else this.dirty.add(link);
  }

  flush(): void {
    for (const l of this.dirty) l.flush();
    this.dirty.clear();
  }

  /** A response frame from any of this connection's links. */
  frame(buf: Buffer, at: number, bytes: number): void {
    const kind = buf[at + 4];
    const tag = buf.readUInt32LE(at + 8);
    if (tag >= this.sentTo.length || this.sentTo[tag] === -1) return; // not ours (or already answered)
    if (kind === FrameKind.Result) {
      this.done(tag, true);
      return;
    }
    let e: ErrorBody | null = null;
    if (kind === FrameKind.Error) {
      try {
        e = unpack(buf.subarray(at + FRAME_HEADER_BYTES, at + bytes)) as ErrorBody;
      } catch {
        e = null;
      }
    }
    const code = e?.code ?? `frame kind ${kind}`;
    if ((code === 'NOT_LEADER' || code === 'LEADER_TRANSFERRING' || code === 'OUTCOME_UNKNOWN') && this.tries[tag]! < RETRIES_MAX) {
      this.tries[tag]!++;
      const d = this.driver;
      const group = d.groupOf[this.keyOf[tag]!]!;
      const hinted = e === null ? -1 : d.serverOfHint(e);
      if (hinted >= 0 && hinted !== this.sentTo[tag] && code === 'NOT_LEADER') {
        d.leader[group] = hinted;
        d.counts.redirects++;
        this.write(tag);
        this.flush();
      } else {
        // No leader known yet, or it is moving: ask again shortly, trying the next node.
        d.leader[group] = (this.sentTo[tag]! + 1) % d.hostCount();
        d.counts.retries++;
        this.sentTo[tag] = -2;
        setTimeout(() => {
          this.write(tag);
          this.flush();
        }, RETRY_MS);
      }
      return;
    }
    this.driver.countError(code);
    this.done(tag, false);
  }

  private done(tag: number, ok: boolean): void {
    this.sentTo[tag] = -1;
    this.reply(tag, ok);
  }

  /** A node's connection went away: what was in flight on it is an error (its outcome is not known). */
  linkLost(link: Link): void {
    if (this.closed) return;
    this.links[link.server] = null;
    for (let tag = 0; tag < this.sentTo.length; tag++) {
      if (this.sentTo[tag] !== link.server) continue;
      this.driver.countError('CONNECTION_LOST');
      this.done(tag, false);
    }
  }

  fail(why: string): void {
    this.driver.countError('DRIVER');
    if (!this.closed) process.emitWarning(`benchmark connection ${this.index}: ${why}`);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links) l?.close();
  }
}
