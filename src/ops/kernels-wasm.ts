/**
 * The fused kernels for the wasm backend. Most fused ops stay composed there (kernels-cpu.ts
 * says why: wasm's own SIMD kernels beat scalar JavaScript passes); these are the ones whose
 * one pass is SIMD wasm of revcol's own (wasm-simd.wat), run on the backend's heap in place,
 * with a JavaScript pass over the same memory where that module cannot start.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { crossEntropyGradRows, crossEntropyScale, rowMaxesInto, geluGradRange, geluRange, layerNormGradRows, layerNormRows, softmaxGradRows } from './kernels-cpu.js';
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

function softmaxGradInput({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  requireFloat(KERNELS.softmaxGradInput, y, dy);
  const out = wasm.makeOutput(y.shape, 'float32');
  const size = tf.util.sizeFromShape(y.shape);
  const cols = y.shape[y.shape.length - 1] ?? 1;
  if (size === 0) return out;
  const scale = ((attrs as { scale?: number } | undefined)?.scale) ?? 1;
  const simd = scale === 1 ? wasmSimdKernels(wasm) : null; // the SIMD kernel has no scale (revcol's ops pass one only on webgpu)
  if (simd) {
    simd.softmax_grad(heapOffset(wasm, y), heapOffset(wasm, dy), heapOffset(wasm, out), size / cols, cols);
  } else {
    // Views after the allocation: it may have replaced the heap.
    softmaxGradRows(floats(wasm, y), floats(wasm, dy), floats(wasm, out), cols, scale);
  }
  return out;
}

/** Both tensors' row maxima as [2, rows], one SIMD pass over each (JavaScript without revcol's SIMD module). */
function rowMaxes({ inputs, backend }: WasmKernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
  requireFloat(KERNELS.rowMaxes, a, b);
  const cols = a.shape[a.shape.length - 1] ?? 1;
  const rows = cols === 0 ? 0 : tf.util.sizeFromShape(a.shape) / cols;
  const out = wasm.makeOutput([2, rows], 'float32');
  if (rows === 0) return out;
  const simd = wasmSimdKernels(wasm);
  if (simd) simd.row_maxes(heapOffset(wasm, a), heapOffset(wasm, b), heapOffset(wasm, out), rows, cols);
  // Views after the allocation: it may have replaced the heap.
  else rowMaxesInto(floats(wasm, a), floats(wasm, b), floats(wasm, out), cols);
  return out;
}

/** (p − onehot(targets))·dy/rows in one SIMD pass over p (JavaScript without revcol's SIMD module). */
function crossEntropyGrad({ inputs, backend }: WasmKernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { p, targets, dy } = inputs as { p: TensorInfo; targets: TensorInfo; dy: TensorInfo };
  if (p.dtype !== 'float32' || dy.dtype !== 'float32' || targets.dtype !== 'int32' || p.shape.length !== 2 || targets.shape[0] !== p.shape[0] || tf.util.sizeFromShape(dy.shape) !== 1) {
    throw new Error(`${KERNELS.crossEntropyGrad}: p float32 [rows, classes], targets int32 [rows] and dy a float32 scalar, got ${[p, targets, dy].map((u) => `${u.dtype} ${JSON.stringify(u.shape)}`).join(', ')}`);
  }
  const [rows, cols] = p.shape as [number, number];
  const out = wasm.makeOutput(p.shape, 'float32');
  if (rows * cols === 0) return out;
  const scale = crossEntropyScale(floats(wasm, dy)[0]!, rows);
  const simd = wasmSimdKernels(wasm);
  if (simd) simd.cross_entropy_grad(heapOffset(wasm, p), heapOffset(wasm, targets), heapOffset(wasm, out), rows, cols, scale);
  // Views after the allocation: it may have replaced the heap.
  else crossEntropyGradRows(floats(wasm, p), wasm.typedArrayFromHeap(targets) as Int32Array, floats(wasm, out), cols, scale);
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

/** One parameter's AdamW step with its moments apart (the wasm layout): m and v are written in place, p is given its new value. */
export interface AdamApartItem {
  p: tf.Variable;
  m: tf.Tensor;
  v: tf.Tensor;
  g: tf.Tensor;
  /** p's factor before the step: 1 − lr·weightDecay, or 1. */
  decay: number;
}

/** A tensor whose memory no other tensor shares: safe to write in place. */
function soleOwnerWasm(wasm: BackendWasm, t: tf.Tensor): boolean {
  return wasm.refCount(t.dataId) === 1;
}

/**
 * AdamW's step for many parameters, one SIMD call each (where the composed path took about
 * twelve kernels and three new tensors per parameter: 34 ms of a 195 ms nano step). The moments
 * are updated in place; the parameter gets a new tensor, as assign gave it before: XNNPACK keeps
 * packed copies of weights keyed by their tensor, which a write in place would leave stale.
 * Takes the items whose tensors are float32 of one size and whose moments no other tensor
 * shares; returns the rest for the composed path (all of them without the SIMD module).
 */
export function adamStepWasm(backend: object, items: AdamApartItem[], hyper: { beta1: number; beta2: number; stepSize: number; sqrtCorr2: number; eps: number }, scale?: tf.Tensor): AdamApartItem[] {
  const wasm = backend as BackendWasm;
  const kernels = wasmSimdKernels(wasm);
  if (!kernels) return items;
  const scaleValue = scale ? floats(wasm, scale)[0]! : 1;
  const { beta1, beta2, stepSize, sqrtCorr2, eps } = hyper;
  const rest: AdamApartItem[] = [];
  for (const item of items) {
    const { p, m, v, g } = item;
    const ok = p.size > 0 && [m, v, g].every((t) => t.size === p.size) && [p, m, v, g].every((t) => t.dtype === 'float32') &&
      soleOwnerWasm(wasm, m) && soleOwnerWasm(wasm, v);
    if (!ok) {
      rest.push(item);
      continue;
    }
    const out = wasm.makeOutput(p.shape, 'float32');
    kernels.adam_step(heapOffset(wasm, p), heapOffset(wasm, out), heapOffset(wasm, m), heapOffset(wasm, v), heapOffset(wasm, g), p.size,
      beta1, 1 - beta1, beta2, 1 - beta2, stepSize, sqrtCorr2, eps, item.decay, scaleValue);
    const next = tf.engine().makeTensorFromTensorInfo(out);
    p.assign(next);
    next.dispose();
  }
  return rest;
}

/** Σ over the tensors of Σ x², summed as Sum(Square(x)) then AddN sum on wasm (the same bits), or null without the SIMD module. */
export function sumOfSquaresWasm(backend: object, tensors: tf.Tensor[]): number | null {
  const wasm = backend as BackendWasm;
  const kernels = wasmSimdKernels(wasm);
  if (!kernels || tensors.some((t) => t.dtype !== 'float32')) return null;
  let total = 0;
  for (const t of tensors) total = Math.fround(total + (t.size > 0 ? kernels.sum_squares(heapOffset(wasm, t), t.size) : 0));
  return total;
}

const WASM_FUSED: Array<[string, (args: WasmKernelArgs) => TensorInfo]> = [
  [KERNELS.softmaxGradInput, softmaxGradInput],
  [KERNELS.crossEntropyGrad, crossEntropyGrad],
  [KERNELS.rowMaxes, rowMaxes],
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
