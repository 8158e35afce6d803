import * as tf from '@tensorflow/tfjs-core';
import { gelu as fusedGelu, layerNorm } from '../ops/fused.js';
import { Module } from './module.js';
import { RandomStream } from './random.js';

/**
 * Small building blocks shared by the families. Weights are stored in tfjs layouts
 * (Linear: [in, out]); families that mirror another framework convert at load/save time.
 */

/** Deterministic initialisers: every draw takes a seed from the given stream. */
export const init = {
  truncNormal: (rng: RandomStream, shape: number[], std = 0.02) => () =>
    tf.truncatedNormal(shape, 0, std, 'float32', rng.nextSeed()),
  uniform: (rng: RandomStream, shape: number[], bound: number) => () =>
    tf.randomUniform(shape, -bound, bound, 'float32', rng.nextSeed()),
  zeros: (shape: number[]) => () => tf.zeros(shape),
  ones: (shape: number[]) => () => tf.ones(shape),
  fill: (shape: number[], value: number) => () => tf.fill(shape, value),
};

/**
 * rows·weight + bias with the bias inside the product's kernel: one launch instead of two on a
 * GPU (on wasm the separate add measured no slower, so its products stay the ones its fast
 * paths serve).
 */
export function productWithBias(rows: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return tf.getBackend() === 'wasm' ? tf.add(tf.matMul(rows, weight), bias) : tf.fused.matMul({ a: rows, b: weight, bias });
}

/** y = x W + b over the last axis. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: RandomStream, options: { bias?: boolean; std?: number } = {}) {
    super();
    this.weight = this.param('weight', init.truncNormal(rng, [inFeatures, outFeatures], options.std ?? 0.02));
    this.bias = options.bias === false ? null : this.param('bias', init.zeros([outFeatures]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const rows = tf.reshape(x, [-1, this.inFeatures]);
      if (!this.bias) return tf.reshape(tf.matMul(rows, this.weight), [...lead, this.outFeatures]);
      const out = productWithBias(rows, this.weight, this.bias);
      return tf.reshape(out, [...lead, this.outFeatures]);
    });
  }
}

/** LayerNorm over the last axis (channels-last), eps as in the release (1e-6) by default. */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(readonly features: number, readonly eps = 1e-6) {
    super();
    this.weight = this.param('weight', init.ones([features]));
    this.bias = this.param('bias', init.zeros([features]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    // one fused kernel where the backend has it (src/ops/fused.ts)
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Exact (erf) GELU, as PyTorch's nn.GELU(). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return fusedGelu(x);
}
