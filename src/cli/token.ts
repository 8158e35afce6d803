/**
 * The token-classification side of `fine-tune`, `eval` and `predict` (a tag per word): which
 * data and which model folders are token classification, and the commands' work for them.
 * src/cli/text.ts registers the commands and hands over here.
 */
// Light at registration, as text.ts: the token classifier, checkpoints and readers are loaded
// inside the functions that use them.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { fail } from '../core/errors.js';
import { detectTokenFormat, readTokenExamples, type ReadTokenOptions, type TokenExamples, type TokenFileFormat, TOKENS_FIELDS } from '../data/token-data.js';
import { stoppableByCtrlC } from '../train/stop.js';
import { readEnsembleManifest } from '../text/ensemble-manifest.js';
import { TOKEN_CLASSIFICATION_OBJECTIVE } from '../text/model-meta.js';
import { taskKind, type TaskKind } from '../text/tasks.js';
import type { TokenEvaluationReport, TokenFineTuneOptions, TokenFineTuneResult, TokenPrediction } from '../text/token-classification.js';
import { givenOnCommandLine, optionsFromFlags } from './text-flags.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** Extensions that always mean tagged words, and always mean labelled texts. */
const TOKEN_EXTENSIONS = new Set(['.conll', '.conllu', '.iob', '.iob2', '.bio', '.bioes', '.tags']);
const TEXT_EXTENSIONS = new Set(['.csv']);
const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson', '.json']);
/** Bytes and lines looked at to tell CoNLL from a table. */
const SNIFF_BYTES = 64 * 1024;
const SNIFF_LINES = 200;

/** Where a data file's kind came from: its name, or its first lines. */
export interface DataKind {
  kind: TaskKind;
  /** For token data: CoNLL or JSONL (null when the file could not be read: the reader says why). */
  format: TokenFileFormat | null;
}

async function head(file: string): Promise<string | null> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(file, 'r');
    if ((await handle.stat()).isDirectory()) return null;
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '');
    // A cut last line would be judged half; drop it unless the file ended.
    return bytesRead < SNIFF_BYTES ? text : text.slice(0, Math.max(0, text.lastIndexOf('\n')));
  } catch {
    return null;
  } finally {
    await handle?.close();
  }
}

/** Whether a JSON object row holds a sentence's words: an array in the named field when it has it, else in tokens or words. */
function isTokenRow(line: string, field: string | undefined): boolean {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch {
    return false;
  }
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return false;
  const obj = row as Record<string, unknown>;
  if (field !== undefined && field in obj) return Array.isArray(obj[field]);
  return TOKENS_FIELDS.some((k) => Array.isArray(obj[k]));
}

/**
 * Lines that read as CoNLL: every line (of the first SNIFF_LINES that are not blank) splits
 * into the same number of columns, 2 to 12, and the first column, the word, is one word. A
 * table's rows have a text with spaces, or a header naming the text column (checked before).
 */
function looksLikeConll(lines: string[]): boolean {
  const rows = lines.filter((l) => l.trim() !== '').slice(0, SNIFF_LINES);
  if (rows.length === 0) return false;
  if (/^-DOCSTART-(\s|$)/.test(rows[0]!.trim())) return true;
  let width = -1;
  for (const line of rows) {
    const cols = line.includes('\t') ? line.trim().split('\t').map((c) => c.trim()) : line.trim().split(/\s+/);
    if (cols.length < 2 || cols.length > 12 || /\s/.test(cols[0]!) || cols[0] === '') return false;
    if (width >= 0 && cols.length !== width) return false;
    width = cols.length;
  }
  return true;
}

/**
 * Whether a training or evaluation file holds tagged words (token classification: CoNLL, or
 * JSONL rows of tokens and tags) or labelled texts (CSV, TSV, JSONL with a text and a label).
 * The extension decides where it can (.conll, .iob, .bio …: words; .csv: texts); else the
 * first lines: JSONL rows with a tokens (or words) array (or an array in the `textColumn`
 * field, when it is given), a -DOCSTART- line, or lines of a word and its tag(s) without a
 * header that names the text column.
 */
export async function detectDataKind(file: string, fields: { textColumn?: string } = {}): Promise<DataKind> {
  const ext = path.extname(file).toLowerCase();
  if (TOKEN_EXTENSIONS.has(ext)) return { kind: 'token-classification', format: 'conll' };
  if (TEXT_EXTENSIONS.has(ext)) return { kind: 'text-classification', format: null };
  const text = await head(file);
  if (text === null) return { kind: 'text-classification', format: null };
  const lines = text.split(/\r?\n/);
  const first = lines.find((l) => l.trim() !== '')?.trim() ?? '';
  if (JSONL_EXTENSIONS.has(ext) || first.startsWith('{')) {
    return isTokenRow(first, fields.textColumn) ? { kind: 'token-classification', format: 'jsonl' } : { kind: 'text-classification', format: null };
  }
  const header = first.split(first.includes('\t') ? '\t' : ',').map((c) => c.trim().replace(/^"|"$/g, '').toLowerCase());
  if (header.includes((fields.textColumn ?? 'text').toLowerCase())) return { kind: 'text-classification', format: null };
  return looksLikeConll(lines) ? { kind: 'token-classification', format: detectTokenFormat(file, first) } : { kind: 'text-classification', format: null };
}

/** Whether a model folder (or .safetensors file) holds a token classifier; problems are left to the loaders. */
export async function isTokenModel(dir: string): Promise<boolean> {
  try {
    if (await readEnsembleManifest(dir)) return false;
    const { readModelMeta } = await import('../train/checkpoint.js');
    return (await readModelMeta(dir)).meta.objective === TOKEN_CLASSIFICATION_OBJECTIVE;
  } catch {
    return false;
  }
}

/** `--tag-names`: comma-separated names, or a JSON array (for names holding commas). */
export function parseTagNames(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  let names: unknown;
  if (trimmed.startsWith('[')) {
    try {
      names = JSON.parse(trimmed);
    } catch (err) {
      fail(`--tag-names ${trimmed} is not a valid JSON array (${(err as Error).message.split('\n')[0]}); give names separated by commas, or a JSON array such as ["O","B-PER","I-PER"]`);
    }
  } else {
    names = trimmed.split(',').map((n) => n.trim());
  }
  if (!Array.isArray(names) || names.length < 2 || names.some((n) => typeof n !== 'string' || n === '')) {
    fail('--tag-names needs the names of the numeric tags in order, at least two and none empty: O,B-PER,I-PER (tag 0 is the first)');
  }
  return names as string[];
}

/** Options of fine-tune/eval/predict that choose how tagged words are read. */
interface TokenReadFlags {
  tagColumn?: number;
  tagNames?: string;
  textColumn?: string;
  labelColumn?: string;
}

/**
 * Reader options from the flags: --tag-column for CoNLL, --tag-names for numeric JSONL tags, and
 * --text-column/--label-column (when given on the command line) as the JSONL fields of the
 * words and the tags.
 */
function readOptions(opts: TokenReadFlags, cmd: Command): Pick<ReadTokenOptions, 'tagColumn' | 'tagNames' | 'tokensField' | 'tagsField'> {
  const given = (name: string) => givenOnCommandLine(cmd, name);
  return {
    ...(opts.tagColumn !== undefined ? { tagColumn: opts.tagColumn } : {}),
    ...(opts.tagNames !== undefined ? { tagNames: parseTagNames(opts.tagNames) } : {}),
    ...(given('textColumn') ? { tokensField: opts.textColumn } : {}),
    ...(given('labelColumn') ? { tagsField: opts.labelColumn } : {}),
  };
}

/** Flags of fine-tune that only text classification takes. */
const TEXT_ONLY_FLAGS: Array<[string, string]> = [
  ['ensemble', '--ensemble'],
  ['parallel', '--parallel'],
  ['collapseRuns', '--collapse-runs'],
  ['ema', '--ema'],
  ['inputMasking', '--input-masking'],
  ['pretrainEpochs', '--pretrain-epochs'],
  ['baselineWeight', '--baseline-weight'],
  ['truncation', '--truncation'],
  ['windows', '--windows'],
  ['windowPooling', '--window-pooling'],
  ['textPairColumn', '--text-pair-column'],
  ['multiLabel', '--multi-label'],
  ['labelSeparator', '--label-separator'],
];
/** Flags that only token classification takes. */
const TOKEN_ONLY_FLAGS: Array<[string, string]> = [
  ['tagColumn', '--tag-column'],
  ['tagNames', '--tag-names'],
  ['scoredPiece', '--scored-piece'],
  ['wordFeatures', '--word-features'],
  ['wordMinCount', '--word-min-count'],
  ['wordDropout', '--word-dropout'],
  ['wordContext', '--word-context'],
];

/**
 * What fine-tune trains: --task-type when given (checked against a --task's kind), else the
 * task's kind, else what --train holds. A flag of the other kind is a one-line error.
 */
export async function fineTuneKind(opts: Record<string, unknown>, cmd: Command): Promise<TaskKind> {
  const told = opts.taskType as TaskKind | undefined;
  let kind: TaskKind;
  let why: string;
  let detected = false;
  if (typeof opts.task === 'string') {
    kind = taskKind(opts.task);
    why = `task ${opts.task} ${kind === 'token-classification' ? 'tags words' : 'labels texts'}`;
    if (told && told !== kind) fail(`--task-type ${told} does not fit: ${why} (${kind}); leave out --task-type`);
  } else if (told) {
    kind = told;
    why = `--task-type ${told}`;
  } else if (typeof opts.train === 'string') {
    const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
    kind = (await detectDataKind(opts.train, { textColumn: given('textColumn') ? (opts.textColumn as string) : undefined })).kind;
    detected = true;
    why = kind === 'token-classification' ? `${opts.train} holds tagged words (token classification)` : `${opts.train} holds labelled texts (text classification)`;
  } else {
    return 'text-classification';
  }
  const wrong = kind === 'token-classification' ? TEXT_ONLY_FLAGS : TOKEN_ONLY_FLAGS;
  for (const [key, flag] of wrong) {
    if (opts[key] !== undefined) {
      fail(kind === 'token-classification'
        ? `${flag} is for text classification, and ${why}: leave out ${flag}`
        : `${flag} is for token classification (CoNLL or JSONL files of tagged words), and ${why}: leave out ${flag}${detected ? ', or give --task-type token-classification if the file holds tagged words' : ''}`);
    }
  }
  return kind;
}

// ---------------------------------------------------------------------------------------------
// fine-tune

function defaultTokenOut(opts: { task?: string; train?: string }): string {
  const base = opts.task ?? (opts.train ?? 'data').replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');
  return `runs/tokens-${base.replace(/[^\w.-]+/g, '_')}`;
}

/** `revcol fine-tune` on tagged words (or a token task): the library guards the folder; progress, summary. */
export async function fineTuneTokensCommand(opts: Record<string, any>, cmd: Command): Promise<TokenFineTuneResult> {
  const { fineTuneTokens } = await import('../text/token-classification.js');
  // The JSONL fields and tag names come from readOptions; the rest as the flags say.
  const options = {
    ...optionsFromFlags(cmd, opts, ['textColumn', 'labelColumn']),
    ...readOptions(opts, cmd),
    out: opts.out ?? defaultTokenOut(opts),
  } as TokenFineTuneOptions;
  const result = await stoppableByCtrlC((signal) => fineTuneTokens({ ...options, signal }));
  printTokenSummary(result);
  return result;
}

function printTokenSummary(r: TokenFineTuneResult): void {
  const s = r.summary;
  out(`model: ${r.preset ?? 'custom config'} (${r.config.columns} columns, widths ${r.config.hidden.join('/')}, blocks ${r.config.layers.join('/')}), token classification, tokenizer ${r.tokenizer}, max length ${r.maxLength}`);
  out(`training: ${r.sentences.train} sentences (${r.words.train} words), ${r.epochs} epochs, batch ${r.batchSize}, lr ${r.lr}; evaluation: ${r.sentences.eval} sentences (${r.words.eval} words)`);
  out(`tags (${r.tags.length}): ${r.tags.join(', ')}${r.scheme ? `; entity scheme ${r.scheme}` : ''}`);
  if (r.wordFeatures) out(`word features: ${r.wordFeatures.words} words (seen ${r.wordFeatures.minCount} or more times) and word shapes${r.wordFeatures.dropout ? `, word dropout ${r.wordFeatures.dropout}` : ''}${r.wordFeatures.context ? `, context window ${r.wordFeatures.context}` : ''}; vocabulary in ${r.outDir}/words.json`);
  out(`cut to ${r.maxLength} tokens: ${r.cut.sentences} of ${r.sentences.train} training sentences (${r.cut.words} words); ${r.splitEvalSentences} evaluation sentences tagged in several windows`);
  const last = s.epochs.find((e) => e.epoch === s.bestEpoch);
  const entity = last && typeof last.entityF1 === 'number' ? `, entity F1 ${last.entityF1.toFixed(4)}` : '';
  if (s.bestEpoch > 0) {
    out(`${r.keep === 'last' ? 'last epoch kept' : 'best epoch'}: ${s.bestEpoch} of ${s.epochs.length}, word accuracy ${pct(s.bestAccuracy)}${entity}; ${s.seconds.toFixed(1)} s`);
  }
  out(`saved: ${r.outDir}/best.safetensors (and last.ckpt.safetensors, metrics.jsonl, curves.png, curves.html); tag with: revcol predict --model ${r.outDir} "some text"`);
}

// ---------------------------------------------------------------------------------------------
// eval

/** `revcol eval` on a token classifier: word accuracy, per-tag and (entity tags) entity scores. */
export async function evalTokensCommand(opts: Record<string, any>, cmd: Command): Promise<void> {
  let data: TokenExamples;
  if (opts.task) {
    if (taskKind(opts.task) !== 'token-classification') {
      fail(`${opts.model} holds a token classifier (a tag per word), and task ${opts.task} labels texts: evaluate it on tagged words (--data FILE.conll, or a token task such as pos-brown)`);
    }
    const { loadTokenTask } = await import('../text/token-classification.js');
    data = (await loadTokenTask(opts.task)).test;
  } else {
    data = await readTokenExamples(opts.data, readOptions(opts, cmd));
  }
  const { TokenClassifier } = await import('../text/token-classification.js');
  const tagger = await TokenClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
  try {
    const report = await tagger.evaluate(data);
    if (opts.json) {
      out(JSON.stringify({ objective: TOKEN_CLASSIFICATION_OBJECTIVE, ...report, tags: [...tagger.tags.names], skipped: data.skipped, model: opts.model, data: opts.task ? `task:${opts.task}` : opts.data }));
    } else {
      if (data.skipped) out(`skipped ${data.skipped} rows without tokens`);
      printTokenReport(report);
    }
  } finally {
    tagger.dispose();
  }
}

function printTokenReport(r: TokenEvaluationReport): void {
  out(`word accuracy ${pct(r.accuracy)}  macro-F1 ${r.macroF1.toFixed(4)}  (${r.words} words in ${r.sentences} sentences, ${r.splitSentences} tagged in several windows)`);
  const table = (title: string, rows: Record<string, { precision: number; recall: number; f1: number; support: number }>) => {
    const names = Object.keys(rows);
    const width = Math.max(title.length, ...names.map((n) => n.length));
    out(`${title.padEnd(width)}  precision  recall  f1      support`);
    for (const name of names) {
      const c = rows[name]!;
      out(`${name.padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${c.recall.toFixed(4).padStart(6)}  ${c.f1.toFixed(4)}  ${String(c.support).padStart(7)}`);
    }
  };
  table('tag', r.perTag);
  if (r.entities) {
    const e = r.entities;
    out(`entities (${e.scheme}, exact spans): precision ${e.precision.toFixed(4)}  recall ${e.recall.toFixed(4)}  f1 ${e.f1.toFixed(4)}  (${e.correct} of ${e.gold} found, ${e.predicted} predicted)`);
    table('type', e.perType);
  }
}

// ---------------------------------------------------------------------------------------------
// predict

/**
 * Inputs of `predict --file` for a tagger: sentences already split into words from a CoNLL file
 * (by its extension: .conll, .iob, .bio …) or JSONL rows with tokens; else texts (a table's text
 * column, or a plain file's lines: a line of words is a text here, not a CoNLL row).
 */
export async function readTokenPredictFile(file: string, readTexts: () => Promise<string[]>): Promise<Array<string | string[]>> {
  const ext = path.extname(file).toLowerCase();
  let format: TokenFileFormat | null = TOKEN_EXTENSIONS.has(ext) ? 'conll' : null;
  if (!format && !TEXT_EXTENSIONS.has(ext)) {
    const text = await head(file);
    const first = text?.split(/\r?\n/).find((l) => l.trim() !== '')?.trim() ?? '';
    if (first.startsWith('{') && isTokenRow(first, undefined)) format = 'jsonl';
  }
  return format ? (await readTokenExamples(file, { format, requireTags: false })).sentences : readTexts();
}

/** `revcol predict` with a token classifier: each word and its tag (--json: transformers.js's shape, a list per text). */
export async function predictTokensCommand(list: Array<string | string[]>, opts: Record<string, any>): Promise<void> {
  const empty = list.flatMap((t, i) => ((typeof t === 'string' ? t.trim() === '' : t.length === 0) ? [i + 1] : []));
  if (empty.length) {
    const which = empty.length === 1 ? `text ${empty[0]} is empty` : `${empty.length} texts are empty (the first: text ${empty[0]})`;
    process.stderr.write(`revcol: warning: ${which}: it has no words to tag, and its result is an empty list\n`);
  }
  const { TokenClassifier } = await import('../text/token-classification.js');
  const tagger = await TokenClassifier.load(opts.model, { allowNetwork: opts.allowNetwork });
  try {
    const results: TokenPrediction[][] = await tagger.classify(list);
    if (opts.json) {
      out(JSON.stringify(results.map((words) => words.map(({ word, entity, score, index, start, end }) => ({ word, entity, score, index, start, end })))));
      return;
    }
    // CoNLL-like: a word, its tag and the tag's probability per line, a blank line after each text.
    results.forEach((words) => {
      for (const w of words) out(`${w.word}\t${w.entity}\t${w.score.toFixed(4)}`);
      out();
    });
  } finally {
    tagger.dispose();
  }
}
