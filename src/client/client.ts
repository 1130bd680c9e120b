// The Flotilla client: the KV service's operations and raw commands over the binary client
// protocol (docs/protocol.md), on pipelined TCP connections with a leader cache and a bounded
// retry policy (dispatcher.ts). Keys are routed by the cluster's key map (docs/key-map.md),
// fetched from a seed at connect: slot → group → the group's voters' client addresses; a
// WRONG_GROUP answer from a node with a newer map makes the client fetch it from that node and
// send the command again, to the new owner (once per newer version, at most redirectsMax times).
import { pack, unpack } from 'msgpackr';
import { FrameFlag, FrameKind } from '../protocol/client-frame.js';
import { encodeCommand } from '../kv/kv-command.js';
import { decodeKvResult } from '../kv/kv-result.js';
import {
  KvError,
  KvResultError,
  type KvCommand,
  type KvResult,
  type KvSingleCommand,
  type KvSingleResult,
} from '../kv/kv-types.js';
import { parseAddress } from './connection.js';
import { Dispatcher } from './dispatcher.js';
import type { RequestMode } from './request.js';
import { FlotillaError } from './errors.js';
import { KeyMap } from '../cluster/key-map.js';
import { MemberAdmin, type AddMemberOptions, type Members } from './member-admin.js';
import { slotOf } from '../cluster/slots.js';
import { fetchMap } from './map-fetch.js';

export interface ClientOptions {
  /**
   * "host:port" of nodes' client TCP ports: seeds, to fetch the key map from at connect (one is
   * enough); the map says where every node listens.
   */
  servers: string[];
  /**
   * Each call's whole time, retries and waiting out an election included. Default 12,000: above
   * the servers' default `requestTimeoutMs` (10,000) plus their timeout sweep (up to 1,000), so
   * a write left waiting on a server gets that server's own verdict before the client gives up.
   */
  requestTimeoutMs?: number;
  /**
   * How long one attempt waits for its answer before the call goes to another server (a read,
   * a put) or keeps waiting only on that attempt (any other write: sending it again might apply
   * it twice). The server is then skipped for `downMs`. Default 1,000: a leader silent that long
   * is about as long as its followers wait before electing another (the servers' default
   * election timeout is 1–2 s).
   */
  attemptTimeoutMs?: number;
  /** Requests on the wire per connection; more wait in the client. Default 4,096. */
  inflightMax?: number;
  /** Requests waiting per connection beyond `inflightMax`; more are refused with OVERLOADED. Default 16,384. */
  queuedMax?: number;
  /** NOT_LEADER hops per request (hints to a server that failed are not followed, and not counted). Default 5. */
  redirectsMax?: number;
  /** Other retries per request (backoffs, other servers); waiting for an election is bounded by the deadline only. Default 8. */
  retriesMax?: number;
  /** First backoff before a retry; each retry doubles it, up to `backoffMsMax`, and waits a random 50–100 % of it. Default 5. */
  backoffMsMin?: number;
  /** Largest backoff before a retry. Default 250. */
  backoffMsMax?: number;
  /** How long a server that refused or lost a connection, or let an attempt time out unanswered, is skipped. Default 1,000. */
  downMs?: number;
  /**
   * Send a put (or a batch of only puts) again after it may have been applied — no answer
   * within `attemptTimeoutMs`, a connection lost after it was sent, OUTCOME_UNKNOWN, TIMEOUT,
   * UNAVAILABLE — so a put rides out a failover. Applying a put twice leaves the value it
   * leaves once, and its result says no more than "done"; but the first copy may still be
   * applied after a later write of another client to the same key (at least once, not
   * exactly once). false: such a put fails with OUTCOME_UNKNOWN instead. Default true.
   */
  resendPuts?: boolean;
  /**
   * Wait at connect for the cluster's key map (a new cluster makes it in its first second).
   * false: connect at once and fetch the map at the first call routed by key; admin calls and
   * commands to a named group need none (a cluster of `groups: 0` has no map until one is
   * made, and its groups come from admin calls). Default true.
   */
  waitForMap?: boolean;
  /** Time to establish a TCP connection. Default 2,000. */
  connectTimeoutMs?: number;
  /** Largest response frame accepted (a batch of gets can be large). Default 64 MiB. */
  frameBytesMax?: number;
}

/** The defaults of ClientOptions (docs/protocol.md, "The TypeScript client"). */
export const CLIENT_DEFAULTS = {
  requestTimeoutMs: 12_000,
  attemptTimeoutMs: 1_000,
  inflightMax: 4096,
  queuedMax: 16_384,
  redirectsMax: 5,
  retriesMax: 8,
  backoffMsMin: 5,
  backoffMsMax: 250,
  downMs: 1_000,
  resendPuts: true,
  connectTimeoutMs: 2_000,
  frameBytesMax: 64 * 1024 * 1024,
} as const;

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
  /** The group's voters and learners, as its leader has applied them. */
  members(group: number): Promise<Members>;
  /**
   * Adds node `node` to the group: an empty replica made on it (at its client address in the
   * map, or `opts.server`), then a learner, then, unless `opts.learner`, a voter once caught up.
   */
  addMember(group: number, node: number, opts?: AddMemberOptions & { server?: string }): Promise<Members>;
  /** Makes the learner `node` a voter. */
  promote(group: number, node: number): Promise<Members>;
  /** Removes the voter or learner `node` from the group (its leader too: leadership is handed over first). */
  removeMember(group: number, node: number): Promise<Members>;
}

const GROUP_MAX = 0xfffffffe;
/** While a new cluster has not made its key map yet (version 0), how often connect asks again. */
const MAP_WAIT_MS = 100;
/** Failures of a map fetch at connect that are waited out (up to requestTimeoutMs); others surface. */
const MAP_WAIT_CODES = new Set(['UNAVAILABLE', 'TIMEOUT', 'OVERLOADED']);
/** Longest time option accepted: setTimeout's own limit (about 24.8 days). */
const MS_MAX = 0x7fffffff;

const READ: RequestMode = { read: true, resend: false, learn: true, copy: false, pinned: null };
const STALE_READ: RequestMode = { read: true, resend: false, learn: false, copy: false, pinned: null };
const WRITE: RequestMode = { read: false, resend: false, learn: true, copy: false, pinned: null };
const PUT: RequestMode = { read: false, resend: true, learn: true, copy: false, pinned: null };

export class FlotillaClient {
  readonly admin: ClientAdmin;
  private readonly members: MemberAdmin;
  /** Client addresses of each group's voters in `map` (made as asked, per map). */
  private groupServers = new Map<number, string[]>();

  private constructor(
    private readonly d: Dispatcher,
    private map: KeyMap,
    private readonly resendPuts: boolean,
  ) {
    d.groupServers = (group) => this.serversOf(group);
    this.members = new MemberAdmin(d, () => this.knownServers());
    this.admin = {
      addGroup: (group, members) => this.everyServer(group, 'addGroup', members),
      removeGroup: (group) => this.everyServer(group, 'removeGroup', null),
      transferLeader: (group, to) => this.transferLeader(group, to),
      status: (group, server) => this.status(group, server),
      members: async (group) => { checkGroup(group); return this.members.members(group); },
      addMember: async (group, node, opts = {}) => { checkGroup(group); return this.members.addMember(group, node, opts.server ?? this.clientAddressOf(node), opts); },
      promote: async (group, node) => { checkGroup(group); return this.members.promote(group, node); },
      removeMember: async (group, node) => { checkGroup(group); return this.members.removeMember(group, node); },
    };
  }

  /** The first map, fetched once for every call that waits on it (waitForMap false). */
  private firstMapFetch: Promise<void> | null = null;

  private mapFirst(): Promise<void> {
    this.firstMapFetch ??= firstMap(this.d, Date.now() + this.d.opts.requestTimeoutMs).then(
      (map) => { if (map.version > this.map.version) this.adopt(map); },
      (e: unknown) => { this.firstMapFetch = null; throw e; },
    );
    return this.firstMapFetch;
  }

  /** Every client address known: the map's nodes, else the seeds. */
  private knownServers(): string[] {
    const out = new Set<string>();
    for (const n of this.map.nodes()) {
      const a = this.map.addressesOf(n);
      if (a !== undefined) out.add(reachableAddress(a.client, this.d.opts.servers[0]!));
    }
    if (out.size === 0) for (const s of this.d.opts.servers) out.add(s);
    return [...out];
  }

  /** Node `node`'s client address in the map (BAD_REQUEST when the map does not name it). */
  private clientAddressOf(node: number): string {
    const a = this.map.addressesOf(node);
    if (a === undefined) throw new FlotillaError('BAD_REQUEST', `node ${node} is not in the key map: give its client address (server)`);
    return reachableAddress(a.client, this.d.opts.servers[0]!);
  }

  /** Makes a client and connects to the first server that answers; UNAVAILABLE if none does. */
  static async connect(opts: ClientOptions): Promise<FlotillaClient> {
    if (!Array.isArray(opts.servers) || opts.servers.length === 0) {
      throw new FlotillaError('BAD_REQUEST', 'servers must list at least one "host:port"');
    }
    for (const s of opts.servers) {
      if (parseAddress(s) === null) throw new FlotillaError('BAD_REQUEST', `server "${s}" is not host:port`);
    }
    const D = CLIENT_DEFAULTS;
    if ((opts as { groups?: unknown }).groups !== undefined) {
      throw new FlotillaError('BAD_REQUEST', 'groups is no client option: the client routes keys by the cluster\'s key map');
    }
    const backoffMsMin = positiveInt(opts.backoffMsMin ?? D.backoffMsMin, 'backoffMsMin', MS_MAX);
    const backoffMsMax = positiveInt(opts.backoffMsMax ?? Math.max(D.backoffMsMax, backoffMsMin), 'backoffMsMax', MS_MAX);
    if (backoffMsMax < backoffMsMin) throw new FlotillaError('BAD_REQUEST', `backoffMsMax (${backoffMsMax}) is below backoffMsMin (${backoffMsMin})`);
    const resendPuts = opts.resendPuts ?? D.resendPuts;
    if (typeof resendPuts !== 'boolean') throw new FlotillaError('BAD_REQUEST', `resendPuts must be true or false, not ${String(resendPuts)}`);
    const d = new Dispatcher({
      servers: [...opts.servers],
      requestTimeoutMs: positiveInt(opts.requestTimeoutMs ?? D.requestTimeoutMs, 'requestTimeoutMs', MS_MAX),
      attemptTimeoutMs: positiveInt(opts.attemptTimeoutMs ?? D.attemptTimeoutMs, 'attemptTimeoutMs', MS_MAX),
      connectTimeoutMs: positiveInt(opts.connectTimeoutMs ?? D.connectTimeoutMs, 'connectTimeoutMs', MS_MAX),
      inflightMax: positiveInt(opts.inflightMax ?? D.inflightMax, 'inflightMax'),
      queuedMax: positiveInt(opts.queuedMax ?? D.queuedMax, 'queuedMax'),
      redirectsMax: nonNegativeInt(opts.redirectsMax ?? D.redirectsMax, 'redirectsMax'),
      retriesMax: nonNegativeInt(opts.retriesMax ?? D.retriesMax, 'retriesMax'),
      backoffMsMin,
      backoffMsMax,
      downMs: positiveInt(opts.downMs ?? D.downMs, 'downMs', MS_MAX),
      frameBytesMax: positiveInt(opts.frameBytesMax ?? D.frameBytesMax, 'frameBytesMax', 0xffffffff),
    });
    const waitForMap = opts.waitForMap ?? true;
    if (typeof waitForMap !== 'boolean') throw new FlotillaError('BAD_REQUEST', `waitForMap must be true or false, not ${String(waitForMap)}`);
    let map: KeyMap;
    try {
      await d.connectAny();
      map = waitForMap ? await firstMap(d, Date.now() + d.opts.requestTimeoutMs) : KeyMap.empty();
    } catch (e) {
      await d.close();
      throw e;
    }
    return new FlotillaClient(d, map, resendPuts);
  }

  /** The slot of a key (CRC16-XMODEM of its UTF-8 bytes, or of its hash tag, mod 16,384). */
  slotOf(key: string): number {
    return slotOf(key);
  }

  /** The group that owns a key's slot in the client's current map (0: none does). */
  groupOf(key: string): number {
    return this.map.ownerOf(slotOf(key));
  }

  /** The version of the key map the client routes by. */
  get mapVersion(): number {
    return this.map.version;
  }

  /** The key map the client routes by (it changes as the client learns newer ones). */
  get keyMap(): KeyMap {
    return this.map;
  }

  /**
   * Asks for a newer map (from `server`, else any), and routes by it if it is newer; resolves
   * with whether it was. Calls do this by themselves after WRONG_GROUP.
   */
  async refreshMap(server?: string): Promise<boolean> {
    const got = await fetchMap(this.d, server ?? null, this.map.version);
    if (got.map === null || got.map.version <= this.map.version) return false;
    this.adopt(got.map);
    return true;
  }

  private adopt(map: KeyMap): void {
    this.map = map;
    this.groupServers = new Map();
  }

  /** The client addresses of a group's voters in the current map (undefined: none known). */
  private serversOf(group: number): readonly string[] | undefined {
    let s = this.groupServers.get(group);
    if (s !== undefined) return s;
    const members = this.map.membersOf(group);
    if (members === undefined) return undefined;
    s = [];
    for (const m of members) {
      const a = this.map.addressesOf(m);
      if (a !== undefined) s.push(reachableAddress(a.client, this.d.opts.servers[0]!));
    }
    this.groupServers.set(group, s);
    return s;
  }

  /** Sends a command body to a group's state machine; resolves with the raw result body. */
  async command(group: number, body: Uint8Array, opts: CommandOptions = {}): Promise<Uint8Array> {
    checkGroup(group);
    if (!(body instanceof Uint8Array)) throw new FlotillaError('BAD_REQUEST', 'a command body is a Uint8Array');
    const stale = opts.stale === true;
    const read = stale || opts.read === true;
    const flags = (read ? FrameFlag.Read : 0) | (stale ? FrameFlag.Stale : 0);
    const mode: RequestMode = { read, resend: false, learn: !stale, copy: true, pinned: null };
    return this.d.request(FrameKind.Command, flags, group, body, mode);
  }

  async put(key: string, value: string): Promise<void> {
    await this.kv(null, { op: 'put', key, value }, 'put', this.resendPuts ? 'put' : 'write');
  }

  async get(key: string, opts: { stale?: boolean } = {}): Promise<string | null> {
    const r = await this.kv(null, { op: 'get', key }, 'get', opts.stale === true ? 'stale' : 'read');
    return r.value;
  }

  /** Deletes a key; resolves with whether it existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.kv(null, { op: 'delete', key }, 'delete');
    return r.existed;
  }

  /**
   * Writes `value` iff the key's current value is `expect` (null: the key is absent).
   * Resolves with whether it wrote, and the value the key held before.
   */
  async cas(key: string, expect: string | null, value: string): Promise<{ ok: boolean; value: string | null }> {
    const r = await this.kv(null, { op: 'cas', key, expect, value }, 'cas');
    return { ok: r.ok, value: r.value };
  }

  /**
   * Applies operations atomically in one group: every key must be in a slot of one group (use a
   * hash tag, `{user1}.a`, to put keys in one slot), unless `group` says which. A batch of only
   * gets is sent as a read.
   */
  async batch(ops: KvSingleCommand[], group?: number): Promise<{ ok: boolean; results: KvSingleResult[] }> {
    if (!Array.isArray(ops)) throw new FlotillaError('BAD_REQUEST', 'batch takes an array of operations');
    let g: number | null = null;
    if (group !== undefined) {
      checkGroup(group);
      g = group;
    } else {
      if (ops.length === 0) throw new FlotillaError('BAD_REQUEST', 'an empty batch needs its group');
      this.groupOfCommand({ op: 'batch', ops });
    }
    const readOnly = ops.length > 0 && ops.every((op) => op.op === 'get');
    // Only puts: no condition, so it always applies whole, and a second copy changes nothing.
    const putsOnly = this.resendPuts && ops.length > 0 && ops.every((op) => op.op === 'put');
    const r = await this.kv(g, { op: 'batch', ops }, 'batch', readOnly ? 'read' : putsOnly ? 'put' : 'write');
    return { ok: r.ok, results: r.results };
  }

  /** Closes every connection; calls still in progress fail with UNAVAILABLE. */
  close(): Promise<void> {
    return this.d.close();
  }

  // ------------------------------------------------------------------------------------------

  /** The group of a command's keys in the current map; BAD_REQUEST when they span groups. */
  private groupOfCommand(cmd: KvCommand): number {
    if (cmd.op !== 'batch') return this.groupOf(cmd.key);
    const g = this.groupOf(cmd.ops[0]!.key);
    for (const op of cmd.ops) {
      const og = this.groupOf(op.key);
      if (og !== g) {
        throw new FlotillaError('BAD_REQUEST', `batch keys span groups ${g} and ${og} (key "${op.key}"); a batch is applied in one group: put its keys in one slot with a hash tag`);
      }
    }
    return g;
  }

  /**
   * Sends a KV command to `fixed`, or to the group of its keys; after WRONG_GROUP from a node
   * with a newer map, fetches that map from that node and sends it again (it was not applied).
   */
  private async kv<Op extends KvResult['op']>(
    fixed: number | null,
    cmd: KvCommand,
    expect: Op,
    how: 'write' | 'put' | 'read' | 'stale' = 'write',
  ): Promise<Extract<KvResult, { op: Op }>> {
    let body: Uint8Array;
    try {
      body = encodeCommand(cmd);
    } catch (e) {
      if (e instanceof KvError) throw new FlotillaError(e.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'BAD_REQUEST', e.message);
      throw e;
    }
    const flags = how === 'write' || how === 'put' ? 0 : how === 'read' ? FrameFlag.Read : FrameFlag.Read | FrameFlag.Stale;
    const mode = how === 'write' ? WRITE : how === 'put' ? PUT : how === 'read' ? READ : STALE_READ;
    let group: number;
    // Connected without waiting for the map (waitForMap false): the first call by key fetches it.
    if (fixed === null && this.map.version === 0) await this.mapFirst();
    let r: KvResult;
    const deadline = Date.now() + this.d.opts.requestTimeoutMs;
    for (let held = 0; ; held++) {
      let bytes: Uint8Array;
      for (let hops = 0; ; hops++) {
        group = fixed ?? this.groupOfCommand(cmd);
        if (group === 0) throw new FlotillaError('NO_GROUP', `no group owns slot ${slotOf(cmd.op === 'batch' ? cmd.ops[0]!.key : cmd.key)} in map version ${this.map.version}`);
        try {
          bytes = await this.d.request(FrameKind.Command, flags, group, body, mode);
          break;
        } catch (e) {
          if (fixed !== null || hops >= this.d.opts.redirectsMax || !(e instanceof FlotillaError) || !await this.redirected(e)) throw e;
        }
      }
      try {
        r = decodeKvResult(bytes);
      } catch (e) {
        if (e instanceof KvResultError) throw new FlotillaError('BAD_RESULT', `group ${group}: ${e.message}`);
        throw e;
      }
      // A slot being migrated (MIGRATING) or moved away (WRONG_GROUP from the group's own state):
      // the command was not applied; wait a little, learn the newer map, and send it again.
      if (r.op !== 'error' || (r.code !== 'MIGRATING' && r.code !== 'WRONG_GROUP') || fixed !== null) break;
      const wait = Math.min(this.d.opts.backoffMsMax, this.d.opts.backoffMsMin * 2 ** Math.min(held, 6));
      if (Date.now() + wait >= deadline) break;
      await new Promise((res) => setTimeout(res, wait));
      await this.refreshMap().catch(() => false);
    }
    if (r.op === 'error') {
      throw new FlotillaError(r.code === 'BAD_COMMAND' ? 'BAD_REQUEST' : r.code, `group ${group}: ${r.message}`);
    }
    if (r.op !== expect) throw new FlotillaError('BAD_RESULT', `group ${group} answered a ${expect} with a ${r.op} result`);
    return r as Extract<KvResult, { op: Op }>;
  }

  /**
   * After WRONG_GROUP: whether to send again. Yes when the answering node had a newer map, now
   * the client's; yes too, after a short wait, when its map is older than the client's (a
   * migration just moved the slot and that node has not learnt it yet): the MapRequest sent to
   * it with the client's version makes it fetch the newer map at once.
   */
  private async redirected(e: FlotillaError): Promise<boolean> {
    const w = e.wrongGroup;
    if (e.code !== 'WRONG_GROUP' || w === undefined || w.version === this.map.version) return false;
    if (w.version < this.map.version) {
      await fetchMap(this.d, w.server, this.map.version).catch(() => null);
      await new Promise((r) => setTimeout(r, this.d.opts.backoffMsMax));
      return true;
    }
    try {
      return await this.refreshMap(w.server);
    } catch {
      return false; // the original answer says more than a failed fetch
    }
  }

  /** Sends an admin request to every server in `servers`: each node changes only itself. */
  private async everyServer(group: number, op: 'addGroup' | 'removeGroup', members: number[] | null): Promise<void> {
    checkGroup(group);
    const bytes = pack(op === 'addGroup' ? { op, members: checkMembers(members) } : { op }) as Uint8Array;
    const servers = this.d.opts.servers;
    const outcomes = await Promise.allSettled(
      servers.map((s) => this.d.request(FrameKind.Admin, 0, group, bytes, { read: false, resend: false, learn: false, copy: false, pinned: s })),
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
    await this.d.request(FrameKind.Admin, 0, group, bytes, { read: false, resend: false, learn: false, copy: false, pinned: null });
    // Leadership is moving: find the new leader from the next answers.
    this.d.forgetLeaderOf(group);
  }

  private async status(group: number, server?: string): Promise<unknown> {
    checkGroup(group);
    if (server !== undefined && parseAddress(server) === null) throw new FlotillaError('BAD_REQUEST', `server "${server}" is not host:port`);
    const bytes = pack({ op: 'status' }) as Uint8Array;
    const reply = await this.d.request(FrameKind.Admin, 0, group, bytes, { read: true, resend: false, learn: false, copy: false, pinned: server ?? null });
    return unpack(reply) as unknown;
  }
}

/** The first map of a version above 0 the dispatcher's servers give, waiting while a new cluster makes it. */
async function firstMap(d: Dispatcher, deadline: number): Promise<KeyMap> {
  // After a version-0 answer the next try goes to the next seed: a node just restarted outside
  // the meta group has none until its first poll, while another seed may hold it.
  let pinned: string | null = null;
  for (let tries = 0; ; tries++) {
    let why: string;
    try {
      // Holding "version 0" (no map) rather than an empty body: 24 bytes, enough for a Raft port
      // to read them as a bad peer hello and close, which the connection then names.
      const got = await fetchMap(d, pinned, 0);
      if (got.map !== null && got.map.version > 0) return got.map;
      why = 'the cluster has not made its key map yet (version 0)';
      pinned = d.opts.servers[(tries + 1) % d.opts.servers.length]!;
    } catch (e) {
      // Only what may pass is waited out (no server up yet, a busy one); a wrong port, a bad
      // frame or a bad map will not get better.
      if (!(e instanceof FlotillaError) || !MAP_WAIT_CODES.has(e.code)) throw e;
      why = e.message;
      if (pinned !== null) pinned = d.opts.servers[(tries + 1) % d.opts.servers.length]!;
    }
    if (Date.now() + MAP_WAIT_MS >= deadline) throw new FlotillaError('UNAVAILABLE', `no key map within requestTimeoutMs: ${why}`);
    await new Promise((r) => setTimeout(r, MAP_WAIT_MS));
  }
}

/**
 * A node started alone on a wildcard address (`--host 0.0.0.0`, no `peers`) names that address
 * in the map: a client reaches it, as it reached its seed, at the seed's host.
 */
export function reachableAddress(address: string, seed: string): string {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at);
  if (host !== '0.0.0.0' && host !== '[::]') return address;
  return `${seed.slice(0, seed.lastIndexOf(':'))}${address.slice(at)}`;
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
