/**
 * The text-classification training recipe: fineTune reads the data (a file, a task's splits, or
 * a held-out part), chooses the model and the settings the user left open, optionally
 * pre-trains (masked LM) first or trains a seed ensemble, and writes a model folder that
 * TextClassifier.load reads.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import { readLater } from '../core/reads.js';
import { mixSeed } from '../core/random.js';
import { countLabels, LabelMap, readTextExamples, splitByGroups, splitHeldOut, type TextExamples } from '../data/text.js';
import { loadModelDir } from '../train/checkpoint.js';
import { argmaxRows } from '../train/metrics.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { checkWorkersBackend, defaultWorkers, workersLine } from '../train/data-parallel.js';
import { asTrained, predictEncoded, textClassificationReport } from './classifier.js';
import { startTextWorkers, textShards } from './data-parallel-text.js';
import { chooseMaxLength, chooseTruncation, disposeBatch, type EncodedLabels, EncodedTexts, lengthGroupedBatches, type Truncation } from './encoded.js';
import { multiLabelReport, regressionReport, tuneThreshold } from './head-metrics.js';
import { blendColumns, checkBlendWeight, mixRows, removeStaleBlend, writeBaselineBlend } from './baseline-blend.js';
import { readEnsembleManifest, removeStaleEnsemble } from './ensemble-manifest.js';
import { RevColText, WINDOW_SCORE, type TextBatch } from './model.js';
import { LAST_CHECKPOINT, MASKED_LM_HEAD, MASKED_LM_OBJECTIVE, PRETRAINED_DIR, readResumeMeta, readTextMeta, sameLabels, type TextModelMeta } from './model-meta.js';
import { maskingFor, maskTokens, pretrain } from './pretrain.js';
import { resolveFrom } from './pretrained.js';
import { presetForDataSize, WINDOW_POOLINGS, type TextConfig, type WindowPooling } from './presets.js';
import {
  checkFraction, checkWhole, chooseEpochs, inRunFolder, makeOutputFolder, namer, resolveArchitecture, resolveMaxLength, resolveTokenizer, resolveTrainingSettings, runTrainOptions, startTextRun,
  type TextRunOptions,
} from './run-options.js';
import { loadTask, type TaskHyper } from './tasks.js';
import type { OptionName } from '../train/options.js';
import { labelStats, looksLikeRegression, multiHot, multiLabelNames, numericLabels, REGRESSION_DISTINCT, standardise, type TextProblem } from './text-heads.js';

export { chooseEpochs } from './run-options.js';

export interface FineTuneOptions extends TextRunOptions {
  /** Training file (CSV, TSV or JSONL) … */
  train?: string;
  /** … or a built-in task (its train split; its test split is the evaluation set). */
  task?: string;
  /** Evaluation file; default: a stratified 10% held out of the training file. */
  eval?: string;
  textColumn?: string;
  labelColumn?: string;
  /**
   * Column (or JSONL field) of a second text: sentence pairs, encoded `[CLS] a [SEP] b [SEP]`
   * with a segment embedding; too long a pair is cut longest-first. Every row needs both texts.
   */
  textPairColumn?: string;
  /**
   * 'regression': the label is a number, learnt with a mean-squared-error head (labels
   * standardised; their mean and std are stored with the model). 'text-classification': labels
   * are classes even when they are many numbers. Default: regression when every label is a
   * number and there are more than 20 distinct values or some are not whole, else classes.
   */
  taskType?: 'text-classification' | 'regression';
  /** Several labels per text (a sigmoid per label, binary cross-entropy, a threshold tuned on the evaluation data). */
  multiLabel?: boolean;
  /** What separates a text's labels in a cell, for multiLabel (default "|"; JSONL may also give an array). */
  labelSeparator?: string;
  /** Tokenizer folder or Hub name; default: the shipped one (or the --from model's). */
  tokenizer?: string;
  allowNetwork?: boolean;
  preset?: string;
  /** A JSON config file, or a partial config object (may name a preset to start from). */
  config?: string | Partial<TextConfig>;
  /**
   * Start from an earlier model's columns (its folder, or the name of a model shipped in
   * pretrained/, e.g. 'spam-mlm'); a new head when its labels differ. Default: the task's
   * `hyper.from`, if any, unless pretrainEpochs, preset or config is given.
   */
  from?: string;
  labelSmoothing?: number;
  /**
   * Cut every run of one repeated symbol (e.g. a line of 70 underscores, which a BERT tokenizer
   * makes 70 tokens) to this many characters, in training and whenever the model classifies.
   * 0: off (default: the task's, else off).
   */
  collapseRuns?: number;
  /**
   * Which epoch best.safetensors keeps: the best on the evaluation set, or the last. Default:
   * 'last' with a task (its evaluation set is its test split, which must not choose the
   * model; its accuracy is still shown every epoch), else 'best'.
   */
  keep?: 'best' | 'last';
  /**
   * Masked-LM pre-training epochs on the training texts before fine-tuning (0: none; default:
   * the task's, else none). The pre-trained model is kept in OUT/pretrained and fine-tuning
   * starts from it, as with --from. Not with --from.
   */
  pretrainEpochs?: number;
  /** Keep an exponential moving average of the weights with this decay; it is what gets evaluated and saved. 0 or absent: none (unless the task sets one). */
  ema?: number;
  /**
   * Input noise while training: this fraction of each batch's tokens is corrupted BERT's way
   * (80% [MASK], 10% a random token, 10% kept; never special tokens or padding), afresh every
   * step, so the model cannot lean on any single word. 0: off (default: the task's, else off).
   */
  inputMasking?: number;
  /**
   * Train this many models with different seeds and average their class probabilities (a seed
   * ensemble; default: the task's, else 1). The folder then holds member-1 … member-N and
   * ensemble.json, and loads like a single model.
   */
  ensemble?: number;
  /** Ensemble members trained at once, each in its own process (cpu and wasm backends; default: the CPU cores, at most `ensemble`). */
  parallel?: number;
  /**
   * How a text longer than maxLength is cut: 'head' keeps its start; 'head+tail' its first
   * quarter and last three quarters of the room, special tokens kept. Single texts only (pairs
   * are cut longest-first). Default: head+tail where the median training text is over twice
   * maxLength (chooseTruncation), else head; a task's recipe and a resumed run keep theirs.
   * Stored with the model: eval and predict cut the same way.
   */
  truncation?: Truncation;
  /**
   * Read a text longer than maxLength as up to this many overlapping windows of maxLength
   * tokens (each [CLS] … [SEP], starting half a window apart), averaging their pooled vectors
   * before the classifier, in training, eval and predict alike (default 1: one, cut by
   * `truncation`). Single texts only. Stored with the model.
   */
  windows?: number;
  /**
   * With windows: how a text's windows become one vector before the classifier: 'mean'
   * (default), 'max' (per feature), or 'attention' (a learned score per window, softmax over
   * the text's windows). Stored with the model.
   */
  windowPooling?: WindowPooling;
  /** Seed of the held-out split and of the max-length sample (default: `seed`; ensemble members keep the run's). */
  splitSeed?: number;
  /**
   * Data-parallel training: each batch is cut into this many shards, computed at once by the
   * main thread and `workers - 1` worker threads (cpu and wasm backends), their gradients summed
   * (docs/threads.md). Deterministic for a given seed and worker count. Default: every core
   * (at most 8) on cpu and wasm for 1,000 training texts or more, else 1 (defaultWorkers).
   * Not with an ensemble whose members train side by side; a pre-training stage (pretrainEpochs)
   * runs on as many workers.
   */
  workers?: number;
  /**
   * After training, also train TF-IDF + logistic regression on the training texts (C chosen on a
   * part held out of them) and mix its class probabilities into the model's at this weight,
   * (1 − w)·model + w·baseline, wherever the folder is loaded (eval, predict, TextClassifier).
   * Single-label classification of single texts. 0: none. Default: the task's; without a task,
   * from AUTO_BLEND_TEXTS.min training texts and AUTO_BLEND_TEXTS.eval evaluation texts on, a
   * weight chosen on the evaluation texts (chooseBlendWeight; 0 when the model alone fits them
   * best), else 0.
   */
  baselineWeight?: number;
}

/** The baseline mixed into a model (fine-tune --baseline-weight), and the mix's score on the evaluation set. */
export interface BlendResult {
  weight: number;
  /** The baseline's C (chosen on a held-out part of the training texts) and its features. */
  C: number;
  features: number;
  accuracy: number;
  macroF1: number;
  examples: number;
  /** Training the baseline and scoring the mix. */
  seconds: number;
  /** Set when fine-tune chose the weight on the evaluation texts: what the model and the baseline scored there alone. */
  chosen?: { modelAccuracy: number; baselineAccuracy: number };
}

export interface FineTuneResult {
  outDir: string;
  summary: TrainSummary;
  config: TextConfig;
  preset: string | null;
  labels: string[];
  maxLength: number;
  trainExamples: number;
  evalExamples: number;
  labelCounts: { train: Record<string, number>; eval: Record<string, number> };
  truncated: { train: number; eval: number };
  skipped: { train: number; eval: number };
  tokenizer: string;
  epochs: number;
  batchSize: number;
  lr: number;
  /** Whether the columns came from --from, and whether the head was kept. */
  from: { dir: string; keptHead: boolean } | null;
  /** Which epoch best.safetensors holds: the best on the evaluation set, or the last. */
  keep: 'best' | 'last';
  /** What the head predicts. */
  problem: TextProblem;
  /** Whether the model reads sentence pairs. */
  pairs: boolean;
  /** How texts longer than maxLength were cut. */
  truncation: Truncation;
  /** At most this many windows per text (1: one, cut). */
  windows: number;
  /** With windows: the share of the texts' tokens (special tokens aside) that the windows cover. */
  coverage: { train: number; eval: number } | null;
  /** Multi-label: the decision threshold stored with the model (tuned on the evaluation data at the kept epoch). */
  threshold?: number;
  /** Regression: the training labels' mean and std. */
  target?: { mean: number; std: number };
  /** For an ensemble: each member's result, and the averaged model's scores on the evaluation set. */
  ensemble?: { members: FineTuneResult[]; accuracy: number; macroF1: number; seeds: number[] };
  /** With a baseline weight: the baseline mixed in, and the mix's scores. */
  blend?: BlendResult;
}

const HELD_OUT_FRACTION = 0.1;

/**
 * Fine-tunes (or trains from scratch) a RevCol text classifier and writes its folder:
 * best.safetensors, last.ckpt.safetensors, metrics.jsonl, curves.png/html and the tokenizer's files.
 */
export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const { log } = await startTextRun(options, 'fine-tuning', `a training file (${namer(options)('train')}: CSV, TSV or JSONL with text and label columns) or a task (${namer(options)('task')})`);
  // An ensemble's member, or a run inside another's folder: the folder is guarded by that run.
  return inRunFolder(options, 'fine-tune', log, (begin, folder) => fineTuneIn({ ...options, log }, folder?.record?.ensemble ?? null, begin));
}

/** fineTune() in its folder: `begin` is called right before the first write into it. */
async function fineTuneIn(
  options: FineTuneOptions & { log: (line: string) => void },
  recordedMembers: number | null,
  begin: (extra?: { ensemble?: number }) => Promise<void>,
): Promise<FineTuneResult> {
  const name = namer(options);
  const workers = checkWhole(options.workers ?? 1, 1, 'workers', name, ' (1: one thread)');
  if (workers > 1) checkWorkersBackend(name('workers'));
  const data = await prepareTextData(options, options.splitSeed ?? options.seed ?? 0);
  // --resume of an ensemble continues all its members, however many the flags would give.
  const resuming = options.resume && options.ensemble === undefined ? await readEnsembleManifest(options.out) : null;
  const members = options.ensemble ?? resuming?.members.length ?? (options.resume ? recordedMembers : null) ?? data.hyper.ensemble ?? 1;
  checkWhole(members, 1, 'ensemble', name);
  if (members > 1 && workers > 1) {
    const why = options.ensemble !== undefined ? `${name('ensemble')} ${members}` : `this run trains an ensemble of ${members} (${options.task ? `task ${options.task}'s recipe` : 'the run being resumed'})`;
    fail(`${name('workers')} splits one model's batches, and ${why}, whose members train side by side (${name('parallel')}): give ${name('ensemble')} 1 to train one model on ${workers} workers, or leave out ${name('workers')}`);
  }
  if (members > 1 && data.problem !== 'single-label') {
    fail(`${name('ensemble')} averages the class probabilities of single-label classifiers; a ${data.problem} model is trained alone: leave out ${name('ensemble')}`);
  }
  const blendWeight = checkBlendWeight(options.baselineWeight ?? data.hyper.baselineWeight ?? 0, name('baselineWeight'));
  // Nobody chose a weight: one is chosen on the evaluation data where there is enough of it.
  const autoBlend = options.baselineWeight === undefined && data.hyper.baselineWeight === undefined && !options.task && !options.nestedIn &&
    data.problem === 'single-label' && data.trainSet.pairs === undefined && data.trainSet.texts.length >= AUTO_BLEND_TEXTS.min &&
    data.trainSet.texts.length <= AUTO_BLEND_TEXTS.max && data.evalSet.texts.length >= AUTO_BLEND_TEXTS.eval;
  if (blendWeight > 0 && (data.problem !== 'single-label' || data.trainSet.pairs !== undefined)) {
    fail(`${name('baselineWeight')} mixes in a TF-IDF + logistic regression classifier of single texts; this run trains ${data.problem === 'single-label' ? 'on sentence pairs' : `a ${data.problem} model`}: leave out ${name('baselineWeight')}`);
  }
  // Members are trained without the baseline: it is trained once, for the whole ensemble.
  const started = async (extra?: { ensemble?: number }) => {
    await begin(extra);
    if (!options.nestedIn) await removeStaleBlend(options.out, options.log);
  };
  const result = members > 1
    ? await (await import('./ensemble.js')).fineTuneEnsemble({ ...options, baselineWeight: 0 }, members, data.evalSet, fineTune, () => started({ ensemble: members }))
    : await fineTuneModel(options, data, () => started());
  if (!autoBlend && blendWeight === 0) return result;
  const blend = await blendBaseline(options.out, autoBlend ? null : blendWeight, data, options.log, name);
  return blend ? { ...result, blend } : result;
}

/**
 * When fine-tune mixes in TF-IDF + logistic regression by itself: single-label classification of
 * single texts, no task, from `min` to `max` training texts and `eval` evaluation texts (fewer
 * make the weight a guess; more make the baseline slow to train).
 */
export const AUTO_BLEND_TEXTS = { min: 1000, max: 50_000, eval: 100 } as const;

/** The weights fine-tune chooses among (chooseBlendWeight): 0 (the model alone) to 0.95 in steps of 0.05. */
export const AUTO_BLEND_WEIGHTS: readonly number[] = Array.from({ length: 20 }, (_, i) => i / 20);

/**
 * The baseline's weight in the mix, chosen on the evaluation data: the one of `weights` whose
 * mixed probabilities give the correct labels the highest mean log-likelihood (the first on a
 * tie). Log-loss rather than accuracy: accuracy is flat over most weights on a few hundred
 * texts, and a choice among ties would be arbitrary. `model` is row-major [texts × labels];
 * `rows` the baseline's probabilities per text in its label order, mapped by `columns`
 * (blendColumns); `labels` the correct class ids.
 */
export function chooseBlendWeight(model: Float32Array, rows: readonly Float64Array[], columns: readonly number[], labels: Int32Array, weights: readonly number[] = AUTO_BLEND_WEIGHTS): { weight: number; logLoss: number[] } {
  const k = columns.length;
  const logLoss = weights.map((w) => {
    let total = 0;
    labels.forEach((y, i) => {
      total -= Math.log(Math.max((1 - w) * model[i * k + y]! + w * rows[i]![columns[y]!]!, 1e-12));
    });
    return total / Math.max(1, labels.length);
  });
  let best = 0;
  logLoss.forEach((l, i) => { if (l < logLoss[best]!) best = i; });
  return { weight: weights[best]!, logLoss };
}

/**
 * Trains TF-IDF + logistic regression on the training texts and mixes it into the model in `dir`
 * at `weight`, or, given null, at the weight chooseBlendWeight picks on the evaluation texts
 * (saying what the model, the baseline and the mix scored there). Writes the blend beside the
 * model, unless the chosen weight is 0, and returns the mix's score on the evaluation texts:
 * computed as eval computes it (mixBaseline's float32 rows, then the first largest).
 */
async function blendBaseline(dir: string, weight: number | null, data: PreparedTextData, log: (line: string) => void, name: OptionName): Promise<BlendResult | null> {
  const started = performance.now();
  const [{ trainBaseline }, { TextClassifier }] = await Promise.all([import('./baseline.js'), import('./classifier.js')]);
  const texts = data.evalSet.texts;
  log(weight === null
    ? `training TF-IDF + logistic regression on the ${data.trainSet.texts.length} training texts, to choose how much of it to mix in on the ${texts.length} evaluation texts (${name('baselineWeight')} 0: none)`
    : `training TF-IDF + logistic regression on the ${data.trainSet.texts.length} training texts, to mix in at weight ${weight}`);
  const baseline = trainBaseline(data.trainSet.texts, data.trainSet.labels);
  // The run removed any earlier blend from the folder: this is the model (or ensemble) alone.
  const classifier = await TextClassifier.load(dir);
  let model: Float32Array;
  try {
    model = await classifier.probabilitiesAsync(texts);
  } finally {
    classifier.dispose();
  }
  const names = data.labelMap!.names;
  const rows = baseline.probabilities(texts);
  const columns = blendColumns(baseline, names, dir);
  const truth = data.evalLabels as Int32Array;
  const report = (w: number) => textClassificationReport(truth, argmaxRows(mixRows(model, rows, columns, w), names.length), names);
  const w = weight ?? chooseBlendWeight(model, rows, columns, truth).weight;
  const chosen = weight === null ? { modelAccuracy: report(0).accuracy, baselineAccuracy: report(1).accuracy } : undefined;
  const pct = (a: number) => `${(a * 100).toFixed(2)}%`;
  const terms = `C=${baseline.info.C}, ${baseline.info.features} terms`;
  const scores = chosen ? `the model alone ${pct(chosen.modelAccuracy)}, the baseline (${terms}) alone ${pct(chosen.baselineAccuracy)}` : '';
  if (w === 0) {
    log(`on the evaluation texts ${scores}: the model alone fits them best (log-loss), no baseline mixed in; ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return null;
  }
  await writeBaselineBlend(dir, { weight: w, baseline });
  const mixed = report(w);
  const seconds = (performance.now() - started) / 1000;
  log(chosen
    ? `on the evaluation texts ${scores}, the two mixed at weight ${w} (chosen there by log-loss) ${pct(mixed.accuracy)}; ${seconds.toFixed(1)} s`
    : `with the baseline (${terms}) at weight ${w}: accuracy ${pct(mixed.accuracy)}, macro-F1 ${mixed.macroF1.toFixed(4)} on ${mixed.examples} evaluation texts; ${seconds.toFixed(1)} s`);
  return { weight: w, C: baseline.info.C, features: baseline.info.features, accuracy: mixed.accuracy, macroF1: mixed.macroF1, examples: mixed.examples, seconds, ...(chosen ? { chosen } : {}) };
}

/** What fine-tune trains and evaluates on, and what a task brings along. */
interface PreparedTextData {
  trainSet: TextExamples;
  evalSet: TextExamples;
  problem: TextProblem;
  /** What the model's meta records as its labels: the classes, or for regression the label column. */
  labelNames: string[];
  /** Single-label classification's classes; null for the other heads. */
  labelMap: LabelMap | null;
  trainLabels: EncodedLabels;
  evalLabels: EncodedLabels;
  /** Multi-label and regression: the evaluation labels as the metrics take them (0/1 rows, or numbers). */
  evalTruth: Float32Array | Float64Array | null;
  /** Regression: the training labels' mean and std. */
  target?: { mean: number; std: number };
  taskPreset?: string;
  taskPresetChanges: Partial<TextConfig>;
  hyper: Partial<TaskHyper>;
  /** Lines to print once everything is checked. */
  notes: string[];
}

/** Reads the training and evaluation texts (a task's splits, files, or a held-out part). */
async function prepareTextData(options: FineTuneOptions, splitSeed: number): Promise<PreparedTextData> {
  const name = namer(options);
  const notes: string[] = [];
  let sets: Pick<PreparedTextData, 'trainSet' | 'evalSet' | 'taskPreset' | 'taskPresetChanges' | 'hyper' | 'notes'>;
  if (options.multiLabel && options.taskType === 'regression') fail(`${name('multiLabel')} and ${name('taskType')} regression do not go together: a text has either labels or a number`);
  if (options.taskType !== undefined && options.taskType !== 'regression' && options.taskType !== 'text-classification') {
    fail(`${name('taskType')} must be text-classification or regression, got ${JSON.stringify(options.taskType)}`);
  }
  const separator = options.labelSeparator ?? '|';
  if (options.labelSeparator !== undefined && !options.multiLabel) fail(`${name('labelSeparator')} is for multi-label data: add ${name('multiLabel')}, or leave it out`);
  if (typeof separator !== 'string' || separator === '') fail(`${name('labelSeparator')} must be a non-empty string`);
  if (options.task && (options.textPairColumn !== undefined || options.multiLabel || options.taskType === 'regression')) {
    const which = options.textPairColumn !== undefined ? name('textPairColumn') : options.multiLabel ? name('multiLabel') : `${name('taskType')} regression`;
    fail(`${name('task')} is a single-label task on single texts: leave out ${which}, or train on a file (${name('train')})`);
  }
  if (options.task) {
    if (options.eval) fail(`${name('task')} brings its own test split: leave out ${name('eval')}`);
    const task = await loadTask(options.task);
    sets = { trainSet: task.train, evalSet: task.test, taskPreset: task.preset, taskPresetChanges: task.presetChanges, hyper: task.hyper, notes };
  } else {
    const columns = {
      textColumn: options.textColumn,
      labelColumn: options.labelColumn,
      optionName: name,
      ...(options.textPairColumn !== undefined ? { pairColumn: options.textPairColumn } : {}),
      ...(options.multiLabel ? { multiLabel: { separator } } : {}),
    };
    const all = await readTextExamples(options.train!, columns);
    const problem: TextProblem = options.multiLabel ? 'multi-label'
      : options.taskType === 'regression' ? 'regression'
        : options.taskType === undefined && looksLikeRegression(all.labels) ? 'regression' : 'single-label';
    if (problem === 'regression' && options.taskType === undefined) {
      notes.push(`note: every label of ${options.train} is a number, with ${new Set(all.labels.map(Number)).size} distinct values (more than ${REGRESSION_DISTINCT}, or not whole): training a regression model (mean squared error); give ${name('taskType')} text-classification to treat them as classes`);
    }
    if (problem === 'regression') numericLabels(all, options.train!);
    // Before the labels are checked against each other: a resumed run of another kind is the mistake to name.
    if (options.resume && existsSync(path.join(options.out, LAST_CHECKPOINT))) {
      checkResumedKind(readTextMeta(await readResumeMeta(options.out, name), options.out), problem, all.pairs !== undefined, options);
    }
    if (options.eval) {
      sets = { trainSet: all, evalSet: await readTextExamples(options.eval, columns), taskPresetChanges: {}, hyper: {}, notes };
    } else {
      // One-class data fails here, before the split.
      if (problem === 'single-label') LabelMap.fromLabels(all.labels);
      if (problem === 'multi-label') multiLabelNames(all.labelSets!);
      // Numbers and label sets have no classes to stratify by: a plain seeded split.
      const split = problem === 'single-label' ? splitHeldOut(all, HELD_OUT_FRACTION, splitSeed) : splitByGroups(all, all.texts.map(() => ''), HELD_OUT_FRACTION, splitSeed);
      notes.push(`note: no ${name('eval')} file: holding out ${split.eval.texts.length} of ${all.texts.length} texts (${HELD_OUT_FRACTION * 100}%${problem === 'single-label' ? ', stratified' : ''}) for evaluation`);
      sets = { trainSet: { ...split.train, skipped: all.skipped }, evalSet: split.eval, taskPresetChanges: {}, hyper: {}, notes };
    }
    if (sets.evalSet.texts.length === 0) fail(`the evaluation set is empty: give an ${name('eval')} file with labelled rows`);
    const evalWhere = options.eval ? `the evaluation file ${options.eval}` : 'the evaluation data';
    if (problem === 'regression') {
      const train = numericLabels(sets.trainSet, options.train!);
      const evalValues = numericLabels(sets.evalSet, options.eval ?? options.train!);
      const target = labelStats(train);
      return {
        ...sets, problem, labelNames: [options.labelColumn ?? 'label'], labelMap: null, target,
        trainLabels: { values: standardise(train, target), width: 0 },
        evalLabels: { values: standardise(evalValues, target), width: 0 },
        evalTruth: evalValues,
      };
    }
    if (problem === 'multi-label') {
      const names = multiLabelNames(sets.trainSet.labelSets!);
      const evalTruth = multiHot(sets.evalSet.labelSets!, names, evalWhere);
      return {
        ...sets, problem, labelNames: names, labelMap: null,
        trainLabels: { values: multiHot(sets.trainSet.labelSets!, names, 'the training data'), width: names.length },
        evalLabels: { values: evalTruth, width: names.length },
        evalTruth,
      };
    }
  }
  const labelMap = LabelMap.fromLabels(sets.trainSet.labels);
  const trainIds = labelMap.ids(sets.trainSet.labels, 'the training data');
  const evalIds = labelMap.ids(sets.evalSet.labels, options.eval ? `the evaluation file ${options.eval}` : 'the evaluation data');
  if (sets.evalSet.texts.length === 0) fail(`the evaluation set is empty: give an ${name('eval')} file with labelled rows`);
  return { ...sets, problem: 'single-label', labelNames: labelMap.toJSON(), labelMap, trainLabels: trainIds, evalLabels: evalIds, evalTruth: null };
}

/** A resumed run must train the same kind of head on the same kind of input. */
function checkResumedKind(resumed: TextModelMeta, problem: TextProblem, pairs: boolean, options: FineTuneOptions): void {
  const name = namer(options);
  if ((resumed.config.problem ?? 'single-label') === problem && Boolean(resumed.config.segments) === pairs) return;
  const was = `${resumed.config.problem ?? 'single-label'} on ${resumed.config.segments ? 'sentence pairs' : 'single texts'}`;
  fail(`cannot resume: the run in ${options.out} trained ${was}, and these options train ${problem} on ${pairs ? 'sentence pairs' : 'single texts'}; give the run's options (${name('textPairColumn')}, ${name('multiLabel')}, ${name('taskType')})`);
}

/** One model: everything fine-tune does once the data is read. */
async function fineTuneModel(options: FineTuneOptions & { log: (line: string) => void }, data: PreparedTextData, begin: () => Promise<void>): Promise<FineTuneResult> {
  const { log } = options;
  const name = namer(options);
  const seed = options.seed ?? 0;
  const splitSeed = options.splitSeed ?? seed;
  const { trainSet, evalSet, taskPreset, taskPresetChanges, hyper, labelMap, labelNames, problem, trainLabels, evalLabels } = data;
  const pairs = trainSet.pairs !== undefined;
  // Notes are printed once everything is checked, so that a mistake is the only line shown.
  const notes = [...data.notes];

  // A task may start from a shipped pre-trained model (hyper.from); any choice of the user's
  // about where to start (--from, --pretrain-epochs, --preset, --config) takes its place.
  const taskFrom = options.from === undefined && options.pretrainEpochs === undefined && options.preset === undefined && options.config === undefined ? hyper.from : undefined;
  if (options.from !== undefined || taskFrom !== undefined) options = { ...options, from: resolveFrom(options.from ?? taskFrom!, name('from')) };
  const pretrainEpochs = options.from ? 0 : options.pretrainEpochs ?? hyper.pretrainEpochs ?? 0;
  checkWhole(pretrainEpochs, 0, 'pretrainEpochs', name);
  if (options.from && options.pretrainEpochs) fail(`${name('from')} starts from a model already trained: leave out ${name('pretrainEpochs')}`);
  if (pretrainEpochs > 0) {
    // Self-pre-training on the training texts (never the evaluation texts), then fine-tuning from it.
    const pretrainedDir = path.join(options.out, PRETRAINED_DIR);
    const fineTuneStarted = existsSync(path.join(options.out, LAST_CHECKPOINT));
    if (!(options.resume && fineTuneStarted)) {
      const presetName = options.preset ?? taskPreset ?? presetForDataSize(trainSet.texts.length);
      await begin();
      log(`pre-training (masked LM, ${pretrainEpochs} epochs) on the ${trainSet.texts.length} training texts in ${pretrainedDir}`);
      await pretrain({
        nestedIn: options.nestedIn ?? options.out,
        ...(options.signal ? { signal: options.signal } : {}),
        texts: trainSet.texts,
        tokenizer: options.tokenizer,
        allowNetwork: options.allowNetwork,
        ...(options.config !== undefined ? { config: options.config } : { preset: presetName, presetChanges: options.preset ? {} : taskPresetChanges }),
        epochs: pretrainEpochs,
        batchSize: options.batchSize ?? hyper.batchSize,
        maxLength: options.maxLength ?? hyper.maxLength,
        collapseRuns: options.collapseRuns ?? hyper.collapseRuns ?? 0,
        out: pretrainedDir,
        resume: options.resume && existsSync(path.join(pretrainedDir, LAST_CHECKPOINT)),
        seed,
        ...(options.workers ? { workers: options.workers } : {}),
        lengthSeed: splitSeed,
        progress: options.progress,
        log,
        ...(options.onStep ? { onStep: options.onStep } : {}),
        ...(options.mode ? { mode: options.mode } : {}),
        ...(options.task ? { taskName: options.task } : {}),
        ...(options.optionName ? { optionName: options.optionName } : {}),
      });
    }
    // --resume of an interrupted pre-training starts the fine-tuning afresh.
    options = { ...options, from: pretrainedDir, preset: undefined, config: undefined, resume: options.resume && fineTuneStarted };
  }

  // The earlier model, for --resume (same architecture) or --from (its columns).
  const resumeMeta = options.resume ? readTextMeta(await readResumeMeta(options.out, name), options.out) : null;
  const fromEnsemble = options.from ? await readEnsembleManifest(options.from) : null;
  if (fromEnsemble) fail(`${name('from')} takes one model, and ${options.from} is an ensemble of ${fromEnsemble.members.length}: pass one of its members, e.g. ${name('from')} ${path.join(options.from!, fromEnsemble.members[0]!)}`);
  const fromModel = options.from ? await loadModelDir(options.from) : null;
  try {
    const fromMeta = fromModel ? readTextMeta(fromModel.meta, options.from!) : null;
    const baseMeta = resumeMeta ?? fromMeta;

    const tokenizer = await resolveTokenizer(options.tokenizer, baseMeta ? { dir: resumeMeta ? options.out : options.from!, recorded: baseMeta.tokenizer } : null, options.allowNetwork, name);
    if (baseMeta && tokenizer.vocabSize !== baseMeta.config.vocabSize) {
      fail(`tokenizer ${tokenizer.source} has ${tokenizer.vocabSize} tokens but the earlier model was trained with ${baseMeta.config.vocabSize}: leave out ${name('tokenizer')} to use the model's own`);
    }
    const arch = await resolveArchitecture({
      preset: options.preset,
      config: options.config,
      base: baseMeta,
      taskPreset,
      taskPresetChanges,
      dataSize: trainSet.texts.length,
      vocabSize: tokenizer.vocabSize,
      numLabels: problem === 'regression' ? 1 : labelNames.length,
      mode: options.mode,
      optionName: name,
    });
    const { config, preset: presetName } = arch;
    // The head and the segment embedding follow the data; a resumed run must be the same kind.
    if (problem === 'single-label') delete config.problem;
    else config.problem = problem;
    if (pairs) config.segments = 2;
    else delete config.segments;
    if (resumeMeta) checkResumedKind(resumeMeta, problem, pairs, options);
    if (arch.taskChanges) {
      const changes = Object.entries(arch.taskChanges).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ');
      notes.push(`task ${options.task}: preset ${presetName} with ${changes}`);
    }

    const collapseRuns = checkWhole(options.collapseRuns ?? hyper.collapseRuns ?? baseMeta?.collapseRuns ?? 0, 0, 'collapseRuns', name, ' (0: off)');
    const trainTexts = asTrained(trainSet.texts, collapseRuns);
    // Given, or the resumed run's; otherwise chosen from the texts' lengths once maxLength is known.
    const givenTruncation: Truncation | undefined = options.truncation ?? (resumeMeta ? resumeMeta.truncation ?? 'head' : undefined);
    if (givenTruncation !== undefined && givenTruncation !== 'head' && givenTruncation !== 'head+tail') fail(`${name('truncation')} must be head or head+tail, got ${JSON.stringify(givenTruncation)}`);
    const windows = checkWhole(options.windows ?? resumeMeta?.windows ?? 1, 1, 'windows', name, ' (1: one window, cut)');
    if (windows > 1 && pairs) fail(`${name('windows')} reads long single texts; sentence pairs are cut longest-first: leave out ${name('windows')} or ${name('textPairColumn')}`);
    if (windows > 1 && (givenTruncation ?? 'head') !== 'head') fail(`${name('windows')} ${windows} reads a long text from its start in windows, so nothing is cut by ${name('truncation')}: leave out one of the two`);
    const windowPooling = options.windowPooling ?? resumeMeta?.config.windowPooling ?? 'mean';
    if (!(WINDOW_POOLINGS as readonly string[]).includes(windowPooling)) fail(`${name('windowPooling')} must be ${WINDOW_POOLINGS.join(', ')}, got ${JSON.stringify(windowPooling)}`);
    if (options.windowPooling !== undefined && windows === 1) fail(`${name('windowPooling')} says how a text's windows are pooled: give ${name('windows')} 2 or more, or leave it out`);
    if (resumeMeta && windowPooling !== (resumeMeta.config.windowPooling ?? 'mean')) {
      fail(`cannot resume: the run in ${options.out} pooled windows by ${resumeMeta.config.windowPooling ?? 'mean'}: leave out ${name('windowPooling')} or give that`);
    }
    // Stored only when not the mean, so models without it keep exactly their config.
    if (windows > 1 && windowPooling !== 'mean') config.windowPooling = windowPooling;
    else delete config.windowPooling;
    if (givenTruncation === 'head+tail' && pairs) fail(`${name('truncation')} head+tail is for single texts; sentence pairs are cut longest-first: leave out ${name('truncation')} or ${name('textPairColumn')}`);

    // Lengths: the option, the earlier run's, the task's, or what covers 95% of the texts.
    const maxLength = resolveMaxLength(arch, {
      given: options.maxLength,
      resumed: resumeMeta?.maxLength,
      task: hyper.maxLength,
      taskName: options.task,
      min: pairs ? 5 : 2,
      // A pair's length is about its two texts' together.
      choose: () => chooseMaxLength(tokenizer, pairs ? trainTexts.map((t, i) => `${t} ${trainSet.pairs![i]}`) : trainTexts, config.maxLength, splitSeed),
    }, name);

    let truncation: Truncation = givenTruncation ?? 'head';
    // A task's recipe is fixed; sentence pairs and windows read otherwise.
    if (givenTruncation === undefined && !options.task && !pairs && windows === 1 && tokenizer.cutsHeadTail()) {
      const chosen = chooseTruncation(tokenizer, trainTexts, maxLength, splitSeed);
      truncation = chosen.truncation;
      if (truncation === 'head+tail') notes.push(`long texts (most over ${2 * maxLength} tokens, twice the ${maxLength} the model reads): reading each one's first quarter and last three quarters of ${maxLength} tokens (head+tail); ${name('truncation')} head keeps the start`);
    }

    const { batchSize, epochs, lr, weightDecay, warmupEpochs, labelSmoothing, ema, keep, note } = resolveTrainingSettings(options, hyper, {
      batchSize: 32,
      trainSize: trainSet.texts.length,
      epochs: (batch) => chooseEpochs(trainSet.texts.length, batch),
      lr: fromMeta ? 3e-4 : 1e-3,
      // A task's evaluation set is its test split, which must not choose the model.
      keep: options.task ? 'last' : 'best',
    }, name);
    if (note) notes.push(note);
    const inputMasking = checkFraction(options.inputMasking ?? hyper.inputMasking ?? 0, 'inputMasking', name, ' (0: off)');
    const masking = inputMasking > 0 ? maskingFor(tokenizer, inputMasking, name('inputMasking'), ` or use ${name('inputMasking')} 0`) : null;

    const model = new RevColText(config, seed);
    let keptHead = false;
    try {
      if (fromModel && !resumeMeta) {
        keptHead = sameLabels(fromMeta!.labels, labelNames) && fromMeta!.config.problem === config.problem;
        const heads = new Set(model.headParameterNames());
        const own = new Map(model.namedParameters());
        // A pre-trained model brings its masked-LM head, which a classifier has no use for;
        // and a pair model's segment embedding, which a single-text model has no use for.
        const tensors = new Map([...fromModel.tensors].filter(([name]) => !name.startsWith(`${MASKED_LM_HEAD}.`) && own.has(name)));
        if (!keptHead) {
          // A fresh head for the new labels; the columns and embeddings carry over.
          for (const name of heads) tensors.delete(name);
          for (const [name, v] of own) if (heads.has(name)) tensors.set(name, v);
        }
        // Pairs from a single-text model: the segment embedding starts fresh.
        // So does attention pooling's window score, from a model that pooled otherwise.
        for (const [name, v] of own) if (!tensors.has(name) && (name === 'embeddings.segments' || name === WINDOW_SCORE)) tensors.set(name, v);
        model.loadStateDict(tensors, `the weights in ${fromModel.file}`);
        notes.push(fromMeta!.objective === MASKED_LM_OBJECTIVE
          ? `starting from the pre-trained model ${options.from}: its embeddings and columns, a new classification head`
          : `starting from ${options.from}: ${keptHead ? 'same labels, keeping its head' : 'new labels, new classification head'}`);
      }

      const trainData = new EncodedTexts(tokenizer, trainTexts, maxLength, trainLabels, trainSet.pairs && asTrained(trainSet.pairs, collapseRuns), { truncation, windows });
      const evalData = new EncodedTexts(tokenizer, asTrained(evalSet.texts, collapseRuns), maxLength, evalLabels, evalSet.pairs && asTrained(evalSet.pairs, collapseRuns), { truncation, windows });
      const meta: TextModelMeta = {
        family: 'text',
        config,
        labels: labelNames,
        ...(data.target ? { target: data.target } : {}),
        // Tuned on the evaluation data after every epoch; what the kept epoch had is saved with it.
        ...(problem === 'multi-label' ? { threshold: 0.5, labelSeparator: options.labelSeparator ?? '|' } : {}),
        ...(pairs ? { textPairColumn: options.textPairColumn! } : {}),
        tokenizer: tokenizer.source,
        maxLength,
        ...(presetName ? { preset: presetName } : {}),
        ...(options.task ? { task: options.task } : {}),
        ...(collapseRuns ? { collapseRuns } : {}),
        ...(truncation === 'head+tail' ? { truncation } : {}),
        ...(windows > 1 ? { windows } : {}),
      };
      await begin();
      await makeOutputFolder(options.out, name);
      await tokenizer.save(options.out);
      await removeStaleEnsemble(options.out, log);
      notes.forEach((line) => log(line));

      const workers = options.workers ?? defaultWorkers(trainData.size);
      const pool = workers > 1 ? await startTextWorkers(model, workers, labelSmoothing) : null;
      if (pool) log(workersLine(workers, options.workers === undefined, 'training texts'));
      let summary: TrainSummary;
      try {
        summary = await train<TextBatch>({
          model,
          trainSize: trainData.size,
          trainBatches: function* (_epoch, shuffleSeed) {
            let index = 0;
            for (const rows of lengthGroupedBatches(trainData.lengths, batchSize, shuffleSeed)) {
              yield masking ? trainData.batch(rows, (ids, mask) => maskTokens(ids, mask, { ...masking, seed: mixSeed(shuffleSeed, index++) }).ids) : trainData.batch(rows);
            }
          },
          batchSize: (b) => b.labels.shape[0],
          lossAndGradients: pool
            ? (b, step) => pool.lossAndGradients(textShards(b, pool.shards), mixSeed(seed, step))
            : (b, step) => model.lossAndGradients(b, { seed: mixSeed(seed, step), labelSmoothing }),
          disposeBatch,
          evaluate: async (): Promise<{ accuracy: number; [metric: string]: number }> => {
            const outputs = await readLater(predictEncoded(model, evalData));
            if (problem === 'regression') {
              const { mean, std } = data.target!;
              const r = regressionReport(data.evalTruth!, outputs.map((z) => z * std + mean));
              const variance = labelStats(data.evalTruth!).std ** 2;
              // The trainer keeps the epoch of highest accuracy: here R², 1 - MSE / variance, the lower MSE the higher.
              return { accuracy: 1 - r.mse / variance, mse: r.mse, mae: r.mae, pearson: r.pearson, spearman: r.spearman };
            }
            if (problem === 'multi-label') {
              meta.threshold = tuneThreshold(data.evalTruth!, outputs, labelNames);
              const r = multiLabelReport(data.evalTruth!, outputs, labelNames, meta.threshold);
              return { accuracy: r.microF1, macroF1: r.macroF1, subsetAccuracy: r.subsetAccuracy, threshold: meta.threshold };
            }
            const report = textClassificationReport(evalLabels as Int32Array, argmaxRows(outputs, labelMap!.size), labelMap!.names);
            return { accuracy: report.accuracy, macroF1: report.macroF1 };
          },
        }, {
          ...runTrainOptions(options, log),
          epochs,
          lr,
          weightDecay,
          warmupEpochs,
          ...(ema > 0 ? { ema } : {}),
          keep,
          meta: meta as unknown as Record<string, unknown>,
          title: `RevCol text ${problem === 'regression' ? 'regressor' : problem === 'multi-label' ? 'multi-label classifier' : 'classifier'} (${presetName ?? 'custom config'})`,
        });
      } finally {
        await pool?.close();
      }
      const kept = summary.epochs.find((e) => e.epoch === summary.bestEpoch);
      return {
        outDir: options.out,
        summary,
        config,
        preset: presetName,
        labels: labelNames,
        maxLength,
        trainExamples: trainData.size,
        evalExamples: evalData.size,
        labelCounts: problem === 'regression' ? { train: {}, eval: {} }
          : problem === 'multi-label' ? { train: countLabels(trainSet.labelSets!.flat(), LabelMap.fromJSON(labelNames)), eval: countLabels(evalSet.labelSets!.flat(), LabelMap.fromJSON(labelNames)) }
            : { train: countLabels(trainSet.labels, labelMap!), eval: countLabels(evalSet.labels, labelMap!) },
        truncated: { train: trainData.truncated, eval: evalData.truncated },
        skipped: { train: trainSet.skipped, eval: evalSet.skipped },
        tokenizer: tokenizer.source,
        epochs,
        batchSize,
        lr,
        from: options.from && !resumeMeta ? { dir: options.from, keptHead } : null,
        keep,
        problem,
        pairs,
        truncation,
        windows,
        coverage: trainData.coverage && evalData.coverage ? { train: share(trainData.coverage), eval: share(evalData.coverage) } : null,
        ...(problem === 'multi-label' ? { threshold: typeof kept?.threshold === 'number' ? kept.threshold : meta.threshold! } : {}),
        ...(data.target ? { target: data.target } : {}),
      };
    } finally {
      model.dispose();
    }
  } finally {
    fromModel?.tensors.forEach((t) => t.dispose());
  }
}

/** Covered tokens over all tokens (1 for no tokens). */
function share(c: { covered: number; tokens: number }): number {
  return c.tokens ? c.covered / c.tokens : 1;
}
