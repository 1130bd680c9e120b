// How a node keeps its copy of the key map current (issue 15, docs/key-map.md "How nodes keep the
// map"):
// - A node that hosts a meta replica learns every map its replica applies from its shard
//   (OutKind.Map, out-ring-drain.ts → NodeMap.offer). While that map is at version 0 (a new
//   cluster), it proposes `initialize` to the meta group every INIT_RETRY_MS: data groups
//   1..groups with every peer as voter, every peer's addresses, slots spread evenly. Only the
//   leader's proposal is taken (the others answer NOT_LEADER); a VERSION_MISMATCH or
//   ALREADY_INITIALIZED answer means another proposal won. Once the map has a version it stops.
// - A node outside the meta group asks a meta member for the map (MapRequest with the version it
//   holds) every POLL_MS, and at once when a client says it holds a newer version than this node.
import { RoundTimer } from './round-timer.js';
import { META_GROUP, metaVoters } from '../cluster/meta-group.js';
import { decodeMetaResult, encodeMetaCommand } from '../cluster/meta-command.js';
import { Dispatcher } from '../client/dispatcher.js';
import { fetchMap } from '../client/map-fetch.js';
import { formatAddress } from '../client/connection.js';
import type { NodeConfig } from './config.js';
import type { LocalRequests } from './local-requests.js';
import type { Logger } from './log.js';
import type { NodeMap } from './node-map.js';

/** While a meta member's map is at version 0, how often it proposes initialize. */
const INIT_RETRY_MS = 200;
/** How often a node outside the meta group asks a meta member for a newer map. */
export const POLL_MS = 1000;
/** The soonest a client's word that a newer map exists makes another poll. */
const BEHIND_POLL_MS_MIN = 100;
/** What an initialize proposal may meet while the meta group elects or moves its leader: not worth a log line. */
const INIT_QUIET_CODES = new Set(['NOT_LEADER', 'TIMEOUT', 'UNAVAILABLE', 'LEADER_TRANSFERRING', 'OUTCOME_UNKNOWN', 'OVERLOADED']);

export class MapKeeper {
  private readonly rounds = new RoundTimer(() => this.round());
  private busy = false;
  private stopped = false;
  /** When the last poll began (ms since the epoch). */
  private lastPoll = 0;
  /** Codes of refused initialize proposals already logged (once each). */
  private readonly warned = new Set<string>();
  private readonly isMetaMember: boolean;
  private fetcher: Dispatcher | null = null;
  /** Initialize proposals made, and polls made (tests, logs). */
  proposals = 0;
  polls = 0;

  constructor(
    private readonly config: NodeConfig,
    private readonly nodeMap: NodeMap,
    private readonly local: LocalRequests,
    private readonly log: Logger,
  ) {
    const voters = metaVoters(config.peers.map((p) => p.id));
    this.isMetaMember = voters.includes(config.nodeId);
    if (!this.isMetaMember) {
      const servers = config.peers.filter((p) => voters.includes(p.id)).map((p) => formatAddress(p.host, p.clientPort));
      this.fetcher = new Dispatcher({
        servers, requestTimeoutMs: POLL_MS * 2, attemptTimeoutMs: POLL_MS, connectTimeoutMs: POLL_MS,
        inflightMax: 4, queuedMax: 4, redirectsMax: 0, retriesMax: servers.length, backoffMsMin: 20, backoffMsMax: 200,
        downMs: POLL_MS, frameBytesMax: config.frameBytesMax + 1024 * 1024 * 4,
      });
      // A client's MapRequest says a newer map exists: poll at once, but at most every
      // BEHIND_POLL_MS_MIN (a client could say so with every request).
      nodeMap.onBehind = () => {
        if (Date.now() - this.lastPoll >= BEHIND_POLL_MS_MIN) this.soon(0);
      };
    }
  }

  /** This node's own ports as bound (a config port of 0 lets the system choose: the map needs the real one). */
  private selfPorts: { raft: number; client: number; admin: number } | null = null;

  start(ports: { raft: number; client: number; admin: number }): void {
    this.selfPorts = ports;
    // Echo mode (a benchmark of the transport) runs no state machine: there is no map to keep.
    if (this.config.mode === 'echo') return;
    this.soon(0);
  }

  private soon(ms: number): void {
    if (!this.stopped) this.rounds.soon(ms);
  }

  private async round(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (this.isMetaMember) {
        if (this.nodeMap.version !== 0) return; // the shard reports the rest
        await this.proposeInitialize();
      } else {
        await this.poll();
      }
    } finally {
      this.busy = false;
      if (this.isMetaMember) {
        if (this.nodeMap.version === 0) this.soon(INIT_RETRY_MS);
      } else {
        this.soon(POLL_MS);
      }
    }
  }

  private async proposeInitialize(): Promise<void> {
    const c = this.config;
    if (c.groups === 0) return;
    const voters = c.peers.map((p) => p.id).sort((a, b) => a - b);
    const groups = [];
    for (let g = 1; g <= c.groups; g++) groups.push({ group: g, members: voters });
    const nodes = c.peers.map((p) => {
      const own = p.id === c.nodeId ? this.selfPorts : null;
      const raft = own?.raft ?? p.raftPort;
      const client = own?.client ?? p.clientPort;
      const admin = own?.admin ?? p.adminPort;
      return { node: p.id, addresses: { raft: formatAddress(p.host, raft), client: formatAddress(p.host, client), admin: formatAddress(p.host, admin) } };
    });
    let command: Uint8Array;
    try {
      command = encodeMetaCommand({ op: 'initialize', expect: 0, groups, nodes });
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'the configured cluster does not fit a key map; it is not initialized');
      this.stopped = true;
      return;
    }
    this.proposals++;
    let result: Uint8Array;
    try {
      result = await this.local.command(META_GROUP, command, {});
    } catch (e) {
      // NOT_LEADER (another member proposes), no leader yet, a timeout: the next round tries
      // again. Anything else is said once (say, NO_GROUP: a data directory made before the
      // meta group existed has none, docs/key-map.md).
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && !INIT_QUIET_CODES.has(code) && !this.warned.has(code)) {
        this.warned.add(code);
        this.log.warn({ code, err: e instanceof Error ? e.message : String(e) }, 'the meta group refused to initialize the key map; trying again');
      }
      return;
    }
    let r;
    try {
      r = decodeMetaResult(result);
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'the meta group answered initialize with bytes that are no result');
      this.stopped = true;
      return;
    }
    if (r.ok) this.log.info({ version: r.version, groups: c.groups }, 'key map initialized');
    else if (r.code !== 'VERSION_MISMATCH' && r.code !== 'ALREADY_INITIALIZED') {
      this.log.error({ code: r.code, err: r.message }, 'the meta group refused to initialize the key map');
      this.stopped = true;
    }
  }

  private async poll(): Promise<void> {
    this.lastPoll = Date.now();
    this.polls++;
    try {
      const got = await fetchMap(this.fetcher!, null, this.nodeMap.version === 0 ? null : this.nodeMap.version);
      if (got.map !== null) this.nodeMap.offer(got.map.encode());
    } catch (e) {
      this.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'no key map from the meta members this round');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.rounds.stop();
    await this.fetcher?.close();
  }
}

