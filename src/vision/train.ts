// The vision family's training recipe: defaults chosen from the data, then the shared trainer.
// `revcol vision train` is a thin layer over trainVision.
import path from 'node:path';
import { backendFromOptions, fitBackendToModel } from '../backends/choose.js';
import { activeBackendName, ensureBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { type AugmentOptions, defaultAugment } from '../data/augment.js';
import { dataImageSide, isMnist, loadVisionData, type VisionDataSpec } from '../data/load.js';
import { channelStats, classCounts, predictClasses, trainingBatches, type VisionBatch, type VisionData } from '../data/vision-dataset.js';
import { LAST_FILE, readCheckpointInfo } from '../train/checkpoint.js';
import { checkWorkersBackend, defaultWorkers, workersLine } from '../train/data-parallel.js';
import { classificationReport } from '../train/metrics.js';
import { type OptionName, optionAsIs, type TrainingSettingOptions } from '../train/options.js';
import { dataPrint, namePrint, withRunFolder } from '../train/run-folder.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { startVisionWorkers, visionShards } from './data-parallel-vision.js';
import { RevColVision } from './model.js';
import { DEFAULT_EMA, DEFAULT_LABEL_SMOOTHING, DEFAULT_SAMPLES, DEFAULT_WEIGHT_DECAY, defaultEpochs, defaultModelFor, PRESET_SAMPLES, visionBatchSettings } from './defaults.js';
import { visionConfig, visionParameterCount, type VisionConfig } from './presets.js';

export {
  DEFAULT_BATCH_SIZE, DEFAULT_EMA, DEFAULT_LABEL_SMOOTHING, DEFAULT_LR, DEFAULT_MODEL_BY_SIDE, DEFAULT_SAMPLES, DEFAULT_WEIGHT_DECAY,
  defaultEpochs, defaultModelFor, PRESET_SAMPLES, visionBatchSettings,
} from './defaults.js';

/**
 * `keep` defaults to last for MNIST and evalData (test sets, which must not choose the model;
 * their accuracy is still shown every epoch), best for a held-out part of data.
 */
export interface VisionTrainOptions extends TrainingSettingOptions {
  data: string;
  evalData?: string | null;
  heldOut?: number;
  preset?: string;
  config?: string;
  out?: string;
  /** Continue the run in `out` (refused when the data, preset or config differ from the run's). */
  resume?: boolean;
  /** Replace an earlier run in `out` (without it, a folder holding a run is refused). */
  overwrite?: boolean;
  /** Stop after the step in progress when it aborts: a checkpoint is saved and the call rejects with RunStopped. */
  signal?: AbortSignal;
  mode?: 'reversible' | 'plain';
  seed?: number;
  flip?: boolean;
  progress?: boolean;
  /** At most this many training and test samples (smoke runs). */
  limit?: number;
  /** Where log lines go (stderr by default). */
  log?: (line: string) => void;
  /** Switch to this backend first (default: the one set, else 'auto'); a model too large for wasm then moves to cpu or is refused. */
  backend?: string;
  /** How errors name options (default: as here, e.g. batchSize; the CLI: its flags, e.g. --batch-size). */
  optionName?: OptionName;
  /**
   * Data-parallel training: each batch cut into this many shards, computed at once by the main
   * thread and `workers - 1` worker threads (cpu and wasm backends), their gradients summed
   * (docs/training.md). Default: every core (at most 8) on cpu and wasm for 1,000 training
   * images or more, else 1 (defaultWorkers).
   */
  workers?: number;
}

export interface VisionTrainResult {
  out: string;
  summary: TrainSummary;
  config: VisionConfig;
  classNames: string[];
  presetName: string | null;
  /** The preset and any overrides, or the config file. */
  modelName: string;
  augment: AugmentOptions;
  epochs: number;
  lr: number;
  batchSize: number;
}

const defaultLog = (line: string) => process.stderr.write(`${line}\n`);

/** The default output folder: runs/vision-<dataset name>. */
export function defaultOutDir(data: string): string {
  const name = isMnist(data) ? 'mnist' : path.basename(path.resolve(data)).replace(/[^\w.-]+/g, '_');
  return path.join('runs', `vision-${name}`);
}

/** On resume, the config the interrupted run stored, so that the model is rebuilt the same. */
async function resumedConfig(out: string): Promise<VisionConfig | null> {
  const info = await readCheckpointInfo(path.join(out, LAST_FILE));
  return (info?.meta as { config?: VisionConfig } | undefined)?.config ?? null;
}

/**
 * Trains an image classifier on MNIST or a folder of images per class and saves it in `out`
 * (default runs/vision-<data name>): best.safetensors (load it with ImageClassifier.load),
 * last.ckpt.safetensors (for resume), metrics.jsonl and curves. `revcol vision train` calls it.
 */
export async function trainVision(options: VisionTrainOptions): Promise<VisionTrainResult> {
  const log = options.log ?? defaultLog;
  const name = options.optionName ?? optionAsIs;
  if (!options.data) fail(`${name('data')} is required: give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg`);
  if (options.preset && options.config) fail(`give either ${name('preset')} or ${name('config')}, not both`);
  const mode = options.mode ?? 'reversible';
  if (mode !== 'reversible' && mode !== 'plain') fail(`${name('mode')} must be reversible or plain, got ${mode as string}`);
  checkNumbers(options, name);
  if (options.backend) await backendFromOptions({ backend: options.backend, quiet: true, optionName: name });
  else await ensureBackend();
  // Before any data is read or a folder made: workers run on the cpu and wasm backends only.
  if ((options.workers ?? 1) > 1) checkWorkersBackend(name('workers'));
  const out = options.out ?? defaultOutDir(options.data);
  const identity = {
    data: isMnist(options.data) ? namePrint('mnist') : await dataPrint(options.data),
    eval: options.evalData ? await dataPrint(options.evalData) : null,
    preset: options.preset ?? null,
    config: options.config ? await dataPrint(options.config) : null,
  };
  return withRunFolder(
    { out, command: 'vision train', resume: options.resume, overwrite: options.overwrite, identity, log, optionName: name },
    (folder) => trainVisionIn(options, out, log, name, () => folder.begin()),
  );
}

/** The options a user may get wrong that need no data: refused before anything is loaded. */
function checkNumbers(options: VisionTrainOptions, name: OptionName): void {
  const { batchSize, epochs, lr, ema, keep } = options;
  if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1)) fail(`${name('batchSize')} must be a whole number ≥ 1, got ${batchSize}`);
  if (epochs !== undefined && (!Number.isInteger(epochs) || epochs < 1)) fail(`${name('epochs')} must be a whole number ≥ 1, got ${epochs}`);
  if (lr !== undefined && !(lr > 0)) fail(`${name('lr')} must be a positive number, got ${lr}`);
  if (ema !== undefined && !(ema >= 0 && ema < 1)) fail(`${name('ema')} must be in [0, 1) (0 turns the weight average off), got ${ema}`);
  if (keep !== undefined && keep !== 'best' && keep !== 'last') fail(`${name('keep')} must be best or last, got ${String(keep)}`);
  const { workers } = options;
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1)) fail(`${name('workers')} must be a whole number ≥ 1 (1: one thread), got ${workers}`);
}

async function trainVisionIn(options: VisionTrainOptions, out: string, log: (line: string) => void, name: OptionName, begin: () => Promise<void>): Promise<VisionTrainResult> {
  const mode = options.mode ?? 'reversible';
  const seed = options.seed ?? 0;
  const spec: VisionDataSpec = { data: options.data, evalData: options.evalData, heldOutFraction: options.heldOut, limit: options.limit };

  // The preset: given, or chosen from the data's image size.
  let presetName: string | null = null;
  let modelName: string;
  let base: VisionConfig;
  const resumed = options.resume ? await resumedConfig(out) : null;
  if (options.config) {
    base = await visionConfig(options.config);
    modelName = options.config;
  } else if (options.preset) {
    presetName = options.preset;
    base = await visionConfig(presetName);
    modelName = presetName;
  } else {
    const chosen = defaultModelFor(await dataImageSide(spec), name);
    presetName = chosen.preset;
    base = await visionConfig(chosen.preset, chosen.overrides);
    const changes = Object.entries(chosen.overrides).map(([k, v]) => `${k} ${JSON.stringify(v)}`);
    modelName = changes.length ? `${presetName} with ${changes.join(', ')}` : presetName;
  }

  const data: VisionData = await loadVisionData(spec, resumed?.inputSize ?? base.inputSize);
  const norm = channelStats(data.train);
  const config: VisionConfig = resumed ?? { ...base, numClasses: data.classNames.length, mean: norm.mean, std: norm.std };
  const counts = classCounts(data.train, data.classNames.length);
  log(
    `revcol: ${data.train.count} training / ${data.test.count} test images, ${data.classNames.length} classes, ` +
      `${config.inputSize}×${config.inputSize} px; model ${resumed ? 'as stored in the checkpoint' : modelName} ` +
      `(${config.columns} columns, channels ${config.channels.join('/')}, blocks ${config.layers.join('/')}), ${mode} mode`,
  );
  if (Math.min(...counts) * 5 < Math.max(...counts)) {
    log(`revcol: note: classes are unbalanced (${data.classNames.map((c, i) => `${c}: ${counts[i]}`).join(', ')})`);
  }

  const { batchSize, lr, note } = visionBatchSettings(options, { backend: activeBackendName(), trainSize: data.train.count, inputSize: config.inputSize }, name);
  if (note) log(`revcol: ${note}`);
  const epochs = options.epochs ?? defaultEpochs(data.train.count, (presetName && PRESET_SAMPLES[presetName]) || DEFAULT_SAMPLES);
  const labelSmoothing = options.labelSmoothing ?? DEFAULT_LABEL_SMOOTHING;
  const ema = options.ema ?? DEFAULT_EMA;
  const keep = options.keep ?? (isMnist(options.data) || options.evalData ? 'last' : 'best');
  const augment = { ...defaultAugment(data.kind, config.inputSize), ...(options.flip === false ? { flip: false } : {}) };

  await fitBackendToModel(visionParameterCount(config), 'training', resumed ? 'the resumed model' : modelName);
  const model = new RevColVision(config, seed);
  model.mode = mode;
  const evalBatch = Math.max(batchSize, 128);
  const workers = options.workers ?? defaultWorkers(data.train.count);
  try {
    await begin();
    const pool = workers > 1 ? await startVisionWorkers(model, workers, { mode, labelSmoothing }) : null;
    if (pool) log(`revcol: ${workersLine(workers, options.workers === undefined, 'training images')}`);
    let summary: TrainSummary;
    try {
      summary = await train<VisionBatch>(
        {
          model,
          trainSize: data.train.count,
          trainBatches: (epoch, s) => trainingBatches(data.train, batchSize, config, augment, s),
          batchSize: (b) => b.labels.shape[0],
          lossAndGradients: pool
            ? (b, step) => pool.lossAndGradients(visionShards(b.x, b.labels, pool.shards), mixSeed(seed, step))
            : (b, step) => model.lossAndGradients(b.x, b.labels, { mode, seed: mixSeed(seed, step), labelSmoothing }),
          disposeBatch: (b) => {
            b.x.dispose();
            b.labels.dispose();
          },
          evaluate: async () => {
            const predicted = await predictClasses(data.test, config, evalBatch, (x) => model.logits(x));
            return { accuracy: classificationReport(data.test.labels, predicted, data.classNames).accuracy };
          },
        },
        {
          outDir: out,
          epochs,
          lr,
          weightDecay: options.weightDecay ?? DEFAULT_WEIGHT_DECAY,
          warmupEpochs: options.warmupEpochs ?? Math.min(2, Math.max(1, Math.round(epochs / 20))),
          minLr: lr * 0.01,
          clipNorm: 5,
          ema: ema > 0 ? ema : undefined,
          keep,
          seed,
          resume: options.resume ?? false,
          progress: options.progress ?? true,
          log: options.log,
          ...(options.signal ? { signal: options.signal } : {}),
          meta: {
            family: 'vision',
            preset: presetName,
            model: modelName,
            config,
            labels: data.classNames,
            data: data.source,
            kind: data.kind,
            augment,
            trainCounts: counts,
            hyper: { epochs, batchSize, lr, labelSmoothing, ema, mode, seed, ...(workers > 1 ? { workers } : {}) },
          },
        },
      );
    } finally {
      await pool?.close();
    }
    log(
      `revcol: ${keep === 'last' ? `last epoch (${summary.bestEpoch}) kept` : `best epoch ${summary.bestEpoch}`}, test accuracy ${(summary.bestAccuracy * 100).toFixed(2)}% ` +
        `(${summary.seconds.toFixed(0)} s); model in ${out}`,
    );
    return { out, summary, config, classNames: data.classNames, presetName, modelName, augment, epochs, lr, batchSize };
  } finally {
    model.dispose();
  }
}

