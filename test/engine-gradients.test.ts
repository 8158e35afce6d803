import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { lossAndGradients } from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';
import { relativeError } from './helpers/numerics.js';

/** max |a - b| / max |b|, the error relative to the tensor's scale. */

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('reversible backward agrees with plain autodiff', () => {
  const cases: Array<[number, number]> = [];
  for (const columns of [1, 2, 4, 8]) for (let levels = 1; levels <= 4; levels++) cases.push([columns, levels]);

  it.each(cases)('%i columns, %i levels, drop path and dropout on', (columns, levels) => {
    const channels = [6, 8, 10, 12].slice(0, levels);
    const net = new ToyNet(5, channels, columns, 3, 100 * columns + levels);
    const input = tf.randomNormal([4, 5], 0, 1, 'float32', 7);
    const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
    const heads = net.headsFor(labels);
    const opts = { training: true, seed: 1234, inputGradient: true };
    const plain = lossAndGradients(net.columns, net.stem(), heads, input, { ...opts, mode: 'plain' });
    const rev = lossAndGradients(net.columns, net.stem(), heads, input, { ...opts, mode: 'reversible' });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    const names = new Map(net.namedParameters().map(([n, v]) => [v, n]));
    expect([...rev.grads.keys()].map((v) => names.get(v)).sort()).toEqual([...plain.grads.keys()].map((v) => names.get(v)).sort());
    for (const [v, g] of plain.grads) {
      const err = relativeError(rev.grads.get(v)!, g);
      expect(err, names.get(v)).toBeLessThanOrEqual(1e-4);
    }
    // The input's gradient agrees too.
    expect(relativeError(rev.inputGrad!, plain.inputGrad!)).toBeLessThanOrEqual(1e-4);
    expect(tf.max(tf.abs(plain.inputGrad!)).dataSync()[0]).toBeGreaterThan(0);
    // Every level of every column and every scale past column 0 gets a gradient.
    expect(plain.grads.size).toBe(net.parameters().length - levels /* column 0's scales */ );
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); r.inputGrad?.dispose(); }
    input.dispose(); labels.dispose(); net.dispose();
  });
});

describe('reversible backward on feature maps (levels at halving resolutions)', () => {
  it.each([[2, 3], [4, 4]])('%i columns, %i levels', (columns, levels) => {
    const channels = [4, 6, 8, 10].slice(0, levels);
    const net = new ToyNet(3, channels, columns, 3, 7 * columns + levels, [columns - 1]);
    const input = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 11);
    const labels = tf.oneHot(tf.tensor1d([1, 2], 'int32'), 3);
    const heads = net.headsFor(labels);
    const plain = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'plain', seed: 5 });
    const rev = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'reversible', seed: 5 });
    expect(rev.grads.size).toBe(plain.grads.size);
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g)).toBeLessThanOrEqual(1e-4);
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    input.dispose(); labels.dispose(); net.dispose();
  });
});

describe('intermediate heads are evaluated on rebuilt columns', () => {
  it('heads at columns 0, 1, 2, 3 of 4', () => {
    const net = new ToyNet(5, [6, 8, 10], 4, 3, 99, [0, 1, 2, 3]);
    const input = tf.randomNormal([4, 5], 0, 1, 'float32', 3);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
    const heads = net.headsFor(labels);
    const plain = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'plain', seed: 9 });
    const rev = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'reversible', seed: 9 });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g)).toBeLessThanOrEqual(1e-4);
    // Every head received a gradient.
    for (const h of net.heads) expect(plain.grads.has(h.weight) && rev.grads.has(h.weight)).toBe(true);
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    input.dispose(); labels.dispose(); net.dispose();
  });
});

describe('anchor columns', () => {
  it('keep 16 columns of rebuilds accurate, with gradients equal to plain autodiff', () => {
    const errors: number[] = [];
    for (const anchorEvery of [0, 4]) {
      const net = new ToyNet(5, [6, 8, 10, 12], 16, 3, 21, undefined, anchorEvery);
      const input = tf.randomNormal([4, 5], 0, 1, 'float32', 7);
      const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
      const heads = net.headsFor(labels);
      const plain = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'plain', seed: 3 });
      const rev = lossAndGradients(net.columns, net.stem(), heads, input, { mode: 'reversible', seed: 3 });
      errors.push(Math.max(...[...plain.grads].map(([v, g]) => relativeError(rev.grads.get(v)!, g))));
      for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
      input.dispose(); labels.dispose(); net.dispose();
    }
    const [pure, anchored] = errors;
    expect(anchored).toBeLessThanOrEqual(1e-4);
    expect(anchored).toBeLessThan(pure);
  });
});
