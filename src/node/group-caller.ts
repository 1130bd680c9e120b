// Internal requests to a group's leader, wherever it runs (issue 15, migration): a command (a
// Raft entry of the group, answered once applied on its leader) or a linearizable read. Sent to
// this node's own shard over CONN_INTERNAL when the node hosts the group, and otherwise (or when
// the local replica is not the leader) to another member's admin HTTP port (POST
// /internal/groups/:id/kv), which hands it to its own shard the same way. NOT_LEADER answers
// that name a leader are followed; every other failure moves on to the next member. Bounded: at
// most ATTEMPTS_MAX attempts a call, each bounded in time.
import type { KeyMap } from '../cluster/key-map.js';
import type { LocalRequests } from './local-requests.js';
import { NodeError } from './node-error.js';

/** Time an HTTP attempt may take (a shard answers within requestTimeoutMs). */
const HTTP_ATTEMPT_MS_MAX = 15_000;
/** Attempts of one call, over the group's members and the leaders they name. */
const ATTEMPTS_MAX = 8;

export interface InternalAnswer {
  ok: boolean;
  /** base64 of the Result body, when ok. */
  result?: string;
  code?: string;
  message?: string;
  leader?: number;
}

export class GroupCaller {
  /** The leader each group last answered from (a hint, tried first). */
  private readonly leaders = new Map<number, number>();

  constructor(
    private readonly self: number,
    private readonly internal: LocalRequests,
    private readonly map: () => KeyMap,
  ) {}

  /** Sends `body` to `group`'s leader; resolves with the Result body, rejects with a NodeError. */
  async call(group: number, body: Uint8Array, read: boolean): Promise<Uint8Array> {
    const map = this.map();
    const members = [...(map.membersOf(group) ?? [])];
    if (members.length === 0) throw new NodeError('NO_GROUP', `the key map holds no group ${group}`);
    const tried = new Set<number>();
    const queue: number[] = [];
    const hint = this.leaders.get(group);
    if (hint !== undefined && members.includes(hint)) queue.push(hint);
    if (members.includes(this.self)) queue.push(this.self);
    queue.push(...members);
    let last: NodeError = new NodeError('UNAVAILABLE', `no member of group ${group} answered`);
    for (let attempt = 0; attempt < ATTEMPTS_MAX && queue.length > 0; attempt++) {
      const node = queue.shift()!;
      if (tried.has(node) && queue.length > 0) {
        attempt--;
        continue;
      }
      tried.add(node);
      try {
        const out = node === this.self ? await this.internal.command(group, body, { read }) : await this.remote(map, node, group, body, read);
        this.leaders.set(group, node);
        return out;
      } catch (e) {
        last = e instanceof NodeError ? e : new NodeError('UNAVAILABLE', e instanceof Error ? e.message : String(e));
        const leader = last.leader?.id;
        if (last.code === 'NOT_LEADER' && leader !== undefined && leader !== 0 && !tried.has(leader)) queue.unshift(leader);
        else if (last.code === 'NOT_LEADER' || last.code === 'UNAVAILABLE' || last.code === 'TIMEOUT') {
          // A leader being elected: the same members again, after a moment.
          if (queue.length === 0) {
            tried.clear();
            queue.push(...members);
            await new Promise((r) => setTimeout(r, 100));
          }
        } else if (last.code !== 'NO_GROUP') {
          throw last;
        }
      }
    }
    throw last;
  }

  private async remote(map: KeyMap, node: number, group: number, body: Uint8Array, read: boolean): Promise<Uint8Array> {
    const a = map.addressesOf(node);
    if (a === undefined) throw new NodeError('UNAVAILABLE', `node ${node} has no addresses in the key map`);
    let res: Response;
    try {
      res = await fetch(`http://${a.admin}/internal/groups/${group}/kv`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ body: Buffer.from(body).toString('base64'), read }),
        signal: AbortSignal.timeout(HTTP_ATTEMPT_MS_MAX),
      });
    } catch (e) {
      throw new NodeError('UNAVAILABLE', `node ${node} (${a.admin}): ${e instanceof Error ? e.message : String(e)}`);
    }
    let got: InternalAnswer;
    try {
      got = (await res.json()) as InternalAnswer;
    } catch {
      throw new NodeError('UNAVAILABLE', `node ${node} answered ${res.status} with no JSON`);
    }
    if (got.ok && typeof got.result === 'string') return Buffer.from(got.result, 'base64');
    // Only the leader's id crosses the admin route; its addresses are in the map.
    const hint = typeof got.leader === 'number' && got.leader > 0 ? { id: got.leader, host: '', clientPort: 0, wsPort: 0 } : undefined;
    throw new NodeError(got.code ?? 'UNAVAILABLE', got.message ?? `node ${node} answered ${res.status}`, hint);
  }
}
