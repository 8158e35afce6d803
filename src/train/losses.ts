import * as tf from '@tensorflow/tfjs-core';
import { fail, shapeString } from '../core/errors.js';
import { crossEntropyGrad, rowMaxes } from '../ops/fused.js';

/**
 * Mean cross-entropy of logits [B, K] against integer labels [B]. With label smoothing ε
 * the target is (1−ε)·onehot + ε/K, as PyTorch's CrossEntropyLoss(label_smoothing=ε).
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, labelSmoothing = 0): tf.Scalar {
  if (logits.rank !== 2) fail(`cross-entropy needs logits of shape [batch, classes], got ${shapeString(logits.shape)}`);
  if (labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    fail(`cross-entropy needs one label per row: logits ${shapeString(logits.shape)}, labels ${shapeString(labels.shape)}`);
  }
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) fail(`label smoothing must be in [0, 1), got ${labelSmoothing}`);
  const classes = logits.shape[1] as number;
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits);
    const onehot = tf.oneHot(tf.cast(labels, 'int32'), classes);
    const target = labelSmoothing > 0 ? tf.add(tf.mul(onehot, 1 - labelSmoothing), labelSmoothing / classes) : onehot;
    return tf.neg(tf.mean(tf.sum(tf.mul(target, logProbs), 1))) as tf.Scalar;
  });
}

/**
 * Mean cross-entropy of logits [M, V] against target ids [M] over a large vocabulary (masked-LM
 * training), with the gradient written out: (softmax − onehot) / M. Autodiff of logSoftmax and
 * a gather takes several more passes over the [M, V] table and a scatter into a zero table of
 * the same size; same values, to float rounding (tested).
 */
export function sparseCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  if (logits.rank !== 2 || targets.rank !== 1 || targets.shape[0] !== logits.shape[0]) {
    fail(`sparse cross-entropy needs logits [rows, classes] and one target per row, got ${shapeString(logits.shape)} and ${shapeString(targets.shape)}`);
  }
  const [rows, classes] = logits.shape;
  const loss = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    // The backend's softmax kernel (XNNPACK's SIMD softmax on wasm, where a separate exp pass
    // cost 220 of a 1.5 s masked-LM step), kept for the backward. log Σ e^x comes from it with
    // no other exp: the row's largest probability is e^0 / Σ e^(x − max), so log Σ e^x =
    // max − log(p_max); p_max ≥ 1/V, so nothing underflows.
    const softmax = tf.softmax(x);
    // both row maxima in one pass where the backend has the kernel (a max is exact: the same bits)
    const [maxX, maxP] = tf.unstack(rowMaxes(x, softmax)) as [tf.Tensor1D, tf.Tensor1D];
    const logSumExp = tf.sub(maxX, tf.log(maxP));
    const flat = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(classes, 'int32')), tf.cast(targets, 'int32'));
    const picked = tf.gather(tf.reshape(x, [-1]), flat);
    save([softmax]);
    return {
      value: tf.mean(tf.sub(logSumExp, picked)) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [crossEntropyGrad(saved[0] as tf.Tensor2D, targets, dy)],
    };
  });
  return tf.tidy(() => loss(logits) as tf.Scalar);
}

/**
 * Mean binary cross-entropy with logits, stable for large |x|:
 * max(x, 0) − x·t + log(1 + e^(−|x|)), as PyTorch's BCEWithLogitsLoss.
 */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  if (logits.shape.length !== targets.shape.length || logits.shape.some((d, i) => d !== targets.shape[i])) {
    fail(`binary cross-entropy needs logits and targets of one shape, got ${shapeString(logits.shape)} and ${shapeString(targets.shape)}`);
  }
  return tf.tidy(() => {
    const t = tf.cast(targets, 'float32');
    const perElement = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, t)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
    return tf.mean(perElement) as tf.Scalar;
  });
}

/** Number of rows whose arg-max equals the label. */
export function correctCount(logits: tf.Tensor, labels: tf.Tensor): number {
  const hits = tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, 'int32')), 'int32')));
  const n = hits.dataSync()[0];
  hits.dispose();
  return n;
}

/** Fraction of rows whose arg-max equals the label (0 for an empty batch). */
export function accuracy(logits: tf.Tensor, labels: tf.Tensor): number {
  const rows = logits.shape[0] ?? 0;
  return rows === 0 ? 0 : correctCount(logits, labels) / rows;
}

/**
 * Counts of (true class, predicted class) pairs — confusion[t][p] — and the accuracy they give.
 * Both families' evaluation reports build on this.
 */
export function confusionMatrix(truth: ArrayLike<number>, predicted: ArrayLike<number>, classes: number): { confusion: number[][]; accuracy: number } {
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    confusion[truth[i]][predicted[i]]++;
    if (truth[i] === predicted[i]) correct++;
  }
  return { confusion, accuracy: truth.length ? correct / truth.length : 0 };
}
