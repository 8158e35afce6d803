import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { readLater, readNow, type Reads } from '../core/reads.js';
import { mixSeed } from '../core/random.js';
import { collapseSymbolRuns, countLabels, LabelMap, readTextExamples, splitHeldOut, type TextExamples } from '../data/text.js';
import { loadModelDir } from '../train/checkpoint.js';
import { confusionMatrix } from '../train/losses.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { chooseMaxLength, disposeBatch, EncodedTexts, lengthGroupedBatches } from './encoded.js';
import { RevColText, type TextBatch } from './model.js';
import { withRunFolder } from '../train/run-folder.js';
import { checkMaxLength, MASKED_LM_HEAD, MASKED_LM_OBJECTIVE, maskingFor, maskTokens, pretrain, runTrainOptions, textRunIdentity, type TextRunOptions } from './pretrain.js';
import { getPreset, presetForDataSize, readConfigFile, type TextConfig, validateConfig } from './presets.js';
import { loadTask, type TaskHyper } from './tasks.js';
import { TextTokenizer } from './tokenizer.js';
import { TOKEN_CLASSIFICATION_OBJECTIVE } from './token-classification.js';
export { chooseMaxLength, lengthGroupedBatches } from './encoded.js';
import { ENSEMBLE_FILE, readEnsembleManifest, removeStaleEnsemble } from './ensemble-manifest.js';

/** Class probabilities of one text, pipeline style. */
export interface TextClassification {
  label: string;
  score: number;
  probabilities: Record<string, number>;
}

export interface TextClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface TextEvaluationReport {
  accuracy: number;
  macroF1: number;
  examples: number;
  labels: string[];
  perClass: Record<string, TextClassMetrics>;
  /** confusion[t][p]: texts of true class t predicted as class p (in `labels` order). */
  confusion: number[][];
  /** Texts longer than the model's maxLength, cut for classification. */
  truncated: number;
}

/** Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix. */
export function textClassificationReport(trueIds: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[], truncated = 0): TextEvaluationReport {
  const k = labels.length;
  const { confusion, accuracy } = confusionMatrix(trueIds, predicted, k);
  const perClass: Record<string, TextClassMetrics> = {};
  let f1Sum = 0;
  labels.forEach((label, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[c], 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[label] = { precision, recall, f1, support };
    f1Sum += f1;
  });
  return {
    accuracy,
    macroF1: k ? f1Sum / k : 0,
    examples: trueIds.length,
    labels: [...labels],
    perClass,
    confusion,
    truncated,
  };
}

/**
 * Probabilities [n, classes] of encoded texts, in batches, in eval mode. Written once for both
 * kinds of read (src/core/reads.ts): run it with readLater (any backend) or readNow.
 */
function* predictEncoded(model: RevColText, data: EncodedTexts, batchSize = 64): Reads<Float32Array> {
  const k = model.config.numLabels;
  const out = new Float32Array(data.size * k);
  // Similar lengths together: less padding per batch. Results go back to input order.
  const order = Array.from({ length: data.size }, (_, i) => i).sort((a, b) => data.lengths[a] - data.lengths[b]);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const batch = data.batch(rows);
    let probs: ReturnType<RevColText['probabilities']> | undefined;
    try {
      probs = model.probabilities(batch.inputIds, batch.attentionMask);
      const values = yield probs;
      rows.forEach((r, i) => out.set(values.subarray(i * k, (i + 1) * k), r * k));
    } finally {
      probs?.dispose();
      disposeBatch(batch);
    }
  }
  return out;
}

/** Texts as a model sees them: with runs of one symbol cut when it was trained so (collapseRuns > 0). */
function asTrained(texts: string[], collapseRuns = 0): string[] {
  return collapseRuns ? texts.map((t) => collapseSymbolRuns(t, collapseRuns)) : texts;
}

/** The mean of several models' probabilities (one model: its own). */
function* predictAveraged(models: RevColText[], data: EncodedTexts, batchSize = 64): Reads<Float32Array> {
  if (models.length === 1) return yield* predictEncoded(models[0]!, data, batchSize);
  const sum = new Float32Array(data.size * models[0]!.config.numLabels);
  for (const model of models) {
    const probs = yield* predictEncoded(model, data, batchSize);
    for (let i = 0; i < sum.length; i++) sum[i] += probs[i]! / models.length;
  }
  return sum;
}

function argmaxRows(probs: Float32Array, k: number): Int32Array {
  const n = probs.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** What a text model's folder records about it (the `meta` of its checkpoints). */
export interface TextModelMeta {
  family: 'text';
  config: TextConfig;
  labels: string[];
  /** Where the tokenizer came from; the model folder also keeps a copy of its files. */
  tokenizer: string;
  maxLength: number;
  preset?: string;
  task?: string;
  /** Runs of one repeated symbol were cut to this many characters before tokenizing (training and classifying alike). */
  collapseRuns?: number;
  /** Set on a pre-training checkpoint ('masked-lm'): columns without a classifier, to fine-tune from. */
  objective?: string;
}

/** The sub-folder of a fine-tune's output that holds its masked-LM pre-training (--pretrain-epochs). */
export const PRETRAINED_DIR = 'pretrained';

function readMeta(meta: Record<string, unknown>, where: string): TextModelMeta {
  if (meta.family !== 'text') {
    fail(`${where} holds a ${meta.family === undefined ? 'model of unknown family' : `${String(meta.family)} model`}, not a text classifier: pass the --out folder of 'revcol fine-tune'`);
  }
  if (meta.objective === TOKEN_CLASSIFICATION_OBJECTIVE) {
    fail(`${where} holds a token classifier (a tag per word), not a text classifier (one label per text): load it with TokenClassifier (revcol eval and predict tell the two apart), or pass a text fine-tune's folder`);
  }
  const m = meta as unknown as TextModelMeta;
  if (!m.config || !Array.isArray(m.labels) || typeof m.maxLength !== 'number') fail(`${where} lacks the text model's config, labels or maxLength: it may be damaged; train it again`);
  return m;
}

export interface TextLoadOptions {
  /** Switch TensorFlow.js to this backend first (default: keep the current one). */
  backend?: string;
  allowNetwork?: boolean;
}

/** A trained text classifier: `await TextClassifier.load(dir)` then `classify(texts)`. */
export class TextClassifier {
  private constructor(
    /** One model, or an ensemble's members (their probabilities are averaged). */
    readonly models: RevColText[],
    readonly tokenizer: TextTokenizer,
    readonly labels: LabelMap,
    readonly maxLength: number,
    readonly meta: TextModelMeta,
    readonly source: string,
  ) {}

  /** The model (an ensemble's first member). */
  get model(): RevColText {
    return this.models[0]!;
  }

  /** Loads a fine-tune output folder (or its best.safetensors); an ensemble's folder loads all its members. */
  static async load(dir: string, options: TextLoadOptions = {}): Promise<TextClassifier> {
    if (options.backend) await useBackend(options.backend);
    else await ensureBackend();
    const manifest = await readEnsembleManifest(dir);
    const memberDirs = manifest ? manifest.members.map((m) => path.join(dir, m)) : [dir];
    const models: RevColText[] = [];
    try {
      let first: TextModelMeta | undefined;
      let source = '';
      for (const memberDir of memberDirs) {
        const loaded = await loadModelDir(memberDir);
        try {
          const meta = readMeta(loaded.meta, memberDir);
          if (meta.objective === MASKED_LM_OBJECTIVE) fail(`${memberDir} is a pre-trained (masked-LM) model with no classifier: fine-tune it first (revcol fine-tune --from ${memberDir} --train FILE)`);
          if (!first) {
            first = meta;
            source = manifest ? path.join(dir, ENSEMBLE_FILE) : loaded.file;
          } else if (!sameLabels(meta.labels, first.labels) || meta.maxLength !== first.maxLength || meta.config.vocabSize !== first.config.vocabSize) {
            fail(`the members of the ensemble ${dir} differ in labels, max length or vocabulary: its folders do not belong together; train it again`);
          }
          const model = new RevColText(meta.config);
          models.push(model);
          model.loadStateDict(loaded.tensors, `the weights in ${loaded.file}`);
        } finally {
          loaded.tensors.forEach((t) => t.dispose());
        }
      }
      const meta = first!;
      const folder = manifest || statSync(dir).isDirectory() ? dir : path.dirname(dir);
      // The copy of the tokenizer kept beside the weights; the recorded source otherwise.
      const tokenizer = existsSync(path.join(folder, 'tokenizer.json'))
        ? await TextTokenizer.fromFolder(path.resolve(folder), meta.tokenizer)
        : await TextTokenizer.load(meta.tokenizer, { allowNetwork: options.allowNetwork });
      if (tokenizer.vocabSize !== meta.config.vocabSize) {
        fail(`the tokenizer of ${dir} has ${tokenizer.vocabSize} tokens but the model was trained with ${meta.config.vocabSize}: the folder's tokenizer files do not belong to it`);
      }
      return new TextClassifier(models, tokenizer, LabelMap.fromJSON(meta.labels), meta.maxLength, meta, source);
    } catch (err) {
      models.forEach((m) => m.dispose());
      throw err;
    }
  }

  /**
   * Class probabilities [texts × labels], row-major. Reads synchronously: on the webgpu backend
   * use probabilitiesAsync.
   */
  probabilities(texts: string[], batchSize = 64): Float32Array {
    return readNow(this.predict(texts, batchSize), 'await classifier.probabilitiesAsync(texts)');
  }

  /** Class probabilities [texts × labels], row-major, read asynchronously (every backend). */
  async probabilitiesAsync(texts: string[], batchSize = 64): Promise<Float32Array> {
    return readLater(this.predict(texts, batchSize));
  }

  private predict(texts: string[], batchSize: number): Reads<Float32Array> {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) fail('classify takes an array of strings');
    if (texts.length === 0) return (function* () { return new Float32Array(0); })();
    return predictAveraged(this.models, new EncodedTexts(this.tokenizer, asTrained(texts, this.meta.collapseRuns), this.maxLength), batchSize);
  }

  /** The most likely label, its probability, and every label's probability, per text. */
  async classify(texts: string | string[]): Promise<TextClassification[]> {
    const list = typeof texts === 'string' ? [texts] : texts;
    const k = this.labels.size;
    const probs = await this.probabilitiesAsync(list);
    return list.map((_, i) => {
      const row = probs.subarray(i * k, (i + 1) * k);
      let best = 0;
      for (let c = 1; c < k; c++) if (row[c] > row[best]) best = c;
      const probabilities: Record<string, number> = {};
      this.labels.names.forEach((name, c) => { probabilities[name] = row[c]; });
      return { label: this.labels.name(best), score: row[best], probabilities };
    });
  }

  /**
   * Accuracy, macro-F1, per-class scores and confusion on labelled examples. Reads
   * synchronously: on the webgpu backend use evaluateAsync.
   */
  evaluate(examples: TextExamples, where = 'the evaluation data'): TextEvaluationReport {
    return readNow(this.scored(examples, where), 'await classifier.evaluateAsync(examples)');
  }

  /** evaluate, read asynchronously (every backend). */
  async evaluateAsync(examples: TextExamples, where = 'the evaluation data'): Promise<TextEvaluationReport> {
    return readLater(this.scored(examples, where));
  }

  private *scored(examples: TextExamples, where: string): Reads<TextEvaluationReport> {
    const trueIds = this.labels.ids(examples.labels, where);
    const data = new EncodedTexts(this.tokenizer, asTrained(examples.texts, this.meta.collapseRuns), this.maxLength, trueIds);
    const probs = yield* predictAveraged(this.models, data);
    return textClassificationReport(trueIds, argmaxRows(probs, this.labels.size), this.labels.names, data.truncated);
  }

  dispose(): void {
    this.models.forEach((m) => m.dispose());
  }
}

export interface FineTuneOptions extends TextRunOptions {
  /** Training file (CSV, TSV or JSONL) … */
  train?: string;
  /** … or a built-in task (its train split; its test split is the evaluation set). */
  task?: string;
  /** Evaluation file; default: a stratified 10% held out of the training file. */
  eval?: string;
  textColumn?: string;
  labelColumn?: string;
  /** Tokenizer folder or Hub name; default: the shipped one (or the --from model's). */
  tokenizer?: string;
  allowNetwork?: boolean;
  preset?: string;
  /** A JSON config file, or a partial config object (may name a preset to start from). */
  config?: string | Partial<TextConfig>;
  /** Start from an earlier model's columns (its folder); a new head when its labels differ. */
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
  /** Seed of the held-out split and of the max-length sample (default: `seed`; ensemble members keep the run's). */
  splitSeed?: number;
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
  /** For an ensemble: each member's result, and the averaged model's scores on the evaluation set. */
  ensemble?: { members: FineTuneResult[]; accuracy: number; macroF1: number; seeds: number[] };
}

const HELD_OUT_FRACTION = 0.1;

/** Epochs that give small data sets enough steps and large ones a few passes. */
export function chooseEpochs(trainExamples: number, batchSize: number): number {
  const stepsPerEpoch = Math.ceil(trainExamples / batchSize);
  return Math.max(3, Math.min(30, Math.round(600 / stepsPerEpoch)));
}

/**
 * Fine-tunes (or trains from scratch) a RevCol text classifier and writes its folder:
 * best.safetensors, last.ckpt.safetensors, metrics.jsonl, curves.png/html and the tokenizer's files.
 */
export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!options.out) fail('fine-tune needs an output folder (--out DIR)');
  if (options.task && options.train) fail('give either --task or --train, not both');
  if (!options.task && !options.train) fail('fine-tune needs training data: --train FILE (CSV, TSV or JSONL with text and label columns) or --task NAME');
  if (options.from && (options.preset || options.config)) fail('--from takes the architecture of the earlier model: leave out --preset and --config');
  if (options.preset && options.config) fail('give either --preset or --config, not both (a config file may name a preset to start from)');
  if (options.backend) await useBackend(options.backend);
  else await ensureBackend();
  // An ensemble's member, or a run inside another's folder: the folder is guarded by that run.
  if (options.nestedIn) return fineTuneIn({ ...options, log }, null, async () => {});
  const identity = await textRunIdentity(options);
  return withRunFolder(
    { out: options.out, command: 'fine-tune', resume: options.resume, overwrite: options.overwrite, identity, log },
    (folder) => fineTuneIn({ ...options, log }, folder.record?.ensemble ?? null, (extra) => folder.begin(extra)),
  );
}

/** fineTune() in its folder: `begin` is called right before the first write into it. */
async function fineTuneIn(
  options: FineTuneOptions & { log: (line: string) => void },
  recordedMembers: number | null,
  begin: (extra?: { ensemble?: number }) => Promise<void>,
): Promise<FineTuneResult> {
  const data = await prepareTextData(options, options.splitSeed ?? options.seed ?? 0);
  // --resume of an ensemble continues all its members, however many the flags would give.
  const resuming = options.resume && options.ensemble === undefined ? await readEnsembleManifest(options.out) : null;
  const members = options.ensemble ?? resuming?.members.length ?? (options.resume ? recordedMembers : null) ?? data.hyper.ensemble ?? 1;
  if (!Number.isInteger(members) || members < 1) fail(`--ensemble must be a whole number ≥ 1, got ${members}`);
  if (members > 1) {
    const { fineTuneEnsemble } = await import('./ensemble.js');
    return fineTuneEnsemble(options, members, data.evalSet, () => begin({ ensemble: members }));
  }
  return fineTuneModel(options, data, () => begin());
}

/** What fine-tune trains and evaluates on, and what a task brings along. */
interface PreparedTextData {
  trainSet: TextExamples;
  evalSet: TextExamples;
  labelMap: LabelMap;
  trainIds: Int32Array;
  evalIds: Int32Array;
  taskPreset?: string;
  taskPresetChanges: Partial<TextConfig>;
  hyper: Partial<TaskHyper>;
  /** Lines to print once everything is checked. */
  notes: string[];
}

/** Reads the training and evaluation texts (a task's splits, files, or a held-out part). */
async function prepareTextData(options: FineTuneOptions, splitSeed: number): Promise<PreparedTextData> {
  const notes: string[] = [];
  let sets: Omit<PreparedTextData, 'labelMap' | 'trainIds' | 'evalIds'>;
  if (options.task) {
    if (options.eval) fail('--task brings its own test split: leave out --eval');
    const task = await loadTask(options.task);
    sets = { trainSet: task.train, evalSet: task.test, taskPreset: task.preset, taskPresetChanges: task.presetChanges, hyper: task.hyper, notes };
  } else {
    const columns = { textColumn: options.textColumn, labelColumn: options.labelColumn };
    const all = await readTextExamples(options.train!, columns);
    if (options.eval) {
      sets = { trainSet: all, evalSet: await readTextExamples(options.eval, columns), taskPresetChanges: {}, hyper: {}, notes };
    } else {
      LabelMap.fromLabels(all.labels); // one-class data fails here, before the split
      const split = splitHeldOut(all, HELD_OUT_FRACTION, splitSeed);
      notes.push(`note: no --eval file: holding out ${split.eval.texts.length} of ${all.texts.length} texts (${HELD_OUT_FRACTION * 100}%, stratified) for evaluation`);
      sets = { trainSet: { ...split.train, skipped: all.skipped }, evalSet: split.eval, taskPresetChanges: {}, hyper: {}, notes };
    }
  }
  const labelMap = LabelMap.fromLabels(sets.trainSet.labels);
  const trainIds = labelMap.ids(sets.trainSet.labels, 'the training data');
  const evalIds = labelMap.ids(sets.evalSet.labels, options.eval ? `the evaluation file ${options.eval}` : 'the evaluation data');
  if (sets.evalSet.texts.length === 0) fail('the evaluation set is empty: give an --eval file with labelled rows');
  return { ...sets, labelMap, trainIds, evalIds };
}

/** One model: everything fine-tune does once the data is read. */
async function fineTuneModel(options: FineTuneOptions & { log: (line: string) => void }, data: PreparedTextData, begin: () => Promise<void>): Promise<FineTuneResult> {
  const { log } = options;
  const seed = options.seed ?? 0;
  const splitSeed = options.splitSeed ?? seed;
  const { trainSet, evalSet, taskPreset, taskPresetChanges, hyper, labelMap, trainIds, evalIds } = data;
  // Notes are printed once everything is checked, so that a mistake is the only line shown.
  const notes = [...data.notes];

  const pretrainEpochs = options.from ? 0 : options.pretrainEpochs ?? hyper.pretrainEpochs ?? 0;
  if (!(Number.isInteger(pretrainEpochs) && pretrainEpochs >= 0)) fail(`--pretrain-epochs must be a whole number ≥ 0, got ${pretrainEpochs}`);
  if (options.from && options.pretrainEpochs) fail('--from starts from a model already trained: leave out --pretrain-epochs');
  if (pretrainEpochs > 0) {
    // Self-pre-training on the training texts (never the evaluation texts), then fine-tuning from it.
    const pretrainedDir = path.join(options.out, PRETRAINED_DIR);
    const fineTuneStarted = existsSync(path.join(options.out, 'last.ckpt.safetensors'));
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
        resume: options.resume && existsSync(path.join(pretrainedDir, 'last.ckpt.safetensors')),
        seed,
        lengthSeed: splitSeed,
        progress: options.progress,
        log,
        ...(options.onStep ? { onStep: options.onStep } : {}),
        ...(options.mode ? { mode: options.mode } : {}),
        ...(options.task ? { taskName: options.task } : {}),
      });
    }
    // --resume of an interrupted pre-training starts the fine-tuning afresh.
    options = { ...options, from: pretrainedDir, preset: undefined, config: undefined, resume: options.resume && fineTuneStarted };
  }

  // The earlier model, for --resume (same architecture) or --from (its columns).
  const resumeMeta = options.resume ? await readResumeMeta(options.out) : null;
  const fromEnsemble = options.from ? await readEnsembleManifest(options.from) : null;
  if (fromEnsemble) fail(`--from takes one model, and ${options.from} is an ensemble of ${fromEnsemble.members.length}: pass one of its members, e.g. --from ${path.join(options.from!, fromEnsemble.members[0]!)}`);
  const fromModel = options.from ? await loadModelDir(options.from) : null;
  try {
    const fromMeta = fromModel ? readMeta(fromModel.meta, options.from!) : null;
    const baseMeta = resumeMeta ?? fromMeta;

    // Tokenizer: the flag, else the earlier model's own copy, else the shipped one.
    let tokenizer: TextTokenizer;
    if (options.tokenizer) tokenizer = await TextTokenizer.load(options.tokenizer, { allowNetwork: options.allowNetwork });
    else if (baseMeta) tokenizer = await modelTokenizer(resumeMeta ? options.out : options.from!, baseMeta, options.allowNetwork);
    else tokenizer = await TextTokenizer.load(undefined, { allowNetwork: options.allowNetwork });

    // Architecture.
    let config: TextConfig;
    let presetName: string | null = null;
    if (baseMeta) {
      config = { ...baseMeta.config, numLabels: labelMap.size };
      presetName = baseMeta.preset ?? null;
      if (tokenizer.vocabSize !== config.vocabSize) {
        fail(`tokenizer ${tokenizer.source} has ${tokenizer.vocabSize} tokens but the earlier model was trained with ${config.vocabSize}: leave out --tokenizer to use the model's own`);
      }
    } else {
      let partial: Partial<TextConfig>;
      if (options.config !== undefined) {
        partial = typeof options.config === 'string' ? await readConfigFile(options.config) : { ...options.config };
      } else {
        presetName = options.preset ?? taskPreset ?? presetForDataSize(trainSet.texts.length);
        partial = getPreset(presetName);
        if (!options.preset && taskPreset && Object.keys(taskPresetChanges).length) {
          partial = { ...partial, ...taskPresetChanges };
          const changes = Object.entries(taskPresetChanges).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ');
          notes.push(`task ${options.task}: preset ${presetName} with ${changes}`);
        }
      }
      const fallback = getPreset('text-tiny');
      config = { ...fallback, ...partial, vocabSize: tokenizer.vocabSize, numLabels: labelMap.size } as TextConfig;
    }
    if (options.mode) config.reversible = options.mode === 'reversible';

    const collapseRuns = options.collapseRuns ?? hyper.collapseRuns ?? baseMeta?.collapseRuns ?? 0;
    if (!(Number.isInteger(collapseRuns) && collapseRuns >= 0)) fail(`--collapse-runs must be a whole number ≥ 0 (0: off), got ${collapseRuns}`);
    const trainTexts = asTrained(trainSet.texts, collapseRuns);

    // Lengths: the flag, the task's, the earlier model's, or what covers 95% of the texts.
    let maxLength: number;
    if (options.maxLength !== undefined) maxLength = options.maxLength;
    else if (resumeMeta) maxLength = resumeMeta.maxLength;
    else if (hyper.maxLength !== undefined) maxLength = hyper.maxLength;
    else maxLength = chooseMaxLength(tokenizer, trainTexts, config.maxLength, splitSeed);
    if (!Number.isInteger(maxLength) || maxLength < 2) fail(`--max-length must be a whole number ≥ 2, got ${maxLength}`);
    if (!baseMeta) checkMaxLength(maxLength, config.maxLength, options.maxLength !== undefined ? '--max-length' : `task ${options.task}'s maxLength`, presetName ? `preset ${presetName}` : 'the config');
    if (baseMeta) {
      if (maxLength > config.maxLength) fail(`--max-length ${maxLength} is longer than the earlier model's ${config.maxLength} positions: use ${config.maxLength} or less`);
    } else {
      // Learned positions cover exactly the lengths trained on.
      config.maxLength = maxLength;
    }
    validateConfig(config);

    const batchSize = options.batchSize ?? hyper.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`--batch-size must be a whole number ≥ 1, got ${batchSize}`);
    const epochs = options.epochs ?? hyper.epochs ?? chooseEpochs(trainSet.texts.length, batchSize);
    const lr = options.lr ?? hyper.lr ?? (fromMeta ? 3e-4 : 1e-3);
    const weightDecay = options.weightDecay ?? hyper.weightDecay ?? 0.01;
    const warmupEpochs = options.warmupEpochs ?? hyper.warmupEpochs ?? Math.min(1, epochs / 10);
    const labelSmoothing = options.labelSmoothing ?? hyper.labelSmoothing ?? 0;
    if (!(labelSmoothing >= 0 && labelSmoothing < 1)) fail(`--label-smoothing must be in [0, 1), got ${labelSmoothing}`);
    const ema = options.ema ?? hyper.ema ?? 0;
    const keep = options.keep ?? (options.task ? 'last' : 'best');
    if (keep !== 'best' && keep !== 'last') fail(`--keep must be best or last, got ${String(keep)}`);
    if (!(ema >= 0 && ema < 1)) fail(`--ema must be in [0, 1) (0: no weight average), got ${ema}`);
    const inputMasking = options.inputMasking ?? hyper.inputMasking ?? 0;
    if (!(inputMasking >= 0 && inputMasking < 1)) fail(`--input-masking must be in [0, 1) (0: off), got ${inputMasking}`);
    const masking = inputMasking > 0 ? maskingFor(tokenizer, inputMasking, '--input-masking', ' or use --input-masking 0') : null;

    const model = new RevColText(config, seed);
    let keptHead = false;
    try {
      if (fromModel && !resumeMeta) {
        keptHead = sameLabels(fromMeta!.labels, labelMap.names);
        const heads = new Set(model.headParameterNames());
        // A pre-trained model brings its masked-LM head, which a classifier has no use for.
        const tensors = new Map([...fromModel.tensors].filter(([name]) => !name.startsWith(`${MASKED_LM_HEAD}.`)));
        if (!keptHead) {
          // A fresh head for the new labels; the columns and embeddings carry over.
          for (const name of heads) tensors.delete(name);
          for (const [name, v] of model.namedParameters()) if (heads.has(name)) tensors.set(name, v);
        }
        model.loadStateDict(tensors, `the weights in ${fromModel.file}`);
        notes.push(fromMeta!.objective === MASKED_LM_OBJECTIVE
          ? `starting from the pre-trained model ${options.from}: its embeddings and columns, a new classification head`
          : `starting from ${options.from}: ${keptHead ? 'same labels, keeping its head' : 'new labels, new classification head'}`);
      }

      const trainData = new EncodedTexts(tokenizer, trainTexts, maxLength, trainIds);
      const evalData = new EncodedTexts(tokenizer, asTrained(evalSet.texts, collapseRuns), maxLength, evalIds);
      const meta: TextModelMeta = {
        family: 'text',
        config,
        labels: labelMap.toJSON(),
        tokenizer: tokenizer.source,
        maxLength,
        ...(presetName ? { preset: presetName } : {}),
        ...(options.task ? { task: options.task } : {}),
        ...(collapseRuns ? { collapseRuns } : {}),
      };
      await begin();
      const { mkdir } = await import('node:fs/promises');
      await mkdir(options.out, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        fail(`cannot create the output folder ${options.out} (${err.code ?? err.message}): choose another --out`);
      });
      await tokenizer.save(options.out);
      await removeStaleEnsemble(options.out, log);
      notes.forEach((line) => log(line));

      const summary = await train<TextBatch>({
        model,
        trainSize: trainData.size,
        trainBatches: function* (_epoch, shuffleSeed) {
          let index = 0;
          for (const rows of lengthGroupedBatches(trainData.lengths, batchSize, shuffleSeed)) {
            yield masking ? trainData.batch(rows, (ids, mask) => maskTokens(ids, mask, { ...masking, seed: mixSeed(shuffleSeed, index++) }).ids) : trainData.batch(rows);
          }
        },
        batchSize: (b) => b.labels.shape[0],
        lossAndGradients: (b, step) => model.lossAndGradients(b, { seed: mixSeed(seed, step), labelSmoothing }),
        disposeBatch,
        evaluate: async () => {
          const probs = await readLater(predictEncoded(model, evalData));
          const report = textClassificationReport(evalIds, argmaxRows(probs, labelMap.size), labelMap.names);
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
        title: `RevCol text classifier (${presetName ?? 'custom config'})`,
      });
      return {
        outDir: options.out,
        summary,
        config,
        preset: presetName,
        labels: labelMap.toJSON(),
        maxLength,
        trainExamples: trainData.size,
        evalExamples: evalData.size,
        labelCounts: { train: countLabels(trainSet.labels, labelMap), eval: countLabels(evalSet.labels, labelMap) },
        truncated: { train: trainData.truncated, eval: evalData.truncated },
        skipped: { train: trainSet.skipped, eval: evalSet.skipped },
        tokenizer: tokenizer.source,
        epochs,
        batchSize,
        lr,
        from: options.from && !resumeMeta ? { dir: options.from, keptHead } : null,
        keep,
      };
    } finally {
      model.dispose();
    }
  } finally {
    fromModel?.tensors.forEach((t) => t.dispose());
  }
}

function sameLabels(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function modelTokenizer(dir: string, meta: TextModelMeta, allowNetwork?: boolean): Promise<TextTokenizer> {
  const folder = existsSync(dir) && statSync(dir).isDirectory() ? dir : path.dirname(dir);
  if (existsSync(path.join(folder, 'tokenizer.json'))) return TextTokenizer.fromFolder(path.resolve(folder), meta.tokenizer);
  return TextTokenizer.load(meta.tokenizer, { allowNetwork });
}

async function readResumeMeta(out: string): Promise<TextModelMeta> {
  const last = path.join(out, 'last.ckpt.safetensors');
  if (!existsSync(last)) fail(`cannot resume: ${last} does not exist; run without --resume to start a new run in ${out}`);
  const loaded = await loadModelDir(last);
  loaded.tensors.forEach((t) => t.dispose());
  return readMeta(loaded.meta, out);
}
