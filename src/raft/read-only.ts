// Linearizable reads by ReadIndex, batched into heartbeat rounds.
//
// A leader numbers each heartbeat broadcast (a "round"). A read that arrives is tagged with the
// commit index at that moment and the next round; once a quorum has acknowledged a round at
// least that new, no other leader can have been elected before the read arrived, so the read
// may be served when the state machine reaches its index. Every read arriving between two
// broadcasts shares one round: a thousand reads cost one heartbeat per follower.
//
// The same rounds give the leader its lease: if a quorum acknowledged round r, sent at tick t,
// no member will vote for another candidate before t + ticksElection of its own clock
// (check-quorum makes followers ignore votes while they hear from a leader), so up to
// t + ticksElection - margin the leader may serve reads without a round at all (lease.ts).
//
// This file holds the queues; read-index.ts is the leader's read path that uses them.
import { assert } from '../util/assert.js';
import type { ReadState } from './types.js';

interface PendingRead {
  requestId: number;
  index: number;
  round: number;
}

const SENT_TICKS_KEPT = 64;

export class ReadOnly {
  /** Number of the latest broadcast round. */
  round = 0;
  /** Reads arrived since the last broadcast: the next round must go out soon. */
  roundWanted = false;
  /** Highest round a quorum acknowledged. */
  roundQuorum = 0;
  /**
   * Reads that arrived before this leader committed an entry of its term: it does not know the
   * commit index yet, so they wait for that commit before they join a round (see release).
   */
  held: number[] = [];
  private pending: PendingRead[] = [];
  private head = 0;
  /**
   * Tick at which round r was sent, at r % SENT_TICKS_KEPT; the host's time then (ms) at
   * SENT_TICKS_KEPT + r % SENT_TICKS_KEPT; and that round's number at 2 × SENT_TICKS_KEPT +
   * r % SENT_TICKS_KEPT. Made at the first round: followers never need it.
   */
  private sent: Float64Array | null = null;

  constructor(readonly readsMax: number) {}

  get size(): number {
    return this.pending.length - this.head;
  }

  /** Queues a read to be confirmed by the next round. Returns false when the queue is full. */
  add(requestId: number, index: number): boolean {
    if (this.size >= this.readsMax) return false;
    this.pending.push({ requestId, index, round: this.round + 1 });
    this.roundWanted = true;
    return true;
  }

  /** The leader committed an entry of its term, at `index`: held reads join the next round. */
  release(index: number): void {
    if (this.held.length === 0) return;
    for (const id of this.held) this.add(id, index);
    this.held = [];
  }

  /** Starts a new round at `tick`; returns its number. */
  startRound(tick: number, nowMs: number): number {
    this.round++;
    this.roundWanted = false;
    const slot = this.round % SENT_TICKS_KEPT;
    if (this.sent === null) this.sent = new Float64Array(3 * SENT_TICKS_KEPT);
    this.sent[slot] = tick;
    this.sent[SENT_TICKS_KEPT + slot] = nowMs;
    this.sent[2 * SENT_TICKS_KEPT + slot] = this.round;
    return this.round;
  }

  /**
   * Forgets when rounds went out, as if they were all too old to remember: only the lease uses
   * it, and a leader that quiesces or steps down forfeits its lease for every round sent so far.
   * Made again at the next round; at thousands of quiet groups this was 1.5 KB a leader.
   */
  forgetSent(): void {
    this.sent = null;
  }

  /** When round r went out (tick), or -1 if it is too old to remember. */
  sentTick(r: number): number {
    const slot = r % SENT_TICKS_KEPT;
    if (this.sent === null) return -1;
    return this.sent[2 * SENT_TICKS_KEPT + slot] === r ? this.sent[slot]! : -1;
  }

  /** When round r went out on the host's clock (ms), or -Infinity if it is too old to remember. */
  sentMs(r: number): number {
    const slot = r % SENT_TICKS_KEPT;
    if (this.sent === null) return -Infinity;
    return this.sent[2 * SENT_TICKS_KEPT + slot] === r ? this.sent[SENT_TICKS_KEPT + slot]! : -Infinity;
  }

  /** A quorum acknowledged `r`: moves every read of round ≤ r to `out`. */
  confirm(r: number, out: ReadState[]): void {
    if (r <= this.roundQuorum) return;
    assert(r <= this.round, `round ${r} acknowledged before it was sent (${this.round})`);
    this.roundQuorum = r;
    while (this.head < this.pending.length && this.pending[this.head]!.round <= r) {
      const p = this.pending[this.head++]!;
      out.push({ requestId: p.requestId, index: p.index, lease: false });
    }
    if (this.head === this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    }
  }

  /** Leadership was lost: returns the ids of every read still waiting (queued, then held). */
  abort(): number[] {
    const ids: number[] = [];
    for (let i = this.head; i < this.pending.length; i++) ids.push(this.pending[i]!.requestId);
    for (const id of this.held) ids.push(id);
    this.held = [];
    this.pending.length = 0;
    this.head = 0;
    this.roundWanted = false;
    this.roundQuorum = this.round;
    this.sent = null;
    return ids;
  }
}
