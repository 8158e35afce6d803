import { readFile } from 'node:fs/promises';
import { fail } from '../core/errors.js';

/** The shape of a text RevCol: isotropic levels of transformer encoder blocks over one sequence. */
export interface TextConfig {
  /** Rows of the token embedding (the tokenizer's vocabulary size). */
  vocabSize: number;
  /** Longest sequence the learned positions cover. */
  maxLength: number;
  /** Width of each level; its length is the level count. */
  hidden: number[];
  /** Encoder blocks per level (in every column). */
  layers: number[];
  /** Attention heads in every block; must divide every level's width. */
  heads: number;
  /** MLP width = mlpRatio × level width. */
  mlpRatio: number;
  columns: number;
  /** Dropout on embeddings, attention and MLP outputs, and before the classifier. */
  dropout: number;
  /** Highest drop-path rate; rises linearly over the blocks of one column. */
  dropPath: number;
  /** How the head pools the top level: the first token ([CLS]) or the masked mean. */
  pooling: 'first' | 'mean';
  numLabels: number;
  /** Train with the memory-saving reversible backward (default) or plain autodiff. */
  reversible?: boolean;
  /** Reversible training keeps every k-th column's exact outputs to bound rebuild drift (RevColumns' anchorEvery; default 2). */
  anchorEvery?: number;
  /**
   * What the head predicts: absent, one label of numLabels (softmax); 'multi-label', any of
   * numLabels (a sigmoid each); 'regression', one number (numLabels 1, mean squared error).
   */
  problem?: 'multi-label' | 'regression';
  /** 2 when trained on sentence pairs: a segment embedding tells text a from text b. Absent: single texts. */
  segments?: number;
  /** Long texts read as windows: how a text's windows become one vector (absent: 'mean'). 'attention' adds head.windowScore. */
  windowPooling?: WindowPooling;
  /**
   * Token classification with word features: rows of the word embedding (the model's word
   * vocabulary, words.json in its folder, plus row 0 for special tokens and padding and row 1
   * for unknown words) and of the word-shape embedding. Both set or both absent (no word features).
   */
  words?: number;
  wordShapes?: number;
  /** With word features: each token also reads its neighbours' embeddings up to this many tokens each way (absent: none). */
  wordContext?: number;
}

export const WINDOW_POOLINGS = ['mean', 'max', 'attention'] as const;
export type WindowPooling = (typeof WINDOW_POOLINGS)[number];

export type TextPreset = Omit<TextConfig, 'vocabSize' | 'numLabels'>;

/**
 * Built-in sizes. text-micro is for smoke tests and tiny data sets; text-tiny trains in minutes
 * on two CPU cores; text-base matches BERT-base in width, heads, total depth and parameters
 * (~110M with a 30k vocabulary).
 */
export const TEXT_PRESETS: Record<string, TextPreset> = {
  'text-micro': { maxLength: 128, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0.1, dropPath: 0, pooling: 'mean' },
  'text-tiny': { maxLength: 256, hidden: [32, 32], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0.1, dropPath: 0, pooling: 'mean' },
  'text-small': { maxLength: 512, hidden: [128, 128], layers: [2, 2], heads: 4, mlpRatio: 4, columns: 2, dropout: 0.1, dropPath: 0.1, pooling: 'mean' },
  'text-medium': { maxLength: 512, hidden: [384, 384, 384], layers: [2, 2, 2], heads: 6, mlpRatio: 4, columns: 2, dropout: 0.1, dropPath: 0.1, pooling: 'first' },
  'text-base': { maxLength: 512, hidden: [768, 768], layers: [3, 3], heads: 12, mlpRatio: 4, columns: 2, dropout: 0.1, dropPath: 0.1, pooling: 'first' },
};

export function presetNames(): string[] {
  return Object.keys(TEXT_PRESETS);
}

/** A preset by name; an unknown one is a one-line error (`optionName`: how it names the config option). */
export function getPreset(name: string, optionName: (option: string) => string = (o) => o): TextPreset {
  const preset = TEXT_PRESETS[name];
  if (!preset) fail(`unknown text preset '${name}': choose one of ${presetNames().join(', ')}, or give a config file (${optionName('config')})`);
  return structuredClone(preset);
}

/** A preset that suits a training set of `examples` texts: small data wants a small model. */
export function presetForDataSize(examples: number): string {
  if (examples < 1000) return 'text-micro';
  if (examples < 50_000) return 'text-tiny';
  return 'text-small';
}

const CONFIG_KEYS = ['vocabSize', 'maxLength', 'hidden', 'layers', 'heads', 'mlpRatio', 'columns', 'dropout', 'dropPath', 'pooling', 'numLabels', 'reversible', 'anchorEvery'];

/**
 * Reads a config from JSON: a full or partial TextConfig, optionally naming a `preset` to start
 * from (`{"preset": "text-tiny", "columns": 4}`). vocabSize and numLabels come from the tokenizer
 * and data when left out.
 */
export async function readConfigFile(file: string): Promise<Partial<TextConfig>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    fail(`cannot read config file ${file}: check the path`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(`config file ${file} is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const obj = configObject(raw, `config file ${file}`, true);
  const base = typeof obj.preset === 'string' ? getPreset(obj.preset) : {};
  const { preset: _preset, ...rest } = obj;
  return { ...base, ...(rest as Partial<TextConfig>) };
}

/**
 * A JSON value as a partial config: an object whose keys are TextConfig fields (and `preset`
 * when allowed); anything else is a one-line error naming `where`. Values are checked later,
 * by validateConfig on the full config.
 */
export function configObject(raw: unknown, where: string, allowPreset = false): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(`${where} must hold a JSON object`);
  const obj = raw as Record<string, unknown>;
  const allowed = allowPreset ? ['preset', ...CONFIG_KEYS] : CONFIG_KEYS;
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (unknown.length) fail(`${where} has unknown keys ${unknown.join(', ')}: allowed are ${allowed.join(', ')}`);
  return obj;
}

/** Checks a full config; every problem is a one-line RevcolError naming the field. */
export function validateConfig(config: TextConfig): TextConfig {
  const whole = (name: string, v: unknown, min = 1): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(`text config: ${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`);
  };
  const rate = (name: string, v: unknown): void => {
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) fail(`text config: ${name} must be a number in [0, 1), got ${JSON.stringify(v)}`);
  };
  whole('vocabSize', config.vocabSize);
  whole('maxLength', config.maxLength);
  whole('heads', config.heads);
  whole('columns', config.columns);
  if (config.problem !== undefined && config.problem !== 'multi-label' && config.problem !== 'regression') fail(`text config: problem must be "multi-label" or "regression" when set, got ${JSON.stringify(config.problem)}`);
  if (config.problem === 'regression' && config.numLabels !== 1) fail(`text config: a regression model has numLabels 1, got ${JSON.stringify(config.numLabels)}`);
  whole('numLabels', config.numLabels, config.problem === 'regression' ? 1 : 2);
  if (config.segments !== undefined && config.segments !== 2) fail(`text config: segments must be 2 (sentence pairs) when set, got ${JSON.stringify(config.segments)}`);
  if (config.anchorEvery !== undefined) whole('anchorEvery', config.anchorEvery, 0);
  if ((config.words === undefined) !== (config.wordShapes === undefined)) fail(`text config: words and wordShapes go together (word features), got words ${JSON.stringify(config.words)} and wordShapes ${JSON.stringify(config.wordShapes)}`);
  if (config.words !== undefined) whole('words', config.words, 2);
  if (config.wordShapes !== undefined) whole('wordShapes', config.wordShapes, 2);
  if (config.wordContext !== undefined) {
    whole('wordContext', config.wordContext);
    if (config.words === undefined) fail('text config: wordContext needs word features (words and wordShapes)');
  }
  if (config.windowPooling !== undefined && !(WINDOW_POOLINGS as readonly unknown[]).includes(config.windowPooling)) {
    fail(`text config: windowPooling must be ${WINDOW_POOLINGS.join(', ')} when set, got ${JSON.stringify(config.windowPooling)}`);
  }
  if (typeof config.mlpRatio !== 'number' || !(config.mlpRatio > 0)) fail(`text config: mlpRatio must be a number > 0, got ${JSON.stringify(config.mlpRatio)}`);
  rate('dropout', config.dropout);
  rate('dropPath', config.dropPath);
  if (config.pooling !== 'first' && config.pooling !== 'mean') fail(`text config: pooling must be "first" or "mean", got ${JSON.stringify(config.pooling)}`);
  if (!Array.isArray(config.hidden) || config.hidden.length < 1) fail('text config: hidden must list one width per level, e.g. [128, 128]');
  if (!Array.isArray(config.layers) || config.layers.length !== config.hidden.length) {
    fail(`text config: layers must list one block count per level (${config.hidden.length} levels in hidden), got ${JSON.stringify(config.layers)}`);
  }
  config.hidden.forEach((h, l) => {
    whole(`hidden[${l}]`, h);
    if (h % config.heads !== 0) fail(`text config: hidden[${l}] = ${h} is not divisible by heads = ${config.heads}: make every width a multiple of the head count`);
  });
  config.layers.forEach((n, l) => whole(`layers[${l}]`, n));
  return config;
}
