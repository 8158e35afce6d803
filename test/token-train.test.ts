import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTokenExamples, toConll } from '../src/data/token-data.js';
import { saveWeights } from '../src/train/checkpoint.js';
import { RevColText } from '../src/text/model.js';
import { fineTuneTokens, TokenClassifier, WordEncoder } from '../src/text/token-classification.js';
import { oneLineError } from './helpers/errors.js';
import { writeWordPieceTokenizer } from './helpers/token-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-token-train-'));

/** Each word has one tag; sentences are seeded picks from a few templates. */
const LEXICON: Record<string, string[]> = {
  DET: ['the', 'a', 'every'],
  NOUN: ['dog', 'cat', 'ball', 'park', 'river'],
  VERB: ['sees', 'likes', 'chases', 'finds'],
  ADP: ['in', 'on', 'with', 'near'],
};
const TEMPLATES = [
  ['DET', 'NOUN', 'VERB', 'DET', 'NOUN'],
  ['DET', 'NOUN', 'VERB', 'DET', 'NOUN', 'ADP', 'DET', 'NOUN'],
  ['DET', 'NOUN', 'ADP', 'DET', 'NOUN', 'VERB', 'DET', 'NOUN'],
  ['NOUN', 'VERB', 'NOUN'],
];

function sentences(count: number, seed: number, long = 0): { words: string[][]; tags: string[][] } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const words: string[][] = [];
  const tags: string[][] = [];
  for (let i = 0; i < count; i++) {
    let t = [...pick(TEMPLATES)];
    if (i < long) t = Array.from({ length: 6 }, () => pick(TEMPLATES)).flat(); // ~40 words: more than the max length
    tags.push(t);
    words.push(t.map((tag) => pick(LEXICON[tag]!)));
  }
  return { words, tags };
}

/**
 * A small BERT-style WordPiece tokenizer over the lexicon (tiny vocabulary: fast steps). "chases",
 * "finds" and "likes" are not in it whole: they are two pieces each (chase ##s …).
 */
function writeTinyTokenizer(dir: string): void {
  writeWordPieceTokenizer(dir, ['.', '##s', 'chase', 'find', 'like', ...Object.values(LEXICON).flat().filter((w) => !['chases', 'finds', 'likes'].includes(w))]);
}

const tokenizerDir = path.join(work, 'tokenizer');
const trainFile = path.join(work, 'train.conll');
const evalFile = path.join(work, 'eval.conll');

beforeAll(async () => {
  await useBackend('cpu');
  writeTinyTokenizer(tokenizerDir);
  const train = sentences(96, 1);
  writeFileSync(trainFile, toConll(train.words, train.tags));
  const evalSet = sentences(24, 2, 2);
  writeFileSync(evalFile, toConll(evalSet.words, evalSet.tags));
});

describe('fineTuneTokens and TokenClassifier', () => {
  it('learns tags that are a function of the word, saves, loads and predicts the same', async () => {
    const out = path.join(work, 'run');
    const logs: string[] = [];
    const result = await fineTuneTokens({
      train: trainFile, eval: evalFile, out, tokenizer: tokenizerDir, epochs: 4, batchSize: 16, lr: 5e-3, maxLength: 32,
      config: { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0 },
      progress: false, log: (l) => logs.push(l),
    });
    expect(result.tags).toEqual(['ADP', 'DET', 'NOUN', 'VERB']);
    expect(result.scheme).toBeNull();
    expect(result.sentences).toEqual({ train: 96, eval: 24 });
    expect(result.splitEvalSentences).toBe(2);
    expect(result.summary.epochs).toHaveLength(4);
    const accuracies = result.summary.epochs.map((e) => e.accuracy);
    // Four tags, the commonest about a third of the words: well above chance.
    expect(result.summary.bestAccuracy).toBeGreaterThan(0.9);
    expect(accuracies[accuracies.length - 1]).toBeGreaterThan(accuracies[0]! - 1e-9);

    const tagger = await TokenClassifier.load(out);
    expect(tagger.tags.names).toEqual(result.tags);
    const report = await tagger.evaluate(await readTokenExamples(evalFile));
    // The loaded weights score exactly what the trainer measured for the kept (best) epoch.
    expect(report.accuracy).toBeCloseTo(result.summary.bestAccuracy, 10);
    expect(report.splitSentences).toBe(2);
    expect(report.perTag.NOUN!.support).toBeGreaterThan(0);

    const [fromText, fromWords] = await tagger.classify(['The dog chases a ball in the park.', ['the', 'cat', 'likes', 'every', 'river']]);
    expect(fromText!.map((p) => p.word)).toEqual(['The', 'dog', 'chases', 'a', 'ball', 'in', 'the', 'park', '.']);
    expect(fromText!.slice(0, 8).map((p) => p.entity)).toEqual(['DET', 'NOUN', 'VERB', 'DET', 'NOUN', 'ADP', 'DET', 'NOUN']);
    expect(fromText![1]).toMatchObject({ word: 'dog', index: 1, start: 4, end: 7 });
    expect(fromWords!.map((p) => p.entity)).toEqual(['DET', 'NOUN', 'VERB', 'DET', 'NOUN']);
    expect(fromWords![2]).toMatchObject({ word: 'likes', start: 8, end: 13 });
    for (const p of [...fromText!, ...fromWords!]) expect(p.score).toBeGreaterThan(0.25);

    // A second load predicts the very same scores; predicting leaves no tensors behind.
    const again = await TokenClassifier.load(out);
    expect(await again.classify('the dog sees a cat')).toEqual(await tagger.classify('the dog sees a cat'));
    const before = tf.memory().numTensors;
    await tagger.classify(['a dog', 'the park near the river']);
    expect(tf.memory().numTensors).toBe(before);
    expect(await tagger.classify([''])).toEqual([[]]);
    // "chases" is two pieces in this vocabulary: only the first is scored, and the word is tagged right.
    expect(new WordEncoder(tagger.tokenizer).pieces('chases')).toHaveLength(2);
    again.dispose();
    tagger.dispose();

    // From the trained folder with the same tags: its columns and tagger carry over (a tiny lr keeps its accuracy).
    const from = await fineTuneTokens({ train: trainFile, eval: evalFile, out: path.join(work, 'from'), from: out, epochs: 1, batchSize: 16, lr: 1e-7, progress: false, log: () => {} });
    expect(from.from).toBe(out);
    expect(from.notes.some((l) => l.includes('and its tagger (same tags)'))).toBe(true);
    expect(from.summary.bestAccuracy).toBeGreaterThan(0.9);
  });

  it('scores the last piece of each word when asked, records it, predicts with it and refuses to resume with the other', async () => {
    const out = path.join(work, 'last-piece');
    const result = await fineTuneTokens({
      train: trainFile, eval: evalFile, out, tokenizer: tokenizerDir, epochs: 2, batchSize: 16, lr: 5e-3, maxLength: 32, scoredPiece: 'last',
      config: { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0 },
      progress: false, log: () => {},
    });
    const tagger = await TokenClassifier.load(out);
    expect(tagger.meta.scoredPiece).toBe('last');
    // The loaded tagger encodes as training did: its evaluation is the trainer's last epoch to the digit.
    expect((await tagger.evaluate(await readTokenExamples(evalFile))).accuracy).toBeCloseTo(result.summary.bestAccuracy, 10);
    tagger.dispose();
    expect(await oneLineError(() => fineTuneTokens({ train: trainFile, eval: evalFile, out, tokenizer: tokenizerDir, epochs: 3, resume: true, scoredPiece: 'first', progress: false, log: () => {} })))
      .toMatch(/scored the last piece of each word: leave out scoredPiece to resume it$/);
  });

  it('one-line errors: an evaluation tag the training data lacks (file and line), a folder that is no token classifier', async () => {
    const odd = path.join(work, 'odd.conll');
    writeFileSync(odd, 'the\tDET\ndog\tNOUN\n\na\tDET\ncat\tNUMBER\n');
    expect(await oneLineError(() => fineTuneTokens({ train: trainFile, eval: odd, out: path.join(work, 'odd'), epochs: 1, progress: false, log: () => {} })))
      .toMatch(new RegExp(`odd\\.conll: line 5 has the tag "NUMBER", which the training data does not have`));

    const config = { vocabSize: 40, maxLength: 8, hidden: [8], layers: [1], heads: 2, mlpRatio: 2, columns: 1, dropout: 0, dropPath: 0, pooling: 'mean' as const, numLabels: 2 };
    const classifierDir = path.join(work, 'classifier');
    const model = new RevColText(config);
    await saveWeights(path.join(classifierDir, 'best.safetensors'), model, { family: 'text', config, labels: ['a', 'b'], tokenizer: 'builtin:bert-base-uncased', maxLength: 8 });
    model.dispose();
    expect(await oneLineError(() => TokenClassifier.load(classifierDir))).toMatch(/holds a text classifier \(one label per text\), not a token classifier/);
    expect(await oneLineError(() => fineTuneTokens({ out: path.join(work, 'x') }))).toMatch(/needs training data/);
  });
});
