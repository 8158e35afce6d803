import * as tf from '@tensorflow/tfjs-core';
import { fail, shapeString } from '../core/errors.js';
import { type VisionConfig, sizeMultiple } from './presets.js';

/** Whether an H×W input goes through the network as is. */
export function fitsModel(height: number, width: number, config: VisionConfig): boolean {
  const m = sizeMultiple(config);
  return height > 0 && width > 0 && height % m === 0 && width % m === 0;
}

export interface FitOptions {
  /** Value of the padded border (in the tensor's own units; 0 = the mean colour for normalised input). */
  padValue?: number;
}

/**
 * Brings an NHWC batch to the preset's input size: inputs no larger than inputSize×inputSize
 * are padded, centred (e.g. MNIST 28×28 -> 32×32), larger ones are resized (bilinear).
 * Returns a new tensor (the caller disposes both).
 */
export function fitToModel(x: tf.Tensor4D, config: VisionConfig, options: FitOptions = {}): tf.Tensor4D {
  if (x.rank !== 4 || x.shape[3] !== 3) fail(`images must be NHWC [batch, height, width, 3], got ${shapeString(x.shape)}`);
  const [, h, w] = x.shape;
  const size = config.inputSize;
  if (h === size && w === size) return x.clone();
  return tf.tidy(() => {
    if (h <= size && w <= size) {
      const top = Math.floor((size - h) / 2);
      const left = Math.floor((size - w) / 2);
      return tf.pad(x, [[0, 0], [top, size - h - top], [left, size - w - left], [0, 0]], options.padValue ?? 0);
    }
    return tf.image.resizeBilinear(x, [size, size], false, true);
  });
}
