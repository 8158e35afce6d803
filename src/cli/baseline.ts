import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
// Light at registration (revcol --help): the baseline, the readers and the classifier are
// loaded when the command runs.
import { RevcolError, fail } from '../core/errors.js';
import type { TextExamples } from '../data/text.js';
import type { BaselineModel } from '../text/baseline.js';
import { DEFAULT_C_GRID } from '../text/baseline-grid.js';
import type { TextClassifier, TextEvaluationReport } from '../text/classifier.js';
import { taskNames } from '../text/tasks.js';
import { backendFromOptions } from './common.js';
import { addTextFlags, textFlagName } from './text-flags.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const signed = (x: number, digits: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;

/** `--c 10` or `--c 0.1,1,10`: one C, or the values to choose it from. */
function cValues(value: string): number | number[] {
  const list = value.split(',').map((v) => v.trim());
  const numbers = list.map(Number);
  if (list.some((v) => v === '') || !numbers.every((n) => n > 0 && Number.isFinite(n))) {
    throw new InvalidArgumentError('--c must be a number > 0, or numbers > 0 separated by commas (e.g. 0.1,1,10)');
  }
  return numbers.length === 1 ? numbers[0]! : numbers;
}

export interface BaselineCommandOptions {
  train?: string;
  task?: string;
  data?: string;
  textColumn: string;
  labelColumn: string;
  c?: number | number[];
  model?: string;
  allowNetwork?: boolean;
  json?: boolean;
  backend?: string;
}

interface Scored {
  name: string;
  report: TextEvaluationReport;
}

/** Errors, accuracy and macro-F1 of each system, one row each, then the difference. */
function printComparison(rows: Scored[]): void {
  const width = Math.max(...rows.map((r) => r.name.length), (rows.length > 2 ? 'revcol alone − baseline' : 'revcol − baseline').length);
  out(`${''.padEnd(width)}  ${'accuracy'.padStart(9)}  macro-F1  errors`);
  for (const { name, report } of rows) {
    const errors = report.examples - Math.round(report.accuracy * report.examples);
    out(`${name.padEnd(width)}  ${pct(report.accuracy).padStart(9)}  ${report.macroF1.toFixed(4).padStart(8)}  ${String(errors).padStart(6)}`);
  }
  const [base, ...models] = rows as [Scored, ...Scored[]];
  models.forEach((model, i) => {
    const points = (model.report.accuracy - base.report.accuracy) * 100;
    const name = i === 0 ? 'revcol − baseline' : 'revcol alone − baseline';
    out(`${name.padEnd(width)}  ${`${signed(points, 2)} pt`.padStart(9)}  ${signed(model.report.macroF1 - base.report.macroF1, 4).padStart(8)}`);
  });
}

/** Per class: precision, recall and F1 of the baseline alone, or the F1 of each system side by side. */
function printPerClass(rows: Scored[]): void {
  const labels = rows[0]!.report.labels;
  const width = Math.max(5, ...labels.map((l) => l.length));
  if (rows.length === 1) {
    const r = rows[0]!.report;
    out(`${'label'.padEnd(width)}  precision  recall  f1      support`);
    for (const label of labels) {
      const c = r.perClass[label]!;
      out(`${label.padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${c.recall.toFixed(4).padStart(6)}  ${c.f1.toFixed(4)}  ${String(c.support).padStart(7)}`);
    }
    return;
  }
  out(`F1 per class:`);
  out(`${'label'.padEnd(width)}  support  baseline  revcol${rows.length > 2 ? '  revcol alone' : ''}`);
  for (const label of labels) {
    const support = rows[0]!.report.perClass[label]!.support;
    const f1 = rows.map((s) => (s.report.perClass[label]?.f1 ?? 0).toFixed(4));
    out(`${label.padEnd(width)}  ${String(support).padStart(7)}  ${f1[0]!.padStart(8)}  ${f1[1]!.padStart(6)}${f1[2] ? `  ${f1[2].padStart(12)}` : ''}`);
  }
}

function describeTraining(model: BaselineModel, train: TextExamples, trainName: string, countLabels: (labels: string[]) => Record<string, number>): string[] {
  const counts = Object.entries(countLabels(train.labels)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [`baseline: ${model.info.recipe}`];
  lines.push(`trained on ${train.texts.length} texts of ${trainName} (${counts}); ${model.info.features} terms`);
  if (model.info.candidates.length) {
    const tried = model.info.candidates.map((c) => `C=${c.C} ${pct(c.accuracy)}`).join(', ');
    lines.push(`C chosen on ${model.info.validation.held} held-out training texts (fitted on ${model.info.validation.train}): ${tried}`);
  }
  if (!model.info.converged) lines.push(`note: L-BFGS stopped after ${model.info.iterations} iterations before converging`);
  return lines;
}

/** `revcol baseline`: TF-IDF + logistic regression trained and scored, beside a revcol model when given one. */
export async function runBaseline(opts: BaselineCommandOptions): Promise<void> {
  if (!opts.train === !opts.task) fail('baseline needs exactly one of --train FILE (with --data TEST_FILE) or --task NAME');
  if (opts.task && opts.data) fail('--task brings its own test split: leave out --data');
  if (opts.train && !opts.data) fail('baseline needs a test file to score on: --data TEST_FILE (labelled, never the training file)');

  const [{ countLabels, LabelMap, readTextExamples }, { evaluateBaseline, trainBaseline }, { loadTask }] = await Promise.all([
    import('../data/text.js'), import('../text/baseline.js'), import('../text/tasks.js'),
  ]);
  let train: TextExamples;
  let test: TextExamples;
  let trainName: string;
  let testName: string;
  if (opts.task) {
    const task = await loadTask(opts.task);
    train = task.train;
    test = task.test;
    trainName = `the ${opts.task} train split`;
    testName = `the ${opts.task} test split`;
  } else {
    const columns = { textColumn: opts.textColumn, labelColumn: opts.labelColumn, optionName: textFlagName };
    train = await readTextExamples(opts.train!, columns);
    test = await readTextExamples(opts.data!, columns);
    trainName = opts.train!;
    testName = opts.data!;
    if (path.resolve(opts.train!) === path.resolve(opts.data!)) {
      process.stderr.write('revcol: warning: --data is the training file: the scores say how well the baseline fits its training texts, not how well it does on new ones\n');
    }
  }
  // Before any training: two labels at least, and no test label the baseline cannot predict.
  LabelMap.fromLabels(train.labels).ids(test.labels, opts.task ? testName : `the test file ${testName}`);

  // A bad --model fails here, before the baseline is trained.
  let classifier: TextClassifier | undefined;
  if (opts.model) {
    await backendFromOptions({ backend: opts.backend });
    const { TextClassifier } = await import('../text/classifier.js');
    classifier = await TextClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
  }
  try {
    // A large set takes a while (the spam task: about a minute on two cores); say so on stderr.
    if (train.texts.length >= 1000) {
      const grid = typeof opts.c === 'number' ? `C=${opts.c}` : `C chosen from ${(opts.c ?? DEFAULT_C_GRID).join(', ')}`;
      process.stderr.write(`revcol: training TF-IDF + logistic regression on ${train.texts.length} texts (${grid})\n`);
    }
    let baseline: BaselineModel;
    try {
      baseline = trainBaseline(train.texts, train.labels, { C: opts.c ?? [...DEFAULT_C_GRID] });
    } catch (err) {
      if (err instanceof RevcolError && /give a single C$/.test(err.message)) fail(`${err.message.replace(/give a single C$/, 'give a single C with --c, e.g. --c 10')}`);
      throw err;
    }
    const baseReport = evaluateBaseline(baseline, test.texts, test.labels);
    const rows: Scored[] = [{ name: 'TF-IDF + logistic', report: baseReport }];
    if (classifier) {
      const { mixed, alone } = await classifier.evaluateMixedAndAloneAsync(test, opts.task ? testName : `the test file ${testName}`);
      rows.push({ name: classifier.blend ? `revcol model + baseline (${classifier.blend.weight})` : 'revcol model', report: mixed });
      // A folder with a baseline mixed in: the model alone too, so the table shows what the transformer itself does.
      if (classifier.blend) rows.push({ name: 'revcol model alone', report: alone });
    }

    if (opts.json) {
      const { recipe, C, features, candidates, validation, iterations, converged } = baseline.info;
      const modelReport = rows[1]?.report;
      const aloneReport = rows[2]?.report;
      out(JSON.stringify({
        train: opts.task ? `task:${opts.task}` : opts.train,
        data: opts.task ? `task:${opts.task}` : opts.data,
        trainExamples: train.texts.length,
        skipped: { train: train.skipped, test: test.skipped },
        baseline: { recipe, C, features, candidates, validation, iterations, converged, ...baseReport },
        ...(modelReport ? {
          model: { dir: opts.model, ...(classifier?.blend ? { baselineWeight: classifier.blend.weight } : {}), ...modelReport },
          difference: { accuracy: modelReport.accuracy - baseReport.accuracy, macroF1: modelReport.macroF1 - baseReport.macroF1 },
        } : {}),
        ...(aloneReport ? {
          modelAlone: aloneReport,
          differenceAlone: { accuracy: aloneReport.accuracy - baseReport.accuracy, macroF1: aloneReport.macroF1 - baseReport.macroF1 },
        } : {}),
      }));
      return;
    }
    for (const line of describeTraining(baseline, train, trainName, countLabels)) out(line);
    if (train.skipped || test.skipped) out(`skipped rows without text or label: ${train.skipped} (train), ${test.skipped} (test)`);
    const truncated = rows[1]?.report.truncated;
    out(`scored on ${test.texts.length} texts of ${testName}${classifier ? `, beside the revcol model in ${opts.model}${truncated ? ` (${truncated} texts cut to its ${classifier.maxLength} tokens)` : ''}` : ''}:`);
    out();
    printComparison(rows);
    out();
    printPerClass(rows);
  } finally {
    classifier?.dispose();
  }
}

/** Registers `revcol baseline`. */
export function registerBaselineCommand(program: Command): void {
  const cmd = program
    .command('baseline')
    .description('The honest baseline: TF-IDF + logistic regression trained on a text classification set and scored on its test file (accuracy, macro-F1), beside a revcol model with --model.')
    .option('--data <file>', 'labelled test data to score on (same format and columns)')
    .option('--c <values>', `inverse regularisation strength C, or values to choose it from on 20% of the training texts (default ${DEFAULT_C_GRID.join(',')})`, cValues)
    .option('--model <dir>', 'also score this revcol model (a fine-tune folder) on the same test data, side by side')
    .option('--json', 'print one JSON object');
  addTextFlags(cmd, ['train', 'task', 'textColumn', 'labelColumn', 'allowNetwork'], {
    task: `a built-in task instead: trained on its train split, scored on its test split: ${taskNames('text-classification').join(', ') || 'see tasks/'}`,
    allowNetwork: 'allow downloading the model\'s Hub tokenizer if its folder lacks one',
  });
  cmd.addHelpText('after', `
The baseline is TF-IDF over word uni- and bigrams (sublinear tf, min_df 2) + L2 multinomial
logistic regression, scikit-learn's recipe, in plain TypeScript; no tfjs, no backend (--backend
matters only with --model). Its score is what a revcol model must beat to be worth running.

Examples:
  revcol baseline --train train.csv --data test.csv
  revcol baseline --task spam --model runs/spam          # what the transformer adds
  revcol baseline --train a.tsv --data b.tsv --text-column body --label-column topic --json`);
  cmd.action(async (opts: BaselineCommandOptions) => runBaseline(opts));
}
