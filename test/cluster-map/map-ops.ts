// Random operations on a key map, for the property tests of the map and of the meta state
// machine. The ids are drawn from small ranges and slot ranges near each other so that
// operations often collide (same group, overlapping migrations, a last member), which is where
// the rules are; migration ids are picked among the map's own migrations most of the time.
import fc from 'fast-check';
import type { KeyMap, MigrationState, NodeAddresses } from '../../src/cluster/key-map.js';
import type { MetaCommand } from '../../src/cluster/meta-command.js';
import { SLOT_COUNT, canonicalRanges, type SlotRanges } from '../../src/cluster/slots.js';

// Mostly ids a map started with KeyMap.initial over groups 1 … n holds; 0 (not an id) and others rarely.
export const groupIdArb = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) });
export const nodeIdArb = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 5 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 9 }) });

export const addressesArb: fc.Arbitrary<NodeAddresses> = fc
  .tuple(fc.constantFrom('127.0.0.1', 'node-a.example', '[::1]', 'bad host', '10.0.0.7'), fc.integer({ min: 0, max: 70000 }))
  .map(([h, p]) => ({ raft: `${h}:${p}`, client: `${h}:${p + 1}`, admin: `${h}:${p + 2}` }));

const rangeArb = fc
  .tuple(fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: SLOT_COUNT - 1 })), fc.integer({ min: 0, max: 300 }))
  .map(([first, n]) => ({ first, last: Math.min(SLOT_COUNT - 1, first + n) }));

export const slotsArb: fc.Arbitrary<SlotRanges> = fc.array(rangeArb, { minLength: 1, maxLength: 3 }).map((rs) => canonicalRanges(rs));

/** An operation whose migration id, when it has one, is resolved against the map it is applied to. */
export type MapOp =
  | { op: 'initialize'; groups: { group: number; members: number[] }[]; nodes: { node: number; addresses: NodeAddresses }[] }
  | { op: 'assign-slots'; group: number; slots: SlotRanges }
  | { op: 'begin-migration'; to: number; slots: SlotRanges }
  | { op: 'cutover-migration' | 'finish-migration' | 'abort-migration'; pick: number }
  | { op: 'add-group'; group: number; members: number[] }
  | { op: 'remove-group'; group: number }
  | { op: 'add-member' | 'remove-member'; group: number; node: number }
  | { op: 'set-node-addresses'; node: number; addresses: NodeAddresses }
  | { op: 'remove-node'; node: number };

const membersArb = fc.array(nodeIdArb, { minLength: 0, maxLength: 4 });

export const mapOpArb: fc.Arbitrary<MapOp> = fc.oneof(
  { weight: 2, arbitrary: fc.record({
    op: fc.constant('initialize' as const),
    groups: fc.array(fc.record({ group: groupIdArb, members: membersArb }), { minLength: 0, maxLength: 5 }),
    nodes: fc.array(fc.record({ node: nodeIdArb, addresses: addressesArb }), { maxLength: 3 }),
  }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('assign-slots' as const), group: groupIdArb, slots: slotsArb }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('begin-migration' as const), to: groupIdArb, slots: slotsArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('cutover-migration' as const), pick: fc.nat(20) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('finish-migration' as const), pick: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('abort-migration' as const), pick: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('add-group' as const), group: groupIdArb, members: membersArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove-group' as const), group: groupIdArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('add-member' as const, 'remove-member' as const), group: groupIdArb, node: nodeIdArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set-node-addresses' as const), node: nodeIdArb, addresses: addressesArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove-node' as const), node: nodeIdArb }) },
);

/**
 * A migration id for `pick`: one of the map's migrations (one at `state` if there is one, so that
 * migrations go the whole way often), or (pick ≥ 16) one it does not have.
 */
function migrationId(map: KeyMap, pick: number, state?: MigrationState): number {
  const at = map.migrations().filter((m) => m.state === state);
  const ms = at.length > 0 ? at : map.migrations();
  return pick < 16 && ms.length > 0 ? ms[pick % ms.length]!.id : 1000 + pick;
}

/** The map after the operation (throws KeyMapError when a rule refuses it). */
export function applyOp(map: KeyMap, o: MapOp): KeyMap {
  switch (o.op) {
    case 'initialize': return map.initialize(o.groups, o.nodes);
    case 'assign-slots': return map.assignSlots(o.slots, o.group);
    case 'begin-migration': return map.beginMigration(o.slots, o.to);
    case 'cutover-migration': return map.cutoverMigration(migrationId(map, o.pick, 'copying'));
    case 'finish-migration': return map.finishMigration(migrationId(map, o.pick, 'cutover'));
    case 'abort-migration': return map.abortMigration(migrationId(map, o.pick));
    case 'add-group': return map.addGroup(o.group, o.members);
    case 'remove-group': return map.removeGroup(o.group);
    case 'add-member': return map.addMember(o.group, o.node);
    case 'remove-member': return map.removeMember(o.group, o.node);
    case 'set-node-addresses': return map.setNodeAddresses(o.node, o.addresses);
    case 'remove-node': return map.removeNode(o.node);
  }
}

/** The same operation as a meta command expecting `expect`. */
export function commandOf(map: KeyMap, o: MapOp, expect: number): MetaCommand {
  switch (o.op) {
    case 'cutover-migration':
    case 'finish-migration':
    case 'abort-migration':
      return { op: o.op, expect, id: migrationId(map, o.pick, o.op === 'cutover-migration' ? 'copying' : o.op === 'finish-migration' ? 'cutover' : undefined) };
    default:
      return { ...o, expect } as MetaCommand;
  }
}
