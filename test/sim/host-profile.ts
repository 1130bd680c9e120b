// What a run of the host simulator looks like (host-sim.ts): the options a caller chooses and
// the faults, rates and engine settings the seed chooses. Levels go from calm (a healthy
// cluster, crashes now and then) to nasty (lossy links, frequent crashes, partitions, full
// disks, failing syncs), so that a batch of seeds covers both.
import type { NetworkProfile } from './network.js';
import { Prng } from './prng.js';
import type { SimFsProfile } from './sim-fs.js';

export interface HostSimOptions {
  seed: number;
  /** Simulated milliseconds of the chaos phase. */
  steps: number;
  nodes: number;
  groups: number;
  clients: number;
  keysPerGroup: number;
  /** null: the seed chooses (on in most seeds). */
  syncForce: boolean | null;
  /** Keep the last trace lines, printed with a failure. */
  trace: boolean;
  checkStepsMaxPerKey: number;
  /**
   * A deliberate bug in the simulator's own clients, to show the checks are not vacuous
   * (host-sim.test.ts): `stale-read` asks for every read as a stale one (served by whichever
   * replica gets it, from its own state), which the linearizability checker must catch.
   */
  bug?: 'stale-read';
}

export const hostSimDefaults: Omit<HostSimOptions, 'seed'> = {
  steps: 6000,
  nodes: 3,
  groups: 3,
  clients: 12,
  keysPerGroup: 3,
  syncForce: null,
  trace: false,
  checkStepsMaxPerKey: 200_000,
};

export interface HostProfile {
  level: number;
  syncForce: boolean;
  network: NetworkProfile;
  fs: SimFsProfile;
  /** The shard's settings (ShardTask). */
  tickMs: number;
  ticksElection: number;
  ticksHeartbeat: number;
  ticksQuiesce: number;
  /** How leaders confirm linearizable reads (the node's readMode). */
  readMode: 'index' | 'lease';
  /** How often a machine's tick timer starts lagging (a starved thread), and for how long at most. */
  timerLagEveryMs: number;
  timerLagMsMax: number;
  /** How often a leader is made late and cut off (HostSim.chaosDepose). */
  deposeEveryMs: number;
  snapshotEntries: number;
  /** Log bytes since the last image, as a multiple of its size, before the next (0: none needed). */
  snapshotLogRatio: number;
  snapshotKeepEntries: number;
  segmentBytes: number;
  snapChunkBytes: number;
  turnRecordsMax: number;
  requestTimeoutMs: number;
  /** Simulated CPU time of one shard turn (the gap before a busy shard's next turn). */
  turnMs: number;
  /** A shard wakes up to this long after its doorbell rings (0: at once). */
  doorbellMsMax: number;
  /** Each machine's clock runs at 1 ± up to this rate error, and jumps ahead now and then. */
  clockRateSkew: number;
  clockJumpEveryMs: number;
  clockJumpMsMax: number;
  crashEveryMs: number;
  /** Of the crashes, the share that are machine crashes (power loss) rather than process kills. */
  machineCrashP: number;
  downMsMax: number;
  /**
   * Power losses of every machine at once (syncForce on only: without it such a loss may take
   * acknowledged writes, as docs/storage.md says). Nothing acknowledged may be lost.
   */
  powerLossEveryMs: number;
  partitionEveryMs: number;
  partitionMsMax: number;
  linkFailEveryMs: number;
  linkFailMsMax: number;
  /** How long a peer link takes to notice that the other side is unreachable. */
  linkDownDetectMs: number;
  pauseEveryMs: number;
  pauseMsMax: number;
  transferEveryMs: number;
  /** Membership changes through the admin path: remove a member, add one back as a learner, promote, destroy a removed replica. */
  memberChangeEveryMs: number;
  diskFullEveryMs: number;
  diskFullMsMax: number;
  clientTimeoutMs: number;
  clientThinkMsMax: number;
  /** Op mix weights: put, get (ReadIndex), get through the log, delete, cas. */
  opWeights: [number, number, number, number, number];
  /**
   * Capacity of each shard's in and out rings (the node's `ringBytes`). A ring record holds at
   * most a quarter of it, and every Raft message must fit one (src/shard/group-table.ts,
   * coreConfig), so small rings mean small appends (a 64 KiB ring: about 119 entries or 7.7 KB
   * per append instead of 1024 entries or 1 MiB), small snapshot chunks, and full in rings.
   */
  ringBytes: number;
  /**
   * A group founded without one machine (addGroup on the others), which that machine later
   * joins with an empty replica (joinGroup) before the admin path adds it as a learner and
   * promotes it, the log or a snapshot bringing it up: a new node taking part in a group. The
   * group and machine are taken modulo the run's; its first step comes after `afterMs`, the
   * next ones every `everyMs` or so. null: every machine founds every group.
   */
  newcomer: { group: number; machine: number; afterMs: number; everyMs: number } | null;
}

export function hostProfile(seed: number, syncForce: boolean | null): HostProfile {
  const r = new Prng(seed ^ 0x6f57e11a);
  const level = r.int(0, 3);
  const pick = <T>(byLevel: readonly T[]): T => byLevel[level]!;
  const scale = (x: number): number => x * r.real(0.5, 1.5);
  const sync = syncForce ?? r.chance(0.75);
  const ticksElection = 10;
  const p: HostProfile = {
    level,
    syncForce: sync,
    network: {
      delayMsMin: r.real(0.05, 0.5),
      delayMsMax: r.real(1, pick([3, 6, 12, 20])),
      dropP: level === 0 ? 0 : scale(pick([0, 0.002, 0.01, 0.03])),
      stragglerP: scale(pick([0, 0.002, 0.005, 0.01])),
      stragglerDelayMsMax: r.real(20, 300),
      clientDropP: scale(pick([0, 0.005, 0.02, 0.05])),
    },
    fs: {
      syncMsMin: r.real(0.05, 0.3),
      syncMsMax: r.real(0.4, pick([1.5, 3, 5, 8])),
      stallP: pick([0, 0.005, 0.01, 0.02]),
      stallMsMax: r.real(10, 150),
      opMsMax: r.real(0.01, 0.2),
      // Failing syncs lose acknowledged data without syncForce (docs/storage.md): only with it.
      failSyncP: sync && level >= 2 && r.chance(0.5) ? r.real(0.0005, 0.003) : 0,
    },
    tickMs: 10,
    ticksElection,
    ticksHeartbeat: r.int(1, 3),
    ticksQuiesce: r.chance(0.3) ? 0 : r.chance(0.5) ? r.int(2, 6) : 2 * ticksElection,
    readMode: 'index', // drawn below
    timerLagEveryMs: Infinity, // drawn below
    timerLagMsMax: 0,
    deposeEveryMs: Infinity,
    snapshotEntries: r.int(10, 150),
    snapshotKeepEntries: r.int(0, 20),
    segmentBytes: r.chance(0.5) ? 4096 * r.int(4, 12) : 64 << 10,
    snapChunkBytes: r.chance(0.5) ? r.int(64, 1024) : 16 << 10,
    turnRecordsMax: r.chance(0.3) ? r.int(1, 8) : 256,
    requestTimeoutMs: r.real(400, 3000),
    turnMs: r.real(0.005, 0.05),
    clockRateSkew: r.real(0, 0.02),
    clockJumpEveryMs: r.chance(0.5) ? Infinity : scale(3000),
    clockJumpMsMax: r.real(5, 200),
    crashEveryMs: level === 0 && r.chance(0.5) ? Infinity : scale(pick([3000, 1500, 800, 400])),
    machineCrashP: r.real(0.2, 0.8),
    downMsMax: r.real(50, pick([300, 800, 1500, 2000])),
    partitionEveryMs: level === 0 ? Infinity : scale(pick([Infinity, 3000, 1500, 700])),
    partitionMsMax: r.real(100, pick([500, 1500, 2500, 3000])),
    linkFailEveryMs: level === 0 ? Infinity : scale(pick([Infinity, 2500, 1200, 600])),
    linkFailMsMax: r.real(100, 1500),
    linkDownDetectMs: r.real(5, 200),
    pauseEveryMs: level === 0 ? Infinity : scale(pick([Infinity, 4000, 2000, 1000])),
    pauseMsMax: r.real(20, 800),
    transferEveryMs: scale(pick([3000, 2000, 1200, 800])),
    memberChangeEveryMs: r.chance(0.25) ? Infinity : scale(pick([2500, 1500, 900, 500])),
    diskFullEveryMs: level >= 2 && r.chance(0.5) ? scale(3000) : Infinity,
    diskFullMsMax: r.real(50, 600),
    clientTimeoutMs: r.real(300, 1500),
    clientThinkMsMax: r.real(0, 20),
    opWeights: [r.real(1, 4), r.real(1, 3), r.real(0, 1), r.real(0.3, 1.5), r.real(1, 3)],
    // Drawn last, so that adding it changed no earlier draw.
    doorbellMsMax: r.chance(0.25) ? 0 : r.real(0.1, 3),
    snapshotLogRatio: r.int(0, 2),
    powerLossEveryMs: sync && r.chance(0.4) ? scale(pick([4000, 3000, 2000, 1500])) : Infinity,
    ringBytes: 4 << 20, // drawn below
    newcomer: null,
  };
  // A slow disk (a network volume, a spinning disk) in some seeds: syncs slower than a round trip
  // between nodes, which is when acknowledging before a sync finishes would show.
  if (r.chance(0.3)) {
    const slower = r.real(4, 12);
    p.fs.syncMsMin *= slower;
    p.fs.syncMsMax *= slower;
  }
  // Drawn after everything else, so that it changed no earlier draw.
  p.readMode = r.chance(0.5) ? 'lease' : 'index';
  p.timerLagEveryMs = level === 0 || r.chance(0.3) ? Infinity : scale(pick([Infinity, 2000, 1000, 500]));
  p.timerLagMsMax = r.real(100, 1000);
  p.deposeEveryMs = r.chance(0.3) ? Infinity : scale(1500);
  // Impatient clients in some seeds: a write stuck at a deposed leader is given up soon, and the
  // client goes on (to other nodes, and back to that one): what a stale answer needs to show.
  if (r.chance(0.3)) p.clientTimeoutMs = r.real(30, 120);
  // Drawn last, so that they changed no earlier draw.
  if (r.chance(0.3)) p.ringBytes = (64 << 10) << r.int(0, 2);
  if (r.chance(0.4)) p.newcomer = { group: r.int(0, 1 << 16), machine: r.int(0, 1 << 16), afterMs: r.real(50, 4000), everyMs: r.real(100, 800) };
  return p;
}

export function describeHostProfile(p: HostProfile): string {
  const f = (x: number): string => (x === Infinity ? 'never' : `${Math.round(x)}ms`);
  const n = p.network;
  return `level ${p.level}; syncForce ${p.syncForce}; delay ${n.delayMsMin.toFixed(2)}–${n.delayMsMax.toFixed(1)}ms drop ${n.dropP.toFixed(3)} ` +
    `straggler ${n.stragglerP.toFixed(3)}; crash every ${f(p.crashEveryMs)} (machine ${(p.machineCrashP * 100).toFixed(0)}%, down ≤ ${f(p.downMsMax)}), power loss every ${f(p.powerLossEveryMs)}, ` +
    `pause every ${f(p.pauseEveryMs)}, partition every ${f(p.partitionEveryMs)}, link failure every ${f(p.linkFailEveryMs)}, ` +
    `transfer every ${f(p.transferEveryMs)}, member change every ${f(p.memberChangeEveryMs)}, disk full every ${f(p.diskFullEveryMs)}, sync EIO p ${p.fs.failSyncP.toFixed(4)}; ` +
    `sync ${p.fs.syncMsMin.toFixed(2)}–${p.fs.syncMsMax.toFixed(1)}ms; clock ±${(p.clockRateSkew * 100).toFixed(1)}% jumps every ${f(p.clockJumpEveryMs)}; ` +
    `heartbeat ${p.ticksHeartbeat} quiesce ${p.ticksQuiesce} reads ${p.readMode} snapshot every ${p.snapshotEntries} ratio ${p.snapshotLogRatio} keep ${p.snapshotKeepEntries} ` +
    `segment ${p.segmentBytes} chunk ${p.snapChunkBytes} turn records ${p.turnRecordsMax} doorbell ≤ ${p.doorbellMsMax.toFixed(2)}ms ring ${p.ringBytes}` +
    `${p.newcomer === null ? '' : `; a newcomer joins after ${f(p.newcomer.afterMs)}, steps every ${f(p.newcomer.everyMs)}`}`;
}
