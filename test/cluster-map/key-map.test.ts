// The key map as a value: the initial spread, every operation's rules with their codes, the
// binary image (compact, canonical, strict) and the JSON form; properties over random
// operation sequences and random maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  KEY_MAP_MAGIC,
  KeyMap,
  KeyMapError,
  addressProblem,
  decodeKeyMap,
  encodeKeyMap,
  groupsMax,
  keyMapJson,
  membersPerGroupMax,
  migrationsMax,
  type KeyMapErrorCode,
  type NodeAddresses,
} from '../../src/cluster/key-map.js';
import { SLOT_COUNT, parseSlots, slotCount } from '../../src/cluster/slots.js';
import { params } from '../fuzz/fuzz-config.js';
import { applyOp, mapOpArb } from './map-ops.js';

const addr = (port: number): NodeAddresses => ({ raft: `127.0.0.1:${port}`, client: `127.0.0.1:${port + 1}`, admin: `127.0.0.1:${port + 2}` });

function threeGroups(): KeyMap {
  return KeyMap.initial(
    [{ group: 1, members: [1, 2, 3] }, { group: 2, members: [2, 3, 1] }, { group: 3, members: [3] }],
    [{ node: 1, addresses: addr(7001) }, { node: 2, addresses: addr(7011) }, { node: 3, addresses: addr(7021) }],
  );
}

function refused(f: () => unknown, code: KeyMapErrorCode): void {
  assert.throws(f, (e: unknown) => e instanceof KeyMapError && e.code === code && e.message.length > 0, code);
}

test('a new cluster spreads its slots evenly over its groups, in contiguous ranges', () => {
  for (const n of [1, 2, 3, 5, 7, 64, 1000, 16383, groupsMax]) {
    const groups = Array.from({ length: n }, (_, i) => ({ group: 10 + i, members: [1] }));
    const m = KeyMap.initial(groups);
    assert.equal(m.version, 1);
    assert.ok(m.initialized);
    assert.equal(m.problem(), null);
    const runs = m.ownerRuns();
    assert.equal(runs.length, n);
    const sizes = runs.map((r) => r.last - r.first + 1);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n}`);
    assert.deepEqual(runs.map((r) => r.group), groups.map((g) => g.group), 'in the order given');
    assert.equal(sizes.reduce((a, b) => a + b, 0), SLOT_COUNT);
  }
  const m = KeyMap.initial([{ group: 1, members: [1] }, { group: 2, members: [1] }, { group: 3, members: [1] }]);
  assert.deepEqual(m.ownerRuns(), [
    { first: 0, last: 5461, group: 1 },
    { first: 5462, last: 10922, group: 2 },
    { first: 10923, last: 16383, group: 3 },
  ]);
  assert.equal(m.ownerOf(0), 1);
  assert.equal(m.ownerOf(16383), 3);
});

test('initialize refuses a map already set up, no groups, and bad groups or nodes', () => {
  const empty = KeyMap.empty();
  assert.equal(empty.version, 0);
  assert.ok(!empty.initialized);
  assert.equal(empty.ownerOf(100), 0);
  refused(() => threeGroups().initialize([{ group: 9, members: [1] }]), 'ALREADY_INITIALIZED');
  refused(() => empty.addGroup(9, [1]).initialize([{ group: 8, members: [1] }]), 'ALREADY_INITIALIZED');
  refused(() => empty.initialize([]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: [1] }, { group: 1, members: [2] }]), 'GROUP_EXISTS');
  refused(() => empty.initialize([{ group: 0, members: [1] }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 2 ** 32, members: [1] }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: [] }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: [1, 1] }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: [0] }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: Array.from({ length: membersPerGroupMax + 1 }, (_, i) => i + 1) }]), 'TOO_LARGE');
  refused(() => empty.initialize(Array.from({ length: groupsMax + 1 }, (_, i) => ({ group: i + 1, members: [1] }))), 'TOO_LARGE');
  refused(() => empty.initialize([{ group: 1, members: [1] }], [{ node: 1, addresses: addr(1) }, { node: 1, addresses: addr(2) }]), 'BAD_ARGUMENT');
  refused(() => empty.initialize([{ group: 1, members: [1] }], [{ node: 1, addresses: { ...addr(1), client: 'nowhere' } }]), 'BAD_ARGUMENT');
});

test('the map keeps voters ascending, groups and nodes in id order', () => {
  const m = KeyMap.initial([{ group: 5, members: [9, 2, 4] }, { group: 2, members: [1] }], [{ node: 9, addresses: addr(1) }, { node: 2, addresses: addr(5) }]);
  assert.deepEqual(m.membersOf(5), [2, 4, 9]);
  assert.deepEqual(m.groups(), [2, 5]);
  assert.deepEqual(m.nodes(), [2, 9]);
  assert.equal(m.ownerOf(0), 5, 'the slots follow the order given');
  assert.equal(m.membersOf(77), undefined);
});

test('assigning slots gives them to a group; a missing group or a migrating slot is refused', () => {
  const m = threeGroups();
  const n = m.assignSlots(parseSlots('0-9,16383'), 3);
  assert.equal(n.version, m.version + 1);
  assert.equal(n.ownerOf(5), 3);
  assert.equal(n.ownerOf(16383), 3);
  assert.equal(n.ownerOf(10), 1);
  assert.equal(m.ownerOf(5), 1, 'the old map is as it was');
  refused(() => m.assignSlots(parseSlots('1'), 4), 'NO_SUCH_GROUP');
  refused(() => m.assignSlots([], 1), 'BAD_SLOTS');
  refused(() => m.assignSlots([{ first: 3, last: 1 }], 1), 'BAD_SLOTS');
  refused(() => m.assignSlots([{ first: 0, last: SLOT_COUNT }], 1), 'BAD_SLOTS');
  const moving = m.beginMigration(parseSlots('100-200'), 2);
  refused(() => moving.assignSlots(parseSlots('150'), 3), 'SLOT_MIGRATING');
  // An empty map's slots can be assigned a piece at a time; it is initialized once all are.
  let e = KeyMap.empty().addGroup(1, [1]);
  e = e.assignSlots(parseSlots('0-8191'), 1);
  assert.ok(!e.initialized);
  e = e.assignSlots(parseSlots('8192-16383'), 1);
  assert.ok(e.initialized);
});

test('a migration: begin (copying), cutover, finish moves the slots; abort leaves them', () => {
  const m = threeGroups();
  const b = m.beginMigration(parseSlots('5,9,100-200'), 2);
  assert.equal(b.version, m.version + 1);
  const [mig] = b.migrations();
  assert.deepEqual(mig, { id: b.version, slots: parseSlots('5,9,100-200'), from: 1, to: 2, state: 'copying' });
  assert.equal(b.ownerOf(100), 1, 'the source owns the slots until the end');
  assert.equal(b.migrationOf(150)?.id, mig!.id);
  assert.equal(b.migrationOf(6), undefined);
  refused(() => b.finishMigration(mig!.id), 'BAD_MIGRATION_STATE');
  const c = b.cutoverMigration(mig!.id);
  assert.equal(c.migration(mig!.id)?.state, 'cutover');
  assert.equal(c.ownerOf(100), 1);
  refused(() => c.cutoverMigration(mig!.id), 'BAD_MIGRATION_STATE');
  const f = c.finishMigration(mig!.id);
  assert.deepEqual(f.migrations(), []);
  for (const s of [5, 9, 100, 150, 200]) assert.equal(f.ownerOf(s), 2);
  for (const s of [4, 6, 99, 201]) assert.equal(f.ownerOf(s), 1);
  assert.equal(f.problem(), null);
  for (const at of [b, c]) {
    const a = at.abortMigration(mig!.id);
    assert.deepEqual(a.migrations(), []);
    assert.equal(a.ownerOf(150), 1);
    assert.equal(a.version, at.version + 1);
  }
  refused(() => f.finishMigration(mig!.id), 'NO_SUCH_MIGRATION');
  refused(() => f.abortMigration(mig!.id), 'NO_SUCH_MIGRATION');
  refused(() => f.cutoverMigration(12345), 'NO_SUCH_MIGRATION');
});

test('migration rules: target exists and differs, one owner, a slot in one migration, assigned slots', () => {
  const m = threeGroups();
  refused(() => m.beginMigration(parseSlots('0-10'), 9), 'NO_SUCH_GROUP');
  refused(() => m.beginMigration(parseSlots('0-10'), 1), 'SAME_GROUP');
  refused(() => m.beginMigration(parseSlots('5000-6000'), 3), 'MIXED_OWNERS');
  refused(() => m.beginMigration([], 2), 'BAD_SLOTS');
  const b = m.beginMigration(parseSlots('0-100'), 2);
  refused(() => b.beginMigration(parseSlots('100-200'), 3), 'SLOT_MIGRATING');
  refused(() => b.beginMigration(parseSlots('50'), 2), 'SLOT_MIGRATING');
  const two = b.beginMigration(parseSlots('101-200'), 3);
  assert.equal(two.migrations().length, 2);
  assert.equal(two.problem(), null);
  refused(() => KeyMap.empty().addGroup(1, [1]).addGroup(2, [1]).beginMigration(parseSlots('0'), 2), 'SLOT_UNASSIGNED');
  let many = KeyMap.initial([{ group: 1, members: [1] }, { group: 2, members: [1] }]);
  for (let i = 0; i < migrationsMax; i++) many = many.beginMigration([{ first: i, last: i }], 2);
  refused(() => many.beginMigration([{ first: 5000, last: 5000 }], 2), 'TOO_LARGE');
});

test('groups: add, remove when unused; members: add, remove, never the last', () => {
  const m = threeGroups();
  const a = m.addGroup(4, [3, 1]);
  assert.deepEqual(a.membersOf(4), [1, 3]);
  assert.deepEqual(a.slotsOf(4), []);
  refused(() => a.addGroup(4, [1]), 'GROUP_EXISTS');
  refused(() => a.addGroup(0, [1]), 'BAD_ARGUMENT');
  refused(() => a.addGroup(5, []), 'BAD_ARGUMENT');
  const r = a.removeGroup(4);
  assert.ok(!r.hasGroup(4));
  refused(() => r.removeGroup(4), 'NO_SUCH_GROUP');
  refused(() => m.removeGroup(1), 'GROUP_IN_USE');
  const target = a.beginMigration(parseSlots('0'), 4);
  refused(() => target.removeGroup(4), 'GROUP_IN_USE');
  assert.ok(target.abortMigration(target.version).removeGroup(4).problem() === null);

  const b = m.addMember(3, 2);
  assert.deepEqual(b.membersOf(3), [2, 3]);
  refused(() => b.addMember(3, 2), 'MEMBER_EXISTS');
  refused(() => b.addMember(9, 2), 'NO_SUCH_GROUP');
  refused(() => b.addMember(3, 0), 'BAD_ARGUMENT');
  assert.deepEqual(b.removeMember(3, 3).membersOf(3), [2]);
  refused(() => m.removeMember(3, 3), 'LAST_MEMBER');
  refused(() => m.removeMember(3, 1), 'NO_SUCH_MEMBER');
  refused(() => m.removeMember(9, 1), 'NO_SUCH_GROUP');
  let full = m;
  for (let n = 10; full.membersOf(3)!.length < membersPerGroupMax; n++) full = full.addMember(3, n);
  refused(() => full.addMember(3, 99), 'TOO_LARGE');
});

test('node addresses: set, replace, remove when no group uses the node; malformed ones refused', () => {
  const m = threeGroups();
  const s = m.setNodeAddresses(4, addr(8000));
  assert.deepEqual(s.addressesOf(4), addr(8000));
  assert.deepEqual(s.nodes(), [1, 2, 3, 4]);
  const t = s.setNodeAddresses(4, { raft: '[::1]:1', client: 'db-4.example:65535', admin: '10.1.2.3:9' });
  assert.equal(t.addressesOf(4)?.client, 'db-4.example:65535');
  assert.ok(!t.removeNode(4).nodes().includes(4));
  refused(() => m.removeNode(1), 'NODE_IN_USE');
  refused(() => m.removeNode(77), 'NO_SUCH_NODE');
  refused(() => m.setNodeAddresses(0, addr(1)), 'BAD_ARGUMENT');
  for (const bad of ['', 'host', 'host:', ':80', 'host:0', 'host:65536', 'host:080', 'ho st:80', '[1.2.3.4]:80', '::1:80', '-a:80', `${'a'.repeat(300)}:80`]) {
    assert.notEqual(addressProblem(bad), null, bad);
    refused(() => m.setNodeAddresses(4, { ...addr(1), admin: bad }), 'BAD_ARGUMENT');
  }
  for (const good of ['127.0.0.1:7001', 'localhost:1', '[::1]:7001', '[fe80::1:2]:80', 'a.b-c.d:65535']) assert.equal(addressProblem(good), null, good);
});

test('the image is compact: runs of slots, not one entry per slot', () => {
  const m = threeGroups();
  const image = encodeKeyMap(m);
  // 16 header + 2 + 3 runs × 6 + 4 + 3 groups × 5 + 7 voters × 4 + 4 + 3 nodes × (4 + 3 × (1 + 14)) + 4.
  assert.equal(image.length, 16 + 2 + 18 + 4 + 15 + 28 + 4 + 3 * 49 + 4);
  const many = KeyMap.initial(Array.from({ length: 64 }, (_, i) => ({ group: i + 1, members: [1] })));
  assert.equal(encodeKeyMap(many).length, 16 + 2 + 64 * 6 + 4 + 64 * 9 + 4 + 4, 'one run per group, not 16384 entries');
  assert.deepEqual([...image.subarray(0, 4)], [...KEY_MAP_MAGIC]);
  assert.ok(encodeKeyMap(KeyMap.empty()).length < 40);
  const big = KeyMap.initial(
    Array.from({ length: groupsMax }, (_, i) => ({ group: i + 1, members: Array.from({ length: membersPerGroupMax }, (_, j) => j + 1) })),
    Array.from({ length: 1024 }, (_, i) => ({ node: i + 1, addresses: { raft: `node-${i}.${'x'.repeat(230)}:1`, client: `[::1]:${i + 1}`, admin: `10.0.0.1:${i + 1}` } })),
  );
  const bigImage = encodeKeyMap(big);
  assert.ok(bigImage.length > 1_000_000 && bigImage.length < 4 * 1024 * 1024, `${bigImage.length} bytes`);
  assert.deepEqual(encodeKeyMap(decodeKeyMap(bigImage)), bigImage, 'a map at its bounds round-trips');
  assert.ok(decodeKeyMap(image).equals(m));
  assert.ok(decodeKeyMap(encodeKeyMap(KeyMap.empty())).equals(KeyMap.empty()));
});

function badMap(b: Uint8Array, why: string): void {
  assert.throws(() => decodeKeyMap(b), (e: unknown) => e instanceof KeyMapError && e.code === 'BAD_MAP', why);
}

test('decode refuses what is not exactly a map image', () => {
  const m = threeGroups().beginMigration(parseSlots('1-3'), 2);
  const image = encodeKeyMap(m);
  for (let n = 0; n < image.length; n++) badMap(image.subarray(0, n), `cut at ${n}`);
  badMap(Uint8Array.of(...image, 0), 'a byte after the end');
  const at = (i: number, v: number) => {
    const b = Uint8Array.from(image);
    b[i] = v;
    return b;
  };
  badMap(at(0, 0x58), 'magic');
  badMap(at(4, 2), 'format 2');
  badMap(at(6, 1), 'reserved bytes');
  const dv = new DataView(image.buffer, image.byteOffset);
  // Header is 16 bytes; then u16 run count and (u16 length, u32 group) runs: join two runs' owners.
  const twoSame = Uint8Array.from(image);
  new DataView(twoSame.buffer).setUint32(16 + 2 + 6 + 2, dv.getUint32(16 + 2 + 2, true), true);
  badMap(twoSame, 'adjacent runs with one owner');
  const ownerless = Uint8Array.from(image);
  new DataView(ownerless.buffer).setUint32(16 + 2 + 2, 99, true);
  badMap(ownerless, 'slots owned by a group the map does not hold');
  const version0 = Uint8Array.from(image);
  version0.fill(0, 8, 16);
  badMap(version0, 'version 0 with content');
  const huge = Uint8Array.from(image);
  new DataView(huge.buffer).setUint32(12, 0x20_0000, true);
  badMap(huge, 'a version above 2^53');
});

/** A random map reached by random operations from a random start. */
const mapArb: fc.Arbitrary<KeyMap> = fc
  .tuple(fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 6 })), fc.array(mapOpArb, { maxLength: 50, size: 'max' }))
  .map(([n, ops]) => {
    let m = n === 0 ? KeyMap.empty() : KeyMap.initial(Array.from({ length: n }, (_, i) => ({ group: i + 1, members: [1 + (i % 3)] })));
    for (const o of ops) {
      try {
        m = applyOp(m, o);
      } catch (e) {
        if (!(e instanceof KeyMapError)) throw e;
      }
    }
    return m;
  });

test('property: every operation keeps the rules or is refused with a code and changes nothing', () => {
  fc.assert(
    fc.property(fc.oneof(fc.constant(0), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 6 })), fc.array(mapOpArb, { minLength: 10, maxLength: 80, size: 'max' }), (n, ops) => {
      let m = n === 0 ? KeyMap.empty() : KeyMap.initial(Array.from({ length: n }, (_, i) => ({ group: i + 1, members: [1] })));
      for (const o of ops) {
        const before = encodeKeyMap(m);
        const wasInitialized = m.initialized;
        let next: KeyMap;
        try {
          next = applyOp(m, o);
        } catch (e) {
          assert.ok(e instanceof KeyMapError, String(e));
          assert.deepEqual(encodeKeyMap(m), before, 'a refused operation leaves the map as it was');
          continue;
        }
        assert.equal(next.version, m.version + 1, o.op);
        assert.equal(next.problem(), null, o.op);
        if (wasInitialized) assert.ok(next.initialized, `${o.op} unassigned a slot`);
        if (next.initialized) {
          for (let s = 0; s < SLOT_COUNT; s += 97) assert.ok(next.hasGroup(next.ownerOf(s)));
        }
        for (const mig of next.migrations()) for (const r of mig.slots) assert.equal(next.ownerOf(r.first), mig.from);
        m = next;
      }
    }),
    params(300),
  );
});

test('property: decode(encode(map)) is the map, and its image is canonical', () => {
  fc.assert(
    fc.property(mapArb, (m) => {
      const image = encodeKeyMap(m);
      const back = decodeKeyMap(image);
      assert.deepEqual(encodeKeyMap(back), image);
      assert.equal(back.version, m.version);
      assert.deepEqual(back.ownerRuns(), m.ownerRuns());
      assert.deepEqual(back.migrations(), m.migrations());
      assert.deepEqual(back.groups().map((g) => back.membersOf(g)), m.groups().map((g) => m.membersOf(g)));
      assert.deepEqual(back.nodes().map((n) => back.addressesOf(n)), m.nodes().map((n) => m.addressesOf(n)));
      assert.deepEqual(keyMapJson(back), keyMapJson(m));
    }),
    params(200),
  );
});

test('property: a changed image is refused BAD_MAP or read as a map that re-encodes to it', () => {
  fc.assert(
    fc.property(mapArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (m, edits) => {
      const b = encodeKeyMap(m);
      for (const [at, v] of edits) b[at % b.length] = v;
      let back: KeyMap;
      try {
        back = decodeKeyMap(b);
      } catch (e) {
        assert.ok(e instanceof KeyMapError && e.code === 'BAD_MAP', String(e));
        return;
      }
      assert.equal(back.problem(), null);
      assert.deepEqual(encodeKeyMap(back), b);
    }),
    params(500),
  );
});

test('the JSON form lists runs, groups with their slots, nodes and migrations', () => {
  const m = threeGroups().beginMigration(parseSlots('5,9'), 3);
  const j = keyMapJson(m);
  assert.equal(j.version, m.version);
  assert.equal(j.initialized, true);
  assert.deepEqual(j.slots, [{ slots: '0-5461', group: 1 }, { slots: '5462-10922', group: 2 }, { slots: '10923-16383', group: 3 }]);
  assert.deepEqual(j.groups[0], { group: 1, members: [1, 2, 3], slots: '0-5461', slotCount: 5462 });
  assert.deepEqual(j.nodes[0], { node: 1, raft: '127.0.0.1:7001', client: '127.0.0.1:7002', admin: '127.0.0.1:7003' });
  assert.deepEqual(j.migrations, [{ id: m.version, slots: '5,9', from: 1, to: 3, state: 'copying' }]);
  assert.equal(j.groups.reduce((n, g) => n + g.slotCount, 0), SLOT_COUNT);
  assert.equal(slotCount(parseSlots(j.groups[2]!.slots)), 5461);
  assert.deepEqual(JSON.parse(JSON.stringify(j)), j);
});
