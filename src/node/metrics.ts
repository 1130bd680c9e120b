// Prometheus metrics of a node, filled only when /metrics is scraped.
//
// Nothing on the request path touches prom-client (≈ 2M labelled updates/s is too slow per
// entry): shards bump plain Float64Array slots in shared memory (src/shard/counters.ts), links
// and listeners keep plain numbers, and render() copies all of it into a registry of its own.
//
// Honest types. The shard slots are running totals since the shard started, so they are
// exposed as Prometheus counters (`_total`, TYPE counter): each scrape resets the prom-client
// counter and adds the absolute value back. A restarted node starts again from 0, which
// Prometheus' rate() treats as a counter reset. Values that go up and down (ring depth, roles,
// terms, indexes, groups hosted, connections) are gauges. Latency is a real Prometheus
// histogram (`_bucket` with cumulative `le` buckets, `_sum`, `_count`), in seconds like every
// time here: each shard counts observations into fixed buckets since it started
// (src/shard/latency.ts), so histograms of shards and nodes add up and rate() works on them.
// prom-client cannot take bucket counts made elsewhere (only observe() one value at a time),
// so those few lines are written here, after the registry's text.
//
// Cardinality. Six series per group (role, leader, term, commit, applied, last index) are
// useful on a small node and a flood on a large one: above `perGroupMax` groups hosted they
// are left out and only the aggregates (groups by role, leaderless groups, the largest apply
// lag, per-shard counts) remain, which are always there.
//
// `promtool check metrics` passes on the output (a test runs it).
import * as fs from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { PEER_DROP_REASONS, PEER_DROP_SLOTS, ShardCounter } from '../shard/counters.js';
import { LATENCY_BOUNDS_US } from '../shard/latency.js';
import type { GroupStatus, LatencySummary } from '../shard/task.js';

export interface MetricsInput {
  nodeId: number;
  /** Per-group series only while at most this many groups are hosted (undefined: always). */
  perGroupMax?: number;
  shards: {
    shard: number;
    /** The shard's `ShardCounter` slots. */
    counters: Float64Array;
    ringInBytes: number;
    ringOutBytes: number;
    ringCapacity: number;
    state: string;
    /** Histograms by operation (`append`, `request`); null when unavailable. */
    latency: Record<string, LatencySummary> | null;
  }[];
  groups: GroupStatus[];
  connections: { tcp: number; ws: number };
  links: { node: number; up: boolean; framesIn: number; framesOut: number; bytesIn: number; bytesOut: number; drops: number; reconnects: number }[];
}

const ROLE_VALUE: Record<GroupStatus['role'], number> = { follower: 0, 'pre-candidate': 1, candidate: 2, leader: 3 };
const ROLES = Object.keys(ROLE_VALUE) as GroupStatus['role'][];

/** The latency histograms: the shard's operation name, the metric and its help. */
const LATENCY_METRICS: [string, string, string][] = [
  ['request', 'flotilla_request_duration_seconds', 'Client requests, from the moment the shard reads one to the moment its response is queued.'],
  ['append', 'flotilla_wal_append_duration_seconds', 'Write-ahead log appends, from the call to durable (after fdatasync with syncForce on).'],
];

/** `le` label of each bucket bound, in seconds, and +Inf. */
const LE = [...LATENCY_BOUNDS_US.map((us) => String(us / 1e6)), '+Inf'];

/**
 * prom-client's default metrics that `promtool check metrics` rejects: gauges whose names end
 * in `_total` (a name promising a counter). Their information is in nodejs_active_handles and
 * nodejs_active_requests, which stay.
 */
const DEFAULT_METRICS_DROPPED = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
const SHARD_STATES = ['starting', 'ready', 'failed', 'stopped'];

/** Error slots of a shard and the `code` label each is exposed under. */
const ERROR_SLOTS: [ShardCounter, string][] = [
  [ShardCounter.ErrorsNotLeader, 'NOT_LEADER'],
  [ShardCounter.ErrorsOverloaded, 'OVERLOADED'],
  [ShardCounter.ErrorsBadRequest, 'BAD_REQUEST'],
  [ShardCounter.ErrorsNoSpace, 'NO_SPACE'],
  [ShardCounter.ErrorsOther, 'OTHER'],
];

/** Shard counter slots exposed one to one, with their metric name and help. */
const COUNTER_SLOTS: [ShardCounter, string, string, number][] = [
  [ShardCounter.Turns, 'flotilla_shard_turns_total', 'Turns run by the shard.', 1],
  [ShardCounter.Requests, 'flotilla_requests_total', 'Client requests received by the shard (commands and admin).', 1],
  [ShardCounter.Proposals, 'flotilla_proposals_total', 'Entries proposed by the shard\'s leaders.', 1],
  [ShardCounter.Applied, 'flotilla_applied_total', 'Entries applied to state machines.', 1],
  [ShardCounter.Appends, 'flotilla_wal_appends_total', 'Write-ahead log appends (batches, one write and at most one fdatasync each).', 1],
  [ShardCounter.AppendMsTotal, 'flotilla_wal_append_seconds_total', 'Time spent in write-ahead log appends, seconds.', 1 / 1000],
  [ShardCounter.TicksMissed, 'flotilla_ticks_missed_total', 'Tick timer firings lost while the shard was busy (its groups\' clocks ran slow).', 1],
  [ShardCounter.LeaseReads, 'flotilla_lease_reads_total', 'Linearizable reads served on the leader\'s lease, without a heartbeat round (readMode lease).', 1],
  [ShardCounter.LeaseReadsAskedAgain, 'flotilla_lease_reads_asked_again_total', 'Reads confirmed by a leader\'s lease that had run out by the time they were served, confirmed again by a heartbeat round (readMode lease).', 1],
];

/** Makes the registry's gauges and counters; every one is reset before each fill. */
class MetricMaker {
  private readonly resettable: (Gauge | Counter)[] = [];

  constructor(private readonly registry: Registry) {}

  gauge(name: string, help: string, labelNames: string[]): Gauge {
    const g = new Gauge({ name, help, labelNames, registers: [this.registry] });
    this.resettable.push(g);
    return g;
  }

  counter(name: string, help: string, labelNames: string[]): Counter {
    const c = new Counter({ name, help, labelNames, registers: [this.registry] });
    this.resettable.push(c);
    return c;
  }

  reset(): void {
    for (const m of this.resettable) m.reset();
  }
}

/** The groups hosted: aggregates always, the six series per group up to perGroupMax groups. */
class GroupMetrics {
  private readonly byRole: Gauge;
  private readonly leaderless: Gauge;
  private readonly applyLagMax: Gauge;
  private readonly role: Gauge;
  private readonly leader: Gauge;
  private readonly term: Gauge;
  private readonly commit: Gauge;
  private readonly applied: Gauge;
  private readonly lastIndex: Gauge;

  constructor(m: MetricMaker) {
    this.byRole = m.gauge('flotilla_groups_by_role', 'Groups hosted by this node, by the Raft role of its member.', ['role']);
    this.leaderless = m.gauge('flotilla_groups_leaderless', 'Groups hosted by this node whose member knows no leader.', []);
    this.applyLagMax = m.gauge('flotilla_groups_apply_lag_max', 'Largest gap between committed and applied index over the groups hosted (entries).', []);
    this.role = m.gauge('flotilla_group_role', 'Raft role of this member: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.', ['group']);
    this.leader = m.gauge('flotilla_group_leader', 'Id of the node this member believes leads the group (0: unknown).', ['group']);
    this.term = m.gauge('flotilla_group_term', 'Current Raft term of this member.', ['group']);
    this.commit = m.gauge('flotilla_group_commit_index', 'Highest log index known committed.', ['group']);
    this.applied = m.gauge('flotilla_group_applied_index', 'Highest log index applied to the state machine.', ['group']);
    this.lastIndex = m.gauge('flotilla_group_last_index', 'Last index in this member\'s log.', ['group']);
  }

  fill(groups: GroupStatus[], perGroupMax: number | undefined): void {
    const byRole = new Map<string, number>(ROLES.map((r) => [r, 0]));
    let leaderless = 0;
    let lagMax = 0;
    for (const g of groups) {
      byRole.set(g.role, (byRole.get(g.role) ?? 0) + 1);
      if (g.leader === 0) leaderless++;
      if (g.commit - g.applied > lagMax) lagMax = g.commit - g.applied;
    }
    for (const [role, n] of byRole) this.byRole.set({ role }, n);
    this.leaderless.set(leaderless);
    this.applyLagMax.set(lagMax);

    const perGroup = perGroupMax === undefined || groups.length <= perGroupMax;
    for (const g of perGroup ? groups : []) {
      const group = String(g.group);
      this.role.set({ group }, ROLE_VALUE[g.role] ?? -1);
      this.leader.set({ group }, g.leader);
      this.term.set({ group }, g.term);
      this.commit.set({ group }, g.commit);
      this.applied.set({ group }, g.applied);
      this.lastIndex.set({ group }, g.lastIndex);
    }
  }
}

/** Per shard: its state, its rings, and its counter slots. */
class ShardMetrics {
  private readonly groupsHosted: Gauge;
  private readonly groupsLed: Gauge;
  private readonly state: Gauge;
  private readonly noSpace: Gauge;
  private readonly heap: Gauge;
  private readonly ringBytes: Gauge;
  private readonly ringCapacity: Gauge;
  private readonly slots: [ShardCounter, Counter, number][];
  private readonly errors: Counter;
  private readonly messages: Counter;
  private readonly peerDropped: Counter;
  private readonly snapshots: Counter;

  constructor(m: MetricMaker) {
    this.groupsHosted = m.gauge('flotilla_groups', 'Groups hosted by the shard.', ['shard']);
    this.groupsLed = m.gauge('flotilla_groups_led', 'Groups of the shard this node leads.', ['shard']);
    this.state = m.gauge('flotilla_shard_state', 'Shard state: 1 for the state the shard is in, 0 for the others.', ['shard', 'state']);
    this.noSpace = m.gauge('flotilla_shard_no_space', '1 while the shard\'s disk is full: its writes are refused with NO_SPACE, reads go on; 0 otherwise.', ['shard']);
    this.heap = m.gauge('flotilla_shard_heap_bytes', 'The shard thread\'s JavaScript heap: used, total (committed), and young (the young generation\'s size, shardSemiSpaceMb).', ['shard', 'kind']);
    this.ringBytes = m.gauge('flotilla_ring_bytes', 'Bytes waiting in the shard\'s ring: in (main to shard) or out (shard to main).', ['shard', 'direction']);
    this.ringCapacity = m.gauge('flotilla_ring_capacity_bytes', 'Capacity of each of the shard\'s rings.', ['shard']);
    this.slots = COUNTER_SLOTS.map(([slot, name, help, scale]) => [slot, m.counter(name, help, ['shard']), scale]);
    this.errors = m.counter('flotilla_errors_total', 'Error responses sent by the shard, by code (OTHER: every code not listed).', ['shard', 'code']);
    this.messages = m.counter('flotilla_raft_messages_total', 'Raft messages sent (out) and received (in) by the shard.', ['shard', 'direction']);
    this.peerDropped = m.counter('flotilla_peer_dropped_total', 'Peer messages and sub-records the shard dropped unread, by reason (docs/operations.md).', ['shard', 'reason']);
    this.snapshots = m.counter('flotilla_snapshots_total', 'Snapshots taken locally (taken) and installed from a leader (installed).', ['shard', 'kind']);
  }

  fill(shards: MetricsInput['shards']): void {
    for (const s of shards) {
      const shard = String(s.shard);
      const c = s.counters;
      for (const state of SHARD_STATES) this.state.set({ shard, state }, state === s.state ? 1 : 0);
      if (!SHARD_STATES.includes(s.state)) this.state.set({ shard, state: s.state }, 1);
      this.noSpace.set({ shard }, slot(c, ShardCounter.NoSpace) > 0 ? 1 : 0);
      this.heap.set({ shard, kind: 'used' }, slot(c, ShardCounter.HeapUsedBytes));
      this.heap.set({ shard, kind: 'total' }, slot(c, ShardCounter.HeapTotalBytes));
      this.heap.set({ shard, kind: 'young' }, slot(c, ShardCounter.HeapYoungBytes));
      this.ringBytes.set({ shard, direction: 'in' }, s.ringInBytes);
      this.ringBytes.set({ shard, direction: 'out' }, s.ringOutBytes);
      this.ringCapacity.set({ shard }, s.ringCapacity);
      this.groupsHosted.set({ shard }, slot(c, ShardCounter.Groups));
      this.groupsLed.set({ shard }, slot(c, ShardCounter.Leaders));
      for (const [i, metric, scale] of this.slots) add(metric, { shard }, slot(c, i) * scale);
      for (const [i, code] of ERROR_SLOTS) add(this.errors, { shard, code }, slot(c, i));
      add(this.messages, { shard, direction: 'in' }, slot(c, ShardCounter.MessagesIn));
      add(this.messages, { shard, direction: 'out' }, slot(c, ShardCounter.MessagesOut));
      for (const reason of PEER_DROP_REASONS) add(this.peerDropped, { shard, reason }, slot(c, PEER_DROP_SLOTS[reason]));
      add(this.snapshots, { shard, kind: 'taken' }, slot(c, ShardCounter.SnapshotsTaken));
      add(this.snapshots, { shard, kind: 'installed' }, slot(c, ShardCounter.SnapshotsInstalled));
    }
  }
}

/** Per peer: the replication link's state and counters (PeerLinks.stats). */
class LinkMetrics {
  private readonly up: Gauge;
  private readonly frames: Counter;
  private readonly bytes: Counter;
  private readonly drops: Counter;
  private readonly reconnects: Counter;

  constructor(m: MetricMaker) {
    this.up = m.gauge('flotilla_link_up', 'Whether the replication link to the peer is up.', ['peer']);
    this.frames = m.counter('flotilla_link_frames_total', 'Link frames received (in) and sent (out).', ['peer', 'direction']);
    this.bytes = m.counter('flotilla_link_bytes_total', 'Link bytes received (in) and sent (out).', ['peer', 'direction']);
    this.drops = m.counter('flotilla_link_drops_total', 'Frames dropped by the link to the peer (as the link counts them).', ['peer']);
    this.reconnects = m.counter('flotilla_link_reconnects_total', 'Times the link to the peer was established again.', ['peer']);
  }

  fill(links: MetricsInput['links']): void {
    for (const l of links) {
      const peer = String(l.node);
      this.up.set({ peer }, l.up ? 1 : 0);
      add(this.frames, { peer, direction: 'in' }, l.framesIn);
      add(this.frames, { peer, direction: 'out' }, l.framesOut);
      add(this.bytes, { peer, direction: 'in' }, l.bytesIn);
      add(this.bytes, { peer, direction: 'out' }, l.bytesOut);
      add(this.drops, { peer }, l.drops);
      add(this.reconnects, { peer }, l.reconnects);
    }
  }
}

export class NodeMetrics {
  readonly registry = new Registry();
  /** Renders one at a time: a render resets and refills the registry before reading it. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly maker: MetricMaker;
  private readonly nodeInfo: Gauge;
  private readonly groups: GroupMetrics;
  private readonly shards: ShardMetrics;
  private readonly connections: Gauge;
  private readonly links: LinkMetrics;

  constructor() {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    for (const name of DEFAULT_METRICS_DROPPED) r.removeSingleMetric(name);
    // Made in this order, which is the order of the exposition.
    const m = new MetricMaker(r);
    this.maker = m;
    this.nodeInfo = m.gauge('flotilla_node_info', 'Identity of this node: its id, the Flotilla version and the Node.js version it runs on (value 1).', ['node_id', 'version', 'node_version']);
    this.groups = new GroupMetrics(m);
    this.shards = new ShardMetrics(m);
    this.connections = m.gauge('flotilla_client_connections', 'Open client connections by transport.', ['transport']);
    this.links = new LinkMetrics(m);
  }

  /** Copies `input` into the registry and returns the text exposition (format 0.0.4). */
  render(input: MetricsInput): Promise<string> {
    const next = this.chain.then(async () => {
      this.fill(input);
      return (await this.registry.metrics()) + latencyText(input);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private fill(input: MetricsInput): void {
    this.maker.reset();
    this.nodeInfo.set({ node_id: String(input.nodeId), version: FLOTILLA_VERSION, node_version: process.versions.node }, 1);
    this.groups.fill(input.groups, input.perGroupMax);
    this.shards.fill(input.shards);
    this.connections.set({ transport: 'tcp' }, input.connections.tcp);
    this.connections.set({ transport: 'ws' }, input.connections.ws);
    this.links.fill(input.links);
  }
}

/**
 * The latency histograms in the text format (0.0.4): per shard, cumulative `_bucket` lines
 * ending with `le="+Inf"`, then `_sum` and `_count`. A shard that did not answer (null) or
 * whose counts do not match the bounds is left out for this scrape.
 */
function latencyText(input: MetricsInput): string {
  let out = '';
  for (const [op, name, help] of LATENCY_METRICS) {
    out += `\n# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
    for (const s of input.shards) {
      const h = s.latency?.[op];
      if (h === undefined || h.buckets.length !== LE.length) continue;
      const shard = `shard="${s.shard}"`;
      let cumulative = 0;
      for (let i = 0; i < LE.length; i++) {
        cumulative += finiteCount(h.buckets[i]!);
        out += `${name}_bucket{${shard},le="${LE[i]}"} ${cumulative}\n`;
      }
      out += `${name}_sum{${shard}} ${Number.isFinite(h.sumSeconds) && h.sumSeconds >= 0 ? h.sumSeconds : 0}\n`;
      // The +Inf bucket and the count are one number, as Prometheus requires.
      out += `${name}_count{${shard}} ${cumulative}\n`;
    }
  }
  return out;
}

function finiteCount(v: number): number {
  return Number.isFinite(v) && v > 0 ? v : 0;
}

/** The version in package.json beside dist/ ('unknown' if it cannot be read). */
const FLOTILLA_VERSION = ((): string => {
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
})();

function slot(c: Float64Array, i: ShardCounter): number {
  return i < c.length ? c[i]! : 0;
}

/** Sets a (just reset) counter to an absolute total; a value a counter cannot hold is skipped. */
function add(c: Counter, labels: Record<string, string>, v: number): void {
  if (Number.isFinite(v) && v >= 0) c.inc(labels, v);
}
