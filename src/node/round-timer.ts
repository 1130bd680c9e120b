// One timer that runs a round of background work (map-keeper.ts, migration-driver.ts): at most
// one run pending, a sooner request replacing a later one, and none after stop(). The timer
// does not keep the process alive.
export class RoundTimer {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly round: () => Promise<void>) {}

  /** Runs the round in `ms` (0: at once, replacing a later run already set; otherwise a run already set wins). */
  soon(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== null) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.round();
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
