// The benchmark matrix's report, without running a benchmark: which rows it runs and with what
// flags, the ratios to the echo ceiling and to the peers, the table (failed rows included), the
// splice into docs/benchmarks.md that must leave the rest of the file byte for byte, the chart,
// and the parsers behind the machine description.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MARKER_END, MARKER_START, buildFailures, buildSection, buildTable, chartRows, commandOf, matrixRows, parseRecord,
  ratiosOf, selectRows, spliceSection, type RowOutcome, type RowSpec,
} from '../../bench/matrix.js';
import { logBounds, renderMatrixSvg } from '../../bench/chart.js';
import { parseCpuModel, parseDf, percentileSorted, type MachineInfo } from '../../bench/machine.js';
import type { BenchResult } from '../../bench/result.js';

const ROWS = matrixRows();

function row(name: string): RowSpec {
  const r = ROWS.find((x) => x.name === name);
  assert.ok(r, `no row ${name}`);
  return r;
}

function ok(name: string, opsPerSec: number, p99 = 10): RowOutcome {
  const r = row(name);
  const result: BenchResult = {
    system: r.system, mode: r.config, op: r.op, nodes: r.nodes, groups: r.groups, clients: r.clients, pipeline: r.pipeline,
    valueBytes: 256, keys: 100_000, syncForce: r.syncForce, transport: 'tcp', durationS: 10, ops: opsPerSec * 10, opsPerSec, errors: 0,
    latencyMs: { p50: p99 / 4, p90: p99 / 2, p99, p999: p99 * 2, max: p99 * 3 },
    cpu: {
      n1: { name: 'node 1', pid: 11, percent: 90 },
      n2: { name: 'node 2', pid: 12, percent: 45.4 },
      c: { name: 'client', pid: 13, percent: 70 },
    },
    at: '2025-01-01T00:00:10.000Z',
  };
  return { row: r, result, wallS: 14 };
}

function failed(name: string, error = 'exited with code 1\nError: connect ECONNREFUSED 127.0.0.1:6379\n    at TCPConnectWrap'): RowOutcome {
  return { row: row(name), error, wallS: 3 };
}

const MACHINE: MachineInfo = {
  cores: 2, cpuModel: 'Test CPU @ 2.00GHz', memoryGiB: 7.8, node: 'v20.20.2', os: 'Debian GNU/Linux 12 (bookworm)',
  kernel: 'Linux 6.1.0 x64', tmpDir: '/tmp', filesystem: 'ext4', device: '/dev/vda',
  fsync: { samples: 200, bytes: 4096, p50Ms: 0.25, p99Ms: 0.91, maxMs: 3.2 }, loadAvg: [0.52, 0.4, 0.31],
};

test('the matrix runs its rows in the stated order, throughput rows all at 8 × 128', () => {
  assert.equal(ROWS.length, 21);
  assert.equal(ROWS[0]!.name, 'flotilla echo');
  assert.deepEqual(ROWS.slice(1, 13).map((r) => r.name), [
    'flotilla 1n sync 1g', 'flotilla 1n sync 64g', 'flotilla 1n sync 1024g',
    'flotilla 1n nosync 1g', 'flotilla 1n nosync 64g', 'flotilla 1n nosync 1024g',
    'flotilla 3n sync 1g', 'flotilla 3n sync 64g', 'flotilla 3n sync 1024g',
    'flotilla 3n nosync 1g', 'flotilla 3n nosync 64g', 'flotilla 3n nosync 1024g',
  ]);
  assert.deepEqual(ROWS.slice(13).map((r) => r.name), [
    'flotilla 3n sync 1g get', 'flotilla 3n sync 1g 4×25',
    'redis always', 'redis everysec', 'redis off', 'etcd 1m', 'etcd 3m', 'etcd 3m get',
  ]);
  assert.equal(new Set(ROWS.map((r) => r.name)).size, ROWS.length, 'row names are unique');
  for (const r of ROWS) {
    if (r.name.endsWith('4×25')) assert.equal(r.clients * r.pipeline, 100);
    else assert.deepEqual([r.clients, r.pipeline], [8, 128], r.name);
  }
});

test('each row becomes the right CLI call with the common flags', () => {
  const f = commandOf(row('flotilla 3n nosync 64g'), { durationS: 10, warmupS: 3, jsonFile: '/tmp/x.json' });
  assert.match(f.script, /dist\/src\/cli\/flotilla\.js$|src\/cli\/flotilla\.js$/);
  assert.equal(f.args[0], 'bench');
  const flag = (args: string[], name: string): string | undefined => args[args.indexOf(name) + 1];
  assert.equal(flag(f.args, '--mode'), 'raft');
  assert.equal(flag(f.args, '--nodes'), '3');
  assert.equal(flag(f.args, '--groups'), '64');
  assert.equal(flag(f.args, '--sync-force'), 'false');
  assert.equal(flag(f.args, '--value-bytes'), '256');
  assert.equal(flag(f.args, '--keys'), '100000');
  assert.equal(flag(f.args, '--duration'), '10');
  assert.equal(flag(f.args, '--warmup'), '3');
  assert.equal(flag(f.args, '--json'), '/tmp/x.json');
  assert.equal(flag(f.args, '--echo-baseline'), '0', 'the matrix has its own echo row');
  const e = commandOf(row('flotilla echo'), { durationS: 10, warmupS: 3, jsonFile: '/tmp/e.json' });
  assert.equal(flag(e.args, '--mode'), 'echo');
  assert.equal(flag(e.args, '--nodes'), '1');
  assert.ok(!e.args.includes('--echo-baseline'));

  const p = commandOf(row('redis always'), { durationS: 5, warmupS: 1, jsonFile: '/tmp/y.json' });
  assert.match(p.script, /peers\/run\.js$/);
  assert.notEqual(p.args[0], 'bench');
  assert.equal(flag(p.args, '--system'), 'redis');
  assert.equal(flag(p.args, '--appendfsync'), 'always');
  assert.equal(flag(p.args, '--op'), 'put');
  assert.ok(!p.args.includes('--sync-force'), 'peers take no Flotilla flags');
  const g = commandOf(row('etcd 3m get'), { durationS: 5, warmupS: 1, jsonFile: '/tmp/z.json' });
  assert.equal(flag(g.args, '--members'), '3');
  assert.equal(flag(g.args, '--op'), 'get');
});

test('--only picks rows by substring and --no-peers drops Redis and etcd', () => {
  assert.deepEqual(selectRows(ROWS, ['echo'], true).map((r) => r.name), ['flotilla echo']);
  assert.deepEqual(selectRows(ROWS, ['redis', 'etcd 3m'], true).map((r) => r.name),
    ['redis always', 'redis everysec', 'redis off', 'etcd 3m', 'etcd 3m get']);
  const noPeers = selectRows(ROWS, [], false);
  assert.equal(noPeers.length, 15);
  assert.ok(noPeers.every((r) => r.system === 'flotilla'));
  assert.deepEqual(selectRows(ROWS, ['redis'], false), []);
});

test('ratios: to the echo ceiling, and to the fastest peer of the same durability, op and load', () => {
  const outcomes = [
    ok('flotilla echo', 400_000),
    ok('flotilla 3n sync 64g', 50_000),
    ok('flotilla 1n nosync 1g', 60_000),
    ok('flotilla 3n sync 1g get', 30_000),
    ok('flotilla 3n sync 1g 4×25', 8_000),
    ok('redis always', 40_000),
    ok('redis everysec', 100_000),
    failed('redis off'),
    ok('etcd 3m', 20_000),
    ok('etcd 3m get', 60_000),
  ];
  const r = ratiosOf(outcomes);
  assert.equal(r[0]!.echo, 1);
  assert.equal(r[0]!.peer, undefined, 'echo stores nothing: no durability to match');
  assert.equal(r[1]!.echo, 50_000 / 400_000);
  assert.deepEqual(r[1]!.peer, { ratio: 50_000 / 40_000, name: 'redis always' }, 'the faster of redis always and etcd 3m');
  assert.deepEqual(r[1]!.peerSameNodes, { ratio: 50_000 / 20_000, name: 'etcd 3m' }, 'three nodes against three members');
  assert.equal(r[2]!.peerSameNodes?.name, 'redis everysec', 'one node against one');
  assert.deepEqual(r[2]!.peer, { ratio: 60_000 / 100_000, name: 'redis everysec' }, 'the failed redis off is skipped');
  assert.deepEqual(r[3]!.peer, { ratio: 30_000 / 60_000, name: 'etcd 3m get' }, 'reads against reads');
  assert.equal(r[4]!.echo, undefined, 'another load has no ceiling here');
  assert.equal(r[4]!.peer, undefined);
  for (const i of [5, 6, 7, 8, 9]) assert.deepEqual(r[i], {}, 'peer rows carry no ratios');

  const noEcho = ratiosOf([failed('flotilla echo'), ok('flotilla 3n sync 64g', 50_000), failed('flotilla 1n sync 1g')]);
  assert.equal(noEcho[1]!.echo, undefined);
  assert.deepEqual(noEcho[2], {});
});

test('the table has one line per row, every line as wide as the header, failed rows marked', () => {
  const outcomes = [ok('flotilla echo', 400_000, 7.5), ok('flotilla 3n sync 64g', 52_562, 58.4), failed('redis always'), ok('etcd 3m', 20_000, 123.4)];
  const lines = buildTable(outcomes).split('\n');
  assert.equal(lines.length, 2 + outcomes.length);
  const cells = (l: string): string[] => l.slice(1, -1).split('|').map((c) => c.trim());
  const head = cells(lines[0]!);
  for (const l of lines.slice(1)) assert.equal(cells(l).length, head.length, l);
  const col = (l: string, name: string): string => cells(l)[head.indexOf(name)]!;

  const sync64 = lines[3]!;
  assert.equal(col(sync64, 'row'), 'flotilla 3n sync 64g');
  assert.equal(col(sync64, 'ops/s'), '52,562');
  assert.equal(col(sync64, 'p99 ms'), '58.4');
  assert.equal(col(sync64, 'groups'), '64');
  assert.equal(col(sync64, 'syncForce'), 'true');
  assert.equal(col(sync64, 'clients×pipeline'), '8×128');
  assert.equal(col(sync64, 'CPU servers'), '135%');
  assert.equal(col(sync64, 'CPU client'), '70%');
  assert.equal(col(sync64, '×echo'), '0.13');
  assert.equal(col(sync64, '×peer'), '2.63 (etcd 3m)', 'redis always failed, so etcd is the best peer');

  const redis = lines[4]!;
  assert.equal(col(redis, 'row'), 'redis always');
  assert.equal(col(redis, 'ops/s'), '**failed**');
  for (const name of ['p50 ms', 'p99 ms', 'max ms', 'errors', 'CPU servers', '×echo', '×peer']) assert.equal(col(redis, name), '—', name);
  assert.equal(col(lines[2]!, 'groups'), '—', 'echo has no groups');
  assert.equal(col(lines[5]!, '×peer'), '—');

  const failures = buildFailures(outcomes);
  assert.match(failures, /`redis always`: exited with code 1/);
  assert.match(failures, /ECONNREFUSED 127\.0\.0\.1:6379/);
  assert.equal(buildFailures([ok('etcd 3m', 1)]), '');
});

test('the section names the machine, the command, the load and links the chart', () => {
  const s = buildSection({
    startedAt: '2025-03-04T05:06:07.000Z', wallS: 412, command: 'npm run bench:matrix -- --no-peers', machine: MACHINE,
    durationS: 10, warmupS: 3, outcomes: [ok('flotilla echo', 1000), failed('etcd 1m')], svgHref: 'benchmarks-matrix.svg',
  });
  assert.match(s, /2025-03-04 05:06 UTC/);
  assert.match(s, /npm run bench:matrix -- --no-peers/);
  assert.match(s, /Test CPU @ 2\.00GHz/);
  assert.match(s, /ext4 on `\/dev\/vda`/);
  assert.match(s, /p50 0\.250 ms, p99 0\.910 ms/);
  assert.match(s, /0\.52 \/ 0\.40 \/ 0\.31/);
  assert.match(s, /[Cc]oordinated omission is not corrected/);
  assert.match(s, /1 of 2 rows succeeded/);
  assert.match(s, /Failed rows/);
  assert.match(s, /\*\*×echo\*\* =/);
  assert.match(s, /\*\*×peer\*\* =/);
  assert.match(s, /!\[[^\]]*\]\(benchmarks-matrix\.svg\)/);
  assert.ok(!s.includes(MARKER_START) && !s.includes(MARKER_END), 'markers are added by the splice');
});

test('splicing replaces only what lies between the markers', () => {
  const before = '# Benchmarks\n\nIntro.\n\n';
  const after = '\n\n## Storage\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ntrailing  spaces  \n';
  const doc = `${before}${MARKER_START}\nold section\nold table\n${MARKER_END}${after}`;
  const out = spliceSection(doc, 'new section\n');
  assert.equal(out, `${before}${MARKER_START}\nnew section\n${MARKER_END}${after}`);
  assert.ok(out.startsWith(before) && out.endsWith(after), 'the rest byte for byte');
  assert.equal(spliceSection(out, 'new section'), out, 'running again changes nothing');
  assert.equal(spliceSection(spliceSection(doc, 'other'), 'new section'), out);
});

test('without markers the section goes after the first paragraph, the rest kept', () => {
  const head = '# Benchmarks\n\nResults of the benchmarks,\nwith a reading.\n';
  const rest = '\n## Storage\n\nText.\n';
  const out = spliceSection(head + rest, 'S');
  assert.equal(out, `${head}\n${MARKER_START}\nS\n${MARKER_END}\n${rest}`);
  assert.equal(out.replace(`\n${MARKER_START}\nS\n${MARKER_END}\n`, ''), head + rest, 'removing the block gives the original back');
  assert.equal(spliceSection(out, 'S'), out);

  assert.equal(spliceSection('', 'S'), `${MARKER_START}\nS\n${MARKER_END}\n`);
  assert.equal(spliceSection('# Title\n', 'S'), `# Title\n\n${MARKER_START}\nS\n${MARKER_END}\n`);
  assert.equal(spliceSection('# Title\n\nOnly intro', 'S'), `# Title\n\nOnly intro\n\n${MARKER_START}\nS\n${MARKER_END}\n`);
});

test('broken markers are refused rather than guessed at', () => {
  assert.throws(() => spliceSection(`a\n${MARKER_START}\nb\n`, 'S'), /expected one/);
  assert.throws(() => spliceSection(`a\n${MARKER_END}\nb\n${MARKER_START}\n`, 'S'), /expected one/);
  assert.throws(() => spliceSection(`${MARKER_START}\n${MARKER_END}\n${MARKER_START}\n${MARKER_END}\n`, 'S'), /expected one/);
});

test('a record is read back only if it has the figures the report needs', () => {
  const good = ok('etcd 3m', 1234).result!;
  assert.equal(parseRecord(JSON.stringify(good)).opsPerSec, 1234);
  assert.deepEqual(parseRecord(JSON.stringify({ ...good, cpu: undefined })).cpu, {});
  assert.throws(() => parseRecord('not json'));
  assert.throws(() => parseRecord('null'), /not a JSON object/);
  assert.throws(() => parseRecord(JSON.stringify({ ...good, opsPerSec: 'fast' })), /opsPerSec/);
  assert.throws(() => parseRecord(JSON.stringify({ ...good, latencyMs: { p50: 1 } })), /latencyMs\.p90/);
});

test('the chart is an SVG with a bar label per row and failed rows named', () => {
  const outcomes = [ok('flotilla echo', 400_000, 7.5), ok('flotilla 3n sync 64g', 52_562, 58.4), failed('redis always'), ok('etcd 3m', 20_000, 123.4)];
  const svg = renderMatrixSvg(chartRows(outcomes), { title: 'T', subtitle: 'sub', widthPx: 900 });
  assert.match(svg, /^<svg[^>]*width="900"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  for (const text of ['flotilla echo', 'flotilla 3n sync 64g', 'redis always (failed)', 'etcd 3m', '400k', '52.6k', '58.4 ms', '123 ms']) {
    assert.ok(svg.includes(text), `the chart shows ${text}`);
  }
  assert.ok(!svg.includes('redis always</text>'), 'a failed row is labelled as failed');
  assert.deepEqual(logBounds([3000, 400_000]), { min: 1000, max: 2_000_000 });
  assert.deepEqual(logBounds([]), { min: 1, max: 10 });
});

test('the machine description parses df, cpuinfo and percentiles', () => {
  const df = 'Filesystem     Type 1024-blocks     Used Available Capacity Mounted on\n/dev/vda       ext4   102626232 51234567  46123456      53% /\n';
  assert.deepEqual(parseDf(df), { device: '/dev/vda', filesystem: 'ext4' });
  assert.equal(parseDf('Filesystem Type\n'), undefined);
  assert.equal(parseCpuModel('processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n'),
    'Intel(R) Xeon(R) CPU @ 2.20GHz');
  assert.equal(parseCpuModel('processor\t: 0\nBogoMIPS\t: 50.00\n'), undefined);
  const sorted = Array.from({ length: 200 }, (_, i) => i + 1);
  assert.equal(percentileSorted(sorted, 50), 100);
  assert.equal(percentileSorted(sorted, 99), 198);
  assert.equal(percentileSorted(sorted, 100), 200);
  assert.equal(percentileSorted([], 99), 0);
});
