// What a leader knows about each follower: how far its log matches (`match`), what to send next
// (`next`), and how replication to it is flowing (probe / replicate / snapshot), with a bounded
// window of messages in flight.
import { assert } from '../util/assert.js';

/** The inflight ring's first size, when a message is first in flight. */
const INFLIGHT_SLOTS_FIRST = 8;
const NO_SLOTS = new Float64Array(0);

export enum ProgressState {
  /** Unsure where the follower's log ends: one message at a time until it answers. */
  Probe = 0,
  /** The follower is keeping up: stream entries, bounded by the inflight window. */
  Replicate = 1,
  /** A snapshot is on its way; nothing else is sent until it is acknowledged or given up. */
  Snapshot = 2,
}

/**
 * The append messages in flight to one follower, as a ring of (last index, bytes). Full when
 * either bound is reached; freed in order as the follower acknowledges. The ring starts empty
 * and doubles as messages pile up, up to countMax: every member keeps a Progress for every
 * other (a follower too, in case it leads), and at thousands of groups a full window each
 * (256 × 16 bytes, three members) was most of a group's memory, while a busy leader rarely has
 * more than a few appends in flight.
 */
export class Inflights {
  private indexes = NO_SLOTS;
  private sizes = NO_SLOTS;
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(readonly countMax: number, readonly bytesMax: number) {
    assert(countMax > 0, 'inflight window needs a positive size');
  }

  add(index: number, bytes: number): void {
    assert(this.count < this.countMax, 'inflights overflow');
    if (this.count === this.indexes.length) this.grow();
    const cap = this.indexes.length;
    let i = this.start + this.count;
    if (i >= cap) i -= cap;
    this.indexes[i] = index;
    this.sizes[i] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Doubles the ring (at most countMax), its messages moved to the front in order. */
  private grow(): void {
    const cap = this.indexes.length;
    const next = Math.min(this.countMax, Math.max(INFLIGHT_SLOTS_FIRST, 2 * cap));
    const indexes = new Float64Array(next);
    const sizes = new Float64Array(next);
    for (let k = 0, i = this.start; k < this.count; k++, i = i + 1 === cap ? 0 : i + 1) {
      indexes[k] = this.indexes[i]!;
      sizes[k] = this.sizes[i]!;
    }
    this.indexes = indexes;
    this.sizes = sizes;
    this.start = 0;
  }

  /** Frees every message whose last index is at most `index`. */
  freeLE(index: number): void {
    const cap = this.indexes.length;
    while (this.count > 0 && this.indexes[this.start]! <= index) {
      this.bytes -= this.sizes[this.start]!;
      this.start = this.start + 1 === cap ? 0 : this.start + 1;
      this.count--;
    }
    if (this.count === 0) { this.start = 0; this.bytes = 0; }
  }

  /** Frees the oldest message, lost or not: lets one more out when the window is stuck full. */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.count === this.countMax || this.bytes >= this.bytesMax;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next = 1;
  state = ProgressState.Probe;
  /** In Probe: a message was sent and we wait for its answer (or the next heartbeat). */
  probeSent = false;
  pendingSnapshot = 0;
  /** Leader ticks spent in Snapshot state; past a bound the snapshot is presumed lost. */
  ticksInSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Answered an append since the leader's last heartbeat tick (see tickHeartbeat). */
  answeredSinceHeartbeat = false;
  /** The highest heartbeat (read) round this follower acknowledged. */
  roundAcked = 0;
  readonly inflights: Inflights;

  constructor(next: number, countMax: number, bytesMax: number) {
    this.next = next;
    this.inflights = new Inflights(countMax, bytesMax);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = index;
    this.ticksInSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** The follower has everything up to `index`. Returns whether `match` moved. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
    }
    this.probeSent = false;
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * The follower rejected an append after `rejected`; `hint` is the highest index at which
   * the logs may match. Returns false when the rejection is stale and must be ignored.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (hint < this.match && rejected <= this.match && this.state !== ProgressState.Snapshot) {
      // The follower says its log ends below what it acknowledged: it lost an unsynced tail (a
      // power loss with syncForce off). Ignoring that as stale would refuse it repair forever.
      // A really stale rejection (sent before the follower caught up, delivered late) lands
      // here too; lowering match for it is safe all the same (commit never goes back) and costs
      // a resend, and over one TCP link answers arrive in order, so it is rare.
      this.match = hint;
      this.next = hint + 1;
      this.probeSent = false;
      return true;
    }
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe: return this.probeSent;
      case ProgressState.Replicate: return this.inflights.full();
      case ProgressState.Snapshot: return true;
    }
  }

  /** Records an append that carried entries up to `last` (0 entries: last = next - 1). */
  sentEntries(count: number, last: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (count > 0) {
        this.next = last + 1;
        this.inflights.add(last, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }
}
