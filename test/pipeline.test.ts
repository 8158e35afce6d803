import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { toConll } from '../src/data/token-data.js';
import { pipeline } from '../src/pipeline.js';
import { TextClassifier } from '../src/text/classifier.js';
import { MaskFiller } from '../src/text/fill-mask.js';
import { fineTune } from '../src/text/fine-tune.js';
import { pretrain } from '../src/text/pretrain.js';
import { fineTuneTokens, TokenClassifier } from '../src/text/token-classification.js';
import { ImageClassifier } from '../src/vision/classifier.js';
import { trainVision } from '../src/vision/train.js';
import { MultiLabelClassifier, TextRegressor } from '../src/text/text-heads.js';
import { pairRows, writeHeadTokenizer, writeMultiLabelCsv, writeRegressionCsv } from './helpers/head-data.js';
import { nerSentences, writeTinyNerTokenizer, writeWordPieceTokenizer } from './helpers/token-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-pipeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const quiet = { progress: false, log: () => {} };
const tinyColumns = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0 };

// Four sentences sharing no word, each of its own length: a tiny masked LM learns them by heart.
const SENTENCES = ['the cat sat on a mat', 'dogs ran in parks', 'my bird sang at dawn', 'fish swim fast'];
const LM_WORDS = [...new Set(SENTENCES.flatMap((s) => s.split(' ')))];

beforeAll(async () => {
  await useBackend('wasm');
});

describe('pipeline: text-classification', () => {
  const out = path.join(work, 'text');
  beforeAll(async () => {
    const tokenizer = path.join(work, 'text-tok');
    writeWordPieceTokenizer(tokenizer, ['good', 'great', 'fine', 'bad', 'awful', 'poor', 'food', 'service', 'was', 'the']);
    const rows = Array.from({ length: 48 }, (_, i) => {
      const pos = i % 2 === 0;
      const word = (pos ? ['good', 'great', 'fine'] : ['bad', 'awful', 'poor'])[i % 3]!;
      return `"the ${i % 4 < 2 ? 'food' : 'service'} was ${word}",${pos ? 'pos' : 'neg'}`;
    });
    writeFileSync(path.join(work, 'text.csv'), `text,label\n${rows.join('\n')}\n`);
    await fineTune({ train: path.join(work, 'text.csv'), out, tokenizer, config: tinyColumns, epochs: 8, lr: 1e-2, batchSize: 8, maxLength: 16, ...quiet });
  }, 120_000);

  it('gives the classifier\'s best label and probability, top-k on request, one per text for a list', async () => {
    const classifier = await TextClassifier.load(out);
    const [expected] = await classifier.classify(['the food was great']);
    classifier.dispose();
    const before = tf.memory().numTensors;
    const classify = await pipeline('text-classification', out);
    const one = await classify('the food was great');
    expect(one).toHaveLength(1);
    expect(one[0]!.label).toBe(expected!.label);
    expect(one[0]!.score).toBeCloseTo(expected!.score, 6);
    const both = await classify('the food was great', { topK: 2 });
    expect(both.map((r) => r.label).sort()).toEqual(['neg', 'pos']);
    expect(both[0]!.score).toBeGreaterThanOrEqual(both[1]!.score);
    expect(both[0]!.score + both[1]!.score).toBeCloseTo(1, 5);
    const list = (await classify(['the food was great', 'the service was awful'])) as { label: string; score: number }[];
    expect(list.map((r) => r.label)).toEqual(['pos', 'neg']);
    const nested = (await classify(['the food was great', 'the service was awful'], { topK: 2 })) as { label: string }[][];
    expect(nested.map((r) => r.length)).toEqual([2, 2]);
    await expect(classify('x', { topK: 0 })).rejects.toThrow(/^topK must be a whole number ≥ 1, got 0$/);
    classify.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(classify('again')).rejects.toThrow(/^this text-classification pipeline was disposed/);
  });

  it('names the mistakes: an unknown task, no folder, a folder of another kind', async () => {
    await expect(pipeline('summarization' as never, out)).rejects.toThrow(/^unknown pipeline task 'summarization': choose one of text-classification, /);
    await expect(pipeline('text-classification', '')).rejects.toThrow(/needs the folder of a trained model/);
    await expect(pipeline('fill-mask', out)).rejects.toThrow(/holds no masked-LM \(pre-trained\) text model/);
    await expect(pipeline('image-classification', out)).rejects.toThrow();
  });
});

describe('pipeline: text-classification over regression, multi-label and pair models', () => {
  const tokenizer = path.join(work, 'head-tok');
  const runs = { regression: path.join(work, 'reg'), multi: path.join(work, 'multi'), pairs: path.join(work, 'pairs') };
  beforeAll(async () => {
    writeHeadTokenizer(tokenizer);
    const common = { tokenizer, config: tinyColumns, epochs: 2, lr: 3e-3, batchSize: 16, mode: 'plain' as const, ...quiet };
    writeRegressionCsv(path.join(work, 'reg.csv'), 48, 1);
    await fineTune({ train: path.join(work, 'reg.csv'), labelColumn: 'score', out: runs.regression, ...common });
    writeMultiLabelCsv(path.join(work, 'multi.csv'), 48, 2);
    await fineTune({ train: path.join(work, 'multi.csv'), multiLabel: true, out: runs.multi, ...common });
    const rows = pairRows(48, 3);
    writeFileSync(path.join(work, 'pairs.csv'), `premise,hypothesis,label\n${rows.map((r) => `${r.a},${r.b},${r.label}`).join('\n')}\n`);
    await fineTune({ train: path.join(work, 'pairs.csv'), textColumn: 'premise', textPairColumn: 'hypothesis', out: runs.pairs, ...common });
  }, 300_000);

  it('a regression model gives its number as the score of label "value"', async () => {
    const regressor = await TextRegressor.load(runs.regression);
    const expected = await regressor.predict(['great nice the', 'a big']);
    regressor.dispose();
    const score = await pipeline('text-classification', runs.regression);
    const [one] = await score('great nice the');
    expect(one!.label).toBe('value');
    expect(one!.score).toBeCloseTo(expected[0]!, 5);
    expect((await score(['great nice the', 'a big'])).map((r) => (r as { score: number }).score)).toEqual(expected.map((v) => expect.closeTo(v, 5)));
    score.dispose();
  });

  it('a multi-label model gives the labels at or above its threshold (a list each), or the top k', async () => {
    const classifier = await MultiLabelClassifier.load(runs.multi);
    const texts = ['goal match song', 'pasta'];
    const expected = await classifier.classify(texts);
    classifier.dispose();
    const tag = await pipeline('text-classification', runs.multi);
    expect(await tag(texts[0]!)).toEqual(expected[0]!.labels);
    expect(await tag(texts)).toEqual(expected.map((r) => r.labels));
    const top2 = (await tag(texts[0]!, { topK: 2 }));
    expect(top2).toHaveLength(2);
    expect(top2[0]!.score).toBeCloseTo(Math.max(...Object.values(expected[0]!.probabilities)), 6);
    expect((await tag(texts, { topK: 1 })) as { label: string }[]).toHaveLength(2);
    tag.dispose();
  });

  it('a pair model takes {text, text_pair}, as the classifier does with pairs', async () => {
    const classifier = await TextClassifier.load(runs.pairs);
    const rows = pairRows(4, 9);
    const expected = await classifier.classify(rows.map((r) => r.a), rows.map((r) => r.b));
    classifier.dispose();
    const classify = await pipeline('text-classification', runs.pairs);
    const [best] = await classify({ text: rows[0]!.a, text_pair: rows[0]!.b });
    expect(best!.label).toBe(expected[0]!.label);
    expect(best!.score).toBeCloseTo(expected[0]!.score, 6);
    const many = (await classify(rows.map((r) => ({ text: r.a, text_pair: r.b })))) as { label: string }[];
    expect(many.map((r) => r.label)).toEqual(expected.map((r) => r.label));
    await expect(classify([rows[0]!.a, { text: 'x', text_pair: 'y' }] as never)).rejects.toThrow(/^text-classification input must be a string, a \{text, text_pair\} pair/);
    classify.dispose();
  });
});

describe('pipeline: token-classification', () => {
  const out = path.join(work, 'ner');
  beforeAll(async () => {
    const tokenizer = path.join(work, 'ner-tok');
    writeTinyNerTokenizer(tokenizer);
    const train = nerSentences(96, 1);
    writeFileSync(path.join(work, 'ner.conll'), toConll(train.words, train.tags));
    await fineTuneTokens({ train: path.join(work, 'ner.conll'), out, tokenizer, config: tinyColumns, epochs: 3, batchSize: 16, lr: 5e-3, maxLength: 32, ...quiet });
  }, 120_000);

  it('tags each word as TokenClassifier does, leaving out O unless asked', async () => {
    const tagger = await TokenClassifier.load(out);
    const [expected] = await tagger.classify(['john smith visits paris']);
    tagger.dispose();
    const ner = await pipeline('ner', out);
    expect(ner.task).toBe('ner');
    const all = await ner('john smith visits paris', { ignoreLabels: [] });
    expect(all).toEqual(expected);
    const entities = await ner('john smith visits paris');
    expect(entities).toEqual(expected!.filter((w) => w.entity !== 'O'));
    const many = await ner(['john smith visits paris', 'the dog sees mary']);
    expect(many).toHaveLength(2);
    expect(many[0]).toEqual(entities);
    for (const w of many[1]!) expect(w).toMatchObject({ word: expect.any(String), entity: expect.any(String), score: expect.any(Number), start: expect.any(Number), end: expect.any(Number) });
    await expect(ner(42 as never)).rejects.toThrow(/^pipeline input must be a string or a list of strings$/);
    ner.dispose();
  });
});

describe('pipeline: fill-mask', () => {
  const out = path.join(work, 'lm');
  beforeAll(async () => {
    const tokenizer = path.join(work, 'lm-tok');
    writeWordPieceTokenizer(tokenizer, LM_WORDS);
    writeFileSync(path.join(work, 'lm.csv'), `text\n${Array.from({ length: 64 }, (_, i) => SENTENCES[i % SENTENCES.length]).join('\n')}\n`);
    await pretrain({ train: path.join(work, 'lm.csv'), out, tokenizer, config: { ...tinyColumns, hidden: [32, 32] }, epochs: 30, lr: 1e-2, batchSize: 16, maxLength: 12, maskFraction: 0.3, ...quiet });
  }, 180_000);

  it('fills the mask with the word the corpus puts there, shaped as transformers.js results', async () => {
    const before = tf.memory().numTensors;
    const unmask = await pipeline('fill-mask', out);
    const candidates = await unmask('the cat sat on a [MASK]');
    expect(candidates).toHaveLength(5);
    expect(candidates[0]!.token_str).toBe('mat');
    expect(candidates[0]!.sequence).toBe('the cat sat on a mat');
    for (let k = 1; k < candidates.length; k++) expect(candidates[k]!.score).toBeLessThanOrEqual(candidates[k - 1]!.score);
    expect(candidates.reduce((s, c) => s + c.score, 0)).toBeLessThanOrEqual(1 + 1e-6);
    // A batch: each text's own mask (rows of the batch are not mixed up).
    const two = await unmask(['dogs ran in [MASK]', 'my bird sang at [MASK]', '[MASK] swim fast'], { topK: 1 });
    expect(two.map((c) => c[0]!.token_str)).toEqual(['parks', 'dawn', 'fish']);
    unmask.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a text without a mask or with two, naming the text', async () => {
    const filler = await MaskFiller.load(out);
    await expect(filler.fill(['the cat sat', 'x'])).rejects.toThrow(/^text 0 has no \[MASK\]: fill-mask fills exactly one \[MASK\] per text$/);
    await expect(filler.fill(['the [MASK] sat on the [MASK]'])).rejects.toThrow(/^text 0 has 2 \[MASK\] tokens/);
    filler.dispose();
  });
});

describe('pipeline: image-classification', () => {
  const out = path.join(work, 'digits');
  const images: string[] = [];
  beforeAll(async () => {
    await trainVision({ data: 'mnist', limit: 32, preset: 'revcol-nano-32', epochs: 1, batchSize: 16, out, ...quiet });
    for (let i = 0; i < 2; i++) {
      const pixels = Buffer.from(Array.from({ length: 28 * 28 }, (_, k) => ((k * (i + 3)) % 255)));
      const file = path.join(work, `digit-${i}.png`);
      await sharp(pixels, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(file);
      images.push(file);
    }
  }, 180_000);

  it('gives ImageClassifier\'s top labels per image file', async () => {
    const classifier = await ImageClassifier.load(out);
    const expected = await classifier.classify(images, { topK: 3 });
    classifier.dispose();
    const classify = await pipeline('image-classification', out);
    expect(await classify(images[0]!, { topK: 3 })).toEqual(expected[0]);
    expect(await classify(images)).toEqual(expected.map((r) => r[0]));
    classify.dispose();
  });
});
