import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { type AugmentOptions, SeededRandom, shuffledIndices, writeAffineNormalised, writeNormalised } from './augment.js';

/** A set of labelled square RGB images held in memory as pixels in [0, 1], NHWC. */
export interface ImageSet {
  /** count × size × size × 3 floats in [0, 1]. */
  pixels: Float32Array;
  labels: Int32Array;
  count: number;
  size: number;
}

/** Kind of images: decides the augmentation (no flips for digits). */
export type ImageKind = 'digits' | 'natural';

/** Where a dataset came from; stored in the model's meta so that eval can find the same split. */
export type VisionDataSource =
  | { type: 'mnist'; split: string }
  | { type: 'folder'; train: string; eval: string | null; heldOutFraction: number | null; splitSeed: number };

export interface VisionData {
  train: ImageSet;
  test: ImageSet;
  classNames: string[];
  kind: ImageKind;
  source: VisionDataSource;
}

export interface Normalisation {
  mean: [number, number, number];
  std: [number, number, number];
}

/** A batch ready for the model: normalised NHWC input and int32 labels (the caller disposes). */
export interface VisionBatch {
  x: tf.Tensor4D;
  labels: tf.Tensor1D;
}

/** Per-channel mean and standard deviation of a set's pixels (the training set's, for normalisation). */
export function channelStats(set: ImageSet): Normalisation {
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  const px = set.pixels;
  for (let i = 0; i < px.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = px[i + c];
      sum[c] += v;
      sq[c] += v * v;
    }
  }
  const n = Math.max(1, px.length / 3);
  const mean = sum.map((s) => s / n);
  // A constant channel would divide by 0; 1e-3 keeps it finite.
  const std = sq.map((s, c) => Math.max(1e-3, Math.sqrt(Math.max(0, s / n - mean[c] * mean[c]))));
  const round = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    mean: mean.map(round) as [number, number, number],
    std: std.map(round) as [number, number, number],
  };
}

/** Zero-pads (centred) a set of smaller images to `size`; images already that size are returned as is. */
export function padImages(set: ImageSet, size: number): ImageSet {
  if (set.size === size) return set;
  if (set.size > size) fail(`images of ${set.size}×${set.size} px do not fit a ${size}×${size} input; use a preset with a larger input size`);
  const off = Math.floor((size - set.size) / 2);
  const pixels = new Float32Array(set.count * size * size * 3);
  const rowLen = set.size * 3;
  for (let n = 0; n < set.count; n++) {
    for (let y = 0; y < set.size; y++) {
      const src = (n * set.size * set.size + y * set.size) * 3;
      const dst = (n * size * size + (y + off) * size + off) * 3;
      pixels.set(set.pixels.subarray(src, src + rowLen), dst);
    }
  }
  return { pixels, labels: set.labels, count: set.count, size };
}

/** The samples of `set` at `indices`, in that order. */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const per = set.size * set.size * 3;
  const pixels = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    pixels.set(set.pixels.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j];
  }
  return { pixels, labels, count: indices.length, size: set.size };
}

/**
 * A stratified split: in each class, a seeded shuffle, then `fraction` of the class (at least
 * one sample when the class has two or more) goes to the held-out part.
 */
export function stratifiedSplit(labels: Int32Array, fraction: number, seed: number): { train: number[]; heldOut: number[] } {
  if (!(fraction > 0 && fraction < 1)) fail(`the held-out fraction must be between 0 and 1, got ${fraction}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    if (!byClass.has(l)) byClass.set(l, []);
    byClass.get(l)!.push(i);
  });
  const train: number[] = [];
  const heldOut: number[] = [];
  for (const [label, idx] of [...byClass.entries()].sort((a, b) => a[0] - b[0])) {
    const order = shuffledIndices(idx.length, mixSeed(seed, label));
    const take = idx.length >= 2 ? Math.max(1, Math.round(idx.length * fraction)) : 0;
    order.forEach((o, k) => (k < take ? heldOut : train).push(idx[o]));
  }
  train.sort((a, b) => a - b);
  heldOut.sort((a, b) => a - b);
  return { train, heldOut };
}

/** How many samples of each class a set holds. */
export function classCounts(set: ImageSet, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const l of set.labels) counts[l]++;
  return counts;
}

/** One batch, normalised, without augmentation, of samples `indices`. */
export function makeBatch(
  set: ImageSet,
  indices: ArrayLike<number>,
  norm: Normalisation,
  augment?: { options: AugmentOptions; rng: SeededRandom },
): VisionBatch {
  const { size } = set;
  const per = size * size * 3;
  const data = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    let dy = 0;
    let dx = 0;
    let flip = false;
    if (augment) {
      const { pad, rotate = 0, scale = 0 } = augment.options;
      dy = augment.rng.int(-pad, pad);
      dx = augment.rng.int(-pad, pad);
      flip = augment.options.flip && augment.rng.next() < 0.5;
      if (rotate > 0 || scale > 0) {
        const angle = ((augment.rng.next() * 2 - 1) * rotate * Math.PI) / 180;
        const factor = 1 + (augment.rng.next() * 2 - 1) * scale;
        writeAffineNormalised(set.pixels, j * per, size, size, data, i * per, norm.mean, norm.std, angle, factor, dy, dx, flip);
        labels[i] = set.labels[j];
        continue;
      }
    }
    writeNormalised(set.pixels, j * per, size, size, data, i * per, norm.mean, norm.std, dy, dx, flip);
    labels[i] = set.labels[j];
  }
  return {
    x: tf.tensor4d(data, [indices.length, size, size, 3]),
    labels: tf.tensor1d(labels, 'int32'),
  };
}

/** One training epoch: a seeded shuffle, then augmented batches (the last one may be smaller). */
export function* trainingBatches(
  set: ImageSet,
  batchSize: number,
  norm: Normalisation,
  augment: AugmentOptions | null,
  seed: number,
): Generator<VisionBatch> {
  const order = shuffledIndices(set.count, seed);
  const rng = new SeededRandom(mixSeed(seed, 0xa06));
  for (let start = 0; start < set.count; start += batchSize) {
    const idx = order.subarray(start, Math.min(set.count, start + batchSize));
    yield makeBatch(set, idx, norm, augment ? { options: augment, rng } : undefined);
  }
}

/** Batches in order, normalised, no augmentation (for evaluation and prediction). */
export function* evaluationBatches(set: ImageSet, batchSize: number, norm: Normalisation): Generator<VisionBatch> {
  for (let start = 0; start < set.count; start += batchSize) {
    const end = Math.min(set.count, start + batchSize);
    const idx = Array.from({ length: end - start }, (_, k) => start + k);
    yield makeBatch(set, idx, norm);
  }
}

/** Accuracy, per-class accuracy (recall) and the confusion matrix (rows: true class, columns: predicted). */
/**
 * Runs `logits` over a set in batches (no augmentation) and returns the predicted class of
 * every sample. `logits` must not keep the tensors it is given.
 */
export async function predictClasses(
  set: ImageSet,
  norm: Normalisation,
  batchSize: number,
  logits: (x: tf.Tensor4D) => tf.Tensor2D,
): Promise<Int32Array> {
  const out = new Int32Array(set.count);
  let at = 0;
  for (const batch of evaluationBatches(set, batchSize, norm)) {
    const pred = tf.tidy(() => tf.argMax(logits(batch.x), -1));
    out.set(await pred.data(), at);
    at += batch.labels.shape[0];
    pred.dispose();
    batch.x.dispose();
    batch.labels.dispose();
  }
  return out;
}

/** Resizes a set's images (bilinear) to size×size, in chunks to bound memory (read back asynchronously, as webgpu needs). */
export async function resizeImages(set: ImageSet, size: number): Promise<ImageSet> {
  if (set.size === size) return set;
  const per = set.size * set.size * 3;
  const outPer = size * size * 3;
  const pixels = new Float32Array(set.count * outPer);
  const chunk = 256;
  for (let start = 0; start < set.count; start += chunk) {
    const n = Math.min(chunk, set.count - start);
    const resized = tf.tidy(() =>
      tf.image.resizeBilinear(tf.tensor4d(set.pixels.subarray(start * per, (start + n) * per), [n, set.size, set.size, 3]), [size, size], true),
    );
    try {
      pixels.set((await resized.data()) as Float32Array, start * outPer);
    } finally {
      resized.dispose();
    }
  }
  return { pixels, labels: set.labels, count: set.count, size };
}

/** Fits a set to a model's input side: centred zero padding when it is smaller (up to twice), bilinear resizing otherwise. */
export async function fitImages(set: ImageSet, size: number): Promise<ImageSet> {
  if (set.size === size) return set;
  if (set.size < size && size <= 2 * set.size) return padImages(set, size);
  return resizeImages(set, size);
}
