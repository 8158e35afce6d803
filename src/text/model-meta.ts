/**
 * What a text model's folder records, shared by fine-tune, pre-training, token classification,
 * ensembles and the classifiers that load them. A small module of its own so that none of those
 * has to import another for a constant or a type (no import cycles). Light: the CLI reads its
 * constants at registration, so checkpoints and tokenizers are loaded only when used.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import type { TextConfig } from './presets.js';
import type { TextTokenizer } from './tokenizer.js';

/** What a masked-LM pre-training checkpoint records: a text model's columns without a classifier. */
export const MASKED_LM_OBJECTIVE = 'masked-lm';
/** Parameter-name prefix of the masked-LM head in a pre-training checkpoint. */
export const MASKED_LM_HEAD = 'mlm';
/** What a token classifier's checkpoint records as its objective. */
export const TOKEN_CLASSIFICATION_OBJECTIVE = 'token-classification';
/** The sub-folder of a fine-tune's output that holds its masked-LM pre-training (pretrainEpochs). */
export const PRETRAINED_DIR = 'pretrained';
/** A run's last checkpoint, which resume continues from. */
export const LAST_CHECKPOINT = 'last.ckpt.safetensors';

/** What a text model's folder records about it (the `meta` of its checkpoints). */
export interface TextModelMeta {
  family: 'text';
  config: TextConfig;
  labels: string[];
  /** Where the tokenizer came from; the model folder also keeps a copy of its files. */
  tokenizer: string;
  maxLength: number;
  preset?: string;
  task?: string;
  /** Runs of one repeated symbol were cut to this many characters before tokenizing (training and classifying alike). */
  collapseRuns?: number;
  /** Set on a pre-training checkpoint ('masked-lm'): columns without a classifier, to fine-tune from. */
  objective?: string;
  /** Regression: the training labels' mean and standard deviation; the head predicts (value - mean) / std. */
  target?: { mean: number; std: number };
  /** Multi-label: a label is predicted when its probability is at least this (tuned on the held-out data). */
  threshold?: number;
  /** Multi-label: what separated a text's labels in a cell of the training file (eval reads files the same way). */
  labelSeparator?: string;
  /** 'head+tail': a text too long kept its start and its end (see TextTokenizer.encodeHeadTail); absent: its start. Eval and predict cut the same way. */
  truncation?: 'head+tail';
  /** Long texts were read as up to this many overlapping windows, their pooled vectors averaged (see TextTokenizer.encodeWindows); absent: one. */
  windows?: number;
  /** Sentence pairs (config.segments): the column of the second text in training, which eval and predict read by default. */
  textPairColumn?: string;
}

/** What a text model's head does, in words and by class, for messages that send a user to the right one. */
export function headKind(meta: Pick<TextModelMeta, 'config'>): { what: string; loader: string } {
  const problem = meta.config.problem;
  if (problem === 'regression') return { what: 'a regression model (a number per text)', loader: 'TextRegressor' };
  if (problem === 'multi-label') return { what: 'a multi-label classifier (any number of labels per text)', loader: 'MultiLabelClassifier' };
  return { what: 'a text classifier (one label per text)', loader: 'TextClassifier' };
}

/** A text classifier's meta, or a one-line error saying what the folder holds instead. */
export function readTextMeta(meta: Record<string, unknown>, where: string): TextModelMeta {
  if (meta.family !== 'text') {
    fail(`${where} holds a ${meta.family === undefined ? 'model of unknown family' : `${String(meta.family)} model`}, not a text classifier: pass the output folder of a text fine-tune`);
  }
  if (meta.objective === TOKEN_CLASSIFICATION_OBJECTIVE) {
    fail(`${where} holds a token classifier (a tag per word), not a text classifier (one label per text): load it with TokenClassifier (revcol eval and predict tell the two apart), or pass a text fine-tune's folder`);
  }
  const m = meta as unknown as TextModelMeta;
  if (!m.config || !Array.isArray(m.labels) || typeof m.maxLength !== 'number') fail(`${where} lacks the text model's config, labels or maxLength: it may be damaged; train it again`);
  if (m.truncation !== undefined && m.truncation !== 'head+tail') fail(`${where} records truncation ${JSON.stringify(m.truncation)}, which this version of revcol does not know: upgrade revcol, or train it again`);
  if (m.windows !== undefined && !(Number.isInteger(m.windows) && m.windows >= 1)) fail(`${where} records windows ${JSON.stringify(m.windows)}, not a whole number ≥ 1: it may be damaged; train it again`);
  return m;
}

export function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A model folder's own copy of its tokenizer (beside the weights), else the source it recorded. */
export async function folderTokenizer(dir: string, recorded: string, allowNetwork?: boolean): Promise<TextTokenizer> {
  const { TextTokenizer } = await import('./tokenizer.js');
  const folder = existsSync(dir) && statSync(dir).isDirectory() ? dir : path.dirname(dir);
  if (existsSync(path.join(folder, 'tokenizer.json'))) return TextTokenizer.fromFolder(path.resolve(folder), recorded);
  return TextTokenizer.load(recorded, { allowNetwork });
}

/** The meta of the run in `out` that resume continues (its last checkpoint's header; no tensor read). */
export async function readResumeMeta(out: string, optionName: (option: string) => string = (o) => o): Promise<Record<string, unknown>> {
  const last = path.join(out, LAST_CHECKPOINT);
  if (!existsSync(last)) fail(`cannot resume: ${last} does not exist; run without ${optionName('resume')} to start a new run in ${out}`);
  const { readModelMeta } = await import('../train/checkpoint.js');
  return (await readModelMeta(last)).meta;
}
