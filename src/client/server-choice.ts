// Which server a request goes to: the per-group leader cache, the servers suspected after a
// failure (skipped for downMs), the open connections by address, and the server tried first
// when no leader is known. The dispatcher (dispatcher.ts) decides when to retry; this decides
// where, and keeps the bounds on what it remembers.
import { Connection, parseAddress } from './connection.js';
import type { DispatcherOptions } from './dispatcher.js';
import { FlotillaError } from './errors.js';
import type { Op } from './request.js';

/** Bound on the leader cache; past it the cache starts over (it is only a hint). */
const LEADERS_MAX = 65_536;
/** Bound on open connections (servers plus leaders learned from hints). */
const CONNECTIONS_MAX = 1024;

export class ServerChoice {
  private readonly conns = new Map<string, Connection>();
  private readonly leaders = new Map<number, string>();
  /**
   * Suspected servers: address → until when they are skipped. An entry outlives its time
   * (a request that saw the server fail still does not follow hints to it) until the server
   * answers something.
   */
  private readonly downUntil = new Map<string, number>();
  /** The server tried first for a group with no known leader. */
  preferred = 0;
  /** Set when the client closes: a connection that closes then is not suspected. */
  closed = false;
  /**
   * The servers that may lead a group (its voters' client addresses in the key map), or
   * undefined when not known: then the configured servers are tried (the client sets this).
   */
  groupServers: ((group: number) => readonly string[] | undefined) | null = null;

  constructor(private readonly opts: DispatcherOptions) {}

  route(op: Op): string {
    if (op.mode.pinned !== null) return op.mode.pinned;
    const now = this.downUntil.size > 0 ? Date.now() : 0;
    const leader = this.leaders.get(op.group);
    if (leader !== undefined && !this.skipped(op, leader, now)) return leader;
    const servers = this.serversFor(op.group);
    if (op.cursor < 0) op.cursor = this.preferred;
    // The list may be shorter than the one the cursor last walked (another group's, an older map).
    op.cursor %= servers.length;
    // Skip servers that are suspected or failed during this request, unless every one is.
    for (let i = 0; i < servers.length; i++) {
      const at = (op.cursor + i) % servers.length;
      if (!this.skipped(op, servers[at]!, now)) {
        op.cursor = at;
        break;
      }
    }
    return servers[op.cursor]!;
  }

  /** Where to look for a group's leader when the cache has none: its voters, else the configured servers. */
  serversFor(group: number): readonly string[] {
    const s = this.groupServers?.(group);
    return s !== undefined && s.length > 0 ? s : this.opts.servers;
  }

  /** Whether to avoid `address` for this request: suspected now, or failed in it and silent since. */
  skipped(op: Op, address: string, now: number): boolean {
    const until = this.downUntil.get(address);
    if (until === undefined) return false;
    return until > now || (op.failed !== null && op.failed.has(address));
  }

  connection(address: string): Connection {
    const have = this.conns.get(address);
    if (have !== undefined) return have;
    const hp = parseAddress(address);
    if (hp === null) throw new FlotillaError('BAD_REQUEST', `"${address}" is not host:port`);
    if (this.conns.size >= CONNECTIONS_MAX) {
      throw new FlotillaError('UNAVAILABLE', `${CONNECTIONS_MAX} connections open; not opening one to ${address}`);
    }
    const conn = new Connection({
      host: hp.host,
      port: hp.port,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      inflightMax: this.opts.inflightMax,
      queuedMax: this.opts.queuedMax,
      frameBytesMax: this.opts.frameBytesMax,
      onClose: (c) => this.onConnectionClosed(address, c),
    });
    this.conns.set(address, conn);
    return conn;
  }

  onConnectionClosed(address: string, conn: Connection): void {
    if (this.conns.get(address) === conn) this.conns.delete(address);
    // Refused, or lost (a node that died or restarts): either way, skip it for a while.
    if (!this.closed) this.suspect(address);
    const servers = this.opts.servers;
    if (servers[this.preferred] === address) this.preferred = (this.preferred + 1) % servers.length;
  }

  suspect(address: string): void {
    if (this.downUntil.size >= CONNECTIONS_MAX && !this.downUntil.has(address)) this.downUntil.clear();
    this.downUntil.set(address, Date.now() + this.opts.downMs);
  }

  /** The server answered something: whatever it was suspected of, it is alive. */
  heard(address: string): void {
    if (this.downUntil.size > 0) this.downUntil.delete(address);
  }

  setLeader(group: number, address: string): void {
    if (this.leaders.get(group) === address) return;
    if (this.leaders.size >= LEADERS_MAX) this.leaders.clear();
    this.leaders.set(group, address);
  }

  forgetLeader(group: number, address: string): void {
    if (this.leaders.get(group) === address) this.leaders.delete(group);
  }

  /** Drops what the cache says about the group's leader (it is about to change). */
  forgetLeaderOf(group: number): void {
    this.leaders.delete(group);
  }

  /** Part of the client's close: closes every connection. */
  closeAll(err: FlotillaError): void {
    for (const conn of [...this.conns.values()]) conn.close(err);
    this.conns.clear();
  }
}
