// A Flotilla node: the main thread. It owns every socket and runs no Raft logic: it reads the
// fixed headers of client frames and of peer sub-records, copies each into the in ring of the
// shard that owns its group, and writes what the shards put on their out rings to sockets.
// See docs/internals.md for the layouts and the turn of a shard.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Piscina } from 'piscina';
import { pack, unpack } from 'msgpackr';
import { SpscRing } from '../ring/spsc-ring.js';
import { InKind, OutKind, RECORD_HEADER_BYTES, CONN_IN_PROCESS, recordArg, recordKind, tryWriteRecord, writeRecordHeader } from '../ring/records.js';
import {
  encodeFrame, FRAME_HEADER_BYTES, frameBytesOf, FrameFlag, FrameKind, readHeader, type ErrorBody, type ProtocolErrorCode,
} from '../protocol/client-frame.js';
import { GROUP_BROADCAST, subBytes, subGroup } from '../protocol/peer-wire.js';
import { PeerLinks } from '../transport/peer-links.js';
import { listenTcp, type ClientConnection, type ClientHandler, type ClientListener } from '../transport/client-listener.js';
import { chooseWebSocketEngine, listenWebSocket } from '../transport/websocket-listener.js';
import { createCounters, ShardCounter } from '../shard/counters.js';
import type { AdminReply, AdminRequest, GroupStatus, LatencySummary, PeerInfo, ShardTask, StateMachineModule } from '../shard/task.js';
import { configWarnings, type NodeConfig } from './config.js';
import { createLogger, resolveLogOutput, type LogOutput, type Logger } from './log.js';
import { startAdminHttp, type AdminBackend, type AdminServer } from './admin-http.js';
import { NodeMetrics } from './metrics.js';
import { readNodeFile, shardOf, writeNodeFile } from './placement.js';

export interface NodeOptions {
  /** The state machine of every group; null or absent: the built-in key-value store. */
  stateMachine?: StateMachineModule | null;
  /** Called once if a shard fails; the node stops serving (docs/operations.md). Default: log. */
  onFatal?: (err: Error) => void;
  logger?: Logger;
}

export interface FlotillaNode {
  readonly config: NodeConfig;
  readonly ports: { raft: number; client: number; admin: number; ws: number | null };
  readonly wsEngine: 'uws' | 'ws' | null;
  /** Sends a command to a group from inside the process (no socket); resolves with the result bytes. */
  command(group: number, body: Uint8Array, opts?: { read?: boolean; stale?: boolean }): Promise<Uint8Array>;
  readonly admin: AdminBackend;
  stop(): Promise<void>;
}

/** An error answered by a node, with the protocol's stable code. */
export class NodeError extends Error {
  constructor(readonly code: ProtocolErrorCode | string, message: string, readonly leader?: ErrorBody['leader']) {
    super(message);
  }
}

type ShardState = 'starting' | 'ready' | 'failed' | 'stopped';

interface Shard {
  index: number;
  inRing: SpscRing;
  outRing: SpscRing;
  counters: Float64Array;
  state: ShardState;
  message?: string;
  done: Promise<void>;
  /** Work waiting for room in the in ring, in arrival order, with the record bytes it needs. */
  blocked: { bytes: number; attempt: () => boolean }[];
  waitingRoom: boolean;
}

interface Conn {
  c: ClientConnection;
  inflight: number;
  /** Paused because too many requests are in flight. */
  pausedInflight: boolean;
  /** Paused because a shard's in ring is full. */
  pausedRing: boolean;
  /** Paused by the listener for a slow reader is the listener's business. */
  closed: boolean;
}

interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** Records handled per out-ring drain before yielding to sockets. */
const DRAIN_RECORDS_MAX = 4096;
const SHARD_START_MS_MAX = 120_000;
const SHARD_STOP_MS_MAX = 30_000;
const ADMIN_TIMEOUT_MS = 30_000;

export async function startNode(config: NodeConfig, opts: NodeOptions = {}): Promise<FlotillaNode> {
  const node = new Node(config, opts);
  try {
    await node.start();
  } catch (e) {
    await node.stop().catch(() => undefined);
    throw e;
  }
  return node;
}

class Node implements FlotillaNode {
  readonly log: Logger;
  /** How this process writes log lines; the shards get it in their task. */
  private readonly logOutput: LogOutput;
  readonly ports = { raft: 0, client: 0, admin: 0, ws: null as number | null };
  wsEngine: 'uws' | 'ws' | null = null;
  readonly admin: AdminBackend;
  private readonly shards: Shard[] = [];
  private pool: Piscina | null = null;
  private links: PeerLinks | null = null;
  private tcp: ClientListener | null = null;
  private ws: ClientListener | null = null;
  private adminHttp: AdminServer | null = null;
  private readonly metrics = new NodeMetrics();
  private readonly conns = new Map<number, Conn>();
  private connSeq = 0;
  private readonly local = new Map<number, Pending<Uint8Array>>();
  private localSeq = 0;
  private readonly admins = new Map<number, Pending<AdminReply>>();
  private adminSeq = 0;
  /** Bytes per shard of the peer payload being routed (reused). */
  private peerSizes: number[] = [];
  /** Per peer: payloads held back for a full ring; its link is paused while any are. */
  private readonly linkHolds = new Map<number, number>();
  private running = true;
  private stopping: Promise<void> | null = null;
  private fatal = false;
  /** Set once start() completed: only then is a shard failure reported through onFatal. */
  private serving = false;
  private readonly readyWaiters: (() => void)[] = [];

  constructor(readonly config: NodeConfig, private readonly opts: NodeOptions) {
    this.logOutput = resolveLogOutput(config.logLevel, config.logFormat);
    this.log = opts.logger ?? createLogger(this.logOutput, config.nodeId);
    for (const w of configWarnings(config)) this.log.warn({}, `configuration: ${w}`);
    this.admin = {
      health: () => this.health(),
      status: () => this.status(),
      metrics: () => this.renderMetrics(),
      addGroup: (group, members) => this.groupAdmin(group, { op: 'addGroup', group, members }),
      removeGroup: (group) => this.groupAdmin(group, { op: 'removeGroup', group }),
      transferLeader: (group, to) => this.groupAdmin(group, { op: 'transferLeader', group, to }),
    };
  }

  async start(): Promise<void> {
    const c = this.config;
    const self = c.peers.find((p) => p.id === c.nodeId);
    if (self === undefined) throw new NodeError('BAD_CONFIG', `peers do not include node ${c.nodeId}`);
    // Before anything starts: 'uws' where uWebSockets.js cannot load throws UWS_UNAVAILABLE.
    if (c.websocket !== 'off') chooseWebSocketEngine(c.websocket);
    fs.mkdirSync(c.dataDir, { recursive: true });
    const fresh = readNodeFile(c.dataDir, c.nodeId, c.shards) === null;
    this.pool = new Piscina({
      filename: new URL('../shard/shard-task.js', import.meta.url).href,
      minThreads: c.shards,
      maxThreads: c.shards,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      atomics: 'disabled',
    });
    for (let k = 0; k < c.shards; k++) this.startShard(k, fresh);
    await this.whenShardsReady();
    if (fresh) writeNodeFile(c.dataDir, c.nodeId, c.shards);
    this.log.info({ shards: c.shards, fresh }, 'shards ready');

    const handler = this.clientHandler();
    const listenerOpts = {
      host: c.host,
      frameBytesMax: c.frameBytesMax,
      connectionsMax: c.connectionsMax,
      pendingBytesHigh: c.pendingBytesHigh,
      pendingBytesLow: c.pendingBytesLow,
      pendingBytesMax: c.pendingBytesMax,
      nextId: () => this.nextConnId(),
      log: this.log,
    };
    this.links = new PeerLinks({
      self: { ...self, raftPort: c.raftPort },
      peers: c.peers,
      listenHost: c.host,
      linkFrameBytesMax: c.linkFrameBytesMax,
      backoffMsMin: c.linkBackoffMsMin,
      backoffMsMax: c.linkBackoffMsMax,
      sendQueueBytesMax: c.linkSendQueueBytesMax,
      log: this.log,
    }, {
      onPayload: (from, buf, at, end) => this.routePeerPayload(from, buf, at, end),
      onState: (peer, up) => this.peerState(peer, up),
    });
    await this.links.start();
    this.ports.raft = this.links.port;
    this.tcp = await listenTcp({ ...listenerOpts, port: c.clientPort }, handler);
    this.ports.client = this.tcp.port;
    if (c.websocket !== 'off') {
      this.ws = await listenWebSocket({ ...listenerOpts, port: c.wsPort, engine: c.websocket }, handler);
      this.ports.ws = this.ws.port;
      this.wsEngine = this.ws.engine === 'uws' ? 'uws' : 'ws';
    }
    this.adminHttp = await startAdminHttp({ host: c.host, port: c.adminPort, log: this.log }, this.admin);
    this.ports.admin = this.adminHttp.port;
    this.serving = true;
    this.log.info({ ports: this.ports, ws: this.wsEngine }, 'node serving');
  }

  // ------------------------------------------------------------------------------------------
  // Shards

  private startShard(k: number, fresh: boolean): void {
    const c = this.config;
    const inSab = SpscRing.allocate(c.ringBytes);
    const outSab = SpscRing.allocate(c.ringBytes);
    const countersSab = createCounters();
    const bootstrapGroups: number[] = [];
    if (fresh) {
      for (let g = 1; g <= c.groups; g++) if (shardOf(g, c.shards) === k) bootstrapGroups.push(g);
    }
    const task: ShardTask = {
      shard: k,
      shards: c.shards,
      nodeId: c.nodeId,
      peers: c.peers,
      inRing: inSab,
      outRing: outSab,
      counters: countersSab,
      dir: path.join(c.dataDir, `shard-${k}`),
      bootstrapGroups,
      syncForce: c.syncForce,
      segmentBytes: c.segmentBytes,
      tickMs: c.tickMs,
      ticksElection: c.ticksElection,
      ticksHeartbeat: c.ticksHeartbeat,
      ticksQuiesce: c.ticksQuiesce,
      snapshotEntries: c.snapshotEntries,
      snapshotKeepEntries: c.snapshotKeepEntries,
      pendingPerGroupMax: c.pendingPerGroupMax,
      requestTimeoutMs: c.requestTimeoutMs,
      turnRecordsMax: c.turnRecordsMax,
      snapChunkBytes: c.snapChunkBytes,
      snapshotBytesMax: c.snapshotBytesMax,
      stateMachine: this.opts.stateMachine ?? null,
      echo: c.mode === 'echo',
      logLevel: this.logOutput.level,
      logFormat: this.logOutput.format,
      logColor: this.logOutput.color,
    };
    const shard: Shard = {
      index: k,
      inRing: new SpscRing(inSab),
      outRing: new SpscRing(outSab),
      counters: new Float64Array(countersSab),
      state: 'starting',
      done: Promise.resolve(),
      blocked: [],
      waitingRoom: false,
    };
    this.shards.push(shard);
    shard.done = this.pool!.run(task, { name: 'runShard' }).then(
      () => {
        if (shard.state !== 'failed') shard.state = 'stopped';
      },
      (e: unknown) => this.shardFailed(shard, e instanceof Error ? e : new Error(String(e))),
    );
    void this.pumpOut(shard);
  }

  private shardFailed(shard: Shard, err: Error): void {
    shard.state = 'failed';
    shard.message ??= err.message;
    this.notifyReadyWaiters();
    if (!this.running) return;
    this.log.fatal({ shard: shard.index, err: err.message }, 'shard failed; the node stops serving');
    if (this.fatal) return;
    this.fatal = true;
    const fatal = new NodeError('UNAVAILABLE', `shard ${shard.index} failed: ${err.message}`);
    if (!this.serving) return; // during start: startNode rejects instead
    // Requests still unread in the failed shard's ring will never be answered: settle the
    // in-process ones here (socket clients lose their connections when the node stops).
    for (const p of this.local.values()) p.reject(fatal);
    this.local.clear();
    if (this.opts.onFatal !== undefined) this.opts.onFatal(fatal);
  }

  private whenShardsReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new NodeError('UNAVAILABLE', `shards not ready after ${SHARD_START_MS_MAX} ms`)), SHARD_START_MS_MAX);
      const check = (): void => {
        const failed = this.shards.find((s) => s.state === 'failed' || s.state === 'stopped');
        if (failed !== undefined) {
          clearTimeout(timer);
          reject(new NodeError('UNAVAILABLE', `shard ${failed.index} did not start: ${failed.message ?? failed.state}`));
          return;
        }
        if (this.shards.every((s) => s.state === 'ready')) {
          clearTimeout(timer);
          resolve();
          return;
        }
        this.readyWaiters.push(check);
      };
      check();
    });
  }

  private notifyReadyWaiters(): void {
    const waiters = this.readyWaiters.splice(0);
    for (const w of waiters) w();
  }

  /** Drains one shard's out ring for as long as the node runs. */
  private async pumpOut(shard: Shard): Promise<void> {
    const ring = shard.outRing;
    for (;;) {
      try {
        await ring.waitData();
      } catch {
        return; // the ring was closed at stop
      }
      let handled = 0;
      for (let at = ring.read(); at >= 0; at = ring.read()) {
        this.handleOut(shard, ring.data, at, ring.readBytes);
        ring.release();
        if (++handled === DRAIN_RECORDS_MAX) break;
      }
      ring.notifyRoom();
      if (shard.state === 'stopped' || shard.state === 'failed') {
        if (ring.read() < 0) return;
      }
      // Let sockets flush and read between large drains.
      if (handled === DRAIN_RECORDS_MAX) await new Promise((r) => setImmediate(r));
    }
  }

  private handleOut(shard: Shard, buf: Uint8Array, at: number, bytes: number): void {
    const kind = recordKind(buf, at);
    const arg = recordArg(buf, at);
    const from = at + RECORD_HEADER_BYTES;
    const end = at + bytes;
    switch (kind) {
      case OutKind.Client:
        this.deliverResponses(arg, buf, from, end);
        return;
      case OutKind.Peer:
        this.links?.send(arg, buf.subarray(from, end));
        return;
      case OutKind.AdminReply: {
        const p = this.admins.get(arg);
        if (p === undefined) return;
        this.admins.delete(arg);
        p.resolve(unpackCopy(buf, from, end) as AdminReply);
        return;
      }
      case OutKind.Event: {
        const ev = unpackCopy(buf, from, end) as { type: string; shard: number; message?: string };
        if (ev.type === 'ready') shard.state = 'ready';
        else if (ev.type === 'failed') {
          shard.message = ev.message ?? 'failed';
          shard.state = 'failed';
        } else if (ev.type === 'stopped' && shard.state !== 'failed') shard.state = 'stopped';
        this.notifyReadyWaiters();
        return;
      }
      default:
        throw new Error(`shard ${shard.index} wrote an out-ring record of unknown kind ${kind}`);
    }
  }

  /** Writes response frames to their connection and settles its in-flight count. */
  private deliverResponses(connId: number, buf: Uint8Array, from: number, end: number): void {
    if (connId === CONN_IN_PROCESS) {
      for (let at = from; at < end;) {
        const h = readHeader(buf, at);
        this.settleLocal(h.requestId, h.kind, buf.subarray(at + FRAME_HEADER_BYTES, at + h.frameBytes));
        at += h.frameBytes;
      }
      return;
    }
    const conn = this.conns.get(connId);
    if (conn === undefined || conn.closed) return;
    let frames = 0;
    for (let at = from; at < end; frames++) at += frameBytesOf(buf, at);
    conn.inflight -= frames;
    conn.c.send(buf.subarray(from, end));
    if (conn.pausedInflight && conn.inflight < this.config.inflightPerConnMax) {
      conn.pausedInflight = false;
      if (!conn.pausedRing) conn.c.resume();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Writing to shards

  /**
   * Writes one in-ring record made of `header` + `payload` parts, or returns false when the
   * ring has no room now. A record larger than the ring allows is refused by the caller's bounds.
   */
  private writeIn(shard: Shard, kind: InKind, arg: number, payload: Uint8Array): boolean {
    if (!tryWriteRecord(shard.inRing, kind, arg, payload)) return false;
    shard.inRing.notify();
    return true;
  }

  /** Queues `attempt` (a record of `payloadBytes`) until the shard's in ring has room; attempts run in order. */
  private whenRoom(shard: Shard, payloadBytes: number, attempt: () => boolean): void {
    shard.blocked.push({ bytes: RECORD_HEADER_BYTES + payloadBytes, attempt });
    if (shard.waitingRoom) return;
    shard.waitingRoom = true;
    const retry = (): void => {
      while (shard.blocked.length > 0 && this.running) {
        const head = shard.blocked[0]!;
        if (!head.attempt()) {
          shard.inRing.waitRoom(head.bytes).then(retry, () => undefined);
          return;
        }
        shard.blocked.shift();
      }
      shard.waitingRoom = false;
    };
    shard.inRing.waitRoom(shard.blocked[0]!.bytes).then(retry, () => undefined);
  }

  // ------------------------------------------------------------------------------------------
  // Clients

  private nextConnId(): number {
    do {
      this.connSeq = (this.connSeq + 1) >>> 0;
    } while (this.connSeq === CONN_IN_PROCESS || this.conns.has(this.connSeq));
    return this.connSeq;
  }

  private clientHandler(): ClientHandler {
    return {
      onOpen: (c) => {
        this.conns.set(c.id, { c, inflight: 0, pausedInflight: false, pausedRing: false, closed: false });
      },
      onClose: (c) => {
        const conn = this.conns.get(c.id);
        if (conn !== undefined) conn.closed = true;
        this.conns.delete(c.id);
      },
      onDrain: () => undefined,
      onFrame: (c, buf, at, frameBytes) => this.routeClientFrame(c, buf, at, frameBytes),
    };
  }

  private routeClientFrame(c: ClientConnection, buf: Uint8Array, at: number, frameBytes: number): void {
    const conn = this.conns.get(c.id);
    if (conn === undefined) return;
    const h = readHeader(buf, at);
    if (h.kind === FrameKind.Ping) {
      c.send(encodeFrame(FrameKind.Pong, 0, h.requestId, h.group, new Uint8Array(0)));
      return;
    }
    if (h.group === 0 || h.group === GROUP_BROADCAST) {
      c.send(errorFrame(h.requestId, h.group, 'NO_GROUP', `group ${h.group} is not a group id`));
      return;
    }
    if (this.fatal || !this.running) {
      c.send(errorFrame(h.requestId, h.group, 'UNAVAILABLE', 'the node is stopping'));
      return;
    }
    const shard = this.shards[shardOf(h.group, this.shards.length)]!;
    if (RECORD_HEADER_BYTES + frameBytes > shard.inRing.recordBytesMax) {
      c.send(errorFrame(h.requestId, h.group, 'TOO_LARGE', `frame of ${frameBytes} bytes exceeds what a shard ring carries`));
      return;
    }
    conn.inflight++;
    if (conn.inflight >= this.config.inflightPerConnMax && !conn.pausedInflight) {
      conn.pausedInflight = true;
      c.pause();
    }
    const frame = buf.subarray(at, at + frameBytes);
    if (shard.blocked.length === 0 && this.writeIn(shard, InKind.Client, c.id, frame)) return;
    // The shard is behind: hold this frame, stop reading the connection until it is written.
    const held = frame.slice();
    conn.pausedRing = true;
    c.pause();
    this.whenRoom(shard, held.length, () => {
      if (conn.closed) return true;
      if (!this.writeIn(shard, InKind.Client, c.id, held)) return false;
      conn.pausedRing = false;
      if (!conn.pausedInflight) c.resume();
      return true;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Peers

  /** Splits a link frame's sub-records by owning shard, one in-ring record per shard. */
  private routePeerPayload(from: number, buf: Uint8Array, at: number, end: number): void {
    const n = this.shards.length;
    if (n === 1) {
      this.sendPeerRecord(this.shards[0]!, from, buf.subarray(at, end));
      return;
    }
    const sizes = this.peerSizes.length === n ? this.peerSizes.fill(0) : (this.peerSizes = new Array<number>(n).fill(0));
    for (let p = at; p < end; p += subBytes(buf, p)) {
      const g = subGroup(buf, p);
      const bytes = subBytes(buf, p);
      if (g === GROUP_BROADCAST) for (let k = 0; k < n; k++) sizes[k]! += bytes;
      else sizes[shardOf(g, n)]! += bytes;
    }
    for (let k = 0; k < n; k++) {
      const size = sizes[k]!;
      if (size === 0) continue;
      const shard = this.shards[k]!;
      if (size === end - at) {
        // Every sub-record is for this shard: the payload goes as it is.
        this.sendPeerRecord(shard, from, buf.subarray(at, end));
        continue;
      }
      // The common case: gather this shard's sub-records straight into its ring (one copy).
      const ring = shard.inRing;
      if (shard.blocked.length === 0 && RECORD_HEADER_BYTES + size <= ring.recordBytesMax) {
        const r = ring.reserve(RECORD_HEADER_BYTES + size);
        if (r >= 0) {
          writeRecordHeader(ring.data, r, InKind.Peer, from);
          gatherSubRecords(buf, at, end, k, n, ring.data, r + RECORD_HEADER_BYTES);
          ring.commit();
          ring.notify();
          continue;
        }
      }
      const part = new Uint8Array(size);
      gatherSubRecords(buf, at, end, k, n, part, 0);
      this.sendPeerRecord(shard, from, part);
    }
  }

  private sendPeerRecord(shard: Shard, from: number, payload: Uint8Array): void {
    const ring = shard.inRing;
    if (RECORD_HEADER_BYTES + payload.length > ring.recordBytesMax) {
      this.splitPeerRecord(shard, from, payload);
      return;
    }
    if (shard.blocked.length === 0 && this.writeIn(shard, InKind.Peer, from, payload)) return;
    const held = payload.slice();
    const holds = this.linkHolds.get(from) ?? 0;
    this.linkHolds.set(from, holds + 1);
    if (holds === 0) this.links?.pause(from);
    this.whenRoom(shard, held.length, () => {
      if (!this.writeIn(shard, InKind.Peer, from, held)) return false;
      const left = this.linkHolds.get(from)! - 1;
      this.linkHolds.set(from, left);
      if (left === 0) this.links?.resume(from);
      return true;
    });
  }

  /** A payload too large for one ring record goes as several, cut between sub-records. */
  private splitPeerRecord(shard: Shard, from: number, payload: Uint8Array): void {
    const max = shard.inRing.recordBytesMax - RECORD_HEADER_BYTES;
    let start = 0;
    let p = 0;
    while (p < payload.length) {
      const bytes = subBytes(payload, p);
      if (bytes > max) {
        this.log.warn({ from, bytes, max }, 'dropped a peer sub-record larger than a ring record');
        if (p > start) this.sendPeerRecord(shard, from, payload.subarray(start, p));
        p += bytes;
        start = p;
        continue;
      }
      if (p + bytes - start > max) {
        this.sendPeerRecord(shard, from, payload.subarray(start, p));
        start = p;
      }
      p += bytes;
    }
    if (p > start) this.sendPeerRecord(shard, from, payload.subarray(start, p));
  }

  private peerState(peer: number, up: boolean): void {
    this.log.info({ peer, up }, up ? 'link up' : 'link down');
    const payload = new Uint8Array([up ? 1 : 0]);
    for (const shard of this.shards) {
      if (shard.blocked.length === 0 && this.writeIn(shard, InKind.PeerState, peer, payload)) continue;
      this.whenRoom(shard, payload.length, () => this.writeIn(shard, InKind.PeerState, peer, payload));
    }
  }

  // ------------------------------------------------------------------------------------------
  // In-process requests and admin

  command(group: number, body: Uint8Array, opts: { read?: boolean; stale?: boolean } = {}): Promise<Uint8Array> {
    if (!this.running || this.fatal) return Promise.reject(new NodeError('UNAVAILABLE', 'the node is stopping'));
    if (!Number.isInteger(group) || group <= 0 || group >= GROUP_BROADCAST) {
      return Promise.reject(new NodeError('NO_GROUP', `group ${group} is not a group id`));
    }
    if (FRAME_HEADER_BYTES + body.length > this.config.frameBytesMax) {
      return Promise.reject(new NodeError('TOO_LARGE', `command of ${body.length} bytes exceeds frameBytesMax`));
    }
    const shard = this.shards[shardOf(group, this.shards.length)]!;
    if (RECORD_HEADER_BYTES + FRAME_HEADER_BYTES + body.length > shard.inRing.recordBytesMax) {
      return Promise.reject(new NodeError('TOO_LARGE', `command of ${body.length} bytes exceeds what a shard ring carries`));
    }
    let id: number;
    do {
      this.localSeq = (this.localSeq + 1) >>> 0;
      id = this.localSeq;
    } while (id === 0 || this.local.has(id));
    const flags = (opts.read === true || opts.stale === true ? FrameFlag.Read : 0) | (opts.stale === true ? FrameFlag.Stale : 0);
    const frame = encodeFrame(FrameKind.Command, flags, id, group, body);
    return new Promise((resolve, reject) => {
      this.local.set(id, { resolve, reject });
      if (shard.blocked.length === 0 && this.writeIn(shard, InKind.Client, CONN_IN_PROCESS, frame)) return;
      this.whenRoom(shard, frame.length, () => this.writeIn(shard, InKind.Client, CONN_IN_PROCESS, frame));
    });
  }

  private settleLocal(requestId: number, kind: number, body: Uint8Array): void {
    const p = this.local.get(requestId);
    if (p === undefined) return;
    this.local.delete(requestId);
    if (kind === FrameKind.Result) {
      p.resolve(body.slice());
      return;
    }
    const e = unpackCopy(body, 0, body.length) as ErrorBody;
    p.reject(new NodeError(e.code, e.message, e.leader));
  }

  private adminRequest(shard: Shard, req: AdminRequest): Promise<AdminReply> {
    if (shard.state !== 'ready') {
      return Promise.resolve({ ok: false, code: 'UNAVAILABLE', message: `shard ${shard.index} is ${shard.state}` });
    }
    do {
      this.adminSeq = (this.adminSeq + 1) >>> 0;
    } while (this.adminSeq === 0 || this.admins.has(this.adminSeq));
    const id = this.adminSeq;
    const payload = pack(req) as Uint8Array;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.admins.delete(id)) resolve({ ok: false, code: 'TIMEOUT', message: `shard ${shard.index} did not answer ${req.op}` });
      }, ADMIN_TIMEOUT_MS);
      this.admins.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject,
      });
      if (shard.blocked.length === 0 && this.writeIn(shard, InKind.Admin, id, payload)) return;
      this.whenRoom(shard, payload.length, () => this.writeIn(shard, InKind.Admin, id, payload));
    });
  }

  private groupAdmin(group: number, req: AdminRequest): Promise<AdminReply> {
    if (!Number.isInteger(group) || group <= 0 || group >= GROUP_BROADCAST) {
      return Promise.resolve({ ok: false, code: 'BAD_REQUEST', message: `group ${group} is not a group id` });
    }
    return this.adminRequest(this.shards[shardOf(group, this.shards.length)]!, req);
  }

  private health(): ReturnType<AdminBackend['health']> {
    const shards = this.shards.map((s) => ({ shard: s.index, state: s.state, ...(s.message !== undefined ? { message: s.message } : {}) }));
    const serving = this.running && !this.fatal && this.shards.every((s) => s.state === 'ready') && this.tcp !== null;
    return { serving, nodeId: this.config.nodeId, shards };
  }

  private async status(): Promise<{ nodeId: number; groups: GroupStatus[] }> {
    const replies = await Promise.all(this.shards.map((s) => this.adminRequest(s, { op: 'status' })));
    const groups: GroupStatus[] = [];
    for (const r of replies) if (r.ok && r.groups !== undefined) groups.push(...r.groups);
    groups.sort((a, b) => a.group - b.group);
    return { nodeId: this.config.nodeId, groups };
  }

  private async renderMetrics(): Promise<string> {
    const [status, latencies] = await Promise.all([
      this.status(),
      Promise.all(this.shards.map((s) => this.adminRequest(s, { op: 'metrics' }))),
    ]);
    let tcp = 0;
    let ws = 0;
    for (const conn of this.conns.values()) {
      if (conn.c.transport === 'tcp') tcp++;
      else ws++;
    }
    return this.metrics.render({
      nodeId: this.config.nodeId,
      perGroupMax: this.config.metricsPerGroupMax,
      shards: this.shards.map((s, i) => ({
        shard: s.index,
        counters: s.counters,
        ringInBytes: s.inRing.usedBytes(),
        ringOutBytes: s.outRing.usedBytes(),
        ringCapacity: s.inRing.capacity,
        state: s.state,
        latency: latencies[i]!.ok ? (latencies[i] as { latency?: Record<string, LatencySummary> }).latency ?? null : null,
      })),
      groups: status.groups,
      connections: { tcp, ws },
      links: this.links?.stats() ?? [],
    });
  }

  // ------------------------------------------------------------------------------------------
  // Stopping

  stop(): Promise<void> {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  private async stopOnce(): Promise<void> {
    this.running = false;
    const closing: Promise<unknown>[] = [];
    if (this.adminHttp !== null) closing.push(this.adminHttp.close());
    if (this.tcp !== null) closing.push(this.tcp.close());
    if (this.ws !== null) closing.push(this.ws.close());
    await Promise.allSettled(closing);
    for (const shard of this.shards) {
      if (shard.state === 'failed' || shard.state === 'stopped') continue;
      if (!this.writeIn(shard, InKind.Stop, 0, new Uint8Array(0))) {
        // A full ring at stop: wait for room a bounded time.
        await Promise.race([shard.inRing.waitRoom(RECORD_HEADER_BYTES), sleep(SHARD_STOP_MS_MAX)]);
        this.writeIn(shard, InKind.Stop, 0, new Uint8Array(0));
      }
    }
    const stopped = await Promise.race([
      Promise.all(this.shards.map((s) => s.done)).then(() => true),
      sleep(SHARD_STOP_MS_MAX).then(() => false),
    ]);
    if (!stopped) this.log.warn({}, 'shards did not stop in time; terminating their threads');
    if (this.links !== null) await this.links.close();
    if (this.pool !== null) await this.pool.destroy();
    // A pending wait on a ring holds the event loop open; closing rejects it.
    for (const s of this.shards) {
      s.inRing.close();
      s.outRing.close();
    }
    for (const p of this.local.values()) p.reject(new NodeError('UNAVAILABLE', 'the node stopped'));
    this.local.clear();
    for (const p of this.admins.values()) p.resolve({ ok: false, code: 'UNAVAILABLE', message: 'the node stopped' });
    this.admins.clear();
    this.log.info({}, 'node stopped');
  }
}

/** Copies the sub-records of buf[at, end) that shard `k` of `n` owns (broadcasts included) to dst[dstAt..]. */
function gatherSubRecords(buf: Uint8Array, at: number, end: number, k: number, n: number, dst: Uint8Array, dstAt: number): void {
  let w = dstAt;
  for (let p = at; p < end;) {
    const bytes = subBytes(buf, p);
    const g = subGroup(buf, p);
    if (g === GROUP_BROADCAST || shardOf(g, n) === k) {
      dst.set(buf.subarray(p, p + bytes), w);
      w += bytes;
    }
    p += bytes;
  }
}

function errorFrame(requestId: number, group: number, code: ProtocolErrorCode, message: string): Uint8Array {
  return encodeFrame(FrameKind.Error, 0, requestId, group, pack({ code, message } satisfies ErrorBody) as Uint8Array);
}

/** msgpackr's native string path refuses SharedArrayBuffer memory: unpack a private copy. */
function unpackCopy(buf: Uint8Array, from: number, end: number): unknown {
  return unpack(buf.slice(from, end));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export type { PeerInfo };
export { ShardCounter };
