// Samples/s of one text-tiny training step (loss, reversible gradients, AdamW) on one thread and
// with data-parallel workers (src/train/data-parallel.ts), alternated in one process so that both
// see the same machine. The batch is bench/train-step.ts's (32 texts, dropout 0.3, drop path
// 0.1) with lengths spread over 200–256 tokens in ascending order, as a length-grouped batch of
// fine-tune comes (cut to its longest text, 256).
// Each measurement: one warm-up step, then the median of --steps steps; --rounds rounds of
// 1, N, N, 1 (so neither count always goes first). Prints a line per measurement (with the load
// average), then a JSON summary appended to bench/results/data-parallel.jsonl.
//   npm run bench -- data-parallel [--workers 2] [--steps 5] [--rounds 2] [--backend wasm]
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { startTextWorkers, textShards } from '../src/text/data-parallel-text.js';
import { RevColText } from '../src/text/model.js';
import { TEXT_PRESETS, type TextConfig, validateConfig } from '../src/text/presets.js';
import { AdamW } from '../src/train/optimizer.js';
import { recordResult } from './lib/record.js';
import { flag } from './lib/args.js';

const backend = flag('backend', 'wasm');
const workers = Number(flag('workers', '2'));
const steps = Number(flag('steps', '5'));
const rounds = Number(flag('rounds', '2'));
await useBackend(backend);

const config = { ...TEXT_PRESETS['text-tiny'], dropout: 0.3, dropPath: 0.1, vocabSize: 30522, numLabels: 2, maxLength: 256 } as TextConfig;
validateConfig(config);
const model = new RevColText(config, 1);
const optimizer = new AdamW(model);
const [batchSize, length] = [32, 256];
const lengths = Array.from({ length: batchSize }, (_, i) => 200 + Math.round((56 * i) / (batchSize - 1)));
const ids = Int32Array.from({ length: batchSize * length }, (_, i) => (i % length < lengths[Math.floor(i / length)]! ? (i * 7919) % 30522 : 0));
const mask = Int32Array.from({ length: batchSize * length }, (_, i) => (i % length < lengths[Math.floor(i / length)]! ? 1 : 0));
const batch = {
  inputIds: tf.tensor2d(ids, [batchSize, length], 'int32'),
  attentionMask: tf.tensor2d(mask, [batchSize, length], 'int32'),
  labels: tf.tensor1d(Array.from({ length: batchSize }, (_, i) => i % 2), 'int32'),
};
const pool = await startTextWorkers(model, workers, 0);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function step(n: number, seed: number): Promise<void> {
  const { loss, grads } = n === 1 ? model.lossAndGradients(batch, { seed }) : await pool.lossAndGradients(textShards(batch, pool.shards), seed);
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
  tf.dispose([batch.inputIds, batch.attentionMask, batch.labels]);
  optimizer.dispose();
  model.dispose();
}
