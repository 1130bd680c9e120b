// Binary encoding of snapshot chunks: a Snap message's snapshot is sent in pieces, each the
// message header of raft-codec.ts followed by the snapshot's meta and one slice of its data.
// Kept apart from the per-message codec because it is the cold path (a follower far behind),
// with a layout of its own; it writes and reads through raft-codec.ts's primitives so that the
// header, the integer rules and the reusable DataViews are one code.
//
// SnapChunk body (a Snap message, snapshot data sent in pieces):
//    0  message header (60), type Snap
//   60  u64 snapshot index
//   68  u64 snapshot term
//   76  u32 voters count | u32 votersOutgoing count | u32 learners count | u32 learnersNext count
//   92  the four lists' node ids (u32 each), in that order
//   ..  u64 totalBytes | u64 offset | u32 dataBytes | dataBytes bytes of snapshot data
//   with offset + dataBytes ≤ totalBytes and nothing after the data.
//
import { assert } from '../util/assert.js';
import { MessageType, type ConfState, type Message, type NodeId } from '../raft/types.js';
import { copyOut } from './payload-slab.js';
import {
  bad, checkRange, checkU32, checkU64, getU32, getU64, MESSAGE_HEADER_BYTES, NO_BYTES, putU32, putU64,
  readHeader, reader, writeHeader, writer,
} from './raft-codec.js';

/** Snapshot meta before the node ids: index, term and the four list counts. */
const SNAP_META_BYTES = 32;
/** After the node ids: totalBytes, offset, dataBytes. */
const SNAP_TAIL_BYTES = 20;

// Snapshot chunks: a Snap message split in pieces of at most chunkBytes of snapshot data.
export interface SnapChunk {
  /** The Snap message; its snapshot carries the meta and empty data. */
  m: Message;
  totalBytes: number;
  offset: number;
  data: Uint8Array;
}

function confIds(c: ConfState): number {
  return c.voters.length + c.votersOutgoing.length + c.learners.length + c.learnersNext.length;
}

export function snapChunkBytes(m: Message, dataBytes: number): number {
  assert(m.snapshot !== null, 'a Snap message without a snapshot');
  return MESSAGE_HEADER_BYTES + SNAP_META_BYTES + 4 * confIds(m.snapshot.meta.conf) + SNAP_TAIL_BYTES + dataBytes;
}

function putIds(d: DataView, p: number, ids: NodeId[]): number {
  for (let i = 0; i < ids.length; i++, p += 4) {
    checkU32(ids[i]!, 'conf node id');
    putU32(d, p, ids[i]!);
  }
  return p;
}

function getIds(d: DataView, p: number, n: number): NodeId[] {
  const ids: NodeId[] = new Array(n);
  for (let i = 0; i < n; i++, p += 4) ids[i] = getU32(d, p);
  return ids;
}

/** Encodes the header (message fields + snapshot meta incl. conf lists) + totalBytes + offset + the data slice [offset, offset+len) of m.snapshot!.data. Entries are not sent with a Snap. Returns end. */
export function encodeSnapChunk(m: Message, offset: number, len: number, buf: Uint8Array, at: number): number {
  assert(m.type === MessageType.Snap && m.snapshot !== null, 'encodeSnapChunk needs a Snap message with a snapshot');
  const snap = m.snapshot;
  const data = snap.data;
  if (!(Number.isInteger(offset) && Number.isInteger(len) && offset >= 0 && len >= 0 && offset + len <= data.length)) assert(false, `chunk [${offset}, ${offset + len}) outside snapshot data of ${data.length} bytes`);
  assert(len <= 0xffffffff, 'a chunk carries at most 2^32 − 1 bytes');
  const endAt = at + snapChunkBytes(m, len);
  assert(endAt <= buf.length, 'buffer too small for the snapshot chunk');
  const d = writer(buf);
  const conf = snap.meta.conf;
  checkU64(snap.meta.index, 'snapshot index');
  checkU64(snap.meta.term, 'snapshot term');
  writeHeader(m, buf, d, at);
  let p = at + MESSAGE_HEADER_BYTES;
  putU64(d, p, snap.meta.index);
  putU64(d, p + 8, snap.meta.term);
  putU32(d, p + 16, conf.voters.length);
  putU32(d, p + 20, conf.votersOutgoing.length);
  putU32(d, p + 24, conf.learners.length);
  putU32(d, p + 28, conf.learnersNext.length);
  p += SNAP_META_BYTES;
  p = putIds(d, p, conf.voters);
  p = putIds(d, p, conf.votersOutgoing);
  p = putIds(d, p, conf.learners);
  p = putIds(d, p, conf.learnersNext);
  putU64(d, p, data.length);
  putU64(d, p + 8, offset);
  putU32(d, p + 16, len);
  p += SNAP_TAIL_BYTES;
  if (len > 0) buf.set(data.subarray(offset, offset + len), p);
  return p + len;
}

/** Reads a snapshot chunk from buf[at, end); the data is copied. Throws CodecError('BAD_MESSAGE') on malformed input. */
export function decodeSnapChunk(buf: Uint8Array, at: number, end: number): SnapChunk {
  checkRange(buf, at, end);
  const d = reader(buf);
  if (end - at < MESSAGE_HEADER_BYTES + SNAP_META_BYTES + SNAP_TAIL_BYTES) throw bad(`snapshot chunk of ${end - at} bytes is shorter than its header`);
  const m = readHeader(buf, d, at);
  if (m.type !== MessageType.Snap) throw bad(`message type ${m.type} in a snapshot chunk`);
  let p = at + MESSAGE_HEADER_BYTES;
  const index = getU64(d, p, 'snapshot index');
  const term = getU64(d, p + 8, 'snapshot term');
  const nVoters = getU32(d, p + 16);
  const nOutgoing = getU32(d, p + 20);
  const nLearners = getU32(d, p + 24);
  const nNext = getU32(d, p + 28);
  p += SNAP_META_BYTES;
  const ids = nVoters + nOutgoing + nLearners + nNext; // < 2^34: exact
  if (ids * 4 + SNAP_TAIL_BYTES > end - p) throw bad(`conf lists of ${ids} ids cannot fit in ${end - p} bytes`);
  const conf: ConfState = {
    voters: getIds(d, p, nVoters),
    votersOutgoing: getIds(d, p + 4 * nVoters, nOutgoing),
    learners: getIds(d, p + 4 * (nVoters + nOutgoing), nLearners),
    learnersNext: getIds(d, p + 4 * (nVoters + nOutgoing + nLearners), nNext),
  };
  p += 4 * ids;
  const totalBytes = getU64(d, p, 'snapshot totalBytes');
  const offset = getU64(d, p + 8, 'chunk offset');
  const len = getU32(d, p + 16);
  p += SNAP_TAIL_BYTES;
  if (len !== end - p) {
    throw bad(len > end - p ? `chunk data of ${len} bytes runs past the end (${end - p} left)` : `${end - p - len} trailing bytes after the chunk`);
  }
  if (offset + len > totalBytes) throw bad(`chunk [${offset}, ${offset + len}) past the snapshot's ${totalBytes} bytes`);
  m.snapshot = { meta: { index, term, conf }, data: NO_BYTES };
  return { m, totalBytes, offset, data: copyOut(buf, p, end) };
}
