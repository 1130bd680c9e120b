// The node's admin backend (admin-http.ts serves it): health from the node's state, and the
// requests that go to shards as InKind.Admin records — group admin to the group's shard,
// status and metrics to every shard — with their ids, their timeout and their replies
// (OutKind.AdminReply, settled by the out-ring drain).

import { pack } from 'msgpackr';
import { GROUP_BROADCAST } from '../protocol/peer-wire.js';
import { InKind } from '../ring/records.js';
import type { AdminReply, AdminRequest, GroupStatus, LatencySummary, MemberChangeRequest } from '../shard/task.js';
import type { AdminBackend, MapReply, NodeStatus, StatusQuery } from './admin-http.js';
import { STATUS_GROUPS_MAX } from '../shard/admin.js';
import type { MigrationAdmin } from './migration-admin.js';
import type { ClientRouter } from './client-routing.js';
import type { NodeConfig } from './config.js';
import { NodeMetrics } from './metrics.js';
import type { Pending } from './node-error.js';
import { unpackCopy } from './out-ring-drain.js';
import type { PeerRouter } from './peer-routing.js';
import { shardOf } from './placement.js';
import type { ShardPool, ShardSlot } from './shard-pool.js';

const ADMIN_TIMEOUT_MS = 30_000;
const NO_MIGRATION: MapReply = { ok: false, code: 'UNAVAILABLE', message: 'this node runs no migrations (echo mode)' };

export class NodeAdmin implements AdminBackend {
  private readonly pending = new Map<number, Pending<AdminReply>>();
  private seq = 0;
  private readonly metricsRegistry = new NodeMetrics();
  /** The key map and migration routes (set by the node once its map and driver exist). */
  migration: MigrationAdmin | null = null;

  constructor(
    private readonly config: NodeConfig,
    private readonly pool: ShardPool,
    private readonly clients: ClientRouter,
    /** Holds the node's peer links once they exist (for their metrics). */
    private readonly peers: PeerRouter,
    readonly health: AdminBackend['health'],
  ) {}

  addGroup(group: number, members: number[]): Promise<AdminReply> {
    return this.groupAdmin(group, { op: 'addGroup', group, members });
  }

  removeGroup(group: number): Promise<AdminReply> {
    return this.groupAdmin(group, { op: 'removeGroup', group });
  }

  transferLeader(group: number, to: number): Promise<AdminReply> {
    return this.groupAdmin(group, { op: 'transferLeader', group, to });
  }

  joinGroup(group: number): Promise<AdminReply> {
    return this.groupAdmin(group, { op: 'joinGroup', group });
  }

  memberChange(req: MemberChangeRequest): Promise<AdminReply> {
    return this.groupAdmin(req.group, req);
  }

  slots(): unknown {
    return this.migration?.slots() ?? { ok: false, code: 'UNAVAILABLE', message: 'no key map on this node' };
  }

  migrations(): unknown {
    return this.migration?.migrations() ?? { ok: false, code: 'UNAVAILABLE', message: 'no migrations on this node' };
  }

  migrate(slots: string, to: number, forwarded: boolean): Promise<MapReply> {
    return this.migration?.migrate(slots, to, forwarded) ?? Promise.resolve(NO_MIGRATION);
  }

  abortMigration(id: number, forwarded: boolean): Promise<MapReply> {
    return this.migration?.abort(id, forwarded) ?? Promise.resolve(NO_MIGRATION);
  }

  internalKv(group: number, body: Uint8Array, read: boolean): Promise<MapReply> {
    return this.migration?.internalKv(group, body, read) ?? Promise.resolve(NO_MIGRATION);
  }

  private request(shard: ShardSlot, req: AdminRequest): Promise<AdminReply> {
    if (shard.state !== 'ready') {
      return Promise.resolve({ ok: false, code: 'UNAVAILABLE', message: `shard ${shard.index} is ${shard.state}` });
    }
    do {
      this.seq = (this.seq + 1) >>> 0;
    } while (this.seq === 0 || this.pending.has(this.seq));
    const id = this.seq;
    const payload = pack(req) as Uint8Array;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) resolve({ ok: false, code: 'TIMEOUT', message: `shard ${shard.index} did not answer ${req.op}` });
      }, ADMIN_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject,
      });
      shard.input.writeOrHold(InKind.Admin, id, payload);
    });
  }

  private groupAdmin(group: number, req: AdminRequest): Promise<AdminReply> {
    if (!Number.isInteger(group) || group <= 0 || group >= GROUP_BROADCAST) {
      return Promise.resolve({ ok: false, code: 'BAD_REQUEST', message: `group ${group} is not a group id` });
    }
    return this.request(this.pool.ownerOf(group), req);
  }

  /** A shard's reply (an OutKind.AdminReply payload, msgpack) to request `id`. */
  settle(id: number, buf: Uint8Array, from: number, end: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    p.resolve(unpackCopy(buf, from, end) as AdminReply);
  }

  /** Answers every request waiting with `reply` (the node stopped). */
  resolveAll(reply: AdminReply): void {
    for (const p of this.pending.values()) p.resolve(reply);
    this.pending.clear();
  }

  /**
   * A page of this node's groups by id (all of them by default), or one group. The shards name
   * their groups first, then each is asked for the statuses of its part of the page, at most
   * STATUS_GROUPS_MAX a request: a shard's reply must fit one ring record, which the statuses of
   * all 10,000 groups of a shard would not.
   */
  async status(q: StatusQuery = { offset: 0, limit: Number.MAX_SAFE_INTEGER }): Promise<NodeStatus> {
    const nodeId = this.config.nodeId;
    const shards = this.pool.shards;
    if ('group' in q) {
      const r = await this.request(shards[shardOf(q.group, shards.length)]!, { op: 'status', groups: [q.group] });
      const groups = r.ok ? r.groups ?? [] : [];
      return { nodeId, total: groups.length, offset: 0, groups };
    }
    const ids: number[] = [];
    for (const r of await Promise.all(shards.map((s) => this.request(s, { op: 'groupIds' })))) if (r.ok && r.groupIds !== undefined) ids.push(...r.groupIds);
    ids.sort((a, b) => a - b);
    const byShard = new Map<number, number[]>();
    for (const g of ids.slice(q.offset, q.offset + q.limit)) {
      const i = shardOf(g, shards.length);
      let list = byShard.get(i);
      if (list === undefined) byShard.set(i, (list = []));
      list.push(g);
    }
    const asked: Promise<AdminReply>[] = [];
    for (const [i, list] of byShard) {
      for (let k = 0; k < list.length; k += STATUS_GROUPS_MAX) asked.push(this.request(shards[i]!, { op: 'status', groups: list.slice(k, k + STATUS_GROUPS_MAX) }));
    }
    const groups: GroupStatus[] = [];
    for (const r of await Promise.all(asked)) if (r.ok && r.groups !== undefined) groups.push(...r.groups);
    groups.sort((a, b) => a.group - b.group);
    return { nodeId, total: ids.length, offset: q.offset, groups };
  }

  async metrics(): Promise<string> {
    const shards = this.pool.shards;
    const [status, latencies] = await Promise.all([
      this.status(),
      Promise.all(shards.map((s) => this.request(s, { op: 'metrics' }))),
    ]);
    return this.metricsRegistry.render({
      nodeId: this.config.nodeId,
      perGroupMax: this.config.metricsPerGroupMax,
      shards: shards.map((s, i) => ({
        shard: s.index,
        counters: s.counters,
        ringInBytes: s.input.ring.usedBytes(),
        ringOutBytes: s.outRing.usedBytes(),
        ringCapacity: s.input.ring.capacity,
        state: s.state,
        latency: latencies[i]!.ok ? (latencies[i] as { latency?: Record<string, LatencySummary> }).latency ?? null : null,
      })),
      groups: status.groups,
      connections: this.clients.counts(),
      links: this.peers.links?.stats() ?? [],
    });
  }
}
