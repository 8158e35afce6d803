/**
 * The 64 × 64-tile product of src/backends/webgpu-gemm.ts against the cpu backend, on a software
 * adapter where no GPU is present (lavapipe); skipped where Dawn finds no adapter. Every
 * transpose, ragged edges (sizes not multiples of the tile or of the inner step), batches and
 * broadcast batches, the bias of tf.fused.matMul, gradients through it, and no tensor or GPU
 * buffer left behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gpuWaitTimedPolls, gpuWaitYielding } from '../src/backends/dawn-polling.js';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { gemmWorthIt, MIN_TILES, planGemm, setWebgpuGemm, tuneWebgpuGemm, webgpuGemmEnabled, webgpuGemmTuning } from '../src/backends/webgpu-gemm.js';
import { webgpu } from './helpers/webgpu.js';
import { expectClose, on, programsOf, values } from './helpers/webgpu-compare.js';

describe('product plans (no GPU needed)', () => {
  it('reads sizes for every transpose and batch form', () => {
    expect(planGemm([5, 7], [7, 3], false, false)).toEqual({ batch: 1, m: 5, k: 7, n: 3, aBatchStride: 0, bBatchStride: 0, outShape: [5, 3] });
    expect(planGemm([7, 5], [3, 7], true, true)).toMatchObject({ m: 5, k: 7, n: 3 });
    expect(planGemm([2, 4, 5, 7], [2, 4, 7, 3], false, false)).toMatchObject({ batch: 8, aBatchStride: 35, bBatchStride: 21, outShape: [2, 4, 5, 3] });
    expect(planGemm([6, 5, 7], [7, 3], false, false)).toMatchObject({ batch: 6, aBatchStride: 35, bBatchStride: 0, outShape: [6, 5, 3] });
    expect(planGemm([5, 7], [6, 7, 3], false, false)).toMatchObject({ batch: 6, aBatchStride: 0, bBatchStride: 21, outShape: [6, 5, 3] });
  });

  it('refuses what it does not read: mismatched inner sizes, partial batch broadcasts, empty outputs', () => {
    expect(planGemm([5, 7], [8, 3], false, false)).toBeNull();
    expect(planGemm([2, 3, 5, 7], [3, 2, 7, 3], false, false)).toBeNull();
    expect(planGemm([2, 5, 7], [3, 7, 3], false, false)).toBeNull();
    expect(planGemm([0, 7], [7, 3], false, false)).toBeNull();
  });

  it('takes only products with enough tiles to fill a large GPU', () => {
    // RevCol-T level 0 at batch 64, 224²: 200,704 rows × 64 → 256 (fc1).
    expect(gemmWorthIt(planGemm([200_704, 64], [64, 256], false, false)!)).toBe(true);
    expect(gemmWorthIt(planGemm([128, 64], [64, 128], false, false)!)).toBe(false);
    expect(gemmWorthIt(planGemm([64 * MIN_TILES, 32], [32, 64], false, false)!)).toBe(true);
    expect(gemmWorthIt(planGemm([64 * MIN_TILES, 8], [8, 64], false, false)!)).toBe(false); // inner dimension below one step
    expect(gemmWorthIt(planGemm([64, 2, 256, 256], [64, 2, 256, 16], false, false)!)).toBe(false); // 16 of 64 columns used
  });

  it('is off unless asked for; REVCOL_WEBGPU_GEMM is read once, and again after setWebgpuGemm(null)', () => {
    const saved = process.env.REVCOL_WEBGPU_GEMM;
    delete process.env.REVCOL_WEBGPU_GEMM;
    try {
      setWebgpuGemm(null);
      expect(webgpuGemmEnabled()).toBe(false);
      process.env.REVCOL_WEBGPU_GEMM = '1';
      expect(webgpuGemmEnabled()).toBe(false); // read once, not on every product
      setWebgpuGemm(null); // back to the environment: read again
      expect(webgpuGemmEnabled()).toBe(true);
      setWebgpuGemm(false);
      expect(webgpuGemmEnabled()).toBe(false);
    } finally {
      setWebgpuGemm(null);
      if (saved === undefined) delete process.env.REVCOL_WEBGPU_GEMM;
      else process.env.REVCOL_WEBGPU_GEMM = saved;
    }
  });
});

describe.skipIf(!webgpu.available)(`64 × 64-tile products on webgpu against cpu (${webgpu.reason})`, () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  });
  afterEach(() => {
    setWebgpuGemm(null);
  });
  afterAll(() => {
    releaseGpuBackend();
  });

  const gemmRuns = (programs: string[]) => programs.filter((p) => p === 'GemmProgram').length;

  const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
    { a: [8192, 64], b: [64, 256], ta: false, tb: false }, // a ConvNeXt fc1 shape, whole tiles
    { a: [4133, 37], b: [37, 301], ta: false, tb: false }, // ragged everywhere, inner not a multiple of 16
    { a: [37, 4133], b: [37, 301], ta: true, tb: false },
    { a: [4133, 37], b: [301, 37], ta: false, tb: true },
    { a: [37, 4133], b: [301, 37], ta: true, tb: true },
    { a: [8192, 256], b: [64, 256], ta: false, tb: true }, // an input gradient dy·Wᵀ
    { a: [8, 2, 256, 16], b: [8, 2, 16, 256], ta: false, tb: false }, // attention scores, 16 batches
    { a: [64, 2, 256, 256], b: [64, 2, 256, 16], ta: false, tb: false }, // 16 of each tile's 64 columns: tfjs's
    { a: [50, 180, 40], b: [40, 70], ta: false, tb: false }, // b broadcast over the batch
    { a: [40, 180], b: [50, 70, 40], ta: true, tb: true }, // a broadcast
  ];

  for (const { a, b, ta, tb } of cases) {
    const label = `${ta ? 'aᵀ' : 'a'}·${tb ? 'bᵀ' : 'b'} for a [${a}], b [${b}]`;
    it(label, async () => {
      const data = [
        { values: values(tf.util.sizeFromShape(a), 21), shape: a },
        { values: values(tf.util.sizeFromShape(b), 22), shape: b },
      ];
      const product = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
      const expected = await on('cpu', data, product);
      const plan = planGemm(a, b, ta, tb)!;
      setWebgpuGemm(true);
      let actual!: { values: Float32Array; shape: number[] };
      const programs = await programsOf(async () => {
        actual = await on('webgpu', data, product);
      });
      expect(gemmRuns(programs)).toBe(gemmWorthIt(plan) ? 1 : 0);
      expectClose(actual, expected);
      // Off: tfjs's own kernel, the same values to float rounding.
      setWebgpuGemm(false);
      const off = await programsOf(async () => {
        expectClose(await on('webgpu', data, product), expected);
      });
      expect(gemmRuns(off)).toBe(0);
    });
  }

  it('tf.fused.matMul with a bias, and the weight, bias and input gradients through it; nothing left behind', async () => {
    const data = [
      { values: values(16384 * 48, 23), shape: [16384, 48] },
      { values: values(48 * 96, 24), shape: [48, 96] },
      { values: values(96, 25), shape: [96] },
    ];
    const forward = (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) => tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias });
    const grads = (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) =>
      tf.tidy(() => {
        const f = (xv: tf.Tensor, wv: tf.Tensor, bv: tf.Tensor) => tf.sum(tf.square(tf.fused.matMul({ a: xv as tf.Tensor2D, b: wv as tf.Tensor2D, bias: bv })));
        const [dx, dw, db] = tf.grads(f)([x, w, bias]);
        return tf.concat([tf.reshape(dx!, [-1]), tf.reshape(dw!, [-1]), db!]);
      });
    const expectedForward = await on('cpu', data, forward);
    const expectedGrads = await on('cpu', data, grads);
    setWebgpuGemm(true);
    await tf.setBackend('webgpu');
    const before = { tensors: tf.memory().numTensors, data: tf.engine().backend.numDataIds() };
    let actual!: { values: Float32Array; shape: number[] };
    const forwardPrograms = await programsOf(async () => {
      actual = await on('webgpu', data, forward);
    });
    expect(gemmRuns(forwardPrograms)).toBe(1);
    expectClose(actual, expectedForward);
    const gradPrograms = await programsOf(async () => {
      actual = await on('webgpu', data, grads);
    });
    // forward and dx = dy·wᵀ here; dw = xᵀ·dy is the split weight-gradient product's
    expect(gemmRuns(gradPrograms)).toBe(2);
    expectClose(actual, expectedGrads);
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(tf.engine().backend.numDataIds()).toBe(before.data);
  });

  it('runs the split weight gradient\'s partial products, with the same bits every run', async () => {
    // aᵀ·b with a long inner dimension: 64 slices of 512 rows, each a 64 × 256 partial (4 tiles).
    const data = [
      { values: values(32768 * 64, 28), shape: [32768, 64] },
      { values: values(32768 * 256, 29), shape: [32768, 256] },
    ];
    const product = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, true, false);
    const expected = await on('cpu', data, product);
    setWebgpuGemm(true);
    let first!: { values: Float32Array; shape: number[] };
    const programs = await programsOf(async () => {
      first = await on('webgpu', data, product);
    });
    expect(gemmRuns(programs)).toBe(1);
    expect(programs).toContain('ColumnSumProgram');
    expect(programs.filter((p) => p.startsWith('MatMul'))).toHaveLength(0);
    expectClose(first, expected);
    const again = await on('webgpu', data, product);
    expect(Array.from(again.values)).toEqual(Array.from(first.values));
  });

  it('the start-up timing: skipped on a software adapter and where the choice is given; else both timed, the faster kept, nothing left behind', async () => {
    await tf.setBackend('webgpu');
    const saved = process.env.REVCOL_WEBGPU_GEMM;
    delete process.env.REVCOL_WEBGPU_GEMM;
    try {
      // useBackend ran it on lavapipe, a software adapter: skipped, tfjs's kernel kept
      expect(webgpuGemmTuning()).toBeNull();
      expect(webgpuGemmEnabled()).toBe(false);
      process.env.REVCOL_WEBGPU_GEMM = '0';
      expect(await tuneWebgpuGemm({ rows: 4096, reps: 1, rounds: 1 })).toBeNull();
      delete process.env.REVCOL_WEBGPU_GEMM;
      setWebgpuGemm(true);
      expect(await tuneWebgpuGemm({ rows: 4096, reps: 1, rounds: 1 })).toBeNull();
      setWebgpuGemm(null);
      // as on a hardware adapter (small sizes: lavapipe is slow); which one wins here says nothing of a GPU
      const before = { tensors: tf.memory().numTensors, data: tf.engine().backend.numDataIds() };
      let tuning!: Awaited<ReturnType<typeof tuneWebgpuGemm>>;
      const polls = gpuWaitTimedPolls();
      const programs = await programsOf(async () => {
        tuning = await tuneWebgpuGemm({ rows: 2048, reps: 2, rounds: 1 });
      });
      // timed with dawn.node's own polling (no wait's end put off by the 1 ms timer), then back
      expect(gpuWaitTimedPolls()).toBe(polls);
      expect(gpuWaitYielding()).toBe(true);
      expect(tuning).not.toBeNull();
      expect(tuning!.tfjsMs).toBeGreaterThan(0);
      expect(tuning!.gemmMs).toBeGreaterThan(0);
      expect(tuning!.agrees).toBe(true);
      expect(tuning!.gpuError).toBeUndefined();
      expect(tuning!.totalMs).toBeGreaterThanOrEqual(tuning!.tfjsMs + tuning!.gemmMs);
      // each form a training step makes is timed and chosen apart: this kernel where ≥ 10% faster
      expect(Object.keys(tuning!.forms).sort()).toEqual(['nn', 'nt', 'tn']);
      for (const [form, t] of Object.entries(tuning!.forms)) {
        expect(t.tfjsMs, form).toBeGreaterThan(0);
        expect(t.gemmMs, form).toBeGreaterThan(0);
        expect(t.agrees, form).toBe(true);
        expect(t.chosen, form).toBe(t.gemmMs <= 0.9 * t.tfjsMs);
        expect(webgpuGemmEnabled(form as 'nn' | 'nt' | 'tn'), form).toBe(t.chosen);
      }
      expect(tuning!.tfjsMs).toBeCloseTo(tuning!.forms.nn.tfjsMs + tuning!.forms.nt.tfjsMs + tuning!.forms.tn.tfjsMs, 2);
      expect(tuning!.chosen).toBe(Object.values(tuning!.forms).some((t) => t.chosen));
      expect(webgpuGemmTuning()).toEqual(tuning);
      expect(webgpuGemmEnabled()).toBe(tuning!.chosen);
      expect(webgpuGemmEnabled('tt')).toBe(false); // not timed: tfjs's
      // a product of each form afterwards takes the kernel its form chose
      for (const [form, [ta, tb]] of [['nn', [false, false]], ['nt', [false, true]], ['tn', [true, false]]] as const) {
        const a = tf.ones(ta ? [64, 2048] : [2048, 64]);
        const b = tf.ones(tb ? [512, 64] : [64, 512]);
        const ran = await programsOf(async () => {
          const p = tf.matMul(a, b, ta, tb);
          await p.data();
          p.dispose();
        });
        tf.dispose([a, b]);
        expect(gemmRuns(ran) > 0, `${form}: ${ran.join(', ')}`).toBe(tuning!.forms[form].chosen);
      }
      // both kernels ran: x·w (2,048 × 512: 256 tiles) takes the new one when it is timed
      expect(gemmRuns(programs)).toBeGreaterThan(0);
      expect(programs.filter((p) => p.startsWith('MatMul')).length).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before.tensors);
      expect(tf.engine().backend.numDataIds()).toBe(before.data);
    } finally {
      if (saved === undefined) delete process.env.REVCOL_WEBGPU_GEMM;
      else process.env.REVCOL_WEBGPU_GEMM = saved;
      // back to what a software adapter gets
      await tuneWebgpuGemm({ software: true });
    }
  });

  it('leaves a fused product with an activation to tfjs', async () => {
    const data = [
      { values: values(16384 * 32, 26), shape: [16384, 32] },
      { values: values(32 * 64, 27), shape: [32, 64] },
    ];
    const forward = (x: tf.Tensor, w: tf.Tensor) => tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, activation: 'relu' });
    const expected = await on('cpu', data, forward);
    setWebgpuGemm(true);
    let actual!: { values: Float32Array; shape: number[] };
    const programs = await programsOf(async () => {
      actual = await on('webgpu', data, forward);
    });
    expect(gemmRuns(programs)).toBe(0);
    expectClose(actual, expected);
  });
});
