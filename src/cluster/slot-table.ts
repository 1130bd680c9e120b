// The node's slot table (issue 15): which group owns each slot in the node's copy of the key
// map, in shared memory, so that a shard worker can refuse a command for a key its group does
// not own (WRONG_GROUP) with one array load per key, without a round trip to the main thread.
// The main thread writes it whenever its copy of the map changes (src/node/node-map.ts); the
// shards only read it.
//
// Layout, u32 words: [0] the map version's low 32 bits, [1] its high bits, [2] how many groups
// the map holds, [3] zero, then SLOT_COUNT words, the owner of each slot (0: unassigned), then the
// map's group ids, ascending (at most groupsMax). Version 0 means no map yet: nothing is refused.
// A group the map does not hold (one made by hand with admin addGroup) is not checked either:
// which keys it serves is its caller's business. The writer puts the owners and groups first and
// the version last, so a reader that sees a version sees owners at least that new. A reader racing a change may check one request against
// a mix of the old and the new owners of the slots that moved; a migration (which moves slots)
// must not rest on this table alone.
import { groupsMax } from './key-map.js';
import { SLOT_COUNT } from './slots.js';

const OWNERS_AT = 4;
const GROUPS_AT = OWNERS_AT + SLOT_COUNT;
export const SLOT_TABLE_BYTES = (GROUPS_AT + groupsMax) * 4;

export class SlotTable {
  readonly words: Uint32Array;

  constructor(readonly sab: SharedArrayBuffer) {
    if (sab.byteLength !== SLOT_TABLE_BYTES) throw new Error(`a slot table takes ${SLOT_TABLE_BYTES} bytes, not ${sab.byteLength}`);
    this.words = new Uint32Array(sab);
  }

  static allocate(): SlotTable {
    return new SlotTable(new SharedArrayBuffer(SLOT_TABLE_BYTES));
  }

  /** The version of the map the table holds (0: none yet). */
  get version(): number {
    const w = this.words;
    return Atomics.load(w, 1) * 0x1_0000_0000 + Atomics.load(w, 0);
  }

  /** The owner of `slot` (0: unassigned). */
  ownerOf(slot: number): number {
    return this.words[OWNERS_AT + slot]!;
  }

  /** Whether the map holds `group` (binary search over its ids: off the common path). */
  holds(group: number): boolean {
    const w = this.words;
    let lo = GROUPS_AT;
    let hi = GROUPS_AT + w[2]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const g = w[mid]!;
      if (g === group) return true;
      if (g < group) lo = mid + 1;
      else hi = mid;
    }
    return false;
  }

  /** Writes a map's owners and groups (ascending), then its version (main thread only). */
  write(version: number, ownerOf: (slot: number) => number, groups: readonly number[]): void {
    const w = this.words;
    if (groups.length > groupsMax) throw new Error(`${groups.length} groups, more than ${groupsMax}`);
    for (let s = 0; s < SLOT_COUNT; s++) w[OWNERS_AT + s] = ownerOf(s);
    for (let i = 0; i < groups.length; i++) w[GROUPS_AT + i] = groups[i]!;
    Atomics.store(w, 2, groups.length);
    Atomics.store(w, 1, Math.floor(version / 0x1_0000_0000));
    Atomics.store(w, 0, version >>> 0);
  }
}
