/**
 * Classification metrics, one home for every family: accuracy, per-class precision, recall and
 * F1, macro-F1 and the confusion matrix from class ids (text classification, token tagging's
 * per-tag scores, and vision when it reports per class).
 */
import { confusionMatrix } from './losses.js';


/** Precision, recall and F1 of one class, and how many true examples it has. */
export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Scores from true positives, predicted positives and true examples (0 where undefined). */
export function classScores(truePositives: number, predicted: number, support: number): ClassScores {
  const precision = predicted ? truePositives / predicted : 0;
  const recall = support ? truePositives / support : 0;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1, support };
}

export interface ClassificationReport {
  accuracy: number;
  macroF1: number;
  examples: number;
  labels: string[];
  perClass: Record<string, ClassScores>;
  /** confusion[t][p]: examples of true class t predicted as class p (in `labels` order). */
  confusion: number[][];
}

/** Accuracy, macro-F1 (over every label, present or not), per-class scores and the confusion matrix. */
export function classificationReport(trueIds: ArrayLike<number>, predicted: ArrayLike<number>, labels: readonly string[]): ClassificationReport {
  const k = labels.length;
  const { confusion, accuracy } = confusionMatrix(trueIds, predicted, k);
  const perClass: Record<string, ClassScores> = {};
  let f1Sum = 0;
  labels.forEach((label, c) => {
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[c]!, 0);
    perClass[label] = classScores(confusion[c]![c]!, predictedCount, support);
    f1Sum += perClass[label]!.f1;
  });
  return { accuracy, macroF1: k ? f1Sum / k : 0, examples: trueIds.length, labels: [...labels], perClass, confusion };
}

/** The index of each row's largest value in a row-major [n × k] array (the first on ties). */
export function argmaxRows(values: ArrayLike<number>, k: number): Int32Array {
  const n = values.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (values[i * k + c]! > values[i * k + best]!) best = c;
    out[i] = best;
  }
  return out;
}
