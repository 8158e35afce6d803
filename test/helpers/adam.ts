// Shared by the AdamW tests of the webgpu and wasm in-place paths: deterministic values,
// variables that alone hold their data (as the model's parameters do), and a relative error.
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/** Deterministic values in about [-1, 1]. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return out;
}

/** A variable that alone holds its data, as the model's parameters do (src/core/module.ts). */
export function variable(data: Float32Array, shape: number[], name?: string): tf.Variable {
  const init = tf.tensor(data, shape);
  const v = tf.variable(init, true, name);
  init.dispose();
  return v;
}

/** max |a − b| over max |b|. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / scale;
}

/** Parameters and moments after some steps, for comparing two paths. */
export interface AdamOutcome {
  params: Float32Array[];
  moments: Float32Array[];
}
