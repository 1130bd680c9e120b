// What other nodes send this shard: the peer sub-records of an InKind.Peer record (one Raft
// message each, heartbeats of many groups coalesced, or a piece of a snapshot, reassembled here
// before its Snap message is stepped), stepped into the groups' cores; and word that a link to a
// node went down (InKind.PeerState). Input this node cannot use is counted in `dropped`.
import { Role, type Message } from '../raft/types.js';
import { CodecError, decodeHeartbeats, decodeRaftMessage } from '../protocol/raft-codec.js';
import { decodeSnapChunk } from '../protocol/snap-chunk-codec.js';
import { SUB_HEADER_BYTES, SubKind, subBytes, subGroup, subKind } from '../protocol/peer-wire.js';
import { PEER_DROP_SLOTS, ShardCounter, type PeerDropReason } from './counters.js';
import type { GroupHost } from './group-host.js';
import type { GroupTable } from './group-table.js';
import type { ShardLogger } from './log.js';
import type { SnapshotAssembler } from './snapshot-assembler.js';

/** Peer input problems (unknown groups, undecodable sub-records) are logged once per this many. */
const PEER_PROBLEMS_LOG_EVERY = 1000;

/**
 * Peer input dropped, by reason: messages for groups not hosted here, undecodable sub-records,
 * a message whose `from` is not the node of the link it came on, and what the core refused
 * (message-check.ts). The names are the `reason` label of flotilla_peer_dropped_total.
 */
export interface PeerDrops extends Record<PeerDropReason, number> {
  unknownGroup: number;
  undecodable: number;
  wrongSender: number;
}


export class PeerInput {
  readonly dropped: PeerDrops = {
    unknownGroup: 0, undecodable: 0, wrongSender: 0,
    badSender: 0, badEntries: 0, badSnapshot: 0, badIndex: 0, notMember: 0,
  };
  private readonly groups: Map<number, GroupHost>;

  constructor(
    private readonly table: GroupTable,
    private readonly assembler: SnapshotAssembler,
    private readonly counters: Float64Array,
    private readonly log: ShardLogger,
  ) {
    this.groups = table.groups;
  }

  /** The sub-records of one InKind.Peer record from `fromNode`, in buf[at, end). */
  peer(fromNode: number, buf: Uint8Array, at: number, end: number): void {
    let p = at;
    while (p < end) {
      const bytes = end - p >= SUB_HEADER_BYTES ? subBytes(buf, p) : 0;
      if (bytes < SUB_HEADER_BYTES || p + bytes > end) {
        this.peerProblem('undecodable', fromNode, 'a sub-record overruns its record');
        return;
      }
      const group = subGroup(buf, p);
      const body = p + SUB_HEADER_BYTES;
      const stop = p + bytes;
      try {
        switch (subKind(buf, p)) {
          case SubKind.RaftMessage: {
            const h = this.groups.get(group);
            if (h === undefined) this.peerProblem('unknownGroup', fromNode, `group ${group}`);
            else this.stepIn(h, decodeRaftMessage(buf, body, stop), fromNode);
            break;
          }
          case SubKind.Heartbeats:
          case SubKind.HeartbeatResps:
            this.heartbeatSender = fromNode;
            decodeHeartbeats(buf, body, stop, this.ownsGroup, this.visitHeartbeat);
            break;
          case SubKind.SnapChunk: {
            const h = this.groups.get(group);
            if (h === undefined) {
              this.peerProblem('unknownGroup', fromNode, `group ${group}`);
              break;
            }
            const m = this.assembler.add(group, decodeSnapChunk(buf, body, stop));
            if (m !== null) this.stepIn(h, m, fromNode);
            break;
          }
          default:
            this.peerProblem('undecodable', fromNode, `sub-record kind ${subKind(buf, p)}`);
        }
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        this.peerProblem('undecodable', fromNode, e.message);
      }
      p = stop;
    }
  }

  private heartbeatSender = 0;
  private readonly ownsGroup = (group: number): boolean => this.groups.has(group);
  /** Heartbeat messages may be reused by the decoder: stepped at once. */
  private readonly visitHeartbeat = (group: number, m: Message): void => {
    this.stepIn(this.groups.get(group)!, m, this.heartbeatSender);
  };

  private stepIn(h: GroupHost, m: Message, fromNode: number): void {
    if (m.from !== fromNode) {
      this.peerProblem('wrongSender', fromNode, `message from ${m.from}`);
      return;
    }
    const problem = h.core.step(m);
    if (problem !== null) {
      this.peerProblem(problem, fromNode, `message of type ${m.type} to group ${h.id}`);
      return;
    }
    this.counters[ShardCounter.MessagesIn]!++;
    this.table.touched.add(h);
  }

  private peerProblem(kind: PeerDropReason, from: number, what: string): void {
    const n = ++this.dropped[kind];
    this.counters[PEER_DROP_SLOTS[kind]]!++;
    if (n % PEER_PROBLEMS_LOG_EVERY !== 1) return;
    // Messages for a group not hosted here are normal after a removal (peers still send for a
    // while); anything else means a peer speaks something this node does not understand.
    if (kind === 'unknownGroup') this.log.info({ from, kind, count: n }, `peer input dropped: ${what}`);
    else this.log.warn({ from, kind, count: n }, `peer input dropped: ${what}`);
  }

  /**
   * A link went down: snapshots in flight to that node are reported failed, so that its
   * groups' leaders probe again (and resend) once it is back instead of waiting for the
   * resend timeout; snapshots coming from it are abandoned. Quiesced groups led from that node
   * are woken: their followers here hear nothing more, and campaign after an election timeout
   * unless the leader speaks first. A link coming up needs nothing (docs/raft.md, "Quiescence").
   */
  peerState(node: number, up: boolean): void {
    this.table.spread.peerState(node, up);
    if (up) {
      this.table.spread.campaign(this.table.touched);
      return;
    }
    this.assembler.dropFrom(node);
    for (const h of this.groups.values()) {
      const core = h.core;
      if (core.role === Role.Leader) {
        core.reportSnapshot(node, false);
      } else if (core.quiesced && core.leader === node) {
        core.wake();
        this.table.touched.add(h);
      }
    }
  }
}
