// Slots: CRC16-XMODEM against published vectors and a bit-at-a-time reference, Redis's hash-tag
// rule, text keys hashed as their UTF-8 bytes, and slot ranges as an operator types them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  SLOT_COUNT,
  SlotsError,
  canonicalRanges,
  crc16,
  formatSlots,
  isCanonical,
  parseSlots,
  rangesOfSlots,
  slotCount,
  slotOf,
  slotsOfRanges,
  slotsTextCharsMax,
  type SlotsProblem,
} from '../../src/cluster/slots.js';
import { params } from '../fuzz/fuzz-config.js';

const bytes = (s: string) => new TextEncoder().encode(s);

/** CRC16-XMODEM one bit at a time, as the polynomial reads: the table-driven one must agree. */
function crc16Bitwise(b: Uint8Array): number {
  let crc = 0;
  for (const x of b) {
    crc ^= x << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Redis's rule, written from its description with indexOf on bytes. */
function slotReference(b: Uint8Array): number {
  const open = b.indexOf(0x7b);
  if (open !== -1) {
    const close = b.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16Bitwise(b.subarray(open + 1, close)) % SLOT_COUNT;
  }
  return crc16Bitwise(b) % SLOT_COUNT;
}

test('CRC16-XMODEM of the check string 123456789 is 0x31C3, and of nothing is 0', () => {
  assert.equal(crc16(bytes('123456789')), 0x31c3);
  assert.equal(crc16(new Uint8Array(0)), 0);
  assert.equal(crc16(bytes('x123456789y'), 1, 10), 0x31c3);
});

test('slots of keys as Redis Cluster gives them (CLUSTER KEYSLOT)', () => {
  assert.equal(slotOf('foo'), 12182);
  assert.equal(slotOf('bar'), 5061);
  assert.equal(slotOf('hello'), 866);
  assert.equal(slotOf(''), 0);
  assert.equal(slotOf(bytes('foo')), 12182);
});

test('a hash tag puts related keys in one slot', () => {
  assert.equal(slotOf('{user1000}.following'), slotOf('{user1000}.followers'));
  assert.equal(slotOf('{user1000}.following'), slotOf('user1000'));
  assert.equal(slotOf('foo{bar}{zap}'), slotOf('bar'), 'only the first tag counts');
  assert.equal(slotOf('}{a}'), slotOf('a'), 'a } before the first { does not close it');
});

test('an empty or unclosed tag hashes the whole key', () => {
  assert.equal(slotOf('foo{}{bar}'), crc16(bytes('foo{}{bar}')) % SLOT_COUNT);
  assert.notEqual(slotOf('foo{}{bar}'), slotOf('bar'));
  assert.equal(slotOf('foo{bar'), crc16(bytes('foo{bar')) % SLOT_COUNT);
  assert.equal(slotOf('{}'), crc16(bytes('{}')) % SLOT_COUNT);
  assert.equal(slotOf('{'), crc16(bytes('{')) % SLOT_COUNT);
});

test('the tag ends at the first } after the first {', () => {
  assert.equal(slotOf('foo{{bar}}zap'), crc16(bytes('{bar')) % SLOT_COUNT);
  assert.equal(slotOf(bytes('foo{{bar}}zap')), crc16(bytes('{bar')) % SLOT_COUNT);
});

const keyUnit = fc.oneof(
  fc.constantFrom('{', '}', 'a', 'é', '€', '\u{1f6a3}'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), // lone surrogates too
);

test('property: the table-driven CRC agrees with the bitwise one', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => crc16(b) === crc16Bitwise(b)), params(300));
});

test('property: a text key has the slot of its UTF-8 bytes, and both follow the hash-tag rule', () => {
  fc.assert(
    fc.property(fc.string({ unit: keyUnit, maxLength: 30 }), (s) => {
      const b = Buffer.from(s, 'utf8');
      const want = slotReference(b);
      return slotOf(s) === want && slotOf(b) === want && slotOf(new Uint8Array(b)) === want;
    }),
    params(2000),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x % 5 === 0 ? 0x7b : x % 5 === 1 ? 0x7d : x))), (b) => slotOf(b) === slotReference(b)),
    params(1000),
  );
});

test('slot lists as an operator types them', () => {
  assert.deepEqual(parseSlots('0-1023'), [{ first: 0, last: 1023 }]);
  assert.deepEqual(parseSlots('5,9,100-200'), [{ first: 5, last: 5 }, { first: 9, last: 9 }, { first: 100, last: 200 }]);
  assert.deepEqual(parseSlots(' 100 - 200 , 9,5 '), [{ first: 5, last: 5 }, { first: 9, last: 9 }, { first: 100, last: 200 }]);
  assert.deepEqual(parseSlots('0-5,6-9'), [{ first: 0, last: 9 }], 'adjacent ranges are one');
  assert.deepEqual(parseSlots('16383'), [{ first: 16383, last: 16383 }]);
  assert.deepEqual(parseSlots('0-16383'), [{ first: 0, last: 16383 }]);
  assert.deepEqual(parseSlots('7-7'), [{ first: 7, last: 7 }]);
});

test('bad slot lists are refused with BAD_SLOTS and the rule they broke', () => {
  const cases: [string, SlotsProblem][] = [
    ['', 'empty'],
    ['  ', 'empty'],
    ['a', 'syntax'],
    ['1-', 'syntax'],
    ['-1', 'syntax'],
    ['1,,2', 'syntax'],
    ['1,', 'syntax'],
    ['1-2-3', 'syntax'],
    ['+5', 'syntax'],
    ['1.5', 'syntax'],
    ['0x10', 'syntax'],
    ['16384', 'out-of-range'],
    ['0-16384', 'out-of-range'],
    ['99999999999999999999', 'out-of-range'],
    ['10-5', 'reversed'],
    ['1-10,5', 'overlap'],
    ['5,5', 'overlap'],
    ['0-100,50-150', 'overlap'],
    ['1'.repeat(slotsTextCharsMax + 1), 'too-long'],
  ];
  for (const [text, problem] of cases) {
    assert.throws(
      () => parseSlots(text),
      (e: unknown) => e instanceof SlotsError && e.code === 'BAD_SLOTS' && e.problem === problem && e.message.length > 0,
      JSON.stringify(text.slice(0, 30)),
    );
  }
});

test('formatting gives the compact form', () => {
  assert.equal(formatSlots([{ first: 0, last: 1023 }]), '0-1023');
  assert.equal(formatSlots([{ first: 100, last: 200 }, { first: 9, last: 9 }, { first: 5, last: 5 }]), '5,9,100-200');
  assert.equal(formatSlots(rangesOfSlots([3, 1, 2, 7, 9, 8])), '1-3,7-9');
  assert.equal(formatSlots([]), '');
  assert.throws(() => formatSlots([{ first: 5, last: 4 }]), (e: unknown) => e instanceof SlotsError && e.problem === 'reversed');
  assert.throws(() => canonicalRanges([{ first: -1, last: 4 }]), (e: unknown) => e instanceof SlotsError && e.problem === 'out-of-range');
});

const slotSetArb = fc.uniqueArray(fc.integer({ min: 0, max: SLOT_COUNT - 1 }), { minLength: 1, maxLength: 200 });

test('property: format then parse gives the same set, canonical', () => {
  fc.assert(
    fc.property(slotSetArb, (slots) => {
      const rs = rangesOfSlots(slots);
      assert.ok(isCanonical(rs));
      const back = parseSlots(formatSlots(rs));
      assert.deepEqual(back, rs);
      assert.equal(slotCount(back), slots.length);
      assert.deepEqual([...slotsOfRanges(back)], [...slots].sort((a, b) => a - b));
    }),
    params(500),
  );
});

test('isCanonical refuses adjacent, overlapping, unordered and out-of-range lists', () => {
  assert.ok(isCanonical([]));
  assert.ok(isCanonical([{ first: 0, last: 0 }, { first: 2, last: 16383 }]));
  assert.ok(!isCanonical([{ first: 0, last: 1 }, { first: 2, last: 3 }]));
  assert.ok(!isCanonical([{ first: 0, last: 5 }, { first: 3, last: 9 }]));
  assert.ok(!isCanonical([{ first: 9, last: 9 }, { first: 1, last: 1 }]));
  assert.ok(!isCanonical([{ first: 0, last: 16384 }]));
  assert.ok(!isCanonical([{ first: 4, last: 3 }]));
});
