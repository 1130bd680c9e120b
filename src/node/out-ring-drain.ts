// Draining the shards' out rings on the main thread, one loop per shard for as long as the
// node runs: response frames to their client connection (or to the in-process request they
// answer), peer payloads to their link, admin replies to the request waiting, and the shard's
// events (ready, failed, stopped) to the shard pool. Main never blocks on an in ring while it
// could drain out rings, so the two directions cannot deadlock (internals.md).

import { unpack } from 'msgpackr';
import { CONN_IN_PROCESS, CONN_INTERNAL, OutKind, RECORD_HEADER_BYTES, recordArg, recordKind } from '../ring/records.js';
import type { ClientRouter } from './client-routing.js';
import type { LocalRequests } from './local-requests.js';
import type { NodeAdmin } from './node-admin.js';
import type { PeerRouter } from './peer-routing.js';
import type { ShardEvent, ShardPool, ShardSlot } from './shard-pool.js';

/** Records handled per out-ring drain before yielding to sockets. */
const DRAIN_RECORDS_MAX = 4096;

export class OutRingDrain {
  constructor(
    private readonly pool: ShardPool,
    private readonly clients: ClientRouter,
    private readonly local: LocalRequests,
    private readonly admin: NodeAdmin,
    private readonly peers: PeerRouter,
    /** A key map image a meta replica reported (NodeMap.offer); it copies what it keeps. */
    private readonly onMap: (image: Uint8Array) => void,
    /** The node's internal requests (migration), answered on CONN_INTERNAL. */
    private readonly internal: LocalRequests | null = null,
  ) {}

  /** Drains one shard's out ring for as long as the node runs. */
  async pump(shard: ShardSlot): Promise<void> {
    const ring = shard.outRing;
    for (;;) {
      try {
        await ring.waitData();
      } catch {
        return; // the ring was closed at stop
      }
      let handled = 0;
      for (let at = ring.read(); at >= 0; at = ring.read()) {
        this.handle(shard, ring.data, at, ring.readBytes);
        ring.release();
        if (++handled === DRAIN_RECORDS_MAX) break;
      }
      ring.notifyRoom();
      if (shard.state === 'stopped' || shard.state === 'failed') {
        if (ring.read() < 0) return;
      }
      // Let sockets flush and read between large drains.
      if (handled === DRAIN_RECORDS_MAX) await new Promise((r) => setImmediate(r));
    }
  }

  private handle(shard: ShardSlot, buf: Uint8Array, at: number, bytes: number): void {
    const kind = recordKind(buf, at);
    const arg = recordArg(buf, at);
    const from = at + RECORD_HEADER_BYTES;
    const end = at + bytes;
    switch (kind) {
      case OutKind.Client:
        if (arg === CONN_IN_PROCESS) this.local.settleFrames(buf, from, end);
        else if (arg === CONN_INTERNAL) this.internal?.settleFrames(buf, from, end);
        else this.clients.deliver(arg, buf, from, end);
        return;
      case OutKind.Peer:
        this.peers.links?.send(arg, buf.subarray(from, end));
        return;
      case OutKind.AdminReply:
        this.admin.settle(arg, buf, from, end);
        return;
      case OutKind.Event:
        this.pool.event(shard, unpackCopy(buf, from, end) as ShardEvent);
        return;
      case OutKind.Map:
        this.onMap(buf.subarray(from, end));
        return;
      default:
        throw new Error(`shard ${shard.index} wrote an out-ring record of unknown kind ${kind}`);
    }
  }
}

/** msgpackr's native string path refuses SharedArrayBuffer memory: unpack a private copy. */
export function unpackCopy(buf: Uint8Array, from: number, end: number): unknown {
  return unpack(buf.slice(from, end));
}
