/**
 * Runs of bench/spam/validation.ts read back: their shared validation part, their training
 * part, and each run's class probabilities on the validation texts from its LAST checkpoint
 * (best.safetensors was chosen on the validation part itself).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { collapseSymbolRuns } from '../../src/data/text.js';
import { TextClassifier } from '../../src/text/classifier.js';

export interface ValidationRuns {
  /** The first run's training part (the runs share it when they share the validation part). */
  fit: Array<{ text: string; label: string }>;
  validation: Array<{ text: string; label: string }>;
  texts: string[];
  labels: string[];
  /** Each run's probabilities [texts × labels], in `labels` order. */
  probs: Float32Array[];
  /** The validation texts' label ids. */
  truth: number[];
}

const dirOf = (name: string) => path.join('runs', 'spam-validation', name);
const read = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; label: string });

/** Reads the runs (a bench error when they do not share one validation part). */
export async function readValidationRuns(names: string[]): Promise<ValidationRuns> {
  const validation = read(path.join(dirOf(names[0]!), 'validation.jsonl'));
  for (const name of names.slice(1)) {
    const other = read(path.join(dirOf(name), 'validation.jsonl'));
    // Some runs stored their texts with symbol runs already cut: compare with every run cut to 1.
    const same = (a: string, b: string) => a === b || collapseSymbolRuns(a, 1) === collapseSymbolRuns(b, 1);
    if (other.length !== validation.length || other.some((r, i) => !same(r.text, validation[i]!.text))) throw new Error(`${name} has another validation part than ${names[0]}`);
  }
  const texts = validation.map((r) => r.text);
  let labels: string[] = [];
  const probs: Float32Array[] = [];
  for (const name of names) {
    const classifier = await TextClassifier.load(path.join(dirOf(name), 'model', 'last.ckpt.safetensors'));
    labels = classifier.labels.names;
    probs.push(classifier.probabilities(texts));
    classifier.dispose();
  }
  return { fit: read(path.join(dirOf(names[0]!), 'train.jsonl')), validation, texts, labels, probs, truth: validation.map((r) => labels.indexOf(r.label)) };
}
