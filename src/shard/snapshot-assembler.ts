// Reassembles snapshots that a leader sent in chunks (peer sub-records of kind SnapChunk) into
// the one Snap message the Raft core steps. One transfer at a time per (group, sender); chunks
// must arrive in order (a link is one TCP stream), and a chunk that does not continue the
// transfer in progress drops it: the leader resends the snapshot if it hears nothing
// (reportSnapshot, or its resend timeout).
//
// Bounds: a snapshot larger than `bytesMax` is refused outright; the buffers of unfinished
// transfers together hold at most `bytesTotalMax` (oldest transfer dropped first), so a
// sender that starts many transfers and finishes none cannot exhaust memory.
import type { Message } from '../raft/types.js';
import type { SnapChunk } from '../protocol/snap-chunk-codec.js';

interface Assembly {
  group: number;
  from: number;
  index: number;
  term: number;
  data: Uint8Array;
  received: number;
  m: Message;
}

export class SnapshotAssembler {
  private readonly transfers = new Map<string, Assembly>();
  private bytesHeld = 0;
  /** Chunks dropped (too large, out of order, evicted transfers), for logs. */
  dropped = 0;

  constructor(readonly bytesMax: number, readonly bytesTotalMax: number) {}

  /** Adds a chunk for `group`; returns the whole Snap message when its last chunk arrives, else null. */
  add(group: number, c: SnapChunk): Message | null {
    const snap = c.m.snapshot;
    const key = `${group}/${c.m.from}`;
    if (snap === null || c.totalBytes > this.bytesMax || c.offset + c.data.length > c.totalBytes) {
      this.drop(key);
      this.dropped++;
      return null;
    }
    let a = this.transfers.get(key);
    if (c.offset === 0) {
      // A new transfer, or a resend: it replaces whatever came before from this sender.
      this.drop(key);
      this.makeRoom(c.totalBytes);
      a = { group, from: c.m.from, index: snap.meta.index, term: snap.meta.term, data: new Uint8Array(c.totalBytes), received: 0, m: c.m };
      this.transfers.set(key, a);
      this.bytesHeld += c.totalBytes;
    } else if (a === undefined || a.index !== snap.meta.index || a.term !== snap.meta.term ||
      a.data.length !== c.totalBytes || a.received !== c.offset) {
      this.drop(key);
      this.dropped++;
      return null;
    }
    a.data.set(c.data, c.offset);
    a.received += c.data.length;
    if (a.received < a.data.length) return null;
    this.drop(key);
    const m = a.m;
    m.snapshot = { meta: a.m.snapshot!.meta, data: a.data };
    return m;
  }

  /** Forgets unfinished transfers of a group (it left this shard). */
  dropGroup(group: number): void {
    for (const a of [...this.transfers.values()]) if (a.group === group) this.drop(`${a.group}/${a.from}`);
  }

  /** Forgets unfinished transfers from a node (its link went down: the stream is broken). */
  dropFrom(node: number): void {
    for (const a of [...this.transfers.values()]) if (a.from === node) this.drop(`${a.group}/${a.from}`);
  }

  get transfersInProgress(): number {
    return this.transfers.size;
  }

  private drop(key: string): void {
    const a = this.transfers.get(key);
    if (a === undefined) return;
    this.transfers.delete(key);
    this.bytesHeld -= a.data.length;
  }

  private makeRoom(bytes: number): void {
    // Maps iterate in insertion order: the first entry is the oldest transfer.
    for (const [key] of this.transfers) {
      if (this.bytesHeld + bytes <= this.bytesTotalMax) return;
      this.drop(key);
      this.dropped++;
    }
  }
}
