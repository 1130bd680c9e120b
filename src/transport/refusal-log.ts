// Rate limit for the warnings about refused peer connections: a flood of connections on the
// raft port (or a misconfigured node redialing) must not flood the log, yet the count of what
// went unlogged is kept so the next warning tells how many there were. Bounded by source count.

/** Refused connections from one source address are logged at most once per this interval. */
export const REFUSED_LOG_MS_INTERVAL = 10_000;
/** Source addresses remembered for that; when more, the memory starts over (a flood logs a little more, never grows it). */
const REFUSED_LOG_SOURCES_MAX = 1024;

export class RefusalLog {
  /** Per source address: when its next refusal may be logged, and how many were not. */
  private readonly refusedLog = new Map<string, { nextMs: number; unlogged: number }>();

  constructor(private readonly intervalMs: number) {}

  /**
   * A refusal from `source` (an address, without port): how many refusals from it went unlogged
   * before this one if it is to be logged now, or -1 if not (one was logged within the interval).
   */
  unlogged(source: string): number {
    const now = Date.now();
    const seen = this.refusedLog.get(source);
    if (seen !== undefined && now < seen.nextMs) {
      seen.unlogged++;
      return -1;
    }
    if (seen === undefined && this.refusedLog.size >= REFUSED_LOG_SOURCES_MAX) this.refusedLog.clear();
    const unlogged = seen?.unlogged ?? 0;
    this.refusedLog.set(source, { nextMs: now + this.intervalMs, unlogged: 0 });
    return unlogged;
  }
}
