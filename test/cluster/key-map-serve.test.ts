// The key map on real nodes (issue 15): the meta group comes up on a new cluster, its leader
// initializes the map (version 1, slots spread over groups 1..G), every node serves the same
// image (the meta members from their replicas, node 4 from polling one), and the map survives
// a restart of every node.
import { test } from 'node:test';
import { pack } from 'msgpackr';
import assert from 'node:assert/strict';
import { Dispatcher } from '../../src/client/dispatcher.js';
import { fetchMap } from '../../src/client/map-fetch.js';
import { SLOT_COUNT, slotOf } from '../../src/cluster/slots.js';
import { META_GROUP } from '../../src/cluster/meta-group.js';
import { FlotillaError } from '../../src/client/errors.js';
import { FrameFlag, FrameKind } from '../../src/protocol/client-frame.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import type { KvCommand } from '../../src/kv/kv-types.js';
import type { KeyMap } from '../../src/cluster/key-map.js';
import { startCluster, waitFor, type TestCluster } from './cluster-harness.js';

const GROUPS = 4;

function dispatcher(servers: string[]): Dispatcher {
  return new Dispatcher({
    servers, requestTimeoutMs: 5000, attemptTimeoutMs: 1000, connectTimeoutMs: 1000, inflightMax: 16, queuedMax: 16,
    redirectsMax: 5, retriesMax: 8, backoffMsMin: 10, backoffMsMax: 100, downMs: 200, frameBytesMax: 1 << 24,
  });
}

/** Every node's map, once each holds version ≥ 1. */
async function mapsOf(cluster: TestCluster, d: Dispatcher): Promise<Map<number, KeyMap>> {
  const maps = new Map<number, KeyMap>();
  await waitFor(async () => {
    for (const n of cluster.nodes.values()) {
      const got = await fetchMap(d, `127.0.0.1:${n.clientPort}`, null).catch(() => null);
      if (got === null || got.map === null || got.version < 1) return false;
      maps.set(n.id, got.map);
    }
    return true;
  }, 30_000, 'every node to serve a map of version 1');
  return maps;
}

test('a new cluster initializes its key map once; every node serves it; it survives a restart of all nodes', { timeout: 180_000 }, async () => {
  const cluster = await startCluster({ nodes: 4, groups: GROUPS });
  const d = dispatcher(cluster.servers());
  try {
    const maps = await mapsOf(cluster, d);
    const first = maps.get(1)!;
    assert.equal(first.version, 1, 'initialize made version 1, and nothing else changed the map');
    assert.deepEqual(first.groups().sort((a, b) => a - b), [1, 2, 3, 4]);
    for (let g = 1; g <= GROUPS; g++) assert.deepEqual([...first.membersOf(g)!], [1, 2, 3, 4]);
    const owners = new Set<number>();
    for (let s = 0; s < SLOT_COUNT; s++) owners.add(first.ownerOf(s));
    assert.deepEqual([...owners].sort(), [1, 2, 3, 4], 'every slot is owned by a data group');
    assert.deepEqual(first.slotsOf(1), [{ first: 0, last: 4095 }]);
    for (const n of cluster.nodes.values()) {
      assert.deepEqual(first.addressesOf(n.id), {
        raft: `127.0.0.1:${n.raftPort}`, client: `127.0.0.1:${n.clientPort}`, admin: `127.0.0.1:${n.adminPort}`,
      });
    }
    // Node 4 hosts no meta replica (the lowest three ids do) and learned the map by polling.
    for (const [id, m] of maps) assert.deepEqual(m.encode(), first.encode(), `node ${id} serves the same image`);
    const metaHosts = [];
    for (const id of [1, 2, 3, 4]) {
      if ((await cluster.status(id)).some((g) => g.group === 0xfffffffe)) metaHosts.push(id);
    }
    assert.deepEqual(metaHosts, [1, 2, 3]);

    // Every node down (SIGKILL), then up again: the map is the meta group's replicated state.
    for (const id of [1, 2, 3, 4]) cluster.kill(id);
    for (const id of [1, 2, 3, 4]) await cluster.restart(id);
    const again = await mapsOf(cluster, d);
    for (const [id, m] of again) assert.deepEqual(m.encode(), first.encode(), `node ${id} serves the map of before the restart`);
  } finally {
    await d.close();
    await cluster.stop();
  }
});

test('a command for a key another group owns is answered WRONG_GROUP with the owner and version, and not applied', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: GROUPS });
  const d = dispatcher(cluster.servers());
  try {
    await mapsOf(cluster, d);
    const write = { read: false, resend: false, learn: true, copy: true, pinned: null };
    const read = { read: true, resend: false, learn: true, copy: true, pinned: null };
    const send = (group: number, cmd: KvCommand, flags = 0) =>
      d.request(FrameKind.Command, flags, group, encodeCommand(cmd), flags === 0 ? write : read);
    const wrong = async (group: number, cmd: KvCommand, owner: number, flags = 0): Promise<void> => {
      await assert.rejects(send(group, cmd, flags), (e: unknown) => {
        assert.ok(e instanceof FlotillaError);
        assert.equal(e.code, 'WRONG_GROUP', e.message);
        assert.equal(e.wrongGroup?.version, 1);
        assert.equal(e.wrongGroup?.group, owner);
        return true;
      });
    };
    // Slots: hello 866 (group 1), bar 5061 (group 2), foo 12182 (group 3); 4,096 slots a group.
    assert.deepEqual([slotOf('hello'), slotOf('bar'), slotOf('foo')], [866, 5061, 12182]);
    await send(3, { op: 'put', key: 'foo', value: 'right' });
    await wrong(1, { op: 'put', key: 'foo', value: 'wrong' }, 3);
    await wrong(1, { op: 'get', key: 'foo' }, 3, FrameFlag.Read);
    await wrong(1, { op: 'get', key: 'foo' }, 3, FrameFlag.Read | FrameFlag.Stale);
    await wrong(2, { op: 'delete', key: 'foo' }, 3);
    await wrong(1, { op: 'cas', key: 'foo', expect: 'right', value: 'wrong' }, 3);
    // A batch: every key must be the group's; the first that is not names its owner.
    await wrong(3, { op: 'batch', ops: [{ op: 'put', key: 'foo', value: 'wrong' }, { op: 'put', key: 'bar', value: 'x' }] }, 2);
    // Hash tags put related keys in one slot on purpose: such a batch is served.
    const tagged = await send(1, { op: 'batch', ops: [{ op: 'put', key: '{hello}.a', value: '1' }, { op: 'put', key: '{hello}.b', value: '2' }] });
    assert.equal(decodeKvResult(tagged).op, 'batch');
    // Nothing of the refused commands was applied, and the node keeps serving.
    const got = decodeKvResult(await send(3, { op: 'get', key: 'foo' }, FrameFlag.Read));
    assert.deepEqual(got, { op: 'get', value: 'right' });
    const batch = decodeKvResult(await send(1, { op: 'batch', ops: [{ op: 'get', key: '{hello}.a' }, { op: 'get', key: '{hello}.b' }] }, FrameFlag.Read));
    assert.deepEqual(batch, { op: 'batch', ok: true, results: [{ op: 'get', value: '1' }, { op: 'get', value: '2' }] });

    // A bad MapRequest is refused BAD_REQUEST, and the connection goes on serving.
    const server = cluster.servers()[0]!;
    const pinned = { read: true, resend: false, learn: false, copy: true, pinned: server };
    await assert.rejects(d.request(FrameKind.MapRequest, 0, 0, new Uint8Array(3), pinned), /BAD_REQUEST|empty or a u64/);
    await assert.rejects(d.request(FrameKind.MapRequest, 0, 7, new Uint8Array(0), pinned), (e: unknown) => e instanceof FlotillaError && e.code === 'BAD_REQUEST');
    const big = new Uint8Array(8).fill(0xff);
    await assert.rejects(d.request(FrameKind.MapRequest, 0, 0, big, pinned), /below 2\^53/);
    const current = await fetchMap(d, server, 1);
    assert.equal(current.map, null, 'a client that holds the current version is told so');
    assert.equal(current.version, 1);
    // The meta group takes no client commands, and its members are not changed by hand.
    await assert.rejects(send(META_GROUP, { op: 'get', key: 'foo' }, FrameFlag.Read), (e: unknown) => e instanceof FlotillaError && e.code === 'BAD_REQUEST');
    for (const op of [{ op: 'removeMember', node: 1 }, { op: 'addMember', node: 2, learner: true }, { op: 'promote', node: 3 }]) {
      await assert.rejects(d.request(FrameKind.Admin, 0, META_GROUP, pack(op) as Uint8Array, pinned), (e: unknown) => e instanceof FlotillaError && e.code === 'RESERVED_GROUP', op.op);
    }
  } finally {
    await d.close();
    await cluster.stop();
  }
});
