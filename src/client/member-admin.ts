// Group membership through the client (issue 16, item 1): each change is one joint-consensus
// change asked of the group's leader, answered once it has taken effect there
// (src/shard/member-changes.ts). Adding a voter never costs availability: the node first gets an
// empty replica (joinGroup, on that node), joins as a learner, is waited for until it has caught
// up with the leader's commit, and only then is promoted; until it votes, the group's quorum is
// what it was.
import { pack, unpack } from 'msgpackr';
import { FrameKind } from '../protocol/client-frame.js';
import type { Dispatcher } from './dispatcher.js';
import { FlotillaError } from './errors.js';
import type { RequestMode } from './request.js';

export interface Members {
  voters: number[];
  learners: number[];
}

export interface AddMemberOptions {
  /** Stay a learner (receives the log, never votes); else it is promoted once caught up. */
  learner?: boolean;
  /** How far behind the leader's commit a learner may be when it is promoted. Default 100 entries. */
  caughtUpEntries?: number;
  /** How long to wait for it to catch up before giving up (TIMEOUT: it stays a learner). Default 30,000 ms. */
  catchUpMs?: number;
}

const AT_LEADER: RequestMode = { read: false, resend: false, learn: false, copy: false, pinned: null };
const CATCH_UP_POLL_MS = 100;

/** A status reply's view of one group: its configuration and how far it got. */
interface GroupView { voters: number[]; learners: number[]; commit: number; applied: number; role: string }

export class MemberAdmin {
  /** `servers`: every client address the client knows (the map's, else its seeds). */
  constructor(private readonly d: Dispatcher, private readonly servers: () => string[]) {}

  /** The group's voters and learners, as its leader has applied them. */
  async members(group: number): Promise<Members> {
    const v = await this.view(group, null);
    return { voters: v.voters, learners: v.learners };
  }

  /**
   * Adds node `node`, reached at `server` (its client address), to the group: an empty replica
   * made there, then a learner, then (unless `learner`) a voter once caught up.
   */
  async addMember(group: number, node: number, server: string, opts: AddMemberOptions = {}): Promise<Members> {
    checkNode(node);
    await this.admin(group, { op: 'joinGroup' }, { ...AT_LEADER, pinned: server });
    let m = await this.change(group, { op: 'addMember', node, learner: true });
    if (opts.learner === true) return m;
    const behind = opts.caughtUpEntries ?? 100;
    const deadline = Date.now() + (opts.catchUpMs ?? 30_000);
    for (;;) {
      const leader = await this.view(group, null);
      const mine = await this.view(group, server).catch(() => null);
      if (mine !== null && mine.applied + behind >= leader.commit) break;
      if (Date.now() + CATCH_UP_POLL_MS > deadline) {
        throw new FlotillaError('TIMEOUT', `node ${node} did not catch up with group ${group} (applied ${mine?.applied ?? '?'}, leader's commit ${leader.commit}); it stays a learner`);
      }
      await new Promise((r) => setTimeout(r, CATCH_UP_POLL_MS));
    }
    m = await this.change(group, { op: 'promote', node });
    return m;
  }

  /** Makes the learner `node` a voter. */
  promote(group: number, node: number): Promise<Members> {
    checkNode(node);
    return this.change(group, { op: 'promote', node });
  }

  /** Removes the voter or learner `node` (the leader too: it hands over leadership first). */
  removeMember(group: number, node: number): Promise<Members> {
    checkNode(node);
    return this.change(group, { op: 'removeMember', node });
  }

  private async change(group: number, body: Record<string, unknown>): Promise<Members> {
    const reply = await this.admin(group, body, AT_LEADER);
    const m = (reply as { members?: Members }).members;
    if (m === undefined) throw new FlotillaError('BAD_RESULT', `group ${group}: ${String(body['op'])} answered without the members`);
    // A removed leader hands leadership over: find the new one from the next answers.
    this.d.forgetLeaderOf(group);
    return m;
  }

  /** The group as `server` sees it; null: as its leader does (every known server asked, the leader's answer taken). */
  private async view(group: number, server: string | null): Promise<GroupView> {
    if (server !== null) return this.viewAt(group, server);
    const views = await Promise.all(this.servers().map((s) => this.viewAt(group, s).catch(() => null)));
    const leader = views.find((v) => v !== null && v.role === 'leader');
    if (leader === undefined || leader === null) throw new FlotillaError('UNAVAILABLE', `group ${group}: no server answered as its leader`);
    return leader;
  }

  private async viewAt(group: number, server: string): Promise<GroupView> {
    const reply = await this.admin(group, { op: 'status' }, { read: true, resend: false, learn: false, copy: false, pinned: server });
    const g = (reply as { groups?: GroupView[] }).groups?.[0];
    if (g === undefined) throw new FlotillaError('BAD_RESULT', `group ${group}: status from ${server} without the group`);
    return g;
  }

  private async admin(group: number, body: Record<string, unknown>, mode: RequestMode): Promise<unknown> {
    return unpack(await this.d.request(FrameKind.Admin, 0, group, pack(body) as Uint8Array, mode)) as unknown;
  }
}

function checkNode(node: number): void {
  if (!Number.isInteger(node) || node < 1 || node > 0xffff_ffff) throw new FlotillaError('BAD_REQUEST', `node id ${node} is not an integer 1 to 2^32 - 1`);
}
