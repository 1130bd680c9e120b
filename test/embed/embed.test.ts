// Embedding: `import { createNode } from 'flotilla'` starts a node in this process with the
// program's own state machine, or the built-in KV store; bad options fail before anything
// starts; a failing state machine reaches the program; the example of docs/embedding.md runs as
// written against the built package. Real nodes on 127.0.0.1, ephemeral ports, temp data
// directories. (The three-node cluster is in cluster.test.ts.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, FlotillaClient, META_GROUP, NodeError, createNode, decodeKvResult, encodeCommand, type FlotillaNode,
} from 'flotilla';
import { decodeCounterResult, encodeCounterCommand, type CounterCommand } from './counter-machine.js';
import { COUNTER_MODULE, commandFollowing, freePorts, tmpDir, waitFor } from './helpers.js';
// A new cluster's key map: where the built-in KV store would route each key (an embedder's
// state machine is not checked against the map, but keys are spread the same way).
import { initialGroupOf as groupOfKey } from '../cluster-map/initial-group.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const GROUPS = 4;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const counter = (cmd: CounterCommand): Uint8Array => encodeCounterCommand(cmd);

/** The value of a counter result; fails on anything else. */
function valueOf(bytes: Uint8Array): number {
  const r = decodeCounterResult(bytes);
  assert.ok(r.ok && 'value' in r, `expected a value, got ${JSON.stringify(r)}`);
  return r.value;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NodeError, `expected NodeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('a node in this process serves a user state machine in-process and over TCP, and recovers it from a snapshot', { timeout: 90_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-', dirs);
  const options = {
    dataDir, groups: GROUPS, shards: 2, syncForce: true, tickMs: 20,
    snapshotEntries: 8, snapshotKeepEntries: 2,
    stateMachine: { module: COUNTER_MODULE },
  };
  let node: FlotillaNode = await createNode(options);
  try {
    assert.ok(node.ports.raft > 0 && node.ports.client > 0 && node.ports.admin > 0, 'ephemeral ports are bound');
    assert.equal(node.ports.ws, null, 'no WebSocket listener unless asked');
    assert.equal(node.config.nodeId, 1);
    assert.equal(node.config.logLevel, 'warn');
    const one = new Map([[1, node]]);
    const add = async (key: string, n: number): Promise<number> =>
      valueOf((await commandFollowing(one, 1, groupOfKey(key, GROUPS), counter({ op: 'add', key, n }))).result);

    // Writes through the log: each result is what the machine's apply returned.
    // Two keys in every group, so that every group takes a snapshot.
    const keys = ['apples', 'pears'];
    for (let i = 0; keys.length < 2 * GROUPS; i++) {
      const k = `fruit-${i}`;
      if (keys.filter((x) => groupOfKey(x, GROUPS) === groupOfKey(k, GROUPS)).length < 2) keys.push(k);
    }
    const expected = new Map<string, number>();
    for (let i = 0; i < 6 * keys.length; i++) {
      const key = keys[i % keys.length]!;
      const want = (expected.get(key) ?? 0) + i + 1;
      expected.set(key, want);
      assert.equal(await add(key, i + 1), want);
    }

    // Reads: linearizable (ReadIndex) and stale, both answered by the machine's query.
    for (const [key, want] of expected) {
      const g = groupOfKey(key, GROUPS);
      assert.equal(valueOf(await node.command(g, counter({ op: 'read', key }), { read: true })), want);
      assert.equal(valueOf(await node.command(g, counter({ op: 'read', key }), { stale: true })), want);
    }

    // Bad input: apply answers with a result, query's exception becomes BAD_REQUEST.
    const bad = decodeCounterResult(await node.command(1, new TextEncoder().encode('not json')));
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.code, 'BAD_COMMAND');
    await rejectsWith(node.command(1, counter({ op: 'add', key: 'x', n: 1 }), { read: true }), 'BAD_REQUEST');
    await rejectsWith(node.command(1, new Uint8Array(0)), 'BAD_REQUEST');
    await rejectsWith(node.command(0, counter({ op: 'read', key: 'x' })), 'NO_GROUP');
    await rejectsWith(node.command(GROUPS + 1, counter({ op: 'read', key: 'x' })), 'NO_GROUP');

    // The same machine through the client library, over TCP.
    const client = await FlotillaClient.connect({ servers: [`127.0.0.1:${node.ports.client}`] });
    try {
      const g = client.groupOf('apples');
      assert.equal(g, groupOfKey('apples', GROUPS));
      const want = expected.get('apples')! + 1000;
      expected.set('apples', want);
      assert.equal(valueOf(await client.command(g, counter({ op: 'add', key: 'apples', n: 1000 }))), want);
      assert.equal(valueOf(await client.command(g, counter({ op: 'read', key: 'apples' }), { read: true })), want);
      assert.equal(valueOf(await client.command(g, counter({ op: 'read', key: 'apples' }), { stale: true })), want);
      assert.equal(valueOf(await node.command(g, counter({ op: 'read', key: 'apples' }), { read: true })), want);
    } finally {
      await client.close();
    }

    // Snapshots are taken every snapshotEntries applied entries; wait until every data group has
    // one (the meta group, which also lives here, has applied too few entries to take one).
    const data = async () => (await node.admin.status()).groups.filter((g) => g.group !== META_GROUP);
    await waitFor(async () => (await data()).every((s) => s.snapshotIndex > 0), 10_000,
      async () => `a snapshot of every group; status ${JSON.stringify(await data())}`);
    const before = await data();
    assert.equal(before.length, GROUPS);

    await node.stop();
    await rejectsWith(node.command(1, counter({ op: 'read', key: 'x' })), 'UNAVAILABLE');

    // Again on the same data directory: each group's state is its snapshot plus the log after it.
    node = await createNode(options);
    const again = new Map([[1, node]]);
    for (const [key, want] of expected) {
      const g = groupOfKey(key, GROUPS);
      const r = await commandFollowing(again, 1, g, counter({ op: 'read', key }), { read: true });
      assert.equal(valueOf(r.result), want, `${key} after the restart`);
    }
    for (const s of before) {
      const info = decodeCounterResult(await node.command(s.group, counter({ op: 'info' }), { stale: true }));
      assert.ok(info.ok && 'restored' in info, JSON.stringify(info));
      assert.equal(info.restored, true, `group ${s.group} was restored from its snapshot at ${s.snapshotIndex}`);
      assert.ok(info.applied <= s.applied - s.snapshotIndex, `group ${s.group} replayed only the log after its snapshot (${info.applied})`);
    }
    const want = expected.get('pears')! + 5;
    assert.equal(valueOf((await commandFollowing(again, 1, groupOfKey('pears', GROUPS), counter({ op: 'add', key: 'pears', n: 5 }))).result), want);
  } finally {
    await node.stop();
  }
});

test('without a state machine, the node serves the built-in key-value store', { timeout: 60_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-kv-', dirs);
  const node = await createNode({ dataDir, groups: GROUPS, shards: 1, tickMs: 20 });
  try {
    const nodes = new Map([[1, node]]);
    const g = groupOfKey('colour', GROUPS);
    const put = decodeKvResult((await commandFollowing(nodes, 1, g, encodeCommand({ op: 'put', key: 'colour', value: 'teal' }))).result);
    assert.deepEqual(put, { op: 'put' });
    const get = decodeKvResult(await node.command(g, encodeCommand({ op: 'get', key: 'colour' }), { read: true }));
    assert.deepEqual(get, { op: 'get', value: 'teal' });

    const client = await FlotillaClient.connect({ servers: [`127.0.0.1:${node.ports.client}`] });
    try {
      assert.equal(await client.get('colour'), 'teal');
      await client.put('shape', 'round');
      const sg = groupOfKey('shape', GROUPS);
      assert.deepEqual(decodeKvResult(await node.command(sg, encodeCommand({ op: 'get', key: 'shape' }), { stale: true })), { op: 'get', value: 'round' });
    } finally {
      await client.close();
    }
  } finally {
    await node.stop();
  }
});

test('bad options are a ConfigError naming the option, before anything starts', { timeout: 30_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-bad-', dirs);
  const fails = async (options: unknown, ...parts: (string | RegExp)[]): Promise<void> => {
    await assert.rejects(createNode(options as Parameters<typeof createNode>[0]), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
      assert.equal(e.code, 'BAD_CONFIG');
      for (const p of parts) {
        if (typeof p === 'string') assert.ok(e.message.includes(p), `"${e.message}" should mention "${p}"`);
        else assert.match(e.message, p);
      }
      return true;
    });
  };
  await fails(undefined, 'object of options');
  await fails({ groups: 4 }, 'dataDir (option): required');
  await fails({ dataDir, groups: -1 }, 'groups (option)', 'out of range');
  await fails({ dataDir, shards: '2' }, 'shards (option)', 'expected an integer');
  await fails({ dataDir, group: 4 }, 'group (option): not a configuration key', 'did you mean groups?');
  await fails({ dataDir, constructor: 1 }, 'constructor (option): not a configuration key');
  await fails({ dataDir, websocket: 'yes' }, 'websocket (option)', 'auto, uws, ws, off');
  await fails({ dataDir, ticksHeartbeat: 10, ticksElection: 5 }, 'ticksHeartbeat (option), ticksElection (option)', 'shorter than the election timeout');
  await fails({ dataDir, clientPort: 7100, adminPort: 7100 }, 'clientPort (option), adminPort (option)', 'own port');
  const peers = [
    { id: 1, host: '127.0.0.1', raftPort: 7101 },
    { id: 2, host: '127.0.0.1', raftPort: 7111 },
  ];
  await fails({ dataDir, peers }, 'nodeId (option): required when peers lists 2 nodes');
  await fails({ dataDir, peers, nodeId: 3 }, 'peers do not include node 3');
  await fails({ dataDir, peers, nodeId: 2, raftPort: 7200 }, 'peers say node 2 has raftPort 7111, but raftPort is 7200');
  await fails({ dataDir, peers: [{ id: 1, host: '127.0.0.1', raftPort: 7101 }, { id: 2, host: '127.0.0.1', raftPort: 0 }], nodeId: 1 },
    'node 2 has raftPort 0');
  await fails({ dataDir, stateMachine: { module: './counter-machine.js' } }, 'is relative', 'import.meta.url');
  await fails({ dataDir, stateMachine: { module: new URL('./no-such-machine.js', import.meta.url).href } }, 'could not be imported');
  await fails({ dataDir, stateMachine: { module: COUNTER_MODULE, export: 'createMachine' } }, 'has no exported function createMachine');
  await fails({ dataDir, stateMachine: 'counter' }, 'stateMachine (option): expected { module');
  await fails({ dataDir, onFatal: 'log' }, 'onFatal (option): expected a function');
  // Several problems at once are listed together.
  await fails({ dataDir, groups: 1.5, tickMs: 0 }, 'groups (option)', 'tickMs (option)');
  assert.deepEqual(fs.readdirSync(dataDir), [], 'nothing was written to the data directory');
});

test('a node made from a peers list listens on its own entry\'s ports; an absolute path names the machine', { timeout: 60_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-peers-', dirs);
  const [raft, client, admin, ws] = await freePorts(4);
  const node = await createNode({
    dataDir, nodeId: 1, groups: 2, shards: 1, tickMs: 20,
    peers: [{ id: 1, host: '127.0.0.1', raftPort: raft!, clientPort: client!, adminPort: admin!, wsPort: ws! }],
    stateMachine: { module: fileURLToPath(COUNTER_MODULE) },
  });
  try {
    assert.deepEqual(node.ports, { raft, client, admin, ws: null });
    const r = await commandFollowing(new Map([[1, node]]), 1, 1, counter({ op: 'add', key: 'k', n: 3 }));
    assert.equal(valueOf(r.result), 3);
  } finally {
    await node.stop();
  }
});

test('a state machine whose apply throws stops its shard, and the program hears of it through onFatal', { timeout: 60_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-faulty-', dirs);
  const fatal: Error[] = [];
  const node = await createNode({
    dataDir, groups: 2, shards: 1, tickMs: 20,
    stateMachine: { module: new URL('./faulty-machine.js', import.meta.url).href },
    onFatal: (e) => fatal.push(e),
  });
  try {
    const enc = new TextEncoder();
    const nodes = new Map([[1, node]]);
    assert.equal(new TextDecoder().decode((await commandFollowing(nodes, 1, 1, enc.encode('one'))).result), '1');
    await rejectsWith(node.command(1, enc.encode('boom')), 'UNAVAILABLE');
    await waitFor(() => fatal.length > 0, 10_000, 'onFatal');
    assert.equal(fatal.length, 1);
    assert.ok(fatal[0] instanceof NodeError && fatal[0].code === 'UNAVAILABLE', String(fatal[0]));
    assert.match(fatal[0].message, /boom/);
    assert.equal(node.admin.health().serving, false);
    await rejectsWith(node.command(2, enc.encode('two')), 'UNAVAILABLE');
  } finally {
    await node.stop();
  }
});

test('a shard that cannot start makes createNode reject, and onFatal is not called', { timeout: 60_000 }, async () => {
  const dataDir = tmpDir('flotilla-embed-nostart-', dirs);
  const fatal: Error[] = [];
  await assert.rejects(createNode({
    dataDir, groups: 2, shards: 2, tickMs: 20, logLevel: 'silent',
    stateMachine: { module: new URL('./faulty-machine.js', import.meta.url).href, export: 'createNoMachine' },
    onFatal: (e) => fatal.push(e),
  }), (e: unknown) => {
    assert.ok(e instanceof NodeError, String(e));
    assert.equal(e.code, 'UNAVAILABLE');
    assert.match(e.message, /did not start: no machine for group \d/);
    return true;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(fatal, []);
});

/** This process's environment for a child run in another directory: NODE_OPTIONS preloads given by relative path made absolute. */
function childEnv(): NodeJS.ProcessEnv {
  const opts = process.env['NODE_OPTIONS'];
  if (opts === undefined) return process.env;
  return { ...process.env, NODE_OPTIONS: opts.replace(/(--(?:import|require)[= ])(\.\.?\/\S+)/g, (_, flag: string, p: string) => flag + path.resolve(p)) };
}

test('the example program of docs/embedding.md runs as written, with flotilla installed as a package', { timeout: 120_000 }, () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/embedding.md'), 'utf8');
  const files = new Map<string, string>();
  for (const m of doc.matchAll(/```js\n(\/\/ ([\w-]+\.mjs)\n[\s\S]*?)```/g)) files.set(m[2]!, m[1]!);
  assert.deepEqual([...files.keys()].sort(), ['counter-machine.mjs', 'counter-service.mjs']);
  const shown = /```sh\n\$ node counter-service\.mjs\n([\s\S]*?)```/.exec(doc);
  assert.ok(shown !== null, 'the doc shows the output');

  // As `npm install ../flotilla` leaves it: node_modules/flotilla links to the package.
  const dir = tmpDir('flotilla-embed-doc-', dirs);
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'flotilla'), 'dir');
  for (const [name, code] of files) fs.writeFileSync(path.join(dir, name), code);
  const run = (): string[] => {
    const r = spawnSync(process.execPath, ['counter-service.mjs'], { cwd: dir, env: childEnv(), encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, `exit ${r.status} ${r.signal ?? ''}\n${r.stdout}\n${r.stderr}`);
    return r.stdout.split('\n').filter((l) => l.length > 0 && !l.startsWith('{'));
  };
  assert.deepEqual(run(), shown[1]!.trim().split('\n'));
  // "Run it again and the counts carry on from ./counter-data (apples 14, pears 4)."
  assert.match(doc, /apples 14, pears 4/);
  assert.deepEqual(run(), ['apples 14', 'pears 4', 'plums 0', 'client port open']);
});

test('the package name resolves to the built entry point (the "exports" of package.json)', { timeout: 30_000 }, async () => {
  const r = spawnSync(process.execPath, [
    '--input-type=module', '-e',
    "const m = await import('flotilla'); console.log([typeof m.createNode, typeof m.startNode, typeof m.FlotillaClient, typeof m.slotOf].join(' '));",
  ], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'function function function function');
});
