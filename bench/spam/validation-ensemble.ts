/**
 * Does averaging seeds help on the spam task, judged without its test split? Takes runs of
 * bench/spam/validation.ts that share a validation part (same validationFraction) and differ
 * in seed, and scores on that part each run's LAST checkpoint (best.safetensors was chosen on
 * the validation part itself) and the average of every subset of 2, 3, … of them.
 * Prints one JSON line and appends it to bench/results/spam-validation-ensemble.jsonl.
 *
 *   npx tsx bench/spam/validation-ensemble.ts v20-s101 v20-s102 v20-s103 v20-s104
 */
import { useBackend } from '../../src/backends/index.js';
import { recordResult } from '../lib/record.js';
import { readValidationRuns } from '../lib/spam-validation.js';

const names = process.argv.slice(2);
if (names.length < 2) throw new Error('usage: npx tsx bench/spam/validation-ensemble.ts RUN RUN [RUN...]');
await useBackend('wasm');
const { texts, probs, truth, labels } = await readValidationRuns(names);
const k = labels.length;

function errors(members: number[]): number {
  let wrong = 0;
  for (let i = 0; i < texts.length; i++) {
    let best = 0;
    let bestP = -1;
    for (let c = 0; c < k; c++) {
      const p = members.reduce((s, m) => s + probs[m]![i * k + c]!, 0);
      if (p > bestP) { bestP = p; best = c; }
    }
    if (best !== truth[i]) wrong += 1;
  }
  return wrong;
}

function subsets(n: number, size: number): number[][] {
  if (size === 0) return [[]];
  const out: number[][] = [];
  for (let first = 0; first <= n - size; first++) for (const rest of subsets(n, size - 1)) if (rest.every((r) => r > first)) out.push([first, ...rest]);
  return out;
}

const single = names.map((_, m) => errors([m]));
const bySize: Record<string, { meanErrors: number; errors: number[] }> = {};
for (let size = 2; size <= names.length; size++) {
  const each = subsets(names.length, size).map((s) => errors(s));
  bySize[size] = { meanErrors: each.reduce((a, b) => a + b, 0) / each.length, errors: each };
}
const line = JSON.stringify({
  date: new Date().toISOString(), runs: names, valExamples: texts.length, checkpoint: 'last',
  singleErrors: single, singleMeanErrors: single.reduce((a, b) => a + b, 0) / single.length,
  ensembleErrors: bySize,
});
process.stdout.write(`${line}\n`);
await recordResult('spam-validation-ensemble', line);
