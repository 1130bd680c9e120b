// Group membership through the client library (issue 16, item 1) on 3 real node processes: a
// group made on two nodes gets the third as a learner, caught up and promoted (its data is
// there, read from the newcomer's own replica), loses its first member, and refuses bad changes
// with their codes while it keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient, FlotillaError } from '../../src/client/index.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { runCli, startCluster, waitFor } from './cluster-harness.js';

const G = 101;

test('add-member (learner, caught up, promoted), remove-member, and refused changes on a group of real processes', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: 1 });
  const servers = cluster.servers();
  const client = await FlotillaClient.connect({ servers });
  try {
    // Group 101 on nodes 1 and 2 only.
    const two = await FlotillaClient.connect({ servers: servers.slice(0, 2), waitForMap: false });
    await two.admin.addGroup(G, [1, 2]);
    await two.close();
    const put = (k: string, v: string): Promise<Uint8Array> => client.command(G, encodeCommand({ op: 'put', key: k, value: v }));
    for (let i = 0; i < 200; i++) await put(`before-${i}`, `v${i}`);
    assert.deepEqual(await client.admin.members(G), { voters: [1, 2], learners: [] });

    // Node 3 joins: an empty replica, a learner, caught up, a voter.
    assert.deepEqual(await client.admin.addMember(G, 3), { voters: [1, 2, 3], learners: [] });
    assert.deepEqual(await client.admin.members(G), { voters: [1, 2, 3], learners: [] });
    await put('after', 'three voters');
    // Its own replica has everything (a stale read answers from the node it is sent to).
    const third = await FlotillaClient.connect({ servers: [servers[2]!], waitForMap: false });
    await waitFor(async () => {
      const r = decodeKvResult(await third.command(G, encodeCommand({ op: 'get', key: 'after' }), { stale: true }));
      return r.op === 'get' && r.value === 'three voters';
    }, 10_000, 'the new member to apply the latest write');
    const old = decodeKvResult(await third.command(G, encodeCommand({ op: 'get', key: 'before-7' }), { stale: true }));
    assert.deepEqual(old, { op: 'get', value: 'v7' });
    await third.close();
    // Admin HTTP shows the same, from any member's replica.
    const http = await fetch(`http://127.0.0.1:${cluster.node(3).adminPort}/groups/${G}/members`).then((r) => r.json()) as { voters: number[]; learners: number[] };
    assert.deepEqual([http.voters, http.learners], [[1, 2, 3], []]);

    // Bad changes are refused with their codes; the group keeps serving.
    assert.deepEqual(await client.admin.promote(G, 2), { voters: [1, 2, 3], learners: [] }, 'promoting a voter is done already');
    await assert.rejects(client.admin.promote(G, 9), (e: unknown) => e instanceof FlotillaError && e.code === 'NOT_MEMBER');
    await assert.rejects(client.admin.addMember(G, 3, { learner: true }), (e: unknown) => e instanceof FlotillaError && e.code === 'ALREADY_MEMBER');
    await assert.rejects(client.admin.removeMember(G, 9), (e: unknown) => e instanceof FlotillaError && e.code === 'NOT_MEMBER');
    await assert.rejects(client.admin.addMember(G, 9), (e: unknown) => e instanceof FlotillaError && e.code === 'BAD_REQUEST');

    // The first member leaves (the leader, if it is: leadership is handed over first).
    assert.deepEqual(await client.admin.removeMember(G, 1), { voters: [2, 3], learners: [] });
    await put('after-removal', 'two voters');
    const got = decodeKvResult(await client.command(G, encodeCommand({ op: 'get', key: 'after-removal' }), { read: true }));
    assert.deepEqual(got, { op: 'get', value: 'two voters' });
    assert.deepEqual(await client.admin.members(G), { voters: [2, 3], learners: [] });
  } finally {
    await client.close();
    await cluster.stop();
  }
});

test('flotilla admin members, add-member, promote, remove-member: the CLI over the same calls, with --json and clear codes', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: 1 });
  const env = { FLOTILLA_SERVERS: cluster.servers().join(',') };
  try {
    const add = await runCli(['admin', 'add-group', String(G), '--members', '1,2', '--servers', cluster.servers().slice(0, 2).join(',')], env);
    assert.equal(add.status, 0, add.stderr);
    const learner = await runCli(['admin', 'add-member', String(G), '3', '--learner', '--json'], env);
    assert.equal(learner.status, 0, learner.stderr);
    assert.deepEqual(JSON.parse(learner.stdout), { ok: true, group: G, voters: [1, 2], learners: [3] });
    const promoted = await runCli(['admin', 'promote', String(G), '3'], env);
    assert.equal(promoted.status, 0, promoted.stderr);
    assert.equal(promoted.stdout.trim(), 'voters 1,2,3; learners -');
    const removed = await runCli(['admin', 'remove-member', String(G), '2', '--json'], env);
    assert.deepEqual(JSON.parse(removed.stdout), { ok: true, group: G, voters: [1, 3], learners: [] });
    const members = await runCli(['admin', 'members', String(G)], env);
    assert.equal(members.stdout.trim(), 'voters 1,3; learners -');
    const bad = await runCli(['admin', 'remove-member', String(G), '9'], env);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^flotilla: NOT_MEMBER: /m);
  } finally {
    await cluster.stop();
  }
});
