// The WebSocket client listeners, both engines through the same scenarios: the pure-JS `ws`
// server always, uWebSockets.js when it loads here (skipped with the reason otherwise). One
// binary message per frame; malformed messages answered with BAD_FRAME on that connection only;
// pause and resume; a client that never reads; the bound on connections; the selector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import type { ClientConnection, ClientHandler, ClientListener, ListenerOptions } from '../../src/transport/client-listener.js';
import { chooseWebSocketEngine, listenWebSocket, WebSocketEngineError } from '../../src/transport/websocket-listener.js';
import { uwsProblem } from '../../src/transport/uws-listener.js';
import { encodeFrame, FrameKind, FRAME_HEADER_BYTES, type ErrorBody } from '../../src/protocol/client-frame.js';
import { turns } from '../event-loop-turns.js';

const TIMEOUT_MS = 20_000;

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

function options(over: Partial<ListenerOptions>, logged: Logged[]): ListenerOptions {
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

async function start(engine: 'uws' | 'ws', over: Partial<ListenerOptions> = {}, onFrame?: ClientHandler['onFrame']): Promise<Server> {
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
  s.listener = await listenWebSocket({ ...options(over, s.logged), engine }, handler);
  assert.equal(s.listener.engine, engine);
  return s;
}

class Client {
  readonly frames: Buffer[] = [];
  closed = false;
  closeCode = 0;

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      assert.ok(isBinary, 'responses are binary messages');
      this.frames.push(Buffer.from(data));
    });
    ws.on('error', () => undefined);
    ws.on('close', (code: number) => {
      this.closed = true;
      this.closeCode = code;
    });
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new Client(ws));
      });
    });
  }

  send(bytes: Uint8Array, binary = true): void {
    this.ws.send(bytes, { binary });
  }

  destroy(): void {
    this.ws.terminate();
  }
}

function errorOf(f: Buffer): { requestId: number; body: ErrorBody } {
  assert.equal(f[4], FrameKind.Error, 'an Error frame');
  return { requestId: f.readUInt32LE(8), body: unpack(f.subarray(FRAME_HEADER_BYTES)) as ErrorBody };
}

async function expectBadFrame(c: Client, requestId: number): Promise<ErrorBody> {
  await waitFor('the connection to close', () => c.closed);
  const last = c.frames[c.frames.length - 1];
  assert.ok(last !== undefined, 'an Error frame before the close');
  const e = errorOf(last);
  assert.equal(e.body.code, 'BAD_FRAME');
  assert.equal(e.requestId, requestId);
  assert.equal(c.closeCode, 1008);
  return e.body;
}

const uwsSkip = ((): string | false => {
  const problem = uwsProblem();
  return problem === null ? false : `uWebSockets.js does not load here: ${problem}`;
})();

for (const engine of ['ws', 'uws'] as const) {
  const skip = engine === 'uws' ? uwsSkip : false;
  const name = (what: string): string => `${engine}: ${what}`;

  test(name('frames echoed one message each, in order; a send of several frames is several messages'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine, {}, (c, buf, at, n) => {
      const f = Buffer.from(buf.subarray(at, at + n));
      c.send(f);
      if (f.readUInt32LE(8) === 0) c.send(Buffer.concat([frame(1000, 0), frame(1001, 30), frame(1002, 5000)]));
    });
    try {
      const c = await Client.connect(s.listener.port);
      const sent: Buffer[] = [];
      for (let i = 1; i <= 300; i++) sent.push(frame(i, (i * 37) % 3000));
      sent.push(frame(301, 64 * 1024 - FRAME_HEADER_BYTES));
      for (const f of sent) c.send(f);
      await waitFor('the echoes', () => c.frames.length === sent.length);
      assert.deepEqual(c.frames, sent);
      c.send(frame(0, 3));
      await waitFor('four more', () => c.frames.length === sent.length + 4);
      assert.deepEqual(c.frames.slice(sent.length), [frame(0, 3), frame(1000, 0), frame(1001, 30), frame(1002, 5000)]);
      assert.equal(s.conns[0]!.transport, 'ws');
      assert.match(s.conns[0]!.remote, /127\.0\.0\.1/);
      assert.throws(() => s.conns[0]!.send(frame(1, 10).subarray(0, 20)), /not whole frames/);
      c.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('a text message, a message longer or shorter than its frame, a bad header: BAD_FRAME and a close'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine);
    try {
      const cases: Array<{ what: string; bytes: Uint8Array; binary: boolean; requestId: number; message: RegExp }> = [
        { what: 'text', bytes: frame(5, 4), binary: false, requestId: 0, message: /text message/ },
        { what: 'trailing byte', bytes: Buffer.concat([frame(6, 4), Buffer.from([1])]), binary: true, requestId: 6, message: /carries a frame of 20 bytes/ },
        { what: 'truncated', bytes: frame(7, 40).subarray(0, 30), binary: true, requestId: 7, message: /carries a frame of 56 bytes/ },
        { what: 'two frames in one message', bytes: Buffer.concat([frame(8, 0), frame(9, 0)]), binary: true, requestId: 8, message: /carries a frame/ },
        { what: 'shorter than 12 bytes', bytes: frame(10, 0).subarray(0, 10), binary: true, requestId: 0, message: /shorter than a frame header/ },
        { what: 'shorter than a header', bytes: frame(11, 0).subarray(0, 14), binary: true, requestId: 11, message: /shorter than a frame header/ },
        { what: 'unknown kind', bytes: frame(12, 3, 0x44 as FrameKind), binary: true, requestId: 12, message: /unknown frame kind/ },
        { what: 'response kind', bytes: frame(13, 3, FrameKind.Pong), binary: true, requestId: 13, message: /unknown frame kind/ },
        { what: 'reserved bits', bytes: (() => { const f = frame(14, 3); f[6] = 2; return f; })(), binary: true, requestId: 14, message: /reserved/ },
        { what: 'unknown flags', bytes: (() => { const f = frame(15, 3); f[5] = 0x80; return f; })(), binary: true, requestId: 15, message: /unknown flags/ },
      ];
      for (const k of cases) {
        const c = await Client.connect(s.listener.port);
        c.send(frame(1, 2));
        c.send(k.bytes, k.binary);
        const e = await expectBadFrame(c, k.requestId);
        assert.match(e.message, k.message, k.what);
        assert.deepEqual(c.frames[0], frame(1, 2), `${k.what}: the good frame was answered first`);
      }
      assert.equal(s.frames.length, cases.length);
      await waitFor('all closed on the server', () => s.listener.connections() === 0);
    } finally {
      await s.listener.close();
    }
  });

  test(name('a message above frameBytesMax closes that connection; another keeps working'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine, { frameBytesMax: 1024 });
    try {
      const big = await Client.connect(s.listener.port);
      const good = await Client.connect(s.listener.port);
      big.send(frame(1, 1024)); // 1040 bytes
      await waitFor('the big one closed', () => big.closed);
      assert.equal(big.frames.length, 0);
      good.send(frame(2, 1024 - FRAME_HEADER_BYTES));
      await waitFor('the echo', () => good.frames.length === 1);
      assert.deepEqual(good.frames[0], frame(2, 1024 - FRAME_HEADER_BYTES));
      assert.equal(s.frames.length, 1);
      good.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('pause() stops delivery, resume() restarts it in order'), { timeout: TIMEOUT_MS, skip }, async () => {
    let pauseNext = true;
    const s = await start(engine, {}, (c, buf, at, n) => {
      c.send(buf.subarray(at, at + n));
      if (pauseNext) {
        pauseNext = false;
        c.pause();
        c.pause();
      }
    });
    try {
      const c = await Client.connect(s.listener.port);
      const sent: Buffer[] = [];
      for (let i = 1; i <= 50; i++) sent.push(frame(i, i * 3));
      for (const f of sent) c.send(f);
      await waitFor('the first frame', () => s.frames.length === 1);
      await turns(5);
      assert.equal(s.frames.length, 1, 'nothing more while paused');
      s.conns[0]!.resume();
      s.conns[0]!.resume();
      await waitFor('every frame', () => c.frames.length === sent.length);
      assert.deepEqual(c.frames, sent);
      c.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('a client that never reads is paused, then destroyed past pendingBytesMax; others are served'), { timeout: TIMEOUT_MS, skip }, async () => {
    const response = frame(0, 32 * 1024 - FRAME_HEADER_BYTES);
    const s = await start(engine, {}, (c, buf, at, n) => {
      if (c.id === s.conns[0]!.id) c.send(response);
      else c.send(buf.subarray(at, at + n));
    });
    try {
      const slow = await Client.connect(s.listener.port);
      slow.ws.pause();
      for (let i = 0; i < 3000; i++) slow.send(frame(i, 0));
      await waitFor('the connection', () => s.conns.length === 1);
      const conn = s.conns[0]!;
      const seen = await waitQuiet('delivery', () => s.frames.length);
      assert.ok(seen < 3000, `paused before every request was delivered (${seen})`);
      // Paused when above high, until below low: the socket may have taken some since.
      assert.ok(conn.pendingBytes >= 64 * 1024, `still paused above low (pendingBytes ${conn.pendingBytes})`);

      const other = await Client.connect(s.listener.port);
      other.send(frame(5, 10));
      await waitFor('the other client served', () => other.frames.length === 1);

      for (let i = 0; i < 200 && !s.closed.includes(conn); i++) conn.send(response);
      await waitFor('the slow connection closed', () => s.closed.includes(conn));
      assert.ok(s.logged.some((l) => l.level === 'warn' && l.msg.includes('does not read')));
      assert.equal(s.frames.filter((f) => f.conn === conn.id).length, seen, 'no request delivered after the pause');

      other.send(frame(6, 10));
      await waitFor('the other client still served', () => other.frames.length === 2);
      slow.ws.resume();
      await waitFor('the slow client sees the close', () => slow.closed);
      other.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('a client that stops reading is paused and drains once it reads again'), { timeout: TIMEOUT_MS, skip }, async () => {
    const response = frame(0, 32 * 1024 - FRAME_HEADER_BYTES);
    const s = await start(engine, {}, (c) => c.send(response));
    try {
      const slow = await Client.connect(s.listener.port);
      slow.ws.pause();
      const requests = 400; // 12.5 MiB of responses
      for (let i = 0; i < requests; i++) slow.send(frame(i, 0));
      await waitFor('the connection', () => s.conns.length === 1);
      const seen = await waitQuiet('delivery', () => s.frames.length);
      assert.ok(seen < requests, `paused (${seen} of ${requests} delivered)`);
      const drainsBefore = s.drains.length;
      slow.ws.resume();
      await waitFor('every request', () => s.frames.length === requests, 15_000);
      await waitFor('every response', () => slow.frames.length === requests, 15_000);
      assert.ok(s.drains.length > drainsBefore);
      slow.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('beyond connectionsMax the upgrade is refused'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine, { connectionsMax: 2 });
    try {
      const a = await Client.connect(s.listener.port);
      const b = await Client.connect(s.listener.port);
      await waitFor('two connections', () => s.listener.connections() === 2);
      await assert.rejects(Client.connect(s.listener.port), /503/);
      assert.equal(s.conns.length, 2);
      a.destroy();
      await waitFor('one left', () => s.listener.connections() === 1);
      const d = await Client.connect(s.listener.port);
      d.send(frame(1, 1));
      await waitFor('the new one served', () => d.frames.length === 1);
      b.destroy();
      d.destroy();
    } finally {
      await s.listener.close();
    }
  });

  test(name('closeWithError writes what was queued, then the error, then closes'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine, {}, (c, buf, at, n) => {
      c.send(buf.subarray(at, at + n));
      if (Buffer.from(buf.buffer, buf.byteOffset + at, n).readUInt32LE(8) === 3) c.closeWithError('OVERLOADED', 'enough', 3);
    });
    try {
      const c = await Client.connect(s.listener.port);
      for (let i = 1; i <= 4; i++) c.send(frame(i, 5));
      await waitFor('the close', () => c.closed);
      assert.deepEqual(c.frames.slice(0, 3), [frame(1, 5), frame(2, 5), frame(3, 5)]);
      const e = errorOf(c.frames[3]!);
      assert.deepEqual([e.requestId, e.body.code, e.body.message], [3, 'OVERLOADED', 'enough']);
      assert.equal(c.frames.length, 4);
      assert.equal(c.closeCode, 1013);
      assert.equal(s.frames.length, 3);
    } finally {
      await s.listener.close();
    }
  });

  test(name('close() stops listening and closes every connection'), { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine);
    const a = await Client.connect(s.listener.port);
    const b = await Client.connect(s.listener.port);
    await waitFor('two connections', () => s.listener.connections() === 2);
    await s.listener.close();
    assert.equal(s.closed.length, 2);
    assert.equal(s.listener.connections(), 0);
    await waitFor('clients closed', () => a.closed && b.closed);
    await assert.rejects(Client.connect(s.listener.port));
  });
}

test('selector: engine "ws" is the pure-JS server; "auto" is uWebSockets.js when it loads; each logs its engine and why', { timeout: TIMEOUT_MS }, async () => {
  const h: ClientHandler = { onOpen() {}, onFrame() {}, onDrain() {}, onClose() {} };
  const wsLogged: Logged[] = [];
  const ws = await listenWebSocket({ ...options({}, wsLogged), engine: 'ws' }, h);
  assert.equal(ws.engine, 'ws');
  await ws.close();
  assert.deepEqual(wsLogged.map((x) => [x.level, x.obj]), [['info', { engine: 'ws', reason: 'websocket: ws' }]]);
  const autoLogged: Logged[] = [];
  const auto = await listenWebSocket(options({}, autoLogged), h);
  const expected = uwsSkip === false ? 'uws' : 'ws';
  assert.equal(auto.engine, expected);
  await auto.close();
  assert.equal(autoLogged.length, 1, JSON.stringify(autoLogged));
  const line = autoLogged[0]!;
  assert.equal(line.level, 'info');
  const obj = line.obj as { engine: string; reason: string };
  assert.equal(obj.engine, expected);
  assert.match(obj.reason, new RegExp(`^websocket: auto; uWebSockets.js ${expected === 'uws' ? 'loads' : 'cannot be used'} on Node ${process.version.replace(/\./g, '\\.')} `));
  assert.deepEqual(chooseWebSocketEngine('auto'), { engine: expected, reason: obj.reason });
});

test('selector: with FLOTILLA_NATIVE_FREE=1, "auto" serves with the pure-JS server and "uws" is refused with UWS_UNAVAILABLE', { timeout: TIMEOUT_MS }, async () => {
  const before = process.env['FLOTILLA_NATIVE_FREE'];
  process.env['FLOTILLA_NATIVE_FREE'] = '1';
  try {
    const h: ClientHandler = { onOpen() {}, onFrame() {}, onDrain() {}, onClose() {} };
    const logged: Logged[] = [];
    const l = await listenWebSocket({ ...options({}, logged), engine: 'auto' }, h);
    assert.equal(l.engine, 'ws');
    assert.deepEqual(logged.map((x) => [x.level, (x.obj as { engine: string }).engine]), [['info', 'ws']]);
    assert.match((logged[0]!.obj as { reason: string }).reason, /cannot be used on Node .*: FLOTILLA_NATIVE_FREE=1$/);
    // It serves.
    const c = await Client.connect(l.port);
    c.destroy();
    await l.close();

    const refusedLog: Logged[] = [];
    const uwsError = (e: unknown): boolean => {
      assert.ok(e instanceof WebSocketEngineError);
      assert.equal(e.code, 'UWS_UNAVAILABLE');
      assert.ok(e.message.includes(`Node ${process.version}`), e.message);
      assert.ok(e.message.includes('FLOTILLA_NATIVE_FREE=1'), e.message);
      return true;
    };
    await assert.rejects(listenWebSocket({ ...options({}, refusedLog), engine: 'uws' }, h), uwsError);
    assert.deepEqual(refusedLog, [], 'nothing listened, nothing logged');
    assert.throws(() => chooseWebSocketEngine('uws'), uwsError);
  } finally {
    if (before === undefined) delete process.env['FLOTILLA_NATIVE_FREE'];
    else process.env['FLOTILLA_NATIVE_FREE'] = before;
  }
});
