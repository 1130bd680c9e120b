// The simulator's clock and agenda: a binary min-heap of events ordered by simulated time, ties
// broken by the order in which they were scheduled (a sequence number), so that a run is a pure
// function of its seed. Simulated time is in milliseconds and only moves when an event runs.

export type EventFn = () => void;

interface Event {
  time: number;
  seq: number;
  fn: EventFn;
}

export class EventQueue {
  /** Simulated milliseconds since the start of the run. */
  now = 0;
  /** Events run so far. */
  eventsRun = 0;
  private heap: Event[] = [];
  private seq = 0;

  constructor(private readonly sizeMax: number) {}

  /** Runs `fn` at simulated time `time` (never in the past). */
  at(time: number, fn: EventFn): void {
    if (!(time >= this.now)) throw new Error(`event scheduled in the past: ${time} < ${this.now}`);
    // A bound on the agenda: a run whose agenda grows without bound has a bug (a timer that
    // re-arms itself twice, a message storm), and it would otherwise just get slow.
    if (this.heap.length >= this.sizeMax) throw new Error(`event queue over its bound of ${this.sizeMax}`);
    const e: Event = { time, seq: this.seq++, fn };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  after(delayMs: number, fn: EventFn): void {
    this.at(this.now + Math.max(0, delayMs), fn);
  }

  /** Time of the next event, or Infinity when there is none. */
  peekTime(): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Infinity;
  }

  /** Runs the next event; false when the agenda is empty. */
  step(): boolean {
    const h = this.heap;
    if (h.length === 0) return false;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    this.now = top.time;
    this.eventsRun++;
    top.fn();
    return true;
  }
}

function before(x: Event, y: Event): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq);
}
