// One request of the client as the dispatcher (dispatcher.ts) tracks it: its mode (what may be
// done with it on failure), the Op that lives until it settles, and each Attempt, one sending
// on one connection. Kept as plain state here so that the policy in dispatcher.ts reads as
// decisions about these fields.
import type { ErrorBody, FrameKind } from '../protocol/client-frame.js';
import type { Connection, Exchange } from './connection.js';
import type { Dispatcher } from './dispatcher.js';
import type { FlotillaError } from './errors.js';

export interface RequestMode {
  /** Safe to send again after any transient failure (it changes nothing). */
  read: boolean;
  /**
   * A write that may be sent again after it may have been applied: applying it twice leaves
   * the state applying it once would, and its result carries nothing that a second
   * application could change (a put).
   */
  resend: boolean;
  /** A success means the server that gave it leads the group: remember it. */
  learn: boolean;
  /** Copy the result out of the socket's buffer (it is handed to user code that may keep it). */
  copy: boolean;
  /** Send only to this server: no leader cache, no redirects, no other servers. */
  pinned: string | null;
}

/** One sending of a request on one connection. */
export class Attempt implements Exchange {
  id = 0;
  written = false;
  abandoned = false;
  /** When it was handed to the connection (ms), and the connection's frames in by then. */
  startedAt = 0;
  framesInAtStart = 0;

  constructor(
    readonly op: Op,
    readonly conn: Connection,
  ) {}

  get kind(): FrameKind {
    return this.op.kind;
  }

  get flags(): number {
    return this.op.flags;
  }

  get group(): number {
    return this.op.group;
  }

  get body(): Uint8Array {
    return this.op.body;
  }

  onResponse(conn: Connection, kind: FrameKind, body: Uint8Array): void {
    this.op.d.onResponse(this, conn, kind, body);
  }

  onServerError(conn: Connection, error: ErrorBody): void {
    this.op.d.onServerError(this, conn, error);
  }

  onConnectionFailure(conn: Connection, error: FlotillaError, written: boolean): void {
    this.op.d.onConnectionFailure(this, conn, error, written);
  }
}

export class Op {
  settled = false;
  /** The attempt whose outcome decides what happens next; null while backing off. */
  current: Attempt | null = null;
  /** The server of the current or last attempt. */
  address = '';
  /** Index into `servers` used when no leader is known; -1 until first used. */
  cursor = -1;
  redirects = 0;
  retries = 0;
  /** Every retry so far, counted or not: drives the backoff. */
  attempts = 0;
  noGroupAnswers = 0;
  /** Why an earlier attempt of this write may have been applied; null while none may have. */
  maybeApplied: string | null = null;
  /** Servers that failed during this request (no connection, connection lost, attempt timed out). */
  failed: Set<string> | null = null;
  /** A retry that waits for its backoff. */
  timer: NodeJS.Timeout | null = null;
  readonly resendable: boolean;

  constructor(
    readonly d: Dispatcher,
    readonly kind: FrameKind,
    readonly flags: number,
    readonly group: number,
    readonly body: Uint8Array,
    readonly mode: RequestMode,
    readonly deadline: number,
    readonly resolve: (v: Uint8Array) => void,
    readonly reject: (e: FlotillaError) => void,
  ) {
    this.resendable = mode.read || mode.resend;
  }

  noteFailed(address: string): void {
    if (this.failed === null) this.failed = new Set();
    this.failed.add(address);
  }
}
