// How far rebuilt features drift from the forward pass's (REVCOL.md §3: float rounding grows
// with the number of columns and with small shortcut scales g).
//   npm run bench -- reconstruction [--json] [--backend cpu|wasm]
// For each column count and scale, runs the forward pass keeping every column, then rebuilds
// column 0 from the last column by repeated inversion, and reports the error relative to the
// features' scale: max |rebuilt - forward| / max |forward|. Then compares reversible with plain
// gradients (worst parameter's max |Δ| / max |plain|) with and without anchor columns.
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { lossAndGradients } from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const backendAt = args.indexOf('--backend');
await useBackend(backendAt >= 0 ? args[backendAt + 1] : 'cpu');

const rows: Array<{ columns: number; scale: number; relativeError: number }> = [];
for (const scale of [0.5, 0.1]) {
  for (const columns of [2, 4, 8, 16]) {
    const net = new ToyNet(8, [16, 24, 32, 48], columns, 4, 3);
    tf.tidy(() => {
      for (let c = 0; c < columns; c++) for (let l = 0; l < 4; l++) net.columns.scale(c, l).assign(tf.fill(net.columns.scale(c, l).shape, scale));
    });
    const input = tf.randomNormal([8, 8], 0, 1, 'float32', 1);
    const stemOut = net.stemLayer.forward(input);
    const all = net.columns.forward(stemOut, { training: true, seed: 4 });
    let current = all[columns - 1].map((t) => t.clone());
    for (let c = columns - 1; c >= 1; c--) {
      const prev = net.columns.rebuildPrevious(stemOut, current, c, { training: true, seed: 4 });
      current.forEach((t) => t.dispose());
      current = prev;
    }
    const relativeError = Math.max(...current.map((t, l) => tf.tidy(() =>
      tf.max(tf.abs(tf.sub(t, all[0][l]))).dataSync()[0] / tf.max(tf.abs(all[0][l])).dataSync()[0])));
    rows.push({ columns, scale, relativeError });
    current.forEach((t) => t.dispose());
    all.flat().forEach((t) => t.dispose());
    stemOut.dispose();
    input.dispose();
    net.dispose();
  }
}
const gradRows: Array<{ columns: number; anchorEvery: number; gradientError: number }> = [];
for (const columns of [4, 8, 16]) {
  for (const anchorEvery of [0, 4]) {
    const net = new ToyNet(5, [6, 8, 10, 12], columns, 3, 21, undefined, anchorEvery);
    const input = tf.randomNormal([4, 5], 0, 1, 'float32', 7);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
    const heads = net.headsFor(labels);
    const plain = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'plain', seed: 3 });
    const rev = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'reversible', seed: 3 });
    const gradientError = Math.max(...[...plain.grads].map(([v, g]) => tf.tidy(() =>
      tf.max(tf.abs(tf.sub(rev.grads.get(v)!, g))).dataSync()[0] / tf.max(tf.abs(g)).dataSync()[0])));
    gradRows.push({ columns, anchorEvery, gradientError });
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    input.dispose(); labels.dispose(); net.dispose();
  }
}
if (json) console.log(JSON.stringify({ reconstruction: rows, gradients: gradRows }));
else {
  console.log('error of column 0 rebuilt from the last column (float32), relative to the features\' scale');
  console.table(rows.map((r) => ({ ...r, relativeError: r.relativeError.toExponential(2) })));
  console.log('reversible vs plain gradients (worst parameter), shortcut scales drawn in [0.5, 1]');
  console.table(gradRows.map((r) => ({ ...r, gradientError: r.gradientError.toExponential(2) })));
}
