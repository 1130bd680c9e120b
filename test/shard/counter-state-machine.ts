// A user state machine for the shard tests, loaded by module URL like an embedding program's:
// every command adds its first byte to a counter; results and snapshots are the counter as
// 8 decimal digits. Not a test file.
import type { StateMachine } from '../../src/shard/state-machine.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export function createCounter(group: number): StateMachine {
  let total = group * 1000;
  const image = (): Uint8Array => enc.encode(String(total).padStart(8, '0'));
  return {
    apply(command: Uint8Array): Uint8Array {
      total += command[0] ?? 0;
      return image();
    },
    query(): Uint8Array {
      return image();
    },
    snapshot: image,
    restore(data: Uint8Array): void {
      total = Number(dec.decode(data));
    },
  };
}
