// The vision family's inference: ImageClassifier (the counterpart of TextClassifier), and
// evaluateVision / predictVision, the functions `revcol vision eval` and `predict` call.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { backendFromOptions, fitBackendToModel } from '../backends/choose.js';
import { ensureBackend } from '../backends/index.js';
import { fail, shapeString } from '../core/errors.js';
import { isMnist, loadVisionData } from '../data/load.js';
import { predictClasses, type ImageSet, type VisionDataSource } from '../data/vision-dataset.js';
import { openSafetensors } from '../io/safetensors.js';
import { loadModelDir, readModelMeta } from '../train/checkpoint.js';
import { classificationReport } from '../train/metrics.js';
import { type OptionName, optionAsIs } from '../train/options.js';
import { fitsModel, imageBatch, npyBatch } from './input.js';
import { RevColVision } from './model.js';
import { type VisionConfig, validateVisionConfig, visionConfig, visionParameterCount } from './presets.js';
import { loadReleaseWeights } from './weights.js';

/** One class of an image and its probability, pipeline style. */
export interface ImageClassification {
  label: string;
  score: number;
}

/**
 * Images to classify: image files (png, jpeg, webp, ...), .npy float32 batches N×3×H×W
 * (already normalised, taken as is), or a tensor N×H×W×3 already normalised (the caller keeps it).
 */
export type ImageInputs = string | string[] | tf.Tensor4D;

export interface ImageLoadOptions {
  /** Switch TensorFlow.js to this backend first (default: keep the current one, else 'auto'). */
  backend?: string;
  /** How errors name options (the CLI passes its flag naming). */
  optionName?: OptionName;
}

export interface ImageReleaseOptions extends ImageLoadOptions {
  /** The network: a preset name … */
  preset?: string;
  /** … or a config (a JSON file, or the config itself). */
  config?: string | VisionConfig;
  /** The release's state dict (.safetensors). Without it the weights are random: for trials only. */
  weights?: string;
  /** Class names by index (the release's files carry none; default: the indices as text). */
  labels?: string[];
}

/** What vision evaluation reports: accuracy, each class's accuracy (its recall) and the confusion matrix. */
export interface ImageClassificationReport {
  accuracy: number;
  /** Images scored. */
  count: number;
  /** Per class: the share of its images classified right (null when it has none), and how many it has. */
  perClass: Array<{ label: string; accuracy: number | null; count: number }>;
  /** confusion[t][p]: images of true class t predicted as class p. */
  confusion: number[][];
}

/** The vision report from class ids, through the shared metrics (src/train/metrics.ts). */
export function imageClassificationReport(truth: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[]): ImageClassificationReport {
  const r = classificationReport(truth, predicted, labels);
  const perClass = labels.map((label) => {
    const { support, recall } = r.perClass[label]!;
    return { label, accuracy: support ? recall : null, count: support };
  });
  return { accuracy: r.accuracy, count: r.examples, perClass, confusion: r.confusion };
}

export interface VisionEvalResult extends ImageClassificationReport {
  /** Which images were scored. */
  split: string;
  /** The model file. */
  model: string;
}

export interface VisionEvalOptions {
  /** Images per forward pass (default 128). */
  batchSize?: number;
  /** Score at most this many images. */
  limit?: number;
}

/** Rows per forward pass when classifying. */
const CHUNK = 32;

/** A trained image classifier: `await ImageClassifier.load(dir)` then `classify(images)`. */
export class ImageClassifier {
  private constructor(
    readonly model: RevColVision,
    /** Class names by index (undefined: release weights loaded without labels). */
    readonly labels: string[] | undefined,
    /** Where the weights came from (a file; '' for random weights). */
    readonly source: string,
    /** The data a training run's folder records (what evaluate scores when given that folder). */
    readonly trainedOn: VisionDataSource | undefined,
  ) {}

  get config(): VisionConfig {
    return this.model.config;
  }

  /** Whether the weights are random (fromRelease without weights). */
  get randomWeights(): boolean {
    return this.source === '';
  }

  /** Loads a training run's folder (the `out` of trainVision / revcol vision train) or its .safetensors file. */
  static async load(dir: string, options: ImageLoadOptions = {}): Promise<ImageClassifier> {
    await chooseBackend(options);
    // The backend is fitted to the model's size from the file's header, before any tensor is made.
    const { meta, file } = await readModelMeta(dir);
    if (meta.family !== undefined && meta.family !== 'vision') fail(`${dir} holds a ${String(meta.family)} model, not a vision one`);
    if (!meta.config) fail(`${dir} has no vision model config in its metadata: pass the output folder of vision train`);
    const config = validateVisionConfig(meta.config, `the model config in ${file}`);
    await fitBackendToModel(visionParameterCount(config), 'inference', `the model in ${dir}`);
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
      return new ImageClassifier(model, labels, loaded.file, meta.data as VisionDataSource | undefined);
    } finally {
      loaded.tensors.forEach((t) => t.dispose());
    }
  }

  /** The release's network (a preset or config) with its weights (a PyTorch state dict saved as .safetensors). */
  static async fromRelease(options: ImageReleaseOptions): Promise<ImageClassifier> {
    const name = options.optionName ?? optionAsIs;
    if (!options.preset === !options.config) fail(`give one of ${name('preset')} or ${name('config')}${options.preset ? ', not both' : ''}`);
    await chooseBackend(options);
    const what = options.preset ?? (typeof options.config === 'string' ? options.config : 'the config');
    const config = typeof options.config === 'object' ? validateVisionConfig(options.config, 'the config') : await visionConfig(options.preset ?? options.config!);
    if (options.labels && options.labels.length !== config.numClasses) {
      fail(`${options.labels.length} labels for a model of ${config.numClasses} classes: give one label per class`);
    }
    await fitBackendToModel(visionParameterCount(config), 'inference', options.preset ?? `the model of ${what}`);
    const model = new RevColVision(config);
    try {
      if (options.weights) {
        const reader = await openSafetensors(options.weights);
        try {
          if (reader.metadata.format?.startsWith('revcol-')) fail(`${options.weights} was written by vision train: load its folder with ${name('model')} instead`);
          await loadReleaseWeights(model, reader);
        } finally {
          await reader.close();
        }
      }
    } catch (err) {
      model.dispose();
      throw err;
    }
    return new ImageClassifier(model, options.labels, options.weights ?? '', undefined);
  }

  /**
   * Logits per image, in input order: one row per image file, one per row of a .npy batch or
   * of a tensor. `inputs` names each row (`file`, `file[i]` for a .npy row, `[i]` for a tensor's).
   */
  async logits(images: ImageInputs): Promise<{ inputs: string[]; logits: number[][] }> {
    const result = { inputs: [] as string[], logits: [] as number[][] };
    if (images instanceof tf.Tensor) {
      this.checkTensor(images);
      await this.logitsOf(images, (i) => `[${i}]`, result);
      return result;
    }
    const files = typeof images === 'string' ? [images] : images;
    if (!Array.isArray(files) || files.some((f) => typeof f !== 'string')) fail('images must be file paths or a tensor N×H×W×3');
    for (const file of files) {
      const isNpy = path.extname(file).toLowerCase() === '.npy';
      const batch = isNpy ? await npyBatch(file, this.config) : await imageBatch(file, this.config);
      try {
        await this.logitsOf(batch, (i) => (isNpy ? `${file}[${i}]` : file), result);
      } finally {
        batch.dispose();
      }
    }
    return result;
  }

  /** The `topK` most likely classes per image (default 5), most likely first. */
  async classify(images: ImageInputs, options: { topK?: number } = {}): Promise<ImageClassification[][]> {
    const topK = checkTopK(options.topK ?? 5, 'topK');
    const { logits } = await this.logits(images);
    return logits.map((row) => topClasses(row, topK).map(({ index, prob }) => ({ label: this.labels?.[index] ?? String(index), score: prob })));
  }

  /**
   * Accuracy, per-class accuracy and the confusion matrix on labelled images: 'mnist' (its test
   * split) or a folder DIR/<class>/*.png|jpg|jpeg, scored whole, except the folder the model was
   * trained on with a held-out part: then exactly that held-out part is scored.
   */
  async evaluate(data: string, options: VisionEvalOptions = {}): Promise<VisionEvalResult> {
    const labels = this.labels;
    if (!labels) fail('evaluate needs a model with class labels: one trained by vision train, or fromRelease with labels');
    const config = this.config;
    let split: string;
    let set: ImageSet;
    if (isMnist(data)) {
      set = (await loadVisionData({ data: 'mnist', limit: options.limit }, config.inputSize, labels)).test;
      split = 'MNIST test split';
    } else {
      const dir = path.resolve(data);
      const trainedOn = this.trainedOn;
      if (trainedOn?.type === 'folder' && trainedOn.train === dir && trainedOn.heldOutFraction) {
        const spec = { data: dir, heldOutFraction: trainedOn.heldOutFraction, splitSeed: trainedOn.splitSeed, limit: options.limit };
        set = (await loadVisionData(spec, config.inputSize, labels)).test;
        split = `held-out ${Math.round(trainedOn.heldOutFraction * 100)}% of ${dir} (the part not trained on)`;
      } else {
        const { loadImageFolders } = await import('../data/images.js');
        set = (await loadImageFolders({ train: dir, eval: dir, size: config.inputSize, classNames: labels })).test;
        split = `all images in ${dir}`;
      }
    }
    const predicted = await predictClasses(set, config, options.batchSize ?? 128, (x) => this.model.logits(x));
    return { ...imageClassificationReport(set.labels, predicted, labels), split, model: this.source };
  }

  dispose(): void {
    this.model.dispose();
  }

  private checkTensor(x: tf.Tensor): void {
    const [n, h, w, c] = x.shape;
    if (x.rank !== 4 || c !== 3) fail(`images as a tensor must be N×H×W×3 (channels last), got ${shapeString(x.shape)}`);
    if (n === 0) fail('the tensor of images holds none: give at least one');
    if (!fitsModel(h!, w!, this.config)) fail(`images of ${h}×${w} do not fit this model: give ${this.config.inputSize}×${this.config.inputSize} (fitToModel pads or resizes)`);
  }

  /** Logits of a normalised NHWC batch, CHUNK rows at a time, appended to `into`. */
  private async logitsOf(batch: tf.Tensor4D, name: (row: number) => string, into: { inputs: string[]; logits: number[][] }): Promise<void> {
    const n = batch.shape[0];
    for (let start = 0; start < n; start += CHUNK) {
      const size = Math.min(CHUNK, n - start);
      const rows = tf.tidy(() => this.model.logits(tf.slice(batch, [start, 0, 0, 0], [size, -1, -1, -1])));
      try {
        ((await rows.array()) as number[][]).forEach((row, i) => {
          into.inputs.push(name(start + i));
          into.logits.push(row);
        });
      } finally {
        rows.dispose();
      }
    }
  }
}

async function chooseBackend(options: ImageLoadOptions): Promise<void> {
  if (options.backend) await backendFromOptions({ backend: options.backend, quiet: true, optionName: options.optionName });
  else await ensureBackend();
}

function checkTopK(k: number, option: string): number {
  if (!Number.isInteger(k) || k < 1) fail(`${option} must be a whole number ≥ 1, got ${k}`);
  return k;
}

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** The k most probable classes of one row of logits, most probable first. */
function topClasses(row: number[], k: number): Array<{ index: number; prob: number }> {
  return softmax(row).map((prob, index) => ({ index, prob })).sort((a, b) => b.prob - a.prob).slice(0, k);
}

// ---------------------------------------------------------------------------------------------
// The functions behind `revcol vision eval` and `revcol vision predict`.

export interface VisionEvalCallOptions extends VisionEvalOptions {
  /** A training run's folder (or its .safetensors). */
  model: string;
  /** 'mnist' or a folder DIR/<class>/*.png|jpg|jpeg. */
  data: string;
  /** Images per forward pass (default 128). */
  evalBatch?: number;
  backend?: string;
  optionName?: OptionName;
}

/** Loads the model of a training run and scores it on `data` (see ImageClassifier.evaluate). */
export async function evaluateVision(options: VisionEvalCallOptions): Promise<VisionEvalResult> {
  const name = options.optionName ?? optionAsIs;
  if (!options.model) fail(`${name('model')} is required: the output folder of vision train`);
  if (!options.data) fail(`${name('data')} is required: give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg`);
  const classifier = await ImageClassifier.load(options.model, options);
  try {
    if (!classifier.labels) fail(`${options.model} has no class labels in its metadata: pass the output folder of vision train`);
    return await classifier.evaluate(options.data, { batchSize: options.evalBatch ?? options.batchSize, limit: options.limit });
  } finally {
    classifier.dispose();
  }
}

export interface VisionPredictOptions {
  /** A training run's folder (or its .safetensors), holding config and labels in its metadata … */
  model?: string;
  /** … or the release's network by preset … */
  preset?: string;
  /** … or by config file … */
  config?: string;
  /** … with the release's state dict in .safetensors (without it, random weights and a warning). */
  weights?: string;
  inputs: string[];
  top?: number;
  /** Where warnings go (default stderr). */
  warn?: (message: string) => void;
  backend?: string;
  optionName?: OptionName;
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

/** Logits and top-k classes per input row, in input order, from a run's folder or the release's weights. */
export async function predictVision(options: VisionPredictOptions): Promise<VisionPredictResult> {
  const name = options.optionName ?? optionAsIs;
  if (!options.inputs.length) fail('give at least one input: an image file or a .npy float32 batch N×3×H×W');
  const topK = checkTopK(options.top ?? 5, name('top'));
  const sources = [options.model && 'model', options.preset && 'preset', options.config && 'config'].filter((s): s is string => Boolean(s));
  if (sources.length !== 1) {
    fail(`give exactly one of ${name('model')} DIR, ${name('preset')} NAME or ${name('config')} FILE.json${sources.length ? ` (got ${sources.map(name).join(' and ')})` : ''}`);
  }
  if (options.model && options.weights) fail(`${name('weights')} goes with ${name('preset')} or ${name('config')}; a ${name('model')} folder has its own weights`);
  const classifier = options.model ? await ImageClassifier.load(options.model, options) : await ImageClassifier.fromRelease(options);
  let result: VisionPredictResult;
  try {
    const { inputs, logits } = await classifier.logits(options.inputs);
    const labels = classifier.labels;
    const top = logits.map((row) => topClasses(row, topK).map(({ index, prob }) => (labels?.[index] !== undefined ? { index, label: labels[index], prob } : { index, prob })));
    result = { inputs, logits, top };
  } finally {
    classifier.dispose();
  }
  if (classifier.randomWeights) {
    const warn = options.warn ?? ((message: string) => process.stderr.write(`revcol: warning: ${message}\n`));
    warn(`no ${name('weights')} given: ${options.preset ?? options.config} has random weights, so these predictions mean nothing`);
  }
  return result;
}

/** A readable report: accuracy, per-class accuracy and the confusion matrix. */
export function formatVisionReport(r: VisionEvalResult): string {
  const pct = (v: number | null) => (v === null ? '   -  ' : `${(v * 100).toFixed(2).padStart(6)}%`);
  const lines: string[] = [];
  lines.push(`model: ${r.model}`);
  lines.push(`data:  ${r.split}, ${r.count} images`);
  lines.push(`accuracy: ${(r.accuracy * 100).toFixed(2)}%`, '');
  const w = Math.max(5, ...r.perClass.map((c) => c.label.length));
  lines.push(`${'class'.padEnd(w)}  accuracy  images`);
  for (const c of r.perClass) lines.push(`${c.label.padEnd(w)}  ${pct(c.accuracy)}  ${String(c.count).padStart(6)}`);
  lines.push('', 'confusion matrix (rows: true class, columns: predicted)');
  const cw = Math.max(4, ...r.confusion.flat().map((v) => String(v).length), ...r.perClass.map((c) => c.label.length));
  lines.push(`${''.padEnd(w)} ${r.perClass.map((c) => c.label.padStart(cw)).join(' ')}`);
  r.confusion.forEach((row, i) => lines.push(`${r.perClass[i].label.padEnd(w)} ${row.map((v) => String(v).padStart(cw)).join(' ')}`));
  return lines.join('\n');
}
