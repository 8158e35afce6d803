/**
 * Speed of the training kernels added to the wasm backend, next to the forward op they belong
 * to (XNNPACK), on the shapes the vision columns use (batch 8, 224x224 input).
 *   npx tsx bench/wasm-kernels.ts [--json] [--batch N]
 * The last line with --json is a JSON array of {kernel, shape, ms, forwardMs}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const batchArg = args.indexOf('--batch');
const batch = batchArg >= 0 ? Number(args[batchArg + 1]) : 8;

/** Median of `repeats` timed runs after one warm-up (the machine may be shared: medians resist noise). */
function timeMs(fn: () => tf.Tensor, repeats = 5): number {
  fn().dispose();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    const out = fn();
    out.dataSync();
    out.dispose();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(repeats / 2)]!;
}

interface Row {
  kernel: string;
  shape: string;
  ms: number;
  forwardMs: number;
}

await useBackend('wasm');
const rows: Row[] = [];

for (const [size, channels, k] of [
  [56, 64, 3],
  [56, 64, 7],
  [28, 128, 3],
  [14, 256, 3],
  [7, 512, 3],
  [7, 512, 7],
] as const) {
  const x = tf.randomNormal([batch, size, size, channels]) as tf.Tensor4D;
  const w = tf.randomNormal([k, k, channels, 1]) as tf.Tensor4D;
  const dy = tf.randomNormal([batch, size, size, channels]) as tf.Tensor4D;
  const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1] };
  const forwardMs = timeMs(() => tf.depthwiseConv2d(x, w, 1, 'same'));
  const shape = `x[${x.shape}] k${k}`;
  rows.push({
    kernel: 'DepthwiseConv2dNativeBackpropFilter',
    shape,
    ms: timeMs(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape }) as tf.Tensor),
    forwardMs,
  });
  rows.push({
    kernel: 'DepthwiseConv2dNativeBackpropInput',
    shape,
    ms: timeMs(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape }) as tf.Tensor),
    forwardMs,
  });
  tf.dispose([x, w, dy]);
}

for (const [size, cin, cout, k] of [
  [224, 3, 64, 4],
  [56, 64, 128, 2],
  [28, 128, 256, 2],
  [14, 256, 512, 2],
] as const) {
  const x = tf.randomNormal([batch, size, size, cin]) as tf.Tensor4D;
  const w = tf.randomNormal([k, k, cin, cout]) as tf.Tensor4D;
  const dy = tf.randomNormal([batch, size / k, size / k, cout]) as tf.Tensor4D;
  const forwardMs = timeMs(() => tf.conv2d(x, w, k, 'valid'));
  rows.push({
    kernel: 'Conv2DBackpropFilter',
    shape: `x[${x.shape}] ${k}x${k}/${k} -> ${cout}`,
    ms: timeMs(
      () =>
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: [k, k], pad: 'valid', dataFormat: 'NHWC', filterShape: w.shape }) as tf.Tensor,
    ),
    forwardMs,
  });
  tf.dispose([x, w, dy]);
}

{
  const table = tf.randomNormal([30522, 256]);
  const ids = tf.randomUniform([batch * 128], 0, 30522, 'int32') as tf.Tensor1D;
  const g = tf.randomNormal([batch * 128, 256]);
  rows.push({
    kernel: 'UnsortedSegmentSum',
    shape: `[${g.shape}] -> [30522, 256]`,
    ms: timeMs(() => tf.unsortedSegmentSum(g, ids, 30522)),
    forwardMs: timeMs(() => tf.gather(table, ids)),
  });
  tf.dispose([table, ids, g]);
}

for (const row of rows) {
  console.log(`${row.kernel.padEnd(38)} ${row.shape.padEnd(36)} ${row.ms.toFixed(1).padStart(8)} ms   (forward ${row.forwardMs.toFixed(1)} ms)`);
}
if (json) console.log(JSON.stringify(rows));
