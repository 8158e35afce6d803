// `revcol vision train`: flags and printing only; the recipe is src/vision/train.ts, loaded when
// the command runs (registration stays light for a fast --help).
import { type Command, Option } from 'commander';
import { fail } from '../core/errors.js';
import { stoppableByCtrlC } from '../train/stop.js';
import { GPU_BATCH_RULES } from '../train/gpu-batch.js';
import { DEFAULT_BATCH_SIZE, DEFAULT_EMA, DEFAULT_LABEL_SMOOTHING, DEFAULT_LR, DEFAULT_WEIGHT_DECAY } from '../vision/defaults.js';
import { visionPresetNames } from '../vision/presets.js';
import { addBackendOption, backendFromOptions, flagName } from './common.js';


const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) fail(`${name} must be a number, got '${v}'`);
  return n;
};

/** A whole number ≥ 1, refused in one line otherwise. */
const workersCount = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`--workers must be a whole number ≥ 1 (1: one thread), got '${v}'`);
  return n;
};

export function registerVisionTrain(vision: Command): void {
  const cmd = vision
    .command('train')
    .description('Train an image classifier (MNIST or a folder of images per class); writes best/last checkpoints, metrics.jsonl and curves to --out.')
    .option('--data <mnist|DIR>', 'mnist, or a folder DIR/<class>/*.png|jpg|jpeg')
    .option('--eval-data <DIR>', 'test folder with the same class folders (default: hold out part of --data)')
    .option('--held-out <fraction>', 'share of each class held out for testing when there is no --eval-data', num('--held-out'), 0.2)
    .option('--preset <name>', `a preset (${visionPresetNames().join(', ')}); default: revcol-nano-32 for images up to 40 px, revcol-micro-64 above`)
    .option('--config <file.json>', 'a custom model config (channels, layers, columns, kernelSize, ...)')
    .option('--epochs <n>', 'epochs (default: 240k samples in all for revcol-nano-32, 400k for other models, 10 to 100 epochs; 30 for MNIST)', num('--epochs'))
    .option('--batch-size <n>', `batch size (default ${DEFAULT_BATCH_SIZE}; on a GPU backend ${DEFAULT_BATCH_SIZE * GPU_BATCH_RULES.vision.factor} for images up to ${GPU_BATCH_RULES.vision.maxInput} px, at most a quarter of the training images)`, num('--batch-size'))
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
    .option('--workers <n>', 'data-parallel training: each batch cut into N shards, computed at once by the main thread and N-1 worker threads (one core each), their gradients summed; deterministic for a seed and N; cpu and wasm backends (default: every core, at most 8, for 1,000 training images or more, else 1)', workersCount)
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
  $ revcol vision train --data mnist --backend wasm --workers 2  # each batch on 2 cores
  $ revcol vision eval --model runs/vision-mnist --data mnist

Files in --out: best.safetensors (the model: the last epoch's, or the best on a held-out part;
see --keep), last.ckpt.safetensors (for --resume),
metrics.jsonl, curves.png and curves.html. Corrupt or non-image files in a folder are skipped
with a warning naming each one. A folder that holds a run is not replaced unless --overwrite;
Ctrl-C stops after the current step, saves a checkpoint and prints the command that resumes it.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    await backendFromOptions(opts);
    const { trainVision } = await import('../vision/train.js');
    await stoppableByCtrlC((signal) => trainVision({
      signal,
      optionName: flagName,
      overwrite: Boolean(opts.overwrite),
      data: opts.data as string,
      evalData: (opts.evalData as string | undefined) ?? null,
      heldOut: opts.heldOut as number,
      preset: opts.preset as string | undefined,
      config: opts.config as string | undefined,
      epochs: opts.epochs as number | undefined,
      batchSize: opts.batchSize as number | undefined,
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
      workers: opts.workers as number | undefined,
    }));
  });
}
