import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, clipByGlobalNorm, lossAndGradients, type TrainingMode } from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * Runs 20 full training steps (fresh batch, loss and gradients, clipping, AdamW update,
 * everything disposed) and returns tf.memory().numTensors after each step.
 */
async function tensorCounts(mode: TrainingMode, columns: number, headColumns?: number[]) {
  const net = new ToyNet(6, [8, 10, 12], columns, 4, 17, headColumns);
  const opt = new AdamW(net, { weightDecay: 0.05 });
  const before = net.namedParameters().map(([, v]) => Float32Array.from(v.dataSync()));
  const counts: number[] = [];
  const losses: number[] = [];
  for (let step = 1; step <= 20; step++) {
    const x = tf.randomNormal([8, 6], 0, 1, 'float32', step);
    const labels = tf.tidy(() => tf.oneHot(tf.cast(tf.randomUniform([8], 0, 4, 'float32', 1000 + step), 'int32'), 4));
    // Drop path (0.2) and dropout are on in the toy bodies and fusions when training.
    const { loss, grads } = lossAndGradients(net.columns, net.stem(), net.headsFor(labels), x, { mode, training: true, seed: 31 * step });
    losses.push(loss.dataSync()[0]);
    await clipByGlobalNorm(grads, 1.0);
    opt.applyGradients(grads, 1e-3);
    loss.dispose();
    grads.forEach((g) => g.dispose());
    x.dispose();
    labels.dispose();
    counts.push(tf.memory().numTensors);
  }
  const moved = net.namedParameters().some(([, v], i) => v.dataSync().some((w, j) => w !== before[i][j]));
  opt.dispose();
  net.dispose();
  return { counts, losses, moved };
}

describe('no tensor leaks over training steps', () => {
  it.each<[TrainingMode, number, number[] | undefined]>([
    ['reversible', 4, undefined],
    ['plain', 4, undefined],
    ['reversible', 4, [1, 3]],
    ['plain', 4, [1, 3]],
  ])('%s mode, %i columns, heads at %j', async (mode, columns, heads) => {
    const start = tf.memory().numTensors;
    const { counts, losses, moved } = await tensorCounts(mode, columns, heads);
    expect(counts[19]).toBe(counts[1]); // after step 20 = after step 2
    expect(new Set(counts).size).toBe(1); // and flat in between
    expect(tf.memory().numTensors).toBe(start); // the optimizer and model free everything
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(moved).toBe(true);
  });
});
