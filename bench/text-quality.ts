/**
 * Text quality against an honest baseline: for each evaluation set (src/text/eval-sets.ts) the
 * TF-IDF + logistic regression baseline (src/text/baseline.ts) is trained on the train split and
 * scored on the test split; with --revcol, `revcol fine-tune` with its defaults (plus the flags
 * after `--`) is run on the train part and `revcol eval` on the test CSV, as a user would type them.
 *
 * Run: npm run bench -- text-quality [--sets spam-raw,brown-genre] [--revcol] [--no-baseline] [--json]
 *        [--limit N] [--out DIR] [--backend B] [--seed S] [-- extra fine-tune flags]
 *
 * Validation: with --revcol the train part is split once more, 10% of it (fine-tune's own share)
 * held out as DIR/SET/val.csv, stratified by label and by document where the set has documents
 * (brown-genre: no document has passages on both sides, as between train and test), and fine-tune
 * runs as `--train fit.csv --eval val.csv`: the kept epoch and any choice of defaults are made on
 * that validation part, never on the test split. Each line records the flags, the validation
 * accuracy of the kept epoch and the test accuracy.
 * --no-baseline skips the TF-IDF + LR baseline (its figures are the same for a set and seed on
 *   every run; the line records baseline: null).
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
import { promises as fs } from 'node:fs';
import { evaluateBaseline, trainBaseline } from '../src/text/baseline.js';
import { buildEvalSet, EVAL_SET_NAMES, validationPart, writeEvalSet, type EvalSet } from '../src/text/eval-sets.js';
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
const withBaseline = !args.includes('--no-baseline');
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


/** The kept model's settings, as its weights file records them (the safetensors header's meta). */
async function keptMeta(file: string): Promise<{ preset?: string; maxLength?: number; truncation?: string; windows?: number }> {
  try {
    const bytes = await fs.readFile(file);
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as { __metadata__?: { revcol?: string } };
    return (JSON.parse(header.__metadata__?.revcol ?? '{}') as { meta?: Record<string, never> }).meta ?? {};
  } catch {
    return {};
  }
}

/** Share of the train part that fine-tune holds out for validation (fine-tune's own default share). */
const VALIDATION_FRACTION = 0.1;

async function runRevcol(name: string, set: EvalSet, files: { train: string; test: string }): Promise<Record<string, unknown>> {
  const model = path.join(out, name, 'model');
  const backendArgs = backend ? ['--backend', backend] : [];
  const parts = await validationPart(set, VALIDATION_FRACTION, seed, path.join(out, name));
  const fineTuneArgs = ['fine-tune', '--train', parts.fit, '--eval', parts.val, '--out', model, '--no-progress', ...backendArgs, ...extra];
  log(`[${name}] validation: ${parts.fitTexts} texts to fit, ${parts.valTexts} to validate (${parts.split})`);
  log(`[${name}] revcol ${fineTuneArgs.join(' ')}`);
  const fineTune = await runCli(fineTuneArgs, false);
  if (fineTune.code !== 0) throw new Error(`revcol fine-tune failed with exit code ${fineTune.code}`);
  const evalArgs = ['eval', '--model', model, '--data', files.test, '--json', ...backendArgs];
  log(`[${name}] revcol ${evalArgs.join(' ')}`);
  const evaluation = await runCli(evalArgs, true);
  if (evaluation.code !== 0) throw new Error(`revcol eval failed with exit code ${evaluation.code}`);
  const report = JSON.parse(evaluation.stdout.trim().split('\n').pop()!) as { accuracy: number; macroF1: number; examples: number; truncated?: number; baselineWeight?: number };
  // The epochs' validation scores (metrics.jsonl); fine-tune keeps the epoch of best validation accuracy.
  const epochs = (await fs.readFile(path.join(model, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { epoch: number; accuracy: number; macroF1?: number; seconds?: number });
  const kept = epochs.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
  const meta = await keptMeta(path.join(model, 'best.safetensors'));
  return {
    flags: extra,
    validation: { fit: parts.fitTexts, texts: parts.valTexts, split: parts.split, accuracy: kept.accuracy, macroF1: kept.macroF1, epoch: kept.epoch, epochs: epochs.map((e) => Number(e.accuracy.toFixed(4))) },
    accuracy: report.accuracy,
    macroF1: report.macroF1,
    errors: Math.round((1 - report.accuracy) * report.examples),
    truncated: report.truncated,
    // The TF-IDF + logistic regression mixed in (0: none), as eval applied it.
    settings: { preset: meta.preset, maxLength: meta.maxLength, truncation: meta.truncation ?? 'head', windows: meta.windows ?? 1, epochs: epochs.length, baselineWeight: report.baselineWeight ?? 0 },
    fineTuneSeconds: Number(fineTune.seconds.toFixed(1)),
    evalSeconds: Number(evaluation.seconds.toFixed(1)),
    fineTuneArgs: fineTuneArgs.slice(1).map((a) => (a === parts.fit ? 'FIT.csv' : a === parts.val ? 'VAL.csv' : a === model ? 'MODEL' : a)),
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

  let baseline: { accuracy: number; macroF1: number; trainSeconds: number; evalSeconds: number; [key: string]: unknown } | null = null;
  if (withBaseline) {
    const trainStart = performance.now();
    const model = trainBaseline(set.train.texts, set.train.labels, { groups: set.trainGroups, seed });
    const trainSeconds = (performance.now() - trainStart) / 1000;
    const evalStart = performance.now();
    const report = evaluateBaseline(model, set.test.texts, set.test.labels);
    const evalSeconds = (performance.now() - evalStart) / 1000;
    const b = {
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
    baseline = b;
    log(`[${name}] baseline: accuracy ${pct(b.accuracy)} (${b.errors} errors), macro-F1 ${b.macroF1.toFixed(4)}; C=${b.C} (validation accuracy ${model.info.candidates.map((c) => `C=${c.C}: ${pct(c.accuracy)}`).join(', ')}); ${b.features} features; ${b.trainSeconds} s to train, ${b.evalSeconds} s to score`);
  }

  let revcolResult: Record<string, unknown> | undefined;
  if (withRevcol) {
    try {
      revcolResult = await runRevcol(name, set, files);
      const v = revcolResult.validation as { accuracy: number; epoch: number };
      log(`[${name}] revcol: validation accuracy ${pct(v.accuracy)} (epoch ${v.epoch}); test accuracy ${pct(revcolResult.accuracy as number)} (${revcolResult.errors} errors), macro-F1 ${(revcolResult.macroF1 as number).toFixed(4)}; fine-tune ${revcolResult.fineTuneSeconds} s, eval ${revcolResult.evalSeconds} s`);
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
      `${name}: ${line.train} train / ${line.test} test` +
        (baseline ? `; baseline accuracy ${pct(baseline.accuracy)}, macro-F1 ${baseline.macroF1.toFixed(4)} (${(baseline.trainSeconds + baseline.evalSeconds).toFixed(1)} s)` : '') +
        (revcolResult ? `; revcol validation accuracy ${pct((revcolResult.validation as { accuracy: number }).accuracy)}, test accuracy ${pct(revcolResult.accuracy as number)}, macro-F1 ${(revcolResult.macroF1 as number).toFixed(4)} (${revcolResult.fineTuneSeconds} s)` : '') +
        '\n',
    );
  }
  if (limit === undefined) await recordResult('text-quality', JSON.stringify(line));
  else log(`[${name}] not recorded (--limit)`);
}
if (failed) process.exit(1);
