// Discovery (issue 15): `flotilla kv` and the client library against a 3-node cluster of 16
// groups, given seed addresses only, no group count: every key lands in the group that owns its
// slot, and none fails with NO_GROUP (as three keys in four did with FNV over a default of 64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { runCli, startCluster } from './cluster-harness.js';

const GROUPS = 16;

const cli = runCli;

test('kv put/get and the client route by the cluster\'s map with seeds only, over all 16 groups', { timeout: 180_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: GROUPS });
  // One seed: the client finds the other nodes in the map.
  const client = await FlotillaClient.connect({ servers: [cluster.servers()[1]!] });
  try {
    assert.equal(client.mapVersion, 1);
    // One key per group, found through the live map.
    const keys = new Map<number, string>();
    for (let i = 0; keys.size < GROUPS; i++) {
      const g = client.groupOf(`key-${i}`);
      assert.ok(g >= 1 && g <= GROUPS, `group ${g}`);
      if (!keys.has(g)) keys.set(g, `key-${i}`);
    }
    // `flotilla kv`, a seed in FLOTILLA_SERVERS, no --groups: four at a time.
    const env = { FLOTILLA_SERVERS: cluster.servers()[0]! };
    const entries = [...keys.entries()];
    for (let i = 0; i < entries.length; i += 4) {
      await Promise.all(entries.slice(i, i + 4).map(async ([g, key]) => {
        const put = await cli(['kv', 'put', key, `v-${g}`], env);
        assert.equal(put.status, 0, `put ${key} (group ${g}): ${put.stderr}`);
        assert.equal(put.stdout, 'OK\n');
      }));
    }
    for (let i = 0; i < entries.length; i += 4) {
      await Promise.all(entries.slice(i, i + 4).map(async ([g, key]) => {
        const get = await cli(['kv', 'get', key, '--json'], env);
        assert.equal(get.status, 0, `get ${key} (group ${g}): ${get.stderr}`);
        assert.deepEqual(JSON.parse(get.stdout), { key, found: true, value: `v-${g}` });
      }));
    }
    // --groups is no flag of kv any more.
    const flag = await cli(['kv', 'get', 'x', '--groups', '16'], env);
    assert.notEqual(flag.status, 0);
    assert.match(flag.stderr, /groups/);

    // The library: many keys, each read back through the group of its slot.
    const n = 300;
    await Promise.all(Array.from({ length: n }, (_, i) => client.put(`many-${i}`, `${i}`)));
    const got = await Promise.all(Array.from({ length: n }, (_, i) => client.get(`many-${i}`)));
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => `${i}`));
    for (const [g, key] of keys) assert.equal(await client.get(key, { stale: true }).then(() => client.groupOf(key)), g);
    // A batch in one slot, by hash tag.
    const b = await client.batch([{ op: 'put', key: '{cart:7}.items', value: '3' }, { op: 'put', key: '{cart:7}.total', value: '12' }]);
    assert.equal(b.ok, true);
    assert.equal(client.slotOf('{cart:7}.items'), client.slotOf('cart:7'));
  } finally {
    await client.close();
    await cluster.stop();
  }
});
