// The requests of one client connection, by where they stand (connection.ts drives them):
// InflightRequests are on the wire (or admitted this turn), keyed by request id; WaitingRequests
// wait for an in-flight slot, oldest first; TurnRequests are the ones admitted this turn, which
// go out together in one socket write.
import { FRAME_HEADER_BYTES } from '../protocol/client-frame.js';
import type { Exchange } from './connection.js';

/** In flight: matched to their responses by request id, which is allocated here. */
export class InflightRequests {
  private readonly byId = new Map<number, Exchange>();
  private idLast: number;

  /** `idLast`: where request ids start (the first one used is the next after it). */
  constructor(idLast: number) {
    this.idLast = idLast >>> 0;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Gives `x` a fresh request id and puts it in flight. */
  admit(x: Exchange): void {
    // u32, wrapping; 0 is reserved for errors not tied to a request, and an id still in
    // flight must not be reused (size < 2^32 - 1, so this ends).
    let id = this.idLast;
    do id = (id + 1) >>> 0;
    while (id === 0 || this.byId.has(id));
    this.idLast = id;
    x.id = id;
    this.byId.set(id, x);
  }

  get(id: number): Exchange | undefined {
    return this.byId.get(id);
  }

  delete(id: number): void {
    this.byId.delete(id);
  }

  /** Every request in flight, taken out (the connection failed). */
  takeAll(): Exchange[] {
    const all = [...this.byId.values()];
    this.byId.clear();
    return all;
  }
}

/** Waiting for an in-flight slot, oldest first; a cancelled one stays in place, skipped, until compacted. */
export class WaitingRequests {
  private items: Exchange[] = [];
  private head = 0;
  /** Waiting and not abandoned. */
  private live = 0;

  /** Requests waiting (abandoned ones not counted). */
  get count(): number {
    return this.live;
  }

  push(x: Exchange): void {
    this.items.push(x);
    this.live++;
  }

  /** The oldest live request, taken out; call only while count > 0. Call trim() after a run of these. */
  shift(): Exchange {
    for (;;) {
      const x = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as Exchange;
      if (x.abandoned) continue;
      this.live--;
      return x;
    }
  }

  /** Lets go of the taken part of the array once it is most of it. */
  trim(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * A waiting request was abandoned (the caller set x.abandoned). Drops abandoned entries once
   * they outnumber the live ones and pass 2 × queuedMax, so the array stays bounded.
   */
  abandoned(queuedMax: number): void {
    this.live--;
    const held = this.items.length - this.head;
    if (held <= 2 * queuedMax || held <= 2 * this.live) return;
    this.items = this.items.slice(this.head).filter((x) => !x.abandoned);
    this.head = 0;
  }

  /** Every request still in the queue (abandoned ones included), taken out (the connection failed). */
  takeAll(): Exchange[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.live = 0;
    return all;
  }
}

/** Admitted this turn, not yet written: they leave in one socket write (Connection.flush). */
export class TurnRequests {
  private list: Exchange[] = [];
  /** Frame bytes of the list, headers included. */
  bytes = 0;
  /** A flush is scheduled for the end of this turn. */
  flushScheduled = false;

  add(x: Exchange): void {
    this.list.push(x);
    this.bytes += FRAME_HEADER_BYTES + x.body.length;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** The turn's requests, taken out, in the order admitted. */
  take(): Exchange[] {
    const xs = this.list;
    this.list = [];
    this.bytes = 0;
    return xs;
  }
}
