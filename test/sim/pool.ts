// Runs many seeds on all cores: a fixed set of worker threads, each taking the next seed as soon
// as it finishes one (seeds vary a lot in cost). Results come back in completion order; the
// caller sorts them if it cares. With jobs = 1 everything runs in this thread.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { runSeed, type SimResult } from './simulation.js';
import { defaultOptions, type SimOptions } from './profile.js';

export type SeedResult = SimResult & { trace: string[] };

export interface PoolOptions {
  seeds: number[];
  base: Partial<Omit<SimOptions, 'seed'>>;
  jobs?: number;
  onResult?: (r: SeedResult) => void;
}

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

export async function runSeeds(po: PoolOptions): Promise<SeedResult[]> {
  const base = { ...defaultOptions, ...po.base };
  const jobs = Math.max(1, Math.min(po.jobs ?? defaultJobs(), po.seeds.length));
  const results: SeedResult[] = [];
  const done = (r: SeedResult): void => {
    results.push(r);
    po.onResult?.(r);
  };
  if (jobs === 1) {
    for (const seed of po.seeds) {
      done(runSeed({ ...base, seed }));
      // Let timers and I/O (the test runner, a progress line) breathe between seeds.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return results;
  }
  let next = 0;
  const workerUrl = new URL('./worker.js', import.meta.url);
  await Promise.all(
    Array.from({ length: jobs }, () => new Promise<void>((resolve, reject) => {
      const w = new Worker(workerUrl);
      const feed = (): void => {
        if (next >= po.seeds.length) {
          void w.terminate().then(() => resolve());
          return;
        }
        w.postMessage({ ...base, seed: po.seeds[next++]! } satisfies SimOptions);
      };
      w.on('message', (r: SeedResult) => {
        done(r);
        feed();
      });
      w.on('error', reject);
      feed();
    })),
  );
  return results;
}
