// /status at scale (issue 16, item 4): a node with thousands of groups over two shards answers
// pages by offset and limit and single groups, each page gathered from both shards in bounded
// requests; `flotilla status` reads every page and stays a summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { META_GROUP } from '../../src/cluster/meta-group.js';
import type { GroupStatus } from '../../src/shard/task.js';
import { CLI, startCluster } from './cluster-harness.js';

const GROUPS = 2_500;

interface Page { nodeId: number; total: number; offset: number; groups: GroupStatus[] }

test('/status pages a node of 2,500 groups by offset and limit, shows one group, and flotilla status summarises them all', { timeout: 180_000 }, async () => {
  const cluster = await startCluster({ nodes: 1, groups: GROUPS, shards: 2 });
  try {
    const admin = `127.0.0.1:${cluster.node(1).adminPort}`;
    const get = async (q: string): Promise<{ status: number; body: Page }> => {
      const res = await fetch(`http://${admin}/status${q}`, { signal: AbortSignal.timeout(20_000) });
      return { status: res.status, body: (await res.json()) as Page };
    };
    const ids = [...Array.from({ length: GROUPS }, (_, i) => i + 1), META_GROUP];

    const first = await get('');
    assert.equal(first.status, 200);
    assert.equal(first.body.total, ids.length);
    assert.equal(first.body.offset, 0);
    assert.deepEqual(first.body.groups.map((g) => g.group), ids.slice(0, 1000), 'the default page: the first 1,000 by id, from both shards');

    const last = await get('?offset=2000&limit=1000');
    assert.deepEqual(last.body.groups.map((g) => g.group), ids.slice(2000), 'the last page holds what is left');

    // More than one shard request holds (1,000 groups each): the whole node in one page.
    const all = await get('?limit=10000');
    assert.deepEqual(all.body.groups.map((g) => g.group), ids);
    assert.ok(all.body.groups.every((g) => g.role === 'leader' || g.group === META_GROUP || g.leader !== 0), 'statuses are whole');

    const one = await get('?group=1234');
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.groups.map((g) => g.group), [1234]);
    assert.equal((await get('?group=9999')).status, 404);
    assert.equal((await get('?limit=10001')).status, 400);

    // The CLI reads every page; its summary counts every group of the node.
    const out = execFileSync(process.execPath, [CLI, 'status', '--servers', cluster.servers()[0]!], { encoding: 'utf8', timeout: 60_000 });
    assert.match(out, new RegExp(`${ids.length} groups`), out);
  } finally {
    await cluster.stop();
  }
});
