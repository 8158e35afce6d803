import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
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

/** How texts are read: how a long one is cut, or into how many windows at most (windows > 1, single texts). */
export interface TextReading {
  truncation?: Truncation;
  /** At most this many overlapping windows of maxLength tokens per text (1 or absent: one, cut by `truncation`). */
  windows?: number;
}

/**
 * Token ids and masks (and token types, for sentence pairs) of a data set, encoded once and cut
 * into batches on demand. With windows, a row of ids is a window and `first` says where each
 * text's windows start; without, a row is a text.
 */
export class EncodedTexts {
  readonly ids: Int32Array;
  readonly mask: Int32Array;
  /** Sentence pairs: each token's segment (0: text a, 1: text b); null for single texts. */
  readonly types: Int32Array | null;
  /** Per text: its longest row's token count (what its batch is padded to). */
  readonly lengths: Int32Array;
  /** Texts not read whole (cut, or with text beyond their last window). */
  readonly truncated: number;
  /** Windows: text i's rows are first[i] … first[i+1]-1; null when a row is a text. */
  readonly first: Int32Array | null = null;
  /** Text tokens (special tokens aside) the rows cover, and the texts have, over all texts. */
  readonly coverage: { covered: number; tokens: number } | null = null;
  /** `pairs`: the second text of each (sentence pairs, encoded `[CLS] a [SEP] b [SEP]`, cut longest-first whatever `truncation`). */
  constructor(tokenizer: TextTokenizer, texts: string[], readonly maxLength: number, readonly labels?: EncodedLabels, pairs?: string[], reading: TextReading = {}) {
    const truncation = reading.truncation ?? 'head';
    const windows = reading.windows ?? 1;
    if (windows > 1 && (pairs || truncation !== 'head')) fail('windows read single texts from their start: not with sentence pairs or head+tail truncation');
    if (windows > 1) {
      const enc = tokenizer.encodeWindows(texts, maxLength, windows);
      this.ids = enc.ids;
      this.mask = enc.mask;
      this.types = null;
      this.first = enc.first;
      let truncated = 0;
      let covered = 0;
      let tokens = 0;
      texts.forEach((_, i) => {
        if (enc.covered[i]! < enc.tokens[i]!) truncated++;
        covered += enc.covered[i]!;
        tokens += enc.tokens[i]!;
      });
      this.truncated = truncated;
      this.coverage = { covered, tokens };
    } else if (pairs) {
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
      for (const row of this.rowsOfText(i)) {
        let k = 0;
        for (let j = 0; j < maxLength; j++) k += this.mask[row * maxLength + j] ? 1 : 0;
        n = Math.max(n, k);
      }
      this.lengths[i] = n;
    }
  }

  /** The rows (windows) of text i. */
  private rowsOfText(i: number): number[] {
    if (!this.first) return [i];
    return Array.from({ length: this.first[i + 1]! - this.first[i]! }, (_, k) => this.first![i]! + k);
  }
  get size(): number {
    return this.lengths.length;
  }
  /**
   * Ids and mask of the given rows, cut to their longest text (rounded up to a multiple of 8):
   * padded positions do not change a model's output, so the shorter batch gives the same
   * result for less work.
   */
  rowsOf(texts: number[]): { ids: Int32Array; mask: Int32Array; types: Int32Array | null; width: number; windowWeights: Float32Array | null } {
    const t = this.maxLength;
    let width = 1;
    for (const r of texts) width = Math.max(width, this.lengths[r]);
    const rows = texts.flatMap((i) => this.rowsOfText(i));
    width = Math.min(t, Math.ceil(width / 8) * 8);
    const ids = new Int32Array(rows.length * width);
    const mask = new Int32Array(rows.length * width);
    const types = this.types ? new Int32Array(rows.length * width) : null;
    rows.forEach((r, i) => {
      ids.set(this.ids.subarray(r * t, r * t + width), i * width);
      mask.set(this.mask.subarray(r * t, r * t + width), i * width);
      types?.set(this.types!.subarray(r * t, r * t + width), i * width);
    });
    return { ids, mask, types, width, windowWeights: this.windowWeights(texts, rows.length) };
  }

  /** [texts, windows] weights that average each text's windows; null when every text is one window (then rows are texts). */
  private windowWeights(texts: number[], windows: number): Float32Array | null {
    if (!this.first || texts.every((i) => this.first![i + 1]! - this.first![i]! === 1)) return null;
    const w = new Float32Array(texts.length * windows);
    let at = 0;
    texts.forEach((i, b) => {
      const n = this.first![i + 1]! - this.first![i]!;
      for (let k = 0; k < n; k++) w[b * windows + at + k] = 1 / n;
      at += n;
    });
    return w;
  }

  /** A batch of the given rows as tensors (see rowsOf); `corrupt` may replace the ids (input noise). */
  batch(rows: number[], corrupt?: (ids: Int32Array, mask: Int32Array) => Int32Array): TextBatch {
    const { ids, mask, types, width, windowWeights } = this.rowsOf(rows);
    const n = ids.length / width;
    return {
      inputIds: tf.tensor2d(corrupt ? corrupt(ids, mask) : ids, [n, width], 'int32'),
      attentionMask: tf.tensor2d(mask, [n, width], 'int32'),
      labels: this.labelTensor(rows),
      ...(types ? { tokenTypeIds: tf.tensor2d(types, [n, width], 'int32') } : {}),
      ...(windowWeights ? { windowWeights: tf.tensor2d(windowWeights, [rows.length, n], 'float32') } : {}),
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
  tf.dispose([b.inputIds, b.attentionMask, b.labels, ...(b.tokenTypeIds ? [b.tokenTypeIds] : []), ...(b.windowWeights ? [b.windowWeights] : [])]);
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

/** The texts whose lengths stand for all of them: all, or a seeded 2,000. */
function lengthSample(texts: string[], seed: number): string[] {
  return texts.length > 2000 ? seededPermutation(texts.length, seed).slice(0, 2000).map((i) => texts[i]!) : texts;
}

/**
 * How to cut texts longer than maxLength when no one said: 'head+tail' when the median text is
 * more than twice maxLength (most texts would lose most of their tokens, and with them their
 * end), else 'head'. Chosen on two evaluation sets (docs/text.md, "Defaults chosen by
 * measurement"): whole e-mails (median 1,356 tokens at 256) gained 2.7 points of validation
 * accuracy with head+tail; passages of about 268 tokens did not. Counts lengthSample's texts,
 * each up to 2·maxLength + 1 tokens; `median` is that capped count.
 */
export function chooseTruncation(tokenizer: TextTokenizer, texts: string[], maxLength: number, seed = 0): { truncation: Truncation; median: number } {
  if (texts.length === 0) return { truncation: 'head', median: 0 };
  const counts = tokenizer.countTokens(lengthSample(texts, seed), 2 * maxLength).sort((a, b) => a - b);
  const median = counts[Math.floor((counts.length - 1) / 2)]!;
  return { truncation: median > 2 * maxLength ? 'head+tail' : 'head', median };
}

/**
 * A max length that covers most texts: the 95th percentile of token counts, rounded up to a
 * multiple of 32, between 32 and the cap.
 */
export function chooseMaxLength(tokenizer: TextTokenizer, texts: string[], cap: number, seed = 0): number {
  const counts = tokenizer.countTokens(lengthSample(texts, seed), cap).sort((a, b) => a - b);
  const p95 = counts[Math.min(counts.length - 1, Math.floor(counts.length * 0.95))] ?? cap;
  return Math.max(Math.min(32, cap), Math.min(cap, Math.ceil(p95 / 32) * 32));
}
