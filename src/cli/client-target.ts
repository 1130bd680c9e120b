// What every command that talks to a running cluster shares (kv, admin, status): where the
// cluster is (--servers, $FLOTILLA_SERVERS, the default: seeds, the key map says the rest), the
// common flags, and one client connection bounded in time, so no such command can hang.
import { parseServers, type OptionSpecs, type ParsedCommand } from './args.js';

/** Where kv, admin and status find the cluster when --servers is not given. */
export const SERVERS_ENV = 'FLOTILLA_SERVERS';
export const SERVERS_DEFAULT = '127.0.0.1:7002';
/** kv and admin commands give up after this long rather than hang on an unreachable cluster. */
const CLIENT_COMMAND_MS_MAX = 30_000;

export const CLIENT_OPTIONS = {
  servers: { type: 'string', value: 'H:P,...', help: `client addresses (TCP client ports) of the nodes; default $${SERVERS_ENV}, else ${SERVERS_DEFAULT}` },
  json: { type: 'boolean', help: 'print the answer as one JSON object' },
} as const satisfies OptionSpecs;

/** --servers, else $FLOTILLA_SERVERS, else the default node's client port. */
export function clientServers(flag: string | undefined): string[] {
  if (flag !== undefined) return parseServers(flag, '--servers');
  const env = process.env[SERVERS_ENV];
  if (env !== undefined && env.trim() !== '') return parseServers(env, SERVERS_ENV);
  return parseServers(SERVERS_DEFAULT);
}

/** The flags, operands and target of a kv or admin command, and how it prints its answer. */
export function clientCall(p: ParsedCommand<OptionSpecs>): {
  v: Record<string, string | boolean | undefined>;
  json: boolean;
  target: ClientTarget;
  a: string;
  b: string | undefined;
  print: (text: string, obj: Record<string, unknown>) => void;
} {
  const v = p.values as Record<string, string | boolean | undefined>;
  const json = v['json'] === true;
  const target = { servers: clientServers(v['servers'] as string | undefined) };
  const [a, b] = p.operands as [string, string | undefined];
  const print = (text: string, obj: Record<string, unknown>): void => void process.stdout.write(json ? JSON.stringify(obj) + '\n' : text + '\n');
  return { v, json, target, a, b, print };
}

export interface ClientTarget {
  /** Seeds: the client fetches the key map from one and routes by it. */
  servers: string[];
}

type Client = Awaited<ReturnType<typeof import('../client/index.js').FlotillaClient.connect>>;

/** Connects, runs `f`, closes; the whole bounded by CLIENT_COMMAND_MS_MAX. */
/** For calls that name their group (admin): connect without waiting for a key map (a cluster of `groups: 0` has none). */
export const NO_MAP = { waitForMap: false };

export async function withClient(target: ClientTarget, f: (client: Client) => Promise<number>, opts: { waitForMap?: boolean } = {}): Promise<number> {
  const { FlotillaClient } = await import('../client/index.js');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${CLIENT_COMMAND_MS_MAX / 1000} s from ${target.servers.join(', ')}`), { code: 'TIMEOUT' })), CLIENT_COMMAND_MS_MAX);
  });
  let client: Client | null = null;
  try {
    return await Promise.race([
      (async () => {
        client = await FlotillaClient.connect({ servers: target.servers, ...opts });
        return f(client);
      })(),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
    if (client !== null) await (client as Client).close().catch(() => undefined);
  }
}
