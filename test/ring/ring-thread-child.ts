// The two sides of a ring stream, for test/ring/spsc-ring.test.ts: a seeded stream of records
// that either thread can produce or consume, each side hashing what it wrote or read. The test
// runs one side on its own thread and this module, started as a worker, runs the other:
//
//   new Worker(new URL('./ring-thread-child.js', import.meta.url), { workerData })
//
// workerData.role: 'produce' | 'consume' (a whole stream, then posts its StreamResult), or
// 'consume-one' (waits for one record with nothing else keeping the thread alive, then posts
// its bytes: proves that a pending wait holds the event loop open).
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SpscRing } from '../../src/ring/spsc-ring.js';

export interface StreamOptions {
  /** Records in the stream. */
  count: number;
  /** Seed of the lengths and contents (non-zero). */
  seed: number;
  /** Record lengths are uniform in [1, recordBytesMax]. */
  recordBytesMax: number;
  /** Announce commits (or releases) after this many, and always before sleeping. */
  notifyEvery: number;
}

export interface StreamResult {
  records: number;
  bytes: number;
  /** FNV-1a over every record's length (4 bytes, LE) and contents, in order. */
  hash: number;
  /** Times this side found the ring full (producer) or empty (consumer) and waited. */
  waits: number;
}

export type ChildData =
  | ({ role: 'produce' | 'consume'; sab: SharedArrayBuffer } & StreamOptions)
  | { role: 'consume-one'; sab: SharedArrayBuffer };

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** Seeded lengths and contents, identical on every thread for a seed. xorshift32. */
export class RecordStream {
  private state: number;

  constructor(
    seed: number,
    private readonly recordBytesMax: number,
  ) {
    this.state = seed | 0 || 1;
  }

  private next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x;
    return x >>> 0;
  }

  nextLength(): number {
    return 1 + (this.next() % this.recordBytesMax);
  }

  /** Advances past the contents of a record of `bytes` without writing them. */
  skip(bytes: number): void {
    for (let i = 0; i < bytes; i += 4) this.next();
  }

  fill(into: Uint8Array, at: number, bytes: number): void {
    let i = 0;
    for (; i + 4 <= bytes; i += 4) {
      const r = this.next();
      into[at + i] = r;
      into[at + i + 1] = r >>> 8;
      into[at + i + 2] = r >>> 16;
      into[at + i + 3] = r >>> 24;
    }
    if (i < bytes) {
      let r = this.next();
      for (; i < bytes; i++, r >>>= 8) into[at + i] = r;
    }
  }
}

export function hashRecord(hash: number, from: Uint8Array, at: number, bytes: number): number {
  let h = hash;
  for (let k = 0; k < 32; k += 8) h = Math.imul(h ^ ((bytes >>> k) & 0xff), FNV_PRIME);
  const end = at + bytes;
  for (let i = at; i < end; i++) h = Math.imul(h ^ from[i]!, FNV_PRIME);
  return h >>> 0;
}

export async function produceStream(ring: SpscRing, opts: StreamOptions): Promise<StreamResult> {
  const stream = new RecordStream(opts.seed, opts.recordBytesMax);
  let hash = FNV_OFFSET;
  let bytesTotal = 0;
  let waits = 0;
  let unannounced = 0;
  for (let n = 0; n < opts.count; n++) {
    const bytes = stream.nextLength();
    let at = ring.reserve(bytes);
    while (at < 0) {
      // Announce before sleeping, or both sides could sleep on records the consumer never saw.
      ring.notify();
      unannounced = 0;
      waits++;
      await ring.waitRoom(bytes);
      at = ring.reserve(bytes);
    }
    stream.fill(ring.data, at, bytes);
    hash = hashRecord(hash, ring.data, at, bytes);
    bytesTotal += bytes;
    ring.commit();
    if (++unannounced >= opts.notifyEvery) {
      ring.notify();
      unannounced = 0;
    }
  }
  ring.notify();
  return { records: opts.count, bytes: bytesTotal, hash, waits };
}

/**
 * Reads `count` records and hashes them. Also checks each length against the seeded stream,
 * so that a mismatch names the first bad record instead of only a different hash.
 */
export async function consumeStream(ring: SpscRing, opts: StreamOptions): Promise<StreamResult> {
  const lengths = new RecordStream(opts.seed, opts.recordBytesMax);
  let hash = FNV_OFFSET;
  let bytesTotal = 0;
  let waits = 0;
  let unannounced = 0;
  for (let n = 0; n < opts.count; n++) {
    let at = ring.read();
    while (at < 0) {
      ring.notifyRoom();
      unannounced = 0;
      waits++;
      await ring.waitData();
      at = ring.read();
    }
    const bytes = ring.readBytes;
    const expected = lengths.nextLength();
    if (bytes !== expected) throw new Error(`record ${n}: length ${bytes}, expected ${expected}`);
    lengths.skip(bytes);
    hash = hashRecord(hash, ring.data, at, bytes);
    bytesTotal += bytes;
    ring.release();
    if (++unannounced >= opts.notifyEvery) {
      ring.notifyRoom();
      unannounced = 0;
    }
  }
  ring.notifyRoom();
  return { records: opts.count, bytes: bytesTotal, hash, waits };
}

async function runChild(data: ChildData): Promise<void> {
  const ring = new SpscRing(data.sab);
  if (data.role === 'consume-one') {
    await ring.waitData();
    const at = ring.read();
    const copy = ring.data.slice(at, at + ring.readBytes);
    ring.release();
    ring.notifyRoom();
    parentPort!.postMessage(copy);
    return;
  }
  const result = data.role === 'produce' ? await produceStream(ring, data) : await consumeStream(ring, data);
  parentPort!.postMessage(result);
}

if (!isMainThread && parentPort !== null && (workerData as ChildData | undefined)?.sab !== undefined) {
  // A rejection is unhandled, which ends the worker and reaches the test as its 'error' event.
  void runChild(workerData as ChildData);
}
