/**
 * Scores of the text heads beyond single-label classification: regression (MSE, MAE, Pearson,
 * Spearman) and multi-label classification (micro/macro F1, subset accuracy, the decision
 * threshold tuned on held-out data). Plain arrays in, numbers out: no tensors.
 */
import { fail } from '../core/errors.js';

export interface RegressionReport {
  examples: number;
  /** Mean squared error, in the label's own units (squared). */
  mse: number;
  /** Mean absolute error. */
  mae: number;
  /** Linear correlation of predictions and labels (0 when either is constant). */
  pearson: number;
  /** Rank correlation: Pearson of the ranks, ties given their average rank. */
  spearman: number;
  /** Texts longer than the model's maxLength, cut for prediction. */
  truncated: number;
}

export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (n !== b.length) fail(`pearson needs two series of one length (${a.length} and ${b.length})`);
  if (n === 0) return 0;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]! / n;
    mb += b[i]! / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  // A constant series correlates with nothing.
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

/** Ranks from 1, ties sharing their average rank. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((x, y) => values[x]! - values[y]!);
  const ranks = new Float64Array(values.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && values[order[end]!] === values[order[start]!]) end++;
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]!] = rank;
    start = end;
  }
  return ranks;
}

export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return pearson(averageRanks(a), averageRanks(b));
}

export function regressionReport(truth: ArrayLike<number>, predicted: ArrayLike<number>, truncated = 0): RegressionReport {
  const n = truth.length;
  if (n !== predicted.length) fail(`regression scores need one prediction per label (${predicted.length} for ${n})`);
  let se = 0;
  let ae = 0;
  for (let i = 0; i < n; i++) {
    const d = predicted[i]! - truth[i]!;
    se += d * d;
    ae += Math.abs(d);
  }
  return { examples: n, mse: n ? se / n : 0, mae: n ? ae / n : 0, pearson: pearson(predicted, truth), spearman: spearman(predicted, truth), truncated };
}

export interface LabelScores {
  precision: number;
  recall: number;
  f1: number;
  /** Texts that carry the label. */
  support: number;
}

export interface MultiLabelReport {
  examples: number;
  /** A label is predicted when its probability is at least this. */
  threshold: number;
  /** F1 of all (text, label) decisions pooled. */
  microF1: number;
  /** The mean of the labels' F1. */
  macroF1: number;
  /** Share of texts whose predicted label set is exactly right. */
  subsetAccuracy: number;
  labels: string[];
  perLabel: Record<string, LabelScores>;
  truncated: number;
}

const f1Of = (tp: number, fp: number, fn: number): number => (tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn));

/**
 * Scores of multi-label predictions. `truth` and `scores` are [texts × labels] row-major: truth
 * 0/1, scores probabilities; a label is predicted when its score ≥ threshold.
 */
export function multiLabelReport(truth: ArrayLike<number>, scores: ArrayLike<number>, labels: string[], threshold: number, truncated = 0): MultiLabelReport {
  const k = labels.length;
  const n = k ? Math.floor(truth.length / k) : 0;
  if (truth.length !== scores.length || n * k !== truth.length) fail(`multi-label scores need [texts × ${k}] truth and scores (${truth.length} and ${scores.length} values)`);
  const tp = new Array<number>(k).fill(0);
  const fp = new Array<number>(k).fill(0);
  const fn = new Array<number>(k).fill(0);
  let exact = 0;
  for (let i = 0; i < n; i++) {
    let right = true;
    for (let c = 0; c < k; c++) {
      const yes = truth[i * k + c]! > 0.5;
      const said = scores[i * k + c]! >= threshold;
      if (yes && said) tp[c]++;
      else if (said) fp[c]++;
      else if (yes) fn[c]++;
      if (yes !== said) right = false;
    }
    if (right) exact++;
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const perLabel: Record<string, LabelScores> = {};
  labels.forEach((label, c) => {
    perLabel[label] = {
      precision: tp[c]! + fp[c]! ? tp[c]! / (tp[c]! + fp[c]!) : 0,
      recall: tp[c]! + fn[c]! ? tp[c]! / (tp[c]! + fn[c]!) : 0,
      f1: f1Of(tp[c]!, fp[c]!, fn[c]!),
      support: tp[c]! + fn[c]!,
    };
  });
  return {
    examples: n,
    threshold,
    microF1: f1Of(sum(tp), sum(fp), sum(fn)),
    macroF1: k ? labels.reduce((s, l) => s + perLabel[l]!.f1, 0) / k : 0,
    subsetAccuracy: n ? exact / n : 0,
    labels: [...labels],
    perLabel,
    truncated,
  };
}

/**
 * The decision threshold with the best micro-F1 on held-out data, among 0.05, 0.10, … 0.95
 * (a coarse grid: a finer one would fit the held-out set's noise); ties go to the one nearest 0.5.
 */
export function tuneThreshold(truth: ArrayLike<number>, scores: ArrayLike<number>, labels: string[]): number {
  let best = 0.5;
  let bestF1 = -1;
  for (let step = 1; step <= 19; step++) {
    const t = step / 20;
    const f1 = multiLabelReport(truth, scores, labels, t).microF1;
    if (f1 > bestF1 + 1e-12 || (Math.abs(f1 - bestF1) <= 1e-12 && Math.abs(t - 0.5) < Math.abs(best - 0.5))) {
      best = t;
      bestF1 = f1;
    }
  }
  return best;
}
