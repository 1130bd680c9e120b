// Client dispatch on the main thread: the node's handler for every client listener. A request
// frame is answered at once when it can be (Ping, a group id that is no group, a stopping node,
// a frame larger than a ring record) and otherwise copied, as it is, into the in ring of the
// shard that owns its group. The shard answers every Client record with exactly one response
// frame; the count of requests in flight per connection rests on that.
//
// Backpressure: a connection is paused while inflightPerConnMax requests are in flight, and
// while a frame of it waits for room in a full in ring (in-ring.ts); it resumes when neither
// holds. Pausing for a slow reader is the listener's business (client-listener.ts).

import { pack } from 'msgpackr';
import { encodeFrame, frameBytesOf, FrameKind, readHeader, type ErrorBody, type ProtocolErrorCode } from '../protocol/client-frame.js';
import { GROUP_BROADCAST } from '../protocol/peer-wire.js';
import { CONN_IN_PROCESS, InKind, RECORD_HEADER_BYTES } from '../ring/records.js';
import type { ClientConnection, ClientHandler } from '../transport/client-listener.js';
import { shardOf } from './placement.js';
import type { ShardSlot } from './shard-pool.js';

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

export class ClientRouter implements ClientHandler {
  private readonly conns = new Map<number, Conn>();
  private connSeq = 0;
  /** False once the node stops or a shard has failed: requests are answered UNAVAILABLE. */
  accepting = true;

  constructor(private readonly shards: readonly ShardSlot[], private readonly inflightPerConnMax: number) {}

  /** A connection id unique among the open ones, never CONN_IN_PROCESS (the listeners' nextId). */
  nextConnId(): number {
    do {
      this.connSeq = (this.connSeq + 1) >>> 0;
    } while (this.connSeq === CONN_IN_PROCESS || this.conns.has(this.connSeq));
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
    this.conns.set(c.id, { c, inflight: 0, pausedInflight: false, pausedRing: false, closed: false });
  }

  onClose(c: ClientConnection): void {
    const conn = this.conns.get(c.id);
    if (conn !== undefined) conn.closed = true;
    this.conns.delete(c.id);
  }

  onDrain(): void {}

  onFrame(c: ClientConnection, buf: Uint8Array, at: number, frameBytes: number): void {
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
    if (conn.inflight >= this.inflightPerConnMax && !conn.pausedInflight) {
      conn.pausedInflight = true;
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
      if (!conn.pausedInflight) c.resume();
      return true;
    });
  }

  /** Writes response frames (an OutKind.Client record's payload) to their connection and settles its in-flight count. */
  deliver(connId: number, buf: Uint8Array, from: number, end: number): void {
    const conn = this.conns.get(connId);
    if (conn === undefined || conn.closed) return;
    let frames = 0;
    for (let at = from; at < end; frames++) at += frameBytesOf(buf, at);
    conn.inflight -= frames;
    conn.c.send(buf.subarray(from, end));
    if (conn.pausedInflight && conn.inflight < this.inflightPerConnMax) {
      conn.pausedInflight = false;
      if (!conn.pausedRing) conn.c.resume();
    }
  }
}

function errorFrame(requestId: number, group: number, code: ProtocolErrorCode, message: string): Uint8Array {
  return encodeFrame(FrameKind.Error, 0, requestId, group, pack({ code, message } satisfies ErrorBody) as Uint8Array);
}
