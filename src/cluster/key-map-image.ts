// The key map's binary image and JSON form (issue 15; layout in docs/key-map.md): canonical, so
// a map has exactly one image and decode accepts no other, which makes replicas' snapshots
// byte-equal. The map itself and its rules are key-map.ts.
import { KeyMap, KeyMapError, groupsMax, nodesMax, migrationsMax, keyMapBytesMax, type Migration, type MigrationState, type NodeAddresses } from './key-map.js';
import { ByteReader, ByteWriter, MapBytesError } from './map-bytes.js';
import { SLOT_COUNT, formatSlots, isCanonical, slotCount, type SlotRange, type SlotRanges } from './slots.js';

// ---------------------------------------------------------------------------------------------
// The binary image (docs/key-map.md)

/** "FLKM", the first four bytes of an image. */
export const KEY_MAP_MAGIC = Uint8Array.of(0x46, 0x4c, 0x4b, 0x4d);
/** The image format this code writes and the only one it reads. */
export const KEY_MAP_FORMAT = 1;

const STATE_CODE: Record<MigrationState, number> = { copying: 1, cutover: 2 };
const STATE_OF_CODE: Record<number, MigrationState> = { 1: 'copying', 2: 'cutover' };

export function encodeKeyMap(map: KeyMap): Uint8Array {
  const w = new ByteWriter(keyMapBytesMax, 'TOO_LARGE', 1024);
  w.bytes(KEY_MAP_MAGIC);
  w.u16(KEY_MAP_FORMAT);
  w.u16(0);
  w.u64(map.version);
  const runs = map.ownerRuns();
  w.u16(runs.length);
  for (const r of runs) {
    w.u16(r.last - r.first + 1);
    w.u32(r.group);
  }
  const groups = map.groups();
  w.u32(groups.length);
  for (const g of groups) {
    const ms = map.membersOf(g)!;
    w.u32(g);
    w.u8(ms.length);
    for (const n of ms) w.u32(n);
  }
  const nodes = map.nodes();
  w.u32(nodes.length);
  for (const n of nodes) {
    const a = map.addressesOf(n)!;
    w.u32(n);
    w.text8(a.raft);
    w.text8(a.client);
    w.text8(a.admin);
  }
  const moving = map.migrations();
  w.u32(moving.length);
  for (const m of moving) {
    w.u64(m.id);
    w.u32(m.from);
    w.u32(m.to);
    w.u8(STATE_CODE[m.state]);
    writeRanges(w, m.slots);
  }
  return w.finish();
}

/** Writes a slot set as its range count (u16) and each range's first and last slot (u16 each). */
export function writeRanges(w: ByteWriter, rs: SlotRanges): void {
  w.u16(rs.length);
  for (const r of rs) {
    w.u16(r.first);
    w.u16(r.last);
  }
}

/** Reads what writeRanges wrote; fails (the reader's code) unless it is a canonical, non-empty set. */
export function readRanges(r: ByteReader): SlotRanges {
  const n = r.u16();
  if (n === 0) r.fail('an empty slot set');
  if (n > SLOT_COUNT / 2) r.fail(`${n} slot ranges, more than ${SLOT_COUNT / 2}`);
  const rs: SlotRange[] = [];
  for (let i = 0; i < n; i++) rs.push({ first: r.u16(), last: r.u16() });
  if (!isCanonical(rs)) r.fail('slot ranges out of range, reversed, overlapping, adjacent or out of order');
  return rs;
}

/** Reads an image; throws KeyMapError BAD_MAP for anything that is not exactly one. */
export function decodeKeyMap(image: Uint8Array): KeyMap {
  try {
    return decodeOrThrow(image);
  } catch (e) {
    if (e instanceof MapBytesError) throw new KeyMapError('BAD_MAP', e.message);
    throw e;
  }
}

function decodeOrThrow(image: Uint8Array): KeyMap {
  const r = new ByteReader(image, 'BAD_MAP');
  for (let i = 0; i < KEY_MAP_MAGIC.length; i++) if (r.u8() !== KEY_MAP_MAGIC[i]) r.fail('not a key map image (bad magic)');
  const format = r.u16();
  if (format !== KEY_MAP_FORMAT) r.fail(`image format ${format}, this code reads format ${KEY_MAP_FORMAT}`);
  if (r.u16() !== 0) r.fail('reserved bytes are not zero');
  const version = r.u64();
  const owners = new Uint32Array(SLOT_COUNT);
  const runCount = r.u16();
  let at = 0;
  let prevGroup = -1;
  for (let i = 0; i < runCount; i++) {
    const n = r.u16();
    const g = r.u32();
    if (n === 0 || at + n > SLOT_COUNT) r.fail(`run ${i} of ${n} slots at slot ${at} does not fit`);
    if (g === prevGroup) r.fail(`runs ${i - 1} and ${i} have the same owner (an image joins them)`);
    owners.fill(g, at, at + n);
    at += n;
    prevGroup = g;
  }
  if (at !== SLOT_COUNT) r.fail(`owner runs cover ${at} slots, not ${SLOT_COUNT}`);
  const groupCount = r.u32();
  if (groupCount > groupsMax) r.fail(`${groupCount} groups, more than ${groupsMax}`);
  const members = new Map<number, readonly number[]>();
  for (let i = 0; i < groupCount; i++) {
    const g = r.u32();
    const n = r.u8();
    const ms: number[] = [];
    for (let j = 0; j < n; j++) ms.push(r.u32());
    if (members.has(g)) r.fail(`group ${g} twice`);
    members.set(g, ms);
  }
  const nodeCount = r.u32();
  if (nodeCount > nodesMax) r.fail(`${nodeCount} nodes, more than ${nodesMax}`);
  const addresses = new Map<number, NodeAddresses>();
  for (let i = 0; i < nodeCount; i++) {
    const n = r.u32();
    const a = { raft: r.text8(), client: r.text8(), admin: r.text8() };
    if (addresses.has(n)) r.fail(`node ${n} twice`);
    addresses.set(n, a);
  }
  const migrationCount = r.u32();
  if (migrationCount > migrationsMax) r.fail(`${migrationCount} migrations, more than ${migrationsMax}`);
  const moving: Migration[] = [];
  for (let i = 0; i < migrationCount; i++) {
    const id = r.u64();
    const from = r.u32();
    const to = r.u32();
    const state = STATE_OF_CODE[r.u8()];
    if (state === undefined) r.fail(`migration ${id} has an unknown state`);
    moving.push({ id, from, to, state, slots: readRanges(r) });
  }
  r.end();
  return KeyMap.fromParts({ version, owners, members, addresses, moving });
}

// ---------------------------------------------------------------------------------------------
// JSON (what `flotilla admin slots --json` will print)

export interface KeyMapJson {
  version: number;
  initialized: boolean;
  /** Runs of slots with one owner, ascending; unassigned runs have group 0. */
  slots: { slots: string; group: number }[];
  groups: { group: number; members: number[]; slots: string; slotCount: number }[];
  nodes: { node: number; raft: string; client: string; admin: string }[];
  migrations: { id: number; slots: string; from: number; to: number; state: MigrationState }[];
}

export function keyMapJson(map: KeyMap): KeyMapJson {
  return {
    version: map.version,
    initialized: map.initialized,
    slots: map.ownerRuns().map((r) => ({ slots: formatSlots([r]), group: r.group })),
    groups: map.groups().map((g) => {
      const slots = map.slotsOf(g);
      return { group: g, members: [...map.membersOf(g)!], slots: formatSlots(slots), slotCount: slotCount(slots) };
    }),
    nodes: map.nodes().map((n) => ({ node: n, ...map.addressesOf(n)! })),
    migrations: map.migrations().map((m) => ({ id: m.id, slots: formatSlots(m.slots), from: m.from, to: m.to, state: m.state })),
  };
}
