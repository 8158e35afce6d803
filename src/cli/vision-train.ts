import path from 'node:path';
import { type Command, Option } from 'commander';
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { type AugmentOptions, defaultAugment } from '../data/augment.js';
import { dataImageSide, isMnist, loadVisionData, type VisionDataSpec } from '../data/load.js';
import { channelStats, classCounts, classificationReport, predictClasses, trainingBatches, type VisionBatch, type VisionData } from '../data/vision-dataset.js';
import { LAST_FILE, readCheckpointInfo } from '../train/checkpoint.js';
import { dataPrint, namePrint, withRunFolder } from '../train/run-folder.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { RevColVision } from '../vision/model.js';
import { VISION_PRESETS, visionConfig, visionParameterCount, type VisionConfig } from '../vision/presets.js';
import { addBackendOption, backendFromOptions, fitBackendToModel, stoppableByCtrlC } from './common.js';

/**
 * What runs on data given without --preset/--config, by the data's typical image side.
 * Small images: revcol-nano-32 as preset, 2×2 stem (levels at 16, 8, 4, 2 px on a 32 px input).
 * Measured on MNIST here (bench/results/mnist.jsonl): 30 epochs of it beat 50 epochs of the same
 * columns with a 4×4 stem, which cost a quarter per epoch but plateaued near 98.4%.
 */
export const DEFAULT_MODEL_BY_SIDE: Array<{ maxSide: number; preset: string; overrides?: Partial<VisionConfig> }> = [
  { maxSide: 40, preset: 'revcol-nano-32' },
  { maxSide: Infinity, preset: 'revcol-micro-64' },
];

/** Samples seen in all when --epochs is not given (see defaultEpochs), by preset; DEFAULT_SAMPLES otherwise. */
export const PRESET_SAMPLES: Record<string, number> = { 'revcol-nano-32': 240_000 };
export const DEFAULT_SAMPLES = 400_000;

/** The small preset (and overrides) suited to images of this side. */
export function defaultModelFor(side: number): { preset: string; overrides: Partial<VisionConfig> } {
  for (const { maxSide, preset, overrides } of DEFAULT_MODEL_BY_SIDE) {
    if (side <= maxSide && VISION_PRESETS[preset]) return { preset, overrides: overrides ?? {} };
  }
  // Fall back to the small preset whose input side is nearest to the data's.
  const small = Object.entries(VISION_PRESETS).filter(([, c]) => c.inputSize <= 64);
  if (!small.length) fail('no small vision preset is registered: pass --preset or --config');
  small.sort((a, b) => Math.abs(a[1].inputSize - side) - Math.abs(b[1].inputSize - side));
  return { preset: small[0][0], overrides: {} };
}

/** Epochs when --epochs is not given: `samples` seen in all, between 10 and 100 epochs (30 for MNIST's default model). */
export function defaultEpochs(trainSize: number, samples = DEFAULT_SAMPLES): number {
  return Math.min(100, Math.max(10, Math.round(samples / Math.max(1, trainSize))));
}

export const DEFAULT_BATCH_SIZE = 64;
/** AdamW learning rate at the default batch size; scaled linearly with --batch-size when --lr is not given. */
export const DEFAULT_LR = 5e-3;
export const DEFAULT_WEIGHT_DECAY = 0.05;
export const DEFAULT_LABEL_SMOOTHING = 0.1;
/**
 * Decay of a moving average of the weights to evaluate and save instead of the weights (the
 * release trains with one); 0 = off. Off by default: on MNIST's defaults it measured 98.30%
 * with 0.999 against 98.45% without (bench/results/mnist.jsonl).
 */
export const DEFAULT_EMA = 0;

export interface VisionTrainOptions {
  data: string;
  evalData?: string | null;
  heldOut?: number;
  preset?: string;
  config?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  warmupEpochs?: number;
  labelSmoothing?: number;
  /** Decay of the evaluated weight average; 0 for none. */
  ema?: number;
  /**
   * Which epoch best.safetensors keeps: the best on the test data, or the last. Default: last
   * for MNIST and --eval-data (test sets, which must not choose the model; their accuracy is
   * still shown every epoch), best for a held-out part of --data.
   */
  keep?: 'best' | 'last';
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

/** On --resume, the config the interrupted run stored, so that the model is rebuilt the same. */
async function resumedConfig(out: string): Promise<VisionConfig | null> {
  const info = await readCheckpointInfo(path.join(out, LAST_FILE));
  return (info?.meta as { config?: VisionConfig } | undefined)?.config ?? null;
}

/** `revcol vision train` as a function (the CLI and bench/mnist.ts call it). */
export async function trainVision(options: VisionTrainOptions): Promise<VisionTrainResult> {
  const log = options.log ?? defaultLog;
  if (!options.data) fail('--data is required: give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg');
  if (options.preset && options.config) fail('give either --preset or --config, not both');
  const mode = options.mode ?? 'reversible';
  if (mode !== 'reversible' && mode !== 'plain') fail(`--mode must be reversible or plain, got ${mode as string}`);
  const seed = options.seed ?? 0;
  const out = options.out ?? defaultOutDir(options.data);
  const identity = {
    data: isMnist(options.data) ? namePrint('mnist') : await dataPrint(options.data),
    eval: options.evalData ? await dataPrint(options.evalData) : null,
    preset: options.preset ?? null,
    config: options.config ? await dataPrint(options.config) : null,
  };
  return withRunFolder(
    { out, command: 'vision train', resume: options.resume, overwrite: options.overwrite, identity, log },
    (folder) => trainVisionIn(options, out, log, () => folder.begin()),
  );
}

async function trainVisionIn(options: VisionTrainOptions, out: string, log: (line: string) => void, begin: () => Promise<void>): Promise<VisionTrainResult> {
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
    const chosen = defaultModelFor(await dataImageSide(spec));
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

  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) fail(`--batch-size must be a whole number ≥ 1, got ${batchSize}`);
  const epochs = options.epochs ?? defaultEpochs(data.train.count, (presetName && PRESET_SAMPLES[presetName]) || DEFAULT_SAMPLES);
  if (!Number.isInteger(epochs) || epochs < 1) fail(`--epochs must be a whole number ≥ 1, got ${epochs}`);
  const lr = options.lr ?? (DEFAULT_LR * batchSize) / DEFAULT_BATCH_SIZE;
  if (!(lr > 0)) fail(`--lr must be a positive number, got ${lr}`);
  const labelSmoothing = options.labelSmoothing ?? DEFAULT_LABEL_SMOOTHING;
  const ema = options.ema ?? DEFAULT_EMA;
  if (!(ema >= 0 && ema < 1)) fail(`--ema must be in [0, 1) (0 turns the weight average off), got ${ema}`);
  const keep = options.keep ?? (isMnist(options.data) || options.evalData ? 'last' : 'best');
  if (keep !== 'best' && keep !== 'last') fail(`--keep must be best or last, got ${String(keep)}`);
  const augment = { ...defaultAugment(data.kind, config.inputSize), ...(options.flip === false ? { flip: false } : {}) };

  await fitBackendToModel(visionParameterCount(config), 'training', resumed ? 'the resumed model' : modelName);
  const model = new RevColVision(config, seed);
  model.mode = mode;
  const evalBatch = Math.max(batchSize, 128);
  try {
    await begin();
    const summary = await train<VisionBatch>(
      {
        model,
        trainSize: data.train.count,
        trainBatches: (epoch, s) => trainingBatches(data.train, batchSize, config, augment, s),
        batchSize: (b) => b.labels.shape[0],
        lossAndGradients: (b, step) => model.lossAndGradients(b.x, b.labels, { mode, seed: mixSeed(seed, step), labelSmoothing }),
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
          hyper: { epochs, batchSize, lr, labelSmoothing, ema, mode, seed },
        },
      },
    );
    log(
      `revcol: ${keep === 'last' ? `last epoch (${summary.bestEpoch}) kept` : `best epoch ${summary.bestEpoch}`}, test accuracy ${(summary.bestAccuracy * 100).toFixed(2)}% ` +
        `(${summary.seconds.toFixed(0)} s); model in ${out}`,
    );
    return { out, summary, config, classNames: data.classNames, presetName, modelName, augment, epochs, lr, batchSize };
  } finally {
    model.dispose();
  }
}

const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`${name} must be a number, got '${v}'`);
  return n;
};

export function registerVisionTrain(vision: Command): void {
  const cmd = vision
    .command('train')
    .description('Train an image classifier (MNIST or a folder of images per class); writes best/last checkpoints, metrics.jsonl and curves to --out.')
    .option('--data <mnist|DIR>', 'mnist, or a folder DIR/<class>/*.png|jpg|jpeg')
    .option('--eval-data <DIR>', 'test folder with the same class folders (default: hold out part of --data)')
    .option('--held-out <fraction>', 'share of each class held out for testing when there is no --eval-data', num('--held-out'), 0.2)
    .option('--preset <name>', `a preset (${Object.keys(VISION_PRESETS).join(', ')}); default: revcol-nano-32 for images up to 40 px, revcol-micro-64 above`)
    .option('--config <file.json>', 'a custom model config (channels, layers, columns, kernelSize, ...)')
    .option('--epochs <n>', 'epochs (default: 240k samples in all for revcol-nano-32, 400k for other models, 10 to 100 epochs; 30 for MNIST)', num('--epochs'))
    .option('--batch-size <n>', 'batch size', num('--batch-size'), DEFAULT_BATCH_SIZE)
    .option('--lr <x>', `peak AdamW learning rate (default ${DEFAULT_LR} at batch ${DEFAULT_BATCH_SIZE}, scaled with the batch size)`, num('--lr'))
    .option('--weight-decay <x>', 'AdamW weight decay', num('--weight-decay'), DEFAULT_WEIGHT_DECAY)
    .option('--label-smoothing <x>', 'label smoothing', num('--label-smoothing'), DEFAULT_LABEL_SMOOTHING)
    .option('--ema <decay>', 'evaluate and save a moving average of the weights with this decay, e.g. 0.999 (0: off)', num('--ema'), DEFAULT_EMA)
    .addOption(new Option('--keep <which>', 'which epoch best.safetensors keeps: the best on the test data, or the last (default: last for mnist and --eval-data, which are test sets; best for a held-out part)').choices(['best', 'last']))
    .option('--out <DIR>', 'output folder (default: runs/vision-<data name>)')
    .addOption(new Option('--resume', 'continue the run in --out from its last checkpoint (same data and preset/config)').conflicts('overwrite'))
    .option('--overwrite', 'replace an earlier run in --out (without it, a folder holding a run is refused)')
    .addOption(new Option('--mode <mode>', 'reversible (memory-saving backward) or plain autodiff').choices(['reversible', 'plain']).default('reversible'))
    .option('--seed <n>', 'seed of initialisation, shuffling, augmentation and drop path', num('--seed'), 0)
    .option('--no-flip', 'no horizontal flips in augmentation (for text, digits, asymmetric images)')
    .option('--no-progress', 'no progress bar')
    .addOption(new Option('--limit <n>', 'use at most n training and n test images (quick trials)').argParser(num('--limit')).hideHelp());
  addBackendOption(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ revcol vision train --data mnist                      # a small preset, defaults tuned for a good first model
  $ revcol vision train --data photos/ --out runs/photos  # photos/<class>/*.jpg, 20% of each class held out
  $ revcol vision train --data train/ --eval-data test/ --preset revcol-micro-64 --epochs 30
  $ revcol vision train --data mnist --out runs/mnist --resume   # continue an interrupted run
  $ revcol vision eval --model runs/vision-mnist --data mnist

Files in --out: best.safetensors (the model: the last epoch's, or the best on a held-out part;
see --keep), last.ckpt.safetensors (for --resume),
metrics.jsonl, curves.png and curves.html. Corrupt or non-image files in a folder are skipped
with a warning naming each one. A folder that holds a run is not replaced unless --overwrite;
Ctrl-C stops after the current step, saves a checkpoint and prints the command that resumes it.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    await backendFromOptions(opts);
    await stoppableByCtrlC((signal) => trainVision({
      signal,
      overwrite: Boolean(opts.overwrite),
      data: opts.data as string,
      evalData: (opts.evalData as string | undefined) ?? null,
      heldOut: opts.heldOut as number,
      preset: opts.preset as string | undefined,
      config: opts.config as string | undefined,
      epochs: opts.epochs as number | undefined,
      batchSize: opts.batchSize as number,
      lr: opts.lr as number | undefined,
      weightDecay: opts.weightDecay as number,
      labelSmoothing: opts.labelSmoothing as number,
      ema: opts.ema as number,
      keep: opts.keep as 'best' | 'last' | undefined,
      out: opts.out as string | undefined,
      resume: Boolean(opts.resume),
      mode: opts.mode as 'reversible' | 'plain',
      seed: opts.seed as number,
      flip: opts.flip as boolean,
      progress: opts.progress as boolean,
      limit: opts.limit as number | undefined,
    }));
  });
}
