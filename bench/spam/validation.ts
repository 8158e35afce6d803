/**
 * Recipe selection for the spam task without its test split: fine-tunes on the task's train
 * split minus a stratified validation part (10% unless CHANGES has `validationFraction`; seed
 * 12345) and evaluates on that part, with the task's recipe plus CHANGES (FineTuneOptions,
 * `config` for model config changes, `source` for changes to the task's data source).
 * Prints one JSON line and appends it to bench/results/spam-validation.jsonl.
 *
 *   npx tsx bench/spam/validation.ts NAME '{"labelSmoothing": 0.1}' [BACKEND]
 *   npx tsx bench/spam/validation.ts NAME '{"maxLength": 512, "config": {"columns": 4}}'
 *   npx tsx bench/spam/validation.ts NAME '{"validationFraction": 0.2, "seed": 101}'
 *   npx tsx bench/spam/validation.ts NAME '{"validationFraction": 0.2, "collapseRuns": 3}'
 *   npx tsx bench/spam/validation.ts NAME '{"source": {"body": "decoded"}}'
 *   npx tsx bench/spam/validation.ts NAME '{"validationFraction": 0.2, "from": "runs/spam-val-mlm"}'
 *     (a model pre-trained on this train part only: see docs/text-data.md#spam)
 * BACKEND defaults to wasm (the library alone would stay on tfjs's default, the slow cpu one).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { splitHeldOut, type TextExamples } from '../../src/data/text.js';
import { type FineTuneOptions, fineTune } from '../../src/text/fine-tune.js';
import { loadTask } from '../../src/text/tasks.js';
import { recordResult } from '../lib/record.js';

const [name, json, backend = 'wasm'] = process.argv.slice(2);
if (!name) throw new Error('usage: npx tsx bench/spam/validation.ts NAME [CHANGES-JSON]');
const { config: configChanges, source: sourceChanges, validationFraction = 0.1, ...changes } = JSON.parse(json ?? '{}') as Omit<Partial<FineTuneOptions>, 'config'> & {
  config?: Record<string, unknown>;
  source?: Record<string, unknown>;
  validationFraction?: number;
};
const task = await loadTask('spam', { source: sourceChanges });
const { train, eval: validation } = splitHeldOut(task.train, validationFraction, 12345);
const dir = path.join('runs', 'spam-validation', name);
mkdirSync(dir, { recursive: true });
const write = (file: string, ex: TextExamples) => writeFileSync(file, ex.texts.map((t, i) => JSON.stringify({ text: t, label: ex.labels[i] })).join('\n') + '\n');
write(path.join(dir, 'train.jsonl'), train);
write(path.join(dir, 'validation.jsonl'), validation);
const configFile = path.join(dir, 'config.json');
// A longer maxLength needs learned positions that cover it: the config takes it too (--max-length
// past a config's positions is refused).
const lengthChange = typeof changes.maxLength === 'number' ? { maxLength: changes.maxLength } : {};
writeFileSync(configFile, JSON.stringify({ preset: task.preset, ...task.presetChanges, ...lengthChange, ...(configChanges ?? {}) }));
const h = task.hyper;
const started = performance.now();
const result = await fineTune({
  train: path.join(dir, 'train.jsonl'),
  eval: path.join(dir, 'validation.jsonl'),
  // A start from a pre-trained model takes its architecture (and must not be given a config).
  ...(changes.from ? {} : { config: configFile }),
  epochs: h.epochs, batchSize: h.batchSize, lr: h.lr, maxLength: h.maxLength,
  weightDecay: h.weightDecay, warmupEpochs: h.warmupEpochs, labelSmoothing: h.labelSmoothing, ema: h.ema, collapseRuns: h.collapseRuns,
  ...changes,
  out: path.join(dir, 'model'),
  overwrite: true, // a rerun of the same NAME replaces its model
  backend,
  progress: false,
});
const perEpoch = result.summary.epochs.map((e) => e.accuracy as number);
const line = JSON.stringify({
  date: new Date().toISOString(), run: name, changes: { ...changes, ...(configChanges ? { config: configChanges } : {}), ...(sourceChanges ? { source: sourceChanges } : {}) }, validationFraction,
  trainExamples: train.texts.length, valExamples: validation.texts.length,
  bestEpoch: result.summary.bestEpoch, bestValAccuracy: result.summary.bestAccuracy, lastValAccuracy: perEpoch[perEpoch.length - 1],
  perEpochValAccuracy: perEpoch, seconds: Math.round((performance.now() - started) / 1000),
});
process.stdout.write(`${line}\n`);
await recordResult('spam-validation', line);
