import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { MaskedLMHead, matMulUntransposed, RevColText, type TextConfig } from '../src/text/model.js';
import { RandomStream } from '../src/core/random.js';
import { TEXT_PRESETS, validateConfig } from '../src/text/presets.js';
import { RevcolError } from '../src/core/errors.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { relativeError } from './helpers/numerics.js';

/** max |a - b| / max |b|, the error relative to the tensor's scale. */

function smallConfig(overrides: Partial<TextConfig> = {}): TextConfig {
  return {
    vocabSize: 50, maxLength: 12, hidden: [16, 24], layers: [1, 2], heads: 2, mlpRatio: 2,
    columns: 2, dropout: 0.1, dropPath: 0.2, pooling: 'mean', numLabels: 3, ...overrides,
  };
}

/** A batch with padding: the lengths differ, padded ids are 0 and masked. */
function batch(seed: number, b = 4, t = 10, vocab = 50) {
  const lengths = Array.from({ length: b }, (_, i) => Math.max(2, t - 3 * i));
  const ids: number[][] = [];
  const mask: number[][] = [];
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648);
  for (let i = 0; i < b; i++) {
    ids.push(Array.from({ length: t }, (_, j) => (j < lengths[i] ? 1 + (next() % (vocab - 1)) : 0)));
    mask.push(Array.from({ length: t }, (_, j) => (j < lengths[i] ? 1 : 0)));
  }
  return {
    inputIds: tf.tensor2d(ids, [b, t], 'int32'),
    attentionMask: tf.tensor2d(mask, [b, t], 'int32'),
    labels: tf.tensor1d(Array.from({ length: b }, (_, i) => i % 3), 'int32'),
    lengths,
  };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('text columns: reversible backward agrees with plain autodiff', () => {
  const cases: Array<[number, number[], number[], 'first' | 'mean']> = [
    [1, [16], [2], 'first'],
    [2, [16, 24], [1, 2], 'mean'],
    [3, [16, 16, 24], [1, 1, 1], 'first'],
    [4, [16, 24], [1, 1], 'mean'],
  ];
  it.each(cases)('%i columns, widths %j, blocks %j, %s pooling, dropout and drop path on', (columns, hidden, layers, pooling) => {
    const model = new RevColText(smallConfig({ columns, hidden, layers, pooling }), 17 * columns);
    // Move the shortcut scales away from 0.5 so that each one matters.
    spreadShortcutScales(model.columns, columns, hidden.length, (c, l) => 31 * c + l);
    const data = batch(5 + columns);
    const plain = model.lossAndGradients(data, { seed: 99, mode: 'plain', labelSmoothing: 0.1 });
    const rev = model.lossAndGradients(data, { seed: 99, mode: 'reversible', labelSmoothing: 0.1 });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
    expect([...rev.grads.keys()].map((v) => names.get(v)).sort()).toEqual([...plain.grads.keys()].map((v) => names.get(v)).sort());
    // Every weight but column 0's shortcut scales (which multiply x[-1] = 0) gets a gradient.
    expect(plain.grads.size).toBe(model.parameters().length - hidden.length);
    for (const [v, g] of plain.grads) {
      expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThanOrEqual(1e-4);
    }
    // Dropout is on: a different seed gives a different loss.
    const other = model.lossAndGradients(data, { seed: 100, mode: 'reversible' });
    expect(Math.abs(other.loss.dataSync()[0] - rev.loss.dataSync()[0])).toBeGreaterThan(1e-6);
    for (const r of [plain, rev, other]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    [data.inputIds, data.attentionMask, data.labels].forEach((t) => t.dispose());
    model.dispose();
  });
});

describe('masked-LM pre-training: reversible backward agrees with plain autodiff', () => {
  it.each([[2, [16, 16]], [3, [16, 24]]])('%i columns, widths %j, the decoder tied to the token embedding', (columns, hidden) => {
    const model = new RevColText(smallConfig({ columns, hidden, layers: [1, 1] }), 5 + columns);
    const head = new MaskedLMHead(hidden[hidden.length - 1]!, model.embeddings.tokens, new RandomStream(3));
    const data = batch(21);
    // Positions 1, 3 and 12 of the flattened [4 × 10] batch, with the ids that were there.
    const positions = tf.tensor1d([1, 3, 12], 'int32');
    const targets = tf.tensor1d([7, 9, 11], 'int32');
    const masked = { inputIds: data.inputIds, attentionMask: data.attentionMask, positions, targets };
    const plain = model.maskedLMLossAndGradients(masked, head, { seed: 4, mode: 'plain' });
    const rev = model.maskedLMLossAndGradients(masked, head, { seed: 4, mode: 'reversible' });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    const names = new Map([...model.namedParameters(), ...head.namedParameters('mlm.')].map(([n, v]) => [v, n]));
    expect([...rev.grads.keys()].map((v) => names.get(v)).sort()).toEqual([...plain.grads.keys()].map((v) => names.get(v)).sort());
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThanOrEqual(1e-4);
    // The tied embedding gets the decoder's gradient too: rows of target ids absent from the input still move.
    const inputIds = new Set(data.inputIds.dataSync());
    const onlyTarget = [7, 9, 11].find((id) => !inputIds.has(id)) ?? 0;
    const tokensGrad = rev.grads.get(model.embeddings.tokens)!;
    expect(tf.tidy(() => tf.max(tf.abs(tf.gather(tokensGrad, [onlyTarget]))).dataSync()[0])).toBeGreaterThan(0);
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    tf.dispose([positions, targets, data.inputIds, data.attentionMask, data.labels]);
    head.dispose();
    model.dispose();
  });
});

describe('matMulUntransposed', () => {
  // wasm takes the explicitly transposed path (its own customGrad; aᵀ·g on revcol's SIMD kernel
  // where it applies), other backends tf.matMul. Checked against tf.matMul on the cpu backend.
  it.each([
    ['wasm', [5, 7], [7, 3], false],
    ['wasm', [64, 16], [16, 8], false],
    ['wasm', [2, 3, 5, 4], [2, 3, 4, 6], false],
    ['wasm', [2, 3, 8, 4], [2, 3, 4, 16], false],
    ['wasm', [2, 3, 5, 4], [2, 3, 6, 4], true],
    ['cpu', [2, 3, 5, 4], [2, 3, 6, 4], true],
  ] as const)('on %s gives tf.matMul\'s values and gradients for %j @ %j (b transposed: %s)', async (backend, aShape, bShape, transposeB) => {
    const outCols = transposeB ? bShape[bShape.length - 2]! : bShape[bShape.length - 1]!;
    const run = async (on: string, f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) => {
      await tf.setBackend(on);
      const a = tf.randomNormal([...aShape], 0, 1, 'float32', 1);
      const b = tf.randomNormal([...bShape], 0, 1, 'float32', 2);
      const w = tf.randomNormal([...aShape.slice(0, -1), outCols], 0, 1, 'float32', 3);
      const value = f(a, b);
      const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), w)))([a, b]);
      const out = await Promise.all([value, ...grads].map(async (t) => tf.tensor(await t.data(), t.shape)));
      tf.dispose([a, b, w, value, ...grads]);
      return out;
    };
    const ours = await run(backend, (x, y) => matMulUntransposed(x, y, transposeB));
    const theirs = await run('cpu', (x, y) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D, false, transposeB));
    await tf.setBackend('cpu');
    ours.forEach((t, i) => expect(relativeError(t, theirs[i]!)).toBeLessThan(1e-6));
    tf.dispose([...ours, ...theirs]);
  });
});

describe('padding mask', () => {
  it.each(['mean', 'first'] as const)('padded positions do not change the logits (%s pooling)', (pooling) => {
    const model = new RevColText(smallConfig({ pooling }), 3);
    const data = batch(11);
    const logits = model.logits(data.inputIds, data.attentionMask);
    // Different ids at padded positions, and extra padding at the end.
    const noisyIds = tf.tidy(() => {
      const junk = tf.randomUniform(data.inputIds.shape, 1, 49, 'int32', 4);
      const keep = tf.cast(data.attentionMask, 'bool');
      const swapped = tf.where(keep, data.inputIds, junk);
      return tf.concat([swapped, tf.fill([4, 2], 7, 'int32')], 1) as tf.Tensor2D;
    });
    const longerMask = tf.concat([data.attentionMask, tf.zeros([4, 2], 'int32')], 1) as tf.Tensor2D;
    const noisy = model.logits(noisyIds, longerMask);
    expect(relativeError(noisy, logits)).toBeLessThan(1e-5);
    // A real token does change them (the test can fail).
    const changedIds = tf.tidy(() => tf.add(data.inputIds, tf.oneHot(tf.tensor1d([0, 0, 0, 0], 'int32'), 10, 1, 0, 'int32')) as tf.Tensor2D);
    const changed = model.logits(changedIds, data.attentionMask);
    expect(relativeError(changed, logits)).toBeGreaterThan(1e-4);
    tf.dispose([logits, noisyIds, longerMask, noisy, changedIds, changed, data.inputIds, data.attentionMask, data.labels]);
    model.dispose();
  });
});

describe('training steps', () => {
  it('keeps tf.memory().numTensors flat over steps, in both modes', () => {
    const model = new RevColText(smallConfig(), 8);
    const data = batch(21);
    const counts: Record<string, number[]> = { reversible: [], plain: [] };
    for (const mode of ['reversible', 'plain'] as const) {
      for (let step = 0; step < 6; step++) {
        const { loss, grads } = model.lossAndGradients(data, { seed: step, mode });
        // A plain SGD step so that the weights change between steps.
        tf.tidy(() => grads.forEach((g, v) => v.assign(tf.sub(v, tf.mul(g, 0.05)))));
        loss.dispose();
        grads.forEach((g) => g.dispose());
        counts[mode].push(tf.memory().numTensors);
      }
      expect(counts[mode][5]).toBe(counts[mode][1]);
    }
    [data.inputIds, data.attentionMask, data.labels].forEach((t) => t.dispose());
    model.dispose();
  });

  it('a few steps lower the loss on a learnable batch', () => {
    const model = new RevColText(smallConfig({ dropout: 0, dropPath: 0 }), 4);
    const data = batch(1);
    const lossAt = () => tf.tidy(() => {
      const logits = model.logits(data.inputIds, data.attentionMask);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(data.labels, 3), logits).dataSync()[0];
    });
    const before = lossAt();
    for (let step = 0; step < 15; step++) {
      const { loss, grads } = model.lossAndGradients(data, { seed: step });
      tf.tidy(() => grads.forEach((g, v) => v.assign(tf.sub(v, tf.mul(g, 0.1)))));
      loss.dispose();
      grads.forEach((g) => g.dispose());
    }
    expect(lossAt()).toBeLessThan(before * 0.7);
    [data.inputIds, data.attentionMask, data.labels].forEach((t) => t.dispose());
    model.dispose();
  });
});

describe('presets and config', () => {
  it('text-base is BERT-base sized: 768 wide, 12 heads, 12 blocks in all, ~110M parameters', () => {
    const p = TEXT_PRESETS['text-base'];
    expect(Math.max(...p.hidden)).toBe(768);
    expect(p.heads).toBe(12);
    expect(p.columns * p.layers.reduce((a, b) => a + b, 0)).toBe(12);
    // Count without allocating: embeddings + blocks + fusions + head.
    const d = 768;
    const block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * (4 * d * d) + 4 * d + d;
    const approx = 30522 * d + p.maxLength * d + 12 * block;
    expect(approx).toBeGreaterThan(100e6);
    expect(approx).toBeLessThan(120e6);
  });

  it('every preset validates and builds at a small vocabulary', () => {
    for (const [name, p] of Object.entries(TEXT_PRESETS)) {
      if (name === 'text-base' || name === 'text-medium') continue;
      const model = new RevColText({ ...p, vocabSize: 40, numLabels: 2 });
      expect(model.parameterCount()).toBeGreaterThan(0);
      model.dispose();
    }
  });

  it('bad configs fail with a one-line RevcolError naming the field', () => {
    const bad: Array<[Partial<TextConfig>, RegExp]> = [
      [{ hidden: [31], layers: [1] }, /not divisible by heads/],
      [{ layers: [1] }, /layers must list one block count per level/],
      [{ pooling: 'max' as 'mean' }, /pooling/],
      [{ numLabels: 1 }, /numLabels/],
      [{ dropout: 1.5 }, /dropout/],
    ];
    for (const [o, re] of bad) {
      let err: unknown;
      try { validateConfig(smallConfig(o)); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(RevcolError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
