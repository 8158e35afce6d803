import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import type { TextConfig } from '../../src/text/presets.js';
import type { TokenBatch, TokenClassificationModel } from '../../src/text/token-classification.js';

/** A small two-level text config for token-model tests (dropout and drop path on). */
export function smallConfig(overrides: Partial<TextConfig> = {}): TextConfig {
  return {
    vocabSize: 50, maxLength: 12, hidden: [16, 24], layers: [1, 1], heads: 2, mlpRatio: 2,
    columns: 2, dropout: 0.1, dropPath: 0.2, pooling: 'mean', numLabels: 4, ...overrides,
  };
}

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
