/**
 * OpenBLAS's products under the wasm backend (src/backends/native-blas.ts, native/blas.c),
 * checked against the cpu backend: values and gradients, transposed operands, batches and
 * broadcasts, edge sizes; no tensors or heap buffers left behind. Where the module is not built
 * (no compiler or OpenBLAS) they report themselves skipped. The build script's fallbacks run
 * everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the gradient functions.
import '../src/core/engine.js';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { nativeBlas, nativeBlasStatus, setNativeBlas } from '../src/backends/native-blas.js';
import { wasmThreadsInfo } from '../src/backends/wasm-threads.js';

const blas = nativeBlas();
const root = fileURLToPath(new URL('..', import.meta.url));
const seeded = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed * 1.7) * 1.5);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

async function on<T>(backend: string, f: () => T): Promise<T> {
  await useBackend(backend);
  return f();
}

function worstDifference(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  const scale = Math.max(1, ...Array.from(want, Math.abs));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
  return worst;
}

describe.skipIf(!blas)('native products (OpenBLAS) under the wasm backend', () => {
  // [name, a's shape, b's shape, transposeA, transposeB, gradients] (tfjs 4.22's BatchMatMul
  // gradient does not sum over a broadcast batch, on any backend: values only there)
  const cases: Array<[string, number[], number[], boolean, boolean, boolean?]> = [
    ['a·b', [5, 7], [7, 3], false, false],
    ['aᵀ·b', [7, 5], [7, 3], true, false],
    ['a·bᵀ', [5, 7], [3, 7], false, true],
    ['aᵀ·bᵀ', [7, 5], [3, 7], true, true],
    ['batched a·b', [4, 5, 7], [4, 7, 6], false, false],
    ['batched aᵀ·b, b broadcast', [4, 7, 5], [1, 7, 6], true, false, false],
    ['a broadcast, batched a·bᵀ', [1, 5, 7], [4, 6, 7], false, true, false],
    ['rank 4 (attention: batch × heads)', [2, 3, 16, 8], [2, 3, 16, 8], false, true],
    ['a weight gradient: long inner dimension', [3000, 16], [3000, 40], true, false],
    ['one row, one column', [1, 9], [9, 1], false, false],
  ];
  for (const [name, sa, sb, ta, tb, gradients = true] of cases) {
    it(`${name} equals the cpu backend${gradients ? ', and its gradients too' : ''}`, async () => {
      const [av, bv] = [seeded(size(sa), 1), seeded(size(sb), 2)];
      const run = () => tf.tidy(() => {
        const a = tf.tensor(av, sa);
        const b = tf.tensor(bv, sb);
        const y = tf.matMul(a, b, ta, tb);
        const w = tf.tensor(seeded(y.size, 3), y.shape);
        if (!gradients) return [y.dataSync()];
        const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, z, ta, tb), w)))([a, b]);
        return [y.dataSync(), ga.dataSync(), gb.dataSync()];
      });
      const cpu = await on('cpu', run);
      const wasm = await on('wasm', run);
      expect(nativeBlas()).not.toBeNull();
      expect(wasm.length).toBe(gradients ? 3 : 1);
      for (let i = 0; i < wasm.length; i++) expect(worstDifference(wasm[i], cpu[i])).toBeLessThan(1e-5);
    });
  }

  // tfjs's own wasm BatchMatMul leaves an empty inner dimension's output unwritten (whatever the
  // heap held): the wrapper writes the zeros an empty sum is.
  it('leaves empty products and an empty inner dimension right (zeros), and leaks nothing', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const ids = tf.backend().numDataIds();
    const empty = tf.tidy(() => tf.matMul(tf.zeros([0, 4]), tf.ones([4, 3])));
    expect(empty.shape).toEqual([0, 3]);
    const noInner = tf.tidy(() => tf.matMul(tf.ones([2, 0]), tf.ones([0, 3])));
    expect(Array.from(await noInner.data())).toEqual([0, 0, 0, 0, 0, 0]);
    const noInnerBatch = tf.tidy(() => tf.matMul(tf.ones([3, 0, 2]), tf.ones([3, 2, 0]), true, true));
    expect(noInnerBatch.shape).toEqual([3, 2, 2]);
    expect(Array.from(await noInnerBatch.data())).toEqual(new Array(12).fill(0));
    tf.dispose([empty, noInner, noInnerBatch]);
    const a = tf.tensor(seeded(64 * 32, 4), [64, 32]);
    const b = tf.tensor(seeded(32 * 48, 5), [32, 48]);
    for (let i = 0; i < 3; i++) tf.dispose(tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.matMul(x, z)))([a, b]));
    tf.dispose([a, b]);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.backend().numDataIds()).toBe(ids);
  });

  it('the same values as revcol\'s wasm kernels to float32 rounding, and the same bits from run to run', async () => {
    await useBackend('wasm');
    const product = () => tf.tidy(() => tf.matMul(tf.tensor(seeded(256 * 96, 6), [256, 96]), tf.tensor(seeded(96 * 64, 7), [96, 64])).dataSync());
    const first = product();
    expect(Array.from(product())).toEqual(Array.from(first));
    const was = setNativeBlas(false);
    let wasmKernels: Float32Array | Int32Array | Uint8Array;
    try {
      wasmKernels = product();
    } finally {
      setNativeBlas(was);
    }
    expect(worstDifference(first, wasmKernels)).toBeLessThan(1e-5);
  });

  it('refuses a matrix outside the heap with an error instead of reading past it; works on shared memory', () => {
    const heap = new Uint8Array(64);
    expect(() => blas!.sgemm(heap, 0, 0, 0, 1, 5, 5, 5, 0, 0, 0, 0, 0)).toThrow(/outside the heap/);
    expect(() => blas!.sgemm(heap, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 16)).toThrow(/outside the heap/);
    expect(() => blas!.sgemm(heap, 2, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0)).toThrow(/multiples of 4/);
    const ok = new Uint8Array(16);
    new Float32Array(ok.buffer).set([3, 4]);
    blas!.sgemm(ok, 0, 4, 8, 1, 1, 1, 1, 0, 0, 0, 0, 0);
    expect(new Float32Array(ok.buffer)[2]).toBe(12);
    // the threaded wasm build's memory is a SharedArrayBuffer
    const shared = new Uint8Array(new SharedArrayBuffer(16));
    new Float32Array(shared.buffer).set([5, 6]);
    blas!.sgemm(shared, 0, 4, 8, 1, 1, 1, 1, 0, 0, 0, 0, 0);
    expect(new Float32Array(shared.buffer)[2]).toBe(30);
  });

  it('loads in a worker thread too (the data-parallel workers run products there)', async () => {
    const { Worker } = await import('node:worker_threads');
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const blas = require(workerData);
      const heap = new Uint8Array(16);
      new Float32Array(heap.buffer).set([3, 4]);
      blas.sgemm(heap, 0, 4, 8, 1, 1, 1, 1, 0, 0, 0, 0, 0);
      parentPort.postMessage(new Float32Array(heap.buffer)[2]);`;
    const worker = new Worker(code, { eval: true, workerData: `${root}native/build/revcol-blas.node` });
    const value = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    await worker.terminate();
    expect(value).toBe(12);
  });

  it('names OpenBLAS in the status line, and runs as many threads as the wasm backend', () => {
    expect(nativeBlasStatus()).toMatch(/^OpenBLAS \(OpenBLAS [0-9.]+/);
    expect(blas!.describe().threads).toBe(wasmThreadsInfo()?.threads ?? 1);
  });
});

describe('the native build script', () => {
  const module = `${root}native/build/revcol-blas.node`;
  const build = (env: Record<string, string>) =>
    spawnSync(process.execPath, [`${root}scripts/build-native.mjs`], { env: { ...process.env, ...env }, encoding: 'utf8' });

  it('without a compiler says so in one line, exits 0 and leaves a built module as it was', () => {
    const before = existsSync(module) ? readFileSync(module) : null;
    const stamp = before ? statSync(module).mtimeMs : 0;
    const r = build({ CC: '/nonexistent/cc' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      "revcol: stderr capture not built (no C compiler (/nonexistent/cc)); Dawn's notices reach the terminal when webgpu opens",
      expect.stringMatching(/^revcol: native products not built \(no C compiler \(\/nonexistent\/cc\)\); the wasm backend runs its own kernels/),
    ]);
    if (before) {
      expect(readFileSync(module).equals(before)).toBe(true);
      expect(statSync(module).mtimeMs).toBe(stamp);
    }
  });

  it('REVCOL_NATIVE=0 skips the build', () => {
    const r = build({ REVCOL_NATIVE: '0' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^revcol: native products not built \(REVCOL_NATIVE=0\)/);
  });
});
