// The payloads a paused link holds. pause() stops the socket reading, but the frames already
// read from the chunk in hand are still to come: each is copied here, and delivered on resume,
// in order, in a later turn (PeerLinks.redeliver). A paused socket reads no further, so what is
// held stays within one chunk and one reassembled frame; the caller checks `bytes` against its
// bound.

const EMPTY = new Uint8Array(0);

export class HeldPayloads {
  /** Copies, delivered from `at` on; delivered ones are replaced by EMPTY so they can be freed. */
  private list: Uint8Array[] = [];
  private at = 0;
  /** Bytes held and not yet delivered. */
  bytes = 0;
  /** A redelivery is scheduled for a later turn (at most one at a time). */
  redeliverScheduled = false;

  /** Payloads held and not yet delivered. */
  get any(): boolean {
    return this.at < this.list.length;
  }

  /** Keeps a copy of buf[at, end). */
  hold(buf: Uint8Array, at: number, end: number): void {
    this.list.push(buf.slice(at, end));
    this.bytes += end - at;
  }

  /** The oldest held payload, taken out (call only while `any`). */
  take(): Uint8Array {
    const b = this.list[this.at]!;
    this.list[this.at++] = EMPTY;
    this.bytes -= b.length;
    return b;
  }

  /** Everything held is let go: delivered, or dropped with its link. */
  clear(): void {
    this.list = [];
    this.at = 0;
    this.bytes = 0;
  }
}
