// The client rides out a failover of real processes (issue 12, item 6): a 3-node cluster, one
// group, writers putting without pause; the group's leader is SIGSTOPped (it freezes with its
// sockets open, so nothing tells the client it is gone) or SIGKILLed. Every put must succeed,
// each within the caller's deadline — through the leader the others elect — rather than hang
// for the deadline on the frozen node or fail with NOT_LEADER naming the dead one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaClient } from '../../src/client/index.js';
import { startCluster, waitFor, type TestCluster } from './cluster-harness.js';

/** The issue's probe: an 8 s deadline; the servers' own election timing (tickMs 100, 10 ticks). */
const DEADLINE_MS = 8000;
const WRITERS = 4;
const PUTS_AFTER = 30;

interface Outcome { ok: number; okAfter: number; errors: string[]; slowestMs: number; acked: Map<string, string> }

/** Writers putting one key after another until told to stop; what they saw (`out` counts as they go). */
function writers(c: FlotillaClient, prefix: string, since: () => number): { out: Outcome; stop: () => Promise<Outcome> } {
  const out: Outcome = { ok: 0, okAfter: 0, errors: [], slowestMs: 0, acked: new Map() };
  let stopping = false;
  const loops = Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; !stopping; i++) {
      const key = `${prefix}-w${w}-${i}`;
      const t0 = Date.now();
      try {
        await c.put(key, `v${i}`);
        out.acked.set(key, `v${i}`);
        out.ok++;
        if (t0 >= since()) out.okAfter++;
      } catch (e) {
        out.errors.push(`${key}: ${(e as { code?: string }).code} ${(e as Error).message}`);
      }
      out.slowestMs = Math.max(out.slowestMs, Date.now() - t0);
    }
  });
  return {
    out,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      return out;
    },
  };
}

async function leaderOf(cluster: TestCluster, live: number[]): Promise<number> {
  let leader = 0;
  await waitFor(async () => (leader = (await cluster.leaders(live)).get(1) ?? 0) !== 0, 15_000, 'a leader of group 1');
  return leader;
}

for (const how of ['SIGSTOP', 'SIGKILL'] as const) {
  test(`puts ride out a ${how} of the group's leader: each succeeds within the deadline, through the new leader`, { timeout: 30_000 }, async (t) => {
    const cluster = await startCluster({ nodes: 3, groups: 1, tickMs: 100 });
    let paused = 0;
    const clients: FlotillaClient[] = [];
    try {
      const old = await leaderOf(cluster, [1, 2, 3]);
      const live = [1, 2, 3].filter((id) => id !== old);
      // One client knows every server; the other only a follower that survives, so it learns
      // the leader from that follower's hints alone (first the stale one, then the new one).
      const all = await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: DEADLINE_MS });
      clients.push(all);
      const one = await FlotillaClient.connect({ servers: [`127.0.0.1:${cluster.node(live[0]!).clientPort}`], requestTimeoutMs: DEADLINE_MS });
      clients.push(one);
      for (const c of clients) await c.put('warm', 'up'); // each client now knows the leader
      let failedAt = Infinity;
      const runs = clients.map((c, i) => writers(c, `c${i}`, () => failedAt));
      await waitFor(() => runs.every((r) => r.out.ok >= WRITERS * 5), 10_000, 'every client writing');
      failedAt = Date.now();
      if (how === 'SIGSTOP') {
        cluster.pause(old);
        paused = old;
      } else {
        cluster.kill(old);
      }
      // Bounded: the others elect within their election timeout (1-2 s); the writers go on a
      // while through the new leader.
      await waitFor(async () => (await cluster.leaders(live)).get(1) !== undefined, 15_000, 'a new leader on the live nodes');
      // The writers go on through the new leader until each client has its puts after the failure.
      await waitFor(() => runs.every((r) => r.out.okAfter >= PUTS_AFTER), 20_000, `${PUTS_AFTER} puts of each client begun after the ${how}`);
      const outcomes = await Promise.all(runs.map((r) => r.stop()));
      const fresh = await leaderOf(cluster, live);
      assert.notEqual(fresh, old);
      for (const [i, outcome] of outcomes.entries()) {
        const who = i === 0 ? 'the client of every server' : 'the client of one follower';
        t.diagnostic(`${how} of node ${old}, ${who}: node ${fresh} leads; ${outcome.ok} puts ok (${outcome.okAfter} begun after the ${how}), slowest ${outcome.slowestMs} ms, errors ${outcome.errors.length}`);
        assert.deepEqual(outcome.errors.slice(0, 5), [], `no put of ${who} failed (${outcome.errors.length} did)`);
        assert.ok(outcome.okAfter >= PUTS_AFTER, `only ${outcome.okAfter} puts of ${who} begun after the ${how} succeeded`);
        // Not hung for the deadline on the silent node: failed over once the others elected.
        assert.ok(outcome.slowestMs < DEADLINE_MS - 2000, `the slowest put of ${who} took ${outcome.slowestMs} ms`);
      }

      if (paused !== 0) {
        cluster.resume(paused);
        paused = 0;
      }
      // Every acknowledged put is there, read through the group's leader.
      await Promise.all(outcomes.flatMap((o) => [...o.acked].map(async ([key, value]) => assert.equal(await all.get(key), value, key))));
    } finally {
      if (paused !== 0) cluster.resume(paused);
      for (const c of clients) await c.close().catch(() => undefined);
      await cluster.stop();
    }
  });
}
