// The main thread's replication links (docs/internals.md "Peer links"): one TCP connection per
// pair of nodes, over which both sides send link frames of sub-records for many groups. This
// file drives the parts, each in a file of its own name:
//   peer-link-handshake.ts  hellos, their checks, and the contention of two connections from one node
//   peer-link-redial.ts     the redial delay of a dialer (backoff with jitter)
//   peer-link-output.ts     the frame batching: one buffer and one write per link per turn
//   peer-link-held.ts       the payloads a paused link holds for redelivery
//   peer-link-conn.ts       the state kept per peer and per connection
//   peer-links-options.ts   the options and their bounds; refusal-log.ts the rate limit of refusal warnings
//
// - The node with the lower id dials, the higher one accepts; a dialer that loses its link
//   redials (peer-link-redial.ts). Refusals of connections that never came up are logged at
//   most once per source address per refusedLogMsInterval, with the number left unlogged.
// - Nothing here decodes a payload: each link frame's sub-record chain is checked with
//   payloadProblem and handed over as it lies in the chunk. A bad frame closes that link only.
// - Output is copied into one buffer per link and written once per event-loop turn. What the
//   kernel has not taken is bounded by sendQueueBytesMax; beyond it a frame is dropped, which
//   Raft tolerates (it retransmits), and counted.
// - pause/resume stop and restart delivery from one node (the main thread pauses a link while
//   a shard's ring is full). The socket stops reading; frames already read from the chunk in
//   hand are copied and held, and delivered on resume, in order, in a later turn.
//
// Handler calls: onState(node, up) once per handshake (true) and once per loss of an up link
// (false), never after close() has begun; onPayload only for an up link. A handler that throws
// from onPayload closes that link with a warning; nothing throws out of a socket callback.

import * as net from 'node:net';
import { encodeHello, LINK_FRAME_HEADER_BYTES, payloadProblem, type LinkRefusal } from '../protocol/peer-wire.js';
import { Conn, ConnState, Peer, type PeerLinkStats } from './peer-link-conn.js';
import { PeerHandshakes } from './peer-link-handshake.js';
import { LinkFlush } from './peer-link-output.js';
import {
  checkPeerLinksOptions, checkWhole, CLOSE_LINGER_MS, HELD_SLACK_BYTES, PENDING_HANDSHAKES_MAX,
  type PeerLinksLog, type PeerLinksOptions,
} from './peer-links-options.js';
import { REFUSED_LOG_MS_INTERVAL, RefusalLog } from './refusal-log.js';

export { PROBE_MS_LINK_REPLACE } from './peer-link-handshake.js';

export interface PeerLinksHandler {
  /** One validated link-frame payload (payloadProblem === null) from `from`: buf[at, end). Valid only during the call. */
  onPayload(from: number, buf: Uint8Array, at: number, end: number): void;
  /** A link to `node` became usable (handshake done) or was lost. */
  onState(node: number, up: boolean): void;
}

export class PeerLinks {
  private readonly selfId: number;
  private readonly peers = new Map<number, Peer>();
  private readonly log: PeerLinksLog;
  private server: net.Server | null = null;
  private started = false;
  private closing = false;
  private closedPromise: Promise<void> | null = null;
  private readonly handshakes: PeerHandshakes;
  /** Every socket not yet closed, dialed or accepted; close() waits for them. */
  private readonly live = new Set<Conn>();
  private liveEmpty: Array<() => void> = [];
  private readonly flush = new LinkFlush();
  private listenPort = 0;
  private readonly refusals: RefusalLog;

  constructor(private readonly opts: PeerLinksOptions, private readonly handler: PeerLinksHandler) {
    const timeoutMsHandshake = checkPeerLinksOptions(opts);
    this.selfId = opts.self.id;
    this.log = opts.log;
    this.refusals = new RefusalLog(opts.refusedLogMsInterval ?? REFUSED_LOG_MS_INTERVAL);
    for (const info of opts.peers) {
      if (info.id === this.selfId) continue;
      checkWhole('peer id', info.id, 1, 0xffffffff);
      if (this.peers.has(info.id)) throw new RangeError(`peer links: node ${info.id} is listed twice`);
      const dialer = this.selfId < info.id;
      if (dialer) checkWhole(`raftPort of node ${info.id}`, info.raftPort, 1, 65535);
      this.peers.set(info.id, new Peer(info, dialer, opts.backoffMsMin, opts.backoffMsMax));
    }
    const host = {
      isClosing: (): boolean => this.closing,
      up: (conn: Conn, peer: Peer): boolean => this.up(conn, peer),
      drop: (conn: Conn, level: 'warn' | 'info' | 'debug', reason: string, code?: LinkRefusal): void => this.drop(conn, level, reason, code),
    };
    this.handshakes = new PeerHandshakes(host, opts.log, opts.clusterId, this.selfId, this.peers, timeoutMsHandshake);
  }

  /** The port listened on (self.raftPort, or the one the kernel chose for 0); 0 before start(). */
  get port(): number {
    return this.listenPort;
  }

  /** Listens on self.raftPort (0 allowed: then `port` tells which) and starts dialing peers with higher ids. */
  async start(): Promise<void> {
    if (this.started) throw new Error('PeerLinks.start() called twice');
    if (this.closing) throw new Error('PeerLinks.start() after close()');
    this.started = true;
    const server = net.createServer({ noDelay: true }, (socket) => this.accepted(socket));
    this.server = server;
    const host = this.opts.listenHost ?? this.opts.self.host;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(this.opts.self.raftPort, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err: NodeJS.ErrnoException) => {
      this.log.warn({ err: err.message, code: err.code }, 'peer link listener error');
    });
    const addr = server.address();
    this.listenPort = typeof addr === 'object' && addr !== null ? addr.port : this.opts.self.raftPort;
    this.log.info({ host, port: this.listenPort }, 'peer links listening');
    for (const peer of this.peers.values()) if (peer.dialer) this.dial(peer);
  }

  /**
   * Queues one link frame carrying `payload` to `to` (the length header is added here); the bytes
   * are copied before this returns. Written once per event-loop turn. False when the link is
   * down, when its queue would pass sendQueueBytesMax, or when the payload is over
   * linkFrameBytesMax: the frame is dropped and counted.
   */
  send(to: number, payload: Uint8Array): boolean {
    const peer = this.peers.get(to);
    if (peer === undefined) return false;
    const conn = peer.conn;
    if (conn === null || conn.state !== ConnState.Up) {
      peer.drops++;
      return false;
    }
    const len = payload.length;
    if (len > this.opts.linkFrameBytesMax) {
      peer.drops++;
      this.log.warn({ peer: to, bytes: len, linkFrameBytesMax: this.opts.linkFrameBytesMax },
        'dropped a link frame over linkFrameBytesMax: the peer would close the link');
      return false;
    }
    const frameBytes = LINK_FRAME_HEADER_BYTES + len;
    const output = conn.output;
    const need = output.bytes + frameBytes;
    const queued = conn.socket.writableLength + need;
    if (queued > this.opts.sendQueueBytesMax) {
      peer.drops++;
      if (!peer.overflowing) {
        peer.overflowing = true;
        this.log.warn({ peer: to, queuedBytes: queued - frameBytes, sendQueueBytesMax: this.opts.sendQueueBytesMax },
          'peer link send queue full: dropping frames until it drains');
      }
      return false;
    }
    peer.overflowing = false;
    output.append(payload, need, this.opts.sendQueueBytesMax);
    peer.framesOut++;
    peer.bytesOut += frameBytes;
    if (!output.dirty) this.flush.add(conn);
    return true;
  }

  isUp(node: number): boolean {
    const conn = this.peers.get(node)?.conn;
    return conn !== undefined && conn !== null && conn.state === ConnState.Up;
  }

  /** Stops delivering payloads from `node` (idempotent; a flag, not a count). Lasts across reconnects. */
  pause(node: number): void {
    const peer = this.peers.get(node);
    if (peer === undefined || peer.paused) return;
    peer.paused = true;
    const conn = peer.conn;
    if (conn !== null && conn.state === ConnState.Up) conn.socket.pause();
  }

  /** Restarts delivery from `node`: what was held comes first, in a later turn. */
  resume(node: number): void {
    const peer = this.peers.get(node);
    if (peer === undefined || !peer.paused) return;
    peer.paused = false;
    const conn = peer.conn;
    if (conn === null || conn.state !== ConnState.Up) return;
    if (conn.held.any) this.scheduleRedeliver(conn);
    else conn.socket.resume();
  }

  stats(): PeerLinkStats[] {
    const out: PeerLinkStats[] = [];
    for (const peer of this.peers.values()) {
      out.push(peer.stats(this.isUp(peer.id)));
    }
    out.sort((a, b) => a.node - b.node);
    return out;
  }

  /** Stops dialing, closes the listener and every link (each writes what it had queued, for a bounded time). */
  close(): Promise<void> {
    if (this.closedPromise !== null) return this.closedPromise;
    this.closing = true;
    for (const peer of this.peers.values()) {
      peer.redial.cancel();
      peer.conn = null;
    }
    const server = this.server;
    const serverClosed = server === null || !server.listening
      ? Promise.resolve()
      : new Promise<void>((resolve) => server.close(() => resolve()));
    const socketsClosed = new Promise<void>((resolve) => {
      if (this.live.size === 0) resolve();
      else this.liveEmpty.push(resolve);
    });
    for (const conn of [...this.live]) this.shutdown(conn);
    this.closedPromise = Promise.all([serverClosed, socketsClosed]).then(() => {
      this.log.info({}, 'peer links closed');
    });
    return this.closedPromise;
  }

  // ------------------------------------------------------------------------------------------
  // Connections

  private dial(peer: Peer): void {
    if (this.closing) return;
    const socket = net.connect({ host: peer.info.host, port: peer.info.raftPort, noDelay: true });
    const conn = new Conn(socket, peer, this.opts.linkFrameBytesMax);
    peer.conn = conn;
    this.track(conn);
    // Written once connected; the acceptor answers only after reading it.
    socket.write(encodeHello(this.opts.clusterId, this.selfId, peer.id));
    this.log.debug?.({ peer: peer.id, remote: conn.remote }, 'dialing peer');
  }

  private accepted(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const pending = this.handshakes.pending;
    if (pending.size >= PENDING_HANDSHAKES_MAX) {
      const unlogged = this.refusals.unlogged(socket.remoteAddress ?? '?');
      if (unlogged >= 0) {
        this.log.warn({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, pending: pending.size, unlogged },
          'peer link refused: too many connections in handshake');
      }
      socket.destroy();
      return;
    }
    const conn = new Conn(socket, null, this.opts.linkFrameBytesMax);
    pending.add(conn);
    this.track(conn);
  }

  /** Wires a new socket's events and starts its handshake clock. */
  private track(conn: Conn): void {
    const socket = conn.socket;
    this.live.add(conn);
    socket.setNoDelay(true);
    conn.onFrame = (buf, at, end) => this.frame(conn, buf, at, end);
    this.handshakes.startClock(conn);
    socket.on('data', (chunk: Buffer) => this.data(conn, chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      conn.lastError = err.code ?? err.message;
    });
    socket.on('close', () => {
      this.drop(conn, conn.state === ConnState.Up ? 'info' : 'debug', conn.lastError ?? 'closed by the other side');
      this.live.delete(conn);
      if (this.live.size === 0 && this.liveEmpty.length > 0) {
        const waiters = this.liveEmpty;
        this.liveEmpty = [];
        for (const w of waiters) w();
      }
    });
  }

  private data(conn: Conn, chunk: Buffer): void {
    if (conn.state === ConnState.Closed) return;
    try {
      let bytes: Uint8Array = chunk;
      if (conn.contending) {
        // Waiting for the old link to close: keep what comes (bounded), stop reading beyond it.
        conn.holdPending(chunk, this.opts.linkFrameBytesMax + LINK_FRAME_HEADER_BYTES);
        return;
      }
      if (conn.state === ConnState.Handshake) {
        const taken = conn.helloReader.push(chunk);
        const hello = conn.helloReader.hello;
        if (hello === null) return;
        const up = this.handshakes.check(conn, hello);
        if (taken === chunk.length) return;
        if (!up) {
          if (conn.contending) conn.holdPending(chunk.subarray(taken), this.opts.linkFrameBytesMax + LINK_FRAME_HEADER_BYTES);
          return;
        }
        bytes = chunk.subarray(taken);
      }
      const problem = conn.frameReader.push(bytes, conn.onFrame);
      if (problem !== null) this.drop(conn, 'warn', `bad link frame: ${problem}`);
    } catch (err) {
      this.drop(conn, 'warn', `failed on input: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
  }

  /** The handshake of `conn` with `peer` is complete: the link is up. True: still up. */
  private up(conn: Conn, peer: Peer): boolean {
    conn.state = ConnState.Up;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    peer.redial.reset();
    if (peer.everUp) peer.reconnects++;
    peer.everUp = true;
    if (peer.paused) conn.socket.pause();
    this.log.info({ peer: peer.id, remote: conn.remote, dialer: peer.dialer }, 'peer link up');
    this.state(peer.id, true);
    if (conn.pendingInput !== null) {
      // Bytes that came after the hello while this connection waited (contend).
      const rest = conn.pendingInput;
      conn.pendingInput = null;
      const problem = conn.frameReader.push(rest, conn.onFrame);
      if (problem !== null) this.drop(conn, 'warn', `bad link frame: ${problem}`);
    }
    return conn.state === ConnState.Up;
  }

  /** One link frame's payload from an up link. */
  private frame(conn: Conn, buf: Uint8Array, at: number, end: number): void {
    // A link closed earlier in the same chunk: the rest of the chunk is dropped.
    if (conn.state !== ConnState.Up) return;
    const peer = conn.peer!;
    peer.framesIn++;
    peer.bytesIn += LINK_FRAME_HEADER_BYTES + end - at;
    const problem = payloadProblem(buf, at, end);
    if (problem !== null) {
      this.drop(conn, 'warn', `bad link frame: ${problem}`);
      return;
    }
    const held = conn.held;
    if (peer.paused || held.any) {
      held.hold(buf, at, end);
      if (held.bytes > this.opts.linkFrameBytesMax + HELD_SLACK_BYTES) {
        this.drop(conn, 'warn', `${held.bytes} bytes held while paused: reading did not stop`);
      }
      return;
    }
    this.handler.onPayload(peer.id, buf, at, end);
  }

  private scheduleRedeliver(conn: Conn): void {
    if (conn.held.redeliverScheduled) return;
    conn.held.redeliverScheduled = true;
    setImmediate(() => this.redeliver(conn));
  }

  private redeliver(conn: Conn): void {
    const held = conn.held;
    held.redeliverScheduled = false;
    const peer = conn.peer!;
    while (held.any) {
      // Paused again by the handler: a later resume() schedules the rest.
      if (conn.state !== ConnState.Up || peer.paused) return;
      const b = held.take();
      try {
        this.handler.onPayload(peer.id, b, 0, b.length);
      } catch (err) {
        this.drop(conn, 'warn', `failed on input: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        return;
      }
    }
    held.clear();
    if (conn.state === ConnState.Up && !peer.paused) conn.socket.resume();
  }

  /**
   * Ends a connection at once (idempotent), whatever the cause: reports the loss of an up link
   * and schedules the redial of a dialed one. Unsent output and held input are dropped.
   */
  private drop(conn: Conn, level: 'warn' | 'info' | 'debug', reason: string, code?: LinkRefusal): void {
    if (conn.state === ConnState.Closed) return;
    const wasUp = conn.state === ConnState.Up;
    conn.discard();
    this.handshakes.pending.delete(conn);
    conn.socket.destroy();
    const peer = conn.peer;
    const refused = !wasUp && !(peer !== null && peer.dialer);
    const unlogged = refused ? this.refusals.unlogged(conn.remoteAddress) : 0;
    const fields = refused
      ? { peer: peer?.id ?? null, remote: conn.remote, wasUp, reason, code: code ?? null, unlogged }
      : { peer: peer?.id ?? null, remote: conn.remote, wasUp, reason, code: code ?? null };
    const msg = wasUp ? 'peer link lost' : peer !== null && peer.dialer ? 'peer link dial failed' : 'peer link refused';
    if (unlogged < 0) { /* logged for this source within the interval */ } else if (level === 'warn') this.log.warn(fields, msg);
    else if (level === 'info') this.log.info(fields, msg);
    else this.log.debug?.(fields, msg);
    if (peer === null || peer.conn !== conn) return;
    peer.conn = null;
    if (this.closing) return;
    if (wasUp) this.state(peer.id, false);
    if (peer.dialer) this.scheduleRedial(peer);
    else if (peer.contender !== null) this.handshakes.promoteContender(peer);
  }

  /** Part of close(): write what is queued, end, and destroy after a bounded linger. */
  private shutdown(conn: Conn): void {
    if (conn.state === ConnState.Closed) return;
    this.handshakes.pending.delete(conn);
    conn.shutdown(CLOSE_LINGER_MS);
  }

  private scheduleRedial(peer: Peer): void {
    if (this.closing) return;
    peer.redial.schedule(() => this.dial(peer));
  }

  private state(node: number, up: boolean): void {
    try {
      this.handler.onState(node, up);
    } catch (err) {
      this.log.warn({ peer: node, up, err: err instanceof Error ? err.stack ?? err.message : String(err) },
        'peer link state handler threw');
    }
  }
}
