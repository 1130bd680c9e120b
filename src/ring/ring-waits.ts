// The waits of one thread on an SpscRing (spsc-ring.ts): at most one pending wait per
// direction, whose promise every caller that waits meanwhile shares, and the timer that keeps
// the event loop open while any is pending (a pending Atomics.waitAsync alone does not). None of
// this is on the record path: push and pop never touch it.

import { assert } from '../util/assert.js';

/** A pending waitData or waitRoom: the promise its callers share, and what settles it. */
export class PendingWait {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: Error) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** Far longer than any wait: the timer only has to exist (referenced) to hold the loop open. */
const KEEP_ALIVE_INTERVAL_MS = 1 << 30;
const noop = (): void => {};

/** A referenced timer while at least one wait is pending; unreferenced (kept for reuse) otherwise. */
export class WaitKeepAlive {
  private pending = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  hold(): void {
    if (this.pending++ !== 0) return;
    if (this.timer === null) this.timer = setInterval(noop, KEEP_ALIVE_INTERVAL_MS);
    else this.timer.ref();
  }

  letGo(): void {
    assert(this.pending > 0, 'ring: wait count underflow');
    if (--this.pending === 0 && this.timer !== null) this.timer.unref();
  }

  /** The ring is closed on this thread: no timer any more. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
