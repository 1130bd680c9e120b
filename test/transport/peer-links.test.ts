// Peer links between nodes: three nodes talk in every direction; a restarted acceptor is
// redialed within the backoff bound; bad hellos and bad frames close only their link; pause
// holds deliveries; a turn's sends leave in few writes; the send queue is bounded. Real sockets
// on 127.0.0.1 with ephemeral ports; a raw socket stands in for a node where a test needs to
// send what a PeerLinks never would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { PeerLinks } from '../../src/transport/peer-links.js';
import type { PeerLinksOptions } from '../../src/transport/peer-links-options.js';
import { encodeHello, HELLO_BYTES, LINK_MAGIC, LINK_VERSION, payloadProblem } from '../../src/protocol/peer-wire.js';
import type { PeerInfo } from '../../src/shard/task.js';
import { turns } from '../event-loop-turns.js';

const TEST_MS = 10_000;
const HOST = '127.0.0.1';
const CLUSTER = 77;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 4000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Link frames node `n` read from `from` (delivered or held). */
function framesIn(n: TestNode, from: number): number {
  return n.links.stats().find((s) => s.node === from)!.framesIn;
}

function info(id: number, raftPort: number): PeerInfo {
  return { id, host: HOST, raftPort, clientPort: 0, wsPort: 0, adminPort: 0 };
}

/** A link-frame payload of one RaftMessage sub-record for `group` around `body`, built by hand. */
function payload(group: number, body: Uint8Array): Uint8Array {
  const b = new Uint8Array(12 + body.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, b.length, true);
  v.setUint32(4, group, true);
  b[8] = 1;
  b.set(body, 12);
  assert.equal(payloadProblem(b, 0, b.length), null);
  return b;
}

/** A payload whose body says who sent it to whom, and its sequence number; `pad` bytes more. */
function tagged(from: number, to: number, seq: number, pad = 0): Uint8Array {
  const body = new Uint8Array(12 + pad);
  const v = new DataView(body.buffer);
  v.setUint32(0, from, true);
  v.setUint32(4, to, true);
  v.setUint32(8, seq, true);
  for (let i = 0; i < pad; i++) body[12 + i] = (seq + i) & 0xff;
  return payload(7, body);
}

function tagOf(p: Uint8Array): { from: number; to: number; seq: number } {
  const v = new DataView(p.buffer, p.byteOffset + 12, 12);
  return { from: v.getUint32(0, true), to: v.getUint32(4, true), seq: v.getUint32(8, true) };
}

function frameOf(p: Uint8Array): Buffer {
  const f = Buffer.alloc(4 + p.length);
  f.writeUInt32LE(p.length, 0);
  f.set(p, 4);
  return f;
}

interface Logged { level: 'info' | 'warn' | 'debug'; obj: object; msg: string; atMs: number }

interface TestNode {
  id: number;
  links: PeerLinks;
  payloads: Array<{ from: number; bytes: Uint8Array }>;
  states: Array<{ node: number; up: boolean }>;
  logs: Logged[];
  /** Called after a payload is recorded. */
  onPayload: (from: number) => void;
}

function warnings(n: TestNode, includes: string): number {
  return n.logs.filter((l) => l.level === 'warn' && JSON.stringify(l.obj).includes(includes)).length;
}

function makeNode(id: number, raftPort: number, peers: PeerInfo[], over: Partial<PeerLinksOptions> = {}): TestNode {
  const logs: Logged[] = [];
  const n: TestNode = {
    id, payloads: [], states: [], logs, onPayload: () => undefined,
    links: undefined as unknown as PeerLinks,
  };
  n.links = new PeerLinks({
    self: info(id, raftPort),
    clusterId: CLUSTER,
    peers: [info(id, raftPort), ...peers],
    linkFrameBytesMax: 1024 * 1024,
    backoffMsMin: 20,
    backoffMsMax: 200,
    sendQueueBytesMax: 4 * 1024 * 1024,
    timeoutMsHandshake: 1000,
    log: {
      info: (obj, msg) => logs.push({ level: 'info', obj, msg, atMs: Date.now() }),
      warn: (obj, msg) => logs.push({ level: 'warn', obj, msg, atMs: Date.now() }),
      debug: (obj, msg) => logs.push({ level: 'debug', obj, msg, atMs: Date.now() }),
    },
    ...over,
  }, {
    onPayload: (from, buf, at, end) => {
      n.payloads.push({ from, bytes: Uint8Array.from(buf.subarray(at, end)) });
      n.onPayload(from);
    },
    onState: (node, up) => {
      n.states.push({ node, up });
    },
  });
  return n;
}

async function started(n: TestNode): Promise<TestNode> {
  await n.links.start();
  return n;
}

/** Closes every node and socket even when the test failed, so that the process can end. */
async function cleanup(nodes: TestNode[], sockets: net.Socket[] = [], servers: net.Server[] = []): Promise<void> {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
  await Promise.all(nodes.map((n) => n.links.close()));
}

/** Raw socket: connects, collects what it reads, knows when it was closed. */
interface Raw {
  socket: net.Socket;
  read: Buffer[];
  dataEvents: number;
  closed: boolean;
}

function raw(socket: net.Socket): Raw {
  const r: Raw = { socket, read: [], dataEvents: 0, closed: false };
  socket.on('data', (c: Buffer) => {
    r.read.push(c);
    r.dataEvents++;
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    r.closed = true;
  });
  return r;
}

async function rawDial(port: number): Promise<Raw> {
  const socket = net.connect({ host: HOST, port });
  const r = raw(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return r;
}

/** A raw acceptor: answers each dialer's hello with `answer(hello)`; `onConn` sees each connection. */
async function rawAcceptor(answer: (hello: Buffer) => Buffer | null, onConn: (r: Raw) => void = () => undefined): Promise<{ server: net.Server; port: number; conns: Raw[] }> {
  const conns: Raw[] = [];
  const server = net.createServer((socket) => {
    const r = raw(socket);
    conns.push(r);
    let answered = false;
    socket.on('data', () => {
      if (answered) return;
      const all = Buffer.concat(r.read);
      if (all.length < HELLO_BYTES) return;
      answered = true;
      const a = answer(all.subarray(0, HELLO_BYTES));
      if (a !== null) socket.write(a);
    });
    onConn(r);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return { server, port: (server.address() as net.AddressInfo).port, conns };
}

/** Splits what a raw peer read after the 16 hello bytes into frame payloads. */
function framesAfterHello(r: Raw): Uint8Array[] {
  const all = Buffer.concat(r.read);
  const out: Uint8Array[] = [];
  let p = HELLO_BYTES;
  while (p + 4 <= all.length) {
    const len = all.readUInt32LE(p);
    if (p + 4 + len > all.length) break;
    out.push(all.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return out;
}

/** True when nothing listens on `port` any more. */
function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
  });
}

function badHello(magic: number, version: number, from: number, to: number): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(magic, 0);
  b.writeUInt32LE(version, 4);
  b.writeUInt32LE(CLUSTER, 8);
  b.writeUInt32LE(from, 12);
  b.writeUInt32LE(to, 16);
  return b;
}

test('three nodes exchange payloads in every direction, in order, small and large', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    const n3 = await started(makeNode(3, 0, [info(1, 0), info(2, 0)]));
    nodes.push(n3);
    const n2 = await started(makeNode(2, 0, [info(1, 0), info(3, n3.links.port)]));
    nodes.push(n2);
    const n1 = await started(makeNode(1, 0, [info(2, n2.links.port), info(3, n3.links.port)]));
    nodes.push(n1);
    await waitFor('every link up', () => nodes.every((n) => nodes.every((m) => m === n || n.links.isUp(m.id))));
    for (const n of nodes) {
      assert.deepEqual(n.states.map((s) => s.up), [true, true], `node ${n.id} states`);
      assert.deepEqual(n.states.map((s) => s.node).sort(), nodes.filter((m) => m !== n).map((m) => m.id).sort());
    }

    const perPair = 200;
    const large = 300 * 1024; // spans many chunks: reassembled by the reader
    for (let seq = 0; seq < perPair; seq++) {
      for (const a of nodes) {
        for (const b of nodes) {
          if (a === b) continue;
          assert.equal(a.links.send(b.id, tagged(a.id, b.id, seq, seq === 100 ? large : seq % 50)), true);
        }
      }
      if (seq % 40 === 0) await turns(1); // spread over several turns
    }
    await waitFor('every payload', () => nodes.every((n) => n.payloads.length === 2 * perPair));
    for (const n of nodes) {
      for (const m of nodes) {
        if (m === n) continue;
        const got = n.payloads.filter((p) => p.from === m.id);
        assert.equal(got.length, perPair);
        got.forEach((p, seq) => {
          assert.deepEqual(tagOf(p.bytes), { from: m.id, to: n.id, seq });
          assert.deepEqual(p.bytes, tagged(m.id, n.id, seq, seq === 100 ? large : seq % 50));
        });
      }
      for (const s of n.links.stats()) {
        assert.equal(s.up, true);
        assert.equal(s.framesIn, perPair);
        assert.equal(s.framesOut, perPair);
        assert.equal(s.drops, 0);
        assert.equal(s.reconnects, 0);
        assert.ok(s.bytesIn > large && s.bytesOut > large);
      }
    }
  } finally {
    await cleanup(nodes);
  }
});

test('a restarted acceptor is redialed within the backoff bound; sends while down return false', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    let n2 = await started(makeNode(2, 0, [info(1, 0)]));
    nodes.push(n2);
    const port = n2.links.port;
    const n1 = await started(makeNode(1, 0, [info(2, port)], { backoffMsMin: 10, backoffMsMax: 100 }));
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2) && n2.links.isUp(1));

    await n2.links.close();
    assert.equal(n2.links.send(1, tagged(2, 1, 0)), false, 'a closed node sends nothing');
    await waitFor('link down at the dialer', () => !n1.links.isUp(2));
    assert.deepEqual(n1.states, [{ node: 2, up: true }, { node: 2, up: false }]);
    assert.deepEqual(n2.states, [{ node: 1, up: true }], 'no state change is reported after close()');
    assert.equal(n1.links.send(2, tagged(1, 2, 0)), false);
    assert.equal(n1.links.send(2, tagged(1, 2, 1)), false);
    assert.equal(n1.links.stats()[0]!.drops, 2);

    await sleep(1000); // many refused redials: the delay has grown to its largest
    const failedAtMs = n1.logs.filter((l) => l.msg === 'peer link dial failed').map((l) => l.atMs);
    assert.ok(failedAtMs.length >= 8, `${failedAtMs.length} redials in 1 s`);
    const gapsMs = failedAtMs.slice(1).map((t, i) => t - failedAtMs[i]!);
    assert.ok(Math.max(...gapsMs) <= 100 + 60, `redial gaps ${gapsMs.join(', ')} ms: none may pass backoffMsMax`);
    assert.ok(Math.max(...gapsMs) >= 40, `redial gaps ${gapsMs.join(', ')} ms: the delay doubles`);
    n2 = await started(makeNode(2, port, [info(1, 0)]));
    nodes.push(n2);
    const t0 = Date.now();
    await waitFor('link up again', () => n1.links.isUp(2) && n2.links.isUp(1), 3000);
    const tookMs = Date.now() - t0;
    assert.ok(tookMs <= 100 + 250, `redial took ${tookMs} ms, backoffMsMax is 100`);
    assert.deepEqual(n1.states.map((s) => s.up), [true, false, true]);
    assert.equal(n1.links.stats()[0]!.reconnects, 1);

    assert.equal(n1.links.send(2, tagged(1, 2, 5)), true);
    assert.equal(n2.links.send(1, tagged(2, 1, 6)), true);
    await waitFor('payloads over the new link', () => n2.payloads.length === 1 && n1.payloads.length === 1);
    assert.equal(tagOf(n2.payloads[0]!.bytes).seq, 5);
    assert.equal(tagOf(n1.payloads[0]!.bytes).seq, 6);
  } finally {
    await cleanup(nodes);
  }
});

test('an acceptor refuses wrong hellos and silent connections, and answers a right one', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const sockets: net.Socket[] = [];
  try {
    // Node 2 of {1, 2, 3}: only node 1 may dial it.
    // Every refusal logged (no interval), to see one warning each.
    const n2 = await started(makeNode(2, 0, [info(1, 0), info(3, 1)], { timeoutMsHandshake: 300, refusedLogMsInterval: 0 })); // node 3 is never up
    nodes.push(n2);
    const port = n2.links.port;
    const cases: Array<[string, Buffer | null]> = [
      ['wrong magic', badHello(0x12345678, LINK_VERSION, 1, 2)],
      ['wrong version', badHello(LINK_MAGIC, LINK_VERSION + 1, 1, 2)],
      ['for another node', badHello(LINK_MAGIC, LINK_VERSION, 1, 3)],
      ['from itself', badHello(LINK_MAGIC, LINK_VERSION, 2, 2)],
      ['from a node that is not a member', badHello(LINK_MAGIC, LINK_VERSION, 9, 2)],
      ['from a member with a higher id (it should be dialed)', badHello(LINK_MAGIC, LINK_VERSION, 3, 2)],
      ['silent past the handshake timeout', null],
    ];
    for (const [what, hello] of cases) {
      const warnsBefore = n2.logs.filter((l) => l.level === 'warn').length;
      const r = await rawDial(port);
      sockets.push(r.socket);
      const t0 = Date.now();
      if (hello !== null) r.socket.write(hello);
      await waitFor(`closed: ${what}`, () => r.closed, 2000);
      if (hello === null) assert.ok(Date.now() - t0 >= 250, `${what}: closed after ${Date.now() - t0} ms`);
      assert.equal(r.read.length, 0, `${what}: no answer`);
      assert.equal(n2.logs.filter((l) => l.level === 'warn').length, warnsBefore + 1, `${what}: one warning`);
    }
    assert.deepEqual(n2.states, []);

    // Right hello, split byte by byte, the last byte in the same write as a frame.
    const r = await rawDial(port);
    sockets.push(r.socket);
    const hello = Buffer.from(encodeHello(CLUSTER, 1, 2));
    for (let i = 0; i < HELLO_BYTES - 1; i++) {
      r.socket.write(hello.subarray(i, i + 1));
      await sleep(2);
    }
    r.socket.write(Buffer.concat([hello.subarray(HELLO_BYTES - 1), frameOf(tagged(1, 2, 42))]));
    await waitFor('payload after a split hello', () => n2.payloads.length === 1);
    assert.equal(n2.payloads[0]!.from, 1);
    assert.equal(tagOf(n2.payloads[0]!.bytes).seq, 42);
    assert.deepEqual(n2.states, [{ node: 1, up: true }]);
    await waitFor('answer', () => Buffer.concat(r.read).length >= HELLO_BYTES);
    assert.deepEqual(Buffer.concat(r.read).subarray(0, HELLO_BYTES), Buffer.from(encodeHello(CLUSTER, 2, 1)));
  } finally {
    await cleanup(nodes, sockets);
  }
});

/** Node 2, and a raw connection that said hello as node 1: its link, up. */
async function liveRawLinkFrom1(nodes: TestNode[], sockets: net.Socket[]): Promise<{ n2: TestNode; a: Awaited<ReturnType<typeof rawDial>> }> {
  const n2 = await started(makeNode(2, 0, [info(1, 0)]));
  nodes.push(n2);
  const a = await rawDial(n2.links.port);
  sockets.push(a.socket);
  a.socket.write(encodeHello(CLUSTER, 1, 2));
  await waitFor('first link up', () => n2.links.isUp(1));
  return { n2, a };
}

test('a second hello for a node whose link is live is refused (LINK_IN_USE) and the live link stays', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const sockets: net.Socket[] = [];
  try {
    const { n2, a } = await liveRawLinkFrom1(nodes, sockets);
    const b = await rawDial(n2.links.port);
    sockets.push(b.socket);
    b.socket.write(encodeHello(CLUSTER, 1, 2));
    await waitFor('the impostor refused', () => b.closed, 4000);
    assert.equal(a.closed, false);
    assert.equal(n2.links.isUp(1), true);
    assert.deepEqual(n2.states.map((s) => s.up), [true]);
    assert.ok(n2.logs.some((l) => (l.obj as { code?: string }).code === 'LINK_IN_USE'));
    // The live link still carries frames, after the probe (an empty frame) the impostor caused.
    assert.equal(n2.links.send(1, tagged(2, 1, 3)), true);
    await waitFor('frame on the old connection', () => framesAfterHello(a).some((f) => f.length > 0 && tagOf(f).seq === 3));
  } finally {
    await cleanup(nodes, sockets);
  }
});

test('a new connection from a node replaces its old one once the old one closes after the probe (the dialer restarted)', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const sockets: net.Socket[] = [];
  try {
    const { n2, a } = await liveRawLinkFrom1(nodes, sockets);
    // A contender that gives up while waiting frees the place: the next one waits in turn.
    const quitter = await rawDial(n2.links.port);
    sockets.push(quitter.socket);
    quitter.socket.write(encodeHello(CLUSTER, 1, 2));
    // A contender's hello makes node 2 probe the live link with an empty frame.
    const probes = (): number => framesAfterHello(a).filter((f) => f.length === 0).length;
    await waitFor('the probe for the quitter', () => probes() === 1);
    const quitterRemote = `${HOST}:${quitter.socket.localPort}`;
    quitter.socket.destroy();
    await waitFor('node 2 to drop the quitter', () => n2.logs.some((l) => l.msg === 'peer link refused' && (l.obj as { remote?: string }).remote === quitterRemote));
    const b = await rawDial(n2.links.port);
    sockets.push(b.socket);
    // The hello and a frame in one write: the frame must be delivered once the link is b's.
    b.socket.write(Buffer.concat([Buffer.from(encodeHello(CLUSTER, 1, 2)), frameOf(tagged(1, 2, 5))]));
    // Refused, b would be closed without a probe; a second probe shows it waits in the quitter's place.
    await waitFor('the probe for the next contender', () => probes() === 2);
    assert.equal(b.closed, false, 'the next contender waits instead of being refused');
    assert.equal(n2.payloads.length, 0, 'nothing from the waiting connection yet');
    a.socket.destroy(); // as the restarted node's kernel would answer the probe
    await waitFor('the new link up', () => n2.states.length === 3);
    assert.deepEqual(n2.states.map((s) => s.up), [true, false, true]);
    assert.equal(n2.links.stats()[0]!.reconnects, 1);
    await waitFor('the frame that came with the hello', () => n2.payloads.some((p) => tagOf(p.bytes).seq === 5));
    assert.equal(n2.links.send(1, tagged(2, 1, 3)), true);
    await waitFor('frame on the new connection', () => framesAfterHello(b).length === 1);
    assert.equal(tagOf(framesAfterHello(b)[0]!).seq, 3);
    assert.equal(b.closed, false);
  } finally {
    await cleanup(nodes, sockets);
  }
});

test('a node of another cluster is refused with CLUSTER_MISMATCH on both sides; refusals log once per source and interval', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    const n2 = await started(makeNode(2, 0, [info(1, 0)]));
    nodes.push(n2);
    const n1 = await started(makeNode(1, 0, [info(2, n2.links.port)], { clusterId: CLUSTER + 1, backoffMsMin: 5, backoffMsMax: 10 }));
    nodes.push(n1);
    const mismatch = (n: TestNode): number => n.logs.filter((l) => (l.obj as { code?: string }).code === 'CLUSTER_MISMATCH').length;
    // The dialer logs each refusal once it has read the acceptor's answer, which the acceptor
    // writes before it drops (and logs or counts) the connection: ten on the dialer are ten
    // refusals already through the acceptor's rate limit.
    await waitFor('ten refused dials', () => mismatch(n1) >= 10);
    assert.equal(n1.links.isUp(2), false);
    assert.equal(n2.links.isUp(1), false);
    // Tens of refusals from 127.0.0.1 in this interval, one line on the acceptor.
    assert.equal(mismatch(n2), 1);
    assert.ok(n1.logs.some((l) => /cluster 78/.test(JSON.stringify(l.obj)) || /cluster 77/.test(JSON.stringify(l.obj))));
  } finally {
    await cleanup(nodes, []);
  }
});

test('a dialer reads an answer that comes with the first frame, and refuses a wrong answer', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const servers: net.Server[] = [];
  try {
    // Hello and a frame in one write.
    const good = await rawAcceptor((h) => {
      assert.deepEqual(h, Buffer.from(encodeHello(CLUSTER, 1, 2)));
      return Buffer.concat([Buffer.from(encodeHello(CLUSTER, 2, 1)), frameOf(tagged(2, 1, 9))]);
    });
    servers.push(good.server);
    const n1 = await started(makeNode(1, 0, [info(2, good.port)]));
    nodes.push(n1);
    await waitFor('payload with the answer', () => n1.payloads.length === 1);
    assert.equal(tagOf(n1.payloads[0]!.bytes).seq, 9);
    assert.deepEqual(n1.states, [{ node: 2, up: true }]);

    // An acceptor that claims to be node 5: refused each time, redialed with backoff.
    const wrong = await rawAcceptor(() => Buffer.from(encodeHello(CLUSTER, 5, 1)));
    servers.push(wrong.server);
    const m1 = await started(makeNode(1, 0, [info(2, wrong.port)], { backoffMsMin: 10, backoffMsMax: 40 }));
    nodes.push(m1);
    await waitFor('three refused dials', () => wrong.conns.length >= 3 && wrong.conns.slice(0, 3).every((c) => c.closed));
    assert.deepEqual(m1.states, []);
    assert.ok(warnings(m1, 'dialed node 2 but node 5 answered') >= 3);
  } finally {
    await cleanup(nodes, [], servers);
  }
});

test('a frame over linkFrameBytesMax or with a bad sub-record closes the link; redial brings it back', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    const n2 = await started(makeNode(2, 0, [info(1, 0)], { linkFrameBytesMax: 64 * 1024 }));
    nodes.push(n2);
    const n1 = await started(makeNode(1, 0, [info(2, n2.links.port)], { linkFrameBytesMax: 1024 * 1024 }));
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2) && n2.links.isUp(1));

    assert.equal(n2.links.send(1, tagged(2, 1, 0, 100 * 1024)), false, 'over its own bound: dropped at the sender');
    assert.equal(warnings(n2, 'linkFrameBytesMax'), 1);

    assert.equal(n1.links.send(2, tagged(1, 2, 1)), true);
    assert.equal(n1.links.send(2, tagged(1, 2, 2, 100 * 1024)), true);
    assert.equal(n1.links.send(2, tagged(1, 2, 3)), true); // after the bad frame: lost with the link
    await waitFor('link lost and back', () => n1.states.length === 3 && n1.links.isUp(2) && n2.links.isUp(1));
    assert.deepEqual(n1.states.map((s) => s.up), [true, false, true]);
    assert.deepEqual(n2.states.map((s) => s.up), [true, false, true]);
    assert.ok(warnings(n2, 'exceeds linkFrameBytesMax') === 1);
    assert.deepEqual(n2.payloads.map((p) => tagOf(p.bytes).seq), [1]);

    // A sub-record of an unknown kind.
    const bad = tagged(1, 2, 4);
    bad[8] = 99;
    assert.equal(n1.links.send(2, bad), true);
    await waitFor('link lost and back again', () => n1.states.length === 5 && n1.links.isUp(2) && n2.links.isUp(1));
    assert.ok(warnings(n2, 'unknown kind 99') === 1);

    assert.equal(n1.links.send(2, tagged(1, 2, 5)), true);
    await waitFor('a good frame after', () => n2.payloads.length === 2);
    assert.deepEqual(n2.payloads.map((p) => tagOf(p.bytes).seq), [1, 5]);
  } finally {
    await cleanup(nodes);
  }
});

test('pause holds deliveries, even of frames in the chunk being read, until resume', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    const n2 = await started(makeNode(2, 0, [info(1, 0)]));
    nodes.push(n2);
    const n1 = await started(makeNode(1, 0, [info(2, n2.links.port)]));
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2) && n2.links.isUp(1));

    // Paused from inside onPayload, as the main thread does when a ring is full.
    n2.onPayload = (from) => {
      if (n2.payloads.length === 1) n2.links.pause(from);
    };
    for (let i = 0; i < 20; i++) assert.equal(n1.links.send(2, tagged(1, 2, i)), true);
    await waitFor('first payload', () => n2.payloads.length >= 1);
    // The 20 frames of one turn are one write, read as one chunk: the other 19 are read and held.
    await waitFor('the rest of the chunk read', () => framesIn(n2, 1) === 20);
    await turns(3);
    assert.equal(n2.payloads.length, 1, 'nothing more while paused');
    for (let i = 20; i < 40; i++) assert.equal(n1.links.send(2, tagged(1, 2, i)), true);
    await turns(4); // n1's flush, then the turn in which n2 would read them
    assert.equal(framesIn(n2, 1), 20, 'the paused socket reads nothing more');
    assert.equal(n2.payloads.length, 1, 'nothing more while paused, later frames neither');
    n2.onPayload = () => undefined;
    n2.links.resume(1);
    await waitFor('all after resume', () => n2.payloads.length === 40);
    assert.deepEqual(n2.payloads.map((p) => tagOf(p.bytes).seq), Array.from({ length: 40 }, (_, i) => i));

    // Paused again, resumed inside a redelivery: the rest waits for the next resume.
    n2.links.pause(1);
    for (let i = 40; i < 50; i++) n1.links.send(2, tagged(1, 2, i));
    await turns(4);
    assert.equal(framesIn(n2, 1), 40, 'the paused socket reads nothing more');
    assert.equal(n2.payloads.length, 40);
    n2.links.resume(1);
    await waitFor('the rest', () => n2.payloads.length === 50);
    assert.deepEqual(n2.payloads.slice(40).map((p) => tagOf(p.bytes).seq), Array.from({ length: 10 }, (_, i) => 40 + i));
  } finally {
    await cleanup(nodes);
  }
});

test('a pause outlives the link: a connection made while paused delivers nothing until resume', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const sockets: net.Socket[] = [];
  try {
    const n2 = await started(makeNode(2, 0, [info(1, 0)]));
    nodes.push(n2);
    n2.links.pause(1);
    const r = await rawDial(n2.links.port);
    sockets.push(r.socket);
    // The hello and two frames in one write: the frames are read with the hello, and held.
    r.socket.write(Buffer.concat([Buffer.from(encodeHello(CLUSTER, 1, 2)), frameOf(tagged(1, 2, 0)), frameOf(tagged(1, 2, 1))]));
    await waitFor('link up', () => n2.links.isUp(1));
    await waitFor('both frames read', () => framesIn(n2, 1) === 2);
    await turns(3);
    assert.equal(n2.payloads.length, 0, 'read and held, not delivered');
    n2.links.resume(1);
    await waitFor('held payloads', () => n2.payloads.length === 2);
    assert.deepEqual(n2.payloads.map((p) => tagOf(p.bytes).seq), [0, 1]);
  } finally {
    await cleanup(nodes, sockets);
  }
});

test('many small sends in one turn leave in few writes', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const servers: net.Server[] = [];
  try {
    const acc = await rawAcceptor(() => Buffer.from(encodeHello(CLUSTER, 2, 1)));
    servers.push(acc.server);
    const n1 = await started(makeNode(1, 0, [info(2, acc.port)]));
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2));
    const r = acc.conns[0]!;
    assert.equal(Buffer.concat(r.read).length, HELLO_BYTES, 'the acceptor has read the hello, and nothing more');
    const eventsBefore = r.dataEvents;
    // Count the dialer's writes to this link: the receiver, in the same process, reads only
    // after the sending turn, so its reads alone would not tell one write from a thousand.
    const write = net.Socket.prototype.write;
    let writes = 0;
    net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]): boolean {
      if (this.remotePort === acc.port) writes++;
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof write;
    const sends = 1000;
    try {
      for (let i = 0; i < sends; i++) assert.equal(n1.links.send(2, tagged(1, 2, i)), true);
      await waitFor('every frame', () => framesAfterHello(r).length === sends);
    } finally {
      net.Socket.prototype.write = write;
    }
    assert.equal(writes, 1, `${sends} sends in one turn took ${writes} writes`);
    const events = r.dataEvents - eventsBefore;
    // 1000 frames of 28 bytes = 28 KB written at once: the reader sees one chunk or a few.
    assert.ok(events <= 10, `${sends} sends arrived in ${events} reads`);
    assert.deepEqual(framesAfterHello(r).map((p) => tagOf(p).seq), Array.from({ length: sends }, (_, i) => i));
    assert.equal(n1.links.stats()[0]!.bytesOut, sends * (4 + 24));
  } finally {
    await cleanup(nodes, [], servers);
  }
});

test('a link queue over sendQueueBytesMax drops frames and counts them', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  const servers: net.Server[] = [];
  try {
    const acc = await rawAcceptor(() => Buffer.from(encodeHello(CLUSTER, 2, 1)));
    servers.push(acc.server);
    const n1 = await started(makeNode(1, 0, [info(2, acc.port)], { sendQueueBytesMax: 64 * 1024 }));
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2));
    // Up once the answer is read, so the hello has left the dialer: its queue is empty.
    assert.equal(Buffer.concat(acc.conns[0]!.read).length, HELLO_BYTES);
    // Frames of 1024 bytes: 64 fit in one turn's queue.
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (n1.links.send(2, tagged(1, 2, i, 1024 - 4 - 24))) accepted++;
    assert.ok(accepted >= 60 && accepted <= 64, `accepted ${accepted}`);
    assert.equal(n1.links.stats()[0]!.drops, 100 - accepted);
    assert.equal(warnings(n1, 'sendQueueBytesMax'), 1, 'one warning per episode');
    const r = acc.conns[0]!;
    await waitFor('accepted frames', () => framesAfterHello(r).length === accepted);
    // Drained: sends are accepted again.
    assert.equal(n1.links.send(2, tagged(1, 2, 1000)), true);
    await waitFor('one more', () => framesAfterHello(r).length === accepted + 1);
  } finally {
    await cleanup(nodes, [], servers);
  }
});

test('close ends every link, stops dialing, and reports nothing after', { timeout: TEST_MS }, async () => {
  const nodes: TestNode[] = [];
  try {
    const n2 = await started(makeNode(2, 0, [info(1, 0)]));
    nodes.push(n2);
    const n1 = await started(makeNode(1, 0, [info(2, n2.links.port), info(3, 1)])); // node 3 is never there
    nodes.push(n1);
    await waitFor('link up', () => n1.links.isUp(2) && n2.links.isUp(1));
    // Queued in this turn, written by close() before it ends the link.
    assert.equal(n1.links.send(2, tagged(1, 2, 77)), true);
    const closing = n1.links.close();
    assert.equal(n1.links.close(), closing);
    await closing;
    assert.equal(n1.links.isUp(2), false);
    assert.equal(n1.links.send(2, tagged(1, 2, 78)), false);
    await waitFor('peer sees the link go', () => !n2.links.isUp(1));
    assert.deepEqual(n2.payloads.map((p) => tagOf(p.bytes).seq), [77]);
    assert.deepEqual(n1.states, [{ node: 2, up: true }]);
    const dialsBefore = n1.logs.filter((l) => l.msg === 'peer link dial failed').length;
    // A timer that must not fire: node 3's redial would within backoffMsMax (200 ms).
    await sleep(300);
    assert.equal(n1.logs.filter((l) => l.msg === 'peer link dial failed').length, dialsBefore, 'no dialing after close');
    assert.equal(await connectRefused(n1.links.port), true, 'the listener is closed');
  } finally {
    await cleanup(nodes);
  }
});
