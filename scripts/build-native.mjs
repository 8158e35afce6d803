// Builds native/blas.c into native/build/revcol-blas.node: the wasm backend's matrix products on
// the system's OpenBLAS (src/backends/native-blas.ts). Runs at install (`npm ci`, `npm install`)
// and as `npm run build:native`. It needs a C compiler and OpenBLAS (Debian: `apt-get install
// gcc libopenblas0`); where either is missing it says so in one line and exits 0, and revcol
// runs its own wasm kernels instead. REVCOL_NATIVE=0 skips the build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, 'native', 'build', 'revcol-blas.node');
const say = (line) => console.log(`revcol: ${line}`);

if (process.env.REVCOL_NATIVE === '0') {
  say('native products not built (REVCOL_NATIVE=0); the wasm backend runs its own kernels');
  process.exit(0);
}
if (process.platform === 'win32') {
  say('native products are not built on Windows; the wasm backend runs its own kernels');
  process.exit(0);
}

let include;
try {
  include = path.join(path.dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
} catch {
  say('native products not built (the node-api-headers package is missing); the wasm backend runs its own kernels');
  process.exit(0);
}

const compiler = process.env.CC || 'cc';
// The development library's link name first, then the runtime library's soname (Debian's
// libopenblas0 without libopenblas-dev), then macOS Homebrew's keg.
const libraries = [['-lopenblas'], ['-l:libopenblas.so.0'], ['-L/opt/homebrew/opt/openblas/lib', '-lopenblas'], ['-L/usr/local/opt/openblas/lib', '-lopenblas']];
const tmp = `${out}.${process.pid}.tmp`;
mkdirSync(path.dirname(out), { recursive: true });
let lastError = '';
for (const lib of libraries) {
  const flags = ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', `-I${include}`, path.join(root, 'native', 'blas.c'), '-o', tmp, ...lib];
  // Node-API symbols come from the node binary at load time.
  if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
  try {
    execFileSync(compiler, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmp, out); // whole or not at all: a half-written module never sits at `out`
    say(`native products built with OpenBLAS (${lib.join(' ')}): ${path.relative(root, out)}`);
    process.exit(0);
  } catch (err) {
    rmSync(tmp, { force: true });
    const text = String(err.stderr ?? err.message ?? err);
    lastError = err.code === 'ENOENT' ? `no C compiler (${compiler})` : (text.split('\n').find((l) => /error/i.test(l)) ?? text.split('\n')[0]).trim();
  }
}
say(`native products not built (${lastError.slice(0, 160)}); the wasm backend runs its own kernels. For them: a C compiler and OpenBLAS (Debian: apt-get install gcc libopenblas0), then npm run build:native`);
