import * as tf from '@tensorflow/tfjs-core';

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
