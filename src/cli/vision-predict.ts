import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Command } from 'commander';
import sharp from 'sharp';
import { fail, shapeString } from '../core/errors.js';
import { readNpy } from '../io/npy.js';
import { openSafetensors } from '../io/safetensors.js';
import { loadModelDir, readModelMeta } from '../train/checkpoint.js';
import { RevColVision } from '../vision/model.js';
import { type VisionConfig, visionPresetNames, sizeMultiple, validateVisionConfig, visionConfig, visionParameterCount } from '../vision/presets.js';
import { loadReleaseWeights } from '../vision/weights.js';
import { addBackendOption, backendFromOptions, fitBackendToModel } from './common.js';

export interface VisionPredictOptions {
  /** A training run's folder (or its .safetensors), holding config and labels in its metadata. */
  model?: string;
  preset?: string;
  config?: string;
  /** A release state dict in .safetensors, with --preset or --config. */
  weights?: string;
  inputs: string[];
  top?: number;
  /** Where warnings go (default stderr). */
  warn?: (message: string) => void;
}

export interface TopEntry {
  index: number;
  label?: string;
  prob: number;
}

export interface VisionPredictResult {
  /** One row per image: a file, or `file[i]` for row i of a .npy batch. */
  inputs: string[];
  logits: number[][];
  top: TopEntry[][];
}

/** Rows per forward pass. */
const CHUNK = 32;

async function loadModel(options: VisionPredictOptions): Promise<{ model: RevColVision; labels?: string[]; randomWeights?: boolean }> {
  const sources = [options.model && '--model', options.preset && '--preset', options.config && '--config'].filter(Boolean);
  if (sources.length !== 1) fail(`give exactly one of --model DIR, --preset NAME or --config FILE.json${sources.length ? ` (got ${sources.join(' and ')})` : ''}`);
  if (options.model) {
    if (options.weights) fail('--weights goes with --preset or --config; a --model folder has its own weights');
    // The backend is fitted to the model's size from the file's header, before any tensor is made.
    const { meta, file } = await readModelMeta(options.model);
    if (meta.family !== undefined && meta.family !== 'vision') fail(`${options.model} holds a ${String(meta.family)} model, not a vision one`);
    if (!meta.config) fail(`${options.model} has no vision model config in its metadata: pass the --out folder of revcol vision train`);
    const config = validateVisionConfig(meta.config, `the model config in ${file}`);
    await fitBackendToModel(visionParameterCount(config), 'inference', `the model in ${options.model}`);
    const loaded = await loadModelDir(file);
    try {
      const model = new RevColVision(config);
      try {
        model.loadStateDict(loaded.tensors, `the weights in ${loaded.file}`);
      } catch (err) {
        model.dispose();
        throw err;
      }
      const labels = Array.isArray(meta.labels) ? meta.labels.map(String) : undefined;
      return { model, labels };
    } finally {
      loaded.tensors.forEach((t) => t.dispose());
    }
  }
  const config = await visionConfig((options.preset ?? options.config)!);
  await fitBackendToModel(visionParameterCount(config), 'inference', options.preset ?? `the model of ${options.config}`);
  const model = new RevColVision(config);
  try {
    if (options.weights) {
      const reader = await openSafetensors(options.weights);
      try {
        if (reader.metadata.format?.startsWith('revcol-')) fail(`${options.weights} was written by revcol vision train: pass its folder with --model instead`);
        await loadReleaseWeights(model, reader);
      } finally {
        await reader.close();
      }
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, randomWeights: !options.weights };
}

function warnStderr(message: string): void {
  process.stderr.write(`revcol: warning: ${message}\n`);
}

/** A .npy batch N×3×H×W, float32, already normalised: taken as is, returned NHWC. */
async function npyBatch(file: string, config: VisionConfig): Promise<tf.Tensor4D> {
  const npy = await readNpy(file);
  if (npy.dtype !== 'float32') fail(`${file} has dtype ${npy.dtype}: vision predict takes float32 arrays N×3×H×W (np.float32)`);
  const [n, c, h, w] = npy.shape;
  if (npy.shape.length !== 4 || c !== 3) fail(`${file} has shape ${shapeString(npy.shape)}: vision predict takes N×3×H×W arrays (channels first, 3 channels)`);
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

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** `revcol vision predict` as a function: logits and top-k classes per input row, in input order. */
export async function predictVision(options: VisionPredictOptions): Promise<VisionPredictResult> {
  if (!options.inputs.length) fail('give at least one INPUT: an image file or a .npy float32 batch N×3×H×W');
  const topK = options.top ?? 5;
  if (!Number.isInteger(topK) || topK < 1) fail(`--top must be a whole number ≥ 1, got ${options.top}`);
  const { model, labels, randomWeights } = await loadModel(options);
  const result: VisionPredictResult = { inputs: [], logits: [], top: [] };
  try {
    for (const input of options.inputs) {
      const isNpy = path.extname(input).toLowerCase() === '.npy';
      const batch = isNpy ? await npyBatch(input, model.config) : await imageBatch(input, model.config);
      try {
        const n = batch.shape[0];
        for (let start = 0; start < n; start += CHUNK) {
          const size = Math.min(CHUNK, n - start);
          const chunk = tf.slice(batch, [start, 0, 0, 0], [size, -1, -1, -1]);
          const logits = model.logits(chunk);
          const rows = (await logits.array()) as number[][];
          chunk.dispose();
          logits.dispose();
          rows.forEach((row, i) => {
            result.inputs.push(isNpy ? `${input}[${start + i}]` : input);
            result.logits.push(row);
            const probs = softmax(row);
            const order = probs.map((p, index) => ({ index, prob: p })).sort((a, b) => b.prob - a.prob).slice(0, topK);
            result.top.push(order.map(({ index, prob }) => (labels?.[index] !== undefined ? { index, label: labels[index], prob } : { index, prob })));
          });
        }
      } finally {
        batch.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  if (randomWeights) (options.warn ?? warnStderr)(`no --weights given: ${options.preset ?? options.config} has random weights, so these predictions mean nothing`);
  return result;
}

export function registerVisionPredict(vision: Command): void {
  const cmd = vision
    .command('predict')
    .description('Classify images (files, or .npy float32 batches N×3×H×W taken as is) with a trained model or the release\'s weights.')
    .argument('<INPUT...>', 'image files (png, jpeg, ...) or .npy float32 arrays N×3×H×W, already normalised')
    .option('--model <DIR>', 'the --out folder of revcol vision train (config, labels and weights)')
    .option('--preset <name>', `a preset: ${visionPresetNames().join(', ')}`)
    .option('--config <file.json>', 'a custom model config (channels, layers, columns, kernelSize, numClasses, ...)')
    .option('--weights <file.safetensors>', 'the release\'s state dict as .safetensors (see docs/vision-weights.md), with --preset or --config')
    .option('--top <k>', 'classes to list per input', (v) => Number(v), 5)
    .option('--json', 'print one JSON object {"logits": [[...]], "top": [[{index, label?, prob}]]}, rows in input order');
  addBackendOption(cmd);
  cmd.addHelpText(
    'after',
    `
Images are padded (when no larger than the model's input size) or resized and centre-cropped
to the input size, then normalised with the config's mean/std. A .npy batch is used as is.

Examples:
  $ revcol vision predict --model runs/vision-mnist digit.png
  $ revcol vision predict --preset revcol-t --weights revcol_tiny_1k.safetensors cat.jpg --top 3
  $ revcol vision predict --config config.json --weights weights.safetensors input.npy --json`,
  );
  cmd.action(async (inputs: string[], opts: Record<string, unknown>) => {
    await backendFromOptions({ backend: opts.backend as string | undefined });
    const result = await predictVision({
      model: opts.model as string | undefined,
      preset: opts.preset as string | undefined,
      config: opts.config as string | undefined,
      weights: opts.weights as string | undefined,
      inputs,
      top: opts.top as number,
    });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ logits: result.logits, top: result.top })}\n`);
      return;
    }
    result.inputs.forEach((input, i) => {
      const entries = result.top[i].map((t) => `${t.label ?? t.index} ${(t.prob * 100).toFixed(1)}%`);
      process.stdout.write(`${input}: ${entries.join(', ')}\n`);
    });
  });
}
