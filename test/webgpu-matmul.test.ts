/**
 * The split weight-gradient product of src/backends/webgpu-matmul.ts against the cpu backend,
 * on a software adapter where no GPU is present (lavapipe); skipped where Dawn finds no adapter.
 * Each case checks which programs ran (the split: a batched product and a column sum; else
 * tfjs's product alone), that repeated split runs give the same bits, and that nothing is left behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { MIN_ROWS_PER_SPLIT, planSplit, TARGET_WORKGROUPS } from '../src/backends/webgpu-matmul.js';
import { webgpu } from './helpers/webgpu.js';
import { expectClose, on, programsOf, values } from './helpers/webgpu-compare.js';

describe('split plans (no GPU needed)', () => {
  it('brings ConvNeXt MLP weight gradients at batch 64 up to the target, with exact slices', () => {
    // revcol-t level 0 at 224²: rows 64·56·56; fc1 is 64 → 256 (16 tiles of 32 × 32).
    expect(planSplit(64, 64 * 56 * 56, 256)).toEqual({ splits: 64, tiles: 16 });
    // The stem's patch product: 4·4·3 = 48 inputs → 64 channels (4 tiles).
    const stem = planSplit(48, 64 * 56 * 56, 64);
    expect(stem.splits * stem.tiles).toBeLessThanOrEqual(TARGET_WORKGROUPS);
    expect(stem.splits).toBe(256);
    for (const [m, k, n] of [[64, 200_704, 256], [96, 50_000, 384], [48, 3001 * 7, 64], [512, 6272, 2048]] as const) {
      const { splits, tiles } = planSplit(m, k, n);
      expect(k % splits).toBe(0);
      expect(k / splits).toBeGreaterThanOrEqual(MIN_ROWS_PER_SPLIT);
      expect(splits * tiles).toBeLessThanOrEqual(Math.max(TARGET_WORKGROUPS, tiles));
    }
  });

  it('leaves products alone that fill the GPU, have a short inner dimension, or no divisor that fits', () => {
    expect(planSplit(2048, 100_000, 2048).splits).toBe(1); // 4,096 tiles already
    expect(planSplit(64, 300, 64).splits).toBe(1); // one slice of 256 rows at most
    expect(planSplit(64, 4099, 64).splits).toBe(1); // a prime
  });
});

describe.skipIf(!webgpu.available)(`split weight-gradient products on webgpu against cpu (${webgpu.reason})`, () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  });
  afterAll(() => {
    releaseGpuBackend();
  });

  const cases: Array<{ a: number[]; b: number[]; split: boolean }> = [
    { a: [8192, 64], b: [8192, 256], split: true },
    { a: [3000, 17], b: [3000, 40], split: true }, // ragged tiles; k = 3000: 11 slices would fit, 10 divide it
    { a: [1, 4096, 48], b: [1, 4096, 64], split: true }, // a batch of one, as rank 3
    { a: [4099, 16], b: [4099, 16], split: false }, // prime inner dimension
    { a: [200, 32], b: [200, 32], split: false }, // short inner dimension
  ];

  for (const { a, b, split } of cases) {
    it(`aᵀ·b for a [${a}], b [${b}]: ${split ? 'split' : 'left to tfjs'}`, async () => {
      const data = [
        { values: values(tf.util.sizeFromShape(a), 11), shape: a },
        { values: values(tf.util.sizeFromShape(b), 12), shape: b },
      ];
      const product = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, true, false);
      const expected = await on('cpu', data, product);
      let first!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        first = await on('webgpu', data, product);
      });
      expect(programs.includes('ColumnSumProgram')).toBe(split);
      expect(programs.filter((p) => p.startsWith('MatMul'))).toHaveLength(1);
      expectClose(first, expected);
      // The split adds its partials in a fixed order: the same bits every run. (tfjs's own split-K,
      // which takes the prime case here, adds with atomics, so there only closeness holds.)
      const again = await on('webgpu', data, product);
      if (split) expect(Array.from(again.values)).toEqual(Array.from(first.values));
      else expectClose(again, expected);
    });
  }

  it('other products (not the weight-gradient form) go to tfjs unchanged', async () => {
    const data = [
      { values: values(4096 * 32, 13), shape: [4096, 32] },
      { values: values(32 * 48, 14), shape: [32, 48] },
    ];
    const product = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
    const expected = await on('cpu', data, product);
    let actual!: { values: Float32Array; shape: number[] };
    const programs = await programsOf(async () => {
      actual = await on('webgpu', data, product);
    });
    expect(programs).not.toContain('ColumnSumProgram');
    expectClose(actual, expected);
  });

  it('a Linear layer\'s weight and bias gradients through tf.grad, with no tensor or buffer left behind', async () => {
    const data = [
      { values: values(6144 * 24, 15), shape: [6144, 24] },
      { values: values(24 * 96, 16), shape: [24, 96] },
      { values: values(96, 17), shape: [96] },
    ];
    const grads = (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) =>
      tf.tidy(() => {
        const f = (wv: tf.Tensor, bv: tf.Tensor) => tf.sum(tf.square(tf.fused.matMul({ a: x as tf.Tensor2D, b: wv as tf.Tensor2D, bias: bv })));
        const [dw, db] = tf.grads(f)([w, bias]);
        return tf.concat([tf.reshape(dw!, [-1]), db!]);
      });
    const expected = await on('cpu', data, grads);
    await tf.setBackend('webgpu');
    const before = { tensors: tf.memory().numTensors, data: tf.engine().backend.numDataIds() };
    let actual!: { values: Float32Array; shape: number[] };
    const programs = await programsOf(async () => {
      actual = await on('webgpu', data, grads);
    });
    expect(programs).toContain('ColumnSumProgram');
    expectClose(actual, expected);
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(tf.engine().backend.numDataIds()).toBe(before.data);
  });
});
