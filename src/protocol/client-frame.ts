// The client protocol's frame: a fixed 16-byte header and a body. The same bytes travel over
// plain TCP (frames back to back) and over WebSocket (one binary message per frame). The main
// thread reads only this header; the shard that owns `group` reads the body. See docs/protocol.md.
//
// Header, little-endian:
//   0  u32 frameBytes   whole frame, header included (16 ≤ frameBytes ≤ the server's frameBytesMax)
//   4  u8  kind         a FrameKind
//   5  u8  flags        FrameFlag bits; unknown bits are a BAD_FRAME
//   6  u16 reserved     0
//   8  u32 requestId    chosen by the client, echoed in the response
//  12  u32 group        the Raft group the request is for (0 for node-level kinds)

export const FRAME_HEADER_BYTES = 16;

export enum FrameKind {
  /** A command for the group's state machine: proposed, or read when a read flag is set. */
  Command = 0x01,
  /** Liveness probe; answered by the main thread with Pong. */
  Ping = 0x02,
  /** A group-level admin request; body is msgpack (docs/protocol.md). */
  Admin = 0x03,
  /** Asks for the key map; body empty or the u64 version the client holds; group 0. Answered by Map. */
  MapRequest = 0x04,
  /** Response to Command: the state machine's result bytes. */
  Result = 0x81,
  /** Response to anything: body is msgpack `{ code, message, leader? }`. */
  Error = 0x82,
  Pong = 0x83,
  AdminResult = 0x84,
  /** Response to MapRequest: u8 0 + u64 version (unchanged), or u8 1 + the map's image. */
  Map = 0x85,
}

export const FrameFlag = {
  /** Command is a read: served after a ReadIndex round confirms leadership (linearizable). */
  Read: 1,
  /** With Read: served from the local replica at once, possibly stale, on any member. */
  Stale: 2,
} as const;
const FLAGS_KNOWN = FrameFlag.Read | FrameFlag.Stale;

/** Stable error codes carried by Error frames; clients act on these. */
export type ProtocolErrorCode =
  | 'BAD_FRAME'        // malformed frame: the connection is closed after this error
  | 'BAD_REQUEST'      // a well-formed frame the state machine or admin rejects
  | 'TOO_LARGE'        // a value or frame above a configured bound
  | 'NOT_LEADER'       // this member is not the group's leader; `leader` says who is, if known
  | 'OVERLOADED'       // a bound on queued work was hit; retry later
  | 'NO_GROUP'         // this node does not host the group
  | 'WRONG_GROUP'      // a key's slot is another group's in this node's map; `version`, `group` say whose
  | 'LEADER_TRANSFERRING'
  | 'OUTCOME_UNKNOWN'  // a write was proposed but leadership was lost before it was known to commit
  | 'TIMEOUT'          // no outcome within requestTimeoutMs
  | 'UNAVAILABLE'      // the shard is stopping or has failed
  | 'NO_SPACE'         // the shard's disk is full: writes are refused until there is room (reads go on)
  | 'STORAGE_FAILED';  // the shard's log failed; the node is stopping

/** Where to find a leader: what NOT_LEADER carries when the leader is known. */
export interface LeaderHint {
  id: number;
  host: string;
  clientPort: number;
  wsPort: number;
}

export interface ErrorBody {
  code: ProtocolErrorCode;
  message: string;
  leader?: LeaderHint;
  /** WRONG_GROUP: the version of the answering node's map. */
  version?: number;
  /** WRONG_GROUP: the group that owns the key's slot in that map (0: no group does). */
  group?: number;
  /** WRONG_GROUP: the slot of the first key the group does not own. */
  slot?: number;
}

export interface FrameHeader {
  frameBytes: number;
  kind: number;
  flags: number;
  requestId: number;
  group: number;
}

export function writeHeader(buf: Uint8Array, at: number, h: FrameHeader): void {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, FRAME_HEADER_BYTES);
  dv.setUint32(0, h.frameBytes, true);
  dv.setUint8(4, h.kind);
  dv.setUint8(5, h.flags);
  dv.setUint16(6, 0, true);
  dv.setUint32(8, h.requestId, true);
  dv.setUint32(12, h.group, true);
}

/** A whole frame: header then body. */
export function encodeFrame(kind: FrameKind, flags: number, requestId: number, group: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  writeHeader(out, 0, { frameBytes: out.length, kind, flags, requestId, group });
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/** Little-endian u32 at buf[at]; byte reads, so no DataView is made per frame on the hot path. */
function u32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/**
 * Checks a header that a peer sent; returns why it is malformed, or null. `requestKinds`
 * says which side is reading: a server accepts request kinds, a client response kinds.
 */
export function headerProblem(buf: Uint8Array, at: number, frameBytesMax: number, requestKinds: boolean): string | null {
  const n = u32(buf, at);
  if (n < FRAME_HEADER_BYTES) return `frame of ${n} bytes is shorter than its header`;
  if (n > frameBytesMax) return `frame of ${n} bytes exceeds the limit of ${frameBytesMax}`;
  const kind = buf[at + 4]!;
  const ok = requestKinds
    ? kind === FrameKind.Command || kind === FrameKind.Ping || kind === FrameKind.Admin || kind === FrameKind.MapRequest
    : kind === FrameKind.Result || kind === FrameKind.Error || kind === FrameKind.Pong || kind === FrameKind.AdminResult || kind === FrameKind.Map;
  if (!ok) return `unknown frame kind 0x${kind.toString(16)}`;
  const flags = buf[at + 5]!;
  if ((flags & ~FLAGS_KNOWN) !== 0) return `unknown flags 0x${flags.toString(16)}`;
  if (buf[at + 6] !== 0 || buf[at + 7] !== 0) return 'reserved header bytes are not zero';
  return null;
}

export function readHeader(buf: Uint8Array, at: number): FrameHeader {
  return {
    frameBytes: u32(buf, at),
    kind: buf[at + 4]!,
    flags: buf[at + 5]!,
    requestId: u32(buf, at + 8),
    group: u32(buf, at + 12),
  };
}

/** Total bytes of the frame at buf[at] (its header's first field). */
export function frameBytesOf(buf: Uint8Array, at: number): number {
  return u32(buf, at);
}

// ---------------------------------------------------------------------------------------------
// The key map on the wire (docs/protocol.md, "The key map"): a MapRequest's body is empty (send
// the map) or the u64 little-endian version the client holds (send it only if newer); the Map
// answer's body is u8 MAP_UNCHANGED then u64 the node's version, or u8 MAP_IMAGE then the map's
// image (docs/key-map.md). Versions are below 2^53.

export const MAP_UNCHANGED = 0;
export const MAP_IMAGE = 1;

/** The body of a MapRequest for a client that holds `version` (null: holds none). */
export function mapRequestBody(version: number | null): Uint8Array {
  if (version === null) return new Uint8Array(0);
  const b = new Uint8Array(8);
  writeU64(b, 0, version);
  return b;
}

/** The version a MapRequest body holds (null: none), or why the body is not one (a string). */
export function readMapRequest(body: Uint8Array): number | null | string {
  if (body.length === 0) return null;
  if (body.length !== 8) return `a MapRequest body is empty or a u64 version (8 bytes), not ${body.length} bytes`;
  const hi = u32(body, 4);
  if (hi >= 0x20_0000) return 'the version in a MapRequest is not below 2^53';
  return hi * 0x1_0000_0000 + u32(body, 0);
}

/** The body of a Map answer: the image, or (image null) "unchanged at `version`". */
export function mapAnswerBody(version: number, image: Uint8Array | null): Uint8Array {
  if (image === null) {
    const b = new Uint8Array(9);
    b[0] = MAP_UNCHANGED;
    writeU64(b, 1, version);
    return b;
  }
  const b = new Uint8Array(1 + image.length);
  b[0] = MAP_IMAGE;
  b.set(image, 1);
  return b;
}

/** A Map answer: the image (a view into `body`), or the version the node still holds; a string says why it is not one. */
export function readMapAnswer(body: Uint8Array): { image: Uint8Array } | { unchanged: number } | string {
  if (body.length === 0) return 'an empty Map answer';
  if (body[0] === MAP_IMAGE) return { image: body.subarray(1) };
  if (body[0] !== MAP_UNCHANGED || body.length !== 9) return `a Map answer of form ${body[0]} and ${body.length} bytes`;
  return { unchanged: u32(body, 5) * 0x1_0000_0000 + u32(body, 1) };
}

function writeU64(b: Uint8Array, at: number, v: number): void {
  const lo = v >>> 0;
  const hi = Math.floor(v / 0x1_0000_0000);
  for (let i = 0; i < 4; i++) {
    b[at + i] = (lo >>> (8 * i)) & 0xff;
    b[at + 4 + i] = (hi >>> (8 * i)) & 0xff;
  }
}
