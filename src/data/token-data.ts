/**
 * Word-level tagged data for token classification (part-of-speech tagging, named entities):
 * CoNLL-style column files and JSONL rows of tokens and tags, streamed line by line.
 *
 * CoNLL: one word per line, its columns separated by a tab (or, on lines without a tab, by
 * spaces); the word is the first column, the tag the last (or `tagColumn`); a blank line ends a
 * sentence; `-DOCSTART-` lines are skipped.
 *
 *   EU      B-ORG
 *   rejects O
 *
 * JSONL: one sentence per line, `{"tokens": [...], "tags": [...]}`; Hugging Face's `ner_tags`,
 * `pos_tags` (and `chunk_tags`) are read too, numeric tags through a list of tag names.
 */
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fail, RevcolError } from '../core/errors.js';
import { openUserFile, writeFileAtomic } from '../io/atomic.js';

export type TokenFileFormat = 'conll' | 'jsonl';

/** Tagged (or, for prediction, untagged) sentences read from a file. */
export interface TokenExamples {
  /** The words of each sentence. */
  sentences: string[][];
  /** Each sentence's tags, one per word; empty when tags were not required and the file has none. */
  tags: string[][];
  /** The line (from 1) each sentence starts on; in CoNLL word i of a sentence is on line `lines[s] + i`. */
  lines: number[];
  /** Where the sentences came from (a path, or a description such as a built-in task's split). */
  source: string;
  format: TokenFileFormat;
  /** JSONL rows left out because they have no tokens. */
  skipped: number;
}

export interface ReadTokenOptions {
  /** Default: by extension (.jsonl/.ndjson/.json: JSONL; .conll/.iob/.bio/.tsv/.txt…: CoNLL), else by content. */
  format?: TokenFileFormat;
  /**
   * CoNLL: the column holding the tag, counted from 0 (the word is column 0); negative counts from
   * the end. Default -1, the last column (CoNLL-2003's NER tag; its POS tag is column 1).
   */
  tagColumn?: number;
  /** JSONL: the field holding the words (default "tokens", else "words"). */
  tokensField?: string;
  /** JSONL: the field holding the tags (default the first of "tags", "ner_tags", "pos_tags", "chunk_tags" a row has). */
  tagsField?: string;
  /** Names of numeric tags, in order: tag i is tagNames[i] (Hugging Face data sets store ner_tags as such indices). */
  tagNames?: string[];
  /** Default true. With false (prediction), words are read and tags, where present, are ignored. */
  requireTags?: boolean;
}

/** JSONL fields read as the words, and as the tags, in order of preference. */
export const TOKENS_FIELDS = ['tokens', 'words'] as const;
export const TAGS_FIELDS = ['tags', 'ner_tags', 'pos_tags', 'chunk_tags'] as const;

const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson', '.json']);
const CONLL_EXTENSIONS = new Set(['.conll', '.iob', '.iob2', '.bio', '.bioes', '.tsv', '.tab', '.txt', '.tags']);

/** Picks the format from the file name, or from the first non-blank line when the name does not say. */
export function detectTokenFormat(file: string, head: string): TokenFileFormat {
  const ext = path.extname(file).toLowerCase();
  if (JSONL_EXTENSIONS.has(ext)) return 'jsonl';
  if (CONLL_EXTENSIONS.has(ext)) return 'conll';
  const first = head.replace(/^\uFEFF/, '').trimStart();
  return first.startsWith('{') ? 'jsonl' : 'conll';
}

const DOCSTART = /^-DOCSTART-(\s|$)/;

/** The columns of one CoNLL line: split at tabs when it has any, else at runs of spaces. */
function conllColumns(line: string): string[] {
  const trimmed = line.trim();
  return line.includes('\t') ? trimmed.split('\t').map((c) => c.trim()) : trimmed.split(/\s+/);
}

/** Streams a file's lines with their numbers (from 1; a UTF-8 BOM dropped). */
async function* numberedLines(file: string): AsyncGenerator<[string, number]> {
  const handle = await openUserFile(file);
  const source = handle.createReadStream();
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const raw of lines) {
      n++;
      yield [n === 1 ? raw.replace(/^\uFEFF/, '') : raw, n];
    }
  } finally {
    lines.close();
    source.destroy();
  }
}

async function readConll(file: string, o: ReadTokenOptions, out: TokenExamples): Promise<void> {
  const tagColumn = o.tagColumn ?? -1;
  if (!Number.isInteger(tagColumn) || tagColumn === 0) {
    fail(`the tag column must be a whole number other than 0 (column 0 is the word; -1, the default, is the last column), got ${tagColumn}`);
  }
  const requireTags = o.requireTags ?? true;
  let words: string[] = [];
  let tags: string[] = [];
  let start = 0;
  const end = () => {
    if (words.length) {
      out.sentences.push(words);
      if (requireTags) out.tags.push(tags);
      out.lines.push(start);
    }
    words = [];
    tags = [];
  };
  for await (const [line, n] of numberedLines(file)) {
    if (line.trim() === '') {
      end();
      continue;
    }
    if (DOCSTART.test(line.trim())) {
      end();
      continue;
    }
    const cols = conllColumns(line);
    const word = cols[0]!;
    if (word === '') fail(`${file}: line ${n} has no word before its tab; a CoNLL line is the word, then its tag`);
    if (requireTags) {
      if (cols.length < 2) {
        fail(`${file}: line ${n} has a word but no tag (${JSON.stringify(word)}); a CoNLL line is the word and its tag separated by a tab or spaces, with a blank line between sentences`);
      }
      const at = tagColumn < 0 ? cols.length + tagColumn : tagColumn;
      if (at < 1 || at >= cols.length) {
        fail(`${file}: line ${n} has ${cols.length} columns, no column ${tagColumn}; choose the tag column (counted from 0, the word; -1 is the last)`);
      }
      const tag = cols[at]!;
      if (tag === '') fail(`${file}: line ${n} has an empty tag for ${JSON.stringify(word)}; every word needs a tag`);
      tags.push(tag);
    }
    if (words.length === 0) start = n;
    words.push(word);
  }
  end();
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

async function readJsonl(file: string, o: ReadTokenOptions, out: TokenExamples): Promise<void> {
  const requireTags = o.requireTags ?? true;
  const names = o.tagNames;
  if (names !== undefined && (!Array.isArray(names) || names.length === 0 || names.some((t) => typeof t !== 'string' || t === ''))) {
    fail('the tag names must be a non-empty list of non-empty strings, in the order of the numeric tags');
  }
  for await (const [line, n] of numberedLines(file)) {
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      fail(`${file}: line ${n} is not valid JSON (${(err as Error).message.split('\n')[0]}); JSONL needs one object per line, like {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      fail(`${file}: line ${n} is not a JSON object; JSONL needs one object per line, like {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}`);
    }
    const obj = row as Record<string, unknown>;
    const tokensKey = o.tokensField ?? TOKENS_FIELDS.find((k) => k in obj);
    if (tokensKey === undefined || !(tokensKey in obj)) {
      fail(`${file}: line ${n} has no ${o.tokensField ? JSON.stringify(o.tokensField) : '"tokens"'} field (fields: ${Object.keys(obj).map((k) => JSON.stringify(k)).join(', ') || 'none'}); name the field of the words`);
    }
    const tokens = obj[tokensKey];
    if (!Array.isArray(tokens)) fail(`${file}: line ${n}: ${JSON.stringify(tokensKey)} must be an array of words, got ${describe(tokens)}`);
    const words = tokens.map((t, i) => {
      if (typeof t === 'string' && t.trim() !== '') return t;
      if (typeof t === 'number') return String(t);
      fail(`${file}: line ${n}: word ${i} of ${JSON.stringify(tokensKey)} is ${describe(t)}, not a non-empty string`);
    });
    if (words.length === 0) {
      out.skipped++;
      continue;
    }
    if (requireTags) {
      const tagsKey = o.tagsField ?? TAGS_FIELDS.find((k) => k in obj);
      if (tagsKey === undefined || !(tagsKey in obj)) {
        fail(`${file}: line ${n} has no ${o.tagsField ? JSON.stringify(o.tagsField) : '"tags" (or "ner_tags", "pos_tags")'} field (fields: ${Object.keys(obj).map((k) => JSON.stringify(k)).join(', ')}); name the field of the tags`);
      }
      const raw = obj[tagsKey];
      if (!Array.isArray(raw)) fail(`${file}: line ${n}: ${JSON.stringify(tagsKey)} must be an array of tags, got ${describe(raw)}`);
      if (raw.length !== words.length) {
        fail(`${file}: line ${n} has ${words.length} tokens but ${raw.length} tags in ${JSON.stringify(tagsKey)}; give one tag per token`);
      }
      const tags = raw.map((t, i) => {
        if (typeof t === 'string' && t !== '') return t;
        if (typeof t === 'number') {
          if (!names) {
            fail(`${file}: line ${n} has numeric tags (${JSON.stringify(tagsKey)}: ${describe(raw)}); give the tag names in order (tag 0 is the first name), or write the tags as strings`);
          }
          if (!Number.isInteger(t) || t < 0 || t >= names.length) {
            fail(`${file}: line ${n}: tag ${t} (token ${i}) has no name: the ${names.length} tag names cover 0..${names.length - 1}`);
          }
          return names[t]!;
        }
        fail(`${file}: line ${n}: tag ${i} in ${JSON.stringify(tagsKey)} is ${describe(t)}, not a tag name or number`);
      });
      out.tags.push(tags);
    }
    out.sentences.push(words);
    out.lines.push(n);
  }
}

/**
 * Reads tagged sentences from a CoNLL or JSONL file, streaming it (only words and tags are
 * kept). Problems are one-line errors naming the file and line: a CoNLL word without a tag, a
 * JSONL row whose token and tag arrays differ in length, numeric tags without names, an empty
 * file.
 */
export async function readTokenExamples(file: string, options: ReadTokenOptions = {}): Promise<TokenExamples> {
  let format = options.format;
  if (format !== undefined && format !== 'conll' && format !== 'jsonl') fail(`unknown token data format ${JSON.stringify(format)}: use conll or jsonl`);
  if (format === undefined) {
    // The first non-blank line decides when the extension does not.
    let head = '';
    if (!JSONL_EXTENSIONS.has(path.extname(file).toLowerCase()) && !CONLL_EXTENSIONS.has(path.extname(file).toLowerCase())) {
      for await (const [line] of numberedLines(file)) {
        if (line.trim() !== '') {
          head = line;
          break;
        }
      }
    } else {
      await (await openUserFile(file)).close(); // a missing file or a folder: one line now
    }
    format = detectTokenFormat(file, head);
  }
  const out: TokenExamples = { sentences: [], tags: [], lines: [], source: file, format, skipped: 0 };
  try {
    if (format === 'jsonl') await readJsonl(file, options, out);
    else await readConll(file, options, out);
  } catch (err) {
    if (err instanceof RevcolError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    fail(`cannot read ${file}: ${code ?? (err as Error).message.split('\n')[0]}`);
  }
  if (out.sentences.length === 0) {
    fail(format === 'jsonl'
      ? `${file} is empty: it needs one JSON object per line with the words and their tags, like {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}`
      : `${file} is empty: it needs one word and its tag per line (separated by a tab), with a blank line between sentences`);
  }
  return out;
}

/** The line a word came from (CoNLL: its own line; JSONL: its sentence's row). */
export function wordLine(examples: TokenExamples, sentence: number, word: number): number {
  const start = examples.lines[sentence] ?? 0;
  return examples.format === 'conll' ? start + word : start;
}

/** Sentences as CoNLL text: `word<TAB>tag` lines, a blank line after each sentence. */
export function toConll(sentences: string[][], tags: string[][]): string {
  const parts: string[] = [];
  sentences.forEach((words, s) => {
    const t = tags[s]!;
    if (t.length !== words.length) throw new Error(`sentence ${s} has ${words.length} words but ${t.length} tags`);
    for (let i = 0; i < words.length; i++) {
      if (/[\t\n\r]/.test(words[i]!) || /[\s]/.test(t[i]!)) throw new Error(`sentence ${s}, word ${i}: CoNLL words may not hold tabs or line breaks, nor tags blanks`);
      parts.push(`${words[i]}\t${t[i]}\n`);
    }
    parts.push('\n');
  });
  return parts.join('');
}

/** Writes sentences and tags as a CoNLL file (atomically). */
export async function writeConll(file: string, sentences: string[][], tags: string[][]): Promise<void> {
  await writeFileAtomic(file, toConll(sentences, tags));
}
