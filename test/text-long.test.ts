import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTextExamples } from '../src/data/text.js';
import { predictEncoded, TextClassifier } from '../src/text/classifier.js';
import { chooseTruncation, disposeBatch, EncodedTexts } from '../src/text/encoded.js';
import { fineTune } from '../src/text/fine-tune.js';
import { RevColText, type TextBatch, type TextConfig } from '../src/text/model.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { oneLineError } from './helpers/errors.js';
import { HEAD_WORDS, writeHeadTokenizer } from './helpers/head-data.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { relativeError } from './helpers/numerics.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-long-'));
const tokenizerDir = path.join(work, 'tok');
const CONFIG = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, maxLength: 32 };
const quiet = { progress: false, log: () => {} } as const;
let tokenizer: TextTokenizer;

/** Long texts whose topic word comes last, after many fillers: only a model that reads the end can tell. */
function longRows(count: number): Array<{ text: string; label: string }> {
  return Array.from({ length: count }, (_, i) => {
    const label = i % 2 ? 'sport' : 'music';
    const fill = Array.from({ length: 20 + (i % 7) }, (_, j) => HEAD_WORDS.filler[(i + j) % HEAD_WORDS.filler.length]);
    return { text: [...fill, HEAD_WORDS[label][i % 3]].join(' '), label };
  });
}

function writeCsv(file: string, rows: Array<{ text: string; label: string }>): string {
  writeFileSync(file, `text,label\n${rows.map((r) => `${r.text},${r.label}`).join('\n')}\n`);
  return file;
}

beforeAll(async () => {
  await useBackend('cpu');
  writeHeadTokenizer(tokenizerDir);
  tokenizer = await TextTokenizer.fromFolder(tokenizerDir);
});

describe('head+tail truncation', () => {
  it('keeps [CLS], the first quarter and the last three quarters of the room, and [SEP]; a text that fits is encoded as before', () => {
    const words = Array.from({ length: 30 }, (_, i) => HEAD_WORDS.filler[i % HEAD_WORDS.filler.length]);
    const long = words.join(' ');
    const short = words.slice(0, 5).join(' ');
    const all = tokenizer.library.encode(long).ids;
    const cls = all[0]!;
    const sep = all[all.length - 1]!;
    const inner = all.slice(1, -1);
    expect(inner).toHaveLength(30);
    // maxLength 12: room 10, head 2, tail 8.
    const enc = tokenizer.encodeHeadTail([long, short], 12);
    expect(enc.truncated).toBe(1);
    expect(Array.from(enc.ids.subarray(0, 12))).toEqual([cls, ...inner.slice(0, 2), ...inner.slice(22), sep]);
    expect(Array.from(enc.mask.subarray(0, 12))).toEqual(new Array(12).fill(1));
    const plain = tokenizer.encode([short], 12);
    expect(Array.from(enc.ids.subarray(12))).toEqual(Array.from(plain.inputIds.dataSync()));
    expect(Array.from(enc.mask.subarray(12))).toEqual(Array.from(plain.attentionMask.dataSync()));
    plain.inputIds.dispose();
    plain.attentionMask.dispose();
    // The default stays the head: the same rows as encode.
    const head = new EncodedTexts(tokenizer, [long], 12);
    expect(Array.from(head.ids)).toEqual(all.slice(0, 12));
    expect(Array.from(new EncodedTexts(tokenizer, [long], 12, undefined, undefined, { truncation: 'head+tail' }).ids)).toEqual(Array.from(enc.ids.subarray(0, 12)));
  });

  it('is recorded in the meta; eval after load reproduces the run\'s figures; head+tail reads what head cannot', async () => {
    const train = writeCsv(path.join(work, 'long-train.csv'), longRows(48));
    const evalFile = writeCsv(path.join(work, 'long-eval.csv'), longRows(20));
    const run = (truncation: 'head' | 'head+tail', out: string) => fineTune({
      train, eval: evalFile, tokenizer: tokenizerDir, config: CONFIG, maxLength: 12, epochs: 6, batchSize: 8, lr: 3e-3, keep: 'last', truncation, out, seed: 1, ...quiet,
    });
    const ht = await run('head+tail', path.join(work, 'ht'));
    expect(ht.truncation).toBe('head+tail');
    expect(ht.truncated.train).toBe(48);
    const c = await TextClassifier.load(path.join(work, 'ht'));
    try {
      expect(c.meta.truncation).toBe('head+tail');
      const report = await c.evaluateAsync(await readTextExamples(evalFile));
      expect(report.accuracy).toBeCloseTo(ht.summary.bestAccuracy, 10);
      expect(report.accuracy).toBeGreaterThanOrEqual(0.9);
    } finally {
      c.dispose();
    }
    // Cut to its head, every text is fillers only: no better than chance.
    const head = await run('head', path.join(work, 'head'));
    expect(head.truncation).toBe('head');
    expect(head.summary.bestAccuracy).toBeLessThanOrEqual(0.7);
    const h = await TextClassifier.load(path.join(work, 'head'));
    expect(h.meta.truncation).toBeUndefined();
    h.dispose();
  }, 120_000);

  it('is chosen when no one says: head+tail where most texts are over twice maxLength, head otherwise; a resumed run keeps its own', async () => {
    const texts = longRows(9).map((r) => r.text);
    // 23 to 29 tokens each, [CLS] and [SEP] included: the median (25) is over 2 × 12, under 2 × 13.
    expect(tokenizer.countTokens(texts).sort((a, b) => a - b)[4]).toBe(25);
    expect(chooseTruncation(tokenizer, texts, 12)).toEqual({ truncation: 'head+tail', median: 25 });
    expect(chooseTruncation(tokenizer, texts, 13).truncation).toBe('head');
    expect(chooseTruncation(tokenizer, texts, 16)).toEqual({ truncation: 'head', median: 25 });
    expect(chooseTruncation(tokenizer, [], 12).truncation).toBe('head');

    const train = writeCsv(path.join(work, 'auto-train.csv'), longRows(16));
    const lines: string[] = [];
    const base = { train, eval: train, tokenizer: tokenizerDir, config: CONFIG, epochs: 1, batchSize: 8, progress: false } as const;
    const auto = await fineTune({ ...base, maxLength: 12, out: path.join(work, 'auto'), log: (l: string) => lines.push(l) });
    expect(auto.truncation).toBe('head+tail');
    expect(lines.join('\n')).toMatch(/long texts \(most over 24 tokens, twice the 12 the model reads\): reading .* \(head\+tail\); truncation head keeps the start/);
    const c = await TextClassifier.load(path.join(work, 'auto'));
    expect(c.meta.truncation).toBe('head+tail');
    c.dispose();
    // Shorter texts than that, pairs and windows keep the head; so does a run resumed from one that cut the head.
    expect((await fineTune({ ...base, maxLength: 16, out: path.join(work, 'auto16'), log: () => {} })).truncation).toBe('head');
    expect((await fineTune({ ...base, maxLength: 12, windows: 2, out: path.join(work, 'auto-w'), log: () => {} })).truncation).toBe('head');
    const headRun = path.join(work, 'auto-head');
    await fineTune({ ...base, maxLength: 12, truncation: 'head', out: headRun, log: () => {} });
    expect((await fineTune({ ...base, epochs: 2, resume: true, out: headRun, log: () => {} })).truncation).toBe('head');
  }, 120_000);

  it('refuses sentence pairs and unknown values in one line', async () => {
    const pairs = path.join(work, 'pairs.csv');
    writeFileSync(pairs, 'text,second,label\ngoal team,song album,music\nsong guitar,match goal,sport\n');
    expect(await oneLineError(() => fineTune({ train: pairs, eval: pairs, textPairColumn: 'second', tokenizer: tokenizerDir, config: CONFIG, truncation: 'head+tail', out: path.join(work, 'p'), ...quiet })))
      .toMatch(/truncation head\+tail is for single texts.*textPairColumn/);
    expect(await oneLineError(() => fineTune({ train: pairs, eval: pairs, tokenizer: tokenizerDir, config: CONFIG, truncation: 'tail' as never, out: path.join(work, 'p2'), ...quiet })))
      .toMatch(/truncation must be head or head\+tail/);
  });

  it('CLI: --truncation head+tail trains, says so, and eval reads the same way', async () => {
    const train = writeCsv(path.join(work, 'cli-train.csv'), longRows(24));
    const out = path.join(work, 'cli-ht');
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(CONFIG));
    const ft = await runCliCaptured(['fine-tune', '--train', train, '--eval', train, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '12', '--truncation', 'head+tail', '--epochs', '1', '--out', out, '--no-progress']);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/truncated to 12 tokens \(head\+tail: first quarter and last three quarters kept\): 24 of 24 training texts/);
    const ev = await runCliCaptured(['eval', '--model', out, '--data', train]);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/24 texts, 24 truncated/);
    const pairs = path.join(work, 'cli-pairs.csv');
    writeFileSync(pairs, 'text,second,label\ngoal team,song album,music\nsong guitar,match goal,sport\n');
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', pairs, '--eval', pairs, '--text-pair-column', 'second', '--tokenizer', tokenizerDir, '--config', cfg, '--truncation', 'head+tail', '--out', path.join(work, 'cli-p'), '--no-progress']),
      /--truncation head\+tail is for single texts.*--text-pair-column/);
  }, 60_000);
});

/** A long text of `n` filler words (one token each), `seed` choosing where the fillers start. */
const fillerText = (n: number, seed = 0): string => Array.from({ length: n }, (_, j) => HEAD_WORDS.filler[(seed + j) % HEAD_WORDS.filler.length]).join(' ');

/** max |a - b| / max |b|. */

/** Loss and gradients of `batch` in both modes agree (1e-5 on the loss, 1e-4 per gradient); `check` sees the plain gradients; nothing is left behind. */
function expectReversibleMatchesPlain(model: RevColText, batch: TextBatch, check: (grads: Map<tf.Variable, tf.Tensor>) => void = () => {}): void {
  const before = tf.memory().numTensors;
  const plain = model.lossAndGradients(batch, { seed: 3, mode: 'plain' });
  const rev = model.lossAndGradients(batch, { seed: 3, mode: 'reversible' });
  expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
  expect(rev.grads.size).toBe(plain.grads.size);
  for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g)).toBeLessThanOrEqual(1e-4);
  check(plain.grads);
  tf.dispose([plain.loss, rev.loss, ...plain.grads.values(), ...rev.grads.values()]);
  expect(tf.memory().numTensors).toBe(before);
}

describe('windows', () => {
  const config = (over: Partial<TextConfig> = {}): TextConfig => ({
    vocabSize: tokenizer.vocabSize, maxLength: 12, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean', numLabels: 3, ...over,
  });
  /** The model's outputs for some texts, read as windows. */
  const outputs = (model: RevColText, texts: string[], windows: number): Float32Array => {
    const data = new EncodedTexts(tokenizer, texts, 12, undefined, undefined, { windows });
    const it = predictEncoded(model, data);
    let r = it.next();
    while (!r.done) r = it.next((r.value as tf.Tensor).dataSync() as Float32Array);
    return r.value;
  };

  it('cut a long text into windows half a window apart, the last ending at the text\'s end, at most N, never across texts', () => {
    const long = fillerText(27);
    const all = tokenizer.library.encode(long).ids;
    const [cls, sep] = [all[0]!, all[all.length - 1]!];
    const inner = all.slice(1, -1);
    // maxLength 12: 10 text tokens a window, stride 5; starts 0, 5, 10, 15 and 17 (27 - 10).
    const enc = tokenizer.encodeWindows([long, 'goal team', long], 12, 8);
    expect(Array.from(enc.first)).toEqual([0, 5, 6, 11]);
    const row = (k: number) => Array.from(enc.ids.subarray(k * 12, (k + 1) * 12));
    [0, 5, 10, 15, 17].forEach((s, k) => expect(row(k)).toEqual([cls, ...inner.slice(s, s + 10), sep]));
    expect(Array.from(enc.covered)).toEqual([27, 2, 27]);
    expect(Array.from(enc.tokens)).toEqual([27, 2, 27]);
    // The short text is one window, as encode gives it.
    const plain = tokenizer.encode(['goal team'], 12);
    expect(row(5)).toEqual(Array.from(plain.inputIds.dataSync()));
    expect(Array.from(enc.mask.subarray(60, 72))).toEqual(Array.from(plain.attentionMask.dataSync()));
    tf.dispose([plain.inputIds, plain.attentionMask]);
    // The cap: 3 windows, starts 0, 5, 10, covering 20 of the 27 tokens.
    const capped = new EncodedTexts(tokenizer, [long, 'goal team', fillerText(100)], 12, undefined, undefined, { windows: 3 });
    expect(Array.from(capped.first!)).toEqual([0, 3, 4, 7]);
    expect(capped.truncated).toBe(2);
    expect(capped.coverage).toEqual({ covered: 20 + 2 + 20, tokens: 27 + 2 + 100 });
    // A batch's weights average each text's own windows only.
    const batch = capped.batch([0, 1]);
    expect(batch.inputIds.shape).toEqual([4, 12]);
    expect(Array.from(batch.windowWeights!.dataSync())).toEqual([1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 1].map(Math.fround));
    disposeBatch(batch);
  });

  it('a text that fits one window is classified exactly as before; a text\'s outputs do not depend on the others in its batch or their padding', () => {
    const model = new RevColText(config(), 3);
    try {
      const short = ['goal team match', 'song album', 'pasta bread dinner today'];
      const before = tf.memory().numTensors;
      const one = outputs(model, short, 1);
      expect(outputs(model, short, 4)).toEqual(one);
      const long = fillerText(40, 2);
      const together = outputs(model, [short[0]!, long, short[1]!, fillerText(23, 5)], 4);
      const alone = [outputs(model, [short[0]!], 4), outputs(model, [long], 4), outputs(model, [short[1]!], 4), outputs(model, [fillerText(23, 5)], 4)];
      alone.forEach((a, i) => {
        for (let c = 0; c < 3; c++) expect(together[i * 3 + c]).toBeCloseTo(a[c]!, 5);
      });
      // The short texts sat in a batch padded to 16 for the long windows: still as alone.
      expect(alone[0]).toEqual(one.subarray(0, 3));
      // A long text's outputs are the mean of its windows' outputs, each read as a text of its own (the classifier is linear).
      const enc = tokenizer.encodeWindows([long], 12, 4);
      const windowTexts = Array.from({ length: 4 }, (_, k) => tokenizer.library.decode(Array.from(enc.ids.subarray(k * 12 + 1, k * 12 + 11))));
      const each = outputs(model, windowTexts, 1);
      for (let c = 0; c < 3; c++) expect(alone[1]![c]).toBeCloseTo((each[c]! + each[3 + c]! + each[6 + c]! + each[9 + c]!) / 4, 5);
      // More windows than the cap changes what a long text reads; fewer windows, fewer tokens.
      expect(Array.from(outputs(model, [long], 2))).not.toEqual(Array.from(alone[1]!));
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });

  it('reversible backward agrees with plain autodiff through the window average; no tensor left behind', () => {
    const model = new RevColText(config({ columns: 3, dropout: 0.1, dropPath: 0.2 }), 7);
    spreadShortcutScales(model.columns, 3, 2, (c, l) => 3 * c + l);
    try {
      const data = new EncodedTexts(tokenizer, [fillerText(30), 'goal team', fillerText(14, 3)], 12, Int32Array.from([0, 1, 2]), undefined, { windows: 4 });
      const batch = data.batch([0, 1, 2]);
      expect(batch.windowWeights!.shape).toEqual([3, 7]);
      expectReversibleMatchesPlain(model, batch);
      disposeBatch(batch);
    } finally {
      model.dispose();
    }
  });

  it('fine-tune reads the whole text in windows: recorded in the meta, the loaded model reproduces the figures; and one-line errors', async () => {
    const train = writeCsv(path.join(work, 'win-train.csv'), longRows(48));
    const evalFile = writeCsv(path.join(work, 'win-eval.csv'), longRows(20));
    const out = path.join(work, 'win');
    const r = await fineTune({
      train, eval: evalFile, tokenizer: tokenizerDir, config: CONFIG, maxLength: 12, epochs: 6, batchSize: 8, lr: 3e-3, keep: 'last', windows: 6, out, seed: 1, ...quiet,
    });
    expect(r.windows).toBe(6);
    expect(r.coverage).toEqual({ train: 1, eval: 1 });
    expect(r.truncated.train).toBe(0);
    const c = await TextClassifier.load(out);
    try {
      expect(c.meta.windows).toBe(6);
      const report = await c.evaluateAsync(await readTextExamples(evalFile));
      expect(report.accuracy).toBeCloseTo(r.summary.bestAccuracy, 10);
      // Predict reads alone what eval read in a batch: the same probabilities.
      const texts = longRows(20).map((row) => row.text);
      const batch = await c.probabilitiesAsync(texts);
      const [alone] = await c.classify(texts[7]!);
      expect(alone!.probabilities.music).toBeCloseTo(batch[7 * 2 + c.labels.names.indexOf('music')]!, 5);
    } finally {
      c.dispose();
    }
    expect(await oneLineError(() => fineTune({ train, eval: evalFile, tokenizer: tokenizerDir, config: CONFIG, windows: 2, truncation: 'head+tail', out: path.join(work, 'w2'), ...quiet })))
      .toMatch(/windows 2 .*truncation: leave out one/);
    expect(await oneLineError(() => fineTune({ train, eval: evalFile, tokenizer: tokenizerDir, config: CONFIG, windows: 0, out: path.join(work, 'w3'), ...quiet })))
      .toMatch(/windows must be a whole number ≥ 1/);
  }, 180_000);

  it('CLI: --windows trains, says how much of the texts it saw; eval and predict read the same way', async () => {
    const train = writeCsv(path.join(work, 'cli-win.csv'), longRows(24));
    const out = path.join(work, 'cli-win');
    const cfg = path.join(work, 'cfg-win.json');
    writeFileSync(cfg, JSON.stringify(CONFIG));
    const ft = await runCliCaptured(['fine-tune', '--train', train, '--eval', train, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '12', '--windows', '2', '--epochs', '1', '--out', out, '--no-progress']);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/read as up to 2 windows of 12 tokens: \d+(\.\d+)?% of the training texts' tokens seen/);
    expect(ft.stdout).toMatch(/longer than 2 windows, read in part: 24 of 24 training texts/);
    const ev = await runCliCaptured(['eval', '--model', out, '--data', train]);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/24 texts, 24 truncated/);
    const pr = await runCliCaptured(['predict', '--model', out, longRows(1)[0]!.text, '--json']);
    expect(pr.code, pr.stderr).toBe(0);
    const pairs = path.join(work, 'cli-pairs-w.csv');
    writeFileSync(pairs, 'text,second,label\ngoal team,song album,music\nsong guitar,match goal,sport\n');
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', pairs, '--eval', pairs, '--text-pair-column', 'second', '--tokenizer', tokenizerDir, '--config', cfg, '--windows', '3', '--out', path.join(work, 'cli-pw'), '--no-progress']),
      /--windows reads long single texts.*--text-pair-column/);
  }, 60_000);
});

describe('window pooling: max and attention', () => {
  const config = (windowPooling: TextConfig['windowPooling'], over: Partial<TextConfig> = {}): TextConfig => ({
    vocabSize: tokenizer.vocabSize, maxLength: 12, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean', numLabels: 3, windowPooling, ...over,
  });
  const texts = () => [fillerText(30), 'goal team', fillerText(14, 3)];
  const assignDisposing = (v: tf.Variable, value: tf.Tensor) => {
    v.assign(value);
    value.dispose();
  };

  /** The logits computed by hand from each window's top level: masked mean after the head's norm, pooled per text by `pool`, then the classifier. */
  function byHand(model: RevColText, pool: (windows: tf.Tensor2D) => tf.Tensor1D): Float32Array {
    const data = new EncodedTexts(tokenizer, texts(), 12, undefined, undefined, { windows: 4 });
    const b = data.batch([0, 1, 2]);
    try {
      return tf.tidy(() => {
        const top = model.topLevelFeatures(b.inputIds, b.attentionMask);
        const x = model.head.norm.forward(top);
        const m = tf.expandDims(tf.cast(b.attentionMask, 'float32'), -1);
        const perWindow = tf.div(tf.sum(tf.mul(x, m), 1), tf.sum(m, 1)) as tf.Tensor2D;
        const first = data.first!;
        const pooled = tf.stack([0, 1, 2].map((i) => pool(tf.slice(perWindow, [first[i]!, 0], [first[i + 1]! - first[i]!, -1]))));
        return model.head.classifier.forward(pooled).dataSync() as Float32Array;
      });
    } finally {
      disposeBatch(b);
    }
  }
  function byModel(model: RevColText): Float32Array {
    const b = new EncodedTexts(tokenizer, texts(), 12, undefined, undefined, { windows: 4 }).batch([0, 1, 2]);
    try {
      return tf.tidy(() => model.logits(b.inputIds, b.attentionMask, undefined, b.windowWeights).dataSync() as Float32Array);
    } finally {
      disposeBatch(b);
    }
  }

  it('max takes each feature\'s largest over the text\'s own windows; attention a softmax of the learned score; one window is unchanged', () => {
    const mean = new RevColText(config(undefined), 5);
    const max = new RevColText(config('max'), 5);
    const attention = new RevColText(config('attention'), 5);
    try {
      const before = tf.memory().numTensors;
      // The same seed draws the same weights: attention adds a zero score, which starts as the mean.
      expect(attention.namedParameters().map(([n]) => n).sort()).toEqual([...mean.namedParameters().map(([n]) => n), 'head.windowScore'].sort());
      const meanLogits = byModel(mean);
      const attentionLogits = byModel(attention);
      meanLogits.forEach((v, i) => expect(attentionLogits[i]).toBeCloseTo(v, 5));
      const maxLogits = byModel(max);
      const maxByHand = byHand(max, (w) => tf.max(w, 0) as tf.Tensor1D);
      maxLogits.forEach((v, i) => expect(v).toBeCloseTo(maxByHand[i]!, 5));
      expect(Array.from(maxLogits.subarray(0, 3))).not.toEqual(Array.from(meanLogits.subarray(0, 3)));
      // The short text is one window: the same under all three poolings, to the bit.
      expect(Array.from(maxLogits.subarray(3, 6))).toEqual(Array.from(meanLogits.subarray(3, 6)));
      // A learned score: softmax over the text's windows.
      const score = attention.head.windowScore!;
      assignDisposing(score, tf.tidy(() => tf.mul(tf.range(0, 16).reshape([16, 1]), 0.3).sub(2)));
      const scored = byModel(attention);
      const scoredByHand = byHand(attention, (w) => tf.tidy(() => tf.squeeze(tf.matMul(tf.softmax(tf.reshape(tf.matMul(w, score), [1, -1])), w), [0]) as tf.Tensor1D));
      scored.forEach((v, i) => expect(v).toBeCloseTo(scoredByHand[i]!, 5));
      expect(Math.abs(scored[0]! - meanLogits[0]!)).toBeGreaterThan(1e-4);
      expect(Array.from(scored.subarray(3, 6))).toEqual(Array.from(meanLogits.subarray(3, 6)));
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      [mean, max, attention].forEach((m) => m.dispose());
    }
  });

  it.each(['max', 'attention'] as const)('%s: reversible backward agrees with plain autodiff; the score learns; no tensor left behind', (pooling) => {
    const model = new RevColText(config(pooling, { columns: 3, dropout: 0.1, dropPath: 0.2 }), 7);
    spreadShortcutScales(model.columns, 3, 2, (c, l) => 3 * c + l);
    if (pooling === 'attention') assignDisposing(model.head.windowScore!, tf.tidy(() => tf.mul(tf.range(0, 16).reshape([16, 1]), 0.1)));
    try {
      const data = new EncodedTexts(tokenizer, texts(), 12, Int32Array.from([0, 1, 2]), undefined, { windows: 4 });
      const batch = data.batch([0, 1, 2]);
      expectReversibleMatchesPlain(model, batch, (grads) => {
        if (pooling === 'attention') expect(tf.tidy(() => tf.max(tf.abs(grads.get(model.head.windowScore!)!)).dataSync()[0]!)).toBeGreaterThan(0);
      });
      disposeBatch(batch);
    } finally {
      model.dispose();
    }
  });

  it('fine-tune and the CLI: --window-pooling is recorded with the model and kept on resume; one-line errors', async () => {
    const train = writeCsv(path.join(work, 'pool-train.csv'), longRows(24));
    const out = path.join(work, 'pool');
    const r = await fineTune({ train, eval: train, tokenizer: tokenizerDir, config: CONFIG, maxLength: 12, epochs: 1, batchSize: 8, windows: 3, windowPooling: 'attention', out, seed: 1, ...quiet });
    const c = await TextClassifier.load(out);
    try {
      expect(c.meta.config.windowPooling).toBe('attention');
      const report = await c.evaluateAsync(await readTextExamples(train));
      expect(report.accuracy).toBeCloseTo(r.summary.bestAccuracy, 10);
    } finally {
      c.dispose();
    }
    expect(await oneLineError(() => fineTune({ train, eval: train, tokenizer: tokenizerDir, config: CONFIG, maxLength: 12, epochs: 2, windows: 3, windowPooling: 'max', resume: true, out, ...quiet })))
      .toMatch(/cannot resume: .* pooled windows by attention: leave out windowPooling/);
    expect(await oneLineError(() => fineTune({ train, eval: train, tokenizer: tokenizerDir, config: CONFIG, windowPooling: 'max', out: path.join(work, 'pool2'), ...quiet })))
      .toMatch(/windowPooling says how a text's windows are pooled: give windows 2 or more/);
    // From the attention model to a mean one: the score is left behind; and back, it starts afresh.
    const meanOut = path.join(work, 'pool-mean');
    await fineTune({ train, eval: train, tokenizer: tokenizerDir, from: out, maxLength: 12, epochs: 1, batchSize: 8, windows: 3, out: meanOut, ...quiet });
    const meanModel = await TextClassifier.load(meanOut);
    try {
      expect(meanModel.meta.config.windowPooling).toBeUndefined();
    } finally {
      meanModel.dispose();
    }
    const cfg = path.join(work, 'cfg-pool.json');
    writeFileSync(cfg, JSON.stringify(CONFIG));
    const cli = await runCliCaptured(['fine-tune', '--train', train, '--eval', train, '--from', meanOut, '--max-length', '12', '--windows', '2', '--window-pooling', 'max', '--epochs', '1', '--out', path.join(work, 'cli-pool'), '--no-progress']);
    expect(cli.code, cli.stderr).toBe(0);
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', train, '--tokenizer', tokenizerDir, '--config', cfg, '--window-pooling', 'median', '--windows', '2', '--out', path.join(work, 'cli-pool2'), '--no-progress']),
      /--window-pooling/);
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', train, '--tokenizer', tokenizerDir, '--config', cfg, '--window-pooling', 'max', '--out', path.join(work, 'cli-pool3'), '--no-progress']),
      /--window-pooling says how a text's windows are pooled: give --windows 2 or more/);
  }, 120_000);
});
