// Waiting for event-loop turns instead of milliseconds, for checks that something did not
// happen. The tests that use it run both ends of a connection in this process over loopback,
// where a write has reached the other socket's kernel buffer by the time it returns: what one
// side writes in a turn is read by the other side, if its socket reads at all, in the poll phase
// of the next turn, and whatever that read schedules with setImmediate runs in that turn's
// check phase. So "nothing more arrives" is settled after a few turns, whatever the machine's
// load, where a sleep is either long or flaky.

/** Resolves after `n` event-loop turns (each a setImmediate, so each after one poll phase). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
