// The internal KV commands and queries of online migration (issue 15; docs/key-map.md
// "Migration"), written once for the node's migration driver (src/node/migration-driver.ts) and
// the KV state machine. Their tags are INTERNAL_TAG_MIN and above: a shard refuses a client
// frame whose body starts with one (BAD_REQUEST), so only the node itself proposes them (over
// its internal connection id, CONN_INTERNAL), and they reach a group's log only through the
// admin path.
//
// Layout (big-endian, like the KV commands); `ranges` is u16 count (≥ 1), count × (u16 first,
// u16 last), canonical; `id` is a migration id, u32 high, u32 low:
//   0x41 fence    id | ranges                    source: freeze the slots for M (MIGRATING)
//   0x42 unfence  id | ranges                    source: M aborted, serve the slots again
//   0x43 clear    id | ranges | u32 owner        target: delete its keys of the slots, refuse them
//                                                (WRONG_GROUP naming owner) until accept
//   0x44 import   id | ranges | u32 count | count × (u16 keyLen, key, u32 valueLen, value)
//                                                target: plain puts, of keys in slots cleared for M
//   0x45 drop     id | ranges | u32 to           source: delete its keys of the slots; they are
//                                                `to`'s for good (WRONG_GROUP naming it)
//   0x46 accept   id | ranges                    target: M finished, serve the slots
//   0x47 discard  id | ranges | u32 owner        target: M aborted: delete its copy of the slots
//   0x4a seal     id | ranges | u32 count        target: the copy is complete when it holds
//                                                `count` keys of the slots (the source's count):
//                                                then sealed (result noop), else COPY_INCOMPLETE
// Queries:
//   0x48 export   id | ranges | u32 skip | u32 bytesMax
//        → u8 status (0 ok, 1 not fenced for M here) | u8 done | u32 count | pairs as in import:
//          the keys of the slots after the first `skip`, in insertion order, about bytesMax of
//          them (at least one pair)
//   0x49 marks    (nothing) → the marks as runs (slot-marks.ts writeRuns)
//   0x4b count    id | ranges → u8 status (0 ok, 1 not fenced for M here) | u32 keys of the slots
import { canonicalRanges, type SlotRange, type SlotRanges } from '../cluster/slots.js';
import { readRuns, type MarkRun } from './slot-marks.js';

/** Client bodies whose first byte is at least this are internal (refused from clients). */
export const INTERNAL_TAG_MIN = 0x40;

export const InternalTag = Object.freeze({
  Fence: 0x41, Unfence: 0x42, Clear: 0x43, Import: 0x44, Drop: 0x45, Accept: 0x46, Discard: 0x47, Export: 0x48, Marks: 0x49,
  Seal: 0x4a, Count: 0x4b,
} as const);

export type InternalCommand =
  | { op: 'fence' | 'unfence' | 'accept'; id: number; slots: SlotRanges }
  | { op: 'clear' | 'discard'; id: number; slots: SlotRanges; owner: number }
  | { op: 'seal'; id: number; slots: SlotRanges; count: number }
  | { op: 'drop'; id: number; slots: SlotRanges; to: number }
  | { op: 'import'; id: number; slots: SlotRanges; pairs: readonly KeyValueBytes[] };

export interface KeyValueBytes {
  key: Uint8Array;
  value: Uint8Array;
}

const TAGS: Record<InternalCommand['op'], number> = {
  fence: InternalTag.Fence, unfence: InternalTag.Unfence, clear: InternalTag.Clear,
  import: InternalTag.Import, drop: InternalTag.Drop, accept: InternalTag.Accept,
  discard: InternalTag.Discard, seal: InternalTag.Seal,
};

function headBytes(slots: SlotRanges): number {
  return 1 + 8 + 2 + slots.length * 4;
}

function writeHead(buf: Buffer, tag: number, id: number, slots: SlotRanges): number {
  buf[0] = tag;
  buf.writeUInt32BE(Math.floor(id / 0x1_0000_0000), 1);
  buf.writeUInt32BE(id >>> 0, 5);
  buf.writeUInt16BE(slots.length, 9);
  let at = 11;
  for (const r of slots) {
    buf.writeUInt16BE(r.first, at);
    buf.writeUInt16BE(r.last, at + 2);
    at += 4;
  }
  return at;
}

/** Bytes of one pair in an import or an export answer. */
export function pairBytes(keyBytes: number, valueBytes: number): number {
  return 2 + keyBytes + 4 + valueBytes;
}

export function encodeInternalCommand(c: InternalCommand): Uint8Array {
  const slots = canonicalRanges(c.slots);
  let n = headBytes(slots);
  if (c.op === 'clear' || c.op === 'drop' || c.op === 'discard' || c.op === 'seal') n += 4;
  if (c.op === 'import') {
    n += 4;
    for (const p of c.pairs) n += pairBytes(p.key.length, p.value.length);
  }
  const buf = Buffer.alloc(n);
  let at = writeHead(buf, TAGS[c.op], c.id, slots);
  if (c.op === 'clear' || c.op === 'discard') buf.writeUInt32BE(c.owner, at);
  else if (c.op === 'seal') buf.writeUInt32BE(c.count, at);
  else if (c.op === 'drop') buf.writeUInt32BE(c.to, at);
  else if (c.op === 'import') {
    buf.writeUInt32BE(c.pairs.length, at);
    at += 4;
    for (const p of c.pairs) at = writePair(buf, at, p.key, 0, p.key.length, p.value, 0, p.value.length);
  }
  return buf;
}

export function writePair(buf: Buffer, at: number, k: Uint8Array, kAt: number, kn: number, v: Uint8Array, vAt: number, vn: number): number {
  buf.writeUInt16BE(kn, at);
  buf.set(k.subarray(kAt, kAt + kn), at + 2);
  at += 2 + kn;
  buf.writeUInt32BE(vn, at);
  buf.set(v.subarray(vAt, vAt + vn), at + 4);
  return at + 4 + vn;
}

export function encodeExportQuery(id: number, slots: SlotRanges, skip: number, bytesMax: number): Uint8Array {
  const canon = canonicalRanges(slots);
  const buf = Buffer.alloc(headBytes(canon) + 8);
  const at = writeHead(buf, InternalTag.Export, id, canon);
  buf.writeUInt32BE(skip, at);
  buf.writeUInt32BE(bytesMax, at + 4);
  return buf;
}

export function encodeCountQuery(id: number, slots: SlotRanges): Uint8Array {
  const canon = canonicalRanges(slots);
  const buf = Buffer.alloc(headBytes(canon));
  writeHead(buf, InternalTag.Count, id, canon);
  return buf;
}

/** A count answer: null when the group is not fenced for the migration. */
export function decodeCountAnswer(b: Uint8Array): number | null {
  const r = new InternalReader(b);
  const status = r.u8();
  const n = r.u32();
  r.end();
  return status === 0 ? n : null;
}

export function encodeMarksQuery(): Uint8Array {
  return Uint8Array.of(InternalTag.Marks);
}

/** A reader of internal bodies; throws InternalBytesError on bytes that are not one. */
export class InternalBytesError extends Error {}

export class InternalReader {
  at = 0;
  private readonly v: Buffer;
  constructor(readonly b: Uint8Array) {
    this.v = Buffer.from(b.buffer, b.byteOffset, b.length);
  }
  need(n: number): void {
    if (this.at + n > this.v.length) throw new InternalBytesError(`truncated internal command (${this.v.length} bytes)`);
  }
  u8(): number {
    this.need(1);
    return this.v[this.at++]!;
  }
  u16(): number {
    this.need(2);
    const x = this.v.readUInt16BE(this.at);
    this.at += 2;
    return x;
  }
  u32(): number {
    this.need(4);
    const x = this.v.readUInt32BE(this.at);
    this.at += 4;
    return x;
  }
  id(): number {
    const hi = this.u32();
    const id = hi * 0x1_0000_0000 + this.u32();
    if (!Number.isSafeInteger(id) || id <= 0) throw new InternalBytesError(`migration id ${id} is not one`);
    return id;
  }
  ranges(): SlotRange[] {
    const n = this.u16();
    if (n === 0) throw new InternalBytesError('no slots');
    this.need(n * 4);
    const out: SlotRange[] = [];
    let prevLast = -2;
    for (let i = 0; i < n; i++) {
      const first = this.u16();
      const last = this.u16();
      if (first <= prevLast + 1 || last < first || last > 16383) throw new InternalBytesError(`slot range ${first}-${last} is not canonical`);
      prevLast = last;
      out.push({ first, last });
    }
    return out;
  }
  /** A pair in place: [keyAt, keyAt + kn), [valueAt, valueAt + vn) of b. */
  pair(): { kAt: number; kn: number; vAt: number; vn: number } {
    const kn = this.u16();
    this.need(kn);
    const kAt = this.at;
    this.at += kn;
    const vn = this.u32();
    this.need(vn);
    const vAt = this.at;
    this.at += vn;
    return { kAt, kn, vAt, vn };
  }
  end(): void {
    if (this.at !== this.v.length) throw new InternalBytesError(`${this.v.length - this.at} trailing bytes after an internal command`);
  }
}

/** An export answer, decoded (the driver's side). */
export interface ExportAnswer {
  fenced: boolean;
  done: boolean;
  pairs: KeyValueBytes[];
}

export function decodeExportAnswer(b: Uint8Array): ExportAnswer {
  const r = new InternalReader(b);
  const status = r.u8();
  const done = r.u8() === 1;
  const n = r.u32();
  const pairs: KeyValueBytes[] = [];
  for (let i = 0; i < n; i++) {
    const p = r.pair();
    pairs.push({ key: b.slice(p.kAt, p.kAt + p.kn), value: b.slice(p.vAt, p.vAt + p.vn) });
  }
  r.end();
  return { fenced: status === 0, done, pairs };
}

export function decodeMarksAnswer(b: Uint8Array): MarkRun[] {
  return readRuns(b, 0, 'marks answer').runs;
}
