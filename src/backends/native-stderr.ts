/**
 * Dawn's notices kept off the terminal while webgpu opens an adapter in this process.
 *
 * Dawn prints "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced …" (and
 * the same for storage buffers) from C++ straight to fd 2, synchronously inside
 * `requestAdapter()`, on lavapipe and on recent NVIDIA drivers: two lines on every command that
 * trains on the GPU. The probe already asks in a child process and filters its stderr
 * (backends/index.ts); the backend itself must open Dawn here. native/stderr.c, built at install
 * where a C compiler is, points fd 2 at a file for the length of that one call; the known
 * notices are dropped and any other line is written on as it was. Without the module (no
 * compiler, Windows, REVCOL_NATIVE=0) or with REVCOL_DAWN_LOG=1, the call runs as it is.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dawnLogWanted, DAWN_LIMIT_NOTICE } from './quiet-dawn.js';

interface StderrCapture {
  /** fd 2 into a temporary file from now on; false where that could not be done (nothing changed). */
  begin(): boolean;
  /** fd 2 back; what was written to it since begin(). */
  end(): string;
}

const MODULE_PATH = fileURLToPath(new URL('../../native/build/revcol-stderr.node', import.meta.url));

let loaded: StderrCapture | null | undefined;

function load(): StderrCapture | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.REVCOL_NATIVE === '0' || !existsSync(MODULE_PATH)) return null;
  try {
    loaded = createRequire(import.meta.url)(MODULE_PATH) as StderrCapture;
  } catch {
    // a module built for another platform, say: Dawn's notices then show, as without it
  }
  return loaded;
}

/** Whether Dawn's notices can be held back here (the module is built and loads). */
export function stderrCaptureAvailable(): boolean {
  return load() !== null;
}

/**
 * Runs `call` (synchronous: what it starts asynchronously is not covered) with what native code
 * writes to fd 2 held back; Dawn's known limit notices are dropped, every other line is written
 * to stderr afterwards. Returns the call's value; rethrows its error after fd 2 is back.
 */
export function withDawnNoticesHeld<T>(call: () => T): T {
  const capture = dawnLogWanted() ? null : load();
  if (!capture || !capture.begin()) return call();
  try {
    return call();
  } finally {
    const text = capture.end();
    const kept = text.split('\n').filter((line) => line.trim() !== '' && !DAWN_LIMIT_NOTICE.test(line.trim()));
    if (kept.length > 0) process.stderr.write(`${kept.join('\n')}\n`);
  }
}
