// For tests that write frames themselves: the group that owns a key in the map a new cluster of
// `groups` data groups makes (slots spread evenly in contiguous ranges, docs/key-map.md).
import { KeyMap } from '../../src/cluster/key-map.js';
import { slotOf } from '../../src/cluster/slots.js';

const maps = new Map<number, KeyMap>();

export function initialGroupOf(key: string, groups: number): number {
  let m = maps.get(groups);
  if (m === undefined) {
    const specs = [];
    for (let g = 1; g <= groups; g++) specs.push({ group: g, members: [1] });
    m = KeyMap.initial(specs);
    maps.set(groups, m);
  }
  return m.ownerOf(slotOf(key));
}
