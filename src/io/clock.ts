// Time and timers, as the shard host and the write-ahead log see them. Production passes the
// process's own (performance.now, setInterval, setImmediate); the simulator passes clocks that
// drift and jump and timers that fire on its event queue, so that the same code runs in both
// (test/sim/README.md). Nothing in src/ asks which one it got.

/** A monotonic clock in milliseconds (its origin means nothing; only differences do). */
export interface Clock {
  nowMs(): number;
}

/** Cancels a timer; calling it again, or after a one-shot timer fired, does nothing. */
export type Cancel = () => void;

export interface Scheduler {
  /**
   * Calls `fn` every `ms` until cancelled. A busy thread may see firings late and merged, never
   * early. `keepAlive: false` lets the process exit while only this timer is left.
   */
  every(ms: number, fn: () => void, keepAlive?: boolean): Cancel;
  /** Calls `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Cancel;
  /** Calls `fn` soon, after the I/O completions and timers that are already due. */
  soon(fn: () => void): void;
}

export const systemClock: Clock = { nowMs: () => performance.now() };

export const systemScheduler: Scheduler = {
  every(ms, fn, keepAlive = true) {
    const t = setInterval(fn, ms);
    if (!keepAlive) t.unref();
    return () => clearInterval(t);
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  soon(fn) {
    setImmediate(fn);
  },
};
