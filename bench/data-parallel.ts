// Samples/s of one text-tiny training step (loss, reversible gradients, AdamW) on one thread and
// with data-parallel workers (src/train/data-parallel.ts), alternated in one process so that both
// see the same machine. The batch is bench/train-step.ts's (32 texts, dropout 0.3, drop path
// 0.1) with lengths spread over 200–256 tokens in ascending order, as a length-grouped batch of
// fine-tune comes (cut to its longest text, 256).
// Each measurement: one warm-up step, then the median of --steps steps; --rounds rounds of
// 1, N, N, 1 (so neither count always goes first). Prints a line per measurement (with the load
// average), then a JSON summary appended to bench/results/data-parallel.jsonl.
// --family picks the model and its loss on the same batch: text (classification, the default),
// mlm (masked-LM pre-training: 15% of the tokens masked BERT's way, shards weighted by their
// masked tokens) or token (token classification, 17 tags: a scored piece at 3 of every 4 tokens,
// with word features and a context window of 2, as fine-tune's defaults).
//   npm run bench -- data-parallel [--family text|mlm|token] [--workers 2] [--steps 5] [--rounds 2] [--backend wasm]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import type { LossAndGradients } from '../src/core/gradients.js';
import { maskedShards, startMaskedLMWorkers } from '../src/text/data-parallel-mlm.js';
import { startTextWorkers, textShards } from '../src/text/data-parallel-text.js';
import { tokenShards } from '../src/text/data-parallel-token.js';
import { startTokenWorkers } from '../src/text/token-classification.js';
import { MaskedLMModel } from '../src/text/fill-mask.js';
import { type MaskedTextBatch, RevColText } from '../src/text/model.js';
import { maskTokens } from '../src/text/pretrain.js';
import { type TokenBatch, TokenClassificationModel, WORD_SHAPES } from '../src/text/token-classification.js';
import { TEXT_PRESETS, type TextConfig, validateConfig } from '../src/text/presets.js';
import type { DataParallel } from '../src/train/data-parallel.js';
import { AdamW } from '../src/train/optimizer.js';
import { recordResult } from './lib/record.js';
import { flag } from './lib/args.js';

const backend = flag('backend', 'wasm');
const family = flag('family', 'text');
if (!['text', 'mlm', 'token'].includes(family)) throw new Error(`--family must be text, mlm or token, got ${family}`);
const workers = Number(flag('workers', '2'));
const steps = Number(flag('steps', '5'));
const rounds = Number(flag('rounds', '2'));
await useBackend(backend);

const WORDS = 2000;
const config = {
  ...TEXT_PRESETS['text-tiny'], dropout: 0.3, dropPath: 0.1, vocabSize: 30522, numLabels: 2, maxLength: 256,
  ...(family === 'token' ? { words: WORDS, wordShapes: WORD_SHAPES.length, wordContext: 2 } : {}),
} as TextConfig;
validateConfig(config);
const [batchSize, length] = [32, 256];
const lengths = Array.from({ length: batchSize }, (_, i) => 200 + Math.round((56 * i) / (batchSize - 1)));
const ids = Int32Array.from({ length: batchSize * length }, (_, i) => (i % length < lengths[Math.floor(i / length)]! ? (i * 7919) % 30522 : 0));
const mask = Int32Array.from({ length: batchSize * length }, (_, i) => (i % length < lengths[Math.floor(i / length)]! ? 1 : 0));
const inputIds = tf.tensor2d(ids, [batchSize, length], 'int32');
const attentionMask = tf.tensor2d(mask, [batchSize, length], 'int32');
const owned: tf.Tensor[] = [inputIds, attentionMask];

/** The family's model, its one-thread step, its pool and its data-parallel step. */
interface Family {
  model: RevColText | MaskedLMModel | TokenClassificationModel;
  single(seed: number): LossAndGradients;
  pool: DataParallel<unknown>;
  parallel(seed: number): Promise<LossAndGradients>;
}

async function build(): Promise<Family> {
  if (family === 'mlm') {
    const model = new MaskedLMModel(new RevColText(config, 1), 1);
    const m = maskTokens(ids, mask, { fraction: 0.15, maskTokenId: 103, vocabSize: 30522, specialTokenIds: new Set([0, 101, 102]), seed: 3 });
    const batch: MaskedTextBatch = { inputIds: tf.tensor2d(m.ids, [batchSize, length], 'int32'), attentionMask, positions: tf.tensor1d(m.positions, 'int32'), targets: tf.tensor1d(m.targets, 'int32') };
    owned.push(batch.inputIds, batch.positions, batch.targets);
    const pool = await startMaskedLMWorkers(model, workers);
    return { model, single: (seed) => model.text.maskedLMLossAndGradients(batch, model.mlm, { seed }), pool, parallel: (seed) => pool.lossAndGradients(maskedShards(batch, pool.shards), seed) };
  }
  if (family === 'token') {
    const model = new TokenClassificationModel(new RevColText(config, 1), 17, 1);
    const positions: number[] = [];
    const wordIds = new Int32Array(batchSize * length);
    const shapeIds = new Int32Array(batchSize * length);
    let word = 0;
    for (let r = 0; r < batchSize; r++) {
      for (let t = 1; t < lengths[r]! - 1; t++) {
        if (t % 4 !== 0) {
          positions.push(r * length + t);
          word = 2 + ((r * 131 + t * 17) % (WORDS - 2));
        }
        wordIds[r * length + t] = word;
        shapeIds[r * length + t] = 1 + (word % 3);
      }
    }
    const batch: TokenBatch = {
      inputIds, attentionMask,
      positions: tf.tensor1d(positions, 'int32'),
      targets: tf.tensor1d(positions.map((p) => p % 17), 'int32'),
      words: { wordIds: tf.tensor2d(wordIds, [batchSize, length], 'int32'), shapeIds: tf.tensor2d(shapeIds, [batchSize, length], 'int32') },
    };
    owned.push(batch.positions, batch.targets, batch.words!.wordIds, batch.words!.shapeIds);
    const pool = await startTokenWorkers(model, workers, 0);
    return { model, single: (seed) => model.lossAndGradients(batch, { seed }), pool, parallel: (seed) => pool.lossAndGradients(tokenShards(batch, pool.shards), seed) };
  }
  const model = new RevColText(config, 1);
  const batch = { inputIds, attentionMask, labels: tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % 2), 'int32') };
  owned.push(batch.labels);
  const pool = await startTextWorkers(model, workers, 0);
  return { model, single: (seed) => model.lossAndGradients(batch, { seed }), pool, parallel: (seed) => pool.lossAndGradients(textShards(batch, pool.shards), seed) };
}

const { model, single, pool, parallel } = await build();
const optimizer = new AdamW(model);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function step(n: number, seed: number): Promise<void> {
  const { loss, grads } = n === 1 ? single(seed) : await parallel(seed);
  optimizer.applyGradients(grads, 1e-4);
  loss.dataSync();
  loss.dispose();
  grads.forEach((g) => g.dispose());
}

const load = () => os.loadavg()[0]!.toFixed(2);
const measured: Record<string, number[]> = { 1: [], [workers]: [] };
let seed = 0;
try {
  for (let r = 0; r < rounds; r++) {
    for (const n of [1, workers, workers, 1]) {
      const loadBefore = load();
      await step(n, seed++);
      const times: number[] = [];
      for (let s = 0; s < steps; s++) {
        const start = performance.now();
        await step(n, seed++);
        times.push(performance.now() - start);
      }
      const ms = median(times);
      const rate = (batchSize * 1000) / ms;
      measured[n]!.push(Math.round(rate * 10) / 10);
      process.stderr.write(`workers ${n}: ${Math.round(ms)} ms/step (median of ${steps}), ${rate.toFixed(1)} samples/s; load average ${loadBefore} → ${load()}\n`);
    }
  }
  const t = pool.timings;
  const per = (x: number) => Math.round(x / Math.max(t.steps, 1));
  const result = {
    date: new Date().toISOString(),
    backend,
    family,
    model: 'text-tiny',
    batch: `${batchSize} × 200–256 tokens`,
    steps,
    rounds,
    cores: os.cpus().length,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    samplesPerSecond: { [`workers 1`]: measured[1], [`workers ${workers}`]: measured[workers] },
    medians: { [`workers 1`]: median(measured[1]!), [`workers ${workers}`]: median(measured[workers]!) },
    // The main thread's time per data-parallel step: parameters out, its own shard, waiting for the workers, summing.
    mainThreadMs: { publish: per(t.publish), ownShard: per(t.own), wait: per(t.wait), sum: per(t.sum) },
  };
  const line = JSON.stringify(result);
  process.stdout.write(`${line}\n`);
  await recordResult('data-parallel', line);
} finally {
  await pool.close();
  tf.dispose(owned);
  optimizer.dispose();
  model.dispose();
}
