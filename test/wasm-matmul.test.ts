import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the gradient functions.
import '../src/core/engine.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { wasmLayoutKernelsActive } from '../src/backends/wasm-layout.js';
import { wasmSimdKernels } from '../src/ops/wasm-simd.js';
import { withWasmSimdKernels } from './helpers/wasm-simd.js';
import { fastTransposedMatMulActive } from '../src/backends/wasm-matmul.js';
import { setNativeBlas } from '../src/backends/native-blas.js';

// These are the wasm kernels' tests: OpenBLAS's products, where built, would take every product
// here, so they are off in this file (test/native-blas.test.ts tests them).
let nativeWas = true;
beforeAll(() => { nativeWas = setNativeBlas(false); });
afterAll(() => { setNativeBlas(nativeWas); });

/** Values of f() on a backend, computed from the same host data. */
async function on(backend: string, f: () => tf.Tensor): Promise<Float32Array> {
  await useBackend(backend);
  const t = f();
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  const scale = Math.max(1, ...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

describe('wasm BatchMatMul with transposed operands (fast path)', () => {
  const data = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 2);
  const cases: Array<[string, number[], number[], boolean, boolean]> = [
    ['aᵀ·b', [40, 7], [40, 5], true, false],
    ['a·bᵀ', [9, 6], [11, 6], false, true],
    ['aᵀ·bᵀ', [6, 9], [11, 6], true, true],
    ['batched aᵀ·b', [3, 8, 4], [3, 8, 5], true, false],
    ['broadcast a·bᵀ', [3, 4, 6], [1, 5, 6], false, true],
    // revcol's SIMD aᵀ·b: partial 4-row and 8-column tiles, several passes of rows, batches.
    ['aᵀ·b, SIMD, edges and two passes', [300, 13], [300, 36], true, false],
    ['aᵀ·b, SIMD, whole tiles', [2000, 16], [2000, 64], true, false],
    ['aᵀ·b, SIMD, a row of b of 4', [50, 3], [50, 4], true, false],
    ['batched aᵀ·b, SIMD', [3, 50, 6], [3, 50, 8], true, false],
    ['broadcast aᵀ·b, SIMD', [1, 20, 5], [4, 20, 12], true, false],
    ['aᵀ·b, both sides wide (XNNPACK)', [10, 260], [10, 264], true, false],
  ];
  for (const [name, sa, sb, ta, tb] of cases) {
    it(`${name} equals the cpu backend`, async () => {
      const av = data(sa.reduce((x, y) => x * y, 1), 1);
      const bv = data(sb.reduce((x, y) => x * y, 1), 2);
      const f = () => tf.tidy(() => tf.matMul(tf.tensor(av, sa), tf.tensor(bv, sb), ta, tb));
      const cpu = await on('cpu', f);
      const before = (await useBackend('wasm'), tf.memory().numTensors);
      expect(fastTransposedMatMulActive()).toBe(true);
      const wasm = await on('wasm', f);
      expect(tf.memory().numTensors).toBe(before);
      expect(wasm.length).toBe(cpu.length);
      expect(maxRelDiff(wasm, cpu)).toBeLessThan(1e-5);
    });
  }

  it('aᵀ·b without revcol\'s SIMD kernels (transpose, then XNNPACK) equals the cpu backend too', async () => {
    const av = data(300 * 13, 5);
    const bv = data(300 * 36, 6);
    const f = () => tf.tidy(() => tf.matMul(tf.tensor(av, [300, 13]), tf.tensor(bv, [300, 36]), true, false));
    const cpu = await on('cpu', f);
    await withWasmSimdKernels(false, async () => {
      expect(maxRelDiff(await on('wasm', f), cpu)).toBeLessThan(1e-5);
    });
  });

  it('gradients of a linear layer match the cpu backend', async () => {
    const xv = data(64 * 12, 3);
    const wv = data(12 * 7, 4);
    const grads = async (backend: string) => {
      await useBackend(backend);
      const x = tf.tensor2d(xv, [64, 12]);
      const w = tf.tensor2d(wv, [12, 7]);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, b))));
      const [dx, dw] = g([x, w]);
      const out = [(await dx.data()) as Float32Array, (await dw.data()) as Float32Array];
      tf.dispose([x, w, dx, dw]);
      return out;
    };
    const [cdx, cdw] = await grads('cpu');
    const [wdx, wdw] = await grads('wasm');
    expect(maxRelDiff(wdx, cdx)).toBeLessThan(1e-5);
    expect(maxRelDiff(wdw, cdw)).toBeLessThan(1e-5);
  });
});

/** Runs f on wasm and on cpu from the same host data; checks that wasm keeps no tensor or heap entry. */
async function wasmAgainstCpu(f: () => tf.Tensor): Promise<{ wasm: Float32Array | Int32Array; cpu: Float32Array | Int32Array; shape: number[][] }> {
  await useBackend('cpu');
  const c = f();
  const cpu = (await c.data()) as Float32Array;
  const cpuShape = c.shape;
  c.dispose();
  await useBackend('wasm');
  const backend = tf.backend() as unknown as BackendWasm;
  f().dispose(); // a first run may allocate lasting state; count after it
  const [tensors, entries] = [tf.memory().numTensors, backend.numDataIds()];
  const w = f();
  const wasm = (await w.data()) as Float32Array;
  const shape = [w.shape, cpuShape];
  w.dispose();
  expect(tf.memory().numTensors).toBe(tensors);
  expect(backend.numDataIds()).toBe(entries);
  return { wasm, cpu, shape };
}

const values = (shape: number[], seed: number) => Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, (_, i) => Math.sin(i * 0.37 + seed) * 2);

describe('wasm BatchMatMul over a batch of matrices, and one pair on revcol\'s SIMD product', () => {
  const cases: Array<[string, number[], number[], boolean, boolean]> = [
    ['attention scores', [3, 2, 17, 5], [3, 2, 5, 17], false, false],
    ['attention scores, bᵀ', [3, 2, 17, 5], [3, 2, 17, 5], false, true],
    ['weighted values', [4, 9, 9], [4, 9, 6], false, false],
    ['aᵀ over a batch', [2, 7, 3], [2, 7, 4], true, false],
    ['one a for every b', [1, 6, 5], [4, 5, 3], false, false],
    ['a rank-2 a with a batched b', [6, 5], [2, 3, 5, 3], false, false],
    ['one b for every a', [2, 3, 6, 5], [5, 4], false, false],
    ['rank-4 batch of 1×1', [2, 2, 1, 1], [2, 2, 1, 1], false, false],
    ['empty rows', [3, 0, 4], [3, 4, 2], false, false],
    // b's rows a multiple of 4 floats: revcol's SIMD product (4×8 tiles, their edges)
    ['scores, SIMD: rows and columns past whole tiles', [3, 2, 17, 8], [3, 2, 8, 12], false, false],
    ['weighted values, SIMD', [4, 9, 9], [4, 9, 16], false, false],
    ['one a for every b, SIMD', [1, 6, 5], [4, 5, 8], false, false],
    ['one row, SIMD', [3, 1, 7], [3, 7, 4], false, false],
    // one pair, b in cache and its rows whole vectors: revcol's SIMD product instead of XNNPACK
    ['one pair, SIMD', [37, 21], [21, 12], false, false],
    ['one pair of rank 3, SIMD', [1, 9, 64], [1, 64, 128], false, false],
    ['one pair, bᵀ, SIMD', [13, 24], [20, 24], false, true],
    ['one pair, b past the cache bound (XNNPACK)', [5, 257], [257, 256], false, false],
  ];
  for (const simd of [true, false]) {
    for (const [name, sa, sb, ta, tb] of cases) {
      it(`${name}: ${JSON.stringify(sa)}·${JSON.stringify(sb)} (${simd ? 'with' : 'without'} revcol's SIMD kernels) equals the cpu backend`, async () => {
        await withWasmSimdKernels(simd, async () => {
          const { wasm, cpu, shape } = await wasmAgainstCpu(() => tf.tidy(() => tf.matMul(tf.tensor(values(sa, 1), sa), tf.tensor(values(sb, 2), sb), ta, tb)));
          expect(fastTransposedMatMulActive()).toBe(true);
          expect(shape[0]).toEqual(shape[1]);
          expect(maxRelDiff(wasm as Float32Array, cpu as Float32Array)).toBeLessThan(1e-5);
        });
      });
    }
  }

  it('one pair on revcol\'s SIMD product gives XNNPACK\'s bits (both sum over k in order)', async () => {
    await useBackend('wasm');
    for (const [m, k, n] of [[2048, 32, 128], [32, 512, 128], [7, 5, 8]]) {
      const product = () => tf.tidy(() => tf.matMul(tf.tensor(values([m, k], 3), [m, k]), tf.tensor(values([k, n], 4), [k, n])).dataSync());
      const simd = product();
      await withWasmSimdKernels(false, async () => {
        expect(Array.from(simd)).toEqual(Array.from(product()));
      });
    }
  });

  it('gradients of attention (softmax(q·kᵀ)·v) match the cpu backend', async () => {
    const [q, k, v] = [[2, 3, 12, 4], [2, 3, 12, 4], [2, 3, 12, 4]].map((shape, i) => values(shape, i + 5));
    const grads = () => tf.tidy(() => {
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(tf.matMul(tf.softmax(tf.matMul(a, b, false, true)), c))));
      return tf.concat(g([tf.tensor(q, [2, 3, 12, 4]), tf.tensor(k, [2, 3, 12, 4]), tf.tensor(v, [2, 3, 12, 4])]).map((t) => t.flatten()));
    });
    const { wasm, cpu } = await wasmAgainstCpu(grads);
    expect(maxRelDiff(wasm as Float32Array, cpu as Float32Array)).toBeLessThan(1e-5);
  });
});

describe('wasm Transpose and Sum fast paths', () => {
  const transposes: Array<[number[], number[], 'float32' | 'int32']> = [
    [[37, 70], [1, 0], 'float32'],
    [[5, 3, 17, 33], [0, 1, 3, 2], 'float32'],
    [[4, 19, 6], [0, 2, 1], 'int32'],
    [[4, 5, 6], [2, 1, 0], 'float32'], // not a swap of the last two: wasm's own kernel
  ];
  for (const simd of [true, false]) {
    for (const [shape, perm, dtype] of transposes) {
      it(`transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)} (${dtype}, ${simd ? 'SIMD kernel' : 'JavaScript'}) equals the cpu backend`, async () => {
        const data = dtype === 'int32' ? Int32Array.from(values(shape, 3), (x) => Math.round(x * 1000)) : values(shape, 3);
        await withWasmSimdKernels(simd, async () => {
          const { wasm, cpu, shape: shapes } = await wasmAgainstCpu(() => tf.tidy(() => tf.transpose(tf.tensor(data, shape, dtype), perm)));
          expect(wasmLayoutKernelsActive()).toBe(true);
          expect(wasmSimdKernels(tf.backend() as unknown as BackendWasm) !== null).toBe(simd);
          expect(shapes[0]).toEqual(shapes[1]);
          expect(Array.from(wasm)).toEqual(Array.from(cpu));
        });
      });
    }
  }

  it('the SIMD transpose covers every edge case of a side that is not a multiple of 4', async () => {
    await useBackend('wasm');
    for (const [rows, cols] of [[1, 1], [3, 5], [4, 4], [5, 4], [4, 7], [9, 13], [8, 3]]) {
      const x = tf.tensor(values([2, rows, cols], rows * 31 + cols), [2, rows, cols]);
      const t = tf.transpose(x, [0, 2, 1]);
      const got = await t.data();
      const want = Array.from({ length: 2 * rows * cols }, (_, n) => {
        const [b, j, i] = [Math.floor(n / (rows * cols)), Math.floor((n % (rows * cols)) / rows), n % rows];
        return x.dataSync()[b * rows * cols + i * cols + j];
      });
      expect(Array.from(got)).toEqual(want);
      tf.dispose([x, t]);
    }
  });

  const sums: Array<[number[], number | number[], boolean]> = [
    [[300, 7], 0, false],
    [[6, 5, 4, 3], [0, 1, 2], false],
    [[6, 5, 4, 3], [1, 0], true],
    [[6, 5, 4], [1, 2], false], // trailing axes: wasm's own kernel
    [[6, 5], [0, 1], false], // everything: wasm's own kernel
    [[50, 8], 0, false], // one block of 8 columns (SIMD), no tail
    [[40, 19], 0, false], // two blocks and a tail of 3
    [[3, 5], 0, false], // a tail only
  ];
  for (const simd of [true, false]) {
    for (const [shape, axis, keepDims] of sums) {
      it(`sum of ${JSON.stringify(shape)} over ${JSON.stringify(axis)}${keepDims ? ' (keepDims)' : ''} (${simd ? 'SIMD kernel' : 'JavaScript'}) equals the cpu backend`, async () => {
        await withWasmSimdKernels(simd, async () => {
          const { wasm, cpu, shape: shapes } = await wasmAgainstCpu(() => tf.tidy(() => tf.sum(tf.tensor(values(shape, 4), shape), axis, keepDims)));
          expect(shapes[0]).toEqual(shapes[1]);
          expect(maxRelDiff(wasm as Float32Array, cpu as Float32Array)).toBeLessThan(1e-6);
        });
      });
    }
  }

  it('the SIMD column sum adds in float64: 10⁶ rows of 1 + 1e-7 lose nothing a float32 sum would', async () => {
    await useBackend('wasm');
    const rows = 1_000_000;
    const x = tf.fill([rows, 9], 1 + 2 ** -22);
    const s = tf.sum(x, 0);
    const want = rows * (1 + 2 ** -22);
    for (const v of await s.data()) expect(Math.abs(v - want) / want).toBeLessThan(1e-7);
    tf.dispose([x, s]);
  });
});

describe('wasm Slice, SplitV and Identity fast paths', () => {
  const slices: Array<[number[], number[], number[], 'float32' | 'int32']> = [
    [[32, 6, 20, 4], [0, 2, 0, 0], [32, 2, 20, 4], 'float32'], // one run per row of the first axis
    [[5, 7, 9], [1, 2, 3], [3, 4, 5], 'float32'], // cut on every axis: runs of the last
    [[5, 7, 9], [2, 0, 0], [2, 7, 9], 'int32'], // one run
    [[4, 6], [0, 0], [4, 6], 'float32'], // all of it
    [[3, 0, 2], [0, 0, 0], [3, 0, 2], 'float32'], // empty
    [[2, 3, 4, 5, 6], [1, 0, 1, 2, 3], [1, 3, 2, 3, 2], 'float32'], // rank 5
  ];
  for (const [shape, begin, size, dtype] of slices) {
    it(`slice of ${JSON.stringify(shape)} at ${JSON.stringify(begin)} size ${JSON.stringify(size)} (${dtype}) equals the cpu backend`, async () => {
      const data = dtype === 'int32' ? Int32Array.from(values(shape, 5), (x) => Math.round(x * 1000)) : values(shape, 5);
      const { wasm, cpu, shape: shapes } = await wasmAgainstCpu(() => tf.tidy(() => tf.slice(tf.tensor(data, shape, dtype), begin, size)));
      expect(wasmLayoutKernelsActive()).toBe(true);
      expect(shapes[0]).toEqual(shapes[1]);
      expect(Array.from(wasm)).toEqual(Array.from(cpu));
    });
  }

  const splits: Array<[number[], number | number[], number]> = [
    [[8, 6, 16, 4], 3, 1], // attention's q, k, v: [B, 3H, T, dh] along heads
    [[8, 96], [32, 64], -1],
    [[4, 5, 6], 5, 1],
  ];
  for (const [shape, parts, axis] of splits) {
    it(`split of ${JSON.stringify(shape)} into ${JSON.stringify(parts)} on axis ${axis} equals the cpu backend, gradient included`, async () => {
      const x = values(shape, 6);
      // Each part weighted differently, so the gradient tells the parts apart.
      const f = () => tf.tidy(() => {
        const g = tf.grad((t: tf.Tensor) => tf.addN(tf.split(t, parts, axis).map((p, i) => tf.sum(tf.mul(tf.square(p), i + 1)))))(tf.tensor(x, shape));
        return tf.concat([...tf.split(tf.tensor(x, shape), parts, axis).map((p) => tf.reshape(p, [-1])), tf.reshape(g, [-1])]);
      });
      const { wasm, cpu } = await wasmAgainstCpu(f);
      expect(maxRelDiff(wasm as Float32Array, cpu as Float32Array)).toBeLessThan(1e-6);
    });
  }

  const gathers: Array<[number[], number[], 'float32' | 'int32']> = [
    [[50, 8], [4, 6], 'float32'], // an embedding lookup: [vocab, width] by [batch, length]
    [[7, 3, 5], [9], 'int32'],
    [[6, 4], [0], 'float32'], // no indices
  ];
  for (const [shape, indexShape, dtype] of gathers) {
    it(`gather of ${JSON.stringify(shape)} rows by ${JSON.stringify(indexShape)} indices (${dtype}) equals the cpu backend, gradient included`, async () => {
      const data = dtype === 'int32' ? Int32Array.from(values(shape, 7), (x) => Math.round(x * 1000)) : values(shape, 7);
      const ids = Int32Array.from({ length: indexShape.reduce((a, b) => a * b, 1) }, (_, i) => (i * 5 + 3) % shape[0]);
      const { wasm, cpu, shape: shapes } = await wasmAgainstCpu(() => tf.tidy(() => tf.gather(tf.tensor(data, shape, dtype), tf.tensor(ids, indexShape, 'int32'))));
      expect(shapes[0]).toEqual(shapes[1]);
      expect(Array.from(wasm)).toEqual(Array.from(cpu));
      if (dtype === 'float32') {
        const grad = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, tf.tensor(ids, indexShape, 'int32')))))(tf.tensor(data, shape)));
        const g = await wasmAgainstCpu(grad);
        expect(maxRelDiff(g.wasm as Float32Array, g.cpu as Float32Array)).toBeLessThan(1e-6);
      }
    });
  }

  it('gather refuses an index out of range, as wasm\'s own kernel does', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.ones([4, 2]);
    const ids = tf.tensor1d([1, 4], 'int32');
    expect(() => tf.gather(x, ids)).toThrow(/index value 4 is not in \[0, 3\]/);
    tf.dispose([x, ids]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('identity shares the data and either tensor can be disposed first', async () => {
    await useBackend('wasm');
    const backend = tf.backend() as unknown as BackendWasm;
    const before = [tf.memory().numTensors, backend.numDataIds()];
    const a = tf.tensor([1, 2, 3, 4], [2, 2]);
    const b = tf.clone(a);
    expect(backend.numDataIds()).toBe(before[1] + 1);
    a.dispose();
    expect(Array.from(await b.data())).toEqual([1, 2, 3, 4]);
    b.dispose();
    expect([tf.memory().numTensors, backend.numDataIds()]).toEqual(before);
  });
});
