import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { startTextWorkers, textShards } from '../src/text/data-parallel-text.js';
import { RevColText, type TextBatch, type TextConfig } from '../src/text/model.js';
import { shardRanges } from '../src/train/data-parallel.js';
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

beforeAll(async () => {
  await useBackend('cpu');
});

describe('shard ranges', () => {
  it('cuts rows into contiguous, near-equal parts', () => {
    expect(shardRanges(7, 3)).toEqual([[0, 3], [3, 5], [5, 7]]);
    expect(shardRanges(1, 2)).toEqual([[0, 1], [1, 1]]);
    expect(shardRanges(8, 2)).toEqual([[0, 4], [4, 8]]);
  });
});

describe('data-parallel gradients', () => {
  for (const reversible of [true, false]) {
    it(`equal the single-process full-batch gradients (${reversible ? 'reversible' : 'plain'})`, async () => {
      const model = new RevColText({ ...CONFIG, reversible }, 3);
      spreadShortcutScales(model.columns, CONFIG.columns, CONFIG.hidden.length, (c, l) => 10 + c * 4 + l);
      const batch = makeBatch(7, 24, 1);
      const before = tf.memory().numTensors;
      const pool = await startTextWorkers(model, 3, 0.1);
      try {
        const full = model.lossAndGradients(batch, { seed: 5, labelSmoothing: 0.1 });
        const dp = await pool.lossAndGradients(textShards(batch, 3), 5);
        expect(dp.grads.size).toBe(full.grads.size);
        const fullLoss = full.loss.dataSync()[0]!;
        expect(Math.abs(dp.loss.dataSync()[0]! - fullLoss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fullLoss)));
        for (const [v, g] of full.grads) {
          const a = g.dataSync();
          const b = dp.grads.get(v)!.dataSync();
          let diff = 0;
          let scale = 0;
          for (let i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
            scale = Math.max(scale, Math.abs(a[i]!));
          }
          expect(diff, v.name).toBeLessThanOrEqual(1e-4 * Math.max(scale, 1e-6));
        }
        tf.dispose([full.loss, dp.loss, ...full.grads.values(), ...dp.grads.values()]);
      } finally {
        await pool.close();
      }
      expect(tf.memory().numTensors).toBe(before);
      dispose(batch);
      model.dispose();
    });
  }
});
