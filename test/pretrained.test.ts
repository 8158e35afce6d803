// The pre-trained models shipped in pretrained/: each matches its card, loads with no network,
// and fine-tunes by name; a task that names one starts from it.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';
import { useBackend } from '../src/backends/index.js';
import { loadModelDir } from '../src/train/checkpoint.js';
import { fineTune } from '../src/text/fine-tune.js';
import { readCard, resolveFrom, shippedModelDir, shippedModelNames } from '../src/text/pretrained.js';
import { loadTask } from '../src/text/tasks.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-pretrained-'));
const topics = path.join(work, 'topics.csv');

beforeAll(async () => {
  await useBackend('wasm');
  writeTopics(topics, 24, 5);
});

describe('shipped pre-trained models', () => {
  const names = shippedModelNames();

  it('include spam-mlm, which the spam task starts from', async () => {
    expect(names).toContain('spam-mlm');
    const task = await loadTask('spam');
    expect(task.hyper.from).toBe('spam-mlm');
    expect(task.hyper.pretrainEpochs).toBeUndefined();
  });

  it.each(names)('%s: the weights are the ones its card describes, and load as a masked LM', async (name) => {
    const card = readCard(name);
    expect(card.name).toBe(name);
    const file = path.join(shippedModelDir(name), card.weights.file);
    const bytes = readFileSync(file);
    expect(bytes.length).toBe(card.weights.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(card.weights.sha256);
    // Small enough to ship in the package.
    expect(bytes.length).toBeLessThan(25e6);
    const model = await loadModelDir(shippedModelDir(name));
    try {
      expect(model.meta.objective).toBe('masked-lm');
      let parameters = 0;
      for (const t of model.tensors.values()) parameters += t.size;
      expect(parameters).toBe(card.weights.parameters);
      expect(card.results.perEpochMaskedAccuracy).toHaveLength(Number(card.recipe.options.epochs));
      expect(card.results.maskedAccuracy).toBeGreaterThan(0);
    } finally {
      for (const t of model.tensors.values()) t.dispose();
    }
  });

  it('--from NAME resolves to the shipped folder; a folder of that name here would win', () => {
    expect(resolveFrom('spam-mlm')).toBe(shippedModelDir('spam-mlm'));
    expect(resolveFrom(work)).toBe(work);
    expect(resolveFrom(path.join(work, 'not-there'))).toBe(path.join(work, 'not-there'));
  });

  it('fine-tunes from spam-mlm by name, offline, and keeps its embeddings as the start', async () => {
    const before = tf.memory().numTensors;
    const out = path.join(work, 'from-spam-mlm');
    const r = await fineTune({ train: topics, from: 'spam-mlm', out, epochs: 1, batchSize: 8, progress: false, allowNetwork: false, log: () => {} });
    expect(r.summary.epochs).toHaveLength(1);
    const shipped = await loadModelDir(shippedModelDir('spam-mlm'));
    const tuned = await loadModelDir(out);
    try {
      // Same architecture as the shipped model; the token embeddings moved only a little from it.
      const a = shipped.tensors.get('embeddings.tokens')!;
      const b = tuned.tensors.get('embeddings.tokens')!;
      expect(b.shape).toEqual(a.shape);
      const moved = tf.tidy(() => tf.sub(a, b).abs().max().dataSync()[0]!);
      expect(moved).toBeLessThan(0.05);
      expect(tuned.meta.maxLength).toBeLessThanOrEqual(256);
    } finally {
      for (const t of [...shipped.tensors.values(), ...tuned.tensors.values()]) t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an unknown bare name is one line naming the shipped models', async () => {
    const r = await runCliCaptured(['fine-tune', '--train', topics, '--from', 'no-such-model', '--out', path.join(work, 'x'), '--backend', 'wasm', '--no-progress']);
    expectOneLineError(r, /--from no-such-model: no such folder, and no shipped pre-trained model of that name \(shipped: .*spam-mlm/);
  });
});
