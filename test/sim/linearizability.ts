// Linearizability checker for key-value histories recorded by the simulator.
//
// A history is linearizable if every op can be given one instant inside its [invoke, complete]
// interval such that executing the ops one at a time in that order, on a map whose keys all
// start absent, gives every recorded result. Every op here touches one key, so the map is
// linearizable iff each key's sub-history is (Herlihy & Wing's locality); we split by key and
// search each key alone, which keeps the exponential part of the search small.
//
// Per key we run the Wing–Gong search with Lowe's memoisation (the "WGL" algorithm): the ops'
// call and return events sit in one doubly linked list sorted by time; walking from the head,
// every call met before the first return is an op that may take effect next. We try each one
// whose model step matches its recorded result, lift it (call and return) out of the list and
// start again from the head; when we meet a return whose op is still in the list, no pending op
// can go next, so we undo the last choice. A cache of (set of ops taken, key's value) makes sure
// no configuration is explored twice: what can still happen depends on nothing else.
//
// Three additions keep it fast on simulator histories, each argued where it is implemented:
// reads are taken greedily and never branched on (KeySearch); stale reads and reads of values
// nobody wrote are found without searching (findObviousViolation); and indeterminate writes of
// values nothing observes are assumed never to have happened (unobservedWrites).
//
// The search is exact but exponential in the worst case, so it is bounded: after
// `stepsMaxPerKey` steps (a step is one candidate considered or one choice undone) a key is
// 'undecided'. We never claim 'ok' or 'violation' for a key whose search did not finish.
// Memory follows the same bound: the cache holds at most one small entry per step.

export type KvOp =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'delete'; key: string }
  | { kind: 'cas'; key: string; expect: string | null; value: string }; // expect null = "key absent"

export type KvResult =
  | { kind: 'put' } // a put always succeeds
  | { kind: 'get'; value: string | null } // null = absent
  | { kind: 'delete' }
  | { kind: 'cas'; ok: boolean }; // ok = current value equalled expect, and value was written

export interface HistoryOp {
  /** Unique in the history. */
  id: number;
  client: number;
  op: KvOp;
  /** Time the client sent it (any monotone clock, e.g. simulated ms). */
  invoke: number;
  /**
   * Time the client got the answer; null = indeterminate (timed out or lost): it may have taken
   * effect at any time after invoke, or never, and its result is unknown.
   */
  complete: number | null;
  /** Null iff complete is null. */
  result: KvResult | null;
}

export type CheckOutcome = 'ok' | 'violation' | 'undecided';

export interface CheckReport {
  /** Worst over all keys: violation > undecided > ok. */
  outcome: CheckOutcome;
  /** Keys checked. */
  keys: number;
  /** Ops checked, all of them, including indeterminate ones. */
  ops: number;
  /** First key (in order of first appearance in the history) that was a violation, else the first undecided one. */
  failedKey?: string;
  /**
   * For a violation: the key's ops, then either the read that no order can explain and why, or
   * the longest linearizable prefix the search found. For undecided: where the search gave up.
   */
  detail?: string;
}

export interface CheckOptions {
  /** Search steps allowed per key before the key is 'undecided' (about 0.1 s per million). */
  stepsMaxPerKey?: number;
}

/** A malformed history is a bug in whatever recorded it, not a property of the system under test. */
export class BadHistoryError extends Error {
  readonly code = 'BAD_HISTORY';
}

export const STEPS_MAX_PER_KEY_DEFAULT = 1_000_000;

// Bounds on the size of `detail`, so a violation in a huge key still prints a readable report.
const DETAIL_OPS_MAX = 100;
const DETAIL_PREFIX_OPS_MAX = 200;

export function checkHistory(history: HistoryOp[], opts?: CheckOptions): CheckReport {
  const stepsMaxPerKey = opts?.stepsMaxPerKey ?? STEPS_MAX_PER_KEY_DEFAULT;
  if (!(stepsMaxPerKey >= 1) || !Number.isFinite(stepsMaxPerKey)) {
    throw new RangeError(`stepsMaxPerKey must be a positive finite number, got ${stepsMaxPerKey}`);
  }
  validate(history);

  // A Map keeps insertion order, so keys are checked (and reported) in order of first appearance.
  const byKey = new Map<string, HistoryOp[]>();
  let opsPerKeyMax = 0;
  for (const h of history) {
    let ops = byKey.get(h.op.key);
    if (ops === undefined) {
      ops = [];
      byKey.set(h.op.key, ops);
    }
    ops.push(h);
    if (ops.length > opsPerKeyMax) opsPerKeyMax = ops.length;
  }

  const search = new KeySearch(opsPerKeyMax);
  let outcome: CheckOutcome = 'ok';
  let failedKey: string | undefined;
  let detail: string | undefined;
  for (const [key, ops] of byKey) {
    const keyOutcome = search.check(ops, stepsMaxPerKey);
    if (keyOutcome === 'violation' && outcome !== 'violation') {
      outcome = 'violation';
      failedKey = key;
      detail = search.describeViolation(key, ops);
    } else if (keyOutcome === 'undecided' && outcome === 'ok') {
      outcome = 'undecided';
      failedKey = key;
      detail =
        `key ${JSON.stringify(key)}: search gave up after ${stepsMaxPerKey} steps ` +
        `(${ops.length} ops, longest linearizable prefix found: ${search.prefixLengthBest} ops)`;
    }
  }

  const report: CheckReport = { outcome, keys: byKey.size, ops: history.length };
  if (failedKey !== undefined) report.failedKey = failedKey;
  if (detail !== undefined) report.detail = detail;
  return report;
}

/** One line per op, e.g. `#7 c2 [10,14] cas k="a"->"b" -> ok` or `#9 c1 [12,?] put k="c" -> ?`. */
export function describeOp(h: HistoryOp): string {
  const when = `[${h.invoke},${h.complete === null ? '?' : h.complete}]`;
  const op = h.op;
  const r = h.result;
  let call: string;
  let ret: string;
  switch (op.kind) {
    case 'put':
      call = `put ${op.key}=${JSON.stringify(op.value)}`;
      ret = r === null ? '?' : 'ok';
      break;
    case 'get':
      call = `get ${op.key}`;
      ret = r === null ? '?' : r.kind === 'get' ? JSON.stringify(r.value) : `<${r.kind}>`;
      break;
    case 'delete':
      call = `delete ${op.key}`;
      ret = r === null ? '?' : 'ok';
      break;
    case 'cas':
      call = `cas ${op.key}=${JSON.stringify(op.expect)}->${JSON.stringify(op.value)}`;
      ret = r === null ? '?' : r.kind === 'cas' ? (r.ok ? 'ok' : 'fail') : `<${r.kind}>`;
      break;
  }
  return `#${h.id} c${h.client} ${when} ${call} -> ${ret}`;
}

function validate(history: HistoryOp[]): void {
  const ids = new Set<number>();
  for (const h of history) {
    if (ids.has(h.id)) throw new BadHistoryError(`duplicate op id ${h.id}`);
    ids.add(h.id);
    if (!Number.isFinite(h.invoke)) throw new BadHistoryError(`op #${h.id}: invoke ${h.invoke} is not finite`);
    if (h.complete === null) {
      if (h.result !== null) throw new BadHistoryError(`op #${h.id}: indeterminate (complete null) but has a result`);
      continue;
    }
    if (!Number.isFinite(h.complete) || h.complete < h.invoke) {
      throw new BadHistoryError(`op #${h.id}: complete ${h.complete} is not a finite time at or after invoke ${h.invoke}`);
    }
    if (h.result === null) throw new BadHistoryError(`op #${h.id}: completed but has no result`);
    if (h.result.kind !== h.op.kind) {
      throw new BadHistoryError(`op #${h.id}: ${h.op.kind} op with a ${h.result.kind} result`);
    }
  }
}

// Op kinds as small integers for the search's inner loop.
const KIND_PUT = 0;
const KIND_GET = 1;
const KIND_DELETE = 2;
const KIND_CAS = 3;
// Value ids: each distinct string seen on a key gets a small integer; absent is 0.
const VALUE_ABSENT = 0;
// Recorded result of an op whose result is unknown.
const RESULT_UNKNOWN = -1;
// Step outcome meaning "this op cannot take effect now with its recorded result".
const STEP_REFUSED = -1;

// `node` values in the search loop that are not list nodes.
const NODE_FRESH = -1; // a configuration just reached: take forced reads, then walk from the head
const NODE_DEAD = -2; // the current configuration is known to fail: backtrack

/**
 * The search for one key at a time. Its typed arrays are sized for the largest key of the
 * history and reused for every key, so the thousands of small keys a simulation produces cost
 * little allocation.
 *
 * Ops are numbered 0..n-1 in invoke order, so the ops taken so far are always "all ops below
 * some index p, plus a few after it" (every op taken after p was invoked while p was pending),
 * which lets the cache store only the bits from p to the highest op taken.
 *
 * Reads are taken greedily and never branched on. Take a read-only op r (a get, or a failed
 * cas) that may go next (its call comes before every open return) and whose result matches
 * the current value. If some order of the open ops works from here, so does that order with r
 * moved to the front: r sees the current value, which is what it returned; the ops it jumps
 * over see the same values as before, since r changes nothing; and no op had to precede r,
 * because every open op returns after r was invoked. So a configuration fails whenever the
 * one after taking r fails: the search never tries an alternative to a greedy read, and when
 * it backtracks through one it goes straight on to the choice before it.
 */
class KeySearch {
  // Per op (local index 0..n-1 within the key, in invoke order).
  private readonly opKind: Uint8Array;
  private readonly opValue: Int32Array; // put/cas: value written
  private readonly opExpect: Int32Array; // cas: value expected
  private readonly opResult: Int32Array; // get: value id read; cas: 1 ok, 0 failed; else RESULT_UNKNOWN
  private readonly opReadOnly: Uint8Array; // a get or a failed cas: taken greedily
  private readonly opSource: Int32Array; // index into the key's HistoryOp[]
  private readonly zobrist: Uint32Array; // random word per op; XOR of the taken ops hashes the set
  private readonly opOrder: number[] = [];

  // Event list: nodes 0..2n-1 are events in time order, then the head and tail sentinels.
  private readonly nodeOp: Int32Array;
  private readonly nodeMatch: Int32Array; // call node -> its return node
  private readonly nodeIsCall: Uint8Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly eventOrder: number[] = [];
  private readonly eventTime: Float64Array;

  // Search state. The stack holds one entry per op taken, in the order taken.
  private readonly taken: Uint32Array; // bitset of ops taken, plus one zero word as a scan sentinel
  private readonly stackNode: Int32Array; // call node of the op
  private readonly stackState: Int32Array; // value before it
  private readonly stackTakenMax: Int32Array; // highest op index taken before it
  private readonly stackForced: Uint8Array; // 1 for a greedy read: no alternative to try
  private readonly cache = new ConfigCache();
  private readonly values = new Map<string, number>();
  private readonly writeCompleteMax: Float64Array; // scratch for findObviousViolation
  private readonly completeMinFrom: Float64Array; // scratch for findObviousViolation
  private readonly completeMinOp: Int32Array; // scratch for findObviousViolation

  // A read that findObviousViolation proved impossible, and the write that overwrote its value
  // (-1 when nothing writes it).
  private opImpossible = -1;
  private opOverwriter = -1;

  // Longest linearizable prefix seen by the last check (for `detail`).
  private readonly prefixBest: Int32Array;
  prefixLengthBest = 0;
  private prefixStateBest = VALUE_ABSENT;
  private valueNames: (string | null)[] = [null];

  constructor(opsMax: number) {
    const n = Math.max(opsMax, 1);
    this.opKind = new Uint8Array(n);
    this.opValue = new Int32Array(n);
    this.opExpect = new Int32Array(n);
    this.opResult = new Int32Array(n);
    this.opReadOnly = new Uint8Array(n);
    this.opSource = new Int32Array(n);
    this.zobrist = new Uint32Array(n);
    let seed = 0x2545f491;
    for (let i = 0; i < n; i++) {
      seed = (seed + 0x9e3779b9) | 0;
      this.zobrist[i] = mix32(seed);
    }
    this.nodeOp = new Int32Array(2 * n + 2);
    this.nodeMatch = new Int32Array(2 * n + 2);
    this.nodeIsCall = new Uint8Array(2 * n + 2);
    this.next = new Int32Array(2 * n + 2);
    this.prev = new Int32Array(2 * n + 2);
    this.eventTime = new Float64Array(2 * n);
    this.taken = new Uint32Array(((n + 31) >>> 5) + 1);
    this.stackNode = new Int32Array(n);
    this.stackState = new Int32Array(n);
    this.stackTakenMax = new Int32Array(n);
    this.stackForced = new Uint8Array(n);
    this.prefixBest = new Int32Array(n);
    // Each op names at most two values (a cas's expect and value), plus absent.
    this.writeCompleteMax = new Float64Array(2 * n + 1);
    this.completeMinFrom = new Float64Array(n + 1);
    this.completeMinOp = new Int32Array(n + 1);
  }

  check(ops: HistoryOp[], stepsMax: number): CheckOutcome {
    const n = this.load(ops);
    this.prefixLengthBest = 0;
    this.prefixStateBest = VALUE_ABSENT;
    this.opImpossible = -1;
    this.opOverwriter = -1;
    if (n === 0) return 'ok';
    if (this.findObviousViolation(n)) return 'violation';

    const head = 2 * n;
    const tail = 2 * n + 1;
    const { next, prev, nodeOp, nodeMatch, nodeIsCall, taken, zobrist, opReadOnly, cache } = this;
    const { stackNode, stackState, stackTakenMax, stackForced } = this;
    taken.fill(0, 0, ((n + 31) >>> 5) + 1);
    cache.reset();

    let state = VALUE_ABSENT;
    let hashTaken = 0;
    let takenMax = -1; // highest op index taken
    let depth = 0;
    let steps = 0;
    let node = NODE_FRESH;
    for (;;) {
      if (++steps > stepsMax) return 'undecided';

      if (node === NODE_FRESH) {
        // Take every read that may go next and matches; see the class comment for why that
        // is safe. Lifting one can expose more calls, so keep walking to the first open return.
        let cand = next[head];
        let dead = false;
        while (nodeIsCall[cand] === 1) {
          if (++steps > stepsMax) return 'undecided';
          const i = nodeOp[cand];
          if (opReadOnly[i] === 1 && this.step(state, i) !== STEP_REFUSED) {
            taken[i >>> 5] |= 1 << (i & 31);
            hashTaken ^= zobrist[i];
            const takenMaxNext = i > takenMax ? i : takenMax;
            if (!cache.insert(taken, hashTaken, state, this.lowestOpen(cand, i, head), takenMaxNext)) {
              // Explored before and failed; by the same argument, so does this configuration.
              taken[i >>> 5] &= ~(1 << (i & 31));
              hashTaken ^= zobrist[i];
              dead = true;
              break;
            }
            stackNode[depth] = cand;
            stackState[depth] = state;
            stackTakenMax[depth] = takenMax;
            stackForced[depth] = 1;
            depth++;
            takenMax = takenMaxNext;
            const before = prev[cand];
            this.lift(cand);
            cand = next[before];
          } else {
            cand = next[cand];
          }
        }
        if (dead) {
          node = NODE_DEAD;
        } else {
          if (next[head] === tail) break; // every op taken: linearizable
          node = next[head];
        }
        continue;
      }

      if (node !== NODE_DEAD && nodeIsCall[node] === 1) {
        // A candidate: branch on taking it next, unless its result forbids it or the
        // configuration it leads to was already explored.
        const i = nodeOp[node];
        const stateNext = opReadOnly[i] === 1 ? STEP_REFUSED : this.step(state, i);
        if (stateNext !== STEP_REFUSED) {
          taken[i >>> 5] |= 1 << (i & 31);
          hashTaken ^= zobrist[i];
          const takenMaxNext = i > takenMax ? i : takenMax;
          if (cache.insert(taken, hashTaken, stateNext, this.lowestOpen(node, i, head), takenMaxNext)) {
            stackNode[depth] = node;
            stackState[depth] = state;
            stackTakenMax[depth] = takenMax;
            stackForced[depth] = 0;
            depth++;
            state = stateNext;
            takenMax = takenMaxNext;
            this.lift(node);
            node = NODE_FRESH;
            continue;
          }
          taken[i >>> 5] &= ~(1 << (i & 31));
          hashTaken ^= zobrist[i];
        }
        node = next[node];
        continue;
      }

      // The return of an op not yet taken (or a dead configuration): every op that could go
      // before it has been tried. Undo back to the last real choice and try its next candidate.
      if (depth > this.prefixLengthBest) this.recordPrefix(depth, state);
      let call: number;
      do {
        if (depth === 0) return 'violation';
        depth--;
        call = stackNode[depth];
        state = stackState[depth];
        takenMax = stackTakenMax[depth];
        const i = nodeOp[call];
        taken[i >>> 5] &= ~(1 << (i & 31));
        hashTaken ^= zobrist[i];
        this.unlift(call);
      } while (stackForced[depth] === 1);
      node = next[call];
    }
    this.prefixLengthBest = n;
    return 'ok';
  }

  /** Removes an op's call and return from the event list; their own links are kept for unlift. */
  private lift(call: number): void {
    const { next, prev } = this;
    const ret = this.nodeMatch[call];
    next[prev[call]] = next[call];
    prev[next[call]] = prev[call];
    next[prev[ret]] = next[ret];
    prev[next[ret]] = prev[ret];
  }

  /** Undoes lift(call); valid only in reverse order of the lifts (the stack guarantees it). */
  private unlift(call: number): void {
    const { next, prev } = this;
    const ret = this.nodeMatch[call];
    next[prev[ret]] = ret;
    prev[next[ret]] = ret;
    next[prev[call]] = call;
    prev[next[call]] = call;
  }

  /**
   * Lowest op index not taken, once op i (at call node `call`, still in the list, its bit
   * already set) is taken. The list's first node is always a call (each op's call precedes its
   * return), and calls are in index order, so that is the answer unless it is op i itself.
   */
  private lowestOpen(call: number, i: number, head: number): number {
    const first = this.next[head];
    if (first !== call) return this.nodeOp[first];
    const taken = this.taken;
    let w = (i + 1) >>> 5;
    let free = ~taken[w] & (-1 << ((i + 1) & 31));
    // The sentinel word past the last op is zero, so this stops.
    while (free === 0) free = ~taken[++w];
    return (w << 5) + 31 - Math.clz32(free & -free);
  }

  /**
   * Looks for a read (a get, or a successful cas) that no order can explain because of what it
   * read, without searching: either no op on the key writes the value it read, or some write Y
   * that surely took effect began after every write of that value had completed, and completed
   * before the read began, so the value was overwritten before the read (a stale read; also a
   * lost update). Proving these by search can take time exponential in the writes around the
   * read, and they are the violations a replicated store most often shows.
   */
  private findObviousViolation(n: number): boolean {
    const { opKind, opValue, opExpect, opResult, eventTime } = this;
    // Per value id: the latest completion among the ops that may write it; NaN if none can.
    const writeCompleteMax = this.writeCompleteMax;
    writeCompleteMax.fill(NaN, 0, this.valueNames.length);
    writeCompleteMax[VALUE_ABSENT] = -Infinity; // the initial absence, before everything
    for (let i = 0; i < n; i++) {
      const kind = opKind[i];
      if (kind === KIND_GET || (kind === KIND_CAS && opResult[i] === 0)) continue;
      const value = kind === KIND_DELETE ? VALUE_ABSENT : opValue[i];
      const complete = eventTime[2 * i + 1]; // +Infinity when indeterminate
      if (!(writeCompleteMax[value] >= complete)) writeCompleteMax[value] = complete;
    }
    // Over the writes that surely took effect (completed puts and deletes, successful cas ops),
    // ops being in invoke order: the earliest completion among ops i.. and which op it is.
    const completeMinFrom = this.completeMinFrom;
    const completeMinOp = this.completeMinOp;
    completeMinFrom[n] = Infinity;
    completeMinOp[n] = -1;
    for (let i = n - 1; i >= 0; i--) {
      const kind = opKind[i];
      const complete = eventTime[2 * i + 1];
      const sure = kind !== KIND_GET && complete !== Infinity && (kind !== KIND_CAS || opResult[i] === 1);
      if (sure && complete < completeMinFrom[i + 1]) {
        completeMinFrom[i] = complete;
        completeMinOp[i] = i;
      } else {
        completeMinFrom[i] = completeMinFrom[i + 1];
        completeMinOp[i] = completeMinOp[i + 1];
      }
    }

    for (let i = 0; i < n; i++) {
      const kind = opKind[i];
      let read: number;
      if (kind === KIND_GET && opResult[i] !== RESULT_UNKNOWN) read = opResult[i];
      else if (kind === KIND_CAS && opResult[i] === 1) read = opExpect[i];
      else continue;
      const writtenBy = writeCompleteMax[read];
      if (Number.isNaN(writtenBy)) {
        this.opImpossible = i;
        return true;
      }
      // First op invoked strictly after the last write of the value completed (ties are
      // concurrent), then whether a sure write from there on completed strictly before i began.
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (eventTime[2 * mid] > writtenBy) hi = mid;
        else lo = mid + 1;
      }
      if (completeMinFrom[lo] < eventTime[2 * i]) {
        this.opImpossible = i;
        this.opOverwriter = completeMinOp[lo];
        return true;
      }
    }
    return false;
  }

  /** Value after op i takes effect in `state`, or STEP_REFUSED if its recorded result forbids it. */
  private step(state: number, i: number): number {
    switch (this.opKind[i]) {
      case KIND_PUT:
        return this.opValue[i];
      case KIND_DELETE:
        return VALUE_ABSENT;
      case KIND_GET: {
        const read = this.opResult[i];
        return read === RESULT_UNKNOWN || read === state ? state : STEP_REFUSED;
      }
      default: {
        // KIND_CAS. An indeterminate cas writes iff the value matches: "it failed" is
        // indistinguishable from "it never happened", and the latter is taking it last.
        const matches = state === this.opExpect[i];
        const ok = this.opResult[i];
        if (ok === RESULT_UNKNOWN) return matches ? this.opValue[i] : state;
        if (ok === 1) return matches ? this.opValue[i] : STEP_REFUSED;
        return matches ? STEP_REFUSED : state;
      }
    }
  }

  private recordPrefix(depth: number, state: number): void {
    for (let d = 0; d < depth; d++) this.prefixBest[d] = this.nodeOp[this.stackNode[d]];
    this.prefixLengthBest = depth;
    this.prefixStateBest = state;
  }

  /**
   * Fills the per-op arrays and the event list for one key; returns the number of ops searched.
   *
   * Some indeterminate ops are left out, as if they never happened, because each one left open
   * doubles the configurations a failing search must exhaust:
   * - gets: they change nothing and accept any result.
   * - writes of a value nothing observes (see unobservedWrites).
   */
  private load(ops: HistoryOp[]): number {
    this.values.clear();
    this.valueNames = [null];
    const order = this.opOrder;
    order.length = 0;
    const droppable = unobservedWrites(ops);
    for (let s = 0; s < ops.length; s++) {
      const h = ops[s];
      if (h.complete === null && (h.op.kind === 'get' || droppable.has(h))) continue;
      order.push(s);
    }
    order.sort((a, b) => ops[a].invoke - ops[b].invoke || a - b);
    const n = order.length;

    for (let i = 0; i < n; i++) {
      const h = ops[order[i]];
      const indeterminate = h.complete === null;
      this.opSource[i] = order[i];
      this.opResult[i] = RESULT_UNKNOWN;
      this.opReadOnly[i] = 0;
      const op = h.op;
      const r = h.result;
      switch (op.kind) {
        case 'put':
          this.opKind[i] = KIND_PUT;
          this.opValue[i] = this.valueId(op.value);
          break;
        case 'delete':
          this.opKind[i] = KIND_DELETE;
          break;
        case 'get':
          this.opKind[i] = KIND_GET;
          if (r !== null && r.kind === 'get') this.opResult[i] = this.valueId(r.value);
          this.opReadOnly[i] = 1;
          break;
        case 'cas':
          this.opKind[i] = KIND_CAS;
          this.opExpect[i] = this.valueId(op.expect);
          this.opValue[i] = this.valueId(op.value);
          if (r !== null && r.kind === 'cas') {
            this.opResult[i] = r.ok ? 1 : 0;
            this.opReadOnly[i] = r.ok ? 0 : 1;
          }
          break;
      }
      // Event 2i is op i's call, 2i+1 its return. An indeterminate op's return is at +infinity:
      // it stays open to the end, so it may take effect anywhere after its call, or last,
      // which is the same as never.
      this.eventTime[2 * i] = h.invoke;
      this.eventTime[2 * i + 1] = indeterminate ? Infinity : (h.complete as number);
    }

    // Ties: at equal times calls sort before returns. An op invoked at t is then concurrent
    // with an op that completed at t, so neither has to precede the other. That is the
    // conservative reading: with a coarse clock we cannot tell which came first, and we never
    // want to report a violation the real-time order does not prove. Calls at equal times keep
    // index order, so calls in the list are in op index order.
    const events = this.eventOrder;
    events.length = 2 * n;
    for (let e = 0; e < 2 * n; e++) events[e] = e;
    const time = this.eventTime;
    events.sort((a, b) => time[a] - time[b] || (a & 1) - (b & 1) || a - b);

    const head = 2 * n;
    const tail = 2 * n + 1;
    const callNode = this.stackNode; // scratch: op -> its call node, before the search uses it
    let last = head;
    for (let p = 0; p < 2 * n; p++) {
      const e = events[p];
      const i = e >>> 1;
      this.nodeOp[p] = i;
      if ((e & 1) === 0) {
        this.nodeIsCall[p] = 1;
        callNode[i] = p;
      } else {
        this.nodeIsCall[p] = 0;
        this.nodeMatch[callNode[i]] = p;
      }
      this.next[last] = p;
      this.prev[p] = last;
      last = p;
    }
    this.next[last] = tail;
    this.prev[tail] = last;
    this.nodeIsCall[tail] = 0; // ends the greedy walk if every op was lifted
    return n;
  }

  private valueId(v: string | null): number {
    if (v === null) return VALUE_ABSENT;
    let id = this.values.get(v);
    if (id === undefined) {
      id = this.valueNames.length;
      this.values.set(v, id);
      this.valueNames.push(v);
    }
    return id;
  }

  /** Call right after check() returned 'violation' for these ops. */
  describeViolation(key: string, ops: HistoryOp[]): string {
    const lines: string[] = [];
    lines.push(`key ${JSON.stringify(key)} is not linearizable (${ops.length} ops):`);
    const sorted = ops.slice().sort((a, b) => a.invoke - b.invoke || a.id - b.id);
    for (let k = 0; k < sorted.length && k < DETAIL_OPS_MAX; k++) lines.push(`  ${describeOp(sorted[k])}`);
    if (sorted.length > DETAIL_OPS_MAX) lines.push(`  ... ${sorted.length - DETAIL_OPS_MAX} more`);
    if (this.opImpossible >= 0) {
      const read = describeOp(ops[this.opSource[this.opImpossible]]);
      if (this.opOverwriter < 0) {
        lines.push(`${read} needs a value that no op on this key writes`);
      } else {
        const overwriter = describeOp(ops[this.opSource[this.opOverwriter]]);
        lines.push(
          `${read} needs a value that ${overwriter} overwrote: every write of it completed before that ` +
            'began, and that completed before this began',
        );
      }
      return lines.join('\n');
    }
    const ids: string[] = [];
    for (let d = 0; d < this.prefixLengthBest && d < DETAIL_PREFIX_OPS_MAX; d++) {
      ids.push(`#${ops[this.opSource[this.prefixBest[d]]].id}`);
    }
    if (this.prefixLengthBest > DETAIL_PREFIX_OPS_MAX) ids.push(`... ${this.prefixLengthBest - DETAIL_PREFIX_OPS_MAX} more`);
    lines.push(
      `longest linearizable prefix (${this.prefixLengthBest} ops): ${ids.length === 0 ? '(none)' : ids.join(' ')}` +
        `; value after it: ${JSON.stringify(this.valueNames[this.prefixStateBest])}`,
    );
    return lines.join('\n');
  }
}

/**
 * Indeterminate writes that can be assumed never to have happened without losing any
 * linearization: those writing a value v (absent, for a delete) that no op observes, i.e. no
 * completed get returned v and no cas expects v, on a key with no completed failed cas.
 *
 * Why: take a valid order containing such a write X and remove X. Until the next write, the
 * value is now the one before X instead of v. Nothing in that stretch needed v: a get would
 * have returned v, a successful cas would have expected v, and there are no failed cases. An
 * indeterminate cas there was a no-op on v (it does not expect v); if it now matches, move it
 * to the end, which is "never happened" again. The next write is then a put or a delete (a cas
 * would have had to expect v), so from it on everything is unchanged. A failed cas is excluded
 * because it observes "not e", which v may satisfy where the earlier value does not.
 */
function unobservedWrites(ops: HistoryOp[]): Set<HistoryOp> {
  const dropped = new Set<HistoryOp>();
  let indeterminateWrites = 0;
  for (const h of ops) {
    if (h.complete === null && h.op.kind !== 'get') indeterminateWrites++;
    if (h.result !== null && h.result.kind === 'cas' && !h.result.ok) return dropped;
  }
  if (indeterminateWrites === 0) return dropped;
  const observed = new Set<string | null>();
  for (const h of ops) {
    if (h.op.kind === 'cas') observed.add(h.op.expect);
    if (h.result !== null && h.result.kind === 'get') observed.add(h.result.value);
  }
  for (const h of ops) {
    if (h.complete !== null) continue;
    const op = h.op;
    const written = op.kind === 'put' || op.kind === 'cas' ? op.value : op.kind === 'delete' ? null : undefined;
    if (written !== undefined && !observed.has(written)) dropped.add(h);
  }
  return dropped;
}

// A slot: generation, hash, offset of the entry in the pool, padding. Kept side by side so a
// probe touches one cache line; the table outgrows the CPU caches on big keys.
const SLOT_WORDS = 4;

/**
 * Set of configurations (ops taken, value) already explored for the current key: an open-
 * addressing hash table over a pool of entries. An entry is [p, value, w, w bitset words] where
 * p is the lowest op not taken and the words cover bits from p's word to the highest op taken
 * (w = 0 when every op taken is below p): the ops below p are all taken, so they need no bits,
 * and entries stay small however long the key's history. Slots carry a generation so that
 * moving to the next key is O(1) rather than a clear of a table sized for the largest key.
 */
class ConfigCache {
  private count = 0;
  private poolUsed = 0;
  private pool = new Uint32Array(4096);
  private table = new Uint32Array(512 * SLOT_WORDS);
  private gen = 1;

  reset(): void {
    this.count = 0;
    this.poolUsed = 0;
    if (this.gen === 0xffffffff) {
      this.table.fill(0);
      this.gen = 0;
    }
    this.gen++;
  }

  /**
   * Adds the configuration (set `taken` with Zobrist hash `hashTaken`, lowest op not taken
   * `opOpenLowest`, highest op taken `takenMax`; value `state`); false if it was already there.
   */
  insert(taken: Uint32Array, hashTaken: number, state: number, opOpenLowest: number, takenMax: number): boolean {
    const hash = mix32(hashTaken ^ Math.imul(state + 1, 0x9e3779b1));
    const wordFirst = opOpenLowest >>> 5;
    const words = takenMax < opOpenLowest ? 0 : (takenMax >>> 5) - wordFirst + 1;
    const { pool, table, gen } = this;
    const mask = table.length / SLOT_WORDS - 1;
    let s = hash & mask;
    while (table[s * SLOT_WORDS] === gen) {
      if (table[s * SLOT_WORDS + 1] === hash) {
        const base = table[s * SLOT_WORDS + 2];
        if (pool[base] === opOpenLowest && pool[base + 1] === state && pool[base + 2] === words) {
          let same = true;
          for (let w = 0; w < words; w++) {
            if (pool[base + 3 + w] !== taken[wordFirst + w]) {
              same = false;
              break;
            }
          }
          if (same) return false;
        }
      }
      s = (s + 1) & mask;
    }

    const base = this.poolUsed;
    this.poolUsed += 3 + words;
    if (this.poolUsed > pool.length) this.pool = grow(pool, this.poolUsed);
    const p = this.pool;
    p[base] = opOpenLowest;
    p[base + 1] = state;
    p[base + 2] = words;
    for (let w = 0; w < words; w++) p[base + 3 + w] = taken[wordFirst + w];
    table[s * SLOT_WORDS] = gen;
    table[s * SLOT_WORDS + 1] = hash;
    table[s * SLOT_WORDS + 2] = base;
    // Keep the load at most one half so probes stay short.
    if (++this.count * 2 > mask + 1) this.rehash();
    return true;
  }

  private rehash(): void {
    const old = this.table;
    const table = new Uint32Array(old.length * 2);
    const mask = table.length / SLOT_WORDS - 1;
    const gen = this.gen;
    for (let from = 0; from < old.length; from += SLOT_WORDS) {
      if (old[from] !== gen) continue;
      let s = old[from + 1] & mask;
      while (table[s * SLOT_WORDS] === gen) s = (s + 1) & mask;
      table[s * SLOT_WORDS] = gen;
      table[s * SLOT_WORDS + 1] = old[from + 1];
      table[s * SLOT_WORDS + 2] = old[from + 2];
    }
    this.table = table;
  }
}

function grow(a: Uint32Array, lengthMin: number): Uint32Array<ArrayBuffer> {
  let length = a.length * 2;
  while (length < lengthMin) length *= 2;
  const b = new Uint32Array(length);
  b.set(a);
  return b;
}

/** Murmur3's finaliser: spreads every input bit over the 32-bit output. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
