// The package as a user gets it: `npm pack`, then `npm install` of the tarball into a fresh
// project, which imports revcol, runs a tiny forward pass, tokenizes, loads sharp, and runs
// `npx revcol --help`. Nothing comes from the network: npm reads every package from the npm
// cache that `npm ci` filled.
//
// `npm install --offline` alone cannot do this: `npm ci` caches tarballs but not the registry's
// package documents (packuments), which a fresh install needs to resolve version ranges. So the
// test serves packuments on 127.0.0.1, built from package-lock.json, which lists every version
// `npm ci` installed; npm resolves revcol's ranges against them exactly as against the registry,
// without this project's root-only settings (a root `overrides` does not reach a dependent, the
// bug this test guards against: a range no locked version satisfies fails the install). Tarballs
// come out of the cache by their integrity, or, if npm asks the server, from the cache's files.
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-install-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
/**
 * Left out of the served registry: the optional tfjs-node-gpu, whose install script downloads
 * libtensorflow. npm skips an optional dependency it cannot fetch, as it does one whose install fails.
 */
const NOT_SERVED = new Set(['@tensorflow/tfjs-node-gpu']);

let server: Server | undefined;
afterAll(() => {
  server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking the event loop (the registry server lives in this process). */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The environment without npm settings inherited from a surrounding `npm test`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'REVCOL_CLI' && !k.startsWith('VITEST')) env[k] = v;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

function expectOk(result: Run, what: string): void {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
}

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  link?: boolean;
  [key: string]: unknown;
}

/**
 * Registry documents for every package version in package-lock.json, and the names npm may ask
 * for that are not there: optional peer dependencies nobody installed (npm looks them up and
 * carries on without them) and NOT_SERVED.
 */
function packuments(base: string): { docs: Map<string, Record<string, unknown>>; integrity: Map<string, string>; optional: Set<string> } {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const docs = new Map<string, Record<string, unknown>>();
  const integrity = new Map<string, string>();
  const optional = new Set(NOT_SERVED);
  const fields = ['dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines', 'os', 'cpu', 'libc', 'license'];
  for (const [key, entry] of Object.entries(lock.packages)) {
    const meta = (entry.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>;
    for (const [peer, m] of Object.entries(meta)) if (m.optional) optional.add(peer);
    if (!key.includes('node_modules/') || entry.link || !entry.version || !entry.integrity) continue;
    if (entry.resolved && !entry.resolved.startsWith('https://registry.npmjs.org/')) continue;
    const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (NOT_SERVED.has(name)) continue;
    const doc = docs.get(name) ?? { name, 'dist-tags': {}, versions: {} as Record<string, unknown> };
    const manifest: Record<string, unknown> = { name, version: entry.version };
    for (const f of fields) if (entry[f] !== undefined) manifest[f] = entry[f];
    const tarball = `${base}/-/tarball/${encodeURIComponent(name)}/${entry.version}.tgz`;
    manifest.dist = { tarball, integrity: entry.integrity };
    (doc.versions as Record<string, unknown>)[entry.version] = manifest;
    integrity.set(tarball.slice(base.length), entry.integrity);
    docs.set(name, doc);
  }
  for (const doc of docs.values()) {
    const versions = Object.keys(doc.versions as object).filter((v) => !v.includes('-'));
    versions.sort((a, b) => {
      const [x, y] = [a, b].map((v) => v.split('.').map(Number));
      return x![0]! - y![0]! || x![1]! - y![1]! || x![2]! - y![2]!;
    });
    if (versions.length > 0) doc['dist-tags'] = { latest: versions.at(-1) };
  }
  for (const name of docs.keys()) optional.delete(name);
  return { docs, integrity, optional };
}

/** Where cacache keeps content with this integrity. */
function cachedContent(cacheDir: string, sri: string): string | null {
  const [algorithm, b64] = sri.split(' ')[0]!.split('-', 2) as [string, string];
  const hex = Buffer.from(b64, 'base64').toString('hex');
  const file = path.join(cacheDir, '_cacache', 'content-v2', algorithm, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
  return existsSync(file) ? file : null;
}

async function startRegistry(cacheDir: string): Promise<{ url: string; misses: string[]; optional: Set<string> }> {
  const misses: string[] = [];
  let served: ReturnType<typeof packuments> | undefined;
  server = createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    // Never let npm store these documents in the user's cache.
    res.setHeader('cache-control', 'no-store');
    const sri = served!.integrity.get(url);
    if (sri) {
      const file = cachedContent(cacheDir, sri);
      if (file) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        createReadStream(file).pipe(res);
        return;
      }
    } else {
      const doc = served!.docs.get(url.slice(1));
      if (doc) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(doc));
        return;
      }
    }
    misses.push(url);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  served = packuments(url);
  return { url, misses, optional: served.optional };
}

/** What a user would write: the public names, the re-exported tf, a tiny forward pass, the shipped tokenizer. */
const CHECK = `
import { createRequire } from 'node:module';
import { tf, RevColumns, Fusion, Body, Linear, RandomStream, TextClassifier, TextTokenizer, useBackend } from 'revcol';

if (typeof TextClassifier.load !== 'function') throw new Error('TextClassifier.load missing');
const active = await useBackend('wasm');
const rng = new RandomStream(7);
class Join extends Fusion {
  constructor(info) {
    super();
    this.down = this.child('down', new Linear(info.downChannels, info.channels, rng));
    this.up = info.upChannels && !info.firstColumn ? this.child('up', new Linear(info.upChannels, info.channels, rng)) : null;
  }
  forward(down, up) {
    return tf.tidy(() => (up ? tf.add(this.down.forward(down), this.up.forward(up)) : this.down.forward(down)));
  }
}
class Mlp extends Body {
  constructor(info) {
    super();
    this.lin = this.child('lin', new Linear(info.channels, info.channels, rng));
  }
  forward(x) {
    return tf.tidy(() => tf.add(x, tf.relu(this.lin.forward(x))));
  }
}
const columns = new RevColumns({ columns: 2, channels: [4, 6], fusion: (i) => new Join(i), body: (i) => new Mlp(i) });
const outputs = columns.forward(tf.ones([3, 4]));
const last = outputs.at(-1).at(-1);
const values = await last.data();
if (!values.every(Number.isFinite)) throw new Error('forward pass gave non-finite values');

const tokenizer = await TextTokenizer.load();
const batch = tokenizer.encode(['Hello, World!'], 8);
const ids = Array.from(await batch.inputIds.data());

// sharp (image folders, curve plots) must load from its prebuilt binaries.
const sharp = createRequire(import.meta.resolve('revcol'))('sharp');
const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#808080' } }).png().toBuffer();

console.log(JSON.stringify({ backend: active.name, shape: last.shape, ids, png: png.length > 0 }));
`;

it(
  'packs, installs into a fresh project from the npm cache alone, imports, runs a forward pass and the CLI',
  async () => {
    // The cache npm ci used: `npm test` passes its own settings down as npm_config_*.
    const cacheDir = process.env.npm_config_cache || (await run(npm, ['config', 'get', 'cache'], root, process.env)).stdout.trim();
    expect(existsSync(path.join(cacheDir, '_cacache'))).toBe(true);

    // npm pack runs prepare, which builds dist/ (as npm ci did).
    const packDir = path.join(tmp, 'pack');
    mkdirSync(packDir);
    expectOk(await run(npm, ['pack', '--pack-destination', packDir, '--loglevel=warn'], root, cleanEnv()), 'npm pack');
    const tarball = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeTruthy();

    const registry = await startRegistry(cacheDir);
    const app = path.join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), `${JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
    const install = await run(
      npm,
      ['install', path.join(packDir, tarball!), `--registry=${registry.url}/`, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=warn'],
      app,
      cleanEnv({ npm_config_cache: cacheDir }),
    );
    expectOk(install, `npm install (registry misses: ${registry.misses.join(', ') || 'none'})`);
    // Every tarball was there, and no package beyond optional ones was asked for and missing.
    expect(registry.misses.filter((m) => !registry.optional.has(m.slice(1)))).toEqual([]);
    expect(existsSync(path.join(app, 'node_modules', 'revcol', 'dist', 'index.js'))).toBe(true);
    // Native products are built at install wherever they build here (a compiler and OpenBLAS).
    const nativeHere = existsSync(path.join(root, 'native', 'build', 'revcol-blas.node'));
    expect(existsSync(path.join(app, 'node_modules', 'revcol', 'native', 'build', 'revcol-blas.node'))).toBe(nativeHere);
    // and the stderr capture wherever a compiler is (Dawn's notices held back when webgpu opens)
    const captureHere = existsSync(path.join(root, 'native', 'build', 'revcol-stderr.node'));
    expect(existsSync(path.join(app, 'node_modules', 'revcol', 'native', 'build', 'revcol-stderr.node'))).toBe(captureHere);
    // The shipped pre-trained model travels with the package (the spam task starts from it).
    expect(existsSync(path.join(app, 'node_modules', 'revcol', 'pretrained', 'spam-mlm', 'card.json'))).toBe(true);
    // The tokenizer library is pure JavaScript: no onnxruntime, and one sharp (revcol's own, 0.34).
    expect(existsSync(path.join(app, 'node_modules', 'onnxruntime-node'))).toBe(false);
    const sharpVersion = JSON.parse(readFileSync(path.join(app, 'node_modules', 'sharp', 'package.json'), 'utf8')).version as string;
    expect(sharpVersion).toMatch(/^0\.34\./);

    writeFileSync(path.join(app, 'check.mjs'), CHECK);
    const check = await run(process.execPath, ['check.mjs'], app);
    expectOk(check, 'node check.mjs');
    const report = JSON.parse(check.stdout.trim().split('\n').at(-1)!) as { backend: string; shape: number[]; ids: number[]; png: boolean };
    expect(report).toEqual({ backend: 'wasm', shape: [3, 6], ids: [101, 7592, 1010, 2088, 999, 102, 0, 0], png: true });

    // Offline: a revcol missing from the project fails here instead of being fetched.
    const help = await run(npx, ['revcol', '--help'], app, cleanEnv({ npm_config_offline: 'true' }));
    expectOk(help, 'npx revcol --help');
    expect(help.stdout).toMatch(/^Usage: revcol/m);
    expect(help.stdout).toMatch(/fine-tune/);
  },
  600_000,
);
