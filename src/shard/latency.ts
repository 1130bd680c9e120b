// Latency histograms of one shard: how long a WAL append takes from the call to its
// durability, and how long a client request takes from the moment the shard reads it to the
// moment its response is queued. Fixed buckets, as Prometheus histograms have them, so that the
// histograms of every shard and every node add up (quantiles computed per shard would not).
//
// Recording is a short scan over the bounds and two additions into a Float64Array: no
// allocation on the hot path. The counts run from the shard's start and are never reset; the
// admin `metrics` request hands them to the main thread, which exposes them as
// `flotilla_*_seconds_bucket/_sum/_count` (src/node/metrics.ts).
import type { LatencySummary } from './task.js';

/**
 * Upper bounds of the buckets, microseconds (50 µs .. 10 s), roughly 1-2.5-5 per decade: a
 * loopback request or a page-cache append is tens of microseconds, an fdatasync on a slow
 * disk tens of milliseconds, a request stuck behind an election a second or more. An
 * observation above the last bound counts in the +Inf bucket only.
 */
export const LATENCY_BOUNDS_US: readonly number[] = Object.freeze([
  50, 100, 250, 500,
  1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
  1_000_000, 2_500_000, 5_000_000, 10_000_000,
]);

const BOUNDS = Float64Array.from(LATENCY_BOUNDS_US);

export class LatencyHistogram {
  /** Observations per bucket, the last one above every bound (not cumulative). */
  private readonly counts = new Float64Array(BOUNDS.length + 1);
  private count = 0;
  private sumUs = 0;

  recordMs(ms: number): void {
    // A negative or NaN duration (a clock oddity) counts as 0 rather than poisoning the sum.
    const us = ms > 0 ? ms * 1000 : 0;
    let i = 0;
    while (i < BOUNDS.length && us > BOUNDS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumUs += us;
  }

  summary(): LatencySummary {
    return { buckets: Array.from(this.counts), count: this.count, sumSeconds: this.sumUs / 1e6 };
  }
}
