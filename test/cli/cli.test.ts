// The `flotilla` command as a user meets it: help per command, --version, --dry-run, --json,
// FLOTILLA_SERVERS, `config` with the source of each value, `status`, remove-group of a
// missing group, the wrong-port hints, and the warning for cluster flags a reused config
// overrides. The pure parts are tested alone; the rest against a real 3-node cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePortBase, planCluster, reuseConflicts, parseClusterFlags } from '../../src/cli/cluster.js';
import { adminOfClient, judgeStatus, type NodeProbe } from '../../src/cli/status.js';
import { wrongPort } from '../../src/client/connection.js';
import type { GroupStatus } from '../../src/shard/task.js';
import { CLI, runCli, startCluster, waitFor, type TestCluster } from '../cluster/cluster-harness.js';
import { META_GROUP } from '../../src/cluster/meta-group.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const cli = runCli;

test('every command has its own help; help COMMAND says the same; --version prints the package version', async () => {
  const get = await cli(['kv', 'get', '--help']);
  assert.equal(get.status, 0);
  assert.match(get.stdout, /^usage: flotilla kv get KEY \[flags\]/);
  assert.match(get.stdout, /--stale/);
  assert.deepEqual((await cli(['help', 'kv', 'get'])).stdout, get.stdout);
  const put = await cli(['kv', 'put', '-h']);
  assert.match(put.stdout, /^usage: flotilla kv put KEY VALUE/);
  assert.doesNotMatch(put.stdout, /--stale/);
  const status = await cli(['status', '--help']);
  assert.match(status.stdout, /--lag-entries N/);
  const start = await cli(['start', '--help']);
  assert.match(start.stdout, /--sync-force VALUE +syncForce \(env FLOTILLA_SYNC_FORCE; default true\)/);
  const bench = await cli(['bench', '--help']);
  assert.match(bench.stdout, /^usage: flotilla bench/);
  assert.match(bench.stdout, /--echo-baseline S/);
  const cluster = await cli(['cluster', '--help']);
  assert.match(cluster.stdout, /--base-port P/);
  for (const args of [['--version'], ['version']]) {
    const v = await cli(args);
    assert.equal(v.status, 0);
    assert.equal(v.stdout, `flotilla ${VERSION}\n`);
  }
  assert.deepEqual(JSON.parse((await cli(['version', '--json'])).stdout), { version: VERSION });
});

test('usage errors exit 2 with a stable code; --json adds the error as JSON on stdout', async () => {
  const r = await cli(['kv', 'get', 'k', '--sever', 'h:1', '--json']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^flotilla: USAGE: flotilla kv get: unknown flag --sever \(did you mean --servers\?\)/);
  assert.equal(JSON.parse(r.stdout).error.code, 'USAGE');
  const twice = await cli(['status', '--servers', 'a:1', '--servers', 'b:2']);
  assert.equal(twice.status, 2);
  assert.match(twice.stderr, /flag --servers is given twice/);
  const noop = await cli(['admin', 'move-group', '1']);
  assert.equal(noop.status, 2);
  assert.match(noop.stderr, /admin has no command "move-group"/);
});

test('--dry-run checks and prints what would run; --servers wins over FLOTILLA_SERVERS, which wins over the default', async () => {
  const dflt = JSON.parse((await cli(['kv', 'get', 'k', '--dry-run'])).stdout);
  assert.deepEqual(dflt.servers, ['127.0.0.1:7002']);
  const env = { FLOTILLA_SERVERS: '10.0.0.1:7002,10.0.0.2:7012' };
  assert.deepEqual(JSON.parse((await cli(['kv', 'get', 'k', '--dry-run'], env)).stdout).servers, ['10.0.0.1:7002', '10.0.0.2:7012']);
  assert.deepEqual(JSON.parse((await cli(['kv', 'get', 'k', '--servers', 'h:9', '--dry-run'], env)).stdout).servers, ['h:9']);
  const bad = await cli(['kv', 'get', 'k', '--dry-run'], { FLOTILLA_SERVERS: 'nope' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /FLOTILLA_SERVERS: "nope" is not host:port/);
  // status maps client ports to admin ports (client + 1), or takes --admin as given.
  assert.deepEqual(JSON.parse((await cli(['status', '--dry-run'], env)).stdout).admin, ['10.0.0.1:7003', '10.0.0.2:7013']);
  assert.deepEqual(JSON.parse((await cli(['status', '--admin', 'h:1', '--dry-run'], env)).stdout).admin, ['h:1']);
  // start checks its whole configuration without starting anything; FLOTILLA_SERVERS is not a config key but is allowed.
  const start = await cli(['start', '--tick-ms', '7', '--dry-run'], env);
  assert.equal(start.status, 0, start.stderr);
  assert.equal(JSON.parse(start.stdout).config.tickMs, 7);
  const badStart = await cli(['start', '--tick-ms', '0', '--dry-run']);
  assert.equal(badStart.status, 2);
  assert.match(badStart.stderr, /BAD_CONFIG: tickMs \(flag --tick-ms\)/);
  assert.equal((await cli(['cluster', '--nodes', '3', '--dry-run'])).status, 0);
  assert.equal((await cli(['cluster', '--dry-run'])).status, 2);
  assert.equal((await cli(['bench', '--nodes', '1', '--op', 'mixed', '--dry-run'])).status, 0);
  assert.match((await cli(['bench', '--op', 'scan', '--dry-run'])).stderr, /--op must be one of put, get, mixed/);
});

test('config prints every key with its value and source: default, file, env, flag', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-cli-config-'));
  try {
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ groups: 8, tickMs: 20 }));
    const r = await cli(['config', '--config', file, '--tick-ms', '30', '--json'], { FLOTILLA_SHARDS: '2' });
    assert.equal(r.status, 0, r.stderr);
    const keys = JSON.parse(r.stdout).keys;
    assert.deepEqual(keys.groups, { value: 8, source: 'file', from: file });
    assert.deepEqual(keys.tickMs, { value: 30, source: 'flag', from: 'tick-ms' });
    assert.deepEqual(keys.shards, { value: 2, source: 'env', from: 'FLOTILLA_SHARDS' });
    assert.deepEqual(keys.syncForce, { value: true, source: 'default' });
    const text = await cli(['config', '--config', file]);
    assert.match(text.stdout, /^groups +8 +\(file .*c\.json\)$/m);
    assert.match(text.stdout, /^syncForce +true +\(default\)$/m);
    const bad = await cli(['config', '--groups', 'many']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /BAD_CONFIG: groups \(flag --groups\)/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster: a flag that a reused config overrides is named in a warning, with both values', () => {
  const o = parseClusterFlags({ nodes: '1', groups: '8', 'sync-force': 'false' });
  const [plan] = planCluster(o);
  const w = reuseConflicts(o, plan!, { ...plan!.config, groups: 64, syncForce: false });
  assert.equal(w.length, 1);
  assert.match(w[0]!, /^node 1: --groups 8 is ignored: .*flotilla\.json has groups 64/);
  assert.deepEqual(reuseConflicts(o, plan!, { ...plan!.config, groups: 8 }), []);
  // Not given: nothing to warn about, whatever the file says.
  const bare = parseClusterFlags({ nodes: '1' });
  assert.deepEqual(reuseConflicts(bare, planCluster(bare)[0]!, { groups: 3, raftPort: 9001 }), []);
});

test('cluster on a reused directory: --groups 8 where the config says 64 is a warning, and the node runs on 64', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-cli-reuse-'));
  try {
    const base = await freePortBase(1, '127.0.0.1');
    const [plan] = planCluster({ nodes: 1, dir, basePort: base, host: '127.0.0.1', shards: 1 });
    fs.mkdirSync(path.dirname(plan!.configFile), { recursive: true });
    fs.writeFileSync(plan!.configFile, JSON.stringify({ ...plan!.config, groups: 64, logLevel: 'warn' }));
    const child = spawn(process.execPath, [CLI, 'cluster', '--nodes', '1', '--dir', dir, '--base-port', String(base), '--groups', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('cluster ready') || child.exitCode !== null, 40_000, 'cluster ready');
      assert.match(out, /flotilla cluster: warning: node 1: --groups 8 is ignored: .*flotilla\.json has groups 64/);
      const status = await fetch(`http://127.0.0.1:${base + 2}/status`, { signal: AbortSignal.timeout(5000) });
      // The 64 data groups of the config file, and the meta group.
      assert.equal(((await status.json()) as { groups: unknown[] }).groups.length, 65);
    } finally {
      child.kill('SIGTERM');
      await closed;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('status judging: leads, follows, lagging behind the leader\'s commit, leaderless; healthy only when all is well', () => {
  const g = (group: number, role: GroupStatus['role'], leader: number, commit: number, applied: number): GroupStatus => ({
    group, role, leader, term: 1, commit, applied, lastIndex: commit, snapshotIndex: 0, voters: [1, 2], learners: [],
  });
  const probe = (admin: string, nodeId: number, groups: GroupStatus[]): NodeProbe => ({
    admin, health: { serving: true, nodeId, shards: [] }, status: { nodeId, groups }, error: null,
  });
  const r = judgeStatus([
    probe('a:3', 1, [g(1, 'leader', 1, 5000, 5000), g(2, 'follower', 2, 90, 90)]),
    probe('b:3', 2, [g(1, 'follower', 1, 3000, 3000), g(2, 'leader', 2, 100, 100), g(3, 'candidate', 0, 7, 7)]),
    { admin: 'c:3', health: null, status: null, error: 'ECONNREFUSED' },
  ], 1000);
  assert.deepEqual(r.nodes[0]!.leads, [1]);
  assert.deepEqual(r.nodes[0]!.follows, [2]);
  assert.deepEqual(r.nodes[0]!.lagging, []);
  assert.deepEqual(r.nodes[1]!.lagging, [{ group: 1, applied: 3000, commit: 5000 }]);
  assert.deepEqual(r.nodes[1]!.leaderless, [3]);
  assert.equal(r.nodes[2]!.reachable, false);
  assert.equal(r.healthy, false);
  assert.equal(judgeStatus([probe('a:3', 1, [g(1, 'leader', 1, 5, 5)])], 1000).healthy, true);
  assert.equal(adminOfClient('127.0.0.1:7002'), '127.0.0.1:7003');
  assert.equal(adminOfClient('[::1]:7012'), '[::1]:7013');
});

test('the client tells an HTTP answer or a peer hello from a frame', () => {
  assert.match(wrongPort(Buffer.from('HTTP/1.1 400 Bad Request\r\n')) ?? '', /admin HTTP port/);
  assert.match(wrongPort(Buffer.from([0x31, 0x54, 0x4c, 0x46, 1, 0, 0, 0])) ?? '', /Raft port/);
  const frame = Buffer.alloc(16);
  frame.writeUInt32LE(16, 0);
  assert.equal(wrongPort(frame), null);
});

let cluster: TestCluster;

before(async () => {
  cluster = await startCluster({ nodes: 3, groups: 4, shards: 1 });
  for (const id of [1, 2, 3]) await waitFor(async () => (await cluster.status(id)).every((s) => s.leader !== 0), 30_000, `node ${id} sees every leader`);
}, { timeout: 90_000 });

after(async () => {
  await cluster?.stop();
}, { timeout: 30_000 });

test('kv put, get and delete with --json; FLOTILLA_SERVERS instead of --servers', { timeout: 90_000 }, async () => {
  const env = { FLOTILLA_SERVERS: cluster.servers().join(',') };
  const put = await cli(['kv', 'put', 'greeting', 'hello', '--json'], env);
  assert.equal(put.status, 0, put.stderr);
  assert.deepEqual(JSON.parse(put.stdout), { ok: true, key: 'greeting' });
  assert.deepEqual(JSON.parse((await cli(['kv', 'get', 'greeting', '--json'], env)).stdout), { key: 'greeting', found: true, value: 'hello' });
  assert.equal((await cli(['kv', 'get', 'greeting'], env)).stdout, 'hello\n');
  assert.deepEqual(JSON.parse((await cli(['kv', 'delete', 'greeting', '--json'], env)).stdout), { key: 'greeting', existed: true });
  assert.deepEqual(JSON.parse((await cli(['kv', 'delete', 'greeting', '--json'], env)).stdout), { key: 'greeting', existed: false });
  assert.deepEqual(JSON.parse((await cli(['kv', 'get', 'greeting', '--json', '--stale'], env)).stdout), { key: 'greeting', found: false, value: null });
  assert.equal((await cli(['kv', 'get', 'greeting'], env)).stdout, '(nil)\n');
});

test('status: every node serving, each group led once, none lagging or leaderless; exit 1 when a node is unreachable', { timeout: 60_000 }, async () => {
  const servers = cluster.servers().join(',');
  const r = await cli(['status', '--servers', servers, '--json']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as ReturnType<typeof judgeStatus>;
  assert.equal(report.healthy, true);
  assert.deepEqual(report.nodes.map((n) => n.nodeId), [1, 2, 3]);
  // The four data groups and the meta group (every node of three hosts it), each led once.
  assert.deepEqual(report.nodes.flatMap((n) => n.leads).sort((a, b) => a - b), [1, 2, 3, 4, META_GROUP]);
  for (const n of report.nodes) {
    assert.equal(n.serving, true);
    assert.equal(n.groups, 5);
    assert.equal(n.leads.length + n.follows.length, 5);
    assert.deepEqual(n.leaderless, []);
  }
  const text = await cli(['status', '--servers', servers]);
  assert.match(text.stdout, /^node 1 \(admin 127\.0\.0\.1:\d+\): serving; 5 groups, leads \d, follows \d, lagging 0, leaderless 0$/m);
  assert.match(text.stdout, /^cluster: healthy$/m);
  // A client port nobody listens on (so its admin port + 1 is nobody's either).
  const down = await cli(['status', '--servers', `${servers},127.0.0.1:1`]);
  assert.equal(down.status, 1);
  assert.match(down.stdout, /node \? \(admin 127\.0\.0\.1:2\): unreachable/);
});

test('admin: remove-group of a group no server hosts is NO_GROUP (exit 1); add, remove, remove again', { timeout: 60_000 }, async () => {
  const env = { FLOTILLA_SERVERS: cluster.servers().join(',') };
  const missing = await cli(['admin', 'remove-group', '9999'], env);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^flotilla: NO_GROUP: no server listed hosts group 9999/m);
  const missingJson = JSON.parse((await cli(['admin', 'remove-group', '9999', '--json'], env)).stdout);
  assert.equal(missingJson.ok, false);
  assert.equal(missingJson.code, 'NO_GROUP');
  assert.equal(missingJson.absent.length, 3);
  const add = await cli(['admin', 'add-group', '101', '--members', '1,2,3', '--json'], env);
  assert.equal(add.status, 0, add.stderr);
  assert.deepEqual(JSON.parse(add.stdout).members, [1, 2, 3]);
  const removed = await cli(['admin', 'remove-group', '101', '--json'], env);
  assert.equal(removed.status, 0, removed.stderr);
  assert.equal(JSON.parse(removed.stdout).removed.length, 3);
  assert.equal((await cli(['admin', 'remove-group', '101'], env)).status, 1, 'a removal retried after success: NO_GROUP');
});

test('admin transfer-leader through a follower reaches the leader (it answers NOT_LEADER, the CLI goes on)', { timeout: 60_000 }, async () => {
  const G = 1;
  const leaders = await cluster.leaders([1, 2, 3]);
  const from = leaders.get(G)!;
  const to = [1, 2, 3].find((id) => id !== from)!;
  const third = [1, 2, 3].find((id) => id !== from && id !== to)!;
  // The follower first: it cannot transfer, the leader can.
  const servers = [third, from].map((id) => `127.0.0.1:${cluster.node(id).clientPort}`).join(',');
  const r = await cli(['admin', 'transfer-leader', String(G), '--to', String(to), '--servers', servers]);
  assert.equal(r.status, 0, r.stderr);
  await waitFor(async () => (await cluster.leaders([1, 2, 3])).get(G) === to, 20_000, `node ${to} leads group ${G}`);
});

test('pointed at the admin port the client says WRONG_PORT; at the Raft port, that it may be the Raft port', { timeout: 60_000 }, async () => {
  const n = cluster.node(1);
  const admin = await cli(['kv', 'get', 'k', '--servers', `127.0.0.1:${n.adminPort}`]);
  assert.equal(admin.status, 1);
  assert.match(admin.stderr, /^flotilla: WRONG_PORT: 127\.0\.0\.1:\d+ answered in HTTP: this looks like the admin HTTP port/m);
  const raft = await cli(['kv', 'get', 'k', '--servers', `127.0.0.1:${n.raftPort}`]);
  assert.equal(raft.status, 1);
  assert.match(raft.stderr, /is this the Raft port\?/);
});
