// A node's disk: a FIFO of pending writes (one per Ready, of any of the node's replicas, as in
// one write-ahead log per worker). Writes complete in order, in batches: one sync of random
// latency at a time, and whatever arrives during a sync goes into the next one.
// A crash loses every pending write, or lets a random prefix of them reach the media without
// anybody having been told (both happen on real disks: the write was issued, the fsync's answer
// never read). With `tornWrites`, the first write past that prefix may also be cut inside,
// after its snapshot or part of its entries, like a torn tail that recovery keeps up to the
// last whole record.
import type { EventQueue } from './event-queue.js';
import type { Prng } from './prng.js';

export interface DiskProfile {
  latencyMsMin: number;
  latencyMsMax: number;
  /** Probability that one write is slow (a stall), taking up to `stallMsMax`. */
  stallP: number;
  stallMsMax: number;
  /** Probability that a crash keeps a prefix of the pending writes (else all are lost). */
  crashKeepsPrefixP: number;
  /** Whether a crash may also tear the first write it does not keep whole. */
  tornWrites: boolean;
}

/** What a write carries, from the disk's point of view. */
export interface DiskWrite {
  /** Makes the whole write durable. */
  apply(): void;
  /** Makes a torn part of the write durable: `fraction` in [0, 1) of its records. */
  applyTorn(fraction: number): void;
  /** Runs when the write is durable and the node has not crashed since it was queued. */
  done(): void;
  /** False once the owner is gone (a destroyed replica): the write is skipped. */
  live(): boolean;
}

export class Disk {
  private pending: DiskWrite[] = [];
  /** The latest batch: writes that arrive before it starts join it (group commit). */
  private batchStartMs = 0;
  private batchEndMs = 0;
  /** Bumped by a crash: completions queued before it are ignored. */
  private epoch = 0;
  writes = 0;
  batches = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly profile: DiskProfile,
    private readonly pendingMax: number,
  ) {}

  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Queues a write; its `done` runs once it and every earlier write are durable. The disk syncs
   * one batch at a time: a write that arrives while a batch is being synced joins the next
   * batch, which starts when the current one ends (group commit, as the engine's WAL does).
   * A write with nothing to make durable (`empty`) costs no sync but still completes in order.
   */
  write(w: DiskWrite, empty: boolean): void {
    // Hosts only queue what a Ready hands them, which the core bounds; an ever-growing queue
    // would mean the simulated disk never completes, a simulator bug.
    if (this.pending.length >= this.pendingMax) throw new Error(`disk queue over its bound of ${this.pendingMax}`);
    const now = this.queue.now;
    let end: number;
    if (empty) {
      end = Math.max(now, this.pending.length > 0 ? this.batchEndMs : now);
    } else {
      if (this.batchEndMs <= now) {
        this.batchStartMs = now;
        this.batchEndMs = now + this.latency();
        this.batches++;
      } else if (this.batchStartMs <= now) {
        this.batchStartMs = this.batchEndMs;
        this.batchEndMs = this.batchStartMs + this.latency();
        this.batches++;
      } // else: the latest batch has not started yet; join it
      end = this.batchEndMs;
    }
    this.pending.push(w);
    const epoch = this.epoch;
    this.queue.at(end, () => {
      if (epoch !== this.epoch) return;
      const head = this.pending.shift();
      if (head !== w) throw new Error('disk completions out of order');
      this.writes++;
      if (!w.live()) return;
      w.apply();
      w.done();
    });
  }

  private latency(): number {
    const p = this.profile;
    let ms = this.rng.real(p.latencyMsMin, p.latencyMsMax);
    if (this.rng.chance(p.stallP)) ms += this.rng.real(0, p.stallMsMax);
    return ms;
  }

  /** The node crashed: decide what of the pending writes reached the media; forget the rest. */
  crash(): { kept: number; lost: number; torn: boolean } {
    const n = this.pending.length;
    let keep = 0;
    let torn = false;
    if (n > 0 && this.rng.chance(this.profile.crashKeepsPrefixP)) keep = this.rng.int(0, n);
    for (let i = 0; i < keep; i++) {
      const w = this.pending[i]!;
      if (w.live()) w.apply();
    }
    if (keep < n && this.profile.tornWrites && this.rng.chance(0.5)) {
      const w = this.pending[keep]!;
      if (w.live()) {
        w.applyTorn(this.rng.next());
        torn = true;
      }
    }
    this.pending = [];
    this.epoch++;
    this.batchStartMs = this.batchEndMs = this.queue.now;
    return { kept: keep, lost: n - keep, torn };
  }
}
