/**
 * Weight-gradient products on the webgpu backend, split over their inner dimension.
 *
 * The weight gradient of every Linear (and of the vision family's patch convolutions, which
 * are Linear over patches) is xᵀ·dy: a product with a huge inner dimension (every pixel or token
 * of the batch: 200,704 rows for a level-0 ConvNeXt MLP at batch 64, 224²) and a small output
 * (in × out: 64 × 256). tfjs-backend-webgpu 4.22 tiles the output 32 × 32, one workgroup a tile:
 * 16 workgroups for that output, each walking all 200,704 rows, on a GPU that holds thousands.
 * Its own split-K program only steps in below 8 workgroups (16 on recent Intel GPUs), and adds
 * its partial sums with atomics, so its results change from run to run.
 *
 * Here, when aᵀ·b has one batch, a transposed and b not (the weight-gradient form), an inner
 * dimension K of at least MIN_ROWS_PER_SPLIT rows a split, and fewer than TARGET_WORKGROUPS
 * tiles, K is cut into S equal slices: a and b are read in place as [S, K/S, ·] (both are
 * row-major with K outermost, so this is a reshape, not a copy), tfjs's own batched product
 * gives the S partial products [S, M, N] with S times the workgroups, and the column sum of
 * webgpu-reduce.ts adds them ([S, M·N] → [M·N]). One more dispatch, no atomics: the same
 * inputs give the same bits on every run. Every other product goes to tfjs's kernel unchanged (its own
 * split-K, for tiny outputs whose inner dimension is not split here, still adds with atomics).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { runGemm } from './webgpu-gemm.js';
import type { WebgpuBackendLike } from './webgpu-reduce.js';

/** Workgroups (32 × 32 output tiles) a product should reach: a few per compute unit of a large GPU. */
export const TARGET_WORKGROUPS = 1024;

/** Rows of the inner dimension each slice keeps at least, so that a tile still has work to stream. */
export const MIN_ROWS_PER_SPLIT = 256;

/** Partial products held at once, in floats (64 MiB): the split stays well inside the GPU's memory. */
const MAX_PARTIAL_FLOATS = 16 * 1024 * 1024;

export interface SplitPlan {
  /** Slices of the inner dimension (a divisor of it); 1: leave the product to tfjs. */
  splits: number;
  /** 32 × 32 output tiles, i.e. tfjs's workgroups without the split. */
  tiles: number;
}

/**
 * How many slices the inner dimension `k` of an [m × k]·[k × n] product is cut into: as many as
 * bring the workgroups up to TARGET_WORKGROUPS, each slice at least MIN_ROWS_PER_SPLIT rows and
 * an exact divisor of k (so that the slices are plain reshapes), the partials within memory.
 */
export function planSplit(m: number, k: number, n: number): SplitPlan {
  const tiles = Math.ceil(m / 32) * Math.ceil(n / 32);
  const wanted = Math.min(Math.floor(TARGET_WORKGROUPS / tiles), Math.floor(k / MIN_ROWS_PER_SPLIT), Math.floor(MAX_PARTIAL_FLOATS / (m * n)));
  for (let s = wanted; s >= 2; s--) if (k % s === 0) return { splits: s, tiles };
  return { splits: 1, tiles };
}

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

interface Kernels {
  matMul: tf.KernelFunc;
  reshape: tf.KernelFunc;
  sum: tf.KernelFunc;
}

type Backend = { disposeData(dataId: object): boolean };

/** aᵀ·b split over the inner dimension, or null where the product is not a weight gradient worth splitting. */
function splitWeightGradient(a: TensorInfo, b: TensorInfo, attrs: MatMulAttrs, backend: tf.KernelBackend, kernels: Kernels): TensorInfo | null {
  if (!attrs.transposeA || attrs.transposeB || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const batchOf = (shape: number[]) => shape.slice(0, -2).reduce((x, y) => x * y, 1);
  if (a.shape.length < 2 || b.shape.length < 2 || batchOf(a.shape) !== 1 || batchOf(b.shape) !== 1) return null;
  const [k, m] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.shape.length - 1]!;
  if (b.shape[b.shape.length - 2] !== k) return null;
  const { splits } = planSplit(m, k, n);
  if (splits < 2) return null;
  const rows = k / splits;
  const made: TensorInfo[] = [];
  const run = (fn: tf.KernelFunc, inputs: tf.NamedTensorInfoMap, attrs: object): TensorInfo => {
    const out = fn({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
    made.push(out);
    return out;
  };
  try {
    const a3 = run(kernels.reshape, { x: a }, { shape: [splits, rows, m] });
    const b3 = run(kernels.reshape, { x: b }, { shape: [splits, rows, n] });
    // The batched partial products: the 64 × 64-tile kernel where it is on and takes them, else tfjs's.
    const viaGemm = runGemm(backend as unknown as WebgpuBackendLike, a3, b3, true, false);
    if (viaGemm) made.push(viaGemm);
    const partials = viaGemm ?? run(kernels.matMul, { a: a3, b: b3 }, { transposeA: true, transposeB: false });
    const flat = run(kernels.reshape, { x: partials }, { shape: [splits, m * n] });
    const summed = run(kernels.sum, { x: flat }, { axis: [0], keepDims: false });
    const outShape = [...a.shape.slice(0, -2), m, n];
    return kernels.reshape({ inputs: { x: summed }, backend, attrs: { shape: outShape } }) as TensorInfo;
  } finally {
    for (const t of made) (backend as unknown as Backend).disposeData(t.dataId);
  }
}

let registered = false;

interface FusedMatMulAttrs extends MatMulAttrs {
  activation?: string;
}

/**
 * Replaces the webgpu BatchMatMul kernel by one that splits weight-gradient products (above),
 * gives large products to the 64 × 64-tile kernel of webgpu-gemm.ts where it is turned on, and
 * hands every other product to tfjs's kernel; _FusedMatMul likewise when it has no activation.
 * Call after the backend registered its kernels (and after the column sum of webgpu-reduce.ts,
 * which the split uses when present). Repeated calls do nothing.
 */
export function registerWebgpuMatMulKernels(): void {
  if (registered) return;
  const matMul = tf.getKernel('BatchMatMul', 'webgpu');
  const fusedMatMul = tf.getKernel('_FusedMatMul', 'webgpu');
  const reshape = tf.getKernel('Reshape', 'webgpu');
  if (!matMul || !reshape || !tf.getKernel('Sum', 'webgpu')) return;
  registered = true;
  tf.unregisterKernel('BatchMatMul', 'webgpu');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const attrs = args.attrs as unknown as MatMulAttrs;
      // Sum is looked up on each call: the column-sum kernel may be registered after this one.
      const kernels = { matMul: matMul.kernelFunc, reshape: reshape.kernelFunc, sum: tf.getKernel('Sum', 'webgpu')!.kernelFunc };
      return (
        splitWeightGradient(a, b, attrs, args.backend as unknown as tf.KernelBackend, kernels) ??
        runGemm(args.backend as unknown as WebgpuBackendLike, a, b, attrs.transposeA, attrs.transposeB) ??
        matMul.kernelFunc(args)
      );
    },
  });
  if (!fusedMatMul) return;
  tf.unregisterKernel('_FusedMatMul', 'webgpu');
  tf.registerKernel({
    kernelName: '_FusedMatMul',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { a, b, bias, preluActivationWeights } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
      const attrs = args.attrs as unknown as FusedMatMulAttrs;
      const plain = (attrs.activation ?? 'linear') === 'linear' && !preluActivationWeights;
      return (plain ? runGemm(args.backend as unknown as WebgpuBackendLike, a, b, attrs.transposeA, attrs.transposeB, bias) : null) ?? fusedMatMul.kernelFunc(args);
    },
  });
}
