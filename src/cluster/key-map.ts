// The cluster's key map as a value (issue 15): which group owns each of the 16,384 slots, which
// nodes are the voters of each group, where each node listens, which slots are moving between
// groups, and a version that grows by one with every change. The meta group's state machine
// (meta-state-machine.ts) holds one; nodes and clients will keep copies of it.
//
// A KeyMap never changes: every operation returns a new map with version + 1, or throws a
// KeyMapError whose `code` says which rule it broke (and the map it was called on is still as it
// was). The rules, which every map reachable through these operations or accepted by decodeKeyMap
// keeps (keyMapProblem checks them):
// - a slot is unassigned (group 0) or owned by one existing group; the map is initialized once
//   every slot is owned, and an initialized map stays so (slots move, they are never unassigned);
// - a group has 1 … membersPerGroupMax voters; a group that owns slots or takes part in a
//   migration cannot be removed (GROUP_IN_USE), nor a node that is a voter of a group (NODE_IN_USE);
//   a voter need not have addresses yet (a group may be planned before its nodes say where they
//   listen);
// - a migration moves a non-empty set of slots, all owned by its `from` group, to another
//   existing group; a slot is in at most one migration; the slots stay owned by `from` until the
//   migration finishes, so at every step each slot has exactly one owner. A migration is begun
//   ('copying': `from` still serves the slots while their keys are copied to `to`), cut over
//   ('cutover': `from` stops writing them, `to` catches up), then finished (the slots become
//   `to`'s) or aborted at either step (they stay `from`'s). Its id is the map version its begin
//   made, so ids are unique and need no counter of their own.
//
// The binary image (encodeKeyMap / decodeKeyMap, key-map-image.ts) is laid out in docs/key-map.md; it is canonical
// (a map has exactly one image, and decode accepts no other), which makes replicas' snapshots
// byte-equal. keyMapJson is the form `flotilla admin slots --json` will print.
//
// Pure: no I/O, no clocks, deterministic.
import { encodeKeyMap } from './key-map-image.js';
import {
  SLOT_COUNT,
  SlotsError,
  canonicalRanges,
  formatSlots,
  isCanonical,
  type SlotRange,
  type SlotRanges,
} from './slots.js';

/** The most groups a map holds (more groups than slots would leave some without a slot for good). */
export const groupsMax = SLOT_COUNT;
/** The most voters of one group. */
export const membersPerGroupMax = 15;
/** The most nodes a map holds addresses for. */
export const nodesMax = 1024;
/** The most migrations in progress at once. */
export const migrationsMax = 1024;
/** The longest address, in characters (`host:port`, ASCII). */
export const addressCharsMax = 255;
/** The largest image encodeKeyMap makes (the bounds above keep a map well under it). */
export const keyMapBytesMax = 4 * 1024 * 1024;

const U32_MAX = 0xffff_ffff;

/** Where a node listens: each `host:port` (an IPv6 host in brackets). */
export interface NodeAddresses {
  /** Replication links between nodes. */
  readonly raft: string;
  /** The client protocol. */
  readonly client: string;
  /** Admin RPC and HTTP (/health, /metrics). */
  readonly admin: string;
}

export type MigrationState = 'copying' | 'cutover';

export interface Migration {
  /** The map version its begin made. */
  readonly id: number;
  readonly slots: SlotRanges;
  readonly from: number;
  readonly to: number;
  readonly state: MigrationState;
}

export interface GroupSpec {
  readonly group: number;
  /** Node ids of its voters. */
  readonly members: readonly number[];
}

export interface NodeSpec {
  readonly node: number;
  readonly addresses: NodeAddresses;
}

export type KeyMapErrorCode =
  | 'BAD_MAP' // an image that is not a map
  | 'BAD_SLOTS' // slots out of range, or an empty set
  | 'BAD_ARGUMENT' // an id out of range, a malformed address, duplicate members
  | 'TOO_LARGE' // past one of the bounds above
  | 'ALREADY_INITIALIZED'
  | 'NO_SUCH_GROUP'
  | 'GROUP_EXISTS'
  | 'GROUP_IN_USE'
  | 'NO_SUCH_NODE'
  | 'NODE_IN_USE'
  | 'MEMBER_EXISTS'
  | 'NO_SUCH_MEMBER'
  | 'LAST_MEMBER'
  | 'SLOT_UNASSIGNED'
  | 'MIXED_OWNERS'
  | 'SAME_GROUP'
  | 'SLOT_MIGRATING'
  | 'NO_SUCH_MIGRATION'
  | 'BAD_MIGRATION_STATE';

/** An operation that would break a rule of the map (file header), or an image that is not a map. */
export class KeyMapError extends Error {
  constructor(readonly code: KeyMapErrorCode, message: string) {
    super(message);
  }
}

function fail(code: KeyMapErrorCode, message: string): never {
  throw new KeyMapError(code, message);
}

/** A run of slots first … last with one owner (0: unassigned). */
export interface OwnerRun extends SlotRange {
  readonly group: number;
}

export class KeyMap {
  private constructor(
    /** Grows by one with every change; 0 only for the empty map. */
    readonly version: number,
    /** slot → owning group, 0 = unassigned. Never written once the map is made. */
    private readonly owners: Uint32Array,
    /** group → its voters, ascending; iterated in ascending group order. */
    private readonly members: ReadonlyMap<number, readonly number[]>,
    /** node → addresses; iterated in ascending node order. */
    private readonly addresses: ReadonlyMap<number, NodeAddresses>,
    /** Ascending by id. */
    private readonly moving: readonly Migration[],
  ) {}

  /** The map of a cluster nobody has set up: version 0, no groups, no slot assigned. */
  static empty(): KeyMap {
    return new KeyMap(0, new Uint32Array(SLOT_COUNT), new Map(), new Map(), []);
  }

  /** A new cluster's map (version 1): the empty map, initialized (see initialize). */
  static initial(groups: readonly GroupSpec[], nodes: readonly NodeSpec[] = []): KeyMap {
    return KeyMap.empty().initialize(groups, nodes);
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /** The group that owns a slot, or 0 while it is unassigned. */
  ownerOf(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) {
      throw new SlotsError('out-of-range', `slot ${slot} is out of range 0-${SLOT_COUNT - 1}`);
    }
    return this.owners[slot]!;
  }

  /** Whether every slot is owned. */
  get initialized(): boolean {
    return !this.owners.includes(0);
  }

  /** The slots in runs of one owner, ascending, covering every slot (unassigned runs have group 0). */
  ownerRuns(): OwnerRun[] {
    const runs: OwnerRun[] = [];
    let first = 0;
    for (let s = 1; s <= SLOT_COUNT; s++) {
      if (s === SLOT_COUNT || this.owners[s] !== this.owners[first]) {
        runs.push({ first, last: s - 1, group: this.owners[first]! });
        first = s;
      }
    }
    return runs;
  }

  /** The slots a group owns. */
  slotsOf(group: number): SlotRanges {
    return this.ownerRuns().filter((r) => r.group === group).map(({ first, last }) => ({ first, last }));
  }

  /** Group ids, ascending. */
  groups(): number[] {
    return [...this.members.keys()];
  }

  hasGroup(group: number): boolean {
    return this.members.has(group);
  }

  /** A group's voters, ascending, or undefined for a group the map does not hold. */
  membersOf(group: number): readonly number[] | undefined {
    return this.members.get(group);
  }

  /** Ids of the nodes the map has addresses for, ascending. */
  nodes(): number[] {
    return [...this.addresses.keys()];
  }

  addressesOf(node: number): NodeAddresses | undefined {
    return this.addresses.get(node);
  }

  /** Migrations in progress, ascending by id. */
  migrations(): readonly Migration[] {
    return this.moving;
  }

  migration(id: number): Migration | undefined {
    return this.moving.find((m) => m.id === id);
  }

  /** The migration a slot is in, if any. */
  migrationOf(slot: number): Migration | undefined {
    return this.moving.find((m) => m.slots.some((r) => r.first <= slot && slot <= r.last));
  }

  // -------------------------------------------------------------------------------------------
  // Changing (each returns the next version, or throws KeyMapError)

  /**
   * Sets up an empty map in one step: adds the groups and the nodes' addresses, and spreads the
   * slots over the groups in the order given, in contiguous ranges whose sizes differ by at most
   * one (the first SLOT_COUNT mod N groups get one slot more).
   */
  initialize(groups: readonly GroupSpec[], nodes: readonly NodeSpec[] = []): KeyMap {
    if (this.version !== 0) fail('ALREADY_INITIALIZED', `the map is at version ${this.version}, not a new one`);
    if (groups.length === 0) fail('BAD_ARGUMENT', 'a map needs at least one group');
    if (groups.length > groupsMax) fail('TOO_LARGE', `${groups.length} groups, more than ${groupsMax}`);
    if (nodes.length > nodesMax) fail('TOO_LARGE', `${nodes.length} nodes, more than ${nodesMax}`);
    const members = new Map<number, readonly number[]>();
    for (const g of groups) {
      checkGroupId(g.group);
      if (members.has(g.group)) fail('GROUP_EXISTS', `group ${g.group} is listed twice`);
      members.set(g.group, checkedMembers(g.members));
    }
    const addresses = new Map<number, NodeAddresses>();
    for (const n of nodes) {
      checkNodeId(n.node);
      if (addresses.has(n.node)) fail('BAD_ARGUMENT', `node ${n.node} is listed twice`);
      addresses.set(n.node, checkedAddresses(n.addresses));
    }
    const owners = new Uint32Array(SLOT_COUNT);
    const base = Math.floor(SLOT_COUNT / groups.length);
    const extra = SLOT_COUNT % groups.length;
    let at = 0;
    groups.forEach((g, i) => {
      const n = base + (i < extra ? 1 : 0);
      owners.fill(g.group, at, at + n);
      at += n;
    });
    return new KeyMap(this.version + 1, owners, sortedMap(members), sortedMap(addresses), []);
  }

  /**
   * Gives slots to a group outright, whoever owned them (an operator's repair, or the setup of
   * slots left unassigned). Slots in a migration are refused: abort it first.
   */
  assignSlots(slots: SlotRanges, group: number): KeyMap {
    const rs = checkedSlots(slots);
    this.mustHaveGroup(group);
    this.mustNotMigrate(rs);
    const owners = this.owners.slice();
    for (const r of rs) owners.fill(group, r.first, r.last + 1);
    return this.next({ owners });
  }

  /** Begins moving slots, all owned by one group, to group `to`; the migration's id is the new version. */
  beginMigration(slots: SlotRanges, to: number): KeyMap {
    const rs = checkedSlots(slots);
    this.mustHaveGroup(to);
    this.mustNotMigrate(rs);
    if (this.moving.length >= migrationsMax) fail('TOO_LARGE', `${migrationsMax} migrations are in progress already`);
    const from = this.owners[rs[0]!.first]!;
    for (const r of rs) {
      for (let s = r.first; s <= r.last; s++) {
        const o = this.owners[s]!;
        if (o === 0) fail('SLOT_UNASSIGNED', `slot ${s} has no owner to move it from`);
        if (o !== from) fail('MIXED_OWNERS', `slot ${s} is owned by group ${o}, slot ${rs[0]!.first} by group ${from}: migrate each group's slots apart`);
      }
    }
    if (from === to) fail('SAME_GROUP', `the slots are group ${to}'s already`);
    const id = this.version + 1;
    return this.next({ moving: [...this.moving, { id, slots: rs, from, to, state: 'copying' }] });
  }

  /** Moves a migration from copying to cutover. */
  cutoverMigration(id: number): KeyMap {
    const m = this.mustHaveMigration(id);
    if (m.state !== 'copying') fail('BAD_MIGRATION_STATE', `migration ${id} is at ${m.state}, not copying`);
    return this.next({ moving: this.moving.map((x) => (x.id === id ? { ...x, state: 'cutover' as const } : x)) });
  }

  /** Ends a migration at cutover: its slots become the target's. */
  finishMigration(id: number): KeyMap {
    const m = this.mustHaveMigration(id);
    if (m.state !== 'cutover') fail('BAD_MIGRATION_STATE', `migration ${id} is at ${m.state}, not cutover`);
    const owners = this.owners.slice();
    for (const r of m.slots) owners.fill(m.to, r.first, r.last + 1);
    return this.next({ owners, moving: this.moving.filter((x) => x.id !== id) });
  }

  /** Drops a migration at either step: its slots stay the source's. */
  abortMigration(id: number): KeyMap {
    this.mustHaveMigration(id);
    return this.next({ moving: this.moving.filter((x) => x.id !== id) });
  }

  /** Adds a group (owning no slots yet) with its voters. */
  addGroup(group: number, members: readonly number[]): KeyMap {
    checkGroupId(group);
    if (this.members.has(group)) fail('GROUP_EXISTS', `group ${group} exists`);
    if (this.members.size >= groupsMax) fail('TOO_LARGE', `the map holds ${groupsMax} groups already`);
    const next = new Map(this.members);
    next.set(group, checkedMembers(members));
    return this.next({ members: sortedMap(next) });
  }

  /** Removes a group that owns no slot and takes part in no migration. */
  removeGroup(group: number): KeyMap {
    this.mustHaveGroup(group);
    if (this.owners.includes(group)) fail('GROUP_IN_USE', `group ${group} owns slots ${formatSlots(this.slotsOf(group))}`);
    const m = this.moving.find((x) => x.from === group || x.to === group);
    if (m !== undefined) fail('GROUP_IN_USE', `group ${group} takes part in migration ${m.id}`);
    const next = new Map(this.members);
    next.delete(group);
    return this.next({ members: next });
  }

  /** Adds a voter to a group. */
  addMember(group: number, node: number): KeyMap {
    const ms = this.mustHaveGroup(group);
    checkNodeId(node);
    if (ms.includes(node)) fail('MEMBER_EXISTS', `node ${node} is a voter of group ${group} already`);
    if (ms.length >= membersPerGroupMax) fail('TOO_LARGE', `group ${group} has ${membersPerGroupMax} voters already`);
    return this.withMembers(group, [...ms, node].sort((a, b) => a - b));
  }

  /** Removes a voter from a group; the last one stays. */
  removeMember(group: number, node: number): KeyMap {
    const ms = this.mustHaveGroup(group);
    if (!ms.includes(node)) fail('NO_SUCH_MEMBER', `node ${node} is not a voter of group ${group}`);
    if (ms.length === 1) fail('LAST_MEMBER', `node ${node} is the last voter of group ${group}: remove the group instead`);
    return this.withMembers(group, ms.filter((n) => n !== node));
  }

  /** Sets (or replaces) where a node listens. */
  setNodeAddresses(node: number, addresses: NodeAddresses): KeyMap {
    checkNodeId(node);
    const a = checkedAddresses(addresses);
    if (!this.addresses.has(node) && this.addresses.size >= nodesMax) fail('TOO_LARGE', `the map holds ${nodesMax} nodes already`);
    const next = new Map(this.addresses);
    next.set(node, a);
    return this.next({ addresses: sortedMap(next) });
  }

  /** Forgets a node's addresses; refused while it is a voter of a group. */
  removeNode(node: number): KeyMap {
    if (!this.addresses.has(node)) fail('NO_SUCH_NODE', `the map has no addresses for node ${node}`);
    for (const [g, ms] of this.members) if (ms.includes(node)) fail('NODE_IN_USE', `node ${node} is a voter of group ${g}`);
    const next = new Map(this.addresses);
    next.delete(node);
    return this.next({ addresses: next });
  }

  // -------------------------------------------------------------------------------------------

  private next(parts: {
    owners?: Uint32Array;
    members?: ReadonlyMap<number, readonly number[]>;
    addresses?: ReadonlyMap<number, NodeAddresses>;
    moving?: readonly Migration[];
  }): KeyMap {
    if (this.version >= Number.MAX_SAFE_INTEGER) fail('TOO_LARGE', 'the map version cannot grow any more');
    return new KeyMap(
      this.version + 1,
      parts.owners ?? this.owners,
      parts.members ?? this.members,
      parts.addresses ?? this.addresses,
      parts.moving ?? this.moving,
    );
  }

  private withMembers(group: number, ms: readonly number[]): KeyMap {
    const next = new Map(this.members);
    next.set(group, ms);
    return this.next({ members: next });
  }

  private mustHaveGroup(group: number): readonly number[] {
    const ms = this.members.get(group);
    if (ms === undefined) fail('NO_SUCH_GROUP', `there is no group ${group}`);
    return ms;
  }

  private mustHaveMigration(id: number): Migration {
    const m = this.migration(id);
    if (m === undefined) fail('NO_SUCH_MIGRATION', `there is no migration ${id} in progress`);
    return m;
  }

  private mustNotMigrate(rs: SlotRanges): void {
    for (const m of this.moving) {
      const s = firstShared(m.slots, rs);
      if (s !== -1) fail('SLOT_MIGRATING', `slot ${s} is in migration ${m.id} (group ${m.from} to ${m.to}, ${m.state})`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Images

  /** The map's binary image (docs/key-map.md). */
  encode(): Uint8Array {
    return encodeKeyMap(this);
  }

  /** Whether two maps are the same map (same version and content). */
  equals(other: KeyMap): boolean {
    const a = this.encode();
    const b = other.encode();
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  /** @internal The decoder's way in: builds a map from checked parts. */
  static fromParts(p: KeyMapParts): KeyMap {
    const problem = keyMapPartsProblem(p);
    if (problem !== null) fail('BAD_MAP', problem);
    return new KeyMap(p.version, p.owners, p.members, p.addresses, p.moving);
  }

  /** Checks every rule of the file header; null when the map keeps them all. For tests and asserts. */
  problem(): string | null {
    return keyMapPartsProblem({
      version: this.version,
      owners: this.owners,
      members: this.members,
      addresses: this.addresses,
      moving: this.moving,
    });
  }
}

interface KeyMapParts {
  version: number;
  owners: Uint32Array;
  members: ReadonlyMap<number, readonly number[]>;
  addresses: ReadonlyMap<number, NodeAddresses>;
  moving: readonly Migration[];
}

// ---------------------------------------------------------------------------------------------
// Checks

function isId(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= U32_MAX;
}

function checkGroupId(g: number): void {
  if (!isId(g)) fail('BAD_ARGUMENT', `group id ${g} is not an integer in 1-${U32_MAX}`);
}

function checkNodeId(n: number): void {
  if (!isId(n)) fail('BAD_ARGUMENT', `node id ${n} is not an integer in 1-${U32_MAX}`);
}

function checkedMembers(members: readonly number[]): readonly number[] {
  if (members.length === 0) fail('BAD_ARGUMENT', 'a group needs at least one voter');
  if (members.length > membersPerGroupMax) fail('TOO_LARGE', `${members.length} voters, more than ${membersPerGroupMax}`);
  for (const n of members) checkNodeId(n);
  const sorted = [...members].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) fail('BAD_ARGUMENT', `node ${sorted[i]} is listed twice as a voter`);
  return sorted;
}

function checkedSlots(slots: SlotRanges): SlotRanges {
  let rs: SlotRanges;
  try {
    rs = canonicalRanges(slots);
  } catch (e) {
    if (e instanceof SlotsError) fail('BAD_SLOTS', e.message);
    throw e;
  }
  if (rs.length === 0) fail('BAD_SLOTS', 'no slots given');
  return rs;
}

const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)):([1-9][0-9]{0,4})$/;

/** Why `s` is not an address a client could dial (`host:port`), or null. */
export function addressProblem(s: string): string | null {
  if (typeof s !== 'string') return 'an address must be text';
  if (s.length > addressCharsMax) return `address of ${s.length} characters, more than ${addressCharsMax}`;
  const m = ADDRESS.exec(s);
  if (m === null) return `"${s.slice(0, 60)}" is not host:port (a host name, an IPv4 address, or an IPv6 address in brackets)`;
  if (m[1] !== undefined && !m[1].includes(':')) return `"${s.slice(0, 60)}": brackets are for IPv6 addresses`;
  if (Number(m[3]) > 65535) return `port ${m[3]} is above 65535`;
  return null;
}

function checkedAddresses(a: NodeAddresses): NodeAddresses {
  if (a === null || typeof a !== 'object') fail('BAD_ARGUMENT', 'addresses must be { raft, client, admin }');
  for (const k of ['raft', 'client', 'admin'] as const) {
    const p = addressProblem(a[k]);
    if (p !== null) fail('BAD_ARGUMENT', `${k} address: ${p}`);
  }
  return { raft: a.raft, client: a.client, admin: a.admin };
}

function sortedMap<V>(m: ReadonlyMap<number, V>): Map<number, V> {
  return new Map([...m].sort((a, b) => a[0] - b[0]));
}

/** The first slot two canonical sets share, or -1. */
function firstShared(a: SlotRanges, b: SlotRanges): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const lo = Math.max(x.first, y.first);
    if (lo <= Math.min(x.last, y.last)) return lo;
    if (x.last < y.last) i++;
    else j++;
  }
  return -1;
}

function keyMapPartsProblem(p: KeyMapParts): string | null {
  if (!Number.isSafeInteger(p.version) || p.version < 0) return `version ${p.version} is not a safe non-negative integer`;
  if (p.owners.length !== SLOT_COUNT) return `${p.owners.length} slots, not ${SLOT_COUNT}`;
  if (p.members.size > groupsMax) return `${p.members.size} groups, more than ${groupsMax}`;
  if (p.addresses.size > nodesMax) return `${p.addresses.size} nodes, more than ${nodesMax}`;
  if (p.moving.length > migrationsMax) return `${p.moving.length} migrations, more than ${migrationsMax}`;
  if (p.version === 0 && (p.members.size > 0 || p.addresses.size > 0 || p.owners.some((o) => o !== 0))) {
    return 'a map at version 0 must be empty';
  }
  let prev = 0;
  for (const [g, ms] of p.members) {
    if (!isId(g)) return `group id ${g} is out of range`;
    if (g <= prev) return `group ${g} is out of order`;
    prev = g;
    if (ms.length === 0 || ms.length > membersPerGroupMax) return `group ${g} has ${ms.length} voters, not 1-${membersPerGroupMax}`;
    for (let i = 0; i < ms.length; i++) {
      if (!isId(ms[i]!)) return `group ${g}: node id ${ms[i]} is out of range`;
      if (i > 0 && ms[i]! <= ms[i - 1]!) return `group ${g}: voters are not ascending and distinct`;
    }
  }
  prev = 0;
  for (const [n, a] of p.addresses) {
    if (!isId(n)) return `node id ${n} is out of range`;
    if (n <= prev) return `node ${n} is out of order`;
    prev = n;
    for (const k of ['raft', 'client', 'admin'] as const) {
      const problem = addressProblem(a[k]);
      if (problem !== null) return `node ${n} ${k} address: ${problem}`;
    }
  }
  for (let s = 0; s < SLOT_COUNT; s++) {
    const o = p.owners[s]!;
    if (o !== 0 && !p.members.has(o)) return `slot ${s} is owned by group ${o}, which the map does not hold`;
  }
  const seen = new Uint8Array(SLOT_COUNT);
  prev = 0;
  for (const m of p.moving) {
    if (!Number.isSafeInteger(m.id) || m.id < 1 || m.id > p.version) return `migration id ${m.id} is not a version of this map`;
    if (m.id <= prev) return `migration ${m.id} is out of order`;
    prev = m.id;
    if (m.state !== 'copying' && m.state !== 'cutover') return `migration ${m.id} has state ${String(m.state)}`;
    if (!p.members.has(m.from)) return `migration ${m.id} comes from group ${m.from}, which the map does not hold`;
    if (!p.members.has(m.to)) return `migration ${m.id} goes to group ${m.to}, which the map does not hold`;
    if (m.from === m.to) return `migration ${m.id} goes from group ${m.from} to itself`;
    if (m.slots.length === 0 || !isCanonical(m.slots)) return `migration ${m.id} has slots not in canonical form`;
    for (const r of m.slots) {
      for (let s = r.first; s <= r.last; s++) {
        if (seen[s] === 1) return `slot ${s} is in two migrations`;
        seen[s] = 1;
        if (p.owners[s] !== m.from) return `migration ${m.id} moves slot ${s} from group ${m.from}, but group ${p.owners[s]} owns it`;
      }
    }
  }
  return null;
}

// The image and JSON form live in key-map-image.ts; their names are re-exported here.
export { KEY_MAP_FORMAT, KEY_MAP_MAGIC, decodeKeyMap, encodeKeyMap, keyMapJson, readRanges, writeRanges, type KeyMapJson } from './key-map-image.js';
