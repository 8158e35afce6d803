import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, setIm2colChunkFloats, WASM_TRAINING_KERNELS } from '../src/backends/wasm-kernels.js';
import { gelu } from '../src/core/layers.js';

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
  for (let i = 0; i < cpu.length; i++) {
    const scale = Math.max(1, maxAbs(cpu[i]!));
    expect(maxAbs(cpu[i]!)).toBeGreaterThan(0);
    expect(maxAbsDiff(cpu[i]!, wasm[i]!), `input ${i}`).toBeLessThanOrEqual(1e-4 * scale);
  }
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
      const x = tf.ones([1, 4, 4, 2]);
      const dy = tf.ones([1, 2, 2, 3]);
      expect(() => tf.conv2DBackpropFilter(x as tf.Tensor4D, dy as tf.Tensor4D, [2, 2, 2, 3], 2, 'valid')).toThrow();
      tf.dispose([x, dy]);
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

  const depthwiseCases: Array<{ name: string; x: number[]; w: number[]; strides: number; pad: any; dilations?: number }> = [
    { name: '3x3 stride 1 same', x: [2, 8, 8, 5], w: [3, 3, 5, 1], strides: 1, pad: 'same' },
    { name: '7x7 stride 1 same', x: [2, 9, 9, 4], w: [7, 7, 4, 1], strides: 1, pad: 'same' },
    { name: '3x3 stride 2 same', x: [2, 9, 9, 3], w: [3, 3, 3, 1], strides: 2, pad: 'same' },
    { name: '3x3 dilation 2 valid', x: [1, 10, 10, 3], w: [3, 3, 3, 1], strides: 1, pad: 'valid', dilations: 2 },
    { name: 'channel multiplier 2, stride 2', x: [2, 8, 8, 3], w: [3, 3, 3, 2], strides: 2, pad: 'valid' },
    {
      name: 'explicit padding',
      x: [2, 6, 7, 3],
      w: [3, 3, 3, 1],
      strides: 1,
      pad: [
        [0, 0],
        [2, 1],
        [0, 3],
        [0, 0],
      ],
    },
    { name: '3x3 over 512 channels', x: [1, 4, 4, 512], w: [3, 3, 512, 1], strides: 1, pad: 'same' },
  ];
  for (const c of depthwiseCases) {
    it(`depthwise conv gradients: ${c.name}`, async () => {
      await expectSameGrads(
        (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1),
        [input(c.x, 11), input(c.w, 12)],
      );
    });
  }

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

  it('resize gradients (nearest and bilinear, corner modes) agree', async () => {
    for (const [alignCorners, halfPixelCenters] of [
      [false, false],
      [false, true],
      [true, false],
    ] as const) {
      await expectSameGrads((x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 7], alignCorners, halfPixelCenters), [input([2, 4, 3, 3], 41)]);
      await expectSameGrads((x) => tf.image.resizeBilinear(x as tf.Tensor4D, [8, 7], alignCorners, halfPixelCenters), [input([2, 4, 3, 3], 42)]);
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
