/**
 * One-line inference over a trained model's folder, shaped as transformers.js's pipelines:
 *
 *   const classify = await pipeline('text-classification', 'runs/spam');
 *   await classify('WIN a FREE prize now');   // [{ label: 'spam', score: 0.98 }]
 *   classify.dispose();
 *
 * Each task wraps the family's own class (TextClassifier, TokenClassifier, ImageClassifier,
 * MaskFiller); this file only shapes inputs and results, so it sits above both families.
 */
import { fail } from './core/errors.js';
import { readModelMeta } from './train/checkpoint.js';
import { MaskFiller, type FillMaskCandidate } from './text/fill-mask.js';
import { TextClassifier } from './text/classifier.js';
import { MultiLabelClassifier, TextRegressor } from './text/text-heads.js';
import { TokenClassifier, type TokenPrediction } from './text/token-classification.js';
import { ImageClassifier } from './vision/classifier.js';

/** The tasks, with transformers.js's aliases ('sentiment-analysis', 'ner'). */
export const PIPELINE_TASKS = ['text-classification', 'sentiment-analysis', 'token-classification', 'ner', 'image-classification', 'fill-mask'] as const;
export type PipelineTask = (typeof PIPELINE_TASKS)[number];

export interface PipelineOptions {
  /** The tfjs backend to run on (default: auto, or the one already chosen). */
  backend?: string;
  /** Allow fetching a Hub tokenizer the model folder names but does not hold. */
  allowNetwork?: boolean;
}

/** A label and its probability. */
export interface LabelScore {
  label: string;
  score: number;
}

interface Disposable {
  readonly task: PipelineTask;
  /** Frees the model's weights; the pipeline cannot be called afterwards. */
  dispose(): void;
}

/** A sentence pair for a model fine-tuned on pairs (--text-pair-column), as Hugging Face writes it. */
export interface TextPair {
  text: string;
  text_pair: string;
}

/**
 * Text or image classification: one input gives its top `topK` labels (default 1), best first;
 * a list gives one best label per input, or with `topK` above 1 a list per input. A multi-label
 * model gives, without `topK`, every label at or above its tuned threshold (maybe none); a
 * regression model gives one entry whose score is the predicted number (label 'value').
 */
export interface ClassificationPipeline<Input> extends Disposable {
  (input: Input, options?: { topK?: number }): Promise<LabelScore[]>;
  (inputs: Input[], options?: { topK?: number }): Promise<LabelScore[] | LabelScore[][]>;
}

/**
 * A tag per word of a text (or a list of texts: a list per text). Words whose tag is in
 * `ignoreLabels` (default ['O'], outside any entity) are left out, as transformers.js does.
 */
export interface TokenClassificationPipeline extends Disposable {
  (text: string, options?: { ignoreLabels?: string[] }): Promise<TokenPrediction[]>;
  (texts: string[], options?: { ignoreLabels?: string[] }): Promise<TokenPrediction[][]>;
}

/** The `topK` (default 5) tokens most likely at the one mask token of a text (a list per text for a list). */
export interface FillMaskPipeline extends Disposable {
  (text: string, options?: { topK?: number }): Promise<FillMaskCandidate[]>;
  (texts: string[], options?: { topK?: number }): Promise<FillMaskCandidate[][]>;
}

export function pipeline(task: 'text-classification' | 'sentiment-analysis', model: string, options?: PipelineOptions): Promise<ClassificationPipeline<string | TextPair>>;
export function pipeline(task: 'image-classification', model: string, options?: PipelineOptions): Promise<ClassificationPipeline<string>>;
export function pipeline(task: 'token-classification' | 'ner', model: string, options?: PipelineOptions): Promise<TokenClassificationPipeline>;
export function pipeline(task: 'fill-mask', model: string, options?: PipelineOptions): Promise<FillMaskPipeline>;
export function pipeline(task: PipelineTask, model: string, options?: PipelineOptions): Promise<ClassificationPipeline<string | TextPair> | ClassificationPipeline<string> | TokenClassificationPipeline | FillMaskPipeline>;
/** A pipeline for `task` over the model folder `model` (a fine-tune, token fine-tune, vision train or pretrain output). */
export async function pipeline(task: PipelineTask, model: string, options: PipelineOptions = {}): Promise<ClassificationPipeline<string | TextPair> | ClassificationPipeline<string> | TokenClassificationPipeline | FillMaskPipeline> {
  if (!(PIPELINE_TASKS as readonly string[]).includes(task)) fail(`unknown pipeline task '${String(task)}': choose one of ${PIPELINE_TASKS.join(', ')}`);
  if (typeof model !== 'string' || !model) fail(`pipeline('${task}', model) needs the folder of a trained model`);
  const load = { backend: options.backend, allowNetwork: options.allowNetwork };
  switch (task) {
    case 'text-classification':
    case 'sentiment-analysis': {
      // The head decides the loader: one label, several labels, or a number per text.
      const problem = await textProblem(model);
      if (problem === 'regression') {
        const regressor = await TextRegressor.load(model, load);
        return classification<string | TextPair, TextInputs>(task, regressor, textInputs, async ({ texts, pairs }) => (await regressor.predict(texts, pairs)).map((value) => [{ label: 'value', score: value }]));
      }
      if (problem === 'multi-label') {
        const classifier = await MultiLabelClassifier.load(model, load);
        // Without topK, the labels at or above the threshold: any number per text, so a list each.
        return classification<string | TextPair, TextInputs>(task, classifier, textInputs, async ({ texts, pairs }, topK) => (await classifier.classify(texts, pairs)).map((r) => (topK === undefined ? r.labels : topLabels(r.probabilities, topK))), (topK) => topK === 1);
      }
      const classifier = await TextClassifier.load(model, load);
      return classification<string | TextPair, TextInputs>(task, classifier, textInputs, async ({ texts, pairs }, topK) => (await classifier.classify(texts, pairs)).map((r) => topLabels(r.probabilities, topK ?? 1)));
    }
    case 'image-classification': {
      const classifier = await ImageClassifier.load(model, { backend: options.backend });
      return classification<string, string[]>(task, classifier, inputList, async (paths, topK) => classifier.classify(paths, { topK: topK ?? 1 }));
    }
    case 'token-classification':
    case 'ner': {
      const tagger = await TokenClassifier.load(model, load);
      const run = async (input: string | string[], o: { ignoreLabels?: string[] } = {}) => {
        const ignore = new Set(o.ignoreLabels ?? ['O']);
        const tagged = (await tagger.classify(inputList(input))).map((words) => words.filter((w) => !ignore.has(w.entity)));
        return Array.isArray(input) ? tagged : tagged[0]!;
      };
      return callable(task, run, tagger) as TokenClassificationPipeline;
    }
    case 'fill-mask': {
      const filler = await MaskFiller.load(model, load);
      const run = async (input: string | string[], o: { topK?: number } = {}) => {
        const filled = await filler.fill(inputList(input), { topK: o.topK ?? 5 });
        return Array.isArray(input) ? filled : filled[0]!;
      };
      return callable(task, run, filler) as FillMaskPipeline;
    }
  }
}

/** The `topK` labels of a probability table, best first. */
function topLabels(probabilities: Record<string, number>, topK: number): LabelScore[] {
  return Object.entries(probabilities)
    .map(([label, score]) => ({ label, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, topK);
}

/** A text model folder's head: 'regression', 'multi-label', or undefined for one label per text (and ensembles). */
async function textProblem(dir: string): Promise<string | undefined> {
  const meta = await readModelMeta(dir).then((r) => r.meta, () => null);
  const config = meta?.config as { problem?: string } | undefined;
  return config?.problem;
}

/** Texts and, when every input is a {text, text_pair}, their second texts; a mix is an error. */
interface TextInputs {
  texts: string[];
  pairs?: string[];
}

function textInputs(input: unknown): TextInputs {
  const list = Array.isArray(input) ? input : [input];
  const isPair = (x: unknown): x is TextPair => typeof x === 'object' && x !== null && typeof (x as TextPair).text === 'string' && typeof (x as TextPair).text_pair === 'string';
  if (list.length > 0 && list.every(isPair)) return { texts: list.map((x) => x.text), pairs: list.map((x) => x.text_pair) };
  if (list.some((x) => typeof x !== 'string')) fail('text-classification input must be a string, a {text, text_pair} pair (a model trained on pairs), or a list of one kind');
  return { texts: list as string[] };
}

/**
 * A classification pipeline: `read` turns a call's input into what `classify` takes (texts and
 * pairs, or image paths); one input gives its list, a list of inputs one result each or a list
 * each, as `oneEach` says for the topK asked.
 */
function classification<Input, Read>(
  task: PipelineTask,
  model: { dispose(): void },
  read: (input: unknown) => Read,
  classify: (inputs: Read, topK: number | undefined) => Promise<LabelScore[][]>,
  oneEach: (topK: number | undefined) => boolean = (topK) => (topK ?? 1) === 1,
): ClassificationPipeline<Input> {
  const run = async (input: Input | Input[], o: { topK?: number } = {}) => {
    if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) fail(`topK must be a whole number ≥ 1, got ${o.topK}`);
    const results = await classify(read(input), o.topK);
    if (!Array.isArray(input)) return results[0]!;
    return oneEach(o.topK) ? results.map((r) => r[0]!) : results;
  };
  return callable(task, run, model) as ClassificationPipeline<Input>;
}

function inputList(input: unknown): string[] {
  const list = Array.isArray(input) ? input : [input];
  list.forEach((x, i) => {
    if (typeof x !== 'string') fail(`pipeline input ${Array.isArray(input) ? `${i} ` : ''}must be a string${Array.isArray(input) ? '' : ' or a list of strings'}`);
  });
  return list as string[];
}

/** A function with the task and dispose() on it; calls after dispose() are one-line errors. */
function callable<A extends unknown[], R>(task: PipelineTask, run: (...args: A) => Promise<R>, model: { dispose(): void }) {
  let disposed = false;
  const call = async (...args: A): Promise<R> => {
    if (disposed) fail(`this ${task} pipeline was disposed: create another with pipeline('${task}', ...)`);
    return run(...args);
  };
  return Object.assign(call, {
    task,
    dispose: () => {
      if (!disposed) model.dispose();
      disposed = true;
    },
  });
}
