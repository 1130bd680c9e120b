// Drains the in ring (at most turnRecordsMax records a turn) and hands each record to the part
// that owns it: client frames, checked here, to the client requests (commands) or admin (admin
// frames); peer records and link states to the peer input; node admin requests to admin; Stop
// to the turn loop. The ring's records are read in place and released one by one.
import type { Clock } from '../io/clock.js';
import { InKind, RECORD_HEADER_BYTES, recordArg } from '../ring/records.js';
import type { SpscRing } from '../ring/spsc-ring.js';
import { FRAME_HEADER_BYTES, FrameKind, readHeader } from '../protocol/client-frame.js';
import type { Admin } from './admin.js';
import type { ClientRequests } from './client-requests.js';
import type { ShardContext } from './context.js';
import { ShardCounter } from './counters.js';
import type { ShardLogger } from './log.js';
import type { PeerInput } from './peer-input.js';
import type { ShardTask } from './task.js';

/** The body of every echo-mode Result. */
const EMPTY = new Uint8Array(0);

export class InRingReader {
  /** An InKind.Stop record was read: the loop finishes this turn and stops. */
  stopRequested = false;
  /** The last drain stopped at turnRecordsMax: records may be left for the next turn. */
  moreInput = false;
  private readonly task: ShardTask;
  private readonly log: ShardLogger;
  private readonly counters: Float64Array;
  private readonly clock: Clock;

  constructor(
    ctx: ShardContext,
    private readonly inRing: SpscRing,
    private readonly requests: ClientRequests,
    private readonly peers: PeerInput,
    private readonly admin: Admin,
  ) {
    this.task = ctx.task;
    this.log = ctx.log;
    this.counters = ctx.counters;
    this.clock = ctx.clock;
  }

  drain(): void {
    const ring = this.inRing;
    const max = this.task.turnRecordsMax;
    let n = 0;
    while (n < max && !this.stopRequested) {
      const at = ring.read();
      if (at < 0) break;
      const end = at + ring.readBytes;
      if (end - at >= RECORD_HEADER_BYTES) this.record(ring.data, at, end);
      ring.release();
      n++;
    }
    if (n > 0) ring.notifyRoom();
    this.moreInput = n === max;
  }

  private record(buf: Uint8Array, at: number, end: number): void {
    const arg = recordArg(buf, at);
    const from = at + RECORD_HEADER_BYTES;
    switch (buf[at]) {
      case InKind.Client:
        this.client(arg, buf, from, end);
        return;
      case InKind.Peer:
        this.peers.peer(arg, buf, from, end);
        return;
      case InKind.PeerState:
        this.peers.peerState(arg, end > from && buf[from] !== 0);
        return;
      case InKind.Admin:
        // A copy: msgpackr does not read strings out of a SharedArrayBuffer.
        this.admin.nodeAdmin(arg, buf.slice(from, end));
        return;
      case InKind.Stop:
        this.stopRequested = true;
        return;
      default:
        this.log.warn({ kind: buf[at] }, 'in-ring record of unknown kind ignored');
    }
  }

  private client(conn: number, buf: Uint8Array, at: number, end: number): void {
    const t0 = this.clock.nowMs();
    this.counters[ShardCounter.Requests]!++;
    const requests = this.requests;
    if (end - at < FRAME_HEADER_BYTES) {
      requests.reject(conn, 0, 0, 'BAD_REQUEST', 'record too short for a frame header', t0);
      return;
    }
    const f = readHeader(buf, at);
    if (f.frameBytes !== end - at) {
      requests.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `frame says ${f.frameBytes} bytes, its record holds ${end - at}`, t0);
      return;
    }
    const body = buf.subarray(at + FRAME_HEADER_BYTES, end);
    if (f.kind === FrameKind.Command && this.task.echo === true) requests.answer(conn, f.requestId, f.group, EMPTY, t0);
    else if (f.kind === FrameKind.Command) requests.command(conn, f, body, t0);
    else if (f.kind === FrameKind.Admin) this.admin.groupAdmin(conn, f, body, t0);
    else requests.reject(conn, f.requestId, f.group, 'BAD_REQUEST', `frame kind 0x${f.kind.toString(16)} is not served by a shard`, t0);
  }
}
