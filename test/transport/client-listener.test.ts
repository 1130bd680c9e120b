// The TCP client listener: frames cut from a byte stream whatever the chunking, malformed input
// answered with BAD_FRAME on that connection only, pause and resume, a client that never reads,
// and the bound on connections. Everything on 127.0.0.1 with ephemeral ports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { unpack } from 'msgpackr';
import type { ClientConnection, ClientHandler, ClientListener, ListenerOptions } from '../../src/transport/client-listener.js';
import { FrameReader } from '../../src/transport/client-framing.js';
import { listenTcp } from '../../src/transport/tcp-listener.js';
import { encodeFrame, FrameKind, FRAME_HEADER_BYTES, type ErrorBody } from '../../src/protocol/client-frame.js';
import { turns } from '../event-loop-turns.js';

const TIMEOUT_MS = 20_000;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

function body(bytes: number, fill: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (fill + i * 7) & 0xff;
  return b;
}

function frame(requestId: number, bodyBytes: number, kind = FrameKind.Command, group = 7): Buffer {
  return Buffer.from(encodeFrame(kind, 0, requestId, group, body(bodyBytes, requestId)));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `count()` has not changed for `quietMs` (the kernel's buffers are full). */
async function waitQuiet(what: string, count: () => number, quietMs = 300, timeoutMs = 10_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  let last = count();
  let since = Date.now();
  for (;;) {
    await sleep(20);
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what} to settle`);
  }
}

interface Logged { level: 'warn' | 'info'; obj: object; msg: string }

interface Server {
  listener: ClientListener;
  conns: ClientConnection[];
  closed: ClientConnection[];
  frames: Array<{ conn: number; bytes: Buffer }>;
  drains: number[];
  logged: Logged[];
}

let idSeq = 0;

function options(over: Partial<ListenerOptions> = {}, logged: Logged[] = []): ListenerOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    frameBytesMax: 64 * 1024,
    connectionsMax: 100,
    pendingBytesHigh: 256 * 1024,
    pendingBytesLow: 64 * 1024,
    pendingBytesMax: 4 * 1024 * 1024,
    nextId: () => ++idSeq,
    log: {
      warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
      info: (obj, msg) => logged.push({ level: 'info', obj, msg }),
    },
    ...over,
  };
}

/** A listener whose handler records everything and, by default, echoes each frame. */
async function start(over: Partial<ListenerOptions> = {}, onFrame?: ClientHandler['onFrame']): Promise<Server> {
  const s: Server = { listener: null as unknown as ClientListener, conns: [], closed: [], frames: [], drains: [], logged: [] };
  const handler: ClientHandler = {
    onOpen: (c) => s.conns.push(c),
    onClose: (c) => s.closed.push(c),
    onDrain: (c) => s.drains.push(c.id),
    onFrame: (c, buf, at, n) => {
      s.frames.push({ conn: c.id, bytes: Buffer.from(buf.subarray(at, at + n)) });
      if (onFrame !== undefined) onFrame(c, buf, at, n);
      else c.send(buf.subarray(at, at + n));
    },
  };
  s.listener = await listenTcp(options(over, s.logged), handler);
  return s;
}

/** A client that splits what it reads into frames by their length. */
class Client {
  readonly socket: net.Socket;
  readonly frames: Buffer[] = [];
  receivedBytes = 0;
  ended = false;
  closed = false;
  private buf = Buffer.alloc(0);

  private constructor(socket: net.Socket, read: boolean) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('end', () => { this.ended = true; });
    socket.on('close', () => { this.closed = true; });
    if (read) socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  static connect(port: number, read = true): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new Client(socket, read));
      });
    });
  }

  private onData(chunk: Buffer): void {
    this.receivedBytes += chunk.length;
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4) {
      const n = this.buf.readUInt32LE(0);
      if (n < FRAME_HEADER_BYTES || this.buf.length < n) break;
      this.frames.push(this.buf.subarray(0, n));
      this.buf = this.buf.subarray(n);
    }
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function errorOf(f: Buffer): { requestId: number; body: ErrorBody } {
  assert.equal(f[4], FrameKind.Error, 'an Error frame');
  return { requestId: f.readUInt32LE(8), body: unpack(f.subarray(FRAME_HEADER_BYTES)) as ErrorBody };
}

/** Expects the connection to get one BAD_FRAME for `requestId` and to be closed. */
async function expectBadFrame(c: Client, requestId: number): Promise<ErrorBody> {
  await waitFor('the connection to close', () => c.closed);
  const last = c.frames[c.frames.length - 1];
  assert.ok(last !== undefined, 'an Error frame before the close');
  const e = errorOf(last);
  assert.equal(e.body.code, 'BAD_FRAME');
  assert.equal(e.requestId, requestId);
  return e.body;
}

/** A run of frames of assorted sizes, header-only ones included. */
function stream(count: number, seed: number, bodyMax: number): { bytes: Buffer; frames: Buffer[] } {
  const r = rng(seed);
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) frames.push(frame(i + 1, i % 5 === 0 ? 0 : Math.floor(r() * bodyMax)));
  return { bytes: Buffer.concat(frames), frames };
}

test('reader: pipelined frames split at every byte boundary arrive whole', () => {
  const { bytes, frames } = stream(12, 1, 90);
  const read = (chunks: Buffer[]): Buffer[] => {
    const got: Buffer[] = [];
    const reader = new FrameReader(1024, {
      readerPaused: false,
      frame: (buf, at, n) => got.push(Buffer.from(buf.subarray(at, at + n))),
      bad: (problem) => assert.fail(problem),
    });
    for (const c of chunks) assert.equal(reader.consume(c, 0), c.length);
    assert.equal(reader.partialBytes, 0);
    return got;
  };
  for (let k = 0; k <= bytes.length; k++) {
    assert.deepEqual(read([bytes.subarray(0, k), bytes.subarray(k)]), frames, `split at ${k}`);
  }
  for (let k = 1; k + 1 < bytes.length; k += 3) {
    assert.deepEqual(read([bytes.subarray(0, k), bytes.subarray(k, k + 1), bytes.subarray(k + 1)]), frames, `split at ${k} and ${k + 1}`);
  }
  const single: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  assert.deepEqual(read(single), frames, 'one byte per chunk');
});

test('reader: a frame inside one chunk is handed over in place, a spanning one assembled', () => {
  const a = frame(1, 40);
  const b = frame(2, 3000);
  const chunk = Buffer.concat([a, b.subarray(0, 100)]);
  const seen: Array<{ same: boolean; bytes: Buffer }> = [];
  const reader = new FrameReader(4096, {
    readerPaused: false,
    frame: (buf, at, n) => seen.push({ same: buf === chunk, bytes: Buffer.from(buf.subarray(at, at + n)) }),
    bad: (problem) => assert.fail(problem),
  });
  reader.consume(chunk, 0);
  assert.equal(reader.partialBytes, 100);
  reader.consume(b.subarray(100), 0);
  assert.deepEqual(seen.map((s) => s.same), [true, false]);
  assert.deepEqual(seen.map((s) => s.bytes), [a, b]);
});

test('reader: stops where the sink pauses and goes on from there', () => {
  const { bytes, frames } = stream(6, 2, 50);
  let paused = false;
  const got: Buffer[] = [];
  const reader = new FrameReader(1024, {
    get readerPaused() { return paused; },
    frame: (buf, at, n) => {
      got.push(Buffer.from(buf.subarray(at, at + n)));
      paused = true;
    },
    bad: (problem) => assert.fail(problem),
  });
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    at = reader.consume(bytes, at);
    assert.equal(got.length, i + 1);
    paused = false;
  }
  assert.equal(at, bytes.length);
  assert.deepEqual(got, frames);
});

test('TCP: pipelined frames written one byte at a time come back whole and in order', { timeout: TIMEOUT_MS }, async () => {
  const s = await start();
  try {
    const c = await Client.connect(s.listener.port);
    const { bytes, frames } = stream(10, 3, 60);
    for (let i = 0; i < bytes.length; i++) {
      c.write(bytes.subarray(i, i + 1));
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor('all echoes', () => c.frames.length === frames.length);
    assert.deepEqual(c.frames, frames);
    assert.equal(s.conns[0]!.transport, 'tcp');
    assert.match(s.conns[0]!.remote, /^127\.0\.0\.1:\d+$/);
    c.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: many frames in one write, large frames across chunks, echoed in order', { timeout: TIMEOUT_MS }, async () => {
  const s = await start();
  try {
    const c = await Client.connect(s.listener.port);
    const small = stream(2000, 4, 100);
    const large = [frame(90001, 64 * 1024 - FRAME_HEADER_BYTES), frame(90002, 50_000)];
    const all = [...small.frames, ...large];
    c.write(Buffer.concat(all));
    await waitFor('all echoes', () => c.frames.length === all.length);
    assert.deepEqual(c.frames, all);
    c.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: an oversized frame gets BAD_FRAME and a close, another connection keeps working', { timeout: TIMEOUT_MS }, async () => {
  const s = await start({ frameBytesMax: 1024 });
  try {
    const bad = await Client.connect(s.listener.port);
    const good = await Client.connect(s.listener.port);
    bad.write(frame(1, 10));
    bad.write(frame(2, 1024)); // 1040 bytes > 1024
    const e = await expectBadFrame(bad, 2);
    assert.match(e.message, /exceeds the limit of 1024/);
    assert.equal(bad.frames.length, 2, 'the echo of the good frame, then the error');
    good.write(frame(3, 100));
    await waitFor('the echo on the other connection', () => good.frames.length === 1);
    assert.deepEqual(good.frames[0], frame(3, 100));
    await waitFor('the server to see the close', () => s.closed.length === 1);
    assert.equal(s.listener.connections(), 1);
    assert.ok(s.logged.some((l) => l.msg.includes('malformed')));
    good.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: random garbage is answered with BAD_FRAME and a close', { timeout: TIMEOUT_MS }, async () => {
  const s = await start();
  try {
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      const garbage = Buffer.alloc(16 + Math.floor(r() * 200));
      for (let i = 0; i < garbage.length; i++) garbage[i] = Math.floor(r() * 256);
      garbage[4] = 0x10 + Math.floor(r() * 0x60); // never a request kind: every seed must fail
      const c = await Client.connect(s.listener.port);
      c.write(garbage);
      await expectBadFrame(c, garbage.readUInt32LE(8));
    }
    assert.equal(s.frames.length, 0);
  } finally {
    await s.listener.close();
  }
});

test('TCP: unknown and response kinds, unknown flags and reserved bits are BAD_FRAME', { timeout: TIMEOUT_MS }, async () => {
  const s = await start();
  try {
    const cases: Array<{ name: string; edit: (f: Buffer) => void; message: RegExp }> = [
      { name: 'unknown kind', edit: (f) => { f[4] = 0x7f; }, message: /unknown frame kind 0x7f/ },
      { name: 'a response kind', edit: (f) => { f[4] = FrameKind.Result; }, message: /unknown frame kind 0x81/ },
      { name: 'unknown flag bit', edit: (f) => { f[5] = 0x04; }, message: /unknown flags/ },
      { name: 'reserved bytes', edit: (f) => { f[7] = 1; }, message: /reserved/ },
      { name: 'shorter than a header', edit: (f) => { f.writeUInt32LE(15, 0); }, message: /shorter than its header/ },
    ];
    for (const k of cases) {
      const c = await Client.connect(s.listener.port);
      const f = frame(4242, 20);
      k.edit(f);
      c.write(frame(1, 0));
      c.write(f);
      const e = await expectBadFrame(c, 4242);
      assert.match(e.message, k.message, k.name);
      assert.equal(c.frames.length, 2, `${k.name}: the echo, then the error`);
    }
  } finally {
    await s.listener.close();
  }
});

test('TCP: a bad header is caught before its 16 bytes are all there', { timeout: TIMEOUT_MS }, async () => {
  const s = await start({ frameBytesMax: 1024 });
  try {
    const short = await Client.connect(s.listener.port);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(1_000_000, 0);
    short.write(len); // then nothing: the length alone is enough
    await expectBadFrame(short, 0);

    const twelve = await Client.connect(s.listener.port);
    const f = frame(777, 0).subarray(0, 12);
    f[4] = 0x55;
    twelve.write(f);
    await expectBadFrame(twelve, 777);
  } finally {
    await s.listener.close();
  }
});

test('TCP: pause() stops delivery, resume() restarts it in order', { timeout: TIMEOUT_MS }, async () => {
  let pauseNext = true;
  const s = await start({}, (c, buf, at, n) => {
    c.send(buf.subarray(at, at + n));
    if (pauseNext) {
      pauseNext = false;
      c.pause();
      c.pause(); // idempotent
    }
  });
  try {
    const c = await Client.connect(s.listener.port);
    const { bytes, frames } = stream(50, 5, 40);
    c.write(bytes);
    await waitFor('the first frame', () => s.frames.length === 1);
    await turns(4);
    assert.equal(s.frames.length, 1, 'nothing more while paused');
    c.write(frame(99, 5)); // arrives while paused, delivered after the rest
    await turns(4);
    assert.equal(s.frames.length, 1);
    s.conns[0]!.resume();
    s.conns[0]!.resume();
    await waitFor('every frame', () => c.frames.length === frames.length + 1);
    assert.deepEqual(c.frames, [...frames, frame(99, 5)]);
    c.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: a client that does not read is paused, drains when it reads again', { timeout: TIMEOUT_MS }, async () => {
  const response = Buffer.concat(Array.from({ length: 8 }, (_, i) => frame(i, 4096 - FRAME_HEADER_BYTES)));
  const s = await start({}, (c) => c.send(response)); // 32 KiB per request
  try {
    const slow = await Client.connect(s.listener.port, false);
    slow.socket.pause();
    const { bytes, frames } = stream(2000, 6, 0);
    slow.write(bytes);
    const conn = await (async () => {
      await waitFor('the connection', () => s.conns.length === 1);
      return s.conns[0]!;
    })();
    // Loopback buffers take megabytes before the socket holds anything back.
    const seen = await waitQuiet('delivery', () => s.frames.length);
    assert.ok(conn.pendingBytes > 256 * 1024, `paused above high (pendingBytes ${conn.pendingBytes})`);
    assert.ok(seen < frames.length);
    const drainsBefore = s.drains.length; // the kernel took megabytes first: drains came and went
    // Reading again: the output drains, onDrain fires, the rest of the requests come.
    let got = 0;
    slow.socket.on('data', (chunk: Buffer) => { got += chunk.length; });
    slow.socket.resume();
    await waitFor('every request', () => s.frames.length === frames.length, 15_000);
    await waitFor('every response', () => got === frames.length * response.length, 15_000);
    assert.ok(s.drains.length > drainsBefore && s.drains.every((id) => id === conn.id));
    slow.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: a client that never reads is paused, then destroyed past pendingBytesMax; others are served', { timeout: TIMEOUT_MS }, async () => {
  const response = Buffer.alloc(32 * 1024);
  response.set(frame(0, 32 * 1024 - FRAME_HEADER_BYTES));
  const s = await start({}, (c, buf, at, n) => {
    if (c.id === s.conns[0]!.id) c.send(response);
    else c.send(buf.subarray(at, at + n));
  });
  try {
    const slow = await Client.connect(s.listener.port, false);
    slow.socket.pause();
    slow.write(stream(3000, 7, 0).bytes);
    await waitFor('the connection', () => s.conns.length === 1);
    const conn = s.conns[0]!;
    await waitQuiet('delivery', () => s.frames.length);
    assert.ok(conn.pendingBytes > 256 * 1024, `paused above high (pendingBytes ${conn.pendingBytes})`);
    const seen = s.frames.length;

    const other = await Client.connect(s.listener.port);
    other.write(frame(5, 10));
    await waitFor('the other client served', () => other.frames.length === 1);

    // Replies to requests already in flight keep coming: past pendingBytesMax it is destroyed.
    for (let i = 0; i < 200 && !s.closed.includes(conn); i++) conn.send(response);
    await waitFor('the slow connection closed', () => s.closed.includes(conn));
    assert.ok(s.logged.some((l) => l.level === 'warn' && l.msg.includes('does not read')));
    assert.equal(s.frames.filter((f) => f.conn === conn.id).length, seen, 'no request delivered after the pause');
    const before = conn.pendingBytes;
    conn.send(response); // ignored once closed
    assert.equal(conn.pendingBytes, before);

    other.write(frame(6, 10));
    await waitFor('the other client still served', () => other.frames.length === 2);
    slow.socket.resume(); // reading, it sees the reset
    await waitFor('the slow client sees the close', () => slow.closed);
    other.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: beyond connectionsMax a connection gets OVERLOADED and is closed', { timeout: TIMEOUT_MS }, async () => {
  const s = await start({ connectionsMax: 2 });
  try {
    const a = await Client.connect(s.listener.port);
    const b = await Client.connect(s.listener.port);
    await waitFor('two connections', () => s.listener.connections() === 2);
    const c = await Client.connect(s.listener.port);
    await waitFor('the third closed', () => c.closed);
    assert.equal(c.frames.length, 1);
    assert.equal(errorOf(c.frames[0]!).body.code, 'OVERLOADED');
    assert.equal(s.conns.length, 2, 'no onOpen for the refused one');
    a.destroy();
    await waitFor('one closed', () => s.listener.connections() === 1);
    const d = await Client.connect(s.listener.port);
    d.write(frame(1, 1));
    await waitFor('the new one served', () => d.frames.length === 1);
    b.destroy();
    d.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: closeWithError writes what was queued, then the error, then closes', { timeout: TIMEOUT_MS }, async () => {
  const s = await start({}, (c, buf, at, n) => {
    c.send(buf.subarray(at, at + n));
    if (Buffer.from(buf.buffer, buf.byteOffset + at, n).readUInt32LE(8) === 3) c.closeWithError('OVERLOADED', 'enough', 3);
  });
  try {
    const c = await Client.connect(s.listener.port);
    c.write(Buffer.concat([frame(1, 5), frame(2, 5), frame(3, 5), frame(4, 5)]));
    await waitFor('the close', () => c.closed);
    assert.deepEqual(c.frames.slice(0, 3), [frame(1, 5), frame(2, 5), frame(3, 5)]);
    const e = errorOf(c.frames[3]!);
    assert.deepEqual([e.requestId, e.body.code, e.body.message], [3, 'OVERLOADED', 'enough']);
    assert.equal(c.frames.length, 4, 'frame 4 was not delivered');
    assert.equal(s.frames.length, 3);
  } finally {
    await s.listener.close();
  }
});

test('TCP: sends of one turn are written together and the caller may reuse its buffer', { timeout: TIMEOUT_MS }, async () => {
  const s = await start({}, (c, buf, at, n) => {
    const scratch = Buffer.from(buf.subarray(at, at + n));
    for (let i = 0; i < 100; i++) {
      scratch.writeUInt32LE(i, 8);
      c.send(scratch);
    }
    scratch.fill(0);
  });
  try {
    const c = await Client.connect(s.listener.port);
    const chunks: number[] = [];
    c.socket.on('data', (chunk: Buffer) => chunks.push(chunk.length));
    c.write(frame(0, 4));
    await waitFor('100 responses', () => c.frames.length === 100);
    c.frames.forEach((f, i) => assert.equal(f.readUInt32LE(8), i));
    assert.ok(chunks.length <= 2, `one write expected, read in ${chunks.length} chunks`);
    c.destroy();
  } finally {
    await s.listener.close();
  }
});

test('TCP: close() stops listening and closes every connection', { timeout: TIMEOUT_MS }, async () => {
  const s = await start();
  const a = await Client.connect(s.listener.port);
  const b = await Client.connect(s.listener.port);
  await waitFor('two connections', () => s.listener.connections() === 2);
  await s.listener.close();
  assert.equal(s.closed.length, 2);
  assert.equal(s.listener.connections(), 0);
  await waitFor('clients closed', () => a.closed && b.closed);
  await assert.rejects(Client.connect(s.listener.port));
});

test('TCP: options that cannot work are refused', async () => {
  const h: ClientHandler = { onOpen() {}, onFrame() {}, onDrain() {}, onClose() {} };
  assert.throws(() => listenTcp(options({ pendingBytesLow: 10, pendingBytesHigh: 5 }), h), RangeError);
  assert.throws(() => listenTcp(options({ frameBytesMax: 8 }), h), RangeError);
  assert.throws(() => listenTcp(options({ connectionsMax: 0 }), h), RangeError);
});
