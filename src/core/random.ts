import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { hashDropout } from '../ops/fused.js';

/** 32-bit integer hash (a murmur3-style finaliser); mixes seeds that differ by one bit. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9 | 0;
  for (const p of parts) {
    let k = Math.imul(p | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A replayable source of random tensors. Every draw takes a seed derived from the stream's
 * seed and a counter, so a fresh stream with the same seed yields the same draws in the
 * same order. The reversible backward relies on this: a level recomputed there gets a
 * stream with the seed it had in the forward pass and so sees the same dropout and
 * drop-path masks.
 */
export class RandomStream {
  private counter = 0;
  constructor(readonly seed: number) {}

  /** A stream for a sub-part (a column and level, a head), independent of this one's draws. */
  fork(...keys: number[]): RandomStream {
    return new RandomStream(mixSeed(this.seed, ...keys));
  }

  nextSeed(): number {
    return mixSeed(this.seed, 0x5eed, this.counter++);
  }

  uniform(shape: number[]): tf.Tensor {
    return tf.randomUniform(shape, 0, 1, 'float32', this.nextSeed());
  }

  /**
   * A 0 / (1/keep) mask: multiplying by it drops with probability 1-keep and keeps the mean.
   * Made here in float32 arithmetic from the same draws as uniform() (tfjs's generator: alea
   * seeded with the seed's decimal string), as floor(u + keep)/keep would be on a backend, but
   * uploaded as one tensor instead of three kernels on the device.
   */
  keepMask(shape: number[], keep: number): tf.Tensor {
    const draw = seedrandom.alea(String(this.nextSeed()));
    const k = Math.fround(keep);
    const kept = Math.fround(1 / k);
    const mask = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < mask.length; i++) mask[i] = Math.floor(Math.fround(Math.fround(draw()) + k)) === 1 ? kept : 0;
    return tf.tensor(mask, shape, 'float32');
  }
}

/** What a module sees during one forward call. */
export interface ForwardContext {
  /** Training mode: dropout and drop path are active. */
  training: boolean;
  /** Randomness for this call; replayed exactly when the call is recomputed. */
  rng: RandomStream;
}

export function evalContext(): ForwardContext {
  return { training: false, rng: new RandomStream(0) };
}

/**
 * The per-sample factors of drop path, [N] (0, or 1/(1−rate) for a kept sample), or null
 * when nothing is dropped; for ops that apply it fused (scaledResidual). Draws the same
 * numbers as dropPath would.
 */
export function dropPathKeep(batch: number, rate: number, ctx: ForwardContext): tf.Tensor | null {
  if (!ctx.training || rate <= 0) return null;
  return ctx.rng.keepMask([batch], 1 - rate);
}

/** Drops whole samples of a residual branch (stochastic depth), scaling the kept ones. */
export function dropPath(x: tf.Tensor, rate: number, ctx: ForwardContext): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  return tf.tidy(() => {
    const shape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
    return tf.mul(x, ctx.rng.keepMask(shape, 1 - rate));
  });
}

/**
 * Element-wise dropout with replayable masks: the mask is a hash of (seed, element index),
 * computed by the backend where the data is (one GPU kernel on webgpu) instead of drawn in JS
 * and uploaded, which on a GPU cost more than the rest of a text training step.
 */
export function dropout(x: tf.Tensor, rate: number, ctx: ForwardContext): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  return hashDropout(x, ctx.rng.nextSeed(), 1 - rate);
}
