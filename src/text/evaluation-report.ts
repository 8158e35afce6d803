/** What evaluating a text classifier reports; shared by the model (classifier.ts) and the baseline (baseline.ts). */
import { type ClassificationReport, classificationReport } from '../train/metrics.js';

export interface TextEvaluationReport extends ClassificationReport {
  /** Texts longer than the model's maxLength, cut for classification. */
  truncated: number;
}

/** Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix. */
export function textClassificationReport(trueIds: ArrayLike<number>, predicted: ArrayLike<number>, labels: string[], truncated = 0): TextEvaluationReport {
  return { ...classificationReport(trueIds, predicted, labels), truncated };
}
