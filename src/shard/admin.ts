// Admin requests as a shard receives them: node-level ones (InKind.Admin, a msgpack
// AdminRequest) and group-level ones (a client frame of kind Admin whose msgpack body names the
// op, for the group in the frame header). Both are checked here before anything runs (parse),
// then run by `Admin`: status, metrics, addGroup, joinGroup, removeGroup, transferLeader, and
// the membership changes addMember, promote, removeMember (member-changes.ts).
import { pack, unpack } from 'msgpackr';
import type { Clock } from '../io/clock.js';
import { FrameKind, type FrameHeader } from '../protocol/client-frame.js';
import { WalError, type Wal } from '../storage/wal.js';
import type { ClientRequests } from './client-requests.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import type { GroupTable } from './group-table.js';
import type { LatencyHistogram } from './latency.js';
import type { ShardLogger } from './log.js';
import type { LoopControl } from './loop-control.js';
import { MemberChanges } from './member-changes.js';
import type { Outbox } from './outbox.js';
import type { SnapshotAssembler } from './snapshot-assembler.js';
import type { Snapshots } from './snapshots.js';
import type { AdminReply, AdminRequest, GroupStatus, ShardTask } from './task.js';
import { META_GROUP } from '../cluster/meta-group.js';

/** Largest group id; 0xffffffff is the wire's "every shard" marker. */
export const GROUP_ID_MAX = 0xfffffffe;
/** Most founding members of a group accepted by addGroup. */
export const MEMBERS_MAX = 64;
/**
 * Groups one status request may name (a page of /status): their statuses fit one ring record
 * of the default ring (about 150 bytes each, msgpack), and a page is answered in milliseconds.
 */
export const STATUS_GROUPS_MAX = 1000;

export function isGroupId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= GROUP_ID_MAX;
}

export function isNodeId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffffffff;
}

/**
 * Decodes and checks an admin request. `headerGroup` is the group of a client frame: the op is
 * for that group, and a `group` in the body, if any, must agree. Returns the request or why it
 * is refused.
 */
export function parseAdminRequest(bytes: Uint8Array, headerGroup: number | null): AdminRequest | string {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    return `admin body is not msgpack: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'admin body is not a map';
  const r = v as Record<string, unknown>;
  let group: unknown = r.group;
  if (headerGroup !== null) {
    if (group !== undefined && group !== headerGroup) return `body names group ${String(group)}, the frame group ${headerGroup}`;
    group = headerGroup;
  }
  switch (r.op) {
    case 'status': {
      if (r.groups === undefined) return { op: 'status' };
      if (!Array.isArray(r.groups) || r.groups.length > STATUS_GROUPS_MAX || !r.groups.every((g) => Number.isInteger(g) && g >= 1 && g <= 0xffff_ffff)) {
        return `status groups must be an array of at most ${STATUS_GROUPS_MAX} group ids`;
      }
      return { op: 'status', groups: r.groups as number[] };
    }
    case 'groupIds':
      return { op: 'groupIds' };
    case 'metrics':
      return { op: 'metrics' };
    case 'addGroup': {
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      const members = r.members;
      if (!Array.isArray(members) || members.length === 0 || members.length > MEMBERS_MAX) {
        return `members must be a list of 1 to ${MEMBERS_MAX} node ids`;
      }
      if (!members.every(isNodeId)) return 'members must be node ids (integers 1 to 2^32 - 1)';
      if (new Set(members).size !== members.length) return 'members are not distinct';
      return { op: 'addGroup', group, members: [...(members as number[])].sort((a, b) => a - b) };
    }
    case 'removeGroup':
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      return { op: 'removeGroup', group };
    case 'transferLeader':
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      if (!isNodeId(r.to)) return `bad node id ${String(r.to)}`;
      return { op: 'transferLeader', group, to: r.to };
    case 'joinGroup':
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      return { op: 'joinGroup', group };
    case 'addMember':
    case 'promote':
    case 'removeMember': {
      if (!isGroupId(group)) return `bad group id ${String(group)}`;
      if (!isNodeId(r.node)) return `bad node id ${String(r.node)}`;
      if (r.op !== 'addMember') return { op: r.op, group, node: r.node };
      if (r.learner !== undefined && typeof r.learner !== 'boolean') return `learner must be true or false, not ${String(r.learner)}`;
      return { op: 'addMember', group, node: r.node, learner: r.learner === true };
    }
    default:
      return `unknown admin op ${String(r.op)}`;
  }
}

export function adminError(code: string, message: string): AdminReply {
  return { ok: false, code, message };
}

export class Admin {
  private readonly task: ShardTask;
  private readonly log: ShardLogger;
  private readonly counters: Float64Array;
  private readonly clock: Clock;
  private readonly outbox: Outbox;
  private readonly wal: Wal;
  private readonly control: LoopControl;
  /** Groups created by addGroup whose founding entry is not durable yet, with their members. */
  private readonly founding = new Map<number, { members: number[]; durable: Promise<void> }>();
  private readonly removing = new Set<number>();
  private readonly members: MemberChanges;

  constructor(
    ctx: ShardContext,
    private readonly table: GroupTable,
    private readonly requests: ClientRequests,
    private readonly snapshots: Snapshots,
    private readonly assembler: SnapshotAssembler,
    private readonly latency: { walAppend: LatencyHistogram; request: LatencyHistogram },
  ) {
    this.task = ctx.task;
    this.log = ctx.log;
    this.counters = ctx.counters;
    this.clock = ctx.clock;
    this.outbox = ctx.outbox;
    this.wal = ctx.wal;
    this.control = ctx.control;
    this.members = new MemberChanges(this.task.nodeId, table, requests, this.control, () => this.clock.nowMs());
  }

  nodeAdmin(id: number, bytes: Uint8Array): void {
    this.counters[ShardCounter.Requests]!++;
    const req = parseAdminRequest(bytes, null);
    if (typeof req === 'string') {
      this.outbox.adminReply(id, adminError('BAD_REQUEST', req));
      return;
    }
    this.runAdmin(req, null, (reply) => this.outbox.adminReply(id, reply));
  }

  groupAdmin(conn: number, f: FrameHeader, body: Uint8Array, t0: number): void {
    const req = parseAdminRequest(body.slice(), f.group);
    if (typeof req === 'string') {
      this.requests.reject(conn, f.requestId, f.group, 'BAD_REQUEST', req, t0);
      return;
    }
    this.runAdmin(req, f.group, (reply) => {
      this.outbox.respond(conn, FrameKind.AdminResult, f.requestId, f.group, pack(reply) as Uint8Array);
      this.latency.request.recordMs(this.clock.nowMs() - t0);
    });
  }

  /** Runs an admin request; `reply` is called exactly once, inside or after this call. */
  private runAdmin(req: AdminRequest, scope: number | null, reply: (r: AdminReply) => void): void {
    if (req.op === 'addMember' || req.op === 'promote' || req.op === 'removeMember') {
      // The meta group's members are the nodes that keep the map (map-keeper.ts); changing them
      // by hand would leave a node that thinks itself a member with a copy that no longer follows.
      if (req.group === META_GROUP) {
        reply(adminError('RESERVED_GROUP', `the members of the meta group (${META_GROUP}) are not changed by hand`));
        return;
      }
      // Not tracked as work under way: it waits on the group's log, which a stopping shard
      // answers (abortAll) rather than waits for.
      this.members.change(req, reply);
      return;
    }
    let out: AdminReply | Promise<AdminReply>;
    try {
      out = this.admin(req, scope);
    } catch (e) {
      this.control.failWith(e);
      reply(adminError('UNAVAILABLE', `shard failed: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    if (!(out instanceof Promise)) {
      reply(out);
      return;
    }
    this.control.track(out.then((r) => {
      reply(r);
      this.control.wake();
    }, (e: unknown) => {
      this.control.failWith(e);
      reply(adminError(e instanceof WalError ? 'STORAGE_FAILED' : 'UNAVAILABLE', e instanceof Error ? e.message : String(e)));
      this.control.wake();
    }));
  }

  private admin(req: AdminRequest, scope: number | null): AdminReply | Promise<AdminReply> {
    switch (req.op) {
      case 'status': {
        if (scope === null && req.groups !== undefined) {
          const out: GroupStatus[] = [];
          for (const g of req.groups) {
            const h = this.table.groups.get(g);
            if (h !== undefined) out.push(h.status());
          }
          return { ok: true, groups: out };
        }
        if (scope === null) return { ok: true, groups: this.table.status() };
        const h = this.table.groups.get(scope);
        return h === undefined ? adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${scope}`) : { ok: true, groups: [h.status()] };
      }
      case 'groupIds':
        return { ok: true, groupIds: [...this.table.groups.keys()].sort((a, b) => a - b) };
      case 'metrics':
        // Microseconds; `append`: a WAL append from the call to durable; `request`: read to answered.
        return { ok: true, latency: { append: this.latency.walAppend.summary(), request: this.latency.request.summary() } };
      case 'addGroup':
      case 'removeGroup':
      case 'joinGroup':
        // The meta group is made by the nodes at a cluster's first start, and holds the map:
        // no operator adds, joins or removes it by hand.
        if (req.group === META_GROUP) return adminError('RESERVED_GROUP', `group ${META_GROUP} is the meta group's reserved id; data groups take other ids`);
        if (req.op === 'addGroup') return this.addGroup(req.group, req.members);
        if (req.op === 'removeGroup') return this.removeGroup(req.group);
        return this.joinGroup(req.group);
      case 'addMember':
      case 'promote':
      case 'removeMember':
        throw new Error(`${req.op} runs in runAdmin`);
      case 'transferLeader': {
        const h = this.table.groups.get(req.group);
        if (h === undefined) return adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${req.group}`);
        const r = h.core.transferLeader(req.to);
        this.table.touched.add(h);
        this.control.wake();
        if (r.ok) return { ok: true };
        return adminError(r.code, r.code === 'NOT_LEADER' ? this.requests.notLeaderMessage(h.id, r.leader) : `node ${req.to} is not a voter of group ${h.id}`);
      }
    }
  }

  /** Creates the group here (idempotent when it exists with the same voters); resolves once durable. */
  private async addGroup(group: number, members: number[]): Promise<AdminReply> {
    const { shard, shards, nodeId } = this.task;
    if (group % shards !== shard) return adminError('BAD_REQUEST', `group ${group} belongs on shard ${group % shards}, not ${shard}`);
    if (!members.includes(nodeId)) return adminError('BAD_REQUEST', `members [${members.join(', ')}] do not include this node (${nodeId})`);
    const existing = this.table.groups.get(group);
    if (existing !== undefined) {
      const founding = this.founding.get(group);
      const c = existing.core.confState();
      const voters = founding !== undefined ? founding.members : c.votersOutgoing.length === 0 ? [...c.voters].sort((a, b) => a - b) : [];
      if (!sameIds(voters, members)) {
        return adminError('BAD_REQUEST', `group ${group} exists here with voters [${c.voters.join(', ')}]${c.votersOutgoing.length > 0 ? ` (joint with [${c.votersOutgoing.join(', ')}])` : ''}`);
      }
      if (founding !== undefined) await founding.durable;
      return { ok: true };
    }
    if (this.removing.has(group)) return adminError('UNAVAILABLE', `group ${group} is being removed; retry`);
    const durable = this.table.bootstrap([group], members);
    this.founding.set(group, { members, durable });
    this.control.wake();
    try {
      await durable;
    } finally {
      if (this.founding.get(group)?.durable === durable) this.founding.delete(group);
    }
    this.log.info({ group, members }, 'group added');
    return { ok: true };
  }

  /** Creates an empty replica of `group` here (idempotent); resolves once its first hard state is durable. */
  private async joinGroup(group: number): Promise<AdminReply> {
    const { shard, shards } = this.task;
    if (group % shards !== shard) return adminError('BAD_REQUEST', `group ${group} belongs on shard ${group % shards}, not ${shard}`);
    const existing = this.table.groups.get(group);
    if (existing !== undefined) {
      const founding = this.founding.get(group);
      if (founding !== undefined) await founding.durable;
      return { ok: true };
    }
    if (this.removing.has(group)) return adminError('UNAVAILABLE', `group ${group} is being removed; retry`);
    const durable = this.table.join(group);
    this.founding.set(group, { members: [], durable });
    this.control.wake();
    try {
      await durable;
    } finally {
      if (this.founding.get(group)?.durable === durable) this.founding.delete(group);
    }
    this.log.info({ group }, 'group joined (empty replica)');
    return { ok: true };
  }

  /** Forgets the group: its waiting requests get NO_GROUP, its log records and snapshots go. */
  private async removeGroup(group: number): Promise<AdminReply> {
    const h = this.table.groups.get(group);
    // NO_GROUP, also for a removal retried after it succeeded: once the log records are gone a
    // node cannot tell "removed" from "never here"; the caller decides (docs/operations.md).
    if (h === undefined) return adminError('NO_GROUP', `node ${this.task.nodeId} does not host group ${group}`);
    this.table.remove(h);
    this.founding.delete(group);
    this.requests.abortGroup(h, 'NO_GROUP', `group ${group} was removed from node ${this.task.nodeId}`);
    this.assembler.dropGroup(group);
    this.snapshots.images.delete(group);
    this.removing.add(group);
    try {
      await this.wal.removeGroup(group);
      // After any snapshot write of the group still queued, so that none lands after the removal.
      await this.snapshots.removeGroup(group);
    } finally {
      this.removing.delete(group);
    }
    this.log.info({ group }, 'group removed');
    return { ok: true };
  }
}

function sameIds(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort((x, y) => x - y);
  const sb = [...b].sort((x, y) => x - y);
  return sa.every((v, i) => v === sb[i]);
}
