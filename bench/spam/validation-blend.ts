/**
 * How much weight a TF-IDF + logistic regression model should get beside the spam task's
 * ensemble (fine-tune --baseline-weight, tasks/spam.json hyper.baselineWeight), judged without
 * the task's test split. Takes runs of bench/spam/validation.ts that share a validation part
 * and differ in seed; trains the baseline on the same training part (C chosen on a part held out
 * of it, as `revcol baseline` does); mixes the average of the runs' last checkpoints with the
 * baseline's probabilities, (1 − w)·ensemble + w·baseline, for w = 0, 0.05, …, 0.6; and reports
 * the validation errors and mean log loss of each w, for the whole ensemble and for each run
 * alone. Prints one JSON line and appends it to bench/results/spam-validation-blend.jsonl.
 *
 *   npx tsx bench/spam/validation-blend.ts v20-shared-e4-s101 v20-shared-e4-s102 …
 */
import { useBackend } from '../../src/backends/index.js';
import { trainBaseline } from '../../src/text/baseline.js';
import { readValidationRuns } from '../lib/spam-validation.js';
import { recordResult } from '../lib/record.js';

const names = process.argv.slice(2);
if (names.length < 1) throw new Error('usage: npx tsx bench/spam/validation-blend.ts RUN [RUN...]');
await useBackend('wasm');
const { fit, texts, labels, probs: runs, truth } = await readValidationRuns(names);
const k = labels.length;

const started = performance.now();
const baseline = trainBaseline(fit.map((r) => r.text), fit.map((r) => r.label));
const baselineSeconds = (performance.now() - started) / 1000;
const fromBaseline = baseline.probabilities(texts);
const baselineColumn = labels.map((l) => baseline.labels.indexOf(l));

/** Errors and mean log loss of (1 − w)·mean(members) + w·baseline on the validation texts. */
function score(members: Float32Array[], w: number): { errors: number; logLoss: number } {
  let errors = 0;
  let loss = 0;
  for (let i = 0; i < texts.length; i++) {
    let best = 0;
    let bestP = -1;
    let truthP = 0;
    for (let c = 0; c < k; c++) {
      const model = members.length ? members.reduce((s, m) => s + m[i * k + c]!, 0) / members.length : 0;
      const p = (1 - w) * model + w * fromBaseline[i]![baselineColumn[c]!]!;
      if (p > bestP) { bestP = p; best = c; }
      if (c === truth[i]) truthP = p;
    }
    if (best !== truth[i]) errors += 1;
    loss -= Math.log(Math.max(truthP, 1e-12));
  }
  return { errors, logLoss: Number((loss / texts.length).toFixed(5)) };
}

const weights = Array.from({ length: 13 }, (_, i) => Number((i * 0.05).toFixed(2)));
const line = JSON.stringify({
  date: new Date().toISOString(), runs: names, fitExamples: fit.length, valExamples: texts.length, checkpoint: 'last',
  baseline: { C: baseline.info.C, features: baseline.info.features, seconds: Math.round(baselineSeconds), errors: score([], 1).errors },
  ensemble: Object.fromEntries(weights.map((w) => [w, score(runs, w)])),
  single: names.map((name, m) => ({ run: name, byWeight: Object.fromEntries(weights.map((w) => [w, score([runs[m]!], w)])) })),
});
process.stdout.write(`${line}\n`);
await recordResult('spam-validation-blend', line);
