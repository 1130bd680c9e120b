// What the node gives PeerLinks (peer-links.ts) when it makes one, and the fixed bounds and
// defaults of the links: kept apart from the link logic so that the knobs, and what each one
// bounds, are read in one place. The options are checked here, once, before anything listens.

import { LINK_FRAME_HEADER_BYTES } from '../protocol/peer-wire.js';
import type { PeerInfo } from '../shard/task.js';

export interface PeerLinksLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  debug?(o: object, m: string): void;
}

export interface PeerLinksOptions {
  self: PeerInfo;
  /** The cluster's id (config clusterId), sent and checked in every hello. */
  clusterId: number;
  /** Every member, self included (self is ignored). */
  peers: PeerInfo[];
  /** Where to listen; default self.host. */
  listenHost?: string;
  /** Largest link-frame payload sent or accepted. */
  linkFrameBytesMax: number;
  /** Redial delay: the first, doubling up to the largest, with jitter. */
  backoffMsMin: number;
  backoffMsMax: number;
  /** Bytes queued for a link and not yet taken by the kernel; beyond, send() drops the frame. */
  sendQueueBytesMax: number;
  /** Longest a connection may take from connect (or accept) to a checked hello; default 5 s. */
  timeoutMsHandshake?: number;
  /** Refusals of connections from one address are logged at most once per this; default REFUSED_LOG_MS_INTERVAL. */
  refusedLogMsInterval?: number;
  log: PeerLinksLog;
}

export const TIMEOUT_MS_HANDSHAKE_DEFAULT = 5_000;
/** How long close() lets a link write what was queued before destroying it. */
export const CLOSE_LINGER_MS = 1_000;
/** Connections accepted and not yet through their handshake; more are turned away (a flood on the raft port). */
export const PENDING_HANDSHAKES_MAX = 64;
/**
 * Held payloads (read while paused) beyond linkFrameBytesMax. A paused socket stops reading, so
 * what is held is the rest of one chunk (≤ 64 KiB from node:net) plus at most one reassembled
 * frame; more means reading did not stop, and the link is closed rather than grow without bound.
 */
export const HELD_SLACK_BYTES = 1024 * 1024;

export function checkWhole(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new RangeError(`peer links option ${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

/** Checks the options of this node itself (each peer is checked as it is added); returns the handshake timeout. */
export function checkPeerLinksOptions(opts: PeerLinksOptions): number {
  checkWhole('self.id', opts.self.id, 1, 0xffffffff);
  checkWhole('clusterId', opts.clusterId, 0, 0xffffffff);
  checkWhole('self.raftPort', opts.self.raftPort, 0, 65535);
  checkWhole('linkFrameBytesMax', opts.linkFrameBytesMax, 0, 0xffffffff);
  checkWhole('backoffMsMin', opts.backoffMsMin, 1, 0x7fffffff);
  checkWhole('backoffMsMax', opts.backoffMsMax, opts.backoffMsMin, 0x7fffffff);
  checkWhole('sendQueueBytesMax', opts.sendQueueBytesMax, LINK_FRAME_HEADER_BYTES, Number.MAX_SAFE_INTEGER);
  const timeoutMsHandshake = opts.timeoutMsHandshake ?? TIMEOUT_MS_HANDSHAKE_DEFAULT;
  checkWhole('timeoutMsHandshake', timeoutMsHandshake, 1, 0x7fffffff);
  return timeoutMsHandshake;
}
