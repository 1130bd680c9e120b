// The key map on real nodes (issue 15): the meta group comes up on a new cluster, its leader
// initializes the map (version 1, slots spread over groups 1..G), every node serves the same
// image (the meta members from their replicas, node 4 from polling one), and the map survives
// a restart of every node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher } from '../../src/client/dispatcher.js';
import { fetchMap } from '../../src/client/map-fetch.js';
import { SLOT_COUNT } from '../../src/cluster/slots.js';
import type { KeyMap } from '../../src/cluster/key-map.js';
import { startCluster, waitFor, type TestCluster } from './cluster-harness.js';

const GROUPS = 4;

function dispatcher(servers: string[]): Dispatcher {
  return new Dispatcher({
    servers, requestTimeoutMs: 5000, attemptTimeoutMs: 1000, connectTimeoutMs: 1000, inflightMax: 16, queuedMax: 16,
    redirectsMax: 0, retriesMax: 2, backoffMsMin: 10, backoffMsMax: 100, downMs: 200, frameBytesMax: 1 << 24,
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
