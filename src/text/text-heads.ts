/**
 * The text heads beside single-label classification: regression (a number per text, an MSE
 * head on standardised labels) and multi-label classification (a sigmoid per label, binary
 * cross-entropy, one decision threshold tuned on held-out data). What fine-tune needs to encode
 * their labels, and the classes that load their folders: TextRegressor, MultiLabelClassifier.
 */
import { fail } from '../core/errors.js';
import { readLater, readNow, type Reads } from '../core/reads.js';
import type { TextExamples } from '../data/text.js';
import { asTrained, checkPairs, loadTextModels, predictAveraged, type TextLoadOptions } from './classifier.js';
import { EncodedTexts } from './encoded.js';
import { multiLabelReport, type MultiLabelReport, regressionReport, type RegressionReport } from './head-metrics.js';
import type { RevColText } from './model.js';
import type { TextModelMeta } from './model-meta.js';
import type { TextTokenizer } from './tokenizer.js';

export type { MultiLabelReport, RegressionReport } from './head-metrics.js';

/** What a text model's head predicts. */
export type TextProblem = 'single-label' | 'multi-label' | 'regression';

/** Distinct numeric labels above which numeric labels read as a regression target rather than classes. */
export const REGRESSION_DISTINCT = 20;

/**
 * Whether labels look like a regression target: every one a number, and either some are not
 * whole or there are more than REGRESSION_DISTINCT distinct values (1–5 star ratings stay classes).
 */
export function looksLikeRegression(labels: string[]): boolean {
  if (labels.length === 0) return false;
  const values = new Set<number>();
  let fractional = false;
  for (const l of labels) {
    const v = Number(l);
    if (l.trim() === '' || !Number.isFinite(v)) return false;
    values.add(v);
    if (!Number.isInteger(v)) fractional = true;
  }
  return fractional || values.size > REGRESSION_DISTINCT;
}

/** Regression labels as numbers; the first that is not one is a one-line error naming its file and line. */
export function numericLabels(ex: TextExamples, where: string): Float64Array {
  return Float64Array.from(ex.labels, (l, i) => {
    const v = Number(l);
    if (l.trim() === '' || !Number.isFinite(v)) {
      const line = ex.lines?.[i];
      fail(`${where}${line !== undefined ? `: line ${line}` : `: text ${i + 1}`} has the label ${JSON.stringify(l)}, which is not a number; regression needs a number per text`);
    }
    return v;
  });
}

/** Mean and standard deviation of regression labels (std 1 when they are all equal, so that nothing divides by 0). */
export function labelStats(values: ArrayLike<number>): { mean: number; std: number } {
  const n = values.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i]! / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i]! - mean) ** 2 / n;
  const std = Math.sqrt(v);
  return { mean, std: std > 0 ? std : 1 };
}

/** Standardised targets, what the head learns. */
export function standardise(values: ArrayLike<number>, stats: { mean: number; std: number }): Float32Array {
  return Float32Array.from(values as ArrayLike<number>, (v) => (v - stats.mean) / stats.std);
}

/** Labels of a multi-label training set, sorted; one label in all is an error (nothing to tell apart). */
export function multiLabelNames(sets: string[][]): string[] {
  const names = [...new Set(sets.flat())].sort();
  if (names.length < 2) fail(`the training set has only one label (${JSON.stringify(names[0])}); a multi-label classifier needs at least two`);
  return names;
}

/** 0/1 rows [texts × labels]; a label unseen in training is a one-line error naming it. */
export function multiHot(sets: string[][], names: string[], where: string): Float32Array {
  const index = new Map(names.map((n, i) => [n, i]));
  const out = new Float32Array(sets.length * names.length);
  const unseen = new Set<string>();
  sets.forEach((set, i) => {
    for (const label of set) {
      const c = index.get(label);
      if (c === undefined) unseen.add(label);
      else out[i * names.length + c] = 1;
    }
  });
  if (unseen.size) fail(`${where} has label${unseen.size > 1 ? 's' : ''} not seen in training: ${[...unseen].slice(0, 10).map((l) => JSON.stringify(l)).join(', ')} (training labels: ${names.join(', ')})`);
  return out;
}

/** The shared part of the two loaders: models, tokenizer and meta, and encoding of (pairs of) texts. */
abstract class HeadModel {
  protected constructor(
    readonly models: RevColText[],
    readonly tokenizer: TextTokenizer,
    readonly meta: TextModelMeta,
    readonly source: string,
  ) {}

  get model(): RevColText {
    return this.models[0]!;
  }

  get maxLength(): number {
    return this.meta.maxLength;
  }

  protected encoded(texts: string[], pairs: string[] | undefined): EncodedTexts {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) fail('predict takes an array of strings');
    const second = checkPairs(this.meta, texts.length, pairs, this.source);
    return new EncodedTexts(this.tokenizer, asTrained(texts, this.meta.collapseRuns), this.maxLength, undefined, second && asTrained(second, this.meta.collapseRuns), this.meta);
  }

  protected *outputs(texts: string[], pairs: string[] | undefined): Reads<{ values: Float32Array; truncated: number }> {
    if (texts.length === 0) {
      checkPairs(this.meta, 0, pairs, this.source);
      return { values: new Float32Array(0), truncated: 0 };
    }
    const data = this.encoded(texts, pairs);
    return { values: yield* predictAveraged(this.models, data), truncated: data.truncated };
  }

  dispose(): void {
    this.models.forEach((m) => m.dispose());
  }
}

const asList = (x: string | string[] | undefined): string[] | undefined => (typeof x === 'string' ? [x] : x);

/** A trained text regressor: `await TextRegressor.load(dir)` then `predict(texts)` gives a number per text. */
export class TextRegressor extends HeadModel {
  /** Loads a fine-tune output folder of a regression run (--task-type regression). */
  static async load(dir: string, options: TextLoadOptions = {}): Promise<TextRegressor> {
    const { models, tokenizer, meta, source } = await loadTextModels(dir, options, 'TextRegressor');
    if (!meta.target || !Number.isFinite(meta.target.mean) || !(meta.target.std > 0)) {
      models.forEach((m) => m.dispose());
      fail(`${dir} lacks its regression target's mean and std: it may be damaged; train it again`);
    }
    return new TextRegressor(models, tokenizer, meta, source);
  }

  /** The predicted value of each text (of each pair, with `pairs`: one second text per text). */
  async predict(texts: string | string[], pairs?: string | string[]): Promise<number[]> {
    return Array.from((await readLater(this.values(asList(texts)!, asList(pairs)))).values);
  }

  private *values(texts: string[], pairs: string[] | undefined): Reads<{ values: Float32Array; truncated: number }> {
    const { values, truncated } = yield* this.outputs(texts, pairs);
    const { mean, std } = this.meta.target!;
    return { values: values.map((z) => z * std + mean), truncated };
  }

  /** MSE, MAE, Pearson and Spearman on labelled examples. Reads synchronously: on webgpu use evaluateAsync. */
  evaluate(examples: TextExamples, where = 'the evaluation data'): RegressionReport {
    return readNow(this.scored(examples, where), 'await regressor.evaluateAsync(examples)');
  }

  async evaluateAsync(examples: TextExamples, where = 'the evaluation data'): Promise<RegressionReport> {
    return readLater(this.scored(examples, where));
  }

  private *scored(examples: TextExamples, where: string): Reads<RegressionReport> {
    const truth = numericLabels(examples, where);
    const { values, truncated } = yield* this.values(examples.texts, examples.pairs);
    return regressionReport(truth, values, truncated);
  }
}

/** Labels of one text above the threshold, most likely first, and every label's probability. */
export interface MultiLabelPrediction {
  labels: Array<{ label: string; score: number }>;
  probabilities: Record<string, number>;
}

/** A trained multi-label classifier: `await MultiLabelClassifier.load(dir)` then `classify(texts)`. */
export class MultiLabelClassifier extends HeadModel {
  readonly labels: string[];
  readonly threshold: number;

  private constructor(models: RevColText[], tokenizer: TextTokenizer, meta: TextModelMeta, source: string) {
    super(models, tokenizer, meta, source);
    this.labels = [...meta.labels];
    this.threshold = meta.threshold!;
  }

  /** Loads a fine-tune output folder of a multi-label run (--multi-label). */
  static async load(dir: string, options: TextLoadOptions = {}): Promise<MultiLabelClassifier> {
    const { models, tokenizer, meta, source } = await loadTextModels(dir, options, 'MultiLabelClassifier');
    if (typeof meta.threshold !== 'number' || !(meta.threshold > 0 && meta.threshold < 1) || meta.labels.length !== meta.config.numLabels) {
      models.forEach((m) => m.dispose());
      fail(`${dir} lacks its multi-label threshold or labels: it may be damaged; train it again`);
    }
    return new MultiLabelClassifier(models, tokenizer, meta, source);
  }

  /** Each label's probability [texts × labels], row-major. */
  async probabilitiesAsync(texts: string[], pairs?: string[]): Promise<Float32Array> {
    return (await readLater(this.outputs(texts, pairs))).values;
  }

  /** The labels at or above the threshold (most likely first) and every label's probability, per text. */
  async classify(texts: string | string[], pairs?: string | string[]): Promise<MultiLabelPrediction[]> {
    const list = asList(texts)!;
    const k = this.labels.length;
    const probs = await this.probabilitiesAsync(list, asList(pairs));
    return list.map((_, i) => {
      const row = probs.subarray(i * k, (i + 1) * k);
      const probabilities: Record<string, number> = {};
      this.labels.forEach((name, c) => { probabilities[name] = row[c]!; });
      const labels = this.labels.map((label, c) => ({ label, score: row[c]! })).filter((l) => l.score >= this.threshold).sort((a, b) => b.score - a.score);
      return { labels, probabilities };
    });
  }

  /** Micro/macro F1, subset accuracy and per-label scores at the stored threshold. Reads synchronously: on webgpu use evaluateAsync. */
  evaluate(examples: TextExamples, where = 'the evaluation data'): MultiLabelReport {
    return readNow(this.scored(examples, where), 'await classifier.evaluateAsync(examples)');
  }

  async evaluateAsync(examples: TextExamples, where = 'the evaluation data'): Promise<MultiLabelReport> {
    return readLater(this.scored(examples, where));
  }

  private *scored(examples: TextExamples, where: string): Reads<MultiLabelReport> {
    if (!examples.labelSets) fail(`${where} was not read as multi-label data: read it with readTextExamples(file, { multiLabel: { separator } })`);
    const truth = multiHot(examples.labelSets, this.labels, where);
    const { values, truncated } = yield* this.outputs(examples.texts, examples.pairs);
    return multiLabelReport(truth, values, this.labels, this.threshold, truncated);
  }
}
