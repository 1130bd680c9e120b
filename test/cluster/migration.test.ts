// Online migration (issue 15) on real processes: slots move between groups while clients keep
// writing and reading, and the whole history stays linearizable; every acknowledged key is
// readable from the new owner afterwards, nothing lost or duplicated; the old owner answers the
// moved keys WRONG_GROUP; `flotilla admin slots --json` prints the map the client holds; bad
// input is answered with clear codes and the node keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { keyMapJson } from '../../src/cluster/key-map.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { checkHistory } from '../sim/linearizability.js';
import { startCluster, waitFor } from './cluster-harness.js';
import { cli, keysIn, migrationRecords, postJson, Workload } from './migration-helpers.js';

const PRELOAD = 2000;

test('slots 0-1023 move from group 1 to group 2 under concurrent writes: linearizable, nothing lost, the source refuses them after', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const env = { FLOTILLA_SERVERS: cluster.servers()[0]! };
  const clients: FlotillaClient[] = [];
  let w: Workload | null = null;
  try {
    for (let i = 0; i < 4; i++) clients.push(await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: 8000, resendPuts: false }));
    const c0 = clients[0]!;
    assert.equal(c0.keyMap.ownerOf(0), 1);
    // Keys of the moving slots, loaded first; and hot keys for the workload (moving too), and a
    // key that stays in group 1.
    const preload = keysIn(0, 1023, PRELOAD, 'p');
    for (let i = 0; i < preload.length; i += 100) await Promise.all(preload.slice(i, i + 100).map((k) => c0.put(k, `v-${k}`)));
    const hot = keysIn(0, 1023, 6, 'h');
    const stays = keysIn(2000, 3000, 1, 's')[0]!;
    await c0.put(stays, 'here');
    const work = new Workload(clients, hot);
    w = work;
    work.start();
    await waitFor(() => work.history.length >= 200, 20_000, 'clients running');

    const mig = await cli(['admin', 'migrate', '0-1023', '--to', '2', '--json'], env);
    assert.equal(mig.status, 0, `migrate: ${mig.stdout} ${mig.stderr}`);
    const out = JSON.parse(mig.stdout) as { migration: { id: number; outcome: string; from: number; to: number } };
    assert.equal(out.migration.outcome, 'finished', mig.stdout);
    assert.deepEqual([out.migration.from, out.migration.to], [1, 2]);
    const before = work.history.length;
    await waitFor(() => work.history.length >= before + 200, 20_000, 'operations after the migration');
    await work.stop();

    const report = checkHistory(work.history);
    const errors = [...work.errors].map(([c, n]) => `${c} ${n}`).join(', ');
    t.diagnostic(`${work.history.length} ops, ${work.history.filter((h) => h.complete === null).length} puts unanswered (${errors || 'no errors'}); check: ${report.outcome} over ${report.keys} keys`);
    assert.equal(report.outcome, 'ok', report.detail);

    // The new owner serves every key; the old owner refuses them.
    await c0.refreshMap();
    for (const s of [0, 512, 1023]) assert.equal(c0.keyMap.ownerOf(s), 2);
    assert.equal(c0.keyMap.ownerOf(1024), 1);
    assert.equal(c0.keyMap.migrations().length, 0);
    for (let i = 0; i < preload.length; i += 200) {
      const got = await Promise.all(preload.slice(i, i + 200).map((k) => c0.get(k)));
      got.forEach((v, j) => assert.equal(v, `v-${preload[i + j]}`));
    }
    for (const k of hot) {
      const v = await c0.get(k);
      if (work.acked.has(k)) assert.ok(v !== null && /^c\d+-\d+$/.test(v), `hot key ${k} holds ${v}`);
    }
    assert.equal(await c0.get(stays), 'here');
    // Group 1 answers a moved key WRONG_GROUP (from its marks even if a node's table lagged).
    let refused = '';
    try {
      const r = decodeKvResult(await c0.command(1, encodeCommand({ op: 'get', key: preload[0]! }), { read: true }));
      refused = r.op === 'error' ? r.code : `answered ${r.op}`;
    } catch (e) {
      refused = (e as { code?: string }).code ?? String(e);
    }
    assert.equal(refused, 'WRONG_GROUP');

    // The hold, as the driver measured it.
    const recs = await migrationRecords(cluster, out.migration.id, [1, 2, 3]);
    const rec = recs.find((r) => r.holdMs !== undefined);
    assert.ok(rec !== undefined, JSON.stringify(recs));
    assert.equal(rec.keys, PRELOAD + hot.filter((k) => work.acked.has(k)).length, JSON.stringify(rec));
    t.diagnostic(`migration ${rec.id}: ${rec.keys} keys, ${rec.bytes} bytes; writes held ${rec.holdMs} ms (fence applied to finish committed ${rec.fenceToFinishMs} ms)`);

    // admin slots --json is the map the client holds.
    await c0.refreshMap();
    const slots = await cli(['admin', 'slots', '--json'], env);
    assert.equal(slots.status, 0, slots.stderr);
    assert.deepEqual(JSON.parse(slots.stdout), keyMapJson(c0.keyMap));
    const table = await cli(['admin', 'slots'], env);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^0-1023\s+2$/m);
    assert.match(table.stdout, /no migrations in progress/);
    // And the admin HTTP route serves the same map.
    const res = await fetch(`http://127.0.0.1:${cluster.node(1).adminPort}/slots`);
    assert.deepEqual(await res.json(), keyMapJson(c0.keyMap));
  } finally {
    await w?.stop();
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
  }
});

test('bad migrations are refused with clear codes and the nodes keep serving', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const env = { FLOTILLA_SERVERS: cluster.servers()[0]! };
  const client = await FlotillaClient.connect({ servers: cluster.servers() });
  try {
    const code = async (args: string[]): Promise<string> => {
      const r = await cli([...args, '--json'], env);
      assert.notEqual(r.status, 0, `${args.join(' ')} succeeded: ${r.stdout}`);
      return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { error: { code: string } }).error.code;
    };
    assert.equal(await code(['admin', 'migrate', '0-10', '--to', '9']), 'NO_SUCH_GROUP');
    assert.equal(await code(['admin', 'migrate', '0-10', '--to', '1']), 'SAME_GROUP');
    assert.equal(await code(['admin', 'migrate', '8000-8400', '--to', '2']), 'MIXED_OWNERS');
    for (const bad of ['10-5', '0-16384', 'a', '1,,2', '1-10,5']) assert.equal(await code(['admin', 'migrate', bad, '--to', '2']), 'BAD_SLOTS', bad);
    assert.equal(await code(['admin', 'migrate', '--abort', '12345']), 'NO_SUCH_MIGRATION');
    // Over HTTP, on a node that may not lead the meta group (it forwards).
    for (const n of [1, 2, 3]) {
      const port = cluster.node(n).adminPort;
      const r = await postJson(port, '/migrations', { slots: '5-1', to: 2 });
      assert.deepEqual([r.status, r.body['code']], [400, 'BAD_SLOTS']);
      const r2 = await postJson(port, '/migrations', { slots: '0-10', to: 7 });
      assert.deepEqual([r2.status, r2.body['code']], [404, 'NO_SUCH_GROUP']);
      const r3 = await postJson(port, '/migrations/99999/abort', {});
      assert.deepEqual([r3.status, r3.body['code']], [404, 'NO_SUCH_MIGRATION']);
    }
    // Overlapping migrations: the first is held in copying by pausing nothing; begin it without
    // waiting and at once ask for an overlapping one.
    const first = await postJson(cluster.node(1).adminPort, '/migrations', { slots: '0-4095', to: 2 });
    assert.equal(first.body['ok'], true, JSON.stringify(first.body));
    const second = await postJson(cluster.node(2).adminPort, '/migrations', { slots: '4000-4100', to: 2 });
    // Refused while the first is in progress; once it finished, the slots are group 2's already.
    assert.ok(['SLOT_MIGRATING', 'SAME_GROUP', 'MIXED_OWNERS'].includes(String(second.body['code'])), JSON.stringify(second.body));
    // An internal command from a client is refused, and the node serves on.
    const internal = Uint8Array.of(0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0);
    await assert.rejects(client.command(1, internal), (e: { code?: string }) => e.code === 'BAD_REQUEST');
    await assert.rejects(client.command(1, Uint8Array.of(0x48, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), { read: true }), (e: { code?: string }) => e.code === 'BAD_REQUEST');
    await client.put('still', 'serving');
    assert.equal(await client.get('still'), 'serving');
  } finally {
    await client.close().catch(() => undefined);
    await cluster.stop();
  }
});

test('an operator aborts a migration while it copies: the slots stay the source\'s, served again, every value intact', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const env = { FLOTILLA_SERVERS: cluster.servers()[0]! };
  const client = await FlotillaClient.connect({ servers: cluster.servers() });
  try {
    const value = 'y'.repeat(1000);
    // 20 MB in the moving slots: a copy of about a second and a half, for the CLI's abort to land in.
    const keys = keysIn(0, 1023, 20_000, 'q');
    for (let i = 0; i < keys.length; i += 200) await Promise.all(keys.slice(i, i + 200).map((k) => client.put(k, value)));
    const begun = await cli(['admin', 'migrate', '0-1023', '--to', '2', '--no-wait', '--json'], env);
    assert.equal(begun.status, 0, begun.stderr);
    const id = (JSON.parse(begun.stdout) as { migration: { id: number } }).migration.id;
    // admin slots shows it in progress.
    const inProgress = await cli(['admin', 'slots', '--json'], env);
    assert.equal(inProgress.status, 0, inProgress.stderr);
    assert.deepEqual((JSON.parse(inProgress.stdout) as { migrations: unknown[] }).migrations, [{ id, slots: '0-1023', from: 1, to: 2, state: 'copying' }]);
    const aborted = await cli(['admin', 'migrate', '--abort', String(id), '--json'], { FLOTILLA_SERVERS: cluster.servers()[2]! });
    assert.equal(aborted.status, 0, `${aborted.stdout} ${aborted.stderr}`);
    assert.equal((JSON.parse(aborted.stdout) as { migration: { state: string } }).migration.state, 'aborted');
    await client.refreshMap();
    assert.equal(client.keyMap.migrations().length, 0);
    assert.equal(client.keyMap.ownerOf(0), 1);
    // A second abort of it: no such migration.
    const again = await cli(['admin', 'migrate', '--abort', String(id), '--json'], env);
    assert.equal(again.status, 1);
    assert.match(again.stdout, /NO_SUCH_MIGRATION/);
    // Served again by group 1 (unfenced), reads and writes.
    for (let i = 0; i < keys.length; i += 500) {
      const got = await Promise.all(keys.slice(i, i + 500).map((k) => client.get(k)));
      got.forEach((v, j) => assert.equal(v, value, keys[i + j]));
    }
    await client.put(keys[0]!, 'after');
    assert.equal(await client.get(keys[0]!), 'after');
    // The slots can be migrated again afterwards, and this time finish.
    const mig = await cli(['admin', 'migrate', '0-1023', '--to', '2', '--json'], env);
    assert.equal(mig.status, 0, mig.stderr);
    const again2 = JSON.parse(mig.stdout) as { migration: { id: number; outcome: string } };
    assert.equal(again2.migration.outcome, 'finished');
    const rec = (await migrationRecords(cluster, again2.migration.id, [1, 2, 3])).find((x) => x.holdMs !== undefined);
    t.diagnostic(`moved again: ${rec?.keys} keys, ${rec?.bytes} bytes, held ${rec?.holdMs} ms`);
    await client.refreshMap();
    assert.equal(await client.get(keys[0]!), 'after');
    assert.equal(await client.get(keys[1]!), value);
  } finally {
    await client.close().catch(() => undefined);
    await cluster.stop();
  }
});
