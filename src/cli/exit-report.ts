// How a failed command ends: one line `flotilla: CODE: message` on stderr (and the error as
// JSON after --json), and the exit code the failure deserves (docs/operations.md): 2 for what
// retrying cannot fix (usage, configuration), 1 for the rest. Shared by every command.
import { ConfigError } from '../node/config.js';
import { EXIT_USAGE, UsageError } from './args.js';

export function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'ERROR';
}

/** Prints `flotilla: CODE: message` for an error (and a JSON object on stdout after --json); returns the exit code it deserves. */
export function report(err: unknown, json = false): number {
  let code = errCode(err);
  let message = err instanceof Error ? err.message : String(err);
  let exit = 1;
  if (err instanceof UsageError) {
    message = `${message} (see --help)`;
    exit = EXIT_USAGE;
  } else if (err instanceof ConfigError) {
    code = 'BAD_CONFIG';
    exit = EXIT_USAGE;
  } else if (code === 'BAD_CONFIG' || code === 'CONFIG_MISMATCH') {
    // A configuration the node refused (e.g. a data directory made with another shard count)
    // will not get better by retrying: same exit code as a bad config file.
    exit = EXIT_USAGE;
  }
  process.stderr.write(`flotilla: ${code}: ${message}\n`);
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  return exit;
}
