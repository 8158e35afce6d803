import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the gradient functions.
import '../src/core/engine.js';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { fastTransposedMatMulActive } from '../src/backends/wasm-matmul.js';

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
