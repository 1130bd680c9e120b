// The WRONG_GROUP check of a shard (issue 15): a KV command is served by a group only when the
// slot of every key it holds is that group's in the node's slot table (src/cluster/slot-table.ts).
// Only for the built-in KV state machine (a user's state machine has no keys the node can read),
// only once the node has a map (version > 0), and only for groups the map holds. Costs one CRC16 over each key and one array
// load per key; allocates nothing.
import { SlotTable } from '../cluster/slot-table.js';
import { slotOfRange } from '../cluster/slots.js';
import { commandKeySpans } from '../kv/kv-command.js';
import { batchOpsMax } from '../kv/kv-types.js';

export class SlotOwners {
  private readonly table: SlotTable;
  private readonly spans = new Int32Array(2 * batchOpsMax);
  /** Set by wrongOwner when it returns true: the map's version and the slot's owner. */
  version = 0;
  owner = 0;
  slot = 0;

  constructor(sab: SharedArrayBuffer) {
    this.table = new SlotTable(sab);
  }

  /**
   * Whether `body` (a KV command for `group`) holds a key whose slot another group owns (or no
   * group does); then `version`, `owner` and `slot` say which. False before the node has a map
   * and for a body that does not parse (the state machine answers that).
   */
  wrongOwner(group: number, body: Uint8Array): boolean {
    const version = this.table.version;
    if (version === 0) return false;
    const spans = this.spans;
    const n = commandKeySpans(body, spans);
    for (let i = 0; i < n; i++) {
      const slot = slotOfRange(body, spans[2 * i]!, spans[2 * i + 1]!);
      const owner = this.table.ownerOf(slot);
      if (owner !== group && this.table.holds(group)) {
        this.version = version;
        this.owner = owner;
        this.slot = slot;
        return true;
      }
    }
    return false;
  }
}
