// How a peer link connection comes up (docs/internals.md "Peer links"):
//
// - Handshake: the dialer sends its hello as it connects; the acceptor learns who dialed from
//   that hello, checks it, and answers with its own. A connection is up on the dialer when the
//   answer is read and checked, on the acceptor when it has answered. A hello that does not
//   check out closes the connection with a warning, and so does a handshake that takes longer
//   than timeoutMsHandshake.
// - A valid connection from a node that already has a live one does not replace it on its
//   word alone (anyone can say hello as a member): the old link is probed (an empty link frame,
//   which a dead or restarted peer's kernel answers with a reset) and the new one waits up to
//   PROBE_MS_LINK_REPLACE. If the old link closes meanwhile, the new one takes its place (the
//   dialer restarted); if it is still up, the new one is refused with LINK_IN_USE.
// - The hello carries the cluster id (config clusterId): a node of another cluster is refused
//   with CLUSTER_MISMATCH, and the acceptor answers with its own hello first so that the dialer
//   logs the same.
//
// PeerLinks owns the sockets and the links that are up; this part owns the connections still
// in handshake and decides which connection becomes a peer's link.

import { encodeHello, helloProblem, LINK_FRAME_HEADER_BYTES, type Hello, type LinkRefusal } from '../protocol/peer-wire.js';
import { ConnState, type Conn, type Peer } from './peer-link-conn.js';

/** How long a second connection from a node waits for its live link to show it is dead (close after a probe). */
export const PROBE_MS_LINK_REPLACE = 1_000;

/** What the handshakes need of PeerLinks. */
export interface HandshakeHost {
  isClosing(): boolean;
  /** The handshake of `conn` with `peer` is complete: bring the link up. True: still up. */
  up(conn: Conn, peer: Peer): boolean;
  /** Ends `conn` at once, logging why. */
  drop(conn: Conn, level: 'warn' | 'info' | 'debug', reason: string, code?: LinkRefusal): void;
}

export class PeerHandshakes {
  /** Accepted connections whose hello has not been read yet (bounded by PENDING_HANDSHAKES_MAX in PeerLinks). */
  readonly pending = new Set<Conn>();

  constructor(
    private readonly host: HandshakeHost,
    private readonly log: { info(o: object, m: string): void },
    private readonly clusterId: number,
    private readonly selfId: number,
    private readonly peers: ReadonlyMap<number, Peer>,
    readonly timeoutMsHandshake: number,
  ) {}

  /** Starts the handshake clock of a new connection. */
  startClock(conn: Conn): void {
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (conn.state === ConnState.Handshake) {
        this.host.drop(conn, 'warn', `no handshake within ${this.timeoutMsHandshake} ms`);
      }
    }, this.timeoutMsHandshake);
  }

  /** The other side's hello is in: check it, answer it (acceptor), and bring the link up. True: up. */
  check(conn: Conn, hello: Hello): boolean {
    let peer = conn.peer;
    const clusterId = this.clusterId;
    if (peer !== null) {
      // Dialer: the acceptor must be the node dialed, answering this node.
      const problem = helloProblem(hello, clusterId, this.selfId, peer.id);
      if (problem !== null) {
        this.host.drop(conn, 'warn', `bad hello: ${problem.reason}`, problem.code);
        return false;
      }
    } else {
      const problem = helloProblem(hello, clusterId, this.selfId);
      if (problem !== null) {
        // The other cluster's node learns why too (it checks this hello and logs the mismatch).
        if (problem.code === 'CLUSTER_MISMATCH') conn.socket.write(encodeHello(clusterId, this.selfId, hello.fromNode));
        this.host.drop(conn, 'warn', `bad hello: ${problem.reason}`, problem.code);
        return false;
      }
      peer = this.peers.get(hello.fromNode) ?? null;
      if (peer === null) {
        this.host.drop(conn, 'warn', `bad hello: node ${hello.fromNode} is not a member`, 'NOT_MEMBER');
        return false;
      }
      if (peer.dialer) {
        this.host.drop(conn, 'warn', `bad hello: node ${hello.fromNode} has a higher id than ${this.selfId}, so this node dials it`, 'BAD_HELLO');
        return false;
      }
      const old = peer.conn;
      if (old !== null && old.state === ConnState.Up) {
        this.contend(peer, old, conn);
        return false;
      }
      this.adopt(conn, peer);
    }
    return this.host.up(conn, peer);
  }

  /** The old link of `peer` is gone: the connection that waited takes its place. */
  promoteContender(peer: Peer): void {
    const conn = peer.contender;
    peer.contender = null;
    if (conn === null || conn.state !== ConnState.Handshake || this.host.isClosing()) return;
    conn.contendFor = null;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    this.adopt(conn, peer);
    this.log.info({ peer: peer.id, remote: conn.remote }, 'peer link replaced: the old one closed after a probe (the node restarted)');
    try {
      this.host.up(conn, peer);
      // Frames that came with the hello were held by the socket: it was not read further.
      conn.socket.resume();
    } catch (err) {
      this.host.drop(conn, 'warn', `failed on input: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
  }

  /** An accepted connection becomes `peer`'s link, and answers the hello. */
  private adopt(conn: Conn, peer: Peer): void {
    this.pending.delete(conn);
    conn.peer = peer;
    peer.conn = conn;
    conn.socket.write(encodeHello(this.clusterId, this.selfId, peer.id));
  }

  /**
   * A checked hello from `peer`, whose link `old` is up: probe `old` and let `conn` wait. An empty
   * link frame is a valid frame the peer ignores; a peer process that is gone answers it with a
   * reset, and `old` closes (drop), which completes the contender's handshake.
   */
  private contend(peer: Peer, old: Conn, conn: Conn): void {
    if (peer.contender !== null) {
      this.host.drop(conn, 'warn', `node ${peer.id} already has a live link and a connection waiting to replace it`, 'LINK_IN_USE');
      return;
    }
    peer.contender = conn;
    conn.contendFor = peer;
    if (conn.timer !== null) clearTimeout(conn.timer);
    old.socket.write(new Uint8Array(LINK_FRAME_HEADER_BYTES));
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (peer.contender !== conn) return;
      peer.contender = null;
      this.host.drop(conn, 'warn', `node ${peer.id} already has a live link (it did not close within ${PROBE_MS_LINK_REPLACE} ms of a probe)`, 'LINK_IN_USE');
    }, PROBE_MS_LINK_REPLACE);
  }
}
