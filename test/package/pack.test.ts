// The package as a dependency: `npm pack` of the repository's files (no dist/, as in a fresh
// clone) builds the package itself (prepack), ships only what a user needs, and the tarball,
// installed into a new project, type-checks a TypeScript program with `tsc --noEmit`, runs a
// node and a client from the installed copy, and keeps `flotilla/client` free of server code.
//
// It packs a copy of the repository, not the repository itself: prepack replaces dist/ with
// the package build, and this suite runs from the repository's dist/ (tests included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadsOf, serverFiles } from './loads.js';

const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const NPM = 'npm';
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
/** Whole test; packing builds the package and installing reads npm's cache. */
const TEST_TIMEOUT_MS = 240_000;
/** One npm or tsc step. */
const STEP_TIMEOUT_MS = 120_000;
/** The program that starts a node from the package and uses it. */
const RUN_TIMEOUT_MS = 60_000;
/** The tarball's size bound: what it holds today with room to grow, far below a tree with tests. */
const TARBALL_BYTES_MAX = 1024 * 1024;
/** Top-level entries of the repository that a fresh clone does not have. */
const NOT_IN_A_CLONE = new Set(['node_modules', 'dist', '.git', 'data']);

interface PackReport {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string }[];
}

function run(cmd: string, args: string[], cwd: string, timeout = STEP_TIMEOUT_MS): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { status?: number; signal?: string; stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed (${err.signal ?? `exit ${err.status}`}):\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

test('npm pack builds a package that installs, type-checks and runs', { timeout: TEST_TIMEOUT_MS }, (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-pack-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // A copy of the repository as a clone has it, with the repository's node_modules for the build.
  const clone = path.join(tmp, 'clone');
  fs.mkdirSync(clone);
  for (const entry of fs.readdirSync(ROOT)) {
    if (NOT_IN_A_CLONE.has(entry)) continue;
    fs.cpSync(path.join(ROOT, entry), path.join(clone, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');

  const out = path.join(tmp, 'tarball');
  fs.mkdirSync(out);
  const report = (JSON.parse(run(NPM, ['pack', '--json', '--pack-destination', out], clone)) as PackReport[])[0]!;
  const files = report.files.map((f) => f.path);
  t.diagnostic(`tarball ${report.filename}: ${report.entryCount} files, ${report.size} bytes (${report.unpackedSize} unpacked)`);
  for (const want of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'dist/src/cli/flotilla.js', 'dist/src/shard/shard-task.js']) {
    assert.ok(files.includes(want), `the tarball holds ${want}`);
  }
  const unwanted = files.filter(
    (f) =>
      f.endsWith('.map') ||
      (f.endsWith('.ts') && !f.endsWith('.d.ts')) ||
      /^(src|test|bench|native-free|docs|\.ci)\//.test(f) ||
      f.startsWith('dist/test/') ||
      f === 'package-lock.json',
  );
  assert.deepEqual(unwanted, [], 'no sources, tests, CI scripts or source maps');
  // Every compiled file is the .js or .d.ts of a module of src/ or bench/; the rest is the README,
  // package.json and config/ examples. Nothing else (a stray build output, a fixture) gets in.
  const stray = files.filter((f) => {
    const m = /^dist\/((?:src|bench)\/.+)\.(?:js|d\.ts)$/.exec(f);
    if (m !== null) return !fs.existsSync(path.join(ROOT, `${m[1]}.ts`));
    return !(f === 'README.md' || f === 'package.json' || f.startsWith('config/'));
  });
  assert.deepEqual(stray, [], `files that are neither a compiled module nor README, package.json or config/ (${report.entryCount} files)`);
  assert.ok(report.size <= TARBALL_BYTES_MAX, `${report.size} bytes`);

  // A new project that depends on the tarball. --ignore-scripts: the package needs no install
  // script, and the dependencies' optional native builds are not what this test is about.
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  run(NPM, ['install', path.join(out, report.filename), '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--no-package-lock'], app);

  // Types come through `exports`: a program using both entries compiles, and a wrong use of
  // them does not (the types are real, not `any`).
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
      skipLibCheck: false, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    },
  };
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ ...tsconfig, files: ['good.ts'] }));
  fs.writeFileSync(path.join(app, 'tsconfig.bad.json'), JSON.stringify({ ...tsconfig, files: ['bad.ts'] }));
  fs.writeFileSync(path.join(app, 'good.ts'), GOOD_TS);
  fs.writeFileSync(path.join(app, 'bad.ts'), BAD_TS);
  run(TSC, ['-p', 'tsconfig.json'], app);
  const bad = spawnSync(TSC, ['-p', 'tsconfig.bad.json'], { cwd: app, encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
  assert.notEqual(bad.status, 0, 'a type error in the consumer is reported');
  assert.match(bad.stdout, /bad\.ts.*TS2322/, bad.stdout);
  assert.doesNotMatch(bad.stdout, /TS7016/, 'declarations are found');

  // The installed package runs: a node made with createNode, a client from flotilla/client.
  fs.writeFileSync(path.join(app, 'run.mjs'), RUN_MJS);
  const dataDir = path.join(tmp, 'data');
  const got = JSON.parse(run(process.execPath, ['run.mjs', dataDir], app, RUN_TIMEOUT_MS)) as unknown;
  assert.deepEqual(got, { value: 'teal', deleted: true, after: null });

  // The bin works from the install.
  assert.match(run(path.join(app, 'node_modules', '.bin', 'flotilla'), ['--help'], app), /flotilla/);

  // And flotilla/client, installed, loads nothing of the server.
  const loads = loadsOf('flotilla/client', app, path.join(app, 'node_modules', 'flotilla'));
  assert.ok(loads.files.includes('dist/src/client/index.js'), loads.files.join(', '));
  assert.deepEqual(serverFiles(loads.files, 'dist'), []);
  t.diagnostic(`installed flotilla/client imports in ${loads.importMs.toFixed(1)} ms (${loads.files.length} files of the package)`);
});

const GOOD_TS = `import { FlotillaClient, FlotillaError, decodeKvResult, encodeCommand, type ClientOptions, type KvResult } from 'flotilla/client';
import { createNode, ConfigError, type CreateNodeOptions, type FlotillaNode, type StateMachine } from 'flotilla';

const options: ClientOptions = { servers: ['127.0.0.1:7002'] };
const nodeOptions: CreateNodeOptions = { dataDir: '/tmp/never-used', groups: 8 };
const machine: StateMachine = {
  apply: (command: Uint8Array, _index: number): Uint8Array => command,
  query: (command: Uint8Array): Uint8Array => command,
  snapshot: (): Uint8Array => new Uint8Array(0),
  restore: (_image: Uint8Array): void => undefined,
};

export async function use(): Promise<string | null> {
  const node: FlotillaNode = await createNode(nodeOptions);
  const client = await FlotillaClient.connect({ ...options, servers: [\`127.0.0.1:\${node.ports.client}\`] });
  await client.put('k', 'v');
  const r: KvResult = decodeKvResult(await client.command(client.groupOf('k'), encodeCommand({ op: 'get', key: 'k' }), { read: true }));
  if (r.op === 'get') console.log(r.value);
  const e: FlotillaError | ConfigError | null = null;
  void e;
  void machine;
  const value = await client.get('k');
  await client.close();
  await node.stop();
  return value;
}
`;

const BAD_TS = `import { FlotillaClient } from 'flotilla/client';

export async function use(client: FlotillaClient): Promise<number> {
  const n: number = await client.get('k');
  return n;
}
`;

const RUN_MJS = `import { FlotillaClient } from 'flotilla/client';
import { createNode } from 'flotilla';

const node = await createNode({ dataDir: process.argv[2], groups: 4, shards: 1, tickMs: 20 });
let client;
try {
  client = await FlotillaClient.connect({ servers: ['127.0.0.1:' + node.ports.client], requestTimeoutMs: 20000 });
  await client.put('colour', 'teal');
  const value = await client.get('colour');
  const deleted = await client.delete('colour');
  const after = await client.get('colour');
  process.stdout.write(JSON.stringify({ value, deleted, after }));
} finally {
  await client?.close();
  await node.stop();
}
`;
