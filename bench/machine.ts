// What machine a benchmark ran on, so that its figures can be read and compared later: cores, CPU,
// memory, Node, kernel, the filesystem the clusters write to (os.tmpdir()), how long an fdatasync
// takes there, and how busy the machine was when we began (this is a shared VM).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface FsyncProbe {
  /** What was timed: `samples` × (append `bytes`, fdatasync) on a new file in `dir`. */
  samples: number;
  bytes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  /** Distribution where known ("Debian GNU/Linux 12 (bookworm)"), else os.type(). */
  os: string;
  kernel: string;
  tmpDir: string;
  /** From `df -PT` on tmpDir; "unknown" when df is not there. */
  filesystem: string;
  device: string;
  fsync: FsyncProbe;
  /** 1, 5 and 15 minute load averages when we began. */
  loadAvg: [number, number, number];
}

const FSYNC_SAMPLES = 200;
const FSYNC_BYTES = 4096;

/** The first "model name" of /proc/cpuinfo (x86), else "Model"/"Hardware" (Arm), else undefined. */
export function parseCpuModel(cpuinfo: string): string | undefined {
  for (const key of ['model name', 'Model', 'Hardware']) {
    const m = new RegExp(`^${key}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo);
    if (m !== null) return m[1]!.trim();
  }
  return undefined;
}

/** Device and type from `df -PT DIR`: a header line, then "device type blocks used avail use% mount". */
export function parseDf(output: string): { device: string; filesystem: string } | undefined {
  const line = output.split('\n').slice(1).find((l) => l.trim() !== '');
  if (line === undefined) return undefined;
  const cols = line.trim().split(/\s+/);
  if (cols.length < 7) return undefined;
  return { device: cols[0]!, filesystem: cols[1]! };
}

/** Nearest-rank percentile of a sorted array (p in 0..100). */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/**
 * Times appends of 4 KiB each followed by fdatasync in a fresh file in `dir` (as a write-ahead
 * log does: each sync also commits the file's new size), then removes it.
 */
export function probeFsync(dir: string, samples = FSYNC_SAMPLES, bytes = FSYNC_BYTES): FsyncProbe {
  const tmp = fs.mkdtempSync(path.join(dir, 'flotilla-fsync-'));
  const file = path.join(tmp, 'probe');
  const buf = Buffer.alloc(bytes, 0x5a);
  const ms: number[] = [];
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = process.hrtime.bigint();
      fs.writeSync(fd, buf, 0, bytes, i * bytes);
      fs.fdatasyncSync(fd);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  ms.sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return { samples, bytes, p50Ms: round(percentileSorted(ms, 50)), p99Ms: round(percentileSorted(ms, 99)), maxMs: round(ms[ms.length - 1] ?? 0) };
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (m !== null) return m[1]!;
  } catch {
    // Not Linux, or no os-release: the kernel's own name will do.
  }
  return os.type();
}

/** Everything above, measured now; the fsync probe takes about a second on a slow disk. */
export function describeMachine(): MachineInfo {
  const tmpDir = os.tmpdir();
  let cpuModel: string | undefined;
  try {
    cpuModel = parseCpuModel(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // No /proc: fall back to what Node reports.
  }
  let df: { device: string; filesystem: string } | undefined;
  try {
    df = parseDf(execFileSync('df', ['-PT', tmpDir], { encoding: 'utf8', timeout: 10_000 }));
  } catch {
    // No df (or it failed): say so in the report rather than stop.
  }
  const [l1, l5, l15] = os.loadavg();
  return {
    cores: os.availableParallelism(),
    cpuModel: cpuModel ?? os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    tmpDir,
    filesystem: df?.filesystem ?? 'unknown',
    device: df?.device ?? 'unknown',
    fsync: probeFsync(tmpDir),
    loadAvg: [l1!, l5!, l15!],
  };
}
