import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { fail } from '../core/errors.js';
import { readUserFile, writeFileAtomic } from '../io/atomic.js';

/**
 * Trains WordPiece and byte-level BPE tokenizers and writes them as standard Hugging Face
 * tokenizer.json + tokenizer_config.json folders, which TextTokenizer (fine-tune / pretrain
 * --tokenizer DIR), @huggingface/tokenizers and @xenova/transformers load.
 *
 * No npm package trains tokenizers from Node with a chosen vocabulary size: the `tokenizers`
 * Node binding's train() takes only file names (its model's default trainer, 30,000 tokens, no
 * special tokens), so the trainers are here. Normalisation and pre-tokenisation are the
 * @huggingface/tokenizers classes that will encode with the result, so training counts exactly
 * the words the loaded tokenizer will see.
 *
 * Both trainers merge the most frequent adjacent pair of symbols within words until the
 * vocabulary is full (frequency-scored merges, as Hugging Face's WordPiece trainer also does).
 * Ties go to the pair with the smaller ids, left first; ids themselves come in a fixed order
 * (specials, alphabet by code point, then merges), so the same texts give the same files.
 */

export type TokenizerType = 'wordpiece' | 'bpe';
export const TOKENIZER_TYPES: readonly TokenizerType[] = ['wordpiece', 'bpe'];

/** Special tokens, in id order (0, 1, …): BERT's for WordPiece, RoBERTa's for byte-level BPE. */
export const WORDPIECE_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
export const BPE_SPECIALS = ['<s>', '<pad>', '</s>', '<unk>', '<mask>'] as const;

/** WordPiece encodes a longer word as [UNK] (the Hugging Face default), so training skips such words. */
const MAX_WORD_CHARS = 100;
const PREFIX = '##';
export const MAX_VOCAB_SIZE = 1_000_000;

export interface TokenizerTrainProgress {
  phase: 'read' | 'count' | 'merge';
  done: number;
  total: number;
}

export interface TrainTokenizerOptions {
  /** Plain-text files; every line is a text. */
  files?: string[];
  /** Texts given directly (with or beside files). */
  texts?: Iterable<string>;
  /** Size of the vocabulary, special tokens included. */
  vocabSize: number;
  /** Default wordpiece. */
  type?: TokenizerType;
  /** Lower-case (and, for WordPiece, strip accents) before counting and encoding. Default false. */
  lowercase?: boolean;
  /** A pair seen fewer times than this in the training texts is never merged. Default 2. */
  minFrequency?: number;
  /**
   * WordPiece: keep only the N most frequent characters (words with others become [UNK]). Default
   * 1000, as Hugging Face's BERT WordPiece trainer: mail and web text hold thousands of rare symbols.
   */
  limitAlphabet?: number;
  /** Write the folder here (see writeTrainedTokenizer). */
  out?: string;
  /** Replace the files of a non-empty `out`. */
  overwrite?: boolean;
  onProgress?: (p: TokenizerTrainProgress) => void;
}

export interface TrainedTokenizer {
  type: TokenizerType;
  /** Tokens in the vocabulary, special tokens included (may be below the asked size when the texts run out of pairs). */
  vocabSize: number;
  /** Tokens by id. */
  vocab: string[];
  /** Merges performed, in order, as "a b" (the BPE model's merges list). */
  merges: string[];
  /** Distinct words counted, and characters in the alphabet. */
  words: number;
  alphabet: number;
  /** Characters dropped by limitAlphabet (they encode as [UNK]). */
  droppedCharacters: number;
  tokenizerJson: Record<string, unknown>;
  configJson: Record<string, unknown>;
  seconds: number;
}

type Json = Record<string, unknown>;

/** GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest map to 256 + n. */
export function byteLevelAlphabet(): string[] {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

function addedToken(id: number, content: string): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function template(cls: string, sep: string, clsId: number, sepId: number, pairSeps: number): Json {
  const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const seq = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const betweenPair = Array.from({ length: pairSeps }, () => special(sep, 1));
  return {
    type: 'TemplateProcessing',
    single: [special(cls, 0), seq('A', 0), special(sep, 0)],
    pair: [special(cls, 0), seq('A', 0), special(sep, 0), ...betweenPair.slice(1), seq('B', 1), special(sep, 1)],
    special_tokens: {
      [cls]: { id: cls, ids: [clsId], tokens: [cls] },
      [sep]: { id: sep, ids: [sepId], tokens: [sep] },
    },
  };
}

/** The parts of tokenizer.json that say how text becomes words (shared by training and the written file). */
function pipeline(type: TokenizerType, lowercase: boolean): { normalizer: Json | null; pre_tokenizer: Json } {
  if (type === 'wordpiece') {
    return {
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
      pre_tokenizer: { type: 'BertPreTokenizer' },
    };
  }
  return {
    normalizer: lowercase ? { type: 'Lowercase' } : null,
    // No prefix space, so that decoding gives back the text exactly.
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  };
}

interface LibraryClasses {
  BertNormalizer: new (config: Json) => { normalize(text: string): string };
  LowercaseNormalizer: new (config: Json) => { normalize(text: string): string };
  BertPreTokenizer: new () => { pre_tokenize_text(text: string, options?: unknown): string[] };
  ByteLevelPreTokenizer: new (config: Json) => { pre_tokenize_text(text: string, options?: unknown): string[] };
}

/** Normalisation and pre-tokenisation by @huggingface/tokenizers' own classes, as the loaded tokenizer will do them. */
async function libraryPipeline(type: TokenizerType, lowercase: boolean) {
  // The package's typings re-export these classes through extension-less paths that NodeNext
  // resolution drops, so the few used here are typed by hand.
  const lib = (await import('@huggingface/tokenizers')) as unknown as LibraryClasses;
  const { normalizer, pre_tokenizer } = pipeline(type, lowercase);
  const norm = normalizer === null ? null : type === 'wordpiece' ? new lib.BertNormalizer(normalizer) : new lib.LowercaseNormalizer(normalizer);
  const pre = type === 'wordpiece' ? new lib.BertPreTokenizer() : new lib.ByteLevelPreTokenizer(pre_tokenizer);
  // Byte-level encoding of one piece that is already split.
  const bytes = new lib.ByteLevelPreTokenizer({ ...pre_tokenizer, use_regex: false });
  return {
    normalize: (text: string) => (norm ? norm.normalize(text) : text),
    preTokenize: (text: string) => pre.pre_tokenize_text(text, undefined),
    /** The library's own split pattern, when it exposes it (read, so that our split cannot differ from its). */
    pattern: (pre as unknown as { pattern?: unknown }).pattern,
    byteEncode: (piece: string) => bytes.pre_tokenize_text(piece, undefined)[0] ?? '',
  };
}

/** The words of one text exactly as the written tokenizer will split it (the slow reference path). */
export async function wordSplitter(type: TokenizerType, lowercase: boolean): Promise<(text: string) => string[]> {
  const p = await libraryPipeline(type, lowercase);
  return (text) => p.preTokenize(p.normalize(text));
}

/**
 * Counts the words of many texts as wordSplitter splits them, faster: the library's BERT
 * normaliser and byte-level encoder cost ~1 µs a character, so each distinct piece goes through
 * them once. BERT: every step is local between space, tab and newline characters (the normaliser
 * maps them to spaces, the pre-tokeniser splits there), so the text is cut there first.
 * Byte-level: the library's own pattern splits the text, and each distinct piece is encoded once.
 */
export async function wordCounter(type: TokenizerType, lowercase: boolean): Promise<{ add(text: string): void; finish(): Map<string, number> }> {
  const p = await libraryPipeline(type, lowercase);
  const pieces = new Map<string, number>();
  const count = (piece: string) => pieces.set(piece, (pieces.get(piece) ?? 0) + 1);
  let add: (text: string) => void;
  let finish: () => Map<string, number>;
  const words = new Map<string, number>();
  if (type === 'wordpiece') {
    add = (text) => {
      for (const chunk of text.split(/[ \t\n\r]+/)) if (chunk !== '') count(chunk);
    };
    // Printable ASCII needs none of the normaliser's steps but lower-casing (no controls, accents or CJK).
    const plain = /^[\x21-\x7e]*$/;
    const normalize = (chunk: string) => (plain.test(chunk) ? (lowercase ? chunk.toLowerCase() : chunk) : p.normalize(chunk));
    finish = () => {
      for (const [chunk, n] of pieces) for (const w of p.preTokenize(normalize(chunk))) words.set(w, (words.get(w) ?? 0) + n);
      return words;
    };
  } else if (p.pattern instanceof RegExp && p.pattern.global) {
    const pattern = p.pattern;
    add = (text) => {
      for (const piece of p.normalize(text).match(pattern) ?? []) count(piece);
    };
    finish = () => {
      for (const [piece, n] of pieces) {
        const w = p.byteEncode(piece);
        words.set(w, (words.get(w) ?? 0) + n);
      }
      return words;
    };
  } else {
    add = (text) => {
      for (const w of p.preTokenize(p.normalize(text))) count(w);
    };
    finish = () => pieces;
  }
  return {
    add: (text) => {
      if (typeof text !== 'string') fail('every training text must be a string');
      add(text);
    },
    finish,
  };
}

/** Max-heap of candidate pairs: higher count first, then smaller left id, then smaller right id. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.keys.length;
  }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci !== cj ? ci > cj : this.keys[i]! < this.keys[j]!; // key order = (left, right) order
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.keys.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.keys.length && this.above(l, best)) best = l;
        if (r < this.keys.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Fails early on bad options, before any reading or training. */
function checkOptions(o: TrainTokenizerOptions): void {
  if (!TOKENIZER_TYPES.includes(o.type ?? 'wordpiece')) fail(`tokenizer type ${JSON.stringify(o.type)} is unknown; use ${TOKENIZER_TYPES.join(' or ')}`);
  if (!Number.isInteger(o.vocabSize) || o.vocabSize < 1 || o.vocabSize > MAX_VOCAB_SIZE) {
    fail(`vocab size must be a whole number from 1 to ${MAX_VOCAB_SIZE} (got ${o.vocabSize})`);
  }
  const min = o.minFrequency ?? 2;
  if (!Number.isInteger(min) || min < 1) fail(`min frequency must be a whole number of at least 1 (got ${min})`);
  if (o.limitAlphabet !== undefined && (!Number.isInteger(o.limitAlphabet) || o.limitAlphabet < 1)) {
    fail(`limit alphabet must be a whole number of at least 1 (got ${o.limitAlphabet})`);
  }
  if (!o.files?.length && o.texts === undefined) fail('give training texts: files, or texts');
}

/**
 * Makes sure `out` can take the tokenizer: a folder that is missing (created), empty, or holds
 * files to replace with `overwrite`. Called before training, so that a long run never ends in a
 * refusal to write. Returns the first folder it created, if any.
 */
export async function prepareOutputFolder(out: string, overwrite = false): Promise<string | undefined> {
  let entries: string[] | null = null;
  try {
    const stat = await fs.stat(out);
    if (!stat.isDirectory()) fail(`${out} is a file; --out must be a folder (missing, empty, or with --overwrite)`);
    entries = await fs.readdir(out);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') fail(`cannot create the folder ${out}: a part of the path is a file, not a folder; choose another place`);
    if (code !== 'ENOENT') throw err;
  }
  if (entries && entries.length > 0 && !overwrite) {
    fail(`${out} is not empty; choose a new folder, or pass --overwrite to replace the tokenizer files in it`);
  }
  const created = await fs.mkdir(out, { recursive: true });
  await fs.access(out, fsConstants.W_OK);
  return created;
}

/** Trains a tokenizer (and writes it when `out` is given). */
export async function trainTokenizer(options: TrainTokenizerOptions): Promise<TrainedTokenizer> {
  checkOptions(options);
  const created = options.out === undefined ? undefined : await prepareOutputFolder(options.out, options.overwrite);
  try {
    return await train(options);
  } catch (err) {
    // A refused or failed run leaves no empty folder behind (nothing is written before the end).
    if (created !== undefined) await fs.rm(created, { recursive: true, force: true });
    throw err;
  }
}

async function train(options: TrainTokenizerOptions): Promise<TrainedTokenizer> {
  const started = performance.now();
  const type = options.type ?? 'wordpiece';
  const lowercase = options.lowercase ?? false;
  const minFrequency = options.minFrequency ?? 2;
  const progress = options.onProgress ?? (() => {});

  // Words and how often each occurs. Files are read first, so that a missing one fails at once.
  const files = options.files ?? [];
  const contents: string[] = [];
  for (const [i, file] of files.entries()) {
    const bytes = await readUserFile(file);
    const text = new TextDecoder('utf-8').decode(bytes);
    contents.push(text);
    progress({ phase: 'read', done: i + 1, total: files.length });
  }
  const counter = await wordCounter(type, lowercase);
  const texts = options.texts === undefined ? [] : Array.isArray(options.texts) ? (options.texts as string[]) : [...options.texts];
  const total = texts.length + contents.length;
  let done = 0;
  for (const text of texts) {
    counter.add(text);
    if (++done % 1000 === 0) progress({ phase: 'count', done, total });
  }
  for (const content of contents) {
    for (const line of content.split(/\r?\n/)) counter.add(line);
    progress({ phase: 'count', done: ++done, total });
  }
  const wordCounts = counter.finish();
  if (wordCounts.size === 0) fail(`the training ${files.length > 0 ? `file${files.length > 1 ? 's hold' : ' holds'}` : 'texts hold'} no words to learn from`);

  const specials: readonly string[] = type === 'wordpiece' ? WORDPIECE_SPECIALS : BPE_SPECIALS;
  const vocab: string[] = [...specials];
  const ids = new Map<string, number>(vocab.map((t, i) => [t, i]));
  const add = (token: string): number => {
    let id = ids.get(token);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(token);
      ids.set(token, id);
    }
    return id;
  };

  // The alphabet: every byte for BPE; for WordPiece the characters of the words (most frequent
  // `limitAlphabet`), each as a word start and as a continuation (##c), so any word of them encodes.
  let alphabetSize: number;
  let dropped = 0;
  let allowed: Set<string> | null = null;
  if (type === 'bpe') {
    const bytes = byteLevelAlphabet();
    alphabetSize = bytes.length;
    if (options.vocabSize < specials.length + alphabetSize) {
      fail(`vocab size ${options.vocabSize} is too small: byte-level BPE needs ${specials.length} special tokens and ${alphabetSize} byte tokens, at least ${specials.length + alphabetSize}`);
    }
    // In byte order, so that id - 5 is the byte.
    for (const c of bytes) add(c);
  } else {
    const charCounts = new Map<string, number>();
    for (const [word, n] of wordCounts) {
      if (word.length > 2 * MAX_WORD_CHARS) continue;
      const chars = [...word];
      if (chars.length > MAX_WORD_CHARS) continue;
      for (const c of chars) charCounts.set(c, (charCounts.get(c) ?? 0) + n);
    }
    let chars = [...charCounts.keys()];
    const limit = options.limitAlphabet ?? 1000;
    if (chars.length > limit) {
      chars.sort((a, b) => charCounts.get(b)! - charCounts.get(a)! || (a < b ? -1 : 1));
      dropped = chars.length - limit;
      chars = chars.slice(0, limit);
      allowed = new Set(chars);
    }
    chars.sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    alphabetSize = chars.length;
    const need = specials.length + 2 * chars.length;
    if (options.vocabSize < need) {
      fail(
        `vocab size ${options.vocabSize} is too small: the ${specials.length} special tokens and the ${chars.length} characters of the training texts (each also as a ##continuation) need at least ${need}; raise --vocab-size${chars.length > 50 ? ' or lower --limit-alphabet' : ''}`,
      );
    }
    for (const c of chars) add(c);
    for (const c of chars) add(PREFIX + c);
  }

  // Words as id sequences, with their counts.
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [word, n] of wordCounts) {
    const chars = [...word];
    if (type === 'wordpiece') {
      if (chars.length > MAX_WORD_CHARS) continue;
      if (allowed && !chars.every((c) => allowed.has(c))) continue;
      words.push(chars.map((c, i) => ids.get(i === 0 ? c : PREFIX + c)!));
    } else {
      words.push(chars.map((c) => ids.get(c)!));
    }
    freq.push(n);
  }

  // Pair counts and the words each pair occurs in (stale entries are tolerated and skipped). A pair's
  // key is left * vocabSize + right: a small integer (fast Map keys) up to 32k tokens, exact beyond.
  const M = options.vocabSize;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const note = (key: number, w: number, n: number) => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + n);
    let set = pairWords.get(key);
    if (!set) pairWords.set(key, (set = new Set()));
    set.add(w);
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) note(s[i]! * M + s[i + 1]!, w, freq[w]!);
  }
  const heap = new PairHeap();
  for (const [key, n] of pairCount) if (n >= minFrequency) heap.push(n, key);

  const merges: string[] = [];
  const goal = options.vocabSize;
  const mergeGoal = goal - vocab.length;
  const merged = (a: string, b: string) => (type === 'wordpiece' ? a + b.slice(PREFIX.length) : a + b);
  while (vocab.length < goal && heap.size > 0) {
    const top = heap.pop();
    const current = pairCount.get(top.key) ?? 0;
    if (current !== top.count) {
      // Counts only fall after a pair is queued; requeue with the true count.
      if (current >= minFrequency) heap.push(current, top.key);
      continue;
    }
    const a = Math.floor(top.key / M);
    const b = top.key % M;
    const c = add(merged(vocab[a]!, vocab[b]!));
    merges.push(`${vocab[a]} ${vocab[b]}`);
    const fresh = new Set<number>();
    for (const w of pairWords.get(top.key)!) {
      const s = words[w]!;
      let at = -1;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          at = i;
          break;
        }
      }
      if (at < 0) continue;
      const n = freq[w]!;
      for (let i = 0; i + 1 < s.length; i++) {
        const key = s[i]! * M + s[i + 1]!;
        pairCount.set(key, pairCount.get(key)! - n);
      }
      const next: number[] = s.slice(0, at);
      for (let i = at; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(c);
          i++;
        } else next.push(s[i]!);
      }
      words[w] = next;
      for (let i = 0; i + 1 < next.length; i++) {
        const key = next[i]! * M + next[i + 1]!;
        if (next[i] === c || next[i + 1] === c) {
          note(key, w, n);
          fresh.add(key);
        } else {
          // Was in the word before the merge, so the word is already listed for it.
          pairCount.set(key, pairCount.get(key)! + n);
        }
      }
    }
    pairCount.delete(top.key);
    pairWords.delete(top.key);
    for (const key of fresh) {
      const n = pairCount.get(key)!;
      if (n >= minFrequency) heap.push(n, key);
    }
    if (merges.length % 250 === 0) progress({ phase: 'merge', done: vocab.length - (goal - mergeGoal), total: mergeGoal });
  }
  progress({ phase: 'merge', done: mergeGoal, total: mergeGoal });

  const { tokenizerJson, configJson } = tokenizerFiles(type, lowercase, vocab, merges);
  const trained: TrainedTokenizer = {
    type,
    vocabSize: vocab.length,
    vocab,
    merges,
    words: wordCounts.size,
    alphabet: alphabetSize,
    droppedCharacters: dropped,
    tokenizerJson,
    configJson,
    seconds: (performance.now() - started) / 1000,
  };
  if (options.out !== undefined) await writeTrainedTokenizer(trained, options.out, { overwrite: true });
  return trained;
}

/** tokenizer.json and tokenizer_config.json for a trained vocabulary, in Hugging Face's format. */
function tokenizerFiles(type: TokenizerType, lowercase: boolean, vocab: string[], merges: string[]): { tokenizerJson: Json; configJson: Json } {
  const specials: readonly string[] = type === 'wordpiece' ? WORDPIECE_SPECIALS : BPE_SPECIALS;
  const vocabObject: Record<string, number> = {};
  vocab.forEach((t, i) => (vocabObject[t] = i));
  const { normalizer, pre_tokenizer } = pipeline(type, lowercase);
  const common = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t, i) => addedToken(i, t)),
    normalizer,
    pre_tokenizer,
  };
  if (type === 'wordpiece') {
    const [pad, unk, cls, sep, mask] = WORDPIECE_SPECIALS;
    return {
      tokenizerJson: {
        ...common,
        post_processor: template(cls, sep, 2, 3, 1),
        decoder: { type: 'WordPiece', prefix: PREFIX, cleanup: true },
        model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: PREFIX, max_input_chars_per_word: MAX_WORD_CHARS, vocab: vocabObject },
      },
      configJson: {
        tokenizer_class: 'BertTokenizer',
        do_lower_case: lowercase,
        tokenize_chinese_chars: true,
        strip_accents: null,
        model_max_length: 512,
        clean_up_tokenization_spaces: true,
        unk_token: unk,
        sep_token: sep,
        pad_token: pad,
        cls_token: cls,
        mask_token: mask,
      },
    };
  }
  const [bos, pad, eos, unk, mask] = BPE_SPECIALS;
  return {
    tokenizerJson: {
      ...common,
      // RoBERTa's layout: <s> A </s> and <s> A </s></s> B </s>.
      post_processor: template(bos, eos, 0, 2, 2),
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: vocabObject,
        // "a b" strings: byte-level symbols never hold a space, and every loader reads this form.
        merges,
      },
    },
    configJson: {
      tokenizer_class: 'RobertaTokenizer',
      add_prefix_space: false,
      model_max_length: 512,
      // Off, so that decoding returns the text exactly (it would drop spaces before punctuation).
      clean_up_tokenization_spaces: false,
      bos_token: bos,
      eos_token: eos,
      sep_token: eos,
      cls_token: bos,
      unk_token: unk,
      pad_token: pad,
      mask_token: mask,
    },
  };
}

/**
 * Writes tokenizer.json, tokenizer_config.json and (WordPiece) vocab.txt into `out`, each file
 * atomically. `out` must be missing or empty unless `overwrite`.
 */
export async function writeTrainedTokenizer(trained: TrainedTokenizer, out: string, options: { overwrite?: boolean } = {}): Promise<string[]> {
  await prepareOutputFolder(out, options.overwrite);
  const written = [path.join(out, 'tokenizer.json'), path.join(out, 'tokenizer_config.json')];
  await writeFileAtomic(written[0]!, `${JSON.stringify(trained.tokenizerJson)}\n`);
  await writeFileAtomic(written[1]!, `${JSON.stringify(trained.configJson, null, 2)}\n`);
  if (trained.type === 'wordpiece') {
    // BERT's vocab.txt: one token per line, line number = id (tools that predate tokenizer.json read it).
    written.push(path.join(out, 'vocab.txt'));
    await writeFileAtomic(written[2]!, `${trained.vocab.join('\n')}\n`);
  }
  return written;
}
