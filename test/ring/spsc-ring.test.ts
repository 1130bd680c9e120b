// The SPSC ring: records in order and intact across many wraps, full and empty, bounds, waits
// and wake-ups on one thread, and streams of millions of records between two threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RING_HEADER_BYTES, RingWord, SpscRing } from '../../src/ring/spsc-ring.js';
import { AssertionError } from '../../src/util/assert.js';
import {
  consumeStream,
  produceStream,
  type ChildData,
  type StreamOptions,
  type StreamResult,
} from './ring-thread-child.js';

const CHILD_URL = new URL('./ring-thread-child.js', import.meta.url);

function slotBytes(bytes: number): number {
  return (bytes + 8 + 7) & ~7;
}

function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** True when `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  const deadline = Date.now() + ms;
  while (!settled && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  return settled;
}

function fillBytes(data: Uint8Array, at: number, bytes: number, next: () => number): Uint8Array {
  const copy = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) copy[i] = data[at + i] = next() & 0xff;
  return copy;
}

function sameBytes(data: Uint8Array, at: number, expected: Uint8Array): boolean {
  for (let i = 0; i < expected.length; i++) if (data[at + i] !== expected[i]) return false;
  return true;
}

interface Queued {
  content: Uint8Array;
  /** Bytes of the ring this record holds: its slot plus any pad written before it. */
  spanBytes: number;
}

/**
 * Random bursts of writes and reads against a model of the ring: where each record must go
 * (after the last, or at offset 0 behind a pad when it does not fit before the end), how much
 * space is in use, and when a reservation must be refused. Returns the number of pads.
 */
function runAgainstModel(ring: SpscRing, seed: number, steps: number): { pads: number; bytesThrough: number } {
  const next = xorshift(seed);
  const cap = ring.capacity;
  const queue: Queued[] = [];
  let queueFront = 0;
  let tailAt = ((Atomics.load(new Int32Array(ring.data.buffer, 0, RING_HEADER_BYTES >> 2), RingWord.tail) | 0) & (cap - 1));
  let used = 0;
  let pads = 0;
  let bytesThrough = 0;
  for (let step = 0; step < steps; step++) {
    const burst = 1 + (next() % 12);
    if (next() % 2 === 0) {
      for (let k = 0; k < burst; k++) {
        // Mostly small records, sometimes up to the largest allowed.
        const bytes = next() % 8 === 0 ? 1 + (next() % ring.recordBytesMax) : 1 + (next() % 64);
        const slot = slotBytes(bytes);
        const toEnd = cap - tailAt;
        const need = slot <= toEnd ? slot : toEnd + slot;
        const at = ring.reserve(bytes);
        if (at < 0) {
          assert.ok(cap - used < need, `refused ${bytes} bytes with ${cap - used} free (need ${need})`);
          break;
        }
        assert.ok(cap - used >= need, `accepted ${bytes} bytes with only ${cap - used} free`);
        assert.equal(at % 8, 0, 'record start is 8-aligned');
        assert.ok(at + bytes <= cap, 'record is contiguous inside data');
        if (need === slot) {
          assert.equal(at, tailAt + 8, 'record follows the previous one');
        } else {
          assert.equal(at, 8, 'record that does not fit before the end starts at offset 0');
          pads++;
        }
        const content = fillBytes(ring.data, at, bytes, next);
        ring.commit();
        queue.push({ content, spanBytes: need });
        used += need;
        tailAt = (tailAt + need) & (cap - 1);
        assert.equal(ring.usedBytes(), used);
      }
    } else {
      for (let k = 0; k < burst; k++) {
        const at = ring.read();
        if (queueFront === queue.length) {
          assert.equal(at, -1, 'empty ring reads -1');
          break;
        }
        const want = queue[queueFront++]!;
        assert.ok(at >= 0, 'a ring with records reads one');
        assert.equal(ring.readBytes, want.content.length);
        assert.ok(sameBytes(ring.data, at, want.content), `record contents differ at step ${step}`);
        ring.release();
        used -= want.spanBytes;
        bytesThrough += want.content.length;
        assert.equal(ring.usedBytes(), used);
      }
      if (queueFront > 4096) {
        queue.splice(0, queueFront);
        queueFront = 0;
      }
    }
  }
  // Drain: everything written comes out.
  while (queueFront < queue.length) {
    const at = ring.read();
    const want = queue[queueFront++]!;
    assert.ok(at >= 0 && sameBytes(ring.data, at, want.content));
    ring.release();
  }
  assert.equal(ring.read(), -1);
  assert.equal(ring.usedBytes(), 0);
  return { pads, bytesThrough };
}

test('allocate takes a power of two from 4096 and refuses anything else', () => {
  for (const cap of [4096, 8192, 1 << 20]) {
    const ring = new SpscRing(SpscRing.allocate(cap));
    assert.equal(ring.capacity, cap);
    assert.equal(ring.recordBytesMax, cap / 4);
    assert.equal(ring.data.byteLength, cap);
    assert.equal(ring.usedBytes(), 0);
  }
  for (const cap of [0, 2048, 4095, 4097, 6144, 4096.5, NaN, 2 ** 31]) {
    assert.throws(() => SpscRing.allocate(cap), RangeError, `capacity ${cap}`);
  }
});

test('a buffer that is not a ring is refused', () => {
  assert.throws(() => new SpscRing(new SharedArrayBuffer(RING_HEADER_BYTES + 4096)), RangeError);
  assert.throws(() => new SpscRing(new SharedArrayBuffer(64)), RangeError);
  const sab = SpscRing.allocate(4096);
  const truncated = new SharedArrayBuffer(sab.byteLength + 8);
  new Uint8Array(truncated).set(new Uint8Array(sab));
  assert.throws(() => new SpscRing(truncated), RangeError);
});

test('an empty ring reads -1, and again once its records are released', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  assert.equal(ring.read(), -1);
  assert.equal(ring.read(), -1);
  assert.ok(ring.write(new Uint8Array([1, 2, 3])));
  const at = ring.read();
  assert.equal(at, 8);
  assert.equal(ring.readBytes, 3);
  assert.deepEqual([...ring.data.subarray(at, at + 3)], [1, 2, 3]);
  ring.release();
  assert.equal(ring.read(), -1);
  assert.equal(ring.usedBytes(), 0);
});

test('records wrap around the end many times, padded, in order and intact', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  const { pads, bytesThrough } = runAgainstModel(ring, 0x5eed, 60_000);
  assert.ok(pads >= 200, `only ${pads} pads`);
  assert.ok(bytesThrough >= 200 * ring.capacity, `only ${bytesThrough} bytes through`);
});

test('positions that wrap past 2^32 keep working', () => {
  const sab = SpscRing.allocate(8192);
  const ctl = new Int32Array(sab, 0, RING_HEADER_BYTES >> 2);
  // 8-aligned, 2 KiB short of 2^32, and not at the start of data.
  const start = (2 ** 32 - 2048 - 8 * 37) | 0;
  Atomics.store(ctl, RingWord.tail, start);
  Atomics.store(ctl, RingWord.head, start);
  const ring = new SpscRing(sab);
  const { bytesThrough } = runAgainstModel(ring, 0xabc, 5_000);
  assert.ok(bytesThrough > 8192, 'the run crossed 2^32');
  assert.ok(Atomics.load(ctl, RingWord.tail) >= 0, 'tail went past 2^32 (back to small numbers)');
});

test('a full ring refuses a reservation until the consumer releases one', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  const record = new Uint8Array(100).fill(7);
  let n = 0;
  while (ring.write(record)) n++;
  assert.equal(n, Math.floor(4096 / slotBytes(100)));
  assert.equal(ring.usedBytes(), n * slotBytes(100));
  assert.equal(ring.reserve(100), -1);
  assert.equal(ring.reserve(100), -1, 'a refused reservation leaves nothing open');
  assert.equal(ring.write(record), false);
  // What is left before the end is still usable by a record that fits there.
  const tailRoom = 4096 - n * slotBytes(100);
  assert.equal(ring.reserve(tailRoom - 8), 4096 - tailRoom + 8);
  ring.commit();
  assert.equal(ring.usedBytes(), 4096);
  assert.equal(ring.reserve(1), -1);

  const at = ring.read();
  assert.equal(ring.readBytes, 100);
  assert.ok(sameBytes(ring.data, at, record));
  ring.release();
  assert.equal(ring.reserve(100), 8, 'room returns at the start once the first record is freed');
  ring.commit();
  assert.equal(ring.reserve(1), -1);
});

test('record sizes outside [1, recordBytesMax] throw RangeError', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  for (const bytes of [0, -1, 1025, 4096, 1.5, NaN]) {
    assert.throws(() => ring.reserve(bytes), RangeError, `reserve(${bytes})`);
  }
  assert.throws(() => ring.write(new Uint8Array(0)), RangeError);
  assert.throws(() => ring.write(new Uint8Array(1025)), RangeError);
  assert.throws(() => ring.waitRoom(1025), RangeError);
  assert.equal(ring.usedBytes(), 0, 'nothing was reserved');
  assert.ok(ring.write(new Uint8Array(1024)));
  assert.ok(ring.write(new Uint8Array(1)));
});

test('misuse of reserve, commit and release is an assertion', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  assert.throws(() => ring.commit(), AssertionError);
  assert.throws(() => ring.release(), AssertionError);
  ring.reserve(10);
  assert.throws(() => ring.reserve(10), AssertionError);
  assert.throws(() => ring.waitRoom(10), AssertionError);
  ring.commit();
  ring.read();
  ring.release();
  assert.throws(() => ring.release(), AssertionError);
});

test('read without release returns the same record, also right after a pad', () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  // Fill to 3 × 1032 = 3096; free the first two; a 1024-byte record then needs a pad.
  for (let i = 0; i < 3; i++) assert.ok(ring.write(new Uint8Array(1024).fill(i + 1)));
  for (let i = 0; i < 2; i++) {
    const at = ring.read();
    assert.equal(ring.read(), at);
    ring.release();
  }
  assert.equal(ring.reserve(1024), 8, 'the fourth record goes to the start behind a pad');
  ring.data.fill(9, 8, 8 + 1024);
  ring.commit();

  const third = ring.read();
  assert.equal(third, 2 * 1032 + 8);
  assert.equal(ring.data[third], 3);
  ring.release();
  const fourth = ring.read();
  assert.equal(fourth, 8);
  assert.equal(ring.readBytes, 1024);
  assert.equal(ring.read(), fourth);
  assert.equal(ring.read(), fourth);
  assert.equal(ring.readBytes, 1024);
  assert.equal(ring.data[fourth], 9);
  assert.equal(ring.usedBytes(), 4096 - 3096 + 1032, 'pad + record still held until release');
  ring.release();
  assert.equal(ring.read(), -1);
  assert.equal(ring.usedBytes(), 0);
});

test('waitData resolves at once when a record is there, else after a commit and notify', async () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  ring.write(new Uint8Array([1]));
  assert.ok(await settlesWithin(ring.waitData(), 100), 'resolves when a record is there');
  ring.read();
  assert.ok(await settlesWithin(ring.waitData(), 100), 'a record read but not released still counts');
  ring.release();

  const wait = ring.waitData();
  assert.equal(ring.waitData(), wait, 'waits made together share one promise');
  assert.equal(await settlesWithin(wait, 30), false, 'an empty ring keeps it pending');
  ring.notify();
  assert.equal(await settlesWithin(wait, 30), false, 'notify with nothing committed does not resolve it');
  ring.write(new Uint8Array([2]));
  assert.equal(await settlesWithin(wait, 30), false, 'commit alone does not wake');
  ring.notify();
  assert.ok(await settlesWithin(wait, 2000), 'commit + notify wakes');
  assert.equal(ring.data[ring.read()], 2);
  ring.release();
});

test('waitRoom resolves at once when there is room, else after a release and notifyRoom', async () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  assert.ok(await settlesWithin(ring.waitRoom(1024), 100));
  const record = new Uint8Array(1024);
  while (ring.write(record));
  const wait = ring.waitRoom(1024);
  assert.equal(await settlesWithin(wait, 30), false, 'a full ring keeps it pending');
  ring.read();
  ring.release();
  assert.equal(await settlesWithin(wait, 30), false, 'release alone does not wake');
  ring.notifyRoom();
  assert.ok(await settlesWithin(wait, 2000), 'release + notifyRoom wakes');
  assert.notEqual(ring.reserve(1024), -1);
  ring.commit();
});

test('waitRoom wakes only when the room asked for is there', async () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  for (let i = 0; i < 64; i++) assert.ok(ring.write(new Uint8Array(56)));
  const wait = ring.waitRoom(1000);
  for (let i = 0; i < 8; i++) {
    ring.read();
    ring.release();
  }
  ring.notifyRoom();
  assert.equal(await settlesWithin(wait, 30), false, '512 bytes free is not room for 1000');
  for (let i = 0; i < 8; i++) {
    ring.read();
    ring.release();
  }
  ring.notifyRoom();
  assert.ok(await settlesWithin(wait, 2000), '1024 bytes free is');
});

test('close rejects pending and later waits with RING_CLOSED', async () => {
  const ring = new SpscRing(SpscRing.allocate(4096));
  const data = ring.waitData();
  while (ring.write(new Uint8Array(1024)));
  const room = ring.waitRoom(1024);
  ring.close();
  await assert.rejects(data, { code: 'RING_CLOSED' });
  await assert.rejects(room, { code: 'RING_CLOSED' });
  await assert.rejects(ring.waitData(), { code: 'RING_CLOSED' });
  assert.notEqual(ring.read(), -1, 'records still read after close');
});

// --- two threads

interface Run {
  worker: Worker;
  result: Promise<StreamResult>;
  error: Error | null;
}

function startChild(data: ChildData, ring: SpscRing): Run {
  const worker = new Worker(CHILD_URL, { workerData: data });
  const result = once(worker, 'message').then(([msg]) => msg as StreamResult);
  result.catch(() => {}); // awaited below unless this thread fails first
  const run: Run = { worker, result, error: null };
  // A worker that fails must not leave this thread asleep on the ring.
  worker.once('error', (err: Error) => {
    run.error = err;
    ring.close();
  });
  return run;
}

/** Runs `work`; after `ms` this thread's waits on the ring are closed, so it fails, not hangs. */
async function withDeadline<T>(ring: SpscRing, ms: number, what: string, work: () => Promise<T>): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ring.close();
  }, ms);
  try {
    return await work();
  } catch (err) {
    if (timedOut) throw new Error(`${what}: not done after ${ms} ms (a lost wake-up?)`, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function streamAcross(
  capacity: number,
  opts: StreamOptions,
  mainRole: 'produce' | 'consume',
  ms: number,
): Promise<{ main: StreamResult; child: StreamResult }> {
  const sab = SpscRing.allocate(capacity);
  const ring = new SpscRing(sab);
  const run = startChild({ role: mainRole === 'produce' ? 'consume' : 'produce', sab, ...opts }, ring);
  try {
    return await withDeadline(ring, ms, `${opts.count} records`, async () => {
      const main = mainRole === 'produce' ? await produceStream(ring, opts) : await consumeStream(ring, opts);
      const child = await run.result;
      return { main, child };
    });
  } catch (err) {
    if (run.error !== null) throw run.error;
    throw err;
  } finally {
    await run.worker.terminate();
  }
}

test('3,000,000 records of 1..200 bytes from a worker arrive intact (hashes match)', { timeout: 20_000 }, async (t) => {
  const opts: StreamOptions = { count: 3_000_000, seed: 20240601, recordBytesMax: 200, notifyEvery: 64 };
  const started = Date.now();
  const { main, child } = await streamAcross(64 * 1024, opts, 'consume', 15_000);
  assert.equal(main.records, opts.count);
  assert.equal(main.bytes, child.bytes);
  assert.equal(main.hash, child.hash, 'consumer hash equals producer hash');
  assert.ok(main.bytes > 250_000_000, 'lengths cover 1..200');
  const ms = Date.now() - started;
  t.diagnostic(`3M records, ${(main.bytes / 1e6).toFixed(0)} MB in ${ms} ms; consumer waits ${main.waits}, producer waits ${child.waits}`);
});

test('a 4096-byte ring full and empty all the time loses no wake-up (worker produces)', { timeout: 20_000 }, async (t) => {
  const opts: StreamOptions = { count: 200_000, seed: 77, recordBytesMax: 1024, notifyEvery: 16 };
  const { main, child } = await streamAcross(4096, opts, 'consume', 15_000);
  assert.equal(main.hash, child.hash);
  assert.ok(main.waits > 100, `consumer slept ${main.waits} times`);
  assert.ok(child.waits > 100, `producer slept ${child.waits} times`);
  t.diagnostic(`consumer waits ${main.waits}, producer waits ${child.waits}`);
});

test('a 4096-byte ring full and empty all the time loses no wake-up (main produces)', { timeout: 20_000 }, async (t) => {
  const opts: StreamOptions = { count: 300_000, seed: 78, recordBytesMax: 300, notifyEvery: 1 };
  const { main, child } = await streamAcross(4096, opts, 'produce', 15_000);
  assert.equal(main.hash, child.hash);
  assert.ok(main.waits > 10, `producer slept ${main.waits} times`);
  assert.ok(child.waits > 10, `consumer slept ${child.waits} times`);
  t.diagnostic(`producer waits ${main.waits}, consumer waits ${child.waits}`);
});

test('a worker whose only pending work is waitData stays alive until a record comes', { timeout: 20_000 }, async () => {
  const sab = SpscRing.allocate(4096);
  const ring = new SpscRing(sab);
  const worker = new Worker(CHILD_URL, { workerData: { role: 'consume-one', sab } satisfies ChildData });
  try {
    let exited = false;
    worker.once('exit', () => (exited = true));
    const message = once(worker, 'message');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(exited, false, 'the worker did not exit while waiting');
    assert.ok(ring.write(new Uint8Array([4, 5, 6])));
    ring.notify();
    const [bytes] = (await message) as [Uint8Array];
    assert.deepEqual([...bytes], [4, 5, 6]);
    assert.equal(ring.usedBytes(), 0);
  } finally {
    await worker.terminate();
  }
});
