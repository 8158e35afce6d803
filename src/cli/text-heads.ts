// eval and predict for the text heads beside single-label classification (regression,
// multi-label) and for sentence pairs. Light at registration: readers and models load in the actions.
import { fail } from '../core/errors.js';
import type { TextExamples } from '../data/text.js';
import type { MultiLabelReport, RegressionReport } from '../text/head-metrics.js';
import type { TextProblem } from '../text/text-heads.js';
import { textFlagName } from './text-flags.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** What a (single, not ensemble) text model folder's head predicts, and whether it reads sentence pairs. */
export interface TextHead {
  problem: TextProblem;
  pairs: boolean;
  /** The pair column it was trained with. */
  pairColumn?: string;
  /** Multi-label: the separator of labels in its training file. */
  labelSeparator?: string;
  /** Regression: the label column it was trained on (eval reads it unless --label-column is given). */
  labelColumn?: string;
}

/** The head of a text model folder, from its checkpoint's header (no tensor read); null when it cannot be read (the loader then says why). */
export async function readTextHead(dir: string): Promise<TextHead | null> {
  try {
    const { readEnsembleManifest } = await import('../text/ensemble-manifest.js');
    const manifest = await readEnsembleManifest(dir);
    const { readModelMeta } = await import('../train/checkpoint.js');
    const path = await import('node:path');
    const meta = (await readModelMeta(manifest ? path.join(dir, manifest.members[0]!) : dir)).meta as { config?: { problem?: string; segments?: number }; textPairColumn?: string; labelSeparator?: string; labels?: unknown };
    const problem = meta.config?.problem === 'regression' || meta.config?.problem === 'multi-label' ? meta.config.problem : 'single-label';
    return {
      problem,
      pairs: Boolean(meta.config?.segments),
      ...(meta.textPairColumn ? { pairColumn: meta.textPairColumn } : {}),
      ...(meta.labelSeparator ? { labelSeparator: meta.labelSeparator } : {}),
      ...(problem === 'regression' && Array.isArray(meta.labels) && typeof meta.labels[0] === 'string' ? { labelColumn: meta.labels[0] } : {}),
    };
  } catch {
    return null;
  }
}

/** Labelled data for a model: with its pair column and, for multi-label, its separator (flags first, then what the model recorded). */
export async function readHeadData(file: string, opts: Record<string, any>, head: TextHead | null, labelColumnGiven = true): Promise<TextExamples> {
  const { readTextExamples } = await import('../data/text.js');
  if (opts.textPairColumn !== undefined && !head?.pairs) fail(`--text-pair-column is for models trained on sentence pairs, and ${opts.model} was trained on single texts: leave it out`);
  if (opts.labelSeparator !== undefined && head?.problem !== 'multi-label') fail(`--label-separator is for multi-label models, and ${opts.model} is not one: leave it out`);
  return readTextExamples(file, {
    textColumn: opts.textColumn,
    labelColumn: labelColumnGiven ? opts.labelColumn : head?.labelColumn ?? opts.labelColumn,
    optionName: textFlagName,
    ...(head?.pairs ? { pairColumn: opts.textPairColumn ?? head.pairColumn ?? 'text_pair' } : {}),
    ...(head?.problem === 'multi-label' ? { multiLabel: { separator: opts.labelSeparator ?? head.labelSeparator ?? '|' } } : {}),
  });
}

function printRegression(r: RegressionReport): void {
  out(`MSE ${r.mse.toPrecision(4)}  MAE ${r.mae.toPrecision(4)}  Pearson ${r.pearson.toFixed(4)}  Spearman ${r.spearman.toFixed(4)}  (${r.examples} texts, ${r.truncated} truncated)`);
}

function printMultiLabel(r: MultiLabelReport): void {
  out(`micro-F1 ${r.microF1.toFixed(4)}  macro-F1 ${r.macroF1.toFixed(4)}  subset accuracy ${pct(r.subsetAccuracy)}  threshold ${r.threshold}  (${r.examples} texts, ${r.truncated} truncated)`);
  const width = Math.max(5, ...r.labels.map((l) => l.length));
  out(`${'label'.padEnd(width)}  precision  recall  f1      support`);
  for (const label of r.labels) {
    const c = r.perLabel[label]!;
    out(`${label.padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${c.recall.toFixed(4).padStart(6)}  ${c.f1.toFixed(4)}  ${String(c.support).padStart(7)}`);
  }
}

/** `revcol eval` of a regression or multi-label model. */
export async function evalHeadCommand(opts: Record<string, any>, head: TextHead, labelColumnGiven: boolean): Promise<void> {
  if (opts.task) fail(`the built-in tasks label texts with classes, and ${opts.model} is ${head.problem === 'regression' ? 'a regression model' : 'a multi-label classifier'}: evaluate it on a file (--data FILE)`);
  const data = await readHeadData(opts.data, opts, head, labelColumnGiven);
  const { MultiLabelClassifier, TextRegressor } = await import('../text/text-heads.js');
  const model = head.problem === 'regression' ? await TextRegressor.load(opts.model, { allowNetwork: opts.allowNetwork }) : await MultiLabelClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
  try {
    const report = await model.evaluateAsync(data, opts.data);
    if (opts.json) out(JSON.stringify({ problem: head.problem, ...report, skipped: data.skipped, model: opts.model, data: opts.data }));
    else {
      if (data.skipped) out(`skipped ${data.skipped} rows without text or label`);
      if (head.problem === 'regression') printRegression(report as RegressionReport);
      else printMultiLabel(report as MultiLabelReport);
    }
  } finally {
    model.dispose();
  }
}

const shown = (text: string) => (text.length > 60 ? `${text.slice(0, 57).replace(/\s+/g, ' ')}...` : text.replace(/\s+/g, ' '));

/**
 * The texts (and second texts) to predict: arguments (one text with `--pair TEXT`), or --file
 * (CSV/TSV/JSONL with the text column and, for a pair model, the pair column).
 */
export async function readPredictInputs(texts: string[], opts: Record<string, any>, head: TextHead | null, readFile: () => Promise<string[]>): Promise<{ texts: string[]; pairs?: string[] }> {
  if (opts.pair !== undefined && !head?.pairs) fail(`--pair gives the second text of a sentence pair, and ${opts.model} was trained on single texts: leave it out`);
  if (opts.textPairColumn !== undefined && !head?.pairs) fail(`--text-pair-column is for models trained on sentence pairs, and ${opts.model} was trained on single texts: leave it out`);
  if (!head?.pairs) return { texts: opts.file ? await readFile() : texts };
  if (opts.file) {
    if (opts.pair !== undefined) fail('--pair goes with one text argument; with --file the second texts come from its pair column (--text-pair-column)');
    if (!/\.(csv|tsv|tab|jsonl|ndjson)$/i.test(opts.file)) fail(`${opts.model} reads sentence pairs: give --file as CSV, TSV or JSONL with a text column and a pair column (${head.pairColumn ?? 'text_pair'})`);
    const { readTextExamples } = await import('../data/text.js');
    const data = await readTextExamples(opts.file, { textColumn: opts.textColumn, requireLabels: false, pairColumn: opts.textPairColumn ?? head.pairColumn ?? 'text_pair', optionName: textFlagName });
    return { texts: data.texts, pairs: data.pairs! };
  }
  if (texts.length !== 1 || opts.pair === undefined) fail(`${opts.model} reads sentence pairs: give one text and its second text (revcol predict --model ${opts.model} "TEXT" --pair "SECOND TEXT"), or --file with both columns`);
  return { texts, pairs: [opts.pair] };
}

/** `revcol predict` with a regression, multi-label or pair model. */
export async function predictHeadCommand(list: string[], pairs: string[] | undefined, opts: Record<string, any>, head: TextHead): Promise<void> {
  const load = { allowNetwork: opts.allowNetwork };
  const withPair = (i: number) => (pairs ? { pair: pairs[i] } : {});
  const label = (i: number) => (pairs ? `${shown(list[i]!)} | ${shown(pairs[i]!)}` : shown(list[i]!));
  if (head.problem === 'regression') {
    const { TextRegressor } = await import('../text/text-heads.js');
    const model = await TextRegressor.load(opts.model, load);
    try {
      const values = await model.predict(list, pairs);
      if (opts.json) out(JSON.stringify(list.map((text, i) => ({ text, ...withPair(i), value: values[i] }))));
      else values.forEach((v, i) => out(`${v.toFixed(4)}\t${label(i)}`));
    } finally {
      model.dispose();
    }
    return;
  }
  if (head.problem === 'multi-label') {
    const { MultiLabelClassifier } = await import('../text/text-heads.js');
    const model = await MultiLabelClassifier.load(opts.model, load);
    try {
      const results = await model.classify(list, pairs);
      if (opts.json) out(JSON.stringify(list.map((text, i) => ({ text, ...withPair(i), ...results[i] }))));
      else results.forEach((r, i) => out(`${r.labels.map((l) => `${l.label} ${l.score.toFixed(4)}`).join(', ') || `(no label at or above ${model.threshold})`}\t${label(i)}`));
    } finally {
      model.dispose();
    }
    return;
  }
  const { TextClassifier } = await import('../text/classifier.js');
  const classifier = await TextClassifier.load(opts.model, load);
  try {
    const results = await classifier.classify(list, pairs);
    if (opts.json) out(JSON.stringify(list.map((text, i) => ({ text, ...withPair(i), ...results[i] }))));
    else {
      results.forEach((r, i) => {
        const probs = Object.entries(r.probabilities).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
        out(`${r.label}\t${r.score.toFixed(4)}\t(${probs})\t${label(i)}`);
      });
    }
  } finally {
    classifier.dispose();
  }
}
