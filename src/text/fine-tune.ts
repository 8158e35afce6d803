/**
 * The text-classification training recipe: fineTune reads the data (a file, a task's splits, or
 * a held-out part), chooses the model and the settings the user left open, optionally
 * pre-trains (masked LM) first or trains a seed ensemble, and writes a model folder that
 * TextClassifier.load reads.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { readLater } from '../core/reads.js';
import { mixSeed } from '../core/random.js';
import { countLabels, LabelMap, readTextExamples, splitHeldOut, type TextExamples } from '../data/text.js';
import { loadModelDir } from '../train/checkpoint.js';
import { argmaxRows } from '../train/metrics.js';
import { withRunFolder } from '../train/run-folder.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { asTrained, predictEncoded, textClassificationReport } from './classifier.js';
import { chooseMaxLength, disposeBatch, EncodedTexts, lengthGroupedBatches } from './encoded.js';
import { readEnsembleManifest, removeStaleEnsemble } from './ensemble-manifest.js';
import { RevColText, type TextBatch } from './model.js';
import { folderTokenizer, MASKED_LM_HEAD, MASKED_LM_OBJECTIVE, PRETRAINED_DIR, readResumeMeta, readTextMeta, sameLabels, type TextModelMeta } from './model-meta.js';
import { checkMaxLength, maskingFor, maskTokens, pretrain, runTrainOptions, textRunIdentity, type TextRunOptions } from './pretrain.js';
import { getPreset, presetForDataSize, readConfigFile, type TextConfig, validateConfig } from './presets.js';
import { loadTask, type TaskHyper } from './tasks.js';
import { TextTokenizer } from './tokenizer.js';

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
    return fineTuneEnsemble(options, members, data.evalSet, fineTune, () => begin({ ensemble: members }));
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
  const resumeMeta = options.resume ? readTextMeta(await readResumeMeta(options.out), options.out) : null;
  const fromEnsemble = options.from ? await readEnsembleManifest(options.from) : null;
  if (fromEnsemble) fail(`--from takes one model, and ${options.from} is an ensemble of ${fromEnsemble.members.length}: pass one of its members, e.g. --from ${path.join(options.from!, fromEnsemble.members[0]!)}`);
  const fromModel = options.from ? await loadModelDir(options.from) : null;
  try {
    const fromMeta = fromModel ? readTextMeta(fromModel.meta, options.from!) : null;
    const baseMeta = resumeMeta ?? fromMeta;

    // Tokenizer: the flag, else the earlier model's own copy, else the shipped one.
    let tokenizer: TextTokenizer;
    if (options.tokenizer) tokenizer = await TextTokenizer.load(options.tokenizer, { allowNetwork: options.allowNetwork });
    else if (baseMeta) tokenizer = await folderTokenizer(resumeMeta ? options.out : options.from!, baseMeta.tokenizer, options.allowNetwork);
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
