// The node's copy of the key map (issue 15), on the main thread: the newest map it has seen, its
// image (what MapRequest answers carry), and the slot table the shards read (slot-table.ts). A
// meta replica's shard reports every new map it applies (OutKind.Map); a node outside the meta
// group learns maps from a meta member (map-keeper.ts). A map replaces the copy only when its
// version is higher: versions only grow, so reports that arrive late or twice change nothing.
import { KeyMap, KeyMapError, decodeKeyMap } from '../cluster/key-map.js';
import { SlotTable } from '../cluster/slot-table.js';
import { encodeFrame, FrameKind, mapAnswerBody, readMapRequest, type ErrorBody } from '../protocol/client-frame.js';
import { pack } from 'msgpackr';
import type { Logger } from './log.js';

export class NodeMap {
  private current = KeyMap.empty();
  private image: Uint8Array = this.current.encode();
  readonly table = SlotTable.allocate();
  /** Called with the version a client said it holds when that is above ours (we are behind). */
  onBehind: (version: number) => void = () => {};
  /** Called after each map that replaced the copy. */
  onChange: (map: KeyMap) => void = () => {};

  constructor(private readonly log: Logger) {}

  get map(): KeyMap {
    return this.current;
  }

  get version(): number {
    return this.current.version;
  }

  /** Takes a map's image if it is newer than the copy; false when it is not, or is no map (logged). */
  offer(image: Uint8Array): boolean {
    let map: KeyMap;
    try {
      map = decodeKeyMap(image);
    } catch (e) {
      if (!(e instanceof KeyMapError)) throw e;
      this.log.warn({ err: e.message }, 'a key map image that is not one was ignored');
      return false;
    }
    if (map.version <= this.current.version) return false;
    this.current = map;
    this.image = image.slice();
    this.table.write(map.version, (slot) => map.ownerOf(slot), map.groups().sort((a, b) => a - b));
    this.log.info({ version: map.version }, 'key map updated');
    this.onChange(map);
    return true;
  }

  /** The response frame to a MapRequest (kind, request id, group and body as received). */
  answer(requestId: number, group: number, body: Uint8Array): Uint8Array {
    const v = readMapRequest(body);
    if (typeof v === 'string' || group !== 0) {
      const message = typeof v === 'string' ? v : `a MapRequest names group 0, not ${group}`;
      return encodeFrame(FrameKind.Error, 0, requestId, group, pack({ code: 'BAD_REQUEST', message } satisfies ErrorBody) as Uint8Array);
    }
    const mine = this.current.version;
    if (v !== null && v > mine) this.onBehind(v);
    const same = v !== null && v >= mine;
    return encodeFrame(FrameKind.Map, 0, requestId, 0, mapAnswerBody(mine, same ? null : this.image));
  }
}
