// The meta group's state machine: its command layout, every command's success and refusal,
// the version compare-and-set, queries, snapshots, and determinism (replicas fed the same
// commands, or restored from one's image, give byte-equal images).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KeyMap, KeyMapError, decodeKeyMap, type NodeAddresses } from '../../src/cluster/key-map.js';
import { MapBytesError } from '../../src/cluster/map-bytes.js';
import {
  decodeMetaCommand,
  decodeMetaQuery,
  decodeMetaResult,
  decodeOwnerAnswer,
  decodeVersionAnswer,
  encodeMetaCommand,
  encodeMetaQuery,
  encodeMetaResult,
  metaCommandBytesMax,
  metaMessageBytesMax,
  type MetaCommand,
  type MetaErrorCode,
  type MetaResult,
} from '../../src/cluster/meta-command.js';
import { MetaStateMachine, createMetaStateMachine } from '../../src/cluster/meta-state-machine.js';
import { parseSlots } from '../../src/cluster/slots.js';
import { params } from '../fuzz/fuzz-config.js';
import { commandOf, mapOpArb } from './map-ops.js';

const addr = (port: number): NodeAddresses => ({ raft: `127.0.0.1:${port}`, client: `127.0.0.1:${port + 1}`, admin: `127.0.0.1:${port + 2}` });

let index = 0;
function run(sm: MetaStateMachine, c: MetaCommand): MetaResult {
  return decodeMetaResult(sm.apply(encodeMetaCommand(c), ++index));
}

function ok(sm: MetaStateMachine, c: MetaCommand): number {
  const before = sm.map.version;
  const r = run(sm, c);
  assert.deepEqual(r, { ok: true, version: before + 1 }, `${c.op}: ${JSON.stringify(r)}`);
  return r.version;
}

function refused(sm: MetaStateMachine, c: MetaCommand, code: MetaErrorCode): void {
  const before = sm.snapshot();
  const r = run(sm, c);
  assert.equal(r.ok, false, c.op);
  if (r.ok) return;
  assert.equal(r.code, code, `${c.op}: ${r.message}`);
  assert.ok(r.message.length > 0);
  assert.equal(r.version, sm.map.version);
  assert.deepEqual(sm.snapshot(), before, 'a refused command changes nothing');
}

/** A meta state machine with groups 1-3 over nodes 1-3. */
function started(): MetaStateMachine {
  const sm = new MetaStateMachine();
  ok(sm, {
    op: 'initialize',
    expect: 0,
    groups: [{ group: 1, members: [1, 2, 3] }, { group: 2, members: [1, 2, 3] }, { group: 3, members: [3] }],
    nodes: [1, 2, 3].map((n) => ({ node: n, addresses: addr(7000 + 10 * n) })),
  });
  return sm;
}

test('every command kind round-trips through its layout', () => {
  const cmds: MetaCommand[] = [
    { op: 'initialize', expect: 0, groups: [{ group: 1, members: [1, 2] }, { group: 2 ** 32 - 1, members: [] }], nodes: [{ node: 7, addresses: addr(1) }] },
    { op: 'initialize', expect: 5, groups: [], nodes: [] },
    { op: 'assign-slots', expect: 3, group: 2, slots: parseSlots('0-10,99') },
    { op: 'begin-migration', expect: Number.MAX_SAFE_INTEGER, to: 4, slots: parseSlots('16383') },
    { op: 'cutover-migration', expect: 1, id: 2 ** 40 },
    { op: 'finish-migration', expect: 1, id: 2 },
    { op: 'abort-migration', expect: 1, id: 3 },
    { op: 'add-group', expect: 9, group: 8, members: [3, 1] },
    { op: 'remove-group', expect: 9, group: 8 },
    { op: 'add-member', expect: 9, group: 8, node: 4 },
    { op: 'remove-member', expect: 9, group: 8, node: 4 },
    { op: 'set-node-addresses', expect: 9, node: 4, addresses: { raft: '[::1]:1', client: 'é:2', admin: '' } },
    { op: 'remove-node', expect: 9, node: 4 },
  ];
  for (const c of cmds) assert.deepEqual(decodeMetaCommand(encodeMetaCommand(c)), c, c.op);
  assert.throws(() => encodeMetaCommand({ op: 'remove-node', expect: -1, node: 1 }), (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_COMMAND');
  assert.throws(() => encodeMetaCommand({ op: 'remove-node', expect: 1, node: 2 ** 32 }), (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_COMMAND');
  assert.throws(() => encodeMetaCommand({ op: 'assign-slots', expect: 1, group: 1, slots: [{ first: 5, last: 1 }] }), (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_COMMAND');
  // Ranges are written canonical: 0-5 and 6-9 are sent as 0-9.
  const c = decodeMetaCommand(encodeMetaCommand({ op: 'assign-slots', expect: 1, group: 1, slots: [{ first: 6, last: 9 }, { first: 0, last: 5 }] }));
  assert.deepEqual(c, { op: 'assign-slots', expect: 1, group: 1, slots: [{ first: 0, last: 9 }] });
});

test('results round-trip, and a long message is cut to its bound', () => {
  const rs: MetaResult[] = [{ ok: true, version: 0 }, { ok: true, version: 2 ** 50 }, { ok: false, version: 7, code: 'SLOT_MIGRATING', message: 'slot 5 is moving ✈' }];
  for (const r of rs) assert.deepEqual(decodeMetaResult(encodeMetaResult(r)), r);
  const long = decodeMetaResult(encodeMetaResult({ ok: false, version: 1, code: 'BAD_COMMAND', message: '€'.repeat(2000) }));
  assert.ok(!long.ok && long.message === '€'.repeat(Math.floor(metaMessageBytesMax / 3)));
  assert.throws(() => decodeMetaResult(Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 0)), (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_RESULT');
  assert.throws(() => decodeMetaResult(Uint8Array.of(0, 0, 0)), (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_RESULT');
});

test('initialize sets up a new cluster once; its refusals have codes', () => {
  const sm = new MetaStateMachine();
  assert.equal(sm.map.version, 0);
  refused(sm, { op: 'initialize', expect: 0, groups: [], nodes: [] }, 'BAD_ARGUMENT');
  refused(sm, { op: 'initialize', expect: 0, groups: [{ group: 1, members: [] }], nodes: [] }, 'BAD_ARGUMENT');
  refused(sm, { op: 'initialize', expect: 0, groups: [{ group: 1, members: [1] }, { group: 1, members: [1] }], nodes: [] }, 'GROUP_EXISTS');
  refused(sm, { op: 'initialize', expect: 0, groups: [{ group: 1, members: [1] }], nodes: [{ node: 1, addresses: { ...addr(1), raft: 'x' } }] }, 'BAD_ARGUMENT');
  const s = started();
  assert.ok(s.map.initialized);
  assert.deepEqual(s.map.groups(), [1, 2, 3]);
  assert.deepEqual(s.map.addressesOf(2), addr(7020));
  refused(s, { op: 'initialize', expect: 1, groups: [{ group: 9, members: [1] }], nodes: [] }, 'ALREADY_INITIALIZED');
});

test('a command that expects another version is answered VERSION_MISMATCH and changes nothing', () => {
  const sm = started();
  refused(sm, { op: 'add-group', expect: 0, group: 4, members: [1] }, 'VERSION_MISMATCH');
  refused(sm, { op: 'add-group', expect: 2, group: 4, members: [1] }, 'VERSION_MISMATCH');
  const r = run(sm, { op: 'remove-group', expect: 99, group: 1 });
  assert.ok(!r.ok && r.code === 'VERSION_MISMATCH' && r.version === 1, 'the current version comes back, to re-read from');
  // Of two writers that read version 1, the first wins and the second must re-read.
  ok(sm, { op: 'add-group', expect: 1, group: 4, members: [1] });
  refused(sm, { op: 'add-group', expect: 1, group: 5, members: [1] }, 'VERSION_MISMATCH');
  ok(sm, { op: 'add-group', expect: 2, group: 5, members: [1] });
  // The version check comes before the rules: a stale command is a mismatch even when the rules would refuse it too.
  refused(sm, { op: 'remove-group', expect: 1, group: 77 }, 'VERSION_MISMATCH');
  refused(new MetaStateMachine(), { op: 'initialize', expect: 1, groups: [{ group: 1, members: [1] }], nodes: [] }, 'VERSION_MISMATCH');
});

test('assign-slots: success, missing group, migrating slots', () => {
  const sm = started();
  ok(sm, { op: 'assign-slots', expect: 1, group: 3, slots: parseSlots('0-99') });
  assert.equal(sm.map.ownerOf(50), 3);
  refused(sm, { op: 'assign-slots', expect: 2, group: 9, slots: parseSlots('0') }, 'NO_SUCH_GROUP');
  ok(sm, { op: 'begin-migration', expect: 2, to: 1, slots: parseSlots('10-20') });
  refused(sm, { op: 'assign-slots', expect: 3, group: 2, slots: parseSlots('15') }, 'SLOT_MIGRATING');
});

test('a migration through the meta group: begin, cutover, finish; and abort', () => {
  const sm = started();
  const id = ok(sm, { op: 'begin-migration', expect: 1, to: 2, slots: parseSlots('5,9,100-200') });
  assert.equal(id, 2, 'the new version is the migration id');
  const owner = (slot: number) => decodeOwnerAnswer(sm.query(encodeMetaQuery({ q: 'owner', slot })));
  assert.deepEqual(owner(150), { version: 2, group: 1, migration: { id, to: 2, state: 'copying' } });
  refused(sm, { op: 'finish-migration', expect: 2, id }, 'BAD_MIGRATION_STATE');
  ok(sm, { op: 'cutover-migration', expect: 2, id });
  refused(sm, { op: 'cutover-migration', expect: 3, id }, 'BAD_MIGRATION_STATE');
  assert.deepEqual(owner(9), { version: 3, group: 1, migration: { id, to: 2, state: 'cutover' } });
  ok(sm, { op: 'finish-migration', expect: 3, id });
  assert.deepEqual(owner(9), { version: 4, group: 2, migration: null });
  refused(sm, { op: 'finish-migration', expect: 4, id }, 'NO_SUCH_MIGRATION');
  refused(sm, { op: 'abort-migration', expect: 4, id }, 'NO_SUCH_MIGRATION');
  refused(sm, { op: 'cutover-migration', expect: 4, id: 77 }, 'NO_SUCH_MIGRATION');

  const id2 = ok(sm, { op: 'begin-migration', expect: 4, to: 3, slots: parseSlots('0-4') });
  ok(sm, { op: 'abort-migration', expect: 5, id: id2 });
  assert.deepEqual(owner(0), { version: 6, group: 1, migration: null });
});

test('begin-migration refusals: missing or same target, mixed owners, overlap, no slots', () => {
  const sm = started();
  refused(sm, { op: 'begin-migration', expect: 1, to: 9, slots: parseSlots('0-10') }, 'NO_SUCH_GROUP');
  refused(sm, { op: 'begin-migration', expect: 1, to: 1, slots: parseSlots('0-10') }, 'SAME_GROUP');
  refused(sm, { op: 'begin-migration', expect: 1, to: 3, slots: parseSlots('5000-6000') }, 'MIXED_OWNERS');
  ok(sm, { op: 'begin-migration', expect: 1, to: 2, slots: parseSlots('0-100') });
  refused(sm, { op: 'begin-migration', expect: 2, to: 3, slots: parseSlots('100-200') }, 'SLOT_MIGRATING');
  // No slots at all cannot even be encoded canonically as a set; hand-made bytes are BAD_COMMAND.
  const noSlots = Uint8Array.of(3, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0);
  const r = decodeMetaResult(sm.apply(noSlots, ++index));
  assert.ok(!r.ok && r.code === 'BAD_COMMAND');
  const unassigned = new MetaStateMachine();
  ok(unassigned, { op: 'add-group', expect: 0, group: 1, members: [1] });
  ok(unassigned, { op: 'add-group', expect: 1, group: 2, members: [1] });
  refused(unassigned, { op: 'begin-migration', expect: 2, to: 2, slots: parseSlots('0') }, 'SLOT_UNASSIGNED');
});

test('groups and members through the meta group', () => {
  const sm = started();
  ok(sm, { op: 'add-group', expect: 1, group: 4, members: [2] });
  refused(sm, { op: 'add-group', expect: 2, group: 4, members: [1] }, 'GROUP_EXISTS');
  refused(sm, { op: 'add-group', expect: 2, group: 0, members: [1] }, 'BAD_ARGUMENT');
  refused(sm, { op: 'add-group', expect: 2, group: 5, members: Array.from({ length: 16 }, (_, i) => i + 1) }, 'TOO_LARGE');
  ok(sm, { op: 'add-member', expect: 2, group: 4, node: 3 });
  refused(sm, { op: 'add-member', expect: 3, group: 4, node: 3 }, 'MEMBER_EXISTS');
  refused(sm, { op: 'add-member', expect: 3, group: 9, node: 3 }, 'NO_SUCH_GROUP');
  ok(sm, { op: 'remove-member', expect: 3, group: 4, node: 2 });
  assert.deepEqual(sm.map.membersOf(4), [3]);
  refused(sm, { op: 'remove-member', expect: 4, group: 4, node: 3 }, 'LAST_MEMBER');
  refused(sm, { op: 'remove-member', expect: 4, group: 4, node: 2 }, 'NO_SUCH_MEMBER');
  refused(sm, { op: 'remove-group', expect: 4, group: 1 }, 'GROUP_IN_USE');
  ok(sm, { op: 'remove-group', expect: 4, group: 4 });
  refused(sm, { op: 'remove-group', expect: 5, group: 4 }, 'NO_SUCH_GROUP');
});

test('node addresses through the meta group', () => {
  const sm = started();
  ok(sm, { op: 'set-node-addresses', expect: 1, node: 9, addresses: addr(9000) });
  ok(sm, { op: 'set-node-addresses', expect: 2, node: 9, addresses: addr(9100) });
  assert.deepEqual(sm.map.addressesOf(9), addr(9100));
  refused(sm, { op: 'set-node-addresses', expect: 3, node: 9, addresses: { ...addr(1), client: '127.0.0.1:0' } }, 'BAD_ARGUMENT');
  refused(sm, { op: 'set-node-addresses', expect: 3, node: 0, addresses: addr(1) }, 'BAD_ARGUMENT');
  refused(sm, { op: 'remove-node', expect: 3, node: 1 }, 'NODE_IN_USE');
  ok(sm, { op: 'remove-node', expect: 3, node: 9 });
  refused(sm, { op: 'remove-node', expect: 4, node: 9 }, 'NO_SUCH_NODE');
});

test('malformed commands are BAD_COMMAND results, never exceptions; an empty one is a no-op', () => {
  const sm = started();
  const image = sm.snapshot();
  const good = encodeMetaCommand({ op: 'add-member', expect: 1, group: 3, node: 1 });
  const bads = [
    Uint8Array.of(0),
    Uint8Array.of(13, 1, 0, 0, 0, 0, 0, 0, 0),
    good.subarray(0, good.length - 1),
    Uint8Array.of(...good, 0),
    Uint8Array.of(4, 1, 0, 0, 0, 0, 0, 0xff, 0xff), // a u64 past 2^53
    Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), // four billion groups in four bytes
  ];
  for (const b of bads) {
    const r = decodeMetaResult(sm.apply(b, ++index));
    assert.ok(!r.ok && r.code === 'BAD_COMMAND' && r.version === 1, JSON.stringify(r));
  }
  assert.deepEqual(sm.snapshot(), image);
  assert.deepEqual(decodeMetaResult(sm.apply(new Uint8Array(0), ++index)), { ok: true, version: 1 });
  assert.deepEqual(sm.snapshot(), image);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }).map((b) => (b.length > 0 ? ((b[0] = 1 + (b[0]! % 13)), b) : b)), (b) => {
      const r = decodeMetaResult(sm.apply(b, ++index));
      assert.ok(r.ok ? r.version >= 1 : r.code.length > 0);
    }),
    params(1000),
  );
});

test('admit refuses a command over the size bound', () => {
  const sm = new MetaStateMachine();
  assert.equal(sm.admit(new Uint8Array(100)), null);
  assert.match(sm.admit(new Uint8Array(metaCommandBytesMax + 1)) ?? '', /more than/);
});

test('queries: the whole map, the owner of a slot, the version; bad queries throw BAD_QUERY', () => {
  const sm = started();
  const map = decodeKeyMap(sm.query(encodeMetaQuery({ q: 'map' })));
  assert.ok(map.equals(sm.map));
  assert.equal(decodeVersionAnswer(sm.query(encodeMetaQuery({ q: 'version' }))), 1);
  assert.deepEqual(decodeOwnerAnswer(sm.query(encodeMetaQuery({ q: 'owner', slot: 16383 }))), { version: 1, group: 3, migration: null });
  assert.deepEqual(decodeOwnerAnswer(new MetaStateMachine().query(encodeMetaQuery({ q: 'owner', slot: 0 }))), { version: 0, group: 0, migration: null });
  for (const q of [{ q: 'map' }, { q: 'version' }, { q: 'owner', slot: 7 }] as const) assert.deepEqual(decodeMetaQuery(encodeMetaQuery(q)), q);
  const badQuery = (e: unknown) => e instanceof MapBytesError && e.code === 'BAD_QUERY';
  assert.throws(() => sm.query(new Uint8Array(0)), badQuery);
  assert.throws(() => sm.query(Uint8Array.of(9)), badQuery);
  assert.throws(() => sm.query(Uint8Array.of(1, 0)), badQuery);
  assert.throws(() => sm.query(Uint8Array.of(2, 0)), badQuery);
  assert.throws(() => sm.query(encodeMetaQuery({ q: 'owner', slot: 16384 })), badQuery);
});

test('snapshot and restore: byte-equal images; a bad image is refused BAD_MAP', () => {
  const sm = started();
  ok(sm, { op: 'begin-migration', expect: 1, to: 3, slots: parseSlots('1-9') });
  const image = sm.snapshot();
  const other = createMetaStateMachine();
  other.restore(image);
  assert.deepEqual(other.snapshot(), image);
  assert.deepEqual(other.query(encodeMetaQuery({ q: 'map' })), image);
  const bad = Uint8Array.from(image);
  bad[0] = 0;
  assert.throws(() => other.restore(bad), (e: unknown) => e instanceof KeyMapError && e.code === 'BAD_MAP');
  assert.deepEqual(other.snapshot(), image, 'a refused image leaves the state as it was');
  other.restore(KeyMap.empty().encode());
  assert.equal((other as MetaStateMachine).map.version, 0);
});

/** Commands for a run: random operations as commands expecting the right version, a stale one, or noise. */
const stepArb = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('op' as const), op: mapOpArb, stale: fc.integer({ min: 0, max: 9 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('noise' as const), bytes: fc.uint8Array({ maxLength: 40 }) }) },
);

test('property: replicas fed the same commands give the same results and byte-equal images; a restored one catches up', () => {
  fc.assert(
    fc.property(fc.array(stepArb, { minLength: 10, maxLength: 80, size: 'max' }), fc.nat(), (steps, cutAt) => {
      const a = started();
      const b = started();
      const cut = cutAt % steps.length;
      let c: MetaStateMachine | null = null;
      let changes = 0;
      steps.forEach((s, i) => {
        if (i === cut) {
          c = new MetaStateMachine();
          c.restore(a.snapshot());
        }
        let bytes: Uint8Array;
        if (s.kind === 'noise') bytes = s.bytes;
        else {
          // One command in ten expects a version other than the map's.
          const expect = s.stale === 0 ? Math.max(0, a.map.version - 1 - (i % 3)) : a.map.version;
          bytes = encodeMetaCommand(commandOf(a.map, s.op, expect));
        }
        const before = a.map.version;
        const ra = a.apply(bytes, i);
        const rb = b.apply(Uint8Array.from(bytes), i);
        assert.deepEqual(ra, rb);
        if (c !== null) assert.deepEqual((c as MetaStateMachine).apply(bytes, i), ra);
        const r = decodeMetaResult(ra);
        assert.equal(r.version, a.map.version);
        const changed = r.ok && bytes.length > 0; // an empty command is a no-op that answers ok
        assert.equal(a.map.version, changed ? before + 1 : before, 'a change is exactly one version');
        if (changed) changes++;
        if (s.kind === 'op' && s.stale === 0 && before - 1 - (i % 3) >= 0) assert.ok(!r.ok && r.code === 'VERSION_MISMATCH');
        assert.equal(a.map.problem(), null);
      });
      assert.deepEqual(a.snapshot(), b.snapshot());
      assert.deepEqual((c as MetaStateMachine | null)?.snapshot(), a.snapshot());
      assert.equal(a.map.version, 1 + changes);
    }),
    params(150),
  );
});
