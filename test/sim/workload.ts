// Simulated clients. Each runs one operation at a time against one group: it sends the op to
// the replica it believes leads the group (learned from NOT_LEADER hints, else a random
// member), and records the op in the history when it ends.
//
// How an op ends decides what the history may claim about it:
// - a result: the op completed (complete = the time the client got the answer);
// - a definite refusal (NOT_LEADER, OVERLOADED, LEADER_TRANSFERRING, NO_REPLICA, READ_ABORTED
//   before anything was proposed, or LOST: another entry was applied at the proposal's index)
//   means this attempt can never take effect, so the client tries again, still the same op
//   with the same invoke time; after too many refusals it gives up and the op is left out of
//   the history (it certainly had no effect);
// - a timeout: the op is indeterminate (complete null), it may take effect at any later time
//   or never, and the client moves on to a new op.
// Client traffic is never duplicated by the network (a connection delivers a request once or
// not at all); without sessions in the state machine a duplicated write could apply twice.
import type { HistoryOp, KvOp, KvResult } from './linearizability.js';
import type { Prng } from './prng.js';
import type { Simulation } from './simulation.js';

export interface ClientRequest {
  client: number;
  opId: number;
  attempt: number;
  group: number;
  op: KvOp;
  /** A get sent through the log as a command, rather than served by ReadIndex. */
  viaLog: boolean;
}

export type ClientReply =
  | { opId: number; attempt: number; kind: 'ok'; result: KvResult }
  | { opId: number; attempt: number; kind: 'reject'; code: string; leader: number };

/** Definite refusals after which a client gives up on an op. */
const ATTEMPTS_MAX = 40;

interface Current {
  hop: HistoryOp;
  group: number;
  viaLog: boolean;
  attempt: number;
}

export class Client {
  /** No new ops once stopped; the current one still runs to its end. */
  stopped = false;
  /** Probe clients: set once their write was acknowledged. */
  probeDone = false;
  opsCompleted = 0;
  private current: Current | null = null;
  private readonly leaderGuess = new Map<number, number>();
  /** Last value this client saw per key, to aim compare-and-sets at values that exist. */
  private readonly seen = new Map<string, string | null>();
  private opsStarted = 0;

  constructor(
    private readonly sim: Simulation,
    readonly index: number,
    private readonly rng: Prng,
    /** A probe client writes to this group until one write is acknowledged (liveness). */
    private readonly probeGroup: number | null,
    private readonly timeoutMs: number,
  ) {}

  get busy(): boolean {
    return this.current !== null;
  }

  start(delayMs: number): void {
    this.sim.queue.after(delayMs, () => this.nextOp());
  }

  private nextOp(): void {
    if (this.current !== null) return;
    if (this.stopped || (this.probeGroup !== null && this.probeDone)) return;
    const sim = this.sim;
    let group: number;
    let op: KvOp;
    let viaLog = false;
    const n = this.opsStarted++;
    const value = `c${this.index}.${n}`;
    if (this.probeGroup !== null) {
      group = this.probeGroup;
      op = { kind: 'put', key: sim.groups[group]!.keys[0]!, value };
    } else {
      group = this.rng.int(0, sim.groups.length - 1);
      if (sim.isCold(group)) {
        // Clients leave cold groups alone (so that they can go idle); with all cold, wait.
        const warm = sim.groups.filter((g) => !sim.isCold(g.id));
        if (warm.length === 0) {
          this.opsStarted--;
          this.sim.queue.after(this.rng.real(1, 20), () => this.nextOp());
          return;
        }
        group = this.rng.pick(warm).id;
      }
      const key = this.rng.pick(sim.groups[group]!.keys);
      const w = sim.profile.opWeights;
      let x = this.rng.next() * (w[0] + w[1] + w[2] + w[3] + w[4]);
      if ((x -= w[0]) < 0) {
        op = { kind: 'put', key, value };
      } else if ((x -= w[1]) < 0) {
        op = { kind: 'get', key };
      } else if ((x -= w[2]) < 0) {
        op = { kind: 'get', key };
        viaLog = true;
      } else if ((x -= w[3]) < 0) {
        op = { kind: 'delete', key };
      } else {
        const last = this.seen.get(key);
        const expect = last !== undefined && this.rng.chance(0.7) ? last : this.rng.chance(0.5) ? null : `c${this.rng.int(0, 9)}.${this.rng.int(0, n)}`;
        op = { kind: 'cas', key, expect, value };
      }
    }
    const hop: HistoryOp = { id: sim.nextOpId++, client: this.index, op, invoke: sim.now, complete: null, result: null };
    this.current = { hop, group, viaLog, attempt: 0 };
    this.send();
  }

  private send(): void {
    const cur = this.current!;
    const sim = this.sim;
    cur.attempt++;
    const group = sim.groups[cur.group]!;
    let target = group.replicas.get(this.leaderGuess.get(cur.group) ?? 0);
    if (target === undefined) {
      const ids = [...group.replicas.keys()];
      target = group.replicas.get(this.rng.pick(ids))!;
    }
    const req: ClientRequest = { client: this.index, opId: cur.hop.id, attempt: cur.attempt, group: cur.group, op: cur.hop.op, viaLog: cur.viaLog };
    sim.sendToNode(this.index, target.node.index, req);
    const attempt = cur.attempt;
    sim.queue.after(this.timeoutMs, () => this.onTimeout(cur.hop.id, attempt));
  }

  onReply(r: ClientReply): void {
    const cur = this.current;
    if (cur === null || r.opId !== cur.hop.id || r.attempt !== cur.attempt) return; // late
    if (r.kind === 'ok') {
      cur.hop.complete = this.sim.now;
      cur.hop.result = r.result;
      this.sim.history.push(cur.hop);
      this.opsCompleted++;
      this.learn(cur.hop.op, r.result);
      if (this.probeGroup !== null) this.probeDone = true;
      this.finish();
      return;
    }
    if (r.leader > 0) this.leaderGuess.set(cur.group, r.leader);
    else this.leaderGuess.delete(cur.group);
    if (this.probeGroup === null && cur.attempt >= ATTEMPTS_MAX) {
      // Certainly never took effect: no attempt was left undecided.
      this.finish();
      return;
    }
    // A stale hint can point back at the replica that just refused; spread the retries.
    if (r.leader === 0 || this.rng.chance(0.2)) this.leaderGuess.delete(cur.group);
    const attempt = cur.attempt;
    this.sim.queue.after(this.rng.real(2, 25), () => {
      if (this.current === cur && cur.attempt === attempt) this.send();
    });
  }

  private onTimeout(opId: number, attempt: number): void {
    const cur = this.current;
    if (cur === null || cur.hop.id !== opId || cur.attempt !== attempt) return;
    // Indeterminate: recorded with complete = null.
    this.sim.history.push(cur.hop);
    this.leaderGuess.delete(cur.group);
    this.seen.delete(cur.hop.op.key);
    this.finish();
  }

  private finish(): void {
    this.current = null;
    this.sim.queue.after(this.rng.real(0, this.sim.profile.clientThinkMsMax), () => this.nextOp());
  }

  /** End of the run: an op still running is indeterminate. */
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
