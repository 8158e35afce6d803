// AdamW and gradient clipping on wasm through revcol's SIMD calls (adam_step and sum_squares in
// src/ops/wasm-simd.wat) against the composed ops they replace, which must give the same bits,
// and against the cpu backend: parameters and moments after several steps (weight decay on
// some, a gradient scale on one step), moments shared with another tensor left to the composed
// path, parameters that XNNPACK has packed for a product read fresh after a step, and no tensor
// left behind.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { setFusedKernels, setGroupedAdam } from '../src/ops/fused.js';
import { clipCoefficient } from '../src/train/clip.js';
import { AdamW } from '../src/train/optimizer.js';
import { type AdamOutcome, relativeError, values, variable } from './helpers/adam.js';

// sizes with and without a remainder past whole groups of four floats
const SHAPES = [[1], [7], [256], [257], [300, 7], [3, 3, 1, 40], [64, 65], [5], [2, 2], [33, 9], [4099]];
const names = SHAPES.map((s, i) => (s.length === 1 ? `layer${i}.bias` : `layer${i}.weight`));

/** Three AdamW steps from the same start; the second scales the gradients by a clipping coefficient. */
async function train(backend: string, inPlace: boolean): Promise<AdamOutcome> {
  await useBackend(backend);
  const old = setGroupedAdam(inPlace);
  try {
    const vars = SHAPES.map((s, i) => variable(values(s.reduce((a, b) => a * b, 1), i + 1), s));
    const optimizer = new AdamW(names.map((n, i) => [n, vars[i]!] as [string, tf.Variable]), { weightDecay: 0.05 });
    for (let step = 0; step < 3; step++) {
      const grads = new Map(vars.map((v, i) => [v, tf.tensor(values(v.size, 100 * step + i + 7), v.shape)] as [tf.Variable, tf.Tensor]));
      const scale = step === 1 ? clipCoefficient(grads, 1) : undefined;
      optimizer.applyGradients(grads, 1e-2, scale ? { gradScale: scale } : {});
      tf.dispose([...grads.values(), ...(scale ? [scale] : [])]);
    }
    const state = optimizer.getState();
    const out = {
      params: vars.map((v) => v.dataSync() as Float32Array),
      moments: names.flatMap((n) => [`${n}.m`, `${n}.v`]).map((k) => state.tensors.get(k)!.dataSync() as Float32Array),
    };
    optimizer.dispose();
    tf.dispose(vars);
    return out;
  } finally {
    setGroupedAdam(old);
  }
}

afterAll(async () => {
  await useBackend('wasm');
});

describe('AdamW on wasm, one SIMD call per parameter', () => {
  it('gives the bits of the composed ops, and the cpu backend’s values', async () => {
    const composed = await train('wasm', false);
    const before = tf.memory().numTensors;
    const simd = await train('wasm', true);
    expect(tf.memory().numTensors).toBe(before);
    simd.params.forEach((p, i) => expect(Array.from(p), `param ${names[i]}`).toEqual(Array.from(composed.params[i]!)));
    simd.moments.forEach((m, i) => expect(Array.from(m), `moment ${i}`).toEqual(Array.from(composed.moments[i]!)));
    const cpu = await train('cpu', false);
    simd.params.forEach((p, i) => expect(relativeError(p, cpu.params[i]!), `param ${names[i]}`).toBeLessThan(1e-5));
    simd.moments.forEach((m, i) => expect(relativeError(m, cpu.moments[i]!), `moment ${i}`).toBeLessThan(1e-5));
    // the parameters moved: a step that wrote nothing would fail here
    expect(relativeError(simd.params[6]!, values(64 * 65, 7))).toBeGreaterThan(1e-3);
  });

  it('leaves moments shared with another tensor to the composed path, which does not touch the other tensor', async () => {
    await useBackend('wasm');
    const before0 = tf.memory().numTensors;
    const a = variable(values(300, 3), [300]);
    const optimizer = new AdamW([['a', a]]);
    const ones = tf.ones([300]);
    optimizer.applyGradients(new Map([[a, ones]]), 0.1);
    const m = optimizer.getState().tensors.get('a.m')!;
    const held = m.clone(); // shares the moment's data
    const heldBefore = Array.from(held.dataSync());
    const start = Array.from(a.dataSync());
    optimizer.applyGradients(new Map([[a, ones]]), 0.1);
    // Adam with a constant gradient moves every element by lr each step
    const after = a.dataSync();
    for (let i = 0; i < 300; i++) expect(after[i]).toBeCloseTo(start[i]! - 0.1, 5);
    expect(Array.from(held.dataSync())).toEqual(heldBefore);
    tf.dispose([held, ones, a]);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before0);
  });

  it('a weight that XNNPACK packed for a product is read afresh after a step', async () => {
    await useBackend('wasm');
    const before = tf.memory().numTensors;
    const w = variable(values(32 * 16, 5), [32, 16]);
    const x = tf.tensor(values(8 * 32, 6), [8, 32]);
    const optimizer = new AdamW([['w', w]]);
    for (let step = 0; step < 2; step++) {
      const y = tf.matMul(x, w); // XNNPACK packs w's values and keeps them for w's data
      const g = tf.tensor(values(32 * 16, 10 + step), [32, 16]);
      optimizer.applyGradients(new Map([[w, g]]), 0.05);
      const fresh = tf.matMul(x, w);
      const expected = tf.tidy(() => tf.matMul(x, tf.tensor(w.dataSync(), w.shape)));
      expect(Array.from(fresh.dataSync())).toEqual(Array.from(expected.dataSync()));
      expect(relativeError(fresh.dataSync() as Float32Array, y.dataSync() as Float32Array)).toBeGreaterThan(1e-3);
      tf.dispose([y, g, fresh, expected]);
    }
    optimizer.dispose();
    tf.dispose([w, x]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('gradient clipping on wasm, summed by SIMD calls', () => {
  it('gives the composed coefficient’s bits, clipping or not', async () => {
    await useBackend('wasm');
    const grads = new Map(SHAPES.map((s, i) => {
      const v = variable(new Float32Array(s.reduce((a, b) => a * b, 1)), s);
      return [v, tf.tensor(values(v.size, i + 40), s)] as [tf.Variable, tf.Tensor];
    }));
    const before = tf.memory().numTensors;
    for (const maxNorm of [0.5, 10, 1e6]) {
      const fast = clipCoefficient(grads, maxNorm);
      const old = setFusedKernels(false);
      const slow = clipCoefficient(grads, maxNorm);
      setFusedKernels(old);
      expect(fast.shape).toEqual([1]);
      expect(fast.dataSync()[0]).toBe(slow.dataSync()[0]);
      if (maxNorm === 1e6) expect(fast.dataSync()[0]).toBe(1);
      else if (maxNorm === 0.5) expect(fast.dataSync()[0]).toBeLessThan(0.1);
      tf.dispose([fast, slow]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...grads.keys(), ...grads.values()]);
  });
});
