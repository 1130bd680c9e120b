// The state of the peer links, one class per thing: Peer is what is kept about one node across
// its connections (pause, backoff, counters); Conn is one TCP connection to it, from connect (or
// accept) to close: its handshake and frame readers, this turn's output buffer, the payloads
// held while paused, and its teardown; LinkFlush writes, once per event-loop turn, every link
// sent to in that turn. PeerLinks (peer-links.ts) drives them.

import type * as net from 'node:net';
import { HelloReader, LinkFrameReader } from '../protocol/peer-wire.js';
import type { PeerInfo } from '../shard/task.js';

/** First size of a link's output buffer; it doubles as needed, up to sendQueueBytesMax. */
const OUT_BYTES_INITIAL = 64 * 1024;
/** A written output buffer up to this size is kept for the next turn; a larger one is let go. */
const SPARE_BYTES_MAX = 1024 * 1024;

export const enum ConnState { Handshake, Up, Closed }

export interface PeerLinkStats {
  node: number;
  up: boolean;
  /** Link frames read and sent (queued), and their bytes, length headers included. */
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames send() refused: link down, queue over sendQueueBytesMax, or payload over linkFrameBytesMax. */
  drops: number;
  /** Handshakes after the first one. */
  reconnects: number;
}

/** What is kept about one peer across its connections. */
export class Peer {
  /** Current connection: for a dialer from the dial on; for an acceptor once its hello checked out. */
  conn: Conn | null = null;
  paused = false;
  backoffMs: number;
  redialTimer: NodeJS.Timeout | null = null;
  everUp = false;
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  drops = 0;
  reconnects = 0;
  /** Dropping because the queue is full; reset by the next accepted send (one warning per episode). */
  overflowing = false;
  /** A checked connection waiting for the live one to close after a probe (PeerLinks.contend). */
  contender: Conn | null = null;

  constructor(readonly info: PeerInfo, readonly dialer: boolean, backoffMs: number) {
    this.backoffMs = backoffMs;
  }

  get id(): number {
    return this.info.id;
  }

  stats(up: boolean): PeerLinkStats {
    return {
      node: this.id,
      up,
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      drops: this.drops,
      reconnects: this.reconnects,
    };
  }
}

/** One TCP connection, from connect (or accept) to close. */
export class Conn {
  state = ConnState.Handshake;
  /** Null on an accepted connection until its hello names the peer. */
  peer: Peer | null;
  readonly remote: string;
  readonly helloReader = new HelloReader();
  readonly frameReader: LinkFrameReader;
  timer: NodeJS.Timeout | null = null;
  lastError: string | null = null;
  /** Output of this turn: link frames back to back in out[0, outLen). */
  out: Buffer | null = null;
  outLen = 0;
  dirty = false;
  /** Buffers handed to socket.write, oldest first; each comes back as `spare` once written. */
  readonly inFlight: Buffer[] = [];
  spare: Buffer | null = null;
  /** Payloads read while paused, copied, delivered from heldAt on. */
  held: Uint8Array[] = [];
  heldAt = 0;
  heldBytes = 0;
  redeliverScheduled = false;
  /** Waiting for the peer's live link to close (PeerLinks.contend); input read meanwhile is in pendingInput. */
  contending = false;
  /** The peer whose live link this connection waits to replace (PeerLinks.contend). */
  contendFor: Peer | null = null;
  pendingInput: Uint8Array | null = null;
  readonly remoteAddress: string;
  /** Set by PeerLinks: the frame reader's callback, bound to this connection. */
  onFrame: (buf: Uint8Array, at: number, end: number) => void = () => undefined;

  constructor(readonly socket: net.Socket, peer: Peer | null, frameBytesMax: number) {
    this.peer = peer;
    this.remote = `${socket.remoteAddress ?? peer?.info.host ?? '?'}:${socket.remotePort ?? peer?.info.raftPort ?? 0}`;
    this.frameReader = new LinkFrameReader(frameBytesMax);
    this.remoteAddress = socket.remoteAddress ?? '?';
  }

  /** Keeps input that arrives while contending, up to bytesMax; then stops reading the socket. */
  holdPending(chunk: Uint8Array, bytesMax: number): void {
    const have = this.pendingInput?.length ?? 0;
    const take = Math.min(chunk.length, bytesMax - have);
    if (take > 0) {
      const next = new Uint8Array(have + take);
      if (this.pendingInput !== null) next.set(this.pendingInput);
      next.set(chunk.subarray(0, take), have);
      this.pendingInput = next;
    }
    this.socket.pause();
  }

  readonly afterWrite = (err?: Error | null): void => {
    const b = this.inFlight.shift();
    // The kernel has the bytes: the buffer may be filled again.
    if (err == null && b !== undefined && this.spare === null && b.length <= SPARE_BYTES_MAX) this.spare = b;
  };

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

  /**
   * The state part of PeerLinks.drop: the connection is closed at once; unsent output and held
   * input are dropped, and a contender frees its place.
   */
  discard(): void {
    this.contending = false;
    // A contender that goes away (its socket closed, or refused) frees the place for the next.
    if (this.contendFor !== null && this.contendFor.contender === this) this.contendFor.contender = null;
    this.contendFor = null;
    this.state = ConnState.Closed;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.out = null;
    this.outLen = 0;
    this.spare = null;
    this.held = [];
    this.heldAt = 0;
    this.heldBytes = 0;
  }

  /** Part of PeerLinks.close(): write what is queued, end, and destroy after lingerMs at most. */
  shutdown(lingerMs: number): void {
    const wasUp = this.state === ConnState.Up;
    this.state = ConnState.Closed;
    if (this.timer !== null) clearTimeout(this.timer);
    this.held = [];
    this.heldAt = 0;
    this.heldBytes = 0;
    if (wasUp) this.flush();
    this.out = null;
    this.outLen = 0;
    if (!wasUp) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    this.timer = setTimeout(() => this.socket.destroy(), lingerMs);
    this.timer.unref();
    this.socket.once('close', () => {
      if (this.timer !== null) clearTimeout(this.timer);
    });
  }

  /** Room for `need` bytes of output in `out`, keeping what is there; need ≤ bytesMax. */
  reserve(need: number, bytesMax: number): Buffer {
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

/** The links sent to this turn, and the once-per-turn flush that writes each (one write per link per turn). */
export class LinkFlush {
  private dirty: Conn[] = [];
  private flushing: Conn[] = [];
  private scheduled = false;

  /** `conn` has output this turn (it was not dirty yet). */
  add(conn: Conn): void {
    conn.dirty = true;
    this.dirty.push(conn);
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
      const conn = list[i]!;
      if (conn.state === ConnState.Up) conn.flush();
      else conn.dirty = false;
    }
    list.length = 0;
  };
}
