// The kinds and the 8-byte header of records on the main ↔ shard rings (docs/internals.md):
//   u8 kind | u8 0 | u16 0 | u32 arg, then a payload.
import type { SpscRing } from './spsc-ring.js';

export const RECORD_HEADER_BYTES = 8;

/** Main → shard. */
export enum InKind {
  /** arg: connection id; payload: one client request frame as received. */
  Client = 1,
  /** arg: node the sub-records came from; payload: peer sub-records. */
  Peer = 2,
  /** arg: node id; payload: u8 up (1) or down (0). */
  PeerState = 3,
  /** arg: admin request id; payload: msgpack request. */
  Admin = 4,
  /** Finish the turn, close the log, end the task. */
  Stop = 5,
}

/** Shard → main. */
export enum OutKind {
  /** arg: connection id; payload: one or more whole response frames. */
  Client = 1,
  /** arg: destination node id; payload: peer sub-records. */
  Peer = 2,
  /** arg: admin request id; payload: msgpack reply. */
  AdminReply = 3,
  /** payload: msgpack `{ type, shard, message? }`. */
  Event = 4,
  /** payload: the image of the key map (docs/key-map.md) after the meta replica here changed. */
  Map = 5,
}

/** The connection id of requests made in-process through the embedding API. */
export const CONN_IN_PROCESS = 0;
/**
 * The connection id of the node's own internal requests (a migration's commands to its groups,
 * src/node/migration-driver.ts): the only one a shard takes internal KV commands from.
 */
export const CONN_INTERNAL = 0xffff_ffff;

export function writeRecordHeader(buf: Uint8Array, at: number, kind: number, arg: number): void {
  buf[at] = kind;
  buf[at + 1] = 0;
  buf[at + 2] = 0;
  buf[at + 3] = 0;
  buf[at + 4] = arg & 0xff;
  buf[at + 5] = (arg >>> 8) & 0xff;
  buf[at + 6] = (arg >>> 16) & 0xff;
  buf[at + 7] = (arg >>> 24) & 0xff;
}

/** One record of header + `payload` into `ring` and committed (not announced); false when there is no room now. */
export function tryWriteRecord(ring: SpscRing, kind: number, arg: number, payload: Uint8Array): boolean {
  const at = ring.reserve(RECORD_HEADER_BYTES + payload.length);
  if (at < 0) return false;
  writeRecordHeader(ring.data, at, kind, arg);
  ring.data.set(payload, at + RECORD_HEADER_BYTES);
  ring.commit();
  return true;
}

export function recordKind(buf: Uint8Array, at: number): number {
  return buf[at]!;
}

export function recordArg(buf: Uint8Array, at: number): number {
  return (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) >>> 0;
}
