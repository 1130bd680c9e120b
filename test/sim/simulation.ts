// One simulation run: N nodes hosting G groups, a network, disks, clocks, clients and chaos,
// all driven by one event queue and one seed. `run()` goes through three phases:
// 1. chaos, for `steps` simulated ms: crashes, partitions, broken links, lossy links,
//    membership changes, leader transfers, snapshots, and client traffic;
// 2. heal: every fault ends, every node is up, clients stop starting ops, and each group must
//    elect a leader and acknowledge a fresh write within ten election timeouts (liveness);
// 3. settle: every member of every group must catch up to the same applied index with the same
//    state; then the whole history is checked for linearizability.
// Safety checks run at every step (see invariants.ts and replica.ts); a failure throws a
// SimFailure naming the seed, the time and the group.
import { checkHistory, type HistoryOp, type KvResult } from './linearizability.js';
import { bootstrap, MemoryStorage } from '../../src/raft/memory-storage.js';
import { ChangeType, isJoint, type Change } from '../../src/raft/conf-change.js';
import { message, MessageType, Role, type ConfState, type Entry, type Message, type NodeId } from '../../src/raft/types.js';
import { Disk } from './disk.js';
import { EventQueue } from './event-queue.js';
import { hashNumber, hashSeed } from './hash.js';
import { GroupInvariants } from './invariants.js';
import { clientEndpoint, Network } from './network.js';
import { Prng } from './prng.js';
import { describeProfile, faultProfile, type FaultProfile, type SimOptions } from './profile.js';
import { cloneMessage, Replica } from './replica.js';
import { Client, type ClientReply, type ClientRequest } from './workload.js';

export class SimFailure extends Error {
  readonly code = 'SIM_FAILURE';
}

export interface SimResult {
  seed: number;
  /** 'failed' = an invariant, liveness check or core assertion broke; see `failure`. */
  outcome: 'ok' | 'undecided' | 'violation' | 'failed';
  failure: string | null;
  /** History ops checked for linearizability (all of them, indeterminate ones included). */
  ops: number;
  opsIndeterminate: number;
  traceHash: string;
  simMs: number;
  events: number;
  stats: SimStats;
  profile: string;
}

export interface SimStats {
  crashes: number;
  pauses: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshotsSent: number;
  elections: number;
  /** Replicas that went quiescent, and that were woken (by a message, a request or the host). */
  quiesces: number;
  wakes: number;
}

export class SimNode {
  up = true;
  /** Bumped by each crash; events of an older incarnation are ignored. */
  incarnation = 0;
  /** group id → the replica of that group on this node. */
  readonly replicas = new Map<number, Replica>();
  /** While now < pausedUntilMs the process is frozen (a long GC pause, a stopped VM). */
  pausedUntilMs = 0;
  /** Work put off by a pause, still to run. */
  deferred = 0;
  constructor(readonly queue: EventQueue, readonly index: number, readonly disk: Disk, readonly tickMs: number) {}

  /**
   * Runs `fn` now, or when a pause ends: a frozen process handles nothing, and what arrived
   * meanwhile (messages, disk completions, the late timer) is handled in order when it thaws.
   */
  run(fn: () => void): void {
    if (this.queue.now < this.pausedUntilMs) {
      this.deferred++;
      this.queue.at(this.pausedUntilMs, () => {
        this.deferred--;
        this.run(fn);
      });
    } else {
      fn();
    }
  }
}

interface PendingAdd {
  id: number;
  index: number;
  term: number;
}

export class SimGroup {
  /** Replica id → replica, for every replica not destroyed (the operator's directory). */
  readonly replicas = new Map<number, Replica>();
  nextReplicaId: number;
  /** Latest configuration applied by any replica, and the index it was applied at. */
  conf: ConfState;
  confIndex = 0;
  readonly pendingAdds: PendingAdd[] = [];
  readonly inv: GroupInvariants;
  /** Acknowledged writes, checked at the end. */
  readonly acked: { index: number; term: number }[] = [];
  readonly keys: string[];

  constructor(readonly sim: Simulation, readonly id: number, founders: number, keysPerGroup: number) {
    this.nextReplicaId = founders + 1;
    this.conf = { voters: [], votersOutgoing: [], learners: [], learnersNext: [] };
    this.inv = new GroupInvariants((what) => sim.fail(id, what), 10_000_000);
    this.keys = Array.from({ length: keysPerGroup }, (_, i) => `g${id}/k${i}`);
  }

  onConfApplied(index: number, conf: ConfState): void {
    if (index <= this.confIndex) return;
    this.confIndex = index;
    this.conf = conf;
    this.sim.trace(`conf g${this.id} @${index} voters [${conf.voters}] outgoing [${conf.votersOutgoing}] learners [${conf.learners}] next [${conf.learnersNext}]`);
  }

  isMember(id: number): boolean {
    const c = this.conf;
    return c.voters.includes(id) || c.votersOutgoing.includes(id) || c.learners.includes(id) || c.learnersNext.includes(id);
  }

  /** The live leader of the highest term (a frozen process answers no operator either). */
  leader(): Replica | null {
    let best: Replica | null = null;
    for (const r of this.replicas.values()) {
      const raft = r.raft;
      if (raft === null || raft.role !== Role.Leader || r.node.pausedUntilMs > this.sim.now) continue;
      if (best === null || raft.term > best.raft!.term) best = r;
    }
    return best;
  }
}

/** Liveness bound, in election timeouts (each up to 2 × ticksElection ticks). */
const LIVENESS_ELECTION_TIMEOUTS = 10;
const LOG_MATCHING_EVERY_MS = 250;
const OPERATOR_EVERY_MS = 50;
const TRACE_LINES_MAX = 200_000;
const EVENTS_PER_SIM_MS_MAX = 2000;
const HISTORY_OPS_MAX = 200_000;

export class Simulation {
  readonly queue = new EventQueue(1_000_000);
  readonly rng: Prng;
  readonly profile: FaultProfile;
  readonly net: Network;
  readonly nodes: SimNode[] = [];
  readonly groups: SimGroup[] = [];
  readonly clients: Client[] = [];
  readonly history: HistoryOp[] = [];
  nextOpId = 1;
  nextReadId = 1;
  private chaos = true;
  private traceHash = hashSeed;
  private readonly traceLines: string[] = [];
  private traceNext = 0;
  readonly stats: SimStats = { crashes: 0, pauses: 0, partitions: 0, confChanges: 0, transfers: 0, snapshotsSent: 0, elections: 0, quiesces: 0, wakes: 0 };
  /** Random streams per concern, so that adding draws to one does not reshuffle the others. */
  private readonly rngChaos: Prng;
  private readonly rngNet: Prng;
  /** Quiescence's draws (cold groups, random wakes): seeded apart, so seeds without it run as before. */
  private readonly rngQuiet: Prng;
  /** Per group: clients leave it alone until this time (it may go idle and quiesce). */
  private readonly coldUntilMs: number[];

  constructor(readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    this.profile = faultProfile(opts.seed);
    this.rngChaos = this.rng.fork();
    this.rngNet = this.rng.fork();
    this.rngQuiet = new Prng(opts.seed ^ 0x0c1e7c0d);
    this.coldUntilMs = new Array<number>(opts.groups).fill(0);
    const p = this.profile;
    this.net = new Network(this.queue, this.rngNet, opts.nodes, p.network, 100_000);
    for (let i = 0; i < opts.nodes; i++) {
      const skew = this.rng.real(-p.clockSkew, p.clockSkew);
      this.nodes.push(new SimNode(this.queue, i, new Disk(this.queue, this.rng.fork(), p.disk, 100_000), p.tickMs * (1 + skew)));
    }
    const founders = Math.min(opts.replicasPerGroup, opts.nodes);
    for (let g = 0; g < opts.groups; g++) {
      const group = new SimGroup(this, g, founders, opts.keysPerGroup);
      this.groups.push(group);
      const hosts = this.rng.shuffle(this.nodes.map((n) => n.index)).slice(0, founders);
      const ids = hosts.map((_, i) => i + 1);
      group.conf = { voters: ids, votersOutgoing: [], learners: [], learnersNext: [] };
      group.confIndex = 1;
      hosts.forEach((h, i) => {
        const storage = new MemoryStorage();
        bootstrap(storage, ids);
        this.addReplica(group, ids[i]!, this.nodes[h]!, storage);
      });
    }
    for (let c = 0; c < opts.clients; c++) {
      this.clients.push(new Client(this, c, this.rng.fork(), null, p.clientTimeoutMs));
    }
  }

  get now(): number {
    return this.queue.now;
  }

  // --- Failures and tracing ---

  fail(group: number | null, what: string): never {
    const where = group === null ? '' : ` group ${group}`;
    throw new SimFailure(`seed ${this.opts.seed} t=${this.now.toFixed(3)}ms${where}: ${what}`);
  }

  /** Keeps the line in a bounded ring when tracing is on (`--trace`). */
  trace(line: string): void {
    if (!this.opts.trace) return;
    const s = `${this.now.toFixed(3).padStart(10)} ${line}`;
    if (this.traceLines.length < TRACE_LINES_MAX) this.traceLines.push(s);
    else this.traceLines[this.traceNext] = s;
    this.traceNext = (this.traceNext + 1) % TRACE_LINES_MAX;
  }

  traceTail(): string[] {
    if (this.traceLines.length < TRACE_LINES_MAX) return this.traceLines.slice();
    return [...this.traceLines.slice(this.traceNext), ...this.traceLines.slice(0, this.traceNext)];
  }

  private mix(...vs: number[]): void {
    let h = this.traceHash;
    for (const v of vs) h = hashNumber(h, v);
    this.traceHash = h;
  }

  traceApply(r: Replica, e: Entry): void {
    this.mix(1, this.now, r.group.id, r.id, e.index, e.term);
    if (this.opts.trace) this.trace(`apply g${r.group.id} r${r.id} ${e.index}/${e.term}${e.type === 0 ? '' : ' conf'}`);
  }

  // --- Replicas ---

  private addReplica(group: SimGroup, id: number, node: SimNode, storage: MemoryStorage): Replica {
    if (node.replicas.has(group.id)) throw new Error(`node ${node.index} already hosts group ${group.id}`);
    const r = new Replica(this, group, id, node, storage, this.rng.fork());
    group.replicas.set(id, r);
    node.replicas.set(group.id, r);
    if (node.up) r.boot();
    return r;
  }

  private destroyReplica(r: Replica, why: string): void {
    this.trace(`destroy g${r.group.id} r${r.id}@n${r.node.index}: ${why}`);
    r.stop();
    r.destroyed = true;
    r.group.replicas.delete(r.id);
    r.node.replicas.delete(r.group.id);
  }

  // --- Messages ---

  sendRaft(from: Replica, m: Message): void {
    const group = from.group;
    const target = group.replicas.get(m.to);
    if (target === undefined) return; // destroyed (or never existed): nobody to deliver to
    if (m.type === MessageType.Snap) this.stats.snapshotsSent++;
    const msg = cloneMessage(m);
    const fromRaft = from.raft;
    const toId = m.to;
    // The sender's transport learns whether a snapshot got through (it streams the file).
    const reportSnapshot = (ok: boolean): void => from.node.run(() => {
      if (fromRaft === null || from.raft !== fromRaft) return;
      fromRaft.reportSnapshot(toId, ok);
      from.drain();
    });
    this.net.send(
      from.node.index,
      target.node.index,
      true,
      () => target.node.run(() => {
        const r = group.replicas.get(toId);
        if (r === undefined || !r.node.up || r.raft === null) return;
        this.mix(2, this.now, group.id, msg.type, msg.from, msg.to, msg.term, msg.index, msg.entries.length);
        if (this.opts.trace) this.trace(`deliver g${group.id} ${describeMessage(msg)}`);
        if (msg.type === MessageType.Snap) reportSnapshot(true);
        r.step(cloneMessage(msg));
      }),
      () => {
        if (msg.type === MessageType.Snap) reportSnapshot(false);
      },
    );
    if (this.opts.bug === 'forge-ack' && m.type === MessageType.App && m.entries.length > 0 && this.rngNet.chance(0.5)) {
      // The deliberate bug: the follower "accepted" entries it never saw.
      const forged = message(MessageType.AppResp, m.to, m.from, m.term);
      forged.index = m.index + m.entries.length;
      this.net.send(target.node.index, from.node.index, false, () => {
        if (from.raft === fromRaft && fromRaft !== null) from.step(forged);
      });
    }
  }

  sendToNode(client: number, node: number, req: ClientRequest): void {
    const n = this.nodes[node]!;
    this.net.send(clientEndpoint(client), node, false, () => n.run(() => {
      if (!n.up) return; // nobody listening: the client times out
      const r = n.replicas.get(req.group);
      if (r === undefined || r.raft === null) {
        this.reply(node, req, { opId: req.opId, attempt: req.attempt, kind: 'reject', code: 'NO_REPLICA', leader: 0 });
        return;
      }
      r.onClientRequest(req);
    }));
  }

  replyOk(from: Replica, req: ClientRequest, result: KvResult, index?: number, term?: number): void {
    if (index !== undefined && term !== undefined && req.op.kind !== 'get') from.group.acked.push({ index, term });
    this.reply(from.node.index, req, { opId: req.opId, attempt: req.attempt, kind: 'ok', result });
  }

  replyReject(from: Replica, req: ClientRequest, code: string, leader: NodeId): void {
    this.reply(from.node.index, req, { opId: req.opId, attempt: req.attempt, kind: 'reject', code, leader });
  }

  private reply(node: number, req: ClientRequest, r: ClientReply): void {
    const c = this.clients[req.client]!;
    this.net.send(node, clientEndpoint(req.client), false, () => c.onReply(r));
  }

  // --- Time ---

  private scheduleTick(node: SimNode, delayMs: number): void {
    const inc = node.incarnation;
    this.queue.after(delayMs, () => node.run(() => {
      if (!node.up || node.incarnation !== inc) return;
      this.detectFailures(node, true);
      for (const r of [...node.replicas.values()]) r.tick();
      this.scheduleTick(node, node.tickMs);
    }));
  }

  // --- Quiescence: the host's failure detector ---

  /**
   * Whether replica `r` can no longer hear from the leader it knows: the leader's node is down
   * or cut off from r's node (either way: a real link is a TCP connection, down as a whole), or
   * the leader replica leads no more (it restarted: its link went down and came back). An
   * oracle standing in for the link-down events a real node gets.
   */
  private leaderLost(r: Replica): boolean {
    const raft = r.raft!;
    const l = r.group.replicas.get(raft.leader);
    if (l === undefined || l.raft === null || !l.node.up) return true;
    if (!this.net.connected(l.node.index, r.node.index) || !this.net.connected(r.node.index, l.node.index)) return true;
    return l.raft.role !== Role.Leader || l.raft.term !== raft.term;
  }

  /**
   * Wakes the quiesced replicas of `node` that lost their leader; with `atRandom`, wakes any
   * other quiesced replica with a small probability too, to exercise the wake paths.
   */
  private detectFailures(node: SimNode, atRandom: boolean): void {
    if (this.profile.raft.ticksQuiesce === 0 || !node.up) return;
    for (const r of [...node.replicas.values()]) {
      if (r.raft === null || !r.raft.quiesced) continue;
      if (this.leaderLost(r)) r.wake('leader unreachable');
      else if (atRandom && this.chaos && this.profile.wakeRandomP > 0 && this.rngQuiet.chance(this.profile.wakeRandomP)) r.wake('at random');
    }
  }

  /** A fault just happened: every node's detector looks at once (it also looks every tick). */
  private detectFailuresEverywhere(): void {
    if (this.profile.raft.ticksQuiesce === 0) return;
    for (const n of this.nodes) n.run(() => this.detectFailures(n, false));
  }

  /** Whether clients leave `group` alone for now. */
  isCold(group: number): boolean {
    return this.now < this.coldUntilMs[group]!;
  }

  private chaosCold(): void {
    const g = this.rngQuiet.int(0, this.groups.length - 1);
    this.coldUntilMs[g] = this.now + this.rngQuiet.real(50, this.profile.coldMsMax);
    this.trace(`cold g${g} until ${this.coldUntilMs[g]!.toFixed(3)}`);
  }

  /** Runs `fn` again and again, at random intervals of mean `meanMs`, while chaos is on. */
  private every(meanMs: number, fn: () => void): void {
    if (!Number.isFinite(meanMs)) return;
    const again = (): void => {
      this.queue.after(this.rngChaos.real(0.2, 1.8) * meanMs, () => {
        if (!this.chaos) return;
        fn();
        again();
      });
    };
    again();
  }

  // --- Chaos ---

  private crash(node: SimNode): void {
    if (!node.up) return;
    node.up = false;
    node.incarnation++;
    node.pausedUntilMs = 0;
    this.stats.crashes++;
    const d = node.disk.crash();
    for (const r of node.replicas.values()) r.stop();
    this.trace(`crash n${node.index}: ${d.kept} pending writes kept, ${d.lost} lost${d.torn ? ', one torn' : ''}`);
    this.mix(3, this.now, node.index, d.kept, d.lost);
    this.detectFailuresEverywhere();
  }

  private restart(node: SimNode): void {
    if (node.up) return;
    node.up = true;
    node.incarnation++;
    this.trace(`restart n${node.index}`);
    for (const r of [...node.replicas.values()]) r.boot();
    this.scheduleTick(node, this.rngChaos.real(0, node.tickMs));
  }

  private chaosCrash(): void {
    const up = this.nodes.filter((n) => n.up);
    if (up.length === 0) return;
    const n = this.rngChaos.pick(up);
    this.crash(n);
    this.queue.after(this.rngChaos.real(5, this.profile.downMsMax), () => this.restart(n));
  }

  private chaosPartition(): void {
    if (this.net.partitioned) return;
    const sides = this.rngChaos.chance(0.2) ? 3 : 2;
    const side = this.nodes.map(() => this.rngChaos.int(0, sides - 1));
    this.net.partition(side);
    this.stats.partitions++;
    this.trace(`partition [${side.join(',')}]`);
    this.detectFailuresEverywhere();
    this.queue.after(this.rngChaos.real(20, this.profile.partitionMsMax), () => {
      this.net.healPartition();
      this.trace('partition healed');
    });
  }

  private chaosPause(): void {
    const up = this.nodes.filter((n) => n.up && n.pausedUntilMs <= this.now);
    if (up.length === 0) return;
    const n = this.rngChaos.pick(up);
    n.pausedUntilMs = this.now + this.rngChaos.real(10, this.profile.pauseMsMax);
    this.stats.pauses++;
    this.trace(`pause n${n.index} until ${n.pausedUntilMs.toFixed(3)}`);
  }

  private chaosLink(): void {
    const n = this.nodes.length;
    if (n < 2) return;
    const a = this.rngChaos.int(0, n - 1);
    const b = (a + this.rngChaos.int(1, n - 1)) % n;
    this.net.linkDown(a, b);
    this.trace(`link ${a}→${b} down`);
    this.detectFailuresEverywhere();
    this.queue.after(this.rngChaos.real(20, this.profile.linkFailMsMax), () => this.net.linkUp(a, b));
  }

  private chaosTransfer(): void {
    const group = this.rngChaos.pick(this.groups);
    const leader = group.leader();
    if (leader === null) return;
    const voters = leader.raft!.confState().voters.filter((v) => v !== leader.id);
    if (voters.length === 0) return;
    const to = this.rngChaos.pick(voters);
    const r = leader.raft!.transferLeader(to);
    this.trace(`transfer g${group.id} r${leader.id} → r${to}: ${r.ok ? 'ok' : r.code}`);
    if (r.ok) this.stats.transfers++;
    leader.drain();
  }

  private chaosMembership(): void {
    const rng = this.rngChaos;
    const group = rng.pick(this.groups);
    const leader = group.leader();
    if (leader === null) return;
    const conf = leader.raft!.confState();
    if (isJoint(conf)) return;
    const voters = conf.voters;
    const learners = conf.learners.filter((id) => group.replicas.has(id));
    const free = this.nodes.filter((n) => !n.replicas.has(group.id));
    const options: (() => Change | null)[] = [];
    if (free.length > 0 && voters.length + conf.learners.length < this.nodes.length) {
      options.push(() => {
        const node = rng.pick(free);
        const id = group.nextReplicaId++;
        this.addReplica(group, id, node, new MemoryStorage());
        return { type: ChangeType.AddLearner, node: id };
      });
    }
    if (learners.length > 0) options.push(() => ({ type: ChangeType.AddVoter, node: rng.pick(learners) }));
    if (voters.length > 3 || (voters.length > 1 && rng.chance(0.2))) {
      options.push(() => ({ type: ChangeType.RemoveVoter, node: rng.pick(voters) }));
    }
    if (conf.learners.length > 0 && rng.chance(0.3)) options.push(() => ({ type: ChangeType.RemoveVoter, node: rng.pick(conf.learners) }));
    if (voters.length > 2 && rng.chance(0.1)) options.push(() => ({ type: ChangeType.AddLearner, node: rng.pick(voters) })); // demotion
    if (options.length === 0) return;
    const count = rng.chance(0.25) ? Math.min(2, options.length) : 1;
    rng.shuffle(options);
    const changes: Change[] = [];
    const created: number[] = [];
    for (let i = 0; i < count; i++) {
      const ch = options[i]!();
      if (ch === null || changes.some((c) => c.node === ch.node)) continue;
      if (ch.type === ChangeType.AddLearner && !voters.includes(ch.node)) created.push(ch.node);
      changes.push(ch);
    }
    if (changes.length === 0) return;
    const raft = leader.raft;
    if (raft === null) return;
    const res = raft.proposeConfChange({ leave: false, changes });
    const what = changes.map((c) => `${ChangeType[c.type]} ${c.node}`).join(', ');
    this.trace(`conf-change g${group.id} via r${leader.id}: ${what}: ${res.ok ? `index ${res.index} term ${res.term}` : res.code}`);
    if (res.ok) {
      this.stats.confChanges++;
      for (const id of created) group.pendingAdds.push({ id, index: res.index, term: res.term });
    } else {
      for (const id of created) {
        const r = group.replicas.get(id);
        if (r !== undefined) this.destroyReplica(r, 'its addition was refused');
      }
    }
    leader.drain();
  }

  /**
   * What an operator does: forgets replicas that are no longer members, once the configuration
   * without them is applied by every member (destroying them earlier could leave a lagging
   * member in the joint configuration with too few voters to ever elect a leader).
   */
  private operator(): void {
    for (const group of this.groups) {
      for (let i = group.pendingAdds.length - 1; i >= 0; i--) {
        const p = group.pendingAdds[i]!;
        const t = group.inv.termAt(p.index);
        const resolved = (t !== 0 && group.inv.maxApplied >= p.index) || group.confIndex >= p.index;
        if (resolved) group.pendingAdds.splice(i, 1);
      }
      if (isJoint(group.conf)) continue;
      let caughtUp = true;
      for (const r of group.replicas.values()) {
        if (group.isMember(r.id) && (r.raft === null || r.applied < group.confIndex)) caughtUp = false;
      }
      if (!caughtUp) continue;
      for (const r of [...group.replicas.values()]) {
        if (group.isMember(r.id) || group.pendingAdds.some((p) => p.id === r.id)) continue;
        this.destroyReplica(r, `not a member as of index ${group.confIndex}`);
      }
    }
  }

  // --- Periodic safety checks ---

  private checkLogs(): void {
    for (const group of this.groups) {
      const live: Replica[] = [];
      for (const r of group.replicas.values()) if (r.raft !== null) live.push(r);
      for (let i = 0; i < live.length; i++) {
        group.inv.checkCommittedPrefix(live[i]!.raft!);
        for (let j = i + 1; j < live.length; j++) group.inv.checkLogMatching(live[i]!.raft!, live[j]!.raft!);
      }
    }
  }

  // --- The run ---

  run(): SimResult {
    const opts = this.opts;
    const p = this.profile;
    const eventsMax = (opts.steps + 30_000) * EVENTS_PER_SIM_MS_MAX;
    const guard = (): boolean => {
      if (this.queue.eventsRun > eventsMax) this.fail(null, `event budget of ${eventsMax} exhausted`);
      if (this.history.length > HISTORY_OPS_MAX) this.fail(null, `history over its bound of ${HISTORY_OPS_MAX}`);
      return false;
    };
    for (const n of this.nodes) this.scheduleTick(n, this.rng.real(0, n.tickMs));
    for (const c of this.clients) c.start(this.rng.real(0, 50));
    this.every(p.crashEveryMs, () => this.chaosCrash());
    this.every(p.partitionEveryMs, () => this.chaosPartition());
    this.every(p.linkFailEveryMs, () => this.chaosLink());
    this.every(p.pauseEveryMs, () => this.chaosPause());
    this.every(p.membershipEveryMs, () => this.chaosMembership());
    this.every(p.transferEveryMs, () => this.chaosTransfer());
    this.every(p.coldEveryMs, () => this.chaosCold());
    const periodic = (everyMs: number, fn: () => void): void => {
      this.queue.after(everyMs, () => {
        fn();
        periodic(everyMs, fn);
      });
    };
    periodic(LOG_MATCHING_EVERY_MS, () => this.checkLogs());
    periodic(OPERATOR_EVERY_MS, () => this.operator());

    // Phase 1: chaos.
    this.queue.runUntil(opts.steps, guard);

    // Phase 2: heal, then liveness.
    this.chaos = false;
    this.net.healAll();
    for (const n of this.nodes) n.pausedUntilMs = 0;
    for (const n of this.nodes) this.restart(n);
    // Whatever the detector missed, the heal wakes: every group must show it is live.
    for (const n of this.nodes) for (const r of [...n.replicas.values()]) r.wake('heal');
    for (const c of this.clients) c.stopped = true;
    this.trace('--- healed ---');
    const tickMsMax = Math.max(...this.nodes.map((n) => n.tickMs));
    const livenessMs = LIVENESS_ELECTION_TIMEOUTS * 2 * p.raft.ticksElection * tickMsMax;
    const probes = this.groups.map((g, i) => {
      const c = new Client(this, this.clients.length + i, this.rng.fork(), g.id, 4 * p.raft.ticksElection * tickMsMax);
      return c;
    });
    this.clients.push(...probes);
    for (const c of probes) c.start(0);
    const healedAt = this.now;
    this.queue.runUntil(healedAt + livenessMs, () => guard() || probes.every((c) => c.probeDone));
    for (const c of probes) {
      if (!c.probeDone) {
        const g = this.groups[c.index - opts.clients]!;
        this.fail(g.id, `liveness: no fresh write acknowledged within ${livenessMs.toFixed(0)}ms after the heal; ${this.describeGroup(g)}`);
      }
    }

    // Phase 3: settle. Every member catches up; then compare states.
    const settled = (): boolean => this.groups.every((g) => this.groupSettled(g)) && this.clients.every((c) => !c.busy);
    this.queue.runUntil(this.now + livenessMs + p.clientTimeoutMs, () => guard() || settled());
    this.checkLogs();
    for (const g of this.groups) {
      if (!this.groupSettled(g)) this.fail(g.id, `liveness: members did not converge within ${livenessMs.toFixed(0)}ms; ${this.describeGroup(g)}`);
      this.checkFinalState(g);
    }
    for (const c of this.clients) c.abandon();

    // Phase 4, with quiescence: left alone, every group goes quiet (every member of it) within
    // a bound, and then the cluster sends nothing at all: no wake loop survives the chaos.
    if (p.raft.ticksQuiesce > 0) {
      const quietBoundMs = (p.raft.ticksQuiesce + LIVENESS_ELECTION_TIMEOUTS * 2 * p.raft.ticksElection) * tickMsMax +
        p.network.stragglerDelayMsMax;
      // A message in flight, a write on a disk (its acknowledgement follows) or work put off by
      // a pause may still wake whoever it reaches: quiet means none of them is left either.
      const quiet = (): boolean => this.net.messagesInFlight === 0 &&
        this.nodes.every((n) => n.deferred === 0 && n.disk.pendingCount === 0) && this.groups.every((g) => this.groupQuiet(g));
      this.queue.runUntil(this.now + quietBoundMs, () => guard() || quiet());
      for (const g of this.groups) {
        if (!this.groupQuiet(g)) this.fail(g.id, `quiescence: the group did not go quiet within ${quietBoundMs.toFixed(0)}ms of idling; ${this.describeGroup(g)}`);
      }
      if (!quiet()) this.fail(null, `quiescence: messages, writes or deferred work still pending ${quietBoundMs.toFixed(0)}ms after idling`);
      const sent = this.net.stats.sent;
      const quietMs = 4 * 2 * p.raft.ticksElection * tickMsMax;
      this.queue.runUntil(this.now + quietMs, guard);
      if (this.net.stats.sent !== sent) this.fail(null, `quiescence: quiet groups sent ${this.net.stats.sent - sent} messages in ${quietMs.toFixed(0)}ms`);
    }

    // Linearizability of everything the clients saw.
    const report = checkHistory(this.history, { stepsMaxPerKey: opts.checkStepsMaxPerKey });
    const indeterminate = this.history.filter((h) => h.complete === null).length;
    const result: SimResult = {
      seed: opts.seed,
      outcome: report.outcome,
      failure: null,
      ops: report.ops,
      opsIndeterminate: indeterminate,
      traceHash: this.traceHash.toString(16).padStart(8, '0'),
      simMs: this.now,
      events: this.queue.eventsRun,
      stats: { ...this.stats },
      profile: describeProfile(p),
    };
    if (report.outcome === 'violation') {
      result.failure = `seed ${opts.seed}: linearizability violation on key ${report.failedKey}: ${report.detail ?? ''}`;
    } else if (report.outcome === 'undecided') {
      result.failure = `seed ${opts.seed}: linearizability undecided on key ${report.failedKey}: ${report.detail ?? ''}`;
    }
    return result;
  }

  /** Every member of the group is quiesced. */
  private groupQuiet(g: SimGroup): boolean {
    for (const r of g.replicas.values()) {
      if (g.isMember(r.id) && (r.raft === null || !r.raft.quiesced)) return false;
    }
    return true;
  }

  private groupSettled(g: SimGroup): boolean {
    if (isJoint(g.conf)) return false;
    const leader = g.leader();
    if (leader === null) return false;
    const target = leader.raft!.lastIndex();
    for (const r of g.replicas.values()) {
      if (!g.isMember(r.id)) {
        // A replica created for an addition whose fate is unknown yet (its entry may sit at an
        // index nothing has been committed at) is no member and may linger; a removed one must
        // be gone.
        if (g.pendingAdds.some((p) => p.id === r.id)) continue;
        return false;
      }
      if (r.raft === null || r.applied !== target || r.raft.commit !== target) return false;
    }
    return true;
  }

  /** Every member holds the same state, and every acknowledged write is applied everywhere. */
  private checkFinalState(g: SimGroup): void {
    const members = [...g.replicas.values()].filter((r) => g.isMember(r.id));
    const first = members[0];
    if (first === undefined) this.fail(g.id, 'no member left');
    const image = first.kv.serialize();
    for (const r of members) {
      const other = r.kv.serialize();
      if (!bytesEqual(image, other)) {
        this.fail(g.id, `replicas ${first.id} and ${r.id} both applied ${r.applied} but hold different states`);
      }
    }
    for (const a of g.acked) {
      const t = g.inv.termAt(a.index);
      if (t !== 0 && t !== a.term) this.fail(g.id, `acknowledged write at index ${a.index} term ${a.term} was replaced by term ${t}`);
      for (const r of members) {
        if (r.applied < a.index) this.fail(g.id, `acknowledged write at index ${a.index} not applied by replica ${r.id} (applied ${r.applied})`);
      }
    }
  }

  describeGroup(g: SimGroup): string {
    const reps = [...g.replicas.values()].map((r) => r.describe()).join('; ');
    return `conf @${g.confIndex} voters [${g.conf.voters}] outgoing [${g.conf.votersOutgoing}] learners [${g.conf.learners}]; ${reps}`;
  }
}

export function describeMessage(m: Message): string {
  let s = `${MessageType[m.type]} ${m.from}→${m.to} term ${m.term}`;
  switch (m.type) {
    case MessageType.App:
      s += ` prev ${m.index}/${m.logTerm} entries ${m.entries.length > 0 ? `${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : 'none'} commit ${m.commit}`;
      break;
    case MessageType.AppResp:
      s += m.reject ? ` reject ${m.index} hint ${m.rejectHint}/${m.logTerm}` : ` index ${m.index}`;
      break;
    case MessageType.Vote: case MessageType.PreVote:
      s += ` last ${m.index}/${m.logTerm}${m.context !== 0 ? ' transfer' : ''}`;
      break;
    case MessageType.VoteResp: case MessageType.PreVoteResp:
      s += m.reject ? ' rejected' : ' granted';
      break;
    case MessageType.Heartbeat:
      s += ` commit ${m.commit} ctx ${m.context}`;
      break;
    case MessageType.HeartbeatResp:
      s += ` ctx ${m.context}`;
      break;
    case MessageType.Snap:
      s += ` snapshot ${m.snapshot?.meta.index}/${m.snapshot?.meta.term}`;
      break;
    default:
      break;
  }
  return s;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Runs one seed; never throws: a failure is reported in the result, with the seed. */
export function runSeed(opts: SimOptions): SimResult & { trace: string[] } {
  const sim = new Simulation(opts);
  try {
    return { ...sim.run(), trace: sim.traceTail() };
  } catch (e) {
    const err = e as Error;
    const msg = e instanceof SimFailure
      ? err.message
      : `seed ${opts.seed} t=${sim.now.toFixed(3)}ms: ${err.name}${(err as { code?: string }).code !== undefined ? ` (${(err as { code?: string }).code})` : ''}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
    return {
      seed: opts.seed,
      outcome: 'failed',
      failure: msg,
      ops: sim.history.length,
      opsIndeterminate: 0,
      traceHash: '',
      simMs: sim.now,
      events: sim.queue.eventsRun,
      stats: { ...sim.stats },
      profile: describeProfile(sim.profile),
      trace: sim.traceTail(),
    };
  }
}
