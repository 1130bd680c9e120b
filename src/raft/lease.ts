// The leader's lease: reads served at once, without a heartbeat round (`leaseRead`).
//
// A quorum that acknowledged a round sent at tick t ignores other campaigns until
// t + ticksElection of its own clocks (check-quorum, election.ts), so until then, less a margin
// for clock drift, no other leader can exist. The lease therefore runs from the send time of
// the last round a quorum acknowledged (read-only.ts numbers the rounds, read-index.ts
// confirms them). It is given up whenever the members whose silence it relies on may change
// (new term, configuration change), may be told to ignore it (leader transfer), or may stop
// hearing from this leader without its clock noticing (quiescence).
import type { RaftState } from './state.js';
import { Role } from './types.js';

export class Lease {
  /** Tick at which the lease began (the send time of the last round a quorum acknowledged). */
  startTick = -Infinity;
  /** The same moment on the host's clock (cfg.nowMs), when the host gives one (cfg.leaseMs). */
  startMs = -Infinity;
  /** Only rounds from this one on may extend the lease (see forfeit). */
  roundMin = Infinity;
  /** A leader transfer began this term: no lease until the next term. */
  voidForTerm = false;
  /**
   * Tick of the last read asked of this leader (or of its election). A lease is kept fresh by
   * heartbeat rounds only while reads come: after an election timeout without one, heartbeats
   * stop while appends flow both ways, as without leases (replication.ts, tickHeartbeat), and
   * the next read confirms itself by a round, which starts the lease again.
   */
  readTick = -Infinity;

  /**
   * Ends the current lease; only rounds numbered `roundMin` or later may start a new one. Used
   * when the set of members whose silence the lease relies on may have changed (new term,
   * configuration change) or when they may be told to ignore it (leader transfer).
   */
  forfeit(roundMin: number): void {
    this.startTick = -Infinity;
    this.startMs = -Infinity;
    this.roundMin = roundMin;
  }

  /** A quorum acknowledged round `round`, sent at tick `sentTick` and host time `sentMs` (-1: too old to know). */
  extend(round: number, sentTick: number, sentMs: number): void {
    if (round < this.roundMin || sentTick < 0) return;
    if (sentTick > this.startTick) this.startTick = sentTick;
    if (sentMs > this.startMs) this.startMs = sentMs;
  }
}

export function leaseValid(r: RaftState): boolean {
  const cfg = r.cfg;
  return cfg.leaseRead && cfg.checkQuorum && r.role === Role.Leader && !r.lease.voidForTerm && !r.quiet.quiesced &&
    r.time.ticks < r.lease.startTick + cfg.ticksElection - cfg.ticksLeaseMargin &&
    (cfg.leaseMs === 0 || cfg.nowMs() < r.lease.startMs + cfg.leaseMs);
}

/**
 * Until when (host ms) the lease holds on the host's clock, or -Infinity when it does not hold
 * now (by ticks, role, quiescence, transfer) or the host gives no clock (leaseMs 0).
 */
export function leaseUntilMs(r: RaftState): number {
  if (r.cfg.leaseMs === 0 || !leaseValid(r)) return -Infinity;
  return r.lease.startMs + r.cfg.leaseMs;
}
