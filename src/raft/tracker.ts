// The leader's view of the group: the current configuration and a Progress per member.
// Followers keep one too (it holds the configuration and the votes of a campaign).
import { Progress } from './progress.js';
import { jointIndex, jointVote, VoteResult } from './quorum.js';
import type { ConfState, NodeId } from './types.js';
import { emptyConf } from './conf-change.js';

const NO_VOTES: ReadonlyMap<NodeId, boolean> = new Map();

export class Tracker {
  conf: ConfState = emptyConf();
  readonly progress = new Map<NodeId, Progress>();
  /** The votes of this member's campaign; made when it campaigns (most members never do). */
  private votes: Map<NodeId, boolean> | null = null;
  /** Every member, voters of both halves and learners, in a stable order. */
  members: NodeId[] = [];

  constructor(private readonly inflightMsgsMax: number, private readonly inflightBytesMax: number) {}

  isVoter(id: NodeId): boolean {
    return this.conf.voters.includes(id) || this.conf.votersOutgoing.includes(id);
  }

  /** Voters of both halves, each once. */
  voterIds(): NodeId[] {
    const ids = new Set([...this.conf.voters, ...this.conf.votersOutgoing]);
    return [...ids];
  }

  /** Switches to `conf`; new members start probing from `nextIndex`. */
  setConf(conf: ConfState, nextIndex: number): void {
    this.conf = conf;
    const ids = new Set([...conf.voters, ...conf.votersOutgoing, ...conf.learners, ...conf.learnersNext]);
    for (const id of [...this.progress.keys()]) if (!ids.has(id)) this.progress.delete(id);
    for (const id of ids) {
      if (!this.progress.has(id)) this.progress.set(id, new Progress(nextIndex, this.inflightMsgsMax, this.inflightBytesMax));
    }
    this.members = [...ids].sort((a, b) => a - b);
  }

  /** Forgets every follower's state (a new leader starts from scratch). */
  resetProgress(nextIndex: number): void {
    for (const id of this.members) {
      this.progress.set(id, new Progress(nextIndex, this.inflightMsgsMax, this.inflightBytesMax));
    }
  }

  committed(): number {
    return jointIndex(this.conf, (id) => this.progress.get(id)?.match ?? 0);
  }

  /** The highest read round acknowledged by a quorum; `self` counts as having the latest. */
  roundQuorum(self: NodeId, round: number): number {
    return jointIndex(this.conf, (id) => (id === self ? round : this.progress.get(id)?.roundAcked ?? 0));
  }

  quorumActive(self: NodeId): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) active.set(id, id === self || pr.recentActive);
    return jointVote(this.conf, active) === VoteResult.Won;
  }

  resetVotes(): void {
    this.votes = null;
  }

  recordVote(id: NodeId, granted: boolean): void {
    this.votes ??= new Map();
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  voteResult(): VoteResult {
    return jointVote(this.conf, this.votes ?? NO_VOTES);
  }
}
