// Three embedded nodes in one process form a cluster replicating a user state machine: writes
// sent to any node follow NOT_LEADER to the group's leader, every replica converges, and a node
// stopped and started again catches up (by a snapshot of the machine when its log was compacted).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { META_GROUP, NodeError, createNode, type FlotillaNode, type PeerInfo } from 'flotilla';
import { decodeCounterResult, encodeCounterCommand } from './counter-machine.js';
import { COUNTER_MODULE, commandFollowing, freePorts, tmpDir, waitFor } from './helpers.js';
// A new cluster's key map: where the built-in KV store would route each key (an embedder's
// state machine is not checked against the map, but keys are spread the same way).
import { initialGroupOf as groupOfKey } from '../cluster-map/initial-group.js';

const GROUPS = 4;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function valueOf(bytes: Uint8Array): number {
  const r = decodeCounterResult(bytes);
  assert.ok(r.ok && 'value' in r, `expected a value, got ${JSON.stringify(r)}`);
  return r.value;
}

test('three embedded nodes in one process replicate a user state machine', { timeout: 120_000 }, async () => {
  const root = tmpDir('flotilla-embed-cluster-', dirs);
  const ports = await freePorts(12);
  const peers: PeerInfo[] = [1, 2, 3].map((id, i) => ({
    id, host: '127.0.0.1', raftPort: ports[4 * i]!, clientPort: ports[4 * i + 1]!, adminPort: ports[4 * i + 2]!, wsPort: ports[4 * i + 3]!,
  }));
  const start = (id: number): Promise<FlotillaNode> => createNode({
    nodeId: id, peers, dataDir: path.join(root, `node-${id}`),
    groups: GROUPS, shards: 2, syncForce: true, tickMs: 20, ticksElection: 20,
    snapshotEntries: 10, snapshotKeepEntries: 2,
    stateMachine: { module: COUNTER_MODULE },
  });
  const nodes = new Map<number, FlotillaNode>();
  const started = await Promise.allSettled([1, 2, 3].map(start));
  started.forEach((s, i) => {
    if (s.status === 'fulfilled') nodes.set(i + 1, s.value);
  });
  try {
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    for (const [id, n] of nodes) {
      assert.equal(n.ports.raft, peers[id - 1]!.raftPort, `node ${id} listens where its peers entry says`);
      assert.equal(n.ports.client, peers[id - 1]!.clientPort);
    }

    const keys = Array.from({ length: 12 }, (_, i) => `account-${i}`);
    assert.equal(new Set(keys.map((k) => groupOfKey(k, GROUPS))).size, GROUPS, 'the keys cover every group');
    const expected = new Map<string, number>();
    const add = async (first: number, key: string, n: number): Promise<number> => {
      const r = await commandFollowing(nodes, first, groupOfKey(key, GROUPS), encodeCounterCommand({ op: 'add', key, n }), {}, 30_000);
      return valueOf(r.result);
    };
    const addAll = async (rounds: number, firstOf: (i: number) => number): Promise<void> => {
      for (let i = 0; i < rounds * keys.length; i++) {
        const key = keys[i % keys.length]!;
        const n = (i % 7) + 1;
        const want = (expected.get(key) ?? 0) + n;
        expected.set(key, want);
        assert.equal(await add(firstOf(i), key, n), want, `add to ${key}`);
      }
    };
    /** Every live replica answers every key with its expected value (stale reads: local state). */
    const converged = async (): Promise<boolean> => {
      for (const n of nodes.values()) {
        for (const [key, want] of expected) {
          const got = valueOf(await n.command(groupOfKey(key, GROUPS), encodeCounterCommand({ op: 'read', key }), { stale: true }));
          if (got !== want) return false;
        }
      }
      return true;
    };
    const leaders = async (): Promise<Map<number, number>> => {
      const out = new Map<number, number>();
      for (const [id, n] of nodes) for (const g of (await n.admin.status()).groups) if (g.role === 'leader' && g.group !== META_GROUP) out.set(g.group, id);
      return out;
    };

    // Writes all sent to node 1: those of groups led elsewhere follow NOT_LEADER.
    await addAll(3, () => 1);
    await waitFor(async () => (await leaders()).size === GROUPS, 10_000, 'a leader in every group');
    const led = await leaders();

    // A follower's answer names the leader, with where clients reach it.
    const g1 = groupOfKey(keys[0]!, GROUPS);
    const leader = led.get(g1)!;
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    await assert.rejects(nodes.get(follower)!.command(g1, encodeCounterCommand({ op: 'add', key: keys[0]!, n: 1 })), (e: unknown) => {
      assert.ok(e instanceof NodeError, String(e));
      assert.equal(e.code, 'NOT_LEADER');
      assert.equal(e.leader?.id, leader);
      assert.equal(e.leader?.clientPort, peers[leader - 1]!.clientPort);
      return true;
    });
    const viaFollower = await commandFollowing(nodes, follower, g1, encodeCounterCommand({ op: 'read', key: keys[0]! }), { read: true });
    assert.equal(viaFollower.by, leader, 'the read went to the leader');
    assert.equal(valueOf(viaFollower.result), expected.get(keys[0]!));

    await waitFor(converged, 15_000, 'every replica to apply every write');

    // Node 3 stops; the others go on (new leaders where it led), then it comes back and catches up.
    await nodes.get(3)!.stop();
    nodes.delete(3);
    // Enough writes that every group's leader snapshots and compacts past where node 3 stopped.
    await addAll(5, (i) => 1 + (i % 2));
    const back = await start(3);
    nodes.set(3, back);
    await waitFor(converged, 30_000, async () => {
      const status = await back.admin.status();
      return `node 3 to catch up; its status ${JSON.stringify(status.groups)}`;
    });
    const installed = [...(await back.admin.metrics()).matchAll(/^flotilla_snapshots_total\{[^}]*kind="installed"[^}]*\} (\d+)/gm)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(installed > 0, 'node 3 caught up through snapshots of the state machine sent by leaders');

    // And it takes writes again, from wherever they are sent.
    await addAll(1, () => 3);
    await waitFor(converged, 15_000, 'every replica to apply the last writes');
  } finally {
    await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  }
});
