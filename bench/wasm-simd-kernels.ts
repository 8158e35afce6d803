/**
 * revcol's SIMD kernels for weight gradients (aᵀ·b) and the depthwise filter gradient, each
 * timed against the path it replaced, on the shapes the default models train with:
 * - aᵀ·b: `tf.matMul(a, b, true, false)` (the kernel) against `tf.matMul(tf.transpose(a), b)`
 *   (what the BatchMatMul wrapper did before: write aᵀ out, then XNNPACK), or for attention's
 *   qᵀ·dscores against the (dscoresᵀ·q)ᵀ the text model computed instead;
 * - a batch of pairs a·b with the SIMD module on and off (off: one XNNPACK product per pair);
 * - the depthwise filter gradient with the SIMD module on and off (off: one XNNPACK depthwise
 *   convolution over batch × channels from 100 output positions up, JavaScript below).
 * Median of 5 calls after a warm-up; alternating rounds (--rounds, default 2).
 *   npm run bench -- wasm-simd-kernels [--rounds N] [--json]
 */
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/index.js';
import { setWasmSimdKernels } from '../src/ops/wasm-simd.js';

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
const rows: Array<{ kernel: string; shape: string; ms: number[]; beforeMs: number[] }> = [];

// [batch, rows, m, n]: linear layers' weight gradients (nano-32 at batch 64, text-tiny at 32 × 256), attention's.
for (const [batch, n0, m, n] of [[1, 16384, 16, 64], [1, 16384, 64, 16], [1, 4096, 32, 128], [1, 1024, 48, 192], [1, 8192, 32, 96], [1, 8192, 96, 32], [64, 256, 256, 16], [64, 256, 16, 256]] as const) {
  const lead = batch === 1 ? [] : [batch];
  const a = tf.randomNormal([...lead, n0, m]);
  const b = tf.randomNormal([...lead, n0, n]);
  const swap = batch === 1 ? [1, 0] : [0, 2, 1];
  const row = { kernel: 'aᵀ·b', shape: `${batch > 1 ? `${batch} × ` : ''}[${n0},${m}]ᵀ·[${n0},${n}]`, ms: [] as number[], beforeMs: [] as number[] };
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
  const row = { kernel: 'a·b, a batch of pairs', shape: `${batch} × [${m},${k}]·[${k},${n}]`, ms: [] as number[], beforeMs: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    row.ms.push(timeMs(() => tf.matMul(a, b)));
    const old = setWasmSimdKernels(false);
    try {
      row.beforeMs.push(timeMs(() => tf.matMul(a, b)));
    } finally {
      setWasmSimdKernels(old);
    }
  }
  rows.push(row);
  tf.dispose([a, b]);
}

for (const [batch, size, channels, k] of [[64, 16, 16, 3], [64, 8, 32, 3], [32, 56, 64, 7], [32, 14, 256, 7]] as const) {
  const x = tf.randomNormal([batch, size, size, channels]);
  const dy = tf.randomNormal([batch, size, size, channels]);
  const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1], filterShape: [k, k, channels, 1] };
  const run = () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const row = { kernel: 'depthwise filter gradient', shape: `[${batch},${size},${size},${channels}] ${k}×${k}`, ms: [] as number[], beforeMs: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    row.ms.push(timeMs(run));
    const old = setWasmSimdKernels(false);
    try {
      row.beforeMs.push(timeMs(run));
    } finally {
      setWasmSimdKernels(old);
    }
  }
  rows.push(row);
  tf.dispose([x, dy]);
}

const fmt = (xs: number[]) => xs.map((v) => v.toFixed(2)).join(', ');
if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
else {
  process.stdout.write('| kernel | shape | SIMD ms | before ms |\n| --- | --- | --- | --- |\n');
  for (const r of rows) process.stdout.write(`| ${r.kernel} | ${r.shape} | ${fmt(r.ms)} | ${fmt(r.beforeMs)} |\n`);
}
