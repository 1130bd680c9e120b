// /metrics of a real node, as Prometheus and Grafana meet it: `promtool check metrics` finds
// nothing to say about a scrape (latency as histograms, counters named as counters), and every
// metric the Grafana dashboard in config/ queries is in a scrape.
//
// promtool comes with Debian's `prometheus` package. When it is missing and the test runs as
// root with apt, the test installs it; without it the test is skipped with the reason, except
// in CI (CI=true), where it must run.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/node/config.js';
import { startNode, type FlotillaNode } from '../../src/node/node.js';
import { encodeCommand } from '../../src/kv/kv-state-machine.js';
import { slotOf } from '../../src/cluster/slots.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const APT_MS_MAX = 600_000;

/** Runs promtool if it is there or can be installed; otherwise says why not. */
function findPromtool(): { ok: true } | { ok: false; why: string } {
  const has = (): boolean => spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
  if (has()) return { ok: true };
  if (process.getuid?.() !== 0) return { ok: false, why: 'promtool is not installed and the test is not root (apt-get install prometheus)' };
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return { ok: false, why: 'promtool is not installed and there is no apt-get' };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: APT_MS_MAX });
  const policy = spawnSync('apt-cache', ['policy', 'prometheus'], { encoding: 'utf8', env, timeout: 60_000 });
  if (!/Candidate: (?!\(none\))\S+/.test(policy.stdout ?? '')) return { ok: false, why: `apt has no prometheus package: ${policy.stdout ?? ''}${policy.stderr ?? ''}` };
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], { encoding: 'utf8', env, timeout: APT_MS_MAX });
  if (!has()) return { ok: false, why: `apt-get install prometheus did not give promtool (status ${install.status}): ${(install.stderr ?? '').slice(-2000)}` };
  return { ok: true };
}

function requirePromtool(t: TestContext): boolean {
  const found = findPromtool();
  if (found.ok) return true;
  if (process.env['CI'] === 'true') assert.fail(`CI must run promtool: ${found.why}`);
  t.skip(found.why);
  return false;
}

function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A node on ephemeral ports with 2 shards and 4 groups that has served some writes and reads. */
async function busyNode(dir: string, flags: Record<string, string> = {}): Promise<FlotillaNode> {
  const config = loadConfig({
    flags: {
      'data-dir': dir, 'raft-port': '0', 'client-port': '0', 'admin-port': '0', 'ws-port': '0', websocket: 'off',
      shards: '2', groups: '4', 'log-level': 'warn', 'tick-ms': '20', ...flags,
    },
  });
  const node = await startNode(config);
  const deadline = Date.now() + 20_000;
  // Keys of each group's slots: once the map is made, a key another group owns is WRONG_GROUP.
  while (node.keyMap.version === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const keyOf = (g: number, i: number): string => {
    for (let n = 0; n < 100_000; n++) if (node.keyMap.ownerOf(slotOf(`k${i}-${n}`)) === g) return `k${i}-${n}`;
    throw new Error(`no key of group ${g} in map version ${node.keyMap.version}`);
  };
  for (let g = 1; g <= 4; g++) {
    for (let i = 0; i < 5; i++) {
      for (;;) {
        try {
          await node.command(g, encodeCommand({ op: 'put', key: keyOf(g, i), value: `v${i}` }));
          break;
        } catch (e) {
          // A fresh single-node group answers NOT_LEADER until it has elected itself.
          if (Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    await node.command(g, encodeCommand({ op: 'get', key: keyOf(g, 0) }), { read: true });
  }
  return node;
}

async function scrape(node: FlotillaNode): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${node.ports.admin}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return res.text();
}

/** Every metric name a scrape declares (# TYPE), with a histogram's _bucket, _sum and _count. */
function declaredNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
    out.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(m[1]! + s);
  }
  return out;
}

test('promtool: a real node\'s /metrics passes check metrics; latency is a histogram; a known-bad exposition fails', { timeout: APT_MS_MAX * 2 + 60_000 }, async (t) => {
  if (!requirePromtool(t)) return;
  // The check can fail: promtool rejects a gauge named like a counter and a quantile gauge.
  const bad = promtool('# HELP x_total x\n# TYPE x_total gauge\nx_total 1\n');
  assert.notEqual(bad.status, 0, `promtool accepted a bad exposition: ${bad.out}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-promtool-'));
  const node = await busyNode(dir);
  try {
    const text = await scrape(node);
    const r = promtool(text);
    assert.equal(r.status, 0, `promtool check metrics:\n${r.out}`);
    assert.equal(r.out.trim(), '', `promtool has nothing to say:\n${r.out}`);
    assert.match(text, /^# TYPE flotilla_request_duration_seconds histogram$/m);
    const count = /^flotilla_request_duration_seconds_count\{shard="0"\} (\d+)$/m.exec(text);
    assert.ok(count !== null && Number(count[1]) >= 12, 'shard 0 counted its requests (2 groups x 6)');
    assert.match(text, new RegExp(`^flotilla_request_duration_seconds_bucket\\{shard="0",le="\\+Inf"\\} ${count[1]}$`, 'm'), '+Inf equals the count');
    assert.match(text, /^flotilla_wal_append_duration_seconds_bucket\{shard="1",le="[\d.e-]+"\} \d+$/m);
    assert.match(text, /^flotilla_node_info\{node_id="1",version="[^"]+",node_version="[^"]+"\} 1$/m);
    // The 4 data groups and the meta group (0xfffffffe, on shard 0xfffffffe % 2 = 0).
    assert.equal(text.match(/^flotilla_group_role\{/gm)?.length, 5, 'per-group series at 5 groups (default limit 256)');
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('above metricsPerGroupMax a real node exports the aggregates and no per-group series', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-pergroup-'));
  const node = await busyNode(dir, { 'metrics-per-group-max': '3' });
  try {
    const text = await scrape(node);
    assert.doesNotMatch(text, /^flotilla_group_\w+\{group=/m);
    // 4 data groups (2 a shard) and the meta group on shard 0.
    assert.match(text, /^flotilla_groups_by_role\{role="leader"\} 5$/m);
    assert.match(text, /^flotilla_groups_leaderless 0$/m);
    assert.match(text, /^flotilla_groups\{shard="0"\} 3$/m);
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config/grafana-dashboard.json is valid JSON and every metric it queries is in a scrape', { timeout: 60_000 }, async () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'config/grafana-dashboard.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };
  const exprs: string[] = [];
  for (const p of dashboard.panels) for (const target of p.targets ?? []) exprs.push(target.expr);
  for (const v of dashboard.templating.list) {
    const q = v.query as { query?: string } | string | undefined;
    if (typeof q === 'object' && q?.query !== undefined) exprs.push(q.query);
  }
  assert.ok(exprs.length >= 20, 'panels with queries');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-dashboard-'));
  const node = await busyNode(dir);
  try {
    const names = declaredNames(await scrape(node));
    const used = new Set<string>();
    for (const e of exprs) for (const m of e.matchAll(/\b(?:flotilla|process|nodejs)_[a-z0-9_]+\b/g)) used.add(m[0]);
    assert.ok(used.size >= 20, [...used].join(', '));
    const missing = [...used].filter((n) => !names.has(n));
    assert.deepEqual(missing, [], `queried by the dashboard but not in /metrics: ${missing.join(', ')}`);
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
