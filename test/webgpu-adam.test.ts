// The grouped in-place AdamW on webgpu (src/ops/kernels-webgpu-adam.ts) against the two
// per-parameter kernels it replaces and against the cpu backend: parameters and moments after
// several steps (weight decay on some, a gradient scale on one step), fewer dispatches, a
// parameter shared with another tensor left to the per-parameter path, no stale CPU copies
// and no tensor left behind. Runs on lavapipe; reported as skipped where no adapter can be had.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { setGroupedAdam } from '../src/ops/fused.js';
import { AdamW } from '../src/train/optimizer.js';
import { type AdamOutcome, relativeError, values, variable } from './helpers/adam.js';
import { webgpu } from './helpers/webgpu.js';

// 23 parameters: more than one group on any adapter; sizes from 1 to past a workgroup many times
const SHAPES = [[1], [7], [256], [257], [300, 7], [3, 3, 1, 40], [1000], [64, 65], [5], [2, 2], [33, 9], [4096], [17], [1], [40, 40], [129], [6, 6, 6], [2], [511], [8, 8], [70], [3], [2000]];
const names = SHAPES.map((s, i) => (s.length === 1 ? `layer${i}.bias` : `layer${i}.weight`));

/** Three AdamW steps from the same start; the second scales the gradients by 0.5. */
async function train(backend: string, grouped: boolean, countDispatches = false): Promise<AdamOutcome & { dispatches: number[] }> {
  await useBackend(backend);
  const old = setGroupedAdam(grouped);
  const dispatches: number[] = [];
  const pass = (globalThis as { GPUComputePassEncoder?: { prototype: GPUComputePassEncoder } }).GPUComputePassEncoder?.prototype;
  const original = pass?.dispatchWorkgroups;
  let count = 0;
  if (countDispatches && pass && original) {
    pass.dispatchWorkgroups = function (this: GPUComputePassEncoder, x: number, y?: number, z?: number) {
      count++;
      return original.call(this, x, y, z);
    };
  }
  try {
    const vars = SHAPES.map((s, i) => variable(values(s.reduce((a, b) => a * b, 1), i + 1), s, `grouped_adam_${backend}_${grouped}_${i}`));
    const optimizer = new AdamW(
      names.map((n, i) => [n, vars[i]!] as [string, tf.Variable]),
      { weightDecay: 0.05 },
    );
    for (let step = 0; step < 3; step++) {
      const grads = new Map(vars.map((v, i) => [v, tf.tensor(values(v.size, 100 * step + i + 7), v.shape)] as [tf.Variable, tf.Tensor]));
      const scale = step === 1 ? tf.tensor1d([0.5]) : undefined;
      count = 0;
      optimizer.applyGradients(grads, 1e-2, scale ? { gradScale: scale } : {});
      await vars[0]!.data(); // the queue has run the step
      dispatches.push(count);
      tf.dispose([...grads.values(), ...(scale ? [scale] : [])]);
    }
    const state = optimizer.getState();
    const out = {
      params: await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array)),
      moments: await Promise.all(names.flatMap((n) => [`${n}.m`, `${n}.v`]).map(async (k) => (await state.tensors.get(k)!.data()) as Float32Array)),
      dispatches,
    };
    optimizer.dispose();
    tf.dispose(vars);
    return out;
  } finally {
    setGroupedAdam(old);
    if (pass && original) pass.dispatchWorkgroups = original;
  }
}

function expectClose(actual: AdamOutcome, expected: AdamOutcome, tolerance: number): void {
  actual.params.forEach((p, i) => expect(relativeError(p, expected.params[i]!), `param ${names[i]}`).toBeLessThan(tolerance));
  actual.moments.forEach((m, i) => expect(relativeError(m, expected.moments[i]!), `moment ${i}`).toBeLessThan(tolerance));
}

describe.skipIf(!webgpu.available)(`grouped AdamW on webgpu${webgpu.available ? '' : ` (skipped: ${webgpu.reason})`}`, () => {
  it('matches the per-parameter kernels and the cpu backend, in fewer dispatches', async () => {
    const cpu = await train('cpu', false);
    const single = await train('webgpu', false, true);
    const before = tf.memory().numTensors;
    const grouped = await train('webgpu', true, true);
    expect(tf.memory().numTensors).toBe(before);
    expectClose(grouped, single, 1e-6);
    expectClose(grouped, cpu, 1e-5);
    // two per parameter before; a few groups now (5 parameters a group on lavapipe's 16 storage buffers)
    expect(single.dispatches[0]).toBe(2 * SHAPES.length);
    for (const d of grouped.dispatches) expect(d).toBeLessThanOrEqual(Math.ceil(SHAPES.length / 5));
    // the parameters moved: a step that wrote nothing would fail here
    const start = values(SHAPES[6]![0]!, 7);
    expect(relativeError(grouped.params[6]!, start)).toBeGreaterThan(1e-3);
  });

  it('leaves a parameter shared with another tensor to the per-parameter path, and reads no stale copy', async () => {
    await useBackend('webgpu');
    const before0 = tf.memory().numTensors;
    const a = variable(values(300, 3), [300], 'shared_a');
    const b = variable(values(300, 4), [300], 'shared_b');
    const view = tf.reshape(a, [30, 10]); // shares a's data
    const before = Array.from(await view.data());
    const beforeB = Array.from(await b.data()); // caches b's values on the CPU
    const optimizer = new AdamW([['a', a], ['b', b]]);
    const grads = new Map([[a, tf.ones([300])], [b, tf.ones([300])]] as Array<[tf.Variable, tf.Tensor]>);
    optimizer.applyGradients(grads, 0.1);
    // Adam's first step moves every element by lr (the gradient's sign): -0.1
    const afterA = await a.data();
    const afterB = await b.data();
    for (let i = 0; i < 300; i++) {
      expect(afterA[i]).toBeCloseTo(before[i]! - 0.1, 5);
      expect(afterB[i]).toBeCloseTo(beforeB[i]! - 0.1, 5);
    }
    expect(Array.from(await view.data())).toEqual(before); // the view kept the old values
    tf.dispose([view, ...grads.values(), a, b]);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before0);
  });
});
