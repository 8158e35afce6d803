// The webgpu backend (Dawn; lavapipe in CI, see .ci/run) trains as the cpu backend does: one
// reversible lossAndGradients of a small text model and a small vision model gives the same
// loss and gradients on both, and steps with AdamW leave tf.memory().numTensors flat.
// Where no adapter can be had the suite is reported as skipped, with the reason.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import type { LossAndGradients } from '../src/core/gradients.js';
import { RevColText, type TextConfig } from '../src/text/model.js';
import { AdamW } from '../src/train/optimizer.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS, type VisionConfig } from '../src/vision/presets.js';
import { webgpu } from './helpers/webgpu.js';

interface Model {
  namedParameters(): Array<[string, tf.Variable]>;
}

interface Readout {
  loss: number;
  grads: Map<string, Float32Array>;
}

/** Reads a step's loss and gradients by parameter name (asynchronously, as GPU backends want) and disposes them. */
async function readout(model: Model, result: LossAndGradients): Promise<Readout> {
  const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
  const grads = new Map<string, Float32Array>();
  for (const [v, g] of result.grads) grads.set(names.get(v)!, (await g.data()) as Float32Array);
  const loss = (await result.loss.data())[0]!;
  result.loss.dispose();
  result.grads.forEach((g) => g.dispose());
  return { loss, grads };
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

/** Same loss, and every gradient within 1e-4 of its own largest |value| (1e-6 of the largest of all where it is ~0). */
function expectSame(gpu: Readout, cpu: Readout): void {
  expect(Math.abs(gpu.loss - cpu.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu.loss)));
  expect([...gpu.grads.keys()].sort()).toEqual([...cpu.grads.keys()].sort());
  const overall = Math.max(...[...cpu.grads.values()].map(maxAbs));
  expect(overall).toBeGreaterThan(0);
  for (const [name, want] of cpu.grads) {
    const got = gpu.grads.get(name)!;
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    expect(diff, name).toBeLessThanOrEqual(1e-4 * maxAbs(want) + 1e-6 * overall);
  }
}

/** tf.memory().numTensors after each of `steps` AdamW steps on the current backend. */
async function tensorsPerStep(step: (seed: number) => LossAndGradients, optimizer: AdamW, steps: number): Promise<number[]> {
  const counts: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { loss, grads } = step(100 + s);
    optimizer.applyGradients(grads, 1e-3);
    expect(Number.isFinite((await loss.data())[0])).toBe(true);
    loss.dispose();
    grads.forEach((g) => g.dispose());
    counts.push(tf.memory().numTensors);
  }
  return counts;
}

afterAll(() => releaseGpuBackend());

describe.skipIf(!webgpu.available)(`webgpu backend against cpu (${webgpu.available ? webgpu.adapter : `skipped: ${webgpu.reason}`})`, () => {
  it('a small RevColText: one reversible step matches cpu; AdamW steps leak no tensors', async () => {
    await useBackend('cpu');
    const config: TextConfig = {
      vocabSize: 50, maxLength: 12, hidden: [16, 24], layers: [1, 1], heads: 2, mlpRatio: 2,
      columns: 2, dropout: 0.1, dropPath: 0.1, pooling: 'mean', numLabels: 3,
    };
    const model = new RevColText(config, 7);
    const lengths = [10, 7, 4];
    const inputIds = tf.tensor2d(lengths.map((n, i) => Array.from({ length: 10 }, (_, j) => (j < n ? 1 + ((i * 13 + j * 7) % 49) : 0))), [3, 10], 'int32');
    const attentionMask = tf.tensor2d(lengths.map((n) => Array.from({ length: 10 }, (_, j) => (j < n ? 1 : 0))), [3, 10], 'int32');
    const labels = tf.tensor1d([0, 1, 2], 'int32');
    const step = (seed: number) => model.lossAndGradients({ inputIds, attentionMask, labels }, { seed, mode: 'reversible' });

    const cpu = await readout(model, step(3));
    await useBackend('webgpu'); // the model's variables and the batch move over on first use
    expect(tf.getBackend()).toBe('webgpu');
    const gpu = await readout(model, step(3));
    expectSame(gpu, cpu);

    const optimizer = new AdamW(model);
    const counts = await tensorsPerStep(step, optimizer, 3);
    expect(counts[2]).toBe(counts[0]);
    optimizer.dispose();
    model.dispose();
    tf.dispose([inputIds, attentionMask, labels]);
  });

  it('a small RevColVision: one reversible step matches cpu; AdamW steps leak no tensors', async () => {
    await useBackend('cpu');
    const config: VisionConfig = { ...VISION_PRESETS['revcol-nano-32']!, channels: [8, 12, 16, 20], columns: 2, numClasses: 5, dropPath: 0.2 };
    const model = new RevColVision(config, 5);
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const labels = tf.tensor1d([0, 3], 'int32');
    const step = (seed: number) => model.lossAndGradients(x, labels, { seed, mode: 'reversible' });

    const cpu = await readout(model, step(11));
    await useBackend('webgpu');
    const gpu = await readout(model, step(11));
    expectSame(gpu, cpu);

    const optimizer = new AdamW(model);
    const counts = await tensorsPerStep(step, optimizer, 3);
    expect(counts[2]).toBe(counts[0]);
    optimizer.dispose();
    model.dispose();
    tf.dispose([x, labels]);
  });
});
