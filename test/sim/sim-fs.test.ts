// The simulated file system's crash semantics (sim-fs.ts): what an fdatasync covers, and what a
// machine crash leaves of the writes it did not cover.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Prng } from './prng.js';
import { SimFs, type SimFsProfile } from './sim-fs.js';

const profile: SimFsProfile = { syncMsMin: 1, syncMsMax: 1, stallP: 0, stallMsMax: 0, opMsMax: 0, failSyncP: 0 };

/** A SimFs whose completions run when `drain` is called. */
function fsWithQueue(seed: number): { fs: SimFs; drain: () => void } {
  const pending: (() => void)[] = [];
  const fs = new SimFs((_ms, fn) => pending.push(fn), new Prng(seed), profile);
  return { fs, drain: () => { while (pending.length > 0) pending.shift()!(); } };
}

function write(fs: SimFs, fd: number, text: string, pos: number): void {
  const b = Buffer.from(text);
  fs.writeSync(fd, b, 0, b.length, pos);
}

test('an fdatasync covers the writes made before it was called, not one made while it ran', () => {
  let secondLost = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const { fs, drain } = fsWithQueue(seed);
    fs.mkdirSync('/d');
    const fd = fs.openSync('/d/f', 'wx+');
    let synced = false;
    fs.syncDir('/', () => undefined);
    fs.syncDir('/d', () => undefined);
    drain();
    write(fs, fd, 'aaaa', 0);
    fs.fdatasync(fd, (e) => { synced = e === null; });
    write(fs, fd, 'bbbb', 4); // while the sync runs
    drain();
    assert.ok(synced);
    fs.crashMachine();
    const after = fs.readFileSync('/d/f').toString();
    // The first write survives whatever the seed chooses; the second may be lost or torn.
    assert.ok(after.startsWith('aaaa'), `seed ${seed}: ${JSON.stringify(after)}`);
    if (after !== 'aaaabbbb') secondLost++;
  }
  assert.ok(secondLost > 0, 'the write made while the sync ran was never lost: the sync covered it');
});

test('a machine crash keeps, loses or tears an unsynced write; past a tear, zeros or the old bytes', () => {
  const seen = new Set<string>();
  for (let seed = 1; seed <= 400; seed++) {
    const { fs, drain } = fsWithQueue(seed);
    fs.mkdirSync('/d');
    const fd = fs.openSync('/d/f', 'wx+');
    fs.syncDir('/', () => undefined);
    fs.syncDir('/d', () => undefined);
    write(fs, fd, 'oooooooo', 0);
    fs.fdatasync(fd, () => undefined);
    drain();
    write(fs, fd, 'nnnnnnnn', 0); // overwrites a synced file, as a recycled segment is
    fs.crashMachine();
    const after = fs.readFileSync('/d/f').toString().replace(/\0/g, 'z');
    assert.match(after, /^n*(o*|z*)$/, `seed ${seed}`);
    assert.equal(after.length, 8);
    seen.add(after === 'oooooooo' ? 'lost' : after === 'nnnnnnnn' ? 'kept' : after.includes('z') ? 'torn, zeros' : 'torn, old bytes');
  }
  assert.deepEqual([...seen].sort(), ['kept', 'lost', 'torn, old bytes', 'torn, zeros']);
});

test('a process crash loses nothing written', () => {
  const { fs } = fsWithQueue(1);
  fs.mkdirSync('/d');
  const fd = fs.openSync('/d/f', 'wx+');
  write(fs, fd, 'unsynced', 0);
  fs.crashProcess();
  assert.equal(fs.readFileSync('/d/f').toString(), 'unsynced');
});
