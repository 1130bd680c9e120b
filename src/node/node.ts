// A Flotilla node: the main thread. It owns every socket and runs no Raft logic: it reads the
// fixed headers of client frames and of peer sub-records, copies each into the in ring of the
// shard that owns its group, and writes what the shards put on their out rings to sockets.
// See docs/internals.md for the layouts and the turn of a shard, and for which file of this
// folder owns what; this one owns the node's life: start, stop, health, a shard's failure.
import * as fs from 'node:fs';
import { PeerLinks } from '../transport/peer-links.js';
import type { ClientListener } from '../transport/client-listener.js';
import { listenTcp } from '../transport/tcp-listener.js';
import { chooseWebSocketEngine, listenWebSocket } from '../transport/websocket-listener.js';
import { ShardCounter } from '../shard/counters.js';
import { RECORD_HEADER_BYTES } from '../ring/records.js';
import type { PeerInfo, StateMachineModule } from '../shard/task.js';
import { startAdminHttp, type AdminBackend, type AdminServer } from './admin-http.js';
import { ClientRouter } from './client-routing.js';
import { clusterIdOf, configWarnings, type NodeConfig } from './config.js';
import { LocalRequests } from './local-requests.js';
import { createLogger, resolveLogOutput, type Logger } from './log.js';
import { NodeAdmin } from './node-admin.js';
import { NodeError } from './node-error.js';
import { OutRingDrain } from './out-ring-drain.js';
import { PeerRouter } from './peer-routing.js';
import { DataDirLock } from './data-dir-lock.js';
import { readNodeFile, writeNodeFile } from './placement.js';
import { META_GROUP } from '../cluster/meta-group.js';
import type { KeyMap } from '../cluster/key-map.js';
import { MapKeeper } from './map-keeper.js';
import { NodeMap } from './node-map.js';
import { MigrationDriver } from './migration-driver.js';
import { MigrationAdmin } from './migration-admin.js';
import { CONN_INTERNAL } from '../ring/records.js';
import { ShardPool, type ShardSlot } from './shard-pool.js';

export interface NodeOptions {
  /** The state machine of every group; null or absent: the built-in key-value store. */
  stateMachine?: StateMachineModule | null;
  /** Called once if a shard fails; the node stops serving (docs/operations.md). Default: log. */
  onFatal?: (err: Error) => void;
  logger?: Logger;
}

export interface FlotillaNode {
  readonly config: NodeConfig;
  readonly ports: { raft: number; client: number; admin: number; ws: number | null };
  readonly wsEngine: 'uws' | 'ws' | null;
  /** Sends a command to a group from inside the process (no socket); resolves with the result bytes. */
  command(group: number, body: Uint8Array, opts?: { read?: boolean; stale?: boolean }): Promise<Uint8Array>;
  readonly admin: AdminBackend;
  /** The node's current copy of the cluster's key map (docs/key-map.md); version 0 until it has one. */
  readonly keyMap: KeyMap;
  stop(): Promise<void>;
}

export async function startNode(config: NodeConfig, opts: NodeOptions = {}): Promise<FlotillaNode> {
  const node = new Node(config, opts);
  try {
    await node.start();
  } catch (e) {
    await node.stop().catch(() => undefined);
    throw e;
  }
  return node;
}

class Node implements FlotillaNode {
  readonly log: Logger;
  readonly ports = { raft: 0, client: 0, admin: 0, ws: null as number | null };
  wsEngine: 'uws' | 'ws' | null = null;
  readonly admin: NodeAdmin;
  private readonly pool: ShardPool;
  private readonly clients: ClientRouter;
  private readonly peers: PeerRouter;
  private readonly local: LocalRequests;
  /** The node's own requests to its groups (migration steps), on CONN_INTERNAL. */
  private readonly internal: LocalRequests;
  private readonly migrations: MigrationDriver;
  /** The node's copy of the key map and the keeper that keeps it current (issue 15). */
  readonly nodeMap: NodeMap;
  private readonly mapKeeper: MapKeeper;
  private tcp: ClientListener | null = null;
  private ws: ClientListener | null = null;
  private adminHttp: AdminServer | null = null;
  /**
   * starting → serving once start() completed (only then is a shard failure reported through
   * onFatal); → failed when a shard fails first; → stopping once stop() is called, for good.
   */
  private phase: 'starting' | 'serving' | 'failed' | 'stopping' = 'starting';
  private stopping: Promise<void> | null = null;
  /** The data directory's lock, held from start until the shards have closed their files. */
  private lock: DataDirLock | null = null;

  constructor(readonly config: NodeConfig, private readonly opts: NodeOptions) {
    // How this process writes log lines; the shards get it in their task.
    const logOutput = resolveLogOutput(config.logLevel, config.logFormat);
    this.log = opts.logger ?? createLogger(logOutput, config.nodeId);
    for (const w of configWarnings(config)) this.log.warn({}, `configuration: ${w}`);
    this.nodeMap = new NodeMap(this.log);
    this.pool = new ShardPool(config, logOutput, opts.stateMachine ?? null, (shard, err) => this.shardFailed(shard, err), this.nodeMap.table.sab);
    const shards = this.pool.shards;
    this.clients = new ClientRouter(shards, {
      inflightPerConnMax: config.inflightPerConnMax,
      inflightBytesPerConnMax: config.inflightBytesPerConnMax,
      pendingBytesHigh: config.pendingBytesHigh,
      // The shards' out rings are made at start; a record is a quarter of a ring (spsc-ring.ts).
      responseBytesMax: config.ringBytes / 4 - RECORD_HEADER_BYTES,
    });
    this.peers = new PeerRouter(shards, this.log);
    this.local = new LocalRequests(shards, config.frameBytesMax);
    this.internal = new LocalRequests(shards, config.frameBytesMax, undefined, CONN_INTERNAL);
    this.clients.maps = this.nodeMap;
    this.mapKeeper = new MapKeeper(config, this.nodeMap, this.local, this.log);
    this.admin = new NodeAdmin(config, this.pool, this.clients, this.peers, () => this.health());
    const peerIds = config.peers.map((p) => p.id);
    this.migrations = new MigrationDriver(config.nodeId, peerIds, this.internal, this.nodeMap, this.log);
    this.admin.migration = new MigrationAdmin(config.nodeId, peerIds, this.nodeMap, this.migrations, this.internal);
    this.nodeMap.onChange = () => this.migrations.kick();
  }

  async start(): Promise<void> {
    const c = this.config;
    const self = c.peers.find((p) => p.id === c.nodeId);
    if (self === undefined) throw new NodeError('BAD_CONFIG', `peers do not include node ${c.nodeId}`);
    // Before anything starts: 'uws' where uWebSockets.js cannot load throws UWS_UNAVAILABLE.
    if (c.websocket !== 'off') chooseWebSocketEngine(c.websocket);
    // Before any other file of the data directory is read or written: one process per directory.
    this.lock = DataDirLock.acquire(c.dataDir);
    fs.mkdirSync(c.dataDir, { recursive: true });
    const fresh = readNodeFile(c.dataDir, c.nodeId, c.shards) === null;
    const drain = new OutRingDrain(this.pool, this.clients, this.local, this.admin, this.peers, (image) => this.nodeMap.offer(image), this.internal);
    this.pool.start(fresh, (shard) => void drain.pump(shard));
    await this.pool.whenReady();
    if (fresh) writeNodeFile(c.dataDir, c.nodeId, c.shards);
    this.log.info({ shards: c.shards, fresh }, 'shards ready');

    const listenerOpts = {
      host: c.host,
      wsOrigins: c.wsOrigins,
      frameReadTimeoutMs: c.frameReadTimeoutMs,
      frameBytesMax: c.frameBytesMax,
      connectionsMax: c.connectionsMax,
      pendingBytesHigh: c.pendingBytesHigh,
      pendingBytesLow: c.pendingBytesLow,
      pendingBytesMax: c.pendingBytesMax,
      nextId: () => this.clients.nextConnId(),
      log: this.log,
    };
    const links = new PeerLinks({
      self: { ...self, raftPort: c.raftPort },
      peers: c.peers,
      listenHost: c.host,
      linkFrameBytesMax: c.linkFrameBytesMax,
      backoffMsMin: c.linkBackoffMsMin,
      backoffMsMax: c.linkBackoffMsMax,
      sendQueueBytesMax: c.linkSendQueueBytesMax,
      timeoutMsHandshake: c.linkHandshakeTimeoutMs,
      clusterId: clusterIdOf(c),
      log: this.log,
    }, {
      onPayload: (from, buf, at, end) => this.peers.route(from, buf, at, end),
      onState: (peer, up) => this.peers.state(peer, up),
    });
    this.peers.links = links;
    await links.start();
    this.ports.raft = links.port;
    this.tcp = await listenTcp({ ...listenerOpts, port: c.clientPort }, this.clients);
    this.ports.client = this.tcp.port;
    if (c.websocket !== 'off') {
      this.ws = await listenWebSocket({ ...listenerOpts, port: c.wsPort, engine: c.websocket }, this.clients);
      this.ports.ws = this.ws.port;
      this.wsEngine = this.ws.engine === 'uws' ? 'uws' : 'ws';
    }
    this.adminHttp = await startAdminHttp({ host: c.host, port: c.adminPort, log: this.log }, this.admin);
    this.ports.admin = this.adminHttp.port;
    this.mapKeeper.start(this.ports);
    if (c.mode !== 'echo') this.migrations.start();
    if (this.phase === 'starting') this.phase = 'serving';
    this.log.info({ ports: this.ports, ws: this.wsEngine }, 'node serving');
  }

  /** Called by the shard pool once a shard's task has failed (its state already says so). */
  private shardFailed(shard: ShardSlot, err: Error): void {
    if (this.phase === 'stopping') return;
    this.log.fatal({ shard: shard.index, err: err.message }, 'shard failed; the node stops serving');
    if (this.phase === 'failed') return;
    const serving = this.phase === 'serving';
    this.phase = 'failed';
    this.clients.accepting = false;
    const fatal = new NodeError('UNAVAILABLE', `shard ${shard.index} failed: ${err.message}`);
    if (!serving) return; // during start: startNode rejects instead
    // Requests still unread in the failed shard's ring will never be answered: settle the
    // in-process ones here (socket clients lose their connections when the node stops).
    this.local.rejectAll(fatal);
    this.internal.rejectAll(fatal);
    if (this.opts.onFatal !== undefined) this.opts.onFatal(fatal);
  }

  get keyMap(): KeyMap {
    return this.nodeMap.map;
  }

  command(group: number, body: Uint8Array, opts: { read?: boolean; stale?: boolean } = {}): Promise<Uint8Array> {
    if (!this.accepting) return Promise.reject(new NodeError('UNAVAILABLE', 'the node is stopping'));
    if (group === META_GROUP) return Promise.reject(new NodeError('BAD_REQUEST', `group ${META_GROUP} is the meta group: it takes no commands from outside the node`));
    return this.local.command(group, body, opts);
  }

  private health(): ReturnType<AdminBackend['health']> {
    const shards = this.pool.shards.map((s) => {
      // The shard says so in shared memory (src/shard/counters.ts): read here, no round trip.
      const noSpace = s.state === 'ready' && s.counters[ShardCounter.NoSpace]! > 0;
      return {
        shard: s.index, state: s.state,
        ...(s.message !== undefined ? { message: s.message } : {}),
        ...(noSpace ? { reason: 'NO_SPACE' as const, message: 'the disk is full: writes are refused (NO_SPACE) until there is room; reads go on' } : {}),
      };
    });
    const serving = this.accepting && this.pool.allReady() && this.tcp !== null;
    const reasons = shards.some((s) => s.reason === 'NO_SPACE') ? ['NO_SPACE'] : [];
    const status = !serving ? 'unavailable' as const : reasons.length > 0 ? 'degraded' as const : 'ok' as const;
    return { serving, status, reasons, nodeId: this.config.nodeId, shards };
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  /** Neither stopping nor failed: requests are taken. */
  private get accepting(): boolean {
    return this.phase === 'starting' || this.phase === 'serving';
  }

  private async stopOnce(): Promise<void> {
    this.phase = 'stopping';
    this.clients.accepting = false;
    await this.mapKeeper.stop();
    await this.migrations.stop();
    this.pool.stopInput();
    const closing: Promise<unknown>[] = [];
    if (this.adminHttp !== null) closing.push(this.adminHttp.close());
    if (this.tcp !== null) closing.push(this.tcp.close());
    if (this.ws !== null) closing.push(this.ws.close());
    await Promise.allSettled(closing);
    if (!await this.pool.stopShards()) this.log.warn({}, 'shards did not stop in time; terminating their threads');
    if (this.peers.links !== null) await this.peers.links.close();
    await this.pool.destroy();
    this.lock?.release();
    this.local.rejectAll(new NodeError('UNAVAILABLE', 'the node stopped'));
    this.internal.rejectAll(new NodeError('UNAVAILABLE', 'the node stopped'));
    this.admin.resolveAll({ ok: false, code: 'UNAVAILABLE', message: 'the node stopped' });
    this.log.info({}, 'node stopped');
  }
}

export { NodeError };
export type { PeerInfo };
export { ShardCounter };
