// Online migration of slots between groups (issue 15; docs/key-map.md "Migration"), driven by the
// node whose meta replica leads. The key map holds each migration in progress and its state; the
// source's and target's logs hold the slot marks (src/kv/slot-marks.ts). Every step is
// idempotent, so whoever leads the meta group next finds the migration in the map and drives it
// on from its state; a deposed driver's late steps cannot undo a newer migration's marks.
//
// Migration M of slots S from F to T:
//   copying   1. clear M S in T: T drops any keys of S it holds and refuses S until accept;
//             2. fence M S in F: from that entry on, F answers S's keys MIGRATING (held);
//             3. export S's keys from F's leader (linearizable reads, paged, EXPORT_PAGE_BYTES),
//                importing each page into T (an entry of T each); then seal M S in T with F's
//                count of S's keys: T's copy is complete only if it holds as many (a deposed
//                driver's late clear may have cut it short: then the copy runs again), and once
//                sealed no late clear or import of M changes it;
//             4. meta cutover-migration;
//   cutover   5. meta finish-migration: S is T's in the map (map version + 1);
//   finished  6. accept M S in T: T serves S (its node's slot table says T from the new map on);
//             7. drop M S in F: F deletes its keys of S and answers them WRONG_GROUP naming T.
// Abort (an operator's, or a step's permanent failure): meta abort-migration, then unfence M S
// in F, discard M S in T (its imported keys go). A crash anywhere leaves the map's state to resume
// from; what only the groups' marks know (a finish whose accept or drop did not run, an abort
// whose unfence did not) is found by reconcile, which reads every group's marks when a node
// starts leading the meta group and after any step of this driver failed once the map no longer
// held its migration.
//
// The hold: from the fence applied on F's leader to the accept applied on T's leader, S's
// keys are answered MIGRATING (clients retry after a short backoff). Measured per migration
// (MigrationRecord.holdMs) and kept for the last RECORDS_MAX migrations (GET /migrations).
import { RoundTimer } from './round-timer.js';
import { META_GROUP, metaVoters } from '../cluster/meta-group.js';
import {
  decodeMetaResult, decodeVersionAnswer, encodeMetaCommand, encodeMetaQuery, type MetaCommand, type MetaResult,
} from '../cluster/meta-command.js';
import type { KeyMap, Migration } from '../cluster/key-map.js';
import { formatSlots, slotsOfRanges, rangesOfSlots, type SlotRanges } from '../cluster/slots.js';
import {
  decodeCountAnswer, decodeExportAnswer, decodeMarksAnswer, encodeCountQuery, encodeExportQuery, encodeInternalCommand, encodeMarksQuery,
  type InternalCommand,
} from '../kv/kv-migration-command.js';
import { decodeKvResult } from '../kv/kv-result.js';
import { MarkState } from '../kv/slot-marks.js';
import { GroupCaller } from './group-caller.js';
import type { LocalRequests } from './local-requests.js';
import type { Logger } from './log.js';
import { NodeError } from './node-error.js';
import type { NodeMap } from './node-map.js';

/** Bytes of keys and values one export page (and one import entry) carries, about. */
export const EXPORT_PAGE_BYTES = 128 * 1024;
/** How often the driver looks at the map for work when nothing woke it. */
const TICK_MS = 200;
/**
 * While no migration is in progress, how often a meta member asks whether it leads (one read of
 * the meta group): a new leader reconciles at once. Not every tick, so an idle meta group can
 * quiesce between.
 */
const IDLE_LEAD_CHECK_MS = 5_000;
/** Finished or aborted migrations whose record is kept (GET /migrations). */
const RECORDS_MAX = 32;
/** Tries of a meta command whose expected version another command changed first. */
const CAS_TRIES_MAX = 20;
/** Codes of a step that will not pass by retrying: the migration is aborted. */
const PERMANENT = new Set(['BAD_COMMAND', 'BAD_REQUEST', 'TOO_LARGE', 'NO_SPACE', 'NO_GROUP']);
/** An import page may be halved down to this many bytes when the target refuses one as TOO_LARGE. */
const EXPORT_PAGE_BYTES_MIN = 4 * 1024;
/** How long an operator's abort waits for the loop to take it. */
const ABORT_WAIT_MS_MAX = 60_000;

export interface MigrationRecord {
  id: number;
  slots: string;
  from: number;
  to: number;
  /** Where the driver of this node is: copying, cutover, finished, aborted. */
  state: 'copying' | 'cutover' | 'finished' | 'aborted';
  keys: number;
  bytes: number;
  /** Wall clock (ms since 1970) of the fence applied, the finish committed, the accept applied. */
  fencedAt?: number;
  finishedAt?: number;
  acceptedAt?: number;
  /** Fence applied → finish committed, and → accept applied (the time S's keys are held). */
  fenceToFinishMs?: number;
  holdMs?: number;
  error?: string;
}

/** A meta command refused, or a migration step failing for good: its code is the answer's. */
export class MigrationError extends NodeError {}

export class MigrationDriver {
  private readonly caller: GroupCaller;
  private readonly rounds = new RoundTimer(() => this.round());
  private stopped = false;
  private running = false;
  private lastLeadCheck = 0;
  private wasLeader = false;
  /** A step after finish or abort failed here: reconcile ends it (set too when this node starts leading). */
  private reconcileWanted = true;
  /** Migrations driven here, by id (in progress and the last RECORDS_MAX ended). */
  readonly records = new Map<number, MigrationRecord>();
  /** Migrations an operator asked to abort; the loop aborts them at its next step. */
  private readonly aborts = new Map<number, Array<(r: MetaResult | Error) => void>>();
  readonly isMetaMember: boolean;

  constructor(
    private readonly self: number,
    peerIds: readonly number[],
    private readonly internal: LocalRequests,
    private readonly nodeMap: NodeMap,
    private readonly log: Logger,
  ) {
    this.isMetaMember = metaVoters(peerIds).includes(self);
    this.caller = new GroupCaller(self, internal, () => this.nodeMap.map);
  }

  start(): void {
    if (!this.isMetaMember) return;
    this.soon(TICK_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.rounds.stop();
  }

  /** Look at the map now (a migration began, the map changed). */
  kick(): void {
    if (this.isMetaMember) this.soon(0);
  }

  private soon(ms: number): void {
    if (!this.stopped) this.rounds.soon(ms);
  }

  private async round(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      const now = Date.now();
      const work = this.nodeMap.map.migrations().length > 0 || this.aborts.size > 0;
      if (!work && now - this.lastLeadCheck < IDLE_LEAD_CHECK_MS && !(this.wasLeader && this.reconcileWanted)) return;
      this.lastLeadCheck = now;
      if (!await this.leads()) {
        this.wasLeader = false;
        return;
      }
      if (!this.wasLeader) this.reconcileWanted = true;
      this.wasLeader = true;
      if (this.reconcileWanted) {
        this.reconcileWanted = false;
        await this.reconcile().catch((e: unknown) => {
          this.reconcileWanted = true;
          this.log.warn({ err: text(e) }, 'migration: reconcile did not complete; it runs again');
        });
      }
      for (const m of this.nodeMap.map.migrations()) {
        if (this.stopped) return;
        await this.drive(m).catch((e: unknown) => {
          // A failure after finish or abort leaves marks only reconcile finds (the map no longer holds the migration).
          this.reconcileWanted = true;
          this.log.warn({ migration: m.id, err: text(e) }, 'migration: a step failed; it is retried');
        });
      }
    } finally {
      this.running = false;
      this.soon(TICK_MS);
    }
  }

  /** Whether this node's meta replica leads (a linearizable read succeeds only on the leader). */
  private async leads(): Promise<boolean> {
    try {
      await this.internal.command(META_GROUP, encodeMetaQuery({ q: 'version' }), { read: true });
      return true;
    } catch {
      return false;
    }
  }

  /** The meta group's version, read on its leader (this node). */
  private async metaVersion(): Promise<number> {
    return decodeVersionAnswer(await this.internal.command(META_GROUP, encodeMetaQuery({ q: 'version' }), { read: true }));
  }

  /** Proposes a meta command at the current version, again while another change wins first. */
  async meta(make: (expect: number) => MetaCommand): Promise<MetaResult> {
    let r: MetaResult | null = null;
    for (let i = 0; i < CAS_TRIES_MAX; i++) {
      const v = await this.metaVersion();
      r = decodeMetaResult(await this.internal.command(META_GROUP, encodeMetaCommand(make(v)), {}));
      if (r.ok || r.code !== 'VERSION_MISMATCH') return r;
    }
    return r!;
  }

  /** Begins migrating `slots` to `to` (this node's meta replica must lead); resolves with the migration. */
  async begin(slots: SlotRanges, to: number): Promise<Migration> {
    if (!await this.leads()) throw new MigrationError('NOT_LEADER', `node ${this.self} does not lead the meta group`);
    const r = await this.meta((expect) => ({ op: 'begin-migration', expect, to, slots }));
    if (!r.ok) throw new MigrationError(r.code, r.message);
    const m = await this.migrationAt(r.version);
    this.log.info({ migration: m.id, slots: formatSlots(m.slots), from: m.from, to: m.to }, 'migration begun');
    this.kick();
    return m;
  }

  /** The migration begun at `id`, once this node's copy of the map holds it. */
  private async migrationAt(id: number): Promise<Migration> {
    for (let i = 0; i < 100; i++) {
      const m = this.nodeMap.map.migrations().find((x) => x.id === id);
      if (m !== undefined) return m;
      if (this.nodeMap.version > id) break;
      await sleep(20);
    }
    throw new MigrationError('UNAVAILABLE', `migration ${id} began but this node's map does not show it (it is at version ${this.nodeMap.version})`);
  }

  /** Aborts migration `id` (this node's meta replica must lead). */
  async abort(id: number): Promise<MigrationRecord> {
    if (!await this.leads()) throw new MigrationError('NOT_LEADER', `node ${this.self} does not lead the meta group`);
    const m = this.nodeMap.map.migrations().find((x) => x.id === id);
    if (m === undefined) {
      // The map may lag the meta replica by an apply: ask the state machine itself.
      const r = await this.meta((expect) => ({ op: 'abort-migration', expect, id }));
      if (!r.ok) throw new MigrationError(r.code, r.message);
      await this.reconcile();
      return this.records.get(id) ?? { id, slots: '', from: 0, to: 0, state: 'aborted', keys: 0, bytes: 0 };
    }
    // Asked of the loop, which aborts it between two steps (never in the middle of one).
    const done = new Promise<MetaResult | Error>((resolve) => {
      const waiting = this.aborts.get(id) ?? [];
      waiting.push(resolve);
      this.aborts.set(id, waiting);
      setTimeout(() => resolve(new MigrationError('TIMEOUT', `migration ${id} was not aborted within ${ABORT_WAIT_MS_MAX / 1000} s (its steps wait for a group's leader); the abort stays asked for`)), ABORT_WAIT_MS_MAX).unref();
    });
    this.kick();
    const r = await done;
    if (r instanceof Error) throw r;
    if (!r.ok) throw new MigrationError(r.code, r.message);
    return this.record(m);
  }

  private record(m: Migration): MigrationRecord {
    let rec = this.records.get(m.id);
    if (rec === undefined) {
      rec = { id: m.id, slots: formatSlots(m.slots), from: m.from, to: m.to, state: m.state, keys: 0, bytes: 0 };
      this.records.set(m.id, rec);
      while (this.records.size > RECORDS_MAX) this.records.delete(this.records.keys().next().value!);
    }
    return rec;
  }

  private async internalCall(group: number, c: InternalCommand): Promise<void> {
    const res = decodeKvResult(await this.caller.call(group, encodeInternalCommand(c), false));
    if (res.op === 'error') throw new MigrationError(res.code, `group ${group}: ${res.message}`);
  }

  /** Drives one migration from its state in the map to its end (or to a failure, retried later). */
  private async drive(m: Migration): Promise<void> {
    const rec = this.record(m);
    try {
      if (await this.abortIfAsked(m)) return;
      if (m.state === 'copying') {
        await this.copy(m, rec);
        if (await this.abortIfAsked(m)) return;
        const r = await this.meta((expect) => ({ op: 'cutover-migration', expect, id: m.id }));
        if (!r.ok) {
          if (r.code === 'NO_SUCH_MIGRATION') return; // aborted meanwhile
          throw new MigrationError(r.code, r.message);
        }
        rec.state = 'cutover';
      }
      if (await this.abortIfAsked(m)) return;
      const r = await this.meta((expect) => ({ op: 'finish-migration', expect, id: m.id }));
      if (!r.ok) {
        if (r.code === 'NO_SUCH_MIGRATION') return;
        throw new MigrationError(r.code, r.message);
      }
      rec.finishedAt = Date.now();
      if (rec.fencedAt !== undefined) rec.fenceToFinishMs = rec.finishedAt - rec.fencedAt;
      rec.state = 'finished';
      await this.internalCall(m.to, { op: 'accept', id: m.id, slots: m.slots });
      rec.acceptedAt = Date.now();
      if (rec.fencedAt !== undefined) rec.holdMs = rec.acceptedAt - rec.fencedAt;
      await this.internalCall(m.from, { op: 'drop', id: m.id, slots: m.slots, to: m.to });
      this.log.info({ migration: m.id, slots: rec.slots, from: m.from, to: m.to, keys: rec.keys, bytes: rec.bytes, holdMs: rec.holdMs, fenceToFinishMs: rec.fenceToFinishMs }, 'migration finished');
    } catch (e) {
      rec.error = text(e);
      if (e instanceof NodeError && PERMANENT.has(e.code) && rec.state !== 'finished') {
        this.log.error({ migration: m.id, err: rec.error }, 'migration: a step failed for good; aborting');
        await this.rollBack(m, rec);
        return;
      }
      throw e;
    }
  }

  /**
   * Steps 1-3: clear (first: a target that cannot take the slots is found before the source
   * holds anything), fence, export and import every page.
   */
  private async copy(m: Migration, rec: MigrationRecord): Promise<void> {
    await this.internalCall(m.to, { op: 'clear', id: m.id, slots: m.slots, owner: m.from });
    await this.internalCall(m.from, { op: 'fence', id: m.id, slots: m.slots });
    rec.fencedAt ??= Date.now();
    let skip = 0;
    let bytes = 0;
    let pageBytes = EXPORT_PAGE_BYTES;
    for (;;) {
      if (this.stopped) throw new MigrationError('UNAVAILABLE', 'the node is stopping');
      // An abort asked for meanwhile is taken between two pages (drive then rolls back).
      if (this.aborts.has(m.id)) return;
      const page = decodeExportAnswer(await this.caller.call(m.from, encodeExportQuery(m.id, m.slots, skip, pageBytes), true));
      if (!page.fenced) throw new MigrationError('NOT_FENCED', `group ${m.from} does not hold the fence of migration ${m.id}`);
      if (page.pairs.length > 0) {
        try {
          await this.internalCall(m.to, { op: 'import', id: m.id, slots: m.slots, pairs: page.pairs });
        } catch (e) {
          // A node with small rings takes smaller entries: the same keys again, in smaller pages.
          if (e instanceof NodeError && e.code === 'TOO_LARGE' && page.pairs.length > 1 && pageBytes > EXPORT_PAGE_BYTES_MIN) {
            pageBytes = Math.max(EXPORT_PAGE_BYTES_MIN, pageBytes >>> 1);
            continue;
          }
          throw e;
        }
      }
      skip += page.pairs.length;
      for (const p of page.pairs) bytes += p.key.length + p.value.length;
      if (page.done) break;
    }
    const count = decodeCountAnswer(await this.caller.call(m.from, encodeCountQuery(m.id, m.slots), true));
    if (count === null) throw new MigrationError('NOT_FENCED', `group ${m.from} does not hold the fence of migration ${m.id}`);
    await this.internalCall(m.to, { op: 'seal', id: m.id, slots: m.slots, count });
    rec.keys = count;
    rec.bytes = bytes;
  }

  private async abortIfAsked(m: Migration): Promise<boolean> {
    const waiting = this.aborts.get(m.id);
    if (waiting === undefined) return false;
    this.aborts.delete(m.id);
    let out: MetaResult | Error;
    try {
      out = await this.rollBack(m, this.record(m));
    } catch (e) {
      this.reconcileWanted = true;
      out = e instanceof Error ? e : new Error(String(e));
    }
    for (const w of waiting) w(out);
    return true;
  }

  /** Abort: the map first (so no driver finishes it), then unfence F and clear T. */
  private async rollBack(m: Migration, rec: MigrationRecord): Promise<MetaResult> {
    const r = await this.meta((expect) => ({ op: 'abort-migration', expect, id: m.id }));
    if (!r.ok) return r;
    rec.state = 'aborted';
    await this.internalCall(m.from, { op: 'unfence', id: m.id, slots: m.slots });
    await this.internalCall(m.to, { op: 'discard', id: m.id, slots: m.slots, owner: m.from });
    this.log.info({ migration: m.id, slots: rec.slots, from: m.from, to: m.to }, 'migration aborted');
    return r;
  }

  /**
   * Reads every group's marks and ends what a crash left half done, by the map: a fence of a
   * migration no longer in progress is dropped (the slot is another group's now: M finished) or
   * lifted (the slot is still the group's: M was aborted); a moved or sealed mark on a slot the
   * group owns is accepted (M brought it here and finished); a sealed copy of a slot another group
   * owns is discarded (M was aborted). Marks of migrations in progress, or newer than this node's
   * map, are left alone.
   */
  async reconcile(): Promise<void> {
    const map = this.nodeMap.map;
    const inProgress = new Set(map.migrations().map((m) => m.id));
    const unread: number[] = [];
    for (const g of map.groups()) {
      if (this.stopped) return;
      let runs;
      try {
        runs = decodeMarksAnswer(await this.caller.call(g, encodeMarksQuery(), true));
      } catch (e) {
        this.log.debug({ group: g, err: text(e) }, 'migration reconcile: no marks from group');
        unread.push(g);
        continue;
      }
      for (const run of runs) {
        if (run.id > map.version || inProgress.has(run.id)) continue;
        const own: number[] = [];
        const byOwner = new Map<number, number[]>();
        for (const s of slotsOfRanges([{ first: run.first, last: run.last }])) {
          const o = map.ownerOf(s);
          if (o === g) own.push(s);
          else if (o !== 0) byOwner.set(o, [...(byOwner.get(o) ?? []), s]);
        }
        if (run.state === MarkState.Fenced) {
          if (own.length > 0) await this.internalCall(g, { op: 'unfence', id: run.id, slots: rangesOfSlots(own) });
          for (const [o, ss] of byOwner) await this.internalCall(g, { op: 'drop', id: run.id, slots: rangesOfSlots(ss), to: o });
        } else if (run.state === MarkState.Moved || run.state === MarkState.Sealed) {
          if (own.length > 0) await this.internalCall(g, { op: 'accept', id: run.id, slots: rangesOfSlots(own) });
          // A sealed copy of an aborted migration (its discard did not run).
          if (run.state === MarkState.Sealed) for (const [o, ss] of byOwner) await this.internalCall(g, { op: 'discard', id: run.id, slots: rangesOfSlots(ss), owner: o });
        }
        if (run.state !== MarkState.None && (own.length > 0 || (run.state !== MarkState.Moved && byOwner.size > 0))) {
          this.log.info({ group: g, migration: run.id, state: ['none', 'fenced', 'moved', 'sealed'][run.state] }, 'migration reconcile: ended a mark a crash left');
        }
      }
    }
    if (unread.length > 0) throw new MigrationError('UNAVAILABLE', `no marks read from groups ${unread.join(', ')}`);
  }

  /** What GET /migrations answers: this node's records and the map's migrations. */
  status(): { leader: boolean; inMap: unknown[]; records: MigrationRecord[] } {
    return {
      leader: this.wasLeader,
      inMap: this.nodeMap.map.migrations().map((m) => ({ id: m.id, slots: formatSlots(m.slots), from: m.from, to: m.to, state: m.state })),
      records: [...this.records.values()],
    };
  }
}

function text(e: unknown): string {
  return e instanceof Error ? `${(e as { code?: string }).code ?? 'ERROR'}: ${e.message}` : String(e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export type { KeyMap };
