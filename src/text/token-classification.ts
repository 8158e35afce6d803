/**
 * Token classification (part-of-speech tagging, named entities) on RevCol text columns: a tag per
 * word, predicted from the last column's top level at the word's first sub-word token.
 *
 *   await fineTuneTokens({ train: 'train.conll', out: 'runs/ner' });
 *   const tagger = await TokenClassifier.load('runs/ner');
 *   await tagger.classify(['EU rejects German call']);   // [[{ word: 'EU', entity: 'B-ORG', score, index, start, end }, …]]
 *
 * Words are split into sub-word tokens with the model's tokenizer; the first piece of each word
 * carries its tag and the other pieces are left out of the loss (IGNORE_INDEX, Hugging Face's
 * -100); [CLS] and [SEP] frame each sentence. Training cuts sentences longer than the max length
 * (counting the words cut); evaluation and prediction cut them into windows instead, so that
 * every word gets a tag.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import type { LossAndGradients } from '../core/gradients.js';
import { LayerNorm, Linear } from '../core/layers.js';
import { Module } from '../core/module.js';
import { type ForwardContext, evalContext, dropout, mixSeed, RandomStream } from '../core/random.js';
import { readLater, type Reads } from '../core/reads.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readTokenExamples, type ReadTokenOptions, type TokenExamples, wordLine } from '../data/token-data.js';
import { seededPermutation } from '../data/text.js';
import { loadModelDir } from '../train/checkpoint.js';
import { checkWorkersBackend, defaultWorkers, workersLine } from '../train/data-parallel.js';
import { softmaxCrossEntropy } from '../train/losses.js';
import { train, type TrainSummary } from '../train/trainer.js';
import { lengthGroupedBatches } from './encoded.js';
import { RevColText, type TextStepOptions, type TokenWordFeatures } from './model.js';
import { folderTokenizer, MASKED_LM_OBJECTIVE, readResumeMeta, TOKEN_CLASSIFICATION_OBJECTIVE } from './model-meta.js';
import type { TextConfig } from './presets.js';
import {
  checkWhole, chooseEpochs, inRunFolder, makeOutputFolder, namer, resolveArchitecture, resolveMaxLength, resolveTokenizer, resolveTrainingSettings, runTrainOptions, startTextRun, type TextRunOptions,
} from './run-options.js';
import type { TokenTaskData } from './task-types.js';
import { taskKind, taskNames } from './tasks.js';
import { TextTokenizer } from './tokenizer.js';
import { startTokenPool, tokenReplica, tokenShards, type TokenReplicaOptions } from './data-parallel-token.js';
import type { DataParallel, Replica } from '../train/data-parallel.js';
import type { PositionShard } from './data-parallel-text.js';
import { detectEntityScheme, type EntityScheme, tokenClassificationMetrics, type TokenMetrics } from './token-metrics.js';

/** The label of tokens left out of the loss (a word's later pieces, special tokens, padding), as in Hugging Face. */
export const IGNORE_INDEX = -100;
export { TOKEN_CLASSIFICATION_OBJECTIVE } from './model-meta.js';
/** Parameter-name prefix of the token-classification head. */
export const TOKEN_HEAD = 'tagger';

// ---------------------------------------------------------------------------------------------
// Word features: a word vocabulary and word shapes

/**
 * Word shapes, by id (0: special tokens and padding). A word's shape tells what the uncased
 * sub-word vocabulary hides: its capitals (a proper name), digits, punctuation.
 */
export const WORD_SHAPES = ['special', 'lower', 'Capitalised', 'ALLCAPS', 'MixedCase', 'number', 'digits+letters', 'punctuation', 'other'] as const;

const HAS_LETTER = /\p{L}/u;
const HAS_DIGIT = /\p{N}/u;
const NUMBER = /^[+-]?(?:\p{N}+(?:[.,:/-]\p{N}+)*|[.,]\p{N}+)%?$/u;

/** The shape id of a word (an index of WORD_SHAPES, never 0). */
export function wordShape(word: string): number {
  const letters = HAS_LETTER.test(word);
  const digits = HAS_DIGIT.test(word);
  if (!letters && !digits) return word.trim() === '' ? 8 : 7;
  if (!letters) return NUMBER.test(word) ? 5 : 6;
  if (digits) return 6;
  const lower = word.toLowerCase();
  const upper = word.toUpperCase();
  if (word === lower) return 1;
  const first = [...word][0]!;
  const rest = word.slice(first.length);
  // One capital letter ("I", "A") is Capitalised; two or more, all capitals, ALLCAPS.
  if (word === upper) return [...word].filter((c) => HAS_LETTER.test(c)).length > 1 ? 3 : 2;
  if (first !== first.toLowerCase() && rest === rest.toLowerCase()) return 2;
  return 4;
}

/** How a word is looked up in a word vocabulary: lowercased, every digit read as 0. */
export function normaliseWord(word: string): string {
  return word.toLowerCase().replace(/\p{Nd}/gu, '0');
}

/** The file of a token model's folder that holds its word vocabulary (models with word features). */
export const WORDS_FILE = 'words.json';
const WORDS_FORMAT = 'revcol-words';

/**
 * The word vocabulary of a token classifier with word features: the normalised training words
 * seen at least `minCount` times. Id 0 is kept for special tokens and padding, 1 is every word
 * not in it (unknown), the words are 2, 3, …
 */
export class WordVocabulary {
  static readonly SPECIAL = 0;
  static readonly UNKNOWN = 1;
  private readonly index: Map<string, number>;
  constructor(readonly words: readonly string[], readonly minCount: number) {
    this.index = new Map(words.map((w, i) => [w, i + 2]));
    if (this.index.size !== words.length) fail('a word vocabulary holds a word twice');
  }

  /** Rows of the word embedding: the words, the special row and the unknown row. */
  get size(): number {
    return this.words.length + 2;
  }

  /** A word's id: its normalised form's, else UNKNOWN. */
  id(word: string): number {
    return this.index.get(normaliseWord(word)) ?? WordVocabulary.UNKNOWN;
  }

  /** The normalised words of the sentences seen at least minCount times, most frequent first (ties in first-seen order). */
  static build(sentences: readonly (readonly string[])[], minCount = 2): WordVocabulary {
    if (!Number.isInteger(minCount) || minCount < 1) fail(`the word vocabulary's minimum count must be a whole number ≥ 1, got ${minCount}`);
    const counts = new Map<string, number>();
    for (const s of sentences) for (const w of s) {
      const n = normaliseWord(w);
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    const kept = [...counts].filter(([, c]) => c >= minCount);
    kept.sort((a, b) => b[1] - a[1]);
    return new WordVocabulary(kept.map(([w]) => w), minCount);
  }

  toJSON(): Record<string, unknown> {
    return { format: WORDS_FORMAT, version: 1, normalise: 'lowercase, digits as 0', minCount: this.minCount, shapes: [...WORD_SHAPES], words: this.words };
  }

  /** Writes words.json into a folder (atomically). */
  async save(dir: string): Promise<void> {
    await writeFileAtomic(path.join(dir, WORDS_FILE), `${JSON.stringify(this.toJSON())}\n`);
  }

  /** The word vocabulary of a model folder (or of the folder of a model's .safetensors file); `rows`: the model's word embedding rows. */
  static async read(dirOrFile: string, rows?: number): Promise<WordVocabulary> {
    const dir = existsSync(dirOrFile) && statSync(dirOrFile).isDirectory() ? dirOrFile : path.dirname(dirOrFile);
    const file = path.join(dir, WORDS_FILE);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      fail(`the model in ${dir} reads word features but its word vocabulary ${file} is missing or unreadable (${(err as Error).message.split('\n')[0]}): copy it with the model, or train it again`);
    }
    const shapes = raw.shapes;
    if (raw.format !== WORDS_FORMAT || !Array.isArray(raw.words) || raw.words.some((w) => typeof w !== 'string') || typeof raw.minCount !== 'number'
      || !Array.isArray(shapes) || shapes.length !== WORD_SHAPES.length || shapes.some((x, i) => x !== WORD_SHAPES[i])) {
      fail(`${file} is not a revcol word vocabulary of this version (format ${WORDS_FORMAT}, words, minCount, shapes ${WORD_SHAPES.join(' ')}): it may be damaged; train the model again`);
    }
    const vocabulary = new WordVocabulary(raw.words as string[], raw.minCount);
    if (rows !== undefined && vocabulary.size !== rows) fail(`${file} holds ${raw.words.length} words (${vocabulary.size} rows with the special and unknown rows) but the model's word embedding has ${rows} rows: the file does not belong to the model`);
    return vocabulary;
  }
}

// ---------------------------------------------------------------------------------------------
// Words to sub-word tokens

/** One sentence as the model sees it. */
export interface EncodedSentence {
  /** Token ids with the special tokens, unpadded. */
  ids: Int32Array;
  /** Per token: the tag id at a kept word's first piece, IGNORE_INDEX elsewhere (all IGNORE_INDEX without tags). */
  labels: Int32Array;
  /** The token index of each kept word's scored piece (first or last; kept words are the first wordStarts.length). */
  wordStarts: Int32Array;
  /** Words past the max length, left out. */
  cutWords: number;
  /** With word features: per token, its word's id and shape id (0 for the special tokens). */
  wordIds?: Int32Array;
  shapeIds?: Int32Array;
  /** With word features: the token index of each kept word's first piece. */
  firstPieces?: Int32Array;
}

/** Uniform draws in [0, 1) from a seed (mulberry32): cheap, and the same on every platform. */
function uniforms(seed: number): () => number {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Which sub-word piece of a word carries its tag: the first (Hugging Face's rule, the default) or the last. */
export type ScoredPiece = 'first' | 'last';
export const SCORED_PIECES: readonly ScoredPiece[] = ['first', 'last'];

/**
 * Splits words into a tokenizer's sub-word pieces (each word on its own, as Hugging Face does for
 * pre-split words: exact for BERT-style tokenizers such as the shipped one) and frames them with
 * the tokenizer's special tokens. Pieces are cached per word.
 */
export class WordEncoder {
  /** Special tokens before and after a sentence's pieces ([CLS] and [SEP] for BERT). */
  readonly prefix: number[];
  readonly suffix: number[];
  readonly padTokenId: number;
  /** Given to a word that tokenizes to nothing (a lone control character). */
  readonly unknownTokenId: number;
  private readonly cache = new Map<string, Int32Array>();

  /**
   * `scoredPiece`: which piece of a word carries its tag and gives its prediction. Hugging Face
   * scores the first; the last holds an English word's ending (-ly, -ed, -s), which tells its part
   * of speech when the word is split (pos-brown measured 94.2% with the last against 93.1% with
   * the first, one epoch each; docs/token-classification.md).
   */
  constructor(readonly tokenizer: TextTokenizer, readonly scoredPiece: ScoredPiece = 'first', readonly vocabulary: WordVocabulary | null = null) {
    const lib = tokenizer.library;
    const bare: number[] = lib.encode('a', { add_special_tokens: false }).ids;
    const framed: number[] = lib.encode('a').ids;
    let at = -1;
    for (let k = 0; k + bare.length <= framed.length && at < 0; k++) {
      if (bare.every((id: number, j: number) => framed[k + j] === id)) at = k;
    }
    this.prefix = at < 0 ? [] : framed.slice(0, at);
    this.suffix = at < 0 ? [] : framed.slice(at + bare.length);
    this.padTokenId = tokenizer.padTokenId;
    this.unknownTokenId = lib.token_to_id('[UNK]') ?? lib.token_to_id('<unk>') ?? tokenizer.padTokenId;
  }

  /** Special tokens per sentence. */
  get specials(): number {
    return this.prefix.length + this.suffix.length;
  }

  /** A word's pieces (at least one). */
  pieces(word: string): Int32Array {
    let p = this.cache.get(word);
    if (!p) {
      const ids = this.tokenizer.library.encode(word, { add_special_tokens: false }).ids;
      p = Int32Array.from(ids.length ? ids : [this.unknownTokenId]);
      if (this.cache.size > 500_000) this.cache.clear();
      this.cache.set(word, p);
    }
    return p;
  }

  /** Tokens (pieces and special tokens) a sentence takes uncut. */
  tokenCount(words: readonly string[]): number {
    let n = this.specials;
    for (const w of words) n += this.pieces(w).length;
    return n;
  }

  private budget(maxLength: number): number {
    const budget = maxLength - this.specials;
    if (!Number.isInteger(maxLength) || budget < 1) fail(`max length ${maxLength} leaves no room for a word next to the ${this.specials} special tokens: use ${this.specials + 1} or more`);
    return budget;
  }

  /**
   * Encodes one sentence, cut to maxLength tokens as Hugging Face cuts pre-split words: the
   * pieces are cut at the budget, and a word whose first piece is inside it is kept (labelled),
   * the words after it are cut. `tagIds`: one per word, or null.
   */
  encode(words: readonly string[], tagIds: ArrayLike<number> | null, maxLength: number): EncodedSentence {
    const budget = this.budget(maxLength);
    if (tagIds && tagIds.length !== words.length) throw new Error(`${words.length} words but ${tagIds.length} tags`);
    const pieces: number[] = [...this.prefix];
    const starts: number[] = [];
    const labels: number[] = this.prefix.map(() => IGNORE_INDEX);
    const vocabulary = this.vocabulary;
    const wordIds: number[] = this.prefix.map(() => WordVocabulary.SPECIAL);
    const shapeIds: number[] = this.prefix.map(() => 0);
    const firstPieces: number[] = [];
    let kept = 0;
    for (let w = 0; w < words.length; w++) {
      const p = this.pieces(words[w]!);
      const room = budget - (pieces.length - this.prefix.length);
      if (room <= 0) break;
      const n = Math.min(p.length, room);
      const scored = this.scoredPiece === 'last' ? n - 1 : 0;
      starts.push(pieces.length + scored);
      const wordId = vocabulary ? vocabulary.id(words[w]!) : 0;
      const shapeId = vocabulary ? wordShape(words[w]!) : 0;
      firstPieces.push(pieces.length);
      for (let k = 0; k < n; k++) {
        pieces.push(p[k]!);
        labels.push(k === scored && tagIds ? tagIds[w]! : IGNORE_INDEX);
        wordIds.push(wordId);
        shapeIds.push(shapeId);
      }
      kept++;
    }
    pieces.push(...this.suffix);
    for (let k = 0; k < this.suffix.length; k++) {
      labels.push(IGNORE_INDEX);
      wordIds.push(WordVocabulary.SPECIAL);
      shapeIds.push(0);
    }
    const row: EncodedSentence = { ids: Int32Array.from(pieces), labels: Int32Array.from(labels), wordStarts: Int32Array.from(starts), cutWords: words.length - kept };
    if (vocabulary) {
      row.wordIds = Int32Array.from(wordIds);
      row.shapeIds = Int32Array.from(shapeIds);
      row.firstPieces = Int32Array.from(firstPieces);
    }
    return row;
  }

  /**
   * Consecutive word ranges [start, end) that each fit maxLength whole (a word too long on its
   * own is a range of its own, cut): how evaluation and prediction tag a long sentence.
   */
  windows(words: readonly string[], maxLength: number): Array<[number, number]> {
    const budget = this.budget(maxLength);
    const out: Array<[number, number]> = [];
    let start = 0;
    let used = 0;
    for (let w = 0; w < words.length; w++) {
      const n = this.pieces(words[w]!).length;
      if (w > start && used + n > budget) {
        out.push([start, w]);
        start = w;
        used = 0;
      }
      used += n;
    }
    if (words.length > 0) out.push([start, words.length]);
    return out;
  }
}

/** A batch: ids and mask [B, T], and the flattened positions (b·T + t) that are scored, with their tags. */
export interface TokenBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  positions: tf.Tensor1D;
  /** Tag ids at `positions` (0 where the sentences have no tags). */
  targets: tf.Tensor1D;
  /** With word features: each token's word and shape ids [B, T] (0 at special tokens and padding). */
  words?: TokenWordFeatures;
}

export function disposeTokenBatch(b: TokenBatch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.positions, b.targets]);
  if (b.words) tf.dispose([b.words.wordIds, b.words.shapeIds]);
}

/**
 * Sentences encoded once and cut into batches on demand. Mode 'cut' (training): one row per
 * sentence, cut at maxLength. Mode 'split' (evaluation, prediction): a long sentence becomes
 * several rows (windows of whole words), so every word is scored.
 */
export class EncodedTokens {
  readonly rows: EncodedSentence[] = [];
  /** Each row's sentence, and the index of its first word there. */
  readonly rowSentence: number[] = [];
  readonly rowFirstWord: number[] = [];
  readonly lengths: Int32Array;
  /** 'cut': words and sentences cut. 'split': sentences that needed more than one row. */
  readonly cutWords: number = 0;
  readonly cutSentences: number = 0;
  readonly splitSentences: number = 0;
  private readonly padTokenId: number;
  private readonly hasTags: boolean;
  private readonly wordFeatures: boolean;

  constructor(encoder: WordEncoder, readonly sentences: readonly (readonly string[])[], tagIds: readonly ArrayLike<number>[] | null, readonly maxLength: number, readonly mode: 'cut' | 'split') {
    let cutWords = 0;
    let cutSentences = 0;
    let split = 0;
    sentences.forEach((words, s) => {
      const tags = tagIds ? tagIds[s]! : null;
      if (mode === 'cut') {
        const row = encoder.encode(words, tags, maxLength);
        this.push(row, s, 0);
        cutWords += row.cutWords;
        if (row.cutWords) cutSentences++;
        return;
      }
      const windows = encoder.windows(words, maxLength);
      if (windows.length > 1) split++;
      for (const [a, b] of windows) {
        const row = encoder.encode(words.slice(a, b), tags ? Array.prototype.slice.call(tags, a, b) as number[] : null, maxLength);
        this.push(row, s, a);
      }
    });
    this.cutWords = cutWords;
    this.cutSentences = cutSentences;
    this.splitSentences = split;
    this.lengths = Int32Array.from(this.rows, (r) => r.ids.length);
    this.padTokenId = encoder.padTokenId;
    this.hasTags = tagIds !== null;
    this.wordFeatures = encoder.vocabulary !== null;
  }

  private push(row: EncodedSentence, sentence: number, firstWord: number): void {
    this.rows.push(row);
    this.rowSentence.push(sentence);
    this.rowFirstWord.push(firstWord);
  }

  get size(): number {
    return this.rows.length;
  }

  /**
   * The given rows as tensors, cut to their longest row (rounded up to a multiple of 8; padded
   * positions do not change a model's output). Positions: every kept word's first piece, in row
   * order, then word order. `wordDropout`: with word features, the chance that a word's id is
   * read as unknown (training only; drawn from `seed`, so a batch is the same on every call).
   */
  batch(rows: number[], wordDropout = 0, seed = 0): TokenBatch {
    let width = 1;
    for (const r of rows) width = Math.max(width, this.lengths[r]!);
    width = Math.min(this.maxLength, Math.ceil(width / 8) * 8);
    const ids = new Int32Array(rows.length * width).fill(this.padTokenId);
    const mask = new Int32Array(rows.length * width);
    const positions: number[] = [];
    const targets: number[] = [];
    const wordIds = this.wordFeatures ? new Int32Array(rows.length * width) : null;
    const shapeIds = this.wordFeatures ? new Int32Array(rows.length * width) : null;
    const random = wordDropout > 0 ? uniforms(seed) : null;
    rows.forEach((r, i) => {
      const row = this.rows[r]!;
      ids.set(row.ids, i * width);
      mask.fill(1, i * width, i * width + row.ids.length);
      for (const t of row.wordStarts) {
        positions.push(i * width + t);
        targets.push(this.hasTags ? row.labels[t]! : 0);
      }
      if (wordIds && shapeIds) {
        wordIds.set(row.wordIds!, i * width);
        shapeIds.set(row.shapeIds!, i * width);
        if (random) {
          // A word is dropped whole: every piece of it reads as unknown.
          const first = row.firstPieces!;
          for (let k = 0; k < first.length; k++) {
            if (random() >= wordDropout) continue;
            const end = k + 1 < first.length ? first[k + 1]! : row.ids.length;
            for (let t = first[k]!; t < end && row.wordIds![t] !== WordVocabulary.SPECIAL; t++) wordIds[i * width + t] = WordVocabulary.UNKNOWN;
          }
        }
      }
    });
    return {
      inputIds: tf.tensor2d(ids, [rows.length, width], 'int32'),
      attentionMask: tf.tensor2d(mask, [rows.length, width], 'int32'),
      positions: tf.tensor1d(positions, 'int32'),
      targets: tf.tensor1d(targets, 'int32'),
      ...(wordIds && shapeIds ? { words: { wordIds: tf.tensor2d(wordIds, [rows.length, width], 'int32'), shapeIds: tf.tensor2d(shapeIds, [rows.length, width], 'int32') } } : {}),
    };
  }
}

/**
 * A max length that covers most sentences: the 95th percentile of their token counts (special
 * tokens included), rounded up to a multiple of 32, between 32 and the cap.
 */
export function chooseTokenMaxLength(encoder: WordEncoder, sentences: readonly (readonly string[])[], cap: number, seed = 0): number {
  const sample = sentences.length > 2000 ? seededPermutation(sentences.length, seed).slice(0, 2000).map((i) => sentences[i]!) : sentences;
  const counts = sample.map((w) => encoder.tokenCount(w)).sort((a, b) => a - b);
  const p95 = counts[Math.min(counts.length - 1, Math.floor(counts.length * 0.95))] ?? cap;
  return Math.max(Math.min(32, cap), Math.min(cap, Math.ceil(p95 / 32) * 32));
}

// ---------------------------------------------------------------------------------------------
// The head and the model

/**
 * A tag per scored token of the top level: LayerNorm, dropout, Linear to the tags. It reads only
 * the positions it scores (a word's first piece), gathered from the flattened [B·T, width] top.
 */
export class TokenClassificationHead extends Module {
  readonly norm: LayerNorm;
  readonly classifier: Linear;
  constructor(width: number, readonly numTags: number, readonly dropoutRate: number, rng: RandomStream) {
    super();
    if (!Number.isInteger(numTags) || numTags < 2) fail(`token classification needs at least 2 tags, got ${numTags}`);
    this.norm = this.child('norm', new LayerNorm(width, 1e-6));
    this.classifier = this.child('classifier', new Linear(width, numTags, rng));
  }

  /** Tag logits [M, numTags] at the given flattened positions of `top` [B, T, width]. */
  logits(top: tf.Tensor, positions: tf.Tensor1D, ctx: ForwardContext = evalContext()): tf.Tensor2D {
    return tf.tidy(() => {
      const width = top.shape[top.rank - 1]!;
      const picked = tf.gather(tf.reshape(top, [-1, width]), positions);
      return this.classifier.forward(dropout(this.norm.forward(picked), this.dropoutRate, ctx)) as tf.Tensor2D;
    });
  }

  /** Mean cross-entropy over the scored positions (the labelled words; nothing else counts). */
  loss(top: tf.Tensor, positions: tf.Tensor1D, targets: tf.Tensor1D, ctx: ForwardContext, labelSmoothing = 0): tf.Scalar {
    if (positions.shape[0] === 0) fail('a token-classification batch has no labelled words: every sentence needs at least one word');
    return tf.tidy(() => softmaxCrossEntropy(this.logits(top, positions, ctx), targets, labelSmoothing));
  }
}

/**
 * What token classification trains and saves: the text model's embeddings and columns (named as
 * in a text classifier, so that --from of a pre-trained or fine-tuned text model loads them) and
 * the tagging head (`tagger.*`). The text model's own sequence-classification head is not used.
 */
export class TokenClassificationModel extends Module {
  readonly head: TokenClassificationHead;
  constructor(readonly text: RevColText, numTags: number, seed = 0) {
    super();
    this.child('embeddings', text.embeddings);
    this.child('columns', text.columns);
    const c = text.config;
    this.head = this.child(TOKEN_HEAD, new TokenClassificationHead(c.hidden[c.hidden.length - 1]!, numTags, c.dropout, new RandomStream(seed).fork(5)));
  }

  get numTags(): number {
    return this.head.numTags;
  }

  /** Loss and gradients of one batch (dropout and drop path on), reversible or plain as `opts.mode` or the config says. */
  lossAndGradients(batch: TokenBatch, opts: TextStepOptions): LossAndGradients {
    const smoothing = opts.labelSmoothing ?? 0;
    return this.text.topLevelLossAndGradients(batch.inputIds, batch.attentionMask, {
      variables: () => this.head.parameters(),
      loss: (top, ctx) => this.head.loss(top, batch.positions, batch.targets, ctx, smoothing),
    }, opts, batch.words);
  }

  /** Tag logits [M, numTags] at the batch's positions, in eval mode. */
  logits(batch: Pick<TokenBatch, 'inputIds' | 'attentionMask' | 'positions' | 'words'>): tf.Tensor2D {
    return tf.tidy(() => {
      const top = this.text.topLevelFeatures(batch.inputIds, batch.attentionMask, batch.words);
      return this.head.logits(top, batch.positions);
    });
  }

  /** Tag probabilities [M, numTags] at the batch's positions, in eval mode. */
  probabilities(batch: Pick<TokenBatch, 'inputIds' | 'attentionMask' | 'positions' | 'words'>): tf.Tensor2D {
    return tf.tidy(() => tf.softmax(this.logits(batch)));
  }

  override dispose(): void {
    this.head.dispose();
    this.text.dispose();
  }
}

/**
 * Tag probabilities of every word of every sentence: per sentence, [words × tags] row-major.
 * Needs data in 'split' mode (every word in some row).
 */
function* predictWords(model: TokenClassificationModel, data: EncodedTokens, batchSize = 64): Reads<Float32Array[]> {
  const k = model.numTags;
  const out = data.sentences.map((words) => new Float32Array(words.length * k));
  const order = Array.from({ length: data.size }, (_, i) => i).sort((a, b) => data.lengths[a]! - data.lengths[b]!);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const batch = data.batch(rows);
    let probs: tf.Tensor2D | undefined;
    try {
      probs = model.probabilities(batch);
      const values = yield probs;
      let m = 0;
      for (const r of rows) {
        const row = data.rows[r]!;
        const target = out[data.rowSentence[r]!]!;
        const first = data.rowFirstWord[r]!;
        for (let w = 0; w < row.wordStarts.length; w++, m++) target.set(values.subarray(m * k, (m + 1) * k), (first + w) * k);
      }
    } finally {
      probs?.dispose();
      disposeTokenBatch(batch);
    }
  }
  return out;
}

function argmaxTags(probs: Float32Array, tags: readonly string[]): { tags: string[]; scores: number[] } {
  const k = tags.length;
  const n = probs.length / k;
  const names: string[] = [];
  const scores: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c]! > probs[i * k + best]!) best = c;
    names.push(tags[best]!);
    scores.push(probs[i * k + best]!);
  }
  return { tags: names, scores };
}

// ---------------------------------------------------------------------------------------------
// Tags

/** Tag names ↔ ids of a token classifier, in a fixed order. */
export class TagSet {
  private readonly index: Map<string, number>;
  constructor(readonly names: readonly string[]) {
    if (names.length < 2) fail(`token classification needs at least 2 tags, got ${names.length}${names.length ? ` (${JSON.stringify(names[0])})` : ''}: the training data must tag its words with at least two different tags`);
    if (new Set(names).size !== names.length) fail(`the tag names hold duplicates (${names.join(', ')}): give each tag once`);
    this.index = new Map(names.map((n, i) => [n, i]));
  }

  /** The tags of training data, sorted, O first when present. */
  static fromExamples(examples: TokenExamples): TagSet {
    const seen = new Set<string>();
    for (const tags of examples.tags) for (const t of tags) seen.add(t);
    const names = [...seen].sort((a, b) => (a === 'O' ? -1 : b === 'O' ? 1 : a < b ? -1 : a > b ? 1 : 0));
    if (names.length < 2) fail(`${examples.source} tags every word ${names.length ? JSON.stringify(names[0]) : 'alike'}: token classification needs at least two different tags`);
    return new TagSet(names);
  }

  get size(): number {
    return this.names.length;
  }

  has(tag: string): boolean {
    return this.index.has(tag);
  }

  /** Tag ids per sentence; a tag the set lacks is a one-line error naming the file and line, what lacks it and what to do. */
  ids(examples: TokenExamples, what = 'the training data', advice = `fix the tag, or add examples of it to ${what}`): Int32Array[] {
    return examples.tags.map((tags, s) => Int32Array.from(tags, (t, w) => {
      const id = this.index.get(t);
      if (id === undefined) {
        const shown = this.names.length > 20 ? `${this.names.slice(0, 20).join(', ')}, …` : this.names.join(', ');
        fail(`${examples.source}: line ${wordLine(examples, s, w)} has the tag ${JSON.stringify(t)}, which ${what} does not have (its tags: ${shown}); ${advice}`);
      }
      return id;
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Saved models and prediction

/** What a token classifier's folder records (the `meta` of its checkpoints). */
export interface TokenModelMeta {
  family: 'text';
  objective: typeof TOKEN_CLASSIFICATION_OBJECTIVE;
  config: TextConfig;
  /** The tags, in the head's order. */
  labels: string[];
  tokenizer: string;
  maxLength: number;
  /** The entity scheme of the tags (BIO, BIOES), or null for other tags (part of speech). */
  scheme: EntityScheme | null;
  /** The piece of each word that was scored; absent in models from before it was a choice: the first. */
  scoredPiece?: ScoredPiece;
  /** Word features (config.words set): the vocabulary's minimum count and the training's word dropout. Absent: none. */
  wordFeatures?: { minCount: number; dropout: number };
  preset?: string;
  task?: string;
}

/** One word's prediction, in the shape of transformers.js's token-classification pipeline (per word, not per piece). */
export interface TokenPrediction {
  word: string;
  /** The predicted tag. */
  entity: string;
  /** Its probability. */
  score: number;
  /** The word's position in its sentence, from 0. */
  index: number;
  /** Character offsets of the word in the text (for a word list: in the words joined by single spaces). */
  start: number;
  end: number;
}

export interface TokenEvaluationReport extends TokenMetrics {
  /** Sentences longer than the max length, tagged in several windows. */
  splitSentences: number;
}

export interface SplitWord {
  word: string;
  start: number;
  end: number;
}

const WORD = /[\p{L}\p{N}\p{M}]+(?:['’.\-][\p{L}\p{N}\p{M}]+)*|[^\s\p{L}\p{N}\p{M}]/gu;

/**
 * Words of a plain text as a tagger takes them: runs of letters and digits (joined by inner
 * apostrophes, hyphens and periods: "don't", "hard-fought", "3.5"), and every other
 * non-space character alone. Pass word lists to classify for any other split.
 */
export function splitWords(text: string): SplitWord[] {
  return [...text.matchAll(WORD)].map((m) => ({ word: m[0], start: m.index!, end: m.index! + m[0].length }));
}

function wordsWithOffsets(words: readonly string[]): SplitWord[] {
  let at = 0;
  return words.map((word) => {
    const w = { word, start: at, end: at + word.length };
    at += word.length + 1;
    return w;
  });
}

function readTokenMeta(meta: Record<string, unknown>, where: string): TokenModelMeta {
  if (meta.family !== 'text') fail(`${where} holds a ${meta.family === undefined ? 'model of unknown family' : `${String(meta.family)} model`}, not a token classifier: pass the output folder of a token-classification fine-tune`);
  if (meta.objective === MASKED_LM_OBJECTIVE) fail(`${where} is a pre-trained (masked-LM) model with no tagger: fine-tune it on tagged data first (from: ${where})`);
  if (meta.objective !== TOKEN_CLASSIFICATION_OBJECTIVE) fail(`${where} holds a text classifier (one label per text), not a token classifier (a tag per word): load it with TextClassifier, or pass a token-classification fine-tune's folder`);
  const m = meta as unknown as TokenModelMeta;
  if (!m.config || !Array.isArray(m.labels) || typeof m.maxLength !== 'number') fail(`${where} lacks the token classifier's config, tags or maxLength: it may be damaged; train it again`);
  return m;
}

/** A trained token classifier: `await TokenClassifier.load(dir)`, then `classify(texts)`. */
export class TokenClassifier {
  private readonly encoder: WordEncoder;

  private constructor(
    readonly model: TokenClassificationModel,
    readonly tokenizer: TextTokenizer,
    readonly tags: TagSet,
    readonly meta: TokenModelMeta,
    readonly source: string,
    /** The word vocabulary of a model with word features (its folder's words.json), else null. */
    readonly vocabulary: WordVocabulary | null = null,
  ) {
    this.encoder = new WordEncoder(tokenizer, meta.scoredPiece ?? 'first', vocabulary);
  }

  get maxLength(): number {
    return this.meta.maxLength;
  }

  /** Loads a token-classification run's folder (its best.safetensors), or a .safetensors file of one. */
  static async load(dir: string, options: { backend?: string; allowNetwork?: boolean } = {}): Promise<TokenClassifier> {
    if (options.backend) await useBackend(options.backend);
    else await ensureBackend();
    const loaded = await loadModelDir(dir);
    let model: TokenClassificationModel | undefined;
    try {
      const meta = readTokenMeta(loaded.meta, dir);
      const tags = new TagSet(meta.labels);
      const tokenizer = await folderTokenizer(dir, meta.tokenizer, options.allowNetwork);
      if (tokenizer.vocabSize !== meta.config.vocabSize) {
        fail(`the tokenizer of ${dir} has ${tokenizer.vocabSize} tokens but the model was trained with ${meta.config.vocabSize}: the folder's tokenizer files do not belong to it`);
      }
      const vocabulary = meta.config.words ? await WordVocabulary.read(loaded.file, meta.config.words) : null;
      model = new TokenClassificationModel(new RevColText(meta.config), tags.size);
      model.loadStateDict(loaded.tensors, `the weights in ${loaded.file}`);
      return new TokenClassifier(model, tokenizer, tags, meta, loaded.file, vocabulary);
    } catch (err) {
      model?.dispose();
      throw err;
    } finally {
      loaded.tensors.forEach((t) => t.dispose());
    }
  }

  /** Tags and their probabilities for pre-split sentences (every word tagged; long sentences in windows). */
  async tagSentences(sentences: readonly (readonly string[])[], batchSize = 64): Promise<{ tags: string[][]; scores: number[][]; splitSentences: number }> {
    if (sentences.length === 0) return { tags: [], scores: [], splitSentences: 0 };
    const data = new EncodedTokens(this.encoder, sentences, null, this.maxLength, 'split');
    const probs = await readLater(predictWords(this.model, data, batchSize));
    const tags: string[][] = [];
    const scores: number[][] = [];
    for (const p of probs) {
      const r = argmaxTags(p, this.tags.names);
      tags.push(r.tags);
      scores.push(r.scores);
    }
    return { tags, scores, splitSentences: data.splitSentences };
  }

  /**
   * The tag of every word, per input: a text (split into words by splitWords) or a list of
   * words (a pre-split sentence, e.g. [["EU", "rejects", "German", "call"]]). One list per input.
   */
  async classify(inputs: string | ReadonlyArray<string | readonly string[]>): Promise<TokenPrediction[][]> {
    const list = typeof inputs === 'string' ? [inputs] : inputs;
    if (!Array.isArray(list)) fail('classify takes a text, or an array of texts and word lists');
    const split = list.map((item, i) => {
      if (typeof item === 'string') return splitWords(item);
      if (Array.isArray(item) && item.every((w) => typeof w === 'string' && w.trim() !== '')) return wordsWithOffsets(item);
      fail(`input ${i} is neither a text nor a list of non-empty words`);
    });
    const nonEmpty = split.map((w, i) => [w, i] as const).filter(([w]) => w.length > 0);
    const { tags, scores } = await this.tagSentences(nonEmpty.map(([w]) => w.map((x) => x.word)));
    const out: TokenPrediction[][] = split.map(() => []);
    nonEmpty.forEach(([words, i], s) => {
      out[i] = words.map((w, k) => ({ word: w.word, entity: tags[s]![k]!, score: scores[s]![k]!, index: k, start: w.start, end: w.end }));
    });
    return out;
  }

  /** Word accuracy, per-tag scores and (for entity tags) entity-level scores on tagged sentences. */
  async evaluate(examples: TokenExamples): Promise<TokenEvaluationReport> {
    if (examples.tags.length !== examples.sentences.length) fail(`${examples.source} has no tags to evaluate against`);
    this.tags.ids(examples, 'the model', 'evaluate on data tagged with the model\'s tags');
    const { tags, splitSentences } = await this.tagSentences(examples.sentences);
    return { ...tokenClassificationMetrics(examples.tags, tags, { tags: this.tags.names, scheme: this.meta.scheme }), splitSentences };
  }

  dispose(): void {
    this.model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Fine-tuning

export type { TokenTaskData } from './task-types.js';

export interface TokenFineTuneOptions extends TextRunOptions, Pick<ReadTokenOptions, 'format' | 'tagColumn' | 'tokensField' | 'tagsField' | 'tagNames'> {
  /** Training file: CoNLL (word and tag per line) or JSONL ({"tokens", "tags"}) … */
  train?: string;
  /** … or a built-in task: its name ('pos-brown'), or its data (its test split is the evaluation set). */
  task?: string | TokenTaskData;
  /** Evaluation file; default: 10% of the training sentences held out (seeded). */
  eval?: string;
  /** Tokenizer folder or Hub name (default: the shipped one, or the --from model's), or a loaded tokenizer. */
  tokenizer?: string | TextTokenizer;
  allowNetwork?: boolean;
  preset?: string;
  /** A JSON config file, or a partial config object (may name a preset to start from). */
  config?: string | Partial<TextConfig>;
  /** Start from an earlier text model's embeddings and columns (a pretrain, fine-tune or token fine-tune folder). */
  from?: string;
  labelSmoothing?: number;
  /** Which piece of each word carries its tag (default: the task's, else the first; see WordEncoder). */
  scoredPiece?: ScoredPiece;
  /**
   * Word features: an embedding of each word (its normalised form in a vocabulary of the training
   * words) and of its shape (capitals, digits, punctuation), added to every piece of the word
   * (default: a resumed run's; else on from an earlier model that has them; else the task's, else on).
   */
  wordFeatures?: boolean;
  /** The word vocabulary keeps training words seen at least this often (default: the task's, else 2). */
  wordMinCount?: number;
  /** The chance a training word is read as unknown (default: the task's, else 0). */
  wordDropout?: number;
  /**
   * With word features, a context window: each token also reads the embeddings (its pieces',
   * words' and shapes') of up to this many tokens each way, through one linear map (default: a
   * resumed run's, an earlier model's with word features, else the task's, else 2; 0: none).
   */
  wordContext?: number;
  /** Which epoch best.safetensors keeps: the best word accuracy on the evaluation set, or the last (default with a task). */
  keep?: 'best' | 'last';
  /** Seed of the held-out split and the max-length sample (default: seed). */
  splitSeed?: number;
  /**
   * Data-parallel training: each batch is cut into this many shards of sentences, computed at
   * once by the main thread and `workers - 1` worker threads (cpu and wasm backends), their
   * gradients summed, each shard weighted by its scored tokens (docs/threads.md). Deterministic
   * for a given seed and worker count. Default: every core (at most 8) on cpu and wasm for 1,000
   * training sentences or more, else 1 (defaultWorkers).
   */
  workers?: number;
  /**
   * For a caller that guards `out` itself: called once, when everything is read and checked,
   * right before the first write into it; the run then takes no lock of its own. Without it the
   * run guards its folder as fineTune does (lock, resume and overwrite checks).
   */
  begin?: () => Promise<void>;
}

export interface TokenFineTuneResult {
  outDir: string;
  summary: TrainSummary;
  config: TextConfig;
  preset: string | null;
  tags: string[];
  scheme: EntityScheme | null;
  maxLength: number;
  sentences: { train: number; eval: number };
  words: { train: number; eval: number };
  /** Training sentences longer than the max length, and the words cut from them. */
  cut: { sentences: number; words: number };
  /** Evaluation sentences tagged in several windows. */
  splitEvalSentences: number;
  tokenizer: string;
  epochs: number;
  batchSize: number;
  lr: number;
  keep: 'best' | 'last';
  from: string | null;
  /** Word features: the vocabulary's words (without the special and unknown rows), its minimum count and the word dropout; null without. */
  wordFeatures: { words: number; minCount: number; dropout: number; context: number } | null;
  /** Lines worth showing (held-out split, cut sentences, where the columns came from). */
  notes: string[];
}

const HELD_OUT_FRACTION = 0.1;

function countWords(ex: TokenExamples): number {
  return ex.sentences.reduce((n, s) => n + s.length, 0);
}

function pickSentences(ex: TokenExamples, keep: (i: number) => boolean, source: string): TokenExamples {
  const idx = ex.sentences.map((_, i) => i).filter(keep);
  return {
    sentences: idx.map((i) => ex.sentences[i]!),
    tags: ex.tags.length ? idx.map((i) => ex.tags[i]!) : [],
    lines: idx.map((i) => ex.lines[i]!),
    source,
    format: ex.format,
    skipped: 0,
  };
}

/**
 * A built-in token-classification task's data and recipe by name (tasks/<name>.json with kind
 * "token-classification"; today pos-brown). A text-classification task or an unknown name is a
 * one-line error.
 */
export async function loadTokenTask(name: string): Promise<TokenTaskData> {
  if (taskKind(name) !== 'token-classification') {
    fail(`task ${name} labels texts (text classification), not words: train it with fineTune (revcol fine-tune --task ${name} does); token-classification tasks: ${taskNames('token-classification').join(', ') || 'none built in'}`);
  }
  if (name === 'pos-brown') {
    const { loadPosBrownTask } = await import('./datasets/brown-pos.js');
    return loadPosBrownTask();
  }
  fail(`task ${name} is a token-classification task this revcol cannot build (built-in: pos-brown)`);
}

async function taskData(task: string | TokenTaskData): Promise<TokenTaskData> {
  return typeof task === 'string' ? loadTokenTask(task) : task;
}

/**
 * Fine-tunes (or trains from scratch) a RevCol token classifier on tagged sentences and writes
 * its folder: best.safetensors, last.ckpt.safetensors (resume), metrics.jsonl (per epoch: word
 * accuracy, macro-F1 over tags, entity F1 for entity tags), curves and the tokenizer's files.
 * `TokenClassifier.load(out)` loads it.
 */
export async function fineTuneTokens(options: TokenFineTuneOptions): Promise<TokenFineTuneResult> {
  const name = namer(options);
  const { log } = await startTextRun(options, 'token fine-tuning', `a CoNLL or JSONL file of tagged words (${name('train')}), or a task (${name('task')}: pos-brown)`);
  if (options.task && options.eval) fail(`a task brings its own test split: leave out ${name('eval')}`);
  if (options.begin) return fineTuneTokensIn(options, log, options.begin);
  return inRunFolder(options, 'token fine-tune', log, (begin) => fineTuneTokensIn(options, log, () => begin()));
}

/** fineTuneTokens() in its folder: `begin` is called right before the first write into it. */
async function fineTuneTokensIn(options: TokenFineTuneOptions, log: (line: string) => void, begin: () => Promise<void>): Promise<TokenFineTuneResult> {
  const name = namer(options);
  const seed = options.seed ?? 0;
  const splitSeed = options.splitSeed ?? seed;
  const notes: string[] = [];
  if (options.workers !== undefined) checkWhole(options.workers, 1, 'workers', name, ' (1: one thread)');
  if ((options.workers ?? 1) > 1) checkWorkersBackend(name('workers'));

  // Data.
  const readOptions: ReadTokenOptions = { format: options.format, tagColumn: options.tagColumn, tokensField: options.tokensField, tagsField: options.tagsField, tagNames: options.tagNames };
  let trainSet: TokenExamples;
  let evalSet: TokenExamples;
  let task: TokenTaskData | null = null;
  if (options.task) {
    task = await taskData(options.task);
    trainSet = task.train;
    evalSet = task.test;
  } else {
    const all = await readTokenExamples(options.train!, readOptions);
    if (options.eval) {
      trainSet = all;
      evalSet = await readTokenExamples(options.eval, readOptions);
    } else {
      if (all.sentences.length < 2) fail(`${options.train} has ${all.sentences.length} sentence: give more, or an evaluation file (${name('eval')})`);
      const order = seededPermutation(all.sentences.length, mixSeed(splitSeed, 0x70c));
      const held = new Set(order.slice(0, Math.max(1, Math.round(all.sentences.length * HELD_OUT_FRACTION))));
      trainSet = pickSentences(all, (i) => !held.has(i), all.source);
      evalSet = pickSentences(all, (i) => held.has(i), all.source);
      notes.push(`note: no evaluation file: holding out ${evalSet.sentences.length} of ${all.sentences.length} sentences (${HELD_OUT_FRACTION * 100}%) for evaluation`);
    }
  }
  const hyper = task?.hyper ?? {};

  // An earlier model: resume (same everything) or from (its columns).
  const resumeMeta = options.resume ? readTokenMeta(await readResumeMeta(options.out, name), options.out) : null;
  const fromModel = options.from && !resumeMeta ? await loadModelDir(options.from) : null;
  try {
    let fromMeta: EarlierTextMeta | null = null;
    if (fromModel) {
      const m = fromModel.meta;
      if (m.family !== 'text' || !m.config || !Array.isArray(m.labels)) fail(`${options.from} holds no text model: ${name('from')} takes the folder of a text pretrain, fine-tune or token fine-tune`);
      fromMeta = m as unknown as EarlierTextMeta;
    }
    const base = resumeMeta ?? fromMeta;

    // Tags: the resumed model's, the task's or given names' order, else from the training data.
    const tagOrder = resumeMeta?.labels ?? task?.tags ?? options.tagNames;
    const tags = tagOrder ? new TagSet(tagOrder) : TagSet.fromExamples(trainSet);
    const trainTagIds = tags.ids(trainSet, tagOrder ? 'the tag list' : 'the training data', tagOrder ? 'fix the tag, or add it to the tag names' : undefined);
    const evalTagIds = tags.ids(evalSet, tagOrder ? 'the tag list' : 'the training data', tagOrder ? 'fix the tag, or add it to the tag names' : undefined);
    const scheme = detectEntityScheme(tags.names);

    const tokenizer = await resolveTokenizer(options.tokenizer, base ? { dir: resumeMeta ? options.out : options.from!, recorded: base.tokenizer } : null, options.allowNetwork, name);
    // The scored piece: given, else a resumed run's, else the task's, else the first.
    const scoredPiece: ScoredPiece = options.scoredPiece ?? resumeMeta?.scoredPiece ?? task?.scoredPiece ?? 'first';
    if (!SCORED_PIECES.includes(scoredPiece)) fail(`${name('scoredPiece')} must be first or last, got ${String(scoredPiece)}`);
    if (resumeMeta && (resumeMeta.scoredPiece ?? 'first') !== scoredPiece) fail(`the run in ${options.out} scored the ${resumeMeta.scoredPiece ?? 'first'} piece of each word: leave out ${name('scoredPiece')} to resume it`);
    const { vocabulary, wordDropout, wordContext } = await resolveWordFeatures(options, trainSet, resumeMeta, fromMeta && fromModel ? { meta: fromMeta, file: fromModel.file } : null, task, notes);
    const encoder = new WordEncoder(tokenizer, scoredPiece, vocabulary);
    if (base && tokenizer.vocabSize !== base.config.vocabSize) {
      fail(`tokenizer ${tokenizer.source} has ${tokenizer.vocabSize} tokens but the earlier model was trained with ${base.config.vocabSize}: leave out ${name('tokenizer')} to use the model's own`);
    }
    const arch = await resolveArchitecture({
      preset: options.preset,
      config: options.config,
      base,
      taskPreset: task?.preset,
      taskPresetChanges: task?.presetChanges,
      dataSize: trainSet.sentences.length,
      vocabSize: tokenizer.vocabSize,
      numLabels: tags.size,
      mode: options.mode,
      optionName: name,
    });
    const { config, preset: presetName } = arch;
    if (vocabulary) {
      config.words = vocabulary.size;
      config.wordShapes = WORD_SHAPES.length;
      if (wordContext) config.wordContext = wordContext;
      else delete config.wordContext;
    } else {
      delete config.words;
      delete config.wordShapes;
      delete config.wordContext;
    }
    const maxLength = resolveMaxLength(arch, {
      given: options.maxLength,
      resumed: resumeMeta?.maxLength,
      task: hyper.maxLength,
      taskName: task?.name,
      min: encoder.specials + 1,
      choose: () => chooseTokenMaxLength(encoder, trainSet.sentences, config.maxLength, splitSeed),
    }, name);
    const { batchSize, epochs, lr, weightDecay, warmupEpochs, labelSmoothing, keep, note } = resolveTrainingSettings(options, hyper, {
      batchSize: 32,
      trainSize: trainSet.sentences.length,
      epochs: (batch) => chooseEpochs(trainSet.sentences.length, batch),
      lr: fromMeta ? 3e-4 : 1e-3,
      keep: task ? 'last' : 'best',
    }, name);
    if (note) notes.push(note);

    const model = new TokenClassificationModel(new RevColText(config, seed), tags.size, seed);
    try {
      if (fromModel && fromMeta) {
        const keepHead = fromMeta.objective === TOKEN_CLASSIFICATION_OBJECTIVE && fromMeta.labels.length === tags.size && fromMeta.labels.every((t, i) => t === tags.names[i]);
        const own = new Map(model.namedParameters());
        const tensors = new Map([...fromModel.tensors].filter(([name]) => (name.startsWith('embeddings.') && own.has(name)) || name.startsWith('columns.') || (keepHead && name.startsWith(`${TOKEN_HEAD}.`))));
        if (!keepHead) for (const [name, v] of model.head.namedParameters(`${TOKEN_HEAD}.`)) tensors.set(name, v);
        // Word features from a model without them (or another context window): their tables start fresh.
        for (const name of WORD_TABLES) {
          const mine = own.get(name);
          const theirs = tensors.get(name);
          if (mine && (!theirs || theirs.shape.join() !== mine.shape.join())) tensors.set(name, mine);
        }
        model.loadStateDict(tensors, `the weights in ${fromModel.file}`);
        notes.push(`starting from ${options.from}: its embeddings and columns, ${keepHead ? 'and its tagger (same tags)' : 'a new tagger'}`);
      }

      const trainData = new EncodedTokens(encoder, trainSet.sentences, trainTagIds, maxLength, 'cut');
      const evalData = new EncodedTokens(encoder, evalSet.sentences, evalTagIds, maxLength, 'split');
      if (trainData.cutSentences) notes.push(`note: ${trainData.cutSentences} training sentences are longer than ${maxLength} tokens: ${trainData.cutWords} words cut from their ends (raise ${name('maxLength')} to keep them)`);
      const meta: TokenModelMeta = {
        family: 'text',
        objective: TOKEN_CLASSIFICATION_OBJECTIVE,
        config,
        labels: [...tags.names],
        tokenizer: tokenizer.source,
        maxLength,
        scheme,
        scoredPiece,
        ...(vocabulary ? { wordFeatures: { minCount: vocabulary.minCount, dropout: wordDropout } } : {}),
        ...(presetName ? { preset: presetName } : {}),
        ...(task ? { task: task.name } : {}),
      };
      await begin();
      await makeOutputFolder(options.out, name);
      await tokenizer.save(options.out);
      if (vocabulary) await vocabulary.save(options.out);
      notes.forEach((line) => log(line));

      const workers = options.workers ?? defaultWorkers(trainSet.sentences.length);
      const pool = workers > 1 ? await startTokenWorkers(model, workers, labelSmoothing) : null;
      if (pool) log(workersLine(workers, options.workers === undefined, 'training sentences'));
      let summary: TrainSummary;
      try {
        summary = await train<TokenBatch>({
          model,
          trainSize: trainData.size,
          trainBatches: function* (_epoch, shuffleSeed) {
            let k = 0;
            for (const rows of lengthGroupedBatches(trainData.lengths, batchSize, shuffleSeed)) yield trainData.batch(rows, wordDropout, mixSeed(shuffleSeed, 0x30d0 + k++));
          },
          batchSize: (b) => b.inputIds.shape[0],
          lossAndGradients: pool
            ? (b, step) => pool.lossAndGradients(tokenShards(b, pool.shards), mixSeed(seed, step))
            : (b, step) => model.lossAndGradients(b, { seed: mixSeed(seed, step), labelSmoothing }),
          disposeBatch: disposeTokenBatch,
          evaluate: async () => {
            const probs = await readLater(predictWords(model, evalData));
            const predicted = probs.map((p) => argmaxTags(p, tags.names).tags);
            const m = tokenClassificationMetrics(evalSet.tags, predicted, { tags: tags.names, scheme });
            return { accuracy: m.accuracy, macroF1: m.macroF1, ...(m.entities ? { entityF1: m.entities.f1 } : {}) };
          },
        }, {
          ...runTrainOptions(options, log),
          epochs,
          lr,
          weightDecay,
          warmupEpochs,
          keep,
          meta: meta as unknown as Record<string, unknown>,
          title: `RevCol token classifier (${presetName ?? 'custom config'})`,
        });
      } finally {
        await pool?.close();
      }
      return {
        outDir: options.out,
        summary,
        config,
        preset: presetName,
        tags: [...tags.names],
        scheme,
        maxLength,
        sentences: { train: trainSet.sentences.length, eval: evalSet.sentences.length },
        words: { train: countWords(trainSet), eval: countWords(evalSet) },
        cut: { sentences: trainData.cutSentences, words: trainData.cutWords },
        splitEvalSentences: evalData.splitSentences,
        tokenizer: tokenizer.source,
        epochs,
        batchSize,
        lr,
        keep,
        from: fromModel ? options.from! : null,
        wordFeatures: vocabulary ? { words: vocabulary.words.length, minCount: vocabulary.minCount, dropout: wordDropout, context: wordContext } : null,
        notes,
      };
    } finally {
      model.dispose();
    }
  } finally {
    fromModel?.tensors.forEach((t) => t.dispose());
  }
}

/**
 * Word features and their context window are on unless a task or the caller says otherwise: on
 * part of the Brown corpus through the generic path (5,000 training sentences, text-tiny, 4
 * epochs) they took word accuracy from 90.44% to 91.52% (words and shapes) and 94.68% (with a
 * context window of 2); docs/token-classification.md.
 */
const DEFAULT_WORD_FEATURES = true;
const DEFAULT_WORD_CONTEXT = 2;

/** The word-feature tables' parameter names. */
const WORD_TABLES = ['embeddings.words', 'embeddings.shapes', 'embeddings.context.weight'];

/**
 * Word features of a token fine-tune: a resumed run's (its words.json); else on when given, else
 * when the --from model has them, else when the task turns them on; then the --from model's
 * vocabulary (and tables) when it has them, else a vocabulary of the training words. Null
 * without word features.
 */
async function resolveWordFeatures(
  options: TokenFineTuneOptions,
  trainSet: TokenExamples,
  resumeMeta: TokenModelMeta | null,
  from: { meta: EarlierTextMeta; file: string } | null,
  task: TokenTaskData | null,
  notes: string[],
): Promise<{ vocabulary: WordVocabulary | null; wordDropout: number; wordContext: number }> {
  const name = namer(options);
  let on: boolean;
  if (resumeMeta) {
    on = Boolean(resumeMeta.config.words);
    if (options.wordFeatures !== undefined && options.wordFeatures !== on) fail(`the run in ${options.out} was trained ${on ? 'with' : 'without'} word features: leave out ${name('wordFeatures')} to resume it`);
  } else {
    on = options.wordFeatures ?? (from?.meta.config.words ? true : undefined) ?? task?.wordFeatures ?? DEFAULT_WORD_FEATURES;
  }
  if (!on) {
    for (const option of ['wordMinCount', 'wordDropout', 'wordContext'] as const) {
      if (options[option] !== undefined && options[option] !== 0) fail(`${name(option)} is for word features, which this run has not: leave it out, or turn them on (${name('wordFeatures')})`);
    }
    return { vocabulary: null, wordDropout: 0, wordContext: 0 };
  }
  const earlier = resumeMeta ? resumeMeta.config : from?.meta.config.words ? from.meta.config : null;
  const wordContext = options.wordContext ?? (earlier ? earlier.wordContext ?? 0 : undefined) ?? task?.wordContext ?? DEFAULT_WORD_CONTEXT;
  if (!Number.isInteger(wordContext) || wordContext < 0) fail(`${name('wordContext')} must be a whole number ≥ 0 (0: no context window), got ${JSON.stringify(wordContext)}`);
  if (resumeMeta && wordContext !== (resumeMeta.config.wordContext ?? 0)) fail(`the run in ${options.out} has a word context window of ${resumeMeta.config.wordContext ?? 0}: leave out ${name('wordContext')} to resume it`);
  const wordDropout = options.wordDropout ?? resumeMeta?.wordFeatures?.dropout ?? task?.wordDropout ?? 0;
  if (typeof wordDropout !== 'number' || !(wordDropout >= 0 && wordDropout < 1)) fail(`${name('wordDropout')} must be a number in [0, 1), got ${JSON.stringify(wordDropout)}`);
  if (resumeMeta) {
    if (options.wordMinCount !== undefined && options.wordMinCount !== resumeMeta.wordFeatures?.minCount) fail(`the run in ${options.out} has its word vocabulary (minimum count ${resumeMeta.wordFeatures?.minCount}): leave out ${name('wordMinCount')} to resume it`);
    return { vocabulary: await WordVocabulary.read(options.out, resumeMeta.config.words), wordDropout, wordContext };
  }
  if (from?.meta.config.words) {
    if (options.wordMinCount !== undefined) fail(`${options.from} brings its word vocabulary: leave out ${name('wordMinCount')}, or start its word features afresh from a model without them`);
    const vocabulary = await WordVocabulary.read(from.file, from.meta.config.words);
    notes.push(`word features: the word vocabulary of ${options.from} (${vocabulary.words.length} words) and its tables`);
    return { vocabulary, wordDropout, wordContext };
  }
  const minCount = options.wordMinCount ?? task?.wordMinCount ?? 2;
  if (!Number.isInteger(minCount) || minCount < 1) fail(`${name('wordMinCount')} must be a whole number ≥ 1, got ${JSON.stringify(minCount)}`);
  const vocabulary = WordVocabulary.build(trainSet.sentences, minCount);
  notes.push(`word features: ${vocabulary.words.length} training words seen ${minCount} or more times (lowercased, digits as 0), ${WORD_SHAPES.length - 1} word shapes${wordDropout ? `, word dropout ${wordDropout}` : ''}${wordContext ? `, a context window of ${wordContext} tokens each way` : ''}`);
  return { vocabulary, wordDropout, wordContext };
}

/** What any text model's folder records that a token fine-tune --from reads. */
interface EarlierTextMeta {
  config: TextConfig;
  tokenizer: string;
  labels: string[];
  objective?: string;
  preset?: string;
}

/** The factory each data-parallel worker calls (by name, loading this module by URL): a fresh model of the config; its weights come from the main thread every step. */
export function createTokenReplica(options: TokenReplicaOptions): Replica<PositionShard> {
  return tokenReplica(new TokenClassificationModel(new RevColText(options.config, 0), options.numTags, 0), options.labelSmoothing);
}

/** Data-parallel workers for `model`: `workers - 1` threads, each with a replica of it (src/text/data-parallel-token.ts). */
export function startTokenWorkers(model: TokenClassificationModel, workers: number, labelSmoothing: number): Promise<DataParallel<PositionShard>> {
  return startTokenPool(model, workers, labelSmoothing, { module: import.meta.url, name: 'createTokenReplica' });
}
