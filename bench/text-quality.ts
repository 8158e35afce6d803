/**
 * Text quality against an honest baseline: for each evaluation set (src/text/eval-sets.ts) the
 * TF-IDF + logistic regression baseline (src/text/baseline.ts) is trained on the train split and
 * scored on the test split; with --revcol, `revcol fine-tune` with its defaults is run on the same
 * train CSV and `revcol eval` on the test CSV, as a user would type them.
 *
 * Run: npm run bench -- text-quality [--sets spam-raw,brown-genre] [--revcol] [--json]
 *        [--limit N] [--out DIR] [--backend B] [--seed S] [-- extra fine-tune flags]
 *
 * --limit N keeps at most N training and N test texts of each set (a seeded, stratified subset:
 *   a quick check of the wiring; such runs are not recorded).
 * --out DIR holds each set's train.csv / test.csv and, with --revcol, its model
 *   (default runs/text-quality-<pid>).
 * Results are appended to bench/results/text-quality.jsonl, one line per set.
 */
import os from 'node:os';
import path from 'node:path';
import { countLabels, splitByGroups, type TextExamples } from '../src/data/text.js';
import { evaluateBaseline, trainBaseline } from '../src/text/baseline.js';
import { buildEvalSet, EVAL_SET_NAMES, writeEvalSet, type EvalSet } from '../src/text/eval-sets.js';
import { recordResult } from './lib/record.js';
import { repoRoot, runRevcol as runCli } from './lib/cli.js';

const root = repoRoot;
const dashDash = process.argv.indexOf('--');
const args = dashDash >= 0 ? process.argv.slice(2, dashDash) : process.argv.slice(2);
const extra = dashDash >= 0 ? process.argv.slice(dashDash + 1) : [];
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const sets = (flag('sets') ?? EVAL_SET_NAMES.join(',')).split(',').filter(Boolean);
const withRevcol = args.includes('--revcol');
const asJson = args.includes('--json');
const limit = flag('limit') === undefined ? undefined : Number(flag('limit'));
const seed = Number(flag('seed') ?? 0);
const out = path.resolve(root, flag('out') ?? path.join('runs', `text-quality-${process.pid}`));
const backend = flag('backend');
if (limit !== undefined && !(Number.isInteger(limit) && limit >= 4)) {
  process.stderr.write('bench text-quality: --limit needs a whole number ≥ 4\n');
  process.exit(1);
}
const unknown = sets.filter((s) => !(EVAL_SET_NAMES as readonly string[]).includes(s));
if (unknown.length) {
  process.stderr.write(`bench text-quality: unknown set ${unknown.join(', ')}; sets: ${EVAL_SET_NAMES.join(', ')}\n`);
  process.exit(1);
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** At most `n` of the examples (and their groups), a seeded subset stratified by label. */
function subset(ex: TextExamples, groups: string[] | undefined, n: number): { ex: TextExamples; groups?: string[] } {
  if (ex.texts.length <= n) return { ex, groups };
  // splitByGroups keeps order; its held-out part is the subset. Groups ride along as the texts' index.
  const indexed: TextExamples = { ...ex, texts: ex.texts.map((_, i) => String(i)) };
  const picked = splitByGroups(indexed, ex.labels, n / ex.texts.length, seed).eval.texts.map(Number);
  return {
    ex: { texts: picked.map((i) => ex.texts[i]!), labels: picked.map((i) => ex.labels[i]!), skipped: 0, columns: ex.columns },
    groups: groups && picked.map((i) => groups[i]!),
  };
}

function limited(set: EvalSet, n: number): EvalSet {
  const train = subset(set.train, set.trainGroups, n);
  const test = subset(set.test, set.testGroups, n);
  return { ...set, train: train.ex, test: test.ex, trainGroups: train.groups, testGroups: test.groups, split: `${set.split}; at most ${n} texts of each part (--limit)` };
}


async function runRevcol(name: string, files: { train: string; test: string }): Promise<Record<string, unknown>> {
  const model = path.join(out, name, 'model');
  const backendArgs = backend ? ['--backend', backend] : [];
  const fineTuneArgs = ['fine-tune', '--train', files.train, '--out', model, '--no-progress', ...backendArgs, ...extra];
  log(`[${name}] revcol ${fineTuneArgs.join(' ')}`);
  const fineTune = await runCli(fineTuneArgs, false);
  if (fineTune.code !== 0) throw new Error(`revcol fine-tune failed with exit code ${fineTune.code}`);
  const evalArgs = ['eval', '--model', model, '--data', files.test, '--json', ...backendArgs];
  log(`[${name}] revcol ${evalArgs.join(' ')}`);
  const evaluation = await runCli(evalArgs, true);
  if (evaluation.code !== 0) throw new Error(`revcol eval failed with exit code ${evaluation.code}`);
  const report = JSON.parse(evaluation.stdout.trim().split('\n').pop()!) as { accuracy: number; macroF1: number; examples: number; truncated?: number };
  return {
    accuracy: report.accuracy,
    macroF1: report.macroF1,
    errors: Math.round((1 - report.accuracy) * report.examples),
    truncated: report.truncated,
    fineTuneSeconds: Number(fineTune.seconds.toFixed(1)),
    evalSeconds: Number(evaluation.seconds.toFixed(1)),
    fineTuneArgs: fineTuneArgs.slice(1).map((a) => (a === files.train ? 'TRAIN.csv' : a === model ? 'MODEL' : a)),
    model: path.relative(root, model),
  };
}

let failed = false;
for (const name of sets) {
  const built = performance.now();
  let set = await buildEvalSet(name, { seed });
  if (limit !== undefined) set = limited(set, limit);
  const files = await writeEvalSet(set, path.join(out, name));
  const buildSeconds = (performance.now() - built) / 1000;
  const labels = Object.keys(countLabels([...set.train.labels, ...set.test.labels])).sort();
  log(`[${name}] ${set.description}`);
  log(`[${name}] ${set.train.texts.length} train / ${set.test.texts.length} test texts, ${labels.length} labels; split ${set.split}; CSVs in ${path.relative(root, path.dirname(files.train))}`);

  const trainStart = performance.now();
  const model = trainBaseline(set.train.texts, set.train.labels, { groups: set.trainGroups, seed });
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const evalStart = performance.now();
  const report = evaluateBaseline(model, set.test.texts, set.test.labels);
  const evalSeconds = (performance.now() - evalStart) / 1000;
  const baseline = {
    accuracy: report.accuracy,
    macroF1: report.macroF1,
    errors: report.examples - Math.round(report.accuracy * report.examples),
    C: model.info.C,
    candidates: model.info.candidates,
    features: model.info.features,
    iterations: model.info.iterations,
    converged: model.info.converged,
    trainSeconds: Number(trainSeconds.toFixed(1)),
    evalSeconds: Number(evalSeconds.toFixed(1)),
    recipe: model.info.recipe,
  };
  log(`[${name}] baseline: accuracy ${pct(baseline.accuracy)} (${baseline.errors} errors), macro-F1 ${baseline.macroF1.toFixed(4)}; C=${baseline.C} (validation accuracy ${model.info.candidates.map((c) => `C=${c.C}: ${pct(c.accuracy)}`).join(', ')}); ${baseline.features} features; ${baseline.trainSeconds} s to train, ${baseline.evalSeconds} s to score`);

  let revcolResult: Record<string, unknown> | undefined;
  if (withRevcol) {
    try {
      revcolResult = await runRevcol(name, files);
      log(`[${name}] revcol: accuracy ${pct(revcolResult.accuracy as number)} (${revcolResult.errors} errors), macro-F1 ${(revcolResult.macroF1 as number).toFixed(4)}; fine-tune ${revcolResult.fineTuneSeconds} s, eval ${revcolResult.evalSeconds} s`);
    } catch (err) {
      failed = true;
      log(`[${name}] revcol: ${(err as Error).message}`);
    }
  }

  const line = {
    bench: 'text-quality',
    date: new Date().toISOString(),
    set: name,
    source: set.source,
    split: set.split,
    train: set.train.texts.length,
    test: set.test.texts.length,
    labels,
    trainLabels: countLabels(set.train.labels),
    testLabels: countLabels(set.test.labels),
    buildSeconds: Number(buildSeconds.toFixed(1)),
    baseline,
    ...(withRevcol ? { revcol: revcolResult ?? null } : {}),
    ...(limit !== undefined ? { limit } : {}),
    machine: { cpus: os.cpus().length, loadAverage: Number(os.loadavg()[0]!.toFixed(1)) },
  };
  if (asJson) process.stdout.write(`${JSON.stringify(line)}\n`);
  else {
    process.stdout.write(
      `${name}: ${line.train} train / ${line.test} test; baseline accuracy ${pct(baseline.accuracy)}, macro-F1 ${baseline.macroF1.toFixed(4)} (${(baseline.trainSeconds + baseline.evalSeconds).toFixed(1)} s)` +
        (revcolResult ? `; revcol accuracy ${pct(revcolResult.accuracy as number)}, macro-F1 ${(revcolResult.macroF1 as number).toFixed(4)} (${revcolResult.fineTuneSeconds} s)` : '') +
        '\n',
    );
  }
  if (limit === undefined) await recordResult('text-quality', JSON.stringify(line));
  else log(`[${name}] not recorded (--limit)`);
}
if (failed) process.exit(1);
