// The client against scripted fake servers: KV calls, leader redirects, which failures are
// retried (reads) and which surface (writes whose outcome is unknown), malformed responses,
// deadlines, bounds and admin requests.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { pack, unpack } from 'msgpackr';
import { CLIENT_DEFAULTS, FlotillaClient, FlotillaError, type ClientOptions } from '../../src/client/index.js';
import { configDefaults } from '../../src/node/config-schema.js';
import { createKvStateMachine } from '../../src/kv/kv-service.js';
import { decodeCommand, encodeCommand } from '../../src/kv/kv-command.js';
import { encodeFrame, FrameFlag, FrameKind } from '../../src/protocol/client-frame.js';
import { closeAllServers, deadAddress, FakeServer, fakeMap, kvScript, sleep, waitFor, type FakeRequest } from './fake-server.js';
import { slotOf } from '../../src/cluster/slots.js';
import { KeyMap } from '../../src/cluster/key-map.js';
import { reachableAddress } from '../../src/client/client.js';
import { turns } from '../event-loop-turns.js';

const T = { timeout: 15_000 };

// Whatever a test leaves open when it fails is closed here, so the file still ends.
const clients = new Set<FlotillaClient>();
afterEach(async () => {
  await Promise.all([...clients].map((c) => c.close()));
  clients.clear();
  await closeAllServers();
});

async function rejection(p: Promise<unknown>): Promise<FlotillaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof FlotillaError, `expected a FlotillaError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the call to fail');
}

async function client(servers: FakeServer[] | string[], opts: Partial<ClientOptions> = {}): Promise<FlotillaClient> {
  const addrs = servers.map((s) => (typeof s === 'string' ? s : s.address));
  const c = await FlotillaClient.connect({ servers: addrs, requestTimeoutMs: 3000, ...opts });
  clients.add(c);
  return c;
}

function commandsOf(s: FakeServer): string[] {
  return s.requests.filter((r) => r.kind === FrameKind.Command).map((r) => decodeCommand(r.body).op);
}

test('put, get, delete, cas and batch round-trip through the KV service', T, async () => {
  const server = await FakeServer.start(kvScript());
  const c = await client([server]);
  await c.put('a', '1');
  assert.equal(await c.get('a'), '1');
  assert.equal(await c.get('missing'), null);
  assert.deepEqual(await c.cas('a', '1', '2'), { ok: true, value: '1' });
  assert.deepEqual(await c.cas('a', '1', '3'), { ok: false, value: '2' });
  assert.deepEqual(await c.cas('new', null, 'x'), { ok: true, value: null });
  assert.equal(await c.delete('a'), true);
  assert.equal(await c.delete('a'), false);
  assert.equal(await c.get('a', { stale: true }), null);
  await c.put('ключ', '値 🚣');
  assert.equal(await c.get('ключ'), '値 🚣');

  // Headers: the key's group, Read on reads, Read|Stale on stale reads, nothing on writes.
  const r = server.requests;
  assert.equal(r[0]!.group, c.groupOf('a'));
  assert.equal(r[0]!.flags, 0);
  assert.equal(r[1]!.flags, FrameFlag.Read);
  const stale = r.find((x) => x.flags === (FrameFlag.Read | FrameFlag.Stale));
  assert.ok(stale !== undefined);
  assert.deepEqual(decodeCommand(stale.body), { op: 'get', key: 'a' });
  assert.deepEqual(server.problems, []);
  await c.close();
  await server.close();
});

test('the worked example of docs/protocol.md is what goes over the wire', T, async () => {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const sm = createKvStateMachine(3);
  const responses: string[] = [];
  const server = await FakeServer.start((req) => {
    const body = (req.flags & FrameFlag.Read) !== 0 ? sm.query(req.body) : sm.apply(req.body, 1);
    const frame = encodeFrame(FrameKind.Result, 0, req.requestId, req.group, body);
    responses.push(hex(frame));
    req.socket.write(frame);
  });
  const c = await client([server]);
  // The fake server's map spreads the slots over 64 groups as a new cluster's does.
  assert.equal(c.slotOf('user:42'), 15880);
  assert.equal(c.groupOf('user:42'), 63);
  await c.put('user:42', 'hello');
  assert.equal(await c.get('user:42'), 'hello');
  // First the client asked for the map (MapRequest, request id 1, holding version 0: none); so
  // the example's put and get go out with ids 2 and 3 (the docs' 1 and 2).
  assert.equal(
    hex(Buffer.concat(server.received[0]!)),
    '18000000040000000100000000000000' + '0000000000000000' +
      '2300000001000000020000003f000000010007757365723a34320000000568656c6c6f' +
      '1a0000000101000003000000' + '3f000000020007757365723a3432',
  );
  assert.deepEqual(responses, [
    '1a00000081000000020000003f0000' + '00de0001a26f70a3707574',
    '26000000810000000300000' + '03f0000' + '00de0002a26f70a3676574a576616c7565a568656c6c6f',
  ]);
});

test('a batch is one group: keys of two groups are refused before sending, unless the group is given', T, async () => {
  const server = await FakeServer.start(kvScript());
  const c = await client([server]);
  let k2 = 'b';
  for (let i = 0; c.groupOf(k2) === c.groupOf('a'); i++) k2 = `b${i}`;
  const e = await rejection(c.batch([{ op: 'put', key: 'a', value: '1' }, { op: 'put', key: k2, value: '2' }]));
  assert.equal(e.code, 'BAD_REQUEST');
  assert.equal(server.requests.length, 0);
  assert.equal((await rejection(c.batch([]))).code, 'BAD_REQUEST');

  const res = await c.batch([{ op: 'put', key: 'a', value: '1' }, { op: 'put', key: k2, value: '2' }], 7);
  assert.deepEqual(res, { ok: true, results: [{ op: 'put' }, { op: 'put' }] });
  assert.equal(server.requests[0]!.group, 7);
  assert.equal(server.requests[0]!.flags, 0);
  const cas = await c.batch([{ op: 'cas', key: 'a', expect: 'nope', value: '9' }, { op: 'put', key: k2, value: '3' }], 7);
  assert.equal(cas.ok, false);
  // A batch of only gets goes as a read.
  const reads = await c.batch([{ op: 'get', key: 'a' }, { op: 'get', key: k2 }], 7);
  assert.deepEqual(reads, { ok: true, results: [{ op: 'get', value: '1' }, { op: 'get', value: '2' }] });
  assert.equal(server.requests.at(-1)!.flags, FrameFlag.Read);
  await c.close();
  await server.close();
});

test('command sends raw bytes and returns the raw result; bad arguments fail locally', T, async () => {
  const server = await FakeServer.start((req, s) => s.result(req, Uint8Array.from([...req.body].reverse())));
  const c = await client([server]);
  assert.deepEqual([...(await c.command(12, new Uint8Array([1, 2, 3])))], [3, 2, 1]);
  await c.command(12, new Uint8Array([0]), { read: true });
  await c.command(12, new Uint8Array([0]), { stale: true });
  assert.deepEqual(server.requests.map((r) => [r.group, r.flags]), [[12, 0], [12, 1], [12, 3]]);
  assert.equal((await rejection(c.command(0, new Uint8Array(0)))).code, 'BAD_REQUEST');
  assert.equal((await rejection(c.put('k'.repeat(1025), 'v'))).code, 'TOO_LARGE');
  assert.equal(server.requests.length, 3);
  await c.close();
  await server.close();
});

test('pipelined requests are answered out of order and each caller gets its own answer', T, async () => {
  const held: FakeRequest[] = [];
  const sm = createKvStateMachine(1);
  const server = await FakeServer.start((req, s) => {
    held.push(req);
    if (held.length < 200) return;
    // Answer all 200 at once, last first.
    for (const r of held.slice().reverse()) s.result(r, sm.query(r.body));
  });
  for (let i = 0; i < 200; i++) sm.apply(encodeCommand({ op: 'put', key: `k${i}`, value: `v${i}` }), i + 1);
  const c = await client([server]);
  const values = await Promise.all(Array.from({ length: 200 }, (_, i) => c.get(`k${i}`)));
  assert.deepEqual(values, Array.from({ length: 200 }, (_, i) => `v${i}`));
  assert.equal(server.connections, 1);
  assert.ok(server.chunks <= 10, `200 requests arrived in ${server.chunks} chunks; expected them coalesced`);
  await c.close();
  await server.close();
});

test('NOT_LEADER with a hint redirects to the leader, and the client then goes there directly', T, async () => {
  const leader = await FakeServer.start(kvScript());
  const follower = await FakeServer.start((req, s) => s.error(req, 'NOT_LEADER', 'not me', leader.hint));
  const c = await client([follower]);
  await c.put('k', 'v');
  assert.deepEqual(commandsOf(follower), ['put']);
  assert.deepEqual(commandsOf(leader), ['put']);
  assert.equal(await c.get('k'), 'v');
  await c.delete('k');
  assert.deepEqual(commandsOf(follower), ['put'], 'the leader cache sent later requests straight to the leader');
  assert.deepEqual(commandsOf(leader), ['put', 'get', 'delete']);
  await c.close();
  await leader.close();
  await follower.close();
});

test('NOT_LEADER without a hint tries the next server, and a success there is remembered', T, async () => {
  const lost = await FakeServer.start((req, s) => s.error(req, 'NOT_LEADER', 'no leader known'));
  const leader = await FakeServer.start(kvScript());
  const c = await client([lost, leader]);
  await c.put('k', 'v');
  assert.deepEqual(commandsOf(lost), ['put']);
  assert.deepEqual(commandsOf(leader), ['put']);
  // The success taught the client where the group's leader is.
  assert.equal(await c.get('k'), 'v');
  assert.deepEqual(commandsOf(lost), ['put']);
  assert.deepEqual(commandsOf(leader), ['put', 'get']);
  await c.close();
  await lost.close();
  await leader.close();
});

test('redirects stop after redirectsMax hops and NOT_LEADER surfaces with its hint', T, async () => {
  const a = await FakeServer.start(() => undefined);
  const b = await FakeServer.start(() => undefined);
  a.script = (req, s) => s.error(req, 'NOT_LEADER', 'ask b', b.hint);
  b.script = (req, s) => s.error(req, 'NOT_LEADER', 'ask a', a.hint);
  const c = await client([a], { redirectsMax: 3 });
  const e = await rejection(c.put('k', 'v'));
  assert.equal(e.code, 'NOT_LEADER');
  assert.ok(e.leader !== undefined && [a.port, b.port].includes(e.leader.clientPort));
  assert.equal(a.requests.length + b.requests.length, 4);
  await c.close();
  await a.close();
  await b.close();
});

test('a read is retried after its connection drops', T, async () => {
  const sm = createKvStateMachine(1);
  sm.apply(encodeCommand({ op: 'put', key: 'k', value: 'v' }), 1);
  const serve = kvScript(sm);
  const server = await FakeServer.start((req, s) => {
    if (req.conn === 1) req.socket.destroy();
    else serve(req, s);
  });
  const c = await client([server]);
  assert.equal(await c.get('k'), 'v');
  assert.equal(server.connections, 2);
  assert.deepEqual(commandsOf(server), ['get', 'get']);
  await c.close();
  await server.close();
});

test('a read is retried on TIMEOUT, OUTCOME_UNKNOWN and UNAVAILABLE answers', T, async () => {
  const sm = createKvStateMachine(1);
  sm.apply(encodeCommand({ op: 'put', key: 'k', value: 'v' }), 1);
  const serve = kvScript(sm);
  const failures = ['TIMEOUT', 'OUTCOME_UNKNOWN', 'UNAVAILABLE'] as const;
  const server = await FakeServer.start((req, s) => {
    const n = s.requests.length;
    if (n <= failures.length) s.error(req, failures[n - 1]!);
    else serve(req, s);
  });
  const c = await client([server]);
  assert.equal(await c.get('k'), 'v');
  assert.equal(server.requests.length, 4);
  await c.close();
  await server.close();
});

test('a write other than a put is not retried on OUTCOME_UNKNOWN, TIMEOUT or UNAVAILABLE: the caller gets the code', T, async () => {
  for (const code of ['OUTCOME_UNKNOWN', 'TIMEOUT', 'UNAVAILABLE'] as const) {
    const server = await FakeServer.start((req, s) => s.error(req, code, 'leadership lost'));
    const other = await FakeServer.start(kvScript());
    const c = await client([server, other]);
    assert.equal((await rejection(c.delete('k'))).code, code);
    assert.equal((await rejection(c.cas('k', null, 'v'))).code, code);
    assert.equal((await rejection(c.batch([{ op: 'put', key: 'k', value: 'v' }, { op: 'delete', key: 'k' }]))).code, code);
    assert.equal((await rejection(c.command(1, encodeCommand({ op: 'put', key: 'k', value: 'v' })))).code, code);
    // A resend would be on a backoff timer: a window, not an event, is what can show none came.
    await sleep(100);
    assert.equal(server.requests.length, 4, code);
    assert.equal(other.requests.length, 0, code);
    await c.close();
    await server.close();
    await other.close();
  }
});

test('a put is resent after OUTCOME_UNKNOWN, TIMEOUT or UNAVAILABLE, and succeeds on another server; not with resendPuts: false', T, async () => {
  for (const code of ['OUTCOME_UNKNOWN', 'TIMEOUT', 'UNAVAILABLE'] as const) {
    const server = await FakeServer.start((req, s) => s.error(req, code, 'leadership lost'));
    const other = await FakeServer.start(kvScript());
    const c = await client([server, other]);
    await c.put('k', 'v');
    await c.batch([{ op: 'put', key: 'k', value: 'v' }, { op: 'put', key: 'k2', value: 'w' }], c.groupOf('k'));
    assert.ok(commandsOf(server).length >= 1, code);
    assert.deepEqual(commandsOf(other), ['put', 'batch'], code);
    const strict = await client([server, other], { resendPuts: false });
    assert.equal((await rejection(strict.put('k', 'v'))).code, code);
    assert.deepEqual(commandsOf(other), ['put', 'batch'], code);
    await c.close();
    await strict.close();
    await server.close();
    await other.close();
  }
});

test('a write other than a put is not retried when its connection drops after it was sent', T, async () => {
  const server = await FakeServer.start((req) => req.socket.destroy());
  const c = await client([server]);
  const e = await rejection(c.delete('k'));
  assert.equal(e.code, 'OUTCOME_UNKNOWN');
  await sleep(100); // a window for a resend on a backoff timer, which must not come
  assert.equal(server.requests.length, 1);
  await c.close();
  await server.close();
});

test('a put whose connection drops after it was sent is resent; if no attempt succeeds it fails OUTCOME_UNKNOWN, never a clean "not applied"', T, async () => {
  const dropper = await FakeServer.start((req) => req.socket.destroy());
  const leader = await FakeServer.start(kvScript());
  const c = await client([dropper, leader]);
  await c.put('k', 'v');
  assert.deepEqual(commandsOf(dropper), ['put']);
  assert.deepEqual(commandsOf(leader), ['put']);
  await c.close();
  // The write reached a server that then dropped it; every later attempt hears NOT_LEADER
  // (certainly not applied) until the redirects run out. The answer must still say "maybe".
  const lost = await FakeServer.start(() => undefined);
  const other = await FakeServer.start((req, s) => s.error(req, 'NOT_LEADER', 'ask lost', lost.hint));
  lost.script = (req, s) => s.error(req, 'NOT_LEADER', 'ask other', other.hint);
  const d = await client([dropper, lost], { redirectsMax: 1 });
  const e = await rejection(d.put('k', 'v'));
  assert.equal(e.code, 'OUTCOME_UNKNOWN', e.message);
  assert.match(e.message, /may have been applied; the last attempt: NOT_LEADER/);
  assert.deepEqual([commandsOf(lost).length, commandsOf(other).length], [1, 1]);
  await d.close();
  // Or until the deadline: OUTCOME_UNKNOWN or TIMEOUT (whichever ends it), saying so too.
  const noLeader = await FakeServer.start((req, s) => s.error(req, 'NOT_LEADER', 'no leader known'));
  const f = await client([dropper, noLeader], { requestTimeoutMs: 400 });
  const t = await rejection(f.put('k', 'v'));
  assert.ok(['OUTCOME_UNKNOWN', 'TIMEOUT'].includes(t.code), t.code);
  assert.match(t.message, /may have been applied/);
  await f.close();
  await noLeader.close();
  await dropper.close();
  await lost.close();
  await other.close();
  await leader.close();
});

test('a write is retried when the server certainly did not take it (OVERLOADED, LEADER_TRANSFERRING, NO_GROUP)', T, async () => {
  const serve = kvScript();
  const busy = await FakeServer.start((req, s) => {
    const n = s.requests.length;
    if (n === 1) s.error(req, 'OVERLOADED');
    else if (n === 2) s.error(req, 'LEADER_TRANSFERRING');
    else if (n === 3) s.error(req, 'NO_GROUP');
    else serve(req, s);
  });
  const other = await FakeServer.start(serve);
  const c = await client([busy, other]);
  await c.put('k', 'v');
  assert.deepEqual(commandsOf(busy), ['put', 'put', 'put']);
  assert.deepEqual(commandsOf(other), ['put'], 'NO_GROUP moved the write to the next server');
  await c.close();
  await busy.close();
  await other.close();
});

test('a write is retried on the next server when the connection failed before it was written', T, async () => {
  const first = await FakeServer.start(kvScript());
  const second = await FakeServer.start(kvScript());
  const c = await client([first, second]);
  await c.put('k', 'v'); // the client now takes `first` for the leader of k's group
  await first.close(); // and it refuses connections from now on
  await turns(3); // the client reads the close of its connection in the next turn
  await c.put('k', 'w');
  assert.deepEqual(commandsOf(first), ['put']);
  assert.deepEqual(commandsOf(second), ['put'], 'the refused connection sent the write to the next server');
  await c.close();
  await second.close();
});

// ---------------------------------------------------------------------------------------------
// Failover: attempt timeouts, stale hints, backoff (issue 12, item 6).

/** A server that served the first `served` requests with `serve`, then stopped answering (as under SIGSTOP). */
function freezesAfter(served: number, serve = kvScript()): (req: FakeRequest, s: FakeServer) => void {
  return (req, s) => {
    if (s.requests.length <= served) serve(req, s);
  };
}

test('a put with no answer within attemptTimeoutMs goes to another server, and later calls skip the silent one', T, async () => {
  const sm = createKvStateMachine(1);
  const frozen = await FakeServer.start(freezesAfter(1, kvScript(sm)));
  const leader = await FakeServer.start(kvScript(sm));
  const c = await client([frozen, leader], { attemptTimeoutMs: 200, requestTimeoutMs: 5000 });
  await c.put('k', 'v0'); // the client now takes `frozen` for the leader
  const t0 = Date.now();
  await c.put('k', 'v1');
  const ms = Date.now() - t0;
  assert.ok(ms >= 190 && ms < 1500, `the put failed over after ${ms} ms`);
  assert.deepEqual(commandsOf(frozen), ['put', 'put']);
  assert.deepEqual(commandsOf(leader), ['put']);
  // The leader cache moved, and the silent server is skipped: these go straight to `leader`.
  const t1 = Date.now();
  assert.equal(await c.get('k'), 'v1');
  await c.put('k', 'v2');
  assert.ok(Date.now() - t1 < 150, `took ${Date.now() - t1} ms`);
  assert.deepEqual(commandsOf(frozen), ['put', 'put']);
  assert.deepEqual(commandsOf(leader), ['put', 'get', 'put']);
});

test('a read with no answer within attemptTimeoutMs is read from another server', T, async () => {
  const sm = createKvStateMachine(1);
  sm.apply(encodeCommand({ op: 'put', key: 'k', value: 'v' }), 1);
  const frozen = await FakeServer.start(() => undefined);
  const other = await FakeServer.start(kvScript(sm));
  const c = await client([frozen, other], { attemptTimeoutMs: 150 });
  assert.equal(await c.get('k'), 'v');
  assert.deepEqual(commandsOf(frozen), ['get']);
  assert.deepEqual(commandsOf(other), ['get']);
});

test('a cas with no answer within attemptTimeoutMs is not sent again: it waits for that answer until the deadline', T, async () => {
  const held: FakeRequest[] = [];
  const slow = await FakeServer.start((req) => void held.push(req));
  const other = await FakeServer.start(kvScript());
  const c = await client([slow, other], { attemptTimeoutMs: 100, requestTimeoutMs: 500 });
  // An answer after the attempt timeout, inside the deadline, is still the answer.
  const late = c.cas('k', null, 'v');
  await waitFor(() => held.length === 1);
  await sleep(250);
  kvScript()(held[0]!, slow);
  assert.deepEqual(await late, { ok: true, value: null });
  // No answer at all: TIMEOUT at the deadline, saying that the write may have been applied.
  const t0 = Date.now();
  const e = await rejection(c.cas('k', null, 'v'));
  const ms = Date.now() - t0;
  assert.equal(e.code, 'TIMEOUT');
  assert.match(e.message, /may have been applied/);
  assert.ok(ms >= 450, `failed after ${ms} ms`);
  assert.equal(other.requests.length, 0, 'a cas is never sent to a second server');
  assert.equal(slow.requests.length, 2);
});

test('a put takes the late success of an attempt it had given up on', T, async () => {
  const held: FakeRequest[] = [];
  const slow = await FakeServer.start((req, s) => {
    if (s.requests.length === 1) kvScript()(req, s);
    else held.push(req);
  });
  const follower = await FakeServer.start((req, s) => s.error(req, 'NOT_LEADER', 'ask slow', slow.hint));
  const c = await client([slow, follower], { attemptTimeoutMs: 100, requestTimeoutMs: 3000 });
  await c.put('a', '0');
  const p = c.put('a', '1');
  await waitFor(() => held.length === 1);
  // Past attemptTimeoutMs the put goes to another server meanwhile.
  await waitFor(() => commandsOf(follower).length >= 1);
  kvScript()(held[0]!, slow);
  await p;
  // The hint to `slow` was not followed again while it was silent: it got the put only once.
  assert.equal(commandsOf(slow).length, 2);
});

test('a stale hint to a refused node does not use up redirects: the put waits for the new leader', T, async () => {
  const dead = await deadAddress();
  const [deadHost, deadPort] = [dead.slice(0, dead.lastIndexOf(':')), Number(dead.slice(dead.lastIndexOf(':') + 1))];
  const deadHint = { id: 1, host: deadHost, clientPort: deadPort, wsPort: 0 };
  const leader = await FakeServer.start(kvScript());
  let electedAt = Infinity;
  const follower: (req: FakeRequest, s: FakeServer) => void = (req, s) =>
    s.error(req, 'NOT_LEADER', 'the leader I know', Date.now() >= electedAt ? leader.hint : deadHint);
  const f1 = await FakeServer.start(follower);
  const f2 = await FakeServer.start(follower);
  const c = await client([f1, f2], { redirectsMax: 2, requestTimeoutMs: 3000 });
  const t0 = Date.now();
  electedAt = t0 + 400;
  await c.put('k', 'v');
  const ms = Date.now() - t0;
  assert.ok(ms >= 390 && ms < 1500, `succeeded after ${ms} ms`);
  assert.deepEqual(commandsOf(leader), ['put']);
  // Backoff between asking the followers: not a busy loop over them.
  const asked = commandsOf(f1).length + commandsOf(f2).length;
  assert.ok(asked >= 3 && asked <= 30, `followers asked ${asked} times in ${ms} ms`);
});

test('a stale hint to a node that stopped answering is followed once per request, then the new leader is awaited', T, async () => {
  const frozen = await FakeServer.start(() => undefined);
  const leader = await FakeServer.start(kvScript());
  let electedAt = Infinity;
  const follower: (req: FakeRequest, s: FakeServer) => void = (req, s) =>
    s.error(req, 'NOT_LEADER', 'the leader I know', Date.now() >= electedAt ? leader.hint : frozen.hint);
  const f1 = await FakeServer.start(follower);
  const f2 = await FakeServer.start(follower);
  const c = await client([f1, f2], { attemptTimeoutMs: 150, downMs: 100, requestTimeoutMs: 4000 });
  const t0 = Date.now();
  electedAt = t0 + 700;
  await c.put('k', 'v');
  const ms = Date.now() - t0;
  assert.ok(ms >= 690 && ms < 2500, `succeeded after ${ms} ms`);
  assert.equal(commandsOf(frozen).length, 1, 'the hint to the silent node was followed once, though it was suspected only for downMs');
  assert.deepEqual(commandsOf(leader), ['put']);
});

test('retries back off from backoffMsMin, doubling up to backoffMsMax, with jitter; bad backoff options are refused', T, async () => {
  const at: number[] = [];
  const server = await FakeServer.start((req, s) => {
    at.push(Date.now());
    s.error(req, 'NOT_LEADER', 'no leader known');
  });
  const c = await client([server], { backoffMsMin: 40, backoffMsMax: 80, requestTimeoutMs: 900 });
  const e = await rejection(c.put('k', 'v'));
  assert.ok(['NOT_LEADER', 'TIMEOUT'].includes(e.code), e.code); // whichever the deadline ended
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  assert.ok(gaps.length >= 8 && gaps.length <= 45, `${gaps.length} retries: ${gaps.join(' ')}`);
  // Each wait is 50-100 % of its ceiling: at least 20 ms, at most 80 (plus timer slack).
  for (const g of gaps) assert.ok(g >= 18 && g <= 80 + 60, `gaps ${gaps.join(' ')}`);
  // Past the first, the ceiling is 80: the later waits average well above the first floor.
  const later = gaps.slice(2);
  assert.ok(later.reduce((x, y) => x + y, 0) / later.length >= 38, `gaps ${gaps.join(' ')}`);
  for (const bad of [{ backoffMsMin: 100, backoffMsMax: 50 }, { backoffMsMin: 0 }, { attemptTimeoutMs: 0 }, { downMs: -1 }, { resendPuts: 'yes' as unknown as boolean }]) {
    const err = await rejection(FlotillaClient.connect({ servers: [server.address], ...bad }));
    assert.equal(err.code, 'BAD_REQUEST', JSON.stringify(bad));
  }
});

test('the client\'s default deadline outlasts the servers\' default requestTimeoutMs and its sweep; an attempt is a fraction of it', () => {
  assert.ok(CLIENT_DEFAULTS.requestTimeoutMs > configDefaults.requestTimeoutMs + 1000);
  assert.ok(CLIENT_DEFAULTS.attemptTimeoutMs * 4 <= CLIENT_DEFAULTS.requestTimeoutMs);
  // An attempt outlasts one server election timeout (ticksElection × tickMs), the earliest a follower may stand.
  assert.ok(CLIENT_DEFAULTS.attemptTimeoutMs >= configDefaults.ticksElection * configDefaults.tickMs);
  assert.ok(CLIENT_DEFAULTS.backoffMsMin <= CLIENT_DEFAULTS.backoffMsMax);
});

test('connect fails with UNAVAILABLE when no server is reachable, and succeeds on the first one that is', T, async () => {
  const dead1 = await deadAddress();
  const dead2 = await deadAddress();
  const e = await rejection(FlotillaClient.connect({ servers: [dead1, dead2], connectTimeoutMs: 1000 }));
  assert.equal(e.code, 'UNAVAILABLE');
  const live = await FakeServer.start(kvScript());
  const c = await FlotillaClient.connect({ servers: [dead1, live.address] });
  clients.add(c);
  await c.put('k', 'v');
  assert.equal(live.requests.length, 1);
  await c.close();
  await live.close();
  assert.equal((await rejection(FlotillaClient.connect({ servers: ['nonsense'] }))).code, 'BAD_REQUEST');
});

test('a malformed response closes the connection and fails its requests with BAD_FRAME', T, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req, s) => {
    if (req.conn > 1) return kvScript()(req, s);
    held.push(req);
    if (held.length === 2) {
      // A frame of a request kind, which no server may send.
      req.socket.write(encodeFrame(FrameKind.Command, 0, req.requestId, req.group, new Uint8Array(0)));
    }
  });
  const c = await client([server]);
  const closed = new Promise<void>((resolve) => server.sockets.values().next().value!.once('close', () => resolve()));
  const [e1, e2] = await Promise.all([rejection(c.get('a')), rejection(c.put('b', '1'))]);
  assert.equal(e1.code, 'BAD_FRAME');
  assert.equal(e2.code, 'BAD_FRAME');
  await closed;
  // The next request opens a new connection.
  await c.put('b', '2');
  assert.equal(server.connections, 2);
  await c.close();
  await server.close();
});

test('a response frame longer than frameBytesMax is malformed', T, async () => {
  const server = await FakeServer.start((req) => {
    const f = Buffer.from(encodeFrame(FrameKind.Result, 0, req.requestId, req.group, new Uint8Array(0)));
    f.writeUInt32LE(0x7fffffff, 0);
    req.socket.write(f);
  });
  const c = await client([server], { frameBytesMax: 1 << 20 });
  assert.equal((await rejection(c.get('a'))).code, 'BAD_FRAME');
  await c.close();
  await server.close();
});

test('an error with request id 0 from the server fails the connection with its code', T, async () => {
  const server = await FakeServer.start((req) => {
    req.socket.end(encodeFrame(FrameKind.Error, 0, 0, 0, pack({ code: 'BAD_FRAME', message: 'bad!' }) as Uint8Array));
  });
  const c = await client([server]);
  const e = await rejection(c.put('a', '1'));
  assert.equal(e.code, 'BAD_FRAME');
  assert.match(e.message, /bad!/);
  await c.close();
  await server.close();
});

test('a request with no answer fails with TIMEOUT after requestTimeoutMs', T, async () => {
  const server = await FakeServer.start(() => undefined);
  const c = await client([server], { requestTimeoutMs: 300 });
  const t0 = Date.now();
  const [w, r] = await Promise.all([rejection(c.put('a', '1')), rejection(c.get('a'))]);
  const ms = Date.now() - t0;
  assert.equal(w.code, 'TIMEOUT');
  assert.equal(r.code, 'TIMEOUT');
  assert.ok(ms >= 280 && ms < 2000, `timed out after ${ms} ms`);
  assert.equal(server.requests.length, 2);
  await c.close();
  await server.close();
});

test('retries stop at the deadline: a server that is always OVERLOADED yields OVERLOADED in time', T, async () => {
  const server = await FakeServer.start((req, s) => s.error(req, 'OVERLOADED', 'busy'));
  const c = await client([server], { requestTimeoutMs: 400, retriesMax: 1000 });
  const t0 = Date.now();
  const e = await rejection(c.put('a', '1'));
  assert.ok(['OVERLOADED', 'TIMEOUT'].includes(e.code), e.code);
  assert.ok(Date.now() - t0 < 1500);
  const n = server.requests.length;
  assert.ok(n > 1 && n < 200, `${n} attempts`);
  await c.close();
  await server.close();
});

test('beyond inflightMax and queuedMax a call is refused with OVERLOADED at once', T, async () => {
  const held: FakeRequest[] = [];
  const server = await FakeServer.start((req) => held.push(req));
  const c = await client([server], { inflightMax: 2, queuedMax: 2 });
  const calls = Array.from({ length: 4 }, (_, i) => c.put(`k${i}`, 'v'));
  const e = await rejection(c.put('k4', 'v'));
  assert.equal(e.code, 'OVERLOADED');
  await waitFor(() => held.length === 2);
  await turns(3); // room for the server to read a third, had one been sent
  assert.equal(held.length, 2);
  const serve = kvScript();
  server.script = serve;
  for (const r of held.splice(0)) serve(r, server);
  await Promise.all(calls);
  assert.equal(server.requests.length, 4);
  await c.close();
  await server.close();
});

test('close fails the calls in progress with UNAVAILABLE, and later calls too', T, async () => {
  const server = await FakeServer.start(() => undefined);
  const c = await client([server]);
  const pending = rejection(c.put('a', '1'));
  await waitFor(() => server.requests.length === 1);
  await c.close();
  assert.equal((await pending).code, 'UNAVAILABLE');
  assert.equal((await rejection(c.get('a'))).code, 'UNAVAILABLE');
  await server.close();
});

test('admin: addGroup and removeGroup go to every server; one failure fails the call', T, async () => {
  const a = await FakeServer.start((req, s) => s.adminResult(req, { ok: true }));
  const b = await FakeServer.start((req, s) => s.adminResult(req, { ok: true }));
  const c = await client([a, b]);
  await c.admin.addGroup(77, [1, 2, 3]);
  await c.admin.removeGroup(78);
  for (const s of [a, b]) {
    assert.deepEqual(s.requests.map((r) => [r.kind, r.group, unpack(r.body)]), [
      [FrameKind.Admin, 77, { op: 'addGroup', members: [1, 2, 3] }],
      [FrameKind.Admin, 78, { op: 'removeGroup' }],
    ]);
  }
  b.script = (req, s) => s.adminResult(req, { ok: false, code: 'BAD_REQUEST', message: 'members differ' });
  const e = await rejection(c.admin.addGroup(77, [1, 2]));
  assert.equal(e.code, 'BAD_REQUEST');
  assert.match(e.message, new RegExp(`${b.address}.*members differ`));
  assert.equal((await rejection(c.admin.addGroup(77, []))).code, 'BAD_REQUEST');
  await c.close();
  await a.close();
  await b.close();
});

test('admin: transferLeader follows NOT_LEADER to the leader; status asks the server named', T, async () => {
  const leader = await FakeServer.start((req, s) => {
    const body = unpack(req.body) as { op: string };
    if (body.op === 'status') s.adminResult(req, { ok: true, groups: [{ group: req.group, role: 'leader' }] });
    else s.adminResult(req, { ok: true });
  });
  const follower = await FakeServer.start((req, s) => {
    const body = unpack(req.body) as { op: string };
    if (body.op === 'status') s.adminResult(req, { ok: true, groups: [{ group: req.group, role: 'follower' }] });
    else s.error(req, 'NOT_LEADER', 'not me', leader.hint);
  });
  const c = await client([follower, leader]);
  await c.admin.transferLeader(5, 3);
  assert.deepEqual(unpack(leader.requests[0]!.body), { op: 'transferLeader', to: 3 });
  assert.equal(leader.requests[0]!.group, 5);
  const st = (await c.admin.status(5, follower.address)) as { groups: { role: string }[] };
  assert.equal(st.groups[0]!.role, 'follower');
  const st2 = (await c.admin.status(5, leader.address)) as { groups: { role: string }[] };
  assert.equal(st2.groups[0]!.role, 'leader');
  await c.close();
  await leader.close();
  await follower.close();
});

test('a stale client is corrected by one redirection: WRONG_GROUP from a node with a newer map, one MapRequest, one resend to the owner', T, async () => {
  const sm = createKvStateMachine(1);
  const serve = kvScript(sm);
  const v1 = fakeMap(4);
  const server = await FakeServer.start((req, s) => {
    if (req.kind === FrameKind.Command) {
      // As a node checks: the key's slot must be the target group's in the node's map.
      const cmd = decodeCommand(req.body);
      const key = cmd.op === 'batch' ? cmd.ops[0]!.key : cmd.key;
      const owner = s.map!.ownerOf(slotOf(key));
      if (owner !== req.group) {
        const e = { code: 'WRONG_GROUP', message: 'not this group', version: s.map!.version, group: owner, slot: slotOf(key) };
        s.reply(req, FrameKind.Error, pack(e) as Uint8Array);
        return;
      }
    }
    serve(req, s);
  });
  server.map = v1;
  const c = await client([server]);
  assert.equal(c.mapVersion, 1);
  const key = 'hello'; // slot 866: group 1 in v1
  assert.equal(c.groupOf(key), 1);
  await c.put(key, 'one');
  // The cluster moves group 1's slots to group 2 (version 2); the client still holds version 1.
  server.map = v1.assignSlots(v1.slotsOf(1), 2);
  const before = { requests: server.requests.length, maps: server.mapRequests };
  await c.put(key, 'two');
  const sent = server.requests.slice(before.requests).filter((r) => r.kind === FrameKind.Command);
  assert.deepEqual(sent.map((r) => r.group), [1, 2], 'one refused attempt to the old owner, one resend to the new');
  assert.equal(server.mapRequests - before.maps, 1, 'the map was fetched once, from the node that answered');
  assert.equal(c.mapVersion, 2);
  assert.equal(c.groupOf(key), 2);
  assert.equal(await c.get(key), 'two');

  // A node whose map is older than the client's (it has not learnt a migration yet): told so by a
  // MapRequest holding the client's version (so it fetches the newer map at once), then asked
  // again after a short wait, at most redirectsMax times; a node that stays behind gets
  // WRONG_GROUP surfaced.
  server.map = server.map.assignSlots(v1.slotsOf(1), 3);
  const c2 = await client([server]);
  server.map = fakeMap(4); // the node is back at version 1, behind the client's 3
  const maps = server.mapRequests;
  const e = await rejection(c2.put(key, 'x'));
  assert.equal(e.code, 'WRONG_GROUP');
  assert.equal(e.wrongGroup?.version, 1);
  assert.equal(e.wrongGroup?.group, 1);
  assert.equal(server.mapRequests - maps, CLIENT_DEFAULTS.redirectsMax, 'one MapRequest per attempt refused by the lagging node');
});

test('connect waits while the cluster has not made its map yet, and routes once it has', T, async () => {
  const server = await FakeServer.start(kvScript());
  const real = fakeMap(2);
  server.map = KeyMap.empty();
  setTimeout(() => { server.map = real; }, 300);
  const c = await client([server]);
  assert.equal(c.mapVersion, 1);
  assert.ok(server.mapRequests >= 2, `asked again while the map was at version 0 (${server.mapRequests} MapRequests)`);
  await c.put('a', '1');
  assert.equal(server.requests.find((r) => r.kind === FrameKind.Command)!.group, c.groupOf('a'));
  // And groups is no option any more: the cluster says where keys live.
  await assert.rejects(FlotillaClient.connect({ servers: [server.address], groups: 4 } as ClientOptions), /groups is no client option/);
});

test('a node that names a wildcard address in the map (started alone on 0.0.0.0) is reached at its seed\'s host', () => {
  assert.equal(reachableAddress('0.0.0.0:7002', '10.1.2.3:7002'), '10.1.2.3:7002');
  assert.equal(reachableAddress('[::]:7012', '[fe80::1]:7002'), '[fe80::1]:7012');
  assert.equal(reachableAddress('10.0.0.5:7002', '10.1.2.3:7002'), '10.0.0.5:7002');
  assert.equal(reachableAddress('db-1.example:7002', '127.0.0.1:7002'), 'db-1.example:7002');
});

test('connect asks the next seed for the map when one answers version 0 (a node restarted outside the meta group)', T, async () => {
  const behind = await FakeServer.start(kvScript());
  behind.map = KeyMap.empty();
  const ahead = await FakeServer.start(kvScript());
  ahead.map = fakeMap(2);
  const c = await client([behind, ahead]);
  assert.equal(c.mapVersion, 1);
  assert.ok(behind.mapRequests >= 1 && ahead.mapRequests >= 1, `asked both (${behind.mapRequests}, ${ahead.mapRequests})`);
});
