// Activation memory of one training step, reversible vs plain, for 2, 4 and 8 columns.
//   npm run bench -- memory [--json] [--backend cpu|wasm] [--batch 32] [--size 32]
// Activation bytes = peak tensor bytes during the step (tf.profile's peakBytes) minus what
// was allocated before it (weights, optimizer state) minus the gradients' final buffers.
// The network is the gated-MLP column network of examples/ on feature maps (4 levels at
// full, 1/2, 1/4 and 1/8 resolution), with drop path on.
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { lossAndGradients } from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const json = args.includes('--json');
const batch = Number(flag('batch', '32'));
const size = Number(flag('size', '32'));
await useBackend(flag('backend', 'wasm'));

interface Row { mode: 'reversible' | 'plain'; columns: number; activationBytes: number; peakBytes: number }
const rows: Row[] = [];
const channels = [32, 48, 64, 96];
for (const mode of ['reversible', 'plain'] as const) {
  for (const columns of [2, 4, 8]) {
    const net = new ToyNet(3, channels, columns, 10, 1);
    const input = tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', 1);
    const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), 'int32'), 10);
    const heads = net.headsFor(labels);
    const step = () => lossAndGradients(net.columns, net.stem(), heads, input, { mode, seed: 1 });
    // One step first, so that one-off allocations (kernels' caches) do not count.
    const warm = step();
    warm.loss.dispose();
    warm.grads.forEach((g) => g.dispose());
    const before = tf.memory().numBytes;
    let gradBytes = 0;
    const info = await tf.profile(() => {
      const r = step();
      r.grads.forEach((g) => (gradBytes += g.size * 4));
      r.loss.dispose();
      r.grads.forEach((g) => g.dispose());
    });
    const activationBytes = info.peakBytes - before - gradBytes;
    rows.push({ mode, columns, activationBytes, peakBytes: info.peakBytes });
    if (!json) process.stderr.write(`${mode} ${columns} columns: activation ${(activationBytes / 2 ** 20).toFixed(2)} MiB, peak ${(info.peakBytes / 2 ** 20).toFixed(2)} MiB\n`);
    input.dispose();
    labels.dispose();
    net.dispose();
  }
}
const ratio = (mode: string) => {
  const r2 = rows.find((r) => r.mode === mode && r.columns === 2)!;
  const r8 = rows.find((r) => r.mode === mode && r.columns === 8)!;
  return r8.activationBytes / r2.activationBytes;
};
const summary = `8 columns / 2 columns activation memory: reversible ${ratio('reversible').toFixed(3)}x (goal ≤ 1.10x), plain ${ratio('plain').toFixed(3)}x`;
if (json) {
  process.stderr.write(`${summary}\n`);
  process.stdout.write(`${JSON.stringify(rows)}\n`);
} else {
  console.log(`batch ${batch}, ${size}x${size} input, channels ${channels.join('/')}`);
  console.table(rows.map((r) => ({ ...r, activationMiB: +(r.activationBytes / 2 ** 20).toFixed(2) })));
  console.log(summary);
}
