import * as tf from '@tensorflow/tfjs-core';

/** max |a − b| over max |b| (at least 1e-12): how far a tensor is from a reference, relative to the reference's scale. */
export function relativeError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / Math.max(tf.max(tf.abs(b)).dataSync()[0]!, 1e-12));
}
