import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './src/backends/index.js';
import { RevColVision } from './src/vision/model.js';
import { visionConfig } from './src/vision/presets.js';
await useBackend(process.argv[2] ?? 'wasm'); if (process.env.FIX) { const m = await import('./mmfix.tmp.js'); m.installFastTransposedMatMul(); }
const config = await visionConfig(process.argv[3] ?? 'revcol-nano-32', { numClasses: 10 });
const model = new RevColVision(config, 0);
const B = 64;
const x = tf.randomNormal([B, 32, 32, 3]) as tf.Tensor4D;
const y = tf.tensor1d(Array.from({ length: B }, (_, i) => i % 10), 'int32');
for (const mode of ['reversible', 'plain'] as const) {
  const warm = model.lossAndGradients(x, y, { mode, seed: 0 }); warm.loss.dispose(); warm.grads.forEach((g) => g.dispose());
  const byKernel = new Map<string, { ms: number; n: number }>();
  const t0 = performance.now();
  const info = await tf.profile(() => { const r = model.lossAndGradients(x, y, { mode, seed: 1 }); r.loss.dataSync(); r.loss.dispose(); r.grads.forEach((g) => g.dispose()); });
  const wall = performance.now() - t0;
  let total = 0;
  for (const k of info.kernels) { const ms = Number(k.kernelTimeMs) || 0; total += ms; const e = byKernel.get(k.name) ?? { ms: 0, n: 0 }; e.ms += ms; e.n++; byKernel.set(k.name, e); }
  console.log(mode, 'wall', wall.toFixed(0), 'kernel total', total.toFixed(0), 'kernels', info.kernels.length);
  console.log([...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12).map(([k, v]) => `${k}:${v.ms.toFixed(0)}ms/${v.n}`).join('  '));
}
{
  const info = await tf.profile(() => { const r = model.lossAndGradients(x, y, { mode: 'plain', seed: 1 }); r.loss.dataSync(); r.loss.dispose(); r.grads.forEach((g) => g.dispose()); });
  const mm = info.kernels.filter((k) => k.name === 'BatchMatMul' || k.name === 'Sum' || k.name==='Slice').map((k) => ({ name: k.name, ms: Number(k.kernelTimeMs), shapes: JSON.stringify(k.inputShapes), out: JSON.stringify(k.outputShapes) }));
  mm.sort((a, b) => b.ms - a.ms);
  for (const m of mm.slice(0, 15)) console.log(m.name, m.ms.toFixed(1), m.shapes, '->', m.out);
}
