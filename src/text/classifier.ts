/**
 * Inference with a trained text classifier: `await TextClassifier.load(dir)`, then `classify`
 * or `evaluate`. Training lives in fine-tune.ts, the scores in src/train/metrics.ts.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { readLater, readNow, type Reads } from '../core/reads.js';
import { collapseSymbolRuns, LabelMap, type TextExamples } from '../data/text.js';
import { loadModelDir } from '../train/checkpoint.js';
import { argmaxRows, type ClassScores } from '../train/metrics.js';
import { type TextEvaluationReport, textClassificationReport } from './evaluation-report.js';
import { type BaselineBlend, blendColumns, mixBaseline, readBaselineBlend } from './baseline-blend.js';
import { disposeBatch, EncodedTexts } from './encoded.js';
import { ENSEMBLE_FILE, readEnsembleManifest } from './ensemble-manifest.js';
import { RevColText } from './model.js';
import { headKind, MASKED_LM_OBJECTIVE, readTextMeta, sameLabels, type TextModelMeta } from './model-meta.js';
import { TextTokenizer } from './tokenizer.js';

export { PRETRAINED_DIR, type TextModelMeta } from './model-meta.js';

/** Class probabilities of one text, pipeline style. */
export interface TextClassification {
  label: string;
  score: number;
  probabilities: Record<string, number>;
}

/** Precision, recall, F1 and support of one class. */
export type TextClassMetrics = ClassScores;

export { type TextEvaluationReport, textClassificationReport } from './evaluation-report.js';

/**
 * Probabilities [n, classes] of encoded texts, in batches, in eval mode. Written once for both
 * kinds of read (src/core/reads.ts): run it with readLater (any backend) or readNow.
 */
export function* predictEncoded(model: RevColText, data: EncodedTexts, batchSize = 64): Reads<Float32Array> {
  // Regression's one output, multi-label's sigmoids and softmax probabilities alike: the head's outputs per text.
  const k = model.config.numLabels;
  const out = new Float32Array(data.size * k);
  // Similar lengths together: less padding per batch. Results go back to input order.
  const order = Array.from({ length: data.size }, (_, i) => i).sort((a, b) => data.lengths[a] - data.lengths[b]);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const batch = data.batch(rows);
    let probs: ReturnType<RevColText['probabilities']> | undefined;
    try {
      probs = model.probabilities(batch.inputIds, batch.attentionMask, batch.tokenTypeIds, batch.windowWeights);
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
export function asTrained(texts: string[], collapseRuns = 0): string[] {
  return collapseRuns ? texts.map((t) => collapseSymbolRuns(t, collapseRuns)) : texts;
}

/** The mean of several models' probabilities (one model: its own). */
export function* predictAveraged(models: RevColText[], data: EncodedTexts, batchSize = 64): Reads<Float32Array> {
  if (models.length === 1) return yield* predictEncoded(models[0]!, data, batchSize);
  const sum = new Float32Array(data.size * models[0]!.config.numLabels);
  for (const model of models) {
    const probs = yield* predictEncoded(model, data, batchSize);
    for (let i = 0; i < sum.length; i++) sum[i] += probs[i]! / models.length;
  }
  return sum;
}

export interface TextLoadOptions {
  /** Switch TensorFlow.js to this backend first (default: keep the current one). */
  backend?: string;
  allowNetwork?: boolean;
}

/** A loaded text model folder: its models (an ensemble's members), tokenizer, meta and what was read. */
export interface LoadedTextModels {
  models: RevColText[];
  tokenizer: TextTokenizer;
  meta: TextModelMeta;
  source: string;
}

/**
 * Loads a fine-tune output folder (or its best.safetensors); an ensemble's folder loads all its
 * members. `expect` is the loader's class: a folder whose head is another kind is a one-line
 * error naming the class that loads it.
 */
export async function loadTextModels(dir: string, options: TextLoadOptions, expect: string): Promise<LoadedTextModels> {
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
        const meta = readTextMeta(loaded.meta, memberDir);
        if (meta.objective === MASKED_LM_OBJECTIVE) fail(`${memberDir} is a pre-trained (masked-LM) model with no classifier: fine-tune it first (fineTune with from: ${memberDir}; revcol fine-tune --from ${memberDir} --train FILE)`);
        const kind = headKind(meta);
        if (kind.loader !== expect) fail(`${memberDir} holds ${kind.what}: load it with ${kind.loader} (revcol eval and predict tell them apart)`);
        if (!first) {
          first = meta;
          source = manifest ? path.join(dir, ENSEMBLE_FILE) : loaded.file;
        } else if (!sameLabels(meta.labels, first.labels) || meta.maxLength !== first.maxLength || meta.truncation !== first.truncation || meta.windows !== first.windows || meta.config.vocabSize !== first.config.vocabSize) {
          fail(`the members of the ensemble ${dir} differ in labels, max length, truncation, windows or vocabulary: its folders do not belong together; train it again`);
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
    return { models, tokenizer, meta, source };
  } catch (err) {
    models.forEach((m) => m.dispose());
    throw err;
  }
}

/**
 * The second texts of sentence pairs, checked against what the model was trained on: a pair
 * model needs one per text, a single-text model none.
 */
export function checkPairs(meta: TextModelMeta, count: number, pairs: string[] | undefined, source: string): string[] | undefined {
  if (meta.config.segments) {
    if (!pairs) fail(`${source} was trained on sentence pairs: give each text its second text (pairs; revcol: --pair TEXT, or --file with a ${JSON.stringify(meta.textPairColumn ?? 'text_pair')} column)`);
    if (!Array.isArray(pairs) || pairs.length !== count || pairs.some((p) => typeof p !== 'string')) fail(`give one second text (a string) per text: ${count} texts, ${Array.isArray(pairs) ? pairs.length : 'no'} second texts`);
    return pairs;
  }
  if (pairs) fail(`${source} was trained on single texts, not sentence pairs: leave out the second texts`);
  return undefined;
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
    /** The TF-IDF + logistic regression model mixed in (fine-tune --baseline-weight), if the folder has one. */
    readonly blend: BaselineBlend | null = null,
  ) {
    // The blend lies in the folder that holds `source` (best.safetensors, or ensemble.json).
    this.blendColumns = blend ? blendColumns(blend.baseline, labels.names, path.dirname(source)) : null;
  }

  /** The blend's column for each of the model's labels; computing it checks that the two belong together. */
  private readonly blendColumns: number[] | null;

  /** The model (an ensemble's first member). */
  get model(): RevColText {
    return this.models[0]!;
  }

  /** Loads a fine-tune output folder (or its best.safetensors); an ensemble's folder loads all its members. */
  static async load(dir: string, options: TextLoadOptions = {}): Promise<TextClassifier> {
    const { models, tokenizer, meta, source } = await loadTextModels(dir, options, 'TextClassifier');
    try {
      const labels = LabelMap.fromJSON(meta.labels);
      // The blend belongs to the folder fine-tune wrote (an ensemble's, or a single model's); a
      // member folder or a weights file alone loads the model alone.
      const blend = statSync(dir).isDirectory() ? await readBaselineBlend(dir) : null;
      return new TextClassifier(models, tokenizer, labels, meta.maxLength, meta, source, blend);
    } catch (err) {
      models.forEach((m) => m.dispose());
      throw err;
    }
  }

  /**
   * Class probabilities [texts × labels], row-major. Reads synchronously: on the webgpu backend
   * use probabilitiesAsync.
   */
  probabilities(texts: string[], batchSize = 64, pairs?: string[]): Float32Array {
    return readNow(this.predict(texts, batchSize, pairs), 'await classifier.probabilitiesAsync(texts)');
  }

  /** Class probabilities [texts × labels], row-major, read asynchronously (every backend). */
  async probabilitiesAsync(texts: string[], batchSize = 64, pairs?: string[]): Promise<Float32Array> {
    return readLater(this.predict(texts, batchSize, pairs));
  }

  private predict(texts: string[], batchSize: number, pairs?: string[]): Reads<Float32Array> {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) fail('classify takes an array of strings');
    const second = checkPairs(this.meta, texts.length, pairs, this.source);
    if (texts.length === 0) return (function* () { return new Float32Array(0); })();
    return this.blended(texts, predictAveraged(this.models, new EncodedTexts(this.tokenizer, asTrained(texts, this.meta.collapseRuns), this.maxLength, undefined, second && asTrained(second, this.meta.collapseRuns), this.meta), batchSize));
  }

  /** The models' probabilities, mixed with the baseline's when the folder has one (it reads the texts as given). */
  private *blended(texts: string[], models: Reads<Float32Array>): Reads<Float32Array> {
    const probs = yield* models;
    return this.blend ? mixBaseline(probs, texts, this.blend, this.blendColumns!) : probs;
  }

  /**
   * The most likely label, its probability, and every label's probability, per text. A model
   * trained on sentence pairs takes each text's second text in `pairs` (one per text).
   */
  async classify(texts: string | string[], pairs?: string | string[]): Promise<TextClassification[]> {
    const list = typeof texts === 'string' ? [texts] : texts;
    const k = this.labels.size;
    const probs = await this.probabilitiesAsync(list, 64, typeof pairs === 'string' ? [pairs] : pairs);
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

  /**
   * evaluateAsync of the folder as loaded (`mixed`: with its baseline blend, if it has one) and of
   * its model or ensemble alone, from one pass of the model (every backend).
   */
  async evaluateMixedAndAloneAsync(examples: TextExamples, where = 'the evaluation data'): Promise<{ mixed: TextEvaluationReport; alone: TextEvaluationReport }> {
    return readLater(this.scoredBoth(examples, where));
  }

  private *scored(examples: TextExamples, where: string): Reads<TextEvaluationReport> {
    return (yield* this.scoredBoth(examples, where)).mixed;
  }

  private *scoredBoth(examples: TextExamples, where: string): Reads<{ mixed: TextEvaluationReport; alone: TextEvaluationReport }> {
    const trueIds = this.labels.ids(examples.labels, where);
    const pairs = checkPairs(this.meta, examples.texts.length, examples.pairs, this.source);
    const data = new EncodedTexts(this.tokenizer, asTrained(examples.texts, this.meta.collapseRuns), this.maxLength, trueIds, pairs && asTrained(pairs, this.meta.collapseRuns), this.meta);
    const probs = yield* predictAveraged(this.models, data);
    const report = (p: Float32Array) => textClassificationReport(trueIds, argmaxRows(p, this.labels.size), this.labels.names, data.truncated);
    // The model's own report first: mixBaseline mixes in place.
    const alone = report(probs);
    return { alone, mixed: this.blend ? report(mixBaseline(probs, examples.texts, this.blend, this.blendColumns!)) : alone };
  }

  dispose(): void {
    this.models.forEach((m) => m.dispose());
  }
}
