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
// terms, indexes, groups hosted, connections) are gauges. Latency comes from each shard's
// HDR histogram since it started: gauges with a `quantile` label, in seconds like every time
// here (Prometheus' base unit), not a Summary, whose sum prom-client would compute itself.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ShardCounter } from '../shard/counters.js';
import type { GroupStatus, LatencySummary } from '../shard/task.js';

export interface MetricsInput {
  nodeId: number;
  shards: {
    shard: number;
    /** The shard's `ShardCounter` slots. */
    counters: Float64Array;
    ringInBytes: number;
    ringOutBytes: number;
    ringCapacity: number;
    state: string;
    /** Summaries by operation (e.g. `append`, `request`), microseconds; null when unavailable. */
    latency: Record<string, LatencySummary> | null;
  }[];
  groups: GroupStatus[];
  connections: { tcp: number; ws: number };
  links: { node: number; up: boolean; framesIn: number; framesOut: number; bytesIn: number; bytesOut: number; drops: number; reconnects: number }[];
}

const ROLE_VALUE: Record<GroupStatus['role'], number> = { follower: 0, 'pre-candidate': 1, candidate: 2, leader: 3 };
const SHARD_STATES = ['starting', 'ready', 'failed', 'stopped'];

/** Error slots of a shard and the `code` label each is exposed under. */
const ERROR_SLOTS: [ShardCounter, string][] = [
  [ShardCounter.ErrorsNotLeader, 'NOT_LEADER'],
  [ShardCounter.ErrorsOverloaded, 'OVERLOADED'],
  [ShardCounter.ErrorsBadRequest, 'BAD_REQUEST'],
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
];

export class NodeMetrics {
  readonly registry = new Registry();
  /** Renders one at a time: a render resets and refills the registry before reading it. */
  private chain: Promise<unknown> = Promise.resolve();

  private readonly nodeId: Gauge;
  private readonly groupRole: Gauge;
  private readonly groupLeader: Gauge;
  private readonly groupTerm: Gauge;
  private readonly groupCommit: Gauge;
  private readonly groupApplied: Gauge;
  private readonly groupLastIndex: Gauge;
  private readonly groupsHosted: Gauge;
  private readonly groupsLed: Gauge;
  private readonly shardState: Gauge;
  private readonly ringBytes: Gauge;
  private readonly ringCapacity: Gauge;
  private readonly slots: [ShardCounter, Counter, number][];
  private readonly errors: Counter;
  private readonly messages: Counter;
  private readonly snapshots: Counter;
  private readonly latency: Gauge;
  private readonly latencyCount: Counter;
  private readonly connections: Gauge;
  private readonly linkUp: Gauge;
  private readonly linkFrames: Counter;
  private readonly linkBytes: Counter;
  private readonly linkDrops: Counter;
  private readonly linkReconnects: Counter;
  private readonly resettable: (Gauge | Counter)[] = [];

  constructor() {
    const r = this.registry;
    const gauge = (name: string, help: string, labelNames: string[]): Gauge => {
      const g = new Gauge({ name, help, labelNames, registers: [r] });
      this.resettable.push(g);
      return g;
    };
    const counter = (name: string, help: string, labelNames: string[]): Counter => {
      const c = new Counter({ name, help, labelNames, registers: [r] });
      this.resettable.push(c);
      return c;
    };
    collectDefaultMetrics({ register: r });

    this.nodeId = gauge('flotilla_node_id', 'This node\'s id.', []);
    this.groupRole = gauge('flotilla_group_role', 'Raft role of this member: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.', ['group']);
    this.groupLeader = gauge('flotilla_group_leader', 'Id of the node this member believes leads the group (0: unknown).', ['group']);
    this.groupTerm = gauge('flotilla_group_term', 'Current Raft term of this member.', ['group']);
    this.groupCommit = gauge('flotilla_group_commit_index', 'Highest log index known committed.', ['group']);
    this.groupApplied = gauge('flotilla_group_applied_index', 'Highest log index applied to the state machine.', ['group']);
    this.groupLastIndex = gauge('flotilla_group_last_index', 'Last index in this member\'s log.', ['group']);
    this.groupsHosted = gauge('flotilla_groups', 'Groups hosted by the shard.', ['shard']);
    this.groupsLed = gauge('flotilla_groups_led', 'Groups of the shard this node leads.', ['shard']);
    this.shardState = gauge('flotilla_shard_state', 'Shard state: 1 for the state the shard is in, 0 for the others.', ['shard', 'state']);
    this.ringBytes = gauge('flotilla_ring_bytes', 'Bytes waiting in the shard\'s ring: in (main to shard) or out (shard to main).', ['shard', 'direction']);
    this.ringCapacity = gauge('flotilla_ring_capacity_bytes', 'Capacity of each of the shard\'s rings.', ['shard']);
    this.slots = COUNTER_SLOTS.map(([slot, name, help, scale]) => [slot, counter(name, help, ['shard']), scale]);
    this.errors = counter('flotilla_errors_total', 'Error responses sent by the shard, by code (OTHER: every code not listed).', ['shard', 'code']);
    this.messages = counter('flotilla_raft_messages_total', 'Raft messages sent (out) and received (in) by the shard.', ['shard', 'direction']);
    this.snapshots = counter('flotilla_snapshots_total', 'Snapshots taken locally (taken) and installed from a leader (installed).', ['shard', 'kind']);
    this.latency = gauge('flotilla_latency_seconds', 'Latency quantiles since the shard started, by operation (quantile 1 is the maximum).', ['shard', 'op', 'quantile']);
    this.latencyCount = counter('flotilla_latency_observations_total', 'Observations behind flotilla_latency_seconds.', ['shard', 'op']);
    this.connections = gauge('flotilla_client_connections', 'Open client connections by transport.', ['transport']);
    this.linkUp = gauge('flotilla_link_up', 'Whether the replication link to the peer is up.', ['peer']);
    this.linkFrames = counter('flotilla_link_frames_total', 'Link frames received (in) and sent (out).', ['peer', 'direction']);
    this.linkBytes = counter('flotilla_link_bytes_total', 'Link bytes received (in) and sent (out).', ['peer', 'direction']);
    this.linkDrops = counter('flotilla_link_drops_total', 'Frames dropped by the link to the peer (as the link counts them).', ['peer']);
    this.linkReconnects = counter('flotilla_link_reconnects_total', 'Times the link to the peer was established again.', ['peer']);
  }

  /** Copies `input` into the registry and returns the text exposition (format 0.0.4). */
  render(input: MetricsInput): Promise<string> {
    const next = this.chain.then(() => {
      this.fill(input);
      return this.registry.metrics();
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private fill(input: MetricsInput): void {
    for (const m of this.resettable) m.reset();
    this.nodeId.set(input.nodeId);

    for (const g of input.groups) {
      const group = String(g.group);
      this.groupRole.set({ group }, ROLE_VALUE[g.role] ?? -1);
      this.groupLeader.set({ group }, g.leader);
      this.groupTerm.set({ group }, g.term);
      this.groupCommit.set({ group }, g.commit);
      this.groupApplied.set({ group }, g.applied);
      this.groupLastIndex.set({ group }, g.lastIndex);
    }

    for (const s of input.shards) {
      const shard = String(s.shard);
      const c = s.counters;
      for (const state of SHARD_STATES) this.shardState.set({ shard, state }, state === s.state ? 1 : 0);
      if (!SHARD_STATES.includes(s.state)) this.shardState.set({ shard, state: s.state }, 1);
      this.ringBytes.set({ shard, direction: 'in' }, s.ringInBytes);
      this.ringBytes.set({ shard, direction: 'out' }, s.ringOutBytes);
      this.ringCapacity.set({ shard }, s.ringCapacity);
      this.groupsHosted.set({ shard }, slot(c, ShardCounter.Groups));
      this.groupsLed.set({ shard }, slot(c, ShardCounter.Leaders));
      for (const [i, metric, scale] of this.slots) add(metric, { shard }, slot(c, i) * scale);
      for (const [i, code] of ERROR_SLOTS) add(this.errors, { shard, code }, slot(c, i));
      add(this.messages, { shard, direction: 'in' }, slot(c, ShardCounter.MessagesIn));
      add(this.messages, { shard, direction: 'out' }, slot(c, ShardCounter.MessagesOut));
      add(this.snapshots, { shard, kind: 'taken' }, slot(c, ShardCounter.SnapshotsTaken));
      add(this.snapshots, { shard, kind: 'installed' }, slot(c, ShardCounter.SnapshotsInstalled));
      if (s.latency !== null) {
        for (const [op, l] of Object.entries(s.latency)) {
          add(this.latencyCount, { shard, op }, l.count);
          if (l.count === 0) continue;
          this.latency.set({ shard, op, quantile: '0.5' }, l.p50 / 1e6);
          this.latency.set({ shard, op, quantile: '0.99' }, l.p99 / 1e6);
          this.latency.set({ shard, op, quantile: '0.999' }, l.p999 / 1e6);
          this.latency.set({ shard, op, quantile: '1' }, l.max / 1e6);
        }
      }
    }

    this.connections.set({ transport: 'tcp' }, input.connections.tcp);
    this.connections.set({ transport: 'ws' }, input.connections.ws);

    for (const l of input.links) {
      const peer = String(l.node);
      this.linkUp.set({ peer }, l.up ? 1 : 0);
      add(this.linkFrames, { peer, direction: 'in' }, l.framesIn);
      add(this.linkFrames, { peer, direction: 'out' }, l.framesOut);
      add(this.linkBytes, { peer, direction: 'in' }, l.bytesIn);
      add(this.linkBytes, { peer, direction: 'out' }, l.bytesOut);
      add(this.linkDrops, { peer }, l.drops);
      add(this.linkReconnects, { peer }, l.reconnects);
    }
  }
}

function slot(c: Float64Array, i: ShardCounter): number {
  return i < c.length ? c[i]! : 0;
}

/** Sets a (just reset) counter to an absolute total; a value a counter cannot hold is skipped. */
function add(c: Counter, labels: Record<string, string>, v: number): void {
  if (Number.isFinite(v) && v >= 0) c.inc(labels, v);
}
