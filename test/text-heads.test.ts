import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTextExamples } from '../src/data/text.js';
import { TextClassifier } from '../src/text/classifier.js';
import { fineTune } from '../src/text/fine-tune.js';
import { averageRanks, multiLabelReport, pearson, regressionReport, spearman, tuneThreshold } from '../src/text/head-metrics.js';
import { RevColText, type TextConfig } from '../src/text/model.js';
import { looksLikeRegression, MultiLabelClassifier, TextRegressor } from '../src/text/text-heads.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { oneLineError } from './helpers/errors.js';
import { multiLabelRows, pairRows, regressionRows, writeHeadTokenizer, writeMultiLabelCsv, writeMultiLabelJsonl, writePairTsv, writeRegressionCsv } from './helpers/head-data.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { relativeError } from './helpers/numerics.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-heads-'));
const tokenizerDir = path.join(work, 'tok');
const TINY = { preset: undefined, config: { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean' as const, maxLength: 32 } };
const quiet = { progress: false, log: () => {} } as const;

beforeAll(async () => {
  await useBackend('cpu');
  writeHeadTokenizer(tokenizerDir);
});

/** max |a - b| / max |b|. */

describe('head metrics, against hand-computed values', () => {
  it('regression: MSE, MAE, Pearson, Spearman (ties ranked by their average)', () => {
    const truth = [1, 2, 3, 4];
    const predicted = [1.5, 2, 2, 5];
    const r = regressionReport(truth, predicted);
    // Errors 0.5, 0, -1, 1: squared 0.25 + 0 + 1 + 1 = 2.25 over 4; absolute 2.5 over 4.
    expect(r.mse).toBeCloseTo(0.5625, 12);
    expect(r.mae).toBeCloseTo(0.625, 12);
    // Pearson by hand: means 2.625 and 2.5; Σdxdy = 5.25, Σdx² = 7.6875, Σdy² = 5.
    expect(r.pearson).toBeCloseTo(5.25 / Math.sqrt(7.6875 * 5), 12);
    expect(pearson(predicted, truth)).toBeCloseTo(r.pearson, 12);
    // Ranks of the predictions: 1, 2.5, 2.5, 4; of the truth 1, 2, 3, 4.
    expect(Array.from(averageRanks(predicted))).toEqual([1, 2.5, 2.5, 4]);
    expect(r.spearman).toBeCloseTo(4.5 / Math.sqrt(4.5 * 5), 12);
    expect(spearman([3, 1, 2], [30, 10, 20])).toBeCloseTo(1, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBe(0);
  });

  it('multi-label: micro/macro F1, subset accuracy, per label, and the tuned threshold', () => {
    const labels = ['a', 'b'];
    const truth = [1, 0, 1, 1, 0, 1];
    const scores = [0.9, 0.2, 0.8, 0.4, 0.6, 0.7];
    const r = multiLabelReport(truth, scores, labels, 0.5);
    // a: tp 2, fp 1 (row 3), fn 0; b: tp 1 (row 3), fp 0, fn 1 (row 2).
    expect(r.perLabel.a).toEqual({ precision: 2 / 3, recall: 1, f1: 0.8, support: 2 });
    expect(r.perLabel.b).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(r.microF1).toBeCloseTo((2 * 3) / (2 * 3 + 1 + 1), 12);
    expect(r.macroF1).toBeCloseTo((0.8 + 2 / 3) / 2, 12);
    expect(r.subsetAccuracy).toBeCloseTo(1 / 3, 12);
    // At 0.35 row 2's b (0.4) is right too, and nothing else changes: micro-F1 6/7 → 8/9.
    expect(tuneThreshold(truth, scores, labels)).toBeLessThanOrEqual(0.4);
    expect(multiLabelReport(truth, scores, labels, tuneThreshold(truth, scores, labels)).microF1).toBeCloseTo(8 / 9, 12);
  });

  it('regression is detected from many distinct or fractional numbers, not from a few whole ones', () => {
    expect(looksLikeRegression(['1', '2', '3', '4', '5'])).toBe(false);
    expect(looksLikeRegression(['0.5', '1', '1'])).toBe(true);
    expect(looksLikeRegression(Array.from({ length: 21 }, (_, i) => String(i)))).toBe(true);
    expect(looksLikeRegression(['1', 'x'])).toBe(false);
  });
});

describe('sentence pairs: encoding', () => {
  it('encodes [CLS] a [SEP] b [SEP] with token types, cut longest-first', async () => {
    const tok = await TextTokenizer.fromFolder(tokenizerDir);
    const [cls, sep] = [tok.library.token_to_id('[CLS]')!, tok.library.token_to_id('[SEP]')!];
    const id = (w: string) => tok.library.token_to_id(w)!;
    const a = 'goal match team goal match team';
    const b = 'song';
    const enc = tok.encodePairs([a, 'goal', a], [b, 'song album', 'song album guitar song album guitar'], 12);
    const row = (i: number, x: Int32Array) => Array.from(x.subarray(i * 12, (i + 1) * 12));
    expect(row(0, enc.ids)).toEqual([cls, ...a.split(' ').map(id), sep, id('song'), sep, 0, 0]);
    expect(row(0, enc.types)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
    expect(row(0, enc.mask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(row(1, enc.ids)).toEqual([cls, id('goal'), sep, id('song'), id('album'), sep, 0, 0, 0, 0, 0, 0]);
    // 6 + 6 pieces into 9 places: a token at a time from the longer, b first on a tie: a keeps 5, b 4.
    expect(row(2, enc.ids)).toEqual([cls, ...a.split(' ').slice(0, 5).map(id), sep, ...'song album guitar song'.split(' ').map(id), sep]);
    expect(row(2, enc.types)).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(enc.truncated).toBe(1);
    // A short text keeps all it has; the long one gets the rest.
    const short = tok.encodePairs(['goal'], ['song album guitar song album guitar song album guitar'], 8);
    expect(Array.from(short.ids)).toEqual([cls, id('goal'), sep, id('song'), id('album'), id('guitar'), id('song'), sep]);
  });
});

describe('reversible backward agrees with plain autodiff for each head', () => {
  const config = (over: Partial<TextConfig>): TextConfig => ({
    vocabSize: 40, maxLength: 12, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 3, dropout: 0.1, dropPath: 0.2, pooling: 'mean', numLabels: 3, ...over,
  });
  const b = 4;
  const t = 10;
  const ids = () => tf.tensor2d(Array.from({ length: b * t }, (_, i) => 1 + ((i * 7) % 39)), [b, t], 'int32');
  const mask = () => tf.tensor2d(Array.from({ length: b * t }, (_, i) => (i % t < t - (i / t | 0) ? 1 : 0)), [b, t], 'int32');
  const types = () => tf.tensor2d(Array.from({ length: b * t }, (_, i) => (i % t >= 4 ? 1 : 0)), [b, t], 'int32');
  const cases: Array<[string, Partial<TextConfig>, () => tf.Tensor, boolean]> = [
    ['regression', { problem: 'regression', numLabels: 1 }, () => tf.tensor1d([0.5, -1, 2, 0], 'float32'), false],
    ['multi-label', { problem: 'multi-label', numLabels: 3 }, () => tf.tensor2d([1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1], [b, 3], 'float32'), false],
    ['pairs, single-label', { segments: 2 }, () => tf.tensor1d([0, 1, 2, 1], 'int32'), true],
    ['pairs, regression', { segments: 2, problem: 'regression', numLabels: 1 }, () => tf.tensor1d([1, 2, 3, 4], 'float32'), true],
  ];
  it.each(cases)('%s', (_name, over, labels, pairs) => {
    const model = new RevColText(config(over), 7);
    spreadShortcutScales(model.columns, 3, 2, (c, l) => 3 * c + l);
    const batch = { inputIds: ids(), attentionMask: mask(), labels: labels(), ...(pairs ? { tokenTypeIds: types() } : {}) };
    const before = tf.memory().numTensors;
    const plain = model.lossAndGradients(batch, { seed: 3, mode: 'plain' });
    const rev = model.lossAndGradients(batch, { seed: 3, mode: 'reversible' });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    expect(rev.grads.size).toBe(plain.grads.size);
    const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
    if (pairs) expect([...plain.grads.keys()].some((v) => names.get(v) === 'embeddings.segments')).toBe(true);
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThanOrEqual(1e-4);
    tf.dispose([plain.loss, rev.loss, ...plain.grads.values(), ...rev.grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(batch));
    model.dispose();
  });

  it('a single-text model has no segment embedding, so its checkpoints load unchanged', () => {
    const single = new RevColText(config({}), 7);
    const pair = new RevColText(config({ segments: 2 }), 7);
    const singleNames = single.namedParameters().map(([n]) => n);
    expect(singleNames).not.toContain('embeddings.segments');
    expect(pair.namedParameters().map(([n]) => n).filter((n) => !singleNames.includes(n))).toEqual(['embeddings.segments']);
    // Same seed, same other weights: the segment table is drawn last.
    const tokens = (m: RevColText) => m.namedParameters().find(([n]) => n === 'embeddings.tokens')![1];
    expect(relativeError(tokens(pair), tokens(single))).toBe(0);
    single.dispose();
    pair.dispose();
  });
});

describe('fineTune with each head', () => {
  it('regression: learns a count, stores mean and std, predicts numbers; --from and --resume', async () => {
    const train = path.join(work, 'reg.csv');
    writeRegressionCsv(train, 150, 1);
    const evalFile = path.join(work, 'reg-eval.csv');
    writeRegressionCsv(evalFile, 40, 2);
    const out = path.join(work, 'reg');
    const logs: string[] = [];
    const r = await fineTune({ train, eval: evalFile, labelColumn: 'score', tokenizer: tokenizerDir, ...TINY, out, epochs: 12, lr: 3e-3, batchSize: 16, mode: 'plain', progress: false, log: (l) => logs.push(l) });
    expect(r.problem).toBe('regression');
    expect(logs.some((l) => /every label of .* is a number, with \d+ distinct values .*regression/.test(l))).toBe(true);
    expect(r.config.numLabels).toBe(1);
    expect(r.target!.mean).toBeCloseTo(2.5, 1);
    const regressor = await TextRegressor.load(out);
    const report = await regressor.evaluateAsync(await readTextExamples(evalFile, { labelColumn: 'score' }));
    expect(report.pearson).toBeGreaterThan(0.9);
    expect(report.mse).toBeLessThan(0.5);
    // The kept epoch's R² (what the epoch line calls accuracy) is 1 - MSE / variance of the evaluation labels.
    const truth = regressionRows(40, 2).map((x) => x.score);
    const mean = truth.reduce((a, x) => a + x, 0) / truth.length;
    const variance = truth.reduce((a, x) => a + (x - mean) ** 2, 0) / truth.length;
    expect(1 - report.mse / variance).toBeCloseTo(r.summary.bestAccuracy, 4);
    const [none, four] = await regressor.predict(['the new was', 'great fine nice great the']);
    expect(none!).toBeLessThan(1.5);
    expect(four!).toBeGreaterThan(3);
    const before = tf.memory().numTensors;
    await regressor.predict(['great a', 'we saw']);
    expect(tf.memory().numTensors).toBe(before);
    expect(await oneLineError(() => TextClassifier.load(out))).toMatch(/holds a regression model .*load it with TextRegressor/);
    regressor.dispose();
    // --from a regressor: same kind and label, the head carries over; --resume continues.
    const again = await fineTune({ train, eval: evalFile, labelColumn: 'score', out: path.join(work, 'reg-from'), from: out, epochs: 1, lr: 1e-5, ...quiet });
    expect(again.from).toEqual({ dir: out, keptHead: true });
    expect(again.summary.bestAccuracy).toBeGreaterThan(0.8);
    const more = await fineTune({ train, eval: evalFile, labelColumn: 'score', out, resume: true, epochs: 13, ...quiet });
    expect(more.summary.epochs).toHaveLength(13);
    expect(more.summary.resumedFromEpoch).toBe(12);
    // Resuming it as another kind of task is refused in one line.
    expect(await oneLineError(() => fineTune({ train, eval: evalFile, labelColumn: 'score', taskType: 'text-classification', out, resume: true, epochs: 14, ...quiet })))
      .toMatch(/^cannot resume: the run in .* trained regression on single texts, and these options train single-label on single texts/);
  }, 120_000);

  it('multi-label: learns label sets, tunes and stores a threshold, reads JSON arrays', async () => {
    const train = path.join(work, 'ml.jsonl');
    writeMultiLabelJsonl(train, 140, 3);
    const evalFile = path.join(work, 'ml-eval.csv');
    writeMultiLabelCsv(evalFile, 42, 4);
    const out = path.join(work, 'ml');
    const r = await fineTune({ train, eval: evalFile, multiLabel: true, tokenizer: tokenizerDir, ...TINY, out, epochs: 20, lr: 3e-3, batchSize: 16, mode: 'reversible', ...quiet });
    expect(r.problem).toBe('multi-label');
    expect(r.labels).toEqual(['food', 'music', 'sport']);
    expect(r.threshold).toBeGreaterThan(0);
    const classifier = await MultiLabelClassifier.load(out);
    expect(classifier.threshold).toBe(r.threshold);
    const report = await classifier.evaluateAsync(await readTextExamples(evalFile, { multiLabel: { separator: '|' } }));
    expect(report.microF1).toBeCloseTo(r.summary.bestAccuracy, 6);
    expect(report.microF1).toBeGreaterThan(0.9);
    expect(report.subsetAccuracy).toBeGreaterThan(0.7);
    const rows = multiLabelRows(14, 11);
    const predicted = await classifier.classify(rows.map((x) => x.text));
    const exact = predicted.filter((p, i) => p.labels.map((l) => l.label).sort().join() === [...rows[i]!.labels].sort().join()).length;
    expect(exact).toBeGreaterThanOrEqual(11);
    for (const p of predicted) {
      // Exactly the labels at or above the threshold, most likely first.
      expect(p.labels.map((l) => l.label).sort()).toEqual(Object.keys(p.probabilities).filter((k) => p.probabilities[k]! >= classifier.threshold).sort());
      expect(p.labels.map((l) => l.score)).toEqual([...p.labels.map((l) => l.score)].sort((x, y) => y - x));
    }
    const before = tf.memory().numTensors;
    await classifier.classify(['song', 'bread']);
    expect(tf.memory().numTensors).toBe(before);
    classifier.dispose();
    await expect(fineTune({ train, multiLabel: true, out: path.join(work, 'ml-ens'), ensemble: 2, ...quiet })).rejects.toThrow(/^ensemble averages .* a multi-label model is trained alone/);
    // --from keeps the head (same labels, same kind) in plain mode; --resume continues.
    const again = await fineTune({ train, eval: evalFile, multiLabel: true, out: path.join(work, 'ml-from'), from: out, epochs: 1, lr: 1e-5, mode: 'plain', ...quiet });
    expect(again.from).toEqual({ dir: out, keptHead: true });
    expect(again.summary.bestAccuracy).toBeGreaterThan(0.85);
    const more = await fineTune({ train, eval: evalFile, multiLabel: true, out, resume: true, epochs: 21, ...quiet });
    expect(more.summary.resumedFromEpoch).toBe(20);
  }, 120_000);

  it('sentence pairs: the segment embedding lets the model read the second text; classify and evaluate take pairs', async () => {
    const train = path.join(work, 'pairs.tsv');
    writePairTsv(train, 160, 5);
    const evalFile = path.join(work, 'pairs-eval.tsv');
    writePairTsv(evalFile, 40, 6);
    const out = path.join(work, 'pairs');
    const r = await fineTune({ train, eval: evalFile, textColumn: 'premise', textPairColumn: 'hypothesis', tokenizer: tokenizerDir, ...TINY, out, epochs: 12, lr: 5e-3, batchSize: 16, mode: 'plain', ...quiet });
    expect(r.pairs).toBe(true);
    expect(r.config.segments).toBe(2);
    const classifier = await TextClassifier.load(out);
    expect(classifier.meta.textPairColumn).toBe('hypothesis');
    const report = await classifier.evaluateAsync(await readTextExamples(evalFile, { textColumn: 'premise', pairColumn: 'hypothesis' }));
    expect(report.accuracy).toBeGreaterThanOrEqual(0.9);
    const rows = pairRows(6, 9);
    const got = await classifier.classify(rows.map((x) => x.a), rows.map((x) => x.b));
    expect(got.map((g) => g.label)).toEqual(rows.map((x) => x.label));
    expect(await oneLineError(() => classifier.classify(['goal']))).toMatch(/trained on sentence pairs: give each text its second text/);
    const before = tf.memory().numTensors;
    await classifier.classify(['goal', 'song'], ['bread', 'album']);
    expect(tf.memory().numTensors).toBe(before);
    classifier.dispose();
    // A single-text model refuses pairs.
    const single = await fineTune({ train, textColumn: 'hypothesis', tokenizer: tokenizerDir, ...TINY, out: path.join(work, 'single'), epochs: 1, ...quiet });
    expect(single.pairs).toBe(false);
    const plain = await TextClassifier.load(path.join(work, 'single'));
    expect(await oneLineError(() => plain.classify(['goal'], ['song']))).toMatch(/trained on single texts, not sentence pairs/);
    plain.dispose();
    // --from the single-text model onto pairs: a fresh segment embedding, the rest carries over.
    const from = await fineTune({ train, textColumn: 'premise', textPairColumn: 'hypothesis', out: path.join(work, 'pairs-from'), from: path.join(work, 'single'), epochs: 1, ...quiet });
    expect(from.config.segments).toBe(2);
  }, 120_000);
});

describe('seed ensembles of a pair classifier', () => {
  it('train, load as one model and evaluate with pairs', async () => {
    const train = path.join(work, 'pairs-ens.tsv');
    writePairTsv(train, 80, 7);
    const out = path.join(work, 'pairs-ens');
    const r = await fineTune({ train, textColumn: 'premise', textPairColumn: 'hypothesis', tokenizer: tokenizerDir, ...TINY, out, epochs: 2, ensemble: 2, ...quiet });
    expect(r.ensemble?.members).toHaveLength(2);
    const classifier = await TextClassifier.load(out);
    expect(classifier.models).toHaveLength(2);
    const report = await classifier.evaluateAsync(await readTextExamples(train, { textColumn: 'premise', pairColumn: 'hypothesis' }));
    expect(report.examples).toBe(80);
    classifier.dispose();
  }, 120_000);
});

describe('bad inputs are one-line errors naming file and line', () => {
  it('a non-numeric regression label, an empty label set, a missing pair column or value', async () => {
    const reg = path.join(work, 'bad-reg.csv');
    writeFileSync(reg, 'text,label\ngoal,1.5\nsong,2.5\nbread,high\n');
    expect(await oneLineError(() => fineTune({ train: reg, taskType: 'regression', out: path.join(work, 'b1'), ...quiet }))).toBe(`${reg}: line 4 has the label "high", which is not a number; regression needs a number per text`);
    const ml = path.join(work, 'bad-ml.jsonl');
    writeFileSync(ml, '{"text": "goal", "label": ["sport"]}\n\n{"text": "song", "label": []}\n');
    expect(await oneLineError(() => fineTune({ train: ml, multiLabel: true, out: path.join(work, 'b2'), ...quiet }))).toMatch(new RegExp(`^${ml}: line 3 has an empty label set`));
    const mlCsv = path.join(work, 'bad-ml.csv');
    writeFileSync(mlCsv, 'text,label\ngoal,sport|music\nsong, | \n');
    expect(await oneLineError(() => readTextExamples(mlCsv, { multiLabel: { separator: '|' } }))).toMatch(new RegExp(`^${mlCsv}: line 3 has an empty label set`));
    const pairs = path.join(work, 'bad-pairs.csv');
    writeFileSync(pairs, 'text,other,label\ngoal,song,a\n"bread\nand more",,b\n');
    expect(await oneLineError(() => readTextExamples(pairs, { pairColumn: 'second' }))).toMatch(/has no text pair column "second" \(columns found: "text", "other", "label"\); name it with textPairColumn/);
    expect(await oneLineError(() => readTextExamples(pairs, { pairColumn: 'other' }))).toBe(`${pairs}: line 4 has no second text in "other" (textPairColumn): every sentence pair needs both texts`);
    expect(await oneLineError(() => fineTune({ train: reg, multiLabel: true, taskType: 'regression', out: path.join(work, 'b3'), ...quiet }))).toMatch(/^multiLabel and taskType regression do not go together/);
  });
});
