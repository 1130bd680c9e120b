// The meta group's commands, results, queries and answers (issue 15), written once for the state
// machine (meta-state-machine.ts), and later the admin path and clients. Little-endian; u64 as
// in map-bytes.ts; `ranges` is a canonical slot set: u16 count (≥ 1) then count × (u16 first,
// u16 last); `text8` is u8 length then UTF-8; `members` is u8 count then count × u32 node id;
// `addresses` is text8 raft, text8 client, text8 admin. docs/key-map.md has the same with
// examples.
//
// Command = u8 tag | u64 expect (the map version the sender saw: compare-and-set) | body
//   1 initialize         u32 groupCount, groupCount × (u32 group, members),
//                        u32 nodeCount, nodeCount × (u32 node, addresses)
//   2 assign-slots       u32 group, ranges
//   3 begin-migration    u32 to, ranges
//   4 cutover-migration  u64 id
//   5 finish-migration   u64 id
//   6 abort-migration    u64 id
//   7 add-group          u32 group, members
//   8 remove-group       u32 group
//   9 add-member         u32 group, u32 node
//  10 remove-member      u32 group, u32 node
//  11 set-node-addresses u32 node, addresses
//  12 remove-node        u32 node
// An empty command (a leader's entry of a new term) changes nothing and answers ok.
//
// Result = u8 status (0 ok, 1 error) | u64 version (the map's version after the command: for
//   begin-migration, the new migration's id) | if error: text8 code, u16 length + UTF-8 message.
//
// Query = u8 tag | body
//   1 map       → the map's image (key-map.ts, docs/key-map.md)
//   2 owner     u16 slot → u64 version | u32 group (0: unassigned) | u8 moving (0 or 1)
//                          | if moving: u64 migration id, u32 to, u8 state (1 copying, 2 cutover)
//   3 version   → u64 version
import { ByteReader, ByteWriter, MapBytesError } from './map-bytes.js';
import {
  readRanges,
  writeRanges,
  type GroupSpec,
  type KeyMapErrorCode,
  type MigrationState,
  type NodeAddresses,
  type NodeSpec,
} from './key-map.js';
import { canonicalRanges, type SlotRanges } from './slots.js';

/** The largest meta command (an initialize of a big cluster is the largest kind). */
export const metaCommandBytesMax = 4 * 1024 * 1024;
/** The longest error message in a result, in bytes of UTF-8. */
export const metaMessageBytesMax = 1024;

export const enum MetaTag {
  Initialize = 1,
  AssignSlots = 2,
  BeginMigration = 3,
  CutoverMigration = 4,
  FinishMigration = 5,
  AbortMigration = 6,
  AddGroup = 7,
  RemoveGroup = 8,
  AddMember = 9,
  RemoveMember = 10,
  SetNodeAddresses = 11,
  RemoveNode = 12,
}

export type MetaCommand =
  | { op: 'initialize'; expect: number; groups: readonly GroupSpec[]; nodes: readonly NodeSpec[] }
  | { op: 'assign-slots'; expect: number; group: number; slots: SlotRanges }
  | { op: 'begin-migration'; expect: number; to: number; slots: SlotRanges }
  | { op: 'cutover-migration'; expect: number; id: number }
  | { op: 'finish-migration'; expect: number; id: number }
  | { op: 'abort-migration'; expect: number; id: number }
  | { op: 'add-group'; expect: number; group: number; members: readonly number[] }
  | { op: 'remove-group'; expect: number; group: number }
  | { op: 'add-member'; expect: number; group: number; node: number }
  | { op: 'remove-member'; expect: number; group: number; node: number }
  | { op: 'set-node-addresses'; expect: number; node: number; addresses: NodeAddresses }
  | { op: 'remove-node'; expect: number; node: number };

export type MetaErrorCode = KeyMapErrorCode | 'VERSION_MISMATCH' | 'BAD_COMMAND';

export type MetaResult =
  | { ok: true; version: number }
  | { ok: false; version: number; code: MetaErrorCode; message: string };

export type MetaQuery = { q: 'map' } | { q: 'owner'; slot: number } | { q: 'version' };

export interface OwnerAnswer {
  version: number;
  /** 0: unassigned. */
  group: number;
  /** The migration the slot is in, if any. */
  migration: { id: number; to: number; state: MigrationState } | null;
}

// ---------------------------------------------------------------------------------------------
// Commands

/**
 * The bytes of a command. Throws MapBytesError: BAD_COMMAND for a value out of its field's
 * range, TOO_LARGE past metaCommandBytesMax. Ranges are written in canonical form.
 */
export function encodeMetaCommand(c: MetaCommand): Uint8Array {
  const w = new ByteWriter(metaCommandBytesMax, 'TOO_LARGE');
  const u32 = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new MapBytesError('BAD_COMMAND', `${what} ${v} is not a u32`);
    w.u32(v);
  };
  const u64 = (v: number, what: string) => {
    if (!Number.isSafeInteger(v) || v < 0) throw new MapBytesError('BAD_COMMAND', `${what} ${v} is not a safe non-negative integer`);
    w.u64(v);
  };
  const members = (ms: readonly number[]) => {
    if (ms.length > 0xff) throw new MapBytesError('BAD_COMMAND', `${ms.length} members, more than 255`);
    w.u8(ms.length);
    for (const n of ms) u32(n, 'node id');
  };
  const addresses = (a: NodeAddresses) => {
    w.text8(a.raft);
    w.text8(a.client);
    w.text8(a.admin);
  };
  const ranges = (rs: SlotRanges) => {
    let canon: SlotRanges;
    try {
      canon = canonicalRanges(rs);
    } catch (e) {
      throw new MapBytesError('BAD_COMMAND', e instanceof Error ? e.message : String(e));
    }
    writeRanges(w, canon);
  };
  w.u8(TAG_OF[c.op]);
  u64(c.expect, 'expected version');
  switch (c.op) {
    case 'initialize':
      w.u32(c.groups.length);
      for (const g of c.groups) {
        u32(g.group, 'group id');
        members(g.members);
      }
      w.u32(c.nodes.length);
      for (const n of c.nodes) {
        u32(n.node, 'node id');
        addresses(n.addresses);
      }
      break;
    case 'assign-slots':
      u32(c.group, 'group id');
      ranges(c.slots);
      break;
    case 'begin-migration':
      u32(c.to, 'group id');
      ranges(c.slots);
      break;
    case 'cutover-migration':
    case 'finish-migration':
    case 'abort-migration':
      u64(c.id, 'migration id');
      break;
    case 'add-group':
      u32(c.group, 'group id');
      members(c.members);
      break;
    case 'remove-group':
      u32(c.group, 'group id');
      break;
    case 'add-member':
    case 'remove-member':
      u32(c.group, 'group id');
      u32(c.node, 'node id');
      break;
    case 'set-node-addresses':
      u32(c.node, 'node id');
      addresses(c.addresses);
      break;
    case 'remove-node':
      u32(c.node, 'node id');
      break;
  }
  return w.finish();
}

const TAG_OF: Record<MetaCommand['op'], MetaTag> = {
  'initialize': MetaTag.Initialize,
  'assign-slots': MetaTag.AssignSlots,
  'begin-migration': MetaTag.BeginMigration,
  'cutover-migration': MetaTag.CutoverMigration,
  'finish-migration': MetaTag.FinishMigration,
  'abort-migration': MetaTag.AbortMigration,
  'add-group': MetaTag.AddGroup,
  'remove-group': MetaTag.RemoveGroup,
  'add-member': MetaTag.AddMember,
  'remove-member': MetaTag.RemoveMember,
  'set-node-addresses': MetaTag.SetNodeAddresses,
  'remove-node': MetaTag.RemoveNode,
};

/**
 * Reads a non-empty command; throws MapBytesError BAD_COMMAND for anything that is not exactly
 * one. Checks the layout only: whether the command keeps the map's rules is the map's to say.
 */
export function decodeMetaCommand(b: Uint8Array): MetaCommand {
  if (b.length > metaCommandBytesMax) throw new MapBytesError('BAD_COMMAND', `command of ${b.length} bytes, more than ${metaCommandBytesMax}`);
  const r = new ByteReader(b, 'BAD_COMMAND');
  const tag = r.u8();
  const expect = r.u64();
  const members = (): number[] => {
    const n = r.u8();
    const ms: number[] = [];
    for (let i = 0; i < n; i++) ms.push(r.u32());
    return ms;
  };
  const addresses = (): NodeAddresses => ({ raft: r.text8(), client: r.text8(), admin: r.text8() });
  let c: MetaCommand;
  switch (tag) {
    case MetaTag.Initialize: {
      const gn = r.u32();
      // Each group takes at least 5 bytes and each node 7: a count the bytes cannot hold is refused before anything is made for it.
      if (gn * 5 > r.left) r.fail(`${gn} groups do not fit in ${r.left} bytes`);
      const groups: GroupSpec[] = [];
      for (let i = 0; i < gn; i++) groups.push({ group: r.u32(), members: members() });
      const nn = r.u32();
      if (nn * 7 > r.left) r.fail(`${nn} nodes do not fit in ${r.left} bytes`);
      const nodes: NodeSpec[] = [];
      for (let i = 0; i < nn; i++) nodes.push({ node: r.u32(), addresses: addresses() });
      c = { op: 'initialize', expect, groups, nodes };
      break;
    }
    case MetaTag.AssignSlots:
      c = { op: 'assign-slots', expect, group: r.u32(), slots: readRanges(r) };
      break;
    case MetaTag.BeginMigration:
      c = { op: 'begin-migration', expect, to: r.u32(), slots: readRanges(r) };
      break;
    case MetaTag.CutoverMigration:
      c = { op: 'cutover-migration', expect, id: r.u64() };
      break;
    case MetaTag.FinishMigration:
      c = { op: 'finish-migration', expect, id: r.u64() };
      break;
    case MetaTag.AbortMigration:
      c = { op: 'abort-migration', expect, id: r.u64() };
      break;
    case MetaTag.AddGroup:
      c = { op: 'add-group', expect, group: r.u32(), members: members() };
      break;
    case MetaTag.RemoveGroup:
      c = { op: 'remove-group', expect, group: r.u32() };
      break;
    case MetaTag.AddMember:
      c = { op: 'add-member', expect, group: r.u32(), node: r.u32() };
      break;
    case MetaTag.RemoveMember:
      c = { op: 'remove-member', expect, group: r.u32(), node: r.u32() };
      break;
    case MetaTag.SetNodeAddresses:
      c = { op: 'set-node-addresses', expect, node: r.u32(), addresses: addresses() };
      break;
    case MetaTag.RemoveNode:
      c = { op: 'remove-node', expect, node: r.u32() };
      break;
    default:
      return r.fail(`unknown meta command tag ${tag}`);
  }
  r.end();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Results

export function encodeMetaResult(res: MetaResult): Uint8Array {
  const w = new ByteWriter(16 + 256 + metaMessageBytesMax + 8, 'TOO_LARGE', 64);
  w.u8(res.ok ? 0 : 1);
  w.u64(res.version);
  if (!res.ok) {
    w.text8(res.code);
    w.text16(clipUtf8(res.message, metaMessageBytesMax));
  }
  return w.finish();
}

/** Reads a result; throws MapBytesError BAD_RESULT for bytes that are not one. */
export function decodeMetaResult(b: Uint8Array): MetaResult {
  const r = new ByteReader(b, 'BAD_RESULT');
  const status = r.u8();
  const version = r.u64();
  let res: MetaResult;
  if (status === 0) res = { ok: true, version };
  else if (status === 1) res = { ok: false, version, code: r.text8() as MetaErrorCode, message: r.text16() };
  else return r.fail(`unknown result status ${status}`);
  r.end();
  return res;
}

const textEncoder = new TextEncoder();

/** `s` cut to at most `bytes` bytes of UTF-8, at a character boundary. */
function clipUtf8(s: string, bytes: number): string {
  if (textEncoder.encode(s).length <= bytes) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    const k = textEncoder.encode(ch).length;
    if (n + k > bytes) break;
    out += ch;
    n += k;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Queries and answers

export const enum MetaQueryTag {
  Map = 1,
  Owner = 2,
  Version = 3,
}

export function encodeMetaQuery(q: MetaQuery): Uint8Array {
  const w = new ByteWriter(3, 'BAD_QUERY', 3);
  switch (q.q) {
    case 'map':
      w.u8(MetaQueryTag.Map);
      break;
    case 'owner':
      if (!Number.isInteger(q.slot) || q.slot < 0 || q.slot > 0xffff) throw new MapBytesError('BAD_QUERY', `slot ${q.slot} is not a u16`);
      w.u8(MetaQueryTag.Owner);
      w.u16(q.slot);
      break;
    case 'version':
      w.u8(MetaQueryTag.Version);
      break;
  }
  return w.finish();
}

/** Reads a query; throws MapBytesError BAD_QUERY for bytes that are not one. */
export function decodeMetaQuery(b: Uint8Array): MetaQuery {
  const r = new ByteReader(b, 'BAD_QUERY');
  const tag = r.u8();
  let q: MetaQuery;
  if (tag === MetaQueryTag.Map) q = { q: 'map' };
  else if (tag === MetaQueryTag.Owner) q = { q: 'owner', slot: r.u16() };
  else if (tag === MetaQueryTag.Version) q = { q: 'version' };
  else return r.fail(`unknown meta query tag ${tag}`);
  r.end();
  return q;
}

const STATE_CODE: Record<MigrationState, number> = { copying: 1, cutover: 2 };

export function encodeOwnerAnswer(a: OwnerAnswer): Uint8Array {
  const w = new ByteWriter(32, 'TOO_LARGE', 32);
  w.u64(a.version);
  w.u32(a.group);
  if (a.migration === null) {
    w.u8(0);
  } else {
    w.u8(1);
    w.u64(a.migration.id);
    w.u32(a.migration.to);
    w.u8(STATE_CODE[a.migration.state]);
  }
  return w.finish();
}

/** Reads an owner answer; throws MapBytesError BAD_RESULT for bytes that are not one. */
export function decodeOwnerAnswer(b: Uint8Array): OwnerAnswer {
  const r = new ByteReader(b, 'BAD_RESULT');
  const version = r.u64();
  const group = r.u32();
  const moving = r.u8();
  let migration: OwnerAnswer['migration'] = null;
  if (moving === 1) {
    const id = r.u64();
    const to = r.u32();
    const s = r.u8();
    if (s !== 1 && s !== 2) r.fail(`unknown migration state ${s}`);
    migration = { id, to, state: s === 1 ? 'copying' : 'cutover' };
  } else if (moving !== 0) {
    r.fail(`moving flag ${moving} is neither 0 nor 1`);
  }
  r.end();
  return { version, group, migration };
}

export function encodeVersionAnswer(version: number): Uint8Array {
  const w = new ByteWriter(8, 'TOO_LARGE', 8);
  w.u64(version);
  return w.finish();
}

export function decodeVersionAnswer(b: Uint8Array): number {
  const r = new ByteReader(b, 'BAD_RESULT');
  const v = r.u64();
  r.end();
  return v;
}
