// The first leaders of a new cluster's groups are spread over its nodes (src/shard/leader-spread.ts);
// after every node was SIGKILLed and restarted one after another, every group is led again
// (how evenly is reported, not checked: the nodes restarted first take the groups of those not
// yet up, and nothing moves them back). Real processes, 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, waitFor } from './cluster-harness.js';

const GROUPS = 24;
const NODES = [1, 2, 3];

function perNode(leaders: Map<number, number>): number[] {
  return NODES.map((id) => [...leaders.values()].filter((l) => l === id).length);
}

test('the groups of a new cluster are led about a third by each node, and all are led again after every node restarts', { timeout: 120_000 }, async (t) => {
  const cluster = await startCluster({ nodes: 3, groups: GROUPS });
  try {
    let leaders = new Map<number, number>();
    await waitFor(async () => (leaders = await cluster.leaders(NODES)).size === GROUPS, 30_000, `a leader for each of ${GROUPS} groups`);
    // Each group's preferred member is its voters at (group - 1) mod 3: 8 groups each, unless an
    // election timeout fired before the links were up (a slow start); allow one such group.
    const fresh = perNode(leaders);
    t.diagnostic(`leaders per node at start: ${fresh.join(', ')}`);
    assert.ok(fresh.every((n) => n >= 7 && n <= 9), `leaders per node at start: ${fresh.join(', ')}`);

    for (const id of NODES) cluster.kill(id);
    for (const id of NODES) await cluster.restart(id);
    await waitFor(async () => (leaders = await cluster.leaders(NODES)).size === GROUPS, 30_000, `a leader for each of ${GROUPS} groups after the restart`);
    const restarted = perNode(leaders);
    t.diagnostic(`leaders per node after the restart: ${restarted.join(', ')}`);
    assert.equal(restarted.reduce((a, b) => a + b, 0), GROUPS);
  } finally {
    await cluster.stop();
  }
});
