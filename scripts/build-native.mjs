// Builds revcol's native products into native/build/ (Node-API modules, plain C):
//  - revcol-stderr.node (native/stderr.c): holds back what Dawn writes to stderr while webgpu
//    opens an adapter (src/backends/native-stderr.ts); needs only a C compiler;
//  - revcol-blas.node (native/blas.c): the wasm backend's matrix products on the system's OpenBLAS
//    (src/backends/native-blas.ts); needs OpenBLAS too.
// Runs at install (`npm ci`, `npm install`) and as `npm run build:native`. Where a compiler or
// OpenBLAS is missing it says so in one line and exits 0: Dawn's notices then reach the terminal
// when webgpu opens, and revcol runs its own wasm kernels. REVCOL_NATIVE=0 skips the build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
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
mkdirSync(path.join(root, 'native', 'build'), { recursive: true });

/** Compiles `source` into native/build/`name`, trying each library list in turn; returns the one that linked, or the last error. */
function build(name, source, libraries) {
  const out = path.join(root, 'native', 'build', name);
  const tmp = `${out}.${process.pid}.tmp`;
  let lastError = '';
  for (const lib of libraries) {
    const flags = ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', `-I${include}`, path.join(root, 'native', source), '-o', tmp, ...lib];
    // Node-API symbols come from the node binary at load time.
    if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
    try {
      execFileSync(compiler, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(tmp, out); // whole or not at all: a half-written module never sits at `out`
      return { built: path.relative(root, out), lib };
    } catch (err) {
      rmSync(tmp, { force: true });
      const text = String(err.stderr ?? err.message ?? err);
      lastError = err.code === 'ENOENT' ? `no C compiler (${compiler})` : (text.split('\n').find((l) => /error/i.test(l)) ?? text.split('\n')[0]).trim();
    }
  }
  return { error: lastError.slice(0, 160) };
}

const quiet = build('revcol-stderr.node', 'stderr.c', [[]]);
if (quiet.built) say(`stderr capture built (Dawn's notices kept off the terminal when webgpu opens): ${quiet.built}`);
else say(`stderr capture not built (${quiet.error}); Dawn's notices reach the terminal when webgpu opens`);

// The development library's link name first, then the runtime library's soname (Debian's
// libopenblas0 without libopenblas-dev), then macOS Homebrew's keg.
const blas = build('revcol-blas.node', 'blas.c', [['-lopenblas'], ['-l:libopenblas.so.0'], ['-L/opt/homebrew/opt/openblas/lib', '-lopenblas'], ['-L/usr/local/opt/openblas/lib', '-lopenblas']]);
if (blas.built) say(`native products built with OpenBLAS (${blas.lib.join(' ')}): ${blas.built}`);
else say(`native products not built (${blas.error}); the wasm backend runs its own kernels. For them: a C compiler and OpenBLAS (Debian: apt-get install gcc libopenblas0), then npm run build:native`);
