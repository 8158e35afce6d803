import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { fail, shapeString } from '../core/errors.js';
import { readNpy } from '../io/npy.js';
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

/**
 * A .npy batch N×3×H×W, float32, already normalised: taken as is, returned NHWC. Height and
 * width must go through the network as is (multiples of the model's stride).
 */
export async function npyBatch(file: string, config: VisionConfig): Promise<tf.Tensor4D> {
  const npy = await readNpy(file);
  if (npy.dtype !== 'float32') fail(`${file} has dtype ${npy.dtype}: images come as float32 arrays N×3×H×W (np.float32)`);
  const [n, c, h, w] = npy.shape;
  if (npy.shape.length !== 4 || c !== 3) fail(`${file} has shape ${shapeString(npy.shape)}: images come as N×3×H×W arrays (channels first, 3 channels)`);
  if (n === 0) fail(`${file} holds no images (shape ${shapeString(npy.shape)}): give a batch of at least one N×3×H×W image`);
  if (h === 0 || w === 0) fail(`${file} has empty ${h}×${w} images (shape ${shapeString(npy.shape)}): give images of ${config.inputSize}×${config.inputSize} pixels`);
  const m = sizeMultiple(config);
  if (h % m !== 0 || w % m !== 0) {
    fail(`${file} has ${h}×${w} images: this model needs height and width multiples of ${m} (e.g. ${config.inputSize}×${config.inputSize}); pad the array, or pass image files`);
  }
  return tf.tidy(() => tf.transpose(tf.tensor4d(npy.data, [n, c, h, w]), [0, 2, 3, 1]));
}

/**
 * An image file as a normalised 1×S×S×3 batch (S = the config's inputSize). An image no larger
 * than S×S is centred on a black S×S canvas (as small images such as MNIST's are padded for
 * training); a larger one is resized to cover S×S and centre-cropped.
 */
export async function imageBatch(file: string, config: VisionConfig): Promise<tf.Tensor4D> {
  const size = config.inputSize;
  let pixels: Buffer;
  let channels: number;
  try {
    const image = sharp(file, { failOn: 'error' }).rotate();
    const meta = await image.metadata();
    const [w, h] = meta.orientation && meta.orientation >= 5 ? [meta.height!, meta.width!] : [meta.width!, meta.height!];
    let pipeline = image.flatten({ background: { r: 0, g: 0, b: 0 } }).toColourspace('srgb');
    if (w <= size && h <= size) {
      const top = Math.floor((size - h) / 2);
      const left = Math.floor((size - w) / 2);
      pipeline = pipeline.extend({ top, bottom: size - h - top, left, right: size - w - left, background: { r: 0, g: 0, b: 0 } });
    } else {
      pipeline = pipeline.resize(size, size, { fit: 'cover', position: 'centre' });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size) throw new Error('unexpected size');
    pixels = data;
    channels = info.channels;
  } catch {
    fail(`cannot read ${file} as an image (png, jpeg, webp, ...): check the file, or pass a .npy batch`);
  }
  const out = new Float32Array(size * size * 3);
  const { mean, std } = config;
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = (pixels[p * channels + (channels >= 3 ? c : 0)] / 255 - mean[c]) / std[c];
  }
  return tf.tensor4d(out, [1, size, size, 3]);
}
