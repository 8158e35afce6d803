import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { it } from 'vitest';
it('diag', async () => {
  await tf.setBackend('wasm');
  for (const [ac, hp] of [[false, false], [false, true], [true, false]] as const) {
    // adjoint identity: <resize(x), r> == <x, grad>
    for (const [nm, f] of [['nn', (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [7, 5], ac, hp)], ['bil', (x: tf.Tensor4D) => tf.image.resizeBilinear(x, [7, 5], ac, hp)]] as const) {
      const x = tf.tensor(Array.from({ length: 2 * 3 * 4 * 2 }, (_, i) => Math.sin(i * 1.3)), [2, 3, 4, 2]) as tf.Tensor4D;
      const y = f(x);
      const r = tf.tensor(Array.from({ length: y.size }, (_, i) => Math.cos(i * 0.7)), y.shape);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor4D), r)))(x);
      const lhs = tf.sum(tf.mul(y, r)).dataSync()[0]!; const rhs = tf.sum(tf.mul(x, g)).dataSync()[0]!;
      process.stdout.write(`R ${nm} ${ac} ${hp} ${lhs} ${rhs}\n`);
    }
  }
});
