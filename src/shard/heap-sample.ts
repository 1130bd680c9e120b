// The shard thread's JavaScript heap, sampled into its counters for /metrics: each shard is a
// worker thread with a heap of its own, which the main thread cannot see. Sampled with the
// ticks, at most every HEAP_SAMPLE_MS (reading the statistics allocates a little).
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { ShardCounter } from './counters.js';

export const HEAP_SAMPLE_MS = 1000;

/** Writes the heap's figures into the counters (gauges: the latest value, not a sum). */
export function sampleHeap(counters: Float64Array): void {
  const h = getHeapStatistics();
  counters[ShardCounter.HeapUsedBytes] = h.used_heap_size;
  counters[ShardCounter.HeapTotalBytes] = h.total_heap_size;
  for (const s of getHeapSpaceStatistics()) {
    // Its capacity: newer V8s commit the space as it fills (space_size), so used + available
    // says what it may hold; older ones commit it whole.
    if (s.space_name === 'new_space') counters[ShardCounter.HeapYoungBytes] = Math.max(s.space_size, s.space_used_size + s.space_available_size);
  }
}
