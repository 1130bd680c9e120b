// The network between the simulated machines, as host-sim.ts sees it: the per-seed rates of
// delays, drops and stragglers it applies to each peer payload and client frame
// (`NetworkProfile`, applied by host-sim.ts during the chaos phase), and which machines can reach which now (`Network`): partitions split the
// machines into sides that cannot talk to each other; one-way link failures cut a single
// direction between two machines. Reachability is checked when a payload is delivered, so a
// partition that forms while a payload is in flight stops it.

export interface NetworkProfile {
  delayMsMin: number;
  delayMsMax: number;
  /** Probability that a peer payload is lost (a broken connection). */
  dropP: number;
  /** Probability that a payload is a straggler, delayed up to `stragglerDelayMsMax`. */
  stragglerP: number;
  stragglerDelayMsMax: number;
  /** Drop probability of client ↔ node traffic (clients are not partitioned). */
  clientDropP: number;
}

export class Network {
  /** side[machine] = the partition side of each machine; all equal when there is no partition. */
  private side: number[];
  /** Directed links that are down, as `from * machines + to`. */
  private readonly linksDown = new Set<number>();

  constructor(private readonly machines: number) {
    this.side = new Array<number>(machines).fill(0);
  }

  /** Whether a payload from machine `from` would get to machine `to` now (ignoring random drops). */
  connected(from: number, to: number): boolean {
    if (from === to) return true;
    if (this.side[from] !== this.side[to]) return false;
    return !this.linksDown.has(from * this.machines + to);
  }

  /** Splits the machines: side[i] is the side of machine i. */
  partition(side: number[]): void {
    if (side.length !== this.machines) throw new Error('partition needs one side per machine');
    this.side = side.slice();
  }

  healPartition(): void {
    this.side.fill(0);
  }

  get partitioned(): boolean {
    return this.side.some((s) => s !== this.side[0]);
  }

  linkDown(from: number, to: number): void {
    this.linksDown.add(from * this.machines + to);
  }

  linkUp(from: number, to: number): void {
    this.linksDown.delete(from * this.machines + to);
  }

  /** Ends every partition and link failure (the drops and stragglers end with the chaos phase). */
  healAll(): void {
    this.healPartition();
    this.linksDown.clear();
  }
}
