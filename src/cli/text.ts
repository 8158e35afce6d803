import { type Command, InvalidArgumentError, Option } from 'commander';
import { fail } from '../core/errors.js';
import { readTextExamples, readTextLines, type TextExamples } from '../data/text.js';
import { type TextEvaluationReport, TextClassifier } from '../text/classifier.js';
import { fineTune, type FineTuneResult } from '../text/fine-tune.js';
import { pretrain } from '../text/pretrain.js';
import { presetNames } from '../text/presets.js';
import { describeTasks, loadTask, taskKind, taskNames } from '../text/tasks.js';
import { addBackendOption, backendFromOptions, stoppableByCtrlC } from './common.js';
import { evalTokensCommand, fineTuneKind, fineTuneTokensCommand, isTokenModel, predictTokensCommand, readTokenPredictFile } from './token.js';

const integer = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a whole number ≥ 1`);
  return n;
};
const positive = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`${what} must be a number > 0`);
  return n;
};
const fraction = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`${what} must be a number in [0, 1)`);
  return n;
};
const wholeOrZeroOf = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a whole number ≥ 0`);
  return n;
};
const wholeOrZero = wholeOrZeroOf('the seed');
/** A CoNLL tag column: counted from 0 (the word), negative from the end; never 0. */
const tagColumn = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n === 0) throw new InvalidArgumentError('--tag-column must be a whole number other than 0 (column 0 is the word; -1 is the last column)');
  return n;
};

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
  out(`labels (train): ${counts(r.labelCounts.train)}`);
  out(`labels (eval):  ${counts(r.labelCounts.eval)}`);
  out(`truncated to ${r.maxLength} tokens: ${r.truncated.train} of ${r.trainExamples} training texts, ${r.truncated.eval} of ${r.evalExamples} evaluation texts`);
  if (r.skipped.train || r.skipped.eval) out(`skipped rows without text or label: ${r.skipped.train} (train), ${r.skipped.eval} (eval)`);
  const kept = (m: FineTuneResult) => (m.keep === 'last'
    ? `last epoch kept: ${m.summary.bestEpoch} of ${m.summary.epochs.length}, accuracy ${pct(m.summary.bestAccuracy)}`
    : `best epoch: ${m.summary.bestEpoch} of ${m.summary.epochs.length}, accuracy ${pct(m.summary.bestAccuracy)}`);
  if (r.ensemble) {
    const e = r.ensemble;
    e.members.forEach((m, k) => out(`member ${k + 1} (seed ${e.seeds[k]}): ${kept(m)}`));
    out(`ensemble of ${e.members.length}: accuracy ${pct(e.accuracy)}, macro-F1 ${e.macroF1.toFixed(4)}; ${s.seconds.toFixed(1)} s`);
    out(`saved: ${r.outDir}/ensemble.json and ${r.outDir}/member-1 … member-${e.members.length} (each with best.safetensors, last.ckpt.safetensors, metrics.jsonl, curves.png, curves.html)`);
    return;
  }
  if (s.bestEpoch > 0) out(`${kept(r)}; ${s.seconds.toFixed(1)} s`);
  out(`saved: ${r.outDir}/best.safetensors (and last.ckpt.safetensors, metrics.jsonl, curves.png, curves.html)`);
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
    .description('Train a RevCol text classifier on a CSV/TSV/JSONL file (columns text and label) or a built-in task; or a token classifier (a tag per word: part of speech, named entities) on a CoNLL or JSONL file of tagged words.')
    .option('--train <file>', 'training data: CSV, TSV or JSONL with a text and a label column; or tagged words (token classification): CoNLL (word and tag per line, a blank line between sentences) or JSONL {"tokens": [...], "tags": [...]}, told apart by extension or content')
    .option('--task <name>', `a built-in task instead of --train (its own train/test split): ${taskNames().length ? describeTasks() : 'see tasks/'}`)
    .addOption(new Option('--task-type <type>', 'what to train, when the data does not make it plain: a label per text or a tag per word (default: from the task or the --train file)').choices(['text-classification', 'token-classification']))
    .option('--eval <file>', 'evaluation data (default: 10% of --train held out, stratified; of the sentences for tagged words)')
    .option('--text-column <name>', 'column (or JSONL field) holding the text (tagged words: the JSONL field of the words, default tokens)', 'text')
    .option('--label-column <name>', 'column (or JSONL field) holding the label (tagged words: the JSONL field of the tags, default tags, ner_tags or pos_tags)', 'label')
    .option('--tag-column <k>', 'tagged words in CoNLL: the column holding the tag, counted from 0 (the word); default -1, the last (CoNLL-2003 POS tags: 1)', tagColumn)
    .option('--tag-names <names>', 'tagged words in JSONL with numeric tags (Hugging Face ner_tags): their names in order, comma-separated (O,B-PER,I-PER) or a JSON array')
    .option('--tokenizer <dir|name>', 'tokenizer folder (tokenizer.json + tokenizer_config.json) or Hugging Face Hub name (default: the shipped bert-base-uncased)')
    .option('--allow-network', 'allow downloading a Hub tokenizer')
    .addOption(new Option('--preset <name>', `model size (default: chosen from the data size): ${presetNames().join(', ')}`).conflicts('config'))
    .option('--config <file>', 'model config as JSON (a TextConfig, or {"preset": "text-tiny", ...overrides})')
    .option('--from <dir>', 'start from an earlier model folder (its columns; a new head when the labels differ)')
    .option('--epochs <n>', 'epochs (default: the task\'s, else enough steps for the data size)', integer('--epochs'))
    .option('--batch-size <n>', 'texts per step (default 32)', integer('--batch-size'))
    .option('--lr <x>', 'peak learning rate of AdamW (default 1e-3; 3e-4 with --from)', positive('--lr'))
    .option('--max-length <n>', 'tokens per text (default: covers 95% of the training texts, up to the preset\'s limit)', integer('--max-length'))
    .option('--label-smoothing <x>', 'label smoothing of the cross-entropy (default: the task\'s, else 0)', fraction('--label-smoothing'))
    .addOption(new Option('--keep <which>', 'which epoch best.safetensors keeps: the best on the evaluation data (word accuracy for tagged words), or the last (default: last with --task, whose evaluation data is its test split; else best)').choices(['best', 'last']))
    .option('--collapse-runs <n>', 'cut runs of one repeated symbol (lines of ____ or ****, one token per character) to N characters, in training and when classifying (default: the task\'s, else off)', integer('--collapse-runs'))
    .option('--ema <decay>', 'evaluate and save a moving average of the weights with this decay, e.g. 0.999 (default: the task\'s, else none)', fraction('--ema'))
    .option('--input-masking <x>', 'input noise: corrupt this fraction of the tokens of each training batch BERT\'s way ([MASK], random, kept), afresh every step (default: the task\'s, else 0: off)', fraction('--input-masking'))
    .option('--pretrain-epochs <n>', 'first pre-train the model on the training texts (masked LM) for N epochs, kept in OUT/pretrained, then fine-tune from it (default: the task\'s, else 0: none)', wholeOrZeroOf('--pretrain-epochs'))
    .option('--out <dir>', 'output folder (default runs/text-<data name>; runs/tokens-<data name> for tagged words)')
    .addOption(new Option('--resume', 'continue the run in --out from its last checkpoint (same data, task, preset/config and tokenizer)').conflicts('overwrite'))
    .option('--overwrite', 'replace an earlier run in --out (without it, a folder holding a run is refused)')
    .option('--seed <n>', 'seed of initialisation, shuffling and dropout', wholeOrZero, 0)
    .option('--ensemble <n>', 'train N models (seeds seed … seed+N-1) and average their probabilities; the folder loads as one model (default: the task\'s, else 1)', integer('--ensemble'))
    .option('--parallel <n>', 'ensemble members trained at once, each in its own process, on the cpu or wasm backend (default: the CPU cores, at most N)', integer('--parallel'))
    .addOption(new Option('--mode <mode>', 'backward pass: reversible (memory-saving) or plain autodiff').choices(['reversible', 'plain']))
    .option('--no-progress', 'no progress bar, one line per epoch')
    .addHelpText('after', `
Examples:
  revcol fine-tune --train reviews.csv                       # defaults suited to the data
  revcol fine-tune --train data.tsv --text-column body --label-column topic --out runs/topics
  revcol fine-tune --task spam --out runs/spam               # the SpamAssassin task (its recipe: tasks/spam.json)
  revcol fine-tune --train mail.csv --pretrain-epochs 5      # masked-LM pre-training on the texts first
  revcol fine-tune --train reviews.csv --ensemble 3           # 3 seeds, averaged; 2 at a time on 2 cores
  revcol fine-tune --train more.csv --from runs/topics --epochs 3
  revcol fine-tune --train big.jsonl --preset text-small --max-length 256 --backend wasm

Token classification (a tag per word; the same flags, less --ensemble, --parallel, --ema,
--collapse-runs, --input-masking and --pretrain-epochs):
  revcol fine-tune --train ner.conll --eval dev.conll --out runs/ner    # CoNLL: word<TAB>tag lines
  revcol fine-tune --train train.jsonl --task-type token-classification --label-column ner_tags --tag-names O,B-PER,I-PER
  revcol fine-tune --train conll2003.txt --tag-column 1 --out runs/pos  # CoNLL-2003's POS column
  revcol fine-tune --task pos-brown --out runs/pos-brown                # Brown corpus part of speech (tasks/pos-brown.json)
then: revcol eval --model runs/ner --data test.conll; revcol predict --model runs/ner "EU rejects German call"

A folder that holds a run is not replaced unless --overwrite; --resume continues it. Ctrl-C
stops after the current step, saves a checkpoint and prints the command that resumes it.`);
  addBackendOption(fineTuneCmd);
  fineTuneCmd.action(async (opts) => {
    const kind = await fineTuneKind(opts, fineTuneCmd);
    await backendFromOptions(opts);
    if (kind === 'token-classification') {
      await fineTuneTokensCommand(opts, fineTuneCmd);
      return;
    }
    const result = await stoppableByCtrlC((signal) => fineTune({
      signal,
      overwrite: opts.overwrite,
      train: opts.train,
      task: opts.task,
      eval: opts.eval,
      textColumn: opts.textColumn,
      labelColumn: opts.labelColumn,
      tokenizer: opts.tokenizer,
      allowNetwork: opts.allowNetwork,
      preset: opts.preset,
      config: opts.config,
      from: opts.from,
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      lr: opts.lr,
      maxLength: opts.maxLength,
      labelSmoothing: opts.labelSmoothing,
      collapseRuns: opts.collapseRuns,
      keep: opts.keep,
      ema: opts.ema,
      inputMasking: opts.inputMasking,
      pretrainEpochs: opts.pretrainEpochs,
      out: opts.out ?? defaultOut(opts),
      resume: opts.resume,
      seed: opts.seed,
      ensemble: opts.ensemble,
      parallel: opts.parallel,
      mode: opts.mode,
      progress: opts.progress,
    }));
    printSummary(result);
  });

  const pretrainCmd = program
    .command('pretrain')
    .description('Pre-train a RevCol text model\'s embeddings and columns on unlabelled texts (masked LM), to fine-tune from with --from.')
    .option('--train <file>', 'texts: CSV, TSV or JSONL with a text column (labels not needed)')
    .option('--task <name>', `a built-in text-classification task's training texts instead of --train: ${taskNames('text-classification').join(', ') || 'see tasks/'}`)
    .option('--text-column <name>', 'column (or JSONL field) holding the text', 'text')
    .option('--tokenizer <dir|name>', 'tokenizer folder or Hugging Face Hub name (default: the shipped bert-base-uncased); it needs a [MASK] token')
    .option('--allow-network', 'allow downloading a Hub tokenizer')
    .addOption(new Option('--preset <name>', `model size (default: the task's, else chosen from the data size): ${presetNames().join(', ')}`).conflicts('config'))
    .option('--config <file>', 'model config as JSON (a TextConfig, or {"preset": "text-tiny", ...overrides})')
    .option('--epochs <n>', 'epochs (default 10)', integer('--epochs'))
    .option('--batch-size <n>', 'texts per step (default 32)', integer('--batch-size'))
    .option('--lr <x>', 'peak learning rate of AdamW (default 2e-3)', positive('--lr'))
    .option('--max-length <n>', 'tokens per text (default: the task\'s, else covers 95% of the texts, up to the preset\'s limit)', integer('--max-length'))
    .option('--mask-fraction <x>', 'share of tokens the model must predict (default 0.15; BERT\'s 80% [MASK], 10% random, 10% kept)', fraction('--mask-fraction'))
    .option('--collapse-runs <n>', 'cut runs of one repeated symbol to N characters (default: the task\'s, else off; use the same N when fine-tuning)', integer('--collapse-runs'))
    .option('--out <dir>', 'output folder (default runs/pretrain-<data name>)')
    .addOption(new Option('--resume', 'continue the run in --out from its last checkpoint (same data, task, preset/config and tokenizer)').conflicts('overwrite'))
    .option('--overwrite', 'replace an earlier run in --out (without it, a folder holding a run is refused)')
    .option('--seed <n>', 'seed of initialisation, masking, shuffling and dropout', wholeOrZero, 0)
    .addOption(new Option('--mode <mode>', 'backward pass: reversible (memory-saving) or plain autodiff').choices(['reversible', 'plain']))
    .option('--no-progress', 'no progress bar, one line per epoch')
    .addHelpText('after', `
Each epoch reports the share of masked tokens predicted right on 5% of the texts held out.
Examples:
  revcol pretrain --train mail.csv --out runs/mail-lm --epochs 10
  revcol fine-tune --train labelled.csv --from runs/mail-lm     # then fine-tune from it
  revcol pretrain --task spam --preset text-tiny --out runs/spam-lm`);
  addBackendOption(pretrainCmd);
  pretrainCmd.action(async (opts) => {
    if (!opts.train === !opts.task) fail('pretrain needs exactly one of --train FILE or --task NAME');
    await backendFromOptions(opts);
    const outDir = opts.out ?? defaultOut(opts).replace(/^runs\/text-/, 'runs/pretrain-');
    const r = await stoppableByCtrlC((signal) => pretrain({
      signal,
      overwrite: opts.overwrite,
      train: opts.train,
      task: opts.task,
      textColumn: opts.textColumn,
      tokenizer: opts.tokenizer,
      allowNetwork: opts.allowNetwork,
      preset: opts.preset,
      config: opts.config,
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      lr: opts.lr,
      maxLength: opts.maxLength,
      maskFraction: opts.maskFraction,
      collapseRuns: opts.collapseRuns,
      out: outDir,
      resume: opts.resume,
      seed: opts.seed,
      mode: opts.mode,
      progress: opts.progress,
    }));
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
    .option('--text-column <name>', 'column (or JSONL field) holding the text (token classifier: the JSONL field of the words)', 'text')
    .option('--label-column <name>', 'column (or JSONL field) holding the label (token classifier: the JSONL field of the tags)', 'label')
    .option('--tag-column <k>', 'token classifier, CoNLL data: the column holding the tag, counted from 0 (the word); default -1, the last', tagColumn)
    .option('--tag-names <names>', 'token classifier, JSONL with numeric tags: their names in order, comma-separated or a JSON array')
    .option('--allow-network', 'allow downloading the model\'s Hub tokenizer if its folder lacks one')
    .option('--json', 'print one JSON object')
    .addHelpText('after', `
Examples:
  revcol eval --model runs/spam --task spam --json
  revcol eval --model runs/topics --data test.csv
  revcol eval --model runs/ner --data test.conll --json     # a token classifier: accuracy, perTag, entities
  revcol eval --model runs/pos-brown --task pos-brown`);
  addBackendOption(evalCmd);
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
    let data: TextExamples;
    let where: string;
    if (opts.task) {
      data = (await loadTask(opts.task)).test;
      where = `the ${opts.task} test split`;
    } else {
      data = await readTextExamples(opts.data, { textColumn: opts.textColumn, labelColumn: opts.labelColumn });
      where = opts.data;
    }
    const classifier = await TextClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
    try {
      const report = await classifier.evaluateAsync(data, where);
      if (opts.json) out(JSON.stringify({ ...report, skipped: data.skipped, model: opts.model, data: opts.task ? `task:${opts.task}` : opts.data }));
      else {
        if (data.skipped) out(`skipped ${data.skipped} rows without text or label`);
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
    .option('--text-column <name>', 'column (or JSONL field) holding the text, for --file', 'text')
    .option('--allow-network', 'allow downloading the model\'s Hub tokenizer if its folder lacks one')
    .option('--json', 'print a JSON array: {text, label, score, probabilities} per text; for a token classifier, a list per text of {word, entity, score, index, start, end} (transformers.js\'s shape)')
    .addHelpText('after', `
A token classifier prints a line per word (word, tag, probability) and a blank line after each text.
Examples:
  revcol predict --model runs/spam "WIN a FREE cruise, click now!" "Meeting moved to 3pm"
  revcol predict --model runs/topics --file new.csv --json
  revcol predict --model runs/ner "EU rejects German call to boycott British lamb." --json`);
  addBackendOption(predictCmd);
  predictCmd.action(async (texts: string[], opts) => {
    if (texts.length && opts.file) fail('give texts as arguments or --file FILE, not both');
    if (await isTokenModel(opts.model)) {
      const inputs = opts.file ? await readTokenPredictFile(opts.file, () => readPredictFile(opts.file, opts.textColumn)) : texts;
      if (!inputs.length) fail('nothing to tag: give texts as arguments or --file FILE');
      await backendFromOptions(opts);
      await predictTokensCommand(inputs, opts);
      return;
    }
    let list = texts;
    if (opts.file) list = await readPredictFile(opts.file, opts.textColumn);
    if (!list.length) fail('nothing to classify: give texts as arguments or --file FILE');
    warnEmptyTexts(list);
    await backendFromOptions(opts);
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
  if (/\.(csv|tsv|tab|jsonl|ndjson)$/i.test(file)) {
    return (await readTextExamples(file, { textColumn, requireLabels: false })).texts;
  }
  return readTextLines(file);
}
