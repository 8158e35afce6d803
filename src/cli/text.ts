// Light at registration (revcol --help): the recipes, models, tokenizers and readers are
// loaded inside the actions; only types are imported from them here.
import type { Command } from 'commander';
import { fail } from '../core/errors.js';
import type { TextExamples } from '../data/text.js';
import type { TextEvaluationReport } from '../text/classifier.js';
import type { FineTuneOptions, FineTuneResult } from '../text/fine-tune.js';
import type { PretrainOptions } from '../text/pretrain.js';
import { presetNames } from '../text/presets.js';
import { describeTasks, taskKind, taskNames } from '../text/tasks.js';
import { stoppableByCtrlC } from '../train/stop.js';
import { backendFromOptions } from './common.js';
import { addTextFlags, givenOnCommandLine, optionsFromFlags, textFlagName } from './text-flags.js';
import { evalHeadCommand, predictHeadCommand, readHeadData, readPredictInputs, readTextHead } from './text-heads.js';
import { evalTokensCommand, fineTuneKind, fineTuneTokensCommand, isTokenModel, predictTokensCommand, readTokenPredictFile } from './token.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function defaultOut(opts: { task?: string; train?: string }): string {
  const base = opts.task ?? (opts.train ?? 'data').replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
  return `runs/text-${base.replace(/[^\w.-]+/g, '_')}`;
}

function printSummary(r: FineTuneResult): void {
  const s = r.summary;
  out(`model: ${r.preset ?? 'custom config'} (${r.config.columns} columns, widths ${r.config.hidden.join('/')}, blocks ${r.config.layers.join('/')}), tokenizer ${r.tokenizer}, max length ${r.maxLength}`);
  out(`training: ${r.trainExamples} texts, ${r.epochs} epochs, batch ${r.batchSize}, lr ${r.lr}; evaluation: ${r.evalExamples} texts`);
  const counts = (c: Record<string, number>) => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ');
  if (r.problem === 'regression') out(`target: mean ${r.target!.mean.toPrecision(4)}, std ${r.target!.std.toPrecision(4)} (the head learns the standardised value)`);
  else {
    out(`labels (train): ${counts(r.labelCounts.train)}`);
    out(`labels (eval):  ${counts(r.labelCounts.eval)}`);
  }
  if (r.pairs) out('sentence pairs: [CLS] text [SEP] second text [SEP], with segment embeddings');
  if (r.windows > 1) out(`longer than ${r.windows} windows, read in part: ${r.truncated.train} of ${r.trainExamples} training texts, ${r.truncated.eval} of ${r.evalExamples} evaluation texts`);
  else out(`truncated to ${r.maxLength} tokens${r.truncation === 'head+tail' ? ' (head+tail: first quarter and last three quarters kept)' : ''}: ${r.truncated.train} of ${r.trainExamples} training texts, ${r.truncated.eval} of ${r.evalExamples} evaluation texts`);
  if (r.coverage) out(`read as up to ${r.windows} windows of ${r.maxLength} tokens: ${pct(r.coverage.train)} of the training texts' tokens seen, ${pct(r.coverage.eval)} of the evaluation texts'`);
  if (r.skipped.train || r.skipped.eval) out(`skipped rows without text or label: ${r.skipped.train} (train), ${r.skipped.eval} (eval)`);
  // What "accuracy" is for each head: R² for regression, micro-F1 at the tuned threshold for multi-label.
  const score = (m: FineTuneResult) => (m.problem === 'regression' ? `R² ${m.summary.bestAccuracy.toFixed(4)}`
    : m.problem === 'multi-label' ? `micro-F1 ${m.summary.bestAccuracy.toFixed(4)}, threshold ${m.threshold}` : `accuracy ${pct(m.summary.bestAccuracy)}`);
  const kept = (m: FineTuneResult) => (m.keep === 'last'
    ? `last epoch kept: ${m.summary.bestEpoch} of ${m.summary.epochs.length}, ${score(m)}`
    : `best epoch: ${m.summary.bestEpoch} of ${m.summary.epochs.length}, ${score(m)}`);
  if (r.ensemble) {
    const e = r.ensemble;
    e.members.forEach((m, k) => out(`member ${k + 1} (seed ${e.seeds[k]}): ${kept(m)}`));
    out(`ensemble of ${e.members.length}: accuracy ${pct(e.accuracy)}, macro-F1 ${e.macroF1.toFixed(4)}; ${s.seconds.toFixed(1)} s`);
    out(`saved: ${r.outDir}/ensemble.json and ${r.outDir}/member-1 … member-${e.members.length} (each with best.safetensors, last.ckpt.safetensors, metrics.jsonl, curves.png, curves.html)`);
  } else {
    if (s.bestEpoch > 0) out(`${kept(r)}; ${s.seconds.toFixed(1)} s`);
    out(`saved: ${r.outDir}/best.safetensors (and last.ckpt.safetensors, metrics.jsonl, curves.png, curves.html)`);
  }
  if (r.blend) {
    const b = r.blend;
    const alone = b.chosen ? ` (weight chosen on them; alone: the model ${pct(b.chosen.modelAccuracy)}, the baseline ${pct(b.chosen.baselineAccuracy)})` : '';
    out(`with TF-IDF + logistic regression mixed in at weight ${b.weight} (C=${b.C}, ${b.features} terms): accuracy ${pct(b.accuracy)}, macro-F1 ${b.macroF1.toFixed(4)} on the evaluation texts${alone}; ${b.seconds.toFixed(1)} s`);
    out(`saved: ${r.outDir}/baseline-blend.json (eval, predict and TextClassifier.load mix it in)`);
  }
}

function printReport(r: TextEvaluationReport): void {
  out(`accuracy ${pct(r.accuracy)}  macro-F1 ${r.macroF1.toFixed(4)}  (${r.examples} texts, ${r.truncated} truncated)`);
  const width = Math.max(5, ...r.labels.map((l) => l.length));
  out(`${'label'.padEnd(width)}  precision  recall  f1      support`);
  for (const label of r.labels) {
    const c = r.perClass[label];
    out(`${label.padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${c.recall.toFixed(4).padStart(6)}  ${c.f1.toFixed(4)}  ${String(c.support).padStart(7)}`);
  }
  out('confusion (rows: true label, columns: predicted):');
  const cell = Math.max(width, ...r.confusion.flat().map((n) => String(n).length));
  out(`${''.padEnd(width)}  ${r.labels.map((l) => l.padStart(cell)).join('  ')}`);
  r.labels.forEach((label, i) => out(`${label.padEnd(width)}  ${r.confusion[i].map((n) => String(n).padStart(cell)).join('  ')}`));
}

/** Registers `fine-tune`, `pretrain`, `eval` and `predict` (the text commands). */
export function registerTextCommands(program: Command): void {
  const fineTuneCmd = program
    .command('fine-tune')
    .description('Train a RevCol text classifier on a CSV/TSV/JSONL file (columns text and label) or a built-in task; or a token classifier (a tag per word: part of speech, named entities) on a CoNLL or JSONL file of tagged words.');
  addTextFlags(fineTuneCmd, [
    'train', 'task', 'taskType', 'eval', 'textColumn', 'labelColumn', 'textPairColumn', 'multiLabel', 'labelSeparator', 'tagColumn', 'tagNames', 'scoredPiece', 'wordFeatures', 'wordMinCount', 'wordDropout', 'wordContext', 'tokenizer', 'allowNetwork', 'preset', 'config', 'from',
    'epochs', 'batchSize', 'lr', 'maxLength', 'truncation', 'windows', 'windowPooling', 'labelSmoothing', 'keep', 'collapseRuns', 'ema', 'inputMasking', 'pretrainEpochs', 'baselineWeight',
    'out', 'resume', 'overwrite', 'seed', 'ensemble', 'parallel', 'workers', 'mode', 'progress',
  ], {
    train: 'training data: CSV, TSV or JSONL with a text and a label column; or tagged words (token classification): CoNLL (word and tag per line, a blank line between sentences) or JSONL {"tokens": [...], "tags": [...]}, told apart by extension or content',
    task: `a built-in task instead of --train (its own train/test split): ${taskNames().length ? describeTasks() : 'see tasks/'}`,
    eval: 'evaluation data (default: 10% of --train held out, stratified; of the sentences for tagged words)',
    textColumn: 'column (or JSONL field) holding the text (tagged words: the JSONL field of the words, default tokens)',
    labelColumn: 'column (or JSONL field) holding the label (tagged words: the JSONL field of the tags, default tags, ner_tags or pos_tags)',
    preset: `model size (default: chosen from the data size): ${presetNames().join(', ')}`,
    epochs: 'epochs (default: the task\'s, else enough steps for the data size)',
    lr: 'peak learning rate of AdamW (default 1e-3; 3e-4 with --from)',
    keep: 'which epoch best.safetensors keeps: the best on the evaluation data (word accuracy for tagged words), or the last (default: last with --task, whose evaluation data is its test split; else best)',
    collapseRuns: 'cut runs of one repeated symbol (lines of ____ or ****, one token per character) to N characters, in training and when classifying (default: the task\'s, else off)',
    out: 'output folder (default runs/text-<data name>; runs/tokens-<data name> for tagged words)',
  });
  fineTuneCmd.addHelpText('after', `
Examples:
  revcol fine-tune --train reviews.csv                       # defaults suited to the data
  revcol fine-tune --train data.tsv --text-column body --label-column topic --out runs/topics
  revcol fine-tune --task spam --out runs/spam               # the SpamAssassin task (its recipe: tasks/spam.json)
  revcol fine-tune --train mail.csv --pretrain-epochs 5      # masked-LM pre-training on the texts first
  revcol fine-tune --train reviews.csv --ensemble 3           # 3 seeds, averaged; 2 at a time on 2 cores
  revcol fine-tune --train mail.csv --baseline-weight 0.3     # mix in TF-IDF + logistic regression (30%)
  revcol fine-tune --train more.csv --from runs/topics --epochs 3
  revcol fine-tune --train big.jsonl --preset text-small --max-length 256 --backend wasm
  revcol fine-tune --train nli.tsv --text-column premise --text-pair-column hypothesis   # sentence pairs
  revcol fine-tune --train ratings.csv --label-column score --task-type regression       # a number per text (MSE)
  revcol fine-tune --train tags.jsonl --multi-label                                     # labels "a|b" or ["a", "b"]

Token classification (a tag per word; the same flags, less --ensemble, --parallel, --ema,
--collapse-runs, --input-masking, --pretrain-epochs and --baseline-weight):
  revcol fine-tune --train ner.conll --eval dev.conll --out runs/ner    # CoNLL: word<TAB>tag lines
  revcol fine-tune --train train.jsonl --task-type token-classification --label-column ner_tags --tag-names O,B-PER,I-PER
  revcol fine-tune --train conll2003.txt --tag-column 1 --out runs/pos  # CoNLL-2003's POS column
  revcol fine-tune --task pos-brown --out runs/pos-brown                # Brown corpus part of speech (tasks/pos-brown.json)
then: revcol eval --model runs/ner --data test.conll; revcol predict --model runs/ner "EU rejects German call"

A folder that holds a run is not replaced unless --overwrite; --resume continues it. Ctrl-C
stops after the current step, saves a checkpoint and prints the command that resumes it.`);
  fineTuneCmd.action(async (opts) => {
    const kind = await fineTuneKind(opts, fineTuneCmd);
    await backendFromOptions(opts);
    if (kind === 'token-classification') {
      await fineTuneTokensCommand(opts, fineTuneCmd);
      return;
    }
    const { fineTune } = await import('../text/fine-tune.js');
    const options = {
      ...optionsFromFlags(fineTuneCmd, opts),
      out: opts.out ?? defaultOut(opts),
      ...(opts.taskType === 'regression' || opts.taskType === 'text-classification' ? { taskType: opts.taskType } : {}),
    } as FineTuneOptions;
    const result = await stoppableByCtrlC((signal) => fineTune({ ...options, signal }));
    printSummary(result);
  });

  const pretrainCmd = program
    .command('pretrain')
    .description('Pre-train a RevCol text model\'s embeddings and columns on unlabelled texts (masked LM), to fine-tune from with --from.');
  addTextFlags(pretrainCmd, [
    'train', 'task', 'textColumn', 'tokenizer', 'allowNetwork', 'preset', 'config', 'epochs', 'batchSize', 'lr', 'maxLength', 'maskFraction', 'collapseRuns',
    'out', 'resume', 'overwrite', 'seed', 'workers', 'mode', 'progress',
  ], {
    train: 'texts: CSV, TSV or JSONL with a text column (labels not needed)',
    task: `a built-in text-classification task's training texts instead of --train: ${taskNames('text-classification').join(', ') || 'see tasks/'}`,
    tokenizer: 'tokenizer folder or Hugging Face Hub name (default: the shipped bert-base-uncased); it needs a [MASK] token',
    preset: `model size (default: the task's, else chosen from the data size): ${presetNames().join(', ')}`,
    epochs: 'epochs (default 10)',
    lr: 'peak learning rate of AdamW (default 2e-3)',
    maxLength: 'tokens per text (default: the task\'s, else covers 95% of the texts, up to the preset\'s limit)',
    collapseRuns: 'cut runs of one repeated symbol to N characters (default: the task\'s, else off; use the same N when fine-tuning)',
    out: 'output folder (default runs/pretrain-<data name>)',
    seed: 'seed of initialisation, masking, shuffling and dropout',
  });
  pretrainCmd.addHelpText('after', `
Each epoch reports the share of masked tokens predicted right on 5% of the texts held out.
Examples:
  revcol pretrain --train mail.csv --out runs/mail-lm --epochs 10
  revcol fine-tune --train labelled.csv --from runs/mail-lm     # then fine-tune from it
  revcol pretrain --task spam --preset text-tiny --out runs/spam-lm
  revcol pretrain --train mail.csv --workers 2 --backend wasm     # each batch on 2 threads (2 cores)`);
  pretrainCmd.action(async (opts) => {
    if (!opts.train === !opts.task) fail('pretrain needs exactly one of --train FILE or --task NAME');
    await backendFromOptions(opts);
    const { pretrain } = await import('../text/pretrain.js');
    const options = { ...optionsFromFlags(pretrainCmd, opts), out: opts.out ?? defaultOut(opts).replace(/^runs\/text-/, 'runs/pretrain-') } as PretrainOptions;
    const r = await stoppableByCtrlC((signal) => pretrain({ ...options, signal }));
    const last = r.summary.epochs[r.summary.epochs.length - 1];
    out(`model: ${r.preset ?? 'custom config'} (${r.config.columns} columns, widths ${r.config.hidden.join('/')}, blocks ${r.config.layers.join('/')}), max length ${r.maxLength}`);
    out(`pre-trained on ${r.trainTexts} texts for ${r.epochs} epochs; masked tokens right on ${r.heldOutTexts} held-out texts: ${last ? pct(last.accuracy) : 'n/a'}; ${r.summary.seconds.toFixed(1)} s`);
    out(`saved: ${r.outDir}/best.safetensors; fine-tune from it with: revcol fine-tune --from ${r.outDir} --train FILE`);
  });

  const evalCmd = program
    .command('eval')
    .description('Score a text classifier on labelled data: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix; or a token classifier on tagged words: word accuracy, per-tag precision/recall/F1, entity-level scores for BIO/BIOES tags.')
    .requiredOption('--model <dir>', 'model folder written by fine-tune')
    .option('--data <file>', 'labelled CSV, TSV or JSONL; for a token classifier, tagged words (CoNLL, or JSONL tokens and tags)')
    .option('--task <name>', 'a built-in task\'s test split instead of --data')
    .option('--json', 'print one JSON object');
  addTextFlags(evalCmd, ['textColumn', 'labelColumn', 'textPairColumn', 'labelSeparator', 'tagColumn', 'tagNames', 'allowNetwork'], {
    textPairColumn: 'a model trained on sentence pairs: the column of the second text (default: the one it was trained with)',
    labelSeparator: 'a multi-label model: what separates labels in a cell (default: what it was trained with)',
    textColumn: 'column (or JSONL field) holding the text (token classifier: the JSONL field of the words)',
    labelColumn: 'column (or JSONL field) holding the label (token classifier: the JSONL field of the tags)',
    tagColumn: 'token classifier, CoNLL data: the column holding the tag, counted from 0 (the word); default -1, the last',
    tagNames: 'token classifier, JSONL with numeric tags: their names in order, comma-separated or a JSON array',
    allowNetwork: 'allow downloading the model\'s Hub tokenizer if its folder lacks one',
  });
  evalCmd.addHelpText('after', `
Examples:
  revcol eval --model runs/spam --task spam --json
  revcol eval --model runs/topics --data test.csv
  revcol eval --model runs/ner --data test.conll --json     # a token classifier: accuracy, perTag, entities
  revcol eval --model runs/pos-brown --task pos-brown
  revcol eval --model runs/ratings --data test.csv --json   # regression: mse, mae, pearson, spearman
  revcol eval --model runs/tags --data test.jsonl --json    # multi-label: microF1, macroF1, subsetAccuracy`);
  evalCmd.action(async (opts) => {
    if (!opts.data === !opts.task) fail('eval needs exactly one of --data FILE or --task NAME');
    await backendFromOptions(opts);
    if (await isTokenModel(opts.model)) {
      await evalTokensCommand(opts, evalCmd);
      return;
    }
    if (opts.tagColumn !== undefined || opts.tagNames !== undefined) {
      fail(`${opts.tagColumn !== undefined ? '--tag-column' : '--tag-names'} is for token classifiers, and ${opts.model} is not one: leave it out`);
    }
    if (opts.task && taskKind(opts.task) === 'token-classification') {
      fail(`task ${opts.task} tags words, and ${opts.model} is not a token classifier: evaluate the folder of revcol fine-tune --task ${opts.task} on it`);
    }
    const head = await readTextHead(opts.model);
    if (head && head.problem !== 'single-label') {
      await evalHeadCommand(opts, head, givenOnCommandLine(evalCmd, 'labelColumn'));
      return;
    }
    let data: TextExamples;
    let where: string;
    const [{ TextClassifier }, { loadTask }] = await Promise.all([import('../text/classifier.js'), import('../text/tasks.js')]);
    if (opts.task) {
      data = (await loadTask(opts.task)).test;
      where = `the ${opts.task} test split`;
    } else {
      data = await readHeadData(opts.data, opts, head);
      where = opts.data;
    }
    const classifier = await TextClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
    try {
      const report = await classifier.evaluateAsync(data, where);
      const blend = classifier.blend ? { baselineWeight: classifier.blend.weight } : {};
      if (opts.json) out(JSON.stringify({ ...report, skipped: data.skipped, model: opts.model, ...blend, data: opts.task ? `task:${opts.task}` : opts.data }));
      else {
        if (data.skipped) out(`skipped ${data.skipped} rows without text or label`);
        if (classifier.blend) out(`the model's probabilities mixed with its TF-IDF + logistic regression baseline's at weight ${classifier.blend.weight} (baseline-blend.json)`);
        printReport(report);
      }
    } finally {
      classifier.dispose();
    }
  });

  const predictCmd = program
    .command('predict')
    .description('Classify texts with a fine-tuned model: the label and every class\'s probability per text; with a token classifier, each word\'s tag.')
    .argument('[text...]', 'texts to classify')
    .requiredOption('--model <dir>', 'model folder written by fine-tune')
    .option('--file <file>', 'classify the texts in a file: CSV/TSV/JSONL with a text column, or plain text with one text per line (a token classifier also takes sentences split into words: CoNLL, or JSONL tokens)')
    .option('--json', 'print a JSON array: {text, label, score, probabilities} per text; for a token classifier, a list per text of {word, entity, score, index, start, end} (transformers.js\'s shape)');
  predictCmd.option('--pair <text>', 'a model trained on sentence pairs: the second text of the one text given');
  addTextFlags(predictCmd, ['textColumn', 'textPairColumn', 'allowNetwork'], {
    textColumn: 'column (or JSONL field) holding the text, for --file',
    textPairColumn: 'a model trained on sentence pairs, with --file: the column of the second text (default: the one it was trained with)',
    allowNetwork: 'allow downloading the model\'s Hub tokenizer if its folder lacks one',
  });
  predictCmd.addHelpText('after', `
A token classifier prints a line per word (word, tag, probability) and a blank line after each text.
Examples:
  revcol predict --model runs/spam "WIN a FREE cruise, click now!" "Meeting moved to 3pm"
  revcol predict --model runs/topics --file new.csv --json
  revcol predict --model runs/ner "EU rejects German call to boycott British lamb." --json
  revcol predict --model runs/nli "A man plays a guitar." --pair "Someone makes music."
  revcol predict --model runs/ratings "Great food, slow service"   # regression: the number
  revcol predict --model runs/tags "..." --json                    # multi-label: labels at or above the threshold, with scores`);
  predictCmd.action(async (texts: string[], opts) => {
    if (texts.length && opts.file) fail('give texts as arguments or --file FILE, not both');
    if (await isTokenModel(opts.model)) {
      const inputs = opts.file ? await readTokenPredictFile(opts.file, () => readPredictFile(opts.file, opts.textColumn)) : texts;
      if (!inputs.length) fail('nothing to tag: give texts as arguments or --file FILE');
      await backendFromOptions(opts);
      await predictTokensCommand(inputs, opts);
      return;
    }
    const head = await readTextHead(opts.model);
    const inputs = await readPredictInputs(texts, opts, head, () => readPredictFile(opts.file, opts.textColumn));
    const list = inputs.texts;
    if (!list.length) fail('nothing to classify: give texts as arguments or --file FILE');
    if (head && (head.problem !== 'single-label' || head.pairs)) {
      await backendFromOptions(opts);
      await predictHeadCommand(list, inputs.pairs, opts, head);
      return;
    }
    warnEmptyTexts(list);
    await backendFromOptions(opts);
    const { TextClassifier } = await import('../text/classifier.js');
    const classifier = await TextClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
    try {
      const results = await classifier.classify(list);
      if (opts.json) {
        out(JSON.stringify(list.map((text, i) => ({ text, ...results[i] }))));
      } else {
        results.forEach((r, i) => {
          const probs = Object.entries(r.probabilities).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
          const shown = list[i].length > 60 ? `${list[i].slice(0, 57).replace(/\s+/g, ' ')}...` : list[i].replace(/\s+/g, ' ');
          out(`${r.label}\t${r.score.toFixed(4)}\t(${probs})\t${shown}`);
        });
      }
    } finally {
      classifier.dispose();
    }
  });
}

/**
 * An empty (or all-space) text has no words to classify: its label would be the model's prior
 * alone. It is still classified, so that rows keep their places, with a warning.
 */
function warnEmptyTexts(list: string[]): void {
  const empty = list.flatMap((t, i) => (t.trim() === '' ? [i + 1] : []));
  if (!empty.length) return;
  const which = empty.length === 1 ? `text ${empty[0]} is empty` : `${empty.length} texts are empty (the first: text ${empty[0]})`;
  process.stderr.write(`revcol: warning: ${which}: with no words, its label says only which class the model leans to by default\n`);
}

/** Texts of a prediction file: a table with a text column, or one text per line. */
async function readPredictFile(file: string, textColumn: string): Promise<string[]> {
  const { readTextExamples, readTextLines } = await import('../data/text.js');
  if (/\.(csv|tsv|tab|jsonl|ndjson)$/i.test(file)) {
    return (await readTextExamples(file, { textColumn, requireLabels: false, optionName: textFlagName })).texts;
  }
  return readTextLines(file);
}
