// The vision recipe's defaults, apart from src/vision/train.ts (which re-exports them) so that
// the CLI can show them in --help without loading TensorFlow.js.
import { fail } from '../core/errors.js';
import { defaultBatchSize, gpuBatchNote } from '../train/gpu-batch.js';
import type { OptionName } from '../train/options.js';
import { VISION_PRESETS, type VisionConfig } from './presets.js';

/**
 * What runs on data given without a preset or config, by the data's typical image side.
 * Small images: revcol-nano-32 as preset, 2×2 stem (levels at 16, 8, 4, 2 px on a 32 px input).
 * Measured on MNIST here (bench/results/mnist.jsonl): 30 epochs of it beat 50 epochs of the same
 * columns with a 4×4 stem, which cost a quarter per epoch but plateaued near 98.4%.
 */
export const DEFAULT_MODEL_BY_SIDE: Array<{ maxSide: number; preset: string; overrides?: Partial<VisionConfig> }> = [
  { maxSide: 40, preset: 'revcol-nano-32' },
  { maxSide: Infinity, preset: 'revcol-micro-64' },
];

/** Samples seen in all when no epochs are given (see defaultEpochs), by preset; DEFAULT_SAMPLES otherwise. */
export const PRESET_SAMPLES: Record<string, number> = { 'revcol-nano-32': 240_000 };
export const DEFAULT_SAMPLES = 400_000;

/** The small preset (and overrides) suited to images of this side. */
export function defaultModelFor(side: number, name: OptionName = (option) => option): { preset: string; overrides: Partial<VisionConfig> } {
  for (const { maxSide, preset, overrides } of DEFAULT_MODEL_BY_SIDE) {
    if (side <= maxSide && VISION_PRESETS[preset]) return { preset, overrides: overrides ?? {} };
  }
  // Fall back to the small preset whose input side is nearest to the data's.
  const small = Object.entries(VISION_PRESETS).filter(([, c]) => c.inputSize <= 64);
  if (!small.length) fail(`no small vision preset is registered: pass ${name('preset')} or ${name('config')}`);
  small.sort((a, b) => Math.abs(a[1].inputSize - side) - Math.abs(b[1].inputSize - side));
  return { preset: small[0][0], overrides: {} };
}

/** Epochs when none are given: `samples` seen in all, between 10 and 100 epochs (30 for MNIST's default model). */
export function defaultEpochs(trainSize: number, samples = DEFAULT_SAMPLES): number {
  return Math.min(100, Math.max(10, Math.round(samples / Math.max(1, trainSize))));
}

export const DEFAULT_BATCH_SIZE = 64;
/** AdamW learning rate at the default batch size; scaled linearly with the batch size when no lr is given. */
export const DEFAULT_LR = 5e-3;
export const DEFAULT_WEIGHT_DECAY = 0.05;

/**
 * Batch size and learning rate of a run: the given ones, else the defaults (on a GPU backend,
 * a GPU-sized batch for small images: src/train/gpu-batch.ts); a learning rate not given
 * follows the batch linearly from DEFAULT_LR at DEFAULT_BATCH_SIZE. `note` says what a GPU
 * backend chose (null when nothing was chosen for it).
 */
export function visionBatchSettings(
  given: { batchSize?: number; lr?: number },
  on: { backend: string | undefined; trainSize: number; inputSize: number },
  name: OptionName = (option) => option,
): { batchSize: number; lr: number; note: string | null } {
  const batchSize = given.batchSize ?? defaultBatchSize('vision', on.backend, DEFAULT_BATCH_SIZE, on.trainSize, on.inputSize);
  const lr = given.lr ?? (DEFAULT_LR * batchSize) / DEFAULT_BATCH_SIZE;
  const chosen = given.batchSize === undefined && batchSize !== DEFAULT_BATCH_SIZE;
  const note = chosen ? gpuBatchNote(on.backend!, batchSize, { value: lr, given: given.lr !== undefined, from: DEFAULT_LR, at: DEFAULT_BATCH_SIZE }, name) : null;
  return { batchSize, lr, note };
}
export const DEFAULT_LABEL_SMOOTHING = 0.1;
/**
 * Decay of a moving average of the weights to evaluate and save instead of the weights (the
 * release trains with one); 0 = off. Off by default: on MNIST's defaults it measured 98.30%
 * with 0.999 against 98.45% without (bench/results/mnist.jsonl).
 */
export const DEFAULT_EMA = 0;
