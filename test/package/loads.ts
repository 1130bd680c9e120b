// Which of the package's own files a Node process loads when it imports one specifier: the
// process runs with record-loads.ts preloaded, and the answer is the loaded files under
// `root` (the directory holding the package's dist/), as paths relative to it. Not a test file.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RECORDER = fileURLToPath(new URL('./record-loads.js', import.meta.url));
/** An import of the package takes well under a second; this bounds a stuck one. */
const IMPORT_TIMEOUT_MS = 30_000;
const PROBE_PREFIX = '.flotilla-import-probe-';

export interface Loads {
  /** Paths relative to root, '/'-separated, in load order. */
  files: string[];
  /** Milliseconds the import took, measured inside the child. */
  importMs: number;
}

/** Imports `specifier` from a module in `cwd` and reports what was loaded from `root`. */
export function loadsOf(specifier: string, cwd: string, root: string): Loads {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-loads-'));
  try {
    const record = path.join(dir, 'loads.txt');
    fs.writeFileSync(record, '');
    // The importing module sits in cwd so that a bare specifier resolves from there.
    const probe = path.join(cwd, `${PROBE_PREFIX}${process.pid}.mjs`);
    fs.writeFileSync(
      probe,
      `const t0 = performance.now();\nawait import(${JSON.stringify(specifier)});\nprocess.stdout.write(String(performance.now() - t0));\n`,
    );
    try {
      const out = execFileSync(process.execPath, ['--import', RECORDER, probe], {
        cwd,
        env: { ...process.env, RECORD_LOADS_FILE: record },
        encoding: 'utf8',
        timeout: IMPORT_TIMEOUT_MS,
      });
      const rootUrl = `${pathToFileURL(path.resolve(root)).href}/`;
      const files = fs
        .readFileSync(record, 'utf8')
        .split('\n')
        .filter((u) => u.startsWith(rootUrl))
        .map((u) => decodeURIComponent(u.slice(rootUrl.length)));
      return { files: [...new Set(files)], importMs: Number(out) };
    } finally {
      fs.rmSync(probe, { force: true });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The KV codec's modules (src/kv): the types, the command layout, its reader, the result maps. */
const KV_CODEC_FILES = ['kv-types', 'kv-command', 'kv-reader', 'kv-result'];
/** The key map's pure modules (src/cluster) a client routes by: slots, the map, its image, their byte primitives. */
const KEY_MAP_FILES = ['slots', 'key-map', 'key-map-image', 'map-bytes'];

/**
 * Of `files`, the package's own that a client-only import must not load: anything compiled
 * (under `dist`, relative to the same root) but the client, the frame header it shares with
 * the server, the KV codec and the key map's codec. Dependencies (msgpackr) are not counted.
 */
export function serverFiles(files: string[], dist: string): string[] {
  const allowed = (f: string): boolean =>
    f.startsWith(`${dist}/src/client/`) || KV_CODEC_FILES.some((m) => f === `${dist}/src/kv/${m}.js`) ||
    KEY_MAP_FILES.some((m) => f === `${dist}/src/cluster/${m}.js`) || f === `${dist}/src/protocol/client-frame.js`;
  return files.filter((f) => f.startsWith(`${dist}/`) && !path.basename(f).startsWith(PROBE_PREFIX) && !allowed(f));
}
