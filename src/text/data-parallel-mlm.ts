/**
 * Masked-LM pre-training on data-parallel workers (src/train/data-parallel.ts): the replica a
 * worker builds (this module is loaded by URL in each worker: `createMaskedLMReplica`) and how a
 * masked batch is cut. The batch is masked once, whole, as on one thread; its shards are weighted
 * by their masked tokens (the loss is a mean over them), so their sum is the full batch's loss
 * and gradients.
 */
import type { LossAndGradients } from '../core/gradients.js';
import { DataParallel, type Replica, type ReplicaSpec, type Shard } from '../train/data-parallel.js';
import { disposePositionTensors, type PositionShard, positionShards, positionShardTensors } from './data-parallel-text.js';
import { MaskedLMModel } from './fill-mask.js';
import { type MaskedTextBatch, RevColText, type TextConfig } from './model.js';

/** What a worker builds its replica from. */
export interface MaskedLMReplicaOptions {
  config: TextConfig;
}

/** Shards of a masked batch (contiguous texts), each weighted by its masked tokens. */
export function maskedShards(batch: MaskedTextBatch, n: number): Array<Shard<PositionShard>> {
  return positionShards(batch, n);
}

/** A replica computing shards with `model` (the trained model in the main thread, a copy in a worker). */
export function maskedLMReplica(model: MaskedLMModel): Replica<PositionShard> {
  return {
    model,
    lossAndGradients(shard: PositionShard, seed: number): LossAndGradients {
      const batch = positionShardTensors(shard);
      try {
        return model.text.maskedLMLossAndGradients(batch, model.mlm, { seed });
      } finally {
        disposePositionTensors(batch);
      }
    },
    dispose: () => model.dispose(),
  };
}

/** The factory a worker calls (by name, from the spec): a fresh model of the config; its weights come from the main thread every step. */
export function createMaskedLMReplica(options: MaskedLMReplicaOptions): Replica<PositionShard> {
  return maskedLMReplica(new MaskedLMModel(new RevColText(options.config, 0), 0));
}

/** Workers for `model`: `workers - 1` threads, each with a replica of it. */
export function startMaskedLMWorkers(model: MaskedLMModel, workers: number): Promise<DataParallel<PositionShard>> {
  const spec: ReplicaSpec = { module: import.meta.url, factory: 'createMaskedLMReplica', options: { config: model.text.config } satisfies MaskedLMReplicaOptions };
  return DataParallel.start({ workers, spec, local: maskedLMReplica(model) });
}
