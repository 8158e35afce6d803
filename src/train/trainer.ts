import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { checkModelScales } from '../core/engine.js';
import { fail } from '../core/errors.js';
import type { LossAndGradients } from '../core/gradients.js';
import type { Module } from '../core/module.js';
import { mixSeed } from '../core/random.js';
import { readsSynchronously, takeDeviceFailure } from '../core/reads.js';
import { fsErrorLine, isUserFsError, writeFileAtomic } from '../io/atomic.js';
import { BEST_FILE, type BestRecord, LAST_FILE, type PartialEpoch, disposeCheckpoint, loadCheckpoint, saveCheckpoint, saveWeights } from './checkpoint.js';
import { clipCoefficient } from './clip.js';
import { WeightAverage } from './ema.js';
import { AdamW } from './optimizer.js';
import { type EpochMetrics, writeCurves } from './plot.js';
import { ProgressBar } from './progress.js';
import { flagName } from './options.js';
import { probeWritable, RunStopped } from './run-folder.js';
import { warmupCosine } from './schedule.js';

export const METRICS_FILE = 'metrics.jsonl';

/** What a model family hands the trainer. */
export interface TrainTask<Batch> {
  /** Its namedParameters() are what is trained and checkpointed. */
  model: Module;
  /**
   * One epoch of batches. `epoch` counts from 0; `seed` is this epoch's shuffle seed, already
   * derived from (run seed, epoch), so that a resumed run sees the same order.
   */
  trainBatches(epoch: number, seed: number): AsyncIterable<Batch> | Iterable<Batch>;
  batchSize(batch: Batch): number;
  /**
   * Loss and gradients of one batch; `step` is the global step index (use seed + step for
   * dropout and drop path). The trainer disposes the result. May be a promise (data-parallel
   * workers, src/train/data-parallel.ts).
   */
  lossAndGradients(batch: Batch, step: number): LossAndGradients | Promise<LossAndGradients>;
  disposeBatch?(batch: Batch): void;
  /** Run after every epoch; `accuracy` picks the best checkpoint. */
  evaluate(): Promise<{ accuracy: number; [metric: string]: number }>;
  /** Samples per epoch (for the schedule, the bar and the ETA). */
  trainSize: number;
}

export interface TrainOptions {
  outDir: string;
  epochs: number;
  /** Peak learning rate (reached at the end of the warm-up). */
  lr: number;
  /** AdamW's decoupled weight decay (default 0.05, the release's). */
  weightDecay?: number;
  /** Linear warm-up length in epochs (may be fractional; default 0). */
  warmupEpochs?: number;
  /** Where the cosine ends (default min(1e-6, lr/100)). */
  minLr?: number;
  /** Where the warm-up starts (default minLr). */
  warmupStartLr?: number;
  /** Clip gradients to this global L2 norm (default: no clipping). */
  clipNorm?: number;
  seed?: number;
  /** Continue from outDir/last.ckpt.safetensors. */
  resume?: boolean;
  /** False: no progress bar, a plain line per epoch (the bar is off anyway when stderr is not a terminal). */
  progress?: boolean;
  /** Which parameters skip weight decay (default: 1-D parameters, norms, biases, alpha*). */
  noWeightDecay?: (paramName: string) => boolean;
  /** Family, model config, labels, tokenizer…: stored in every checkpoint. */
  meta: Record<string, unknown>;
  /** Receives the per-epoch lines (default: stderr). */
  log?: (line: string) => void;
  /**
   * Which epoch's weights best.safetensors keeps: the one with the best evaluation accuracy
   * (default), or always the last one, for when the evaluation set must not choose the model
   * (a task's test split).
   */
  keep?: 'best' | 'last';
  /** Called after every step (e.g. to draw progress elsewhere, such as another process's bar). */
  onStep?: (progress: StepProgress) => void;
  /** Title of the curves plot. */
  title?: string;
  /**
   * Keep an exponential moving average of the weights with this decay (e.g. 0.999); evaluation
   * and best.safetensors then use the averaged weights. Default: none.
   */
  ema?: number;
  /**
   * When it aborts, the run stops after the step in progress: it writes a checkpoint of that
   * step (a resume continues inside the epoch, exactly) and throws RunStopped. The reason, when
   * a string (e.g. 'Ctrl-C'), is named in the message.
   */
  signal?: AbortSignal;
}

/** Where a run is: epoch (from 1) of epochs, samples seen of the epoch's total, their mean loss. */
export interface StepProgress {
  epoch: number;
  epochs: number;
  seen: number;
  total: number;
  loss: number;
}

export interface TrainSummary {
  bestEpoch: number;
  bestAccuracy: number;
  /** metrics.jsonl's rows, one per epoch (including epochs before a resume). */
  epochs: EpochMetrics[];
  /** Wall time of this call. */
  seconds: number;
  outDir: string;
  /** Epochs already done when this call started (0 unless resumed). */
  resumedFromEpoch: number;
}

// Row keys owned by the trainer; evaluation metrics of the same name get an `eval_` prefix.
const TRAINER_KEYS = new Set(['epoch', 'step', 'loss', 'lr', 'seconds', 'samples']);

async function readMetrics(file: string): Promise<EpochMetrics[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const rows: EpochMetrics[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(JSON.parse(line) as EpochMetrics);
    } catch {
      // A line that does not parse is dropped; the checkpoint is what counts.
    }
  }
  return rows;
}

function checkOptions(task: TrainTask<unknown>, o: TrainOptions): void {
  if (typeof o.outDir !== 'string' || !o.outDir) fail('training needs an output folder (--out DIR)');
  if (!Number.isInteger(o.epochs) || o.epochs < 1) fail(`epochs must be a whole number ≥ 1, got ${o.epochs}`);
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) fail(`learning rate must be a number > 0, got ${o.lr}`);
  if (o.warmupEpochs !== undefined && !(o.warmupEpochs >= 0)) fail(`warm-up epochs must be ≥ 0, got ${o.warmupEpochs}`);
  if (o.clipNorm !== undefined && !(o.clipNorm > 0)) fail(`gradient clipping norm must be > 0, got ${o.clipNorm}`);
  if (!Number.isInteger(task.trainSize) || task.trainSize < 1) fail(`the training set is empty (${task.trainSize} samples): give training data`);
}

/**
 * Trains `task.model` with AdamW, a per-step warm-up + cosine schedule and optional
 * gradient clipping; evaluates after every epoch; writes metrics.jsonl, best.safetensors
 * (by evaluation accuracy), last.ckpt.safetensors (for --resume) and curves.png/html.
 *
 * The schedule's position is counted in samples seen, so it needs no step count up front;
 * with a fixed batch size it is the usual per-step schedule. A resumed run restores weights,
 * optimizer state, step, schedule position and best-so-far, and (shuffle seeds derive from
 * (seed, epoch), dropout from seed + step) continues exactly as an uninterrupted run would.
 */
export async function train<B>(task: TrainTask<B>, options: TrainOptions): Promise<TrainSummary> {
  checkOptions(task as TrainTask<unknown>, options);
  const started = performance.now();
  const { outDir, epochs } = options;
  const seed = options.seed ?? 0;
  const minLr = options.minLr ?? Math.min(1e-6, options.lr / 100);
  const warmupStartLr = options.warmupStartLr ?? minLr;
  const lastFile = path.join(outDir, LAST_FILE);
  const bestFile = path.join(outDir, BEST_FILE);
  const metricsFile = path.join(outDir, METRICS_FILE);
  // A folder that cannot take files is a one-line error now, not after an epoch. (The trainer
  // takes no option naming yet and its other messages name flags, so this one does too.)
  await probeWritable(outDir, flagName);

  const noDecay = options.noWeightDecay;
  const optimizer = new AdamW(task.model, {
    weightDecay: options.weightDecay ?? 0.05,
    noWeightDecay: noDecay ? (name) => noDecay(name) : undefined,
  });
  const average = options.ema ? new WeightAverage(task.model, options.ema) : null;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const progress = new ProgressBar({ epochs, total: task.trainSize, enabled: options.progress !== false, log });

  let step = 0;
  let samples = 0;
  let firstEpoch = 0;
  let best: BestRecord | null = null;
  let rows: EpochMetrics[] = [];
  let partial: PartialEpoch | undefined;
  const signal = options.signal;
  const stopped = (resumable: boolean, where: string): RunStopped => {
    const why = typeof signal?.reason === 'string' ? ` (${signal.reason})` : '';
    return new RunStopped(resumable ? `stopped${why} ${where}; checkpoint saved: ${lastFile}` : `stopped${why} before training began: nothing was saved`, resumable);
  };
  try {
    if (!options.resume && (await fs.stat(lastFile).then((st) => st.isFile(), () => false))) {
      log(`note: starting a new run in ${outDir}; its earlier checkpoints will be replaced (--resume continues a run instead)`);
    }
    if (options.resume) {
      const exists = await fs.stat(lastFile).then((s) => s.isFile(), () => false);
      if (!exists) fail(`cannot resume: ${lastFile} does not exist; run without --resume to start a new run in ${outDir}`);
      const ckpt = await loadCheckpoint(lastFile);
      try {
        const was = ckpt.meta.family;
        const now = options.meta.family;
        if (was !== undefined && now !== undefined && was !== now) {
          fail(`cannot resume: ${lastFile} is a ${String(was)} model, this run trains a ${String(now)} model; use another --out folder`);
        }
        task.model.loadStateDict(ckpt.weights, `the weights in ${lastFile}`);
        optimizer.setState(ckpt.optimizer);
        if (average) {
          if (!ckpt.average) fail(`cannot resume with a weight average: ${lastFile} has none (the run was started without one); continue without it (vision train: leave out --ema)`);
          average.load(ckpt.average.tensors, ckpt.average.updates);
        }
      } finally {
        disposeCheckpoint(ckpt);
      }
      step = ckpt.step;
      samples = ckpt.samples;
      firstEpoch = ckpt.epoch;
      best = ckpt.best;
      partial = ckpt.partial;
      rows = (await readMetrics(metricsFile)).filter((r) => r.epoch <= firstEpoch);
      if (partial && firstEpoch >= epochs) partial = undefined;
      log(firstEpoch >= epochs
        ? `already trained ${firstEpoch} of ${epochs} epochs in ${outDir}: nothing to do (raise --epochs to train longer)`
        : partial
          ? `resuming ${outDir} in epoch ${firstEpoch + 1}, after ${partial.seen} of its ${task.trainSize} samples (step ${step})`
          : `resuming ${outDir} after epoch ${firstEpoch} (step ${step})`);
    }

    const totalSamples = task.trainSize * epochs;
    const warmupSamples = task.trainSize * (options.warmupEpochs ?? 0);
    for (let epoch = firstEpoch; epoch < epochs; epoch++) {
      // Asked to stop between epochs (or before the first step): the last checkpoint is current.
      if (signal?.aborted) throw stopped(step > 0, `after epoch ${epoch} of ${epochs} (step ${step})`);
      const epochStart = performance.now();
      // A run stopped inside this epoch skips the batches it trained on (the order is the same).
      const skip = partial?.batches ?? 0;
      let lossSum = partial?.lossSum ?? 0;
      let seen = partial?.seen ?? 0;
      partial = undefined;
      let batches = 0;
      progress.startEpoch(epoch + 1, seen);
      let lr = options.lr;
      // On a backend that reads asynchronously (a GPU), each step's loss is read (and the
      // zero-scale check done) only after the next step is queued, so the device never waits for
      // the host between steps; a non-finite loss then stops the run one step later than it
      // happened, and progress reports lag a step. Elsewhere each step is read at once, as before.
      const lagged = !readsSynchronously();
      type InFlight = { loss: tf.Tensor; size: number; step: number };
      let inFlight: InFlight | null = null;
      let seenSettled = seen;
      /** Reads a queued step's loss into the epoch's running loss; frees it. */
      const settleStep = async ({ loss, size, step: at }: InFlight): Promise<void> => {
        let lossValue: number;
        try {
          lossValue = (await loss.data())[0]!;
          // A zero shortcut scale that clampScales could not report synchronously (webgpu).
          await checkModelScales(task.model);
        } finally {
          loss.dispose();
        }
        const failure = takeDeviceFailure();
        if (failure) {
          fail(`training stopped at step ${at} (epoch ${epoch + 1}): ${failure}; nothing computed after it is valid${/out of memory/i.test(failure) ? ': lower the batch size or the length of the inputs' : ''}`);
        }
        if (!Number.isFinite(lossValue)) {
          fail(`the loss became ${lossValue} at step ${at} (epoch ${epoch + 1}): lower the learning rate (now ${options.lr}) or clip gradients`);
        }
        lossSum += lossValue * size;
        seenSettled += size;
        progress.update(seen, lossSum / seenSettled);
        options.onStep?.({ epoch: epoch + 1, epochs, seen: seenSettled, total: task.trainSize, loss: lossSum / seenSettled });
      };
      const settle = async (): Promise<void> => {
        const entry = inFlight;
        inFlight = null;
        if (entry) await settleStep(entry);
      };
      const dropInFlight = () => {
        inFlight?.loss.dispose();
        inFlight = null;
      };
      try {
        for await (const batch of task.trainBatches(epoch, mixSeed(seed, epoch))) {
          let trained = false;
          try {
            if (batches < skip) {
              batches += 1;
              continue;
            }
            const size = task.batchSize(batch);
            lr = warmupCosine(samples, totalSamples, warmupSamples, options.lr, minLr, warmupStartLr);
            const { loss, grads } = await task.lossAndGradients(batch, step);
            try {
              // clipping scales the gradients inside AdamW's kernels: nothing is read back here
              const gradScale = options.clipNorm !== undefined ? clipCoefficient(grads, options.clipNorm) : undefined;
              try {
                optimizer.applyGradients(grads, lr, gradScale ? { gradScale } : {});
              } finally {
                gradScale?.dispose();
              }
              average?.update();
            } catch (err) {
              loss.dispose();
              throw err;
            } finally {
              grads.forEach((g) => g.dispose());
            }
            step += 1;
            samples += size;
            seen += size;
            batches += 1;
            trained = true;
            // this step is queued: now wait for the one before it
            const previous = inFlight;
            inFlight = { loss, size, step };
            if (previous) await settleStep(previous);
            if (!lagged) await settle();
          } finally {
            task.disposeBatch?.(batch);
          }
          // Steps may never wait on I/O (the cpu and wasm backends): let a pending Ctrl-C be heard.
          if (signal) await new Promise((resolve) => setImmediate(resolve));
          if (trained && signal?.aborted) {
            await settle();
            // Stop here: this step's checkpoint, with how far into the epoch it got.
            await saving(lastFile, () => saveCheckpoint(lastFile, {
              model: task.model, optimizer, step, epoch, samples, meta: options.meta, best,
              ...(average ? { average: { tensors: average.tensors(), updates: average.updates } } : {}),
              partial: { batches, seen, lossSum },
            }));
            throw stopped(true, `in epoch ${epoch + 1} of ${epochs} at step ${step} (${seen} of ${task.trainSize} samples)`);
          }
        }
        await settle();
      } finally {
        dropInFlight(); // an error or a stop: the loss of a step that will not be reported
      }
      if (seen === 0) fail(`epoch ${epoch + 1} had no training batches: the training set is empty`);

      // Evaluate (and save as best) the averaged weights when there are any.
      average?.swapIn();
      const evaluation = await task.evaluate();
      const row: EpochMetrics = { epoch: epoch + 1, step, loss: lossSum / seen, lr, accuracy: evaluation.accuracy };
      for (const [k, v] of Object.entries(evaluation)) row[TRAINER_KEYS.has(k) ? `eval_${k}` : k] = v;
      row.seconds = (performance.now() - epochStart) / 1000;
      rows.push(row);

      const improved = options.keep === 'last' || best === null || row.accuracy > best.accuracy;
      if (improved) {
        best = { epoch: epoch + 1, accuracy: row.accuracy, metrics: { ...evaluation } };
        await saving(bestFile, () => saveWeights(bestFile, task.model, options.meta, { epoch: epoch + 1, metrics: row }));
      }
      average?.swapOut();
      await saving(lastFile, () => saveCheckpoint(lastFile, {
        model: task.model, optimizer, step, epoch: epoch + 1, samples, meta: options.meta, best,
        ...(average ? { average: { tensors: average.tensors(), updates: average.updates } } : {}),
      }));
      await saving(metricsFile, () => writeFileAtomic(metricsFile, rows.map((r) => JSON.stringify(r)).join('\n') + '\n'));
      await saving(outDir, () => writeCurves(outDir, rows, options.title));
      progress.endEpoch(epochLine(row, epochs, seen, improved ? (options.keep === 'last' ? '  (saved)' : '  (best so far, saved)') : ''));
    }
  } finally {
    progress.stop();
    optimizer.dispose();
    average?.dispose();
  }
  return {
    bestEpoch: best?.epoch ?? 0,
    bestAccuracy: best?.accuracy ?? 0,
    epochs: rows,
    seconds: (performance.now() - started) / 1000,
    outDir,
    resumedFromEpoch: firstEpoch,
  };
}

/**
 * A save; a full disk, lost permission or the like is a one-line error (each file is written
 * whole or not at all, so the last checkpoint saved is intact and --resume continues from it).
 */
async function saving(file: string, save: () => Promise<unknown>): Promise<void> {
  try {
    await save();
  } catch (err) {
    if (isUserFsError(err)) fail(fsErrorLine(Object.assign(err, { syscall: 'write' }), err.path ? undefined : file, undefined, 'the last checkpoint saved is whole: continue from it with --resume'));
    throw err;
  }
}

function epochLine(row: EpochMetrics, epochs: number, seen: number, saved: string): string {
  const speed = row.seconds > 0 ? Math.round(seen / row.seconds) : 0;
  const extras = Object.entries(row)
    .filter(([k]) => !['epoch', 'step', 'loss', 'lr', 'seconds', 'accuracy'].includes(k))
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`);
  return [
    `epoch ${row.epoch}/${epochs}`,
    `loss ${row.loss.toFixed(4)}`,
    `accuracy ${(row.accuracy * 100).toFixed(2)}%`,
    ...extras,
    `lr ${row.lr.toExponential(2)}`,
    `${speed} samples/s`,
    `${row.seconds.toFixed(1)} s${saved}`,
  ].join('  ');
}
