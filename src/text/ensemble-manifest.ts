import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readOptionalJson } from '../io/optional-json.js';

/** The file that makes a fine-tune folder a seed ensemble: which member folders it averages. */
export const ENSEMBLE_FILE = 'ensemble.json';
const FORMAT = 'revcol-text-ensemble';

export interface EnsembleManifest {
  format: typeof FORMAT;
  /** Member folders, relative to the ensemble's folder. */
  members: string[];
  /** Each member's training seed. */
  seeds: number[];
  labels: string[];
  maxLength: number;
  /** The averaged model's scores on the evaluation set of the run. */
  eval?: { accuracy: number; macroF1: number; examples: number };
}

/** The ensemble manifest in `dir`, or null when `dir` is not an ensemble's folder. */
export async function readEnsembleManifest(dir: string): Promise<EnsembleManifest | null> {
  const file = path.join(dir, ENSEMBLE_FILE);
  // no manifest (or dir is a file): a single model
  const m = (await readOptionalJson(file, `the ensemble's folder is damaged; train it again, or delete ${ENSEMBLE_FILE} to load the folder's own single model`)) as Partial<EnsembleManifest> | null | undefined;
  if (m === undefined) return null;
  const ok = m?.format === FORMAT && Array.isArray(m.members) && m.members.length > 0 && m.members.every((x) => typeof x === 'string' && !path.isAbsolute(x) && !x.includes('..'));
  if (!ok) fail(`${file} is not a revcol ensemble manifest (format, members): train the ensemble again`);
  return m as EnsembleManifest;
}

export async function writeEnsembleManifest(dir: string, manifest: Omit<EnsembleManifest, 'format'>): Promise<void> {
  await writeFileAtomic(path.join(dir, ENSEMBLE_FILE), `${JSON.stringify({ format: FORMAT, ...manifest }, null, 2)}\n`);
}

/** A single-model run written into an ensemble's folder replaces it: the manifest goes, so the folder loads the new model. */
export async function removeStaleEnsemble(dir: string, log: (line: string) => void): Promise<void> {
  const file = path.join(dir, ENSEMBLE_FILE);
  const removed = await fs.rm(file).then(() => true, () => false);
  if (removed) log(`note: ${dir} held an ensemble; its ${ENSEMBLE_FILE} is removed so the folder loads this run's model (the member-* folders are left)`);
}
