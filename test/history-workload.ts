// The workload of the linearizability tests on real processes (test/cluster, test/netns): each
// client, in a loop until stopped, puts a value no one else puts or reads one of a few keys, and
// every operation goes into one history for the checker (test/sim/linearizability.ts). A put
// that fails is recorded as indeterminate (sent once, it may or may not have taken effect); a
// read that fails had no effect and is left out.
import { performance } from 'node:perf_hooks';
import type { FlotillaClient } from '../src/client/index.js';
import type { HistoryOp } from './sim/linearizability.js';

export interface HistoryWorkload {
  readonly history: HistoryOp[];
  /** Puts acknowledged, reads tried and reads answered so far. */
  readonly counts: { puts: number; reads: number; readsOk: number };
  /** Stops the loops and waits for the operations under way. */
  stop(): Promise<void>;
}

/**
 * Starts one loop per client over keys `k0 … k<keys - 1>`; `pauseAfterFailureMs` between a
 * failure and the next try (so a loop does not spin while nothing answers). Client i is client
 * `firstClient + i` in the history.
 */
export function startHistoryWorkload(clients: FlotillaClient[], opts: { keys: number; pauseAfterFailureMs?: number; firstClient?: number; history?: HistoryOp[]; nextId?: () => number }): HistoryWorkload {
  const history = opts.history ?? [];
  let seq = 0;
  const nextId = opts.nextId ?? (() => seq++);
  const counts = { puts: 0, reads: 0, readsOk: 0 };
  const pause = opts.pauseAfterFailureMs ?? 0;
  let stopping = false;
  const failed = (): Promise<void> => (pause > 0 ? new Promise((r) => setTimeout(r, pause)) : Promise.resolve());
  const loops = clients.map(async (c, i) => {
    const client = (opts.firstClient ?? 0) + i;
    for (let n = 0; !stopping; n++) {
      const key = `k${(n * 7 + client) % opts.keys}`;
      const id = nextId();
      const invoke = performance.now();
      if (n % 2 === 0) {
        const value = `c${client}-${n}`;
        try {
          await c.put(key, value);
          counts.puts++;
          history.push({ id, client, op: { kind: 'put', key, value }, invoke, complete: performance.now(), result: { kind: 'put' } });
        } catch {
          history.push({ id, client, op: { kind: 'put', key, value }, invoke, complete: null, result: null });
          await failed();
        }
      } else {
        counts.reads++;
        try {
          const value = await c.get(key);
          counts.readsOk++;
          history.push({ id, client, op: { kind: 'get', key }, invoke, complete: performance.now(), result: { kind: 'get', value } });
        } catch {
          await failed();
        }
      }
    }
  });
  return {
    history,
    counts,
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}
