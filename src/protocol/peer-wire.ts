// The bytes on a link between two nodes (docs/internals.md "Peer links"): the handshake, link
// frames, and the sub-records a link frame's payload is made of. The main thread uses the
// reading side (it splits the TCP stream into frames and routes sub-records by group without
// decoding a body); a shard uses PayloadBuilder to put its outgoing messages in sub-records.
// All integers are little-endian.
//
// Handshake (HELLO_BYTES = 20), each side sends once on connect:
//    0  u32 magic 0x464c5431 ("FLT1")
//    4  u32 version 2
//    8  u32 clusterId   config `clusterId`: nodes of another cluster are refused (CLUSTER_MISMATCH)
//   12  u32 fromNode
//   16  u32 toNode
//
// Link frame: u32 payloadBytes | payload, payloadBytes ≤ linkFrameBytesMax.
// Payload: sub-records back to back, each
//    0  u32 bytes   whole sub-record, header included (≥ SUB_HEADER_BYTES)
//    4  u32 group   GROUP_BROADCAST for Heartbeats and HeartbeatResps, a group id otherwise
//    8  u8  kind    SubKind
//    9  u8  0
//   10  u16 0
//   12  body        see raft-codec.ts
import { assert } from '../util/assert.js';
import { MessageType, type Message } from '../raft/types.js';
import {
  CodecError,
  encodeRaftMessage,
  HEARTBEAT_ITEM_BYTES,
  HEARTBEATS_HEADER_BYTES,
  raftMessageBytes,
  writeHeartbeatItem,
  writeHeartbeatsHeader,
} from './raft-codec.js';
import { encodeSnapChunk, snapChunkBytes } from './snap-chunk-codec.js';

export const LINK_MAGIC = 0x464c5431;
export const LINK_VERSION = 2;
export const HELLO_BYTES = 20;
export const LINK_FRAME_HEADER_BYTES = 4; // u32 payloadBytes
export const SUB_HEADER_BYTES = 12; // u32 bytes | u32 group | u8 kind | u8 0 | u16 0
export const GROUP_BROADCAST = 0xffffffff;

export enum SubKind {
  /** Body: one Raft message (encodeRaftMessage). */
  RaftMessage = 1,
  /** Body: a piece of a Snap message (encodeSnapChunk). */
  SnapChunk = 2,
  /** Body: every Heartbeat the sender had for that node (encodeHeartbeats); group GROUP_BROADCAST. */
  Heartbeats = 3,
  /** Body: every HeartbeatResp likewise. */
  HeartbeatResps = 4,
}

function putU32(b: Uint8Array, p: number, v: number): void {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
}

function getU32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

// ---- Handshake ----

export interface Hello {
  magic: number;
  version: number;
  clusterId: number;
  fromNode: number;
  toNode: number;
}

export function encodeHello(clusterId: number, fromNode: number, toNode: number): Uint8Array {
  assert(clusterId >>> 0 === clusterId && fromNode >>> 0 === fromNode && toNode >>> 0 === toNode, 'cluster and node ids are u32');
  const b = new Uint8Array(HELLO_BYTES);
  putU32(b, 0, LINK_MAGIC);
  putU32(b, 4, LINK_VERSION);
  putU32(b, 8, clusterId);
  putU32(b, 12, fromNode);
  putU32(b, 16, toNode);
  return b;
}

/** Reads the HELLO_BYTES handshake bytes at buf[at..] as they are; helloProblem judges them. Throws CodecError('BAD_FRAME') if fewer are there. */
export function decodeHello(buf: Uint8Array, at: number): Hello {
  if (!(at >= 0 && at + HELLO_BYTES <= buf.length)) throw new CodecError('BAD_FRAME', `a hello needs ${HELLO_BYTES} bytes`);
  return {
    magic: getU32(buf, at), version: getU32(buf, at + 4), clusterId: getU32(buf, at + 8),
    fromNode: getU32(buf, at + 12), toNode: getU32(buf, at + 16),
  };
}

/**
 * Stable codes of a refused link (logged with the refusal): BAD_HELLO (not a Flotilla link, a
 * version or node id that does not fit), CLUSTER_MISMATCH (a node of another cluster),
 * NOT_MEMBER (a node id the configuration does not list), LINK_IN_USE (a second link for a node
 * whose link is alive).
 */
export type LinkRefusal = 'BAD_HELLO' | 'CLUSTER_MISMATCH' | 'NOT_MEMBER' | 'LINK_IN_USE';

export interface HelloProblem {
  code: LinkRefusal;
  reason: string;
}

/**
 * Why a received hello must close the link, or null. `localNode` is this node, `clusterId` its
 * cluster; `peerNode`, when given, is the node this side dialed (the accepting side learns the
 * peer from the hello).
 */
export function helloProblem(h: Hello, clusterId: number, localNode: number, peerNode?: number): HelloProblem | null {
  const bad = (reason: string): HelloProblem => ({ code: 'BAD_HELLO', reason });
  if (h.magic !== LINK_MAGIC) return bad(`wrong magic 0x${h.magic.toString(16)} (not a Flotilla link)`);
  if (h.version !== LINK_VERSION) return bad(`link version ${h.version}, this node speaks ${LINK_VERSION}`);
  if (h.clusterId !== clusterId) {
    return { code: 'CLUSTER_MISMATCH', reason: `hello from cluster ${h.clusterId}, this node is in cluster ${clusterId} (config clusterId)` };
  }
  if (h.toNode !== localNode) return bad(`hello is for node ${h.toNode}, this is node ${localNode}`);
  if (h.fromNode === 0 || h.fromNode === localNode) return bad(`hello from node ${h.fromNode}`);
  if (peerNode !== undefined && h.fromNode !== peerNode) return bad(`dialed node ${peerNode} but node ${h.fromNode} answered`);
  return null;
}

/**
 * Collects the 16 hello bytes at the start of a link's stream, which may arrive split or in the
 * same chunk as the first frames. push returns how many bytes of the chunk it took; once
 * `hello` is set, the rest of the chunk (`chunk.subarray(taken)`) belongs to the frame reader.
 */
export class HelloReader {
  hello: Hello | null = null;
  private readonly b = new Uint8Array(HELLO_BYTES);
  private have = 0;

  push(chunk: Uint8Array): number {
    if (this.hello !== null) return 0;
    const take = Math.min(HELLO_BYTES - this.have, chunk.length);
    this.b.set(chunk.subarray(0, take), this.have);
    this.have += take;
    if (this.have === HELLO_BYTES) this.hello = decodeHello(this.b, 0);
    return take;
  }
}

// ---- Sub-records ----

export function writeSubHeader(buf: Uint8Array, at: number, bytes: number, group: number, kind: SubKind): void {
  if (!(bytes >= SUB_HEADER_BYTES && bytes >>> 0 === bytes)) assert(false, `sub-record of ${bytes} bytes`);
  if (!(group >>> 0 === group)) assert(false, `group ${group} is not a u32`);
  putU32(buf, at, bytes);
  putU32(buf, at + 4, group);
  buf[at + 8] = kind;
  buf[at + 9] = 0;
  buf[at + 10] = 0;
  buf[at + 11] = 0;
}

export function subBytes(buf: Uint8Array, at: number): number {
  return getU32(buf, at);
}

export function subGroup(buf: Uint8Array, at: number): number {
  return getU32(buf, at + 4);
}

export function subKind(buf: Uint8Array, at: number): number {
  return buf[at + 8]!;
}

/**
 * Validates a link-frame payload's sub-record chain (each bytes ≥ 12, within the payload, known
 * kind, reserved bytes 0, GROUP_BROADCAST exactly on the heartbeat kinds); returns null or the
 * reason. Main thread calls this before routing. Bodies are not looked at: their decoders check
 * them in the shard. An empty payload is valid (no sub-records).
 */
export function payloadProblem(buf: Uint8Array, at: number, end: number): string | null {
  if (!(0 <= at && at <= end && end <= buf.length)) return `payload range [${at}, ${end}) outside a buffer of ${buf.length} bytes`;
  let p = at;
  // Every pass moves p forward by at least SUB_HEADER_BYTES, so the loop is bounded by the payload.
  while (p < end) {
    const offset = p - at;
    if (end - p < SUB_HEADER_BYTES) return `${end - p} bytes at offset ${offset} are too few for a sub-record header`;
    const bytes = getU32(buf, p);
    if (bytes < SUB_HEADER_BYTES) return `sub-record at offset ${offset} claims ${bytes} bytes, less than its header`;
    if (bytes > end - p) return `sub-record at offset ${offset} of ${bytes} bytes runs past the payload (${end - p} left)`;
    const kind = buf[p + 8]!;
    if (kind < SubKind.RaftMessage || kind > SubKind.HeartbeatResps) return `sub-record at offset ${offset} has unknown kind ${kind}`;
    if (buf[p + 9] !== 0 || buf[p + 10] !== 0 || buf[p + 11] !== 0) return `sub-record at offset ${offset} has reserved bytes that are not 0`;
    const broadcast = getU32(buf, p + 4) === GROUP_BROADCAST;
    const heartbeats = kind === SubKind.Heartbeats || kind === SubKind.HeartbeatResps;
    if (broadcast !== heartbeats) {
      return heartbeats
        ? `heartbeat sub-record at offset ${offset} is not for group 0xffffffff`
        : `sub-record of kind ${kind} at offset ${offset} is for group 0xffffffff`;
    }
    p += bytes;
  }
  return null;
}

// ---- Reading link frames ----

/** A reassembly buffer larger than this is dropped after its frame rather than kept for reuse. */
const REASSEMBLY_KEEP_BYTES_MAX = 1 << 20;

/**
 * A stream splitter for a TCP link: feed chunks, get whole frame payloads; bounded by
 * frameBytesMax (a larger length is an error, reported, not an allocation).
 *
 * onPayload(buf, at, end) gets the payload's bytes buf[at, end): the chunk itself when the frame
 * lies in one chunk (no copy), else a reassembly buffer this reader reuses. Either way they are
 * valid only during the call. After an error every push returns that error again: close the link.
 * If onPayload throws, the exception propagates and the reader's position is lost: close the link.
 */
export class LinkFrameReader {
  private readonly header = new Uint8Array(LINK_FRAME_HEADER_BYTES);
  private headerHave = 0;
  /** Length of the frame being reassembled, or -1 while reading a header. */
  private payloadBytes = -1;
  private assembly = new Uint8Array(0);
  private assemblyHave = 0;
  private error: string | null = null;

  constructor(readonly frameBytesMax: number) {
    if (!(Number.isInteger(frameBytesMax) && frameBytesMax >= 0 && frameBytesMax <= 0xffffffff)) assert(false, `frameBytesMax ${frameBytesMax}`);
  }

  /** True when bytes of an unfinished frame (or its header) are held: a stream ending now was cut. */
  partial(): boolean {
    return this.headerHave > 0 || this.payloadBytes >= 0;
  }

  push(chunk: Uint8Array, onPayload: (buf: Uint8Array, at: number, end: number) => void): string | null {
    if (this.error !== null) return this.error;
    const n = chunk.length;
    let p = 0;
    // Every pass consumes at least one byte, or a whole header, so the loop ends.
    while (p < n) {
      if (this.payloadBytes >= 0) {
        const take = Math.min(this.payloadBytes - this.assemblyHave, n - p);
        this.assembly.set(chunk.subarray(p, p + take), this.assemblyHave);
        this.assemblyHave += take;
        p += take;
        if (this.assemblyHave < this.payloadBytes) break;
        const len = this.payloadBytes;
        const assembly = this.assembly;
        this.payloadBytes = -1;
        this.assemblyHave = 0;
        if (assembly.length > REASSEMBLY_KEEP_BYTES_MAX) this.assembly = new Uint8Array(0);
        onPayload(assembly, 0, len);
        continue;
      }
      let len: number;
      if (this.headerHave === 0 && n - p >= LINK_FRAME_HEADER_BYTES) {
        len = getU32(chunk, p);
        p += LINK_FRAME_HEADER_BYTES;
      } else {
        const take = Math.min(LINK_FRAME_HEADER_BYTES - this.headerHave, n - p);
        this.header.set(chunk.subarray(p, p + take), this.headerHave);
        this.headerHave += take;
        p += take;
        if (this.headerHave < LINK_FRAME_HEADER_BYTES) break;
        this.headerHave = 0;
        len = getU32(this.header, 0);
      }
      if (len > this.frameBytesMax) {
        this.error = `link frame of ${len} bytes exceeds linkFrameBytesMax ${this.frameBytesMax}`;
        return this.error;
      }
      if (n - p >= len) {
        onPayload(chunk, p, p + len);
        p += len;
        continue;
      }
      if (this.assembly.length < len) {
        // Doubling keeps a stream of growing frames from reallocating each time; never past the bound.
        this.assembly = new Uint8Array(Math.min(this.frameBytesMax, Math.max(len, 2 * this.assembly.length)));
      }
      this.payloadBytes = len;
      this.assemblyHave = 0;
    }
    return null;
  }
}

// ---- Building payloads ----

/** PayloadBuilder's bound when none is given: linkFrameBytesMax's default (config.ts). */
export const PAYLOAD_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** Side buffer for one heartbeat kind: items written as they come, headed at finish. */
class HeartbeatRun {
  items: Uint8Array = new Uint8Array(HEARTBEAT_ITEM_BYTES * 64);
  count = 0;

  /** Sub-record bytes this run adds to the payload (0 when empty). */
  bytes(): number {
    return this.count === 0 ? 0 : SUB_HEADER_BYTES + HEARTBEATS_HEADER_BYTES + this.count * HEARTBEAT_ITEM_BYTES;
  }

  append(group: number, m: Message): void {
    const at = this.count * HEARTBEAT_ITEM_BYTES;
    if (at + HEARTBEAT_ITEM_BYTES > this.items.length) {
      const grown = new Uint8Array(this.items.length * 2);
      grown.set(this.items.subarray(0, at));
      this.items = grown;
    }
    writeHeartbeatItem(this.items, at, group, m);
    this.count++;
  }

  /** Writes the sub-record at buf[at..]; returns its end. */
  flush(buf: Uint8Array, at: number, kind: SubKind, type: MessageType): number {
    const bytes = this.bytes();
    writeSubHeader(buf, at, bytes, GROUP_BROADCAST, kind);
    writeHeartbeatsHeader(buf, at + SUB_HEADER_BYTES, this.count, type);
    buf.set(this.items.subarray(0, this.count * HEARTBEAT_ITEM_BYTES), at + SUB_HEADER_BYTES + HEARTBEATS_HEADER_BYTES);
    this.count = 0;
    return at + bytes;
  }
}

/**
 * Builds outgoing payloads (runs of sub-records, without the link frame header) for one
 * destination. Raft messages and snapshot chunks are written as they come, in order; Heartbeats
 * and HeartbeatResps are coalesced into one sub-record each, placed after them at finish (Raft
 * does not depend on the order of messages). The buffer is reused and grows by doubling.
 *
 * Bound: a payload never exceeds `bytesMax` (the out-ring record or link frame it must fit in);
 * an append that would pass it is a bug in the caller, which should check `appendBytes(m)`
 * against `bytesMax - bytes()` and finish first.
 */
export class PayloadBuilder {
  private buf: Uint8Array;
  private len = 0;
  private readonly heartbeats = new HeartbeatRun();
  private readonly heartbeatResps = new HeartbeatRun();

  constructor(
    readonly bytesMax: number = PAYLOAD_BYTES_MAX_DEFAULT,
    initialBytes = 64 * 1024,
  ) {
    if (!(Number.isInteger(bytesMax) && bytesMax >= SUB_HEADER_BYTES)) assert(false, `bytesMax ${bytesMax}`);
    this.buf = new Uint8Array(Math.min(initialBytes, bytesMax));
  }

  /** Payload size so far, pending heartbeat sub-records included. */
  bytes(): number {
    return this.len + this.heartbeats.bytes() + this.heartbeatResps.bytes();
  }

  /** Bytes that appending m would add: with appendHeartbeat for the two heartbeat types,
   *  appendSnapChunk (with `snapLen` bytes of data) for Snap, appendRaft otherwise. */
  appendBytes(m: Message, snapLen = 0): number {
    switch (m.type) {
      case MessageType.Heartbeat:
        return this.heartbeats.count === 0 ? SUB_HEADER_BYTES + HEARTBEATS_HEADER_BYTES + HEARTBEAT_ITEM_BYTES : HEARTBEAT_ITEM_BYTES;
      case MessageType.HeartbeatResp:
        return this.heartbeatResps.count === 0 ? SUB_HEADER_BYTES + HEARTBEATS_HEADER_BYTES + HEARTBEAT_ITEM_BYTES : HEARTBEAT_ITEM_BYTES;
      case MessageType.Snap:
        return SUB_HEADER_BYTES + snapChunkBytes(m, snapLen);
      default:
        return SUB_HEADER_BYTES + raftMessageBytes(m);
    }
  }

  appendRaft(group: number, m: Message): void {
    assert(group !== GROUP_BROADCAST, 'a Raft message for group 0xffffffff');
    const bytes = SUB_HEADER_BYTES + raftMessageBytes(m);
    const at = this.reserve(bytes);
    const end = encodeRaftMessage(m, this.buf, at + SUB_HEADER_BYTES);
    assert(end === at + bytes, 'raftMessageBytes disagrees with encodeRaftMessage');
    writeSubHeader(this.buf, at, bytes, group, SubKind.RaftMessage);
    this.len = end;
  }

  /** Heartbeat or HeartbeatResp; copied now, so m may be reused after the call. */
  appendHeartbeat(group: number, m: Message): void {
    assert(group !== GROUP_BROADCAST, 'a heartbeat for group 0xffffffff');
    const add = this.appendBytes(m);
    if (!(this.bytes() + add <= this.bytesMax)) assert(false, `payload would exceed ${this.bytesMax} bytes`);
    if (m.type === MessageType.Heartbeat) this.heartbeats.append(group, m);
    else if (m.type === MessageType.HeartbeatResp) this.heartbeatResps.append(group, m);
    else assert(false, `appendHeartbeat with message type ${m.type}`);
  }

  /** The data [offset, offset + len) of m's snapshot, with the message and snapshot meta. */
  appendSnapChunk(group: number, m: Message, offset: number, len: number): void {
    assert(group !== GROUP_BROADCAST, 'a snapshot chunk for group 0xffffffff');
    const bytes = SUB_HEADER_BYTES + snapChunkBytes(m, len);
    const at = this.reserve(bytes);
    const end = encodeSnapChunk(m, offset, len, this.buf, at + SUB_HEADER_BYTES);
    assert(end === at + bytes, 'snapChunkBytes disagrees with encodeSnapChunk');
    writeSubHeader(this.buf, at, bytes, group, SubKind.SnapChunk);
    this.len = end;
  }

  /** The payload as a copy of its own (null if empty); the builder is reset for reuse. */
  finish(): Uint8Array | null {
    const view = this.finishView();
    return view === null ? null : view.slice();
  }

  /** Like finish, without the copy: the view is valid until the next append. */
  finishView(): Uint8Array | null {
    const total = this.bytes();
    if (total === 0) return null;
    this.ensure(total);
    let p = this.len;
    if (this.heartbeats.count > 0) p = this.heartbeats.flush(this.buf, p, SubKind.Heartbeats, MessageType.Heartbeat);
    if (this.heartbeatResps.count > 0) p = this.heartbeatResps.flush(this.buf, p, SubKind.HeartbeatResps, MessageType.HeartbeatResp);
    assert(p === total, 'payload size disagrees with what was written');
    this.len = 0;
    return this.buf.subarray(0, total);
  }

  /** Drops everything appended since the last finish. */
  reset(): void {
    this.len = 0;
    this.heartbeats.count = 0;
    this.heartbeatResps.count = 0;
  }

  /** Makes room for `bytes` more at the end of the written part; returns where they go. */
  private reserve(bytes: number): number {
    if (!(this.bytes() + bytes <= this.bytesMax)) assert(false, `payload would exceed ${this.bytesMax} bytes`);
    // Room for the pending heartbeat sub-records too, so finishView never has to move data.
    this.ensure(this.bytes() + bytes);
    return this.len;
  }

  private ensure(total: number): void {
    if (total <= this.buf.length) return;
    let size = Math.max(this.buf.length, 1024);
    while (size < total) size *= 2;
    const grown = new Uint8Array(Math.min(size, Math.max(total, this.bytesMax)));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
}
