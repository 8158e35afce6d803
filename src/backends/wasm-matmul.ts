/**
 * tfjs-backend-wasm 4.22 runs BatchMatMul through XNNPACK only when neither operand is
 * transposed; with transposeA or transposeB it takes a much slower path. Training hits
 * exactly those cases: the gradients of y = x·W are dx = dy·Wᵀ and dW = xᵀ·dy. Measured
 * here on [16384,16]ᵀ·[16384,64]: 55 ms with transposeA, 3 ms as transpose(x) then a plain
 * matmul; dy·Wᵀ: 53 ms vs 9 ms. This wraps the wasm kernel: a transposed operand is
 * transposed explicitly (wasm's own Transpose kernel), then the fast path runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

const wrapped = new WeakSet<KernelFunc>();

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
    if (!transposeA && !transposeB) return plain({ inputs, attrs, backend });
    const wasm = backend as BackendWasm;
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const a2 = transposeA ? swapLastTwo(a, wasm) : a;
    const b2 = transposeB ? swapLastTwo(b, wasm) : b;
    try {
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
