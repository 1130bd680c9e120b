// The WebSocket listeners against what a browser page or a careless client can send (issue 12,
// items 7 and 8), both engines (uWebSockets.js when it loads here): an Origin outside wsOrigins
// is refused with 403 ORIGIN_REFUSED, no Origin (not a browser) and the node's own host are let
// in; an unmasked client frame closes the connection (RFC 6455 §5.1); a frame left half sent
// closes it after frameReadTimeoutMs (the `ws` engine; the TCP listener in tcp-read-timeout).
// Raw sockets on 127.0.0.1 speak the upgrade by hand, to send what a WebSocket client never would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { ClientHandler, ClientListener } from '../../src/transport/client-listener.js';
import { listenWebSocket } from '../../src/transport/websocket-listener.js';
import { uwsProblem } from '../../src/transport/uws-listener.js';
import { OriginPolicy } from '../../src/transport/ws-origins.js';
import { encodeFrame, FrameKind } from '../../src/protocol/client-frame.js';

const TIMEOUT_MS = 20_000;
let idSeq = 0;

async function start(engine: 'ws' | 'uws', over: { wsOrigins?: string; frameReadTimeoutMs?: number } = {}): Promise<{ listener: ClientListener; opened: () => number; closed: () => number }> {
  let opened = 0;
  let closed = 0;
  const handler: ClientHandler = {
    onOpen: () => void opened++,
    onClose: () => void closed++,
    onDrain: () => undefined,
    onFrame: (c, buf, at, n) => c.send(buf.subarray(at, at + n)),
  };
  const listener = await listenWebSocket({
    host: '127.0.0.1', port: 0, frameBytesMax: 64 * 1024, connectionsMax: 100,
    pendingBytesHigh: 256 * 1024, pendingBytesLow: 64 * 1024, pendingBytesMax: 4 * 1024 * 1024,
    nextId: () => ++idSeq, engine, ...over,
  }, handler);
  return { listener, opened: () => opened, closed: () => closed };
}

interface Raw { socket: net.Socket; data: () => Buffer; closed: () => boolean; closedAt: () => number }

/** Opens a socket and sends an upgrade request with `origin` (none when null). */
async function upgrade(port: number, origin: string | null): Promise<Raw> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  let closed = false;
  let closedAt = 0;
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    closedAt = Date.now();
  });
  socket.write([
    'GET / HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    ...(origin === null ? [] : [`Origin: ${origin}`]), '', '',
  ].join('\r\n'));
  return { socket, data: () => Buffer.concat(chunks), closed: () => closed, closedAt: () => closedAt };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A binary WebSocket frame carrying `payload` (< 126 bytes), masked or not. */
function wsFrame(payload: Uint8Array, masked: boolean): Buffer {
  assert.ok(payload.length < 126);
  const head = Buffer.from([0x82, (masked ? 0x80 : 0) | payload.length]);
  if (!masked) return Buffer.concat([head, Buffer.from(payload)]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload).map((b, i) => b ^ mask[i % 4]!);
  return Buffer.concat([head, mask, body]);
}

const uwsSkip = ((): string | false => {
  const problem = uwsProblem();
  return problem === null ? false : `uWebSockets.js does not load here: ${problem}`;
})();

test('origin policy: no Origin and the own host pass; others only when listed or *', () => {
  const own = new OriginPolicy('', '127.0.0.1');
  assert.equal(own.allows(undefined), true);
  assert.equal(own.allows(''), true);
  assert.equal(own.allows('http://127.0.0.1:8080'), true);
  assert.equal(own.allows('http://localhost:3000'), true);
  assert.equal(own.allows('https://evil.example'), false);
  assert.equal(own.allows('null'), false);
  const named = new OriginPolicy('', 'db1.example');
  assert.equal(named.allows('https://db1.example'), true);
  assert.equal(named.allows('http://localhost'), false);
  assert.equal(new OriginPolicy('self', '127.0.0.1').allows('http://127.0.0.1:1'), true);
  assert.equal(new OriginPolicy('self,https://app.example', '127.0.0.1').allows('https://app.example'), true);
  const listed = new OriginPolicy('https://app.example:8443, https://other.example', '127.0.0.1');
  assert.equal(listed.allows('https://APP.example:8443'), true);
  assert.equal(listed.allows('https://app.example'), false);
  assert.equal(listed.allows('http://127.0.0.1:8080'), false, 'a list replaces the own-host default');
  assert.equal(new OriginPolicy('*', '127.0.0.1').allows('https://evil.example'), true);
});

for (const engine of ['ws', 'uws'] as const) {
  const skip = engine === 'uws' ? uwsSkip : false;

  test(`${engine}: an Origin outside wsOrigins is refused with 403 ORIGIN_REFUSED; no Origin, the own host and a listed one are let in`, { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine);
    const t = await start(engine, { wsOrigins: 'https://app.example' });
    const sockets: net.Socket[] = [];
    try {
      const evil = await upgrade(s.listener.port, 'https://evil.example');
      sockets.push(evil.socket);
      await waitFor('the refusal', () => evil.data().includes('ORIGIN_REFUSED'));
      assert.match(evil.data().toString(), /^HTTP\/1\.1 403/);
      for (const origin of [null, `http://127.0.0.1:${s.listener.port}`, 'http://localhost:5173']) {
        const ok = await upgrade(s.listener.port, origin);
        sockets.push(ok.socket);
        await waitFor(`101 for ${String(origin)}`, () => ok.data().includes('101'));
      }
      const listed = await upgrade(t.listener.port, 'https://app.example');
      sockets.push(listed.socket);
      await waitFor('101 for a listed origin', () => listed.data().includes('101'));
      const notListed = await upgrade(t.listener.port, `http://127.0.0.1:${t.listener.port}`);
      sockets.push(notListed.socket);
      await waitFor('403 for the own host when a list is given', () => notListed.data().includes('403'));
      await waitFor('three opened', () => s.opened() === 3);
    } finally {
      for (const x of sockets) x.destroy();
      await s.listener.close();
      await t.listener.close();
    }
  });

  test(`${engine}: an unmasked client frame closes the connection`, { timeout: TIMEOUT_MS, skip }, async () => {
    const s = await start(engine);
    try {
      const ping = encodeFrame(FrameKind.Ping, 0, 1, 0, new Uint8Array(0));
      // Masked: answered (the echo handler sends the frame back).
      const good = await upgrade(s.listener.port, null);
      await waitFor('101', () => good.data().includes('101'));
      const before = good.data().length;
      good.socket.write(wsFrame(ping, true));
      await waitFor('the echo', () => good.data().length > before);
      assert.equal(good.closed(), false);
      // Unmasked: closed.
      const bad = await upgrade(s.listener.port, null);
      await waitFor('101', () => bad.data().includes('101'));
      bad.socket.write(wsFrame(ping, false));
      if (engine === 'uws') {
        // uWebSockets.js does not look at the mask bit: it reads the first 4 payload bytes as
        // the mask and waits for 4 more. Once they come, the garbled frame is a BAD_FRAME.
        bad.socket.write(Buffer.alloc(4));
      }
      await waitFor('the unmasked connection to close', () => bad.closed());
      good.socket.destroy();
    } finally {
      await s.listener.close();
    }
  });
}

test('ws: a WebSocket frame left half sent closes its connection after frameReadTimeoutMs; a complete one resets nothing', { timeout: TIMEOUT_MS }, async () => {
  const s = await start('ws', { frameReadTimeoutMs: 400 });
  try {
    const ping = encodeFrame(FrameKind.Ping, 0, 1, 0, new Uint8Array(0));
    const idle = await upgrade(s.listener.port, null);
    await waitFor('101', () => idle.data().includes('101'));
    const half = await upgrade(s.listener.port, null);
    await waitFor('101', () => half.data().includes('101'));
    const f = wsFrame(ping, true);
    const t0 = Date.now();
    half.socket.write(f.subarray(0, 5));
    // After the timeout, a BAD_FRAME Error frame and a close frame; the socket goes once the
    // client answers the close or the close linger (CLOSE_LINGER_MS, 2 s) passes.
    await waitFor('the half-sent connection to close', () => half.closed(), 5000);
    const ms = half.closedAt() - t0;
    assert.ok(ms >= 380 && ms < 3000, `closed after ${ms} ms`);
    assert.ok(half.data().includes('BAD_FRAME'), 'a BAD_FRAME error frame before the close');
    // An idle connection with nothing half sent stays.
    assert.equal(idle.closed(), false);
    idle.socket.destroy();
  } finally {
    await s.listener.close();
  }
});
