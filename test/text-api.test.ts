import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeTopics } from './helpers/text-data.js';
import { useBackend } from '../src/backends/index.js';
import { disposeCheckpoint, loadCheckpoint, loadModelDir, saveWeights } from '../src/train/checkpoint.js';
import { lengthGroupedBatches } from '../src/text/encoded.js';
import { chooseMaxLength, fineTune, readTextExamples, RevColText, TextClassifier, TextTokenizer, textClassificationReport } from '../src/index.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-text-api-'));

const trainFile = path.join(work, 'topics.csv');
const evalFile = path.join(work, 'topics-eval.csv');

beforeAll(async () => {
  await useBackend('wasm');
  writeTopics(trainFile, 60, 1);
  writeTopics(evalFile, 24, 2);
});

describe('TextClassifier', () => {
  it('a saved and loaded model predicts the same probabilities', async () => {
    const tokenizer = await TextTokenizer.load();
    const config = {
      vocabSize: tokenizer.vocabSize, maxLength: 24, hidden: [16, 24], layers: [1, 1], heads: 2, mlpRatio: 2,
      columns: 3, dropout: 0.1, dropPath: 0.1, pooling: 'first' as const, numLabels: 3,
    };
    const model = new RevColText(config, 42);
    const dir = path.join(work, 'saved');
    const labels = ['a', 'b', 'c'];
    await saveWeights(path.join(dir, 'best.safetensors'), model, { family: 'text', config, labels, tokenizer: tokenizer.source, maxLength: 24 });
    await tokenizer.save(dir);
    const texts = ['the first text, fairly short', 'a second one that is a good deal longer than the first text and gets cut at twenty four tokens for sure'];
    const enc = tokenizer.encode(texts, 24);
    const expected = model.probabilities(enc.inputIds, enc.attentionMask);
    const classifier = await TextClassifier.load(dir);
    const got = classifier.probabilities(texts);
    const want = expected.dataSync();
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
    const results = await classifier.classify(texts);
    expect(results).toHaveLength(2);
    results.forEach((r, i) => {
      expect(Object.keys(r.probabilities)).toEqual(labels);
      const row = Array.from(want.slice(i * 3, i * 3 + 3));
      expect(r.label).toBe(labels[row.indexOf(Math.max(...row))]);
      expect(r.score).toBeCloseTo(Math.max(...row), 6);
    });
    // Classifying again allocates nothing that stays behind.
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) await classifier.classify(texts);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([enc.inputIds, enc.attentionMask, expected]);
    classifier.dispose();
    model.dispose();
  });

  it('fineTune writes a model whose evaluation matches the best epoch, and --from keeps or replaces the head', async () => {
    const out = path.join(work, 'ft');
    const logs: string[] = [];
    const result = await fineTune({ train: trainFile, eval: evalFile, out, epochs: 15, lr: 3e-3, progress: false, log: (l) => logs.push(l) });
    expect(result.preset).toBe('text-micro');
    expect(result.labels).toEqual(['music', 'sport']);
    expect(result.labelCounts.train).toEqual({ music: 30, sport: 30 });
    expect(result.summary.epochs).toHaveLength(15);
    const classifier = await TextClassifier.load(out);
    const report = classifier.evaluate(await readTextExamples(evalFile));
    expect(report.accuracy).toBeCloseTo(result.summary.bestAccuracy, 10);
    expect(report.accuracy).toBeGreaterThanOrEqual(0.9);
    classifier.dispose();

    // Same labels: the head carries over, and so does the accuracy before any new step.
    const again = await fineTune({ train: trainFile, eval: evalFile, out: path.join(work, 'ft-same'), from: out, epochs: 1, lr: 1e-5, progress: false, log: (l) => logs.push(l) });
    expect(again.from).toEqual({ dir: out, keptHead: true });
    expect(again.summary.bestAccuracy).toBeGreaterThanOrEqual(0.9);
    // New labels: a new head over the same columns.
    const three = path.join(work, 'three.csv');
    writeTopics(three, 45, 3, ['sport', 'music', 'food']);
    const other = await fineTune({ train: three, out: path.join(work, 'ft-new'), from: out, epochs: 1, progress: false, log: (l) => logs.push(l) });
    expect(other.from).toEqual({ dir: out, keptHead: false });
    expect(other.config.numLabels).toBe(3);
    expect(other.config.hidden).toEqual(result.config.hidden);
    expect(logs.some((l) => l.includes('new labels, new classification head'))).toBe(true);
  });

  it('fineTune with a weight average evaluates and saves the averaged weights; bad values are one-line errors', async () => {
    const out = path.join(work, 'ft-ema');
    // One epoch, so that best.safetensors and the last checkpoint come from the same step.
    const result = await fineTune({ train: trainFile, eval: evalFile, out, epochs: 1, lr: 3e-3, ema: 0.5, labelSmoothing: 0.1, progress: false, log: () => {} });
    const ckpt = await loadCheckpoint(path.join(out, 'last.ckpt.safetensors'));
    expect(ckpt.average?.updates).toBeGreaterThan(0);
    // best.safetensors holds the average (what was evaluated), not the raw weights of the last step.
    const best = await loadModelDir(out);
    const differs = [...ckpt.weights].some(([name, raw]) => tf.tidy(() => tf.max(tf.abs(tf.sub(raw, best.tensors.get(name)!))).dataSync()[0]) > 0);
    const averaged = [...ckpt.average!.tensors].every(([name, avg]) => tf.tidy(() => tf.max(tf.abs(tf.sub(avg, best.tensors.get(name)!))).dataSync()[0]) === 0);
    expect(result.summary.bestEpoch).toBe(1);
    expect(differs).toBe(true);
    expect(averaged).toBe(true);
    disposeCheckpoint(ckpt);
    best.tensors.forEach((t) => t.dispose());
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), ema: 1, progress: false, log: () => {} })).rejects.toThrow(/^ema must be in \[0, 1\)/);
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), labelSmoothing: -0.1, progress: false, log: () => {} })).rejects.toThrow(/^labelSmoothing must be in \[0, 1\)/);
  });
  it('fineTune --input-masking corrupts training batches only, reproducibly; bad values are one-line errors', async () => {
    const run = (dir: string, inputMasking: number) =>
      fineTune({ train: trainFile, eval: evalFile, out: path.join(work, dir), epochs: 1, lr: 3e-3, seed: 5, inputMasking, progress: false, log: () => {} });
    const [clean, noisy, again] = [await run('ft-im0', 0), await run('ft-im1', 0.3), await run('ft-im2', 0.3)];
    // The noise changes the training trajectory; the same seed gives the same one.
    expect(noisy.summary.epochs[0]!.loss).not.toBe(clean.summary.epochs[0]!.loss);
    expect(again.summary.epochs[0]!.loss).toBe(noisy.summary.epochs[0]!.loss);
    const before = tf.memory().numTensors;
    const classifier = await TextClassifier.load(path.join(work, 'ft-im1'));
    // Classifying is never noisy.
    expect(Array.from(classifier.probabilities(['a b c d e f']))).toEqual(Array.from(classifier.probabilities(['a b c d e f'])));
    classifier.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), inputMasking: 1, progress: false, log: () => {} })).rejects.toThrow(/^inputMasking must be in \[0, 1\)/);
  });
});

describe('helpers', () => {
  it('keep last: best.safetensors holds the last epoch whatever the evaluation says', async () => {
    const out = path.join(work, 'ft-last');
    const result = await fineTune({ train: trainFile, eval: evalFile, out, epochs: 3, lr: 3e-3, keep: 'last', progress: false, log: () => {} });
    expect(result.keep).toBe('last');
    expect(result.summary.bestEpoch).toBe(3);
    expect(result.summary.bestAccuracy).toBe(result.summary.epochs[2]!.accuracy);
    const ckpt = await loadCheckpoint(path.join(out, 'last.ckpt.safetensors'));
    const best = await loadModelDir(out);
    expect(best.epoch).toBe(3);
    const same = [...ckpt.weights].every(([name, w]) => tf.tidy(() => tf.max(tf.abs(tf.sub(w, best.tensors.get(name)!))).dataSync()[0]) === 0);
    expect(same).toBe(true);
    disposeCheckpoint(ckpt);
    best.tensors.forEach((t) => t.dispose());
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), keep: 'first' as 'best', progress: false, log: () => {} })).rejects.toThrow('keep must be best or last, got first');
  });

  it('collapseRuns: recorded with the model and applied whenever it classifies', async () => {
    const out = path.join(work, 'ft-runs');
    await fineTune({ train: trainFile, eval: evalFile, out, epochs: 1, collapseRuns: 2, progress: false, log: () => {} });
    const classifier = await TextClassifier.load(out);
    expect(classifier.meta.collapseRuns).toBe(2);
    const [long, short] = [classifier.probabilities(['goal ______________ match !!!!!!']), classifier.probabilities(['goal __ match !!'])];
    expect(Array.from(long)).toEqual(Array.from(short));
    classifier.dispose();
    const plain = await TextClassifier.load(path.join(work, 'ft-ema'));
    expect(plain.meta.collapseRuns).toBeUndefined();
    expect(Array.from(plain.probabilities(['goal ______________ match !!!!!!']))).not.toEqual(Array.from(plain.probabilities(['goal __ match !!'])));
    plain.dispose();
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), collapseRuns: 1.5, progress: false, log: () => {} })).rejects.toThrow('collapseRuns must be a whole number ≥ 0 (0: off), got 1.5');
  });

  it('chooseMaxLength covers most texts and respects the cap', async () => {
    const tokenizer = await TextTokenizer.load();
    const texts = Array.from({ length: 40 }, (_, i) => 'word '.repeat(5 + i));
    const chosen = chooseMaxLength(tokenizer, texts, 512);
    const counts = tokenizer.countTokens(texts).sort((a, b) => a - b);
    expect(chosen % 32).toBe(0);
    expect(chosen).toBeGreaterThanOrEqual(counts[Math.floor(counts.length * 0.95)]);
    expect(chooseMaxLength(tokenizer, texts, 20)).toBe(20);
  });

  it('lengthGroupedBatches: every text once per epoch, similar lengths together, seeded', () => {
    const lengths = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 300);
    const batches = lengthGroupedBatches(lengths, 16, 5);
    expect(batches.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    expect(lengthGroupedBatches(lengths, 16, 5)).toEqual(batches);
    expect(lengthGroupedBatches(lengths, 16, 6)).not.toEqual(batches);
    // Padding inside batches is far below that of random batches.
    const waste = (bs: number[][]) => bs.reduce((sum, b) => sum + b.reduce((w, i) => w + Math.max(...b.map((j) => lengths[j])) - lengths[i], 0), 0);
    const random = Array.from({ length: Math.ceil(1000 / 16) }, (_, k) => Array.from({ length: 16 }, (_, j) => (k * 16 + j) * 7 % 1000).slice(0, Math.min(16, 1000 - k * 16)));
    expect(waste(batches)).toBeLessThan(waste(random) / 5);
  });

  it('textClassificationReport: precision, recall, F1 and confusion', () => {
    const r = textClassificationReport([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ['x', 'y', 'z']);
    expect(r.accuracy).toBeCloseTo(4 / 6, 10);
    expect(r.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    expect(r.perClass.y.precision).toBeCloseTo(2 / 3, 10);
    expect(r.perClass.y.recall).toBe(1);
    expect(r.perClass.z.f1).toBeCloseTo(2 / 3, 10);
    expect(r.macroF1).toBeCloseTo((0.5 + 0.8 + 2 / 3) / 3, 10);
  });
});
