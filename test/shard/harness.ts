// A cluster of real shards in one process, for the shard tests. Each "node" is one shard task
// (runShard, called on this thread: it is async) with its own temp directory, real WAL, real
// fsync. The harness plays the main thread of every node: it owns both rings of each shard,
// relays each shard's OutKind.Peer records into the destination shard's in ring as InKind.Peer
// records (arg = source node), and acts as a client with hand-made frames. Not a test file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { pack, unpack } from 'msgpackr';
import { InKind, OutKind, RECORD_HEADER_BYTES, recordArg, writeRecordHeader } from '../../src/ring/records.js';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader, type ErrorBody } from '../../src/protocol/client-frame.js';
import { createCounters, ShardCounter } from '../../src/shard/counters.js';
import { runShard } from '../../src/shard/shard-task.js';
import type { AdminReply, AdminRequest, GroupStatus, PeerInfo, ShardTask } from '../../src/shard/task.js';
import { encodeCommand, type KvCommand } from '../../src/kv/kv-state-machine.js';
import { decodeKvResult } from '../../src/kv/kv-service.js';
import type { KvResult } from '../../src/kv/kv-state-machine.js';

export const RING_BYTES = 1 << 20;
/** The connection id the harness uses for its client requests. */
export const CONN = 7;

export interface Response {
  kind: FrameKind;
  requestId: number;
  group: number;
  body: Uint8Array;
}

export interface ShardEventRecord {
  type: string;
  shard: number;
  message?: string;
}

interface InRecord {
  kind: InKind;
  arg: number;
  payload: Uint8Array;
}

export interface TestNode {
  id: number;
  dir: string;
  task: ShardTask;
  inRing: SpscRing;
  outRing: SpscRing;
  counters: Float64Array;
  /** The runShard promise. */
  done: Promise<void>;
  /** Peer records are relayed to it. */
  accepting: boolean;
  events: ShardEventRecord[];
  queue: InRecord[];
  writing: boolean;
  pumped: Promise<void>;
}

export type TaskOptions = Partial<Omit<ShardTask, 'inRing' | 'outRing' | 'counters' | 'dir' | 'nodeId' | 'peers'>>;

export class ShardCluster {
  readonly root: string;
  readonly nodes = new Map<number, TestNode>();
  readonly peers: PeerInfo[];
  /** Responses per request id: every request must get exactly one. */
  readonly answered = new Map<number, number>();
  readonly sent = new Set<number>();
  /** Return true to drop a peer record from → to (partitions). */
  drop: (from: number, to: number) => boolean = () => false;
  private nextRequestId = 1;
  private nextAdminId = 1;
  private readonly waiting = new Map<number, (r: Response) => void>();
  private readonly admins = new Map<number, (r: AdminReply) => void>();
  private readonly eventWaiters: (() => void)[] = [];

  /**
   * With `workers`, each shard runs in a worker thread (as under piscina) instead of on this
   * thread; a task's promise then settles only once its thread has exited by itself.
   */
  constructor(readonly ids: number[], readonly options: TaskOptions = {}, readonly workers = false) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-shard-'));
    this.peers = ids.map((id) => ({ id, host: '127.0.0.1', raftPort: 9000 + id, clientPort: 7000 + id, wsPort: 8000 + id, adminPort: 6000 + id }));
  }

  node(id: number): TestNode {
    const n = this.nodes.get(id);
    assert.ok(n !== undefined, `node ${id} is not running`);
    return n;
  }

  counter(id: number, c: ShardCounter): number {
    return this.node(id).counters[c]!;
  }

  /** Starts (or restarts from its directory) node `id`; resolves once it reported ready. */
  async start(id: number, overrides: TaskOptions = {}): Promise<TestNode> {
    assert.ok(!this.nodes.has(id), `node ${id} already runs`);
    const dir = path.join(this.root, `node-${id}`, 'shard-0');
    const inSab = SpscRing.allocate(RING_BYTES);
    const outSab = SpscRing.allocate(RING_BYTES);
    const counters = createCounters();
    const task: ShardTask = {
      shard: 0,
      shards: 1,
      nodeId: id,
      peers: this.peers,
      inRing: inSab,
      outRing: outSab,
      counters,
      dir,
      bootstrapGroups: [1, 2, 3, 4],
      syncForce: true,
      segmentBytes: 1 << 20,
      tickMs: 10,
      ticksElection: 10,
      ticksHeartbeat: 1,
      snapshotEntries: 10_000,
      snapshotLogRatio: 1,
      snapshotKeepEntries: 100,
      pendingPerGroupMax: 2000,
      requestTimeoutMs: 10_000,
      turnRecordsMax: 256,
      snapChunkBytes: 16 << 10,
      snapshotBytesMax: 64 << 20,
      stateMachine: null,
      logLevel: 'warn',
      ...this.options,
      ...overrides,
    };
    const n: TestNode = {
      id, dir, task,
      inRing: new SpscRing(inSab),
      outRing: new SpscRing(outSab),
      counters: new Float64Array(counters),
      done: Promise.resolve(),
      accepting: false,
      events: [],
      queue: [],
      writing: false,
      pumped: Promise.resolve(),
    };
    this.nodes.set(id, n);
    n.done = this.workers ? runInWorker(task) : runShard(task);
    n.pumped = this.pump(n);
    let ended: string | null = null;
    void n.done.then(() => { ended = 'stopped'; }, (e: unknown) => { ended = `failed: ${e instanceof Error ? e.message : String(e)}`; });
    const isReady = (): boolean => n.events.some((e) => e.type === 'ready');
    await this.until(() => isReady() || ended !== null, 10_000, `node ${id} ready`);
    assert.ok(isReady(), `node ${id} did not start: ${String(ended)}`);
    n.accepting = true;
    for (const other of this.nodes.values()) {
      if (other === n) continue;
      this.enqueue(other, InKind.PeerState, id, new Uint8Array([1]));
      this.enqueue(n, InKind.PeerState, other.id, new Uint8Array([1]));
    }
    return n;
  }

  /** Sends Stop and waits for the task to end; peers are told the link went down. */
  async stop(id: number): Promise<void> {
    const n = this.node(id);
    n.accepting = false;
    this.enqueue(n, InKind.Stop, 0, new Uint8Array(0));
    await withTimeout(n.done, 15_000, `node ${id} stop`);
    await withTimeout(n.pumped, 5_000, `node ${id} out ring drained`);
    assert.ok(n.events.some((e) => e.type === 'stopped'), `node ${id} posted no 'stopped' event`);
    this.nodes.delete(id);
    for (const other of this.nodes.values()) this.enqueue(other, InKind.PeerState, id, new Uint8Array([0]));
  }

  /** Waits for a node's task to end on its own (a failure); returns how it ended. */
  async ended(id: number): Promise<Error | null> {
    const n = this.node(id);
    n.accepting = false;
    const how = await withTimeout(n.done.then(() => null, (e: unknown) => (e instanceof Error ? e : new Error(String(e)))), 15_000, `node ${id} to end`);
    await withTimeout(n.pumped, 5_000, `node ${id} out ring drained`);
    this.nodes.delete(id);
    return how;
  }

  async stopAll(): Promise<void> {
    for (const id of [...this.nodes.keys()]) await this.stop(id);
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  // --- Client side ---

  /** Sends one client frame to node `id`; resolves with its response. */
  request(id: number, kind: FrameKind, flags: number, group: number, body: Uint8Array): Promise<Response> {
    const requestId = this.nextRequestId++;
    this.sent.add(requestId);
    const frame = encodeFrame(kind, flags, requestId, group, body);
    return withTimeout(new Promise<Response>((resolve) => {
      this.waiting.set(requestId, resolve);
      this.enqueue(this.node(id), InKind.Client, CONN, frame);
    }), 20_000, `request ${requestId} to node ${id}`);
  }

  kv(id: number, group: number, cmd: KvCommand, flags = 0): Promise<Response> {
    return this.request(id, FrameKind.Command, flags, group, encodeCommand(cmd));
  }

  put(id: number, group: number, key: string, value: string): Promise<Response> {
    return this.kv(id, group, { op: 'put', key, value });
  }

  get(id: number, group: number, key: string, mode: 'linearizable' | 'stale'): Promise<Response> {
    return this.kv(id, group, { op: 'get', key }, mode === 'stale' ? FrameFlag.Read | FrameFlag.Stale : FrameFlag.Read);
  }

  /** Node-level admin (InKind.Admin). */
  admin(id: number, req: AdminRequest): Promise<AdminReply> {
    const adminId = this.nextAdminId++;
    return withTimeout(new Promise<AdminReply>((resolve) => {
      this.admins.set(adminId, resolve);
      this.enqueue(this.node(id), InKind.Admin, adminId, pack(req) as Uint8Array);
    }), 20_000, `admin ${req.op} on node ${id}`);
  }

  async status(id: number): Promise<GroupStatus[]> {
    const r = await this.admin(id, { op: 'status' });
    assert.ok(r.ok && r.groups !== undefined, `status on node ${id}: ${JSON.stringify(r)}`);
    return r.groups;
  }

  /** The leader of `group` among the running nodes, once exactly one running node leads it at the highest term. */
  async leaderOf(group: number, timeoutMs = 10_000): Promise<number> {
    let leader = 0;
    await this.until(async () => {
      leader = 0;
      let best = -1;
      const leaders: number[] = [];
      for (const id of this.nodes.keys()) {
        const s = (await this.status(id)).find((g) => g.group === group);
        if (s === undefined) continue;
        if (s.role === 'leader' && s.term >= best) {
          if (s.term > best) leaders.length = 0;
          best = s.term;
          leaders.push(id);
        }
      }
      if (leaders.length !== 1) return false;
      leader = leaders[0]!;
      return true;
    }, timeoutMs, `a leader for group ${group}`);
    return leader;
  }

  /** Puts through whichever node leads, retrying on NOT_LEADER and OUTCOME_UNKNOWN-free errors. */
  async putAnywhere(group: number, key: string, value: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let to = [...this.nodes.keys()][0]!;
    for (;;) {
      const r = await this.put(to, group, key, value);
      if (r.kind === FrameKind.Result) return;
      const e = errorOf(r);
      assert.ok(Date.now() < deadline, `put ${key} in group ${group} kept failing: ${e.code} ${e.message}`);
      if (e.code === 'NOT_LEADER' && e.leader !== undefined && this.nodes.has(e.leader.id)) to = e.leader.id;
      else {
        const ids = [...this.nodes.keys()];
        to = ids[(ids.indexOf(to) + 1) % ids.length]!;
        await sleep(20);
      }
    }
  }

  /** Every request sent got exactly one response. */
  async checkOneResponseEach(): Promise<void> {
    await this.until(() => [...this.sent].every((id) => this.answered.has(id)), 10_000, 'a response to every request');
    // A duplicate, if any, would be in a shard's outbox or out ring by now: let every shard run
    // two more turns (its ticks bring them; its turn counter, not a clock, says when) and the
    // out rings drain.
    const ids = [...this.nodes.keys()];
    await this.moreTurns(ids, 2);
    await this.until(() => ids.every((id) => this.node(id).outRing.usedBytes() === 0), 10_000, 'every out ring drained');
    for (const id of this.sent) assert.equal(this.answered.get(id), 1, `request ${id} got ${this.answered.get(id) ?? 0} responses`);
    for (const id of this.answered.keys()) assert.ok(this.sent.has(id), `a response to request ${id}, which was never sent`);
  }

  /**
   * Waits until each of `ids` has run `n` more turns than now (a shard's ticks bring turns even
   * with no input): what was in its in ring or outbox has been handled by then. An event to wait
   * for where a test would otherwise sleep "long enough" for nothing more to happen.
   */
  async moreTurns(ids: number[], n: number): Promise<void> {
    const turns = new Map(ids.map((id) => [id, this.counter(id, ShardCounter.Turns)]));
    await this.until(() => ids.every((id) => this.counter(id, ShardCounter.Turns) >= turns.get(id)! + n), 10_000, `${n} more turns of shards ${ids.join(', ')}`);
  }

  async until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(10);
    }
  }

  // --- The main thread's side of the rings ---

  /** Writes in-ring records in order, waiting for room when the ring is full (never dropping). */
  enqueue(n: TestNode, kind: InKind, arg: number, payload: Uint8Array): void {
    n.queue.push({ kind, arg, payload });
    if (!n.writing) void this.writeQueue(n);
  }

  private async writeQueue(n: TestNode): Promise<void> {
    n.writing = true;
    const ring = n.inRing;
    try {
      while (n.queue.length > 0) {
        const r = n.queue[0]!;
        const bytes = RECORD_HEADER_BYTES + r.payload.length;
        const at = ring.reserve(bytes);
        if (at < 0) {
          ring.notify();
          await ring.waitRoom(bytes);
          continue;
        }
        writeRecordHeader(ring.data, at, r.kind, r.arg);
        ring.data.set(r.payload, at + RECORD_HEADER_BYTES);
        ring.commit();
        n.queue.shift();
      }
      ring.notify();
    } catch {
      // The ring was let go (the node ended): what was queued for it goes nowhere.
      n.queue.length = 0;
    } finally {
      n.writing = false;
    }
  }

  private async pump(n: TestNode): Promise<void> {
    const ring = n.outRing;
    let ended = false;
    void n.done.then(() => { ended = true; }, () => { ended = true; });
    for (;;) {
      await Promise.race([ring.waitData(), n.done.then(noop, noop)]);
      for (let at = ring.read(); at >= 0; at = ring.read()) {
        this.handleOut(n, ring.data, at, at + ring.readBytes);
        ring.release();
      }
      ring.notifyRoom();
      if (ended) {
        // The task is over: what it wrote is all there; read it and let go of the ring.
        for (let at = ring.read(); at >= 0; at = ring.read()) {
          this.handleOut(n, ring.data, at, at + ring.readBytes);
          ring.release();
        }
        ring.close();
        n.inRing.close();
        return;
      }
    }
  }

  private handleOut(n: TestNode, buf: Uint8Array, at: number, end: number): void {
    const arg = recordArg(buf, at);
    const from = at + RECORD_HEADER_BYTES;
    switch (buf[at]) {
      case OutKind.Client: {
        assert.equal(arg, CONN, 'response for a connection the harness never used');
        for (let p = from; p < end;) {
          const h = readHeader(buf, p);
          assert.ok(h.frameBytes >= FRAME_HEADER_BYTES && p + h.frameBytes <= end, 'response frames overrun their record');
          const r: Response = { kind: h.kind, requestId: h.requestId, group: h.group, body: buf.slice(p + FRAME_HEADER_BYTES, p + h.frameBytes) };
          this.answered.set(h.requestId, (this.answered.get(h.requestId) ?? 0) + 1);
          const w = this.waiting.get(h.requestId);
          this.waiting.delete(h.requestId);
          w?.(r);
          p += h.frameBytes;
        }
        return;
      }
      case OutKind.Peer: {
        const dest = this.nodes.get(arg);
        if (dest === undefined || !dest.accepting || this.drop(n.id, arg)) return;
        assert.ok(end - from > 0, 'an empty peer record');
        this.enqueue(dest, InKind.Peer, n.id, buf.slice(from, end));
        return;
      }
      case OutKind.AdminReply: {
        const w = this.admins.get(arg);
        this.admins.delete(arg);
        w?.(unpack(buf.slice(from, end)) as AdminReply);
        return;
      }
      case OutKind.Event:
        n.events.push(unpack(buf.slice(from, end)) as ShardEventRecord);
        for (const w of this.eventWaiters.splice(0)) w();
        return;
      default:
        assert.fail(`out-ring record of unknown kind ${buf[at]}`);
    }
  }
}

/** Time a worker thread has to exit after its task ended, before the test calls it a leak. */
const WORKER_EXIT_MS_MAX = 5000;

function runInWorker(task: ShardTask): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const w = new Worker(new URL('./worker-child.js', import.meta.url), { workerData: task });
    let outcome: { ok: boolean; message?: string } | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    w.on('message', (m: { ok: boolean; message?: string }) => {
      outcome = m;
      // The task is over: the thread must now exit with nothing left holding it open.
      timer = setTimeout(() => {
        void w.terminate();
        reject(new Error(`the worker of node ${task.nodeId} did not exit after its task ended (a leaked timer or wait)`));
      }, WORKER_EXIT_MS_MAX);
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      clearTimeout(timer);
      if (outcome === null) reject(new Error(`the worker of node ${task.nodeId} exited (${code}) before its task ended`));
      else if (!outcome.ok) reject(new Error(outcome.message));
      else if (code !== 0) reject(new Error(`the worker of node ${task.nodeId} exited with code ${code}`));
      else resolve();
    });
  });
}

export function errorOf(r: Response): ErrorBody {
  assert.equal(r.kind, FrameKind.Error, `expected an Error frame, got kind 0x${r.kind.toString(16)}`);
  return unpack(r.body) as ErrorBody;
}

export function resultOf(r: Response): KvResult {
  if (r.kind !== FrameKind.Result) {
    const e = r.kind === FrameKind.Error ? (unpack(r.body) as ErrorBody) : null;
    assert.fail(`expected a Result frame, got kind 0x${r.kind.toString(16)}${e !== null ? ` ${e.code}: ${e.message}` : ''}`);
  }
  return decodeKvResult(r.body);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function noop(): void {}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
