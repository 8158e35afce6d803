import { expect } from 'vitest';
import type { LossAndGradients } from '../../src/core/gradients.js';
import type { Module } from '../../src/core/module.js';

/**
 * Data-parallel shard sums against the single-thread full batch: the same loss (relative 1e-5)
 * and every parameter's gradient within 1e-4 of that gradient's largest entry. `nonZero`: each
 * gradient must also have a non-zero entry (where every parameter is used by the batch).
 */
export function expectSameLossAndGradients(model: Module, full: LossAndGradients, dp: LossAndGradients, options: { nonZero?: boolean } = {}): void {
  expect(dp.grads.size).toBe(full.grads.size);
  const fullLoss = full.loss.dataSync()[0]!;
  expect(Math.abs(dp.loss.dataSync()[0]! - fullLoss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fullLoss)));
  const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
  for (const [v, g] of full.grads) {
    const a = g.dataSync();
    const b = dp.grads.get(v)!.dataSync();
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(a[i]!));
    }
    if (options.nonZero) expect(scale, names.get(v)).toBeGreaterThan(0);
    expect(diff, names.get(v)).toBeLessThanOrEqual(1e-4 * scale);
  }
}
