/**
 * Image classification on data-parallel workers (src/train/data-parallel.ts): how a VisionBatch
 * is cut into plain shards (contiguous images with their labels), and the replica a worker
 * builds (this module is loaded by URL in each worker: `createVisionReplica`).
 *
 * Augmentation happens when the batch is made, on the main thread, before it is cut: it does not
 * depend on the worker count. What does: drop path, which each shard draws from its own seed
 * (shardSeed), so a run is the same for a given seed and worker count. Every term of the vision
 * loss is a mean over the batch's images (cross-entropy; the reconstruction BCE over its images'
 * pixels), so the shards' losses weighted by their share of images sum to the full batch's.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LossAndGradients, TrainingMode } from '../core/gradients.js';
import { DataParallel, type Replica, type ReplicaSpec, type Shard, shardRanges } from '../train/data-parallel.js';
import { RevColVision } from './model.js';
import type { VisionConfig } from './presets.js';

/** One shard of a batch, as plain arrays: `images` NHWC images of height × width × 3, one label each. */
export interface VisionShard {
  images: number;
  height: number;
  width: number;
  x: Float32Array;
  labels: Int32Array;
}

/** What a worker builds its replica from (all structured-cloneable). */
export interface VisionReplicaOptions {
  config: VisionConfig;
  mode: TrainingMode;
  labelSmoothing: number;
}

/** Cuts a batch (x [B, H, W, 3], labels [B]) into n shards of contiguous images; `rows` counts images. */
export function visionShards(x: tf.Tensor4D, labels: tf.Tensor1D, n: number): Array<Shard<VisionShard>> {
  const [b, height, width, channels] = x.shape;
  const pixels = x.dataSync() as Float32Array;
  const classes = labels.dataSync();
  const per = height * width * channels;
  return shardRanges(b, n).map(([from, to]) => ({
    rows: to - from,
    data: {
      images: to - from,
      height,
      width,
      // slice: a copy of its own, so that the batch's tensor can be disposed while a shard travels
      x: pixels.slice(from * per, to * per),
      labels: Int32Array.from(classes.subarray(from, to)),
    },
  }));
}

/** A replica computing shards with `model` (the trained model in the main thread, a copy in a worker). */
export function visionReplica(model: RevColVision, mode: TrainingMode, labelSmoothing: number): Replica<VisionShard> {
  return {
    model,
    lossAndGradients(shard: VisionShard, seed: number): LossAndGradients {
      const x = tf.tensor4d(shard.x, [shard.images, shard.height, shard.width, 3], 'float32');
      const labels = tf.tensor1d(shard.labels, 'int32');
      try {
        return model.lossAndGradients(x, labels, { mode, seed, labelSmoothing });
      } finally {
        tf.dispose([x, labels]);
      }
    },
    dispose: () => model.dispose(),
  };
}

/** The factory a worker calls (by name, from the spec): a fresh model of the config; its weights come from the main thread every step. */
export function createVisionReplica(options: VisionReplicaOptions): Replica<VisionShard> {
  const model = new RevColVision(options.config, 0);
  model.mode = options.mode;
  return visionReplica(model, options.mode, options.labelSmoothing);
}

/** Workers for `model`: `workers - 1` threads, each with a replica of it. */
export function startVisionWorkers(
  model: RevColVision,
  workers: number,
  opts: { mode: TrainingMode; labelSmoothing: number },
): Promise<DataParallel<VisionShard>> {
  const options: VisionReplicaOptions = { config: model.config, mode: opts.mode, labelSmoothing: opts.labelSmoothing };
  const spec: ReplicaSpec = { module: import.meta.url, factory: 'createVisionReplica', options };
  return DataParallel.start({ workers, spec, local: visionReplica(model, opts.mode, opts.labelSmoothing) });
}
