import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './src/backends/index.js';
import { RevColVision } from './src/vision/model.js';
import { visionConfig } from './src/vision/presets.js';
const backend = process.argv[2] ?? 'wasm';
await useBackend(backend); if (process.env.FIX) { const m = await import('./mmfix.tmp.js'); m.installFastTransposedMatMul(); }
for (const [name, ov] of JSON.parse(process.argv[3] ?? '[["revcol-nano-32",{}],["revcol-micro-32",{}]]') as Array<[string, object]>) {
  const config = await visionConfig(name, { numClasses: 10, ...ov });
  const model = new RevColVision(config, 0);
  const B = Number(process.argv[4] ?? 64);
  const x = tf.randomNormal([B, 32, 32, 3]) as tf.Tensor4D;
  const y = tf.tensor1d(Array.from({ length: B }, (_, i) => i % 10), 'int32');
  for (const mode of ['reversible', 'plain'] as const) {
    let t0 = 0;
    for (let i = 0; i < 4; i++) {
      if (i === 1) t0 = performance.now();
      const { loss, grads } = model.lossAndGradients(x, y, { mode, seed: i });
      loss.dataSync(); loss.dispose(); grads.forEach((g) => g.dispose());
    }
    const dt = (performance.now() - t0) / 3;
    console.log(name, JSON.stringify(ov), mode, 'params', model.parameterCount(), `step ${dt.toFixed(0)} ms, ${(B / dt * 1000).toFixed(0)} img/s`);
  }
  let t1 = performance.now();
  for (let i = 0; i < 3; i++) { const l = model.logits(x); l.dataSync(); l.dispose(); }
  console.log('  eval', ((performance.now() - t1) / 3).toFixed(0), 'ms/batch');
  model.dispose();
}
