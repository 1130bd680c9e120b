// One server process of a peer system (redis-server, an etcd member), spawned here and stopped
// here by its own PID only: SIGTERM, a bounded wait, then SIGKILL. Should the benchmark exit
// first, a synchronous 'exit' listener sends the SIGKILL. Node's ChildProcess signals a child only
// while it has not been reaped, so a PID recycled after the child ended is never signalled.
import { spawn, type ChildProcess } from 'node:child_process';

/** What the process printed, kept for error reports (the last characters). */
const OUTPUT_KEEP_CHARS = 16_384;
/** From SIGTERM to SIGKILL. */
const STOP_MS_MAX = 10_000;
/** After SIGKILL, for the exit to be seen. */
const KILL_MS_MAX = 5_000;

export class ServerProcess {
  readonly pid: number;
  private readonly proc: ChildProcess;
  private outputText = '';
  private exitText: string | undefined;
  private readonly exited: Promise<void>;
  private readonly onExit = (): void => {
    if (this.running()) this.proc.kill('SIGKILL');
  };

  /** Spawns `binary args` with no stdin and its output captured; throws when it cannot be spawned. */
  constructor(readonly name: string, binary: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc.on('error', (e) => {
      this.exitText ??= `${name}: ${binary}: ${e.message}`;
    });
    if (this.proc.pid === undefined) throw new Error(`${name}: cannot spawn ${binary}`);
    this.pid = this.proc.pid;
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exitText = `${name} (pid ${this.pid}) exited with ${signal ?? `code ${code}`}`;
        process.off('exit', this.onExit);
        resolve();
      });
    });
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        this.outputText = (this.outputText + text).slice(-OUTPUT_KEEP_CHARS);
      });
    }
    process.on('exit', this.onExit);
  }

  running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Why the process is gone (exit code or signal), or undefined while it runs. */
  exitReason(): string | undefined {
    return this.running() ? undefined : this.exitText ?? `${this.name} (pid ${this.pid}) has exited`;
  }

  /** The last OUTPUT_KEEP_CHARS characters the process printed. */
  output(): string {
    return this.outputText;
  }

  /** SIGTERM, then SIGKILL after STOP_MS_MAX; resolves once the process is gone (or KILL_MS_MAX after SIGKILL). */
  async stop(): Promise<void> {
    if (this.running()) {
      this.proc.kill('SIGTERM');
      if (!(await within(this.exited, STOP_MS_MAX)) && this.running()) {
        this.proc.kill('SIGKILL');
        await within(this.exited, KILL_MS_MAX);
      }
    }
    process.off('exit', this.onExit);
  }
}

/** True when `p` settled within `ms`. */
async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** stop() of each, concurrently; the first failure is rethrown after all have been tried. */
export async function stopAll(servers: ServerProcess[]): Promise<void> {
  const results = await Promise.allSettled(servers.map((s) => s.stop()));
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
