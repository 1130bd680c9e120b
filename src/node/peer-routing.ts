// Peer traffic from the links to the shards. The main thread reads only a link frame's
// sub-record headers (bytes, group): it sums bytes per owning shard, reserves one InKind.Peer
// record per shard and copies the sub-records into it; it never decodes a body. A sub-record
// for group GROUP_BROADCAST goes to every shard. A payload that finds a ring full is held
// (in-ring.ts) and its link paused until every payload held for that peer is written.
// Traffic the other way (OutKind.Peer) goes straight from the out-ring drain to `links`.

import { GROUP_BROADCAST, subBytes, subGroup } from '../protocol/peer-wire.js';
import { InKind, RECORD_HEADER_BYTES, writeRecordHeader } from '../ring/records.js';
import type { PeerLinks } from '../transport/peer-links.js';
import type { InRingWriter } from './in-ring.js';
import type { Logger } from './log.js';
import { shardOf } from './placement.js';
import type { ShardSlot } from './shard-pool.js';

export class PeerRouter {
  /** Set once the node has created its links (before they start). */
  links: PeerLinks | null = null;
  /** Bytes per shard of the peer payload being routed (reused). */
  private peerSizes: number[] = [];
  /** Per peer: payloads held back for a full ring; its link is paused while any are. */
  private readonly linkHolds = new Map<number, number>();

  constructor(private readonly shards: readonly ShardSlot[], private readonly log: Logger) {}


  /** Splits a link frame's sub-records by owning shard, one in-ring record per shard. */
  route(from: number, buf: Uint8Array, at: number, end: number): void {
    const n = this.shards.length;
    if (n === 1) {
      this.sendRecord(this.shards[0]!.input, from, buf.subarray(at, end));
      return;
    }
    const sizes = this.peerSizes.length === n ? this.peerSizes.fill(0) : (this.peerSizes = new Array<number>(n).fill(0));
    for (let p = at; p < end; p += subBytes(buf, p)) {
      const g = subGroup(buf, p);
      const bytes = subBytes(buf, p);
      if (g === GROUP_BROADCAST) for (let k = 0; k < n; k++) sizes[k]! += bytes;
      else sizes[shardOf(g, n)]! += bytes;
    }
    for (let k = 0; k < n; k++) {
      const size = sizes[k]!;
      if (size === 0) continue;
      const input = this.shards[k]!.input;
      if (size === end - at) {
        // Every sub-record is for this shard: the payload goes as it is.
        this.sendRecord(input, from, buf.subarray(at, end));
        continue;
      }
      // The common case: gather this shard's sub-records straight into its ring (one copy).
      const ring = input.ring;
      if (input.blocked.length === 0 && RECORD_HEADER_BYTES + size <= ring.recordBytesMax) {
        const r = ring.reserve(RECORD_HEADER_BYTES + size);
        if (r >= 0) {
          writeRecordHeader(ring.data, r, InKind.Peer, from);
          gatherSubRecords(buf, at, end, k, n, ring.data, r + RECORD_HEADER_BYTES);
          ring.commit();
          ring.notify();
          continue;
        }
      }
      const part = new Uint8Array(size);
      gatherSubRecords(buf, at, end, k, n, part, 0);
      this.sendRecord(input, from, part);
    }
  }

  private sendRecord(input: InRingWriter, from: number, payload: Uint8Array): void {
    if (RECORD_HEADER_BYTES + payload.length > input.ring.recordBytesMax) {
      this.splitRecord(input, from, payload);
      return;
    }
    if (input.blocked.length === 0 && input.write(InKind.Peer, from, payload)) return;
    const held = payload.slice();
    const holds = this.linkHolds.get(from) ?? 0;
    this.linkHolds.set(from, holds + 1);
    if (holds === 0) this.links?.pause(from);
    input.whenRoom(held.length, () => {
      if (!input.write(InKind.Peer, from, held)) return false;
      const left = this.linkHolds.get(from)! - 1;
      this.linkHolds.set(from, left);
      if (left === 0) this.links?.resume(from);
      return true;
    });
  }

  /** A payload too large for one ring record goes as several, cut between sub-records. */
  private splitRecord(input: InRingWriter, from: number, payload: Uint8Array): void {
    const max = input.ring.recordBytesMax - RECORD_HEADER_BYTES;
    let start = 0;
    let p = 0;
    while (p < payload.length) {
      const bytes = subBytes(payload, p);
      if (bytes > max) {
        this.log.warn({ from, bytes, max }, 'dropped a peer sub-record larger than a ring record');
        if (p > start) this.sendRecord(input, from, payload.subarray(start, p));
        p += bytes;
        start = p;
        continue;
      }
      if (p + bytes - start > max) {
        this.sendRecord(input, from, payload.subarray(start, p));
        start = p;
      }
      p += bytes;
    }
    if (p > start) this.sendRecord(input, from, payload.subarray(start, p));
  }

  /** A link came up or went down: every shard is told (InKind.PeerState). */
  state(peer: number, up: boolean): void {
    this.log.info({ peer, up }, up ? 'link up' : 'link down');
    const payload = new Uint8Array([up ? 1 : 0]);
    for (const shard of this.shards) shard.input.writeOrHold(InKind.PeerState, peer, payload);
  }
}

/** Copies the sub-records of buf[at, end) that shard `k` of `n` owns (broadcasts included) to dst[dstAt..]. */
function gatherSubRecords(buf: Uint8Array, at: number, end: number, k: number, n: number, dst: Uint8Array, dstAt: number): void {
  let w = dstAt;
  for (let p = at; p < end;) {
    const bytes = subBytes(buf, p);
    const g = subGroup(buf, p);
    if (g === GROUP_BROADCAST || shardOf(g, n) === k) {
      dst.set(buf.subarray(p, p + bytes), w);
      w += bytes;
    }
    p += bytes;
  }
}
