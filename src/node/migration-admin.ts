// The admin side of the key map and migration (issue 15), behind admin-http.ts's routes:
//   the map (GET /slots), a migration begun or aborted (POST /migrations, POST
//   /migrations/:id/abort: on this node when its meta replica leads, otherwise forwarded once to
//   the meta members' admin ports), the migrations this node drove (GET /migrations), and the
//   internal commands other nodes' drivers send to this node's groups (POST
//   /internal/groups/:id/kv, group-caller.ts).
import { keyMapJson, type KeyMapJson } from '../cluster/key-map.js';
import { metaVoters } from '../cluster/meta-group.js';
import { formatSlots, parseSlots, SlotsError, type SlotRanges } from '../cluster/slots.js';
import { INTERNAL_TAG_MIN } from '../kv/kv-migration-command.js';
import type { LocalRequests } from './local-requests.js';
import type { MigrationDriver } from './migration-driver.js';
import { NodeError } from './node-error.js';
import type { NodeMap } from './node-map.js';

/** Time a forwarded migrate or abort may take on the meta leader. */
const FORWARD_MS_MAX = 60_000;

export type MigrationReply = { ok: true; [k: string]: unknown } | { ok: false; code: string; message: string; leader?: number };

export class MigrationAdmin {
  constructor(
    private readonly self: number,
    private readonly peerIds: readonly number[],
    private readonly nodeMap: NodeMap,
    private readonly driver: MigrationDriver,
    private readonly internal: LocalRequests,
  ) {}

  slots(): KeyMapJson {
    return keyMapJson(this.nodeMap.map);
  }

  migrations(): MigrationReply {
    return { ok: true, node: this.self, ...this.driver.status() };
  }

  async migrate(slotsText: string, to: number, forwarded: boolean): Promise<MigrationReply> {
    let slots: SlotRanges;
    try {
      slots = parseSlots(slotsText);
    } catch (e) {
      if (e instanceof SlotsError) return { ok: false, code: 'BAD_SLOTS', message: `${e.problem}: ${e.message}` };
      throw e;
    }
    if (this.driver.isMetaMember) {
      try {
        const m = await this.driver.begin(slots, to);
        return { ok: true, migration: { id: m.id, slots: formatSlots(m.slots), from: m.from, to: m.to, state: m.state }, node: this.self };
      } catch (e) {
        if (!notLeader(e)) return failure(e);
      }
    }
    if (forwarded) return { ok: false, code: 'NOT_LEADER', message: `node ${this.self} does not lead the meta group` };
    return this.forward('/migrations', { slots: formatSlots(slots), to, forwarded: true });
  }

  async abort(id: number, forwarded: boolean): Promise<MigrationReply> {
    if (this.driver.isMetaMember) {
      try {
        const rec = await this.driver.abort(id);
        return { ok: true, migration: rec, node: this.self };
      } catch (e) {
        if (!notLeader(e)) return failure(e);
      }
    }
    if (forwarded) return { ok: false, code: 'NOT_LEADER', message: `node ${this.self} does not lead the meta group` };
    return this.forward(`/migrations/${id}/abort`, { forwarded: true });
  }

  /** Sends the request to each other meta member in turn; the first answer that is not NOT_LEADER wins. */
  private async forward(path: string, body: Record<string, unknown>): Promise<MigrationReply> {
    const map = this.nodeMap.map;
    let last: MigrationReply = { ok: false, code: 'UNAVAILABLE', message: 'no meta member answered: the meta group may have no leader' };
    for (const node of metaVoters(this.peerIds)) {
      if (node === this.self) continue;
      const a = map.addressesOf(node);
      if (a === undefined) continue;
      try {
        const res = await fetch(`http://${a.admin}${path}`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(FORWARD_MS_MAX),
        });
        const got = (await res.json()) as MigrationReply;
        if (got.ok || got.code !== 'NOT_LEADER') return got;
        last = got;
      } catch (e) {
        last = { ok: false, code: 'UNAVAILABLE', message: `meta member ${node} (${a.admin}): ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    return last;
  }

  /** An internal command or read for one of this node's groups (another node's driver sent it). */
  async internalKv(group: number, body: Uint8Array, read: boolean): Promise<MigrationReply> {
    if (body.length === 0 || body[0]! < INTERNAL_TAG_MIN) return { ok: false, code: 'BAD_REQUEST', message: 'not an internal command' };
    try {
      const result = await this.internal.command(group, body, { read });
      return { ok: true, result: Buffer.from(result).toString('base64') };
    } catch (e) {
      const f = failure(e);
      if (!f.ok && e instanceof NodeError && e.leader !== undefined) f.leader = e.leader.id;
      return f;
    }
  }
}

/** This node's meta replica does not lead (it lost leadership between the check and the proposal, too): forward. */
function notLeader(e: unknown): boolean {
  return e instanceof NodeError && (e.code === 'NOT_LEADER' || e.code === 'LEADER_TRANSFERRING');
}

function failure(e: unknown): { ok: false; code: string; message: string; leader?: number } {
  if (e instanceof NodeError) return { ok: false, code: e.code, message: e.message };
  throw e;
}
