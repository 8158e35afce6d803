/**
 * Text models on data-parallel workers (src/train/data-parallel.ts): how a TextBatch is
 * cut into plain shards (contiguous texts; a text's windows stay together), and the replica a
 * worker builds (this module is loaded by URL in each worker: `createTextReplica`); and how a
 * batch whose loss is a mean over token positions (masked LM, token classification) is cut
 * (`positionShards`; their replicas in data-parallel-mlm.ts and data-parallel-token.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LossAndGradients } from '../core/gradients.js';
import { DataParallel, type Replica, type ReplicaSpec, type Shard, shardRanges } from '../train/data-parallel.js';
import { disposeBatch } from './encoded.js';
import { RevColText, type TextBatch, type TextConfig } from './model.js';

/** One shard of a TextBatch, as plain arrays (see TextBatch). */
export interface TextShard {
  /** Rows of ids (texts, or windows) and their width in tokens. */
  rows: number;
  width: number;
  ids: Int32Array;
  mask: Int32Array;
  types: Int32Array | null;
  labels: { values: Int32Array | Float32Array; shape: number[]; dtype: 'int32' | 'float32' };
  /** [texts, rows] when the rows are windows of texts. */
  windowWeights: Float32Array | null;
}

/** What a worker builds its replica from. */
export interface TextReplicaOptions {
  config: TextConfig;
  labelSmoothing: number;
}

/** The texts [a, b)'s rows (windows) [r0, r1) in a window-weight matrix [texts, rows]: each text's windows are contiguous, in text order. */
function windowRows(w: Float32Array, rowsTotal: number, a: number, b: number): [number, number] {
  let r0 = -1;
  let r1 = -1;
  for (let t = a; t < b; t++) {
    for (let r = 0; r < rowsTotal; r++) {
      if (w[t * rowsTotal + r] !== 0) {
        if (r0 < 0) r0 = r;
        r1 = r + 1;
      }
    }
  }
  return r0 < 0 ? [0, 0] : [r0, r1];
}

/**
 * Cuts a batch into n shards of contiguous texts (near-equal counts); each shard's rows are cut
 * to its longest (rounded up to a multiple of 8, as EncodedTexts.batch does), which changes no
 * output. `rows` of each shard counts texts: its share of the batch's mean loss.
 */
export function textShards(batch: TextBatch, n: number): Array<Shard<TextShard>> {
  const texts = batch.labels.shape[0]!;
  const [rowsTotal, t] = batch.inputIds.shape;
  const ids = batch.inputIds.dataSync() as Int32Array;
  const mask = batch.attentionMask.dataSync() as Int32Array;
  const types = batch.tokenTypeIds ? (batch.tokenTypeIds.dataSync() as Int32Array) : null;
  const labelValues = batch.labels.dataSync() as Int32Array | Float32Array;
  const labelDtype = batch.labels.dtype === 'int32' ? 'int32' : 'float32';
  const perText = batch.labels.size / Math.max(texts, 1);
  const weights = batch.windowWeights ? (batch.windowWeights.dataSync() as Float32Array) : null;
  return shardRanges(texts, n).map(([a, b]) => {
    const [r0, r1] = weights ? windowRows(weights, rowsTotal, a, b) : [a, b];
    const rows = r1 - r0;
    let longest = 1;
    for (let r = r0; r < r1; r++) {
      for (let j = t - 1; j >= longest; j--) {
        if (mask[r * t + j]) {
          longest = j + 1;
          break;
        }
      }
    }
    const width = Math.min(t, Math.ceil(longest / 8) * 8);
    const cut = (src: Int32Array) => {
      const out = new Int32Array(rows * width);
      for (let r = 0; r < rows; r++) out.set(src.subarray((r0 + r) * t, (r0 + r) * t + width), r * width);
      return out;
    };
    let windowWeights: Float32Array | null = null;
    if (weights) {
      windowWeights = new Float32Array((b - a) * rows);
      for (let i = 0; i < b - a; i++) windowWeights.set(weights.subarray((a + i) * rowsTotal + r0, (a + i) * rowsTotal + r1), i * rows);
    }
    const Labels = labelDtype === 'int32' ? Int32Array : Float32Array;
    return {
      rows: b - a,
      data: {
        rows,
        width,
        ids: cut(ids),
        mask: cut(mask),
        types: types ? cut(types) : null,
        labels: { values: Labels.from(labelValues.subarray(a * perText, b * perText)), shape: [b - a, ...batch.labels.shape.slice(1)], dtype: labelDtype },
        windowWeights,
      },
    };
  });
}

/** A shard as a TextBatch of tensors (the caller disposes, e.g. with disposeBatch). */
export function shardBatch(s: TextShard): TextBatch {
  const texts = s.labels.shape[0]!;
  return {
    inputIds: tf.tensor2d(s.ids, [s.rows, s.width], 'int32'),
    attentionMask: tf.tensor2d(s.mask, [s.rows, s.width], 'int32'),
    labels: tf.tensor(s.labels.values, s.labels.shape, s.labels.dtype),
    ...(s.types ? { tokenTypeIds: tf.tensor2d(s.types, [s.rows, s.width], 'int32') } : {}),
    ...(s.windowWeights ? { windowWeights: tf.tensor2d(s.windowWeights, [texts, s.rows], 'float32') } : {}),
  };
}

/** A replica computing shards with `model` (the trained model in the main thread, a copy in a worker). */
export function textReplica(model: RevColText, labelSmoothing: number): Replica<TextShard> {
  return {
    model,
    lossAndGradients(shard: TextShard, seed: number): LossAndGradients {
      const batch = shardBatch(shard);
      try {
        return model.lossAndGradients(batch, { seed, labelSmoothing });
      } finally {
        disposeBatch(batch);
      }
    },
    dispose: () => model.dispose(),
  };
}

/** The factory a worker calls (by name, from the spec): a fresh model of the config; its weights come from the main thread every step. */
export function createTextReplica(options: TextReplicaOptions): Replica<TextShard> {
  return textReplica(new RevColText(options.config, 0), options.labelSmoothing);
}

/** Workers for `model`: `workers - 1` threads, each with a replica of it. */
export function startTextWorkers(model: RevColText, workers: number, labelSmoothing: number): Promise<DataParallel<TextShard>> {
  const spec: ReplicaSpec = { module: import.meta.url, factory: 'createTextReplica', options: { config: model.config, labelSmoothing } satisfies TextReplicaOptions };
  return DataParallel.start({ workers, spec, local: textReplica(model, labelSmoothing) });
}

/**
 * One shard of a batch whose loss is a mean over some flattened positions (b·T + t) of the top
 * level: masked-LM pre-training (the masked tokens) and token classification (the scored
 * pieces). Plain arrays; positions are the shard's own (row within the shard · width + t).
 */
export interface PositionShard {
  rows: number;
  width: number;
  ids: Int32Array;
  mask: Int32Array;
  positions: Int32Array;
  targets: Int32Array;
  /** Token classification with word features: each token's word and shape ids [rows, width]. */
  wordIds: Int32Array | null;
  shapeIds: Int32Array | null;
}

/** The tensors a position batch holds (MaskedTextBatch, TokenBatch). */
export interface PositionBatchTensors {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  positions: tf.Tensor1D;
  targets: tf.Tensor1D;
  words?: { wordIds: tf.Tensor2D; shapeIds: tf.Tensor2D };
}

/**
 * Cuts a position batch into n shards of contiguous rows (near-equal counts), each cut to its
 * longest row (rounded up to 8, which changes no output), its positions renumbered. Its weight is
 * its number of positions: the loss is a mean over them, so weighting by rows would not give the
 * full batch's mean when rows hold different numbers of them.
 */
export function positionShards(batch: PositionBatchTensors, n: number): Array<Shard<PositionShard>> {
  const [rowsTotal, t] = batch.inputIds.shape;
  const ids = batch.inputIds.dataSync() as Int32Array;
  const mask = batch.attentionMask.dataSync() as Int32Array;
  const positions = batch.positions.dataSync() as Int32Array;
  const targets = batch.targets.dataSync() as Int32Array;
  const wordIds = batch.words ? (batch.words.wordIds.dataSync() as Int32Array) : null;
  const shapeIds = batch.words ? (batch.words.shapeIds.dataSync() as Int32Array) : null;
  return shardRanges(rowsTotal, n).map(([a, b]) => {
    const rows = b - a;
    let longest = 1;
    for (let r = a; r < b; r++) {
      for (let j = t - 1; j >= longest; j--) {
        if (mask[r * t + j]) {
          longest = j + 1;
          break;
        }
      }
    }
    const picked: number[] = [];
    for (let k = 0; k < positions.length; k++) {
      const p = positions[k]!;
      if (p >= a * t && p < b * t) {
        picked.push(k);
        longest = Math.max(longest, (p % t) + 1);
      }
    }
    const width = Math.min(t, Math.ceil(longest / 8) * 8);
    const cut = (src: Int32Array) => {
      const out = new Int32Array(rows * width);
      for (let r = 0; r < rows; r++) out.set(src.subarray((a + r) * t, (a + r) * t + width), r * width);
      return out;
    };
    // Positions keep their order (row, then token): the same terms, in the same order, as in the full batch's mean.
    const ownPositions = Int32Array.from(picked, (k) => {
      const p = positions[k]!;
      return (Math.floor(p / t) - a) * width + (p % t);
    });
    return {
      rows,
      weight: picked.length,
      data: {
        rows,
        width,
        ids: cut(ids),
        mask: cut(mask),
        positions: ownPositions,
        targets: Int32Array.from(picked, (k) => targets[k]!),
        wordIds: wordIds ? cut(wordIds) : null,
        shapeIds: shapeIds ? cut(shapeIds) : null,
      },
    };
  });
}

/** A position shard as tensors (the caller disposes them). */
export function positionShardTensors(s: PositionShard): PositionBatchTensors {
  return {
    inputIds: tf.tensor2d(s.ids, [s.rows, s.width], 'int32'),
    attentionMask: tf.tensor2d(s.mask, [s.rows, s.width], 'int32'),
    positions: tf.tensor1d(s.positions, 'int32'),
    targets: tf.tensor1d(s.targets, 'int32'),
    ...(s.wordIds && s.shapeIds ? { words: { wordIds: tf.tensor2d(s.wordIds, [s.rows, s.width], 'int32'), shapeIds: tf.tensor2d(s.shapeIds, [s.rows, s.width], 'int32') } } : {}),
  };
}

/** Disposes a position batch's tensors. */
export function disposePositionTensors(b: PositionBatchTensors): void {
  tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets]);
  if (b.words) tf.dispose([b.words.wordIds, b.words.shapeIds]);
}
