import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { evaluateVision, formatVisionReport, ImageClassifier } from '../src/vision/classifier.js';
import { PRESET_SAMPLES, defaultEpochs, defaultModelFor, trainVision } from '../src/vision/train.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { flagName } from '../src/train/options.js';
import { AUTO_WORKERS_MIN_EXAMPLES, defaultWorkers } from '../src/train/data-parallel.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'revcol-vision-train-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

beforeAll(async () => {
  await useBackend('wasm');
});

const quiet = { progress: false, log: () => {} };

describe('vision train / eval on MNIST (smoke)', () => {
  it('trains a nano preset on 64 digits, writes the run files, and leaks no tensors', async () => {
    const out = path.join(tempDir(), 'run');
    const before = tf.memory().numTensors;
    const result = await trainVision({ data: 'mnist', limit: 64, preset: 'revcol-nano-32', epochs: 1, batchSize: 32, out, ...quiet });
    expect(tf.memory().numTensors).toBe(before);
    for (const f of ['best.safetensors', 'last.ckpt.safetensors', 'metrics.jsonl', 'curves.png', 'curves.html']) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    const rows = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(1);
    expect(rows[0].accuracy).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(rows[0].loss)).toBe(true);
    expect(result.summary.epochs).toHaveLength(1);

    // The stored meta: family, labels, data source and a config with the data's own normalisation.
    const { metadata } = await readSafetensors(path.join(out, 'best.safetensors'));
    const stored = JSON.parse(metadata.revcol) as { meta: Record<string, any> };
    expect(stored.meta.family).toBe('vision');
    expect(stored.meta.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(stored.meta.data.type).toBe('mnist');
    expect(stored.meta.config.numClasses).toBe(10);
    expect(stored.meta.config.inputSize).toBe(32);
    expect(stored.meta.config.mean[0]).toBeLessThan(0.3); // MNIST's, not ImageNet's 0.485
    expect(stored.meta.augment).toEqual({ pad: 2, flip: false, rotate: 10, scale: 0.1 });

    // --resume continues from the last checkpoint to the new epoch count.
    const resumed = await trainVision({ data: 'mnist', limit: 64, preset: 'revcol-nano-32', epochs: 2, batchSize: 32, out, resume: true, ...quiet });
    expect(resumed.summary.resumedFromEpoch).toBe(1);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    // MNIST's test split chooses nothing: best.safetensors holds the last epoch.
    expect(resumed.summary.bestEpoch).toBe(2);
    expect(JSON.parse((await readSafetensors(path.join(out, 'best.safetensors'))).metadata.revcol).epoch).toBe(2);
    expect(tf.memory().numTensors).toBe(before);

    // Eval from the saved model: accuracy, per-class accuracy, confusion matrix.
    const report = await evaluateVision({ model: out, data: 'mnist', limit: 50 });
    expect(report.count).toBe(50);
    expect(report.perClass).toHaveLength(10);
    expect(report.confusion.flat().reduce((a, b) => a + b, 0)).toBe(50);
    const diagonal = report.confusion.reduce((s, row, i) => s + row[i], 0);
    expect(report.accuracy).toBeCloseTo(diagonal / 50, 10);
    expect(formatVisionReport(report)).toContain('confusion matrix');
    expect(tf.memory().numTensors).toBe(before);

    // The same model through ImageClassifier: the same report, and top-k classes of a tensor batch.
    const classifier = await ImageClassifier.load(out);
    expect(classifier.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(await classifier.evaluate('mnist', { limit: 50 })).toEqual(report);
    const x = tf.randomNormal([3, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const top = await classifier.classify(x, { topK: 3 });
    expect(top).toHaveLength(3);
    const expected = tf.tidy(() => tf.softmax(classifier.model.logits(x)).arraySync() as number[][]);
    top.forEach((row, i) => {
      expect(row).toHaveLength(3);
      const best = expected[i].indexOf(Math.max(...expected[i]));
      expect(row[0]).toEqual({ label: String(best), score: expect.closeTo(expected[i][best], 5) });
      expect(row[0].score).toBeGreaterThanOrEqual(row[1].score);
      expect(row[1].score).toBeGreaterThanOrEqual(row[2].score);
    });
    const wrongSize = tf.zeros([1, 28, 28, 3]) as tf.Tensor4D;
    await expect(classifier.classify(wrongSize)).rejects.toThrow(/^images of 28×28 do not fit this model: give 32×32/);
    await expect(classifier.classify(x, { topK: 0 })).rejects.toThrow(/^topK must be a whole number ≥ 1, got 0$/);
    tf.dispose([x, wrongSize]);
    classifier.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains on every core by default from 1,000 training images on, and says so; --workers 1 keeps one thread', async () => {
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const common = { data: 'mnist', preset: 'revcol-nano-32', epochs: 1, batchSize: 64, progress: false, log };
    await trainVision({ ...common, limit: AUTO_WORKERS_MIN_EXAMPLES, out: path.join(tempDir(), 'run') });
    const cores = defaultWorkers(AUTO_WORKERS_MIN_EXAMPLES);
    const line = lines.find((l) => l.includes('data-parallel'));
    if (cores > 1) expect(line).toMatch(new RegExp(`^revcol: data-parallel: each batch in ${cores} shards, .*\\(the default on \\d+ cores for 1,000 or more training images; --workers 1 for one thread\\)$`));
    else expect(line).toBeUndefined();
    lines.length = 0;
    await trainVision({ ...common, limit: AUTO_WORKERS_MIN_EXAMPLES, workers: 1, out: path.join(tempDir(), 'run') });
    expect(lines.some((l) => l.includes('data-parallel'))).toBe(false);
    // below 1,000 images: one thread without asking
    await trainVision({ ...common, limit: AUTO_WORKERS_MIN_EXAMPLES - 1, out: path.join(tempDir(), 'run') });
    expect(lines.some((l) => l.includes('data-parallel'))).toBe(false);
  }, 120_000);

  it('names options in its errors: as given to the library, or as flags for the CLI', async () => {
    const out = () => path.join(tempDir(), 'run');
    await expect(trainVision({ data: '', out: out(), ...quiet })).rejects.toThrow(/^data is required: give mnist or a folder/);
    await expect(trainVision({ data: 'mnist', limit: 16, preset: 'revcol-nano-32', batchSize: 0, out: out(), ...quiet })).rejects.toThrow(/^batchSize must be a whole number ≥ 1, got 0$/);
    await expect(trainVision({ data: 'mnist', limit: 16, preset: 'revcol-nano-32', ema: 1, out: out(), optionName: flagName, ...quiet })).rejects.toThrow(/^--ema must be in \[0, 1\)/);
    await expect(trainVision({ data: 'mnist', preset: 'revcol-nano-32', config: 'x.json', out: out(), ...quiet })).rejects.toThrow(/^give either preset or config, not both$/);
    await expect(evaluateVision({ model: '', data: 'mnist' })).rejects.toThrow(/^model is required/);
  });

  it('chooses defaults from the data', () => {
    expect(defaultModelFor(28)).toEqual({ preset: 'revcol-nano-32', overrides: {} });
    expect(defaultModelFor(200).preset).toBe('revcol-micro-64');
    expect(defaultEpochs(7996, PRESET_SAMPLES['revcol-nano-32'])).toBe(30);
    expect(defaultEpochs(7996)).toBe(50);
    expect(defaultEpochs(100)).toBe(100);
    expect(defaultEpochs(10_000_000)).toBe(10);
  });
});

async function writeImage(file: string, size: number, rgb: [number, number, number]): Promise<void> {
  const buf = Buffer.alloc(size * size * 3);
  for (let i = 0; i < size * size; i++) buf.set(rgb, i * 3);
  await sharp(buf, { raw: { width: size, height: size, channels: 3 } }).png().toFile(file);
}

describe('vision train on an image folder (smoke)', () => {
  it('skips a corrupt file with a warning, learns two colours, and eval scores the held-out part', async () => {
    const data = tempDir();
    const colours: Record<string, [number, number, number]> = { red: [220, 30, 30], blue: [30, 30, 220] };
    for (const [cls, rgb] of Object.entries(colours)) {
      mkdirSync(path.join(data, cls));
      for (let i = 0; i < 10; i++) {
        const jitter = (v: number) => Math.max(0, Math.min(255, v + ((i * 37) % 40) - 20));
        await writeImage(path.join(data, cls, `${i}.png`), 40, [jitter(rgb[0]), jitter(rgb[1]), jitter(rgb[2])]);
      }
    }
    writeFileSync(path.join(data, 'red', 'corrupt.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x01, 0x02]));
    const warnings: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      warnings.push(String(chunk));
      return true;
    });
    let out: string;
    try {
      out = path.join(tempDir(), 'run');
      const result = await trainVision({ data, preset: 'revcol-nano-32', epochs: 4, batchSize: 8, lr: 3e-3, out, ...quiet });
      expect(result.classNames).toEqual(['blue', 'red']);
      expect(result.summary.bestAccuracy).toBe(1);
    } finally {
      spy.mockRestore();
    }
    expect(warnings.filter((w) => w.includes(path.join(data, 'red', 'corrupt.jpg')))).toHaveLength(1);
    const report = await evaluateVision({ model: out, data });
    expect(report.split).toMatch(/held-out 20%/);
    expect(report.count).toBe(4);
    expect(report.accuracy).toBe(1);

    // Image files through ImageClassifier: one top-k list per file, labels by name.
    const classifier = await ImageClassifier.load(out);
    const [red, blue] = await classifier.classify([path.join(data, 'red', '9.png'), path.join(data, 'blue', '9.png')], { topK: 2 });
    expect(red.map((c) => c.label)).toEqual(['red', 'blue']);
    expect(blue.map((c) => c.label)).toEqual(['blue', 'red']);
    expect(red[0].score + red[1].score).toBeCloseTo(1, 5);
    classifier.dispose();
  });
});
