// The host simulator: N machines, each running the production shard (src/shard/shard.ts) with
// its real write-ahead log, snapshot store and KV state machine on a simulated file system
// (sim-fs.ts), its real rings, outbox and codecs, under simulated clocks, timers and network;
// clients speak the real client protocol to it. One event queue and one seed drive everything,
// so a run is a pure function of its seed. What stands in for the rest of a node is only the
// main thread's routing (copy a peer payload into the destination's in ring, a client frame
// into its node's in ring, tell a shard when a peer link goes down or up), as
// src/node/client-routing.ts and peer-routing.ts do with sockets.
//
// Phases: chaos for `steps` simulated ms (crashes of processes and of machines, pauses,
// partitions, one-way link failures, lost messages, stragglers, clock drift and jumps, full
// disks, failing syncs, leader transfers, client traffic); heal (every fault ends, every node
// up; each group must acknowledge a fresh write within a bound); settle (every member of every
// group applies the same log and holds byte-equal state); a final read of every key; then the
// whole history is checked for linearizability.
//
// The engine runs its async code (promises, awaits) as in production. The driver runs one
// event, then lets every promise chain settle (a setImmediate round: nothing else is running
// in this thread, so that is deterministic), then routes what the shards wrote to their out
// rings, and repeats.
import { pack, unpack } from 'msgpackr';
import { pino } from 'pino';
import type { Cancel, Clock, Scheduler } from '../../src/io/clock.js';
import { decodeKvResult } from '../../src/kv/kv-service.js';
import { encodeCommand, type KvCommand } from '../../src/kv/kv-state-machine.js';
import { createKvStateMachine } from '../../src/kv/kv-service.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameFlag, FrameKind, readHeader, type ErrorBody } from '../../src/protocol/client-frame.js';
import { GROUP_BROADCAST, SUB_HEADER_BYTES, SubKind } from '../../src/protocol/peer-wire.js';
import { decodeHeartbeats, decodeRaftMessage } from '../../src/protocol/raft-codec.js';
import { MessageType, Role } from '../../src/raft/types.js';
import { InKind, OutKind, RECORD_HEADER_BYTES, recordArg, tryWriteRecord } from '../../src/ring/records.js';
import { SpscRing } from '../../src/ring/spsc-ring.js';
import { createCounters, ShardCounter } from '../../src/shard/counters.js';
import { Outbox } from '../../src/shard/outbox.js';
import { Shard } from '../../src/shard/shard.js';
import type { StateMachine } from '../../src/shard/state-machine.js';
import type { ShardTask } from '../../src/shard/task.js';
import { EventQueue } from './event-queue.js';
import { hashBytes, hashNumber, hashSeed } from './hash.js';
import { describeHostProfile, hostProfile, type HostProfile, type HostSimOptions } from './host-profile.js';
import { GroupInvariants } from './invariants.js';
import { checkHistory, type HistoryOp, type KvOp, type KvResult } from './linearizability.js';
import { Network } from './network.js';
import { Prng } from './prng.js';
import { SimFs } from './sim-fs.js';

export class HostSimFailure extends Error {
  readonly code = 'SIM_FAILURE';
}

export interface HostSimStats {
  crashesProcess: number;
  /** Seeds whose groups went quiet and then stayed silent (phase 5; seeds that quiesce). */
  quietChecked: number;
  /** What removed replicas that were never destroyed sent meanwhile (their campaigns: allowed). */
  quietNonMemberSent: number;
  crashesMachine: number;
  /** Every machine crashed at once (syncForce on). */
  powerLosses: number;
  shardFailures: number;
  restarts: number;
  pauses: number;
  partitions: number;
  linkFailures: number;
  messagesLost: number;
  clockJumps: number;
  diskFulls: number;
  transfers: number;
  /** Membership changes asked through admin, and those answered as in effect. */
  memberChangesAsked: number;
  memberChangesDone: number;
  /** Replicas of removed members destroyed (removeGroup on their node). */
  replicasDestroyed: number;
  /** joinGroup asked of a newcomer (an empty replica of a group it did not found: HostProfile.newcomer). */
  joinsAsked: number;
  /** Groups whose newcomer ended the run a voter (it joined empty, was added, caught up and promoted). */
  newcomerVoters: number;
  syncsFailed: number;
  writesNoSpace: number;
  filesLostTail: number;
  filesTorn: number;
  filesTornZeroed: number;
  dirChangesLost: number;
  snapshotsInstalled: number;
  snapshotsTaken: number;
  /** Reads served on a leader's lease, and those whose lease ran out before they were served (asked again by a round). */
  leaseReads: number;
  /** Periods in which a machine's tick timer fired late. */
  timerLags: number;
  /** Leaders made late and cut off from the others (chaosDepose). */
  deposes: number;
  leaseReadsAskedAgain: number;
  /** Commands applied as the second or later of an entry that carried several (command-batch.ts). */
  commandsBatched: number;
  /** syncForce off, machine crashes: log entries they took from the node (its unsynced tail). */
  tailEntriesLost: number;
  /** Of those, entries the cluster had committed (a quorum held them). */
  committedEntriesLost: number;
  /** Groups whose hard state (term or vote) such a crash took back. */
  hardStatesLost: number;
  /** Nodes that lost committed entries and were then repaired (their logs whole again). */
  tailsRepaired: number;
}

export interface HostSimResult {
  seed: number;
  outcome: 'ok' | 'undecided' | 'violation' | 'failed';
  failure: string | null;
  ops: number;
  opsIndeterminate: number;
  traceHash: string;
  simMs: number;
  events: number;
  stats: HostSimStats;
  profile: string;
  trace: string[];
}

const BACKLOG_RECORDS_MAX = 200_000;
const INVARIANTS_EVERY_MS = 100;
/** A machine crash aimed at a write (HostSim.whenWritten) waits at most this long for one. */
const AIM_WAIT_MS_MAX = 50;
const LIVENESS_ELECTION_TIMEOUTS = 12;
const TRACE_LINES_MAX = 20_000;
const EVENTS_PER_SIM_MS_MAX = 4000;
const HISTORY_OPS_MAX = 200_000;
const silentLog = pino({ level: 'silent' });
/** Failures thrown inside promise callbacks are kept in `failure` and rethrown by the driver. */
const noop = (): void => {};

/** One incarnation of a node process: the main thread's part, and the real shard. */
class Proc {
  readonly inRingSab: SharedArrayBuffer;
  readonly outRingSab: SharedArrayBuffer;
  /** The main thread's ends of the rings, and the shard's. */
  readonly inProducer: SpscRing;
  readonly inConsumer: SpscRing;
  readonly outProducer: SpscRing;
  readonly outConsumer: SpscRing;
  readonly counters = new Float64Array(createCounters());
  shard: Shard | null = null;
  /** Records the in ring had no room for, in order. */
  readonly backlog: { kind: InKind; arg: number; payload: Uint8Array }[] = [];
  dataResolve: (() => void) | null = null;
  constructor(readonly inc: number, ringBytes: number) {
    this.inRingSab = SpscRing.allocate(ringBytes);
    this.outRingSab = SpscRing.allocate(ringBytes);
    this.inProducer = new SpscRing(this.inRingSab);
    this.inConsumer = new SpscRing(this.inRingSab);
    this.outProducer = new SpscRing(this.outRingSab);
    this.outConsumer = new SpscRing(this.outRingSab);
  }
}

class Machine {
  up = false;
  /** Bumped by each crash and restart: timers and completions of older processes never run. */
  inc = 0;
  proc: Proc | null = null;
  pausedUntilMs = 0;
  deferred = 0;
  rate: number;
  /**
   * Its repeating timers (the shard's tick) fire this many times later than asked: a thread too
   * busy to keep its tick, whose missed firings are not made up (1: on time). Leases must not
   * rest on ticks alone.
   */
  timerLag = 1;
  offset: number;
  readonly fs: SimFs;
  readonly clock: Clock;
  /** Since the last machine crash (syncForce off): false until its logs are whole again. */
  caughtUp = true;
  /**
   * Per group, what this node held when its machine last crashed without syncForce, and what
   * the cluster had committed then: compared with what recovery gives back (HostSim.lossFound).
   */
  lossProbe: Map<number, { last: number; term: number; vote: number; commit: number }> | null = null;
  /** It lost committed entries in a machine crash and has not been repaired yet. */
  repairPending = false;
  /** Per group, its log's last index when its process last ended (a process crash keeps it). */
  readonly lastAtCrash = new Map<number, number>();
  /**
   * Per group, the latest vote this node granted (a VoteResp that left it): term and
   * candidate. Checked against what recovery gives back (HostSim.checkVotesKept).
   */
  readonly votesGranted = new Map<number, { term: number; candidate: number }>();
  /** A machine crash (which, without syncForce, may take back a vote) since its shard last opened. */
  lastCrashMachine = false;

  constructor(readonly sim: HostSim, readonly index: number, rng: Prng) {
    const p = sim.profile;
    this.rate = 1 + rng.real(-p.clockRateSkew, p.clockRateSkew);
    this.offset = rng.real(0, 1e6);
    this.fs = new SimFs((ms, fn) => sim.queue.after(ms, () => this.run(fn)), rng.fork(), p.fs);
    this.clock = { nowMs: () => this.offset + sim.queue.now * this.rate };
  }

  get nodeId(): number {
    return this.index + 1;
  }

  /** Runs `fn` now, or when a pause ends: a frozen process handles nothing meanwhile. */
  run(fn: () => void): void {
    const q = this.sim.queue;
    if (q.now < this.pausedUntilMs) {
      this.deferred++;
      q.at(this.pausedUntilMs, () => {
        this.deferred--;
        this.run(fn);
      });
    } else {
      fn();
    }
  }

  /** Timers of the process incarnation `inc`, on the machine's clock. */
  scheduler(inc: number): Scheduler {
    const q = this.sim.queue;
    const alive = (): boolean => this.inc === inc && this.up;
    const turnMs = this.sim.profile.turnMs;
    return {
      every: (ms, fn): Cancel => {
        let on = true;
        const again = (): void => q.after(ms * this.timerLag / this.rate, () => this.run(() => {
          if (!on || !alive()) return;
          fn();
          again();
        }));
        again();
        return () => { on = false; };
      },
      after: (ms, fn): Cancel => {
        let on = true;
        q.after(ms / this.rate, () => this.run(() => {
          if (on && alive()) fn();
        }));
        return () => { on = false; };
      },
      soon: (fn) => q.after(turnMs, () => this.run(() => {
        if (alive()) fn();
      })),
    };
  }
}

/** One group as the simulator sees it. */
class SimGroup {
  readonly inv: GroupInvariants;
  readonly keys: string[];
  /** machine index → commit last seen on that machine's leader core (and its incarnation). */
  readonly commitSeen = new Map<number, { inc: number; commit: number }>();
  /**
   * Machines whose replica was destroyed after their removal: they never host the group again
   * (not bootstrapped at a restart, never added back), since a replica made anew would have
   * forgotten the votes it gave (src/shard/task.ts, joinGroup).
   */
  readonly destroyed = new Set<number>();
  /**
   * Admin ids of member changes asked for this group and not answered: while any is, no replica
   * is destroyed (a change adding a machine back may still be proposed and commit; an answer
   * lost with a crashed node keeps this group's replicas, which only makes destroys rarer).
   */
  readonly changesInFlight = new Set<number>();
  /**
   * The machines that found the group (addGroup on each, with these as its voters), and the one
   * left out that joins it later (joinGroup); null: every machine founds it (bootstrapGroups).
   */
  founders: number[] | null = null;
  newcomer: number | null = null;
  /** joinGroup was asked of the newcomer: from then on it is asked again at every start that finds no replica (as bootstrapGroups would be). */
  joinAsked = false;
  constructor(readonly sim: HostSim, readonly id: number, keys: number) {
    this.inv = new GroupInvariants((what) => sim.fail(id, what), 10_000_000);
    this.keys = Array.from({ length: keys }, (_, i) => `g${id}/k${i}`);
  }
}

type MemberAsk = { op: 'addMember'; node: number; learner: boolean } | { op: 'promote' | 'removeMember'; node: number };

interface Attempt {
  requestId: number;
  node: number;
}

/** A client: one op at a time, through the real client protocol, retried as workload.ts explains. */
class SimClient {
  stopped = false;
  probeDone = false;
  private current: { hop: HistoryOp; group: number; viaLog: boolean; attempt: number; sent: Attempt | null } | null = null;
  private readonly leaderGuess = new Map<number, number>();
  private readonly seen = new Map<string, string | null>();
  private opsStarted = 0;
  /** Keys still to read in the final phase (final readers only). */
  private finalKeys: { group: number; key: string }[] | null = null;

  constructor(
    private readonly sim: HostSim,
    readonly index: number,
    private readonly rng: Prng,
    private readonly probeGroup: number | null,
    private readonly timeoutMs: number,
  ) {}

  get conn(): number {
    return this.index + 1;
  }

  /** An op in flight, or (the final reader) keys still to read: between two ops it is still busy. */
  get busy(): boolean {
    return this.current !== null || (this.finalKeys !== null && this.finalKeys.length > 0);
  }

  readAll(keys: { group: number; key: string }[]): void {
    this.finalKeys = keys;
    this.start(0);
  }

  start(delayMs: number): void {
    this.sim.queue.after(delayMs, () => this.nextOp());
  }

  private nextOp(): void {
    if (this.current !== null) return;
    const sim = this.sim;
    let group: number;
    let op: KvOp;
    let viaLog = false;
    if (this.finalKeys !== null) {
      const next = this.finalKeys.shift();
      if (next === undefined) return;
      group = next.group;
      op = { kind: 'get', key: next.key };
    } else {
      if (this.stopped || (this.probeGroup !== null && this.probeDone)) return;
      const n = this.opsStarted++;
      const value = `c${this.index}.${n}`;
      if (this.probeGroup !== null) {
        group = this.probeGroup;
        op = { kind: 'put', key: sim.group(group).keys[0]!, value };
      } else {
        group = this.rng.int(1, sim.groups.length);
        const key = this.rng.pick(sim.group(group).keys);
        const w = sim.profile.opWeights;
        let x = this.rng.next() * (w[0] + w[1] + w[2] + w[3] + w[4]);
        if ((x -= w[0]) < 0) op = { kind: 'put', key, value };
        else if ((x -= w[1]) < 0) op = { kind: 'get', key };
        else if ((x -= w[2]) < 0) {
          op = { kind: 'get', key };
          viaLog = true;
        } else if ((x -= w[3]) < 0) op = { kind: 'delete', key };
        else {
          const last = this.seen.get(key);
          const expect = last !== undefined && this.rng.chance(0.7) ? last : this.rng.chance(0.5) ? null : `c${this.rng.int(0, 9)}.${this.rng.int(0, n)}`;
          op = { kind: 'cas', key, expect, value };
        }
      }
    }
    const hop: HistoryOp = { id: sim.nextOpId++, client: this.index, op, invoke: sim.now, complete: null, result: null };
    this.current = { hop, group, viaLog, attempt: 0, sent: null };
    this.send();
  }

  private send(): void {
    const cur = this.current!;
    const sim = this.sim;
    cur.attempt++;
    const node = this.leaderGuess.get(cur.group) ?? this.rng.int(0, sim.machines.length - 1);
    const requestId = sim.nextRequestId++;
    cur.sent = { requestId, node };
    const op = cur.hop.op;
    const cmd: KvCommand = op.kind === 'get' ? { op: 'get', key: op.key }
      : op.kind === 'put' ? { op: 'put', key: op.key, value: op.value }
        : op.kind === 'delete' ? { op: 'delete', key: op.key } : { op: 'cas', key: op.key, expect: op.expect, value: op.value };
    const read = op.kind === 'get' && !cur.viaLog;
    const flags = !read ? 0 : sim.opts.bug === 'stale-read' ? FrameFlag.Read | FrameFlag.Stale : FrameFlag.Read;
    const frame = encodeFrame(FrameKind.Command, flags, requestId, cur.group, encodeCommand(cmd));
    sim.trace(`client ${this.index} op ${cur.hop.id} attempt ${cur.attempt} → n${node + 1}`);
    sim.clientSend(this, node, frame);
    const attempt = cur.attempt;
    sim.queue.after(this.timeoutMs, () => this.onTimeout(cur.hop.id, attempt));
  }

  /** Whether `payload` (client frames) holds the result of the write this client waits for. */
  awaitsWriteResult(payload: Uint8Array): boolean {
    const cur = this.current;
    if (cur === null || cur.sent === null || (cur.hop.op.kind === 'get' && !cur.viaLog)) return false;
    for (let p = 0; p + FRAME_HEADER_BYTES <= payload.length;) {
      const h = readHeader(payload, p);
      if (h.kind === FrameKind.Result && h.requestId === cur.sent.requestId) return true;
      p += h.frameBytes;
    }
    return false;
  }

  /** A response frame for this client's connection. */
  onFrame(kind: number, requestId: number, body: Uint8Array): void {
    const cur = this.current;
    if (cur === null || cur.sent === null || cur.sent.requestId !== requestId) return; // late
    cur.sent = null;
    const isRead = cur.hop.op.kind === 'get' && !cur.viaLog;
    if (kind === FrameKind.Result) {
      const r = decodeKvResult(body);
      let result: KvResult;
      switch (r.op) {
        case 'put': result = { kind: 'put' }; break;
        case 'get': result = { kind: 'get', value: r.value }; break;
        case 'delete': result = { kind: 'delete' }; break;
        case 'cas': result = { kind: 'cas', ok: r.ok }; break;
        default: return this.sim.fail(cur.group, `unexpected KV result ${JSON.stringify(r)}`);
      }
      cur.hop.complete = this.sim.now;
      cur.hop.result = result;
      this.sim.trace(`client ${this.index} op ${cur.hop.id} ${JSON.stringify(cur.hop.op)} at n${cur.sent === null ? '?' : ''}: ${JSON.stringify(result)}`);
      this.sim.history.push(cur.hop);
      this.learn(cur.hop.op, result);
      if (this.probeGroup !== null) this.probeDone = true;
      this.finish();
      return;
    }
    const err = unpack(body) as ErrorBody;
    this.sim.trace(`client ${this.index} op ${cur.hop.id}: ${err.code}${err.leader !== undefined ? ` leader n${err.leader.id}` : ''}`);
    const leader = err.leader?.id ?? 0;
    if (leader > 0) this.leaderGuess.set(cur.group, leader - 1);
    else this.leaderGuess.delete(cur.group);
    // A read has no effect whatever its answer: always retried. A write is retried only on a
    // refusal that proves it never took effect; otherwise its outcome is unknown.
    const definite = isRead || err.code === 'NOT_LEADER' || err.code === 'OVERLOADED' || err.code === 'LEADER_TRANSFERRING' || err.code === 'NO_GROUP';
    if (!definite) {
      this.sim.trace(`client ${this.index} op ${cur.hop.id}: ${err.code} (indeterminate)`);
      this.indeterminate();
      return;
    }
    if (this.rng.chance(0.2)) this.leaderGuess.delete(cur.group);
    const attempt = cur.attempt;
    this.sim.queue.after(this.rng.real(1, 20), () => {
      if (this.current === cur && cur.attempt === attempt) this.send();
    });
  }

  private onTimeout(opId: number, attempt: number): void {
    const cur = this.current;
    if (cur === null || cur.hop.id !== opId || cur.attempt !== attempt) return;
    this.leaderGuess.delete(cur.group);
    this.sim.trace(`client ${this.index} op ${cur.hop.id}: timed out at n${cur.sent?.node === undefined ? '?' : cur.sent.node + 1}`);
    this.indeterminate();
  }

  private indeterminate(): void {
    const cur = this.current!;
    this.sim.history.push(cur.hop);
    this.seen.delete(cur.hop.op.key);
    if (this.finalKeys !== null) this.finalKeys.push({ group: cur.group, key: cur.hop.op.key });
    this.finish();
  }

  private finish(): void {
    this.current = null;
    this.sim.queue.after(this.rng.real(0, this.sim.profile.clientThinkMsMax), () => this.nextOp());
  }

  abandon(): void {
    if (this.current !== null) this.sim.history.push(this.current.hop);
    this.current = null;
    this.stopped = true;
  }

  private learn(op: KvOp, r: KvResult): void {
    if (op.kind === 'put') this.seen.set(op.key, op.value);
    else if (op.kind === 'delete') this.seen.set(op.key, null);
    else if (op.kind === 'get' && r.kind === 'get') this.seen.set(op.key, r.value);
    else if (op.kind === 'cas' && r.kind === 'cas' && r.ok) this.seen.set(op.key, op.value);
  }
}

/** Whether a peer payload (sub-records, peer-wire.ts) holds a granted vote. */
/**
 * Counts the sub-records of a peer payload by kind, group and message type (heartbeat batches
 * item by item), into `tally`; those of groups `fromMember` says the sender is not a member of
 * (a replica removed while away, never destroyed, which keeps campaigning) go under "non-member".
 */
function tallyPayload(tally: Map<string, number>, payload: Uint8Array, fromMember: (group: number) => boolean): void {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let p = 0; p + SUB_HEADER_BYTES <= payload.length;) {
    const bytes = dv.getUint32(p, true);
    if (bytes < SUB_HEADER_BYTES) break;
    const group = dv.getUint32(p + 4, true);
    if (group !== GROUP_BROADCAST && !fromMember(group)) {
      tally.set('non-member', (tally.get('non-member') ?? 0) + 1);
      p += bytes;
      continue;
    }
    let k = `kind ${payload[p + 8]} group ${group}`;
    if (payload[p + 8] === SubKind.RaftMessage) k += ` ${MessageType[decodeRaftMessage(payload, p + SUB_HEADER_BYTES, p + bytes).type]}`;
    if (payload[p + 8] === SubKind.Heartbeats || payload[p + 8] === SubKind.HeartbeatResps) {
      const items: string[] = [];
      let others = 0;
      decodeHeartbeats(payload, p + SUB_HEADER_BYTES, p + bytes, () => true, (g, m) => {
        if (fromMember(g)) items.push(`g${g}${m.quiesce ? 'q' : ''} ${m.from}->${m.to} t${m.term}`);
        else others++;
      });
      if (others > 0) tally.set('non-member', (tally.get('non-member') ?? 0) + others);
      if (items.length === 0) {
        p += bytes;
        continue;
      }
      k += ` [${items.join(', ')}]`;
    }
    tally.set(k, (tally.get(k) ?? 0) + 1);
    p += bytes;
  }
}

/** The votes a peer payload grants (VoteResps that do not reject): group, term, candidate. */
function votesIn(payload: Uint8Array): { group: number; term: number; candidate: number }[] {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const votes: { group: number; term: number; candidate: number }[] = [];
  for (let p = 0; p + SUB_HEADER_BYTES <= payload.length;) {
    const bytes = dv.getUint32(p, true);
    if (bytes < SUB_HEADER_BYTES) break;
    if (payload[p + 8] === SubKind.RaftMessage) {
      const msg = decodeRaftMessage(payload, p + SUB_HEADER_BYTES, p + bytes);
      if (msg.type === MessageType.VoteResp && !msg.reject) votes.push({ group: dv.getUint32(p + 4, true), term: msg.term, candidate: msg.to });
    }
    p += bytes;
  }
  return votes;
}

export class HostSim {
  readonly queue = new EventQueue(2_000_000);
  readonly profile: HostProfile;
  readonly machines: Machine[] = [];
  readonly groups: SimGroup[] = [];
  readonly clients: SimClient[] = [];
  readonly history: HistoryOp[] = [];
  readonly stats: HostSimStats = {
    crashesProcess: 0, quietChecked: 0, quietNonMemberSent: 0, crashesMachine: 0, powerLosses: 0, shardFailures: 0, restarts: 0, pauses: 0, partitions: 0, linkFailures: 0,
    messagesLost: 0, clockJumps: 0, diskFulls: 0, transfers: 0, memberChangesAsked: 0, memberChangesDone: 0, replicasDestroyed: 0, joinsAsked: 0, newcomerVoters: 0,
    syncsFailed: 0, writesNoSpace: 0, filesLostTail: 0, filesTorn: 0, filesTornZeroed: 0, dirChangesLost: 0, snapshotsInstalled: 0,
    snapshotsTaken: 0, leaseReads: 0, leaseReadsAskedAgain: 0, timerLags: 0, deposes: 0, commandsBatched: 0, tailEntriesLost: 0, committedEntriesLost: 0, hardStatesLost: 0, tailsRepaired: 0,
  };
  nextOpId = 1;
  nextRequestId = 1;
  private readonly net: Network;
  private readonly rng: Prng;
  private readonly rngChaos: Prng;
  private readonly rngNet: Prng;
  private chaos = true;
  private traceHashValue = hashSeed;
  private readonly traceLines: string[] = [];
  /** Per directed link: when its last message is delivered (a TCP stream keeps its order). */
  private readonly linkFree: number[];
  /** Per directed link, as the shards were last told: up or down. */
  private readonly linkToldUp: boolean[];
  private adminSeq = 1;
  /** Admin requests whose reply is counted: id → what they asked. */
  private readonly adminAsked = new Map<number, string>();
  /** While the quiet phase watches: what the shards sent, by sub-record kind and message type. */
  private quietTally: Map<string, number> | null = null;
  /** Client frames on their way to a node (an abandoned client's last ones still arrive). */
  private clientFramesInFlight = 0;
  /** A machine crash waiting for the next vote a node grants, of that node (chaosCrash). */
  private onVote: ((m: Machine) => void) | null = null;
  /** A power loss waiting for the next acknowledgement a shard sends a client (chaosPowerLoss). */
  private onAck: (() => void) | null = null;

  constructor(readonly opts: HostSimOptions) {
    this.rng = new Prng(opts.seed);
    this.profile = hostProfile(opts.seed, opts.syncForce);
    this.rngChaos = this.rng.fork();
    this.rngNet = this.rng.fork();
    this.net = new Network(opts.nodes);
    this.linkFree = new Array<number>(opts.nodes * opts.nodes).fill(0);
    this.linkToldUp = new Array<boolean>(opts.nodes * opts.nodes).fill(true);
    for (let i = 0; i < opts.nodes; i++) this.machines.push(new Machine(this, i, this.rng.fork()));
    // Group ids start at 1, as a node's do.
    for (let g = 1; g <= opts.groups; g++) this.groups.push(new SimGroup(this, g, opts.keysPerGroup));
    const nc = this.profile.newcomer;
    if (nc !== null && opts.nodes >= 2) {
      const g = this.groups[nc.group % opts.groups]!;
      g.newcomer = nc.machine % opts.nodes;
      g.founders = this.machines.filter((m) => m.index !== g.newcomer).map((m) => m.index);
    }
    for (let c = 0; c < opts.clients; c++) this.clients.push(new SimClient(this, c, this.rng.fork(), null, this.profile.clientTimeoutMs));
  }

  get now(): number {
    return this.queue.now;
  }

  group(id: number): SimGroup {
    return this.groups[id - 1]!;
  }

  /** A failure met inside the engine's async callbacks, rethrown by the driver. */
  private failure: HostSimFailure | null = null;

  fail(group: number | null, what: string): never {
    this.failure ??= new HostSimFailure(`seed ${this.opts.seed} t=${this.now.toFixed(3)}ms${group === null ? '' : ` group ${group}`}: ${what}`);
    throw new HostSimFailure(`seed ${this.opts.seed} t=${this.now.toFixed(3)}ms${group === null ? '' : ` group ${group}`}: ${what}`);
  }

  trace(line: string): void {
    if (!this.opts.trace) return;
    if (this.traceLines.length >= TRACE_LINES_MAX) this.traceLines.shift();
    this.traceLines.push(`${this.now.toFixed(3).padStart(10)} ${line}`);
  }

  private mix(...vs: number[]): void {
    let h = this.traceHashValue;
    for (const v of vs) h = hashNumber(h, v);
    this.traceHashValue = h;
  }

  // --- Processes ---

  private task(m: Machine, proc: Proc): ShardTask {
    const p = this.profile;
    return {
      shard: 0,
      shards: 1,
      nodeId: m.nodeId,
      peers: this.machines.map((x) => ({ id: x.nodeId, host: '127.0.0.1', raftPort: 1, clientPort: 2, wsPort: 3, adminPort: 4 })),
      inRing: proc.inRingSab,
      outRing: proc.outRingSab,
      counters: proc.counters.buffer as SharedArrayBuffer,
      dir: `/node-${m.nodeId}/shard-0`,
      bootstrapGroups: this.groups.filter((g) => g.founders === null && !g.destroyed.has(m.index)).map((g) => g.id),
      syncForce: p.syncForce,
      segmentBytes: p.segmentBytes,
      tickMs: p.tickMs,
      ticksElection: p.ticksElection,
      ticksHeartbeat: p.ticksHeartbeat,
      ticksQuiesce: p.ticksQuiesce,
      readMode: p.readMode,
      snapshotEntries: p.snapshotEntries,
      snapshotLogRatio: p.snapshotLogRatio,
      snapshotKeepEntries: p.snapshotKeepEntries,
      pendingPerGroupMax: 64,
      requestTimeoutMs: p.requestTimeoutMs,
      turnRecordsMax: p.turnRecordsMax,
      snapChunkBytes: p.snapChunkBytes,
      snapshotBytesMax: 64 << 20,
      stateMachine: null,
      logLevel: 'silent',
    };
  }

  /** The state machines of machine `m`: the real KV service, watched for state-machine safety. */
  private stateMachines(m: Machine, proc: Proc): (group: number) => StateMachine {
    return (group) => {
      const kv = createKvStateMachine(group);
      const sg = this.group(group);
      // The commands applied at one index (one, or a batch entry's), checked together once
      // the next index begins: every replica must apply the same ones, in the same order.
      let atIndex = 0;
      let atTerm = 0;
      let commands: Uint8Array[] = [];
      return {
        apply: (data, index) => {
          if (index !== atIndex) {
            if (commands.length > 0) sg.inv.onApply(m.nodeId, atIndex, atTerm, 0, commands.length === 1 ? commands[0]! : Buffer.concat(commands));
            const host = proc.shard?.groups.get(group);
            atTerm = host?.core.entryTerm(index) ?? 0;
            if (atTerm === 0) this.fail(group, `node ${m.nodeId} applies index ${index}, which its log does not hold`);
            atIndex = index;
            commands = [];
          } else {
            this.stats.commandsBatched++;
          }
          commands.push(data.slice());
          this.mix(1, this.now, group, m.nodeId, index, atTerm);
          return kv.apply(data, index);
        },
        query: (data) => kv.query(data),
        snapshot: () => kv.snapshot(),
        restore: (image) => kv.restore(image),
      };
    };
  }

  private start(m: Machine): void {
    m.up = true;
    m.inc++;
    const proc = new Proc(m.inc, this.profile.ringBytes);
    m.proc = proc;
    // A new process knows of no link down.
    for (const other of this.machines) this.linkToldUp[m.index * this.machines.length + other.index] = true;
    this.stats.restarts++;
    this.trace(`start n${m.nodeId}`);
    const io = {
      log: silentLog,
      counters: proc.counters,
      inRing: proc.inConsumer,
      outbox: new Outbox(proc.outProducer, this.profile.snapChunkBytes),
      clock: m.clock,
      scheduler: m.scheduler(m.inc),
      fs: m.fs,
      random: (() => {
        const r = this.rng.fork();
        return () => r.next();
      })(),
      waitInput: (): Promise<void> => {
        if (proc.inConsumer.usedBytes() > 0) return Promise.resolve();
        return new Promise<void>((resolve) => {
          proc.dataResolve = resolve;
        });
      },
      stateMachines: this.stateMachines(m, proc),
    };
    const alive = (): boolean => m.proc === proc && m.up;
    Shard.open(this.task(m, proc), io).then((shard) => {
      if (!alive()) return;
      proc.shard = shard;
      this.trace(`ready n${m.nodeId}: ${shard.groups.size} groups`);
      this.checkVotesKept(m);
      if (m.lossProbe !== null) this.lossFound(m);
      this.ensureReplicas(m, shard);
      this.refreshLinks();
      shard.run().then(() => {
        if (alive()) this.fail(null, `node ${m.nodeId}: the shard stopped without being asked`);
      }, (e: unknown) => {
        if (alive()) this.shardFailed(m, e);
      }).catch(noop);
    }, (e: unknown) => {
      if (alive()) this.shardFailed(m, e);
    }).catch(noop);
  }

  /**
   * What an operator does for the groups not made by bootstrapGroups, at every start of a node
   * whose shard does not hold them: found it on a founder (addGroup; the reply, once durable,
   * must be ok), and join it on its newcomer once that was first asked (joinGroup). Never for
   * a destroyed replica: a replica made anew would have forgotten the votes it gave.
   */
  private ensureReplicas(m: Machine, shard: Shard): void {
    for (const g of this.groups) {
      if (g.destroyed.has(m.index) || shard.groups.has(g.id)) continue;
      if (g.founders?.includes(m.index) === true) {
        const members = g.founders.map((i) => this.machines[i]!.nodeId);
        this.trace(`addGroup g${g.id} on n${m.nodeId} [${members.join(',')}]`);
        this.admin(m, { op: 'addGroup', group: g.id, members }, 'found');
      } else if (g.newcomer === m.index && g.joinAsked) {
        this.askJoin(g, m);
      }
    }
  }

  private askJoin(g: SimGroup, m: Machine): void {
    g.joinAsked = true;
    this.stats.joinsAsked++;
    this.trace(`joinGroup g${g.id} on n${m.nodeId}`);
    this.admin(m, { op: 'joinGroup', group: g.id }, 'join');
  }

  /**
   * A vote that left a node is durable (Raft's one vote per term rests on it): the hard state
   * a recovered group starts from is of a later term, or of the same term with that vote. Not
   * required after a machine crash without syncForce, which may take back a hard state
   * (docs/storage.md); a process crash alone never may.
   */
  private checkVotesKept(m: Machine): void {
    const shard = m.proc?.shard;
    if (shard === null || shard === undefined) return;
    if (this.profile.syncForce || !m.lastCrashMachine) {
      for (const [group, v] of m.votesGranted) {
        const h = shard.groups.get(group);
        if (h === undefined) continue; // destroyed meanwhile
        const core = h.core;
        if (core.term < v.term || (core.term === v.term && core.vote !== v.candidate)) {
          this.fail(group, `node ${m.nodeId} granted its vote in term ${v.term} to ${v.candidate}, but recovered term ${core.term} vote ${core.vote}: a vote left the node before it was durable`);
        }
      }
    }
    m.votesGranted.clear();
    m.lastCrashMachine = false;
  }

  /**
   * The shard failed (its log or snapshot store reported an error, or open found the log bad):
   * the node process exits and its supervisor starts it again. A failed fdatasync leaves the
   * unsynced data in an unknown state, so the restart sees the disk as after a machine crash.
   */
  private shardFailed(m: Machine, e: unknown): void {
    const err = e as { code?: string; message?: string };
    const code = err.code ?? '';
    const expected = code === 'WAL_IO' || code === 'WAL_NO_SPACE' || code === 'WAL_FAILED' || code === 'ENOSPC' || code === 'EIO';
    if (!expected) this.fail(null, `node ${m.nodeId}: the shard failed: ${code} ${err.message ?? String(e)}\n${(e as Error).stack ?? ''}`);
    this.stats.shardFailures++;
    this.trace(`shard failed n${m.nodeId}: ${code} ${err.message ?? ''}`);
    this.crash(m, code === 'WAL_IO' || code === 'EIO' || /EIO/.test(err.message ?? ''));
    this.queue.after(this.rngChaos.real(5, 100), () => this.restart(m));
  }

  /** Adds a process's snapshot counters to the run's, once, when it ends. */
  private harvest(proc: Proc | null): void {
    if (proc === null) return;
    this.stats.snapshotsTaken += proc.counters[ShardCounter.SnapshotsTaken]!;
    this.stats.snapshotsInstalled += proc.counters[ShardCounter.SnapshotsInstalled]!;
    this.stats.leaseReads += proc.counters[ShardCounter.LeaseReads]!;
    this.stats.leaseReadsAskedAgain += proc.counters[ShardCounter.LeaseReadsAskedAgain]!;
  }

  private crash(m: Machine, machine: boolean): void {
    if (!m.up) return;
    this.harvest(m.proc);
    const cores = this.cores(m);
    for (const c of cores) m.lastAtCrash.set(c.group, c.core.lastIndex());
    // A machine crash while the last one's loss is still being looked at (the shard had not
    // opened) keeps the older probe: it knew more.
    if (machine && !this.profile.syncForce && m.lossProbe === null && cores.length > 0) {
      m.lossProbe = new Map(cores.map((c) => [c.group, { last: c.core.lastIndex(), term: c.core.term, vote: c.core.vote, commit: this.commitOf(c.group) }]));
    }
    m.up = false;
    m.inc++;
    m.proc = null;
    m.pausedUntilMs = 0;
    if (machine) {
      m.fs.crashMachine();
      m.caughtUp = false;
      m.lastCrashMachine = true;
      this.stats.crashesMachine++;
    } else {
      m.fs.crashProcess();
      this.stats.crashesProcess++;
    }
    this.trace(`crash n${m.nodeId} (${machine ? 'machine' : 'process'})`);
    this.mix(3, this.now, m.index, machine ? 1 : 0);
    // A killed process's sockets close at once; a dead machine's are noticed after a while.
    const delay = machine ? this.profile.linkDownDetectMs : 0.1;
    for (const other of this.machines) if (other !== m) this.queue.after(delay, () => this.tellLink(other.index, m.index, false));
  }

  private restart(m: Machine): void {
    if (m.up) return;
    this.start(m);
  }

  // --- The main thread's routing ---

  /** Puts a record on machine `m`'s in ring (or its backlog when the ring is full) and rings. */
  private deliver(m: Machine, kind: InKind, arg: number, payload: Uint8Array): void {
    const proc = m.proc;
    if (proc === null || proc.shard === null || !m.up) return; // nobody listening
    if (proc.backlog.length > 0 || !tryWriteRecord(proc.inProducer, kind, arg, payload)) {
      if (proc.backlog.length >= BACKLOG_RECORDS_MAX) this.fail(null, `node ${m.nodeId}: in-ring backlog over ${BACKLOG_RECORDS_MAX}`);
      proc.backlog.push({ kind, arg, payload });
      return;
    }
    this.ring(proc);
  }

  /**
   * Rings the shard's doorbell. The shard wakes after a delay drawn per seed (a busy main thread,
   * a thread being scheduled), so requests that arrive meanwhile are handled in one turn, as
   * they are under load: which is when one turn's writes go into one entry.
   */
  private ring(proc: Proc): void {
    const r = proc.dataResolve;
    if (r === null) return;
    proc.dataResolve = null;
    const ms = this.profile.doorbellMsMax === 0 ? 0 : this.rngNet.real(0, this.profile.doorbellMsMax);
    if (ms === 0) r();
    else this.queue.after(ms, r);
  }

  /**
   * Tells machine `at`'s shard that its link to `peer` went down (once per outage), or records
   * that it is up again (a shard needs no word of that: see PeerInput.peerState in src/shard/peer-input.ts).
   */
  private tellLink(at: number, peer: number, up: boolean): void {
    const k = at * this.machines.length + peer;
    const m = this.machines[at]!;
    const was = this.linkToldUp[k];
    this.linkToldUp[k] = up;
    if (up || !was) return;
    this.trace(`link n${m.nodeId}→n${this.machines[peer]!.nodeId} seen down`);
    m.run(() => this.deliver(m, InKind.PeerState, this.machines[peer]!.nodeId, Uint8Array.of(0)));
  }

  /** Everything the shards wrote to their out rings, routed; true if anything moved. */
  private pump(): boolean {
    let moved = false;
    for (const m of this.machines) {
      const proc = m.proc;
      if (proc === null || !m.up) continue;
      while (proc.backlog.length > 0) {
        const b = proc.backlog[0]!;
        if (!tryWriteRecord(proc.inProducer, b.kind, b.arg, b.payload)) break;
        proc.backlog.shift();
        moved = true;
        this.ring(proc);
      }
      const ring = proc.outConsumer;
      let n = 0;
      for (;;) {
        const at = ring.read();
        if (at < 0) break;
        const end = at + ring.readBytes;
        const kind = ring.data[at]!;
        const arg = recordArg(ring.data, at);
        const payload = ring.data.slice(at + RECORD_HEADER_BYTES, end);
        ring.release();
        n++;
        this.route(m, kind, arg, payload);
      }
      if (n > 0) {
        ring.notifyRoom();
        moved = true;
      }
    }
    return moved;
  }

  private route(m: Machine, kind: number, arg: number, payload: Uint8Array): void {
    switch (kind) {
      case OutKind.Peer: {
        const votes = votesIn(payload);
        for (const v of votes) m.votesGranted.set(v.group, { term: v.term, candidate: v.candidate });
        const aimed = this.onVote;
        if (aimed !== null && votes.length > 0) {
          // The vote has left the node: its machine crashes now (was the vote durable?).
          this.onVote = null;
          this.queue.after(0, () => aimed(m));
        }
        this.sendPeer(m.index, arg - 1, payload);
        return;
      }
      case OutKind.Client: {
        const client = this.clients[arg - 1];
        if (client === undefined) return;
        const aimed = this.onAck;
        if (aimed !== null && client.awaitsWriteResult(payload)) {
          // A write's result has left the node (the client will have it): the power goes now.
          this.onAck = null;
          this.queue.after(0, aimed);
        }
        if (this.chaos && this.rngNet.chance(this.profile.network.clientDropP)) return; // the connection broke
        const delay = this.rngNet.real(this.profile.network.delayMsMin, this.profile.network.delayMsMax);
        this.queue.after(delay, () => {
          let p = 0;
          while (p + FRAME_HEADER_BYTES <= payload.length) {
            const h = readHeader(payload, p);
            client.onFrame(h.kind, h.requestId, payload.subarray(p + FRAME_HEADER_BYTES, p + h.frameBytes));
            p += h.frameBytes;
          }
        });
        return;
      }
      case OutKind.AdminReply: {
        const r = unpack(payload) as { ok: boolean; code?: string; members?: unknown };
        this.trace(`admin ${arg} at n${m.nodeId}: ${r.ok ? `ok${r.members !== undefined ? ` ${JSON.stringify(r.members)}` : ''}` : r.code}`);
        const asked = this.adminAsked.get(arg);
        this.adminAsked.delete(arg);
        for (const g of this.groups) g.changesInFlight.delete(arg);
        if (asked === 'member' && r.ok) this.stats.memberChangesDone++;
        // Founding and joining are asked only of a shard that does not hold the group: nothing may refuse them.
        if ((asked === 'found' || asked === 'join') && !r.ok) this.fail(null, `node ${m.nodeId}: ${asked === 'found' ? 'addGroup' : 'joinGroup'} refused: ${r.code ?? ''}`);
        return;
      }
      case OutKind.Event:
        return;
      default:
        this.fail(null, `node ${m.nodeId} wrote an out-ring record of unknown kind ${kind}`);
    }
  }

  /**
   * A peer payload over the link from → to: in order (one TCP stream), after a random delay,
   * unless the link is cut then. A lost payload is a broken connection: both ends hear that
   * the link went down (and up again, as the dialer reconnects).
   */
  private sendPeer(from: number, to: number, payload: Uint8Array): void {
    if (this.quietTally !== null) tallyPayload(this.quietTally, payload, (group) => this.members(this.group(group))?.has(from) === true);
    const net = this.profile.network;
    const k = from * this.machines.length + to;
    if (this.chaos && this.rngNet.chance(net.dropP)) {
      this.stats.messagesLost++;
      this.bounceLink(from, to);
      return;
    }
    let delay = this.rngNet.real(net.delayMsMin, net.delayMsMax);
    if (this.chaos && this.rngNet.chance(net.stragglerP)) delay += this.rngNet.real(0, net.stragglerDelayMsMax);
    const at = Math.max(this.now + delay, this.linkFree[k]!);
    this.linkFree[k] = at;
    const dest = this.machines[to]!;
    const sender = this.machines[from]!;
    const senderInc = sender.inc;
    const destInc = dest.inc;
    this.queue.at(at, () => {
      // A connection belongs to the two processes that made it.
      if (sender.inc !== senderInc || dest.inc !== destInc) return;
      if (!this.net.connected(from, to)) {
        this.stats.messagesLost++;
        return;
      }
      this.mix(2, this.now, from, to, payload.length);
      dest.run(() => this.deliver(dest, InKind.Peer, sender.nodeId, payload));
    });
  }

  private bounceLink(a: number, b: number): void {
    const d = this.profile.linkDownDetectMs;
    this.queue.after(d, () => {
      this.tellLink(a, b, false);
      this.tellLink(b, a, false);
      this.queue.after(1, () => this.refreshLinks());
    });
  }

  /** Tells every shard the links that are up again. */
  private refreshLinks(): void {
    const n = this.machines.length;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        if (a === b) continue;
        const up = this.net.connected(a, b) && this.net.connected(b, a) && this.machines[b]!.up;
        if (up && !this.linkToldUp[a * n + b]) this.tellLink(a, b, true);
      }
    }
  }

  /** After the network changed: links cut are noticed after a while, links healed at once. */
  private linksChanged(): void {
    const n = this.machines.length;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        if (a === b) continue;
        if (!this.net.connected(a, b) || !this.net.connected(b, a)) {
          this.queue.after(this.profile.linkDownDetectMs, () => {
            if (!this.net.connected(a, b) || !this.net.connected(b, a)) this.tellLink(a, b, false);
          });
        }
      }
    }
    this.refreshLinks();
  }

  clientSend(c: SimClient, node: number, frame: Uint8Array): void {
    const net = this.profile.network;
    if (this.chaos && this.rngNet.chance(net.clientDropP)) return;
    const m = this.machines[node]!;
    this.clientFramesInFlight++;
    this.queue.after(this.rngNet.real(net.delayMsMin, net.delayMsMax), () => {
      this.clientFramesInFlight--;
      m.run(() => this.deliver(m, InKind.Client, c.conn, frame));
    });
  }

  private admin(m: Machine, req: unknown, counted?: string): number {
    const id = this.adminSeq++;
    if (counted !== undefined) this.adminAsked.set(id, counted);
    m.run(() => this.deliver(m, InKind.Admin, id, pack(req) as Uint8Array));
    return id;
  }

  // --- Chaos ---

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

  /** Cores of machine `m`'s shard that run now (none while it is down or opening). */
  private cores(m: Machine): { group: number; core: NonNullable<ReturnType<Shard['groups']['get']>>['core'] }[] {
    const shard = m.proc?.shard;
    if (shard === null || shard === undefined || !m.up) return [];
    return [...shard.groups.values()].map((h) => ({ group: h.id, core: h.core }));
  }

  /**
   * Without syncForce a machine crash may lose what its logs had not synced, which the engine
   * documents as the price of the mode; the checker holds such runs to full linearizability, so
   * a machine crashes only when the loss cannot take an acknowledged write with it: it leads no
   * group, every other node is up, and every node holds every group's committed log.
   */
  private machineCrashSafe(m: Machine): boolean {
    if (this.profile.syncForce) return true;
    if (this.machines.some((x) => !x.up || x.proc?.shard === null || !x.caughtUp)) return false;
    if (this.cores(m).some((c) => c.core.role === Role.Leader)) return false;
    for (const g of this.groups) {
      // Removed members' replicas lag for good and do not count.
      const members = this.members(g);
      const voterSets = this.voterSets(g);
      if (members === null || voterSets === null) return false;
      let commit = 0;
      for (const x of this.machines) for (const c of this.cores(x)) if (c.group === g.id) commit = Math.max(commit, c.core.commit);
      for (const x of this.machines) {
        if (!members.has(x.index)) continue;
        for (const c of this.cores(x)) if (c.group === g.id && c.core.lastIndex() < commit) return false;
      }
      // What m loses must stay with a quorum of the voters without m, in each voter set (two
      // in a joint configuration): with 2 voters, say, any voter's crash may take a write.
      for (const voters of voterSets) {
        if (!voters.includes(m.nodeId)) continue;
        const holders = this.machines.filter((x) => x !== m && voters.includes(x.nodeId) &&
          this.cores(x).some((c) => c.group === g.id && c.core.lastIndex() >= commit)).length;
        if (2 * holders <= voters.length) return false;
      }
    }
    return true;
  }

  /** The highest commit index any running member of group `g` knows. */
  private commitOf(g: number): number {
    let commit = 0;
    for (const x of this.machines) for (const c of this.cores(x)) if (c.group === g) commit = Math.max(commit, c.core.commit);
    return commit;
  }

  /**
   * The loss model without syncForce (docs/storage.md): a machine crash may take the node's
   * unsynced tail, entries and hard state; an acknowledged write is lost only if its entry goes
   * from a quorum of members. Recovery has just given back machine `m`'s logs: count what the
   * crash took, and check that every committed entry it took is still held by a quorum of the
   * others (so no acknowledged write can be lost, and the history is held to linearizability
   * in full); the node must then be repaired by its leaders (counted when its logs are whole).
   */
  private lossFound(m: Machine): void {
    const probe = m.lossProbe!;
    m.lossProbe = null;
    for (const c of this.cores(m)) {
      const was = probe.get(c.group);
      if (was === undefined) continue;
      const last = c.core.lastIndex();
      this.stats.tailEntriesLost += Math.max(0, was.last - last);
      const committedLost = Math.max(0, Math.min(was.last, was.commit) - last);
      if (c.core.term < was.term || (c.core.term === was.term && c.core.vote !== was.vote)) this.stats.hardStatesLost++;
      if (committedLost === 0) continue;
      this.stats.committedEntriesLost += committedLost;
      m.repairPending = true;
      const quorum = Math.floor(this.machines.length / 2) + 1;
      const index = Math.min(was.last, was.commit);
      const holders = this.machines.filter((x) => x !== m && (x.up && x.proc?.shard !== null && x.proc?.shard !== undefined
        ? (x.proc.shard.groups.get(c.group)?.core.lastIndex() ?? 0) >= index
        : (x.lastAtCrash.get(c.group) ?? 0) >= index)).length;
      this.trace(`n${m.nodeId} g${c.group}: a machine crash took entries ${last + 1}..${was.last} (committed to ${was.commit}); ${holders} others hold ${index}`);
      if (holders < quorum) {
        this.fail(c.group, `node ${m.nodeId}: a machine crash without syncForce took committed entries ${last + 1}..${index}, now held by ${holders} other nodes, fewer than a quorum (${quorum}): acknowledged writes may be lost, which the fault injection must not allow`);
      }
    }
  }

  private updateCaughtUp(): void {
    for (const m of this.machines) {
      if (m.caughtUp || !m.up) continue;
      let ok = true;
      for (const g of this.groups) {
        let commit = 0;
        for (const x of this.machines) for (const c of this.cores(x)) if (c.group === g.id) commit = Math.max(commit, c.core.commit);
        const mine = this.cores(m).find((c) => c.group === g.id);
        const members = this.members(g);
        if (members !== null && !members.has(m.index)) continue;
        if (mine === undefined || mine.core.lastIndex() < commit) ok = false;
      }
      if (ok) {
        m.caughtUp = true;
        if (m.repairPending) this.stats.tailsRepaired++;
        m.repairPending = false;
      }
    }
  }

  private chaosCrash(): void {
    const up = this.machines.filter((m) => m.up);
    if (up.length === 0) return;
    let m = this.rngChaos.pick(up);
    let machine = this.rngChaos.chance(this.profile.machineCrashP);
    if (machine && !this.machineCrashSafe(m)) {
      // Without syncForce, a machine that may lose its tail: one where the loss cannot take an
      // acknowledged write (always m itself with syncForce on).
      const safe = up.filter((x) => this.machineCrashSafe(x));
      if (safe.length > 0) m = this.rngChaos.pick(safe);
      else machine = false;
    }
    if (!machine) {
      this.crashAndRestart(m, false);
      return;
    }
    // Checked again when it fires: the cluster may have changed meanwhile. With syncForce on, a
    // quarter of the machine crashes strike the next node to grant a vote, as it sends it.
    if (this.profile.syncForce && this.rngChaos.chance(0.25)) this.onVote = (x) => this.crashAndRestart(x, true);
    else this.whenWritten(m, () => this.crashAndRestart(m, this.machineCrashSafe(m)));
  }

  private crashAndRestart(m: Machine, machine: boolean): void {
    if (!this.profile.syncForce && !machine && this.machines.some((x) => !x.caughtUp && x !== m)) {
      // A process crash keeps what the OS had, but the node that lost its tail still needs the
      // others' copies: leave them be until it has caught up.
      return;
    }
    this.crash(m, machine);
    this.queue.after(this.rngChaos.real(5, this.profile.downMsMax), () => this.restart(m));
  }

  /**
   * Runs `fire` (a machine crash) now, or, for half of them, soon after machine `m` next writes,
   * within the longest a sync of that write may take: a power loss at a random moment mostly
   * finds everything synced (the disk is idle more than it syncs), and then loses nothing.
   */
  private whenWritten(m: Machine, fire: () => void): void {
    if (!this.rngChaos.chance(0.5)) {
      fire();
      return;
    }
    const inc = m.inc;
    let done = false;
    const go = (): void => {
      if (done) return;
      done = true;
      m.fs.onWrite = null;
      if (this.chaos && m.up && m.inc === inc) fire();
    };
    m.fs.onWrite = () => this.queue.after(this.rngChaos.real(0, this.profile.fs.syncMsMax), go);
    this.queue.after(AIM_WAIT_MS_MAX, go);
  }

  /** A power loss of the whole cluster: every machine crashes at once, and comes back. */
  private chaosPowerLoss(): void {
    const up = this.machines.filter((m) => m.up);
    if (up.length === 0) return;
    const fire = (): void => {
      if (!this.chaos) return;
      this.stats.powerLosses++;
      this.trace('power loss');
      for (const m of this.machines.filter((x) => x.up)) {
        this.crash(m, true);
        this.queue.after(this.rngChaos.real(5, this.profile.downMsMax), () => this.restart(m));
      }
    };
    // A third of them right after a shard answers a client's write: what it acknowledged must survive.
    if (this.rngChaos.chance(1 / 3)) this.onAck = fire;
    else this.whenWritten(this.rngChaos.pick(up), fire);
  }

  private chaosPause(): void {
    const up = this.machines.filter((m) => m.up && m.pausedUntilMs <= this.now);
    if (up.length === 0) return;
    const m = this.rngChaos.pick(up);
    m.pausedUntilMs = this.now + this.rngChaos.real(10, this.profile.pauseMsMax);
    this.stats.pauses++;
    this.trace(`pause n${m.nodeId} until ${m.pausedUntilMs.toFixed(3)}`);
  }

  private chaosPartition(): void {
    if (this.net.partitioned) return;
    const side = this.machines.map(() => this.rngChaos.int(0, 1));
    this.net.partition(side);
    this.stats.partitions++;
    this.trace(`partition [${side.join(',')}]`);
    this.linksChanged();
    this.queue.after(this.rngChaos.real(20, this.profile.partitionMsMax), () => {
      this.net.healPartition();
      this.trace('partition healed');
      this.linksChanged();
    });
  }

  private chaosLink(): void {
    const n = this.machines.length;
    if (n < 2) return;
    const a = this.rngChaos.int(0, n - 1);
    const b = (a + this.rngChaos.int(1, n - 1)) % n;
    this.net.linkDown(a, b);
    this.stats.linkFailures++;
    this.trace(`link ${a}→${b} down`);
    this.linksChanged();
    this.queue.after(this.rngChaos.real(20, this.profile.linkFailMsMax), () => {
      this.net.linkUp(a, b);
      this.linksChanged();
    });
  }

  private chaosClockJump(): void {
    const m = this.rngChaos.pick(this.machines);
    const jump = this.rngChaos.real(1, this.profile.clockJumpMsMax);
    m.offset += jump;
    this.stats.clockJumps++;
    this.trace(`clock n${m.nodeId} jumps ${jump.toFixed(1)}ms`);
  }

  private chaosDiskFull(): void {
    const m = this.rngChaos.pick(this.machines);
    m.fs.bytesMax = m.fs.usedBytes() + this.rngChaos.int(0, 4096);
    this.stats.diskFulls++;
    this.trace(`disk full n${m.nodeId}`);
    this.queue.after(this.rngChaos.real(10, this.profile.diskFullMsMax), () => {
      m.fs.bytesMax = Infinity;
    });
  }

  /**
   * A machine's tick timer lags for a while; half the time the machine is also cut off from the
   * others meanwhile (its clients still reach it): a leader that late, alone, with a lease
   * counted in ticks, would keep answering reads after the others elected a new leader.
   */
  private chaosTimerLag(): void {
    const m = this.rngChaos.pick(this.machines);
    m.timerLag = this.rngChaos.real(1.5, 4);
    this.stats.timerLags++;
    const alone = !this.net.partitioned && this.rngChaos.chance(0.5);
    if (alone) {
      this.net.partition(this.machines.map((x) => (x === m ? 1 : 0)));
      this.linksChanged();
    }
    this.trace(`timers of n${m.nodeId} lag ×${m.timerLag.toFixed(2)}${alone ? ', cut off' : ''}`);
    this.queue.after(this.rngChaos.real(50, this.profile.timerLagMsMax), () => {
      m.timerLag = 1;
      if (alone) {
        this.net.healPartition();
        this.linksChanged();
      }
    });
  }

  /**
   * A leader goes late and alone: its tick timer lags ×3–4 and it is cut off from the other
   * machines (its clients still reach it) for a few election timeouts, while they elect
   * another. With leases, the deposed leader must stop answering reads from its lease before
   * the new leader can have committed anything (docs/raft.md, "Leases").
   */
  private chaosDepose(): void {
    if (this.net.partitioned) return;
    const leading = this.machines.filter((m) => this.cores(m).some((c) => c.core.role === Role.Leader));
    if (leading.length === 0) return;
    const m = this.rngChaos.pick(leading);
    m.timerLag = this.rngChaos.real(3, 4);
    this.net.partition(this.machines.map((x) => (x === m ? 1 : 0)));
    this.linksChanged();
    this.stats.deposes++;
    this.trace(`depose n${m.nodeId}: timers lag ×${m.timerLag.toFixed(2)}, cut off`);
    const electionMs = 2 * this.profile.ticksElection * this.profile.tickMs;
    this.queue.after(this.rngChaos.real(2 * electionMs, 5 * electionMs), () => {
      m.timerLag = 1;
      this.net.healPartition();
      this.linksChanged();
    });
  }

  private chaosTransfer(): void {
    const m = this.rngChaos.pick(this.machines);
    const leaders = this.cores(m).filter((c) => c.core.role === Role.Leader);
    if (leaders.length === 0) return;
    const c = this.rngChaos.pick(leaders);
    const to = this.rngChaos.pick(this.machines.filter((x) => x !== m)).nodeId;
    this.stats.transfers++;
    this.trace(`transfer g${c.group} n${m.nodeId} → n${to}`);
    this.admin(m, { op: 'transferLeader', group: c.group, to });
  }

  /**
   * A membership change through the shard's admin path (src/shard/member-changes.ts), asked of
   * a leader: remove a voter (the leader itself too) or a learner, add back as a learner a
   * machine that still holds its replica, promote a learner; or destroy the replica of a
   * machine that was removed, once every member has applied the configuration without it
   * (earlier, a lagging member still in the joint configuration might need its vote).
   */
  private chaosMemberChange(): void {
    const rng = this.rngChaos;
    const g = rng.pick(this.groups);
    const leaders = this.machines.flatMap((m) => this.cores(m).filter((c) => c.group === g.id && c.core.role === Role.Leader).map((c) => ({ m, core: c.core })));
    if (leaders.length === 0) return;
    const { m, core } = leaders.reduce((a, b) => (b.core.term > a.core.term ? b : a));
    const conf = core.confState();
    if (conf.votersOutgoing.length > 0) return;
    const hosts = (x: Machine): boolean => x.up && x.proc?.shard?.groups.has(g.id) === true;
    const outside = this.machines.filter((x) => !conf.voters.includes(x.nodeId) && !conf.learners.includes(x.nodeId) && !g.destroyed.has(x.index));
    const options: (() => void)[] = [];
    const ask = (req: MemberAsk): void => this.askMember(g, m, req);
    if (conf.voters.length > 2 || (conf.voters.length > 1 && rng.chance(0.3))) options.push(() => ask({ op: 'removeMember', node: rng.pick(conf.voters) }));
    if (conf.learners.length > 0) {
      options.push(() => ask({ op: 'promote', node: rng.pick(conf.learners) }));
      if (rng.chance(0.3)) options.push(() => ask({ op: 'removeMember', node: rng.pick(conf.learners) }));
    }
    const back = outside.filter(hosts);
    if (back.length > 0) options.push(() => ask({ op: 'addMember', node: rng.pick(back).nodeId, learner: true }));
    // Destroy a removed replica only once every member runs and has applied this configuration,
    // with nothing in its log left to apply (a change adding the machine back may be there) and
    // no member change asked and unanswered.
    const membersApplied = g.changesInFlight.size === 0 && this.machines.every((x) => {
      if (!conf.voters.includes(x.nodeId) && !conf.learners.includes(x.nodeId)) return true;
      const h = x.up ? x.proc?.shard?.groups.get(g.id) : undefined;
      return h !== undefined && h.core.lastIndex() === h.core.applied && h.conf.votersOutgoing.length === 0 &&
        sameIds(h.conf.voters, conf.voters) && sameIds(h.conf.learners, conf.learners);
    });
    if (back.length > 0 && membersApplied && rng.chance(0.3)) {
      options.push(() => {
        const x = rng.pick(back);
        g.destroyed.add(x.index);
        this.stats.replicasDestroyed++;
        this.trace(`destroy g${g.id} on n${x.nodeId}`);
        this.admin(x, { op: 'removeGroup', group: g.id });
      });
    }
    if (options.length > 0) rng.pick(options)();
  }

  private askMember(g: SimGroup, via: Machine, req: MemberAsk): void {
    this.stats.memberChangesAsked++;
    this.trace(`member ${req.op} g${g.id} n${req.node}${req.op === 'addMember' && req.learner ? ' (learner)' : ''} via n${via.nodeId}`);
    g.changesInFlight.add(this.admin(via, { ...req, group: g.id }, 'member'));
  }

  /**
   * The next step of bringing a group's newcomer in (HostProfile.newcomer), on its own timer:
   * join (an empty replica), then, asked of the newest leader, add it as a learner (the log or
   * a snapshot brings it up), then promote it. A newcomer removed later by chaosMemberChange is
   * added back the same way, as long as its replica was not destroyed.
   */
  private chaosNewcomer(): void {
    for (const g of this.groups) {
      if (g.newcomer === null || g.destroyed.has(g.newcomer)) continue;
      const x = this.machines[g.newcomer]!;
      if (!g.joinAsked) {
        if (x.up && x.proc?.shard !== null && x.proc?.shard !== undefined) this.askJoin(g, x);
        continue;
      }
      const leaders = this.machines.flatMap((m) => this.cores(m).filter((c) => c.group === g.id && c.core.role === Role.Leader).map((c) => ({ m, core: c.core })));
      if (leaders.length === 0) continue;
      const { m, core } = leaders.reduce((a, b) => (b.core.term > a.core.term ? b : a));
      const conf = core.confState();
      if (conf.votersOutgoing.length > 0 || g.changesInFlight.size > 0) continue;
      if (conf.learners.includes(x.nodeId)) this.askMember(g, m, { op: 'promote', node: x.nodeId });
      else if (!conf.voters.includes(x.nodeId) && x.up && x.proc?.shard?.groups.has(g.id) === true) this.askMember(g, m, { op: 'addMember', node: x.nodeId, learner: true });
    }
  }

  /** The voter sets of `g` (one, or two while joint) as its newest leader's configuration says; null when no machine leads it. */
  private voterSets(g: SimGroup): number[][] | null {
    let best: { term: number; sets: number[][] } | null = null;
    for (const m of this.machines) {
      for (const c of this.cores(m)) {
        if (c.group !== g.id || c.core.role !== Role.Leader || (best !== null && c.core.term <= best.term)) continue;
        const conf = c.core.confState();
        best = { term: c.core.term, sets: conf.votersOutgoing.length > 0 ? [conf.voters, conf.votersOutgoing] : [conf.voters] };
      }
    }
    return best === null ? null : best.sets;
  }

  /** Machines that are members of `g` as its newest leader's configuration says; null when no machine leads it. */
  private members(g: SimGroup): Set<number> | null {
    let best: { term: number; voters: number[]; learners: number[]; outgoing: number[]; next: number[] } | null = null;
    for (const m of this.machines) {
      for (const c of this.cores(m)) {
        if (c.group !== g.id || c.core.role !== Role.Leader || (best !== null && c.core.term <= best.term)) continue;
        const conf = c.core.confState();
        best = { term: c.core.term, voters: conf.voters, learners: conf.learners, outgoing: conf.votersOutgoing, next: conf.learnersNext };
      }
    }
    if (best === null) return null;
    return new Set([...best.voters, ...best.learners, ...best.outgoing, ...best.next].map((id) => id - 1));
  }

  // --- Checks ---

  private checkInvariants(): void {
    for (const g of this.groups) {
      const live: { m: Machine; core: ReturnType<HostSim['cores']>[number]['core'] }[] = [];
      for (const m of this.machines) {
        for (const c of this.cores(m)) {
          if (c.group !== g.id) continue;
          live.push({ m, core: c.core });
          if (c.core.role === Role.Leader) {
            g.inv.onLeader(m.nodeId, c.core.term);
            const seen = g.commitSeen.get(m.index);
            const from = seen !== undefined && seen.inc === m.inc ? seen.commit : 0;
            if (c.core.commit > from) g.inv.onLeaderCommit(c.core, c.core.term, from, c.core.commit);
            g.inv.checkLeaderCompleteness(c.core, c.core.term);
          }
          g.commitSeen.set(m.index, { inc: m.inc, commit: c.core.commit });
        }
      }
      for (let i = 0; i < live.length; i++) {
        g.inv.checkCommittedPrefix(live[i]!.core);
        for (let j = i + 1; j < live.length; j++) g.inv.checkLogMatching(live[i]!.core, live[j]!.core);
      }
    }
    this.updateCaughtUp();
  }

  /** Every machine runs; one member leads, out of any joint configuration; every member has applied its whole log. */
  private groupSettled(g: SimGroup): boolean {
    if (this.machines.some((m) => !m.up || m.proc?.shard === null || m.proc?.shard === undefined)) return false;
    const members = this.members(g);
    if (members === null) return false;
    let target = -1;
    let leaders = 0;
    const hosts = [];
    for (const i of members) {
      const h = this.machines[i]!.proc!.shard!.groups.get(g.id);
      if (h === undefined) return false;
      hosts.push(h);
      if (h.core.role === Role.Leader) {
        leaders++;
        target = h.core.lastIndex();
        if (h.core.confState().votersOutgoing.length > 0) return false;
      }
    }
    if (leaders !== 1) return false;
    return hosts.every((h) => h.applied === target && h.core.commit === target);
  }

  private checkFinalState(g: SimGroup): void {
    let image: Uint8Array | null = null;
    let first = 0;
    for (const i of this.members(g)!) {
      const m = this.machines[i]!;
      const h = m.proc!.shard!.groups.get(g.id)!;
      const img = h.sm.snapshot();
      if (image === null) {
        image = img;
        first = m.nodeId;
      } else if (hashBytes(img, 1) !== hashBytes(image, 1) || img.length !== image.length) {
        this.fail(g.id, `nodes ${first} and ${m.nodeId} both applied ${h.applied} but hold different states`);
      }
    }
  }

  private describe(): string {
    const parts: string[] = [];
    for (const m of this.machines) {
      if (!m.up) {
        parts.push(`n${m.nodeId} down`);
        continue;
      }
      const shard = m.proc?.shard;
      if (shard === null || shard === undefined) {
        parts.push(`n${m.nodeId} opening`);
        continue;
      }
      // Private state of the shard's parts (src/shard/readies.ts, loop-control.ts, in-ring-reader.ts), for this report only.
      const sh = shard as unknown as {
        readies: { batches: unknown[]; held: unknown[]; holding: boolean };
        control: { woken: boolean; dataWaiting: boolean; inflight: Set<unknown> };
        input: { moreInput: boolean };
      };
      parts.push(`n${m.nodeId} [batches ${sh.readies.batches.length} held ${sh.readies.held.length} holding ${sh.readies.holding} woken ${sh.control.woken} more ${sh.input.moreInput} waiting ${sh.control.dataWaiting} inflight ${sh.control.inflight.size} inRing ${m.proc!.inConsumer.usedBytes()} backlog ${m.proc!.backlog.length} resolve ${m.proc!.dataResolve !== null}]`);
      parts.push(`n${m.nodeId}: ${[...shard.groups.values()].map((h) => `g${h.id} ${Role[h.core.role]} t${h.core.term} c${h.core.commit} a${h.applied} l${h.core.lastIndex()}${h.core.quiesced ? ' q' : ''}`).join(', ')}`);
    }
    return parts.join('; ');
  }

  // --- The run ---

  private async runUntil(time: number, stop?: () => boolean): Promise<void> {
    const eventsMax = (this.opts.steps + 60_000) * EVENTS_PER_SIM_MS_MAX;
    while (this.queue.peekTime() <= time) {
      this.queue.step();
      do {
        await new Promise<void>((resolve) => setImmediate(resolve));
      } while (this.pump());
      if (this.failure !== null) throw this.failure;
      if (this.queue.eventsRun > eventsMax) this.fail(null, `event budget of ${eventsMax} exhausted`);
      if (this.history.length > HISTORY_OPS_MAX) this.fail(null, `history over its bound of ${HISTORY_OPS_MAX}`);
      if (stop !== undefined && stop()) return;
    }
    if (time > this.queue.now) this.queue.now = time;
  }

  async run(): Promise<Omit<HostSimResult, 'trace'>> {
    const p = this.profile;
    for (const m of this.machines) this.queue.after(this.rng.real(0, 5), () => this.start(m));
    for (const c of this.clients) c.start(this.rng.real(20, 80));
    this.every(p.crashEveryMs, () => this.chaosCrash());
    this.every(p.powerLossEveryMs, () => this.chaosPowerLoss());
    this.every(p.partitionEveryMs, () => this.chaosPartition());
    this.every(p.linkFailEveryMs, () => this.chaosLink());
    this.every(p.pauseEveryMs, () => this.chaosPause());
    this.every(p.transferEveryMs, () => this.chaosTransfer());
    this.every(p.memberChangeEveryMs, () => this.chaosMemberChange());
    this.every(p.clockJumpEveryMs, () => this.chaosClockJump());
    this.every(p.diskFullEveryMs, () => this.chaosDiskFull());
    this.every(p.timerLagEveryMs, () => this.chaosTimerLag());
    this.every(p.deposeEveryMs, () => this.chaosDepose());
    if (p.newcomer !== null) this.queue.after(p.newcomer.afterMs, () => this.every(p.newcomer!.everyMs, () => this.chaosNewcomer()));
    const periodic = (): void => {
      this.queue.after(INVARIANTS_EVERY_MS, () => {
        this.checkInvariants();
        periodic();
      });
    };
    periodic();

    // Phase 1: chaos.
    await this.runUntil(this.opts.steps);

    // Phase 2: heal; every group must take a fresh write.
    this.chaos = false;
    this.net.healAll();
    for (const m of this.machines) {
      m.pausedUntilMs = 0;
      m.timerLag = 1;
      m.fs.bytesMax = Infinity;
      m.fs.failSyncP = 0;
    }
    for (const m of this.machines) this.restart(m);
    this.refreshLinks();
    for (const c of this.clients) c.stopped = true;
    this.trace('--- healed ---');
    const electionMs = 2 * p.ticksElection * p.tickMs * 1.1;
    const livenessMs = LIVENESS_ELECTION_TIMEOUTS * electionMs + p.requestTimeoutMs;
    const probes = this.groups.map((g, i) => new SimClient(this, this.clients.length + i, this.rng.fork(), g.id, Math.max(4 * electionMs, p.requestTimeoutMs * 1.2)));
    this.clients.push(...probes);
    for (const c of probes) c.start(0);
    const healedAt = this.now;
    await this.runUntil(healedAt + livenessMs, () => probes.every((c) => c.probeDone));
    for (const c of probes) {
      if (!c.probeDone) {
        const g = this.groups[c.index - this.opts.clients]!; // probes are made in group order
        this.fail(g.id, `liveness: no fresh write acknowledged within ${livenessMs.toFixed(0)}ms after the heal; ${this.describe()}`);
      }
    }

    // Phase 3: settle, compare states.
    const settled = (): boolean => this.groups.every((g) => this.groupSettled(g)) && this.clients.every((c) => !c.busy);
    await this.runUntil(this.now + livenessMs + p.clientTimeoutMs * 2, settled);
    this.checkInvariants();
    for (const g of this.groups) {
      if (!this.groupSettled(g)) this.fail(g.id, `liveness: members did not converge within ${livenessMs.toFixed(0)}ms; ${this.describe()}`);
      this.checkFinalState(g);
      if (g.newcomer !== null && this.voterSets(g)?.[0]?.includes(this.machines[g.newcomer]!.nodeId) === true) this.stats.newcomerVoters++;
    }

    // Phase 4: read every key once more through the real read path (a lost write shows here).
    const reader = new SimClient(this, this.clients.length, this.rng.fork(), null, Math.max(4 * electionMs, p.requestTimeoutMs * 1.2));
    this.clients.push(reader);
    reader.readAll(this.groups.flatMap((g) => g.keys.map((key) => ({ group: g.id, key }))));
    await this.runUntil(this.now + livenessMs * 2, () => !reader.busy);
    if (reader.busy) this.fail(null, `the final reads did not finish; ${this.describe()}`);
    for (const c of this.clients) c.abandon();

    // Phase 5 (groups that quiesce): left alone, every member of every group goes quiet
    // (members as each group's leader's configuration says: a removed replica that was never
    // destroyed keeps campaigning, refused by pre-vote), and the shards then send nothing for
    // four election timeouts.
    if (p.ticksQuiesce > 0) {
      const quiet = (): boolean => this.clientFramesInFlight === 0 && this.groups.every((g) => {
        const members = this.members(g);
        return members !== null && [...members].every((i) => this.machines[i]!.proc?.shard?.groups.get(g.id)?.core.quiesced === true);
      });
      const quietBoundMs = (p.ticksQuiesce + 2 * p.ticksElection) * p.tickMs * 2 + livenessMs;
      await this.runUntil(this.now + quietBoundMs, quiet);
      if (!quiet()) {
        this.fail(null, `quiescence: the groups did not go quiet within ${quietBoundMs.toFixed(0)}ms of idling; ${this.quietDescription()}`);
      }
      this.quietTally = new Map();
      const quietMs = 4 * electionMs;
      await this.runUntil(this.now + quietMs);
      this.stats.quietNonMemberSent += this.quietTally.get('non-member') ?? 0;
      this.quietTally.delete('non-member');
      if (this.quietTally.size > 0) {
        const all = this.machines.flatMap((m) => this.cores(m).map((c) => `n${m.nodeId} g${c.group} ${Role[c.core.role]} q${c.core.quiesced ? 1 : 0} t${c.core.term} L${c.core.leader} v${c.core.confState().voters.join(',')} l${c.core.confState().learners.join(',')}`));
        this.fail(null, `quiescence: quiet groups sent ${[...this.quietTally.values()].reduce((a, b) => a + b, 0)} sub-records in ${quietMs.toFixed(0)}ms: ${JSON.stringify([...this.quietTally].slice(0, 8))} ${all.join('; ')}`);
      }
      this.quietTally = null;
      this.stats.quietChecked++;
    }

    for (const m of this.machines) {
      this.harvest(m.proc);
      const s = m.fs.stats;
      this.stats.syncsFailed += s.syncsFailed;
      this.stats.writesNoSpace += s.writesNoSpace;
      this.stats.filesLostTail += s.filesLostTail;
      this.stats.filesTorn += s.filesTorn;
      this.stats.filesTornZeroed += s.filesTornZeroed;
      this.stats.dirChangesLost += s.dirChangesLost;
    }

    const report = checkHistory(this.history, { stepsMaxPerKey: this.opts.checkStepsMaxPerKey });
    const result: Omit<HostSimResult, 'trace'> = {
      seed: this.opts.seed,
      outcome: report.outcome,
      failure: null,
      ops: report.ops,
      opsIndeterminate: this.history.filter((h) => h.complete === null).length,
      traceHash: this.traceHashValue.toString(16).padStart(8, '0'),
      simMs: this.now,
      events: this.queue.eventsRun,
      stats: { ...this.stats },
      profile: describeHostProfile(p),
    };
    if (report.outcome !== 'ok') {
      result.failure = `seed ${this.opts.seed}: linearizability ${report.outcome} on key ${report.failedKey}: ${report.detail ?? ''}`;
    }
    return result;
  }

  /** The members that are not quiesced, for a failure message. */
  private quietDescription(): string {
    const loud: string[] = [];
    for (const g of this.groups) {
      for (const i of this.members(g) ?? []) {
        const core = this.machines[i]!.proc?.shard?.groups.get(g.id)?.core;
        if (core === undefined || core.quiesced) continue;
        loud.push(`n${i + 1} g${g.id} ${Role[core.role]} t${core.term} leader ${core.leader} last ${core.lastIndex()} commit ${core.commit}`);
      }
    }
    return `client frames in flight ${this.clientFramesInFlight}; not quiesced: ${loud.join('; ') || 'none'}`;
  }

  traceTail(): string[] {
    return this.traceLines.slice();
  }
}

/** Runs one seed; never throws: a failure is reported in the result, with the seed. */
export async function runHostSeed(opts: HostSimOptions): Promise<HostSimResult> {
  const sim = new HostSim(opts);
  try {
    return { ...(await sim.run()), trace: sim.traceTail() };
  } catch (e) {
    const err = e as Error;
    const msg = e instanceof HostSimFailure ? err.message
      : `seed ${opts.seed} t=${sim.now.toFixed(3)}ms: ${err.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 8).join('\n')}`;
    return {
      seed: opts.seed, outcome: 'failed', failure: msg, ops: sim.history.length, opsIndeterminate: 0, traceHash: '',
      simMs: sim.now, events: sim.queue.eventsRun, stats: { ...sim.stats }, profile: describeHostProfile(sim.profile), trace: sim.traceTail(),
    };
  }
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);
}
