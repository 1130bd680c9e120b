// The peer systems of the benchmark, from Debian's own packages: redis-server (Redis 7.0 on
// bookworm) and etcd-server (etcd 3.4). Missing ones are installed with apt-get, which needs
// root; nothing is downloaded from anywhere else.
//
// Installing redis-server may try to start the system's Redis service on port 6379 (its postinst
// asks invoke-rc.d). That service is not ours and is left alone: the benchmark starts its own
// redis-server processes on ports of its own and signals only their PIDs. Where
// /usr/sbin/policy-rc.d forbids starting services (most containers), none is started at all.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';

export type Peer = 'redis' | 'etcd';

export interface PeerBinaries {
  redisServer: string;
  /** Where etcd is; checked only when asked for (as is redisServer). */
  etcd: string;
}

const REDIS_SERVER = '/usr/bin/redis-server';
const ETCD = '/usr/bin/etcd';
const APT_GET = '/usr/bin/apt-get';
/** apt-get update or install, each; the mirror may be slow but not this slow. */
const APT_MS_MAX = 10 * 60_000;
const VERSION_MS_MAX = 10_000;

interface PeerPackage {
  binary: string;
  debianPackage: string;
  /** Reads the version from what `binary --version` prints. */
  version: (printed: string) => string | undefined;
  /** The major.minor the drivers were written against; another one is reported, not refused. */
  expected: string;
}

const PACKAGES: Record<Peer, PeerPackage> = {
  // "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
  redis: { binary: REDIS_SERVER, debianPackage: 'redis-server', version: (s) => /\bv=(\d+\.\d+\.\d+)/.exec(s)?.[1], expected: '7.' },
  // "etcd Version: 3.4.23\nGit SHA: Not provided ...\nGo Version: go1.19.8 ..."
  etcd: { binary: ETCD, debianPackage: 'etcd-server', version: (s) => /etcd Version:\s*(\S+)/.exec(s)?.[1], expected: '3.4.' },
};

/**
 * The paths of the peers in `which`, installing those missing with apt-get (one `apt-get update`
 * first). Prints, on stderr, what it installs and the version of each peer found.
 */
export async function ensurePeers(which: Peer[]): Promise<PeerBinaries> {
  const missing = which.filter((p) => !isExecutable(PACKAGES[p].binary));
  if (missing.length > 0) {
    if (!isExecutable(APT_GET)) {
      throw new Error(`${missing.map((p) => PACKAGES[p].binary).join(' and ')} not found, and there is no ${APT_GET} to install ${missing.map((p) => PACKAGES[p].debianPackage).join(' ')}; install them yourself`);
    }
    if (process.getuid?.() !== 0) {
      throw new Error(`${missing.map((p) => PACKAGES[p].binary).join(' and ')} not found; installing them needs root: sudo apt-get install -y --no-install-recommends ${missing.map((p) => PACKAGES[p].debianPackage).join(' ')}`);
    }
    await apt(['update']);
    await apt(['install', '-y', '--no-install-recommends', ...missing.map((p) => PACKAGES[p].debianPackage)]);
    for (const p of missing) {
      if (!isExecutable(PACKAGES[p].binary)) throw new Error(`apt-get installed ${PACKAGES[p].debianPackage} but ${PACKAGES[p].binary} is still not there`);
    }
  }
  for (const p of which) {
    const pkg = PACKAGES[p];
    const version = versionOf(pkg);
    const note = version.startsWith(pkg.expected) ? '' : ` (the driver was written against ${pkg.expected}x)`;
    console.error(`${p}: ${pkg.binary} version ${version}${note}`);
  }
  return { redisServer: REDIS_SERVER, etcd: ETCD };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function versionOf(pkg: PeerPackage): string {
  let printed: string;
  try {
    printed = execFileSync(pkg.binary, ['--version'], { encoding: 'utf8', timeout: VERSION_MS_MAX, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`${pkg.binary} --version failed: ${(e as Error).message}`);
  }
  const version = pkg.version(printed);
  if (version === undefined) throw new Error(`cannot read a version from what ${pkg.binary} --version printed: ${printed.slice(0, 200)}`);
  return version;
}

/** Runs apt-get with its output passed through to stderr; fails on a non-zero exit or after APT_MS_MAX. */
function apt(args: string[]): Promise<void> {
  console.error(`running: DEBIAN_FRONTEND=noninteractive apt-get ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const p = spawn(APT_GET, args, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 2, 2],
      timeout: APT_MS_MAX,
      killSignal: 'SIGTERM',
    });
    p.on('error', (e) => reject(new Error(`apt-get ${args[0]} could not run: ${e.message}`)));
    p.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`apt-get ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}
