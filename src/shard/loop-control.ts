// What wakes the shard's turn loop, and what the loop must see through: the shard's one tick
// timer, the in ring's doorbell, work that finished elsewhere (an append made durable, an admin
// operation done), the work under way that must finish before the log closes (track, settle),
// and the fatal error that stops the loop (failWith). The other parts of the shard reach the
// loop only through this: wake(), turnAgain(), track(), failWith().
import type { Cancel, Scheduler } from '../io/clock.js';
import type { SpscRing } from '../ring/spsc-ring.js';
import { ShardCounter } from './counters.js';

const noop = (): void => {};

export class LoopControl {
  private tickDue = false;
  private woken = false;
  private wakeResolve: (() => void) | null = null;
  private dataWaiting = false;
  private stopTimer: Cancel | null = null;
  private fatalError: Error | null = null;
  /**
   * The shard is stopping while its disk is full: the appends the log gives up on are rejected
   * with WAL_NO_SPACE (they were never durable, nothing was acknowledged), which is no failure.
   */
  private abandoningNoSpace = false;
  /** Work the shard must see finish before it closes the log. */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly inRing: SpscRing,
    /** Resolves once the in ring may hold records. */
    private readonly waitInput: () => Promise<void>,
    private readonly counters: Float64Array,
  ) {}

  /** The error that stops the loop, once there is one. */
  get fatal(): Error | null {
    return this.fatalError;
  }

  startTicks(tickMs: number): void {
    this.stopTimer = this.scheduler.every(tickMs, this.onTick);
  }

  stopTicks(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  /** Lets go of the timer and this thread's ring waits (they keep the event loop alive). */
  close(): void {
    this.stopTicks();
    this.inRing.close();
  }

  /** True once per firing (or run of missed firings) of the tick timer. */
  takeTick(): boolean {
    if (!this.tickDue) return false;
    this.tickDue = false;
    return true;
  }

  private readonly onTick = (): void => {
    // A busy shard runs one tick for all the firings it missed (Raft time slows rather than
    // jumps); count what was lost so that it shows in /metrics.
    if (this.tickDue) this.counters[ShardCounter.TicksMissed]!++;
    this.tickDue = true;
    this.wake();
  };

  readonly wake = (): void => {
    this.woken = true;
    const r = this.wakeResolve;
    if (r !== null) {
      this.wakeResolve = null;
      r();
    }
  };

  /** Called during a turn: the next turn comes at once (work is left that this turn did not do). */
  turnAgain(): void {
    this.woken = true;
  }

  private readonly onData = (): void => {
    this.dataWaiting = false;
    this.wake();
  };

  /**
   * Resolves when a turn should run: woken, `moreInput` left in the ring, or (unless `input` is
   * false: the loop takes no input now) the ring's doorbell.
   */
  async waitForWork(moreInput: boolean, input = true): Promise<void> {
    if (this.woken || moreInput) {
      // Work is waiting; still give the event loop a turn, so that finished fsyncs and timers
      // are seen even while the ring stays busy.
      this.woken = false;
      await new Promise<void>((r) => this.scheduler.soon(r));
      return;
    }
    if (!this.dataWaiting && input) {
      this.dataWaiting = true;
      this.waitInput().then(this.onData, noop);
    }
    await new Promise<void>((r) => {
      this.wakeResolve = r;
    });
    this.woken = false;
  }

  /** Resolves after the turns and I/O completions already due: where long work lets turns run. */
  yieldToTurns(): Promise<void> {
    return new Promise<void>((r) => this.scheduler.soon(r));
  }

  /** Waits for every append, snapshot write and admin operation under way. */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** From here on (the shard is stopping), work given up on for a full disk does not stop the loop. */
  abandonNoSpace(): void {
    this.abandoningNoSpace = true;
  }

  get abandoning(): boolean {
    return this.abandoningNoSpace;
  }

  /** Resolves after `ms` (a retry's backoff). */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((r) => this.scheduler.after(ms, r));
  }

  /** Makes the loop stop with `e` (the log or the snapshot store failed, or a bug). */
  failWith(e: unknown): void {
    if (this.fatalError !== null) return;
    const code = (e as { code?: unknown }).code;
    if (this.abandoningNoSpace && (code === 'WAL_NO_SPACE' || code === 'ENOSPC')) return;
    this.fatalError = e instanceof Error ? e : new Error(String(e));
    this.wake();
  }

  track(p: Promise<unknown>): void {
    this.inflight.add(p);
    const forget = (): void => {
      this.inflight.delete(p);
    };
    p.then(forget, forget);
  }
}
