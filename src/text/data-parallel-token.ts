/**
 * Token classification on data-parallel workers (src/train/data-parallel.ts): the replica a
 * worker builds (this module is loaded by URL in each worker: `createTokenReplica`) and how a
 * batch of sentences is cut. Shards are weighted by their scored tokens (the loss is a mean over
 * them), so their sum is the full batch's loss and gradients.
 */
import type { LossAndGradients } from '../core/gradients.js';
import { DataParallel, type Replica, type ReplicaSpec, type Shard } from '../train/data-parallel.js';
import { disposePositionTensors, type PositionShard, positionShards, positionShardTensors } from './data-parallel-text.js';
import { RevColText, type TextConfig } from './model.js';
import { type TokenBatch, TokenClassificationModel } from './token-classification.js';

/** What a worker builds its replica from. */
export interface TokenReplicaOptions {
  config: TextConfig;
  numTags: number;
  labelSmoothing: number;
}

/** Shards of a token batch (contiguous sentences, word features with them), each weighted by its scored tokens. */
export function tokenShards(batch: TokenBatch, n: number): Array<Shard<PositionShard>> {
  return positionShards(batch, n);
}

/** A replica computing shards with `model` (the trained model in the main thread, a copy in a worker). */
export function tokenReplica(model: TokenClassificationModel, labelSmoothing: number): Replica<PositionShard> {
  return {
    model,
    lossAndGradients(shard: PositionShard, seed: number): LossAndGradients {
      const batch = positionShardTensors(shard);
      try {
        return model.lossAndGradients(batch, { seed, labelSmoothing });
      } finally {
        disposePositionTensors(batch);
      }
    },
    dispose: () => model.dispose(),
  };
}

/** The factory a worker calls (by name, from the spec): a fresh model of the config; its weights come from the main thread every step. */
export function createTokenReplica(options: TokenReplicaOptions): Replica<PositionShard> {
  return tokenReplica(new TokenClassificationModel(new RevColText(options.config, 0), options.numTags, 0), options.labelSmoothing);
}

/** Workers for `model`: `workers - 1` threads, each with a replica of it. */
export function startTokenWorkers(model: TokenClassificationModel, workers: number, labelSmoothing: number): Promise<DataParallel<PositionShard>> {
  const spec: ReplicaSpec = { module: import.meta.url, factory: 'createTokenReplica', options: { config: model.text.config, numTags: model.numTags, labelSmoothing } satisfies TokenReplicaOptions };
  return DataParallel.start({ workers, spec, local: tokenReplica(model, labelSmoothing) });
}
