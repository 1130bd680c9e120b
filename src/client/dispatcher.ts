// Where each request goes and what happens when it fails: the client's routing and retry
// policy, over the connections (connection.ts). The leader cache, the suspected servers and
// the open connections are server-choice.ts; a request's and its attempts' state request.ts;
// this file holds the decisions, the request table and the timers.
//
// - A per-group leader cache, learned from successful answers and from NOT_LEADER hints.
// - Each request is a series of attempts, each on one connection. An attempt with no answer
//   after `attemptTimeoutMs` is given up on, and the server is suspected: it is skipped for
//   `downMs` (so is a server that refused or lost a connection), the cache forgets it as a
//   leader, and the request goes to another server. A superseded attempt that was sent stays
//   on its connection: if its answer is a success after all, the request takes it.
// - NOT_LEADER with a hint: go there at once (up to `redirectsMax` hops per request), unless
//   the hinted node is suspected, or failed earlier in this request and has not answered
//   since — then the hint is stale (followers still name a leader that died or froze until
//   they elect another), so wait and ask the other servers, as without a hint: backoff from
//   `backoffMsMin` doubling to `backoffMsMax`, with jitter, until a leader answers.
// - Counted retries are bounded by `retriesMax`; waiting out an election is bounded only by
//   the request's deadline (`requestTimeoutMs` from when it was made), which bounds it all.
// - Write safety. A read may be sent again after any failure. A write is sent again when the
//   server certainly did not apply it: NOT_LEADER, OVERLOADED, LEADER_TRANSFERRING, NO_GROUP,
//   or a connection that failed before the frame was written. A write that may have been
//   applied (no answer within the attempt timeout, a connection lost after the frame was
//   written, OUTCOME_UNKNOWN, TIMEOUT, UNAVAILABLE, STORAGE_FAILED) is sent again only when
//   its mode says `resend` (a put: applying it twice leaves what applying it once does, and
//   its result says nothing more than "done"); otherwise it surfaces OUTCOME_UNKNOWN (or the
//   server's code), or, after an attempt timeout, keeps waiting for its one attempt's answer
//   until the deadline. Once any attempt of a write may have been applied, the request never
//   fails with a code that says "not applied": such a final error becomes OUTCOME_UNKNOWN.
import { FrameKind, type ErrorBody, type LeaderHint } from '../protocol/client-frame.js';
import { unpack } from 'msgpackr';
import { formatAddress, type Connection } from './connection.js';
import { FlotillaError } from './errors.js';
import { Attempt, Op, type RequestMode } from './request.js';
import { ServerChoice } from './server-choice.js';

export interface DispatcherOptions {
  servers: string[];
  requestTimeoutMs: number;
  attemptTimeoutMs: number;
  connectTimeoutMs: number;
  inflightMax: number;
  queuedMax: number;
  redirectsMax: number;
  retriesMax: number;
  backoffMsMin: number;
  backoffMsMax: number;
  downMs: number;
  frameBytesMax: number;
}

/** Codes that say the server did not apply the request; not the last word once an earlier attempt may have been. */
const NOT_APPLIED = new Set(['NOT_LEADER', 'OVERLOADED', 'LEADER_TRANSFERRING', 'NO_GROUP', 'UNAVAILABLE', 'WRONG_GROUP']);

const MAYBE = '; it may have been applied';

export class Dispatcher {
  /** Requests not yet settled, oldest first: with one timeout for all, also earliest deadline first. */
  private readonly outstanding = new Set<Op>();
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** Attempts awaiting an answer, oldest first: with one attempt timeout for all, earliest expiry first. */
  private readonly timing = new Set<Attempt>();
  private attemptTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly servers: ServerChoice;

  constructor(readonly opts: DispatcherOptions) {
    this.servers = new ServerChoice(opts);
  }

  /** Opens a connection to the first server that accepts one. */
  async connectAny(): Promise<void> {
    const why: string[] = [];
    for (let i = 0; i < this.opts.servers.length; i++) {
      const address = this.opts.servers[i]!;
      const conn = this.servers.connection(address);
      try {
        await conn.opened;
        this.servers.preferred = i;
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
    this.servers.forgetLeaderOf(group);
  }

  /** Where a group's leader may be when the cache does not say (ServerChoice.groupServers). */
  set groupServers(f: ((group: number) => readonly string[] | undefined) | null) {
    this.servers.groupServers = f;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.servers.closed = true;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    if (this.attemptTimer !== null) clearTimeout(this.attemptTimer);
    this.attemptTimer = null;
    const err = new FlotillaError('UNAVAILABLE', 'the client is closed');
    for (const op of [...this.outstanding]) this.settle(op, err, null);
    this.timing.clear();
    this.servers.closeAll(err);
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
    const address = this.servers.route(op);
    let conn: Connection;
    try {
      conn = this.servers.connection(address);
    } catch (e) {
      this.settle(op, e as FlotillaError, null);
      return;
    }
    op.address = address;
    const a = new Attempt(op, conn);
    op.current = a;
    const refused = conn.send(a);
    if (refused !== null) {
      op.current = null;
      if (refused.code === 'OVERLOADED') this.settle(op, refused, null);
      else this.retry(op, 'next', refused);
      return;
    }
    this.startTiming(a);
  }

  // ------------------------------------------------------------------------------------------
  // Attempt timeouts: one timer for the whole client, set for the oldest attempt.

  private startTiming(a: Attempt): void {
    a.startedAt = Date.now();
    a.framesInAtStart = a.conn.framesIn;
    this.timing.add(a);
    if (this.attemptTimer === null) this.armAttemptTimer();
  }

  private stopTiming(a: Attempt): void {
    this.timing.delete(a);
  }

  private armAttemptTimer(): void {
    if (this.attemptTimer !== null || this.closed) return;
    const first = this.timing.values().next();
    if (first.done === true) return;
    const delayMs = Math.max(0, first.value.startedAt + this.opts.attemptTimeoutMs - Date.now());
    this.attemptTimer = setTimeout(() => this.expireAttempts(), delayMs);
    this.attemptTimer.unref();
  }

  private expireAttempts(): void {
    this.attemptTimer = null;
    const limit = Date.now() - this.opts.attemptTimeoutMs;
    for (const a of this.timing) {
      if (a.startedAt > limit) break;
      this.timing.delete(a);
      this.attemptTimedOut(a);
    }
    this.armAttemptTimer();
  }

  private attemptTimedOut(a: Attempt): void {
    const op = a.op;
    if (op.settled || op.current !== a) return;
    const conn = a.conn;
    const silent = conn.framesIn === a.framesInAtStart;
    if (!a.written) {
      if (!silent && conn.state === 'open') {
        // Queued behind a busy connection that is answering: it is not the server's fault.
        this.startTiming(a);
        return;
      }
      // Never sent (still connecting, or stuck behind a server that stopped answering): take it back.
      conn.cancel(a);
    }
    // The server said nothing at all for a whole attempt: suspect it for every request.
    if (silent) this.servers.suspect(conn.address);
    this.servers.forgetLeader(op.group, conn.address);
    op.noteFailed(conn.address);
    const err = new FlotillaError('TIMEOUT', `${conn.address} did not answer within attemptTimeoutMs (${this.opts.attemptTimeoutMs} ms)`);
    if (a.written && !op.resendable) {
      // Sending it again might apply it twice: wait for this attempt's answer until the deadline.
      return;
    }
    if (a.written && !op.mode.read) op.maybeApplied ??= `${conn.address} did not answer within ${this.opts.attemptTimeoutMs} ms after it was sent`;
    // A sent attempt stays on its connection, so a late success still counts.
    op.current = null;
    this.retry(op, 'next', err);
  }

  // ------------------------------------------------------------------------------------------
  // Outcomes

  onResponse(a: Attempt, conn: Connection, kind: FrameKind, body: Uint8Array): void {
    this.servers.heard(conn.address);
    const op = a.op;
    if (op.settled) return;
    const current = op.current === a;
    if (current) {
      this.stopTiming(a);
      op.current = null;
    }
    if (kind === FrameKind.AdminResult) {
      // An admin failure comes as { ok: false, code, message }: act on it like an Error frame.
      let reply: unknown;
      try {
        reply = unpack(body);
      } catch {
        if (current) this.settle(op, new FlotillaError('BAD_RESULT', `admin result from ${conn.address} is not msgpack`), null);
        return;
      }
      const r = reply as { ok?: unknown; code?: unknown; message?: unknown; leader?: LeaderHint };
      if (r === null || typeof r !== 'object' || typeof r.ok !== 'boolean') {
        if (current) this.settle(op, new FlotillaError('BAD_RESULT', `admin result from ${conn.address} has no ok`), null);
        return;
      }
      if (!r.ok) {
        if (!current) return;
        const e: ErrorBody = { code: String(r.code ?? 'BAD_REQUEST') as ErrorBody['code'], message: String(r.message ?? '') };
        if (r.leader !== undefined && r.leader !== null && typeof r.leader === 'object') e.leader = r.leader;
        this.serverError(op, conn, e);
        return;
      }
    }
    // A success, from the current attempt or a superseded one that was slow: the request is done.
    if (op.mode.learn && op.mode.pinned === null) this.servers.setLeader(op.group, conn.address);
    this.settle(op, null, op.mode.copy ? body.slice() : body);
  }

  onServerError(a: Attempt, conn: Connection, e: ErrorBody): void {
    this.servers.heard(conn.address);
    const op = a.op;
    // A superseded attempt's failure changes nothing: a later attempt is under way.
    if (op.settled || op.current !== a) return;
    this.stopTiming(a);
    op.current = null;
    this.serverError(op, conn, e);
  }

  private serverError(op: Op, conn: Connection, e: ErrorBody): void {
    const wrong = e.code === 'WRONG_GROUP' && e.version !== undefined && e.group !== undefined
      ? { version: e.version, group: e.group, slot: e.slot ?? -1, server: conn.address }
      : undefined;
    const err = new FlotillaError(e.code, `${conn.address}: ${e.message}`, e.leader, wrong);
    switch (e.code) {
      case 'NOT_LEADER': {
        this.servers.forgetLeader(op.group, conn.address);
        if (op.mode.pinned !== null) return this.settle(op, err, null);
        const hint = e.leader !== undefined ? formatAddress(e.leader.host, e.leader.clientPort) : null;
        if (hint !== null && hint !== conn.address && !this.servers.skipped(op, hint, Date.now())) {
          if (op.redirects >= this.opts.redirectsMax) return this.settle(op, err, null);
          op.redirects++;
          this.servers.setLeader(op.group, hint);
          return this.dispatch(op);
        }
        // No leader known, or only one that failed (the followers have not elected another
        // yet): wait it out until the deadline, not a count.
        return this.retry(op, 'next', err, false);
      }
      case 'OVERLOADED':
      case 'LEADER_TRANSFERRING':
        return this.retry(op, 'same', err);
      case 'NO_GROUP':
        this.servers.forgetLeader(op.group, conn.address);
        op.noGroupAnswers++;
        if (op.mode.pinned !== null || op.noGroupAnswers >= this.servers.serversFor(op.group).length) return this.settle(op, err, null);
        return this.retry(op, 'next', err);
      case 'TIMEOUT':
      case 'OUTCOME_UNKNOWN':
        if (!op.resendable) return this.settle(op, err, null);
        if (!op.mode.read) op.maybeApplied ??= `${conn.address} answered ${e.code}`;
        // Leadership was lost, or commit stalled, there: the leader may well be elsewhere now.
        this.servers.forgetLeader(op.group, conn.address);
        return this.retry(op, 'next', err);
      case 'UNAVAILABLE':
      case 'STORAGE_FAILED':
        this.servers.forgetLeader(op.group, conn.address);
        if (!op.resendable) return this.settle(op, err, null);
        if (!op.mode.read) op.maybeApplied ??= `${conn.address} answered ${e.code}`;
        op.noteFailed(conn.address);
        return this.retry(op, 'next', err);
      default:
        return this.settle(op, err, null);
    }
  }

  onConnectionFailure(a: Attempt, conn: Connection, error: FlotillaError, written: boolean): void {
    const op = a.op;
    if (op.settled || op.current !== a) return;
    this.stopTiming(a);
    op.current = null;
    // Neither gets better on another try: the stream was not Flotilla's, or not a client port.
    if (error.code === 'BAD_FRAME' || error.code === 'WRONG_PORT') return this.settle(op, error, null);
    this.servers.forgetLeader(op.group, conn.address);
    op.noteFailed(conn.address);
    if (written && !op.mode.read && op.resendable) op.maybeApplied ??= `the connection to ${conn.address} failed after it was sent (${error.message})`;
    if (!written || op.resendable) return this.retry(op, 'next', error);
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
      if (op.cursor < 0) op.cursor = this.servers.preferred;
      op.cursor = (op.cursor + 1) % this.servers.serversFor(op.group).length;
    }
    if (counted) op.retries++;
    op.attempts++;
    const delayMs = backoffMs(op.attempts, this.opts.backoffMsMin, this.opts.backoffMsMax);
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
    const a = op.current;
    if (a !== null) {
      this.stopTiming(a);
      a.conn.cancel(a);
    }
    op.current = null;
    if (err === null) {
      op.resolve(value!);
      return;
    }
    if (op.maybeApplied !== null && NOT_APPLIED.has(err.code)) {
      // This answer is about the last attempt only; an earlier one may have taken effect.
      err = new FlotillaError('OUTCOME_UNKNOWN', `${op.maybeApplied}, so it may have been applied; the last attempt: ${err.code} ${err.message}`, err.leader);
    } else if (op.maybeApplied !== null && err.code === 'TIMEOUT' && !err.message.endsWith(MAYBE)) {
      err = new FlotillaError('TIMEOUT', `${err.message} (${op.maybeApplied})${MAYBE}`, err.leader);
    }
    op.reject(err);
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
      const sent = op.current !== null && op.current.written;
      const maybe = !op.mode.read && (op.maybeApplied !== null || sent) ? MAYBE : '';
      const last = op.address !== '' ? ` (last tried ${op.address})` : '';
      this.settle(op, new FlotillaError('TIMEOUT', `no answer within ${this.opts.requestTimeoutMs} ms${last}${maybe}`), null);
    }
    this.armDeadlineTimer();
  }
}

/** Exponential backoff with jitter: a delay in [ceiling / 2, ceiling], the ceiling doubling from min to max. */
export function backoffMs(attempt: number, min: number, max: number): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}
