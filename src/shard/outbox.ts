// Everything a shard sends to the main thread in one turn, gathered and then written to the out
// ring in one go: one OutKind.Peer record per destination node (its Raft messages as peer
// sub-records, heartbeats coalesced), one OutKind.Client record per connection (its response
// frames back to back), admin replies and events. What does not fit one ring record goes in
// several, cut between sub-records (or frames), which stand on their own. A full ring is waited out, never
// dropped: the main thread drains out rings whatever else it does, so the wait ends.
//
// Bounds: response bytes gathered in one turn are capped by clientBytesMax (one ring's worth:
// more could not be in the ring at once anyway, so holding them gains nothing). The outbox does
// not refuse a response itself (every request gets exactly one); the parts that make large
// responses check clientFull before making one: linearizable reads wait for the next turn,
// stale reads are answered OVERLOADED (client-requests.ts). Peer payloads, admin replies and
// events of a turn are bounded by what one turn takes in (turnRecordsMax records, the Raft
// cores' windows of messages in flight).
import { pack } from 'msgpackr';
import { assert } from '../util/assert.js';
import { MessageType, type Message } from '../raft/types.js';
import { OutKind, RECORD_HEADER_BYTES, tryWriteRecord, writeRecordHeader } from '../ring/records.js';
import type { SpscRing } from '../ring/spsc-ring.js';
import { FRAME_HEADER_BYTES, FrameKind, writeHeader, type ErrorBody, type LeaderHint, type ProtocolErrorCode } from '../protocol/client-frame.js';
import { PayloadBuilder } from '../protocol/peer-wire.js';
import type { AdminReply } from './task.js';

interface Response {
  kind: FrameKind;
  requestId: number;
  group: number;
  body: Uint8Array;
}

/** What goes to one destination node: the payload being built and any already full. */
interface PeerOut {
  b: PayloadBuilder;
  full: Uint8Array[];
}

interface OtherRecord {
  kind: OutKind;
  arg: number;
  payload: Uint8Array;
}

export interface ShardEvent {
  type: 'ready' | 'failed' | 'stopped';
  shard: number;
  message?: string;
}

export class Outbox {
  /** Largest record payload the ring takes. */
  readonly payloadBytesMax: number;
  /** Times a flush found the ring full and waited for room. */
  ringWaits = 0;
  /** The most response bytes (frames with their headers) gathered before a flush; see the header. */
  readonly clientBytesMax: number;
  /** Response bytes gathered since the last flush. */
  private clientBytes = 0;
  private readonly peers = new Map<number, PeerOut>();
  private clients = new Map<number, Response[]>();
  private others: OtherRecord[] = [];
  private committed = false;

  constructor(private readonly ring: SpscRing, private readonly snapChunkBytesMax: number) {
    this.payloadBytesMax = ring.recordBytesMax - RECORD_HEADER_BYTES;
    // recordBytesMax is a quarter of the ring's capacity (spsc-ring.ts).
    this.clientBytesMax = 4 * ring.recordBytesMax;
    assert(snapChunkBytesMax > 0, 'snapChunkBytes must be positive');
  }

  // --- Gathering ---

  /** A Raft message of `group` for node `m.to`. */
  raft(group: number, m: Message): void {
    let p = this.peers.get(m.to);
    if (p === undefined) {
      // Each payload is exactly one ring record; a message that would pass the bound starts the next.
      p = { b: new PayloadBuilder(this.payloadBytesMax), full: [] };
      this.peers.set(m.to, p);
    }
    switch (m.type) {
      case MessageType.Heartbeat:
      case MessageType.HeartbeatResp:
        this.room(p, p.b.appendBytes(m));
        p.b.appendHeartbeat(group, m);
        break;
      case MessageType.Snap:
        this.snapChunks(p, group, m);
        break;
      default:
        this.room(p, p.b.appendBytes(m));
        p.b.appendRaft(group, m);
    }
  }

  /** Cuts a snapshot into chunks of at most snapChunkBytes, each small enough for one ring record. */
  private snapChunks(p: PeerOut, group: number, m: Message): void {
    const total = m.snapshot!.data.length;
    const overhead = p.b.appendBytes(m, 0);
    const len = Math.min(this.snapChunkBytesMax, this.payloadBytesMax - overhead);
    assert(len > 0, `a snapshot chunk's header (${overhead} bytes) does not fit a ring record`);
    let off = 0;
    do {
      const n = Math.min(len, total - off);
      this.room(p, overhead + n);
      p.b.appendSnapChunk(group, m, off, n);
      off += n;
    } while (off < total);
  }

  /** Starts a new payload for the destination when `bytes` more would not fit the current one. */
  private room(p: PeerOut, bytes: number): void {
    assert(bytes <= this.payloadBytesMax, `a peer sub-record of ${bytes} bytes does not fit a ring record of ${this.payloadBytesMax}`);
    if (p.b.bytes() + bytes <= this.payloadBytesMax) return;
    const payload = p.b.finish();
    if (payload !== null) p.full.push(payload);
  }

  respond(conn: number, kind: FrameKind, requestId: number, group: number, body: Uint8Array): void {
    let list = this.clients.get(conn);
    if (list === undefined) {
      list = [];
      this.clients.set(conn, list);
    }
    list.push({ kind, requestId, group, body });
    this.clientBytes += FRAME_HEADER_BYTES + body.length;
  }

  /** At or above clientBytesMax: what would make a large response waits for the flush. */
  get clientFull(): boolean {
    return this.clientBytes >= this.clientBytesMax;
  }

  error(conn: number, requestId: number, group: number, code: ProtocolErrorCode, message: string, leader?: LeaderHint): void {
    const e: ErrorBody = leader === undefined ? { code, message } : { code, message, leader };
    this.respond(conn, FrameKind.Error, requestId, group, pack(e) as Uint8Array);
  }

  /** WRONG_GROUP: the slot's owner in the node's map of `version`, and that owner's leader if known. */
  wrongGroup(conn: number, requestId: number, group: number, message: string, version: number, owner: number, slot: number, leader?: LeaderHint): void {
    const e: ErrorBody = { code: 'WRONG_GROUP', message, version, group: owner, slot };
    if (leader !== undefined) e.leader = leader;
    this.respond(conn, FrameKind.Error, requestId, group, pack(e) as Uint8Array);
  }

  adminReply(id: number, reply: AdminReply): void {
    let payload = pack(reply) as Uint8Array;
    if (payload.length > this.payloadBytesMax) {
      // A reply that outgrows one ring record is refused rather than failing the shard (the
      // node asks for statuses a page of STATUS_GROUPS_MAX at a time, so they fit the default ring).
      const refusal: AdminReply = { ok: false, code: 'TOO_LARGE', message: `admin reply of ${payload.length} bytes exceeds a ring record (${this.payloadBytesMax}); raise ringBytes` };
      payload = pack(refusal) as Uint8Array;
    }
    this.others.push({ kind: OutKind.AdminReply, arg: id, payload });
  }

  event(ev: ShardEvent): void {
    this.others.push({ kind: OutKind.Event, arg: 0, payload: pack(ev) as Uint8Array });
  }

  /**
   * The key map's image after the meta replica here applied a change or restored a snapshot,
   * for the main thread's copy. False (nothing sent) for an image larger than a ring record:
   * the main thread then learns the map from a meta member over the client protocol.
   */
  mapChanged(image: Uint8Array): boolean {
    if (image.length > this.payloadBytesMax) return false;
    this.others.push({ kind: OutKind.Map, arg: 0, payload: image });
    return true;
  }

  get empty(): boolean {
    if (this.clients.size > 0 || this.others.length > 0) return false;
    for (const p of this.peers.values()) if (p.full.length > 0 || p.b.bytes() > 0) return false;
    return true;
  }

  // --- Writing ---

  /**
   * Writes what is gathered for peers to the ring now, as far as the ring has room and without
   * waiting, and rings the doorbell. A turn calls it before applying committed entries, so that
   * followers work on an append while the leader applies the previous one. What does not fit
   * stays, in order, for flush().
   */
  sendPeersNow(): void {
    for (const [to, p] of this.peers) {
      while (p.full.length > 0) {
        if (!this.tryPut(OutKind.Peer, to, p.full[0]!)) {
          this.doorbell();
          return;
        }
        p.full.shift();
      }
      const last = p.b.finishView();
      if (last !== null && !this.tryPut(OutKind.Peer, to, last)) {
        p.full.push(last.slice());
        this.doorbell();
        return;
      }
    }
    this.doorbell();
  }

  private tryPut(kind: OutKind, arg: number, payload: Uint8Array): boolean {
    if (!tryWriteRecord(this.ring, kind, arg, payload)) return false;
    this.committed = true;
    return true;
  }

  private doorbell(): void {
    if (!this.committed) return;
    this.committed = false;
    this.ring.notify();
  }

  /** Writes everything gathered to the ring and rings the doorbell; waits only when the ring is full. */
  async flush(): Promise<void> {
    for (const [to, p] of this.peers) {
      while (p.full.length > 0) {
        const payload = p.full.shift()!;
        await this.put(OutKind.Peer, to, payload.length, (buf, at) => buf.set(payload, at));
      }
      // Nothing appends while a flush runs (the turn waits for it), so the view stays valid.
      const last = p.b.finishView();
      if (last !== null) await this.put(OutKind.Peer, to, last.length, (buf, at) => buf.set(last, at));
    }
    const clients = this.clients;
    this.clients = new Map();
    this.clientBytes = 0;
    for (const [conn, list] of clients) await this.responses(conn, list);
    while (this.others.length > 0) {
      const others = this.others;
      this.others = [];
      for (const r of others) await this.put(r.kind, r.arg, r.payload.length, (buf, at) => buf.set(r.payload, at));
    }
    if (this.committed) {
      this.committed = false;
      this.ring.notify();
    }
  }

  private async responses(conn: number, list: Response[]): Promise<void> {
    const max = this.payloadBytesMax;
    let i = 0;
    while (i < list.length) {
      let bytes = 0;
      let j = i;
      while (j < list.length && bytes + FRAME_HEADER_BYTES + list[j]!.body.length <= max) bytes += FRAME_HEADER_BYTES + list[j++]!.body.length;
      if (j === i) {
        // One result too large for any record: the request still gets its one response.
        const r = list[i]!;
        const e: ErrorBody = { code: 'TOO_LARGE', message: `response of ${r.body.length} bytes exceeds what a ring record carries` };
        list[i] = { kind: FrameKind.Error, requestId: r.requestId, group: r.group, body: pack(e) as Uint8Array };
        continue;
      }
      const from = i;
      await this.put(OutKind.Client, conn, bytes, (buf, at) => {
        for (let k = from; k < j; k++) {
          const r = list[k]!;
          const frameBytes = FRAME_HEADER_BYTES + r.body.length;
          writeHeader(buf, at, { frameBytes, kind: r.kind, flags: 0, requestId: r.requestId, group: r.group });
          buf.set(r.body, at + FRAME_HEADER_BYTES);
          at += frameBytes;
        }
      });
      i = j;
    }
  }

  private async put(kind: OutKind, arg: number, payloadBytes: number, fill: (buf: Uint8Array, at: number) => void): Promise<void> {
    const ring = this.ring;
    const bytes = RECORD_HEADER_BYTES + payloadBytes;
    let at = ring.reserve(bytes);
    while (at < 0) {
      // Announce what is already in the ring, or the main thread may sleep while we wait for it.
      this.ringWaits++;
      ring.notify();
      this.committed = false;
      await ring.waitRoom(bytes);
      at = ring.reserve(bytes);
    }
    writeRecordHeader(ring.data, at, kind, arg);
    fill(ring.data, at + RECORD_HEADER_BYTES);
    ring.commit();
    this.committed = true;
  }
}
