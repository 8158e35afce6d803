/**
 * The fused kernels for the wasm backend. Most fused ops stay composed there (kernels-cpu.ts
 * says why: wasm's own SIMD kernels beat scalar JavaScript passes); these are the ones whose
 * one pass is SIMD wasm of revcol's own (wasm-simd.wat), run on the backend's heap in place,
 * with a JavaScript pass over the same memory where that module cannot start.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { geluGradRange, geluRange, softmaxGradRows } from './kernels-cpu.js';
import { KERNELS } from './names.js';
import { wasmSimdKernels } from './wasm-simd.js';

const offsetOf = (backend: BackendWasm, t: TensorInfo): number => backend.dataIdMap.get(t.dataId)!.memoryOffset;

function softmaxGradInput({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const wasm = backend as BackendWasm;
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  requireFloat(KERNELS.softmaxGradInput, y, dy);
  const out = wasm.makeOutput(y.shape, 'float32');
  const size = tf.util.sizeFromShape(y.shape);
  const cols = y.shape[y.shape.length - 1] ?? 1;
  if (size === 0) return out;
  const simd = wasmSimdKernels(wasm);
  if (simd) {
    simd.softmax_grad(offsetOf(wasm, y), offsetOf(wasm, dy), offsetOf(wasm, out), size / cols, cols);
  } else {
    // Views after the allocation: it may have replaced the heap.
    softmaxGradRows(floats(wasm, y), floats(wasm, dy), floats(wasm, out), cols);
  }
  return out;
}

function floats(wasm: BackendWasm, t: TensorInfo): Float32Array {
  return wasm.typedArrayFromHeap(t) as Float32Array;
}

function requireFloat(kernel: string, ...ts: TensorInfo[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, ts[0]!.shape)) throw new Error(`${kernel}: inputs must be float32 of one shape, got ${ts.map((u) => `${u.dtype} ${JSON.stringify(u.shape)}`).join(' and ')}`);
  }
}

/** GELU: groups of 4 in SIMD, the last n mod 4 (or all, without the module) in JavaScript. */
function gelu({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const wasm = backend as BackendWasm;
  const { x } = inputs as { x: TensorInfo };
  requireFloat(KERNELS.gelu, x);
  const out = wasm.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  const simd = n > 0 ? wasmSimdKernels(wasm) : null;
  const n4 = simd ? n & ~3 : 0;
  if (simd && n4 > 0) simd.gelu(offsetOf(wasm, x), offsetOf(wasm, out), n4);
  if (n4 < n) geluRange(floats(wasm, x), floats(wasm, out), n4, n);
  return out;
}

function geluGrad({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  requireFloat(KERNELS.geluGrad, x, dy);
  const out = wasm.makeOutput(x.shape, 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  const simd = n > 0 ? wasmSimdKernels(wasm) : null;
  const n4 = simd ? n & ~3 : 0;
  if (simd && n4 > 0) simd.gelu_grad(offsetOf(wasm, x), offsetOf(wasm, dy), offsetOf(wasm, out), n4);
  if (n4 < n) geluGradRange(floats(wasm, x), floats(wasm, dy), floats(wasm, out), n4, n);
  return out;
}

const WASM_FUSED: Array<[string, (args: { inputs: tf.NamedTensorInfoMap; backend: unknown }) => TensorInfo]> = [
  [KERNELS.softmaxGradInput, softmaxGradInput],
  [KERNELS.gelu, gelu],
  [KERNELS.geluGrad, geluGrad],
];

/** The fused kernels wasm has (the others run composed there). */
export const WASM_FUSED_KERNELS: readonly string[] = WASM_FUSED.map(([name]) => name);

export function registerWasmFusedKernels(): void {
  for (const [kernelName, kernelFunc] of WASM_FUSED) {
    if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
