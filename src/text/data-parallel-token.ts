/**
 * Token classification on data-parallel workers (src/train/data-parallel.ts): the replica and how
 * a batch of sentences is cut. The worker's factory, which builds the model, lives with the
 * model in token-classification.ts (`createTokenReplica`, loaded by URL in each worker), so this
 * module needs only the model's shape and token-classification.ts can import it. Shards are weighted by their scored tokens (the loss is a mean over
 * them), so their sum is the full batch's loss and gradients.
 */
import type { LossAndGradients } from '../core/gradients.js';
import type { Module } from '../core/module.js';
import { DataParallel, type Replica, type ReplicaSpec, type Shard } from '../train/data-parallel.js';
import { disposePositionTensors, type PositionBatchTensors, type PositionShard, positionShards, positionShardTensors } from './data-parallel-text.js';
import type { TextConfig } from './model.js';

/** What a replica needs of a token-classification model (TokenClassificationModel has it). */
export interface TokenReplicaModel extends Module {
  text: { config: TextConfig };
  numTags: number;
  lossAndGradients(batch: PositionBatchTensors, opts: { seed: number; labelSmoothing: number }): LossAndGradients;
}

/** What a worker builds its replica from. */
export interface TokenReplicaOptions {
  config: TextConfig;
  numTags: number;
  labelSmoothing: number;
}

/** Shards of a token batch (contiguous sentences, word features with them), each weighted by its scored tokens. */
export function tokenShards(batch: PositionBatchTensors, n: number): Array<Shard<PositionShard>> {
  return positionShards(batch, n);
}

/** A replica computing shards with `model` (the trained model in the main thread, a copy in a worker). */
export function tokenReplica(model: TokenReplicaModel, labelSmoothing: number): Replica<PositionShard> {
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

/**
 * Workers for `model`: `workers - 1` threads, each with a replica built by `factory` (a module's
 * file: URL and the name of its export taking TokenReplicaOptions).
 */
export function startTokenPool(model: TokenReplicaModel, workers: number, labelSmoothing: number, factory: { module: string; name: string }): Promise<DataParallel<PositionShard>> {
  const spec: ReplicaSpec = { module: factory.module, factory: factory.name, options: { config: model.text.config, numTags: model.numTags, labelSmoothing } satisfies TokenReplicaOptions };
  return DataParallel.start({ workers, spec, local: tokenReplica(model, labelSmoothing) });
}
