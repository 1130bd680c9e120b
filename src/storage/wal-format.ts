// The on-disk layout of the write-ahead log shared by all groups of one shard worker.
//
// A segment file is a sequence of frames. One frame is what one batch (one turn of the worker,
// every group it touched) wrote with one write; a torn write can only damage the last frame.
//
//   frame  := header(24) body
//   header := magic u32 | bodyBytes u32 | crc32 u32 | reserved u32 | seq f64
//             (the CRC-32 covers bodyBytes, reserved, seq and the body)
//   body   := record*
//   record := kind u8 | group u32 | payload
//
// All integers are little-endian; indexes and terms are f64 (exact up to 2^53). The frame's
// CRC-32 covers its header fields and every record in it, so a record carries only its length (implied by its kind and
// counts); `seq` numbers frames across segments and lets recovery tell a torn tail from a
// damaged record that is followed by good frames.
//
// Payloads by kind:
//   Entries     firstIndex f64 | count u32 | (term f64 | type u8 | bytes u32 | data)*
//               — replaces the group's log from firstIndex on (a new leader's entries win)
//   HardState   term f64 | vote u32 | commit f64
//   Snapshot    index f64 | term f64 | reset u8 | conf
//               — reset 1: a leader's snapshot was installed, the log restarts after it;
//                 reset 0: the host snapshotted its state machine, the log is kept
//   Compact     index f64 — entries up to index are no longer needed (covered by a snapshot)
//   Rewrite     firstIndex f64 | count u32 | prevTerm f64 | entries as in Entries
//               — the group's whole live log written again to free an old segment: the log is
//                 exactly these entries, after (firstIndex - 1, prevTerm)
//   Remove      (nothing) — the group left this shard
//   conf := 4 lists (voters, outgoing, learners, learnersNext), each count u16 | id u32*
import type { ConfState } from '../raft/types.js';

export const FRAME_MAGIC = 0x31574c46; // "FLW1" read as little-endian bytes
export const FRAME_HEADER_BYTES = 24;

export enum RecordKind {
  Entries = 1,
  HardState = 2,
  Snapshot = 3,
  Compact = 4,
  Rewrite = 5,
  Remove = 6,
}

export const RECORD_HEADER_BYTES = 5;
export const ENTRY_HEADER_BYTES = 13;

export function confBytes(c: ConfState): number {
  return 8 + 4 * (c.voters.length + c.votersOutgoing.length + c.learners.length + c.learnersNext.length);
}

export function writeConf(view: DataView, at: number, c: ConfState): number {
  for (const list of [c.voters, c.votersOutgoing, c.learners, c.learnersNext]) {
    view.setUint16(at, list.length, true);
    at += 2;
    for (const id of list) { view.setUint32(at, id, true); at += 4; }
  }
  return at;
}

export function readConf(view: DataView, at: number): { conf: ConfState; at: number } {
  const lists: number[][] = [];
  for (let l = 0; l < 4; l++) {
    const n = view.getUint16(at, true);
    at += 2;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) { ids.push(view.getUint32(at, true)); at += 4; }
    lists.push(ids);
  }
  return { conf: { voters: lists[0]!, votersOutgoing: lists[1]!, learners: lists[2]!, learnersNext: lists[3]! }, at };
}

export function segmentName(seq: number): string {
  return `segment-${String(seq).padStart(20, '0')}.wal`;
}

export function parseSegmentName(name: string): number | null {
  const m = /^segment-(\d{20})\.wal$/.exec(name);
  return m === null ? null : Number(m[1]);
}
