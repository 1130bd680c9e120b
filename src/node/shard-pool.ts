// The shard pool: one piscina worker thread per shard, each running one long task
// (src/shard/shard-task.ts) that owns its groups. Per shard the main thread keeps the two rings
// (main → shard "in", shard → main "out"), the shared counters, and the shard's state as its
// events report it (ready, failed, stopped). Starting waits for every shard to be ready;
// stopping sends each a Stop record and waits a bounded time for its task to end.

import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Piscina } from 'piscina';
import { SpscRing } from '../ring/spsc-ring.js';
import { InKind, RECORD_HEADER_BYTES } from '../ring/records.js';
import { createCounters } from '../shard/counters.js';
import type { ShardTask, StateMachineModule } from '../shard/task.js';
import type { NodeConfig } from './config.js';
import { InRingWriter } from './in-ring.js';
import type { LogOutput } from './log.js';
import { NodeError } from './node-error.js';
import { shardOf } from './placement.js';
import { META_GROUP, metaVoters } from '../cluster/meta-group.js';

export type ShardState = 'starting' | 'ready' | 'failed' | 'stopped';

/** One shard as the main thread sees it. */
export interface ShardSlot {
  readonly index: number;
  /** Writes to the in ring, holding what finds it full (in-ring.ts). */
  readonly input: InRingWriter;
  readonly outRing: SpscRing;
  readonly counters: Float64Array;
  state: ShardState;
  message?: string;
  done: Promise<void>;
}

/** An event a shard posts on its out ring (OutKind.Event). */
export interface ShardEvent {
  type: string;
  shard: number;
  message?: string;
}

const SHARD_START_MS_MAX = 120_000;
const SHARD_STOP_MS_MAX = 30_000;

export class ShardPool {
  /** Indexed by shard; filled by start(). The routers hold this same array. */
  readonly shards: ShardSlot[] = [];
  private pool: Piscina | null = null;
  private readonly readyWaiters: (() => void)[] = [];

  constructor(
    private readonly config: NodeConfig,
    private readonly logOutput: LogOutput,
    private readonly stateMachine: StateMachineModule | null,
    /** Called after a shard's task failed and its state says so. */
    private readonly onFailed: (shard: ShardSlot, err: Error) => void,
    /** The node's slot table (src/cluster/slot-table.ts), shared with every shard. */
    private readonly slotTable: SharedArrayBuffer | null = null,
  ) {}

  /** The shard that owns `group`. */
  ownerOf(group: number): ShardSlot {
    return this.shards[shardOf(group, this.shards.length)]!;
  }

  /**
   * Starts every shard's task; `fresh`: a new data directory, whose shards bootstrap the
   * configured groups. `started` is called for each shard as soon as its task runs (to drain its
   * out ring, which carries the ready event).
   */
  start(fresh: boolean, started: (shard: ShardSlot) => void): void {
    const c = this.config;
    // V8 reads these when a worker's heap is made: set before the first shard starts (the
    // flags are the process's; only the shards' heaps are made after this point).
    if (c.shardSemiSpaceMb > 0) {
      setFlagsFromString(`--min-semi-space-size=${c.shardSemiSpaceMb}`);
      setFlagsFromString(`--max-semi-space-size=${c.shardSemiSpaceMb}`);
    }
    this.pool = new Piscina({
      filename: new URL('../shard/shard-task.js', import.meta.url).href,
      minThreads: c.shards,
      maxThreads: c.shards,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      atomics: 'disabled',
    });
    for (let k = 0; k < c.shards; k++) started(this.startShard(k, fresh));
  }

  private startShard(k: number, fresh: boolean): ShardSlot {
    const c = this.config;
    const inSab = SpscRing.allocate(c.ringBytes);
    const outSab = SpscRing.allocate(c.ringBytes);
    const countersSab = createCounters();
    const bootstrapGroups: number[] = [];
    if (fresh) {
      for (let g = 1; g <= c.groups; g++) if (shardOf(g, c.shards) === k) bootstrapGroups.push(g);
    }
    // The meta group, at a first start, on the shard that owns its id, if this node is one of its voters.
    const meta = metaVoters(c.peers.map((p) => p.id));
    const bootstrapMeta = fresh && shardOf(META_GROUP, c.shards) === k && meta.includes(c.nodeId) ? meta : undefined;
    const task: ShardTask = {
      shard: k,
      shards: c.shards,
      nodeId: c.nodeId,
      peers: c.peers,
      inRing: inSab,
      outRing: outSab,
      counters: countersSab,
      dir: path.join(c.dataDir, `shard-${k}`),
      bootstrapGroups,
      ...(bootstrapMeta !== undefined ? { bootstrapMeta } : {}),
      ...(this.slotTable !== null ? { slotTable: this.slotTable } : {}),
      syncForce: c.syncForce,
      segmentBytes: c.segmentBytes,
      tickMs: c.tickMs,
      ticksElection: c.ticksElection,
      ticksHeartbeat: c.ticksHeartbeat,
      ticksQuiesce: c.ticksQuiesce,
      snapshotEntries: c.snapshotEntries,
      snapshotLogRatio: c.snapshotLogRatio,
      snapshotKeepEntries: c.snapshotKeepEntries,
      pendingPerGroupMax: c.pendingPerGroupMax,
      requestTimeoutMs: c.requestTimeoutMs,
      turnRecordsMax: c.turnRecordsMax,
      snapChunkBytes: c.snapChunkBytes,
      snapshotBytesMax: c.snapshotBytesMax,
      stateMachine: this.stateMachine,
      echo: c.mode === 'echo',
      readMode: c.readMode,
      logLevel: this.logOutput.level,
      logFormat: this.logOutput.format,
      logColor: this.logOutput.color,
    };
    const shard: ShardSlot = {
      index: k,
      input: new InRingWriter(new SpscRing(inSab)),
      outRing: new SpscRing(outSab),
      counters: new Float64Array(countersSab),
      state: 'starting',
      done: Promise.resolve(),
    };
    this.shards.push(shard);
    shard.done = this.pool!.run(task, { name: 'runShard' }).then(
      () => {
        if (shard.state !== 'failed') shard.state = 'stopped';
      },
      (e: unknown) => this.failed(shard, e instanceof Error ? e : new Error(String(e))),
    );
    return shard;
  }

  private failed(shard: ShardSlot, err: Error): void {
    shard.state = 'failed';
    shard.message ??= err.message;
    this.notifyReadyWaiters();
    this.onFailed(shard, err);
  }

  /** A shard's event (from its out ring): its new state. */
  event(shard: ShardSlot, ev: ShardEvent): void {
    if (ev.type === 'ready') shard.state = 'ready';
    else if (ev.type === 'failed') {
      shard.message = ev.message ?? 'failed';
      shard.state = 'failed';
    } else if (ev.type === 'stopped' && shard.state !== 'failed') shard.state = 'stopped';
    this.notifyReadyWaiters();
  }

  /** Resolves once every shard is ready; rejects (UNAVAILABLE) if one fails or stops first, or after SHARD_START_MS_MAX. */
  whenReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new NodeError('UNAVAILABLE', `shards not ready after ${SHARD_START_MS_MAX} ms`)), SHARD_START_MS_MAX);
      const check = (): void => {
        const failed = this.shards.find((s) => s.state === 'failed' || s.state === 'stopped');
        if (failed !== undefined) {
          clearTimeout(timer);
          reject(new NodeError('UNAVAILABLE', `shard ${failed.index} did not start: ${failed.message ?? failed.state}`));
          return;
        }
        if (this.shards.every((s) => s.state === 'ready')) {
          clearTimeout(timer);
          resolve();
          return;
        }
        this.readyWaiters.push(check);
      };
      check();
    });
  }

  private notifyReadyWaiters(): void {
    const waiters = this.readyWaiters.splice(0);
    for (const w of waiters) w();
  }

  allReady(): boolean {
    return this.shards.every((s) => s.state === 'ready');
  }

  /** Stops holding records for full in rings (the node is stopping). */
  stopInput(): void {
    for (const s of this.shards) s.input.stop();
  }

  /**
   * Sends every running shard a Stop record (waiting a bounded time for room in a full ring) and
   * waits up to SHARD_STOP_MS_MAX for their tasks to end. False: some did not end in time.
   */
  async stopShards(): Promise<boolean> {
    for (const shard of this.shards) {
      if (shard.state === 'failed' || shard.state === 'stopped') continue;
      if (!shard.input.write(InKind.Stop, 0, new Uint8Array(0))) {
        // A full ring at stop: wait for room a bounded time.
        await Promise.race([shard.input.ring.waitRoom(RECORD_HEADER_BYTES), sleep(SHARD_STOP_MS_MAX)]);
        shard.input.write(InKind.Stop, 0, new Uint8Array(0));
      }
    }
    return Promise.race([
      Promise.all(this.shards.map((s) => s.done)).then(() => true),
      sleep(SHARD_STOP_MS_MAX).then(() => false),
    ]);
  }

  /** Ends the worker threads (those still running are terminated) and closes the rings. */
  async destroy(): Promise<void> {
    if (this.pool !== null) await this.pool.destroy();
    // A pending wait on a ring holds the event loop open; closing rejects it.
    for (const s of this.shards) {
      s.input.ring.close();
      s.outRing.close();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
