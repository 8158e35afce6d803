/**
 * Would another TF-IDF baseline mix better with the spam task's members? Judged without the
 * task's test split, like validation-blend.ts: takes runs of bench/spam/validation.ts that share a
 * validation part, trains each baseline variant on the same training part (C chosen from
 * 0.1…1000 on 20% of it, as trainBaseline does), and reports per variant the baseline's own
 * validation errors and the errors of (1 − w)·members + w·baseline for the ensemble and for each
 * run alone (summed), at w = 0, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6. Variants: the task's word 1-2-grams
 * on the whole text; character 3-5-grams of the first 5,000 characters (spaces folded); both
 * stacked; and the word features of only the first 1,000 or 3,000 characters, the last 1,000, or
 * the first 700 + last 300 (how much the rest of a message adds). One JSON line per variant,
 * appended to bench/results/spam-validation-baselines.jsonl.
 *
 *   npm run bench -- spam/validation-baselines v20-blas-e4-s101 v20-blas-e4-s102 … [-- --only word12,char35]
 */
import { useBackend } from '../../src/backends/index.js';
import { LabelMap } from '../../src/data/text.js';
import { DEFAULT_C_GRID, fitLogistic, logisticProbabilities, type SparseRows, TfidfVectorizer, tfidfRows, tfidfVocabulary, validationSplit } from '../../src/text/baseline.js';
import { readValidationRuns } from '../lib/spam-validation.js';
import { recordResult } from '../lib/record.js';

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv[onlyAt + 1]!.split(',') : null;
const names = argv.filter((a, i) => !a.startsWith('--') && (onlyAt < 0 || i !== onlyAt + 1));
if (names.length < 1) throw new Error('usage: npm run bench -- spam/validation-baselines RUN [RUN...] [--only a,b]');
await useBackend('wasm');
const { fit, texts, labels, probs, truth } = await readValidationRuns(names);
const k = labels.length;

/** TF-IDF over character n-grams (sublinear tf, smoothed idf, L2 rows), scikit-learn's 'char' analyzer on lower-cased, space-folded text. */
function charTfidf(fitTexts: readonly string[], lo: number, hi: number, maxChars: number, minDf = 2) {
  const grams = (t: string) => {
    const s = ` ${t.slice(0, maxChars).toLowerCase().replace(/\s+/g, ' ')} `;
    const out: string[] = [];
    for (let n = lo; n <= hi; n++) for (let i = 0; i + n <= s.length; i++) out.push(s.slice(i, i + n));
    return out;
  };
  const { vocabulary, idf } = tfidfVocabulary(fitTexts, grams, minDf);
  return (ts: readonly string[]): SparseRows => tfidfRows(ts, grams, vocabulary, idf, true);
}

/** Two feature blocks side by side, each scaled by 1/√2 so that rows keep unit norm. */
function stack(a: SparseRows, b: SparseRows): SparseRows {
  const rowStart = new Int32Array(a.rows + 1);
  const cols: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < a.rows; r++) {
    for (let q = a.rowStart[r]!; q < a.rowStart[r + 1]!; q++) cols.push(a.cols[q]!), values.push(a.values[q]! * Math.SQRT1_2);
    for (let q = b.rowStart[r]!; q < b.rowStart[r + 1]!; q++) cols.push(a.columns + b.cols[q]!), values.push(b.values[q]! * Math.SQRT1_2);
    rowStart[r + 1] = values.length;
  }
  return { rows: a.rows, columns: a.columns + b.columns, rowStart, cols: Int32Array.from(cols), values: Float64Array.from(values) };
}

type Features = (train: readonly string[]) => (ts: readonly string[]) => SparseRows;
const words = (cut: (t: string) => string): Features => (train) => {
  const v = new TfidfVectorizer().fit(train.map(cut));
  return (ts) => v.transform(ts.map(cut));
};
const VARIANTS: Record<string, Features> = {
  word12: words((t) => t),
  char35: (train) => charTfidf(train, 3, 5, 5000),
  'word12+char35': (train) => {
    const w = words((t) => t)(train);
    const c = charTfidf(train, 3, 5, 5000);
    return (ts) => stack(w(ts), c(ts));
  },
  head1000: words((t) => t.slice(0, 1000)),
  head3000: words((t) => t.slice(0, 3000)),
  tail1000: words((t) => t.slice(-1000)),
  head700tail300: words((t) => (t.length <= 1000 ? t : `${t.slice(0, 700)} ${t.slice(-300)}`)),
};

const labelMap = LabelMap.fromLabels(fit.map((r) => r.label));
const ids = labelMap.ids(fit.map((r) => r.label));
const fitTexts = fit.map((r) => r.text);
const column = labels.map((l) => labelMap.names.indexOf(l));
const weights = [0, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6];

for (const [variant, make] of Object.entries(VARIANTS)) {
  if (only && !only.includes(variant)) continue;
  const started = performance.now();
  // C on 20% of the training part, by accuracy (the smaller C on a tie), then refitted on all of it
  const { fit: fitIdx, held } = validationSplit(fit.map((r) => r.label), undefined, 0.2, 0);
  const features = make(fitIdx.map((i) => fitTexts[i]!));
  const x = features(fitIdx.map((i) => fitTexts[i]!));
  const xHeld = features(held.map((i) => fitTexts[i]!));
  let C = DEFAULT_C_GRID[0]!;
  let bestCorrect = -1;
  for (const c of DEFAULT_C_GRID) {
    const p = logisticProbabilities(xHeld, fitLogistic(x, Int32Array.from(fitIdx, (i) => ids[i]!), k, { C: c }));
    let correct = 0;
    held.forEach((i, r) => {
      let best = 0;
      for (let q = 1; q < k; q++) if (p[r * k + q]! > p[r * k + best]!) best = q;
      if (best === ids[i]) correct += 1;
    });
    if (correct > bestCorrect) (bestCorrect = correct), (C = c);
  }
  const all = make(fitTexts);
  const xAll = all(fitTexts);
  const fromBaseline = logisticProbabilities(all(texts), fitLogistic(xAll, ids, k, { C }));
  const errors = (members: Float32Array[], w: number) => {
    let wrong = 0;
    for (let i = 0; i < texts.length; i++) {
      let best = 0;
      let bestP = -1;
      for (let c = 0; c < k; c++) {
        const model = members.length ? members.reduce((s, m) => s + m[i * k + c]!, 0) / members.length : 0;
        const p = (1 - w) * model + w * fromBaseline[i * k + column[c]!]!;
        if (p > bestP) (bestP = p), (best = c);
      }
      if (best !== truth[i]) wrong += 1;
    }
    return wrong;
  };
  const line = JSON.stringify({
    date: new Date().toISOString(), runs: names, variant, fitExamples: fit.length, valExamples: texts.length, C, features: xAll.columns,
    seconds: Math.round((performance.now() - started) / 1000), baselineErrors: errors([], 1),
    weights, ensembleErrors: weights.map((w) => errors(probs, w)), membersAloneErrorsSummed: weights.map((w) => probs.reduce((s, p) => s + errors([p], w), 0)),
  });
  process.stdout.write(`${line}\n`);
  await recordResult('spam-validation-baselines', line);
}
