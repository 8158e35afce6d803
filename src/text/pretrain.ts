import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { SeededRandom } from '../data/augment.js';
import { collapseSymbolRuns, readTextExamples, seededPermutation } from '../data/text.js';
import { checkWorkersBackend, defaultWorkers, workersLine } from '../train/data-parallel.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { maskedShards, startMaskedLMWorkers } from './data-parallel-mlm.js';
import { chooseMaxLength, EncodedTexts, lengthGroupedBatches } from './encoded.js';
import { MaskedLMModel } from './fill-mask.js';
import { type MaskedTextBatch, RevColText } from './model.js';
import { MASKED_LM_OBJECTIVE } from './model-meta.js';
import type { TextConfig } from './presets.js';
import {
  checkWhole, inRunFolder, makeOutputFolder, namer, resolveArchitecture, resolveMaxLength, resolveTokenizer, resolveTrainingSettings, runTrainOptions, startTextRun, type TextRunOptions,
} from './run-options.js';
import { loadTask } from './tasks.js';
import type { TextTokenizer } from './tokenizer.js';

export { MASKED_LM_HEAD, MASKED_LM_OBJECTIVE } from './model-meta.js';

/** BERT's recipe: 15% of the tokens are chosen; of those 80% become [MASK], 10% a random token, 10% stay. */
export const DEFAULT_MASK_FRACTION = 0.15;

export interface MaskingOptions {
  fraction: number;
  maskTokenId: number;
  vocabSize: number;
  /** Never chosen ([CLS], [SEP], padding). */
  specialTokenIds: ReadonlySet<number>;
  seed: number;
}

/**
 * The masking settings for a tokenizer, or a one-line error when it has no mask token (`needs`
 * says what needs it, `orElse` how to do without).
 */
export function maskingFor(tokenizer: TextTokenizer, fraction: number, needs: string, orElse = ''): Omit<MaskingOptions, 'seed'> {
  if (tokenizer.maskTokenId === null) fail(`tokenizer ${tokenizer.source} has no mask token, which ${needs} needs; set mask_token in its tokenizer_config.json${orElse}`);
  return { fraction, maskTokenId: tokenizer.maskTokenId, vocabSize: tokenizer.vocabSize, specialTokenIds: tokenizer.specialTokenIds };
}

/**
 * Masks a batch of token ids [rows × width] (row-major, with its attention mask) for masked-LM
 * training, BERT's way. Returns the corrupted ids and, per chosen token, its flattened position
 * (row·width + column) and original id. Every batch with an eligible token gets at least one.
 */
export function maskTokens(ids: Int32Array, attention: Int32Array, o: MaskingOptions): { ids: Int32Array; positions: Int32Array; targets: Int32Array } {
  const rng = new SeededRandom(o.seed);
  const out = Int32Array.from(ids);
  const positions: number[] = [];
  let firstEligible = -1;
  for (let i = 0; i < ids.length; i++) {
    if (!attention[i] || o.specialTokenIds.has(ids[i]!)) continue;
    if (firstEligible < 0) firstEligible = i;
    if (rng.next() < o.fraction) positions.push(i);
  }
  if (positions.length === 0 && firstEligible >= 0) positions.push(firstEligible);
  const targets = new Int32Array(positions.length);
  positions.forEach((p, k) => {
    targets[k] = ids[p]!;
    const r = rng.next();
    if (r < 0.8) out[p] = o.maskTokenId;
    else if (r < 0.9) out[p] = rng.int(0, o.vocabSize - 1);
  });
  return { ids: out, positions: Int32Array.from(positions), targets };
}

function maskedBatch(data: EncodedTexts, rows: number[], masking: Omit<MaskingOptions, 'seed'>, seed: number): MaskedTextBatch {
  const { ids, mask, width } = data.rowsOf(rows);
  const m = maskTokens(ids, mask, { ...masking, seed });
  return {
    inputIds: tf.tensor2d(m.ids, [rows.length, width], 'int32'),
    attentionMask: tf.tensor2d(mask, [rows.length, width], 'int32'),
    positions: tf.tensor1d(m.positions, 'int32'),
    targets: tf.tensor1d(m.targets, 'int32'),
  };
}

function disposeMasked(b: MaskedTextBatch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets]);
}

// The run options and their checks moved to run-options.ts; kept importable from here.
export { checkMaxLength, runTrainOptions, textRunIdentity, type TextRunOptions } from './run-options.js';

export interface PretrainOptions extends TextRunOptions {
  /** Texts: a file (CSV, TSV or JSONL; only its text column is read, labels are not needed) … */
  train?: string;
  /** … a built-in task (its train split's texts) … */
  task?: string;
  /** … or the texts themselves (API). */
  texts?: string[];
  textColumn?: string;
  /** Tokenizer folder or Hub name (default: the shipped one), or a loaded tokenizer (API). */
  tokenizer?: string | TextTokenizer;
  allowNetwork?: boolean;
  preset?: string;
  /** Changes over the preset (as a task's presetChanges). */
  presetChanges?: Partial<TextConfig>;
  config?: string | Partial<TextConfig>;
  /** Share of tokens chosen for prediction (default 0.15). */
  maskFraction?: number;
  /** Cut runs of one repeated symbol before tokenizing (as fine-tune --collapse-runs; recorded for the fine-tune that follows; default: the task's, else off). */
  collapseRuns?: number;
  /** Recorded in the checkpoint (fine-tune passes its task). */
  taskName?: string;
  /**
   * Seed of the sample the max length is chosen from (default: `seed`). Fine-tune passes its
   * split seed, the one its own choice uses, so that an ensemble member (whose seed differs)
   * pre-trains at the length it then fine-tunes at.
   */
  lengthSeed?: number;
  /**
   * Data-parallel training: each batch (masked whole, as on one thread) is cut into this many
   * shards, computed at once by the main thread and `workers - 1` worker threads (cpu and wasm
   * backends), their gradients summed, each shard weighted by its masked tokens (docs/threads.md).
   * Deterministic for a given seed and worker count. Default: every core (at most 8) on cpu and
   * wasm for 1,000 training texts or more, else 1 (defaultWorkers).
   */
  workers?: number;
}

export interface PretrainResult {
  outDir: string;
  summary: TrainSummary;
  config: TextConfig;
  preset: string | null;
  maxLength: number;
  trainTexts: number;
  heldOutTexts: number;
  epochs: number;
}

/** Texts held out to score masked-token accuracy each epoch: 5%, between 1 and 256 texts. */
function heldOutCount(n: number): number {
  return n < 2 ? 0 : Math.max(1, Math.min(256, Math.round(n * 0.05)));
}

/**
 * Masked-LM pre-training of a RevCol text model's embeddings and columns on unlabelled texts
 * (self-pre-training: the texts a classifier will later be fine-tuned on are themselves a
 * useful pre-training corpus). Writes a folder that `fine-tune --from` starts from:
 * best.safetensors, last.ckpt.safetensors (--resume), metrics.jsonl (accuracy is the share of
 * masked tokens predicted right on a held-out 5%), curves and the tokenizer's files.
 */
export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const name = namer(options);
  const { log } = await startTextRun(options, 'pre-training', `texts (${name('train')}: a file with a text column, ${name('task')}, or texts)`);
  return inRunFolder(options, 'pretrain', log, (begin) => pretrainIn(options, log, () => begin()));
}

/** pretrain() in its (guarded) folder; `begin` is called right before the first write. */
async function pretrainIn(options: PretrainOptions, log: (line: string) => void, begin: () => Promise<void>): Promise<PretrainResult> {
  const name = namer(options);
  if (options.workers !== undefined) checkWhole(options.workers, 1, 'workers', name, ' (1: one thread)');
  if ((options.workers ?? 1) > 1) checkWorkersBackend(name('workers'));
  let texts: string[];
  let taskPreset: string | undefined;
  let taskChanges: Partial<TextConfig> = {};
  let taskMaxLength: number | undefined;
  let taskCollapseRuns: number | undefined;
  if (options.task) {
    const task = await loadTask(options.task);
    texts = task.train.texts;
    taskPreset = task.preset;
    taskChanges = task.presetChanges;
    taskMaxLength = task.hyper.maxLength;
    taskCollapseRuns = task.hyper.collapseRuns;
  } else if (options.train) {
    texts = (await readTextExamples(options.train, { textColumn: options.textColumn, requireLabels: false, optionName: name })).texts;
  } else {
    texts = options.texts!;
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) fail('pretrain: texts must be an array of strings');
  }
  if (texts.length < 2) fail(`pretraining needs at least 2 texts, got ${texts.length}`);
  const collapseRuns = checkWhole(options.collapseRuns ?? taskCollapseRuns ?? 0, 0, 'collapseRuns', name, ' (0: off)');
  if (collapseRuns) texts = texts.map((t) => collapseSymbolRuns(t, collapseRuns));

  const tokenizer = await resolveTokenizer(options.tokenizer, null, options.allowNetwork, name);
  const masking = maskingFor(tokenizer, options.maskFraction ?? DEFAULT_MASK_FRACTION, 'masked-LM pre-training');

  const seed = options.seed ?? 0;
  // numLabels is the classifier's business; pre-training keeps no classification head.
  const arch = await resolveArchitecture({
    preset: options.preset,
    config: options.config,
    taskPreset,
    taskPresetChanges: taskChanges,
    presetChanges: options.presetChanges,
    dataSize: texts.length,
    vocabSize: tokenizer.vocabSize,
    numLabels: 2,
    mode: options.mode,
    optionName: name,
  });
  const { config, preset: presetName } = arch;
  const maxLength = resolveMaxLength(arch, {
    given: options.maxLength,
    task: taskMaxLength,
    taskName: options.task,
    min: 2,
    choose: () => chooseMaxLength(tokenizer, texts, config.maxLength, options.lengthSeed ?? seed),
  }, name);
  const { batchSize, epochs, lr, weightDecay, warmupEpochs, note } = resolveTrainingSettings(options, {}, {
    batchSize: 32, epochs: () => 10, lr: 2e-3, keep: 'last', trainSize: texts.length - heldOutCount(texts.length),
  }, name);
  const maskFraction = masking.fraction;
  if (!(maskFraction > 0 && maskFraction < 1)) fail(`${name('maskFraction')} must be between 0 and 1, got ${maskFraction}`);

  const order = seededPermutation(texts.length, mixSeed(seed, 0x9e1d));
  const held = new Set(order.slice(0, heldOutCount(texts.length)));
  const trainData = new EncodedTexts(tokenizer, texts.filter((_, i) => !held.has(i)), maxLength);
  const heldData = new EncodedTexts(tokenizer, texts.filter((_, i) => held.has(i)), maxLength);

  await begin();
  await makeOutputFolder(options.out, name);
  await tokenizer.save(options.out);
  if (note) log(note);

  const model = new MaskedLMModel(new RevColText(config, seed), seed);
  let pool: Awaited<ReturnType<typeof startMaskedLMWorkers>> | null = null;
  try {
    const workers = options.workers ?? defaultWorkers(trainData.size);
    if (workers > 1) {
      pool = await startMaskedLMWorkers(model, workers);
      log(workersLine(workers, options.workers === undefined, 'training texts'));
    }
    const dp = pool;
    // The held-out texts are masked once, so every epoch is scored on the same positions.
    const heldBatches: number[][] = [];
    for (let i = 0; i < heldData.size; i += 64) heldBatches.push(Array.from({ length: Math.min(64, heldData.size - i) }, (_, k) => i + k));
    const summary = await train<MaskedTextBatch>({
      model,
      trainSize: trainData.size,
      trainBatches: function* (_epoch, shuffleSeed) {
        let b = 0;
        for (const rows of lengthGroupedBatches(trainData.lengths, batchSize, shuffleSeed)) yield maskedBatch(trainData, rows, masking, mixSeed(shuffleSeed, 0x3a5c, b++));
      },
      batchSize: (b) => b.inputIds.shape[0],
      lossAndGradients: dp
        ? (b, step) => dp.lossAndGradients(maskedShards(b, dp.shards), mixSeed(seed, step))
        : (b, step) => model.text.maskedLMLossAndGradients(b, model.mlm, { seed: mixSeed(seed, step) }),
      disposeBatch: disposeMasked,
      evaluate: async () => {
        let right = 0;
        let total = 0;
        let lossSum = 0;
        for (const [k, rows] of heldBatches.entries()) {
          const batch = maskedBatch(heldData, rows, masking, mixSeed(seed, 0xe7a1, k));
          try {
            const { loss, predicted } = await model.text.maskedLMPredict(batch, model.mlm);
            const targets = await batch.targets.data();
            for (let i = 0; i < predicted.length; i++) right += predicted[i] === targets[i] ? 1 : 0;
            total += predicted.length;
            lossSum += loss * predicted.length;
          } finally {
            disposeMasked(batch);
          }
        }
        return { accuracy: total ? right / total : 0, maskedLoss: total ? lossSum / total : 0 };
      },
    }, {
      ...runTrainOptions(options, log),
      epochs,
      lr,
      weightDecay,
      warmupEpochs,
      keep: 'last',
      meta: {
        family: 'text',
        objective: MASKED_LM_OBJECTIVE,
        config,
        labels: [],
        tokenizer: tokenizer.source,
        maxLength,
        ...(presetName ? { preset: presetName } : {}),
        ...(options.taskName ?? options.task ? { task: options.taskName ?? options.task } : {}),
        ...(collapseRuns ? { collapseRuns } : {}),
      },
      title: `RevCol text masked-LM pre-training (${presetName ?? 'custom config'})`,
    });
    return { outDir: options.out, summary, config, preset: presetName, maxLength, trainTexts: trainData.size, heldOutTexts: heldData.size, epochs };
  } finally {
    await pool?.close();
    model.dispose();
  }
}
