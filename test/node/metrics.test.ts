// Node metrics: render() turns shared-memory counters, group status, links and latency
// summaries into the Prometheus text format, with counters as counters, absolute values that
// do not accumulate across scrapes, series that go away with their group, and renders that do
// not interleave.
import * as fs from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeMetrics, type MetricsInput } from '../../src/node/metrics.js';
import { SHARD_COUNTER_SLOTS, ShardCounter } from '../../src/shard/counters.js';
import { LatencyHistogram } from '../../src/shard/latency.js';
import type { GroupStatus, LatencySummary } from '../../src/shard/task.js';

const VERSION = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function counters(values: Partial<Record<keyof typeof ShardCounter, number>>): Float64Array {
  const c = new Float64Array(SHARD_COUNTER_SLOTS);
  for (const [name, v] of Object.entries(values)) c[ShardCounter[name as keyof typeof ShardCounter]] = v;
  return c;
}

/** What a shard's LatencyHistogram reports after recording these durations (microseconds). */
function histogram(us: number[]): LatencySummary {
  const h = new LatencyHistogram();
  for (const v of us) h.recordMs(v / 1000);
  return h.summary();
}

function group(g: number, role: GroupStatus['role'], over: Partial<GroupStatus> = {}): GroupStatus {
  return { group: g, role, leader: role === 'leader' ? 1 : 2, term: 5, commit: 100 + g, applied: 99 + g, lastIndex: 101 + g, snapshotIndex: 0, voters: [1, 2, 3], learners: [], ...over };
}

function input(over: Partial<MetricsInput> = {}): MetricsInput {
  return {
    nodeId: 1,
    shards: [{
      shard: 0,
      counters: counters({
        Turns: 7, Requests: 42, Errors: 6, ErrorsNotLeader: 3, ErrorsOverloaded: 1, ErrorsBadRequest: 0, ErrorsOther: 2,
        Proposals: 40, Applied: 39, Appends: 10, AppendMsTotal: 2500, MessagesIn: 11, MessagesOut: 12,
        Groups: 2, Leaders: 1, SnapshotsTaken: 4, SnapshotsInstalled: 1,
      }),
      ringInBytes: 128,
      ringOutBytes: 64,
      ringCapacity: 8 << 20,
      state: 'ready',
      latency: {
        append: histogram([120, 300, 300, 2000, 20_000_000]),
        request: histogram([]),
      },
    }],
    groups: [group(1, 'leader'), group(2, 'follower')],
    connections: { tcp: 3, ws: 1 },
    links: [{ node: 2, up: true, framesIn: 5, framesOut: 6, bytesIn: 500, bytesOut: 600, drops: 0, reconnects: 2 }],
    ...over,
  };
}

/** The value of one series, by its exact name and labels as printed; undefined when absent. */
function value(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

function type(text: string, name: string): string | undefined {
  return new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
}

test('render exposes groups, shard counters, rings, latency, links and connections under flotilla_', { timeout: 10_000 }, async () => {
  const text = await new NodeMetrics().render(input());
  assert.equal(value(text, `flotilla_node_info{node_id="1",version="${VERSION}",node_version="${process.versions.node}"}`), 1);
  assert.equal(value(text, 'flotilla_group_role{group="1"}'), 3);
  assert.equal(value(text, 'flotilla_group_role{group="2"}'), 0);
  assert.equal(value(text, 'flotilla_group_leader{group="2"}'), 2);
  assert.equal(value(text, 'flotilla_group_term{group="1"}'), 5);
  assert.equal(value(text, 'flotilla_group_commit_index{group="2"}'), 102);
  assert.equal(value(text, 'flotilla_group_applied_index{group="2"}'), 101);
  assert.equal(value(text, 'flotilla_group_last_index{group="1"}'), 102);
  assert.equal(value(text, 'flotilla_groups{shard="0"}'), 2);
  assert.equal(value(text, 'flotilla_groups_led{shard="0"}'), 1);
  assert.equal(value(text, 'flotilla_shard_state{shard="0",state="ready"}'), 1);
  assert.equal(value(text, 'flotilla_shard_state{shard="0",state="failed"}'), 0);
  assert.equal(value(text, 'flotilla_ring_bytes{shard="0",direction="in"}'), 128);
  assert.equal(value(text, 'flotilla_ring_bytes{shard="0",direction="out"}'), 64);
  assert.equal(value(text, 'flotilla_ring_capacity_bytes{shard="0"}'), 8 << 20);

  assert.equal(value(text, 'flotilla_shard_turns_total{shard="0"}'), 7);
  assert.equal(value(text, 'flotilla_requests_total{shard="0"}'), 42);
  assert.equal(value(text, 'flotilla_proposals_total{shard="0"}'), 40);
  assert.equal(value(text, 'flotilla_applied_total{shard="0"}'), 39);
  assert.equal(value(text, 'flotilla_wal_appends_total{shard="0"}'), 10);
  assert.equal(value(text, 'flotilla_wal_append_seconds_total{shard="0"}'), 2.5, 'milliseconds become seconds');
  assert.equal(value(text, 'flotilla_errors_total{shard="0",code="NOT_LEADER"}'), 3);
  assert.equal(value(text, 'flotilla_errors_total{shard="0",code="OVERLOADED"}'), 1);
  assert.equal(value(text, 'flotilla_errors_total{shard="0",code="BAD_REQUEST"}'), 0);
  assert.equal(value(text, 'flotilla_errors_total{shard="0",code="OTHER"}'), 2);
  assert.equal(value(text, 'flotilla_raft_messages_total{shard="0",direction="in"}'), 11);
  assert.equal(value(text, 'flotilla_raft_messages_total{shard="0",direction="out"}'), 12);
  assert.equal(value(text, 'flotilla_snapshots_total{shard="0",kind="taken"}'), 4);
  assert.equal(value(text, 'flotilla_snapshots_total{shard="0",kind="installed"}'), 1);

  // Latency: cumulative buckets in seconds, +Inf equal to the count, the sum in seconds.
  const append = 'flotilla_wal_append_duration_seconds';
  assert.equal(value(text, `${append}_bucket{shard="0",le="0.0001"}`), 0);
  assert.equal(value(text, `${append}_bucket{shard="0",le="0.00025"}`), 1, '120 µs');
  assert.equal(value(text, `${append}_bucket{shard="0",le="0.0005"}`), 3, '+ two of 300 µs');
  assert.equal(value(text, `${append}_bucket{shard="0",le="0.0025"}`), 4, '+ 2 ms');
  assert.equal(value(text, `${append}_bucket{shard="0",le="10"}`), 4, '20 s is above every bound');
  assert.equal(value(text, `${append}_bucket{shard="0",le="+Inf"}`), 5);
  assert.equal(value(text, `${append}_count{shard="0"}`), 5);
  assert.ok(Math.abs(value(text, `${append}_sum{shard="0"}`)! - 20.00272) < 1e-9);
  assert.equal(value(text, 'flotilla_request_duration_seconds_bucket{shard="0",le="+Inf"}'), 0);
  assert.equal(value(text, 'flotilla_request_duration_seconds_count{shard="0"}'), 0);
  assert.equal(type(text, append), 'histogram');
  assert.doesNotMatch(text, /quantile=/);

  assert.equal(value(text, 'flotilla_client_connections{transport="tcp"}'), 3);
  assert.equal(value(text, 'flotilla_client_connections{transport="ws"}'), 1);
  assert.equal(value(text, 'flotilla_link_up{peer="2"}'), 1);
  assert.equal(value(text, 'flotilla_link_frames_total{peer="2",direction="in"}'), 5);
  assert.equal(value(text, 'flotilla_link_bytes_total{peer="2",direction="out"}'), 600);
  assert.equal(value(text, 'flotilla_link_drops_total{peer="2"}'), 0);
  assert.equal(value(text, 'flotilla_link_reconnects_total{peer="2"}'), 2);

  // Running totals are counters; levels are gauges.
  for (const name of ['flotilla_requests_total', 'flotilla_errors_total', 'flotilla_wal_append_seconds_total', 'flotilla_link_bytes_total', 'flotilla_raft_messages_total']) {
    assert.equal(type(text, name), 'counter', name);
  }
  for (const name of ['flotilla_group_role', 'flotilla_ring_bytes', 'flotilla_client_connections', 'flotilla_groups', 'flotilla_node_info']) {
    assert.equal(type(text, name), 'gauge', name);
  }
  // prom-client's process metrics come along, less the gauges named like counters.
  assert.match(text, /^process_cpu_user_seconds_total \d/m);
  assert.match(text, /^nodejs_heap_size_used_bytes \d/m);
  assert.doesNotMatch(text, /^nodejs_active_\w+_total/m);
  // Aggregates over the groups.
  assert.equal(value(text, 'flotilla_groups_by_role{role="leader"}'), 1);
  assert.equal(value(text, 'flotilla_groups_by_role{role="follower"}'), 1);
  assert.equal(value(text, 'flotilla_groups_by_role{role="candidate"}'), 0);
  assert.equal(value(text, 'flotilla_groups_leaderless'), 0);
  assert.equal(value(text, 'flotilla_groups_apply_lag_max'), 1);
});

test('each scrape shows the absolute values of that moment: counters do not accumulate, removed groups vanish', { timeout: 10_000 }, async () => {
  const m = new NodeMetrics();
  await m.render(input());
  const second = input({ groups: [group(2, 'candidate')], links: [] });
  second.shards[0]!.counters[ShardCounter.Requests] = 50;
  second.shards[0]!.state = 'failed';
  const text = await m.render(second);
  assert.equal(value(text, 'flotilla_requests_total{shard="0"}'), 50, 'the total, not 42 + 50');
  assert.equal(value(text, 'flotilla_group_role{group="1"}'), undefined, 'group 1 is gone');
  assert.equal(value(text, 'flotilla_group_role{group="2"}'), 2);
  assert.equal(value(text, 'flotilla_link_up{peer="2"}'), undefined);
  assert.equal(value(text, 'flotilla_shard_state{shard="0",state="ready"}'), 0);
  assert.equal(value(text, 'flotilla_shard_state{shard="0",state="failed"}'), 1);
});

test('a shard without latency, with a short counter array or odd values renders what it can', { timeout: 10_000 }, async () => {
  const m = new NodeMetrics();
  const odd = input();
  odd.shards[0]!.latency = null;
  odd.shards.push({ shard: 1, counters: new Float64Array(2), ringInBytes: 0, ringOutBytes: 0, ringCapacity: 65536, state: 'starting', latency: null });
  odd.shards[0]!.counters[ShardCounter.Applied] = Number.NaN;
  const text = await m.render(odd);
  assert.equal(value(text, 'flotilla_wal_append_duration_seconds_count{shard="0"}'), undefined);
  assert.match(text, /^# TYPE flotilla_wal_append_duration_seconds histogram$/m, 'the family is declared even with no shard to show');
  assert.equal(value(text, 'flotilla_requests_total{shard="1"}'), 0);
  assert.equal(value(text, 'flotilla_shard_turns_total{shard="1"}'), 0);
  assert.equal(value(text, 'flotilla_applied_total{shard="0"}'), undefined, 'a NaN is left out, not thrown');
  assert.equal(value(text, 'flotilla_shard_state{shard="1",state="starting"}'), 1);
});

test('renders at the same time do not mix their inputs; two instances do not share a registry', { timeout: 10_000 }, async () => {
  const m = new NodeMetrics();
  const inputs = [1, 2, 3, 4, 5].map((n) => {
    const i = input({ groups: [group(n, 'leader')] });
    i.shards[0]!.counters[ShardCounter.Requests] = n * 1000;
    return i;
  });
  const texts = await Promise.all(inputs.map((i) => m.render(i)));
  texts.forEach((text, k) => {
    const n = k + 1;
    assert.equal(value(text, 'flotilla_requests_total{shard="0"}'), n * 1000);
    assert.equal(value(text, `flotilla_group_role{group="${n}"}`), 3);
    assert.equal(text.match(/^flotilla_group_role\{/gm)?.length, 1, 'only this render\'s group');
  });
  const other = new NodeMetrics();
  const a = await other.render(input({ nodeId: 9 }));
  assert.match(a, /^flotilla_node_info\{node_id="9",/m);
  assert.match(await m.render(input()), /^flotilla_node_info\{node_id="1",/m);
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('above perGroupMax groups only the aggregates are exported; at or below it the per-group series too', { timeout: 10_000 }, async () => {
  const m = new NodeMetrics();
  const groups = [group(1, 'leader'), group(2, 'follower'), group(3, 'follower', { leader: 0, commit: 500, applied: 200 })];
  const small = await m.render(input({ groups, perGroupMax: 3 }));
  assert.equal(small.match(/^flotilla_group_role\{/gm)?.length, 3);
  const large = await m.render(input({ groups, perGroupMax: 2 }));
  assert.doesNotMatch(large, /^flotilla_group_\w+\{group=/m, 'no per-group series');
  assert.equal(value(large, 'flotilla_groups_by_role{role="follower"}'), 2);
  assert.equal(value(large, 'flotilla_groups_leaderless'), 1);
  assert.equal(value(large, 'flotilla_groups_apply_lag_max'), 300);
  assert.equal(value(large, 'flotilla_groups{shard="0"}'), 2, 'per-shard series stay');
});
