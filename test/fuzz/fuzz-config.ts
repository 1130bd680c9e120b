// Shared settings of the fuzz tests (test/fuzz/*.test.ts): every property runs from a fixed seed
// so that CI is deterministic, a bounded number of runs so that it is quick, and a failure
// prints its seed and shrunk counterexample (fast-check does), which FUZZ_SEED replays.
// FUZZ_RUNS scales the runs for a longer local session (FUZZ_RUNS=20 → twenty times as many).
import type { Parameters } from 'fast-check';

export const FUZZ_SEED = Number(process.env['FUZZ_SEED'] ?? 20261207);
const SCALE = Math.max(1, Number(process.env['FUZZ_RUNS'] ?? 1));

export function params<T>(numRuns: number): Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: Math.round(numRuns * SCALE), endOnFailure: process.env["FUZZ_SHRINK"] === undefined, includeErrorInReport: true };
}
