// Runs a test body with revcol's SIMD wasm kernels switched on or off (off: the paths they
// replace), and puts the setting back afterwards, even when the body throws.
import { setWasmSimdKernels } from '../../src/ops/wasm-simd.js';

export async function withWasmSimdKernels<T>(on: boolean, body: () => T | Promise<T>): Promise<T> {
  const old = setWasmSimdKernels(on);
  try {
    return await body();
  } finally {
    setWasmSimdKernels(old);
  }
}
