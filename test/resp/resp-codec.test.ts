// RESP requests parsed from a stream in any split, inline commands as redis-cli and telnet send
// them, every bound and grammar error refused with Redis's message; replies in RESP2 and RESP3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RespParser, RespProtocolError, type RespCommand } from '../../src/resp/resp-parser.js';
import { RespWriter } from '../../src/resp/resp-writer.js';

const words = (cmds: RespCommand[]): string[][] => cmds.map((c) => c.map((b) => b.toString('latin1')));

function multibulk(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

test('multibulk commands parse whole and split at every byte, binary-safe, several in one chunk', () => {
  const value = Buffer.from([0, 13, 10, 255, 42, 36]);
  const stream = Buffer.concat([multibulk('SET', 'key', value), multibulk('GET', 'key'), Buffer.from('*0\r\n*-1\r\n'), multibulk('PING')]);
  const whole = new RespParser().feed(stream);
  assert.deepEqual(words(whole), [['SET', 'key', value.toString('latin1')], ['GET', 'key'], ['PING']]);
  for (let cut = 1; cut < stream.length; cut++) {
    const p = new RespParser();
    const got = [...p.feed(stream.subarray(0, cut)), ...p.feed(stream.subarray(cut))];
    assert.deepEqual(words(got), words(whole), `split at ${cut}`);
    assert.equal(p.bufferedBytes, 0);
  }
  // One byte at a time.
  const p = new RespParser();
  const got: RespCommand[] = [];
  for (const b of stream) got.push(...p.feed(Buffer.from([b])));
  assert.deepEqual(words(got), words(whole));
});

test('inline commands: words, quotes and escapes as redis-cli writes them; empty lines skipped; LF alone ends a line', () => {
  const p = new RespParser();
  const got = p.feed(Buffer.from('PING\r\n\r\nSET  k "a b\\x41\\n"\r\nSET k \'it\\\'s\'\nECHO\t"\\"q\\""\r\n'));
  assert.deepEqual(words(got), [['PING'], ['SET', 'k', 'a bA\n'], ['SET', 'k', "it's"], ['ECHO', '"q"']]);
  assert.deepEqual(words(p.feed(Buffer.from('GET'))), []);
  assert.deepEqual(words(p.feed(Buffer.from(' x\r\n'))), [['GET', 'x']]);
});

test('bad input is a protocol error with Redis\'s message; every bound holds', () => {
  const limits = { argsMax: 4, bulkBytesMax: 16, inlineBytesMax: 32 };
  const cases: [string | Buffer, RegExp][] = [
    ['*x\r\n', /invalid multibulk length/],
    ['*5\r\n', /invalid multibulk length \(more than 4 arguments\)/],
    ['*1\r\n+PING\r\n', /expected '\$', got '\+'/],
    ['*1\r\n$-1\r\n', /invalid bulk length/],
    ['*1\r\n$17\r\n', /invalid bulk length \(more than 16 bytes\)/],
    ['*1\r\n$1x\r\n', /invalid bulk length/],
    ['*1\r\n$3\r\nabcXY', /does not end with CRLF/],
    ['SET k "open\r\n', /unbalanced quotes/],
    ['SET k "a"b\r\n', /unbalanced quotes/],
    ['a b c d e\r\n', /too many arguments in an inline request/],
    [Buffer.alloc(40, 0x61), /too big inline request/],
    [`*${'1'.repeat(40)}`, /too big mbulk count string/],
  ];
  for (const [input, message] of cases) {
    const p = new RespParser(limits);
    assert.throws(() => p.feed(typeof input === 'string' ? Buffer.from(input, 'latin1') : input), (e: unknown) => e instanceof RespProtocolError && message.test(e.message), String(input));
  }
  // Just under the bounds: fine.
  assert.deepEqual(words(new RespParser(limits).feed(multibulk('a', 'b', 'c', 'x'.repeat(16)))), [['a', 'b', 'c', 'x'.repeat(16)]]);
  // A huge declared length is refused at its header, before any of its bytes are awaited.
  assert.throws(() => new RespParser().feed(Buffer.from('*1\r\n$99999999999\r\n')), /invalid bulk length/);
});

test('replies in RESP2 and RESP3: what Redis gives each for nulls, maps, sets, booleans, doubles, verbatim text', () => {
  const both = (f: (w: RespWriter) => void): [string, string] => {
    const w2 = new RespWriter(false, 8);
    const w3 = new RespWriter(true, 8);
    f(w2);
    f(w3);
    return [w2.take().toString('latin1'), w3.take().toString('latin1')];
  };
  assert.deepEqual(both((w) => { w.simple('OK'); w.error('ERR bad\r\nthing'); w.integer(-42); }), ['+OK\r\n-ERR bad  thing\r\n:-42\r\n', '+OK\r\n-ERR bad  thing\r\n:-42\r\n']);
  assert.deepEqual(both((w) => { w.bulk('héllo'); w.bulk(Buffer.from([0, 1])); w.bulk(null); w.nilArray(); }), [
    '$6\r\nh\xc3\xa9llo\r\n$2\r\n\x00\x01\r\n$-1\r\n*-1\r\n', '$6\r\nh\xc3\xa9llo\r\n$2\r\n\x00\x01\r\n_\r\n_\r\n']);
  assert.deepEqual(both((w) => { w.map(1); w.bulk('a'); w.integer(1); w.set(2); w.bulk('x'); w.bulk('y'); }), [
    '*2\r\n$1\r\na\r\n:1\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n', '%1\r\n$1\r\na\r\n:1\r\n~2\r\n$1\r\nx\r\n$1\r\ny\r\n']);
  assert.deepEqual(both((w) => { w.bool(true); w.double(1.5); w.double(Infinity); w.verbatim('a:b'); }), [
    ':1\r\n$3\r\n1.5\r\n$3\r\ninf\r\n$3\r\na:b\r\n', '#t\r\n,1.5\r\n,inf\r\n=7\r\ntxt:a:b\r\n']);
  // The buffer grows past its first size and is empty after take().
  const w = new RespWriter(false, 4);
  w.bulk('x'.repeat(1000));
  assert.equal(w.take().length, 1000 + 9);
  assert.equal(w.length, 0);
});
