// Assertions state invariants. A failed one is a bug in Flotilla, never an operating error,
// and it stops whatever runs it.
export class AssertionError extends Error {
  readonly code = 'ASSERTION';
}

export function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new AssertionError(msg);
}
