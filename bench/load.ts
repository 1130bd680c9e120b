// The closed-loop load generator every benchmark row goes through, Flotilla's and the peers'
// alike, so that their figures differ only in what they drive: `clients` connections, each
// keeping `pipeline` requests in flight; a reply is timed against its own send and at once
// replaced by the next request on the same slot.
//
// Coordinated omission: this is a closed loop. A request is sent only when an earlier one on its
// slot has returned, so a server that stalls also stalls the sends, and the latency recorded is
// the service time of requests actually sent; it is not corrected to a fixed arrival schedule.
// Percentiles under saturation are therefore lower bounds of what an open-loop client would see.
import { build, type Histogram } from 'hdr-histogram-js';

/** What a benchmark drives: Flotilla (TCP or WebSocket, raft or echo), etcd, Redis. */
export interface LoadDriver {
  /** Opens connection `index`; `reply(tag, ok)` must be called once for each request sent on it, in any order. */
  open(index: number, reply: (tag: number, ok: boolean) => void): Promise<LoadConnection>;
  /** Releases what open() did not (shared pools); connections are closed first. */
  close?(): Promise<void>;
}

export interface LoadConnection {
  /** Queues one request; `tag` is unique among this connection's requests in flight (0..pipeline-1). */
  send(tag: number, op: LoadOp, key: number): void;
  /** Writes what send() queued; called once per burst of sends. */
  flush(): void;
  close(): void;
}

export type LoadOp = 'put' | 'get';

/** The load a benchmark row puts on whatever it drives; the same fields for every system. */
export interface LoadShape {
  clients: number;
  pipeline: number;
  valueBytes: number;
  keys: number;
  op: 'put' | 'get' | 'mixed';
  durationS: number;
  warmupS: number;
}

export interface LoadOptions {
  clients: number;
  pipeline: number;
  /** Keys are drawn uniformly from 0..keys-1. */
  keys: number;
  /** put, get, or mixed (half and half, drawn per request). */
  op: 'put' | 'get' | 'mixed';
  warmupS: number;
  durationS: number;
  /** Called once a second of the measured phase (and of the warm-up, with warmup true). */
  onSecond?: (s: SecondReport) => void;
  /** Called as the measured phase begins and as it ends (to sample CPU time over exactly it). */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
  /** Seed of the key and op draws, so that runs are alike. */
  seed?: number;
}

export interface SecondReport {
  warmup: boolean;
  /** Seconds since the phase began. */
  second: number;
  ops: number;
  errors: number;
  p99Ms: number;
}

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface LoadResult {
  /** Replies counted in the measured phase (ok or not). */
  ops: number;
  opsPerSec: number;
  errors: number;
  /** Wall time of the measured phase, in seconds. */
  durationS: number;
  latencyMs: LatencyMs;
}

/** Largest latency recorded, in microseconds (one minute); larger ones are clamped to it. */
const LATENCY_US_MAX = 60_000_000;

function histogram(): Histogram {
  return build({ useWebAssembly: false, lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3, autoResize: false });
}

/** Latency summary in milliseconds from a histogram of microseconds. */
export function latencyOf(h: Histogram): LatencyMs {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  const ms = (us: number): number => Math.round(us) / 1000;
  // A percentile is reported as the top of its bucket, which can pass the exact maximum: keep
  // p50 <= ... <= p99.9 <= max.
  const p999 = h.getValueAtPercentile(99.9);
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(p999),
    max: ms(Math.max(h.maxValue, p999)),
  };
}

/** xorshift32: cheap, seeded, good enough to spread keys. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * Runs the warm-up, then the measured phase, and returns what the measured phase saw. Every
 * request in flight when the time is up is waited for (bounded), then every connection closed.
 */
export async function runLoad(driver: LoadDriver, o: LoadOptions): Promise<LoadResult> {
  if (o.clients < 1 || o.pipeline < 1 || o.keys < 1) throw new Error('clients, pipeline and keys must be at least 1');
  const next = rng(o.seed ?? 1);
  const opOf = o.op === 'mixed' ? (): LoadOp => ((next() & 1) === 0 ? 'put' : 'get') : (): LoadOp => o.op as LoadOp;
  const keyOf = (): number => next() % o.keys;

  let whole = histogram();
  let second = histogram();
  let ops = 0;
  let errors = 0;
  let secondOps = 0;
  let secondErrors = 0;
  let stopping = false;
  let inflight = 0;
  const conns: LoadConnection[] = [];
  const sentAt: Float64Array[] = [];
  // A connection's sends made while handling its replies are flushed once, after the burst.
  const dirty = new Set<number>();
  let flushQueued = false;
  const flushDirty = (): void => {
    flushQueued = false;
    for (const i of dirty) conns[i]!.flush();
    dirty.clear();
  };

  const replyOf = (i: number) => (tag: number, ok: boolean): void => {
    const now = performance.now();
    const us = Math.round((now - sentAt[i]![tag]!) * 1000);
    const v = us < 1 ? 1 : us > LATENCY_US_MAX ? LATENCY_US_MAX : us;
    whole.recordValue(v);
    second.recordValue(v);
    ops++;
    secondOps++;
    if (!ok) {
      errors++;
      secondErrors++;
    }
    inflight--;
    if (stopping) return;
    sentAt[i]![tag] = now;
    inflight++;
    conns[i]!.send(tag, opOf(), keyOf());
    dirty.add(i);
    if (!flushQueued) {
      flushQueued = true;
      queueMicrotask(flushDirty);
    }
  };

  try {
    for (let i = 0; i < o.clients; i++) {
      conns.push(await driver.open(i, replyOf(i)));
      sentAt.push(new Float64Array(o.pipeline));
    }
    const t0 = performance.now();
    for (let i = 0; i < o.clients; i++) {
      for (let tag = 0; tag < o.pipeline; tag++) {
        sentAt[i]![tag] = t0;
        inflight++;
        conns[i]!.send(tag, opOf(), keyOf());
      }
      conns[i]!.flush();
    }

    const phase = async (seconds: number, warmup: boolean): Promise<{ ops: number; errors: number; wallS: number }> => {
      whole = histogram();
      ops = 0;
      errors = 0;
      const start = performance.now();
      for (let s = 1; s <= seconds; s++) {
        second = histogram();
        secondOps = 0;
        secondErrors = 0;
        const until = start + s * 1000;
        await new Promise((r) => setTimeout(r, Math.max(0, until - performance.now())));
        o.onSecond?.({ warmup, second: s, ops: secondOps, errors: secondErrors, p99Ms: second.totalCount === 0 ? 0 : second.getValueAtPercentile(99) / 1000 });
      }
      return { ops, errors, wallS: (performance.now() - start) / 1000 };
    };
    if (o.warmupS > 0) await phase(o.warmupS, true);
    o.onMeasureStart?.();
    const measured = await phase(o.durationS, false);
    o.onMeasureEnd?.();
    const latencyMs = latencyOf(whole);
    stopping = true;
    const drainUntil = performance.now() + 10_000;
    while (inflight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
    return {
      ops: measured.ops,
      opsPerSec: Math.round(measured.ops / measured.wallS),
      errors: measured.errors,
      durationS: Math.round(measured.wallS * 100) / 100,
      latencyMs,
    };
  } finally {
    stopping = true;
    for (const c of conns) c.close();
    await driver.close?.();
  }
}
