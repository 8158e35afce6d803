import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTextExamples } from '../src/data/text.js';
import { TextClassifier } from '../src/text/classifier.js';
import { shardBatch, startTextWorkers, textShards } from '../src/text/data-parallel-text.js';
import { fineTune } from '../src/text/fine-tune.js';
import { RevColText, type TextBatch, type TextConfig } from '../src/text/model.js';
import { AUTO_WORKERS_MIN_EXAMPLES, DataParallel, defaultWorkers, shardRanges } from '../src/train/data-parallel.js';
import { RunStopped } from '../src/train/run-folder.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { expectSameLossAndGradients } from './helpers/data-parallel.js';
import { oneLineError } from './helpers/errors.js';
import { HEAD_WORDS, writeHeadTokenizer } from './helpers/head-data.js';
import { spreadShortcutScales } from './helpers/scales.js';

const CONFIG: TextConfig = { vocabSize: 40, numLabels: 3, maxLength: 32, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean' };

/** A batch of `b` texts of different lengths (padding at the end of each row). */
function makeBatch(b: number, t: number, seed: number): TextBatch {
  const ids = new Int32Array(b * t);
  const mask = new Int32Array(b * t);
  for (let i = 0; i < b; i++) {
    const len = 3 + ((i * 7 + seed) % (t - 3));
    for (let j = 0; j < len; j++) {
      ids[i * t + j] = 1 + ((i * 31 + j * 17 + seed) % (CONFIG.vocabSize - 1));
      mask[i * t + j] = 1;
    }
  }
  return {
    inputIds: tf.tensor2d(ids, [b, t], 'int32'),
    attentionMask: tf.tensor2d(mask, [b, t], 'int32'),
    labels: tf.tensor1d(Array.from({ length: b }, (_, i) => (i * 5 + seed) % 3), 'int32'),
  };
}

const dispose = (b: TextBatch) => tf.dispose([b.inputIds, b.attentionMask, b.labels]);

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-dp-'));
const tokenizerDir = path.join(work, 'tok');
/** A fine-tune config with dropout and drop path on: the shards' dropout seeds matter. */
const FT_CONFIG = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0.1, dropPath: 0.1, maxLength: 32 };
const quiet = { progress: false, log: () => {} } as const;

/** Texts whose topic word is somewhere among fillers. */
function rows(count: number, seed: number): string {
  const lines = Array.from({ length: count }, (_, i) => {
    const label = (i + seed) % 2 ? 'sport' : 'music';
    const fill = Array.from({ length: 2 + ((i * 5 + seed) % 9) }, (_, j) => HEAD_WORDS.filler[(i + j + seed) % HEAD_WORDS.filler.length]);
    fill.splice((i * 3) % fill.length, 0, HEAD_WORDS[label][(i + seed) % 3]!);
    return `${fill.join(' ')},${label}`;
  });
  return `text,label\n${lines.join('\n')}\n`;
}

let trainFile: string;
let evalFile: string;

beforeAll(async () => {
  await useBackend('cpu');
  writeHeadTokenizer(tokenizerDir);
  trainFile = path.join(work, 'train.csv');
  evalFile = path.join(work, 'eval.csv');
  writeFileSync(trainFile, rows(40, 0));
  writeFileSync(evalFile, rows(16, 1));
});

describe('shard ranges', () => {
  it('cuts rows into contiguous, near-equal parts', () => {
    expect(shardRanges(7, 3)).toEqual([[0, 3], [3, 5], [5, 7]]);
    expect(shardRanges(1, 2)).toEqual([[0, 1], [1, 1]]);
    expect(shardRanges(8, 2)).toEqual([[0, 4], [4, 8]]);
  });
});

/** The pool's summed shard gradients against the model's own full-batch ones (relative error ≤ 1e-4 of each gradient's scale). */
async function compareWithFullBatch(model: RevColText, batch: TextBatch, workers: number): Promise<void> {
  const before = tf.memory().numTensors;
  const pool = await startTextWorkers(model, workers, 0.1);
  try {
    const full = model.lossAndGradients(batch, { seed: 5, labelSmoothing: 0.1 });
    const dp = await pool.lossAndGradients(textShards(batch, workers), 5);
    expectSameLossAndGradients(model, full, dp, { nonZero: true });
    tf.dispose([full.loss, dp.loss, ...full.grads.values(), ...dp.grads.values()]);
  } finally {
    await pool.close();
  }
  expect(tf.memory().numTensors).toBe(before);
}

describe('data-parallel gradients', () => {
  for (const reversible of [true, false]) {
    it(`equal the single-process full-batch gradients (${reversible ? 'reversible' : 'plain'}; 7 texts in 3 shards, and 1 text in 2)`, async () => {
      const model = new RevColText({ ...CONFIG, reversible }, 3);
      spreadShortcutScales(model.columns, CONFIG.columns, CONFIG.hidden.length, (c, l) => 10 + c * 4 + l);
      const batch = makeBatch(7, 24, 1);
      await compareWithFullBatch(model, batch, 3);
      dispose(batch);
      // A batch smaller than the workers: the empty shard is skipped.
      const one = makeBatch(1, 24, 2);
      await compareWithFullBatch(model, one, 2);
      dispose(one);
      model.dispose();
    });
  }

  it('equal them for texts read as windows, pooled by attention', async () => {
    const model = new RevColText({ ...CONFIG, windowPooling: 'attention' }, 4);
    const rowsBatch = makeBatch(5, 24, 3);
    const w = [[0.5, 0.5, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0.5, 0.5]];
    const batch: TextBatch = { ...rowsBatch, labels: tf.tensor1d([0, 2, 1], 'int32'), windowWeights: tf.tensor2d(w, [3, 5], 'float32') };
    await compareWithFullBatch(model, batch, 2);
    tf.dispose([rowsBatch.inputIds, rowsBatch.attentionMask, rowsBatch.labels, batch.labels, batch.windowWeights!]);
    model.dispose();
  });
});

describe('text shards', () => {
  it('keep a text\'s windows together and cut rows to their longest text', () => {
    // 3 texts: 2, 1 and 2 windows (5 rows); the rows' lengths 4, 9, 3, 17, 2 tokens.
    const lengths = [4, 9, 3, 17, 2];
    const t = 24;
    const mask = new Int32Array(5 * t);
    lengths.forEach((n, r) => mask.fill(1, r * t, r * t + n));
    const ids = mask.map((m, i) => (m ? 1 + (i % 30) : 0));
    const w = [[0.5, 0.5, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0.5, 0.5]];
    const batch: TextBatch = {
      inputIds: tf.tensor2d(ids, [5, t], 'int32'),
      attentionMask: tf.tensor2d(mask, [5, t], 'int32'),
      labels: tf.tensor1d([0, 1, 2], 'int32'),
      windowWeights: tf.tensor2d(w, [3, 5], 'float32'),
    };
    const shards = textShards(batch, 2);
    expect(shards.map((s) => s.rows)).toEqual([2, 1]);
    expect(shards.map((s) => [s.data.rows, s.data.width])).toEqual([[3, 16], [2, 24]]);
    expect(Array.from(shards[0]!.data.windowWeights!)).toEqual([0.5, 0.5, 0, 0, 0, 1]);
    expect(Array.from(shards[1]!.data.windowWeights!)).toEqual([0.5, 0.5]);
    expect(Array.from(shards[1]!.data.labels.values)).toEqual([2]);
    expect(Array.from(shards[0]!.data.ids.subarray(16, 32))).toEqual(Array.from(ids.subarray(t, t + 16)));
    const back = shardBatch(shards[1]!.data);
    expect(back.inputIds.shape).toEqual([2, 24]);
    expect(back.windowWeights!.shape).toEqual([1, 2]);
    tf.dispose([batch.inputIds, batch.attentionMask, batch.labels, batch.windowWeights!, back.inputIds, back.attentionMask, back.labels, back.windowWeights!]);
  });
});

describe('fine-tune with workers', () => {
  const run = (out: string, workers: number, extra: Record<string, unknown> = {}) => fineTune({
    train: trainFile, eval: evalFile, tokenizer: tokenizerDir, config: FT_CONFIG, maxLength: 16, epochs: 3, batchSize: 8, lr: 3e-3, keep: 'last', out: path.join(work, out), seed: 2, workers, ...quiet, ...extra,
  });
  const losses = (out: string) => readFileSync(path.join(work, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

  it('trains; two runs of the same seed and workers give the same losses; eval after reload matches; no tensors leak', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const before = tf.memory().numTensors;
    const a = await run('w2-a', 2);
    expect(tf.memory().numTensors).toBe(before);
    expect(close).toHaveBeenCalledTimes(1);
    const b = await run('w2-b', 2);
    expect(losses('w2-a')).toEqual(losses('w2-b'));
    expect(a.summary.epochs.map((e) => e.accuracy)).toEqual(b.summary.epochs.map((e) => e.accuracy));
    // It learns: the loss falls.
    const l = losses('w2-a');
    expect(l[2]!).toBeLessThan(l[0]!);
    // Another worker count is another run (other shards' dropout), but the same data and step count.
    const one = await run('w1', 1);
    expect(close).toHaveBeenCalledTimes(2);
    expect(one.summary.epochs.at(-1)!.step).toBe(a.summary.epochs.at(-1)!.step);
    const c = await TextClassifier.load(path.join(work, 'w2-a'));
    try {
      const report = await c.evaluateAsync(await readTextExamples(evalFile));
      expect(report.accuracy).toBeCloseTo(a.summary.bestAccuracy, 10);
    } finally {
      c.dispose();
    }
    close.mockRestore();
  }, 120_000);

  it('stops on a request (Ctrl-C) after the step, with a checkpoint, and closes its workers', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const controller = new AbortController();
    const err = await run('w2-stop', 2, { signal: controller.signal, onStep: () => controller.abort('Ctrl-C') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunStopped);
    expect(close).toHaveBeenCalledTimes(1);
    close.mockRestore();
    // --resume continues it with workers.
    const resumed = await run('w2-stop', 2, { resume: true });
    expect(resumed.summary.epochs).toHaveLength(3);
  }, 120_000);

  it('refuses bad values in one line', async () => {
    expect(await oneLineError(() => run('bad', 0))).toMatch(/workers must be a whole number ≥ 1 \(1: one thread\), got 0/);
    expect(await oneLineError(() => run('bad', 1.5))).toMatch(/workers must be a whole number ≥ 1.*got 1\.5/);
    expect(await oneLineError(() => run('bad', 2, { ensemble: 2 }))).toMatch(/workers splits one model's batches, and ensemble 2, whose members train side by side/);
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(FT_CONFIG));
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', trainFile, '--workers', '0', '--out', path.join(work, 'cli-bad')]), /--workers must be a whole number ≥ 1/);
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', trainFile, '--workers', 'two', '--out', path.join(work, 'cli-bad')]), /--workers must be a whole number ≥ 1/);
  });

  it('default: every core (at most 8) on cpu and wasm from 1,000 training texts, one thread below', async () => {
    const cores = Math.min(os.availableParallelism(), 8);
    for (const backend of ['cpu', 'wasm']) {
      await useBackend(backend);
      expect(defaultWorkers(AUTO_WORKERS_MIN_EXAMPLES - 1)).toBe(1);
      expect(defaultWorkers(AUTO_WORKERS_MIN_EXAMPLES)).toBe(cores);
    }
    await useBackend('cpu');
  });

  it.runIf(os.availableParallelism() >= 2)('fine-tune without --workers takes every core for 1,000 texts and says so; an ensemble side by side does not', async () => {
    const big = path.join(work, 'big.csv');
    writeFileSync(big, rows(AUTO_WORKERS_MIN_EXAMPLES, 3));
    const lines: string[] = [];
    const close = vi.spyOn(DataParallel.prototype, 'close');
    await fineTune({
      train: big, eval: evalFile, tokenizer: tokenizerDir, config: FT_CONFIG, maxLength: 12, epochs: 1, batchSize: 128, out: path.join(work, 'auto'), seed: 1, progress: false, log: (l: string) => lines.push(l),
    });
    const cores = Math.min(os.availableParallelism(), 8);
    expect(lines.join('\n')).toMatch(new RegExp(`data-parallel: each batch in ${cores} shards.*\\(the default on \\d+ cores for 1,000 or more training texts; --workers 1 for one thread\\)`));
    expect(close).toHaveBeenCalledTimes(1);
    close.mockRestore();
    // Two members side by side (each in its own process) already fill two cores: no workers.
    const ensembleLines: string[] = [];
    await fineTune({
      train: big, eval: evalFile, tokenizer: tokenizerDir, config: FT_CONFIG, maxLength: 12, epochs: 1, batchSize: 128, out: path.join(work, 'auto-ensemble'), seed: 1, ensemble: 2, backend: 'cpu', progress: false, log: (l: string) => ensembleLines.push(l),
    });
    expect(ensembleLines.join('\n')).toMatch(/2 at a time, each in its own process/);
    expect(ensembleLines.join('\n')).not.toMatch(/data-parallel/);
  }, 240_000);

  it('CLI: --workers 2 on the wasm backend trains and says so', async () => {
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(FT_CONFIG));
    const r = await runCliCaptured(['fine-tune', '--train', trainFile, '--eval', evalFile, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '16', '--epochs', '1', '--batch-size', '8', '--workers', '2', '--backend', 'wasm', '--out', path.join(work, 'cli-w2'), '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/data-parallel: each batch in 2 shards, on the main thread and 1 worker thread/);
  }, 120_000);
});
