// Groups added and removed at runtime on a 3-node cluster of real processes, through the
// client library's admin calls and through admin HTTP, while traffic runs on other groups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient, FlotillaError } from '../../src/client/index.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { spawnSync } from 'node:child_process';
import { CLI, startCluster, waitFor } from './cluster-harness.js';

const GROUPS = 4;

test('groups are added and removed at runtime while traffic runs on others', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: GROUPS, shards: 2 });
  const client = await FlotillaClient.connect({ servers: cluster.servers() });
  try {
    // Background traffic on the founding groups for the whole test; every write must succeed.
    let running = true;
    let written = 0;
    const failures: unknown[] = [];
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        try {
          await client.put(`bg-${i}`, `x${i}`);
          written++;
        } catch (e) {
          failures.push(e);
        }
      }
    })();

    // A new group, through the client library (it asks every server).
    await client.admin.addGroup(101, [1, 2, 3]);
    const put = encodeCommand({ op: 'put', key: 'k', value: 'in-101' });
    await client.command(101, put);
    const got = decodeKvResult(await client.command(101, encodeCommand({ op: 'get', key: 'k' }), { read: true }));
    assert.deepEqual(got, { op: 'get', value: 'in-101' });

    // Another through admin HTTP on each node.
    for (const id of [1, 2, 3]) {
      const res = await fetch(`http://127.0.0.1:${cluster.node(id).adminPort}/groups`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ group: 102, members: [1, 2, 3] }),
      });
      assert.equal(res.status, 200, `node ${id} added group 102: ${await res.text()}`);
    }
    await client.command(102, encodeCommand({ op: 'put', key: 'k', value: 'in-102' }));
    await waitFor(async () => (await cluster.status(1)).some((g) => g.group === 102 && g.applied >= 3), 10_000, 'group 102 applied on node 1');

    // Remove 101 everywhere: it answers NO_GROUP afterwards, and 102 is untouched.
    await client.admin.removeGroup(101);
    await assert.rejects(client.command(101, encodeCommand({ op: 'get', key: 'k' }), { read: true }), (e: unknown) => {
      assert.ok(e instanceof FlotillaError);
      assert.equal(e.code, 'NO_GROUP');
      return true;
    });
    for (const id of [1, 2, 3]) assert.ok(!(await cluster.status(id)).some((g) => g.group === 101), `node ${id} forgot group 101`);
    const still = decodeKvResult(await client.command(102, encodeCommand({ op: 'get', key: 'k' }), { read: true }));
    assert.deepEqual(still, { op: 'get', value: 'in-102' });

    running = false;
    await traffic;
    assert.deepEqual(failures, [], 'traffic on the founding groups saw no errors');
    assert.ok(written > 10, `background traffic ran (${written} writes)`);
  } finally {
    await client.close().catch(() => undefined);
    await cluster.stop();
  }
});

test('a cluster of groups: 0 has no key map: admin calls and commands to a named group work without one, calls by key wait for one', { timeout: 60_000 }, async () => {
  const cluster = await startCluster({ nodes: 1, groups: 0 });
  try {
    const server = cluster.servers()[0]!;
    // The CLI's admin commands connect without waiting for the map.
    const add = spawnSync(process.execPath, [CLI, 'admin', 'add-group', '7', '--members', '1', '--servers', server, '--json'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(add.status, 0, add.stderr);
    const client = await FlotillaClient.connect({ servers: [server], waitForMap: false, requestTimeoutMs: 1500 });
    try {
      assert.equal(client.mapVersion, 0);
      await client.command(7, encodeCommand({ op: 'put', key: 'k', value: 'in-7' }));
      const got = decodeKvResult(await client.command(7, encodeCommand({ op: 'get', key: 'k' }), { read: true }));
      assert.deepEqual(got, { op: 'get', value: 'in-7' });
      // By key: the first such call fetches the map, and there is none to be had.
      await assert.rejects(client.put('k', 'v'), (e: unknown) => e instanceof FlotillaError && e.code === 'UNAVAILABLE' && /key map/.test(e.message));
    } finally {
      await client.close();
    }
  } finally {
    await cluster.stop();
  }
});
