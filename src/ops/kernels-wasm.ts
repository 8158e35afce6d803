/**
 * The fused kernels for the wasm backend. Most fused ops stay composed there (kernels-cpu.ts
 * says why: wasm's own SIMD kernels beat scalar JavaScript passes); these are the ones whose
 * one pass is SIMD wasm of revcol's own (wasm-simd.wat), run on the backend's heap in place,
 * with a JavaScript pass over the same memory where that module cannot start.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { geluGradRange, geluRange, layerNormGradRows, layerNormRows, softmaxGradRows } from './kernels-cpu.js';
import { KERNELS } from './names.js';
import { heapOffset, type WasmSimdKernels, wasmSimdKernels } from './wasm-simd.js';

type WasmKernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function floats(wasm: BackendWasm, t: TensorInfo): Float32Array {
  return wasm.typedArrayFromHeap(t) as Float32Array;
}

function requireFloat(kernel: string, ...ts: TensorInfo[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, ts[0]!.shape)) throw new Error(`${kernel}: inputs must be float32 of one shape, got ${ts.map((u) => `${u.dtype} ${JSON.stringify(u.shape)}`).join(' and ')}`);
  }
}

function softmaxGradInput({ inputs, backend }: WasmKernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  requireFloat(KERNELS.softmaxGradInput, y, dy);
  const out = wasm.makeOutput(y.shape, 'float32');
  const size = tf.util.sizeFromShape(y.shape);
  const cols = y.shape[y.shape.length - 1] ?? 1;
  if (size === 0) return out;
  const simd = wasmSimdKernels(wasm);
  if (simd) {
    simd.softmax_grad(heapOffset(wasm, y), heapOffset(wasm, dy), heapOffset(wasm, out), size / cols, cols);
  } else {
    // Views after the allocation: it may have replaced the heap.
    softmaxGradRows(floats(wasm, y), floats(wasm, dy), floats(wasm, out), cols);
  }
  return out;
}

/**
 * An element-wise kernel over same-shaped float32 inputs (named in order), output of their shape:
 * the first n − n mod 4 elements by the SIMD module, the rest (all of them without the module)
 * by the JavaScript range function.
 */
function elementwise(
  kernel: string,
  names: string[],
  simd: (kernels: WasmSimdKernels, offsets: number[], n4: number) => void,
  js: (arrays: Float32Array[], from: number, to: number) => void,
): (args: WasmKernelArgs) => TensorInfo {
  return ({ inputs, backend }) => {
    const wasm = backend as BackendWasm;
    const ins = names.map((n) => inputs[n] as TensorInfo);
    requireFloat(kernel, ...ins);
    const out = wasm.makeOutput(ins[0]!.shape, 'float32');
    const n = tf.util.sizeFromShape(out.shape);
    const kernels = n > 0 ? wasmSimdKernels(wasm) : null;
    const n4 = kernels ? n & ~3 : 0;
    if (kernels && n4 > 0) simd(kernels, [...ins, out].map((t) => heapOffset(wasm, t)), n4);
    // Views after the allocation: it may have replaced the heap.
    if (n4 < n) js([...ins, out].map((t) => floats(wasm, t)), n4, n);
    return out;
  };
}

const gelu = elementwise(KERNELS.gelu, ['x'], (k, [x, out], n4) => k.gelu(x!, out!, n4), ([x, out], from, to) => geluRange(x!, out!, from, to));
const geluGrad = elementwise(KERNELS.geluGrad, ['x', 'dy'], (k, [x, dy, out], n4) => k.gelu_grad(x!, dy!, out!, n4), ([x, dy, out], from, to) => geluGradRange(x!, dy!, out!, from, to));

/**
 * A per-row kernel of LayerNorm (rows of the last axis, per-channel gamma and a third input):
 * by the SIMD module when the rows are a multiple of 4 floats, else (or without the module) by
 * the JavaScript rows function.
 */
function layerNormKernel(
  kernel: string,
  third: string,
  simd: (kernels: WasmSimdKernels, x: number, gamma: number, other: number, out: number, rows: number, cols: number, eps: number) => void,
  js: (x: Float32Array, gamma: Float32Array, other: Float32Array, out: Float32Array, cols: number, eps: number) => void,
): (args: WasmKernelArgs) => TensorInfo {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const [x, gamma, other] = ['x', 'gamma', third].map((n) => inputs[n] as TensorInfo) as [TensorInfo, TensorInfo, TensorInfo];
    const cols = x.shape[x.shape.length - 1] ?? 1;
    if (x.dtype !== 'float32' || gamma.dtype !== 'float32' || other.dtype !== 'float32' || gamma.shape.length !== 1 || gamma.shape[0] !== cols) {
      throw new Error(`${kernel}: x must be float32 [..., C] and gamma float32 [C], got ${JSON.stringify(x.shape)} and ${JSON.stringify(gamma.shape)}`);
    }
    const eps = (attrs as { eps: number }).eps;
    const out = wasm.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n === 0) return out;
    const kernels = cols % 4 === 0 ? wasmSimdKernels(wasm) : null;
    if (kernels) simd(kernels, heapOffset(wasm, x), heapOffset(wasm, gamma), heapOffset(wasm, other), heapOffset(wasm, out), n / cols, cols, eps);
    // Views after the allocation: it may have replaced the heap.
    else js(floats(wasm, x), floats(wasm, gamma), floats(wasm, other), floats(wasm, out), cols, eps);
    return out;
  };
}

const layerNorm = layerNormKernel(KERNELS.layerNorm, 'beta', (k, ...a) => k.layer_norm(...a), layerNormRows);
const layerNormGradInput = layerNormKernel(KERNELS.layerNormGradInput, 'dy', (k, ...a) => k.layer_norm_grad(...a), layerNormGradRows);

const WASM_FUSED: Array<[string, (args: WasmKernelArgs) => TensorInfo]> = [
  [KERNELS.softmaxGradInput, softmaxGradInput],
  [KERNELS.gelu, gelu],
  [KERNELS.geluGrad, geluGrad],
  [KERNELS.layerNorm, layerNorm],
  [KERNELS.layerNormGradInput, layerNormGradInput],
];

export function registerWasmFusedKernels(): void {
  for (const [kernelName, kernelFunc] of WASM_FUSED) {
    if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
