// Throughput and latency of the SPSC ring between a worker thread and the main thread.
//
//   npx tsc -p . && node dist/bench/ring.js [--seconds S] [--ring-bytes N]
//
// in place:   the worker produces 64-byte records (8-byte record header + u32 sequence number
//             written in place, the rest left as it was), the main thread reads the header and
//             sequence in place and releases. Announces (notify, notifyRoom) once per 64.
// copied out: the same, but the main thread copies each record out (`data.slice`) first.
// round trip: one 64-byte record at a time main → worker on one ring and back on another,
//             each side sleeping in waitData between records; p50/p99 of the round trip.
// S is the total time, split 40 / 30 / 30 between the three; MB/s counts record bytes (10^6).
import { performance } from 'node:perf_hooks';
import { parseOrExit, type CommandSpec } from '../src/cli/args.js';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { once } from 'node:events';
import { SpscRing } from '../src/ring/spsc-ring.js';

const RECORD_BYTES = 64;
const ANNOUNCE_EVERY = 64;
const KIND_DATA = 1;
const KIND_END = 0xff;
/** Samples kept for the round-trip percentiles (the phase stops taking more after this). */
const SAMPLES_MAX = 1 << 21;
const CLOCK_CHECK_EVERY = 4096;

type WorkerJob =
  | { mode: 'produce'; sab: SharedArrayBuffer; stop: SharedArrayBuffer }
  | { mode: 'echo'; ping: SharedArrayBuffer; pong: SharedArrayBuffer };

function writeU32(data: Uint8Array, at: number, v: number): void {
  data[at] = v;
  data[at + 1] = v >>> 8;
  data[at + 2] = v >>> 16;
  data[at + 3] = v >>> 24;
}

function readU32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

// --- worker side

async function produce(ring: SpscRing, stop: Int32Array): Promise<void> {
  let seq = 0;
  while (Atomics.load(stop, 0) === 0) {
    for (let k = 0; k < ANNOUNCE_EVERY; k++) {
      let at = ring.reserve(RECORD_BYTES);
      while (at < 0) {
        ring.notify();
        await ring.waitRoom(RECORD_BYTES);
        at = ring.reserve(RECORD_BYTES);
      }
      ring.data[at] = KIND_DATA;
      writeU32(ring.data, at + 8, seq++);
      ring.commit();
    }
    ring.notify();
  }
  let at = ring.reserve(RECORD_BYTES);
  while (at < 0) {
    await ring.waitRoom(RECORD_BYTES);
    at = ring.reserve(RECORD_BYTES);
  }
  ring.data[at] = KIND_END;
  ring.commit();
  ring.notify();
}

async function echo(ping: SpscRing, pong: SpscRing): Promise<void> {
  for (;;) {
    let at = ping.read();
    while (at < 0) {
      await ping.waitData();
      at = ping.read();
    }
    const bytes = ping.readBytes;
    let out = pong.reserve(bytes);
    while (out < 0) {
      await pong.waitRoom(bytes);
      out = pong.reserve(bytes);
    }
    for (let i = 0; i < bytes; i++) pong.data[out + i] = ping.data[at + i]!;
    pong.commit();
    pong.notify();
    const kind = ping.data[at];
    ping.release();
    ping.notifyRoom();
    if (kind === KIND_END) return;
  }
}

// --- main side

interface Throughput {
  msgsPerSec: number;
  mbPerSec: number;
  outOfOrder: number;
}

async function throughput(ringBytes: number, ms: number, copyOut: boolean): Promise<Throughput> {
  const sab = SpscRing.allocate(ringBytes);
  const stopSab = new SharedArrayBuffer(4);
  const stop = new Int32Array(stopSab);
  const ring = new SpscRing(sab);
  const job: WorkerJob = { mode: 'produce', sab, stop: stopSab };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const exited = once(worker, 'exit');
  worker.once('error', () => ring.close());

  let expected = 0;
  let outOfOrder = 0;
  let counted = 0;
  let started = 0;
  let elapsedMs = 0;
  let sinceAnnounce = 0;
  let sinceClock = 0;
  for (;;) {
    let at = ring.read();
    if (at < 0) {
      ring.notifyRoom();
      await ring.waitData();
      at = ring.read();
      if (at < 0) continue;
    }
    let kind: number;
    let seq: number;
    if (copyOut) {
      const copy = ring.data.slice(at, at + ring.readBytes);
      kind = copy[0]!;
      seq = readU32(copy, 8);
    } else {
      kind = ring.data[at]!;
      seq = readU32(ring.data, at + 8);
    }
    ring.release();
    if (kind === KIND_END) break;
    if (seq !== expected) outOfOrder++;
    expected = seq + 1;
    if (started === 0) started = performance.now();
    else if (elapsedMs === 0) counted++;
    if (++sinceAnnounce === ANNOUNCE_EVERY) {
      ring.notifyRoom();
      sinceAnnounce = 0;
    }
    if (elapsedMs === 0 && ++sinceClock === CLOCK_CHECK_EVERY) {
      sinceClock = 0;
      const now = performance.now() - started;
      if (now >= ms) {
        elapsedMs = now;
        Atomics.store(stop, 0, 1);
      }
    }
  }
  await exited;
  ring.close();
  const msgsPerSec = (counted / elapsedMs) * 1000;
  return { msgsPerSec, mbPerSec: (msgsPerSec * RECORD_BYTES) / 1e6, outOfOrder };
}

interface Latency {
  samples: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

async function roundTrip(ringBytes: number, ms: number): Promise<Latency> {
  const pingSab = SpscRing.allocate(ringBytes);
  const pongSab = SpscRing.allocate(ringBytes);
  const ping = new SpscRing(pingSab);
  const pong = new SpscRing(pongSab);
  const job: WorkerJob = { mode: 'echo', ping: pingSab, pong: pongSab };
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  const exited = once(worker, 'exit');
  worker.once('error', () => {
    ping.close();
    pong.close();
  });
  const samples = new Float64Array(SAMPLES_MAX);
  let n = 0;
  let warm = 0;
  const warmupMs = Math.min(200, ms / 10);
  const began = performance.now();
  let kind = KIND_DATA;
  for (let seq = 0; ; seq++) {
    const now = performance.now();
    if (now - began >= ms + warmupMs || n === SAMPLES_MAX) kind = KIND_END;
    const t0 = now;
    const at = ping.reserve(RECORD_BYTES);
    if (at < 0) throw new Error('ping ring full with one record in flight');
    ping.data[at] = kind;
    writeU32(ping.data, at + 8, seq);
    ping.commit();
    ping.notify();
    let back = pong.read();
    while (back < 0) {
      await pong.waitData();
      back = pong.read();
    }
    const t1 = performance.now();
    if (readU32(pong.data, back + 8) !== seq) throw new Error(`round trip ${seq} came back as another`);
    pong.release();
    pong.notifyRoom();
    if (kind === KIND_END) break;
    if (t0 - began < warmupMs) warm++;
    else samples[n++] = t1 - t0;
  }
  await exited;
  ping.close();
  pong.close();
  const sorted = samples.subarray(0, n).sort();
  const at = (q: number): number => sorted[Math.min(n - 1, Math.floor(q * n))]! * 1000;
  return { samples: n, p50Us: at(0.5), p99Us: at(0.99), maxUs: at(1) };
}

async function main(): Promise<void> {
  const { options: values } = parseOrExit({
    name: 'node dist/bench/ring.js',
    summary: 'The SPSC ring between threads: throughput read in place and copied out, and round-trip latency.',
    options: {
      seconds: { type: 'string', value: 'S', help: 'seconds in all (default 3)' },
      'ring-bytes': { type: 'string', value: 'B', help: 'bytes of the ring (default 262144)' },
    },
  } as const satisfies CommandSpec, process.argv.slice(2));
  const seconds = Number(values.seconds ?? '3');
  if (!(seconds > 0)) throw new Error('--seconds must be a positive number');
  const ringBytes = Number(values['ring-bytes'] ?? String(256 * 1024));
  const msTotal = seconds * 1000;

  const inPlace = await throughput(ringBytes, msTotal * 0.4, false);
  const copied = await throughput(ringBytes, msTotal * 0.3, true);
  const latency = await roundTrip(ringBytes, msTotal * 0.3);

  const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');
  console.log(`SPSC ring, worker → main, ${RECORD_BYTES}-byte records, ring ${ringBytes} B, ${seconds} s total (node ${process.version})`);
  console.log('');
  console.log('| phase      |     msgs/s |   MB/s |');
  console.log('|------------|-----------:|-------:|');
  console.log(`| in place   | ${fmt(inPlace.msgsPerSec).padStart(10)} | ${fmt(inPlace.mbPerSec).padStart(6)} |`);
  console.log(`| copied out | ${fmt(copied.msgsPerSec).padStart(10)} | ${fmt(copied.mbPerSec).padStart(6)} |`);
  console.log('');
  console.log('| round trip (two rings, waitData both sides) |  p50 µs |  p99 µs |  max µs | samples |');
  console.log('|---------------------------------------------|--------:|--------:|--------:|--------:|');
  console.log(
    `| one 64-byte record in flight                 | ${latency.p50Us.toFixed(1).padStart(7)} | ${latency.p99Us.toFixed(1).padStart(7)} | ${latency.maxUs.toFixed(0).padStart(7)} | ${String(latency.samples).padStart(7)} |`,
  );
  if (inPlace.outOfOrder + copied.outOfOrder !== 0) {
    throw new Error(`records out of order: ${inPlace.outOfOrder + copied.outOfOrder}`);
  }
}

if (isMainThread) {
  await main();
} else {
  const job = workerData as WorkerJob;
  if (job.mode === 'produce') await produce(new SpscRing(job.sab), new Int32Array(job.stop));
  else await echo(new SpscRing(job.ping), new SpscRing(job.pong));
}
