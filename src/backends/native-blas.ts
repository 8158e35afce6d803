/**
 * The wasm backend's matrix products on the system's OpenBLAS: native/blas.c, built at install
 * by scripts/build-native.mjs where a C compiler and OpenBLAS are at hand. wasm's SIMD is 128
 * bits wide without fused multiply-add; OpenBLAS uses the CPU's full width and FMA, so products
 * (about half of a training step) ran 1.7–2.4× faster in the steps measured (docs/backends.md,
 * "Native products").
 * Where the module is missing or fails to load, or REVCOL_NATIVE=0, this is null and revcol's
 * wasm kernels run, with the same results to float32 rounding.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { wasmThreadsInfo } from './wasm-threads.js';

export interface NativeBlas {
  /**
   * For each i < batch: out_i [m × n] = op(a_i)·op(b_i), row-major float32 in `heap` (the wasm
   * memory's bytes) at byte offsets; a_i is [k × m] when transA else [m × k], b_i [n × k] when
   * transB else [k × n]; strides in floats between matrices (0: one matrix for every i).
   */
  sgemm(heap: Uint8Array, aOffset: number, bOffset: number, outOffset: number, batch: number, m: number, n: number, k: number,
    transA: number, transB: number, aStride: number, bStride: number, outStride: number): void;
  /** OpenBLAS's threads for later products. */
  setThreads(threads: number): void;
  /** The OpenBLAS loaded: its build configuration, the core it chose and its thread count. */
  describe(): { config: string; core: string; threads: number };
}

const MODULE_PATH = fileURLToPath(new URL('../../native/build/revcol-blas.node', import.meta.url));

let loaded: NativeBlas | null | undefined;
let loadError: string | null = null;
let enabled = process.env.REVCOL_NATIVE !== '0';

function load(): NativeBlas | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (!existsSync(MODULE_PATH)) {
    loadError = 'not built (npm run build:native needs a C compiler and OpenBLAS)';
    return null;
  }
  try {
    loaded = createRequire(import.meta.url)(MODULE_PATH) as NativeBlas;
  } catch (err) {
    loadError = `failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
  return loaded;
}

let threadsSet = 0;

/** OpenBLAS's products, or null where they are off, not built or do not load. */
export function nativeBlas(): NativeBlas | null {
  const blas = enabled ? load() : null;
  // As many threads as the wasm backend's own pool, known once it has started (the module may
  // load before, e.g. for `revcol info`): one by default, as revcol's data-parallel workers take
  // the other cores (REVCOL_THREADS=N asks for N); a count fixed for the run keeps its bits the same.
  const threads = wasmThreadsInfo()?.threads ?? 1;
  if (blas && threads !== threadsSet) {
    blas.setThreads(threads);
    threadsSet = threads;
  }
  return blas;
}

/** Turns the native products on or off (off: revcol's wasm kernels, e.g. to compare); returns the old setting. */
export function setNativeBlas(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

/** One line for `revcol info`: what runs the wasm backend's products, and why not OpenBLAS where it does not. */
export function nativeBlasStatus(): string {
  if (!enabled && process.env.REVCOL_NATIVE === '0') return 'revcol\'s wasm kernels (REVCOL_NATIVE=0)';
  const blas = load();
  if (!blas) return `revcol's wasm kernels (native OpenBLAS products ${loadError})`;
  const { config, core } = blas.describe();
  return `OpenBLAS (${config.split(' ').slice(0, 2).join(' ')}, ${core} kernels${enabled ? '' : '; switched off'})`;
}
