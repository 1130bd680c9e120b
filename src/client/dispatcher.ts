// Where each request goes and what happens when it fails: the client's routing and retry
// policy, over the connections (connection.ts).
//
// - A per-group leader cache, learned from successful answers and from NOT_LEADER hints.
// - NOT_LEADER with a hint: go there at once (up to `redirectsMax` hops per request);
//   without a hint: the next server, after a short backoff.
// - Retries are bounded by `retriesMax` and by the request's deadline (`requestTimeoutMs`
//   from when it was made). A read is sent again after any failure that may be transient. A
//   write is sent again only when the server certainly did not apply it: NOT_LEADER,
//   OVERLOADED, LEADER_TRANSFERRING, NO_GROUP, or a connection that failed before the frame
//   was written. OUTCOME_UNKNOWN, TIMEOUT, and a connection lost after the frame was written
//   surface to the caller, since sending it again might apply it twice.
import { FrameKind, type ErrorBody, type LeaderHint } from '../protocol/client-frame.js';
import { unpack } from 'msgpackr';
import { Connection, formatAddress, parseAddress, type Exchange } from './connection.js';
import { FlotillaError } from './errors.js';

export interface DispatcherOptions {
  servers: string[];
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  inflightMax: number;
  queuedMax: number;
  redirectsMax: number;
  retriesMax: number;
  frameBytesMax: number;
}

export interface RequestMode {
  /** Safe to send again after any transient failure (it changes nothing). */
  read: boolean;
  /** A success means the server that gave it leads the group: remember it. */
  learn: boolean;
  /** Copy the result out of the socket's buffer (it is handed to user code that may keep it). */
  copy: boolean;
  /** Send only to this server: no leader cache, no redirects, no other servers. */
  pinned: string | null;
}

/** A server that refused a connection is skipped for this long when others are left. */
const DOWN_MS = 1000;
const BACKOFF_MS_MIN = 5;
const BACKOFF_MS_MAX = 250;
/** Bound on the leader cache; past it the cache starts over (it is only a hint). */
const LEADERS_MAX = 65_536;
/** Bound on open connections (servers plus leaders learned from hints). */
const CONNECTIONS_MAX = 1024;

class Op implements Exchange {
  id = 0;
  written = false;
  abandoned = false;
  settled = false;
  conn: Connection | null = null;
  /** The server of the current or last attempt. */
  address = '';
  /** Index into `servers` used when no leader is known; -1 until first used. */
  cursor = -1;
  redirects = 0;
  retries = 0;
  /** Every retry so far, counted or not: drives the backoff. */
  attempts = 0;
  noGroupAnswers = 0;
  /** A retry that waits for its backoff. */
  timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly d: Dispatcher,
    readonly kind: FrameKind,
    readonly flags: number,
    readonly group: number,
    readonly body: Uint8Array,
    readonly mode: RequestMode,
    readonly deadline: number,
    readonly resolve: (v: Uint8Array) => void,
    readonly reject: (e: FlotillaError) => void,
  ) {}

  onResponse(conn: Connection, kind: FrameKind, body: Uint8Array): void {
    this.d.onResponse(this, conn, kind, body);
  }

  onServerError(conn: Connection, error: ErrorBody): void {
    this.d.onServerError(this, conn, error);
  }

  onConnectionFailure(conn: Connection, error: FlotillaError, written: boolean): void {
    this.d.onConnectionFailure(this, conn, error, written);
  }
}

export class Dispatcher {
  private readonly conns = new Map<string, Connection>();
  private readonly leaders = new Map<number, string>();
  private readonly downUntil = new Map<string, number>();
  /** Requests not yet settled, oldest first: with one timeout for all, also earliest deadline first. */
  private readonly outstanding = new Set<Op>();
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** The server tried first for a group with no known leader. */
  private preferred = 0;
  private closed = false;

  constructor(readonly opts: DispatcherOptions) {}

  /** Opens a connection to the first server that accepts one. */
  async connectAny(): Promise<void> {
    const why: string[] = [];
    for (let i = 0; i < this.opts.servers.length; i++) {
      const address = this.opts.servers[i]!;
      const conn = this.connection(address);
      try {
        await conn.opened;
        this.preferred = i;
        return;
      } catch (e) {
        why.push(e instanceof Error ? e.message : String(e));
      }
      if (this.closed) break;
    }
    throw new FlotillaError('UNAVAILABLE', `no server reachable: ${why.join('; ')}`);
  }

  request(kind: FrameKind, flags: number, group: number, body: Uint8Array, mode: RequestMode): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const op = new Op(this, kind, flags, group, body, mode, Date.now() + this.opts.requestTimeoutMs, resolve, reject);
      if (this.closed) {
        op.settled = true;
        reject(new FlotillaError('UNAVAILABLE', 'the client is closed'));
        return;
      }
      this.outstanding.add(op);
      this.armDeadlineTimer();
      this.dispatch(op);
    });
  }

  /** Drops what the cache says about the group's leader (it is about to change). */
  forgetLeaderOf(group: number): void {
    this.leaders.delete(group);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const err = new FlotillaError('UNAVAILABLE', 'the client is closed');
    for (const op of [...this.outstanding]) this.settle(op, err, null);
    for (const conn of [...this.conns.values()]) conn.close(err);
    this.conns.clear();
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  private dispatch(op: Op): void {
    op.timer = null;
    if (op.settled) return;
    if (this.closed) {
      this.settle(op, new FlotillaError('UNAVAILABLE', 'the client is closed'), null);
      return;
    }
    const address = this.route(op);
    let conn: Connection;
    try {
      conn = this.connection(address);
    } catch (e) {
      this.settle(op, e as FlotillaError, null);
      return;
    }
    op.address = address;
    op.conn = conn;
    const refused = conn.send(op);
    if (refused !== null) {
      op.conn = null;
      if (refused.code === 'OVERLOADED') this.settle(op, refused, null);
      else this.retry(op, 'next', refused);
    }
  }

  private route(op: Op): string {
    if (op.mode.pinned !== null) return op.mode.pinned;
    const leader = this.leaders.get(op.group);
    if (leader !== undefined) return leader;
    const servers = this.opts.servers;
    if (op.cursor < 0) op.cursor = this.preferred;
    // Skip servers that recently refused connections, unless every one did.
    const now = Date.now();
    for (let i = 0; i < servers.length; i++) {
      const at = (op.cursor + i) % servers.length;
      const down = this.downUntil.get(servers[at]!);
      if (down === undefined || down <= now) {
        op.cursor = at;
        break;
      }
    }
    return servers[op.cursor]!;
  }

  private connection(address: string): Connection {
    const have = this.conns.get(address);
    if (have !== undefined) return have;
    const hp = parseAddress(address);
    if (hp === null) throw new FlotillaError('BAD_REQUEST', `"${address}" is not host:port`);
    if (this.conns.size >= CONNECTIONS_MAX) {
      throw new FlotillaError('UNAVAILABLE', `${CONNECTIONS_MAX} connections open; not opening one to ${address}`);
    }
    const conn = new Connection({
      host: hp.host,
      port: hp.port,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      inflightMax: this.opts.inflightMax,
      queuedMax: this.opts.queuedMax,
      frameBytesMax: this.opts.frameBytesMax,
      onClose: (c) => this.onConnectionClosed(address, c),
    });
    this.conns.set(address, conn);
    return conn;
  }

  private onConnectionClosed(address: string, conn: Connection): void {
    if (this.conns.get(address) === conn) this.conns.delete(address);
    if (!conn.wasOpen) this.downUntil.set(address, Date.now() + DOWN_MS);
    if (this.downUntil.size > CONNECTIONS_MAX) this.downUntil.clear();
    const servers = this.opts.servers;
    if (servers[this.preferred] === address) this.preferred = (this.preferred + 1) % servers.length;
  }

  // ------------------------------------------------------------------------------------------
  // Outcomes

  onResponse(op: Op, conn: Connection, kind: FrameKind, body: Uint8Array): void {
    if (op.settled) return;
    op.conn = null;
    if (kind === FrameKind.AdminResult) {
      // An admin failure comes as { ok: false, code, message }: act on it like an Error frame.
      let reply: unknown;
      try {
        reply = unpack(body);
      } catch {
        this.settle(op, new FlotillaError('BAD_RESULT', `admin result from ${conn.address} is not msgpack`), null);
        return;
      }
      const r = reply as { ok?: unknown; code?: unknown; message?: unknown; leader?: LeaderHint };
      if (r === null || typeof r !== 'object' || typeof r.ok !== 'boolean') {
        this.settle(op, new FlotillaError('BAD_RESULT', `admin result from ${conn.address} has no ok`), null);
        return;
      }
      if (!r.ok) {
        const e: ErrorBody = { code: String(r.code ?? 'BAD_REQUEST') as ErrorBody['code'], message: String(r.message ?? '') };
        if (r.leader !== undefined && r.leader !== null && typeof r.leader === 'object') e.leader = r.leader;
        this.onServerError(op, conn, e);
        return;
      }
    }
    if (op.mode.learn && op.mode.pinned === null) this.setLeader(op.group, conn.address);
    this.settle(op, null, op.mode.copy ? body.slice() : body);
  }

  onServerError(op: Op, conn: Connection, e: ErrorBody): void {
    if (op.settled) return;
    op.conn = null;
    const err = new FlotillaError(e.code, `${conn.address}: ${e.message}`, e.leader);
    switch (e.code) {
      case 'NOT_LEADER': {
        this.forgetLeader(op.group, conn.address);
        if (op.mode.pinned !== null) return this.settle(op, err, null);
        const hint = e.leader !== undefined ? formatAddress(e.leader.host, e.leader.clientPort) : null;
        if (hint !== null && hint !== conn.address) {
          if (op.redirects >= this.opts.redirectsMax) return this.settle(op, err, null);
          op.redirects++;
          this.setLeader(op.group, hint);
          return this.dispatch(op);
        }
        // No leader known (an election is running): wait it out until the deadline, not a count.
        return this.retry(op, 'next', err, false);
      }
      case 'OVERLOADED':
      case 'LEADER_TRANSFERRING':
        return this.retry(op, 'same', err);
      case 'NO_GROUP':
        this.forgetLeader(op.group, conn.address);
        op.noGroupAnswers++;
        if (op.mode.pinned !== null || op.noGroupAnswers >= this.opts.servers.length) return this.settle(op, err, null);
        return this.retry(op, 'next', err);
      case 'TIMEOUT':
      case 'OUTCOME_UNKNOWN':
        if (!op.mode.read) return this.settle(op, err, null);
        return this.retry(op, 'same', err);
      case 'UNAVAILABLE':
      case 'STORAGE_FAILED':
        this.forgetLeader(op.group, conn.address);
        if (!op.mode.read) return this.settle(op, err, null);
        return this.retry(op, 'next', err);
      default:
        return this.settle(op, err, null);
    }
  }

  onConnectionFailure(op: Op, conn: Connection, error: FlotillaError, written: boolean): void {
    if (op.settled) return;
    op.conn = null;
    // Neither gets better on another try: the stream was not Flotilla's, or not a client port.
    if (error.code === 'BAD_FRAME' || error.code === 'WRONG_PORT') return this.settle(op, error, null);
    this.forgetLeader(op.group, conn.address);
    if (!written || op.mode.read) return this.retry(op, 'next', error);
    this.settle(
      op,
      new FlotillaError('OUTCOME_UNKNOWN', `the connection to ${conn.address} failed after the request was sent (${error.message}); it may or may not have been applied`),
      null,
    );
  }

  /** `counted`: whether this attempt uses up one of `retriesMax`; the deadline bounds all of them. */
  private retry(op: Op, where: 'same' | 'next', err: FlotillaError, counted = true): void {
    if (this.closed || (counted && op.retries >= this.opts.retriesMax)) return this.settle(op, err, null);
    // A pinned request has one server: 'next' is that server again.
    if (where === 'next' && op.mode.pinned === null) {
      if (op.cursor < 0) op.cursor = this.preferred;
      op.cursor = (op.cursor + 1) % this.opts.servers.length;
    }
    if (counted) op.retries++;
    op.attempts++;
    const delayMs = backoffMs(op.attempts);
    // Better the server's own error than a TIMEOUT that says less.
    if (Date.now() + delayMs >= op.deadline) return this.settle(op, err, null);
    op.timer = setTimeout(() => this.dispatch(op), delayMs);
  }

  private settle(op: Op, err: FlotillaError | null, value: Uint8Array | null): void {
    if (op.settled) return;
    op.settled = true;
    this.outstanding.delete(op);
    if (op.timer !== null) clearTimeout(op.timer);
    op.timer = null;
    if (op.conn !== null) op.conn.cancel(op);
    op.conn = null;
    if (err !== null) op.reject(err);
    else op.resolve(value!);
  }

  private setLeader(group: number, address: string): void {
    if (this.leaders.get(group) === address) return;
    if (this.leaders.size >= LEADERS_MAX) this.leaders.clear();
    this.leaders.set(group, address);
  }

  private forgetLeader(group: number, address: string): void {
    if (this.leaders.get(group) === address) this.leaders.delete(group);
  }

  // ------------------------------------------------------------------------------------------
  // Deadlines: one timer for the whole client, set for the oldest outstanding request.

  private armDeadlineTimer(): void {
    if (this.deadlineTimer !== null || this.closed) return;
    const first = this.outstanding.values().next();
    if (first.done === true) return;
    const delayMs = Math.max(0, first.value.deadline - Date.now());
    this.deadlineTimer = setTimeout(() => this.expire(), delayMs);
    // Open sockets and backoff timers keep the process alive while there is work; this one
    // alone must not keep it alive after the last request settled.
    this.deadlineTimer.unref();
  }

  private expire(): void {
    this.deadlineTimer = null;
    const now = Date.now();
    for (const op of this.outstanding) {
      if (op.deadline > now) break;
      this.settle(op, new FlotillaError('TIMEOUT', `no answer within ${this.opts.requestTimeoutMs} ms${op.address !== '' ? ` (last tried ${op.address})` : ''}`), null);
    }
    this.armDeadlineTimer();
  }
}

function backoffMs(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MS_MAX, BACKOFF_MS_MIN * 2 ** Math.min(attempt - 1, 16));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}
