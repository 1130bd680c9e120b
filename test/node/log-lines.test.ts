// Log lines as an operator meets them, on real `flotilla start` processes: with standard output
// a pipe, every log line of the main thread and of each shard thread is one JSON object on
// stdout with ISO time, a level name, pid and nodeId (and shard on shard lines), no key twice;
// `--log-format pretty` gives readable lines instead; on a real terminal (a pty from script(1))
// `auto` is pretty; an unknown FLOTILLA_ variable is a warning and the node starts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { resolveLogOutput } from '../../src/log/logger.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/flotilla.js');
const RUN_MS_MAX = 30_000;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Run { stdout: string; stderr: string; code: number | null }

/**
 * Runs `flotilla start` on ephemeral ports until it says where its admin port is, then stops
 * it with SIGTERM and returns everything it printed. `argv0` / `prefix` let a test run it
 * under another program (script(1) for a terminal).
 */
async function runNode(flags: string[], env: Record<string, string>, wrap?: (cmd: string[]) => string[]): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-log-'));
  const cmd = [process.execPath, CLI, 'start', '--data-dir', path.join(dir, 'data'), '--raft-port', '0', '--client-port', '0',
    '--admin-port', '0', '--ws-port', '0', '--websocket', 'off', '--shards', '2', '--groups', '4', ...flags];
  const argv = wrap === undefined ? cmd : wrap(cmd);
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const run: Run = { stdout: '', stderr: '', code: null };
  proc.stdout.setEncoding('utf8').on('data', (d: string) => void (run.stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => void (run.stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  const deadline = Date.now() + RUN_MS_MAX;
  try {
    while (!/node 1 admin http /.test(run.stdout)) {
      if (proc.exitCode !== null || Date.now() > deadline) assert.fail(`the node did not start: ${run.stdout}\n${run.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGTERM');
    const stopped = await Promise.race([exited, new Promise<'late'>((r) => setTimeout(() => r('late'), RUN_MS_MAX))]);
    assert.notEqual(stopped, 'late', 'the node stops on SIGTERM');
    run.code = stopped as number | null;
    return run;
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** JSON.parse that also refuses an object with a key twice (JSON.parse keeps the last silently). */
function parseStrict(text: string): unknown {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (text[i] !== '"') {
      if (i >= text.length) throw new Error('unterminated string');
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') return i++, out;
      for (;;) {
        ws();
        const k = str();
        if (seen.has(k)) throw new Error(`key ${JSON.stringify(k)} appears twice`);
        seen.add(k);
        ws();
        if (text[i++] !== ':') throw new Error('expected :');
        out[k] = value();
        ws();
        const sep = text[i++];
        if (sep === '}') return out;
        if (sep !== ',') throw new Error('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      ws();
      if (text[i] === ']') return i++, out;
      for (;;) {
        out.push(value());
        ws();
        const sep = text[i++];
        if (sep === ']') return out;
        if (sep !== ',') throw new Error('expected , or ]');
      }
    }
    if (c === '"') return str();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (m === null) throw new Error(`unexpected ${JSON.stringify(c)} at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) throw new Error('trailing text');
  return v;
}

/** The plain lines `flotilla start` prints for its user (where it listens, stopping): not log lines. */
const CLI_LINE = /^node 1 (raft|client tcp|client ws|admin http|stopping|stopped)\b/;

test('parseStrict finds a repeated key at any depth, and reads what JSON.parse reads', () => {
  assert.throws(() => parseStrict('{"node":1,"a":{"b":2},"node":1}'), /key "node" appears twice/);
  assert.throws(() => parseStrict('{"a":[{"x":1,"x":2}]}'), /key "x" appears twice/);
  const line = '{"level":"info","time":"2026-01-01T00:00:00.000Z","s":"a\\"b\\\\","n":-1.5e3,"z":[true,null,{}]}';
  assert.deepEqual(parseStrict(line), JSON.parse(line));
});

test('with stdout a pipe: JSON lines on stdout only, ISO time, nodeId and shard, no key twice; FLOTILLA_FOO is a warning', { timeout: 2 * RUN_MS_MAX + 10_000 }, async () => {
  const run = await runNode([], { FLOTILLA_FOO: 'bar' });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(run.stderr, '', 'nothing on stderr: one stream');
  const logs: Record<string, unknown>[] = [];
  for (const line of run.stdout.split('\n')) {
    if (line === '' || CLI_LINE.test(line)) continue;
    let obj: Record<string, unknown>;
    try {
      obj = parseStrict(line) as Record<string, unknown>;
    } catch (e) {
      assert.fail(`not a JSON line without repeated keys (${(e as Error).message}): ${line}`);
    }
    assert.match(String(obj['time']), ISO_TIME, line);
    assert.ok(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(String(obj['level'])), line);
    assert.equal(obj['nodeId'], 1, line);
    assert.equal(typeof obj['pid'], 'number', line);
    assert.equal(typeof obj['msg'], 'string', line);
    logs.push(obj);
  }
  const pids = new Set(logs.map((l) => l['pid']));
  assert.equal(pids.size, 1, 'one process');
  const shardReady = logs.filter((l) => l['msg'] === 'shard ready');
  assert.deepEqual(shardReady.map((l) => l['shard']).sort(), [0, 1], 'each shard thread logs with its shard');
  assert.ok(logs.some((l) => l['msg'] === 'node serving' && l['shard'] === undefined), 'main-thread lines carry no shard');
  assert.ok(logs.some((l) => l['msg'] === 'peer links listening'), 'peer-link lines are among them');
  const warning = logs.find((l) => l['level'] === 'warn' && String(l['msg']).includes('FLOTILLA_FOO'));
  assert.ok(warning !== undefined, `a warning names FLOTILLA_FOO:\n${run.stdout}`);
  assert.match(String(warning['msg']), /not a configuration variable, ignored/);
  assert.ok(logs.some((l) => l['msg'] === 'node stopped'));
});

test('--log-format pretty prints readable lines, not JSON, with the same time, node and shard', { timeout: 2 * RUN_MS_MAX + 10_000 }, async () => {
  const run = await runNode(['--log-format', 'pretty'], {});
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(run.stderr, '');
  const lines = run.stdout.split('\n').filter((l) => l !== '' && !CLI_LINE.test(l));
  assert.ok(lines.length > 0);
  for (const line of lines) {
    assert.ok(!line.startsWith('{'), `not JSON: ${line}`);
    assert.doesNotMatch(line, /\x1b\[/, 'no colours when stdout is not a terminal');
  }
  assert.ok(lines.some((l) => /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO: node 1 shard 1: shard ready \{"groups":2\}$/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^\[[^\]]+Z\] INFO: node 1: node serving /.test(l)), lines.join('\n'));
});

test('logFormat auto: pretty (coloured) on a terminal, JSON on a pipe; NO_COLOR and explicit formats are obeyed', () => {
  assert.deepEqual(resolveLogOutput('info', 'auto', { isTTY: true }, {}), { level: 'info', format: 'pretty', color: true });
  assert.deepEqual(resolveLogOutput('info', 'auto', { isTTY: true }, { NO_COLOR: '1' }), { level: 'info', format: 'pretty', color: false });
  assert.deepEqual(resolveLogOutput('warn', 'auto', {}, {}), { level: 'warn', format: 'json', color: false });
  assert.deepEqual(resolveLogOutput('info', 'json', { isTTY: true }, {}), { level: 'info', format: 'json', color: false });
  assert.deepEqual(resolveLogOutput('info', 'pretty', { isTTY: false }, {}), { level: 'info', format: 'pretty', color: false });
});

const SCRIPT = ['/usr/bin/script', '/bin/script'].find((p) => fs.existsSync(p));

test('on a real terminal (script(1) gives the node a pty) logFormat auto prints readable lines', {
  timeout: 2 * RUN_MS_MAX + 10_000,
  skip: SCRIPT === undefined ? 'script(1) is not installed (util-linux): no pty to test with' : false,
}, async () => {
  const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
  const run = await runNode([], { NO_COLOR: '1' }, (cmd) => [SCRIPT!, '-qefc', cmd.map(quote).join(' '), '/dev/null']);
  const lines = run.stdout.split(/\r?\n/).filter((l) => l !== '' && !CLI_LINE.test(l));
  assert.ok(lines.some((l) => /^\[[^\]]+Z\] INFO: node 1 shard 0: shard ready/.test(l)), lines.join('\n'));
  assert.ok(!lines.some((l) => l.startsWith('{"level"')), 'no JSON lines on a terminal');
});
