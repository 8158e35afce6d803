/**
 * A classic baseline for the spam task: TF-IDF over word unigrams and bigrams + L2-regularised
 * logistic regression, trained on the task's train split and scored on its test split, in plain
 * TypeScript (no tfjs). It tells how good "good" is for the RevCol text model on the same split.
 *
 * Run: npx tsx bench/spam/baseline.ts   (prints one JSON line)
 */
import { pathToFileURL } from 'node:url';
import { loadTask } from '../../src/text/tasks.js';

const TOKEN = /[\p{L}\p{N}_]{2,}/gu; // word characters, two or more (scikit-learn's default token pattern)
const MIN_DF = 2;
const C = 10; // inverse regularisation strength, as in scikit-learn's LogisticRegression
const ITERATIONS = 400;
const LEARNING_RATE = 0.05;

export type SparseVector = { idx: Int32Array; val: Float64Array };

export function terms(text: string): string[] {
  const words = text.toLowerCase().match(TOKEN) ?? [];
  const out = [...words];
  for (let i = 1; i < words.length; i++) out.push(`${words[i - 1]} ${words[i]}`);
  return out;
}

export function fitVocabulary(docs: string[][]): { vocab: Map<string, number>; idf: Float64Array } {
  const df = new Map<string, number>();
  for (const doc of docs) for (const t of new Set(doc)) df.set(t, (df.get(t) ?? 0) + 1);
  const vocab = new Map<string, number>();
  const idfs: number[] = [];
  for (const [t, n] of [...df].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (n < MIN_DF) continue;
    vocab.set(t, vocab.size);
    idfs.push(Math.log((1 + docs.length) / (1 + n)) + 1);
  }
  return { vocab, idf: Float64Array.from(idfs) };
}

/** Sublinear tf (1 + ln count) × idf, L2-normalised. */
export function vectorize(doc: string[], vocab: Map<string, number>, idf: Float64Array): SparseVector {
  const counts = new Map<number, number>();
  for (const t of doc) {
    const j = vocab.get(t);
    if (j !== undefined) counts.set(j, (counts.get(j) ?? 0) + 1);
  }
  const idx = Int32Array.from(counts.keys());
  const val = Float64Array.from(idx, (j) => (1 + Math.log(counts.get(j)!)) * idf[j]!);
  const norm = Math.hypot(...val) || 1;
  for (let k = 0; k < val.length; k++) val[k]! /= norm;
  return { idx, val };
}

/** Full-batch Adam on mean log-loss + ||w||² / (2 C N). */
export function trainLogistic(xs: SparseVector[], ys: number[], dim: number): { w: Float64Array; b: number } {
  const n = xs.length;
  const w = new Float64Array(dim);
  let b = 0;
  const m = new Float64Array(dim + 1);
  const v = new Float64Array(dim + 1);
  const grad = new Float64Array(dim + 1);
  const lambda = 1 / (C * n);
  for (let it = 1; it <= ITERATIONS; it++) {
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      let z = b;
      for (let k = 0; k < x.idx.length; k++) z += w[x.idx[k]!]! * x.val[k]!;
      const err = 1 / (1 + Math.exp(-z)) - ys[i]!;
      for (let k = 0; k < x.idx.length; k++) grad[x.idx[k]!]! += (err * x.val[k]!) / n;
      grad[dim]! += err / n;
    }
    for (let j = 0; j < dim; j++) grad[j]! += lambda * w[j]!;
    for (let j = 0; j <= dim; j++) {
      m[j] = 0.9 * m[j]! + 0.1 * grad[j]!;
      v[j] = 0.999 * v[j]! + 0.001 * grad[j]! * grad[j]!;
      const step = (LEARNING_RATE * (m[j]! / (1 - 0.9 ** it))) / (Math.sqrt(v[j]! / (1 - 0.999 ** it)) + 1e-8);
      if (j === dim) b -= step;
      else w[j]! -= step;
    }
  }
  return { w, b };
}

async function main(): Promise<void> {
  const started = Date.now();
  const task = await loadTask('spam');
  const positive = 'spam';
  const trainDocs = task.train.texts.map(terms);
  const { vocab, idf } = fitVocabulary(trainDocs);
  const xTrain = trainDocs.map((d) => vectorize(d, vocab, idf));
  const yTrain = task.train.labels.map((l) => (l === positive ? 1 : 0));
  const { w, b } = trainLogistic(xTrain, yTrain, vocab.size);
  const xTest = task.test.texts.map((t) => vectorize(terms(t), vocab, idf));
  const yTest = task.test.labels.map((l) => (l === positive ? 1 : 0));
  let tp = 0, tn = 0, fp = 0, fn = 0;
  xTest.forEach((x, i) => {
    let z = b;
    for (let k = 0; k < x.idx.length; k++) z += w[x.idx[k]!]! * x.val[k]!;
    const predicted = z > 0 ? 1 : 0;
    if (predicted === 1 && yTest[i] === 1) tp++;
    else if (predicted === 0 && yTest[i] === 0) tn++;
    else if (predicted === 1) fp++;
    else fn++;
  });
  const f1 = (p: number, r: number): number => (p + r > 0 ? (2 * p * r) / (p + r) : 0);
  const f1Spam = f1(tp / (tp + fp || 1), tp / (tp + fn || 1));
  const f1Ham = f1(tn / (tn + fn || 1), tn / (tn + fp || 1));
  console.log(
    JSON.stringify({
      bench: 'spam-baseline',
      model: 'tf-idf (word 1-2 grams, min_df 2, sublinear tf) + logistic regression (C=10)',
      train: task.train.texts.length,
      test: task.test.texts.length,
      features: vocab.size,
      accuracy: (tp + tn) / yTest.length,
      macroF1: (f1Spam + f1Ham) / 2,
      confusion: { tp, fp, fn, tn },
      seconds: (Date.now() - started) / 1000,
    }),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
