// The named bounds of the client listeners and the check of their options. The options come
// from the node's configuration (configuration.md); the constants here are the listeners' own.
//
// pendingBytesLow < pendingBytesHigh < pendingBytesMax: a connection's unsent output above
// pendingBytesHigh pauses its reading until it is below pendingBytesLow; above pendingBytesMax
// the connection is destroyed (client-connection.ts). connectionsMax bounds a listener's
// connections (listener-core.ts), frameBytesMax a request frame (client-framing.ts).

import { FRAME_HEADER_BYTES } from '../protocol/client-frame.js';
import type { ListenerOptions } from './client-listener.js';

/** How long a closing connection may take to write its last bytes before it is destroyed. */
export const CLOSE_LINGER_MS = 2000;

/** A connection's first output buffer of a turn is at least this big (small ones come from Node's pool). */
export const OUT_BUFFER_BYTES_MIN = 1024;
/** The size a busy connection's next output buffer starts at is remembered up to this. */
export const OUT_BUFFER_HINT_BYTES_MAX = 1024 * 1024;
/** A frame reader keeps its assembly buffer for the next frame that spans chunks up to this. */
export const ASSEMBLY_KEEP_BYTES_MAX = 65536;
/** The least a frame reader allocates for assembling a frame that spans chunks. */
export const ASSEMBLY_BYTES_MIN = 1024;

/** Throws on options that cannot work: a configuration error, reported before listening. */
export function checkListenerOptions(opts: ListenerOptions): void {
  const whole = (name: keyof ListenerOptions, min: number): void => {
    const v = opts[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new RangeError(`listener option ${name} must be an integer ≥ ${min}, got ${String(v)}`);
    }
  };
  whole('port', 0);
  whole('frameBytesMax', FRAME_HEADER_BYTES);
  whole('connectionsMax', 1);
  whole('pendingBytesLow', 1);
  whole('pendingBytesHigh', 1);
  whole('pendingBytesMax', 1);
  if (opts.frameBytesMax > 0xffffffff) throw new RangeError('listener option frameBytesMax must fit in a u32');
  if (!(opts.pendingBytesLow < opts.pendingBytesHigh && opts.pendingBytesHigh < opts.pendingBytesMax)) {
    throw new RangeError(`listener options need pendingBytesLow < pendingBytesHigh < pendingBytesMax, got ${opts.pendingBytesLow}, ${opts.pendingBytesHigh}, ${opts.pendingBytesMax}`);
  }
  if (typeof opts.nextId !== 'function') throw new TypeError('listener option nextId must be a function');
}
