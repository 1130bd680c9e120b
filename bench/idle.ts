// Idle cost of many groups: a cluster of real node processes hosting N groups and serving no
// client, measured from the outside. For each N (a 1-group baseline first):
//   1. start the cluster (`flotilla cluster` on pre-written configs: one shard per node, so the
//      node processes share the machine's cores alike) and time it to "cluster ready";
//   2. time until every group has a leader all members agree on (polling /status);
//   3. let it settle (--settle seconds, then until no group changes term or leader between two
//      /status reads --stable-s apart: the tail of the first elections can last a while), then
//      for --seconds with no traffic read, per node process:
//      CPU (utime + stime deltas of /proc/<pid>/stat, all threads, % of one core; also the main
//      thread alone), RSS (VmRSS of /proc/<pid>/status, sampled each second), and from /metrics
//      deltas link bytes, link frames, Raft messages, shard turns and WAL appends per second;
//      /status before and after says whether any group changed term or leader meanwhile.
// RSS per group = (RSS at N − RSS of the 1-group baseline) / N, node by node, averaged; the
// marginal figure compares with the previous row instead. "Heartbeat rate % of nominal" is how
// many Raft messages the cluster sent against what one heartbeat per group per follower per tick
// (and its answer) would be: below 100% the shards are not keeping their tick.
// Scrapes of /metrics and /status happen outside the CPU window (rendering 10,000 groups'
// gauges is not idle work); the rates of /metrics deltas use the time between the two scrapes.
// Each /metrics answer is timed, and after the first one the bench waits for calm again (no
// term or leader change between two /status reads): a scrape that stalls a node's main thread
// stalls its links too, and the groups it made change term are counted and printed.
//
//   node dist/bench/idle.js [--groups 1000,10000] [--seconds 10] [--settle 5] [--stable-s 5] [--baseline 1]
//                           [--tick-ms 100] [--ticks-election 10] [--sync-force true]
//                           [--wait-s 300] [--json FILE] [--cpu-prof DIR]
// --cpu-prof DIR runs every node under `node --cpu-prof` (main thread and shard workers write
// .cpuprofile files into DIR/groups-N when they stop); the nodes are then spawned one by one
// rather than by `flotilla cluster` (NODE_OPTIONS does not take --cpu-prof). Profiling perturbs
// the CPU figures: use it apart from a measuring run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseBool, parseIntIn, parseOrExit, type CommandSpec, type OptionValues } from '../src/cli/args.js';
import {
  agreement, allStatus, clockTicks, cpuTicks, metricSum, rssBytes, sleep, startBenchCluster, waitFor,
  type BenchCluster, type CpuTicks, type Led,
} from './bench-cluster.js';

const IDLE_SPEC = {
  name: 'node dist/bench/idle.js',
  summary: 'Idle cost of many groups: CPU, RSS, link and Raft traffic of a cluster serving no client (see the header of bench/idle.ts).',
  options: {
    groups: { type: 'string', value: 'N,N,...', help: 'group counts to measure (default 1000,10000)' },
    seconds: { type: 'string', value: 'S', help: 'seconds measured per row (default 10)' },
    settle: { type: 'string', value: 'S', help: 'seconds to settle before measuring (default 5)' },
    'stable-s': { type: 'string', value: 'S', help: 'seconds without a term or leader change that count as calm (default 5)' },
    baseline: { type: 'string', value: 'N', help: 'groups of the baseline row (default 1; 0: none)' },
    nodes: { type: 'string', value: 'N', help: 'nodes (default 3)' },
    'tick-ms': { type: 'string', value: 'T', help: 'Raft tick (default 100)' },
    'ticks-election': { type: 'string', value: 'N', help: 'election timeout in ticks (default 10)' },
    'sync-force': { type: 'string', value: 'true|false', help: 'fdatasync before acknowledging (default true)' },
    'wait-s': { type: 'string', value: 'S', help: 'longest wait for start and leaders (default 300)' },
    json: { type: 'string', value: 'FILE', help: 'write the rows as JSON' },
    'cpu-prof': { type: 'string', value: 'DIR', help: 'profile every node (perturbs the figures)' },
  },
} as const satisfies CommandSpec;

const IDLE_DEFAULTS = {
  groups: '1000,10000', seconds: '10', settle: '5', 'stable-s': '5', baseline: '1', nodes: '3',
  'tick-ms': '100', 'ticks-election': '10', 'sync-force': 'true', 'wait-s': '300',
} as const;

function idleOptions(v: OptionValues<typeof IDLE_SPEC.options>) {
  const g = (k: keyof typeof IDLE_DEFAULTS): string => v[k] ?? IDLE_DEFAULTS[k];
  return {
    groupCounts: g('groups').split(',').map((s) => parseIntIn(s.trim(), '--groups', 1, Number.MAX_SAFE_INTEGER)),
    seconds: parseIntIn(g('seconds'), '--seconds', 1, Number.MAX_SAFE_INTEGER),
    settleS: parseIntIn(g('settle'), '--settle', 0, Number.MAX_SAFE_INTEGER),
    stableS: parseIntIn(g('stable-s'), '--stable-s', 1, Number.MAX_SAFE_INTEGER),
    baselineGroups: parseIntIn(g('baseline'), '--baseline', 0, Number.MAX_SAFE_INTEGER),
    nodeCount: parseIntIn(g('nodes'), '--nodes', 1, Number.MAX_SAFE_INTEGER),
    tickMs: parseIntIn(g('tick-ms'), '--tick-ms', 1, Number.MAX_SAFE_INTEGER),
    ticksElection: parseIntIn(g('ticks-election'), '--ticks-election', 2, Number.MAX_SAFE_INTEGER),
    waitMs: parseIntIn(g('wait-s'), '--wait-s', 1, Number.MAX_SAFE_INTEGER) * 1000,
    syncForce: parseBool(g('sync-force'), '--sync-force'),
    cpuProfDir: v['cpu-prof'] === undefined ? undefined : path.resolve(v['cpu-prof']),
    json: v.json,
  };
}

const { options: idle } = parseOrExit(IDLE_SPEC, process.argv.slice(2), (p) => idleOptions(p.values));
const { groupCounts, seconds, settleS, stableS, baselineGroups, nodeCount, tickMs, ticksElection, waitMs, syncForce, cpuProfDir } = idle;


interface NodeRow {
  node: number;
  leaders: number;
  /** % of one core over the window: the whole process, its main thread, every other thread. */
  cpuPct: number;
  cpuPctMain: number;
  cpuPctOthers: number;
  /** Highest one-second CPU % seen in the window. */
  cpuPctMax1s: number;
  /** CPU % by thread name over the window (threads of one name summed), largest first. */
  cpuPctByThread: Record<string, number>;
  rssBytesMean: number;
  rssBytesMax: number;
  /** Before the first /metrics scrape of the case (which builds every group's gauges in the main thread). */
  rssBytesBeforeScrape: number;
  linkBytesOutPerSec: number;
  linkBytesInPerSec: number;
  linkFramesOutPerSec: number;
  raftMsgsOutPerSec: number;
  raftMsgsInPerSec: number;
  turnsPerSec: number;
  walAppendsPerSec: number;
}

interface CaseRow {
  groups: number;
  /** Spawn of `flotilla cluster` to "cluster ready" (every node's /health 200). */
  startupMs: number;
  /** "cluster ready" to every group led with all members agreeing on the leader. */
  electionMs: number;
  /** Highest term of any group once all were led (2 = one election each, more = split votes). */
  termMax: number;
  /** All led to no group changing term or leader between two /status reads stableS apart (after settle). */
  stableMs: number;
  /** False when that did not happen within --wait-s; the window was measured anyway. */
  stable: boolean;
  /** Groups whose term or leader changed between the two /status reads around the window. */
  groupsTermChanged: number;
  groupsLeaderChanged: number;
  /** Groups without an agreed leader after the window. */
  groupsUnled: number;
  /** Groups that changed term or leader after the first /metrics scrape, before calm returned. */
  groupsChangedAfterScrape: number;
  /** Time each node took to answer /metrics (asked one at a time), ms. */
  metricsScrapeMs: number[];
  windowS: number;
  /** The window on CLOCK_MONOTONIC in µs (what V8's .cpuprofile timestamps use), to cut profiles to it. */
  windowMonotonicUs: [number, number];
  /**
   * Raft messages sent per second by all nodes ÷ what every group heartbeating every tick would
   * send (groups × (nodes − 1) × 2 × 1000 / tickMs, with ticksHeartbeat 1): how close the nodes
   * keep to their tick. A shard whose turn outlasts tickMs runs fewer ticks (missed timer
   * firings are not made up), so below 100% its Raft clock runs slow.
   */
  heartbeatRatePct: number;
  /** Whole machine over the window, from /proc/stat: busy and steal, % of all cores. */
  machineBusyPct: number;
  machineStealPct: number;
  loadAvg1: number;
  nodes: NodeRow[];
  /** Means over the nodes. */
  cpuPct: number;
  cpuPctMain: number;
  rssBytes: number;
  /** (RSS here − RSS of the baseline) / groups, node by node, averaged; null for the baseline. */
  rssBytesPerGroup: number | null;
  /** (RSS here − RSS of the previous row) / (groups − its groups): the cost of one more group; null for the first two rows. */
  rssBytesPerGroupMarginal: number | null;
  linkBytesOutPerSec: number;
  raftMsgsOutPerSec: number;
  nodeOutputLines: number;
  /** The first lines the nodes printed (log level warn: warnings and errors). */
  nodeOutput: string[];
}

/** Jiffies of the machine's aggregate cpu line: busy (everything but idle and iowait) and steal. */
function machineTicks(): { total: number; busy: number; steal: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!;
  return { total, busy: total - idle - f[7]!, steal: f[7]! };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

async function runCase(groups: number, baseline: CaseRow | null, previous: CaseRow | null): Promise<CaseRow> {
  const loadAvg1 = os.loadavg()[0]!;
  const t0 = performance.now();
  let nodeArgs: string[] | undefined;
  if (cpuProfDir !== undefined) {
    const dir = path.join(cpuProfDir, `groups-${groups}`);
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  }
  const c = await startBenchCluster({ nodes: nodeCount, groups, shards: 1, syncForce, tickMs, ticksElection, ...(nodeArgs !== undefined ? { nodeArgs } : {}) });
  try {
    const startupMs = performance.now() - t0;
    const ids = [...c.nodes.keys()].sort((a, b) => a - b);
    process.stdout.write(`  ${groups} groups: cluster ready in ${(startupMs / 1000).toFixed(1)} s (pids ${ids.map((id) => c.node(id).pid).join(', ')}); waiting for leaders\n`);
    const t1 = performance.now();
    let led: Led = { led: 0, termMax: 0, view: new Map() };
    let lastReport = t1;
    // /status of 10,000 groups is a few MB of JSON per node: poll gently.
    const pollMs = groups > 2000 ? 1000 : 250;
    await waitFor(async () => {
      led = agreement(await allStatus(c), groups);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        process.stdout.write(`    ${led.led}/${groups} led after ${((lastReport - t1) / 1000).toFixed(0)} s (term max ${led.termMax})\n`);
      }
      return led.led === groups;
    }, waitMs, `all ${groups} groups to have an agreed leader`, pollMs);
    const electionMs = performance.now() - t1;
    const termMax = led.termMax;
    process.stdout.write(`  ${groups} groups: all led ${(electionMs / 1000).toFixed(1)} s after ready (term max ${termMax}); settling ${settleS} s, then until stable for ${stableS} s\n`);
    await sleep(settleS * 1000);
    // Stable: no group changed term or leader between two reads stableS apart. Returns the last
    // view, whether it got there within waitMs, and how many groups changed on the way.
    const untilStable = async (what: string): Promise<{ view: Led; stable: boolean; changes: number }> => {
      let view = agreement(await allStatus(c), groups);
      let changes = 0;
      const deadline = performance.now() + waitMs;
      while (performance.now() < deadline) {
        await sleep(stableS * 1000);
        const next = agreement(await allStatus(c), groups);
        let changed = 0;
        for (const [g, v] of view.view) if (v === '' || next.view.get(g) !== v) changed++;
        view = next;
        changes += changed;
        if (changed === 0) return { view, stable: true, changes };
        process.stdout.write(`    ${what}: ${changed} groups changed term or leader (or are unled) in ${stableS} s\n`);
      }
      return { view, stable: false, changes };
    };
    const settled = await untilStable('settling');
    const stable = settled.stable;
    const stableMs = performance.now() - t1 - electionMs;
    if (!stable) process.stdout.write(`  ${groups} groups: NOT stable within ${waitMs / 1000} s; measuring anyway\n`);

    const rssBeforeScrape = new Map<number, number>(ids.map((id) => [id, rssBytes(c.node(id).pid)]));
    // One node at a time, each timed: rendering every group's gauges is work on the main thread,
    // the one that carries the links.
    const scrape = async (): Promise<{ t: number; text: Map<number, string>; ms: number[] }> => {
      const text = new Map<number, string>();
      const ms: number[] = [];
      for (const id of ids) {
        const t0s = performance.now();
        text.set(id, await c.metrics(id));
        ms.push(performance.now() - t0s);
      }
      return { t: performance.now(), text, ms };
    };
    const mA = await scrape();
    // A scrape of many groups can stall a node's links long enough for elections: wait until
    // calm again, so that the window measures idling and not the scrape's aftermath.
    const afterScrape = await untilStable('after the first /metrics scrape');
    const before = afterScrape.view;
    const leaders = new Map<number, number>();
    for (const v of before.view.values()) {
      const leader = Number(v.split('@')[0]);
      if (leader > 0) leaders.set(leader, (leaders.get(leader) ?? 0) + 1);
    }
    // Let the nodes finish what the last /status made them do (its garbage included).
    await sleep(1000);

    const tick = clockTicks();
    const cpuStart = new Map<number, CpuTicks>(ids.map((id) => [id, cpuTicks(c.node(id).pid)]));
    const machineStart = machineTicks();
    const wStart = performance.now();
    const wStartUs = Number(process.hrtime.bigint() / 1000n);
    const rss = new Map<number, number[]>(ids.map((id) => [id, [rssBytes(c.node(id).pid)]]));
    const max1s = new Map<number, number>(ids.map((id) => [id, 0]));
    let prev = new Map(cpuStart);
    let prevT = wStart;
    for (let s = 1; s <= seconds; s++) {
      await sleep(wStart + s * 1000 - performance.now());
      const now = performance.now();
      for (const id of ids) {
        if (!c.alive(id)) throw new Error(`node ${id} (pid ${c.node(id).pid}) is gone during the window; output:\n${c.output}`);
        const t = cpuTicks(c.node(id).pid);
        const pct = (100 * (t.total - prev.get(id)!.total) / tick) / ((now - prevT) / 1000);
        max1s.set(id, Math.max(max1s.get(id)!, pct));
        prev.set(id, t);
        rss.get(id)!.push(rssBytes(c.node(id).pid));
      }
      prevT = now;
    }
    const wEnd = prevT;
    const wEndUs = Number(process.hrtime.bigint() / 1000n);
    const after = agreement(await allStatus(c), groups);
    const machineEnd = machineTicks();
    const windowS = (wEnd - wStart) / 1000;
    const mB = await scrape();
    let termChanged = 0;
    let leaderChanged = 0;
    for (const [g, v] of before.view) {
      const w = after.view.get(g) ?? '';
      if (v !== w) {
        const [l0, t0s] = v.split('@');
        const [l1, t1s] = w.split('@');
        if (t0s !== t1s) termChanged++;
        if (l0 !== l1) leaderChanged++;
      }
    }

    const mS = (mB.t - mA.t) / 1000;
    const rate = (id: number, name: string, match: Record<string, string> = {}): number =>
      (metricSum(mB.text.get(id)!, name, match) - metricSum(mA.text.get(id)!, name, match)) / mS;
    const nodes: NodeRow[] = ids.map((id) => {
      const a = cpuStart.get(id)!;
      const b = prev.get(id)!;
      const pct = (ticks: number): number => (100 * ticks / tick) / windowS;
      const byThread: [string, number][] = [];
      for (const [name, tb] of b.byName) byThread.push([name, pct(tb - (a.byName.get(name) ?? 0))]);
      byThread.sort((x, y) => y[1] - x[1]);
      const rs = rss.get(id)!;
      return {
        node: id,
        leaders: leaders.get(id) ?? 0,
        cpuPct: pct(b.total - a.total),
        cpuPctMain: pct(b.main - a.main),
        cpuPctOthers: pct(b.others - a.others),
        cpuPctMax1s: max1s.get(id)!,
        cpuPctByThread: Object.fromEntries(byThread.filter(([, p]) => p > 0).map(([n, p]) => [n, round(p, 1)])),
        rssBytesMean: Math.round(mean(rs)),
        rssBytesMax: Math.max(...rs),
        rssBytesBeforeScrape: rssBeforeScrape.get(id)!,
        linkBytesOutPerSec: rate(id, 'flotilla_link_bytes_total', { direction: 'out' }),
        linkBytesInPerSec: rate(id, 'flotilla_link_bytes_total', { direction: 'in' }),
        linkFramesOutPerSec: rate(id, 'flotilla_link_frames_total', { direction: 'out' }),
        raftMsgsOutPerSec: rate(id, 'flotilla_raft_messages_total', { direction: 'out' }),
        raftMsgsInPerSec: rate(id, 'flotilla_raft_messages_total', { direction: 'in' }),
        turnsPerSec: rate(id, 'flotilla_shard_turns_total'),
        walAppendsPerSec: rate(id, 'flotilla_wal_appends_total'),
      };
    });
    const machineTotal = machineEnd.total - machineStart.total;
    let rssBytesPerGroup: number | null = null;
    if (baseline !== null) {
      const per = nodes.map((n) => {
        const b = baseline.nodes.find((x) => x.node === n.node);
        return b === undefined ? NaN : (n.rssBytesMean - b.rssBytesMean) / groups;
      });
      rssBytesPerGroup = mean(per);
    }
    let rssBytesPerGroupMarginal: number | null = null;
    if (previous !== null && previous !== baseline && previous.groups < groups) {
      rssBytesPerGroupMarginal = mean(nodes.map((n) => {
        const p = previous.nodes.find((x) => x.node === n.node);
        return p === undefined ? NaN : (n.rssBytesMean - p.rssBytesMean) / (groups - previous.groups);
      }));
    }
    return {
      groups,
      startupMs: Math.round(startupMs),
      electionMs: Math.round(electionMs),
      termMax,
      stableMs: Math.round(stableMs),
      stable,
      groupsTermChanged: termChanged,
      groupsLeaderChanged: leaderChanged,
      groupsUnled: groups - after.led,
      groupsChangedAfterScrape: afterScrape.changes,
      metricsScrapeMs: mA.ms.map((x) => Math.round(x)),
      windowS: round(windowS, 2),
      windowMonotonicUs: [wStartUs, wEndUs],
      heartbeatRatePct: round(100 * nodes.reduce((a, n) => a + n.raftMsgsOutPerSec, 0) / (groups * (nodeCount - 1) * 2 * 1000 / tickMs), 1),
      machineBusyPct: round(100 * (machineEnd.busy - machineStart.busy) / machineTotal, 1),
      machineStealPct: round(100 * (machineEnd.steal - machineStart.steal) / machineTotal, 1),
      loadAvg1: round(loadAvg1, 2),
      nodes,
      cpuPct: mean(nodes.map((n) => n.cpuPct)),
      cpuPctMain: mean(nodes.map((n) => n.cpuPctMain)),
      rssBytes: mean(nodes.map((n) => n.rssBytesMean)),
      rssBytesPerGroup,
      rssBytesPerGroupMarginal,
      linkBytesOutPerSec: mean(nodes.map((n) => n.linkBytesOutPerSec)),
      raftMsgsOutPerSec: mean(nodes.map((n) => n.raftMsgsOutPerSec)),
      nodeOutputLines: c.nodeLines,
      nodeOutput: [...c.nodeLinesKept],
    };
  } finally {
    await c.stop();
    c.removeData();
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const fmt = (x: number, digits = 0): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mib = (b: number): string => fmt(b / (1 << 20), 1);

function printTables(rows: CaseRow[]): void {
  console.log('');
  console.log('| groups | startup s | all led s | stable s | term max | CPU % of a core (mean of nodes; n1 / n2 / n3) | main thread % | RSS MiB | RSS per group vs 1 group / marginal | link KB/s out per node | Raft msgs/s out per node | msgs % of a heartbeat every tick | link frames/s out per node | terms changed in window |');
  console.log('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of rows) {
    const kib = (x: number | null): string => (x === null ? '–' : `${fmt(x / 1024, 1)} KiB`);
    const per = `${kib(r.rssBytesPerGroup)} / ${kib(r.rssBytesPerGroupMarginal)}`;
    console.log(`| ${fmt(r.groups)} | ${fmt(r.startupMs / 1000, 1)} | ${fmt(r.electionMs / 1000, 1)} | ${r.stable ? fmt(r.stableMs / 1000, 1) : 'no'} | ${r.termMax} `
      + `| ${fmt(r.cpuPct, 1)} (${r.nodes.map((n) => fmt(n.cpuPct, 1)).join(' / ')}) | ${fmt(r.cpuPctMain, 1)} | ${mib(r.rssBytes)} | ${per} `
      + `| ${fmt(r.linkBytesOutPerSec / 1000, 1)} | ${fmt(r.raftMsgsOutPerSec)} | ${fmt(r.heartbeatRatePct)} | ${fmt(mean(r.nodes.map((n) => n.linkFramesOutPerSec)), 1)} | ${r.groupsTermChanged} |`);
  }
  console.log('');
  console.log('Per node:');
  console.log('| groups | node | leads | CPU % | max 1 s | main % | other threads % | RSS MiB mean / max (before 1st /metrics) | link KB/s out / in | msgs/s out / in | turns/s | WAL appends/s |');
  console.log('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of rows) {
    for (const n of r.nodes) {
      console.log(`| ${fmt(r.groups)} | ${n.node} | ${fmt(n.leaders)} | ${fmt(n.cpuPct, 1)} | ${fmt(n.cpuPctMax1s, 1)} | ${fmt(n.cpuPctMain, 1)} | ${fmt(n.cpuPctOthers, 1)} `
        + `| ${mib(n.rssBytesMean)} / ${mib(n.rssBytesMax)} (${mib(n.rssBytesBeforeScrape)}) | ${fmt(n.linkBytesOutPerSec / 1000, 1)} / ${fmt(n.linkBytesInPerSec / 1000, 1)} `
        + `| ${fmt(n.raftMsgsOutPerSec)} / ${fmt(n.raftMsgsInPerSec)} | ${fmt(n.turnsPerSec, 1)} | ${fmt(n.walAppendsPerSec, 1)} |`);
    }
  }
  console.log('');
  for (const r of rows) {
    console.log(`${fmt(r.groups)} groups: window ${r.windowS} s; machine busy ${r.machineBusyPct}% of all cores (steal ${r.machineStealPct}%), load average before start ${r.loadAvg1}; `
      + `leaders changed ${r.groupsLeaderChanged}, unled after ${r.groupsUnled}; `
      + `/metrics took ${r.metricsScrapeMs.join(' / ')} ms, then ${r.groupsChangedAfterScrape} groups changed term or leader; node log lines ${r.nodeOutputLines}`);
    for (const l of r.nodeOutput.slice(0, 5)) console.log(`  ${l.slice(0, 300)}`);
  }
}

async function main(): Promise<void> {
  const counts = baselineGroups > 0 ? [baselineGroups, ...groupCounts] : groupCounts;
  console.log(`Idle cost of many groups: ${nodeCount} nodes on 127.0.0.1, 1 shard each, tickMs ${tickMs}, ticksElection ${ticksElection}, `
    + `syncForce ${syncForce}, ${settleS} s settle, ${seconds} s window; ${os.availableParallelism()} cores, Node ${process.version}`
    + (cpuProfDir !== undefined ? `; CPU profiles in ${cpuProfDir} (figures perturbed)` : ''));
  const rows: CaseRow[] = [];
  let baseline: CaseRow | null = null;
  let failure: { groups: number; error: string } | null = null;
  for (const n of counts) {
    try {
      const row = await runCase(n, baselineGroups > 0 && n !== baselineGroups ? baseline : null, rows.at(-1) ?? null);
      if (baselineGroups > 0 && n === baselineGroups && baseline === null) baseline = row;
      rows.push(row);
      process.stdout.write(`  ${n} groups: CPU ${fmt(row.cpuPct, 1)}% of a core per node, RSS ${mib(row.rssBytes)} MiB\n`);
    } catch (e) {
      failure = { groups: n, error: e instanceof Error ? e.message : String(e) };
      console.error(`${n} groups failed: ${failure.error}`);
      break;
    }
  }
  printTables(rows);
  if (idle.json !== undefined) {
    const out = {
      bench: 'idle',
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? '', node: process.version, memBytes: os.totalmem() },
      settings: { nodes: nodeCount, shards: 1, tickMs, ticksElection, syncForce, settleS, stableS, seconds, baselineGroups, cpuProf: cpuProfDir !== undefined },
      rows,
      failure,
    };
    fs.writeFileSync(idle.json, `${JSON.stringify(out, null, 2)}\n`);
  }
  if (failure !== null) process.exitCode = 1;
}

const stopOnSignal = (signal: NodeJS.Signals): void => {
  // process.exit runs BenchCluster's exit hook, which SIGKILLs every node still running.
  console.error(`idle bench: ${signal}, stopping`);
  process.exit(130);
};
process.on('SIGINT', stopOnSignal);
process.on('SIGTERM', stopOnSignal);

await main();
