import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { maskedShards, startMaskedLMWorkers } from '../src/text/data-parallel-mlm.js';
import { positionShards } from '../src/text/data-parallel-text.js';
import { MaskedLMModel } from '../src/text/fill-mask.js';
import { fineTune } from '../src/text/fine-tune.js';
import { type MaskedTextBatch, RevColText, type TextConfig } from '../src/text/model.js';
import { maskTokens, pretrain } from '../src/text/pretrain.js';
import { DataParallel } from '../src/train/data-parallel.js';
import { RunStopped } from '../src/train/run-folder.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { expectSameLossAndGradients } from './helpers/data-parallel.js';
import { oneLineError } from './helpers/errors.js';
import { HEAD_WORDS, writeHeadTokenizer } from './helpers/head-data.js';
import { spreadShortcutScales } from './helpers/scales.js';

const CONFIG: TextConfig = { vocabSize: 40, numLabels: 2, maxLength: 32, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean' };
const MASK = 4;

/** `b` rows of different lengths ([CLS]=2 … [SEP]=3, padding 0), masked BERT's way with `fraction`. */
function maskedBatch(b: number, t: number, seed: number, fraction: number): MaskedTextBatch {
  const ids = new Int32Array(b * t);
  const mask = new Int32Array(b * t);
  for (let i = 0; i < b; i++) {
    const len = 4 + ((i * 7 + seed) % (t - 4));
    for (let j = 0; j < len; j++) {
      ids[i * t + j] = j === 0 ? 2 : j === len - 1 ? 3 : 5 + ((i * 31 + j * 17 + seed) % (CONFIG.vocabSize - 5));
      mask[i * t + j] = 1;
    }
  }
  const m = maskTokens(ids, mask, { fraction, maskTokenId: MASK, vocabSize: CONFIG.vocabSize, specialTokenIds: new Set([0, 2, 3]), seed });
  return {
    inputIds: tf.tensor2d(m.ids, [b, t], 'int32'),
    attentionMask: tf.tensor2d(mask, [b, t], 'int32'),
    positions: tf.tensor1d(m.positions, 'int32'),
    targets: tf.tensor1d(m.targets, 'int32'),
  };
}
const dispose = (b: MaskedTextBatch) => tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets]);

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-dp-mlm-'));
const tokenizerDir = path.join(work, 'tok');
const textsFile = path.join(work, 'texts.csv');
/** Dropout and drop path on: the shards' dropout seeds matter. */
const RUN_CONFIG = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0.1, dropPath: 0.1, maxLength: 32 };
const quiet = { progress: false, log: () => {} } as const;

beforeAll(async () => {
  await useBackend('cpu');
  writeHeadTokenizer(tokenizerDir);
  const words = Object.values(HEAD_WORDS).flat();
  const lines = Array.from({ length: 40 }, (_, i) => Array.from({ length: 3 + ((i * 5) % 10) }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' '));
  writeFileSync(textsFile, `text,label\n${lines.map((l, i) => `${l},${i % 2 ? 'sport' : 'music'}`).join('\n')}\n`);
});

describe('masked-LM shards', () => {
  it('cut rows to their longest, renumber the masked positions and weigh each shard by its masked tokens', () => {
    const t = 24;
    const lengths = [4, 9, 3, 17];
    const mask = new Int32Array(4 * t);
    lengths.forEach((n, r) => mask.fill(1, r * t, r * t + n));
    const ids = mask.map((m, i) => (m ? 5 + (i % 30) : 0));
    // Three masked tokens in row 1, one in row 3, none in rows 0 and 2.
    const positions = [t + 1, t + 4, t + 7, 3 * t + 16];
    const batch: MaskedTextBatch = {
      inputIds: tf.tensor2d(ids, [4, t], 'int32'),
      attentionMask: tf.tensor2d(mask, [4, t], 'int32'),
      positions: tf.tensor1d(positions, 'int32'),
      targets: tf.tensor1d([11, 12, 13, 14], 'int32'),
    };
    const shards = maskedShards(batch, 2);
    expect(shards.map((s) => [s.rows, s.weight])).toEqual([[2, 3], [2, 1]]);
    expect(shards.map((s) => [s.data.rows, s.data.width])).toEqual([[2, 16], [2, 24]]);
    expect(Array.from(shards[0]!.data.positions)).toEqual([16 + 1, 16 + 4, 16 + 7]);
    expect(Array.from(shards[1]!.data.positions)).toEqual([t + 16]);
    expect(Array.from(shards[1]!.data.targets)).toEqual([14]);
    expect(Array.from(shards[0]!.data.ids.subarray(16, 32))).toEqual(Array.from(ids.subarray(t, t + 16)));
    // Four shards: rows 0 and 2 hold no masked token (weight 0: skipped by the pool).
    expect(positionShards(batch, 4).map((s) => s.weight)).toEqual([0, 3, 0, 1]);
    dispose(batch);
  });
});

/** The pool's summed shard gradients against the model's own full-batch ones (relative error ≤ 1e-4 of each gradient's scale). */
async function compareWithFullBatch(model: MaskedLMModel, pool: DataParallel<unknown>, batch: MaskedTextBatch): Promise<void> {
  const before = tf.memory().numTensors;
  const full = model.text.maskedLMLossAndGradients(batch, model.mlm, { seed: 5 });
  const dp = await pool.lossAndGradients(maskedShards(batch, pool.shards), 5);
  expectSameLossAndGradients(model, full, dp);
  tf.dispose([full.loss, dp.loss, ...full.grads.values(), ...dp.grads.values()]);
  expect(tf.memory().numTensors).toBe(before);
}

describe('data-parallel masked-LM gradients', () => {
  for (const reversible of [true, false]) {
    it(`equal the single-thread full-batch gradients (${reversible ? 'reversible' : 'plain'}; 7 texts in 3 shards, uneven masked counts, and a shard with none)`, async () => {
      const before = tf.memory().numTensors;
      const model = new MaskedLMModel(new RevColText({ ...CONFIG, reversible }, 3), 3);
      spreadShortcutScales(model.text.columns, CONFIG.columns, CONFIG.hidden.length, (c, l) => 10 + c * 4 + l);
      const pool = await startMaskedLMWorkers(model, 3);
      try {
        const batch = maskedBatch(7, 24, 1, 0.3);
        const counts = maskedShards(batch, 3).map((s) => s.weight);
        // Rows are near-equal; masked tokens are not: weighting by rows would be wrong here.
        expect(new Set(counts).size).toBeGreaterThan(1);
        await compareWithFullBatch(model, pool, batch);
        dispose(batch);
        // 2 texts in 3 shards, one masked token: two shards are skipped.
        const few = maskedBatch(2, 16, 2, 1e-9);
        expect(maskedShards(few, 3).map((s) => s.weight)).toEqual([1, 0, 0]);
        await compareWithFullBatch(model, pool, few);
        dispose(few);
      } finally {
        await pool.close();
      }
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }, 60_000);
  }
});

describe('pretrain with workers', () => {
  const run = (out: string, workers: number, extra: Record<string, unknown> = {}) => pretrain({
    train: textsFile, tokenizer: tokenizerDir, config: RUN_CONFIG, maxLength: 16, epochs: 2, batchSize: 8, lr: 3e-3, out: path.join(work, out), seed: 2, workers, ...quiet, ...extra,
  });
  const losses = (out: string) => readFileSync(path.join(work, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);

  it('trains; two runs of the same seed and workers give the same losses; workers closed; no tensors leak', async () => {
    const close = vi.spyOn(DataParallel.prototype, 'close');
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    const lines: string[] = [];
    const a = await run('w2-a', 2, { onStep: () => counts.push(tf.memory().numTensors), log: (l: string) => lines.push(l) });
    expect(tf.memory().numTensors).toBe(before);
    expect(counts.at(-1)).toBe(counts[1]);
    expect(close).toHaveBeenCalledTimes(1);
    expect(lines).toContain('data-parallel: each batch in 2 shards, on the main thread and 1 worker thread');
    await run('w2-b', 2);
    expect(losses('w2-a')).toEqual(losses('w2-b'));
    expect(losses('w2-a').every(Number.isFinite)).toBe(true);
    // One thread: the same data and step count.
    const one = await run('w1', 1);
    expect(close).toHaveBeenCalledTimes(2);
    expect(one.summary.epochs.at(-1)!.step).toBe(a.summary.epochs.at(-1)!.step);
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

  it('fine-tune passes --workers to its pre-training stage', async () => {
    const lines: string[] = [];
    await fineTune({ train: textsFile, tokenizer: tokenizerDir, config: RUN_CONFIG, maxLength: 16, epochs: 1, pretrainEpochs: 1, batchSize: 8, out: path.join(work, 'ft-pre'), workers: 2, progress: false, log: (l) => lines.push(l) });
    const pre = lines.findIndex((l) => l.startsWith('pre-training (masked LM'));
    expect(pre).toBeGreaterThanOrEqual(0);
    // Twice: the pre-training's pool, then the fine-tuning's.
    expect(lines.filter((l) => l.startsWith('data-parallel: each batch in 2 shards'))).toHaveLength(2);
  }, 60_000);

  it('refuses bad values in one line; the CLI takes --workers', async () => {
    expect(await oneLineError(() => run('bad', 0))).toMatch(/workers must be a whole number ≥ 1 \(1: one thread\), got 0/);
    expect(await oneLineError(() => run('bad', 2.5))).toMatch(/workers must be a whole number ≥ 1.*got 2\.5/);
    expectOneLineError(await runCliCaptured(['pretrain', '--train', textsFile, '--workers', '0', '--out', path.join(work, 'cli-bad')]), /--workers must be a whole number ≥ 1/);
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(RUN_CONFIG));
    const r = await runCliCaptured(['pretrain', '--train', textsFile, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '16', '--epochs', '1', '--batch-size', '8', '--workers', '2', '--backend', 'wasm', '--out', path.join(work, 'cli-w2'), '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/data-parallel: each batch in 2 shards, on the main thread and 1 worker thread/);
  }, 60_000);
});
