// A scripted stand-in for a node's client port, for client tests: it reads request frames
// (the real header rules of client-frame.ts) and hands each to a script that answers, holds,
// misbehaves or drops the connection. Listens on 127.0.0.1, ephemeral port.
import * as net from 'node:net';
import { pack } from 'msgpackr';
import {
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameKind,
  encodeFrame,
  headerProblem,
  readHeader,
  type ErrorBody,
  type LeaderHint,
} from '../../src/protocol/client-frame.js';
import { createKvStateMachine } from '../../src/kv/kv-service.js';
import { KeyMap } from '../../src/cluster/key-map.js';
import { mapAnswerBody, readMapRequest } from '../../src/protocol/client-frame.js';
import type { StateMachine } from '../../src/shard/state-machine.js';

export interface FakeRequest {
  kind: number;
  flags: number;
  requestId: number;
  group: number;
  body: Uint8Array;
  socket: net.Socket;
  /** 1 for the first connection the server accepted, 2 for the next, ... */
  conn: number;
}

export type Script = (req: FakeRequest, server: FakeServer) => void;

/** Groups 1..count over every slot, node 1 their voter, no node addresses (clients then use their seeds). */
export function fakeMap(count = 64): KeyMap {
  const groups = [];
  for (let g = 1; g <= count; g++) groups.push({ group: g, members: [1] });
  return KeyMap.initial(groups);
}

export class FakeServer {
  /** Every server not yet closed, so a failed test can still close them (see closeAll). */
  static readonly open = new Set<FakeServer>();
  readonly requests: FakeRequest[] = [];
  readonly sockets = new Set<net.Socket>();
  /** Why frames the client sent were malformed (tests expect none). */
  readonly problems: string[] = [];
  connections = 0;
  /** `data` events seen, over all connections. */
  chunks = 0;
  /** Every byte received, per connection, in order. */
  readonly received: Buffer[][] = [];
  script: Script;
  /**
   * The key map MapRequests are answered with (as a node answers them, outside the script and
   * not in `requests`); null: MapRequests go to the script like any request.
   */
  map: KeyMap | null = fakeMap();
  /** MapRequests answered from `map`. */
  mapRequests = 0;

  private constructor(private readonly server: net.Server, script: Script) {
    this.script = script;
  }

  static start(script: Script): Promise<FakeServer> {
    const server = net.createServer();
    const fake = new FakeServer(server, script);
    server.on('connection', (s) => fake.accept(s));
    FakeServer.open.add(fake);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(fake));
    });
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** A NOT_LEADER hint that points at this server. */
  get hint(): LeaderHint {
    return { id: 9, host: '127.0.0.1', clientPort: this.port, wsPort: 0 };
  }

  reply(req: FakeRequest, kind: FrameKind, body: Uint8Array): void {
    const socket = req.socket;
    if (socket.destroyed) return;
    // Like a real server: the answers of one turn leave in one write.
    if (socket.writableCorked === 0) {
      socket.cork();
      setImmediate(() => socket.uncork());
    }
    socket.write(encodeFrame(kind, 0, req.requestId, req.group, body));
  }

  result(req: FakeRequest, body: Uint8Array): void {
    this.reply(req, FrameKind.Result, body);
  }

  error(req: FakeRequest, code: ErrorBody['code'], message: string = code, leader?: LeaderHint): void {
    const e: ErrorBody = { code, message };
    if (leader !== undefined) e.leader = leader;
    this.reply(req, FrameKind.Error, pack(e) as Uint8Array);
  }

  adminResult(req: FakeRequest, reply: unknown): void {
    this.reply(req, FrameKind.AdminResult, pack(reply) as Uint8Array);
  }

  /** Stops listening and drops every connection. */
  close(): Promise<void> {
    FakeServer.open.delete(this);
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const conn = ++this.connections;
    socket.setNoDelay(true);
    const received: Buffer[] = [];
    this.received.push(received);
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.chunks++;
      received.push(chunk);
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= FRAME_HEADER_BYTES) {
        const problem = headerProblem(buf, 0, 1 << 20, true);
        if (problem !== null) {
          this.problems.push(problem);
          socket.destroy();
          return;
        }
        const h = readHeader(buf, 0);
        if (buf.length < h.frameBytes) break;
        const req: FakeRequest = {
          kind: h.kind,
          flags: h.flags,
          requestId: h.requestId,
          group: h.group,
          body: buf.subarray(FRAME_HEADER_BYTES, h.frameBytes),
          socket,
          conn,
        };
        buf = buf.subarray(h.frameBytes);
        if (req.kind === FrameKind.MapRequest && this.map !== null) {
          this.mapRequests++;
          const held = readMapRequest(req.body);
          const v = this.map.version;
          const same = typeof held === 'number' && held >= v;
          socket.write(encodeFrame(FrameKind.Map, 0, req.requestId, 0, mapAnswerBody(v, same ? null : this.map.encode())));
          continue;
        }
        this.requests.push(req);
        if (!socket.destroyed) this.script(req, this);
      }
    });
  }
}

/**
 * A script that serves the KV service like a leader would: writes applied, reads queried,
 * admin requests answered ok. Several servers may share one `sm` (one replicated state).
 */
export function kvScript(sm: StateMachine = createKvStateMachine(1)): Script {
  let index = 0;
  return (req, server) => {
    if (req.kind === FrameKind.Admin) {
      server.adminResult(req, { ok: true, groups: [] });
      return;
    }
    if ((req.flags & FrameFlag.Read) !== 0) {
      try {
        server.result(req, sm.query(req.body));
      } catch (e) {
        server.error(req, 'BAD_REQUEST', (e as Error).message);
      }
      return;
    }
    server.result(req, sm.apply(req.body, ++index));
  };
}

/** Closes every fake server still open: an afterEach hook, so a failing test cannot hang the file. */
export async function closeAllServers(): Promise<void> {
  await Promise.all([...FakeServer.open].map((s) => s.close()));
}

/** An address where nothing listens: a port that was just released. */
export async function deadAddress(): Promise<string> {
  const s = await FakeServer.start(() => undefined);
  const a = s.address;
  await s.close();
  return a;
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
