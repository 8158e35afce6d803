import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTokenExamples, toConll } from '../src/data/token-data.js';
import { RevColText } from '../src/text/model.js';
import {
  EncodedTokens, fineTuneTokens, normaliseWord, TokenClassificationModel, type TokenBatch, TokenClassifier, WORD_SHAPES, WordEncoder, wordShape, WordVocabulary, WORDS_FILE,
} from '../src/text/token-classification.js';
import { oneLineError } from './helpers/errors.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { writeWordPieceTokenizer } from './helpers/token-data.js';
import { expectFlatTensorsOverSteps, smallConfig } from './helpers/token-steps.js';
import { relativeError } from './helpers/numerics.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-token-words-'));

/** Four rows of lengths 10, 7, 4, 2 (padding 0, masked), word and shape ids, a few scored positions per row, 4 tags. */
function batch(seed: number, words: number, shapes: number): TokenBatch {
  const b = 4;
  const t = 10;
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648);
  const lengths = [10, 7, 4, 2];
  const grid = (f: () => number) => Array.from({ length: b }, (_, i) => Array.from({ length: t }, (_, j) => (j < lengths[i]! ? f() : 0)));
  const positions = [1, 2, 5, 8, 11, 13, 21, 22, 31];
  return {
    inputIds: tf.tensor2d(grid(() => 1 + (next() % 49)), [b, t], 'int32'),
    attentionMask: tf.tensor2d(grid(() => 1), [b, t], 'int32'),
    positions: tf.tensor1d(positions, 'int32'),
    targets: tf.tensor1d(positions.map((p) => p % 4), 'int32'),
    words: { wordIds: tf.tensor2d(grid(() => next() % words), [b, t], 'int32'), shapeIds: tf.tensor2d(grid(() => next() % shapes), [b, t], 'int32') },
  };
}

const disposeBatch = (b: TokenBatch) => tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets, ...(b.words ? [b.words.wordIds, b.words.shapeIds] : [])]);

/** Tagged sentences where capitals decide: a capitalised word is a NAME, the same word lowercased a NOUN. */
const LOWER = ['dog', 'cat', 'park', 'river', 'ball'];
function sentences(count: number, seed: number): { words: string[][]; tags: string[][] } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const words: string[][] = [];
  const tags: string[][] = [];
  for (let i = 0; i < count; i++) {
    const w: string[] = [];
    const t: string[] = [];
    for (let k = 0; k < 5; k++) {
      const word = pick(LOWER);
      if (rnd() < 0.5) {
        w.push(word[0]!.toUpperCase() + word.slice(1));
        t.push('NAME');
      } else {
        w.push(word);
        t.push('NOUN');
      }
      if (k < 4) {
        w.push(rnd() < 0.5 ? 'and' : '1961');
        t.push(w[w.length - 1] === 'and' ? 'CONJ' : 'NUM');
      }
    }
    words.push(w);
    tags.push(t);
  }
  return { words, tags };
}

const tokenizerDir = path.join(work, 'tokenizer');
const trainFile = path.join(work, 'train.conll');
const evalFile = path.join(work, 'eval.conll');

beforeAll(async () => {
  await useBackend('cpu');
  // An uncased vocabulary: "Dog" and "dog" are the same pieces.
  writeWordPieceTokenizer(tokenizerDir, [...LOWER, 'and', '1961', 'rare']);
  const train = sentences(64, 1);
  writeFileSync(trainFile, toConll(train.words, train.tags));
  const evalSet = sentences(16, 2);
  writeFileSync(evalFile, toConll(evalSet.words, evalSet.tags));
});

describe('word features: ids', () => {
  it('word shapes: lower, Capitalised, ALLCAPS, MixedCase, number, digits+letters, punctuation', () => {
    const shape = (w: string) => WORD_SHAPES[wordShape(w)];
    expect(['the', 'hard-fought', 'don\'t'].map(shape)).toEqual(['lower', 'lower', 'lower']);
    expect(['Berra', 'I', 'A', 'Atlanta\'s', 'Über'].map(shape)).toEqual(['Capitalised', 'Capitalised', 'Capitalised', 'Capitalised', 'Capitalised']);
    expect(['NATO', 'U.S.', 'TV'].map(shape)).toEqual(['ALLCAPS', 'ALLCAPS', 'ALLCAPS']);
    expect(['McDonald', 'iPhone'].map(shape)).toEqual(['MixedCase', 'MixedCase']);
    expect(['1961', '3.5', '1,000', '-2', '50%'].map(shape)).toEqual(['number', 'number', 'number', 'number', 'number']);
    expect(['1960s', '3rd', 'B-52', '9/11-ish'].map(shape)).toEqual(['digits+letters', 'digits+letters', 'digits+letters', 'digits+letters']);
    expect([',', '.', '``', '--', '$'].map(shape)).toEqual(['punctuation', 'punctuation', 'punctuation', 'punctuation', 'punctuation']);
    expect(WORD_SHAPES[0]).toBe('special');
    expect(normaliseWord('Year-1961')).toBe('year-0000');
  });

  it('the vocabulary keeps normalised words seen minCount times (most frequent first); others are UNKNOWN; special tokens get 0', async () => {
    const vocab = WordVocabulary.build([['The', 'dog', 'the', 'Cat'], ['the', 'DOG', 'in', '1961'], ['1962']], 2);
    expect(vocab.words).toEqual(['the', 'dog', '0000']);
    expect(vocab.size).toBe(5);
    expect([vocab.id('THE'), vocab.id('dog'), vocab.id('1999'), vocab.id('cat'), vocab.id('zebra')]).toEqual([2, 3, 4, WordVocabulary.UNKNOWN, WordVocabulary.UNKNOWN]);
    expect(WordVocabulary.build([['a', 'b', 'a']], 1).words).toEqual(['a', 'b']);

    const tokenizer = await (await import('../src/text/tokenizer.js')).TextTokenizer.load();
    const enc = new WordEncoder(tokenizer, 'last', vocab);
    const words = ['The', 'unaffable', 'dog', 'said', ','];
    const pieces = words.map((w) => enc.pieces(w).length);
    expect(pieces[1]).toBeGreaterThan(1);
    const row = enc.encode(words, null, 32);
    // [CLS] and [SEP] are 0; every piece of a word carries its word's id and shape.
    const perWord = [2, 1, 3, 1, 1];
    const shapes = [2, 1, 1, 1, 7];
    expect([...row.wordIds!]).toEqual([0, ...perWord.flatMap((id, w) => Array(pieces[w]).fill(id)), 0]);
    expect([...row.shapeIds!]).toEqual([0, ...shapes.flatMap((id, w) => Array(pieces[w]).fill(id)), 0]);
    expect([...row.firstPieces!]).toEqual([1, 2, 2 + pieces[1]!, 3 + pieces[1]!, 4 + pieces[1]!]);
    // Without a vocabulary the rows carry none, and batches no word features.
    expect(new WordEncoder(tokenizer, 'last').encode(words, null, 32).wordIds).toBeUndefined();

    // A batch: padding 0; word dropout turns whole words (all their pieces) to UNKNOWN, seeded.
    const data = new EncodedTokens(enc, [words, ['dog']], null, 32, 'cut');
    const b = data.batch([0, 1]);
    const width = b.inputIds.shape[1];
    const ids = b.words!.wordIds.dataSync();
    expect([...ids.slice(width, 2 * width)]).toEqual([0, 3, 0, ...Array(width - 3).fill(0)]);
    expect([...b.words!.shapeIds.dataSync().slice(width, width + 4)]).toEqual([0, 1, 0, 0]);
    const dropped = data.batch([0, 1], 0.5, 7);
    const d = dropped.words!.wordIds.dataSync();
    const again = data.batch([0, 1], 0.5, 7);
    expect([...again.words!.wordIds.dataSync()]).toEqual([...d]);
    let changed = 0;
    for (let t = 0; t < d.length; t++) {
      if (d[t] !== ids[t]) {
        expect(d[t]).toBe(WordVocabulary.UNKNOWN);
        changed++;
      }
    }
    expect(changed).toBeGreaterThan(0);
    // The unaffable word's pieces are dropped together or not at all.
    const span = [...d.slice(2, 2 + pieces[1]!)];
    expect(new Set(span).size).toBe(1);
    const all = data.batch([0, 1], 0.999999, 3);
    expect([...all.words!.wordIds.dataSync()].filter((x) => x > 1)).toEqual([]);
    expect([...all.words!.shapeIds.dataSync()]).toEqual([...b.words!.shapeIds.dataSync()]);
    for (const x of [b, dropped, again, all]) disposeBatch(x);
  });
});

describe('word features: the model', () => {
  it('a model without them is unchanged: the same parameters and outputs as before, and a seed gives the same other weights with them', () => {
    const plain = new TokenClassificationModel(new RevColText(smallConfig(), 5), 4, 5);
    const withWords = new TokenClassificationModel(new RevColText(smallConfig({ words: 11, wordShapes: WORD_SHAPES.length }), 5), 4, 5);
    const names = plain.namedParameters().map(([n]) => n);
    expect(names.some((n) => n.includes('words') || n.includes('shapes'))).toBe(false);
    const extra = withWords.namedParameters().map(([n]) => n).filter((n) => !names.includes(n));
    expect(extra.sort()).toEqual(['embeddings.shapes', 'embeddings.words']);
    const own = new Map(withWords.namedParameters());
    for (const [n, v] of plain.namedParameters()) expect(relativeError(own.get(n)!, v), n).toBe(0);
    expect(own.get('embeddings.words')!.shape).toEqual([11, 16]);
    expect(own.get('embeddings.shapes')!.shape).toEqual([WORD_SHAPES.length, 16]);

    // Word features change what the model computes; all-zero ids add row 0 everywhere.
    const data = batch(3, 11, WORD_SHAPES.length);
    const { words: _w, ...bare } = data;
    const a = plain.logits(bare);
    const b = withWords.logits(data);
    expect(relativeError(b, a)).toBeGreaterThan(1e-3);
    expect(() => plain.logits(data)).toThrow(/has no word features/);
    expect(() => withWords.logits(bare)).toThrow(/reads word features/);
    tf.dispose([a, b]);
    disposeBatch(data);
    plain.dispose();
    withWords.dispose();
  });

  it('text config: words and wordShapes go together, whole numbers ≥ 2; a context window needs them', async () => {
    expect(await oneLineError(() => new RevColText(smallConfig({ words: 10 })))).toMatch(/words and wordShapes go together/);
    expect(await oneLineError(() => new RevColText(smallConfig({ words: 1, wordShapes: 9 })))).toMatch(/words must be a whole number ≥ 2/);
    expect(await oneLineError(() => new RevColText(smallConfig({ wordContext: 1 })))).toMatch(/wordContext needs word features/);
  });

  it('the context window reads neighbours (zeros past the ends): a row\'s outputs do not depend on its padding', () => {
    const model = new TokenClassificationModel(new RevColText(smallConfig({ words: 7, wordShapes: WORD_SHAPES.length, wordContext: 2, dropout: 0, dropPath: 0 }), 4), 4, 4);
    expect(model.namedParameters().find(([n]) => n === 'embeddings.context.weight')![1].shape).toEqual([4 * 16, 16]);
    const row = (t: number, pad: number) => {
      const ids = [3, 9, 4, 7, 2, ...Array(pad).fill(0)];
      const mask = [1, 1, 1, 1, 1, ...Array(pad).fill(0)];
      const w = [0, 2, 3, 3, 0, ...Array(pad).fill(0)];
      const sh = [0, 1, 2, 2, 0, ...Array(pad).fill(0)];
      return {
        inputIds: tf.tensor2d([ids], [1, t], 'int32'), attentionMask: tf.tensor2d([mask], [1, t], 'int32'), positions: tf.tensor1d([1, 2, 3], 'int32'), targets: tf.tensor1d([0, 1, 2], 'int32'),
        words: { wordIds: tf.tensor2d([w], [1, t], 'int32'), shapeIds: tf.tensor2d([sh], [1, t], 'int32') },
      } as TokenBatch;
    };
    const short = row(5, 0);
    const long = row(9, 4);
    const a = model.logits(short);
    const b = model.logits(long);
    expect(relativeError(b, a)).toBeLessThan(1e-5);
    tf.dispose([a, b]);
    disposeBatch(short);
    disposeBatch(long);
    model.dispose();
  });

  const cases: Array<[number, number[], number[], number]> = [
    [1, [16], [2], 0],
    [2, [16, 24], [1, 1], 0],
    [2, [16, 24], [1, 1], 2],
  ];
  it.each(cases)('reversible backward agrees with plain autodiff: %i columns, widths %j, context window %#, dropout and drop path on', (columns, hidden, layers, context) => {
    const model = new TokenClassificationModel(new RevColText(smallConfig({ columns, hidden, layers, words: 13, wordShapes: WORD_SHAPES.length, ...(context ? { wordContext: context } : {}) }), 7 * columns), 4, 3);
    spreadShortcutScales(model.text.columns, columns, hidden.length, (c, l) => 31 * c + l);
    const data = batch(5 + columns, 13, WORD_SHAPES.length);
    const plain = model.lossAndGradients(data, { seed: 99, mode: 'plain', labelSmoothing: 0.1 });
    const rev = model.lossAndGradients(data, { seed: 99, mode: 'reversible', labelSmoothing: 0.1 });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThanOrEqual(1e-5);
    const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
    expect([...rev.grads.keys()].map((v) => names.get(v)).sort()).toEqual([...plain.grads.keys()].map((v) => names.get(v)).sort());
    expect(plain.grads.size).toBe(model.parameters().length - hidden.length);
    for (const table of ['embeddings.words', 'embeddings.shapes', ...(context ? ['embeddings.context.weight'] : [])]) {
      const g = [...plain.grads].find(([v]) => names.get(v) === table)![1];
      expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!), table).toBeGreaterThan(0);
    }
    for (const [v, g] of plain.grads) expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThanOrEqual(1e-4);
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    disposeBatch(data);
    model.dispose();
  });

  it('keeps tf.memory().numTensors flat over steps and predictions, in both modes', () => {
    const model = new TokenClassificationModel(new RevColText(smallConfig({ words: 7, wordShapes: WORD_SHAPES.length }), 8), 4, 8);
    const data = batch(21, 7, WORD_SHAPES.length);
    expectFlatTensorsOverSteps(model, data);
    disposeBatch(data);
    model.dispose();
  });
});

describe('word features: training, saving, loading', () => {
  const config = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0 };
  it('learn what an uncased vocabulary cannot see (capitals), save words.json, load and predict the same; resume keeps them; --from without them starts them fresh', async () => {
    const out = path.join(work, 'run');
    const result = await fineTuneTokens({
      train: trainFile, eval: evalFile, out, tokenizer: tokenizerDir, epochs: 3, batchSize: 16, lr: 1e-2, maxLength: 32, wordFeatures: true, config, progress: false, log: () => {},
    });
    expect(result.wordFeatures).toEqual({ words: 7, minCount: 2, dropout: 0, context: 2 });
    expect(result.config.words).toBe(9);
    expect(result.config.wordShapes).toBe(WORD_SHAPES.length);
    // The context window is on by default (2 tokens each way).
    expect(result.config.wordContext).toBe(2);
    // NAME against NOUN needs the capital, which only the word shape shows.
    expect(result.summary.bestAccuracy).toBeGreaterThan(0.95);
    const saved = JSON.parse(readFileSync(path.join(out, WORDS_FILE), 'utf8')) as { words: string[]; minCount: number };
    expect(saved.minCount).toBe(2);
    expect([...saved.words].sort()).toEqual(['0000', 'and', ...LOWER].sort());

    const tagger = await TokenClassifier.load(out);
    expect(tagger.vocabulary!.words).toEqual(saved.words);
    const report = await tagger.evaluate(await readTokenExamples(evalFile));
    expect(report.accuracy).toBeCloseTo(result.summary.bestAccuracy, 10);
    const again = await TokenClassifier.load(path.join(out, 'best.safetensors'));
    const text = [['Dog', 'and', 'dog', '1961', 'River']];
    const first = await tagger.classify(text);
    expect(await again.classify(text)).toEqual(first);
    expect(first[0]!.map((p) => p.entity)).toEqual(['NAME', 'CONJ', 'NOUN', 'NUM', 'NAME']);
    const before = tf.memory().numTensors;
    await tagger.classify(['the Cat and a rare dog']);
    expect(tf.memory().numTensors).toBe(before);
    again.dispose();
    tagger.dispose();

    // Resume keeps them (and refuses to drop them).
    expect(await oneLineError(() => fineTuneTokens({ train: trainFile, eval: evalFile, out, epochs: 4, resume: true, wordFeatures: false, progress: false, log: () => {} })))
      .toMatch(/was trained with word features: leave out wordFeatures to resume it$/);
    const resumed = await fineTuneTokens({ train: trainFile, eval: evalFile, out, epochs: 4, resume: true, progress: false, log: () => {} });
    expect(resumed.wordFeatures).toEqual({ words: 7, minCount: 2, dropout: 0, context: 2 });
    expect(resumed.summary.epochs.length).toBe(4);

    // From a model without word features: the tables start fresh, the rest carries over.
    const plainOut = path.join(work, 'plain');
    const plain = await fineTuneTokens({ train: trainFile, eval: evalFile, out: plainOut, tokenizer: tokenizerDir, epochs: 1, batchSize: 16, lr: 1e-2, maxLength: 32, config, wordFeatures: false, progress: false, log: () => {} });
    expect(plain.wordFeatures).toBeNull();
    expect(plain.config.words).toBeUndefined();
    const fromPlain = await fineTuneTokens({ train: trainFile, eval: evalFile, out: path.join(work, 'from-plain'), from: plainOut, wordFeatures: true, epochs: 1, batchSize: 16, lr: 1e-2, progress: false, log: () => {} });
    expect(fromPlain.wordFeatures).toEqual({ words: 7, minCount: 2, dropout: 0, context: 2 });
    // From a model with them: on by default, with its vocabulary; turned off: its tables left behind.
    const fromWords = await fineTuneTokens({ train: trainFile, eval: evalFile, out: path.join(work, 'from-words'), from: out, epochs: 1, batchSize: 16, lr: 1e-3, progress: false, log: () => {} });
    expect(fromWords.notes.some((l) => l.includes(`the word vocabulary of ${out}`))).toBe(true);
    const off = await fineTuneTokens({ train: trainFile, eval: evalFile, out: path.join(work, 'from-off'), from: out, wordFeatures: false, epochs: 1, batchSize: 16, lr: 1e-3, progress: false, log: () => {} });
    expect(off.wordFeatures).toBeNull();
    expect(off.config.words).toBeUndefined();
    expect(await oneLineError(() => fineTuneTokens({ train: trainFile, eval: evalFile, out: path.join(work, 'x'), wordFeatures: false, wordDropout: 0.1, progress: false, log: () => {} })))
      .toMatch(/wordDropout is for word features/);
  }, 60_000);
});
