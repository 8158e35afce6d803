/**
 * Measures the vision network's op choices and training speed on one backend:
 *   npx tsx bench/vision-ops.ts [wasm|cpu|...] [--steps N]
 * 1. stride = kernel convolutions as patchify + matMul vs tf.conv2d (forward + backward);
 * 2. depthwise 3×3: the portable gradient vs the backend's own kernels;
 * 3. training steps/s of the small presets (batch 64, 32×32), reversible and plain.
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { RandomStream } from '../src/core/random.js';
import { DepthwiseConv, PatchConv, RevColVision, depthwiseConvSame, visionConfig } from '../src/vision/index.js';

const backend = process.argv[2] ?? 'wasm';
const stepsArg = process.argv.indexOf('--steps');
const steps = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : 3;

function msPerRun(run: () => void, repeats: number): number {
  run(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) run();
  return (performance.now() - t0) / repeats;
}

/** Forward + backward of sum(f()) w.r.t. the input and the variables. */
function fwdBwd(f: () => tf.Tensor, x: tf.Tensor, vars: tf.Variable[]): () => void {
  return () => {
    const { value, grads } = tf.engine().gradients(() => tf.sum(f()) as tf.Scalar, [x, ...vars]);
    value.dispose();
    grads.forEach((g) => g.dispose());
  };
}

async function main(): Promise<void> {
  tf.env().set('PROD', true);
  const active = await useBackend(backend);
  console.log(`backend ${active.name}`);
  const rng = new RandomStream(1);
  for (const [n, h, c, o, p] of [[64, 32, 3, 24, 2], [64, 16, 24, 48, 2], [4, 224, 3, 64, 4]]) {
    const x = tf.randomNormal([n, h, h, c]);
    const conv = new PatchConv(c, o, p, rng);
    const patchify = msPerRun(fwdBwd(() => conv.forward(x), x, [conv.weight]), 5);
    const native = msPerRun(fwdBwd(() => tf.conv2d(x as tf.Tensor4D, conv.weight as tf.Tensor4D, p, 'valid'), x, [conv.weight]), 5);
    console.log(`conv ${p}x${p}/${p} ${n}x${h}x${h}x${c}->${o}: patchify ${patchify.toFixed(1)} ms, conv2d ${native.toFixed(1)} ms`);
    x.dispose();
    conv.dispose();
  }
  for (const [n, h, c] of [[64, 16, 24], [64, 8, 48], [8, 56, 64]]) {
    const x = tf.randomNormal([n, h, h, c]);
    const dw = new DepthwiseConv(c, 3, rng);
    const w = dw.weight as tf.Tensor4D;
    const portable = msPerRun(fwdBwd(() => depthwiseConvSame(x as tf.Tensor4D, w, 'portable'), x, [dw.weight]), 5);
    let native = NaN;
    try {
      native = msPerRun(fwdBwd(() => depthwiseConvSame(x as tf.Tensor4D, w, 'native'), x, [dw.weight]), 5);
    } catch {
      // the backend has no depthwise gradient kernels
    }
    console.log(`depthwise 3x3 ${n}x${h}x${h}x${c}: portable ${portable.toFixed(1)} ms, native ${native.toFixed(1)} ms`);
    x.dispose();
    dw.dispose();
  }
  for (const name of ['revcol-nano-32', 'revcol-mini-32', 'revcol-micro-32']) {
    const model = new RevColVision(await visionConfig(name));
    const x = tf.randomNormal([64, 32, 32, 3]) as tf.Tensor4D;
    const labels = tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 10), 'int32');
    for (const mode of ['reversible', 'plain'] as const) {
      let seed = 0;
      const ms = msPerRun(() => {
        const r = model.lossAndGradients(x, labels, { mode, seed: seed++ });
        r.loss.dispose();
        r.grads.forEach((g) => g.dispose());
      }, steps);
      console.log(`${name} ${mode}: ${ms.toFixed(0)} ms per step of 64 (${((64 * 1000) / ms).toFixed(0)} images/s)`);
    }
    const evalMs = msPerRun(() => tf.dispose(model.logits(x)), steps);
    console.log(`${name} eval: ${((64 * 1000) / evalMs).toFixed(0)} images/s`);
    tf.dispose([x, labels]);
    model.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
