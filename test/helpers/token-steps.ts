import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import type { TokenBatch, TokenClassificationModel } from '../../src/text/token-classification.js';

/**
 * Five plain SGD steps and a prediction per step, in both training modes: tf.memory().numTensors
 * must be the same after the fifth step as after the second (the first may allocate for good).
 */
export function expectFlatTensorsOverSteps(model: TokenClassificationModel, data: TokenBatch): void {
  for (const mode of ['reversible', 'plain'] as const) {
    const counts: number[] = [];
    for (let step = 0; step < 5; step++) {
      const { loss, grads } = model.lossAndGradients(data, { seed: step, mode });
      tf.tidy(() => grads.forEach((g, v) => v.assign(tf.sub(v, tf.mul(g, 0.05)))));
      loss.dispose();
      grads.forEach((g) => g.dispose());
      model.probabilities(data).dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(counts[4]).toBe(counts[1]);
  }
}
