// A 3-node cluster of real processes from `flotilla cluster`, with syncForce on: writes through
// every node, the leader of several groups SIGKILLed, new leaders, writes going on, nothing
// acknowledged lost, and the killed node restarted and caught up — by snapshot, since the
// others compacted past it while it was down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { startCluster, waitFor } from './cluster-harness.js';

const GROUPS = 8;

test('a 3-node cluster survives SIGKILL of a leader without losing acknowledged writes, and the node catches up by snapshot', { timeout: 180_000 }, async () => {
  // Few entries kept behind a snapshot: the writes of one turn share an entry, so the log moves
  // by far fewer entries than writes while the node is down.
  const cluster = await startCluster({ nodes: 3, groups: GROUPS, snapshotEntries: 100, snapshotKeepEntries: 2 });
  const clients: FlotillaClient[] = [];
  try {
    // One client per node, each knowing only that node: writes enter through every node and
    // reach each group's leader by redirect.
    for (const server of cluster.servers()) clients.push(await FlotillaClient.connect({ servers: [server] }));
    const acked = new Map<string, string>();
    await Promise.all(clients.map(async (c, i) => {
      const puts: Promise<void>[] = [];
      for (let k = 0; k < 100; k++) {
        const key = `first-${i}-${k}`;
        puts.push(c.put(key, `v${k}`).then(() => void acked.set(key, `v${k}`)));
      }
      await Promise.all(puts);
    }));
    assert.equal(acked.size, 300);
    for (const c of clients) {
      for (const key of ['first-0-0', 'first-1-50', 'first-2-99']) assert.equal(await c.get(key), acked.get(key), `${key} read through another node`);
    }

    // Kill the node that leads the most groups.
    const before = await cluster.leaders([1, 2, 3]);
    const counts = new Map<number, number>();
    for (const id of before.values()) counts.set(id, (counts.get(id) ?? 0) + 1);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const live = [1, 2, 3].filter((id) => id !== victim);
    const killedAt = Date.now();
    cluster.kill(victim);
    await waitFor(async () => (await cluster.leaders(live)).size === GROUPS, 20_000, 'a leader for every group on the live nodes');
    const failoverMs = Date.now() - killedAt;
    console.log(`# failover: every group led again ${failoverMs} ms after SIGKILL of node ${victim} (led ${counts.get(victim)} of ${GROUPS} groups)`);

    // Writes go on through the live nodes, enough to snapshot and compact past the dead node.
    const survivor = await FlotillaClient.connect({ servers: live.map((id) => `127.0.0.1:${cluster.node(id).clientPort}`) });
    clients.push(survivor);
    for (let round = 0; round < 6; round++) {
      const puts: Promise<void>[] = [];
      for (let k = 0; k < 300; k++) {
        const key = `second-${round}-${k}`;
        puts.push(survivor.put(key, `w${k}`).then(() => void acked.set(key, `w${k}`)));
      }
      await Promise.all(puts);
    }
    for (const [key, value] of acked) assert.equal(await survivor.get(key), value, `acknowledged ${key} survives`);

    // The killed node comes back and catches up, by snapshot for groups compacted past it.
    await cluster.restart(victim);
    const target = new Map((await cluster.status(live[0]!)).map((g) => [g.group, g.commit]));
    await waitFor(async () => (await cluster.status(victim)).every((g) => g.applied >= (target.get(g.group) ?? Infinity)), 30_000, `node ${victim} applied what the others had committed`);
    const restarted = await cluster.status(victim);
    assert.ok(restarted.some((g) => g.snapshotIndex > 0), 'the restarted node holds snapshots');
    const metrics = await (await fetch(`http://127.0.0.1:${cluster.node(victim).adminPort}/metrics`)).text();
    const installed = metrics.split('\n').filter((l) => l.startsWith('flotilla_snapshots_total{') && l.includes('kind="installed"'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    assert.ok(installed > 0, `the restarted node caught up by installing snapshots from leaders (installed ${installed})`);
    const direct = await FlotillaClient.connect({ servers: [`127.0.0.1:${cluster.node(victim).clientPort}`] });
    clients.push(direct);
    for (const [key, value] of acked) assert.equal(await direct.get(key, { stale: true }), value, `${key} on the restarted node`);
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
  }
});
