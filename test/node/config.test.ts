// Node configuration: defaults, the precedence of file < environment < flags, the checks that
// turn typos and impossible values into clear errors, the shipped config files and docs; and
// the CLI's argument parsing and cluster planning (pure parts, plus exits that need no node).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ConfigError, configDefaults, configKeys, configWarnings, envName, flagName, loadConfig, parsePeers, type NodeConfig,
} from '../../src/node/config.js';
import { UsageError, parseCommand, parseMembers, parsePositiveInt, parseServers, type CommandSpec } from '../../src/cli/args.js';
import { parseClusterFlags, planCluster } from '../../src/cli/cluster.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'dist/src/cli/flotilla.js');

const tmpDirs: string[] = [];
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

function tmpFile(name: string, content: unknown): string {
  const dir = tmpDir('flotilla-config-');
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Runs `f`, expects a ConfigError, returns its message. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.code, 'BAD_CONFIG');
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

const three = '1@127.0.0.1:7001,2@127.0.0.1:7011,3@127.0.0.1:7021';

test('with no source, the config is the defaults and the node is its own only peer', () => {
  const c = loadConfig({});
  assert.deepEqual(c, configDefaults);
  assert.deepEqual(c.peers, [{ id: 1, host: '127.0.0.1', raftPort: 7001, clientPort: 7002, adminPort: 7003, wsPort: 7004 }]);
  assert.equal(c.shards, Math.min(256, os.availableParallelism()));
  assert.ok(Object.isFrozen(configDefaults) && Object.isFrozen(configDefaults.peers));
  assert.ok(!Object.isFrozen(c), 'a loaded config is the caller\'s to change');
});

test('a flag beats the environment, which beats the file, which beats the default', () => {
  const file = tmpFile('a.json', { syncForce: false, tickMs: 20, groups: 8 });
  const c = loadConfig({
    file,
    env: { FLOTILLA_SYNC_FORCE: 'true', FLOTILLA_TICK_MS: '30', PATH: '/bin' },
    flags: { 'sync-force': 'false' },
  });
  assert.equal(c.syncForce, false, 'flag over env');
  assert.equal(c.tickMs, 30, 'env over file');
  assert.equal(c.groups, 8, 'file over default');
  assert.equal(c.ticksElection, configDefaults.ticksElection, 'default');
});

test('flags are kebab-case with or without dashes; the environment is FLOTILLA_ in upper snake case', () => {
  assert.equal(envName('syncForce'), 'FLOTILLA_SYNC_FORCE');
  assert.equal(envName('nodeId'), 'FLOTILLA_NODE_ID');
  assert.equal(envName('linkSendQueueBytesMax'), 'FLOTILLA_LINK_SEND_QUEUE_BYTES_MAX');
  assert.equal(flagName('pendingBytesHigh'), 'pending-bytes-high');
  const c = loadConfig({ flags: { '--node-id': '2', 'raft-port': '8001', 'client-port': '8002', 'admin-port': '8003', 'ws-port': '8004' } });
  assert.equal(c.nodeId, 2);
  assert.deepEqual(c.peers, [{ id: 2, host: '127.0.0.1', raftPort: 8001, clientPort: 8002, adminPort: 8003, wsPort: 8004 }],
    'the default peer list follows the node\'s own id and ports');
});

test('byte sizes take KiB/MiB/GiB from the environment and flags; booleans take true/false/1/0', () => {
  const c = loadConfig({ env: { FLOTILLA_RING_BYTES: '16MiB', FLOTILLA_SNAP_CHUNK_BYTES: '256k' }, flags: { 'sync-force': '0', 'segment-bytes': '1_048_576' } });
  assert.equal(c.ringBytes, 16 << 20);
  assert.equal(c.snapChunkBytes, 256 << 10);
  assert.equal(c.segmentBytes, 1 << 20);
  assert.equal(c.syncForce, false);
  assert.match(configError(() => loadConfig({ flags: { 'tick-ms': '5k' } })), /tickMs \(flag --tick-ms\): expected an integer, got "5k"/);
});

test('an unknown key is an error in the file and the flags, with a suggestion', () => {
  const file = tmpFile('typo.json', { syncForse: false });
  assert.match(configError(() => loadConfig({ file })), new RegExp(`syncForse \\(file ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\): not a configuration key \\(did you mean syncForce\\?\\)`));
  assert.match(configError(() => loadConfig({ flags: { 'sync-forse': 'true' } })), /flag --sync-forse: not a configuration flag \(did you mean --sync-force\?\)/);
  assert.match(configError(() => loadConfig({ flags: { config: 'x.json' } })), /flag --config: not a configuration flag/);
});

test('an unknown FLOTILLA_ variable is a warning with a suggestion, not an error: the rest of the environment still counts', () => {
  const c = loadConfig({ env: { FLOTILLA_TICKMS: '5', FLOTILLA_FOO: 'bar', FLOTILLA_TICK_MS: '30' } });
  assert.equal(c.tickMs, 30);
  const warnings = configWarnings(c);
  assert.equal(warnings.length, 2, warnings.join('; '));
  assert.ok(warnings.some((w) => /^env FLOTILLA_TICKMS: not a configuration variable, ignored \(did you mean FLOTILLA_TICK_MS\?\)$/.test(w)), warnings.join('; '));
  assert.ok(warnings.some((w) => /^env FLOTILLA_FOO: not a configuration variable, ignored/.test(w)), warnings.join('; '));
  assert.deepEqual(configWarnings(loadConfig({ env: { FLOTILLA_TICK_MS: '30' } })), []);
  // A bad value of a known variable is still an error, warnings or not.
  assert.match(configError(() => loadConfig({ env: { FLOTILLA_FOO: 'bar', FLOTILLA_TICK_MS: 'soon' } })), /tickMs \(env FLOTILLA_TICK_MS\): expected an integer/);
});

test('logFormat and metricsPerGroupMax come from every source like the other keys', () => {
  assert.equal(configDefaults.logFormat, 'auto');
  assert.equal(configDefaults.metricsPerGroupMax, 256);
  const c = loadConfig({ env: { FLOTILLA_LOG_FORMAT: 'pretty', FLOTILLA_METRICS_PER_GROUP_MAX: '10' }, flags: { 'log-format': 'json' } });
  assert.equal(c.logFormat, 'json');
  assert.equal(c.metricsPerGroupMax, 10);
  assert.match(configError(() => loadConfig({ flags: { 'log-format': 'yaml' } })), /logFormat \(flag --log-format\): expected one of auto, json, pretty, got "yaml"/);
});

test('the environment outside FLOTILLA_, FLOTILLA_NATIVE_FREE and empty variables are not read', () => {
  const c = loadConfig({ env: { HOME: '/root', FLOTILLA_NATIVE_FREE: '1', FLOTILLA_TICK_MS: '', NODE_ID: '9' } });
  assert.deepEqual(c, configDefaults);
});

test('types are checked, and each problem names the key and its source', () => {
  const file = tmpFile('types.json', { syncForce: 'yes', tickMs: 1.5, host: 7, websocket: 'uWS', ringBytes: '8MiB' });
  const msg = configError(() => loadConfig({ file }));
  assert.match(msg, /syncForce \(file .*\): expected true or false, got "yes"/);
  assert.match(msg, /tickMs \(file .*\): expected an integer, got 1.5/);
  assert.match(msg, /host \(file .*\): expected a string, got 7/);
  assert.match(msg, /websocket \(file .*\): expected one of auto, uws, ws, off, got "uWS"/);
  assert.match(msg, /ringBytes \(file .*\): expected an integer, got "8MiB"/, 'a file takes JSON numbers');
  assert.match(configError(() => loadConfig({ env: { FLOTILLA_SYNC_FORCE: 'yes' } })), /syncForce \(env FLOTILLA_SYNC_FORCE\): expected true or false, got "yes"/);
  assert.match(configError(() => loadConfig({ flags: { 'log-level': 'loud' } })), /logLevel \(flag --log-level\): expected one of fatal, error/);
  assert.match(configError(() => loadConfig({ flags: { 'data-dir': '' } })), /dataDir \(flag --data-dir\): must not be empty/);
});

test('ranges: ports, ids, ring sizes as powers of two', () => {
  assert.match(configError(() => loadConfig({ flags: { 'client-port': '70000' } })), /clientPort \(flag --client-port\): 70000 is out of range 0\.\.65535/);
  assert.match(configError(() => loadConfig({ flags: { 'node-id': '0' } })), /nodeId \(flag --node-id\): 0 is out of range 1\.\./);
  assert.match(configError(() => loadConfig({ flags: { 'ring-bytes': '3000000' } })), /ringBytes \(flag --ring-bytes\): 3000000 is not a power of two/);
  assert.match(configError(() => loadConfig({ flags: { 'ring-bytes': '32KiB' } })), /ringBytes \(flag --ring-bytes\): 32768 is out of range 65536\.\./);
  assert.match(configError(() => loadConfig({ flags: { shards: '0' } })), /shards \(flag --shards\): 0 is out of range 1\.\.256/);
  // Port 0 asks for an ephemeral port; several listeners may ask for one.
  const c = loadConfig({ flags: { 'raft-port': '0', 'client-port': '0', 'admin-port': '0', 'ws-port': '0' } });
  assert.equal(c.peers[0]!.raftPort, 0);
});

test('relations between keys are checked, naming every key involved and its source', () => {
  assert.match(configError(() => loadConfig({ flags: { 'pending-bytes-low': '8MiB' } })),
    /pendingBytesLow \(flag --pending-bytes-low\), pendingBytesHigh \(default\), pendingBytesMax \(default\): need pendingBytesLow < pendingBytesHigh < pendingBytesMax/);
  assert.match(configError(() => loadConfig({ env: { FLOTILLA_ADMIN_PORT: '7002' }, flags: { peers: '1@127.0.0.1:7001:7002:7002:7004' } })),
    /clientPort \(default\), adminPort \(env FLOTILLA_ADMIN_PORT\): both are 7002/);
  // What the key map cannot describe: more groups than slots, more founding voters than a group holds.
  assert.match(configError(() => loadConfig({ flags: { groups: '16385' } })), /groups \(flag --groups\): 16385 groups: the key map holds at most 16384/);
  const peers16 = Array.from({ length: 16 }, (_, i) => `${i + 1}@127.0.0.1:${7001 + 10 * i}:${7002 + 10 * i}:${7003 + 10 * i}:${7004 + 10 * i}`).join(',');
  assert.match(configError(() => loadConfig({ flags: { peers: peers16, groups: '1' } })), /16 peers would each be a voter of the founding groups; a group has at most 15 voters/);
  assert.equal(loadConfig({ flags: { peers: peers16, groups: '0' } }).peers.length, 16);
  assert.match(configError(() => loadConfig({ flags: { 'ticks-heartbeat': '10' } })), /ticksHeartbeat \(flag --ticks-heartbeat\), ticksElection \(default\): the heartbeat \(10 ticks\) must be shorter/);
  assert.match(configError(() => loadConfig({ flags: { 'ring-bytes': '1MiB', 'frame-bytes-max': '1MiB' } })), /frameBytesMax .*, ringBytes .*: a frame of 1048576 bytes must fit in one ring record with its headers \(at most 261120 bytes/);
  assert.match(configError(() => loadConfig({ flags: { 'link-backoff-ms-min': '5000' } })), /linkBackoffMsMin .*: the first redial delay 5000 ms exceeds the largest 2000 ms/);
  assert.match(configError(() => loadConfig({ flags: { 'link-send-queue-bytes-max': '1MiB' } })), /a link send queue must hold at least one whole link frame/);
  assert.match(configError(() => loadConfig({ flags: { 'inflight-bytes-per-conn-max': '2MiB' } })),
    /inflightBytesPerConnMax \(flag --inflight-bytes-per-conn-max\), pendingBytesHigh \(default\), pendingBytesMax \(default\): need pendingBytesHigh < inflightBytesPerConnMax ≤ pendingBytesMax/);
  assert.match(configError(() => loadConfig({ env: { FLOTILLA_INFLIGHT_BYTES_PER_CONN_MAX: '128MiB' } })), /need pendingBytesHigh < inflightBytesPerConnMax ≤ pendingBytesMax/);
  assert.equal(loadConfig({ flags: { 'inflight-bytes-per-conn-max': '64MiB' } }).inflightBytesPerConnMax, 64 * 1024 * 1024);
});

test('peers: unique ids, this node among them with its own ports, no shared endpoint, no port 0 for others', () => {
  const ok = loadConfig({ flags: { peers: three } });
  assert.deepEqual(ok.peers.map((p) => p.id), [1, 2, 3]);
  assert.match(configError(() => loadConfig({ flags: { peers: '2@127.0.0.1:7011,3@127.0.0.1:7021' } })), /peers \(flag --peers\), nodeId \(default\): peers do not include node 1/);
  assert.match(configError(() => loadConfig({ flags: { peers: `${three},2@10.0.0.2:7001` } })), /node 2 is listed twice/);
  assert.match(configError(() => loadConfig({ flags: { peers: '1@127.0.0.1:7001,2@127.0.0.1:7003' } })), /node 1 adminPort and node 2 raftPort are both 127\.0\.0\.1:7003/);
  assert.match(configError(() => loadConfig({ flags: { peers: '1@127.0.0.1:7001,2@127.0.0.1:0' } })), /node 2 has raftPort 0; other nodes must be reachable/);
  assert.match(configError(() => loadConfig({ flags: { peers: three, 'client-port': '9002' } })),
    /peers \(flag --peers\), clientPort \(flag --client-port\): peers say node 1 has clientPort 7002, but clientPort is 9002/);
});

test('parsePeers fills missing ports with raftPort+1..+3 and reads IPv6 hosts in brackets', () => {
  assert.deepEqual(parsePeers(' 1@a:7001 , 2@[::1]:8001:9001:9002:9003 '), [
    { id: 1, host: 'a', raftPort: 7001, clientPort: 7002, adminPort: 7003, wsPort: 7004 },
    { id: 2, host: '::1', raftPort: 8001, clientPort: 9001, adminPort: 9002, wsPort: 9003 },
  ]);
  for (const bad of ['', '1@a', 'a@b:1', '1@a:1:2', '1@a:99999', '0@a:1', '1:a@7001']) {
    assert.throws(() => parsePeers(bad), ConfigError, bad);
  }
});

test('peers in a file are objects, with optional ports, and unknown fields are errors', () => {
  const file = tmpFile('peers.json', { nodeId: 2, raftPort: 7011, clientPort: 7012, adminPort: 7013, wsPort: 7014, peers: [
    { id: 1, host: '127.0.0.1', raftPort: 7001 },
    { id: 2, host: '127.0.0.1', raftPort: 7011, clientPort: 7012, adminPort: 7013, wsPort: 7014 },
  ] });
  const c = loadConfig({ file });
  assert.deepEqual(c.peers[0], { id: 1, host: '127.0.0.1', raftPort: 7001, clientPort: 7002, adminPort: 7003, wsPort: 7004 });
  const bad = tmpFile('peers-bad.json', { peers: [{ id: 1, host: '127.0.0.1', raftPort: 7001, port: 1 }] });
  assert.match(configError(() => loadConfig({ file: bad })), /peers \(file .*\): peers\[0\]: unknown field port/);
  const asString = tmpFile('peers-string.json', { peers: '1@127.0.0.1:7001' });
  assert.equal(loadConfig({ file: asString }).peers.length, 1);
});

test('a missing file, bad JSON and a non-object are errors naming the file', () => {
  assert.match(configError(() => loadConfig({ file: '/nonexistent/flotilla.json' })), /config file \/nonexistent\/flotilla\.json: not found/);
  assert.match(configError(() => loadConfig({ file: tmpFile('bad.json', '{ "tickMs": ') })), /config file .*bad\.json: not valid JSON/);
  assert.match(configError(() => loadConfig({ file: tmpFile('arr.json', '[1]') })), /must be a JSON object/);
});

test('several problems are reported together', () => {
  try {
    loadConfig({ flags: { 'tick-ms': 'x', 'node-id': '-1', bogus: '1' } });
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.problems.length, 3, e.message);
  }
});

test('config/single-node.json is the defaults; config/cluster-3 describes one 3-node cluster', () => {
  const single = loadConfig({ file: path.join(ROOT, 'config/single-node.json') });
  assert.deepEqual(single, configDefaults);
  const written = JSON.parse(fs.readFileSync(path.join(ROOT, 'config/single-node.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(written).sort(), configKeys.filter((k) => k !== 'peers' && k !== 'shards').sort());

  const nodes: NodeConfig[] = [1, 2, 3].map((i) => loadConfig({ file: path.join(ROOT, `config/cluster-3/node-${i}.json`) }));
  for (const [i, c] of nodes.entries()) {
    const base = 7001 + 10 * i;
    assert.equal(c.nodeId, i + 1);
    assert.deepEqual([c.raftPort, c.clientPort, c.adminPort, c.wsPort], [base, base + 1, base + 2, base + 3]);
    assert.equal(c.dataDir, `./data/node-${i + 1}`);
    assert.deepEqual(c.peers, nodes[0]!.peers, 'every node lists the same peers');
    assert.equal(c.shards, nodes[0]!.shards);
  }
  const unit = fs.readFileSync(path.join(ROOT, 'config/flotilla.service'), 'utf8');
  assert.match(unit, /^ExecStart=\S*node \/opt\/flotilla\/dist\/src\/cli\/flotilla\.js start --config \/etc\/flotilla\/flotilla\.json$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^LimitNOFILE=\d+$/m);
});

test('docs/configuration.md lists every key with its environment variable and flag', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');
  for (const k of configKeys) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${k}\` |`));
    assert.ok(row !== undefined, `a row for ${k}`);
    assert.ok(row.includes(`\`${envName(k)}\``), `${k}: ${envName(k)}`);
    assert.ok(row.includes(`\`--${flagName(k)}\``), `${k}: --${flagName(k)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// CLI

test('parseCommand: operands, --name value, --name=value, switches, -- and the usage errors', () => {
  const spec = {
    name: 'flotilla kv get', operands: 'KEY', operandsMin: 1, operandsMax: 1, summary: 'x',
    options: { servers: { type: 'string', help: 's' }, stale: { type: 'boolean', help: 'b' }, 'tick-ms': { type: 'string', help: 't' } },
  } as const satisfies CommandSpec;
  assert.deepEqual(parseCommand(spec, ['k', '--servers', 'h:1', '--stale']), { help: false, dryRun: false, values: { servers: 'h:1', stale: true }, operands: ['k'] });
  assert.deepEqual(parseCommand(spec, ['--tick-ms=-1', 'k']).values, { 'tick-ms': '-1' });
  assert.deepEqual(parseCommand(spec, ['--', '--k']).operands, ['--k']);
  assert.equal(parseCommand(spec, ['-h']).help, true);
  assert.equal(parseCommand(spec, ['k', '--dry-run']).dryRun, true);
  assert.throws(() => parseCommand(spec, ['k', '--servers']), /flotilla kv get: flag --servers needs a value/);
  assert.throws(() => parseCommand(spec, ['k', '--servers', '--stale']), /flag --servers needs a value \(for one that starts with "-", write --servers=VALUE\)/);
  assert.throws(() => parseCommand(spec, ['k', '--servers', 'a:1', '--servers', 'b:2']), /flag --servers is given twice/);
  assert.throws(() => parseCommand(spec, ['k', '--stale=yes']), /flag --stale is a switch and takes no value/);
  assert.throws(() => parseCommand(spec, ['k', '--server', 'a:1']), /unknown flag --server \(did you mean --servers\?\)/);
  assert.throws(() => parseCommand(spec, []), /takes 1 operand\(s\) \(KEY\), got 0/);
  assert.throws(() => parseCommand(spec, ['a', 'b']), UsageError);
});

test('CLI operands: servers, members and positive integers are checked', () => {
  assert.deepEqual(parseServers('127.0.0.1:7002, [::1]:7012'), ['127.0.0.1:7002', '[::1]:7012']);
  assert.throws(() => parseServers('127.0.0.1'), /not host:port/);
  assert.throws(() => parseServers('h:0'), /not host:port/);
  assert.throws(() => parseServers(','), /at least one/);
  assert.deepEqual(parseMembers('1, 2,3'), [1, 2, 3]);
  assert.throws(() => parseMembers('1,1'), /twice/);
  assert.throws(() => parseMembers(undefined), /--members is required/);
  assert.equal(parsePositiveInt('12', 'x'), 12);
  assert.throws(() => parsePositiveInt('0', 'x'), /x must be 1\.\./);
  assert.throws(() => parsePositiveInt('1.5', 'x'), /positive integer/);
});

test('cluster: node i gets ports base+10(i-1)..+3, its data under DIR/node-i, and every node as a peer', () => {
  const dir = tmpDir('flotilla-cluster-plan-');
  const o = parseClusterFlags({ nodes: '3', dir, 'base-port': '9001', groups: '4', 'sync-force': 'false', shards: '1', 'tick-ms': '20' });
  assert.deepEqual(o, { nodes: 3, dir, basePort: 9001, basePortGiven: true, host: '127.0.0.1', groups: 4, syncForce: false, shards: 1, tickMs: 20 });
  const plans = planCluster(o);
  assert.deepEqual(plans.map((p) => p.configFile), [1, 2, 3].map((i) => path.join(dir, `node-${i}`, 'flotilla.json')));
  for (const p of plans) {
    fs.mkdirSync(path.dirname(p.configFile), { recursive: true });
    fs.writeFileSync(p.configFile, JSON.stringify(p.config));
    const c = loadConfig({ file: p.configFile });
    const base = 9001 + 10 * (p.id - 1);
    assert.deepEqual([c.nodeId, c.raftPort, c.clientPort, c.adminPort, c.wsPort], [p.id, base, base + 1, base + 2, base + 3]);
    assert.equal(c.dataDir, path.join(dir, `node-${p.id}`, 'data'));
    assert.deepEqual(c.peers.map((x) => x.raftPort), [9001, 9011, 9021]);
    assert.equal(c.groups, 4);
    assert.equal(c.syncForce, false);
    assert.equal(c.tickMs, 20);
  }
  assert.equal(parseClusterFlags({ nodes: '1' }).dir, './data/cluster');
  assert.equal(parseClusterFlags({ nodes: '1' }).basePort, 7001);
  assert.throws(() => parseClusterFlags({}), /--nodes must be a positive integer/);
  assert.throws(() => parseClusterFlags({ nodes: '3', 'base-port': '65520' }), /no room for 3 nodes/);
});

test('the CLI exits 2 with "flotilla: BAD_CONFIG" or "flotilla: USAGE" before starting anything', { timeout: 30_000 }, () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env['PATH'] ?? '' } });
  const bad = run(['start', '--sync-force', 'maybe']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /^flotilla: BAD_CONFIG: syncForce \(flag --sync-force\): expected true or false, got "maybe"$/m);
  const missing = run(['start', '--config', '/nonexistent.json']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /flotilla: BAD_CONFIG: config file \/nonexistent\.json: not found/);
  const usage = run(['kv', 'put', 'k']);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /flotilla: USAGE: flotilla kv put takes 2 operand\(s\) \(KEY VALUE\), got 1/);
  const unknown = run(['launch']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "launch"/);
  const help = run(['help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /start \[--config FILE\]/);
});

test('kv against a port nobody listens on exits 1 with "flotilla: UNAVAILABLE"', { timeout: 30_000 }, async () => {
  const net = await import('node:net');
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const r = spawnSync(process.execPath, [CLI, 'kv', 'get', 'k', '--servers', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^flotilla: UNAVAILABLE: /m);
});

test('cluster runs its nodes, says when all are healthy, reports one that dies, and stops the rest on SIGTERM', { timeout: 60_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const net = await import('node:net');
  const dir = tmpDir('flotilla-cluster-run-');
  // A stand-in for `flotilla start`: serves GET /health on its admin port until SIGTERM.
  const fake = path.join(dir, 'fake-node.mjs');
  fs.writeFileSync(fake, `
    import http from 'node:http';
    import fs from 'node:fs';
    const c = JSON.parse(fs.readFileSync(process.argv[process.argv.indexOf('--config') + 1], 'utf8'));
    const srv = http.createServer((req, res) => res.end('{}')).listen(c.adminPort, '127.0.0.1', () => console.log('fake node ' + c.nodeId + ' up'));
    process.on('SIGTERM', () => { console.log('fake node ' + c.nodeId + ' stopping'); srv.close(); process.exit(0); });
  `);
  const free = (port: number) => new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  let base = 0;
  for (let attempt = 0; attempt < 50 && base === 0; attempt++) {
    const b = 30_000 + 10 * Math.floor(Math.random() * 2000);
    if (await free(b + 2) && await free(b + 12)) base = b;
  }
  assert.ok(base > 0, 'free ports');
  const clusterJs = path.join(ROOT, 'dist/src/cli/cluster.js');
  const driver = spawn(process.execPath, ['--input-type=module', '-e', `
    const { runCluster } = await import(${JSON.stringify(new URL(`file://${clusterJs}`).href)});
    await runCluster({ nodes: 2, dir: ${JSON.stringify(dir)}, basePort: ${base}, host: '127.0.0.1', shards: 1 }, ${JSON.stringify(fake)});
  `], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  driver.stdout.on('data', (d: Buffer) => void (out += d.toString()));
  driver.stderr.on('data', (d: Buffer) => void (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => driver.on('exit', (code) => resolve(code)));
  const until = async (re: RegExp, what: string): Promise<RegExpExecArray> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const m = re.exec(out);
      if (m !== null) return m;
      if (Date.now() > deadline) throw new Error(`no ${what} in 20 s; output:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await until(/^cluster ready/m, '"cluster ready"');
    const pids = new Map<number, number>();
    for (const m of out.matchAll(/^node (\d+) pid (\d+) raft [\d.]+:(\d+) client [\d.]+:(\d+) admin [\d.]+:(\d+) ws [\d.]+:(\d+)$/gm)) {
      pids.set(Number(m[1]), Number(m[2]));
      assert.equal(Number(m[3]), base + 10 * (Number(m[1]) - 1));
      assert.equal(Number(m[5]), base + 10 * (Number(m[1]) - 1) + 2);
    }
    assert.deepEqual([...pids.keys()].sort(), [1, 2], out);
    assert.match(out, /^\[node 1\] fake node 1 up$/m);
    assert.ok(fs.existsSync(path.join(dir, 'node-2', 'flotilla.json')));

    process.kill(pids.get(2)!, 'SIGKILL');
    await until(/^node 2 pid \d+ exited \(signal SIGKILL\); 1 node\(s\) still running$/m, 'the report of node 2\'s death');

    driver.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.match(out, /^\[node 1\] fake node 1 stopping$/m);
    assert.match(out, /^cluster stopped$/m);
    assert.throws(() => process.kill(pids.get(1)!, 0), /ESRCH/, 'node 1 is gone');
  } finally {
    if (driver.exitCode === null) driver.kill('SIGKILL');
  }
});
