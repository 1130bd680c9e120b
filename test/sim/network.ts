// The simulated network between nodes (and between clients and nodes). Every message gets a
// random delay, so messages overtake each other (reordering needs nothing more); it may be
// dropped, duplicated (peer traffic only), or held up for a long time (a "straggler", which is
// how stale messages from old terms reach their destination). Partitions split the nodes into
// sides that cannot talk to each other; one-way link failures cut a single direction between
// two nodes. Faults are checked when a message is delivered, so a partition that forms while a
// message is in flight stops it.
import type { EventQueue } from './event-queue.js';
import type { Prng } from './prng.js';

/** Endpoint of a message: a node index (0..nodes-1) or a client (-1 - clientIndex). */
export type Endpoint = number;

export function clientEndpoint(client: number): Endpoint {
  return -1 - client;
}

export interface NetworkProfile {
  delayMsMin: number;
  delayMsMax: number;
  /** Probability that a message is dropped. */
  dropP: number;
  /** Probability that a peer message is delivered twice (with its own delay). */
  duplicateP: number;
  /** Probability that a message is a straggler, delayed up to `stragglerDelayMsMax`. */
  stragglerP: number;
  stragglerDelayMsMax: number;
  /** Drop probability of client ↔ node traffic (clients are not partitioned). */
  clientDropP: number;
}

export const calmNetwork: NetworkProfile = {
  delayMsMin: 1,
  delayMsMax: 5,
  dropP: 0,
  duplicateP: 0,
  stragglerP: 0,
  stragglerDelayMsMax: 0,
  clientDropP: 0,
};

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
}

export class Network {
  profile: NetworkProfile;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };
  /** side[node] = the partition side of each node; all equal when there is no partition. */
  private side: number[];
  /** Directed links that are down, as `from * nodes + to`. */
  private readonly linksDown = new Set<number>();
  private inFlight = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly rng: Prng,
    private readonly nodes: number,
    profile: NetworkProfile,
    /** Bound on messages in flight at once; beyond it a send is dropped (a full socket buffer). */
    private readonly inFlightMax: number,
  ) {
    this.profile = profile;
    this.side = new Array<number>(nodes).fill(0);
  }

  get messagesInFlight(): number {
    return this.inFlight;
  }

  /**
   * Sends something from `from` to `to`; `deliver` runs at the receiver when it arrives, and
   * `lost` (if given) when the network loses it. `duplicable` says whether the network may
   * deliver it twice.
   */
  send(from: Endpoint, to: Endpoint, duplicable: boolean, deliver: () => void, lost?: () => void): void {
    this.stats.sent++;
    const p = this.profile;
    const isClient = from < 0 || to < 0;
    if (this.inFlight >= this.inFlightMax || this.rng.chance(isClient ? p.clientDropP : p.dropP)) {
      this.stats.dropped++;
      if (lost !== undefined) this.queue.after(0, lost);
      return;
    }
    this.schedule(from, to, deliver, lost);
    if (duplicable && !isClient && this.rng.chance(p.duplicateP)) {
      this.stats.duplicated++;
      this.schedule(from, to, deliver, undefined);
    }
  }

  private schedule(from: Endpoint, to: Endpoint, deliver: () => void, lost: (() => void) | undefined): void {
    const p = this.profile;
    let delay = this.rng.real(p.delayMsMin, p.delayMsMax);
    if (this.rng.chance(p.stragglerP)) delay += this.rng.real(0, p.stragglerDelayMsMax);
    this.inFlight++;
    this.queue.after(delay, () => {
      this.inFlight--;
      if (this.connected(from, to)) {
        this.stats.delivered++;
        deliver();
      } else {
        this.stats.dropped++;
        if (lost !== undefined) lost();
      }
    });
  }

  /** Whether a message from `from` would get to `to` now (ignoring random drops). */
  connected(from: Endpoint, to: Endpoint): boolean {
    if (from < 0 || to < 0) return true;
    if (from === to) return true;
    if (this.side[from] !== this.side[to]) return false;
    return !this.linksDown.has(from * this.nodes + to);
  }

  /** Splits the nodes: side[i] is the side of node i. */
  partition(side: number[]): void {
    if (side.length !== this.nodes) throw new Error('partition needs one side per node');
    this.side = side.slice();
  }

  healPartition(): void {
    this.side.fill(0);
  }

  get partitioned(): boolean {
    return this.side.some((s) => s !== this.side[0]);
  }

  linkDown(from: number, to: number): void {
    this.linksDown.add(from * this.nodes + to);
  }

  linkUp(from: number, to: number): void {
    this.linksDown.delete(from * this.nodes + to);
  }

  get linksDownCount(): number {
    return this.linksDown.size;
  }

  /** Ends every fault: no partition, no broken link, no drops or duplicates, no stragglers. */
  healAll(): void {
    this.healPartition();
    this.linksDown.clear();
    this.profile = { ...this.profile, dropP: 0, duplicateP: 0, stragglerP: 0, clientDropP: 0 };
  }

  describe(): string {
    const parts: string[] = [];
    if (this.partitioned) parts.push(`partition [${this.side.join(',')}]`);
    if (this.linksDown.size > 0) {
      parts.push(`links down ${[...this.linksDown].map((l) => `${Math.floor(l / this.nodes)}→${l % this.nodes}`).join(' ')}`);
    }
    return parts.length > 0 ? parts.join('; ') : 'network whole';
  }
}
