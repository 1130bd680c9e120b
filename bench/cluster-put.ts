// Puts per second through the whole engine: a cluster of real node processes on 127.0.0.1
// (`flotilla cluster`), clients in this process using the client library over TCP, many puts
// in flight. A first look at end-to-end throughput; the full suite with peers comes later.
//
//   node dist/bench/cluster-put.js [--nodes 3] [--groups 16] [--seconds 10] [--window 2000]
//                                  [--connections 4] [--value-bytes 100] [--sync-force true|false]
//
// Prints one line per run: ops/s, p50/p99 latency of a put, CPU of each node and of this
// process (the client), so that a client-bound run shows as one.
import { FlotillaClient } from '../src/client/index.js';
import { cpuTicks, clockTicks, startBenchCluster } from './bench-cluster.js';

interface Args { nodes: number; groups: number; seconds: number; window: number; connections: number; valueBytes: number; syncForce: boolean }

function parse(argv: string[]): Args {
  const a: Args = { nodes: 3, groups: 16, seconds: 10, window: 2000, connections: 4, valueBytes: 100, syncForce: true };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    switch (k) {
      case '--nodes': a.nodes = Number(v); break;
      case '--groups': a.groups = Number(v); break;
      case '--seconds': a.seconds = Number(v); break;
      case '--window': a.window = Number(v); break;
      case '--connections': a.connections = Number(v); break;
      case '--value-bytes': a.valueBytes = Number(v); break;
      case '--sync-force': a.syncForce = v === 'true'; break;
      default: throw new Error(`unknown flag ${k}`);
    }
  }
  return a;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const cluster = await startBenchCluster({ nodes: a.nodes, groups: a.groups, shards: 1, syncForce: a.syncForce });
  const clients: FlotillaClient[] = [];
  try {
    const servers = [...cluster.nodes.values()].map((n) => `127.0.0.1:${n.clientPort}`);
    for (let i = 0; i < a.connections; i++) clients.push(await FlotillaClient.connect({ servers, groups: a.groups, requestTimeoutMs: 30_000 }));
    // Warm up: every client learns every group's leader.
    for (const c of clients) await Promise.all(Array.from({ length: a.groups * 8 }, (_, i) => c.put(`warm-${i}`, 'x')));

    const value = 'v'.repeat(a.valueBytes);
    const latencies: number[] = [];
    let ops = 0;
    let key = 0;
    const hz = clockTicks();
    const nodeCpu0 = [...cluster.nodes.values()].map((n) => cpuTicks(n.pid).total);
    const selfCpu0 = process.cpuUsage();
    const t0 = performance.now();
    const deadline = t0 + a.seconds * 1000;
    const lanes: Promise<void>[] = [];
    for (let l = 0; l < a.window; l++) {
      const c = clients[l % clients.length]!;
      lanes.push((async () => {
        while (performance.now() < deadline) {
          const s = performance.now();
          await c.put(`k-${key++}`, value);
          latencies.push(performance.now() - s);
          ops++;
        }
      })());
    }
    await Promise.all(lanes);
    const wallS = (performance.now() - t0) / 1000;
    const nodeCpu = [...cluster.nodes.values()].map((n, i) => (100 * (cpuTicks(n.pid).total - nodeCpu0[i]!)) / hz / wallS);
    const self = process.cpuUsage(selfCpu0);
    const selfCpu = (100 * (self.user + self.system)) / 1e6 / wallS;
    latencies.sort((x, y) => x - y);
    const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
    console.log(`nodes ${a.nodes} groups ${a.groups} syncForce ${a.syncForce} window ${a.window} connections ${a.connections} value ${a.valueBytes} B`);
    console.log(`  ${Math.round(ops / wallS).toLocaleString('en-US')} puts/s over ${wallS.toFixed(1)} s; put latency p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms`);
    console.log(`  CPU % of a core: nodes ${nodeCpu.map((c) => c.toFixed(0)).join(' / ')}, client ${selfCpu.toFixed(0)}`);
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    await cluster.stop();
  }
}

await main();
