import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { toConll } from '../src/data/token-data.js';
import { tokenShards } from '../src/text/data-parallel-token.js';
import { startTokenWorkers } from '../src/text/token-classification.js';
import { RevColText } from '../src/text/model.js';
import { fineTuneTokens, TokenClassifier, type TokenBatch, TokenClassificationModel, WORD_SHAPES } from '../src/text/token-classification.js';
import { AUTO_WORKERS_MIN_EXAMPLES, DataParallel } from '../src/train/data-parallel.js';
import { RunStopped } from '../src/train/run-folder.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { expectSameLossAndGradients } from './helpers/data-parallel.js';
import { oneLineError } from './helpers/errors.js';
import { nerSentences, NER_WORDS, writeWordPieceTokenizer } from './helpers/token-data.js';
import { spreadShortcutScales } from './helpers/scales.js';
import { smallConfig } from './helpers/token-steps.js';

const WORDS = 9;

/**
 * `b` sentences of different lengths ([CLS] pieces [SEP], padding 0): a word is one or two
 * pieces, its first piece scored; word and shape ids on every piece (0 at specials and padding).
 */
function tokenBatch(b: number, t: number, seed: number, words: boolean): TokenBatch {
  const ids = new Int32Array(b * t);
  const mask = new Int32Array(b * t);
  const wordIds = new Int32Array(b * t);
  const shapeIds = new Int32Array(b * t);
  const positions: number[] = [];
  const targets: number[] = [];
  for (let i = 0; i < b; i++) {
    const len = 4 + ((i * 7 + seed) % (t - 4));
    ids[i * t] = 2;
    for (let j = 0; j < len; j++) mask[i * t + j] = 1;
    let w = 0;
    for (let j = 1; j < len - 1; j++) {
      const first = j === 1 || (i + j + seed) % 3 !== 0;
      ids[i * t + j] = 5 + ((i * 31 + j * 17 + seed) % 40);
      if (first) {
        positions.push(i * t + j);
        targets.push((i + j + seed) % 4);
        w = 2 + ((i * 5 + j * 3 + seed) % (WORDS - 2));
      }
      wordIds[i * t + j] = w;
      shapeIds[i * t + j] = 1 + (w % 3);
    }
    ids[i * t + len - 1] = 3;
  }
  return {
    inputIds: tf.tensor2d(ids, [b, t], 'int32'),
    attentionMask: tf.tensor2d(mask, [b, t], 'int32'),
    positions: tf.tensor1d(positions, 'int32'),
    targets: tf.tensor1d(targets, 'int32'),
    ...(words ? { words: { wordIds: tf.tensor2d(wordIds, [b, t], 'int32'), shapeIds: tf.tensor2d(shapeIds, [b, t], 'int32') } } : {}),
  };
}
const dispose = (b: TokenBatch) => tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets, ...(b.words ? [b.words.wordIds, b.words.shapeIds] : [])]);

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-dp-token-'));
const tokenizerDir = path.join(work, 'tok');
const trainFile = path.join(work, 'train.conll');
const evalFile = path.join(work, 'eval.conll');
/** Dropout and drop path on: the shards' dropout seeds matter. */
const RUN_CONFIG = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0.1, dropPath: 0.1, maxLength: 32 };
const quiet = { progress: false, log: () => {} } as const;

beforeAll(async () => {
  await useBackend('cpu');
  writeWordPieceTokenizer(tokenizerDir, ['new', ...Object.values(NER_WORDS).flat()]);
  const train = nerSentences(48, 1);
  writeFileSync(trainFile, toConll(train.words, train.tags));
  const test = nerSentences(12, 2);
  writeFileSync(evalFile, toConll(test.words, test.tags));
});

describe('token shards', () => {
  it('keep each sentence\'s words, word features and scored pieces together, weighted by scored pieces', () => {
    const batch = tokenBatch(5, 24, 1, true);
    const shards = tokenShards(batch, 2);
    const positions = batch.positions.dataSync();
    expect(shards.map((s) => s.rows)).toEqual([3, 2]);
    const inFirst = Array.from(positions).filter((p) => p < 3 * 24).length;
    expect(shards.map((s) => s.weight)).toEqual([inFirst, positions.length - inFirst]);
    const w = shards[1]!.data.width;
    // Shard 1's row 0 is the batch's row 3: same ids and word ids up to the shard's width.
    expect(Array.from(shards[1]!.data.ids.subarray(0, w))).toEqual(Array.from(batch.inputIds.dataSync().subarray(3 * 24, 3 * 24 + w)));
    expect(Array.from(shards[1]!.data.wordIds!.subarray(0, w))).toEqual(Array.from(batch.words!.wordIds.dataSync().subarray(3 * 24, 3 * 24 + w)));
    expect(Array.from(shards[1]!.data.targets)).toEqual(Array.from(batch.targets.dataSync()).slice(inFirst));
    expect(shards[1]!.data.positions[0]).toBe(positions[inFirst]! - 3 * 24);
    dispose(batch);
  });
});

/** The pool's summed shard gradients against the model's own full-batch ones (relative error ≤ 1e-4 of each gradient's scale). */
async function compareWithFullBatch(model: TokenClassificationModel, pool: DataParallel<unknown>, batch: TokenBatch): Promise<void> {
  const before = tf.memory().numTensors;
  const full = model.lossAndGradients(batch, { seed: 5, labelSmoothing: 0.1 });
  const dp = await pool.lossAndGradients(tokenShards(batch, pool.shards), 5);
  expectSameLossAndGradients(model, full, dp);
  tf.dispose([full.loss, dp.loss, ...full.grads.values(), ...dp.grads.values()]);
  expect(tf.memory().numTensors).toBe(before);
}

describe('data-parallel token-classification gradients', () => {
  for (const reversible of [true, false]) {
    it(`equal the single-thread full-batch gradients (${reversible ? 'reversible, word features and context' : 'plain, no word features'}; 7 sentences in 3 shards, uneven scored counts)`, async () => {
      const before = tf.memory().numTensors;
      const words = reversible;
      const config = smallConfig({ maxLength: 24, dropout: 0, dropPath: 0, reversible, ...(words ? { words: WORDS, wordShapes: WORD_SHAPES.length, wordContext: 2 } : {}) });
      const model = new TokenClassificationModel(new RevColText(config, 3), 4, 3);
      spreadShortcutScales(model.text.columns, config.columns, config.hidden.length, (c, l) => 10 + c * 4 + l);
      const pool = await startTokenWorkers(model, 3, 0.1);
      try {
        const batch = tokenBatch(7, 24, 1, words);
        // Rows are near-equal; scored pieces are not: weighting by rows would be wrong here.
        expect(new Set(tokenShards(batch, 3).map((s) => s.weight)).size).toBeGreaterThan(1);
        await compareWithFullBatch(model, pool, batch);
        dispose(batch);
        // 1 sentence in 3 shards: two empty shards are skipped.
        const one = tokenBatch(1, 24, 2, words);
        await compareWithFullBatch(model, pool, one);
        dispose(one);
      } finally {
        await pool.close();
      }
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }, 60_000);
  }
});

describe('token fine-tune, default workers', () => {
  it.runIf(os.availableParallelism() >= 2)('takes every core (at most 8) for 1,000 training sentences and says so', async () => {
    const big = path.join(work, 'big.conll');
    const train = nerSentences(AUTO_WORKERS_MIN_EXAMPLES, 5);
    writeFileSync(big, toConll(train.words, train.tags));
    const lines: string[] = [];
    await fineTuneTokens({
      train: big, eval: evalFile, tokenizer: tokenizerDir, config: RUN_CONFIG, maxLength: 16, epochs: 1, batchSize: 128, out: path.join(work, 'auto'), seed: 1, progress: false, log: (l: string) => lines.push(l),
    });
    const cores = Math.min(os.availableParallelism(), 8);
    expect(lines.join('\n')).toMatch(new RegExp(`data-parallel: each batch in ${cores} shards.*\\(the default on \\d+ cores for 1,000 or more training sentences; --workers 1 for one thread\\)`));
  }, 120_000);
});

describe('token fine-tune with workers', () => {
  const run = (out: string, workers: number, extra: Record<string, unknown> = {}) => fineTuneTokens({
    train: trainFile, eval: evalFile, tokenizer: tokenizerDir, config: RUN_CONFIG, maxLength: 16, epochs: 2, batchSize: 8, lr: 3e-3, wordDropout: 0.1, keep: 'last', out: path.join(work, out), seed: 2, workers, ...quiet, ...extra,
  });
  const losses = (out: string) => readFileSync(path.join(work, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

  it('trains; two runs of the same seed and workers give the same losses; eval after reload matches; no tensors leak', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    const lines: string[] = [];
    const a = await run('w2-a', 2, { onStep: () => counts.push(tf.memory().numTensors), log: (l: string) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(counts.at(-1)).toBe(counts[1]);
    expect(close).toHaveBeenCalledTimes(1);
    expect(lines).toContain('data-parallel: each batch in 2 shards, on the main thread and 1 worker thread');
    expect(a.wordFeatures).not.toBeNull();
    await run('w2-b', 2);
    expect(losses('w2-a')).toEqual(losses('w2-b'));
    expect(losses('w2-a').every(Number.isFinite)).toBe(true);
    const tagger = await TokenClassifier.load(path.join(work, 'w2-a'));
    try {
      const { readTokenExamples } = await import('../src/data/token-data.js');
      const report = await tagger.evaluate(await readTokenExamples(evalFile));
      expect(report.accuracy).toBeCloseTo(a.summary.bestAccuracy, 10);
    } finally {
      tagger.dispose();
    }
    close.mockRestore();
  }, 60_000);

  it('stops on a request (Ctrl-C) after the step, with a checkpoint, and closes its workers; --resume continues', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const controller = new AbortController();
    const err = await run('w2-stop', 2, { signal: controller.signal, onStep: () => controller.abort('Ctrl-C') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunStopped);
    expect(close).toHaveBeenCalledTimes(1);
    close.mockRestore();
    const resumed = await run('w2-stop', 2, { resume: true });
    expect(resumed.summary.epochs).toHaveLength(2);
  }, 60_000);

  it('refuses bad values in one line; the CLI takes --workers for tagged words', async () => {
    expect(await oneLineError(() => run('bad', 0))).toMatch(/workers must be a whole number ≥ 1 \(1: one thread\), got 0/);
    expect(await oneLineError(() => run('bad', 1.5))).toMatch(/workers must be a whole number ≥ 1.*got 1\.5/);
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', trainFile, '--workers', '0', '--out', path.join(work, 'cli-bad')]), /--workers must be a whole number ≥ 1/);
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(RUN_CONFIG));
    const r = await runCliCaptured(['fine-tune', '--train', trainFile, '--eval', evalFile, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '16', '--epochs', '1', '--batch-size', '8', '--workers', '2', '--backend', 'wasm', '--out', path.join(work, 'cli-w2'), '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/data-parallel: each batch in 2 shards, on the main thread and 1 worker thread/);
    expect(r.stdout).toMatch(/token classification/);
  }, 60_000);
});
