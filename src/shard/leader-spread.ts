// Where the leaders of a shard's groups start: spread over their members instead of wherever
// the first election timeout fires. Each group has a preferred member, its voters in id order
// at (group − 1) mod their number, so G groups on n nodes start led about G/n by each node (a
// node leads the groups whose replies it builds, and the leader does the most work of a
// group). The preferred member campaigns as soon as the links to a quorum of the group's
// voters are up, once, and only while no leader is known; everyone else waits for the usual
// randomized timeout, which still elects someone if the preferred member cannot. With pre-vote
// and check-quorum (the defaults), a campaign against a live leader changes nothing: the
// members who hear from it refuse, so a restarted node does not take groups back by force.
// With lease reads a restarted member waits out its first election timeout before it
// campaigns: members restarted with it ignore campaigns until theirs ends (docs/raft.md).
import { NONE, Role } from '../raft/types.js';
import type { GroupHost } from './group-host.js';

export class LeaderSpread {
  /** Groups not yet decided: created or recovered here, no leader known yet. */
  private readonly pending = new Set<GroupHost>();
  private readonly peersUp = new Set<number>();

  constructor(private readonly self: number) {}

  get waiting(): boolean {
    return this.pending.size > 0;
  }

  added(h: GroupHost): void {
    this.pending.add(h);
  }

  removed(h: GroupHost): void {
    this.pending.delete(h);
  }

  peerState(node: number, up: boolean): void {
    if (up) this.peersUp.add(node);
    else this.peersUp.delete(node);
  }

  /** Campaigns in the pending groups this member is preferred for, where it can now win; adds them to `touched`. */
  campaign(touched: Set<GroupHost>): void {
    for (const h of this.pending) {
      const core = h.core;
      if (h.removed || core.leader !== NONE || core.role !== Role.Follower) {
        this.pending.delete(h);
        continue;
      }
      const voters = core.confState().voters;
      if (voters.length === 0) continue; // its founding configuration is not applied yet
      const sorted = [...voters].sort((a, b) => a - b);
      if (sorted[(h.id - 1) % sorted.length] !== this.self) {
        this.pending.delete(h);
        continue;
      }
      // With leases, members that restarted ignore campaigns for their first election timeout;
      // those restarted with this one (a whole cluster's restart) end it about when it does.
      if (core.inStartQuiet) continue;
      let reachable = 0;
      for (const v of sorted) if (v === this.self || this.peersUp.has(v)) reachable++;
      if (2 * reachable <= sorted.length) continue; // wait for links to a quorum
      this.pending.delete(h);
      core.campaign();
      touched.add(h);
    }
  }
}
