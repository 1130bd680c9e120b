// The redial policy of a dialer (the node with the lower id dials): a dialer that loses its
// link, or cannot reach its peer, redials after a delay that starts at backoffMsMin and doubles
// up to backoffMsMax, with jitter so that nodes restarted together do not redial in step. A
// handshake that completes starts the delay again from backoffMsMin. A peer that is down costs
// one timer.

export class Redial {
  /** The delay the next redial is drawn from. */
  private backoffMs: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly backoffMsMin: number, private readonly backoffMsMax: number) {
    this.backoffMs = backoffMsMin;
  }

  /** Calls `dial` after the current delay (jittered) and doubles the delay; no-op while one is scheduled. */
  schedule(dial: () => void): void {
    if (this.timer !== null) return;
    // Jitter: anywhere in the upper half of the current delay.
    const delayMs = Math.max(1, Math.round(this.backoffMs * (0.5 + 0.5 * Math.random())));
    this.backoffMs = Math.min(this.backoffMsMax, 2 * this.backoffMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      dial();
    }, delayMs);
  }

  /** The link came up: the next loss redials after the shortest delay. */
  reset(): void {
    this.backoffMs = this.backoffMsMin;
  }

  /** No redial (close()). */
  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
