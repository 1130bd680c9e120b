// Binary encoding of Raft messages between nodes (the bodies of peer sub-records, see
// peer-wire.ts and docs/internals.md "Peer links"). The shard encodes straight into a buffer it
// reuses and decodes from ring memory that will be reused, so decoding copies entry payloads.
//
// All integers are little-endian. Terms, indexes, commits, hints, contexts and byte counts are
// u64 holding a non-negative safe integer (high word < 2^21); node ids and groups are u32.
// Reserved bytes are written 0 and a decoder rejects anything else, so they can gain a meaning
// later without old nodes misreading them.
//
// Message header (MESSAGE_HEADER_BYTES = 60), shared by RaftMessage and SnapChunk bodies:
//    0  u8  type        MessageType (1..10)
//    1  u8  flags       bit 0: reject; bit 1: quiesce (Heartbeat only); other bits 0
//    2  u16 0
//    4  u32 from
//    8  u32 to
//   12  u64 term
//   20  u64 index
//   28  u64 logTerm
//   36  u64 commit
//   44  u64 rejectHint
//   52  u64 context
//
// RaftMessage body (any type but Snap):
//    0  message header (60)
//   60  u32 entryCount
//   64  entryCount × entry header (ENTRY_HEADER_BYTES = 24):
//         0  u64 term | 8 u64 index | 16 u32 dataBytes | 20 u8 type (EntryType) | 21 u8 0 | 22 u16 0
//   ..  the entries' payloads, back to back in entry order (Σ dataBytes; nothing after them)
// Payloads come after all the headers so that a decoder copies them with one copy into one
// block and hands each entry a view of it, instead of one allocation per entry (small blocks
// come from shared slabs, see copyPayloads in payload-slab.ts). Snapshot chunks, the bodies of
// Snap messages, are snap-chunk-codec.ts; it writes the same message header through the
// primitives exported here.
//
// Heartbeats body (coalesced Heartbeat or HeartbeatResp messages of many groups):
//    0  u32 count | 4 u8 type (Heartbeat or HeartbeatResp) | 5 u8 0 | 6 u16 0
//    8  count × item (HEARTBEAT_ITEM_BYTES = 40):
//         0  u32 group | 4 u32 from | 8 u32 to | 12 u8 flags (bit 0: reject; bit 1: quiesce, in a
//            Heartbeat only) | 13 u8 0 | 14 u16 0
//        16  u64 term | 24 u64 commit (0 in HeartbeatResp) | 32 u64 context
import { assert } from '../util/assert.js';
import {
  EntryType,
  MessageType,
  type Entry,
  type Message,
} from '../raft/types.js';
import { copyPayloads } from './payload-slab.js';

export class CodecError extends Error {
  constructor(
    readonly code: 'BAD_MESSAGE' | 'BAD_FRAME',
    message: string,
  ) {
    super(message);
    this.name = 'CodecError';
  }
}

export const MESSAGE_HEADER_BYTES = 60;
export const ENTRY_HEADER_BYTES = 24;
export const HEARTBEATS_HEADER_BYTES = 8;
export const HEARTBEAT_ITEM_BYTES = 40;

const FLAG_REJECT = 1;
/** The leader's last heartbeat before its group goes quiet (Message.quiesce); Heartbeat only. */
const FLAG_QUIESCE = 2;
const TWO_32 = 4294967296;
/** A u64's high word at most this keeps the value a safe integer (< 2^53). */
const HI_MAX = 0x1fffff;

// ---- primitives ----
// Integers go through a DataView: its accessors are compiled inline, where byte-by-byte helpers
// stop being inlined once a function has many of them. A view is kept per side (the encoder
// writes a buffer it reuses, the decoder reads ring memory), so making one is rare. They, and the
// message header below, are exported for snap-chunk-codec.ts only: one pair of views per thread.

export const NO_BYTES = new Uint8Array(0);
let writeArray: Uint8Array = NO_BYTES;
let writeView: DataView = new DataView(NO_BYTES.buffer);
let readArray: Uint8Array = NO_BYTES;
let readView: DataView = new DataView(NO_BYTES.buffer);

/** A DataView whose byte i is b[i], for writing. */
export function writer(b: Uint8Array): DataView {
  if (b !== writeArray) {
    writeArray = b;
    writeView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  return writeView;
}

/** A DataView whose byte i is b[i], for reading. */
export function reader(b: Uint8Array): DataView {
  if (b !== readArray) {
    readArray = b;
    readView = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  return readView;
}

export function putU32(d: DataView, p: number, v: number): void {
  d.setUint32(p, v, true);
}

export function putU64(d: DataView, p: number, v: number): void {
  const lo = v >>> 0; // ToUint32 is exact modulo 2^32 for every integer up to 2^53
  d.setUint32(p, lo, true);
  d.setUint32(p + 4, (v - lo) / TWO_32, true);
}

export function getU32(d: DataView, p: number): number {
  return d.getUint32(p, true);
}

/** Reads a u64 that must hold a safe integer; callers have checked p + 8 ≤ end. */
export function getU64(d: DataView, p: number, what: string): number {
  const hi = d.getUint32(p + 4, true);
  if (hi > HI_MAX) throw bad(`${what} is not a safe integer`);
  return hi * TWO_32 + d.getUint32(p, true);
}


export function bad(reason: string): CodecError {
  return new CodecError('BAD_MESSAGE', reason);
}

export function checkU64(v: number, what: string): void {
  if (!(Number.isSafeInteger(v) && v >= 0)) assert(false, `${what} ${v} is not a non-negative safe integer`);
}

export function checkU32(v: number, what: string): void {
  if (!(v >>> 0 === v)) assert(false, `${what} ${v} is not a u32`);
}

export function checkRange(buf: Uint8Array, at: number, end: number): void {
  if (!(Number.isInteger(at) && Number.isInteger(end) && 0 <= at && at <= end && end <= buf.length)) assert(false, `range [${at}, ${end}) outside a buffer of ${buf.length} bytes`);
}

// ---- message header ----

function flagsOf(m: Message): number {
  if (m.quiesce && m.type !== MessageType.Heartbeat) assert(false, `quiesce flag on a message of type ${m.type}`);
  return (m.reject ? FLAG_REJECT : 0) | (m.quiesce ? FLAG_QUIESCE : 0);
}

/** Checks a flags byte of a message of `type`; returns null if it is valid, else why not. */
function badFlags(flags: number, type: number): string | null {
  const allowed = type === MessageType.Heartbeat ? FLAG_REJECT | FLAG_QUIESCE : FLAG_REJECT;
  return (flags & ~allowed) === 0 ? null : `unknown flags 0x${flags.toString(16)} for message type ${type}`;
}

export function writeHeader(m: Message, b: Uint8Array, d: DataView, p: number): void {
  checkU32(m.from, 'from');
  checkU32(m.to, 'to');
  checkU64(m.term, 'term');
  checkU64(m.index, 'index');
  checkU64(m.logTerm, 'logTerm');
  checkU64(m.commit, 'commit');
  checkU64(m.rejectHint, 'rejectHint');
  checkU64(m.context, 'context');
  b[p] = m.type;
  b[p + 1] = flagsOf(m);
  b[p + 2] = 0;
  b[p + 3] = 0;
  putU32(d, p + 4, m.from);
  putU32(d, p + 8, m.to);
  putU64(d, p + 12, m.term);
  putU64(d, p + 20, m.index);
  putU64(d, p + 28, m.logTerm);
  putU64(d, p + 36, m.commit);
  putU64(d, p + 44, m.rejectHint);
  putU64(d, p + 52, m.context);
}

/** Reads the header at p (caller checked 60 bytes are there); entries [] and snapshot null. */
export function readHeader(b: Uint8Array, d: DataView, p: number): Message {
  const type = b[p]!;
  if (type < MessageType.App || type > MessageType.TimeoutNow) throw bad(`unknown message type ${type}`);
  const flags = b[p + 1]!;
  const flagsProblem = badFlags(flags, type);
  if (flagsProblem !== null) throw bad(flagsProblem);
  if (b[p + 2] !== 0 || b[p + 3] !== 0) throw bad('reserved message header bytes are not 0');
  // Same property order as message() in types.ts, so decoded messages share its shape.
  return {
    type: type as MessageType,
    from: getU32(d, p + 4),
    to: getU32(d, p + 8),
    term: getU64(d, p + 12, 'term'),
    index: getU64(d, p + 20, 'index'),
    logTerm: getU64(d, p + 28, 'logTerm'),
    entries: [],
    commit: getU64(d, p + 36, 'commit'),
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint: getU64(d, p + 44, 'rejectHint'),
    context: getU64(d, p + 52, 'context'),
    snapshot: null,
    quiesce: (flags & FLAG_QUIESCE) !== 0,
  };
}

// ---- RaftMessage ----

/** Bytes encodeRaftMessage will write for m (snapshot data excluded: a Snap message's snapshot travels in chunks, see snap-chunk-codec.ts). */
export function raftMessageBytes(m: Message): number {
  const es = m.entries;
  let n = MESSAGE_HEADER_BYTES + 4 + es.length * ENTRY_HEADER_BYTES;
  for (let i = 0; i < es.length; i++) n += es[i]!.data.length;
  return n;
}

/** Writes m at buf[at..]; returns the end offset. Throws if m.type === MessageType.Snap (use the chunk functions). */
export function encodeRaftMessage(m: Message, buf: Uint8Array, at: number): number {
  if (m.type === MessageType.Snap) throw new Error('a Snap message is sent with encodeSnapChunk');
  const es = m.entries;
  const count = es.length;
  let payload = at + MESSAGE_HEADER_BYTES + 4 + count * ENTRY_HEADER_BYTES;
  assert(payload <= buf.length, 'buffer too small for the message');
  const d = writer(buf);
  writeHeader(m, buf, d, at);
  putU32(d, at + MESSAGE_HEADER_BYTES, count);
  let h = at + MESSAGE_HEADER_BYTES + 4;
  for (let i = 0; i < count; i++) {
    const e = es[i]!;
    const n = e.data.length;
    checkU64(e.term, 'entry term');
    checkU64(e.index, 'entry index');
    if (!(e.type === EntryType.Normal || e.type === EntryType.ConfChange || e.type === EntryType.Batch)) assert(false, `unknown entry type ${e.type}`);
    assert(payload + n <= buf.length, 'buffer too small for the message');
    putU64(d, h, e.term);
    putU64(d, h + 8, e.index);
    putU32(d, h + 16, n);
    buf[h + 20] = e.type;
    buf[h + 21] = 0;
    buf[h + 22] = 0;
    buf[h + 23] = 0;
    h += ENTRY_HEADER_BYTES;
    if (n > 0) {
      buf.set(e.data, payload);
      payload += n;
    }
  }
  return payload;
}

/** Reads a message from buf[at, end); entry payloads are COPIED (the source is ring memory that will be reused). Throws CodecError('BAD_MESSAGE', ...) on anything malformed (bad type, lengths past end, trailing bytes). */
export function decodeRaftMessage(buf: Uint8Array, at: number, end: number): Message {
  checkRange(buf, at, end);
  const d = reader(buf);
  if (end - at < MESSAGE_HEADER_BYTES + 4) throw bad(`message of ${end - at} bytes is shorter than its header`);
  const m = readHeader(buf, d, at);
  if (m.type === MessageType.Snap) throw bad('a Snap message outside a snapshot chunk');
  const count = getU32(d, at + MESSAGE_HEADER_BYTES);
  const headers = at + MESSAGE_HEADER_BYTES + 4;
  // Checked before anything is allocated for the entries: a count cannot promise more headers
  // than there are bytes.
  if (count > (end - headers) / ENTRY_HEADER_BYTES) throw bad(`${count} entries cannot fit in ${end - headers} bytes`);
  const payloads = headers + count * ENTRY_HEADER_BYTES;
  let total = 0;
  for (let i = 0, h = headers; i < count; i++, h += ENTRY_HEADER_BYTES) {
    const type = buf[h + 20]!;
    if (type !== EntryType.Normal && type !== EntryType.ConfChange && type !== EntryType.Batch) throw bad(`unknown entry type ${type}`);
    if (buf[h + 21] !== 0 || buf[h + 22] !== 0 || buf[h + 23] !== 0) throw bad('reserved entry header bytes are not 0');
    total += getU32(d, h + 16);
  }
  if (total !== end - payloads) {
    throw bad(total > end - payloads
      ? `entry payloads of ${total} bytes run past the end (${end - payloads} left)`
      : `${end - payloads - total} trailing bytes after the message`);
  }
  if (count === 0) return m;
  // One copy into one block; each entry gets a view of its part.
  const block = total === 0 ? NO_BYTES : copyPayloads(buf, payloads, end);
  const blockBuffer = block.buffer;
  const entries: Entry[] = new Array(count);
  let off = 0;
  for (let i = 0, h = headers; i < count; i++, h += ENTRY_HEADER_BYTES) {
    const n = getU32(d, h + 16);
    entries[i] = {
      term: getU64(d, h, 'entry term'),
      index: getU64(d, h + 8, 'entry index'),
      type: buf[h + 20]! as EntryType,
      data: n === 0 ? NO_BYTES : n === total ? block : new Uint8Array(blockBuffer, block.byteOffset + off, n),
    };
    off += n;
  }
  m.entries = entries;
  return m;
}

// ---- Coalesced heartbeats ----

// Coalesced heartbeats: many groups' Heartbeat (or HeartbeatResp) messages to one node in one body.
export interface GroupMessage {
  group: number;
  m: Message;
}

export function heartbeatsBytes(count: number): number {
  return HEARTBEATS_HEADER_BYTES + count * HEARTBEAT_ITEM_BYTES;
}

/** Writes the heartbeats body header; the items follow (see writeHeartbeatItem). */
export function writeHeartbeatsHeader(buf: Uint8Array, at: number, count: number, type: MessageType): void {
  if (!(type === MessageType.Heartbeat || type === MessageType.HeartbeatResp)) assert(false, `type ${type} is not a heartbeat`);
  checkU32(count, 'heartbeat count');
  const d = writer(buf);
  putU32(d, at, count);
  buf[at + 4] = type;
  buf[at + 5] = 0;
  buf[at + 6] = 0;
  buf[at + 7] = 0;
}

/** Writes one item (HEARTBEAT_ITEM_BYTES) at buf[at..]: the fields Heartbeat and HeartbeatResp carry. */
export function writeHeartbeatItem(buf: Uint8Array, at: number, group: number, m: Message): void {
  const d = writer(buf);
  checkU32(group, 'group');
  checkU32(m.from, 'from');
  checkU32(m.to, 'to');
  checkU64(m.term, 'term');
  checkU64(m.commit, 'commit');
  checkU64(m.context, 'context');
  putU32(d, at, group);
  putU32(d, at + 4, m.from);
  putU32(d, at + 8, m.to);
  buf[at + 12] = flagsOf(m);
  buf[at + 13] = 0;
  buf[at + 14] = 0;
  buf[at + 15] = 0;
  putU64(d, at + 16, m.term);
  putU64(d, at + 24, m.commit);
  putU64(d, at + 32, m.context);
}

/** Encodes `list` (all of type Heartbeat, or all HeartbeatResp) compactly: per item group, from, to, term, commit, context, reject, quiesce (the fields those two types carry; commit is 0 in a HeartbeatResp, quiesce is false). An empty list is encoded as an empty Heartbeat batch. Returns end offset. */
export function encodeHeartbeats(list: GroupMessage[], buf: Uint8Array, at: number): number {
  const count = list.length;
  const type = count === 0 ? MessageType.Heartbeat : list[0]!.m.type;
  assert(at + heartbeatsBytes(count) <= buf.length, 'buffer too small for the heartbeats');
  writeHeartbeatsHeader(buf, at, count, type);
  let p = at + HEARTBEATS_HEADER_BYTES;
  for (let i = 0; i < count; i++, p += HEARTBEAT_ITEM_BYTES) {
    const x = list[i]!;
    assert(x.m.type === type, 'a heartbeat batch mixes message types');
    writeHeartbeatItem(buf, p, x.group, x.m);
  }
  return p;
}

/**
 * Calls visit(group, m) for each item whose group `own` accepts, in order. `m` is ONE message
 * object reused for every item of this call: it is valid only during visit (copy it to keep it,
 * e.g. `{ ...m }`); its entries array is empty and must not be filled. Items `own` rejects are
 * skipped without being read further.
 *
 * Throws CodecError('BAD_MESSAGE') on malformed input. The body's shape (type, count against
 * length, reserved bytes) is checked before any visit; a bad field inside an item (unknown
 * flags, a u64 that is not a safe integer) is found when that item is reached, so the items
 * before it have been visited by then.
 */
export function decodeHeartbeats(
  buf: Uint8Array,
  at: number,
  end: number,
  own: (group: number) => boolean,
  visit: (group: number, m: Message) => void,
): void {
  checkRange(buf, at, end);
  const d = reader(buf);
  if (end - at < HEARTBEATS_HEADER_BYTES) throw bad(`heartbeats of ${end - at} bytes are shorter than their header`);
  const count = getU32(d, at);
  const type = buf[at + 4]!;
  if (type !== MessageType.Heartbeat && type !== MessageType.HeartbeatResp) throw bad(`type ${type} in a heartbeat batch`);
  if (buf[at + 5] !== 0 || buf[at + 6] !== 0 || buf[at + 7] !== 0) throw bad('reserved heartbeats header bytes are not 0');
  if (count * HEARTBEAT_ITEM_BYTES !== end - at - HEARTBEATS_HEADER_BYTES) {
    throw bad(`${count} heartbeats need ${count * HEARTBEAT_ITEM_BYTES} bytes, not ${end - at - HEARTBEATS_HEADER_BYTES}`);
  }
  const m: Message = {
    type: type as MessageType, from: 0, to: 0, term: 0,
    index: 0, logTerm: 0, entries: [], commit: 0,
    reject: false, rejectHint: 0, context: 0, snapshot: null, quiesce: false,
  };
  for (let i = 0, p = at + HEARTBEATS_HEADER_BYTES; i < count; i++, p += HEARTBEAT_ITEM_BYTES) {
    const group = getU32(d, p);
    if (!own(group)) continue;
    const flags = buf[p + 12]!;
    const flagsProblem = badFlags(flags, type);
    if (flagsProblem !== null) throw bad(`heartbeat item: ${flagsProblem}`);
    if (buf[p + 13] !== 0 || buf[p + 14] !== 0 || buf[p + 15] !== 0) throw bad('reserved heartbeat bytes are not 0');
    m.from = getU32(d, p + 4);
    m.to = getU32(d, p + 8);
    m.reject = (flags & FLAG_REJECT) !== 0;
    m.quiesce = (flags & FLAG_QUIESCE) !== 0;
    m.term = getU64(d, p + 16, 'term');
    m.commit = getU64(d, p + 24, 'commit');
    m.context = getU64(d, p + 32, 'context');
    visit(group, m);
  }
}
