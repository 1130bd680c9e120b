// Online migration (issue 15) survives SIGKILL at its steps, on real processes: the meta leader
// (the driver) killed while the slots are being copied, the source group's leader killed while
// copying, the target group's leader and the driver killed once the migration has reached
// cutover. Each time the migration completes (resumed by the next meta leader from the map, and
// what only the groups' marks knew ended by reconcile), every slot is owned by exactly one group
// (the map, the target's marks clear, the source's marks "moved"), the history of clients writing
// throughout is linearizable, and every key holds its value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { META_GROUP } from '../../src/cluster/meta-group.js';
import { decodeMarksAnswer, encodeInternalCommand, encodeMarksQuery, type InternalCommand } from '../../src/kv/kv-migration-command.js';
import { MarkState, type MarkRun } from '../../src/kv/slot-marks.js';
import { encodeCommand } from '../../src/kv/kv-command.js';
import { decodeKvResult } from '../../src/kv/kv-result.js';
import { checkHistory } from '../sim/linearizability.js';
import { startCluster, waitFor, type TestCluster } from './cluster-harness.js';
import { keysIn, postJson, Workload } from './migration-helpers.js';

/** Enough bytes in the moving slots that copying takes many pages (and some time). */
const PRELOAD = 6000;
const VALUE = 'x'.repeat(1000);

async function leaderOf(cluster: TestCluster, group: number, live: number[]): Promise<number> {
  let leader = 0;
  await waitFor(async () => {
    for (const id of live) {
      try {
        for (const g of await cluster.status(id)) if (g.group === group && g.role === 'leader') leader = id;
      } catch {
        // not up
      }
    }
    return leader !== 0;
  }, 20_000, `a leader of group ${group}`);
  return leader;
}

interface SlotsJson {
  version: number;
  slots: { slots: string; group: number }[];
  migrations: { id: number; state: string }[];
}

async function slotsOf(cluster: TestCluster, id: number): Promise<SlotsJson | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${cluster.node(id).adminPort}/slots`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as SlotsJson;
  } catch {
    return null;
  }
}

/** The marks of `group` read on its leader through the admin route (an internal read, as the driver does). */
async function marksOf(cluster: TestCluster, group: number): Promise<MarkRun[]> {
  let last = '';
  for (const id of [1, 2, 3]) {
    try {
      const r = await postJson(cluster.node(id).adminPort, `/internal/groups/${group}/kv`, { body: Buffer.from(encodeMarksQuery()).toString('base64'), read: true });
      if (r.body['ok'] === true) return decodeMarksAnswer(Buffer.from(String(r.body['result']), 'base64'));
      last = JSON.stringify(r.body);
    } catch (e) {
      last = String(e);
    }
  }
  throw new Error(`marks of group ${group}: ${last}`);
}

/** Waits until the live nodes' maps show no migration and `first` owned by `to`. */
async function waitMoved(cluster: TestCluster, live: number[], first: number, to: number): Promise<void> {
  await waitFor(async () => {
    for (const id of live) {
      const j = await slotsOf(cluster, id);
      if (j === null || j.migrations.length > 0) return false;
      const run = j.slots.find((r) => {
        const [a, b] = r.slots.split('-').map(Number);
        return first >= a! && first <= (b ?? a)!;
      });
      if (run?.group !== to) return false;
    }
    return true;
  }, 60_000, `slot ${first} moved to group ${to} on nodes ${live.join(',')}`);
}

/** Owned by exactly one group: the target serves the slots (no marks there), the source holds them as moved to the target. */
async function checkOwnedOnce(cluster: TestCluster, from: number, to: number, first: number, last: number): Promise<void> {
  await waitFor(async () => {
    const src = await marksOf(cluster, from).catch(() => null);
    const dst = await marksOf(cluster, to).catch(() => null);
    if (src === null || dst === null) return false;
    const moved = src.some((r) => r.first <= first && r.last >= last && r.state === MarkState.Moved && r.to === to);
    const clear = !dst.some((r) => r.last >= first && r.first <= last && r.state !== MarkState.None);
    return moved && clear;
  }, 30_000, `group ${from} marks ${first}-${last} moved to ${to}, group ${to} has no marks there`);
}

async function preload(client: FlotillaClient, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 200) await Promise.all(keys.slice(i, i + 200).map((k) => client.put(k, `${k}:${VALUE}`)));
}

async function checkValues(client: FlotillaClient, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 200) {
    const got = await Promise.all(keys.slice(i, i + 200).map((k) => client.get(k)));
    got.forEach((v, j) => assert.equal(v, `${keys[i + j]}:${VALUE}`, `key ${keys[i + j]}`));
  }
}

test('the meta leader SIGKILLed while copying: the next one resumes the migration from the map', { timeout: 240_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const clients: FlotillaClient[] = [];
  let w: Workload | null = null;
  try {
    for (let i = 0; i < 3; i++) clients.push(await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: 10_000, resendPuts: false }));
    const c = clients[0]!;
    const keys = keysIn(0, 1023, PRELOAD, 'p');
    await preload(c, keys);
    const work = new Workload(clients, keysIn(0, 1023, 5, 'h'));
    w = work;
    work.start();
    await waitFor(() => work.history.length >= 100, 20_000, 'clients running');

    const meta = await leaderOf(cluster, META_GROUP, [1, 2, 3]);
    const begun = await postJson(cluster.node(meta).adminPort, '/migrations', { slots: '0-1023', to: 2 });
    assert.equal(begun.body['ok'], true, JSON.stringify(begun.body));
    const id = (begun.body['migration'] as { id: number }).id;
    // Killed once its fence is applied (copying under way).
    await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${cluster.node(meta).adminPort}/migrations`);
      const body = (await res.json()) as { records: { id: number; fencedAt?: number }[] };
      return body.records.some((r) => r.id === id && r.fencedAt !== undefined);
    }, 20_000, 'the fence applied');
    cluster.kill(meta);
    const live = [1, 2, 3].filter((n) => n !== meta);
    const seen = await slotsOf(cluster, live[0]!);
    t.diagnostic(`meta leader ${meta} killed with migration ${id} ${seen?.migrations.find((m) => m.id === id)?.state ?? 'ended'}`);
    await waitMoved(cluster, live, 0, 2);
    await cluster.restart(meta);
    await waitMoved(cluster, [1, 2, 3], 0, 2);
    await checkOwnedOnce(cluster, 1, 2, 0, 1023);
    const before = work.history.length;
    await waitFor(() => work.history.length >= before + 100, 20_000, 'operations after the migration');
    await work.stop();
    const report = checkHistory(work.history);
    t.diagnostic(`${work.history.length} ops (errors: ${[...work.errors].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}); check: ${report.outcome}`);
    assert.equal(report.outcome, 'ok', report.detail);
    await c.refreshMap();
    assert.equal(c.keyMap.ownerOf(0), 2);
    await checkValues(c, keys);
  } finally {
    await w?.stop();
    for (const cl of clients) await cl.close().catch(() => undefined);
    await cluster.stop();
  }
});

test('the source leader SIGKILLed while copying, then the target leader and the driver after cutover: both migrations complete', { timeout: 300_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const clients: FlotillaClient[] = [];
  let w: Workload | null = null;
  try {
    for (let i = 0; i < 3; i++) clients.push(await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: 10_000, resendPuts: false }));
    const c = clients[0]!;
    const keysA = keysIn(0, 1023, PRELOAD, 'a');
    const keysB = keysIn(1024, 2047, PRELOAD / 2, 'b');
    await preload(c, keysA);
    await preload(c, keysB);
    const work = new Workload(clients, [...keysIn(0, 1023, 3, 'h'), ...keysIn(1024, 2047, 3, 'i')]);
    w = work;
    work.start();
    await waitFor(() => work.history.length >= 100, 20_000, 'clients running');

    // A: the source's leader dies while copying.
    const source = await leaderOf(cluster, 1, [1, 2, 3]);
    const a = await postJson(cluster.node(source === 1 ? 2 : 1).adminPort, '/migrations', { slots: '0-1023', to: 2 });
    assert.equal(a.body['ok'], true, JSON.stringify(a.body));
    await waitFor(async () => (await slotsOf(cluster, source))?.migrations.some((m) => m.state === 'copying') ?? false, 10_000, 'A copying');
    cluster.kill(source);
    let live = [1, 2, 3].filter((n) => n !== source);
    t.diagnostic(`A: source leader ${source} killed while copying`);
    await waitMoved(cluster, live, 0, 2);
    await cluster.restart(source);
    await waitMoved(cluster, [1, 2, 3], 0, 2);
    await checkOwnedOnce(cluster, 1, 2, 0, 1023);

    // B: once B reaches cutover (or just finished), the target's leader and the meta leader die.
    const target = await leaderOf(cluster, 2, [1, 2, 3]);
    const meta = await leaderOf(cluster, META_GROUP, [1, 2, 3]);
    const b = await postJson(cluster.node(meta).adminPort, '/migrations', { slots: '1024-2047', to: 2 });
    assert.equal(b.body['ok'], true, JSON.stringify(b.body));
    const idB = (b.body['migration'] as { id: number }).id;
    let stateSeen = '';
    await waitFor(async () => {
      const j = await slotsOf(cluster, meta);
      const m = j?.migrations.find((x) => x.id === idB);
      stateSeen = m?.state ?? (j !== null && j.version > idB ? 'finished' : '');
      return stateSeen === 'cutover' || stateSeen === 'finished';
    }, 30_000, 'B at cutover');
    cluster.kill(target);
    if (meta !== target) cluster.kill(meta);
    live = [1, 2, 3].filter((n) => n !== target && n !== meta);
    t.diagnostic(`B: seen ${stateSeen}; target leader ${target} and meta leader ${meta} killed`);
    // With two of three nodes down nothing commits: bring one back first.
    if (meta !== target) {
      await cluster.restart(target);
      live.push(target);
    }
    await waitMoved(cluster, live, 1024, 2);
    if (!live.includes(meta)) await cluster.restart(meta);
    await waitMoved(cluster, [1, 2, 3], 1024, 2);
    await checkOwnedOnce(cluster, 1, 2, 1024, 2047);

    const before = work.history.length;
    await waitFor(() => work.history.length >= before + 100, 30_000, 'operations after the migrations');
    await work.stop();
    const report = checkHistory(work.history);
    t.diagnostic(`${work.history.length} ops (errors: ${[...work.errors].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}); check: ${report.outcome}`);
    assert.equal(report.outcome, 'ok', report.detail);
    await c.refreshMap();
    assert.equal(c.keyMap.ownerOf(0), 2);
    assert.equal(c.keyMap.ownerOf(2047), 2);
    assert.equal(c.keyMap.ownerOf(2048), 1);
    await checkValues(c, keysA);
    await checkValues(c, keysB);
  } finally {
    await w?.stop();
    for (const cl of clients) await cl.close().catch(() => undefined);
    await cluster.stop();
  }
});

test('marks a crash can leave behind (a fence of an ended migration, a moved mark on an owned slot) are ended by the next meta leader\'s reconcile', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 2 });
  const client = await FlotillaClient.connect({ servers: cluster.servers() });
  try {
    // Group 1 owns 0-8191, group 2 8192-16383, at map version 1: migration id 1 is no migration
    // in progress, so marks of it are what a crash of a driver of an ended migration leaves.
    const inGroup2 = keysIn(9000, 9000, 1, 'r')[0]!;
    await client.put(inGroup2, 'kept');
    const post = async (group: number, c: InternalCommand): Promise<void> => {
      for (const id of [1, 2, 3]) {
        const r = await postJson(cluster.node(id).adminPort, `/internal/groups/${group}/kv`, { body: Buffer.from(encodeInternalCommand(c)).toString('base64'), read: false });
        if (r.body['ok'] === true) return;
      }
      throw new Error(`no node took ${c.op} for group ${group}`);
    };
    // "Finished, not dropped": group 2 fenced on slots group 1 owns.
    await post(2, { op: 'fence', id: 1, slots: [{ first: 5000, last: 5001 }] });
    // "Aborted, not unfenced": group 2 fenced on slots it owns.
    await post(2, { op: 'fence', id: 1, slots: [{ first: 9000, last: 9000 }] });
    // "Finished, not accepted": group 2 holds slots it owns as moved away (no keys there).
    await post(2, { op: 'drop', id: 1, slots: [{ first: 12000, last: 12000 }], to: 1 });
    // The fenced slot of group 2 is refused meanwhile (MIGRATING from its marks), asked of group 2
    // alone (the client's get retries MIGRATING until its request times out).
    const r = decodeKvResult(await client.command(2, encodeCommand({ op: 'get', key: inGroup2 }), { read: true }));
    const marked = (await marksOf(cluster, 2)).filter((x) => x.state !== MarkState.None);
    // Read after the refusal: if all three marks are still there, they were there for it too.
    if (marked.length === 3) assert.deepEqual([r.op, r.op === 'error' ? r.code : ''], ['error', 'MIGRATING']);
    else t.diagnostic('the periodic reconcile ran between the marks and the read');
    // A new meta leader reconciles at once.
    const meta = await leaderOf(cluster, META_GROUP, [1, 2, 3]);
    cluster.kill(meta);
    await waitFor(async () => {
      const m = (await marksOf(cluster, 2).catch(() => null))?.filter((x) => x.state !== MarkState.None) ?? null;
      return m !== null && m.length === 1 && m[0]!.first === 5000 && m[0]!.last === 5001 && m[0]!.state === MarkState.Moved && m[0]!.to === 1;
    }, 30_000, 'group 2\'s marks reconciled: 5000-5001 moved to group 1, the rest lifted');
    assert.equal(await client.get(inGroup2), 'kept');
    await cluster.restart(meta);
    t.diagnostic(`meta leader ${meta} killed; its successor reconciled group 2's marks`);
  } finally {
    await client.close().catch(() => undefined);
    await cluster.stop();
  }
});
