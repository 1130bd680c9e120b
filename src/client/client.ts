// The Flotilla client: the KV service's operations and raw commands over the binary client
// protocol (docs/protocol.md), on pipelined TCP connections with a leader cache and a bounded
// retry policy (dispatcher.ts).
import { pack, unpack } from 'msgpackr';
import { FrameFlag, FrameKind } from '../protocol/client-frame.js';
import {
  KvError,
  KvResultError,
  decodeKvResult,
  encodeCommand,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from '../kv/kv-codec.js';
import { parseAddress } from './connection.js';
import { Dispatcher, type RequestMode } from './dispatcher.js';
import { FlotillaError } from './errors.js';
import { groupOfKey } from './group-of.js';

export interface ClientOptions {
  /** "host:port" of nodes' client TCP ports. */
  servers: string[];
  /** The KV key space is groups 1..groups; must match the cluster's `groups`. Default 64. */
  groups?: number;
  /** Each call's whole time, retries included. Default 5,000. */
  requestTimeoutMs?: number;
  /** Requests on the wire per connection; more wait in the client. Default 4,096. */
  inflightMax?: number;
  /** Requests waiting per connection beyond `inflightMax`; more are refused with OVERLOADED. Default 16,384. */
  queuedMax?: number;
  /** NOT_LEADER hops per request. Default 5. */
  redirectsMax?: number;
  /** Other retries per request (backoffs, other servers). Default 8. */
  retriesMax?: number;
  /** Time to establish a TCP connection. Default 2,000. */
  connectTimeoutMs?: number;
  /** Largest response frame accepted (a batch of gets can be large). Default 64 MiB. */
  frameBytesMax?: number;
}

export interface CommandOptions {
  /** A read: served after the leader confirms it still leads (linearizable), never logged. */
  read?: boolean;
  /** With read (implied): served at once from whichever member answers, possibly stale. */
  stale?: boolean;
}

export interface ClientAdmin {
  /** Creates the group on every server in `servers`, with these voters; fails if any fails. */
  addGroup(group: number, members: number[]): Promise<void>;
  /** Removes the group from every server in `servers`; fails if any fails. */
  removeGroup(group: number): Promise<void>;
  /** Asks the group's leader to hand leadership to node `to`. */
  transferLeader(group: number, to: number): Promise<void>;
  /** The AdminReply of `status` from `server`, or from the group's leader (else any server). */
  status(group: number, server?: string): Promise<unknown>;
}

const GROUP_MAX = 0xfffffffe;

const READ: RequestMode = { read: true, learn: true, copy: false, pinned: null };
const STALE_READ: RequestMode = { read: true, learn: false, copy: false, pinned: null };
const WRITE: RequestMode = { read: false, learn: true, copy: false, pinned: null };

export class FlotillaClient {
  readonly admin: ClientAdmin;
  private readonly groups: number;

  private constructor(
    private readonly d: Dispatcher,
    groups: number,
  ) {
    this.groups = groups;
    this.admin = {
      addGroup: (group, members) => this.everyServer(group, 'addGroup', members),
      removeGroup: (group) => this.everyServer(group, 'removeGroup', null),
      transferLeader: (group, to) => this.transferLeader(group, to),
      status: (group, server) => this.status(group, server),
    };
  }

  /** Makes a client and connects to the first server that answers; UNAVAILABLE if none does. */
  static async connect(opts: ClientOptions): Promise<FlotillaClient> {
    if (!Array.isArray(opts.servers) || opts.servers.length === 0) {
      throw new FlotillaError('BAD_REQUEST', 'servers must list at least one "host:port"');
    }
    for (const s of opts.servers) {
      if (parseAddress(s) === null) throw new FlotillaError('BAD_REQUEST', `server "${s}" is not host:port`);
    }
    const groups = positiveInt(opts.groups ?? 64, 'groups', GROUP_MAX);
    const d = new Dispatcher({
      servers: [...opts.servers],
      requestTimeoutMs: positiveInt(opts.requestTimeoutMs ?? 5000, 'requestTimeoutMs'),
      connectTimeoutMs: positiveInt(opts.connectTimeoutMs ?? 2000, 'connectTimeoutMs'),
      inflightMax: positiveInt(opts.inflightMax ?? 4096, 'inflightMax'),
      queuedMax: positiveInt(opts.queuedMax ?? 16_384, 'queuedMax'),
      redirectsMax: nonNegativeInt(opts.redirectsMax ?? 5, 'redirectsMax'),
      retriesMax: nonNegativeInt(opts.retriesMax ?? 8, 'retriesMax'),
      frameBytesMax: positiveInt(opts.frameBytesMax ?? 64 * 1024 * 1024, 'frameBytesMax', 0xffffffff),
    });
    try {
      await d.connectAny();
    } catch (e) {
      await d.close();
      throw e;
    }
    return new FlotillaClient(d, groups);
  }

  /** The group of a key: 1 + (FNV-1a 32-bit of its UTF-8 bytes) mod groups. */
  groupOf(key: string): number {
    return groupOfKey(key, this.groups);
  }

  /** Sends a command body to a group's state machine; resolves with the raw result body. */
  async command(group: number, body: Uint8Array, opts: CommandOptions = {}): Promise<Uint8Array> {
    checkGroup(group);
    if (!(body instanceof Uint8Array)) throw new FlotillaError('BAD_REQUEST', 'a command body is a Uint8Array');
    const stale = opts.stale === true;
    const read = stale || opts.read === true;
    const flags = (read ? FrameFlag.Read : 0) | (stale ? FrameFlag.Stale : 0);
    const mode: RequestMode = { read, learn: !stale, copy: true, pinned: null };
    return this.d.request(FrameKind.Command, flags, group, body, mode);
  }

  async put(key: string, value: string): Promise<void> {
    await this.kv(this.groupOf(key), { op: 'put', key, value }, 'put');
  }

  async get(key: string, opts: { stale?: boolean } = {}): Promise<string | null> {
    const r = await this.kv(this.groupOf(key), { op: 'get', key }, 'get', opts.stale === true ? 'stale' : 'read');
    return r.value;
  }

  /** Deletes a key; resolves with whether it existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.kv(this.groupOf(key), { op: 'delete', key }, 'delete');
    return r.existed;
  }

  /**
   * Writes `value` iff the key's current value is `expect` (null: the key is absent).
   * Resolves with whether it wrote, and the value the key held before.
   */
  async cas(key: string, expect: string | null, value: string): Promise<{ ok: boolean; value: string | null }> {
    const r = await this.kv(this.groupOf(key), { op: 'cas', key, expect, value }, 'cas');
    return { ok: r.ok, value: r.value };
  }

  /**
   * Applies operations atomically in one group: every key must map to one group, unless
   * `group` says which. A batch of only gets is sent as a read.
   */
  async batch(ops: KvSingleCommand[], group?: number): Promise<{ ok: boolean; results: KvSingleResult[] }> {
    if (!Array.isArray(ops)) throw new FlotillaError('BAD_REQUEST', 'batch takes an array of operations');
    let g: number;
    if (group !== undefined) {
      checkGroup(group);
      g = group;
    } else {
      if (ops.length === 0) throw new FlotillaError('BAD_REQUEST', 'an empty batch needs its group');
      g = this.groupOf(ops[0]!.key);
      for (const op of ops) {
        const og = this.groupOf(op.key);
        if (og !== g) {
          throw new FlotillaError('BAD_REQUEST', `batch keys span groups ${g} and ${og} (key "${op.key}"); a batch is applied in one group`);
        }
      }
    }
    const readOnly = ops.length > 0 && ops.every((op) => op.op === 'get');
    const r = await this.kv(g, { op: 'batch', ops }, 'batch', readOnly ? 'read' : 'write');
    return { ok: r.ok, results: r.results };
  }

  /** Closes every connection; calls still in progress fail with UNAVAILABLE. */
  close(): Promise<void> {
    return this.d.close();
  }

  // ------------------------------------------------------------------------------------------

  private async kv<Op extends KvResult['op']>(
    group: number,
    cmd: KvCommand,
    expect: Op,
    how: 'write' | 'read' | 'stale' = 'write',
  ): Promise<Extract<KvResult, { op: Op }>> {
    let body: Uint8Array;
    try {
      body = encodeCommand(cmd);
    } catch (e) {
      if (e instanceof KvError) throw new FlotillaError(e.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'BAD_REQUEST', e.message);
      throw e;
    }
    const flags = how === 'write' ? 0 : how === 'read' ? FrameFlag.Read : FrameFlag.Read | FrameFlag.Stale;
    const mode = how === 'write' ? WRITE : how === 'read' ? READ : STALE_READ;
    const bytes = await this.d.request(FrameKind.Command, flags, group, body, mode);
    let r: KvResult;
    try {
      r = decodeKvResult(bytes);
    } catch (e) {
      if (e instanceof KvResultError) throw new FlotillaError('BAD_RESULT', `group ${group}: ${e.message}`);
      throw e;
    }
    if (r.op === 'error') {
      throw new FlotillaError(r.code === 'BAD_COMMAND' ? 'BAD_REQUEST' : r.code, `group ${group}: ${r.message}`);
    }
    if (r.op !== expect) throw new FlotillaError('BAD_RESULT', `group ${group} answered a ${expect} with a ${r.op} result`);
    return r as Extract<KvResult, { op: Op }>;
  }

  /** Sends an admin request to every server in `servers`: each node changes only itself. */
  private async everyServer(group: number, op: 'addGroup' | 'removeGroup', members: number[] | null): Promise<void> {
    checkGroup(group);
    const bytes = pack(op === 'addGroup' ? { op, members: checkMembers(members) } : { op }) as Uint8Array;
    const servers = this.d.opts.servers;
    const outcomes = await Promise.allSettled(
      servers.map((s) => this.d.request(FrameKind.Admin, 0, group, bytes, { read: false, learn: false, copy: false, pinned: s })),
    );
    const failed: { server: string; error: FlotillaError }[] = [];
    outcomes.forEach((o, i) => {
      if (o.status === 'rejected') failed.push({ server: servers[i]!, error: asFlotillaError(o.reason) });
    });
    if (failed.length === 0) return;
    const first = failed[0]!.error;
    const detail = failed.map((f) => `${f.server}: ${f.error.code} ${f.error.message}`).join('; ');
    throw new FlotillaError(first.code, `${op} of group ${group} failed on ${failed.length} of ${servers.length} servers: ${detail}`, first.leader);
  }

  private async transferLeader(group: number, to: number): Promise<void> {
    checkGroup(group);
    if (!Number.isInteger(to) || to <= 0) throw new FlotillaError('BAD_REQUEST', `node id ${to} is not a positive integer`);
    const bytes = pack({ op: 'transferLeader', to }) as Uint8Array;
    await this.d.request(FrameKind.Admin, 0, group, bytes, { read: false, learn: false, copy: false, pinned: null });
    // Leadership is moving: find the new leader from the next answers.
    this.d.forgetLeaderOf(group);
  }

  private async status(group: number, server?: string): Promise<unknown> {
    checkGroup(group);
    if (server !== undefined && parseAddress(server) === null) throw new FlotillaError('BAD_REQUEST', `server "${server}" is not host:port`);
    const bytes = pack({ op: 'status' }) as Uint8Array;
    const reply = await this.d.request(FrameKind.Admin, 0, group, bytes, { read: true, learn: false, copy: false, pinned: server ?? null });
    return unpack(reply) as unknown;
  }
}

function asFlotillaError(e: unknown): FlotillaError {
  if (e instanceof FlotillaError) return e;
  return new FlotillaError('UNAVAILABLE', e instanceof Error ? e.message : String(e));
}

function checkGroup(group: number): void {
  if (!Number.isInteger(group) || group < 1 || group > GROUP_MAX) {
    throw new FlotillaError('BAD_REQUEST', `group ${group} is not a group id (1..${GROUP_MAX})`);
  }
}

function checkMembers(members: number[] | null): number[] {
  if (!Array.isArray(members) || members.length === 0 || !members.every((m) => Number.isInteger(m) && m > 0)) {
    throw new FlotillaError('BAD_REQUEST', 'members must be a non-empty list of node ids');
  }
  return members;
}

function positiveInt(v: number, name: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new FlotillaError('BAD_REQUEST', `${name} must be an integer in 1..${max}, not ${v}`);
  return v;
}

function nonNegativeInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 0) throw new FlotillaError('BAD_REQUEST', `${name} must be a non-negative integer, not ${v}`);
  return v;
}
