// Separate network hosts on one machine (issue 16, item 5): each node runs in a network
// namespace of its own, with its own address, joined to the others by veth pairs on a bridge in
// a hub namespace; all of it made by the test and removed by it. The test process itself
// reaches the nodes through one more veth into the bridge (an address of the test's private
// subnet, on an interface the test made: nothing is added to the machine's own interfaces).
//
// Faults are made inside a node's namespace: its link down (cut from everyone), or nftables
// rules (Debian's nftables, installed when missing and the test runs as root) that drop what
// comes from, or goes to, chosen peers (one direction: an asymmetric partition).
//
// Needs root and iproute2's `ip netns`: `netnsProblem()` says why not, else null.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GroupStatus } from '../../src/shard/task.js';
import { fetchStatus } from '../../src/cli/status.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/flotilla.js');

const RAFT_PORT = 7001;
const CLIENT_PORT = 7002;
const ADMIN_PORT = 7003;
const WS_PORT = 7004;
/** Longest a command of the harness (ip, nft) may take. */
const COMMAND_MS_MAX = 10_000;
const APT_MS_MAX = 300_000;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: COMMAND_MS_MAX });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: status ${r.status}: ${r.stderr}${r.error?.message ?? ''}`);
  return r.stdout;
}

/** Why these tests cannot run here (not root, no `ip netns`), or null. */
export function netnsProblem(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const name = `flprobe${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8', timeout: COMMAND_MS_MAX });
  if (add.status !== 0) return `ip netns add failed: ${add.stderr}${add.error?.message ?? ''}`;
  spawnSync('ip', ['netns', 'del', name], { timeout: COMMAND_MS_MAX });
  return null;
}

/** nft, installed from Debian when missing (root and apt-get); why not, or null. */
export function nftProblem(): string | null {
  const has = (): boolean => spawnSync('nft', ['--version'], { stdio: 'ignore' }).status === 0;
  if (has()) return null;
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return 'nft is not installed and there is no apt-get';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nftables'], { encoding: 'utf8', env, timeout: APT_MS_MAX });
  if (install.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: APT_MS_MAX });
    install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nftables'], { encoding: 'utf8', env, timeout: APT_MS_MAX });
  }
  return has() ? null : `apt-get install nftables did not give nft (status ${install.status}): ${(install.stderr ?? '').slice(-1000)}`;
}

export interface NetNode {
  id: number;
  ns: string;
  address: string;
  proc: ChildProcess | null;
  output: string;
}

/** A cluster of `nodes` node processes, each in its own namespace on a private /24. */
export class NetnsCluster {
  readonly nodes = new Map<number, NetNode>();
  private readonly hub: string;
  private readonly hostVeth: string;
  private readonly subnet: string;
  private made: string[] = [];

  private constructor(readonly dir: string, private readonly tag: string, private readonly groups: number) {
    this.hub = `${tag}h`;
    this.hostVeth = `${tag}t`;
    // A /24 of 10.201.0.0/16 chosen by the process id, so two runs at once do not collide.
    this.subnet = `10.201.${process.pid % 250}`;
  }

  static async start(opts: { nodes: number; groups: number; tickMs?: number }): Promise<NetnsCluster> {
    const tag = `fl${process.pid % 100_000}`;
    const c = new NetnsCluster(fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-netns-')), tag, opts.groups);
    try {
      c.makeNetwork(opts.nodes);
      c.writeConfigs(opts.nodes, opts.tickMs ?? 50);
      for (const id of c.nodes.keys()) c.startNode(id);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  private makeNetwork(n: number): void {
    const hub = this.hub;
    run('ip', ['netns', 'add', hub]);
    this.made.push(hub);
    run('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);
    run('ip', ['-n', hub, 'link', 'set', 'lo', 'up']);
    for (let id = 1; id <= n; id++) {
      const ns = `${this.tag}n${id}`;
      run('ip', ['netns', 'add', ns]);
      this.made.push(ns);
      this.plug(ns, `${this.tag}v${id}`, `${this.subnet}.${id}/24`);
      this.nodes.set(id, { id, ns, address: `${this.subnet}.${id}`, proc: null, output: '' });
    }
    // The test's own way in: one end in this namespace, the other on the bridge.
    run('ip', ['link', 'add', this.hostVeth, 'type', 'veth', 'peer', 'name', `${this.hostVeth}p`]);
    run('ip', ['link', 'set', `${this.hostVeth}p`, 'netns', hub]);
    run('ip', ['-n', hub, 'link', 'set', `${this.hostVeth}p`, 'master', 'br0']);
    run('ip', ['-n', hub, 'link', 'set', `${this.hostVeth}p`, 'up']);
    run('ip', ['addr', 'add', `${this.subnet}.254/24`, 'dev', this.hostVeth]);
    run('ip', ['link', 'set', this.hostVeth, 'up']);
  }

  /** A veth from namespace `ns` (its end named eth0, with `cidr`) to the hub's bridge. */
  private plug(ns: string, name: string, cidr: string): void {
    run('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    run('ip', ['link', 'set', name, 'netns', ns]);
    run('ip', ['-n', ns, 'link', 'set', name, 'name', 'eth0']);
    run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    run('ip', ['link', 'set', `${name}p`, 'netns', this.hub]);
    run('ip', ['-n', this.hub, 'link', 'set', `${name}p`, 'master', 'br0']);
    run('ip', ['-n', this.hub, 'link', 'set', `${name}p`, 'up']);
  }

  private configFile(id: number): string {
    return path.join(this.dir, `node-${id}`, 'flotilla.json');
  }

  private writeConfigs(n: number, tickMs: number): void {
    const peers = [...this.nodes.values()].map((x) => ({ id: x.id, host: x.address, raftPort: RAFT_PORT, clientPort: CLIENT_PORT, adminPort: ADMIN_PORT, wsPort: WS_PORT }));
    for (let id = 1; id <= n; id++) {
      const node = this.nodes.get(id)!;
      const config = {
        nodeId: id, host: node.address, raftPort: RAFT_PORT, clientPort: CLIENT_PORT, adminPort: ADMIN_PORT, wsPort: WS_PORT,
        peers, dataDir: path.join(this.dir, `node-${id}`, 'data'), shards: 1, groups: this.groups, tickMs, logLevel: 'warn',
      };
      fs.mkdirSync(path.dirname(this.configFile(id)), { recursive: true });
      fs.writeFileSync(this.configFile(id), JSON.stringify(config, null, 2));
    }
  }

  startNode(id: number): void {
    const node = this.nodes.get(id)!;
    const proc = spawn('ip', ['netns', 'exec', node.ns, process.execPath, CLI, 'start', '--config', this.configFile(id)], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => { if (node.output.length < 100_000) node.output += d.toString(); });
    proc.stderr!.on('data', (d: Buffer) => { if (node.output.length < 100_000) node.output += d.toString(); });
    node.proc = proc;
  }

  /** The nodes' client addresses, as clients are given them. */
  servers(): string[] {
    return [...this.nodes.values()].map((n) => `${n.address}:${CLIENT_PORT}`);
  }

  async status(id: number): Promise<GroupStatus[]> {
    return (await fetchStatus(`${this.nodes.get(id)!.address}:${ADMIN_PORT}`, 2000)).groups;
  }

  /** Leader of `group` as the nodes in `among` report it (a leader they all agree on), or 0. */
  async leaderOf(group: number, among: number[]): Promise<number> {
    const seen = new Set<number>();
    for (const id of among) {
      try {
        const g = (await this.status(id)).find((s) => s.group === group);
        if (g === undefined || g.leader === 0) return 0;
        seen.add(g.leader);
      } catch {
        return 0;
      }
    }
    return seen.size === 1 ? [...seen][0]! : 0;
  }

  /** Node `id`'s link down (cut from every other host) or up again. */
  link(id: number, up: boolean): void {
    run('ip', ['-n', this.nodes.get(id)!.ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
  }

  /**
   * In node `id`'s namespace, drops the packets it receives from (`in`) or sends to (`out`)
   * the listed nodes: one direction only makes an asymmetric partition. Replaces earlier rules.
   */
  drop(id: number, dir: 'in' | 'out', peers: number[]): void {
    const ns = this.nodes.get(id)!.ns;
    const addrs = peers.map((p) => this.nodes.get(p)!.address).join(', ');
    const hook = dir === 'in' ? 'input' : 'output';
    const field = dir === 'in' ? 'saddr' : 'daddr';
    const rules = `flush ruleset\ntable inet fl {\n  chain c {\n    type filter hook ${hook} priority 0; policy accept;\n    ip ${field} { ${addrs} } drop\n  }\n}\n`;
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules, encoding: 'utf8', timeout: COMMAND_MS_MAX });
    if (r.status !== 0) throw new Error(`nft in ${ns}: ${r.stderr}`);
  }

  /** Removes node `id`'s packet filter rules. */
  heal(id: number): void {
    run('ip', ['netns', 'exec', this.nodes.get(id)!.ns, 'nft', 'flush', 'ruleset']);
  }

  /** Stops every node (SIGTERM, then SIGKILL after 10 s) and removes the namespaces, the veths and the directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map(async (n) => {
      const p = n.proc;
      if (p === null || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
        p.once('exit', () => { clearTimeout(kill); resolve(); });
        p.kill('SIGTERM');
      });
    }));
    spawnSync('ip', ['link', 'del', this.hostVeth], { timeout: COMMAND_MS_MAX });
    for (const ns of this.made.reverse()) spawnSync('ip', ['netns', 'del', ns], { timeout: COMMAND_MS_MAX });
    this.made = [];
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
