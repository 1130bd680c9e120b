// Histories of real processes under faults are linearizable, with the default read mode
// (leases): a 3-node cluster, one group, clients putting unique values and reading a few keys
// through every server while the group's leader is SIGSTOPped (it freezes with reads and writes
// in flight and comes back believing it leads), then the new leader too, then a follower is
// SIGKILLed and started again. Every operation is recorded (invoke and completion times on this
// process's clock) and the whole history goes through the linearizability checker
// (test/sim/linearizability.ts). A stale read, from a deposed leader's lease or from a node
// that forgot it was in one, is a violation. (What proves the leases themselves is the host
// simulator, whose aimed faults catch a lease bounded by ticks alone: this test, run with that
// mutation, still passed twice; a paused process wakes to its peers' news within a turn, too
// soon for a stale answer to be seen from outside. It checks the real processes end to end.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { FlotillaClient } from '../../src/client/index.js';
import { checkHistory, type HistoryOp } from '../sim/linearizability.js';
import { startHistoryWorkload } from '../history-workload.js';
import { startCluster, waitFor, type TestCluster } from './cluster-harness.js';

const CLIENTS = 4;
const KEYS = 3;
/** Puts are sent once (no resend): a resent put could take effect twice, which is not linearizable. */
const REQUEST_TIMEOUT_MS = 4000;
const PAUSE_MS = 2500;

async function leaderOf(cluster: TestCluster, live: number[]): Promise<number> {
  let leader = 0;
  await waitFor(async () => (leader = (await cluster.leaders(live)).get(1) ?? 0) !== 0, 15_000, 'a leader of group 1');
  return leader;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('puts and lease reads of real processes stay linearizable across SIGSTOPs of two leaders and a SIGKILL', { timeout: 90_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: 1, tickMs: 100 });
  const paused = new Set<number>();
  const clients: FlotillaClient[] = [];
  const history: HistoryOp[] = [];
  let nextId = 0;
  let stopping = false;
  let reads = 0;
  let readsOk = 0;
  try {
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await FlotillaClient.connect({ servers: cluster.servers(), requestTimeoutMs: REQUEST_TIMEOUT_MS, resendPuts: false }));
    }
    // A reader that knows only the first leader: it keeps asking it through its pause and right
    // after it wakes, when a leader that trusted a stale lease would answer from old state.
    const first0 = await leaderOf(cluster, [1, 2, 3]);
    const pinned = await FlotillaClient.connect({ servers: [`127.0.0.1:${cluster.node(first0).clientPort}`], requestTimeoutMs: REQUEST_TIMEOUT_MS, resendPuts: false });
    clients.push(pinned);
    const pinnedClient = CLIENTS;
    const pinnedLoop = (async () => {
      for (let i = 0; !stopping; i++) {
        const key = `k${i % KEYS}`;
        const id = nextId++;
        const invoke = performance.now();
        reads++;
        try {
          const value = await pinned.get(key);
          readsOk++;
          history.push({ id, client: pinnedClient, op: { kind: 'get', key }, invoke, complete: performance.now(), result: { kind: 'get', value } });
        } catch {
          // Refused (NOT_LEADER once it knows) or timed out: no effect.
        }
      }
    })();
    const work = startHistoryWorkload(clients.slice(0, CLIENTS), { keys: KEYS, history, nextId: () => nextId++ });

    const phase = async (what: string, fault: () => Promise<void>): Promise<void> => {
      const before = history.length;
      await fault();
      await waitFor(() => history.length >= before + 200, 30_000, `operations after ${what}`);
    };
    await waitFor(() => history.length >= 200, 20_000, 'clients running');
    const pauseFor = async (id: number): Promise<void> => {
      cluster.pause(id);
      paused.add(id);
      await sleep(PAUSE_MS);
      cluster.resume(id);
      paused.delete(id);
    };
    const first = first0;
    await phase(`SIGSTOP of leader ${first}`, () => pauseFor(first));
    const second = await leaderOf(cluster, [1, 2, 3]);
    await phase(`SIGSTOP of leader ${second}`, () => pauseFor(second));
    const third = await leaderOf(cluster, [1, 2, 3]);
    const follower = [1, 2, 3].find((id) => id !== third)!;
    await phase(`SIGKILL of follower ${follower}`, async () => {
      cluster.kill(follower);
      await sleep(500);
      await cluster.restart(follower);
      await waitFor(() => cluster.healthy(follower), 20_000, `node ${follower} healthy again`);
    });
    stopping = true;
    await Promise.all([work.stop(), pinnedLoop]);

    const report = checkHistory(history);
    t.diagnostic(`leaders ${first}, ${second}, ${third}; follower killed ${follower}; ${history.length} ops recorded, ${readsOk + work.counts.readsOk} of ${reads + work.counts.reads} reads answered, ${history.filter((h) => h.complete === null).length} puts unanswered; check: ${report.outcome} over ${report.keys} keys`);
    assert.notEqual(report.outcome, 'violation', report.detail);
    assert.equal(report.outcome, 'ok', report.detail);
    assert.ok(readsOk + work.counts.readsOk > 100, `only ${readsOk + work.counts.readsOk} reads answered`);
  } finally {
    for (const id of paused) cluster.resume(id);
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
  }
});
