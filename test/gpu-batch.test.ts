/**
 * GPU-sized defaults (src/train/gpu-batch.ts): on cpu and wasm the batch and learning rate are
 * exactly the recipes' as before; on a GPU backend a batch nobody gave grows by the family's
 * factor (capped by the training set), the learning rate follows, and a note says so. The
 * resolution functions take the backend's name, so no GPU is needed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { activeBackendName, useBackend } from '../src/backends/index.js';
import { defaultBatchSize, scaleLr } from '../src/train/gpu-batch.js';
import { flagName, optionAsIs } from '../src/train/options.js';
import { resolveTrainingSettings, type TrainingDefaults } from '../src/text/run-options.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_LR, visionBatchSettings } from '../src/vision/defaults.js';

const CPU_BACKENDS = ['cpu', 'wasm', 'tensorflow', undefined];

describe('vision: visionBatchSettings', () => {
  const mnist = { trainSize: 7996, inputSize: 32 };

  it('on cpu and wasm: batch 64 at lr 5e-3, a given batch scales lr linearly, as before; no note', () => {
    for (const backend of CPU_BACKENDS) {
      expect(visionBatchSettings({}, { backend, ...mnist })).toEqual({ batchSize: DEFAULT_BATCH_SIZE, lr: DEFAULT_LR, note: null });
      expect(visionBatchSettings({ batchSize: 128 }, { backend, ...mnist })).toEqual({ batchSize: 128, lr: 1e-2, note: null });
      expect(visionBatchSettings({ lr: 1e-3 }, { backend, ...mnist })).toEqual({ batchSize: 64, lr: 1e-3, note: null });
    }
    expect(DEFAULT_BATCH_SIZE).toBe(64);
    expect(DEFAULT_LR).toBe(5e-3);
  });

  it('on a GPU backend: batch 256 for small images, lr scaled linearly, and a note naming what to give', () => {
    expect(visionBatchSettings({}, { backend: 'webgpu', ...mnist }, flagName)).toEqual({
      batchSize: 256, lr: 2e-2, note: 'note: on webgpu: batch 256 (lr 2e-2, scaled from 5e-3 at 64); give --batch-size to choose',
    });
    expect(visionBatchSettings({ lr: 1e-3 }, { backend: 'tensorflow-gpu', ...mnist }).note).toBe('note: on tensorflow-gpu: batch 256 (lr 1e-3 as given); give batchSize to choose');
    // A batch given is kept, with no note.
    expect(visionBatchSettings({ batchSize: 32 }, { backend: 'webgpu', ...mnist })).toEqual({ batchSize: 32, lr: 2.5e-3, note: null });
    // 224 px images keep the CPU batch; a small training set caps the batch at a quarter of it, never below 64.
    expect(visionBatchSettings({}, { backend: 'webgpu', trainSize: 50_000, inputSize: 224 })).toEqual({ batchSize: 64, lr: 5e-3, note: null });
    expect(visionBatchSettings({}, { backend: 'webgpu', trainSize: 600, inputSize: 32 })).toMatchObject({ batchSize: 150, lr: 5e-3 * 150 / 64 });
    expect(visionBatchSettings({}, { backend: 'webgpu', trainSize: 100, inputSize: 32 })).toEqual({ batchSize: 64, lr: 5e-3, note: null });
  });
});

describe('text: resolveTrainingSettings with a backend', () => {
  const defaults: TrainingDefaults = { batchSize: 32, epochs: (batch) => Math.round(640 / batch), lr: 1e-3, keep: 'best', trainSize: 10_000 };
  const task = { batchSize: 16, lr: 2e-3 };

  it('on cpu and wasm: the recipe\'s or the task\'s batch and lr, as before, and no note', () => {
    for (const backend of CPU_BACKENDS) {
      expect(resolveTrainingSettings({}, {}, defaults, optionAsIs, backend)).toEqual({
        epochs: 20, batchSize: 32, lr: 1e-3, weightDecay: 0.01, warmupEpochs: 1, labelSmoothing: 0, ema: 0, keep: 'best',
      });
      expect(resolveTrainingSettings({}, task, defaults, optionAsIs, backend)).toEqual({
        epochs: 40, batchSize: 16, lr: 2e-3, weightDecay: 0.01, warmupEpochs: 1, labelSmoothing: 0, ema: 0, keep: 'best',
      });
      // A batch given does not move the learning rate (it never did for text).
      expect(resolveTrainingSettings({ batchSize: 8 }, {}, defaults, optionAsIs, backend)).toMatchObject({ batchSize: 8, lr: 1e-3 });
    }
  });

  it('on a GPU backend: twice the batch, lr by √2, epochs from the batch in force, and a note', () => {
    const gpu = resolveTrainingSettings({}, {}, defaults, flagName, 'webgpu');
    expect(gpu).toMatchObject({ batchSize: 64, epochs: 10, note: 'note: on webgpu: batch 64 (lr 1.41e-3, scaled from 1e-3 at 32); give --batch-size to choose' });
    expect(gpu.lr).toBeCloseTo(1e-3 * Math.SQRT2, 15);
    // The task's batch and lr are the base.
    const fromTask = resolveTrainingSettings({}, task, defaults, optionAsIs, 'tensorflow-gpu');
    expect(fromTask).toMatchObject({ batchSize: 32, note: 'note: on tensorflow-gpu: batch 32 (lr 2.83e-3, scaled from 2e-3 at 16); give batchSize to choose' });
    expect(fromTask.lr).toBeCloseTo(2e-3 * Math.SQRT2, 15);
    // Given values win; a given batch means no note.
    expect(resolveTrainingSettings({ batchSize: 32 }, {}, defaults, optionAsIs, 'webgpu')).toEqual(resolveTrainingSettings({}, {}, defaults, optionAsIs, 'cpu'));
    expect(resolveTrainingSettings({ lr: 5e-4 }, {}, defaults, flagName, 'webgpu')).toMatchObject({ batchSize: 64, lr: 5e-4, note: 'note: on webgpu: batch 64 (lr 5e-4 as given); give --batch-size to choose' });
    // A small training set: at most a quarter of it, never below the recipe's batch.
    expect(resolveTrainingSettings({}, {}, { ...defaults, trainSize: 200 }, optionAsIs, 'webgpu')).toMatchObject({ batchSize: 50 });
    expect(resolveTrainingSettings({}, {}, { ...defaults, trainSize: 100 }, optionAsIs, 'webgpu')).not.toHaveProperty('note');
  });
});

describe('the rule and the backend in force', () => {
  it('defaultBatchSize and scaleLr', () => {
    expect(defaultBatchSize('text', 'webgpu', 32)).toBe(64);
    expect(defaultBatchSize('vision', 'webgpu', 64, undefined, 65)).toBe(64);
    expect(defaultBatchSize('vision', 'webgpu', 64, undefined, 64)).toBe(256);
    expect(defaultBatchSize('vision', 'wasm', 64, 1e6, 32)).toBe(64);
    expect(scaleLr('vision', 5e-3, 64, 256)).toBe(2e-2);
    expect(scaleLr('text', 1e-3, 32, 128)).toBe(2e-3);
  });

  it('activeBackendName names the backend revcol switched to, which the text runs default to', async () => {
    await useBackend('cpu');
    expect(activeBackendName()).toBe('cpu');
    await useBackend('wasm');
    expect(activeBackendName()).toBe('wasm');
    expect(resolveTrainingSettings({}, {}, { batchSize: 32, epochs: () => 3, lr: 1e-3, keep: 'last', trainSize: 10_000 }, optionAsIs)).toMatchObject({ batchSize: 32, lr: 1e-3 });
  });
});
