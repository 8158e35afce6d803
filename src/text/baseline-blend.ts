/**
 * A fine-tuned classifier's class probabilities mixed with those of a TF-IDF + logistic
 * regression model trained on the same texts: (1 − w)·model + w·baseline. The two make
 * different mistakes (the transformer reads word order and sub-words; the linear model weighs
 * every word and bigram of the whole text, however long), so their mix is often better than
 * either. `fine-tune --baseline-weight w` trains the baseline after the model and writes it
 * beside the model as baseline-blend.json; TextClassifier.load applies it whenever it is there.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readOptionalJson } from '../io/optional-json.js';
import { BaselineModel } from './baseline.js';

export const BLEND_FILE = 'baseline-blend.json';
const FORMAT = 'revcol-baseline-blend';

export interface BaselineBlend {
  /** The baseline's share of the mixed probabilities, in (0, 1). */
  weight: number;
  baseline: BaselineModel;
}

/** A blend weight as a user gives it: 0 (none) up to, not including, 1 (the baseline alone). */
export function checkBlendWeight(weight: number, flag: string): number {
  if (!(typeof weight === 'number' && weight >= 0 && weight < 1)) fail(`${flag} must be at least 0 and less than 1 (the baseline's share of the mixed probabilities; 0: no baseline), got ${weight}`);
  return weight;
}

/** The blend stored in a model folder, or null when it has none. */
export async function readBaselineBlend(dir: string): Promise<BaselineBlend | null> {
  const file = path.join(dir, BLEND_FILE);
  const json = (await readOptionalJson(file, `the folder is damaged; train it again, or delete ${BLEND_FILE} to use the model without its baseline`)) as { format?: unknown; weight?: unknown; baseline?: unknown } | null | undefined;
  if (json === undefined) return null;
  const weight = json?.weight;
  if (json?.format !== FORMAT || typeof weight !== 'number' || !(weight > 0 && weight < 1) || typeof json?.baseline !== 'object') {
    fail(`${file} is not a revcol baseline blend (format, weight, baseline): train the model again, or delete ${BLEND_FILE} to use it without its baseline`);
  }
  return { weight, baseline: BaselineModel.fromJSON(json.baseline as Parameters<typeof BaselineModel.fromJSON>[0]) };
}

export async function writeBaselineBlend(dir: string, blend: BaselineBlend): Promise<void> {
  await writeFileAtomic(path.join(dir, BLEND_FILE), JSON.stringify({ format: FORMAT, weight: blend.weight, baseline: blend.baseline.toJSON() }));
}

/** Removes a blend left by an earlier run in `dir`; says so when there was one. */
export async function removeStaleBlend(dir: string, log: (line: string) => void): Promise<void> {
  const removed = await fs.rm(path.join(dir, BLEND_FILE)).then(() => true, () => false);
  if (removed) log(`note: ${dir} held a baseline blend from an earlier run; its ${BLEND_FILE} is removed`);
}

/** The baseline's column for each of the model's labels; a label it never saw is an error. */
export function blendColumns(baseline: BaselineModel, labels: readonly string[], source: string): number[] {
  return labels.map((label) => {
    const c = baseline.labels.indexOf(label);
    if (c < 0) fail(`the baseline in ${source} has no label ${JSON.stringify(label)}: it does not belong to this model; train it again, or delete ${BLEND_FILE}`);
    return c;
  });
}

/**
 * (1 − w)·model + w·baseline, row-major [texts × labels], into `out` (a new array by default):
 * `rows` are the baseline's probabilities per text in its own label order, `columns` (blendColumns) map them.
 */
export function mixRows(model: Float32Array, rows: readonly Float64Array[], columns: readonly number[], w: number, out: Float32Array = new Float32Array(model.length)): Float32Array {
  const k = columns.length;
  rows.forEach((row, i) => {
    for (let c = 0; c < k; c++) out[i * k + c] = (1 - w) * model[i * k + c]! + w * row[columns[c]!]!;
  });
  return out;
}

/** (1 − w)·probs + w·baseline(texts), row-major [texts × labels], in place. */
export function mixBaseline(probs: Float32Array, texts: readonly string[], blend: BaselineBlend, columns: readonly number[]): Float32Array {
  return mixRows(probs, blend.baseline.probabilities(texts), columns, blend.weight, probs);
}
