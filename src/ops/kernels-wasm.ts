/**
 * The fused kernels for the wasm backend. Most fused ops stay composed there (kernels-cpu.ts
 * says why: wasm's own SIMD kernels beat scalar JavaScript passes); these are the ones whose
 * one pass is SIMD wasm of revcol's own (wasm-simd.wat), run on the backend's heap in place,
 * with a JavaScript pass over the same memory where that module cannot start.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { softmaxGradRows } from './kernels-cpu.js';
import { KERNELS } from './names.js';
import { wasmSimdKernels } from './wasm-simd.js';

const offsetOf = (backend: BackendWasm, t: TensorInfo): number => backend.dataIdMap.get(t.dataId)!.memoryOffset;

function softmaxGradInput({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const wasm = backend as BackendWasm;
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  if (y.dtype !== 'float32' || dy.dtype !== 'float32' || !tf.util.arraysEqual(y.shape, dy.shape)) {
    throw new Error(`${KERNELS.softmaxGradInput}: y and dy must be float32 of one shape, got ${y.dtype} ${JSON.stringify(y.shape)} and ${dy.dtype} ${JSON.stringify(dy.shape)}`);
  }
  const out = wasm.makeOutput(y.shape, 'float32');
  const size = tf.util.sizeFromShape(y.shape);
  const cols = y.shape[y.shape.length - 1] ?? 1;
  if (size === 0) return out;
  const simd = wasmSimdKernels(wasm);
  if (simd) {
    simd.softmax_grad(offsetOf(wasm, y), offsetOf(wasm, dy), offsetOf(wasm, out), size / cols, cols);
  } else {
    // Views after the allocation: it may have replaced the heap.
    softmaxGradRows(wasm.typedArrayFromHeap(y) as Float32Array, wasm.typedArrayFromHeap(dy) as Float32Array, wasm.typedArrayFromHeap(out) as Float32Array, cols);
  }
  return out;
}

export function registerWasmFusedKernels(): void {
  if (!tf.getKernel(KERNELS.softmaxGradInput, 'wasm')) {
    tf.registerKernel({ kernelName: KERNELS.softmaxGradInput, backendName: 'wasm', kernelFunc: softmaxGradInput as unknown as tf.KernelFunc });
  }
}
