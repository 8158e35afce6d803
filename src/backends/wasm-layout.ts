/**
 * Wasm kernels that training leans on and that tfjs-backend-wasm 4.22 runs slowly or
 * wastefully:
 * - Transpose swapping the last two axes (the transposed operand of every weight gradient,
 *   attention's Kᵀ): wasm took 12.9 ms for a [16384, 64] matrix here (0.6 ms for
 *   [16384, 16]). Done here in 4×4 blocks by revcol's SIMD kernel (wasm-simd.wat), or in
 *   16×16 tiles in JavaScript over the wasm heap where that kernel cannot start.
 * - Sum over leading axes (every bias gradient: dy summed over batch and positions): wasm
 *   transposes first (the slow case above), 13.8 ms for [16384, 64]. Done here down the
 *   rows, in float64: by revcol's SIMD kernel, else in JavaScript.
 * - Identity: tfjs clones every tensor it keeps for a gradient (a kernel's saved inputs and
 *   outputs, customGrad's saves), and wasm's Identity copies the data: 49 ms of a 1.1 s
 *   text-tiny step here, mostly attention's [B, H, T, T] probabilities. Here it shares the
 *   data and counts one more reference, as wasm's own Reshape and the cpu backend's Identity
 *   do; no kernel writes into its inputs, so a shared buffer is never changed under a clone.
 * - Slice and SplitV: wasm's Slice copies the whole input out of the heap (readSync) and then
 *   copies the block one innermost row at a time; split into three, attention's q, k and v
 *   cost 50 ms of that step. Here the block is copied heap to heap in runs as long as its
 *   layout allows (the trailing axes it takes whole, with the first one it cuts).
 * - GatherV2 of whole rows (axis 0: embedding lookups): wasm's Gather computes every element's
 *   index and took 19 ms for 8,192 rows of 32 floats; here each row is one copy.
 * Other permutations, reductions and dtypes go to wasm's own kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, wasmSimdKernels } from '../ops/wasm-simd.js';

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

/** Tensors whose elements are 32-bit words (float32 and int32 copy alike, bit for bit). */
const copiesAsWords = (x: TensorInfo) => x.dtype === 'float32' || x.dtype === 'int32';

/** A 4-byte view of a tensor's memory (float32 and int32 copy alike, bit for bit). */
function wordView(backend: BackendWasm, info: TensorInfo): Int32Array {
  return new Int32Array(backend.wasm.HEAPU8.buffer, heapOffset(backend, info), tf.util.sizeFromShape(info.shape));
}

function wrapTranspose(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const { perm } = attrs as unknown as { perm: number[] };
    if (!swapsLastTwo(perm) || !copiesAsWords(x)) return plain({ inputs, attrs, backend });
    const wasm = backend as BackendWasm;
    const r = x.shape.length;
    const [rows, cols] = [x.shape[r - 2], x.shape[r - 1]];
    const out = wasm.makeOutput([...x.shape.slice(0, -2), cols, rows], x.dtype);
    const batch = tf.util.sizeFromShape(x.shape.slice(0, -2));
    const simd = wasmSimdKernels(wasm);
    if (simd) {
      simd.transpose32(heapOffset(wasm, x), heapOffset(wasm, out), batch, rows, cols);
      return out;
    }
    // Views after the allocation: it may have grown (and replaced) the heap.
    swapLastTwoAxes(wordView(wasm, x), wordView(wasm, out), batch, rows, cols);
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
    const simd = wasmSimdKernels(wasm);
    if (simd) {
      simd.sum_rows(heapOffset(wasm, x), heapOffset(wasm, out), rows, cols);
      return out;
    }
    // Views after the allocation, as above.
    sumRows(wasm.typedArrayFromHeap(x) as Float32Array, wasm.typedArrayFromHeap(out) as Float32Array, rows, cols);
    return out;
  };
}

/**
 * Copies the block of `input` (row-major, `shape`) that starts at `begin` and spans `size` into
 * `output`, in contiguous runs: the trailing axes the block takes whole, with the first axis
 * above them that it cuts, are one run.
 */
export function copyBlock(input: Int32Array | Float32Array, output: Int32Array | Float32Array, shape: readonly number[], begin: readonly number[], size: readonly number[]): void {
  const r = shape.length;
  let cut = r - 1;
  let run = 1;
  while (cut >= 0 && size[cut] === shape[cut]) run *= shape[cut--]!;
  if (cut < 0) {
    output.set(input.subarray(0, run));
    return;
  }
  const strides = tf.util.computeStrides([...shape]);
  strides.push(1);
  run *= size[cut]!;
  // The runs: one per index of the axes above `cut`, walked like an odometer.
  const index = new Array<number>(cut).fill(0);
  let start = begin.slice(0, cut + 1).reduce((sum, b, i) => sum + b * strides[i]!, 0);
  const runs = tf.util.sizeFromShape(size.slice(0, cut));
  for (let n = 0, out = 0; n < runs; n++, out += run) {
    output.set(input.subarray(start, start + run), out);
    for (let a = cut - 1; a >= 0; a--) {
      start += strides[a]!;
      if (++index[a]! < size[a]!) break;
      start -= size[a]! * strides[a]!;
      index[a] = 0;
    }
  }
}

function sliceOnHeap(wasm: BackendWasm, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = wasm.makeOutput(size, x.dtype);
  if (tf.util.sizeFromShape(size) === 0) return out;
  // Views after the allocation, as above.
  copyBlock(wordView(wasm, x), wordView(wasm, out), x.shape, begin, size);
  return out;
}

function wrapSlice(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    if (!copiesAsWords(x)) return plain({ inputs, attrs, backend });
    const { begin, size } = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    return sliceOnHeap(backend as BackendWasm, x, b, s);
  };
}

function wrapSplitV(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    if (!copiesAsWords(x)) return plain({ inputs, attrs, backend });
    const { numOrSizeSplits, axis } = attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const at = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, at);
    const begin = x.shape.map(() => 0);
    return sizes.map((part) => {
      const size = x.shape.map((d, i) => (i === at ? part : d));
      const out = sliceOnHeap(backend as BackendWasm, x, begin, size);
      begin[at] += part;
      return out;
    });
  };
}

function wrapGatherV2(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
    if (!copiesAsWords(x) || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0 || tf.util.parseAxisParam(axis, x.shape)[0] !== 0 || x.shape.length < 1) {
      return plain({ inputs, attrs, backend });
    }
    const wasm = backend as BackendWasm;
    const rows = x.shape[0]!;
    const ids = (wasm.typedArrayFromHeap(indices) as Int32Array).slice();
    for (const id of ids) {
      if (!(id >= 0 && id < rows)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${rows - 1}]`);
    }
    const rowShape = x.shape.slice(1);
    const out = wasm.makeOutput([...indices.shape, ...rowShape], x.dtype);
    const rowBytes = 4 * tf.util.sizeFromShape(rowShape);
    if (ids.length === 0 || rowBytes === 0) return out;
    // The heap after the allocation, as above.
    const heap = wasm.wasm.HEAPU8;
    const [from, to] = [heapOffset(wasm, x), heapOffset(wasm, out)];
    for (let i = 0; i < ids.length; i++) heap.copyWithin(to + i * rowBytes, from + ids[i]! * rowBytes, from + (ids[i]! + 1) * rowBytes);
    return out;
  };
}

function wrapIdentity(plain: KernelFunc): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    if (x.dtype === 'string') return plain({ inputs, attrs, backend });
    (backend as BackendWasm).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

const FAST_PATHS = [['Transpose', wrapTranspose], ['Sum', wrapSum], ['Identity', wrapIdentity], ['Slice', wrapSlice], ['SplitV', wrapSplitV], ['GatherV2', wrapGatherV2]] as const;

/** Registers the fast paths over wasm's kernels (idempotent). Call after the wasm backend is imported. */
export function registerWasmLayoutKernels(): void {
  for (const [name, wrap] of FAST_PATHS) {
    const current = tf.getKernel(name, 'wasm');
    if (!current || ours.has(current.kernelFunc as KernelFunc)) continue;
    const kernelFunc = wrap(current.kernelFunc as KernelFunc);
    ours.add(kernelFunc);
    const config: KernelConfig = { ...current, kernelFunc };
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
}

/** Whether wasm's Transpose, Sum, Identity, Slice, SplitV and GatherV2 are currently these fast paths. */
export function wasmLayoutKernelsActive(): boolean {
  return FAST_PATHS.every(([name]) => {
    const k = tf.getKernel(name, 'wasm');
    return k !== undefined && ours.has(k.kernelFunc as KernelFunc);
  });
}
