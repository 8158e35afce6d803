/**
 * The webgpu kernels of src/backends/webgpu-conv.ts (depthwise filter and input gradients) and
 * src/backends/webgpu-reduce.ts (column sums) against the cpu backend, through tf.grad and
 * tf.sum, on a software adapter where no GPU is present (lavapipe); skipped where Dawn finds
 * no adapter at all. Each case also checks which programs ran (the new ones, or tfjs's where
 * they should fall back).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { planDepthwiseFilter } from '../src/backends/webgpu-conv.js';
import { columnSumPlan } from '../src/backends/webgpu-reduce.js';
import { columnSumChunks, tileColumns } from '../src/ops/webgpu-column-sum.js';
import { webgpu } from './helpers/webgpu.js';
import { expectClose, on, programsOf, values } from './helpers/webgpu-compare.js';

describe('plans (no GPU needed)', () => {
  it('tiles columns so that few threads fall past the end', () => {
    expect(tileColumns(64)).toBe(64);
    expect(tileColumns(96)).toBe(32);
    expect(tileColumns(512)).toBe(64);
    expect(tileColumns(3)).toBe(1);
    expect(tileColumns(1000)).toBe(64);
  });

  it('fills the GPU on revcol-t shapes where the old kernel ran kh·kw·C threads', () => {
    for (const [batch, size, channels] of [[32, 56, 64], [32, 28, 128], [32, 14, 256], [32, 7, 512], [2, 56, 64]] as const) {
      const plan = planDepthwiseFilter([batch, size, size, channels], 3, 3, size, size, 1, 1);
      const threads = plan.channelTiles * plan.chunks * 256;
      expect(threads).toBeGreaterThan(9 * channels * 8);
      expect(plan.units).toBeLessThanOrEqual(plan.chunks * plan.unitsPerChunk);
      expect((plan.chunks - 1) * plan.unitsPerChunk).toBeLessThan(plan.units);
    }
    // batch 2 at 56×56: rows are split into segments to find enough threads
    const small = planDepthwiseFilter([2, 56, 56, 64], 3, 3, 56, 56, 1, 1);
    expect(small.segments).toBeGreaterThan(1);
    expect(small.chunks).toBeGreaterThan(1);
  });

  it('takes only Sum over all leading axes of float32', () => {
    expect(columnSumPlan([2, 3, 4], 'float32', [0, 1], false)).toEqual({ rows: 6, columns: 4, outShape: [4] });
    expect(columnSumPlan([2, 3, 4], 'float32', [1, -3], true)).toEqual({ rows: 6, columns: 4, outShape: [1, 1, 4] });
    expect(columnSumPlan([5, 4], 'float32', 0, false)).toEqual({ rows: 5, columns: 4, outShape: [4] });
    expect(columnSumPlan([2, 3, 4], 'float32', [1, 2], false)).toBeUndefined();
    expect(columnSumPlan([2, 3, 4], 'float32', undefined, false)).toBeUndefined();
    expect(columnSumPlan([2, 3, 4], 'int32', [0, 1], false)).toBeUndefined();
    expect(columnSumPlan([4], 'float32', [0], false)).toBeUndefined();
    expect(columnSumChunks(100, 64)).toBe(1);
    expect(columnSumChunks(100_352, 64)).toBeGreaterThan(1);
  });
});

describe.skipIf(!webgpu.available)(`webgpu kernels against cpu (${webgpu.reason})`, () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  });
  afterAll(() => {
    releaseGpuBackend();
  });

  const depthwiseCases: Array<{ x: number[]; k: [number, number]; pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]] }> = [
    { x: [1, 5, 7, 3], k: [3, 3], pad: 'same' },
    { x: [2, 9, 11, 64], k: [7, 7], pad: 'same' },
    { x: [3, 13, 6, 96], k: [3, 3], pad: 'same' },
    { x: [2, 56, 56, 64], k: [3, 3], pad: 'same' },
    { x: [4, 7, 7, 96], k: [7, 7], pad: 'same' },
    { x: [2, 10, 9, 5], k: [3, 5], pad: 'same' },
    { x: [2, 8, 9, 64], k: [3, 3], pad: 'valid' },
    { x: [1, 6, 8, 16], k: [3, 3], pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  ];

  for (const { x: xShape, k, pad } of depthwiseCases) {
    it(`depthwise filter gradient x[${xShape}] k${k.join('x')} pad ${JSON.stringify(pad)}`, async () => {
      const c = xShape[3]!;
      const data = [
        { values: values(tf.util.sizeFromShape(xShape), 1), shape: xShape },
        { values: values(k[0] * k[1] * c, 2), shape: [k[0], k[1], c, 1] },
      ];
      const grad = (x: tf.Tensor, w: tf.Tensor) =>
        tf.tidy(() => {
          // a non-uniform upstream gradient: the output times a fixed pattern
          const f = (wv: tf.Tensor) => {
            const y = tf.depthwiseConv2d(x as tf.Tensor4D, wv as tf.Tensor4D, 1, pad);
            return tf.sum(tf.mul(y, tf.sin(tf.reshape(tf.range(0, y.size), y.shape))));
          };
          return tf.grad(f)(w);
        });
      const expected = await on('cpu', data, grad);
      let actual!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        actual = await on('webgpu', data, grad);
      });
      expect(programs).toContain('DepthwiseFilterPartialsProgram');
      expect(programs).not.toContain('DepthwiseConv2DDerFilterProgram');
      expectClose(actual, expected);
    });
  }

  for (const { x: xShape, k, pad } of depthwiseCases) {
    it(`depthwise input gradient x[${xShape}] k${k.join('x')} pad ${JSON.stringify(pad)}`, async () => {
      const c = xShape[3]!;
      const data = [
        { values: values(tf.util.sizeFromShape(xShape), 3), shape: xShape },
        { values: values(k[0] * k[1] * c, 4), shape: [k[0], k[1], c, 1] },
      ];
      const grad = (x: tf.Tensor, w: tf.Tensor) =>
        tf.tidy(() => {
          const f = (xv: tf.Tensor) => {
            const y = tf.depthwiseConv2d(xv as tf.Tensor4D, w as tf.Tensor4D, 1, pad);
            return tf.sum(tf.mul(y, tf.cos(tf.reshape(tf.range(0, y.size), y.shape))));
          };
          return tf.grad(f)(x);
        });
      const expected = await on('cpu', data, grad);
      let actual!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        actual = await on('webgpu', data, grad);
      });
      expect(programs).not.toContain('DepthwiseConv2DDerInputProgram');
      expectClose(actual, expected);
    });
  }

  it('leaves other depthwise gradients (stride 2) to tfjs', async () => {
    const xShape = [2, 9, 9, 8];
    const data = [
      { values: values(tf.util.sizeFromShape(xShape), 5), shape: xShape },
      { values: values(9 * 8, 6), shape: [3, 3, 8, 1] },
    ];
    const grad = (x: tf.Tensor, w: tf.Tensor) =>
      tf.tidy(() => {
        const f = (xv: tf.Tensor, wv: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, 2, 'same')));
        const [dx, dw] = tf.grads(f)([x, w]);
        return tf.concat([tf.reshape(dx!, [-1]), tf.reshape(dw!, [-1])]);
      });
    const expected = await on('cpu', data, grad);
    let actual!: { values: Float32Array; shape: number[] };
    const programs = await programsOf(async () => {
      actual = await on('webgpu', data, grad);
    });
    expect(programs).toContain('DepthwiseConv2DDerFilterProgram');
    expect(programs).toContain('DepthwiseConv2DDerInputProgram');
    expectClose(actual, expected);
  });

  const sumCases: Array<{ shape: number[]; axis: number[]; keepDims?: boolean }> = [
    { shape: [7, 3], axis: [0] },
    { shape: [1, 64], axis: [0] },
    { shape: [2, 56, 56, 64], axis: [0, 1, 2] },
    { shape: [5, 13, 96], axis: [0, 1] },
    { shape: [300, 1000], axis: [0] },
    { shape: [40_000, 3], axis: [0] },
    { shape: [3, 17, 33, 5], axis: [2, 0, 1], keepDims: true },
    { shape: [8, 28, 28, 128], axis: [0, 1, 2] },
  ];

  for (const { shape, axis, keepDims = false } of sumCases) {
    it(`column sum of [${shape}] over [${axis}]${keepDims ? ' keepDims' : ''}`, async () => {
      const data = [{ values: values(tf.util.sizeFromShape(shape), 7), shape }];
      const sum = (x: tf.Tensor) => tf.sum(x, axis, keepDims);
      const expected = await on('cpu', data, sum);
      let actual!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        actual = await on('webgpu', data, sum);
      });
      expect(programs).toContain('ColumnSumProgram');
      expect(programs).not.toContain('TransposeProgram');
      expectClose(actual, expected);
    });
  }

  it('column sums as bias gradients through tf.grad', async () => {
    const data = [
      { values: values(3 * 14 * 14 * 96, 8), shape: [3, 14, 14, 96] },
      { values: values(96, 9), shape: [96] },
    ];
    const grad = (x: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.grad((bv: tf.Tensor) => tf.sum(tf.mul(tf.square(tf.add(x, bv)), x)))(b));
    expectClose(await on('webgpu', data, grad), await on('cpu', data, grad));
  });

  it('leaves other sums to tfjs (inner axes, all axes, int32)', async () => {
    const data = [{ values: values(4 * 6 * 5, 10), shape: [4, 6, 5] }];
    for (const sum of [
      (x: tf.Tensor) => tf.sum(x, [1, 2]),
      (x: tf.Tensor) => tf.sum(x, 1),
      (x: tf.Tensor) => tf.sum(x),
      (x: tf.Tensor) => tf.cast(tf.sum(tf.cast(tf.mul(x, 10), 'int32'), [0, 1]), 'float32'),
    ]) {
      const expected = await on('cpu', data, sum);
      let actual!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        actual = await on('webgpu', data, sum);
      });
      expect(programs).not.toContain('ColumnSumProgram');
      expectClose(actual, expected);
    }
  });

  it('frees every intermediate (tensors and GPU buffers flat over repeated calls)', async () => {
    await tf.setBackend('webgpu');
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.tensor(values(8 * 28 * 28 * 64, 11), [8, 28, 28, 64]) as tf.Tensor4D;
    const w = tf.tensor(values(9 * 64, 12), [3, 3, 64, 1]) as tf.Tensor4D;
    const step = async () => {
      const out = tf.tidy(() => {
        const f = (xv: tf.Tensor, wv: tf.Tensor) => tf.sum(tf.square(tf.depthwiseConv2d(xv as tf.Tensor4D, wv as tf.Tensor4D, 1, 'same')));
        const [dx, dw] = tf.grads(f)([x, w]);
        return tf.concat([tf.reshape(dx!, [-1]), tf.add(tf.reshape(dw!, [-1]), tf.tile(tf.sum(tf.mul(x, 2), [0, 1, 2]), [9]))]);
      });
      await out.data();
      out.dispose();
    };
    await step();
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    for (let i = 0; i < 3; i++) await step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(dataIds);
    x.dispose();
    w.dispose();
  });
});
