/**
 * tfjs-backend-wasm 4.22 runs BatchMatMul through XNNPACK only for one matrix pair with
 * neither operand transposed ([1, M, K]·[1, K, N]); anything else takes a naive triple loop.
 * Training hits those cases all the time:
 * - transposed operands: the gradients of y = x·W are dx = dy·Wᵀ and dW = xᵀ·dy. Measured here
 *   on [16384,16]ᵀ·[16384,64]: 55 ms with transposeA, 3 ms as transpose(x) then a plain
 *   matmul; dy·Wᵀ: 53 ms vs 9 ms.
 * - a batch of matrices: attention's scores and weighted values, [B·H, L, d]·[B·H, d, L].
 *   The loop ran them at about 3 GFLOP/s (1.4 s of a 2.1 s text-tiny training step).
 * This wraps the wasm kernel: aᵀ·b runs on revcol's own SIMD kernel where it is the faster
 * (transposedAProduct); otherwise a transposed operand is transposed explicitly (wasm's own
 * Transpose kernel), and a·b runs on revcol's SIMD product where b fits in cache (simdProduct),
 * else on XNNPACK, a batch as one product per matrix pair, on views of the operands' memory
 * (no copies).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, wasmSimdKernels } from '../ops/wasm-simd.js';
import { nativeBlas, type NativeBlas } from './native-blas.js';

const wrapped = new WeakSet<KernelFunc>();

/** The wasm module's BatchMatMul entry point: (a id, a shape, rank, b id, b shape, rank, transposeA, transposeB, out id). */
type WasmMatMul = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number, ta: number, tb: number, outId: number) => void;
const entryPoints = new WeakMap<BackendWasm, WasmMatMul>();

interface WasmModuleInternals {
  cwrap: (name: string, ret: null, args: string[]) => WasmMatMul;
  tfjs: { disposeData(id: number): void };
}

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);

/**
 * out = a·b for one row-major pair, a [m, k] and b [k, n], given by their byte offsets in the
 * wasm heap (inside other tensors' memory): XNNPACK's path for a single pair runs on tensors
 * registered over that memory. Unregistering them afterwards (without freeing: the memory is
 * not theirs) also drops the XNNPACK operator (and its packed copy of b) cached for b.
 */
function matMulInHeap(backend: BackendWasm, aOffset: number, bOffset: number, outOffset: number, m: number, k: number, n: number): void {
  const module = backend.wasm as unknown as WasmModuleInternals;
  let run = entryPoints.get(backend);
  if (!run) {
    run = module.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    entryPoints.set(backend, run);
  }
  const views = ([[aOffset, [1, m, k]], [bOffset, [1, k, n]], [outOffset, [1, m, n]]] as const).map(([offset, shape]) => {
    const info = backend.makeOutput([...shape], 'float32', offset);
    return { info, id: backend.dataIdMap.get(info.dataId)!.id };
  });
  try {
    run(views[0].id, shapeBytes([1, m, k]), 3, views[1].id, shapeBytes([1, k, n]), 3, 0, 0, views[2].id);
  } finally {
    for (const v of views) {
      module.tfjs.disposeData(v.id);
      backend.dataIdMap.delete(v.info.dataId);
    }
  }
}

/**
 * Whether a·b (untransposed float32 pairs) runs on revcol's SIMD product: where b's rows are
 * whole vectors and b stays in cache (k·n ≤ 65,536 floats). There it gives XNNPACK's bits and
 * is faster, as XNNPACK packs b afresh for every new tensor, i.e. on every call in training:
 * attention's 64 pairs 6.1 against 8.2–9.2 ms; the nano model's products 1.2–3× faster
 * (e.g. [2048,32]·[32,128] 0.54 against 0.93 ms, [32,128]·[128,512] 0.13 against 0.38).
 * XNNPACK's cache-blocked product wins once b is larger ([256,1024]: 172 against 142 ms).
 */
function simdProduct(a: TensorInfo, b: TensorInfo, backend: BackendWasm): boolean {
  const k = a.shape[a.shape.length - 1]!;
  const n = b.shape[b.shape.length - 1]!;
  return a.dtype === 'float32' && b.dtype === 'float32' && n % 4 === 0 && k * n <= 65536 &&
    tf.util.sizeFromShape(a.shape) > 0 && tf.util.sizeFromShape(b.shape) > 0 && wasmSimdKernels(backend) !== null;
}

/** a·b for a batch of untransposed float32 matrix pairs (each side's batch the full one, or 1, or both one pair): per pair, revcol's SIMD product where simdProduct allows, else one XNNPACK product. */
function batchedMatMul(a: TensorInfo, b: TensorInfo, batchA: number, batchB: number, backend: BackendWasm): TensorInfo {
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outer, m, n], 'float32');
  const aBase = backend.dataIdMap.get(a.dataId)!.memoryOffset;
  const bBase = backend.dataIdMap.get(b.dataId)!.memoryOffset;
  const outBase = backend.dataIdMap.get(out.dataId)!.memoryOffset;
  const simd = simdProduct(a, b, backend) ? wasmSimdKernels(backend) : null;
  for (let i = 0; i < Math.max(batchA, batchB); i++) {
    const aAt = aBase + (batchA === 1 ? 0 : i) * m * k * 4;
    const bAt = bBase + (batchB === 1 ? 0 : i) * k * n * 4;
    if (simd) simd.matmul_nn(aAt, bAt, outBase + i * m * n * 4, m, k, n);
    else matMulInHeap(backend, aAt, bAt, outBase + i * m * n * 4, m, k, n);
  }
  return out;
}

/**
 * aᵀ·b on revcol's SIMD kernel (matmul_tn), for each pair of a batch (each side's batch the
 * full one, or 1), or null where it does not apply: not float32, b's rows not a multiple of 4
 * floats, or both sides of the product wide (there XNNPACK's packed product is as fast: 157 ms
 * either way for [2048,768]ᵀ·[2048,768], timed on a busy machine). The weight gradients of
 * linear layers (xᵀ·dy over thousands of rows, a few dozen features) and attention's pᵀ·dy and
 * qᵀ·dscores are the cases it is for: 1.1–2.2× faster than a transpose and XNNPACK, which
 * repacks the long operand on every call (`npm run bench -- wasm-simd-kernels`).
 */
function transposedAProduct(a: TensorInfo, b: TensorInfo, batchA: number, batchB: number, backend: BackendWasm): TensorInfo | null {
  const simd = wasmSimdKernels(backend);
  if (!simd || a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const rows = a.shape[a.shape.length - 2]!;
  const m = a.shape[a.shape.length - 1]!;
  const n = b.shape[b.shape.length - 1]!;
  if (b.shape[b.shape.length - 2] !== rows || n % 4 !== 0 || (m > 256 && n > 256) || m * n === 0) return null;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outer, m, n], 'float32');
  const [aBase, bBase, outBase] = [heapOffset(backend, a), heapOffset(backend, b), heapOffset(backend, out)];
  // Rows per pass: both operands' rows of a pass fit in 32 KiB (L1).
  const chunk = Math.min(1024, Math.max(8, Math.floor(8192 / (m + n))));
  for (let i = 0; i < Math.max(batchA, batchB); i++) {
    simd.matmul_tn(aBase + (batchA === 1 ? 0 : i) * rows * m * 4, bBase + (batchB === 1 ? 0 : i) * rows * n * 4, outBase + i * m * n * 4, rows, m, n, chunk);
  }
  return out;
}

/**
 * op(a)·op(b) of float32 operands on OpenBLAS (native-blas.ts), transposes and a batch
 * included, in one call and without copies: the operands are read where they lie in the heap.
 * Each side's batch is the full one or 1 (broadcast). An empty inner dimension gives zeros
 * (tfjs's own kernel leaves that output unwritten).
 */
function nativeProduct(blas: NativeBlas, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean,
  batchA: number, batchB: number, backend: BackendWasm): TensorInfo | null {
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const [m, k] = transposeA ? [aCols, aRows] : [aRows, aCols];
  const n = transposeB ? bRows : bCols;
  if ((transposeB ? bCols : bRows) !== k) return null;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outer, m, n], 'float32');
  const batch = Math.max(batchA, batchB);
  if (batch * m * n === 0) return out;
  // The heap's current view: making the output may have grown the memory.
  const heap = (backend.wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8;
  if (k === 0) {
    new Float32Array(heap.buffer, heapOffset(backend, out), batch * m * n).fill(0);
    return out;
  }
  blas.sgemm(heap, heapOffset(backend, a), heapOffset(backend, b), heapOffset(backend, out), batch, m, n, k,
    transposeA ? 1 : 0, transposeB ? 1 : 0, batchA === 1 ? 0 : m * k, batchB === 1 ? 0 : k * n, m * n);
  return out;
}

/** Registers the wrapper over wasm's BatchMatMul (idempotent). Call after the wasm backend is imported. */
export function registerFastTransposedMatMul(): void {
  const current = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm')?.kernelFunc as KernelFunc | undefined;
  if (!current || !transpose || wrapped.has(current.kernelFunc as KernelFunc)) return;
  const plain = current.kernelFunc as KernelFunc;
  const swapLastTwo = (t: TensorInfo, backend: BackendWasm): TensorInfo => {
    const perm = t.shape.map((_, i) => i);
    const r = perm.length;
    [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
    return transpose({ inputs: { x: t }, attrs: { perm }, backend }) as TensorInfo;
  };
  const kernelFunc: KernelFunc = ({ inputs, attrs, backend }) => {
    const { transposeA, transposeB } = attrs as { transposeA?: boolean; transposeB?: boolean };
    const wasm = backend as BackendWasm;
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    // One batch dimension layout on both sides, or a single matrix on one side (broadcast).
    const sameLayout = batchA === 1 || batchB === 1 || (a.shape.length === b.shape.length && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]));
    const batched = Math.max(batchA, batchB) > 1 && a.dtype === 'float32' && b.dtype === 'float32' &&
      tf.util.sizeFromShape(a.shape) > 0 && tf.util.sizeFromShape(b.shape) > 0 && sameLayout;
    const blas = nativeBlas();
    if (blas && sameLayout && a.dtype === 'float32' && b.dtype === 'float32') {
      const out = nativeProduct(blas, a, b, !!transposeA, !!transposeB, batchA, batchB, wasm);
      if (out) return out;
    }
    if (!transposeA && !transposeB && !batched && !simdProduct(a, b, wasm)) return plain({ inputs, attrs, backend });
    if (transposeA && !transposeB && sameLayout) {
      const direct = transposedAProduct(a, b, batchA, batchB, wasm);
      if (direct) return direct;
    }
    const a2 = transposeA ? swapLastTwo(a, wasm) : a;
    const b2 = transposeB ? swapLastTwo(b, wasm) : b;
    try {
      if (batched || simdProduct(a2, b2, wasm)) return batchedMatMul(a2, b2, batchA, batchB, wasm);
      return plain({ inputs: { a: a2, b: b2 }, attrs: { ...attrs, transposeA: false, transposeB: false }, backend });
    } finally {
      if (a2 !== a) wasm.disposeData(a2.dataId);
      if (b2 !== b) wasm.disposeData(b2.dataId);
    }
  };
  wrapped.add(kernelFunc);
  const config: KernelConfig = { ...current, kernelFunc };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(config);
}

/** Whether wasm's BatchMatMul is currently the wrapper. */
export function fastTransposedMatMulActive(): boolean {
  const k = tf.getKernel('BatchMatMul', 'wasm');
  return k !== undefined && wrapped.has(k.kernelFunc as KernelFunc);
}
