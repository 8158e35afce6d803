/**
 * Two wasm kernels that training leans on and that tfjs-backend-wasm 4.22 runs slowly:
 * - Transpose swapping the last two axes (the transposed operand of every weight gradient,
 *   attention's Kᵀ): wasm took 12.9 ms for a [16384, 64] matrix here (0.6 ms for
 *   [16384, 16]). Done here in 16×16 tiles, in JavaScript over the wasm heap.
 * - Sum over leading axes (every bias gradient: dy summed over batch and positions): wasm
 *   transposes first (the slow case above), 13.8 ms for [16384, 64]. Done here as one pass
 *   down the rows, in float64.
 * Other permutations, reductions and dtypes go to wasm's own kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

const TILE = 16;
const ours = new WeakSet<KernelFunc>();

/**
 * out[b][j][i] = input[b][i][j] for `batch` row-major rows×cols matrices, in tiles, writing
 * along output rows (contiguous writes measured 5× faster than contiguous reads here).
 */
export function swapLastTwoAxes(input: Int32Array | Float32Array, output: Int32Array | Float32Array, batch: number, rows: number, cols: number): void {
  for (let b = 0; b < batch; b++) {
    const base = b * rows * cols;
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(j0 + TILE, cols);
      for (let i0 = 0; i0 < rows; i0 += TILE) {
        const i1 = Math.min(i0 + TILE, rows);
        for (let j = j0; j < j1; j++) {
          let dst = base + j * rows + i0;
          let src = base + i0 * cols + j;
          for (let i = i0; i < i1; i++, dst++, src += cols) output[dst] = input[src];
        }
      }
    }
  }
}

/** out[j] = Σ_i input[i][j] over a row-major rows×cols matrix, accumulated in float64. */
export function sumRows(input: Float32Array, output: Float32Array, rows: number, cols: number): void {
  const acc = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    for (let j = 0; j < cols; j++) acc[j] += input[base + j];
  }
  output.set(acc);
}

/** Whether `perm` keeps every axis but swaps the last two. */
function swapsLastTwo(perm: number[]): boolean {
  const r = perm.length;
  return r >= 2 && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 && perm.slice(0, -2).every((p, i) => p === i);
}

/** A 4-byte view of a tensor's memory (float32 and int32 copy alike, bit for bit). */
function wordView(backend: BackendWasm, info: TensorInfo): Int32Array {
  const offset = backend.dataIdMap.get(info.dataId)!.memoryOffset;
  return new Int32Array(backend.wasm.HEAPU8.buffer, offset, tf.util.sizeFromShape(info.shape));
}

function wrapTranspose(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const { perm } = attrs as unknown as { perm: number[] };
    if (!swapsLastTwo(perm) || (x.dtype !== 'float32' && x.dtype !== 'int32')) return plain({ inputs, attrs, backend });
    const wasm = backend as BackendWasm;
    const r = x.shape.length;
    const [rows, cols] = [x.shape[r - 2], x.shape[r - 1]];
    const out = wasm.makeOutput([...x.shape.slice(0, -2), cols, rows], x.dtype);
    // Views after the allocation: it may have grown (and replaced) the heap.
    swapLastTwoAxes(wordView(wasm, x), wordView(wasm, out), tf.util.sizeFromShape(x.shape.slice(0, -2)), rows, cols);
    return out;
  };
}

function wrapSum(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const r = x.shape.length;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    // Only a leading run of axes [0..k), leaving at least one axis: x is then rows×cols, row-major.
    const leading = axes.length > 0 && axes.length < r && axes.every((a, i) => a === i);
    const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
    if (!leading || x.dtype !== 'float32' || rows < 2) return plain({ inputs, attrs, backend });
    const wasm = backend as BackendWasm;
    const kept = x.shape.slice(axes.length);
    const cols = tf.util.sizeFromShape(kept);
    const out = wasm.makeOutput(keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : kept, 'float32');
    // Views after the allocation, as above.
    sumRows(wasm.typedArrayFromHeap(x) as Float32Array, wasm.typedArrayFromHeap(out) as Float32Array, rows, cols);
    return out;
  };
}

/** Registers both fast paths over wasm's kernels (idempotent). Call after the wasm backend is imported. */
export function registerWasmLayoutKernels(): void {
  for (const [name, wrap] of [['Transpose', wrapTranspose], ['Sum', wrapSum]] as const) {
    const current = tf.getKernel(name, 'wasm');
    if (!current || ours.has(current.kernelFunc as KernelFunc)) continue;
    const kernelFunc = wrap(current.kernelFunc as KernelFunc);
    ours.add(kernelFunc);
    const config: KernelConfig = { ...current, kernelFunc };
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
}

/** Whether wasm's Transpose and Sum are currently these fast paths. */
export function wasmLayoutKernelsActive(): boolean {
  return ['Transpose', 'Sum'].every((name) => {
    const k = tf.getKernel(name, 'wasm');
    return k !== undefined && ours.has(k.kernelFunc as KernelFunc);
  });
}
