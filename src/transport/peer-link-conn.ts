// The state of the peer links, one class per thing: Peer is what is kept about one node across
// its connections (pause, redial, counters); Conn is one TCP connection to it, from connect (or
// accept) to close: its handshake and frame readers, its output (peer-link-output.ts), the
// payloads held while paused (peer-link-held.ts), and its teardown. PeerLinks (peer-links.ts)
// drives them, and PeerHandshakes (peer-link-handshake.ts) brings a connection up.

import type * as net from 'node:net';
import { HelloReader, LinkFrameReader } from '../protocol/peer-wire.js';
import type { PeerInfo } from '../shard/task.js';
import { HeldPayloads } from './peer-link-held.js';
import { LinkOutput } from './peer-link-output.js';
import { Redial } from './peer-link-redial.js';

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
  /** The redial delay and timer; used by a dialer only. */
  readonly redial: Redial;
  everUp = false;
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  drops = 0;
  reconnects = 0;
  /** Dropping because the queue is full; reset by the next accepted send (one warning per episode). */
  overflowing = false;
  /** A checked connection waiting for the live one to close after a probe (PeerHandshakes.contend). */
  contender: Conn | null = null;

  constructor(readonly info: PeerInfo, readonly dialer: boolean, backoffMsMin: number, backoffMsMax: number) {
    this.redial = new Redial(backoffMsMin, backoffMsMax);
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
  readonly remoteAddress: string;
  readonly helloReader = new HelloReader();
  readonly frameReader: LinkFrameReader;
  /** The handshake clock, then the wait of a contender, then the linger of a shutdown. */
  timer: NodeJS.Timeout | null = null;
  lastError: string | null = null;
  /** This turn's link frames, written once per turn. */
  readonly output: LinkOutput;
  /** Payloads read while paused, delivered on resume. */
  readonly held = new HeldPayloads();
  /** The peer whose live link this connection waits to replace (PeerHandshakes.contend); input read meanwhile is in pendingInput. */
  contendFor: Peer | null = null;
  pendingInput: Uint8Array | null = null;
  /** Set by PeerLinks: the frame reader's callback, bound to this connection. */
  onFrame: (buf: Uint8Array, at: number, end: number) => void = () => undefined;

  constructor(readonly socket: net.Socket, peer: Peer | null, frameBytesMax: number) {
    this.peer = peer;
    this.remote = `${socket.remoteAddress ?? peer?.info.host ?? '?'}:${socket.remotePort ?? peer?.info.raftPort ?? 0}`;
    this.frameReader = new LinkFrameReader(frameBytesMax);
    this.remoteAddress = socket.remoteAddress ?? '?';
    this.output = new LinkOutput(socket);
  }

  get up(): boolean {
    return this.state === ConnState.Up;
  }

  /** Waiting for the peer's live link to close (PeerHandshakes.contend). */
  get contending(): boolean {
    return this.contendFor !== null;
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

  /**
   * The state part of PeerLinks.drop: the connection is closed at once; unsent output and held
   * input are dropped, and a contender frees its place.
   */
  discard(): void {
    // A contender that goes away (its socket closed, or refused) frees the place for the next.
    if (this.contendFor !== null && this.contendFor.contender === this) this.contendFor.contender = null;
    this.contendFor = null;
    this.state = ConnState.Closed;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.output.discard();
    this.held.clear();
  }

  /** Part of PeerLinks.close(): write what is queued, end, and destroy after lingerMs at most. */
  shutdown(lingerMs: number): void {
    const wasUp = this.state === ConnState.Up;
    this.state = ConnState.Closed;
    if (this.timer !== null) clearTimeout(this.timer);
    this.held.clear();
    if (wasUp) this.output.flush();
    this.output.discard();
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
}
