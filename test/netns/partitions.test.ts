// A 3-node cluster on separate network hosts (one network namespace each, netns-harness.ts)
// under partitions, with concurrent clients putting unique values and reading a few keys; the
// whole history goes through the linearizability checker (test/sim/linearizability.ts).
// Scenarios, one after another on one cluster: the leader cut away from the majority (its link
// down), a follower alone in a minority, an asymmetric partition (the leader hears nobody but
// is heard), a flapping follower link; each healed before the next. Writes go on through each
// (the majority side elects or keeps a leader), and the history stays linearizable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { checkHistory } from '../sim/linearizability.js';
import { startHistoryWorkload, type HistoryWorkload } from '../history-workload.js';
import { NetnsCluster, netnsProblem, nftProblem } from './netns-harness.js';

const CLIENTS = 4;
const KEYS = 3;
/** Puts are sent once (no resend): a resent put could take effect twice, which is not linearizable. */
const REQUEST_TIMEOUT_MS = 3000;
const FAULT_MS = 2500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

test('partitions of separate network hosts: leader cut off, minority, asymmetric, flapping link; writes go on and the history is linearizable', { timeout: 240_000 }, async (t) => {
  const problem = netnsProblem() ?? nftProblem();
  if (problem !== null) {
    if (process.env['CI'] === 'true') assert.fail(`CI must run the network namespace tests: ${problem}`);
    t.skip(problem);
    return;
  }
  const cluster = await NetnsCluster.start({ nodes: 3, groups: 1, tickMs: 50 });
  const all = [1, 2, 3];
  const clients: FlotillaClient[] = [];
  let work: HistoryWorkload | null = null;
  try {
    await until('a leader of group 1', 60_000, async () => (await cluster.leaderOf(1, all)) !== 0);
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: REQUEST_TIMEOUT_MS, attemptTimeoutMs: 500, resendPuts: false }));
    }
    work = startHistoryWorkload(clients, { keys: KEYS, pauseAfterFailureMs: 20 });

    /** Acknowledged puts so far. */
    const acked = (): number => work!.counts.puts;
    /** Writes are acknowledged again within 15 s (a leader on the majority side). */
    const progresses = async (what: string): Promise<void> => {
      const before = acked();
      await until(`writes acknowledged during ${what}`, 15_000, async () => acked() > before + 20);
    };

    await sleep(1000);
    // 1. The leader cut away from the majority: the other two elect one and writes go on.
    const first = await cluster.leaderOf(1, all);
    cluster.link(first, false);
    const rest = all.filter((x) => x !== first);
    await until('a leader on the majority side', 15_000, async () => {
      const l = await cluster.leaderOf(1, rest);
      return l !== 0 && l !== first;
    });
    await progresses('the leader\'s isolation');
    cluster.link(first, true);
    await until('one leader all agree on', 20_000, async () => (await cluster.leaderOf(1, all)) !== 0);

    // 2. A follower alone in a minority: nothing stops.
    const leader2 = await cluster.leaderOf(1, all);
    const follower = all.find((x) => x !== leader2)!;
    cluster.link(follower, false);
    await progresses('a minority partition');
    await sleep(FAULT_MS);
    cluster.link(follower, true);
    await until('one leader all agree on', 20_000, async () => (await cluster.leaderOf(1, all)) !== 0);

    // 3. Asymmetric: the leader hears nobody (its input from the peers dropped) but is heard.
    const leader3 = await cluster.leaderOf(1, all);
    const others3 = all.filter((x) => x !== leader3);
    cluster.drop(leader3, 'in', others3);
    // It hears no acknowledgement, steps down (check quorum), and the two that hear each other
    // elect one of themselves; its own pre-votes reach them, their answers do not reach it.
    await until('a leader among the nodes the old one cannot hear', 15_000, async () => {
      const l = await cluster.leaderOf(1, others3);
      return l !== 0 && l !== leader3;
    });
    await progresses('an asymmetric partition');
    await sleep(FAULT_MS);
    cluster.heal(leader3);
    await until('one leader all agree on', 20_000, async () => (await cluster.leaderOf(1, all)) !== 0);

    // 4. A flapping follower link: down and up every 200-400 ms for about 3 s.
    const leader4 = await cluster.leaderOf(1, all);
    const flapper = all.find((x) => x !== leader4)!;
    const before4 = acked();
    for (let i = 0; i < 10; i++) {
      cluster.link(flapper, i % 2 === 1);
      await sleep(200 + (i % 3) * 100);
    }
    cluster.link(flapper, true);
    await progresses('a flapping link');
    assert.ok(acked() > before4, 'writes were acknowledged while a link flapped');
    await until('one leader all agree on', 20_000, async () => (await cluster.leaderOf(1, all)) !== 0);
    await sleep(500);

    await work.stop();
    const history = work.history;
    const report = checkHistory(history);
    const puts = history.filter((h) => h.op.kind === 'put' && h.complete !== null).length;
    const gets = history.filter((h) => h.op.kind === 'get').length;
    t.diagnostic(`history: ${history.length} operations (${puts} acknowledged puts, ${gets} reads); check: ${report.outcome} over ${report.keys} keys`);
    assert.ok(puts > 200 && gets > 200, `enough of both in the history: ${puts} puts, ${gets} reads`);
    assert.notEqual(report.outcome, 'violation', report.detail);
    assert.equal(report.outcome, 'ok', report.detail);
  } catch (e) {
    for (const n of cluster.nodes.values()) t.diagnostic(`node ${n.id} output (tail): ${n.output.slice(-1500)}`);
    throw e;
  } finally {
    await work?.stop();
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await cluster.stop();
  }
});
