import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { it } from 'vitest';
import { registerWasmTrainingKernels } from '../src/backends/wasm-kernels.js';
import { gelu } from '../src/core/layers.js';
async function g(b: string, f: (x: tf.Tensor) => tf.Tensor, shape: number[]) {
  await tf.setBackend(b);
  const n = shape.reduce((a, c) => a * c, 1);
  const x = tf.tensor(Array.from({ length: n }, (_, i) => Math.sin(i)), shape);
  const y = f(x);
  const r = tf.reshape(tf.range(1, 1 + y.size), y.shape);
  const gr = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(f(x), r)))([x]);
  return [Array.from(y.dataSync()), Array.from(gr[0]!.dataSync())];
}
it('diag', async () => {
  await tf.setBackend('wasm'); registerWasmTrainingKernels();
  const ln = (x: tf.Tensor) => { const { mean, variance } = tf.moments(x, -1, true); return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-6))); };
  const fs: Record<string, [(x: tf.Tensor) => tf.Tensor, number[]]> = {
    mean12: [(x) => tf.mean(x, [1, 2]), [2, 4, 4, 8]],
    moments: [(x) => tf.moments(x, -1, true).variance, [2, 4, 4, 8]],
    momentsmean: [(x) => tf.moments(x, -1, true).mean, [2, 4, 4, 8]],
    ln: [ln, [2, 4, 4, 8]],
    gelu: [gelu, [2, 8]],
    nn: [(x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [4, 4]), [2, 2, 2, 8]],
    ce: [(x) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d([3, 1], 'int32'), 4), x), [2, 4]],
    rsqrt: [(x) => tf.rsqrt(tf.add(tf.abs(x), 1)), [2, 4]],
    sub: [(x) => tf.sub(x, tf.mean(x, -1, true)), [2, 4, 4, 8]],
    sqdiff: [(x) => tf.squaredDifference(x, tf.mean(x, -1, true)), [2, 4, 4, 8]],
  };
  for (const [nm, [f, s]] of Object.entries(fs)) {
    const a = await g('cpu', f, s); const b = await g('wasm', f, s);
    process.stdout.write(`R ${nm} fwd ${Math.max(...a[0]!.map((v, i) => Math.abs(v - b[0]![i]!)))} grad ${Math.max(...a[1]!.map((v, i) => Math.abs(v - b[1]![i]!)))}\n`);
  }
});
