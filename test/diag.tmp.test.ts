import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { it } from 'vitest';
import { registerWasmTrainingKernels } from '../src/backends/wasm-kernels.js';
async function g(b: string, f: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor, shape: number[], wshape: number[]) {
  await tf.setBackend(b);
  const n = shape.reduce((a, c) => a * c, 1);
  const x = tf.tensor(Array.from({ length: n }, (_, i) => Math.sin(i)), shape) as tf.Tensor4D;
  const w = tf.tensor(Array.from({ length: wshape.reduce((a, c) => a * c, 1) }, (_, i) => Math.cos(i)), wshape) as tf.Tensor4D;
  const y = f(x, w);
  const r = tf.reshape(tf.range(1, 1 + y.size), y.shape);
  const gr = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor4D, w as tf.Tensor4D), r)))([x, w]);
  return gr.map((t) => Array.from(t.dataSync()));
}
it('diag', async () => {
  await tf.setBackend('wasm'); registerWasmTrainingKernels();
  for (const [xs, ws, s] of [[[2, 16, 16, 3], [4, 4, 3, 8], 4], [[2, 8, 8, 3], [4, 4, 3, 8], 4], [[1, 8, 8, 1], [4, 4, 1, 1], 4], [[1, 4, 4, 1], [2, 2, 1, 1], 2], [[1, 4, 4, 8], [2, 2, 8, 12], 2],[[1, 4, 4, 2], [2, 2, 2, 3], 2]] as const) {
    const a = await g('cpu', (x, w) => tf.conv2d(x, w, s as number, 'valid'), xs as any, ws as any);
    const b = await g('wasm', (x, w) => tf.conv2d(x, w, s as number, 'valid'), xs as any, ws as any);
    process.stdout.write(`R ${xs} ${ws} dx ${Math.max(...a[0]!.map((v, i) => Math.abs(v - b[0]![i]!)))} dw ${Math.max(...a[1]!.map((v, i) => Math.abs(v - b[1]![i]!)))} scale ${Math.max(...a[0]!.map(Math.abs))}\n`);
  }
});
