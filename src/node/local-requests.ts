// In-process requests: commands sent to a group through the embedding API (FlotillaNode.command),
// with no socket. They travel as Client records of connection id CONN_IN_PROCESS; the shard's
// response frames come back on its out ring and settle the request's promise here.
//
// Bounds: an embedder may call command() in a loop without awaiting, and nothing pauses it the
// way a socket is paused; so at most LOCAL_PENDING_MAX commands, holding LOCAL_PENDING_BYTES_MAX
// of frames, wait here (in a full in ring's queue or in the shard); beyond, command() rejects
// with OVERLOADED at once, before anything is queued.

import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader, type ErrorBody } from '../protocol/client-frame.js';
import { GROUP_BROADCAST } from '../protocol/peer-wire.js';
import { CONN_IN_PROCESS, InKind, RECORD_HEADER_BYTES } from '../ring/records.js';
import { NodeError, type Pending } from './node-error.js';
import { unpackCopy } from './out-ring-drain.js';
import { shardOf } from './placement.js';
import type { ShardSlot } from './shard-pool.js';

/**
 * In-process commands waiting for their answer. A shard answers each within requestTimeoutMs, so
 * this many is about what a node serves in a second or two of in-process traffic: more is a
 * caller that does not wait for answers, and each one is a promise and a frame held here.
 */
export const LOCAL_PENDING_MAX = 65_536;
/** Frame bytes of those commands: held while they wait for a full in ring, then in the shard. */
export const LOCAL_PENDING_BYTES_MAX = 64 * 1024 * 1024;

interface LocalPending extends Pending<Uint8Array> {
  bytes: number;
}

export class LocalRequests {
  private readonly pending = new Map<number, LocalPending>();
  private pendingBytes = 0;
  private seq = 0;

  constructor(
    private readonly shards: readonly ShardSlot[],
    private readonly frameBytesMax: number,
    private readonly limits: { pendingMax: number; pendingBytesMax: number } = { pendingMax: LOCAL_PENDING_MAX, pendingBytesMax: LOCAL_PENDING_BYTES_MAX },
    /** CONN_IN_PROCESS for the embedding API; CONN_INTERNAL for the node's own (migration) requests. */
    private readonly conn: number = CONN_IN_PROCESS,
  ) {}

  /** Commands waiting and the bytes of their frames (tests, /metrics). */
  get waiting(): { count: number; bytes: number } {
    return { count: this.pending.size, bytes: this.pendingBytes };
  }

  /** Sends a command to `group`'s shard; resolves with the Result body, rejects with the Error's NodeError. */
  command(group: number, body: Uint8Array, opts: { read?: boolean; stale?: boolean }): Promise<Uint8Array> {
    if (!Number.isInteger(group) || group <= 0 || group >= GROUP_BROADCAST) {
      return Promise.reject(new NodeError('NO_GROUP', `group ${group} is not a group id`));
    }
    if (FRAME_HEADER_BYTES + body.length > this.frameBytesMax) {
      return Promise.reject(new NodeError('TOO_LARGE', `command of ${body.length} bytes exceeds frameBytesMax`));
    }
    const input = this.shards[shardOf(group, this.shards.length)]!.input;
    if (RECORD_HEADER_BYTES + FRAME_HEADER_BYTES + body.length > input.ring.recordBytesMax) {
      return Promise.reject(new NodeError('TOO_LARGE', `command of ${body.length} bytes exceeds what a shard ring carries`));
    }
    const bytes = FRAME_HEADER_BYTES + body.length;
    if (this.pending.size >= this.limits.pendingMax || this.pendingBytes + bytes > this.limits.pendingBytesMax) {
      return Promise.reject(new NodeError('OVERLOADED',
        `${this.pending.size} in-process commands (${this.pendingBytes} bytes) are waiting; the bounds are ${this.limits.pendingMax} and ${this.limits.pendingBytesMax} bytes`));
    }
    let id: number;
    do {
      this.seq = (this.seq + 1) >>> 0;
      id = this.seq;
    } while (id === 0 || this.pending.has(id));
    const flags = (opts.read === true || opts.stale === true ? FrameFlag.Read : 0) | (opts.stale === true ? FrameFlag.Stale : 0);
    const frame = encodeFrame(FrameKind.Command, flags, id, group, body);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, bytes });
      this.pendingBytes += bytes;
      input.writeOrHold(InKind.Client, this.conn, frame);
    });
  }

  /** Settles the requests answered by buf[from, end): whole response frames (an OutKind.Client payload). */
  settleFrames(buf: Uint8Array, from: number, end: number): void {
    for (let at = from; at < end;) {
      const h = readHeader(buf, at);
      this.settle(h.requestId, h.kind, buf.subarray(at + FRAME_HEADER_BYTES, at + h.frameBytes));
      at += h.frameBytes;
    }
  }

  private settle(requestId: number, kind: number, body: Uint8Array): void {
    const p = this.pending.get(requestId);
    if (p === undefined) return;
    this.pending.delete(requestId);
    this.pendingBytes -= p.bytes;
    if (kind === FrameKind.Result) {
      p.resolve(body.slice());
      return;
    }
    const e = unpackCopy(body, 0, body.length) as ErrorBody;
    p.reject(new NodeError(e.code, e.message, e.leader));
  }

  /** Rejects every request waiting (a shard failed, or the node stopped). */
  rejectAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.pendingBytes = 0;
  }
}
