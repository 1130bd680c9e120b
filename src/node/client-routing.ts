// Client dispatch on the main thread: the node's handler for every client listener. A request
// frame is answered at once when it can be (Ping, a group id that is no group, a stopping node,
// a frame larger than a ring record) and otherwise copied, as it is, into the in ring of the
// shard that owns its group. The shard answers every Client record with exactly one response
// frame; the count of requests in flight per connection rests on that.
//
// Backpressure: a connection is paused while inflightPerConnMax requests are in flight, while a
// frame of it waits for room in a full in ring (in-ring.ts), and while its bytes under way are
// above inflightBytesPerConnMax; it resumes when none holds. Bytes under way are the request
// bytes in flight, plus the responses expected for them, plus the connection's output not yet
// written to its socket. A response's size is not known when its request is read, so each
// request in flight counts as the connection's response guess: at first the largest response
// a shard can send (one out-ring record), then following the largest response of each batch
// that comes back (up at once, down by half per batch). So a client that pipelines gets of a
// large value and never reads stops being read once about inflightBytesPerConnMax of answers
// are under way, instead of having inflightPerConnMax of them made (issue 12, item 5). Bytes
// are settled per response batch, not per request: an add and a multiply-add on the path of a request. The
// guess can be gamed (small answers first, then large ones): what gets past it is still
// bounded by pendingBytesMax, past which the listener closes the connection, and by the cap
// on a shard's gathered responses (Outbox.clientBytesMax). Pausing for a slow reader's unsent
// output alone is the listener's business (client-listener.ts).

import { pack } from 'msgpackr';
import { encodeFrame, frameBytesOf, FrameKind, readHeader, type ErrorBody, type ProtocolErrorCode } from '../protocol/client-frame.js';
import { GROUP_BROADCAST } from '../protocol/peer-wire.js';
import { CONN_IN_PROCESS, CONN_INTERNAL, InKind, RECORD_HEADER_BYTES } from '../ring/records.js';
import type { ClientConnection, ClientHandler } from '../transport/client-listener.js';
import { META_GROUP } from '../cluster/meta-group.js';
import { FRAME_HEADER_BYTES } from '../protocol/client-frame.js';
import { shardOf } from './placement.js';
import type { ShardSlot } from './shard-pool.js';

interface Conn {
  c: ClientConnection;
  inflight: number;
  /** Bytes of the request frames in flight (settled in proportion as responses come back). */
  requestBytes: number;
  /** What each request in flight is expected to bring back, in bytes (see the header). */
  responseGuess: number;
  /**
   * The connection's unsent output as of its last response (only responses make it grow much):
   * a request's check reads this, not the socket. A stale value errs high, and a pause it causes
   * is looked at again, fresh, when the next response comes (one is always in flight then).
   */
  outBytes: number;
  /** Paused because too many requests are in flight. */
  pausedInflight: boolean;
  /** Paused because a shard's in ring is full. */
  pausedRing: boolean;
  /** Paused because its bytes under way are above inflightBytesPerConnMax. */
  pausedBytes: boolean;
  /** Paused by the listener for a slow reader is the listener's business. */
  closed: boolean;
}

export interface ClientRouterLimits {
  inflightPerConnMax: number;
  inflightBytesPerConnMax: number;
  /** The listeners' pendingBytesHigh: a connection paused for bytes resumes at the latest when the listener's drain fires. */
  pendingBytesHigh: number;
  /** The largest response a shard can send (one out-ring record's payload): a new connection's response guess. */
  responseBytesMax: number;
}

/** Answers MapRequest frames on the main thread, from the node's copy of the key map (node-map.ts). */
export interface MapServer {
  answer(requestId: number, group: number, body: Uint8Array): Uint8Array;
}

export class ClientRouter implements ClientHandler {
  private readonly conns = new Map<number, Conn>();
  /** Where MapRequest frames are answered; null: refused (a router without a node's map, in tests). */
  maps: MapServer | null = null;
  private connSeq = 0;
  /** False once the node stops or a shard has failed: requests are answered UNAVAILABLE. */
  accepting = true;
  private readonly inflightPerConnMax: number;
  private readonly bytesMax: number;
  /**
   * A connection paused for bytes resumes below this: a quarter under the budget, so that it is
   * not paused and resumed at every response; never below pendingBytesHigh, so that the
   * listener's onDrain (output below pendingBytesLow) always lifts a pause with nothing in flight.
   */
  private readonly bytesLow: number;
  /** The first response guess of a connection: the largest response a shard can send. */
  private readonly responseGuessFirst: number;

  constructor(private readonly shards: readonly ShardSlot[], limits: ClientRouterLimits) {
    this.inflightPerConnMax = limits.inflightPerConnMax;
    this.bytesMax = limits.inflightBytesPerConnMax;
    this.bytesLow = Math.max(limits.pendingBytesHigh, this.bytesMax - (this.bytesMax >>> 2));
    this.responseGuessFirst = limits.responseBytesMax;
  }

  /** A connection id unique among the open ones, never CONN_IN_PROCESS or CONN_INTERNAL (the listeners' nextId). */
  nextConnId(): number {
    do {
      this.connSeq = (this.connSeq + 1) >>> 0;
    } while (this.connSeq === CONN_IN_PROCESS || this.connSeq === CONN_INTERNAL || this.conns.has(this.connSeq));
    return this.connSeq;
  }

  /** Open connections by transport (for metrics). */
  counts(): { tcp: number; ws: number } {
    let tcp = 0;
    let ws = 0;
    for (const conn of this.conns.values()) {
      if (conn.c.transport === 'tcp') tcp++;
      else ws++;
    }
    return { tcp, ws };
  }

  onOpen(c: ClientConnection): void {
    this.conns.set(c.id, {
      c, inflight: 0, requestBytes: 0, responseGuess: this.responseGuessFirst, outBytes: 0,
      pausedInflight: false, pausedRing: false, pausedBytes: false, closed: false,
    });
  }

  onClose(c: ClientConnection): void {
    const conn = this.conns.get(c.id);
    if (conn !== undefined) conn.closed = true;
    this.conns.delete(c.id);
  }

  onDrain(c: ClientConnection): void {
    const conn = this.conns.get(c.id);
    if (conn !== undefined && conn.pausedBytes) this.relieve(conn);
  }

  /** A connection's bytes under way: requests in flight, the responses expected for them, output unsent (read now). */
  private bytesUnderWay(conn: Conn): number {
    conn.outBytes = conn.c.pendingBytes;
    return conn.requestBytes + conn.inflight * conn.responseGuess + conn.outBytes;
  }

  /** Lifts the pauses that no longer hold; reads again when none does. */
  private relieve(conn: Conn): void {
    if (conn.closed) return;
    if (conn.pausedInflight && conn.inflight < this.inflightPerConnMax) conn.pausedInflight = false;
    if (conn.pausedBytes && this.bytesUnderWay(conn) <= this.bytesLow) conn.pausedBytes = false;
    if (!conn.pausedInflight && !conn.pausedRing && !conn.pausedBytes) conn.c.resume();
  }

  onFrame(c: ClientConnection, buf: Uint8Array, at: number, frameBytes: number): void {
    const conn = this.conns.get(c.id);
    if (conn === undefined) return;
    const h = readHeader(buf, at);
    if (h.kind === FrameKind.Ping) {
      c.send(encodeFrame(FrameKind.Pong, 0, h.requestId, h.group, new Uint8Array(0)));
      return;
    }
    if (h.kind === FrameKind.MapRequest) {
      // From the main thread's copy: no shard is involved, and no request is in flight.
      const body = buf.subarray(at + FRAME_HEADER_BYTES, at + frameBytes);
      c.send(this.maps !== null ? this.maps.answer(h.requestId, h.group, body) : errorFrame(h.requestId, h.group, 'BAD_REQUEST', 'this listener serves no key map'));
      return;
    }
    if (h.group === 0 || h.group === GROUP_BROADCAST) {
      c.send(errorFrame(h.requestId, h.group, 'NO_GROUP', `group ${h.group} is not a group id`));
      return;
    }
    if (h.group === META_GROUP && h.kind === FrameKind.Command) {
      c.send(errorFrame(h.requestId, h.group, 'BAD_REQUEST', `group ${META_GROUP} is the meta group: it takes no client commands; read the key map with MapRequest`));
      return;
    }
    if (!this.accepting) {
      c.send(errorFrame(h.requestId, h.group, 'UNAVAILABLE', 'the node is stopping'));
      return;
    }
    const input = this.shards[shardOf(h.group, this.shards.length)]!.input;
    if (RECORD_HEADER_BYTES + frameBytes > input.ring.recordBytesMax) {
      c.send(errorFrame(h.requestId, h.group, 'TOO_LARGE', `frame of ${frameBytes} bytes exceeds what a shard ring carries`));
      return;
    }
    conn.inflight++;
    conn.requestBytes += frameBytes;
    if (conn.inflight >= this.inflightPerConnMax && !conn.pausedInflight) {
      conn.pausedInflight = true;
      c.pause();
    }
    if (!conn.pausedBytes && conn.requestBytes + conn.inflight * conn.responseGuess + conn.outBytes > this.bytesMax) {
      conn.pausedBytes = true;
      c.pause();
    }
    const frame = buf.subarray(at, at + frameBytes);
    if (input.blocked.length === 0 && input.write(InKind.Client, c.id, frame)) return;
    // The shard is behind: hold this frame, stop reading the connection until it is written.
    const held = frame.slice();
    conn.pausedRing = true;
    c.pause();
    input.whenRoom(held.length, () => {
      if (conn.closed) return true;
      if (!input.write(InKind.Client, c.id, held)) return false;
      conn.pausedRing = false;
      this.relieve(conn);
      return true;
    });
  }

  /** Writes response frames (an OutKind.Client record's payload) to their connection and settles its in-flight count. */
  deliver(connId: number, buf: Uint8Array, from: number, end: number): void {
    const conn = this.conns.get(connId);
    if (conn === undefined || conn.closed) return;
    let frames = 0;
    let largest = 0;
    for (let at = from; at < end; frames++) {
      const n = frameBytesOf(buf, at);
      if (n > largest) largest = n;
      at += n;
    }
    // Request bytes are not tracked per request: the answered share of them is settled (all of
    // them once nothing is in flight).
    conn.requestBytes = frames >= conn.inflight ? 0 : conn.requestBytes - Math.floor(conn.requestBytes * frames / conn.inflight);
    conn.inflight = Math.max(0, conn.inflight - frames);
    const guess = conn.responseGuess;
    conn.responseGuess = largest >= guess ? largest : (guess + largest) >>> 1;
    conn.c.send(buf.subarray(from, end));
    conn.outBytes = conn.c.pendingBytes;
    if (conn.pausedInflight || conn.pausedBytes) this.relieve(conn);
  }

  /** A connection's accounting (tests). */
  usage(connId: number): { inflight: number; requestBytes: number; responseGuess: number; paused: boolean } | undefined {
    const conn = this.conns.get(connId);
    if (conn === undefined) return undefined;
    return {
      inflight: conn.inflight, requestBytes: conn.requestBytes, responseGuess: conn.responseGuess,
      paused: conn.pausedInflight || conn.pausedRing || conn.pausedBytes,
    };
  }
}

function errorFrame(requestId: number, group: number, code: ProtocolErrorCode, message: string): Uint8Array {
  return encodeFrame(FrameKind.Error, 0, requestId, group, pack({ code, message } satisfies ErrorBody) as Uint8Array);
}
