import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import type { TrainingMode } from '../src/core/gradients.js';
import { DataParallel } from '../src/train/data-parallel.js';
import { startVisionWorkers, visionShards } from '../src/vision/data-parallel-vision.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS, type VisionConfig } from '../src/vision/presets.js';
import { trainVision } from '../src/vision/train.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { expectSameLossAndGradients } from './helpers/data-parallel.js';
import { oneLineError } from './helpers/errors.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-dp-vision-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const quiet = { progress: false, log: () => {} } as const;

/** Four columns with intermediate supervision: every loss term (CE of four heads, BCE of three decoders) is split. */
const TINY: VisionConfig = {
  ...VISION_PRESETS['revcol-nano-32'], channels: [8, 12], layers: [1, 1], columns: 4, numClasses: 3, dropPath: 0, interSupervision: true, inputSize: 16,
};

/** Moves layer scales and shortcut scales off their initial values, so that every weight matters. */
function perturb(model: RevColVision): void {
  tf.tidy(() => {
    model.namedParameters().forEach(([n, v], i) => {
      if (/gamma|alpha/.test(n)) v.assign(tf.randomUniform(v.shape, 0.3, 1, 'float32', 100 + i));
    });
  });
}

/** The pool's summed shard loss and gradients against the model's own full-batch ones (relative error ≤ 1e-4 per parameter). */
async function compareWithFullBatch(model: RevColVision, pool: DataParallel<unknown>, mode: TrainingMode, images: number): Promise<void> {
  const x = tf.randomNormal([images, 16, 16, 3], 0, 1, 'float32', 11 + images) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: images }, (_, i) => (i * 2 + 1) % 3), 'int32');
  const full = model.lossAndGradients(x, labels, { mode, seed: 5, labelSmoothing: 0.1 });
  const dp = await pool.lossAndGradients(visionShards(x, labels, pool.shards), 5);
  expectSameLossAndGradients(model, full, dp, { nonZero: true });
  tf.dispose([x, labels, full.loss, dp.loss, ...full.grads.values(), ...dp.grads.values()]);
}

describe('vision data-parallel gradients', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  for (const mode of ['reversible', 'plain'] as const) {
    it(`equal the one-thread full-batch gradients (${mode}; 7 images in 3 shards, and 2 in 3: an empty shard)`, async () => {
      const model = new RevColVision(TINY, 3);
      perturb(model);
      const before = tf.memory().numTensors;
      const pool = await startVisionWorkers(model, 3, { mode, labelSmoothing: 0.1 });
      try {
        await compareWithFullBatch(model, pool as DataParallel<unknown>, mode, 7);
        await compareWithFullBatch(model, pool as DataParallel<unknown>, mode, 2);
      } finally {
        await pool.close();
      }
      expect(tf.memory().numTensors).toBe(before);
      model.dispose();
    }, 60_000);
  }

  it('cut a batch into contiguous images with their labels', () => {
    const x = tf.tensor4d(Float32Array.from({ length: 5 * 4 * 4 * 3 }, (_, i) => i), [5, 4, 4, 3]);
    const labels = tf.tensor1d([0, 1, 2, 0, 1], 'int32');
    const shards = visionShards(x, labels, 2);
    expect(shards.map((s) => s.rows)).toEqual([3, 2]);
    expect(Array.from(shards[1]!.data.labels)).toEqual([0, 1]);
    expect(shards[1]!.data.x[0]).toBe(3 * 48);
    expect(shards[1]!.data.x.length).toBe(2 * 48);
    tf.dispose([x, labels]);
  });
});

describe('vision train with workers', () => {
  let config: string;
  beforeAll(async () => {
    await useBackend('wasm');
    config = path.join(work, 'tiny.json');
    // Drop path on: the shards' seeds matter.
    writeFileSync(config, JSON.stringify({ preset: 'revcol-nano-32', channels: [8, 16], layers: [1, 1], dropPath: 0.1, inputSize: 16 }));
  });
  const run = (out: string, workers: number, extra: Record<string, unknown> = {}) => trainVision({
    data: 'mnist', limit: 48, config, epochs: 2, batchSize: 16, lr: 3e-3, out: path.join(work, out), seed: 4, workers, ...quiet, ...extra,
  });
  const losses = (out: string) => readFileSync(path.join(work, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

  it('trains; two runs of the same seed and workers give the same losses; no tensors leak; the workers are closed', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const before = tf.memory().numTensors;
    const a = await run('w2-a', 2);
    expect(tf.memory().numTensors).toBe(before);
    expect(close).toHaveBeenCalledTimes(1);
    const b = await run('w2-b', 2);
    expect(losses('w2-a')).toEqual(losses('w2-b'));
    expect(a.summary.epochs.map((e) => e.accuracy)).toEqual(b.summary.epochs.map((e) => e.accuracy));
    expect(losses('w2-a').every(Number.isFinite)).toBe(true);
    // Another worker count is another run (other drop-path masks), with the same steps.
    const one = await run('w1', 1);
    expect(close).toHaveBeenCalledTimes(2);
    expect(one.summary.epochs.at(-1)!.step).toBe(a.summary.epochs.at(-1)!.step);
    expect(tf.memory().numTensors).toBe(before);
    close.mockRestore();
  }, 60_000);

  it('refuses bad values and other backends in one line', async () => {
    expect(await oneLineError(() => run('bad', 0))).toMatch(/^workers must be a whole number ≥ 1 \(1: one thread\), got 0$/);
    expect(await oneLineError(() => run('bad', 1.5))).toMatch(/^workers must be a whole number ≥ 1.*got 1\.5$/);
    expectOneLineError(await runCliCaptured(['vision', 'train', '--data', 'mnist', '--workers', 'two', '--out', path.join(work, 'cli-bad')]), /--workers must be a whole number ≥ 1/);
    // A GPU-like backend (any but cpu and wasm): refused before any data is read.
    tf.registerBackend('fake-gpu', () => new MathBackendCPU());
    try {
      await tf.setBackend('fake-gpu');
      expect(await oneLineError(() => run('bad', 2))).toMatch(/^workers runs worker threads on the cpu and wasm backends, and this run uses fake-gpu: add --backend wasm \(or cpu\), or leave out workers$/);
    } finally {
      tf.removeBackend('fake-gpu');
      await useBackend('wasm');
    }
  });

  it('CLI: --workers 2 on the wasm backend trains and says so', async () => {
    const r = await runCliCaptured(['vision', 'train', '--data', 'mnist', '--limit', '32', '--config', config, '--epochs', '1', '--batch-size', '16', '--workers', '2', '--backend', 'wasm', '--out', path.join(work, 'cli-w2'), '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/data-parallel: each batch in 2 shards, on the main thread and 1 worker thread/);
  }, 60_000);
});
