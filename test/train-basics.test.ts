import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, accuracy, bceWithLogits, clipByGlobalNorm, clipCoefficient, setFusedKernels, defaultNoWeightDecay, softmaxCrossEntropy, sparseCrossEntropy, warmupCosine } from '../src/index.js';
import { crossEntropyGrad, rowMaxes } from '../src/ops/fused.js';
import { withWasmSimdKernels } from './helpers/wasm-simd.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const values = (t: tf.Tensor) => Array.from(t.dataSync());

/** Where the loss kernels run: cpu, and wasm with revcol's SIMD module and without it (the JavaScript fallback). */
const LOSS_KERNEL_BACKENDS = [
  ['cpu', true],
  ['wasm', true],
  ['wasm', false],
] as const;

/** Runs `body` on `backend` with revcol's SIMD wasm kernels on or off, checks it left no tensor, then puts both back. */
async function onBackend(backend: string, simd: boolean, body: () => Promise<void>): Promise<void> {
  const old = tf.getBackend();
  await useBackend(backend);
  try {
    const before = tf.memory().numTensors;
    await withWasmSimdKernels(simd, body);
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    await useBackend(old);
  }
}

describe('AdamW', () => {
  // Adam by hand, one element at a time, in float64 (PyTorch's AdamW arrangement).
  function adamwByHand(p0: number[], gradsPerStep: number[][], lrs: number[], wd: number): number[] {
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    return p0.map((p, i) => {
      let m = 0;
      let v = 0;
      gradsPerStep.forEach((g, s) => {
        const t = s + 1;
        p *= 1 - lrs[s] * wd;
        m = b1 * m + (1 - b1) * g[i];
        v = b2 * v + (1 - b2) * g[i] * g[i];
        const mHat = m / (1 - b1 ** t);
        const vHat = v / (1 - b2 ** t);
        p -= (lrs[s] * mHat) / (Math.sqrt(vHat) + eps);
      });
      return p;
    });
  }

  function run(wd: number) {
    const w0 = [0.5, -1.5, 2.0, 0.25];
    const b0 = [0.1, -0.2];
    const w = tf.variable(tf.tensor2d(w0, [2, 2]));
    const b = tf.variable(tf.tensor1d(b0));
    const opt = new AdamW([['layer.weight', w], ['layer.bias', b]], { weightDecay: wd });
    const wGrads = [[0.3, -0.7, 1.2, 0.05], [-0.1, -0.4, 2.0, 0.5], [0.2, 0.2, -0.3, -1.0]];
    const bGrads = [[1.0, -3.0], [0.5, 0.5], [-2.0, 0.1]];
    const lrs = [1e-2, 5e-3, 2e-2];
    for (let s = 0; s < 3; s++) {
      const grads = new Map<tf.Variable, tf.Tensor>([[w, tf.tensor2d(wGrads[s], [2, 2])], [b, tf.tensor1d(bGrads[s])]]);
      opt.applyGradients(grads, lrs[s]);
      grads.forEach((g) => g.dispose());
    }
    const result = { w: values(w), b: values(b), wWant: adamwByHand(w0, wGrads, lrs, wd), bWant: adamwByHand(b0, bGrads, lrs, 0), step: opt.step, decayed: opt.decayedNames() };
    opt.dispose();
    w.dispose();
    b.dispose();
    return result;
  }

  it('first step moves each weight by lr·sign(g) (the bias-corrected Adam step), decay aside', () => {
    const p = tf.variable(tf.tensor2d([1, -2, 3, 0.5], [2, 2]));
    const opt = new AdamW([['w', p]], { weightDecay: 0.1 });
    const g = tf.tensor2d([0.3, -5, 2e-3, -0.01], [2, 2]);
    opt.applyGradients(new Map([[p, g]]), 0.01);
    // p·(1 − 0.01·0.1) − 0.01·sign(g): the numbers written out.
    const want = [1 * 0.999 - 0.01, -2 * 0.999 + 0.01, 3 * 0.999 - 0.01, 0.5 * 0.999 + 0.01];
    values(p).forEach((x, i) => expect(x).toBeCloseTo(want[i], 6));
    g.dispose(); opt.dispose(); p.dispose();
  });

  it('matches a hand computation over three steps without weight decay', () => {
    const r = run(0);
    r.w.forEach((x, i) => expect(x).toBeCloseTo(r.wWant[i], 6));
    r.b.forEach((x, i) => expect(x).toBeCloseTo(r.bWant[i], 6));
    expect(r.step).toBe(3);
    expect(r.decayed).toEqual([]);
  });

  it('matches a hand computation with decoupled weight decay, which skips the 1-D bias', () => {
    const r = run(0.5);
    r.w.forEach((x, i) => expect(x).toBeCloseTo(r.wWant[i], 6));
    r.b.forEach((x, i) => expect(x).toBeCloseTo(r.bWant[i], 6));
    expect(r.decayed).toEqual(['layer.weight']);
    // The decay really acted: without it the weights differ.
    const plain = run(0);
    expect(Math.max(...r.w.map((x, i) => Math.abs(x - plain.w[i])))).toBeGreaterThan(1e-4);
  });

  it('does not decay norms, biases, shortcut scales or 1-D parameters by default', () => {
    const v2 = tf.variable(tf.zeros([2, 2]));
    const v1 = tf.variable(tf.zeros([2]));
    expect(defaultNoWeightDecay('subnet1.alpha0', v1)).toBe(true);
    expect(defaultNoWeightDecay('subnet1.alpha0', v2)).toBe(true);
    expect(defaultNoWeightDecay('blocks.0.norm.weight', v2)).toBe(true);
    expect(defaultNoWeightDecay('head.bias', v2)).toBe(true);
    expect(defaultNoWeightDecay('blocks.0.pwconv1.weight', v2)).toBe(false);
    expect(defaultNoWeightDecay('blocks.0.gamma', v1)).toBe(true);
    v1.dispose(); v2.dispose();
  });

  it('updates the same with packed moments in fused kernels and with composed ops on separate moments', () => {
    const run = (fused: boolean) => {
      const old = setFusedKernels(fused);
      const p = tf.variable(tf.tensor2d([[0.5, -1, 2], [0.25, 3, -0.5]]));
      const opt = new AdamW([['p', p]], { weightDecay: 0.05 });
      for (let i = 0; i < 4; i++) {
        const g = tf.tensor2d([[0.1 * i, -0.2, 0.3], [1, -1, 0.5 * i]]);
        const scale = tf.tensor1d([0.5]);
        opt.applyGradients(new Map([[p, g]]), 1e-2, { gradScale: scale });
        tf.dispose([g, scale]);
      }
      const out = { p: values(p), m: values(opt.getState().tensors.get('p.m')!), v: values(opt.getState().tensors.get('p.v')!) };
      opt.dispose(); p.dispose();
      setFusedKernels(old);
      return out;
    };
    const [packed, separate] = [run(true), run(false)];
    for (const k of ['p', 'm', 'v'] as const) packed[k].forEach((x, i) => expect(x).toBeCloseTo(separate[k][i]!, 6));
  });

  it('exports and restores its state by name, and leaks nothing', () => {
    const p = tf.variable(tf.tensor1d([1, 2, 3]));
    const q = tf.variable(tf.tensor1d([0, 0, 0]));
    const empty = tf.memory().numTensors;
    const opt = new AdamW([['p', p]]);
    expect(tf.memory().numTensors).toBe(empty + (tf.getKernel('RevcolAdamMoments', tf.getBackend()) ? 1 : 2)); // just m and v (packed where fused)
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const g = tf.tensor1d([0.1 * i, -0.2, 0.3]);
      opt.applyGradients(new Map([[p, g]]), 1e-2);
      g.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    const state = opt.getState();
    expect([...state.tensors.keys()].sort()).toEqual(['p.m', 'p.v']);
    const other = new AdamW([['p', q]]);
    other.setState(state);
    expect(other.step).toBe(5);
    expect(values(other.getState().tensors.get('p.v')!)).toEqual(values(state.tensors.get('p.v')!));
    const bad = new Map([['p.m', tf.zeros([4])], ['p.v', tf.zeros([3])]]);
    expect(() => other.setState({ step: 1, tensors: bad })).toThrow(/mis-shaped p\.m/);
    bad.forEach((t) => t.dispose());
    opt.dispose(); other.dispose();
    expect(tf.memory().numTensors).toBe(empty);
    p.dispose(); q.dispose();
  });
});

describe('warmupCosine', () => {
  const lr = 1e-3;
  const minLr = 1e-6;
  const start = 1e-5;
  it('starts at the warm-up lr, peaks at the end of warm-up, ends at minLr', () => {
    expect(warmupCosine(0, 100, 10, lr, minLr, start)).toBeCloseTo(start, 12);
    expect(warmupCosine(5, 100, 10, lr, minLr, start)).toBeCloseTo((start + lr) / 2, 12);
    expect(warmupCosine(10, 100, 10, lr, minLr, start)).toBeCloseTo(lr, 12);
    expect(warmupCosine(55, 100, 10, lr, minLr, start)).toBeCloseTo((lr + minLr) / 2, 12);
    expect(warmupCosine(100, 100, 10, lr, minLr, start)).toBeCloseTo(minLr, 12);
    expect(warmupCosine(150, 100, 10, lr, minLr, start)).toBeCloseTo(minLr, 12);
    expect(warmupCosine(0, 100, 10, lr, minLr)).toBeCloseTo(minLr, 12); // warm-up starts at minLr by default
    expect(warmupCosine(0, 100, 0, lr, minLr)).toBeCloseTo(lr, 12); // no warm-up: cosine from the peak
  });
  it('rises during warm-up and falls after it', () => {
    const curve = Array.from({ length: 101 }, (_, s) => warmupCosine(s, 100, 10, lr, minLr, start));
    for (let s = 1; s <= 10; s++) expect(curve[s]).toBeGreaterThan(curve[s - 1]);
    for (let s = 11; s <= 100; s++) expect(curve[s]).toBeLessThan(curve[s - 1]);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales all gradients together to the max norm and returns the norm before', async () => {
    const a = tf.variable(tf.zeros([2]));
    const b = tf.variable(tf.zeros([1, 2]));
    const ga = tf.tensor1d([3, 0]);
    const gb = tf.tensor2d([[0, 4]]);
    const grads = new Map<tf.Variable, tf.Tensor>([[a, ga], [b, gb]]);
    const norm = await clipByGlobalNorm(grads, 1);
    expect(norm).toBeCloseTo(5, 5);
    expect(ga.isDisposed && gb.isDisposed).toBe(true);
    values(grads.get(a)!).forEach((x, i) => expect(x).toBeCloseTo([0.6, 0][i], 5));
    values(grads.get(b)!).forEach((x, i) => expect(x).toBeCloseTo([0, 0.8][i], 5));
    // Under the limit nothing changes.
    const kept = grads.get(a)!;
    expect(await clipByGlobalNorm(grads, 10)).toBeCloseTo(1, 4);
    expect(grads.get(a)).toBe(kept);
    grads.forEach((g) => g.dispose());
    a.dispose(); b.dispose();
  });

  it('as a device-side coefficient given to AdamW, updates exactly as clipping the gradients first', async () => {
    for (const maxNorm of [1, 100]) {
      const start = [[0.5, -1], [2, 0.25]];
      const [p1, p2] = [tf.variable(tf.tensor2d(start)), tf.variable(tf.tensor2d(start))];
      const [o1, o2] = [new AdamW([['p', p1]], { weightDecay: 0.1 }), new AdamW([['p', p2]], { weightDecay: 0.1 })];
      for (let step = 0; step < 3; step++) {
        const g = () => tf.tensor2d([[3 * (step + 1), -4], [1, 0.5 * step]]);
        const clipped = new Map<tf.Variable, tf.Tensor>([[p1, g()]]);
        await clipByGlobalNorm(clipped, maxNorm);
        o1.applyGradients(clipped, 0.01);
        const raw = new Map<tf.Variable, tf.Tensor>([[p2, g()]]);
        const before = tf.memory().numTensors;
        const coefficient = clipCoefficient(raw, maxNorm);
        expect(tf.memory().numTensors).toBe(before + 1);
        o2.applyGradients(raw, 0.01, { gradScale: coefficient });
        coefficient.dispose();
        [...clipped.values(), ...raw.values()].forEach((t) => t.dispose());
      }
      values(p2).forEach((x, i) => expect(x).toBeCloseTo(values(p1)[i]!, 6));
      o1.dispose(); o2.dispose(); p1.dispose(); p2.dispose();
    }
  });
});

describe('losses', () => {
  const logitsData = [[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0], [-1.0, -1.0, -1.0, 4.0]];
  const labels = [0, 3, 3];
  function directCE(eps: number): number {
    const K = 4;
    let total = 0;
    logitsData.forEach((row, i) => {
      const lse = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
      const logp = row.map((x) => x - lse);
      total += -((1 - eps) * logp[labels[i]] + (eps / K) * logp.reduce((s, x) => s + x, 0));
    });
    return total / logitsData.length;
  }
  it.each([0, 0.1, 0.3])('cross-entropy with label smoothing %f equals the direct formula', (eps) => {
    const logits = tf.tensor2d(logitsData);
    const y = tf.tensor1d(labels, 'int32');
    const loss = softmaxCrossEntropy(logits, y, eps);
    expect(loss.dataSync()[0]).toBeCloseTo(directCE(eps), 5);
    tf.dispose([logits, y, loss]);
  });
  it.each(['cpu', 'wasm'])('sparse cross-entropy (masked LM) has the direct value, and its written-out gradient equals autodiff\'s (%s)', async (backend) => {
    const old = tf.getBackend();
    await useBackend(backend);
    const logits = tf.tensor2d(logitsData);
    const y = tf.tensor1d(labels, 'int32');
    const value = sparseCrossEntropy(logits, y);
    const grad = tf.grad((x: tf.Tensor) => sparseCrossEntropy(x as tf.Tensor2D, y))(logits);
    expect(value.dataSync()[0]).toBeCloseTo(directCE(0), 5);
    const reference = tf.grad((x: tf.Tensor) => softmaxCrossEntropy(x, y))(logits);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(grad, reference))).dataSync()[0]);
    expect(diff).toBeLessThan(1e-6);
    expect(tf.tidy(() => tf.max(tf.abs(reference)).dataSync()[0])).toBeGreaterThan(0.1);
    expect(() => sparseCrossEntropy(logits, tf.tensor1d([0, 1], 'int32'))).toThrow(/one target per row/);
    tf.dispose([logits, y, value, grad, reference]);
    await useBackend(old);
  });
  it.each(['cpu', 'wasm'])('sparse cross-entropy stays exact where the target\'s probability underflows (%s)', async (backend) => {
    const old = tf.getBackend();
    await useBackend(backend);
    try {
      // targets 200 and 1,000 below the row's largest logit: e^(−200) and e^(−1000) are 0 in float32
      const logits = tf.tensor2d([[0, -200, 50, 3], [1000, 0, 999, 998]]);
      const y = tf.tensor1d([1, 1], 'int32');
      const lse = (row: number[]) => { const m = Math.max(...row); return m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)); };
      const want = ((lse([0, -200, 50, 3]) + 200) + (lse([1000, 0, 999, 998]) - 0)) / 2;
      const value = sparseCrossEntropy(logits, y);
      expect(value.dataSync()[0]).toBeCloseTo(want, 3);
      tf.dispose([logits, y, value]);
    } finally {
      await useBackend(old);
    }
  });
  it.each(LOSS_KERNEL_BACKENDS)('sparse cross-entropy\'s gradient kernel gives the composed ops\' bits, one pass instead of four (%s, SIMD module %s)', async (backend, simd) => {
    await onBackend(backend, simd, async () => {
      // 37 rows of 1,003 classes (a ragged tail past groups of 4); targets include -1 and 1,003 (no one-hot)
      const rows = 37;
      const classes = 1003;
      const logits = tf.tensor2d(Float32Array.from({ length: rows * classes }, (_, i) => Math.sin(i * 0.37) * 6), [rows, classes]);
      const y = tf.tensor1d(Array.from({ length: rows }, (_, r) => (r === 5 ? -1 : r === 9 ? classes : (r * 389) % classes)), 'int32');
      const dy = tf.scalar(0.7);
      const p = tf.softmax(logits) as tf.Tensor2D;
      const fused = crossEntropyGrad(p, y, dy);
      const wasFused = setFusedKernels(false);
      const composed = crossEntropyGrad(p, y, dy);
      setFusedKernels(wasFused);
      expect(Array.from(fused.dataSync())).toEqual(Array.from(composed.dataSync()));
      expect(fused.dataSync()[9 * classes + 0]).toBeCloseTo((p.dataSync()[9 * classes]! * 0.7) / rows, 9);
      const profile = await tf.profile(() => crossEntropyGrad(p, y, dy));
      expect(profile.kernels.map((k) => k.name).filter((n) => n !== 'Cast')).toEqual(['RevcolCrossEntropyGrad']);
      tf.dispose([logits, y, dy, p, fused, composed, profile.result as tf.Tensor]);
    });
  });
  it.each(LOSS_KERNEL_BACKENDS)('row maxima of two tables in one pass equal tfjs\'s Max of each; sparse cross-entropy\'s forward uses it (%s, SIMD module %s)', async (backend, simd) => {
    await onBackend(backend, simd, async () => {
      const rows = 23;
      const classes = 1003; // a ragged tail past groups of 4
      const a = tf.tensor2d(Float32Array.from({ length: rows * classes }, (_, i) => Math.sin(i * 0.37) * 6 - (i % classes === 1002 ? -20 : 0)), [rows, classes]);
      const b = tf.tensor2d(Float32Array.from({ length: rows * classes }, (_, i) => Math.cos(i * 0.11) - 3), [rows, classes]);
      const both = rowMaxes(a, b);
      expect(both.shape).toEqual([2, rows]);
      expect(Array.from(both.dataSync())).toEqual(tf.tidy(() => [...Array.from(tf.max(a, 1).dataSync()), ...Array.from(tf.max(b, 1).dataSync())]));
      const y = tf.tensor1d(Array.from({ length: rows }, (_, r) => (r * 389) % classes), 'int32');
      const profile = await tf.profile(() => sparseCrossEntropy(a as tf.Tensor2D, y));
      const names = profile.kernels.map((k) => k.name);
      expect(names.filter((n) => n === 'RevcolRowMaxes')).toHaveLength(1);
      expect(names).not.toContain('Max');
      tf.dispose([a, b, both, y, profile.result as tf.Tensor]);
    });
  });
  it('binary cross-entropy with logits is the direct formula and stays finite for large logits', () => {
    const x = [0.3, -1.2, 2.0, 0.0];
    const t = [1, 0, 0.25, 0.5];
    const want = x.reduce((s, xi, i) => s - (t[i] * Math.log(1 / (1 + Math.exp(-xi))) + (1 - t[i]) * Math.log(1 - 1 / (1 + Math.exp(-xi)))), 0) / x.length;
    const a = tf.tensor1d(x);
    const b = tf.tensor1d(t);
    expect(bceWithLogits(a, b).dataSync()[0]).toBeCloseTo(want, 5);
    const big = tf.tensor1d([200, -200]);
    const targets = tf.tensor1d([0, 1]);
    expect(bceWithLogits(big, targets).dataSync()[0]).toBeCloseTo(200, 3);
    tf.dispose([a, b, big, targets]);
  });
  it('accuracy counts arg-max hits', () => {
    const logits = tf.tensor2d(logitsData);
    const y = tf.tensor1d([0, 2, 1], 'int32');
    expect(accuracy(logits, y)).toBeCloseTo(2 / 3, 6);
    tf.dispose([logits, y]);
  });
  it('rejects labels that do not fit the logits with one line', () => {
    const logits = tf.zeros([3, 4]);
    const y = tf.tensor1d([0, 1], 'int32');
    expect(() => softmaxCrossEntropy(logits, y)).toThrow(/one label per row/);
    tf.dispose([logits, y]);
  });
});
