// Clients over WebSocket against a real node process, for both engines: uWebSockets.js
// (`websocket: 'uws'`, skipped with the reason when it does not load here) and the pure-JS `ws`
// server (`websocket: 'ws'`). A plain `ws` client sends the same 16-byte-header frames as TCP,
// one binary message each: a put, a linearizable get, a stale get, pipelined requests answered
// by request id, and malformed messages (text, a length that disagrees with the header) that
// get BAD_FRAME and close only their own socket. `websocket: 'auto'` serves with uWS where it
// loads and `ws` elsewhere (Node 22 and later, FLOTILLA_NATIVE_FREE=1) and logs which and why;
// `websocket: 'uws'` where uWS cannot load is a refusal to start (UWS_UNAVAILABLE).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpack } from 'msgpackr';
import WebSocket from 'ws';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader, type ErrorBody } from '../../src/protocol/client-frame.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { type KvCommand, type KvResult } from '../../src/kv/kv-types.js';
import { initialGroupOf as groupOfKey } from '../cluster-map/initial-group.js';
import { uwsProblem } from '../../src/transport/uws-listener.js';
import { CLI, startCluster, waitFor, type TestCluster } from './cluster-harness.js';

const GROUPS = 4;
const REPLY_MS_MAX = 10_000;
const OPEN_MS_MAX = 5_000;
const LEADERS_MS_MAX = 30_000;
const PIPELINED = 300;

const nativeFree = process.env['FLOTILLA_NATIVE_FREE'] === '1';

interface Reply { kind: number; flags: number; requestId: number; group: number; body: Uint8Array }

/** One WebSocket client connection that matches response frames to requests by id. */
class WsClient {
  private readonly replies = new Map<number, Reply>();
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private nextId = 1;
  /** Frames that broke the protocol as a client sees it (text, a length that disagrees). */
  readonly problems: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.problems.push('text message from the server');
        return;
      }
      if (data.length < FRAME_HEADER_BYTES || readHeader(data, 0).frameBytes !== data.length) {
        this.problems.push(`message of ${data.length} bytes is not one frame`);
        return;
      }
      const h = readHeader(data, 0);
      const r: Reply = { kind: h.kind, flags: h.flags, requestId: h.requestId, group: h.group, body: data.subarray(FRAME_HEADER_BYTES) };
      const w = this.waiting.get(r.requestId);
      if (w !== undefined) {
        this.waiting.delete(r.requestId);
        w(r);
      } else {
        if (this.replies.has(r.requestId)) this.problems.push(`second reply to request ${r.requestId}`);
        this.replies.set(r.requestId, r);
      }
    });
    ws.on('error', () => undefined); // a refused or reset socket shows as `closed`
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(port: number): Promise<WsClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, handshakeTimeout: OPEN_MS_MAX });
    ws.binaryType = 'nodebuffer';
    const client = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Sends a Command frame without waiting; returns its request id. */
  send(cmd: KvCommand, flags = 0, group = groupOfCommand(cmd)): number {
    const id = this.nextId++;
    this.ws.send(encodeFrame(FrameKind.Command, flags, id, group, encodeCommand(cmd)), { binary: true });
    return id;
  }

  sendRaw(data: Uint8Array | string, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  reply(requestId: number): Promise<Reply> {
    const r = this.replies.get(requestId);
    if (r !== undefined) {
      this.replies.delete(requestId);
      return Promise.resolve(r);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        reject(new Error(`no reply to request ${requestId} in ${REPLY_MS_MAX} ms`));
      }, REPLY_MS_MAX);
      this.waiting.set(requestId, (got) => {
        clearTimeout(timer);
        resolve(got);
      });
    });
  }

  /** The first reply that arrives whatever its id (for connection-level errors, id 0). */
  async anyReply(): Promise<Reply> {
    await waitFor(() => this.replies.size > 0, REPLY_MS_MAX, 'a reply');
    const [id, r] = this.replies.entries().next().value as [number, Reply];
    this.replies.delete(id);
    return r;
  }

  async request(cmd: KvCommand, flags = 0): Promise<KvResult> {
    return resultOf(await this.reply(this.send(cmd, flags)));
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000);
    const done = await Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    if (!done) this.ws.terminate();
  }
}

function groupOfCommand(cmd: KvCommand): number {
  if (cmd.op === 'batch') throw new Error('give a batch its group');
  return groupOfKey(cmd.key, GROUPS);
}

function resultOf(r: Reply): KvResult {
  if (r.kind === FrameKind.Error) {
    const e = unpack(r.body) as ErrorBody;
    throw Object.assign(new Error(`${e.code}: ${e.message}`), { code: e.code });
  }
  assert.equal(r.kind, FrameKind.Result, 'a Result frame');
  return decodeKvResult(r.body);
}

function errorCode(r: Reply): string {
  assert.equal(r.kind, FrameKind.Error, 'an Error frame');
  return (unpack(r.body) as ErrorBody).code;
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The engine in the node's startup line `node 1 client ws HOST:PORT (uws|ws)`. */
async function servingEngine(cluster: TestCluster): Promise<{ port: number; engine: string }> {
  const re = /node 1 client ws [\d.]+:(\d+) \((uws|ws)\)/;
  await waitFor(() => re.test(cluster.output), 10_000, 'the node\'s "client ws" line');
  const m = re.exec(cluster.output)!;
  return { port: Number(m[1]), engine: m[2]! };
}

/** One key in each group 1..GROUPS, by the protocol's key → group mapping. */
function keyPerGroup(): string[] {
  const keys = new Map<number, string>();
  for (let i = 0; keys.size < GROUPS; i++) {
    const g = groupOfKey(`g-${i}`, GROUPS);
    if (!keys.has(g)) keys.set(g, `g-${i}`);
  }
  return [...keys.values()];
}

/** Puts a key in every group until each answers: the groups elect their leaders after start. */
async function untilLeaders(c: WsClient): Promise<void> {
  const deadline = Date.now() + LEADERS_MS_MAX;
  for (const key of keyPerGroup()) {
    for (;;) {
      try {
        assert.deepEqual(await c.request({ op: 'put', key, value: 'first' }), { op: 'put' });
        break;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== 'NOT_LEADER' && code !== 'LEADER_TRANSFERRING' && code !== 'OVERLOADED') throw e;
        if (Date.now() > deadline) throw new Error(`no leader for the group of ${key} in ${LEADERS_MS_MAX} ms: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

async function scenarios(cluster: TestCluster, port: number): Promise<void> {
  const a = await WsClient.open(port);
  try {
    await untilLeaders(a);

    // Put, linearizable get, stale get.
    assert.deepEqual(await a.request({ op: 'put', key: 'user:42', value: 'hello' }), { op: 'put' });
    assert.deepEqual(await a.request({ op: 'get', key: 'user:42' }, FrameFlag.Read), { op: 'get', value: 'hello' });
    assert.deepEqual(await a.request({ op: 'get', key: 'user:42' }, FrameFlag.Read | FrameFlag.Stale), { op: 'get', value: 'hello' });
    assert.deepEqual(await a.request({ op: 'get', key: 'absent' }, FrameFlag.Read), { op: 'get', value: null });
    // A write sent with Read is refused, and the connection stays open.
    await assert.rejects(a.request({ op: 'put', key: 'user:42', value: 'no' }, FrameFlag.Read), { code: 'BAD_REQUEST' });

    // Pipelined: every request sent before any answer is read, over all groups; each answered
    // once, matched by request id.
    const puts = new Map<number, string>();
    for (let i = 0; i < PIPELINED; i++) puts.set(a.send({ op: 'put', key: `p-${i}`, value: `v-${i}` }), `p-${i}`);
    for (const id of puts.keys()) assert.deepEqual(resultOf(await a.reply(id)), { op: 'put' });
    const gets = new Map<number, { i: number; stale: boolean }>();
    for (let i = 0; i < PIPELINED; i++) {
      const stale = i % 3 === 0;
      gets.set(a.send({ op: 'get', key: `p-${i}` }, stale ? FrameFlag.Read | FrameFlag.Stale : FrameFlag.Read), { i, stale });
    }
    for (const [id, { i }] of gets) assert.deepEqual(resultOf(await a.reply(id)), { op: 'get', value: `v-${i}` }, `get p-${i}`);

    // A text message: BAD_FRAME (request id 0) and close code 1008 for that socket only.
    const b = await WsClient.open(port);
    b.sendRaw('{"op":"get","key":"user:42"}', false);
    const bErr = await b.anyReply();
    assert.equal(errorCode(bErr), 'BAD_FRAME');
    assert.equal(bErr.requestId, 0);
    assert.equal((await within(b.closed, 5000, 'the text-sending socket to close')).code, 1008);

    // A binary message whose header claims more bytes than it holds: BAD_FRAME with its id.
    const c = await WsClient.open(port);
    const frame = encodeFrame(FrameKind.Command, FrameFlag.Read, 77, 1, encodeCommand({ op: 'get', key: 'user:42' }));
    c.sendRaw(frame.subarray(0, frame.length - 3), true);
    const cErr = await c.anyReply();
    assert.equal(errorCode(cErr), 'BAD_FRAME');
    assert.equal(cErr.requestId, 77);
    assert.equal((await within(c.closed, 5000, 'the misframed socket to close')).code, 1008);

    // The first socket, and new ones, are served as before.
    assert.deepEqual(await a.request({ op: 'get', key: 'user:42' }, FrameFlag.Read), { op: 'get', value: 'hello' });
    const d = await WsClient.open(port);
    assert.deepEqual(await d.request({ op: 'get', key: 'p-7' }, FrameFlag.Read | FrameFlag.Stale), { op: 'get', value: 'v-7' });
    await d.close();
    for (const client of [a, b, c, d]) assert.deepEqual(client.problems, []);
    assert.ok(await cluster.healthy(1), 'the node is healthy');
  } finally {
    await a.close();
  }
}

/** null when uWebSockets.js can serve in this process (never under FLOTILLA_NATIVE_FREE=1). */
const uwsMissing = uwsProblem();
const autoEngine = uwsMissing === null ? 'uws' : 'ws';

const engines: Array<{ config: 'uws' | 'ws'; skip: string | false }> = [
  { config: 'uws', skip: uwsMissing !== null ? `uWebSockets.js cannot be used here: ${uwsMissing}` : false },
  { config: 'ws', skip: false },
];

for (const e of engines) {
  const name = `WebSocket clients of a real node, websocket: '${e.config}'${nativeFree ? ' (FLOTILLA_NATIVE_FREE=1)' : ''}: `
    + 'put, linearizable and stale get, pipelining, BAD_FRAME closes only its socket';
  test(name, { timeout: 120_000, skip: e.skip }, async () => {
    const cluster = await startCluster({ nodes: 1, groups: GROUPS, extra: { websocket: e.config } });
    try {
      const serving = await servingEngine(cluster);
      assert.equal(serving.engine, e.config, `engine in the startup line; output:\n${cluster.output}`);
      assert.equal(serving.port, cluster.node(1).wsPort);
      await scenarios(cluster, serving.port);
    } finally {
      await cluster.stop();
    }
  });
}

test(`websocket: 'auto' serves with ${autoEngine} here and says so at start, with the reason`, { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 1, groups: GROUPS, extra: { websocket: 'auto', logLevel: 'info' } });
  try {
    const serving = await servingEngine(cluster);
    assert.equal(serving.engine, autoEngine, `engine in the startup line; output:\n${cluster.output}`);
    const line = cluster.output.split('\n').map((l) => /\{.*"msg":"WebSocket clients served by.*$/.exec(l)?.[0]).find((l) => l !== undefined);
    assert.ok(line !== undefined, `an info line naming the WebSocket engine; output:\n${cluster.output}`);
    const logged = JSON.parse(line) as { level: string; engine: string; reason: string };
    assert.equal(logged.level, 'info');
    assert.equal(logged.engine, autoEngine);
    assert.ok(logged.reason.startsWith(`websocket: auto; uWebSockets.js ${uwsMissing === null ? 'loads' : 'cannot be used'} on Node ${process.version} `), logged.reason);
    if (uwsMissing !== null) assert.ok(logged.reason.endsWith(uwsMissing), logged.reason);
    const c = await WsClient.open(serving.port);
    try {
      await untilLeaders(c);
      assert.deepEqual(await c.request({ op: 'get', key: keyPerGroup()[0]! }, FrameFlag.Read), { op: 'get', value: 'first' });
    } finally {
      await c.close();
    }
  } finally {
    await cluster.stop();
  }
});

/** Runs `flotilla start` to its exit (bounded); returns its exit code and its output. */
function startToExit(args: string[], env: NodeJS.ProcessEnv, ms: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`flotilla start still running after ${ms} ms; output:\n${stdout}${stderr}`));
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Where uWebSockets.js cannot load, 'uws' is a refusal at start. FLOTILLA_NATIVE_FREE=1 makes it
// unloadable on any Node; on a Node it has no binary for (22 and later) it is so by itself.
const refusals: Array<{ why: string; env: NodeJS.ProcessEnv; problem: string }> = [
  { why: 'FLOTILLA_NATIVE_FREE=1', env: { ...process.env, FLOTILLA_NATIVE_FREE: '1' }, problem: 'FLOTILLA_NATIVE_FREE=1' },
];
if (!nativeFree && uwsMissing !== null) refusals.push({ why: `its add-on does not load on Node ${process.version}`, env: process.env, problem: uwsMissing });

for (const r of refusals) {
  test(`websocket: 'uws' where uWebSockets.js cannot be used (${r.why}): the node refuses to start with UWS_UNAVAILABLE, before it touches its data directory`, { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-uws-'));
    try {
      const dataDir = path.join(dir, 'data');
      const out = await startToExit([
        '--data-dir', dataDir, '--websocket', 'uws', '--shards', '1', '--groups', '1',
        '--raft-port', '0', '--client-port', '0', '--admin-port', '0', '--ws-port', '0',
      ], r.env, 30_000);
      assert.equal(out.code, 1, `exit code; output:\n${out.stdout}${out.stderr}`);
      const m = /^flotilla: UWS_UNAVAILABLE: (.*)$/m.exec(out.stderr);
      assert.ok(m !== null, `a UWS_UNAVAILABLE line on stderr:\n${out.stderr}`);
      assert.ok(m[1]!.includes(`Node ${process.version}`), m[1]);
      assert.ok(m[1]!.includes(r.problem), m[1]);
      assert.doesNotMatch(out.stdout, /client ws|node serving/, 'nothing served');
      assert.equal(fs.existsSync(dataDir), false, 'the data directory was not created');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
