// Activation memory of one training step, reversible vs plain, for 2, 4 and 8 columns.
//   npm run bench -- memory [--json] [--model vision|toy] [--anchor-every K] [--backend cpu|wasm] [--batch 16] [--size 64]
// Activation bytes = peak tensor bytes during the step (tf.profile's peakBytes) minus what
// was allocated before it (weights, optimizer state) minus the gradients' final buffers.
// --model vision (default): the release's ConvNeXt columns (revcol-micro-64's widths: channels
// 24/48/96/192, blocks 1/1/2/1, drop path 0.1) on size×size images; --model toy: the
// gated-MLP column network of examples/ on feature maps. --anchor-every: exact outputs kept
// every K columns in reversible mode (default: the vision family's 2; 0 = only the last column).
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { lossAndGradients } from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';
import { RevColVision } from '../src/vision/model.js';
import { DEFAULT_ANCHOR_EVERY } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { args, flag } from './lib/args.js';

const json = args.includes('--json');
const batch = Number(flag('batch', '16'));
const size = Number(flag('size', '64'));
const modelKind = flag('model', 'vision');
const anchorEvery = Number(flag('anchor-every', String(DEFAULT_ANCHOR_EVERY)));
await useBackend(flag('backend', 'wasm'));

interface Row { mode: 'reversible' | 'plain'; columns: number; activationBytes: number; peakBytes: number }
const rows: Row[] = [];
const channels = modelKind === 'toy' ? [32, 48, 64, 96] : VISION_PRESETS['revcol-micro-64'].channels;
/** One network's training step (loss and gradients) and its clean-up. */
function makeStep(mode: 'reversible' | 'plain', columns: number): { step: () => ReturnType<typeof lossAndGradients>; dispose: () => void } {
  const input = tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', 1);
  const classes = Array.from({ length: batch }, (_, i) => i % 10);
  if (modelKind === 'toy') {
    const net = new ToyNet(3, channels, columns, 10, 1, undefined, anchorEvery);
    const labels = tf.oneHot(tf.tensor1d(classes, 'int32'), 10);
    const heads = net.headsFor(labels);
    return {
      step: () => lossAndGradients(net.columns, net.stem(), heads, input, { mode, seed: 1 }),
      dispose: () => { tf.dispose([input, labels]); net.dispose(); },
    };
  }
  const net = new RevColVision({ ...VISION_PRESETS['revcol-micro-64'], columns, numClasses: 10, dropPath: 0.1, inputSize: size, anchorEvery }, 1);
  const labels = tf.tensor1d(classes, 'int32');
  return {
    step: () => net.lossAndGradients(input as tf.Tensor4D, labels, { mode, seed: 1 }),
    dispose: () => { tf.dispose([input, labels]); net.dispose(); },
  };
}
for (const mode of ['reversible', 'plain'] as const) {
  for (const columns of [2, 4, 8]) {
    const { step, dispose } = makeStep(mode, columns);
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
    dispose();
  }
}
const ratio = (mode: string) => {
  const r2 = rows.find((r) => r.mode === mode && r.columns === 2)!;
  const r8 = rows.find((r) => r.mode === mode && r.columns === 8)!;
  return r8.activationBytes / r2.activationBytes;
};
const summary = `anchorEvery ${anchorEvery}: 8 columns / 2 columns activation memory: reversible ${ratio('reversible').toFixed(3)}x (goal ≤ 1.10x), plain ${ratio('plain').toFixed(3)}x`;
if (json) {
  process.stderr.write(`${summary}\n`);
  process.stdout.write(`${JSON.stringify(rows)}\n`);
} else {
  console.log(`${modelKind} columns, anchorEvery ${anchorEvery}, batch ${batch}, ${size}x${size} input, channels ${channels.join('/')}`);
  console.table(rows.map((r) => ({ ...r, activationMiB: +(r.activationBytes / 2 ** 20).toFixed(2) })));
  console.log(summary);
}
