import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/backends/kernel-fixes.js';
import { registerWasmTrainingKernels, setIm2colChunkFloats, WASM_TRAINING_KERNELS } from '../src/backends/wasm-kernels.js';
import { gelu } from '../src/core/layers.js';
import { withWasmSimdKernels } from './helpers/wasm-simd.js';

/** Deterministic values in [-1, 1). */
function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

interface Input {
  shape: number[];
  values: Float32Array;
}

function input(shape: number[], seed: number): Input {
  return { shape, values: seeded(shape.reduce((a, b) => a * b, 1), seed) };
}

/**
 * Gradients of sum(f(xs) * r) for a fixed random r, on one backend, as plain arrays.
 * The random r makes the incoming gradient non-uniform, so every position matters.
 */
async function gradsOn(backend: 'cpu' | 'wasm', f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: Input[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.values, i.shape));
    const g = tf.grads((...args: tf.Tensor[]) => {
      const y = f(...args);
      return tf.sum(tf.mul(y, tf.tensor(seeded(y.size, 7), y.shape)));
    });
    return g(xs).map((t) => Float32Array.from(t.dataSync() as Float32Array));
  });
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** wasm gradients equal cpu's within 1e-4 x scale, and are not trivially zero. */
async function expectSameGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: Input[]): Promise<void> {
  const cpu = await gradsOn('cpu', f, inputs);
  const wasm = await gradsOn('wasm', f, inputs);
  expect(wasm.length).toBe(cpu.length);
  const report = cpu.map((g, i) => ({ input: i, scale: Math.max(1, maxAbs(g)), diff: maxAbsDiff(g, wasm[i]!), nonzero: maxAbs(g) > 0 }));
  const bad = report.filter((r) => !r.nonzero || r.diff > 1e-4 * r.scale);
  expect(bad, JSON.stringify(report)).toEqual([]);
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  registerWasmTrainingKernels();
});

describe('wasm training kernels', () => {
  it('registers the kernels wasm lacks, idempotently', () => {
    registerWasmTrainingKernels();
    for (const name of WASM_TRAINING_KERNELS) expect(tf.getKernel(name, 'wasm')).toBeDefined();
    const cpuKernels = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));
    const wasmKernels = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
    for (const name of [
      'Conv2DBackpropFilter',
      'Conv2DBackpropInput',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
      'UnsortedSegmentSum',
      'ResizeNearestNeighborGrad',
      'ResizeBilinearGrad',
      'Erf',
      'Softmax',
      'GatherV2',
    ]) {
      expect(cpuKernels.has(name)).toBe(true);
      expect(wasmKernels.has(name), name).toBe(true);
    }
  });

  it('is what makes the conv filter gradient work on wasm', async () => {
    await tf.setBackend('wasm');
    const config = tf.getKernel('Conv2DBackpropFilter', 'wasm')!;
    tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
    try {
      const x = tf.ones([1, 4, 4, 2]) as tf.Tensor4D;
      const w = tf.ones([2, 2, 2, 3]) as tf.Tensor4D;
      expect(() => tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 2, 'valid')))(w)).toThrow();
      tf.dispose([x, w]);
    } finally {
      tf.registerKernel(config);
    }
  });

  const convCases: Array<{ name: string; x: number[]; w: number[]; strides: number | [number, number]; pad: any; rounding?: 'floor' }> = [
    { name: '3x3 stride 1 same', x: [2, 9, 9, 3], w: [3, 3, 3, 5], strides: 1, pad: 'same' },
    { name: '3x3 stride 2 valid', x: [2, 9, 9, 4], w: [3, 3, 4, 6], strides: 2, pad: 'valid' },
    { name: '3x3 stride 2 same (odd size)', x: [2, 7, 7, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
    { name: '4x4 stride 4 stem', x: [2, 8, 8, 3], w: [4, 4, 3, 8], strides: 4, pad: 'valid' },
    { name: '2x2 stride 2 down', x: [2, 8, 8, 6], w: [2, 2, 6, 7], strides: 2, pad: 'valid' },
    { name: '2x2 stride 2, more outputs than filter taps', x: [2, 8, 8, 2], w: [2, 2, 2, 16], strides: 2, pad: 'valid' },
    { name: '1x1 conv', x: [2, 5, 5, 1], w: [1, 1, 1, 6], strides: 1, pad: 'valid' },
    {
      name: 'explicit padding, strides [2,3]',
      x: [1, 10, 7, 3],
      w: [3, 2, 3, 4],
      strides: [2, 3],
      pad: [
        [0, 0],
        [1, 2],
        [2, 0],
        [0, 0],
      ],
    },
    { name: 'numeric pad with floor rounding', x: [2, 6, 6, 2], w: [3, 3, 2, 3], strides: 2, pad: 1, rounding: 'floor' },
  ];
  for (const c of convCases) {
    it(`conv2d gradients: ${c.name}`, async () => {
      await expectSameGrads(
        (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', 1, c.rounding),
        [input(c.x, 1), input(c.w, 2)],
      );
    });
  }

  it('conv2d filter gradient over many im2col chunks', async () => {
    const old = setIm2colChunkFloats(100);
    try {
      await expectSameGrads((x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [input([2, 6, 5, 3], 3), input([3, 3, 3, 4], 4)]);
      await expectSameGrads((x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [input([2, 6, 5, 2], 5), input([2, 2, 2, 12], 6)]);
    } finally {
      setIm2colChunkFloats(old);
    }
  });

  it('conv2dTranspose gradients (stride 2, valid and same)', async () => {
    for (const pad of ['valid', 'same'] as const) {
      await expectSameGrads(
        (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 8, 3], 2, pad),
        [input([2, 4, 4, 6], 5), input([2, 2, 3, 6], 6)],
      );
    }
  });

  const explicitPad = [
    [0, 0],
    [2, 1],
    [0, 3],
    [0, 0],
  ];
  const depthwiseCases: Array<{ name: string; x: number[]; w: number[]; strides: number; pad: any; dilations?: number }> = [
    { name: '3x3 stride 1 same', x: [2, 8, 8, 5], w: [3, 3, 5, 1], strides: 1, pad: 'same' },
    { name: '7x7 stride 1 same', x: [2, 9, 9, 4], w: [7, 7, 4, 1], strides: 1, pad: 'same' },
    { name: '3x3 stride 2 same', x: [2, 9, 9, 3], w: [3, 3, 3, 1], strides: 2, pad: 'same' },
    { name: 'channel multiplier 2, stride 2', x: [2, 8, 8, 3], w: [3, 3, 3, 2], strides: 2, pad: 'valid' },
    { name: 'explicit padding', x: [2, 6, 7, 3], w: [3, 3, 3, 1], strides: 1, pad: explicitPad },
    { name: '3x3 over 512 channels', x: [1, 4, 4, 512], w: [3, 3, 512, 1], strides: 1, pad: 'same' },
    // stride 1, channels a multiple of 4: revcol's SIMD filter gradient
    { name: '3x3 stride 1 same, 16 channels (SIMD)', x: [3, 16, 16, 16], w: [3, 3, 16, 1], strides: 1, pad: 'same' },
    { name: '3x3 stride 1 valid, 4 channels (SIMD)', x: [2, 7, 6, 4], w: [3, 3, 4, 1], strides: 1, pad: 'valid' },
    { name: '7x7 stride 1 same over a 5x3 image (SIMD: taps outside it)', x: [2, 5, 3, 8], w: [7, 7, 8, 1], strides: 1, pad: 'same' },
    { name: 'explicit padding, 8 channels (SIMD)', x: [2, 6, 7, 8], w: [3, 3, 8, 1], strides: 1, pad: explicitPad },
    // from 100 output positions up the filter gradient runs as an XNNPACK depthwise conv
    { name: '3x3 stride 1 same, 12x12 (XNNPACK route)', x: [2, 12, 12, 3], w: [3, 3, 3, 1], strides: 1, pad: 'same' },
    { name: '7x7 stride 1 same, 14x11 batch 1 (XNNPACK route)', x: [1, 14, 11, 2], w: [7, 7, 2, 1], strides: 1, pad: 'same' },
    { name: '3x3 stride 2 same, 21x21 (XNNPACK route)', x: [2, 21, 21, 3], w: [3, 3, 3, 1], strides: 2, pad: 'same' },
    { name: '3x3 stride 2 valid, 22x23 (XNNPACK route)', x: [2, 22, 23, 3], w: [3, 3, 3, 1], strides: 2, pad: 'valid' },
  ];
  for (const c of depthwiseCases) {
    it(`depthwise conv gradients: ${c.name}`, async () => {
      await expectSameGrads(
        (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1),
        [input(c.x, 11), input(c.w, 12)],
      );
    });
  }
  it('depthwise conv gradients without revcol\'s SIMD kernels (XNNPACK route and JavaScript) equal cpu\'s too', async () => {
    await withWasmSimdKernels(false, async () => {
      for (const c of depthwiseCases.filter((k) => k.name.includes('SIMD'))) {
        await expectSameGrads((x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', 1), [input(c.x, 11), input(c.w, 12)]);
      }
    });
  });

  it('embedding (gather) gradients, axis 0 and 1, repeated ids', async () => {
    const ids = tf.tensor2d([1, 3, 1, 9, 0, 3], [2, 3], 'int32');
    await expectSameGrads((table) => tf.gather(table!, ids), [input([10, 6], 21)]);
    const ids1 = tf.tensor1d([6, 0, 6, 2], 'int32');
    await expectSameGrads((x) => tf.gather(x!, ids1, 1), [input([3, 7, 4], 22)]);
    tf.dispose([ids, ids1]);
  });

  it('unsortedSegmentSum drops out-of-range ids like cpu', async () => {
    const run = async (backend: 'cpu' | 'wasm') => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor(seeded(18, 31), [6, 3]);
        const ids = tf.tensor1d([0, 2, -1, 2, 5, 0], 'int32');
        return Float32Array.from(tf.unsortedSegmentSum(x, ids, 4).dataSync() as Float32Array);
      });
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    expect(maxAbs(cpu)).toBeGreaterThan(0);
    expect(maxAbsDiff(cpu, wasm)).toBeLessThanOrEqual(1e-6);
  });

  const resizeModes = [
    [false, false],
    [false, true],
    [true, false],
  ] as const;

  it('resize gradients are the adjoint of the forward resize, on cpu and wasm, every corner mode', async () => {
    // resize is linear, so <resize(x), r> = <x, d/dx sum(resize(x) * r)> exactly (up to rounding);
    // batch 2 and non-square sizes catch the upstream kernels' bugs
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      for (const [alignCorners, halfPixelCenters] of resizeModes) {
        for (const resize of [tf.image.resizeNearestNeighbor, tf.image.resizeBilinear]) {
          const [lhs, rhs] = tf.tidy(() => {
            const x = tf.tensor(seeded(2 * 3 * 4 * 5, 43), [2, 3, 4, 5]) as tf.Tensor4D;
            const f = (t: tf.Tensor) => resize(t as tf.Tensor4D, [7, 6], alignCorners, halfPixelCenters);
            const y = f(x);
            const r = tf.tensor(seeded(y.size, 44), y.shape);
            const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), r)))(x);
            const dot = (a: tf.Tensor, b: tf.Tensor) => {
              const av = a.dataSync();
              const bv = b.dataSync();
              let sum = 0;
              for (let i = 0; i < av.length; i++) sum += av[i]! * bv[i]!;
              return sum;
            };
            return [dot(y, r), dot(x, g)];
          });
          expect(Math.abs(lhs - rhs), `${backend} ${resize.name} ${alignCorners} ${halfPixelCenters}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(lhs)));
        }
      }
    }
  });

  it('resize gradients agree between wasm and cpu (2x nearest upsampling of the vision up path)', async () => {
    for (const [alignCorners, halfPixelCenters] of resizeModes) {
      await expectSameGrads((x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 6], alignCorners, halfPixelCenters), [input([2, 4, 3, 8], 41)]);
      await expectSameGrads((x) => tf.image.resizeBilinear(x as tf.Tensor4D, [8, 7], alignCorners, halfPixelCenters), [input([2, 4, 3, 3], 42)]);
    }
  });

  it('depthwise backprop kernels with dilation are adjoints of the forward conv (tfjs gradients refuse dilation > 1)', async () => {
    // cpu's backprop kernels ignore dilation, so check the identities
    // <conv(x, w), dy> = <x, backpropInput(dy, w)> = <w, backpropFilter(x, dy)> on wasm instead
    await tf.setBackend('wasm');
    for (const [pad, strides, mult] of [
      ['same', 1, 1],
      ['same', 1, 2],
      ['valid', 1, 1],
      ['valid', 2, 2],
    ] as const) {
      const [forward, viaInput, viaFilter] = tf.tidy(() => {
        const attrs = { strides: [strides, strides], pad, dilations: [2, 2] };
        const x = tf.tensor(seeded(2 * 12 * 11 * 3, 61), [2, 12, 11, 3]) as tf.Tensor4D;
        const w = tf.tensor(seeded(3 * 3 * 3 * mult, 62), [3, 3, 3, mult]) as tf.Tensor4D;
        const y = tf.depthwiseConv2d(x, w, strides, pad, 'NHWC', 2);
        const dy = tf.tensor(seeded(y.size, 63), y.shape);
        const dw = tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: [3, 3, 3, mult] }) as tf.Tensor;
        const dx = tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: [2, 12, 11, 3] }) as tf.Tensor;
        const dot = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b)).dataSync()[0]!;
        return [dot(y, dy), dot(x, dx), dot(w, dw)];
      });
      expect(Math.abs(forward)).toBeGreaterThan(0.1);
      expect(Math.abs(viaInput - forward)).toBeLessThan(1e-4 * Math.abs(forward));
      expect(Math.abs(viaFilter - forward)).toBeLessThan(1e-4 * Math.abs(forward));
    }
  });

  it('end to end: conv + depthwise + layernorm + gelu + embedding + upsampling + softmax cross-entropy', async () => {
    const layerNorm = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-6))), gamma), beta);
    };
    const labels = tf.tensor1d([3, 1], 'int32');
    const net = (x: tf.Tensor, stem: tf.Tensor, g0: tf.Tensor, b0: tf.Tensor, dw: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor, down: tf.Tensor, up: tf.Tensor, emb: tf.Tensor, head: tf.Tensor) => {
      let h = layerNorm(tf.conv2d(x as tf.Tensor4D, stem as tf.Tensor4D, 4, 'valid'), g0, b0); // [2,4,4,8]
      const block = tf.depthwiseConv2d(h as tf.Tensor4D, dw as tf.Tensor4D, 1, 'same');
      const mlp = tf.matMul(gelu(tf.matMul(tf.reshape(layerNorm(block, g0, b0), [-1, 8]), w1)), w2);
      h = tf.add(h, tf.reshape(mlp, h.shape));
      const low = tf.conv2d(h as tf.Tensor4D, down as tf.Tensor4D, 2, 'valid'); // [2,2,2,12]
      const back = tf.image.resizeNearestNeighbor(tf.reshape(tf.matMul(tf.reshape(low, [-1, 12]), up), [2, 2, 2, 8]) as tf.Tensor4D, [4, 4]);
      const pooled = tf.mean(tf.add(h, back), [1, 2]); // [2,8]
      const logits = tf.matMul(tf.add(pooled, tf.gather(emb, labels)), head);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 4), logits);
    };
    const inputs = [
      input([2, 16, 16, 3], 51),
      input([4, 4, 3, 8], 52),
      input([8], 53),
      input([8], 54),
      input([3, 3, 8, 1], 55),
      input([8, 16], 56),
      input([16, 8], 57),
      input([2, 2, 8, 12], 58),
      input([12, 8], 59),
      input([5, 8], 60),
      input([8, 4], 61),
    ];
    await expectSameGrads(net as (...xs: tf.Tensor[]) => tf.Tensor, inputs);
    // the same step again leaks neither tensors nor wasm heap buffers
    await tf.setBackend('wasm');
    const tensorsBefore = tf.memory().numTensors;
    const dataIdsBefore = tf.backend().numDataIds();
    await gradsOn('wasm', net as (...xs: tf.Tensor[]) => tf.Tensor, inputs);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(tf.backend().numDataIds()).toBe(dataIdsBefore);
    labels.dispose();
  });
});
