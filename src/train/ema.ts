import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { Module } from '../core/module.js';

/**
 * Exponential moving average of a model's weights (the release trains with one): after each
 * optimizer step, shadow ← d·shadow + (1−d)·weight, with d = min(decay, (1+n)/(10+n)) so that
 * the average follows the weights closely in the first steps. Evaluation and the best
 * checkpoint use the averaged weights (swapIn / swapOut).
 */
export class WeightAverage {
  private readonly shadow = new Map<string, tf.Variable>();
  private readonly params: Array<[string, tf.Variable]>;
  private backup: Map<string, tf.Tensor> | null = null;
  updates = 0;

  constructor(readonly model: Module, readonly decay: number) {
    if (!(decay > 0 && decay < 1)) fail(`the weight-average decay must be in (0, 1), got ${decay}`);
    this.params = model.namedParameters().filter(([, v]) => v.trainable);
    // tidy frees the clone; the variable keeps its data.
    for (const [name, v] of this.params) this.shadow.set(name, tf.tidy(() => tf.variable(v.clone(), false)));
  }

  update(): void {
    this.updates += 1;
    const d = Math.min(this.decay, (1 + this.updates) / (10 + this.updates));
    tf.tidy(() => {
      for (const [name, v] of this.params) {
        const s = this.shadow.get(name)!;
        s.assign(tf.add(tf.mul(s, d), tf.mul(v, 1 - d)));
      }
    });
  }

  /** Puts the averaged weights into the model (until swapOut). */
  swapIn(): void {
    if (this.backup) return;
    this.backup = new Map(this.params.map(([name, v]) => [name, v.clone()]));
    for (const [name, v] of this.params) v.assign(this.shadow.get(name)!);
  }

  /** Restores the trained weights. */
  swapOut(): void {
    if (!this.backup) return;
    for (const [name, v] of this.params) v.assign(this.backup.get(name)!);
    this.backup.forEach((t) => t.dispose());
    this.backup = null;
  }

  /** The averaged weights by parameter name (owned by this object). */
  tensors(): Map<string, tf.Tensor> {
    return new Map(this.shadow);
  }

  /** Restores averaged weights saved by tensors() (resume). */
  load(tensors: Map<string, tf.Tensor>, updates: number): void {
    for (const [name, s] of this.shadow) {
      const t = tensors.get(name);
      if (!t || t.size !== s.size) fail(`the checkpoint's weight average has no valid tensor for ${name}: it was written by a run without --ema or another model`);
      tf.tidy(() => s.assign(t.reshape(s.shape)));
    }
    this.updates = updates;
  }

  dispose(): void {
    this.swapOut();
    this.shadow.forEach((s) => s.dispose());
  }
}
