// The client's wire layer on its own: the frame reader, key-to-group hashing, and one
// connection's pipelining, request ids, bounds and write coalescing.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, parseAddress, type Exchange } from '../../src/client/connection.js';
import { FrameReader } from '../../src/client/frame-reader.js';
import type { FlotillaError } from '../../src/client/errors.js';
import { encodeFrame, FrameKind, type ErrorBody } from '../../src/protocol/client-frame.js';
import { closeAllServers, FakeServer, waitFor, type FakeRequest } from './fake-server.js';
import { turns } from '../event-loop-turns.js';

// ---------------------------------------------------------------------------------------------
// Frame reader

function frames(): Buffer {
  return Buffer.concat([
    encodeFrame(FrameKind.Result, 0, 1, 5, new Uint8Array([1, 2, 3])),
    encodeFrame(FrameKind.Pong, 0, 2, 0, new Uint8Array(0)),
    encodeFrame(FrameKind.Error, 0, 3, 5, new Uint8Array(300).fill(7)),
  ]);
}

test('the frame reader finds the same frames however the stream is cut', () => {
  const stream = frames();
  const expected = [
    [FrameKind.Result, 1, 3],
    [FrameKind.Pong, 2, 0],
    [FrameKind.Error, 3, 300],
  ];
  for (const step of [1, 2, 3, 7, 15, 16, 17, 100, stream.length]) {
    const got: number[][] = [];
    const r = new FrameReader(1 << 20, (buf, at, n) => got.push([buf[at + 4]!, buf.readUInt32LE(at + 8), n - 16]), (why) => {
      throw new Error(why);
    });
    for (let i = 0; i < stream.length; i += step) r.push(stream.subarray(i, Math.min(stream.length, i + step)));
    assert.deepEqual(got, expected, `chunks of ${step}`);
    assert.equal(r.bufferedBytes, 0);
  }
});

test('the frame reader stops at a malformed header before buffering its body', () => {
  const cases: [string, Buffer][] = [
    ['shorter than its header', Buffer.from('0800000081000000010000000100000000', 'hex')],
    ['exceeds the limit', (() => {
      const b = Buffer.from(encodeFrame(FrameKind.Result, 0, 1, 1, new Uint8Array(0)));
      b.writeUInt32LE(2000, 0);
      return b;
    })()],
    ['unknown frame kind', Buffer.from(encodeFrame(FrameKind.Command, 0, 1, 1, new Uint8Array(0)))],
    ['unknown flags', (() => {
      const b = Buffer.from(encodeFrame(FrameKind.Result, 0, 1, 1, new Uint8Array(0)));
      b[5] = 0x80;
      return b;
    })()],
    ['reserved', (() => {
      const b = Buffer.from(encodeFrame(FrameKind.Result, 0, 1, 1, new Uint8Array(0)));
      b[6] = 1;
      return b;
    })()],
  ];
  for (const [what, bytes] of cases) {
    const problems: string[] = [];
    let frameCount = 0;
    const r = new FrameReader(1000, () => frameCount++, (why) => problems.push(why));
    // A good frame first, then the bad header split in two chunks.
    r.push(Buffer.from(encodeFrame(FrameKind.Pong, 0, 9, 0, new Uint8Array(0))));
    r.push(bytes.subarray(0, 5));
    r.push(bytes.subarray(5));
    r.push(Buffer.from(encodeFrame(FrameKind.Pong, 0, 10, 0, new Uint8Array(0))));
    assert.equal(frameCount, 1, what);
    assert.equal(problems.length, 1, what);
    assert.match(problems[0]!, new RegExp(what), what);
  }
});

test('addresses parse as host:port, with brackets for IPv6', () => {
  assert.deepEqual(parseAddress('127.0.0.1:7001'), { host: '127.0.0.1', port: 7001 });
  assert.deepEqual(parseAddress('[::1]:7001'), { host: '::1', port: 7001 });
  assert.deepEqual(parseAddress('db-1.example:9'), { host: 'db-1.example', port: 9 });
  for (const bad of ['', 'host', ':7001', 'host:', 'host:0', 'host:70000', 'host:12a']) assert.equal(parseAddress(bad), null, bad);
});

// ---------------------------------------------------------------------------------------------
// Connection

interface Outcome {
  kind?: FrameKind;
  body?: Uint8Array;
  error?: ErrorBody;
  failure?: FlotillaError;
  written?: boolean;
}

function exchange(group: number, body: Uint8Array, out: Outcome[], kind = FrameKind.Command): Exchange & { outcome: Outcome } {
  const outcome: Outcome = {};
  return {
    kind,
    flags: 0,
    group,
    body,
    id: 0,
    written: false,
    abandoned: false,
    outcome,
    onResponse(_c, k, b) {
      outcome.kind = k;
      outcome.body = b;
      out.push(outcome);
    },
    onServerError(_c, e) {
      outcome.error = e;
      out.push(outcome);
    },
    onConnectionFailure(_c, e, written) {
      outcome.failure = e;
      outcome.written = written;
      out.push(outcome);
    },
  };
}

const conns = new Set<Connection>();
afterEach(async () => {
  for (const c of conns) c.close();
  conns.clear();
  await closeAllServers();
});

function connect(server: FakeServer, extra: Partial<ConstructorParameters<typeof Connection>[0]> = {}): Connection {
  const conn = new Connection({
    host: '127.0.0.1',
    port: server.port,
    connectTimeoutMs: 2000,
    inflightMax: 4096,
    queuedMax: 4096,
    frameBytesMax: 1 << 20,
    ...extra,
  });
  conns.add(conn);
  return conn;
}

test('requests of one turn go out in one socket write, and out-of-order answers find their requests', { timeout: 10_000 }, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req) => held.push(req));
  const conn = connect(server);
  await conn.opened;
  const out: Outcome[] = [];
  const xs = [];
  for (let i = 0; i < 100; i++) {
    const x = exchange(1 + (i % 7), new Uint8Array([i]), out);
    assert.equal(conn.send(x), null);
    xs.push(x);
  }
  await waitFor(() => held.length === 100);
  assert.equal(conn.socketWrites, 1);
  // Answer in reverse order; each result echoes its request's body byte.
  for (const req of held.slice().reverse()) server.result(req, new Uint8Array([req.body[0]! + 1]));
  await waitFor(() => out.length === 100);
  xs.forEach((x, i) => {
    assert.equal(x.outcome.kind, FrameKind.Result);
    assert.deepEqual([...x.outcome.body!], [i + 1]);
  });
  assert.equal(new Set(held.map((r) => r.requestId)).size, 100);
  assert.deepEqual(server.problems, []);
  conn.close();
  await server.close();
});

test('request ids wrap past 2^32 - 1, skip 0 and skip ids still in flight', { timeout: 10_000 }, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req) => held.push(req));
  const conn = connect(server, { requestIdLast: 0xfffffffd });
  await conn.opened;
  const out: Outcome[] = [];
  for (let i = 0; i < 3; i++) conn.send(exchange(1, new Uint8Array(0), out));
  await waitFor(() => held.length === 3);
  assert.deepEqual(held.map((r) => r.requestId), [0xfffffffe, 0xffffffff, 1]);
  // Answer all but id 1, then run the counter up to just before 1 again: the next id is 2.
  for (const req of held.slice(0, 2)) server.result(req, new Uint8Array(0));
  await waitFor(() => out.length === 2);
  Reflect.set(conn, 'requestIdLast', 0);
  conn.send(exchange(1, new Uint8Array(0), out));
  await waitFor(() => held.length === 4);
  assert.equal(held[3]!.requestId, 2);
  conn.close();
  await server.close();
});

test('beyond inflightMax requests wait in the queue; beyond queuedMax they are refused', { timeout: 10_000 }, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req) => held.push(req));
  const conn = connect(server, { inflightMax: 2, queuedMax: 3 });
  await conn.opened;
  const out: Outcome[] = [];
  for (let i = 0; i < 5; i++) assert.equal(conn.send(exchange(1, new Uint8Array([i]), out)), null);
  const refused = conn.send(exchange(1, new Uint8Array([5]), out));
  assert.equal(refused?.code, 'OVERLOADED');
  await waitFor(() => held.length === 2);
  // The client's own counts say what it sent; a few turns let the server read anything more.
  assert.equal(conn.inflightCount, 2, 'no more than inflightMax in flight');
  assert.equal(conn.queuedCount, 3);
  assert.equal(conn.socketWrites, 1, 'one write: the two admitted requests');
  await turns(3);
  assert.equal(held.length, 2, 'no more than inflightMax on the wire');
  server.result(held[0]!, new Uint8Array(0));
  await waitFor(() => held.length === 3);
  server.result(held[1]!, new Uint8Array(0));
  server.result(held[2]!, new Uint8Array(0));
  await waitFor(() => held.length === 5);
  assert.deepEqual(held.map((r) => r.body[0]), [0, 1, 2, 3, 4]);
  conn.close();
  await server.close();
});

test('a lost connection reports which requests reached the socket', { timeout: 10_000 }, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req) => held.push(req));
  const conn = connect(server, { inflightMax: 1 });
  await conn.opened;
  const out: Outcome[] = [];
  const a = exchange(1, new Uint8Array([1]), out);
  const b = exchange(1, new Uint8Array([2]), out);
  conn.send(a);
  conn.send(b);
  await waitFor(() => held.length === 1);
  held[0]!.socket.destroy();
  await waitFor(() => out.length === 2);
  assert.equal(a.outcome.failure?.code, 'UNAVAILABLE');
  assert.equal(a.outcome.written, true);
  assert.equal(b.outcome.failure?.code, 'UNAVAILABLE');
  assert.equal(b.outcome.written, false);
  assert.equal(conn.state, 'closed');
  assert.notEqual(conn.send(exchange(1, new Uint8Array(0), out)), null);
  await server.close();
});

test('a response to a request not in flight is a malformed stream', { timeout: 10_000 }, async () => {
  const server = await FakeServer.start((req) => {
    req.socket.write(encodeFrame(FrameKind.Result, 0, req.requestId + 1000, req.group, new Uint8Array(0)));
  });
  const conn = connect(server);
  await conn.opened;
  const out: Outcome[] = [];
  const x = exchange(1, new Uint8Array(0), out);
  conn.send(x);
  await waitFor(() => out.length === 1);
  assert.equal(x.outcome.failure?.code, 'BAD_FRAME');
  assert.equal(conn.state, 'closed');
  await server.close();
});
