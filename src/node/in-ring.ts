// Writing records to one shard's in ring, with backpressure: a record that finds the ring full
// is held, in arrival order with whatever else is held for that ring, and written when the shard
// has made room. While anything is held, new records queue behind it (callers check
// `blocked.length === 0` before writing directly), so the shard sees records in the order the
// main thread took them. The callers pause what feeds them meanwhile: a client connection
// (client-routing.ts) or a peer link (peer-routing.ts).

import type { SpscRing } from '../ring/spsc-ring.js';
import { RECORD_HEADER_BYTES, tryWriteRecord, type InKind } from '../ring/records.js';

/** One record waiting for room: its bytes on the ring, and the write that returns false while there is none. */
interface Blocked {
  bytes: number;
  attempt: () => boolean;
}

export class InRingWriter {
  /** Work waiting for room in the in ring, in arrival order, with the record bytes it needs. */
  readonly blocked: Blocked[] = [];
  private waitingRoom = false;
  /** False once the node stops: held records are no longer retried. */
  private running = true;

  constructor(readonly ring: SpscRing) {}

  /**
   * Writes one in-ring record of `kind`, `arg` and `payload`, or returns false when the ring has
   * no room now. A record larger than the ring allows is refused by the caller's bounds.
   */
  write(kind: InKind, arg: number, payload: Uint8Array): boolean {
    if (!tryWriteRecord(this.ring, kind, arg, payload)) return false;
    this.ring.notify();
    return true;
  }

  /** Writes the record now when nothing is held and there is room, else holds it until there is. */
  writeOrHold(kind: InKind, arg: number, payload: Uint8Array): void {
    if (this.blocked.length === 0 && this.write(kind, arg, payload)) return;
    this.whenRoom(payload.length, () => this.write(kind, arg, payload));
  }

  /** Queues `attempt` (a record of `payloadBytes`) until the shard's in ring has room; attempts run in order. */
  whenRoom(payloadBytes: number, attempt: () => boolean): void {
    const blocked = this.blocked;
    blocked.push({ bytes: RECORD_HEADER_BYTES + payloadBytes, attempt });
    if (this.waitingRoom) return;
    this.waitingRoom = true;
    const retry = (): void => {
      while (blocked.length > 0 && this.running) {
        const head = blocked[0]!;
        if (!head.attempt()) {
          this.ring.waitRoom(head.bytes).then(retry, () => undefined);
          return;
        }
        blocked.shift();
      }
      this.waitingRoom = false;
    };
    this.ring.waitRoom(blocked[0]!.bytes).then(retry, () => undefined);
  }

  /** The node is stopping: what is held stays unwritten. */
  stop(): void {
    this.running = false;
  }
}
