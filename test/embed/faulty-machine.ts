// State machines that break their contract, for the tests of how a program hears of it: `apply`
// throws on the command "boom"; `createNoMachine` cannot make a machine at all. Not a test file.
import type { StateMachine } from 'flotilla';

export function createStateMachine(_group: number): StateMachine {
  let applied = 0;
  const image = (): Uint8Array => new TextEncoder().encode(String(applied));
  return {
    apply(command: Uint8Array): Uint8Array {
      if (new TextDecoder().decode(command) === 'boom') throw new Error('boom');
      applied++;
      return image();
    },
    query: image,
    snapshot: image,
    restore(data: Uint8Array): void {
      applied = Number(new TextDecoder().decode(data));
    },
  };
}

/** A factory that fails: the shard cannot create or recover its groups, so it cannot start. */
export function createNoMachine(group: number): StateMachine {
  throw new Error(`no machine for group ${group}`);
}
