// What a simulation run looks like: the options a caller chooses (size, length, seed) and the
// fault profile the seed chooses. Seeds span calm runs (a healthy cluster under membership
// changes) to nasty ones (lossy links, frequent crashes and partitions), so that a batch of
// seeds covers both the paths that need luck to reach and the ones that need calm.
import type { DiskProfile } from './disk.js';
import type { NetworkProfile } from './network.js';
import { Prng } from './prng.js';
import { configDefaults, type RaftConfig } from '../../src/raft/types.js';

/**
 * Deliberate bugs, for the test that proves the checks are not vacuous:
 * - apply-twice: a host whose apply loop sometimes applies an entry again, a little later;
 * - stale-read: gets are answered from the local state machine of whichever replica the
 *   client reached, with no ReadIndex round;
 * - forge-ack: the network forges a follower's acceptance of every append it carries.
 */
export type BugKind = 'apply-twice' | 'stale-read' | 'forge-ack';

export interface SimOptions {
  seed: number;
  /** Simulated milliseconds of the chaos phase (one step = one simulated millisecond). */
  steps: number;
  nodes: number;
  groups: number;
  /** Founding replicas of each group (membership changes move it between 1 and `nodes`). */
  replicasPerGroup: number;
  clients: number;
  keysPerGroup: number;
  bug: BugKind | null;
  /** Keep the last trace lines, printed with a failure (slower; for replaying one seed). */
  trace: boolean;
  /** Search bound per key for the linearizability checker. */
  checkStepsMaxPerKey: number;
}

export const defaultOptions: Omit<SimOptions, 'seed'> = {
  steps: 10_000,
  nodes: 5,
  groups: 4,
  replicasPerGroup: 3,
  clients: 8,
  keysPerGroup: 3,
  bug: null,
  trace: false,
  checkStepsMaxPerKey: 200_000,
};

/** Faults and rates chosen by the seed. Mean intervals in simulated ms; Infinity = never. */
export interface FaultProfile {
  /** 0 calm … 3 nasty. */
  level: number;
  network: NetworkProfile;
  disk: DiskProfile;
  tickMs: number;
  /** Each node's tick interval is tickMs × (1 + u), u uniform in ±skew. */
  clockSkew: number;
  crashEveryMs: number;
  downMsMax: number;
  partitionEveryMs: number;
  partitionMsMax: number;
  /** Process freezes (GC pauses): never on seeds with lease reads, which assume bounded drift. */
  pauseEveryMs: number;
  pauseMsMax: number;
  linkFailEveryMs: number;
  linkFailMsMax: number;
  membershipEveryMs: number;
  transferEveryMs: number;
  /** The host snapshots every this many applied entries, keeping this many behind. */
  snapshotEvery: number;
  snapshotKeep: number;
  clientTimeoutMs: number;
  clientThinkMsMax: number;
  /** Op mix weights: put, get (ReadIndex), get through the log, delete, cas. */
  opWeights: [number, number, number, number, number];
  /**
   * Quiescence (when raft.ticksQuiesce > 0): a group goes cold (clients leave it alone, so it
   * can go idle and quiesce) this often, for up to coldMsMax; and each tick, every quiesced
   * replica is woken at random with this probability, besides the failure detector's wakes.
   */
  coldEveryMs: number;
  coldMsMax: number;
  wakeRandomP: number;
  /** The core's configuration: defaults, with options and small limits varied by seed. */
  raft: Omit<RaftConfig, 'id' | 'random' | 'applied'>;
}

export function faultProfile(seed: number): FaultProfile {
  const r = new Prng(seed ^ 0x5eed5eed);
  const level = r.int(0, 3);
  const pick = <T>(byLevel: readonly T[]): T => byLevel[level]!;
  const scale = (x: number): number => x * r.real(0.5, 1.5);
  const delayMsMax = r.real(2, pick([6, 12, 20, 30]));
  const p = {
    level,
    network: {
      delayMsMin: r.real(0.1, 1),
      delayMsMax,
      dropP: level === 0 ? 0 : scale(pick([0, 0.005, 0.03, 0.1])),
      duplicateP: level === 0 ? 0 : scale(pick([0, 0.005, 0.02, 0.05])),
      stragglerP: scale(pick([0, 0.002, 0.01, 0.02])),
      stragglerDelayMsMax: r.real(50, 400),
      clientDropP: scale(pick([0, 0.005, 0.02, 0.05])),
    },
    disk: {
      latencyMsMin: r.real(0.05, 0.5),
      latencyMsMax: r.real(0.5, pick([2, 4, 6, 10])),
      stallP: pick([0, 0.005, 0.01, 0.02]),
      stallMsMax: r.real(20, 200),
      crashKeepsPrefixP: r.real(0.2, 0.8),
      tornWrites: r.chance(0.5),
    },
    tickMs: 10,
    clockSkew: r.real(0, 0.05),
    crashEveryMs: level === 0 && r.chance(0.5) ? Infinity : scale(pick([4000, 2000, 900, 400])),
    downMsMax: r.real(50, pick([300, 800, 1500, 2500])),
    partitionEveryMs: level === 0 ? Infinity : scale(pick([Infinity, 3000, 1500, 700])),
    partitionMsMax: r.real(100, pick([500, 1500, 2500, 3000])),
    linkFailEveryMs: level === 0 ? Infinity : scale(pick([Infinity, 2500, 1200, 600])),
    linkFailMsMax: r.real(100, 2000),
    membershipEveryMs: scale(pick([1500, 1000, 700, 500])),
    transferEveryMs: scale(pick([3000, 2000, 1200, 800])),
    snapshotEvery: r.int(20, 200),
    snapshotKeep: r.int(0, 12),
    clientTimeoutMs: r.real(300, 1000),
    clientThinkMsMax: r.real(0, 30),
    opWeights: [r.real(1, 4), r.real(1, 3), r.real(0, 1), r.real(0.3, 1.5), r.real(1, 3)] as [number, number, number, number, number],
  };
  // Drawn after everything above, so that adding them did not change older seeds' faults.
  const raft = raftConfig(r);
  const pauseEveryMs = level === 0 ? Infinity : scale(pick([Infinity, 4000, 2000, 1000]));
  const pauseMsMax = r.real(50, 1500);
  // Quiescence, drawn last for the same reason: on in most seeds, after an idle time from one
  // tick (quiesce and wake all the time) to two election timeouts (the shard's default).
  if (r.chance(0.6)) raft.ticksQuiesce = r.chance(0.5) ? r.int(1, 5) : r.int(6, 2 * raft.ticksElection);
  const quiesce = raft.ticksQuiesce > 0;
  const coldEveryMs = quiesce ? r.real(100, 1500) : Infinity;
  const coldMsMax = r.real(100, 2500);
  const wakeRandomP = r.chance(0.5) ? 0 : r.real(0, 0.02);
  return {
    ...p,
    raft,
    pauseEveryMs: raft.leaseRead ? Infinity : pauseEveryMs,
    pauseMsMax,
    coldEveryMs,
    coldMsMax,
    wakeRandomP,
  };
}

/** Most seeds run the defaults; some turn options off or shrink limits to reach their paths. */
function raftConfig(r: Prng): Omit<RaftConfig, 'id' | 'random' | 'applied'> {
  const c = { ...configDefaults };
  if (r.chance(0.5)) return c;
  c.preVote = r.chance(0.7);
  c.checkQuorum = r.chance(0.7);
  // Lease reads rely on bounded clock drift, which the simulator keeps (skew ≤ 5%).
  c.leaseRead = c.checkQuorum && r.chance(0.4);
  c.ticksHeartbeat = r.int(1, 3);
  if (r.chance(0.3)) c.entriesPerMsgMax = r.int(1, 8);
  if (r.chance(0.2)) c.bytesPerMsgMax = r.int(16, 256);
  if (r.chance(0.3)) c.inflightMsgsMax = r.int(1, 4);
  if (r.chance(0.2)) c.uncommittedEntriesMax = r.int(1, 20);
  return c;
}

export function describeProfile(p: FaultProfile): string {
  const n = p.network;
  const f = (x: number): string => (x === Infinity ? 'never' : `${Math.round(x)}ms`);
  return (
    `level ${p.level}; delay ${n.delayMsMin.toFixed(1)}–${n.delayMsMax.toFixed(1)}ms drop ${n.dropP.toFixed(3)} ` +
    `dup ${n.duplicateP.toFixed(3)} straggler ${n.stragglerP.toFixed(3)}; crash every ${f(p.crashEveryMs)} ` +
    `(down ≤ ${f(p.downMsMax)}), pause every ${f(p.pauseEveryMs)} (≤ ${f(p.pauseMsMax)}), partition every ${f(p.partitionEveryMs)}, link failure every ${f(p.linkFailEveryMs)}, ` +
    `membership every ${f(p.membershipEveryMs)}, transfer every ${f(p.transferEveryMs)}, ` +
    `${p.raft.ticksQuiesce > 0 ? `cold group every ${f(p.coldEveryMs)} (≤ ${f(p.coldMsMax)}), random wake p ${p.wakeRandomP.toFixed(3)}` : 'no quiescence'}; snapshot every ` +
    `${p.snapshotEvery} keep ${p.snapshotKeep}; disk ${p.disk.latencyMsMin.toFixed(2)}–${p.disk.latencyMsMax.toFixed(1)}ms` +
    `${p.disk.tornWrites ? ' torn writes' : ''}; skew ±${(p.clockSkew * 100).toFixed(1)}%; raft ${describeRaft(p.raft)}`
  );
}

function describeRaft(c: Omit<RaftConfig, 'id' | 'random' | 'applied'>): string {
  const d = configDefaults as Record<string, unknown>;
  const diff = Object.entries(c).filter(([k, v]) => d[k] !== v).map(([k, v]) => `${k}=${String(v)}`);
  return diff.length === 0 ? 'defaults' : diff.join(' ');
}
