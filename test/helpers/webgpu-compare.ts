/**
 * Comparing a webgpu kernel with the cpu backend: deterministic inputs, a function run on one
 * backend with tensors made there, a closeness check scaled to the expected values, and the
 * names of the webgpu programs a function dispatches.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/** Deterministic values in [-1, 1). */
export function values(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Runs `fn` on `backend` with tensors made there from `data`; returns the result's values and shape. */
export async function on(backend: string, data: Array<{ values: Float32Array; shape: number[] }>, fn: (...t: tf.Tensor[]) => tf.Tensor) {
  await tf.setBackend(backend);
  const inputs = data.map((d) => tf.tensor(d.values, d.shape));
  const out = fn(...inputs);
  const result = { values: (await out.data()) as Float32Array, shape: out.shape };
  out.dispose();
  inputs.forEach((t) => t.dispose());
  return result;
}

export function expectClose(actual: { values: Float32Array; shape: number[] }, expected: { values: Float32Array; shape: number[] }): void {
  expect(actual.shape).toEqual(expected.shape);
  let scale = 0;
  for (const v of expected.values) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < expected.values.length; i++) worst = Math.max(worst, Math.abs(actual.values[i]! - expected.values[i]!));
  expect(worst).toBeLessThanOrEqual(1e-4 * Math.max(scale, 1e-6));
}

/** Names of the webgpu programs `fn` dispatches. */
export async function programsOf(fn: () => Promise<unknown>): Promise<string[]> {
  const backend = tf.findBackend('webgpu') as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  const names: string[] = [];
  backend.runWebGPUProgram = function (this: unknown, program: { constructor: { name: string } }, ...rest: unknown[]) {
    names.push(program.constructor.name);
    return original.call(this, program, ...rest);
  } as typeof original;
  try {
    await fn();
  } finally {
    backend.runWebGPUProgram = original;
  }
  return names;
}
