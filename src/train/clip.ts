import * as tf from '@tensorflow/tfjs-core';
import { sumOfSquaresNow } from '../ops/fused.js';

/**
 * Scales all gradients together so that their global L2 norm is at most `maxNorm`
 * (PyTorch's clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), only when below 1).
 * Replaces the tensors in `grads` (disposing the old ones) and returns the norm before clipping
 * (read asynchronously, as the webgpu backend needs).
 */
export async function clipByGlobalNorm(grads: Map<tf.Variable, tf.Tensor>, maxNorm: number): Promise<number> {
  if (grads.size === 0) return 0;
  const norm = tf.tidy(() => {
    const squares = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    return tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares));
  });
  let value: number;
  try {
    value = (await norm.data())[0]!;
  } finally {
    norm.dispose();
  }
  const coefficient = maxNorm / (value + 1e-6);
  if (Number.isFinite(coefficient) && coefficient < 1) {
    for (const [v, g] of grads) {
      grads.set(v, tf.mul(g, coefficient));
      g.dispose();
    }
  }
  return value;
}

/**
 * The same clipping without reading anything back: the coefficient min(1, maxNorm/(norm + 1e-6))
 * as a [1] tensor on the device, for AdamW.applyGradients(grads, lr, { gradScale }), which scales
 * the gradients inside its own kernels. On a GPU the step then never waits for the norm, so the
 * optimizer's launches queue behind the backward pass. The caller disposes the tensor.
 */
export function clipCoefficient(grads: Map<tf.Variable, tf.Tensor>, maxNorm: number): tf.Tensor {
  if (!(maxNorm > 0)) throw new Error(`gradient clipping norm must be > 0, got ${maxNorm}`);
  // wasm: the squared norm summed at once by one SIMD call per gradient (the same float32
  // sums as the ops below, about 600 kernels fewer), the coefficient in float32 arithmetic
  const squared = grads.size > 0 ? sumOfSquaresNow([...grads.values()]) : null;
  if (squared !== null) {
    const f = Math.fround;
    return tf.tensor1d([Math.min(f(f(maxNorm) / f(f(Math.sqrt(squared)) + f(1e-6))), 1)]);
  }
  return tf.tidy(() => {
    if (grads.size === 0) return tf.ones([1]);
    const squares = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    const norm = tf.sqrt(squares.length === 1 ? squares[0]! : tf.addN(squares));
    return tf.reshape(tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1), [1]);
  });
}
