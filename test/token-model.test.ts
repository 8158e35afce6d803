import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { RevColText } from '../src/text/model.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { EncodedTokens, IGNORE_INDEX, splitWords, TokenClassificationModel, type TokenBatch, WordEncoder } from '../src/text/token-classification.js';
import { oneLineError } from './helpers/errors.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { expectFlatTensorsOverSteps, smallConfig } from './helpers/token-steps.js';
import { relativeError } from './helpers/numerics.js';

/** Four rows of lengths 10, 7, 4, 2 (padding 0, masked), a few scored positions per row, 4 tags. */
function batch(seed: number): TokenBatch {
  const b = 4;
  const t = 10;
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648);
  const lengths = [10, 7, 4, 2];
  const ids = Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, j) => (j < lengths[i]! ? 1 + (next() % 49) : 0)));
  const mask = Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, j) => (j < lengths[i]! ? 1 : 0)));
  const positions = [1, 2, 5, 8, 11, 13, 21, 22, 31];
  return {
    inputIds: tf.tensor2d(ids, [b, t], 'int32'),
    attentionMask: tf.tensor2d(mask, [b, t], 'int32'),
    positions: tf.tensor1d(positions, 'int32'),
    targets: tf.tensor1d(positions.map((p) => p % 4), 'int32'),
  };
}

const disposeBatch = (b: TokenBatch) => tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets]);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('word encoding', () => {
  it('first pieces carry the tags, later pieces and [CLS]/[SEP] are IGNORE_INDEX; long sentences are cut or windowed', async () => {
    const tokenizer = await TextTokenizer.load();
    const enc = new WordEncoder(tokenizer);
    const cls = tokenizer.library.token_to_id('[CLS]')!;
    const sep = tokenizer.library.token_to_id('[SEP]')!;
    expect(enc.prefix).toEqual([cls]);
    expect(enc.suffix).toEqual([sep]);
    const words = ['The', 'unaffable', 'jury', 'said'];
    const pieces = words.map((w) => [...enc.pieces(w)]);
    expect(pieces[1]!.length).toBeGreaterThan(1); // un ##aff ##able
    const row = enc.encode(words, [0, 1, 2, 3], 32);
    expect([...row.ids]).toEqual([cls, ...pieces.flat(), sep]);
    const expected: number[] = [IGNORE_INDEX];
    pieces.forEach((p, w) => p.forEach((_, k) => expected.push(k === 0 ? w : IGNORE_INDEX)));
    expected.push(IGNORE_INDEX);
    expect([...row.labels]).toEqual(expected);
    expect([...row.wordStarts]).toEqual([1, 2, 2 + pieces[1]!.length, 3 + pieces[1]!.length]);
    expect(row.cutWords).toBe(0);

    // scoredPiece 'last': each word's last piece carries its tag instead (its ending: ##able).
    const last = new WordEncoder(tokenizer, 'last').encode(words, [0, 1, 2, 3], 32);
    expect([...last.ids]).toEqual([...row.ids]);
    const expectedLast: number[] = [IGNORE_INDEX];
    pieces.forEach((p, w) => p.forEach((_, k) => expectedLast.push(k === p.length - 1 ? w : IGNORE_INDEX)));
    expectedLast.push(IGNORE_INDEX);
    expect([...last.labels]).toEqual(expectedLast);
    expect([...last.wordStarts]).toEqual([1, 1 + pieces[1]!.length, 2 + pieces[1]!.length, 3 + pieces[1]!.length]);
    // Cut inside a word: the last piece kept is scored.
    expect([...new WordEncoder(tokenizer, 'last').encode(words, [0, 1, 2, 3], 5).wordStarts]).toEqual([1, 3]);

    // Cut: room for 3 pieces after [CLS] and before [SEP]: "The" and the first two pieces of "unaffable" stay.
    const cut = enc.encode(words, [0, 1, 2, 3], 5);
    expect(cut.ids.length).toBe(5);
    expect(cut.ids[4]).toBe(sep);
    expect([...cut.wordStarts]).toEqual([1, 2]);
    expect(cut.cutWords).toBe(2);
    const data = new EncodedTokens(enc, [words, ['said']], [Int32Array.of(0, 1, 2, 3), Int32Array.of(3)], 5, 'cut');
    expect([data.size, data.cutSentences, data.cutWords]).toEqual([2, 1, 2]);

    // Windows: every word in some row, whole words per row.
    const split = new EncodedTokens(enc, [words], [Int32Array.of(0, 1, 2, 3)], 2 + pieces[1]!.length + 1, 'split');
    expect(split.splitSentences).toBe(1);
    expect(split.rowFirstWord).toEqual([0, 2]);
    expect(split.rows.map((r) => r.wordStarts.length)).toEqual([2, 2]);
    const b = split.batch([0, 1]);
    const width = b.inputIds.shape[1];
    expect([...b.positions.dataSync()]).toEqual([1, 2, width + 1, width + 2]);
    expect([...b.targets.dataSync()]).toEqual([0, 1, 2, 3]);
    disposeBatch(b);

    expect(await oneLineError(() => enc.encode(words, null, 2))).toMatch(/max length 2 leaves no room for a word next to the 2 special tokens/);
  });

  it('splitWords keeps inner apostrophes, hyphens and periods, and cuts off punctuation, with character offsets', () => {
    expect(splitWords('Atlanta\'s hard-fought race, 3.5 points.')).toEqual([
      { word: 'Atlanta\'s', start: 0, end: 9 },
      { word: 'hard-fought', start: 10, end: 21 },
      { word: 'race', start: 22, end: 26 },
      { word: ',', start: 26, end: 27 },
      { word: '3.5', start: 28, end: 31 },
      { word: 'points', start: 32, end: 38 },
      { word: '.', start: 38, end: 39 },
    ]);
  });
});

describe('token-classification head: reversible backward agrees with plain autodiff', () => {
  const cases: Array<[number, number[], number[]]> = [
    [1, [16], [2]],
    [2, [16, 24], [1, 1]],
    [3, [16, 16, 24], [1, 1, 1]],
  ];
  it.each(cases)('%i columns, widths %j, blocks %j, dropout and drop path on', (columns, hidden, layers) => {
    const model = new TokenClassificationModel(new RevColText(smallConfig({ columns, hidden, layers }), 7 * columns), 4, 3);
    spreadShortcutScales(model.text.columns, columns, hidden.length, (c, l) => 31 * c + l);
    const data = batch(5 + columns);
    const plain = model.lossAndGradients(data, { seed: 99, mode: 'plain', labelSmoothing: 0.1 });
    const rev = model.lossAndGradients(data, { seed: 99, mode: 'reversible', labelSmoothing: 0.1 });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
    expect([...rev.grads.keys()].map((v) => names.get(v)).sort()).toEqual([...plain.grads.keys()].map((v) => names.get(v)).sort());
    // Every weight of the tagging model but column 0's shortcut scales gets a gradient, the tagger's included.
    expect(plain.grads.size).toBe(model.parameters().length - hidden.length);
    expect([...plain.grads.keys()].some((v) => names.get(v) === 'tagger.classifier.weight')).toBe(true);
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThanOrEqual(1e-4);
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    disposeBatch(data);
    model.dispose();
  });

  it('the loss is the mean cross-entropy over the scored positions alone (first pieces), in any order', () => {
    const model = new TokenClassificationModel(new RevColText(smallConfig({ dropout: 0, dropPath: 0 }), 1), 4, 1);
    const data = batch(3);
    const lossOf = (b: TokenBatch) => {
      const r = model.lossAndGradients(b, { seed: 1, mode: 'reversible' });
      const v = r.loss.dataSync()[0]!;
      r.loss.dispose();
      r.grads.forEach((g) => g.dispose());
      return v;
    };
    const base = lossOf(data);
    // Without dropout the training loss is the eval-mode cross-entropy at the scored positions.
    const expected = tf.tidy(() => {
      const logits = model.logits(data);
      const picked = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(data.targets, 4)), 1);
      return -tf.mean(picked).dataSync()[0]!;
    });
    expect(Math.abs(base - expected)).toBeLessThan(1e-5);
    // The same positions and targets in another order: the same mean.
    const perm = [8, 0, 3, 1, 7, 2, 6, 4, 5];
    const pos = data.positions.dataSync();
    const tgt = data.targets.dataSync();
    const shuffled = { ...data, positions: tf.tensor1d(perm.map((i) => pos[i]!), 'int32'), targets: tf.tensor1d(perm.map((i) => tgt[i]!), 'int32') };
    expect(Math.abs(lossOf(shuffled) - base)).toBeLessThan(1e-6);
    // One scored position fewer: a different mean (the others alone).
    const fewer = { ...data, positions: tf.tensor1d([...pos].slice(1), 'int32'), targets: tf.tensor1d([...tgt].slice(1), 'int32') };
    expect(Math.abs(lossOf(fewer) - base)).toBeGreaterThan(1e-5);
    tf.dispose([shuffled.positions, shuffled.targets, fewer.positions, fewer.targets]);
    disposeBatch(data);
    model.dispose();
  });

  it('keeps tf.memory().numTensors flat over steps and predictions, in both modes', () => {
    const model = new TokenClassificationModel(new RevColText(smallConfig(), 8), 4, 8);
    const data = batch(21);
    expectFlatTensorsOverSteps(model, data);
    const probs = model.probabilities(data);
    expect(probs.shape).toEqual([9, 4]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(tf.sum(probs, 1), 1))).dataSync()[0])).toBeLessThan(1e-5);
    probs.dispose();
    disposeBatch(data);
    model.dispose();
  });
});
