// Latency histograms of one shard (hdr-histogram, microseconds): how long a WAL append takes
// from the call to its durability, and how long a client request takes from the moment the
// shard reads it to the moment its response is queued. Summaries go out through the admin
// `metrics` request; the main thread turns them into Prometheus gauges.
import { build, type Histogram } from 'hdr-histogram-js';
import type { LatencySummary } from './task.js';

/** Largest value recorded, in microseconds (one hour); larger ones are clamped to it. */
const VALUE_US_MAX = 3_600_000_000;

export class LatencyHistogram {
  // The pure-JS build: it loads in any worker without WebAssembly set-up, and at ≈ 5M records
  // per second it is far from the cost of what it measures (a request, an fsync).
  private readonly h: Histogram = build({
    useWebAssembly: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: VALUE_US_MAX,
    numberOfSignificantValueDigits: 2,
    autoResize: false,
  });

  recordMs(ms: number): void {
    const us = Math.round(ms * 1000);
    this.h.recordValue(us < 1 ? 1 : us > VALUE_US_MAX ? VALUE_US_MAX : us);
  }

  summary(): LatencySummary {
    const h = this.h;
    if (h.totalCount === 0) return { count: 0, p50: 0, p99: 0, p999: 0, max: 0 };
    // Percentiles are reported as the top of their bucket, which can pass the exact maximum:
    // the summary keeps p50 ≤ p99 ≤ p999 ≤ max.
    const p999 = h.getValueAtPercentile(99.9);
    return {
      count: h.totalCount,
      p50: h.getValueAtPercentile(50),
      p99: h.getValueAtPercentile(99),
      p999,
      max: Math.max(h.maxValue, p999),
    };
  }
}
