import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory, describeOp, type HistoryOp, type KvOp, type KvResult } from '../sim/linearizability.js';

// Builds histories op by op; ids count up from 1. A null `complete` makes the op indeterminate.
class Recorder {
  readonly ops: HistoryOp[] = [];

  put(client: number, key: string, value: string, invoke: number, complete: number | null): this {
    return this.add(client, { kind: 'put', key, value }, { kind: 'put' }, invoke, complete);
  }

  get(client: number, key: string, value: string | null, invoke: number, complete: number | null): this {
    return this.add(client, { kind: 'get', key }, { kind: 'get', value }, invoke, complete);
  }

  del(client: number, key: string, invoke: number, complete: number | null): this {
    return this.add(client, { kind: 'delete', key }, { kind: 'delete' }, invoke, complete);
  }

  cas(
    client: number,
    key: string,
    expect: string | null,
    value: string,
    ok: boolean,
    invoke: number,
    complete: number | null,
  ): this {
    return this.add(client, { kind: 'cas', key, expect, value }, { kind: 'cas', ok }, invoke, complete);
  }

  private add(client: number, op: KvOp, result: KvResult, invoke: number, complete: number | null): this {
    this.ops.push({
      id: this.ops.length + 1,
      client,
      op,
      invoke,
      complete,
      result: complete === null ? null : result,
    });
    return this;
  }
}

function outcomeOf(r: Recorder, stepsMaxPerKey?: number): string {
  return checkHistory(r.ops, stepsMaxPerKey === undefined ? undefined : { stepsMaxPerKey }).outcome;
}

test('a sequential put then a get returning it is linearizable', () => {
  const r = new Recorder().put(1, 'k', 'a', 0, 1).get(1, 'k', 'a', 2, 3);
  const report = checkHistory(r.ops);
  assert.deepEqual(report, { outcome: 'ok', keys: 1, ops: 2 });
});

test('a get returning a value never written is a violation', () => {
  const r = new Recorder().put(1, 'k', 'a', 0, 1).get(2, 'k', 'zzz', 0, 3);
  const report = checkHistory(r.ops);
  assert.equal(report.outcome, 'violation');
  assert.equal(report.failedKey, 'k');
  assert.match(report.detail ?? '', /#2 c2 \[0,3\] get k -> "zzz"/);
  // Also when many writes overlap the read, where proving it by search alone would not finish.
  const crowded = new Recorder();
  for (let i = 0; i < 40; i++) crowded.put(i, 'k', `v${i}`, 0, 10);
  crowded.get(41, 'k', 'zzz', 11, 12);
  assert.equal(outcomeOf(crowded), 'violation');
});

test('a get of an absent key returns null; returning the value of a later put is a violation', () => {
  assert.equal(outcomeOf(new Recorder().get(1, 'k', null, 0, 1).put(2, 'k', 'a', 2, 3)), 'ok');
  assert.equal(outcomeOf(new Recorder().get(1, 'k', 'a', 0, 1).put(2, 'k', 'a', 2, 3)), 'violation');
});

test('a get returning a stale value after a completed overwrite is a violation', () => {
  const r = new Recorder().put(1, 'k', 'a', 0, 1).put(1, 'k', 'b', 2, 3).get(2, 'k', 'a', 4, 5);
  const report = checkHistory(r.ops);
  assert.equal(report.outcome, 'violation');
  assert.equal(report.failedKey, 'k');
  // The detail lists the key's ops and names the write that overwrote the value read.
  assert.match(report.detail ?? '', /#1 c1 \[0,1\] put k="a" -> ok\n  #2 c1 \[2,3\] put k="b" -> ok\n  #3 c2 \[4,5\] get k -> "a"/);
  assert.match(report.detail ?? '', /#3 c2 \[4,5\] get k -> "a" needs a value that #2 c1 \[2,3\] put k="b" -> ok overwrote/);
  // The same read overlapping the overwrite may still see the old value.
  const overlapping = new Recorder().put(1, 'k', 'a', 0, 1).put(1, 'k', 'b', 2, 5).get(2, 'k', 'a', 4, 6);
  assert.equal(outcomeOf(overlapping), 'ok');
});

test('an op invoked at the instant another completes is concurrent with it', () => {
  // The get is invoked at 5, when the put completes: it may be ordered before the put.
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 5).get(2, 'k', null, 5, 6)), 'ok');
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 5).get(2, 'k', null, 6, 7)), 'violation');
  // Zero-length intervals are allowed and still ordered by time.
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 3, 3).get(2, 'k', 'a', 3, 3)), 'ok');
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 3, 3).get(2, 'k', null, 4, 4)), 'violation');
  // An overwrite that starts as the first write completes, or completes as the read starts,
  // may be ordered either way; a clock tick later it may not.
  const overwrite = (bInvoke: number, bComplete: number, getInvoke: number): string =>
    outcomeOf(new Recorder().put(1, 'k', 'a', 0, 5).put(2, 'k', 'b', bInvoke, bComplete).get(3, 'k', 'a', getInvoke, 20));
  assert.equal(overwrite(5, 6, 7), 'ok');
  assert.equal(overwrite(6, 7, 7), 'ok');
  assert.equal(overwrite(6, 7, 8), 'violation');
});

test('reads after two concurrent puts may observe them in either order', () => {
  for (const last of ['a', 'b']) {
    const first = last === 'a' ? 'b' : 'a';
    const r = new Recorder()
      .put(1, 'k', 'a', 0, 10)
      .put(2, 'k', 'b', 1, 9)
      .get(3, 'k', first, 2, 3) // during both puts: sees one of them
      .get(3, 'k', last, 11, 12)
      .get(4, 'k', last, 13, 14);
    assert.equal(outcomeOf(r), 'ok', `last write ${last}`);
  }
});

test('two readers observing two completed puts in opposite orders is a violation', () => {
  const r = new Recorder()
    .put(1, 'k', 'a', 0, 10)
    .put(2, 'k', 'b', 0, 10)
    .get(3, 'k', 'a', 11, 13)
    .get(3, 'k', 'b', 14, 16)
    .get(4, 'k', 'b', 11, 13)
    .get(4, 'k', 'a', 14, 16);
  const report = checkHistory(r.ops);
  assert.equal(report.outcome, 'violation');
  // No single read is stale here; the search shows how far it got: both puts, one of the first
  // two reads, and then nothing fits.
  assert.match(report.detail ?? '', /longest linearizable prefix \(3 ops\): #[12] #[12] #[35]; value after it: "[ab]"/);
  // Once both puts completed the value is fixed: even one reader seeing it change is wrong...
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 10).put(2, 'k', 'b', 0, 10).get(3, 'k', 'a', 11, 13).get(3, 'k', 'b', 14, 16)), 'violation');
  // ...while during the puts it may see the first, then the second.
  const oneReader = new Recorder()
    .put(1, 'k', 'a', 0, 10)
    .put(2, 'k', 'b', 0, 10)
    .get(3, 'k', 'a', 5, 6)
    .get(3, 'k', 'b', 7, 8);
  assert.equal(outcomeOf(oneReader), 'ok');
});

test('once a read returns the new value, a later read may not return the old one', () => {
  const base = (): Recorder => new Recorder().put(1, 'k', 'old', 0, 1).put(1, 'k', 'new', 2, 20);
  assert.equal(outcomeOf(base().get(2, 'k', 'old', 3, 5)), 'ok');
  assert.equal(outcomeOf(base().get(2, 'k', 'new', 3, 5)), 'ok');
  // Both reads overlap the put; the second starts after the first has returned.
  assert.equal(outcomeOf(base().get(2, 'k', 'new', 3, 5).get(3, 'k', 'old', 6, 8)), 'violation');
  assert.equal(outcomeOf(base().get(2, 'k', 'old', 3, 5).get(3, 'k', 'new', 6, 8)), 'ok');
  // Overlapping reads may disagree either way.
  assert.equal(outcomeOf(base().get(2, 'k', 'new', 3, 7).get(3, 'k', 'old', 6, 8)), 'ok');
});

test('a cas succeeds when its expected value is current', () => {
  const r = new Recorder()
    .cas(1, 'k', null, 'a', true, 0, 1) // absent matches null
    .cas(1, 'k', 'a', 'b', true, 2, 3)
    .get(2, 'k', 'b', 4, 5);
  assert.equal(outcomeOf(r), 'ok');
  // ...and its write is visible: reading the pre-cas value afterwards is a violation.
  const stale = new Recorder().put(1, 'k', 'a', 0, 1).cas(1, 'k', 'a', 'b', true, 2, 3).get(2, 'k', 'a', 4, 5);
  assert.equal(outcomeOf(stale), 'violation');
});

test('a successful cas whose expected value could not have been current is a violation', () => {
  // "x" was current only before "b" was written, and the cas started after that.
  const r = new Recorder().put(1, 'k', 'x', 0, 1).put(1, 'k', 'b', 2, 3).cas(2, 'k', 'x', 'c', true, 4, 5);
  assert.equal(outcomeOf(r), 'violation');
  // A successful cas on a value nobody wrote is caught too.
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'q', 'c', true, 2, 3)), 'violation');
  // Had the cas overlapped the put of "b", it could have gone first.
  const overlapping = new Recorder().put(1, 'k', 'x', 0, 1).put(1, 'k', 'b', 2, 6).cas(2, 'k', 'x', 'c', true, 4, 5);
  assert.equal(outcomeOf(overlapping), 'ok');
});

test('a failed cas whose expected value must have been current is a violation', () => {
  const r = new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'a', 'b', false, 2, 3);
  assert.equal(outcomeOf(r), 'violation');
  assert.equal(outcomeOf(new Recorder().cas(1, 'k', null, 'b', false, 0, 1)), 'violation');
  // A failed cas changes nothing.
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'z', 'b', false, 2, 3).get(1, 'k', 'a', 4, 5)), 'ok');
  assert.equal(outcomeOf(new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'z', 'b', false, 2, 3).get(1, 'k', 'b', 4, 5)), 'violation');
});

test('a get after a completed delete returns null', () => {
  const ok = new Recorder().put(1, 'k', 'a', 0, 1).del(1, 'k', 2, 3).get(2, 'k', null, 4, 5);
  assert.equal(outcomeOf(ok), 'ok');
  const bad = new Recorder().put(1, 'k', 'a', 0, 1).del(1, 'k', 2, 3).get(2, 'k', 'a', 4, 5);
  assert.equal(outcomeOf(bad), 'violation');
  // A cas expecting absence succeeds after the delete.
  assert.equal(outcomeOf(ok.cas(3, 'k', null, 'b', true, 6, 7)), 'ok');
});

test('a later read may or may not see an indeterminate put', () => {
  const base = (): Recorder => new Recorder().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null);
  assert.equal(outcomeOf(base().get(3, 'k', 'b', 10, 11)), 'ok');
  assert.equal(outcomeOf(base().get(3, 'k', 'a', 10, 11)), 'ok');
  // It cannot take effect before it was sent.
  assert.equal(outcomeOf(base().get(3, 'k', 'b', 0, 1)), 'violation');
  // Indeterminate ops still count.
  assert.deepEqual(checkHistory(base().get(3, 'k', 'b', 10, 11).ops), { outcome: 'ok', keys: 1, ops: 3 });
});

test('an indeterminate put may be observed by a cas alone', () => {
  // Only the put of "b" explains the cas succeeding...
  const seen = new Recorder().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null).cas(3, 'k', 'b', 'c', true, 10, 11);
  assert.equal(outcomeOf(seen.get(3, 'k', 'c', 12, 13)), 'ok');
  // ...and only it explains this cas failing: "a" was current unless "b" was written.
  const failed = new Recorder().put(1, 'k', 'a', 0, 1).put(2, 'k', 'b', 2, null).cas(3, 'k', 'a', 'c', false, 10, 11);
  assert.equal(outcomeOf(failed), 'ok');
  const noPut = new Recorder().put(1, 'k', 'a', 0, 1).cas(3, 'k', 'a', 'c', false, 10, 11);
  assert.equal(outcomeOf(noPut), 'violation');
});

test('an indeterminate put once seen cannot be unseen', () => {
  const r = new Recorder()
    .put(1, 'k', 'a', 0, 1)
    .put(2, 'k', 'b', 2, null)
    .get(3, 'k', 'b', 10, 11)
    .get(3, 'k', 'a', 12, 13);
  assert.equal(outcomeOf(r), 'violation');
});

test('an indeterminate cas may take effect, and then only if its expected value was current', () => {
  const base = (): Recorder => new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'a', 'b', true, 2, null);
  assert.equal(outcomeOf(base().get(3, 'k', 'b', 10, 11)), 'ok');
  assert.equal(outcomeOf(base().get(3, 'k', 'a', 10, 11)), 'ok');
  const wrongExpect = new Recorder().put(1, 'k', 'a', 0, 1).cas(2, 'k', 'zz', 'b', true, 2, null).get(3, 'k', 'b', 10, 11);
  assert.equal(outcomeOf(wrongExpect), 'violation');
  // Indeterminate gets and deletes: a get accepts anything; a delete may take effect or not.
  // The reads below accumulate in r: seen before the delete, after it, then "un-deleted".
  const r = new Recorder().put(1, 'k', 'a', 0, 1).get(2, 'k', 'never', 2, null).del(2, 'k', 3, null);
  assert.equal(outcomeOf(r.get(3, 'k', 'a', 10, 11)), 'ok');
  assert.equal(outcomeOf(r.get(3, 'k', null, 12, 13)), 'ok');
  assert.equal(outcomeOf(r.get(3, 'k', 'a', 14, 15)), 'violation');
});

test('the step bound makes a key undecided, never ok or violation', () => {
  // 80 ops all concurrent. Linearizing them needs at least one step per op.
  const r = new Recorder();
  for (let i = 0; i < 40; i++) r.get(i % 8, 'k', null, 0, 100 + (i % 5));
  for (let i = 0; i < 40; i++) r.put(i % 8, 'k', `v${i}`, 1 + (i % 3), 100 + (i % 5));
  assert.equal(outcomeOf(r), 'ok');
  const report = checkHistory(r.ops, { stepsMaxPerKey: 10 });
  assert.equal(report.outcome, 'undecided');
  assert.equal(report.failedKey, 'k');
  assert.equal(report.ops, 80);
  assert.match(report.detail ?? '', /gave up after 10 steps/);
  // A violation the search has not finished proving is not reported as one.
  const flipFlop = new Recorder()
    .put(1, 'k', 'a', 0, 10)
    .put(2, 'k', 'b', 0, 10)
    .get(3, 'k', 'a', 11, 13)
    .get(3, 'k', 'b', 14, 16);
  assert.equal(outcomeOf(flipFlop, 2), 'undecided');
  assert.equal(outcomeOf(flipFlop, 1000), 'violation');
});

test('keys are checked independently and the failing key is named', () => {
  const r = new Recorder();
  for (let k = 0; k < 50; k++) {
    const key = `key${k}`;
    r.put(k % 5, key, `a${k}`, k, k + 10).put((k + 1) % 5, key, `b${k}`, k + 2, k + 12);
    // On key17 the final read disagrees with an earlier, non-overlapping one.
    r.get(7, key, `b${k}`, k + 20, k + 21).get(8, key, k === 17 ? `a${k}` : `b${k}`, k + 22, k + 23);
  }
  const report = checkHistory(r.ops);
  assert.equal(report.outcome, 'violation');
  assert.equal(report.failedKey, 'key17');
  assert.equal(report.keys, 50);
  assert.equal(report.ops, 200);
  assert.match(report.detail ?? '', /key "key17" is not linearizable \(4 ops\)/);
  // A violation outranks an undecided key that comes before it.
  const undecidedFirst = new Recorder();
  for (let i = 0; i < 100; i++) undecidedFirst.put(i, 'early', `v${i}`, 0, 10);
  undecidedFirst.ops.push(...r.ops.map((h) => ({ ...h, id: h.id + 1000 })));
  const mixed = checkHistory(undecidedFirst.ops, { stepsMaxPerKey: 60 });
  assert.equal(mixed.outcome, 'violation');
  assert.equal(mixed.failedKey, 'key17');
  // Same history without the bad key: the undecided key is reported.
  const withoutBad = undecidedFirst.ops.filter((h) => h.op.key !== 'key17');
  const undecided = checkHistory(withoutBad, { stepsMaxPerKey: 60 });
  assert.equal(undecided.outcome, 'undecided');
  assert.equal(undecided.failedKey, 'early');
});

test('describeOp prints one compact line per op', () => {
  const r = new Recorder()
    .put(1, 'k', 'a', 0, 1)
    .get(2, 'k', null, 2, 3)
    .del(3, 'k', 4, null)
    .cas(4, 'k', null, 'b"c', false, 5, 9);
  assert.deepEqual(r.ops.map(describeOp), [
    '#1 c1 [0,1] put k="a" -> ok',
    '#2 c2 [2,3] get k -> null',
    '#3 c3 [4,?] delete k -> ?',
    '#4 c4 [5,9] cas k=null->"b\\"c" -> fail',
  ]);
});

test('a malformed history is rejected with BAD_HISTORY', () => {
  const dup = new Recorder().put(1, 'k', 'a', 0, 1).ops;
  dup.push({ ...dup[0] });
  assert.throws(() => checkHistory(dup), { code: 'BAD_HISTORY' });
  const backwards = new Recorder().put(1, 'k', 'a', 5, 4).ops;
  assert.throws(() => checkHistory(backwards), { code: 'BAD_HISTORY' });
  const mismatched = new Recorder().put(1, 'k', 'a', 0, 1).ops;
  mismatched[0].result = { kind: 'get', value: 'a' };
  assert.throws(() => checkHistory(mismatched), { code: 'BAD_HISTORY' });
  const noResult = new Recorder().put(1, 'k', 'a', 0, 1).ops;
  noResult[0].result = null;
  assert.throws(() => checkHistory(noResult), { code: 'BAD_HISTORY' });
  assert.throws(() => checkHistory([], { stepsMaxPerKey: 0 }), RangeError);
  assert.deepEqual(checkHistory([]), { outcome: 'ok', keys: 0, ops: 0 });
});

// xorshift32: small, seedable, good enough to shuffle test histories.
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 0x100000000;
  }
  int(nExclusive: number): number {
    return Math.floor(this.next() * nExclusive);
  }
}

interface GenOptions {
  clients: number;
  keys: number;
  ops: number;
  /** Longest time between invoke and the op's effect, and between the effect and complete. */
  widthMax: number;
  /** Chance that an op is lost (complete null); a lost op took effect or not, at random. */
  lostProbability: number;
}

/**
 * A linearizable history by construction: every op gets an instant at which it takes effect,
 * the ops run one at a time in that order on a real Map, and each op's interval is then widened
 * around its instant. Each client runs one op at a time, so at most `clients` ops overlap (plus
 * lost ones, which stay open forever).
 */
function generate(rng: Rng, g: GenOptions): HistoryOp[] {
  interface Planned {
    h: HistoryOp;
    at: number;
    happens: boolean;
  }
  const planned: Planned[] = [];
  const clientTime: number[] = [];
  for (let c = 0; c < g.clients; c++) clientTime.push(rng.int(5));
  for (let id = 1; id <= g.ops; id++) {
    const client = rng.int(g.clients);
    const key = `k${rng.int(g.keys)}`;
    const invoke = clientTime[client] + rng.int(3);
    const at = invoke + rng.int(g.widthMax + 1);
    const lost = rng.next() < g.lostProbability;
    const complete = lost ? null : at + rng.int(g.widthMax + 1);
    // A client whose op was lost gives up waiting and moves on.
    clientTime[client] = complete ?? at + g.widthMax;
    const dice = rng.next();
    let op: KvOp;
    if (dice < 0.35) op = { kind: 'put', key, value: `v${id}` };
    else if (dice < 0.7) op = { kind: 'get', key };
    else if (dice < 0.8) op = { kind: 'delete', key };
    else op = { kind: 'cas', key, expect: rng.next() < 0.2 ? null : `v${id - 1 - rng.int(Math.min(id, 12))}`, value: `v${id}` };
    planned.push({ h: { id, client, op, invoke, complete, result: null }, at, happens: !lost || rng.next() < 0.5 });
  }
  // Equal instants may run in either order; a stable sort keeps it deterministic.
  const byInstant = planned.slice().sort((a, b) => a.at - b.at);
  const map = new Map<string, string>();
  for (const p of byInstant) {
    if (!p.happens) continue;
    const op = p.h.op;
    let result: KvResult;
    switch (op.kind) {
      case 'put':
        map.set(op.key, op.value);
        result = { kind: 'put' };
        break;
      case 'get':
        result = { kind: 'get', value: map.get(op.key) ?? null };
        break;
      case 'delete':
        map.delete(op.key);
        result = { kind: 'delete' };
        break;
      case 'cas': {
        const ok = (map.get(op.key) ?? null) === op.expect;
        if (ok) map.set(op.key, op.value);
        result = { kind: 'cas', ok };
        break;
      }
    }
    if (p.h.complete !== null) p.h.result = result;
  }
  return planned.map((p) => p.h);
}

test('random linearizable histories check ok, and a corrupted read is a violation', () => {
  let corrupted = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rng = new Rng(seed);
    const g: GenOptions = {
      clients: 2 + rng.int(5),
      keys: 1 + rng.int(4),
      ops: 20 + rng.int(80),
      widthMax: rng.int(12),
      lostProbability: rng.next() < 0.5 ? 0 : 0.1,
    };
    const history = generate(rng, g);
    const report = checkHistory(history);
    assert.equal(report.outcome, 'ok', `seed ${seed} ${JSON.stringify(g)}: ${report.detail}`);
    assert.equal(report.ops, g.ops, `seed ${seed}`);

    const reads = history.filter((h) => h.op.kind === 'get' && h.result !== null);
    if (reads.length === 0) continue;
    const victim = reads[rng.int(reads.length)];
    victim.result = { kind: 'get', value: `never-written-${seed}` };
    const bad = checkHistory(history);
    assert.equal(bad.outcome, 'violation', `seed ${seed}: corrupted #${victim.id}`);
    assert.equal(bad.failedKey, victim.op.key, `seed ${seed}`);
    assert.match(bad.detail ?? '', new RegExp(`#${victim.id} `), `seed ${seed}`);
    corrupted++;
  }
  assert.ok(corrupted > 250, `only ${corrupted} histories had a read to corrupt`);
});

test('random histories with a stale read swapped in are judged consistently with brute force', () => {
  // Swapping a read's result for another value the key held is sometimes still linearizable,
  // so compare against an exhaustive search over orders on tiny histories.
  let violations = 0;
  let oks = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rng = new Rng(seed * 7919);
    const history = generate(rng, { clients: 3, keys: 1, ops: 7, widthMax: 6, lostProbability: 0.15 });
    const reads = history.filter((h) => h.op.kind === 'get' && h.result !== null);
    const writes = history.filter((h) => h.op.kind === 'put');
    if (reads.length === 0 || writes.length === 0) continue;
    const victim = reads[rng.int(reads.length)];
    const w = writes[rng.int(writes.length)].op as { value: string };
    victim.result = { kind: 'get', value: rng.next() < 0.3 ? null : w.value };
    const expected = bruteForce(history) ? 'ok' : 'violation';
    assert.equal(checkHistory(history).outcome, expected, `seed ${seed}: ${history.map(describeOp).join('; ')}`);
    if (expected === 'ok') oks++;
    else violations++;
  }
  assert.ok(violations > 20 && oks > 20, `violations ${violations}, oks ${oks}`);
});

/**
 * Linearizable iff some order of a subset of ops (every completed op, any of the lost ones)
 * respects real time (a before b if a completed strictly before b was invoked) and reproduces
 * every completed op's result. Exhaustive, for tiny single-key histories only.
 */
function bruteForce(history: HistoryOp[]): boolean {
  const n = history.length;
  const used = new Array<boolean>(n).fill(false);
  const go = (state: string | null, placed: number): boolean => {
    // Done when every completed op is placed; unplaced lost ops never happened.
    let pendingCompleted = false;
    for (let i = 0; i < n; i++) if (!used[i] && history[i].complete !== null) pendingCompleted = true;
    if (!pendingCompleted) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      const h = history[i];
      // Every unplaced op that completed before h was invoked would have to come first.
      let blocked = false;
      for (let j = 0; j < n; j++) {
        const c = history[j].complete;
        if (!used[j] && j !== i && c !== null && c < h.invoke) blocked = true;
      }
      if (blocked) continue;
      const next = apply(state, h);
      if (next === undefined) continue;
      used[i] = true;
      const found = go(next, placed + 1);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return go(null, 0);
}

/** The value after h, or undefined if h's recorded result is impossible from `state`. */
function apply(state: string | null, h: HistoryOp): string | null | undefined {
  const op = h.op;
  const r = h.result;
  switch (op.kind) {
    case 'put':
      return op.value;
    case 'delete':
      return null;
    case 'get':
      return r === null || (r.kind === 'get' && r.value === state) ? state : undefined;
    case 'cas': {
      const matches = state === op.expect;
      if (r === null || (r.kind === 'cas' && r.ok)) return matches ? op.value : r === null ? state : undefined;
      return matches ? undefined : state;
    }
  }
}

test('a 10k-op history over 100 keys with 8 clients checks ok quickly', () => {
  const rng = new Rng(20240611);
  const history = generate(rng, { clients: 8, keys: 100, ops: 10_000, widthMax: 20, lostProbability: 0.02 });
  const started = performance.now();
  const report = checkHistory(history);
  const msElapsed = performance.now() - started;
  assert.equal(report.outcome, 'ok', report.detail);
  assert.equal(report.keys, 100);
  assert.equal(report.ops, 10_000);
  // Generous: a regression to exponential behaviour takes far longer than this.
  assert.ok(msElapsed < 5_000, `took ${msElapsed.toFixed(0)} ms`);
});
