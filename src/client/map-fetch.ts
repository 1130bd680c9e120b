// Asking a node for the key map (MapRequest → Map, docs/protocol.md "The key map"): used by the
// client at connect and after WRONG_GROUP, and by nodes outside the meta group to keep their copy.
import { decodeKeyMap, KeyMapError, type KeyMap } from '../cluster/key-map.js';
import { FrameKind, mapRequestBody, readMapAnswer } from '../protocol/client-frame.js';
import type { Dispatcher } from './dispatcher.js';
import { FlotillaError } from './errors.js';

export interface FetchedMap {
  /** The node's map when it is newer than the one held (null: the node holds no newer one). */
  map: KeyMap | null;
  /** The version the node holds. */
  version: number;
}

/**
 * Asks `server` (null: any server the dispatcher picks) for its map if newer than `heldVersion`
 * (null: whatever it holds). Rejects with the server's error, or BAD_RESULT for an answer that is
 * not a map.
 */
export async function fetchMap(d: Dispatcher, server: string | null, heldVersion: number | null): Promise<FetchedMap> {
  const body = await d.request(FrameKind.MapRequest, 0, 0, mapRequestBody(heldVersion), {
    read: true, resend: false, learn: false, copy: true, pinned: server,
  });
  const a = readMapAnswer(body);
  if (typeof a === 'string') throw new FlotillaError('BAD_RESULT', a);
  if ('unchanged' in a) return { map: null, version: a.unchanged };
  try {
    const map = decodeKeyMap(a.image);
    return { map: heldVersion !== null && map.version <= heldVersion ? null : map, version: map.version };
  } catch (e) {
    if (e instanceof KeyMapError) throw new FlotillaError('BAD_RESULT', `the map from ${server ?? 'a server'} is not one: ${e.message}`);
    throw e;
  }
}
