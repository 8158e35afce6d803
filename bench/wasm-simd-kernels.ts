/**
 * revcol's SIMD kernels for weight gradients (aᵀ·b) and the depthwise filter gradient, each
 * timed against the path it replaced, on the shapes the default models train with:
 * - aᵀ·b: `tf.matMul(a, b, true, false)` (the kernel) against `tf.matMul(tf.transpose(a), b)`
 *   (what the BatchMatMul wrapper did before: write aᵀ out, then XNNPACK), or for attention's
 *   qᵀ·dscores against the (dscoresᵀ·q)ᵀ the text model computed instead;
 * - a batch of pairs a·b with the SIMD module on and off (off: one XNNPACK product per pair);
 * - the depthwise filter gradient with the SIMD module on and off (off: one XNNPACK depthwise
 *   convolution over batch × channels from 100 output positions up, JavaScript below);
 * - one pair a·b with the SIMD module on and off (off: XNNPACK), b made anew for every call as
 *   in training (b + 0, in both timings), since XNNPACK keeps its packed b per tensor;
 * - AdamW's step with gradient clipping over the parameters of the nano network of
 *   `cpu-vs-pytorch` (288 tensors, 1.7 M floats): one SIMD call per parameter against the
 *   composed ops (REVCOL_GROUPED_ADAM=0 and REVCOL_FUSED=0's paths).
 * Median of 5 calls after a warm-up; alternating rounds (--rounds, default 2).
 *   npm run bench -- wasm-simd-kernels [--rounds N] [--json]
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/index.js';
import { setWasmSimdKernels } from '../src/ops/wasm-simd.js';
import { setFusedKernels, setGroupedAdam } from '../src/ops/fused.js';
import { AdamW } from '../src/train/optimizer.js';
import { clipCoefficient } from '../src/train/clip.js';
import { RevColVision } from '../src/vision/model.js';
import { validateVisionConfig } from '../src/vision/presets.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const roundsAt = args.indexOf('--rounds');
const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 2;

function timeMs(fn: () => tf.Tensor): number {
  fn().dispose();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    fn().dispose();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[2]!;
}

await useBackend('wasm');
type Row = { kernel: string; shape: string; ms: number[]; beforeMs: number[] };
const rows: Row[] = [];

/** `rounds` timings of run() with revcol's SIMD module on (ms) and off (beforeMs), as a row. */
function simdOnAndOff(kernel: string, shape: string, run: () => tf.Tensor): Row {
  const row: Row = { kernel, shape, ms: [], beforeMs: [] };
  for (let r = 0; r < rounds; r++) {
    row.ms.push(timeMs(run));
    const old = setWasmSimdKernels(false);
    try {
      row.beforeMs.push(timeMs(run));
    } finally {
      setWasmSimdKernels(old);
    }
  }
  return row;
}

// [batch, rows, m, n]: linear layers' weight gradients (nano-32 at batch 64, text-tiny at 32 × 256), attention's.
for (const [batch, n0, m, n] of [[1, 16384, 16, 64], [1, 16384, 64, 16], [1, 4096, 32, 128], [1, 1024, 48, 192], [1, 8192, 32, 96], [1, 8192, 96, 32], [64, 256, 256, 16], [64, 256, 16, 256]] as const) {
  const lead = batch === 1 ? [] : [batch];
  const a = tf.randomNormal([...lead, n0, m]);
  const b = tf.randomNormal([...lead, n0, n]);
  const swap = batch === 1 ? [1, 0] : [0, 2, 1];
  const row: Row = { kernel: 'aᵀ·b', shape: `${batch > 1 ? `${batch} × ` : ''}[${n0},${m}]ᵀ·[${n0},${n}]`, ms: [], beforeMs: [] };
  for (let r = 0; r < rounds; r++) {
    row.ms.push(timeMs(() => tf.matMul(a, b, true, false)));
    // attention's qᵀ·dscores (m much smaller than n) took the detour (bᵀ·a)ᵀ in the text model
    const detour = batch > 1 && 4 * m <= n;
    row.beforeMs.push(timeMs(() => tf.tidy(() => (detour ? tf.transpose(tf.matMul(tf.transpose(b, swap), a), swap) : tf.matMul(tf.transpose(a, swap), b)))));
  }
  rows.push(row);
  tf.dispose([a, b]);
}

// a batch of pairs a·b (attention's p·v and q·kᵀ): the SIMD product against XNNPACK per pair
for (const [batch, m, k, n] of [[64, 256, 256, 16], [64, 256, 16, 256]] as const) {
  const a = tf.randomNormal([batch, m, k]);
  const b = tf.randomNormal([batch, k, n]);
  rows.push(simdOnAndOff('a·b, a batch of pairs', `${batch} × [${m},${k}]·[${k},${n}]`, () => tf.matMul(a, b)));
  tf.dispose([a, b]);
}

for (const [batch, size, channels, k] of [[64, 16, 16, 3], [64, 8, 32, 3], [32, 56, 64, 7], [32, 14, 256, 7]] as const) {
  const x = tf.randomNormal([batch, size, size, channels]);
  const dy = tf.randomNormal([batch, size, size, channels]);
  const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1], filterShape: [k, k, channels, 1] };
  const run = () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  rows.push(simdOnAndOff('depthwise filter gradient', `[${batch},${size},${size},${channels}] ${k}×${k}`, run));
  tf.dispose([x, dy]);
}

// one pair a·b: the nano network's forward products and dx = dy·Wᵀ (after W's transpose)
for (const [m, k, n] of [[2048, 32, 128], [128, 96, 384], [32, 512, 128]] as const) {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  rows.push(simdOnAndOff('a·b, one pair', `[${m},${k}]·[${k},${n}]`, () => tf.tidy(() => tf.matMul(a, tf.add(b, 0)))));
  tf.dispose([a, b]);
}

// AdamW with clipping over the nano network's parameters: SIMD calls against the composed ops
{
  const model = new RevColVision(validateVisionConfig({
    channels: [32, 64, 96, 128], layers: [1, 1, 2, 1], columns: 4, kernelSize: 3, numClasses: 10, dropPath: 0, inputSize: 32, stemPatch: 4,
  }, 'nano'), 1);
  const grads = new Map(model.namedParameters().map(([, v], i) => [v, tf.randomNormal(v.shape, 0, 0.01, 'float32', i)] as [tf.Variable, tf.Tensor]));
  const optimizer = new AdamW(model, { weightDecay: 0.05 });
  const step = () => {
    const scale = clipCoefficient(grads, 5);
    optimizer.applyGradients(grads, 1e-3, { gradScale: scale });
    return scale;
  };
  const row: Row = { kernel: 'AdamW + clipping', shape: `${grads.size} parameters, ${model.parameterCount().toLocaleString('en-US')} floats`, ms: [], beforeMs: [] };
  for (let r = 0; r < rounds; r++) {
    row.ms.push(timeMs(step));
    const [fused, grouped] = [setFusedKernels(false), setGroupedAdam(false)];
    try {
      row.beforeMs.push(timeMs(step));
    } finally {
      setFusedKernels(fused);
      setGroupedAdam(grouped);
    }
  }
  rows.push(row);
  optimizer.dispose();
  tf.dispose([...grads.values()]);
  model.dispose();
}

const fmt = (xs: number[]) => xs.map((v) => v.toFixed(2)).join(', ');
if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
else {
  process.stdout.write('| kernel | shape | SIMD ms | before ms |\n| --- | --- | --- | --- |\n');
  for (const r of rows) process.stdout.write(`| ${r.kernel} | ${r.shape} | ${fmt(r.ms)} | ${fmt(r.beforeMs)} |\n`);
}
