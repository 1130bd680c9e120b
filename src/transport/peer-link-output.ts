// The frame batching of the peer links: what one link sends in one event-loop turn is copied
// into one buffer (LinkOutput), and LinkFlush writes, once per turn, every link sent to in that
// turn. However many frames a turn sends to a node, that costs one write (one syscall when the
// kernel takes it all). A written buffer comes back as the next turn's buffer, so a steady link
// allocates nothing per turn.

import type * as net from 'node:net';
import { LINK_FRAME_HEADER_BYTES } from '../protocol/peer-wire.js';

/** First size of a link's output buffer; it doubles as needed, up to sendQueueBytesMax. */
const OUT_BYTES_INITIAL = 64 * 1024;
/** A written output buffer up to this size is kept for the next turn; a larger one is let go. */
const SPARE_BYTES_MAX = 1024 * 1024;

/** One link's output of this turn, and the buffers handed to its socket and not yet written. */
export class LinkOutput {
  /** Link frames back to back in out[0, outLen). */
  private out: Buffer | null = null;
  private outLen = 0;
  /** In LinkFlush's list for this turn. */
  dirty = false;
  /** Buffers handed to socket.write, oldest first; each comes back as `spare` once written. */
  private readonly inFlight: Buffer[] = [];
  private spare: Buffer | null = null;

  constructor(private readonly socket: net.Socket) {}

  /** Bytes queued this turn, not yet handed to the socket. */
  get bytes(): number {
    return this.outLen;
  }

  /**
   * Appends one link frame carrying `payload` (its length header written here). `need` is
   * bytes + the frame's size, which the caller has checked against bytesMax.
   */
  append(payload: Uint8Array, need: number, bytesMax: number): void {
    const out = this.reserve(need, bytesMax);
    const p = this.outLen;
    const len = payload.length;
    out[p] = len;
    out[p + 1] = len >>> 8;
    out[p + 2] = len >>> 16;
    out[p + 3] = len >>> 24;
    out.set(payload, p + LINK_FRAME_HEADER_BYTES);
    this.outLen = need;
  }

  /** Writes this turn's output (the per-turn flush, and before closing). */
  flush(): void {
    this.dirty = false;
    const out = this.out;
    if (out === null || this.outLen === 0 || this.socket.destroyed) return;
    const view = out.subarray(0, this.outLen);
    this.out = null;
    this.outLen = 0;
    this.inFlight.push(out);
    this.socket.write(view, this.afterWrite);
  }

  /** Unsent output is dropped (the link closes). */
  discard(): void {
    this.out = null;
    this.outLen = 0;
    this.spare = null;
  }

  private readonly afterWrite = (err?: Error | null): void => {
    const b = this.inFlight.shift();
    // The kernel has the bytes: the buffer may be filled again.
    if (err == null && b !== undefined && this.spare === null && b.length <= SPARE_BYTES_MAX) this.spare = b;
  };

  /** Room for `need` bytes of output in `out`, keeping what is there; need ≤ bytesMax. */
  private reserve(need: number, bytesMax: number): Buffer {
    const out = this.out;
    if (out !== null && need <= out.length) return out;
    let grown: Buffer;
    if (out === null && this.spare !== null && this.spare.length >= need) {
      grown = this.spare;
      this.spare = null;
    } else {
      const size = Math.min(bytesMax, Math.max(need, out === null ? OUT_BYTES_INITIAL : 2 * out.length));
      grown = Buffer.allocUnsafe(size);
      if (out !== null) out.copy(grown, 0, 0, this.outLen);
    }
    this.out = grown;
    return grown;
  }
}

/** What LinkFlush needs of a connection: its output, and whether it is still up. */
export interface FlushedLink {
  readonly output: LinkOutput;
  readonly up: boolean;
}

/** The links sent to this turn, and the once-per-turn flush that writes each (one write per link per turn). */
export class LinkFlush {
  private dirty: FlushedLink[] = [];
  private flushing: FlushedLink[] = [];
  private scheduled = false;

  /** `link` has output this turn (it was not dirty yet). */
  add(link: FlushedLink): void {
    link.output.dirty = true;
    this.dirty.push(link);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    // Swap the lists: sends made during the flush go to the next turn.
    const list = this.dirty;
    this.dirty = this.flushing;
    this.flushing = list;
    for (let i = 0; i < list.length; i++) {
      const link = list[i]!;
      if (link.up) link.output.flush();
      else link.output.dirty = false;
    }
    list.length = 0;
  };
}
