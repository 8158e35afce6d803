import * as tf from '@tensorflow/tfjs-core';
import { mixSeed } from '../core/random.js';
import { seededPermutation } from '../data/text.js';
import type { TextBatch } from './model.js';
import type { TextTokenizer } from './tokenizer.js';

/**
 * What a batch's labels are: class ids; or float values, `width` per text: 0 for one number per
 * text (regression, a [B] tensor), numLabels for 0/1 per label (multi-label, [B, numLabels]).
 */
export type EncodedLabels = Int32Array | { values: Float32Array; width: number };

/** How a text longer than maxLength is cut: its start ('head'), or its start and its end ('head+tail', single texts). */
export type Truncation = 'head' | 'head+tail';

/** Token ids and masks (and token types, for sentence pairs) of a data set, encoded once and cut into batches on demand. */
export class EncodedTexts {
  readonly ids: Int32Array;
  readonly mask: Int32Array;
  /** Sentence pairs: each token's segment (0: text a, 1: text b); null for single texts. */
  readonly types: Int32Array | null;
  readonly lengths: Int32Array;
  readonly truncated: number;
  /** `pairs`: the second text of each (sentence pairs, encoded `[CLS] a [SEP] b [SEP]`, cut longest-first whatever `truncation`). */
  constructor(tokenizer: TextTokenizer, texts: string[], readonly maxLength: number, readonly labels?: EncodedLabels, pairs?: string[], truncation: Truncation = 'head') {
    if (pairs) {
      const enc = tokenizer.encodePairs(texts, pairs, maxLength);
      this.ids = enc.ids;
      this.mask = enc.mask;
      this.types = enc.types;
      this.truncated = enc.truncated;
    } else if (truncation === 'head+tail') {
      const enc = tokenizer.encodeHeadTail(texts, maxLength);
      this.ids = enc.ids;
      this.mask = enc.mask;
      this.types = null;
      this.truncated = enc.truncated;
    } else {
      const enc = tokenizer.encode(texts, maxLength);
      this.ids = enc.inputIds.dataSync() as Int32Array;
      this.mask = enc.attentionMask.dataSync() as Int32Array;
      this.types = null;
      this.truncated = enc.truncated;
      enc.inputIds.dispose();
      enc.attentionMask.dispose();
    }
    this.lengths = new Int32Array(texts.length);
    for (let i = 0; i < texts.length; i++) {
      let n = 0;
      for (let j = 0; j < maxLength; j++) n += this.mask[i * maxLength + j] ? 1 : 0;
      this.lengths[i] = n;
    }
  }
  get size(): number {
    return this.lengths.length;
  }
  /**
   * Ids and mask of the given rows, cut to their longest text (rounded up to a multiple of 8):
   * padded positions do not change a model's output, so the shorter batch gives the same
   * result for less work.
   */
  rowsOf(rows: number[]): { ids: Int32Array; mask: Int32Array; types: Int32Array | null; width: number } {
    const t = this.maxLength;
    let width = 1;
    for (const r of rows) width = Math.max(width, this.lengths[r]);
    width = Math.min(t, Math.ceil(width / 8) * 8);
    const ids = new Int32Array(rows.length * width);
    const mask = new Int32Array(rows.length * width);
    const types = this.types ? new Int32Array(rows.length * width) : null;
    rows.forEach((r, i) => {
      ids.set(this.ids.subarray(r * t, r * t + width), i * width);
      mask.set(this.mask.subarray(r * t, r * t + width), i * width);
      types?.set(this.types!.subarray(r * t, r * t + width), i * width);
    });
    return { ids, mask, types, width };
  }

  /** A batch of the given rows as tensors (see rowsOf); `corrupt` may replace the ids (input noise). */
  batch(rows: number[], corrupt?: (ids: Int32Array, mask: Int32Array) => Int32Array): TextBatch {
    const { ids, mask, types, width } = this.rowsOf(rows);
    return {
      inputIds: tf.tensor2d(corrupt ? corrupt(ids, mask) : ids, [rows.length, width], 'int32'),
      attentionMask: tf.tensor2d(mask, [rows.length, width], 'int32'),
      labels: this.labelTensor(rows),
      ...(types ? { tokenTypeIds: tf.tensor2d(types, [rows.length, width], 'int32') } : {}),
    };
  }

  private labelTensor(rows: number[]): tf.Tensor {
    const labels = this.labels;
    if (!labels) return tf.tensor1d(new Array(rows.length).fill(0), 'int32');
    if (labels instanceof Int32Array) return tf.tensor1d(rows.map((r) => labels[r]!), 'int32');
    const { values, width } = labels;
    if (width === 0) return tf.tensor1d(rows.map((r) => values[r]!), 'float32');
    const out = new Float32Array(rows.length * width);
    rows.forEach((r, i) => out.set(values.subarray(r * width, (r + 1) * width), i * width));
    return tf.tensor2d(out, [rows.length, width], 'float32');
  }
}

export function disposeBatch(b: TextBatch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.labels, ...(b.tokenTypeIds ? [b.tokenTypeIds] : [])]);
}

/**
 * Shuffled batches of texts of similar length: a shuffled order is cut into pools of 64
 * batches, each pool is sorted by length and cut into batches, and the batches are shuffled.
 * Batches are cut to their longest text, so less padding means less work; every text is
 * still seen once per epoch, in a seeded order.
 */
export function lengthGroupedBatches(lengths: ArrayLike<number>, batchSize: number, seed: number): number[][] {
  const order = seededPermutation(lengths.length, seed);
  const pool = batchSize * 64;
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += pool) {
    const chunk = order.slice(start, start + pool).sort((a, b) => lengths[a] - lengths[b]);
    for (let b = 0; b < chunk.length; b += batchSize) batches.push(chunk.slice(b, b + batchSize));
  }
  return seededPermutation(batches.length, mixSeed(seed, 1)).map((i) => batches[i]);
}

/**
 * A max length that covers most texts: the 95th percentile of token counts, rounded up to a
 * multiple of 32, between 32 and the cap.
 */
export function chooseMaxLength(tokenizer: TextTokenizer, texts: string[], cap: number, seed = 0): number {
  const sample = texts.length > 2000 ? seededPermutation(texts.length, seed).slice(0, 2000).map((i) => texts[i]) : texts;
  const counts = tokenizer.countTokens(sample, cap).sort((a, b) => a - b);
  const p95 = counts[Math.min(counts.length - 1, Math.floor(counts.length * 0.95))] ?? cap;
  return Math.max(Math.min(32, cap), Math.min(cap, Math.ceil(p95 / 32) * 32));
}
