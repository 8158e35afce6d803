// The fused kernels (src/ops) against the chains of tfjs ops they replace, computed on the cpu
// backend with the kernels off: values and gradients, several shapes, on cpu, wasm and webgpu
// (a software adapter such as lavapipe; reported as skipped where none can be had), and no
// tensor left behind.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import '../src/core/engine.js'; // registers tfjs's gradients
import { RandomStream } from '../src/core/random.js';
import { rowLanes, rowLanesEnvironmentProblem, setWebgpuRowLanes, setWebgpuVec4, vec4Fits, webgpuVec4 } from '../src/ops/kernels-webgpu.js';
import { adamMoments, adamUpdate, attentionSoftmax, clampMagnitude, columnSum, gelu, hashDropout, hashDropoutMask, layerNorm, rowStats, scaledResidual, setFusedKernels, softmax, unscaleDifference } from '../src/ops/fused.js';
import { withWasmSimdKernels } from './helpers/wasm-simd.js';
import { dropoutHash, keepThreshold } from '../src/ops/hash-dropout.js';
import { webgpu } from './helpers/webgpu.js';

/** Deterministic values in about [-2, 2]. */
function values(n: number, seed: number, positive = false): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    out[i] = positive ? 0.05 + u * 2 : (u - 0.5) * 4;
  }
  return out;
}

interface Case {
  name: string;
  shapes: number[][];
  /** Which inputs get a gradient (indices); none: values only. */
  grad?: number[];
  positive?: number[];
  f: (...xs: tf.Tensor[]) => tf.Tensor;
}

const keepOf = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 3 === 1 ? 0 : 1.25));

const CASES: Case[] = [
  // rows of 7, 33 and 130 floats take wasm's JavaScript path, 12 and 64 its SIMD kernel
  ...[[5, 7], [2, 3, 4, 33], [3, 130], [70, 64], [6, 12]].map((s) => ({
    name: `layerNorm ${s.join('×')}`,
    shapes: [s, [s[s.length - 1]!], [s[s.length - 1]!]],
    grad: [0, 1, 2],
    f: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => layerNorm(x, g, b, 1e-6),
  })),
  // 35 and 10,530 elements: the SIMD kernel's groups of 4 and a JavaScript tail; 4,096 none
  ...[[5, 7], [2, 9, 9, 65], [64, 64]].map((s) => ({ name: `gelu ${s.join('×')}`, shapes: [s], grad: [0], f: (x: tf.Tensor) => gelu(x) })),
  // on webgpu 4 × 5 × 5 × 12 and 3 × 17 × 40 take four elements a thread (vec4), 3 × 5 × 7 one
  ...[[4, 5, 5, 12], [3, 17, 40], [3, 5, 7]].flatMap((s) => {
    const c = [s[s.length - 1]!];
    return [
      { name: `scaledResidual gamma ${s.join('×')}`, shapes: [s, s, c], grad: [0, 1, 2], f: (x: tf.Tensor, h: tf.Tensor, g: tf.Tensor) => scaledResidual(x, h, g, null) },
      { name: `scaledResidual gamma+keep ${s.join('×')}`, shapes: [s, s, c], grad: [0, 1, 2], f: (x: tf.Tensor, h: tf.Tensor, g: tf.Tensor) => scaledResidual(x, h, g, tf.tensor1d(keepOf(s[0]!))) },
      { name: `scaledResidual keep ${s.join('×')}`, shapes: [s, s], grad: [0, 1], f: (x: tf.Tensor, h: tf.Tensor) => scaledResidual(x, h, null, tf.tensor1d(keepOf(s[0]!))) },
      { name: `unscaleDifference ${s.join('×')}`, shapes: [s, s, c], positive: [2], f: (x: tf.Tensor, f: tf.Tensor, g: tf.Tensor) => unscaleDifference(x, f, g) },
    ];
  }),
  ...[[3, 5], [1000, 3], [2, 50, 40, 16], [3, 683, 64]].flatMap((s) => [
    { name: `columnSum sum ${s.join('×')}`, shapes: [s], f: (a: tf.Tensor) => columnSum('sum', a) },
    { name: `columnSum product ${s.join('×')}`, shapes: [s, s], f: (a: tf.Tensor, b: tf.Tensor) => columnSum('product', a, b) },
    { name: `columnSum productKeep ${s.join('×')}`, shapes: [s, s], f: (a: tf.Tensor, b: tf.Tensor) => columnSum('productKeep', a, b, tf.tensor1d(keepOf(s[0]!))) },
    { name: `columnSum normed ${s.join('×')}`, shapes: [s, s], f: (a: tf.Tensor, b: tf.Tensor) => columnSum('normed', a, b, rowStats(b, 1e-6)) },
  ]),
  // drop path alone over rows of 3: four elements a thread span channels (webgpu)
  { name: 'scaledResidual keep 4×2×2×3', shapes: [[4, 2, 2, 3], [4, 2, 2, 3]], grad: [0, 1], f: (x: tf.Tensor, h: tf.Tensor) => scaledResidual(x, h, null, tf.tensor1d(keepOf(4))) },
  // the reference is the mask made in JS and multiplied in: the kernels must draw the same mask
  // (3 × 70 × 128: four elements a thread on webgpu, each with its own draw)
  ...[[5, 7], [3, 70, 129], [3, 70, 128]].flatMap((s) => [
    { name: `dropout keep 0.9 ${s.join('×')}`, shapes: [s], grad: [0], f: (x: tf.Tensor) => hashDropout(x, 12345, 0.9) },
    { name: `dropout keep 0.5 seed 2³²−1 ${s.join('×')}`, shapes: [s], grad: [0], f: (x: tf.Tensor) => hashDropout(x, 0xffffffff, 0.5) },
  ]),
  // rows of 7 and 33 leave a tail past the SIMD kernel's groups of 4
  ...[[5, 7], [2, 3, 4, 33], [2, 2, 64, 64]].map((s) => ({ name: `softmax ${s.join('×')}`, shapes: [s], grad: [0], f: (x: tf.Tensor) => softmax(x) })),
  // attention weights: the scale and a padding mask (−1e9 where the second input is below −1, about
  // a quarter of the keys) inside the softmax; rows of 7 (ragged for 64 threads) and 130
  ...[[2, 3, 5, 7], [2, 2, 16, 130]].flatMap((s) => [
    { name: `attentionSoftmax ${s.join('×')}`, shapes: [s], grad: [0], f: (x: tf.Tensor) => attentionSoftmax(x, null, 0.25) },
    {
      name: `attentionSoftmax masked ${s.join('×')}`,
      shapes: [s, [s[0]!, s[s.length - 1]!]],
      grad: [0],
      f: (x: tf.Tensor, b: tf.Tensor) => attentionSoftmax(x, tf.mul(tf.cast(tf.less(b, -1), 'float32'), -1e9), 0.25),
    },
  ]),
  { name: 'clampMagnitude 5×7', shapes: [[5, 7]], f: (x) => clampMagnitude(x, 0.8) },
  { name: 'clampMagnitude 300', shapes: [[300]], f: (x) => clampMagnitude(x, 1e-3) },
  { name: 'rowStats 37×19', shapes: [[37, 19]], f: (x) => rowStats(x, 1e-5) },
  { name: 'rowStats 37×20', shapes: [[37, 20]], f: (x) => rowStats(x, 1e-5) },
  { name: 'adamMoments', shapes: [[2, 301], [301]], positive: [0], f: (mv, g) => adamMoments(mv, g, 0.9, 0.999) },
  { name: 'adamMoments 2-D', shapes: [[2, 7, 9], [7, 9]], positive: [0], f: (mv, g) => adamMoments(mv, g, 0.8, 0.99) },
  { name: 'adamMoments scaled', shapes: [[2, 7, 9], [7, 9], [1]], positive: [0, 2], f: (mv, g, s) => adamMoments(mv, g, 0.8, 0.99, s) },
  { name: 'adamUpdate', shapes: [[7, 9], [2, 7, 9]], positive: [1], f: (p, mv) => adamUpdate(p, mv, 1e-3 / 0.1, Math.sqrt(0.001), 1e-8, 1 - 1e-3 * 0.05) },
  { name: 'adamUpdate no decay', shapes: [[301], [2, 301]], positive: [1], f: (p, mv) => adamUpdate(p, mv, 1e-2, 0.5, 1e-8, 1) },
];

interface Result {
  value: Float32Array;
  grads: Float32Array[];
}

function evaluate(c: Case, seed: number): Promise<Result> {
  return (async () => {
    const xs = c.shapes.map((s, i) => tf.tensor(values(s.reduce((a, b) => a * b, 1), seed + 17 * i, c.positive?.includes(i)), s));
    const value = tf.tidy(() => c.f(...xs));
    const out: Result = { value: (await value.data()) as Float32Array, grads: [] };
    if (c.grad) {
      const dy = tf.tensor(values(value.size, seed + 999), value.shape);
      const grads = tf.grads((...ins: tf.Tensor[]) => {
        const all = xs.map((x, i) => (c.grad!.includes(i) ? ins[c.grad!.indexOf(i)]! : x));
        return c.f(...all);
      })(c.grad.map((i) => xs[i]!), dy);
      for (const g of grads) out.grads.push((await g.data()) as Float32Array);
      tf.dispose([dy, ...grads]);
    }
    tf.dispose([value, ...xs]);
    return out;
  })();
}

function expectClose(actual: Float32Array, expected: Float32Array, what: string, tolerance: number): void {
  expect(actual.length, what).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  expect(worst, `${what}: max |Δ| ${worst} against max |value| ${scale}`).toBeLessThanOrEqual(tolerance * Math.max(1, scale));
}

const references = new Map<string, Result>();

async function reference(c: Case): Promise<Result> {
  let r = references.get(c.name);
  if (!r) {
    await useBackend('cpu');
    const old = setFusedKernels(false);
    try {
      r = await evaluate(c, 7);
    } finally {
      setFusedKernels(old);
    }
    references.set(c.name, r);
  }
  return r;
}

describe('lanes per row of the webgpu row programs', () => {
  it('give each lane about 8 values, 4 to 64 lanes, and follow REVCOL_WEBGPU_ROW_LANES (read once, and again after setWebgpuRowLanes(null) or a check at start) or setWebgpuRowLanes', () => {
    expect([1, 7, 32, 33, 64, 65, 128, 130, 256, 512, 4096].map(rowLanes)).toEqual([4, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64]);
    const old = process.env.REVCOL_WEBGPU_ROW_LANES;
    try {
      process.env.REVCOL_WEBGPU_ROW_LANES = '64';
      expect(rowLanes(64)).toBe(8); // read once (at the start, or the first row program), not on every launch
      setWebgpuRowLanes(null); // back to the environment: read again
      expect(rowLanes(64)).toBe(64);
      setWebgpuRowLanes(2);
      expect(rowLanes(4096)).toBe(2);
      setWebgpuRowLanes(null);
      process.env.REVCOL_WEBGPU_ROW_LANES = 'auto';
      expect(rowLanes(64)).toBe(8);
      expect(rowLanesEnvironmentProblem()).toBeUndefined();
      process.env.REVCOL_WEBGPU_ROW_LANES = '12';
      expect(rowLanesEnvironmentProblem()).toBe("REVCOL_WEBGPU_ROW_LANES must be one of 1, 2, 4, 8, 16, 32, 64 or auto, got '12'");
      expect(() => rowLanes(64)).toThrow(/^REVCOL_WEBGPU_ROW_LANES must be/);
      expect(() => setWebgpuRowLanes(3)).toThrow(/^lanes per row/);
    } finally {
      setWebgpuRowLanes(null);
      if (old === undefined) delete process.env.REVCOL_WEBGPU_ROW_LANES;
      else process.env.REVCOL_WEBGPU_ROW_LANES = old;
    }
  });
});

describe('four elements a thread in the webgpu element-wise programs', () => {
  it('where every vec4 stays inside one channel run and one sample, and REVCOL_WEBGPU_VEC4=0 or setWebgpuVec4 turns it off', () => {
    expect(vec4Fits(48, ['full', 'full'], {})).toBe(true);
    expect(vec4Fits(35, ['full'], {})).toBe(false);
    expect(vec4Fits(48, ['full', 'channel'], { cols: 12 })).toBe(true);
    expect(vec4Fits(48, ['full', 'channel'], { cols: 6 })).toBe(false);
    expect(vec4Fits(48, ['full', 'sample'], { perSample: 12 })).toBe(true);
    expect(vec4Fits(48, ['full', 'sample'], { perSample: 6 })).toBe(false);
    expect(vec4Fits(48, ['full', 'other'], {})).toBe(false);
    const env = process.env.REVCOL_WEBGPU_VEC4;
    try {
      delete process.env.REVCOL_WEBGPU_VEC4;
      setWebgpuVec4(null);
      expect(webgpuVec4()).toBe(true);
      process.env.REVCOL_WEBGPU_VEC4 = '0';
      expect(webgpuVec4()).toBe(true); // read once: not at every launch
      setWebgpuVec4(null);
      expect(webgpuVec4()).toBe(false);
      expect(setWebgpuVec4(true)).toBe(false);
      expect(webgpuVec4()).toBe(true);
    } finally {
      if (env === undefined) delete process.env.REVCOL_WEBGPU_VEC4;
      else process.env.REVCOL_WEBGPU_VEC4 = env;
      setWebgpuVec4(null);
    }
  });
});

describe('drop masks', () => {
  it('are floor(u + keep)/keep of the same uniform draws, bit for bit, made without device kernels', async () => {
    await useBackend('cpu');
    for (const keep of [0.9, 0.7, 0.5, 1 - 0.3 / 7]) {
      for (const seed of [0, 1, 12345]) {
        const made = new RandomStream(seed).keepMask([40, 33], keep);
        const composed = tf.tidy(() => tf.div(tf.floor(tf.add(new RandomStream(seed).uniform([40, 33]), keep)), keep));
        expect(Array.from(await made.data())).toEqual(Array.from(await composed.data()));
        const kept = Array.from(await made.data()).filter((v) => v !== 0).length / made.size;
        expect(Math.abs(kept - keep)).toBeLessThan(0.05);
        tf.dispose([made, composed]);
      }
    }
  });
});

describe('hashed dropout masks', () => {
  it('keep about keep of the elements, differ between seeds and are 1/keep where kept', async () => {
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    for (const keep of [0.9, 0.7, 0.5]) {
      const [ta, tb] = [hashDropoutMask([200, 100], 7, keep), hashDropoutMask([200, 100], 8, keep)];
      const [a, b] = [await ta.data(), await tb.data()];
      tf.dispose([ta, tb]);
      const kept = Array.from(a).filter((v) => v !== 0);
      expect(Math.abs(kept.length / a.length - keep)).toBeLessThan(0.01);
      expect(new Set(kept)).toEqual(new Set([Math.fround(1 / keep)]));
      let differ = 0;
      for (let i = 0; i < a.length; i++) if ((a[i] === 0) !== (b[i] === 0)) differ++;
      // two independent masks disagree on 2·keep·(1−keep) of the elements
      expect(Math.abs(differ / a.length - 2 * keep * (1 - keep))).toBeLessThan(0.01);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keep everything at keep 1 and follow the documented hash', async () => {
    await useBackend('cpu');
    const ones = hashDropoutMask([3, 4], 99, 1);
    expect(Array.from(await ones.data())).toEqual(new Array(12).fill(1));
    expect(keepThreshold(1)).toBe(2 ** 32); // above every 32-bit draw
    const x = tf.tensor1d([1, -2, 3]);
    const same = hashDropout(x, 5, 1);
    expect(Array.from(await same.data())).toEqual([1, -2, 3]);
    tf.dispose([x, same]);
    expect(keepThreshold(0.5)).toBe(2 ** 31);
    const half = hashDropoutMask([64], 42, 0.5);
    const mask = await half.data();
    tf.dispose([ones, half]);
    for (let i = 0; i < 64; i++) expect(mask[i]).toBe(dropoutHash(42, i) < 2 ** 31 ? 2 : 0);
  });
});

// wasm runs the composed ops on its own kernels (measured faster there than scalar JS passes)
const BACKENDS = [
  { name: 'cpu', fused: true, skip: false, reason: '' },
  { name: 'wasm', fused: false, skip: false, reason: '' },
  { name: 'webgpu', fused: true, skip: !webgpu.available, reason: webgpu.reason },
] as const;

for (const backend of BACKENDS) {
  describe.skipIf(backend.skip)(`fused kernels on ${backend.name}${backend.skip ? ` (skipped: ${backend.reason})` : ''}`, () => {
    it('match the composed ops, values and gradients', async () => {
      for (const c of CASES) {
        const expected = await reference(c);
        await useBackend(backend.name);
        const actual = await evaluate(c, 7);
        expectClose(actual.value, expected.value, `${c.name} value`, 2e-5);
        expect(actual.grads.length).toBe(expected.grads.length);
        actual.grads.forEach((g, i) => expectClose(g, expected.grads[i]!, `${c.name} gradient ${i}`, 5e-5));
      }
    });

    it(backend.fused ? 'run as their own kernels here' : 'run as the composed ops here', async () => {
      await useBackend(backend.name);
      for (const kernel of ['RevcolScaledResidual', 'RevcolColumnSum', 'RevcolAdamUpdate', 'RevcolAdamMoments']) {
        expect(tf.getKernel(kernel, backend.name) !== undefined, kernel).toBe(backend.fused);
      }
      // wasm has GELU's and LayerNorm's kernels (SIMD wasm), as every fused backend does
      for (const kernel of ['RevcolGelu', 'RevcolGeluGrad', 'RevcolLayerNorm', 'RevcolLayerNormGradInput']) expect(tf.getKernel(kernel, backend.name) !== undefined, kernel).toBe(true);
      const x = tf.ones([2, 3]);
      const seen: string[] = [];
      const profile = await tf.profile(() => gelu(x));
      for (const k of profile.kernels) seen.push(k.name);
      tf.dispose([x, profile.result as tf.Tensor]);
      expect(seen).toEqual(['RevcolGelu']);
    });

    it('compute softmax\'s input gradient as one kernel', async () => {
      await useBackend(backend.name);
      const x = tf.tensor2d([[1, 2, 3], [0, -1, 4]]);
      const profile = await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(softmax(t), tf.tensor2d([[1, 0, 2], [3, 1, 0]]))))(x));
      const names = profile.kernels.map((k) => k.name);
      tf.dispose([x, profile.result as tf.Tensor]);
      expect(names).toContain('RevcolSoftmaxGradInput');
    });

    it(`run attention weights ${backend.name === 'webgpu' ? 'as one kernel forward and one backward' : 'as the composed ops'}`, async () => {
      await useBackend(backend.name);
      const x = tf.tensor4d(values(2 * 2 * 3 * 5, 41), [2, 2, 3, 5]);
      const bias = tf.tensor2d([[0, 0, -1e9, 0, 0], [0, 0, 0, 0, -1e9]]);
      const w = tf.tensor4d(values(2 * 2 * 3 * 5, 42), [2, 2, 3, 5]);
      const profile = await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(attentionSoftmax(t, bias, 0.5), w)))(x));
      const names = profile.kernels.map((k) => k.name);
      tf.dispose([x, bias, w, profile.result as tf.Tensor]);
      if (backend.name === 'webgpu') {
        expect(names.filter((n) => n.startsWith('Revcol'))).toEqual(['RevcolAttentionSoftmax', 'RevcolSoftmaxGradInput']);
        expect(names).not.toContain('Softmax');
        expect(names).not.toContain('Add');
      } else {
        expect(names).not.toContain('RevcolAttentionSoftmax');
        expect(names).toContain('Softmax');
      }
    });

    if (backend.name === 'webgpu') {
      it('give the same rows with any number of lanes per row (LayerNorm, softmax, row statistics)', async () => {
        const rowCases = CASES.filter((k) => ['layerNorm', 'softmax', 'attentionSoftmax', 'rowStats'].some((p) => k.name.startsWith(p)));
        // 1 and 64: a row to a thread and a row to a workgroup (the first design); 2 and 16 between
        for (const lanes of [1, 2, 16, 64]) {
          setWebgpuRowLanes(lanes);
          try {
            for (const c of rowCases) {
              const expected = await reference(c);
              await useBackend('webgpu');
              const actual = await evaluate(c, 7);
              expectClose(actual.value, expected.value, `${c.name} value, ${lanes} lanes`, 2e-5);
              actual.grads.forEach((g, i) => expectClose(g, expected.grads[i]!, `${c.name} gradient ${i}, ${lanes} lanes`, 5e-5));
            }
          } finally {
            setWebgpuRowLanes(null);
          }
        }
      });
    }

    if (backend.name === 'webgpu') {
      it('take four elements a thread (the row programs four a unit) where the sizes allow, and one where not or when told, with the composed ops\' values either way', async () => {
        const flat = CASES.filter((k) => ['gelu', 'scaledResidual', 'unscaleDifference', 'dropout', 'clampMagnitude', 'layerNorm', 'rowStats'].some((p) => k.name.startsWith(p)));
        await useBackend('webgpu');
        const gpu = tf.backend() as unknown as { runWebGPUProgram: (program: { shaderKey?: string }, ...rest: unknown[]) => unknown };
        const run = gpu.runWebGPUProgram;
        const keys: string[] = [];
        gpu.runWebGPUProgram = function (this: unknown, program, ...rest) {
          if (program.shaderKey?.startsWith('revcol_')) keys.push(program.shaderKey);
          return run.call(this, program, ...rest);
        };
        try {
          for (const on of [true, false]) {
            setWebgpuVec4(on);
            for (const c of flat) {
              keys.length = 0;
              const expected = await reference(c);
              await useBackend('webgpu');
              const actual = await evaluate(c, 7);
              expectClose(actual.value, expected.value, `${c.name} value, vec4 ${on}`, 2e-5);
              actual.grads.forEach((g, i) => expectClose(g, expected.grads[i]!, `${c.name} gradient ${i}, vec4 ${on}`, 5e-5));
              const elements = c.shapes[0]!.reduce((a, b) => a * b, 1);
              const channels = c.shapes[0]![c.shapes[0]!.length - 1]!;
              // the forward kernel: four a thread (row programs: four a unit) exactly when on and every read fits a vec4
              const fits = on && elements % 4 === 0 && (!/gamma|unscale|layerNorm|rowStats/.test(c.name) || channels % 4 === 0);
              expect(keys[0]?.endsWith('_v4'), `${c.name}: ${keys.join(', ')}`).toBe(fits);
            }
          }
        } finally {
          setWebgpuVec4(null);
          gpu.runWebGPUProgram = run;
        }
      });
    }

    if (backend.name === 'wasm') {
      it('match the composed ops without revcol\'s SIMD module too (its JavaScript fallback)', async () => {
        await withWasmSimdKernels(false, async () => {
          for (const c of CASES.filter((k) => ['softmax', 'gelu', 'layerNorm'].some((p) => k.name.startsWith(p)))) {
            const expected = await reference(c);
            await useBackend('wasm');
            const actual = await evaluate(c, 7);
            expectClose(actual.value, expected.value, `${c.name} value`, 2e-5);
            actual.grads.forEach((g, i) => expectClose(g, expected.grads[i]!, `${c.name} gradient ${i}`, 5e-5));
          }
        });
      });
    }

    it('leave no tensor behind', async () => {
      await useBackend(backend.name);
      for (const c of CASES) await evaluate(c, 3); // warm up (kernels and pipelines)
      const before = tf.memory().numTensors;
      for (const c of CASES) await evaluate(c, 5);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
