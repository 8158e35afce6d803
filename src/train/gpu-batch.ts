/**
 * GPU-sized defaults (issue #11 part 6): on a GPU backend, a run that is given no batch size
 * takes a larger one than its CPU recipe, so that each kernel has work enough to fill the
 * device, and scales the recipe's learning rate with it. The rule is plain data, not a device
 * query: WebGPU does not report the device's memory, and no activation-memory estimate of the
 * models exists to cap it by. Light on purpose (no TensorFlow.js): the CLI's help reads it.
 */
import type { OptionName } from './options.js';

/** The backends the rule applies to (revcol's names; see src/backends/names.ts). */
export const GPU_BACKENDS: readonly string[] = ['webgpu', 'tensorflow-gpu'];

export interface GpuBatchRule {
  /** The GPU batch is the recipe's CPU batch times this. */
  factor: number;
  /** Inputs larger than this (an image's side in pixels) keep the CPU batch. */
  maxInput?: number;
  /** How the recipe's learning rate follows the batch size. */
  lrScaling: 'linear' | 'sqrt';
}

export const GPU_BATCH_RULES: Record<'vision' | 'text', GpuBatchRule> = {
  // Small images (MNIST's 32 px): a batch of 64 left the H200 mostly idle (revcol-nano-32: 367
  // samples/s, kernels of a few thousand threads), and issue #11 sets the release's nano
  // config's goal at batch 256. At 224 px a batch of 64 already makes tensors of tens of
  // millions of elements, and it is the batch RevCol-T's goal is set at: kept. The vision
  // recipe already scales its learning rate linearly with the batch (src/vision/train.ts).
  vision: { factor: 4, maxInput: 64, lrScaling: 'linear' },
  // Text: the square-root rule, the one that keeps an adaptive optimiser's (AdamW's) training
  // comparable across batch sizes (Malladi et al. 2022, SDEs for Adam); linear is SGD's rule.
  // The recipes' rates (1e-3 fine-tuning, 2e-3 pre-training) are already high for a
  // transformer, and a linear rule would double them.
  text: { factor: 2, lrScaling: 'sqrt' },
};

/** A GPU batch leaves at least this many steps per epoch (it never goes below the CPU batch). */
export const MIN_STEPS_PER_EPOCH = 4;

export function isGpuBackend(backend: string | undefined): boolean {
  return backend !== undefined && GPU_BACKENDS.includes(backend);
}

/**
 * The batch size a run takes when given none: the recipe's `cpuBatch`, or on a GPU backend that
 * times the family's factor, at most a quarter of the training set (never below `cpuBatch`).
 */
export function defaultBatchSize(family: keyof typeof GPU_BATCH_RULES, backend: string | undefined, cpuBatch: number, trainSize?: number, input?: number): number {
  const rule = GPU_BATCH_RULES[family];
  if (!isGpuBackend(backend) || (rule.maxInput !== undefined && input !== undefined && input > rule.maxInput)) return cpuBatch;
  const cap = trainSize === undefined ? Infinity : Math.floor(trainSize / MIN_STEPS_PER_EPOCH);
  return Math.max(cpuBatch, Math.min(cpuBatch * rule.factor, cap));
}

/** The learning rate `lr`, set for batch `from`, carried over to batch `to` by the family's rule. */
export function scaleLr(family: keyof typeof GPU_BATCH_RULES, lr: number, from: number, to: number): number {
  const ratio = to / from;
  return lr * (GPU_BATCH_RULES[family].lrScaling === 'linear' ? ratio : Math.sqrt(ratio));
}

/** 0.0141421 -> 1.41e-2; 0.02 -> 2e-2. */
const short = (x: number): string => Number(x.toPrecision(3)).toExponential();

/**
 * The line saying what a GPU backend made of the defaults, e.g. `note: on webgpu: batch 256
 * (lr 2e-2, scaled from 5e-3 at 64); give --batch-size to choose`.
 */
export function gpuBatchNote(backend: string, batch: number, lr: { value: number; given: boolean; from: number; at: number }, name: OptionName): string {
  const why = lr.given ? `lr ${short(lr.value)} as given` : `lr ${short(lr.value)}, scaled from ${short(lr.from)} at ${lr.at}`;
  return `note: on ${backend}: batch ${batch} (${why}); give ${name('batchSize')} to choose`;
}
