// What a group's replicated state machine offers its shard. The built-in one is the key-value
// store (src/kv/kv-service.ts); programs that embed Flotilla supply their own through a module
// the shard worker imports (ShardTask.stateMachine), since state machines run in the workers.

export interface StateMachine {
  /**
   * Applies one committed command and returns the result sent to the client that proposed it.
   * Must be deterministic: every replica applies the same commands in the same order and must
   * reach the same state. Bad input is a result, never an exception (a replica must not crash
   * on what its peers accepted). `command` is only valid during the call. The shard copies the
   * result out before it applies the next command and never writes into it, so a state machine
   * may return the same bytes for every command of a kind (the KV service does for puts).
   */
  apply(command: Uint8Array, index: number): Uint8Array;
  /**
   * Optional: why a write must be refused TOO_LARGE before it is proposed (a size over one of
   * the state machine's bounds), or null. Called on every write: keep it to a few byte reads.
   */
  admit?(command: Uint8Array): string | null;
  /** Answers a read-only command from the current state. May throw on bad input. */
  query(command: Uint8Array): Uint8Array;
  /** An image of the whole state, for a snapshot. */
  snapshot(): Uint8Array;
  /**
   * Optional: begins an image of the state as it is now, made a piece at a time while commands
   * go on being applied, so that imaging a large state does not stall the shard's turns. What
   * it ends with must be the bytes snapshot() would have returned at this point.
   */
  snapshotInSteps?(): ImageSteps;
  /** Replaces the state with a snapshot image. */
  restore(image: Uint8Array): void;
}

/** An image being made in steps (StateMachine.snapshotInSteps). */
export interface ImageSteps {
  /** Does about `bytes` bytes' worth of the work; returns the whole image once done, else null. */
  step(bytes: number): Uint8Array | null;
}

/** Makes the state machine of one group; called when a group is created or recovered. */
export type StateMachineFactory = (group: number) => StateMachine;
