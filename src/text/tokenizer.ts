import * as tf from '@tensorflow/tfjs-core';
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tokenizer } from '@huggingface/tokenizers';
import { fail, RevcolError } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';

/** A batch ready for a text model: ids and mask are [B, maxLength], padded and truncated as `encode` describes. */
export interface EncodedBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /** How many of the texts had more than maxLength tokens (special tokens included) and were cut. */
  truncated: number;
}

export interface TokenizerLoadOptions {
  /** Allow fetching a Hugging Face Hub tokenizer that is not downloaded yet (CLI: --allow-network). */
  allowNetwork?: boolean;
  /** Where downloaded Hub tokenizers live; default $REVCOL_CACHE_DIR, else $XDG_CACHE_HOME/revcol or ~/.cache/revcol, then /tokenizers. */
  cacheDir?: string;
  /** How errors name options (default as written here, e.g. `allowNetwork`; the CLI passes its flags' names). */
  optionName?: (option: string) => string;
}

/** The tokenizers that ship in the package's tokenizers/ folder, by name. */
export const SHIPPED_TOKENIZERS = ['bert-base-uncased'] as const;
export const DEFAULT_TOKENIZER = `builtin:${SHIPPED_TOKENIZERS[0]}`;
const BUILTIN_PREFIX = 'builtin:';

// src/text/ and dist/text/ both sit two levels below the package root.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHIPPED_TOKENIZER_DIR = path.join(packageRoot, 'tokenizers');

const HUB_NAME = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;
/** Tokenizer files, as Hugging Face `tokenizers` and transformers.js read them. */
const FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

type JsonObject = Record<string, unknown>;

interface Row {
  ids: Int32Array;
  mask: Int32Array;
  truncated: boolean;
}

function defaultCacheDir(): string {
  const base =
    process.env.REVCOL_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'revcol');
  return path.join(base, 'tokenizers');
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!.trim();
}

async function readJsonFile(folder: string, file: string, what: string): Promise<JsonObject> {
  const full = path.join(folder, file);
  let text: string;
  try {
    text = await fs.readFile(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      fail(`${what} has no ${file}; a tokenizer folder needs ${FILES.join(' and ')} (as saved by Hugging Face tokenizers)`);
    }
    fail(`cannot read ${full}: ${code ?? firstLine(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    fail(`${full} is not valid JSON (${firstLine(err)}); replace it with the tokenizer's original file`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(`${full} must hold a JSON object; replace it with the tokenizer's original file`);
  }
  return value as JsonObject;
}

type TokenizersModule = typeof import('@huggingface/tokenizers');
let tokenizersModule: Promise<TokenizersModule> | undefined;
/** Loaded on first use, so that commands which never tokenize do not pay for it. */
function tokenizers(): Promise<TokenizersModule> {
  tokenizersModule ??= import('@huggingface/tokenizers');
  return tokenizersModule;
}

/** A token named in tokenizer_config.json: a string, or an AddedToken object with its content. */
function configToken(config: JsonObject, ...keys: string[]): string | null {
  for (const key of keys) {
    const item = config[key];
    if (!item) continue;
    if (typeof item === 'string') return item;
    if (typeof item === 'object' && typeof (item as JsonObject).content === 'string') return (item as JsonObject).content as string;
  }
  return null;
}

/**
 * A text tokenizer backed by @huggingface/tokenizers (the pure-JavaScript tokenizers of the
 * transformers.js family, no native code): the library does normalisation, word pieces and special
 * tokens from a standard tokenizer.json; this class loads it offline, truncates and pads rows, turns
 * them into tfjs tensors, and caches rows so that re-encoding a data set every epoch is free.
 */
export class TextTokenizer {
  /** Where it came from: `builtin:NAME`, an absolute folder, or a Hub name. */
  readonly source: string;
  readonly vocabSize: number;
  readonly padTokenId: number;
  /** The [MASK] token's id (masked-LM pre-training), or null when the tokenizer has none. */
  readonly maskTokenId: number | null;
  /** Ids of the special tokens ([CLS], [SEP], [PAD], …), which pre-training never masks. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** The tokenizer's own model_max_length (512 for BERT); RevCol text models learn their own positions, so encode may go beyond it. */
  readonly modelMaxLength: number;
  private readonly tokenizer: Tokenizer;
  private readonly files: { tokenizer: JsonObject; config: JsonObject };
  /** Whether a prefix of a text cut at whitespace tokenizes to a prefix of the text's tokens (true for BERT-style pipelines). */
  private readonly prefixStable: boolean;
  /** Beyond this many cached rows the encode cache starts over, bounding its memory (~1 KB a row at length 256). */
  cacheLimit = 200_000;
  private readonly rows = new Map<number, Map<string, Row>>();
  private cachedRows = 0;

  private constructor(source: string, tokenizer: Tokenizer, files: { tokenizer: JsonObject; config: JsonObject }) {
    this.source = source;
    this.tokenizer = tokenizer;
    this.files = files;
    const idOf = (token: string | null): number | undefined => (token === null ? undefined : tokenizer.token_to_id(token));
    // As transformers.js chooses them: pad_token, else eos_token.
    const padId = idOf(configToken(files.config, 'pad_token', 'eos_token'));
    if (typeof padId !== 'number') {
      fail(`tokenizer ${source} has no padding token; set pad_token in its tokenizer_config.json`);
    }
    this.padTokenId = padId;
    const maskId = idOf(configToken(files.config, 'mask_token'));
    this.maskTokenId = typeof maskId === 'number' ? maskId : null;
    const special = (files.tokenizer.added_tokens as JsonObject[]).filter((t) => t.special === true && typeof t.id === 'number').map((t) => t.id as number);
    this.specialTokenIds = new Set([padId, ...special]);
    // Every id the tokenizer can produce is below this (added tokens included).
    let top = -1;
    for (const id of tokenizer.get_vocab(true).values()) if (id > top) top = id;
    this.vocabSize = top + 1;
    const max = Number(files.config.model_max_length);
    this.modelMaxLength = Number.isFinite(max) && max > 0 ? max : Number.POSITIVE_INFINITY;
    const normalizer = (files.tokenizer.normalizer as JsonObject | null)?.type;
    const preTokenizer = (files.tokenizer.pre_tokenizer as JsonObject | null)?.type;
    this.prefixStable =
      (normalizer === undefined || normalizer === 'BertNormalizer') &&
      (preTokenizer === 'BertPreTokenizer' || preTokenizer === 'Whitespace' || preTokenizer === 'WhitespaceSplit');
  }

  /**
   * Loads a tokenizer. `source`: omitted or `builtin:NAME` for one shipped in tokenizers/; a folder
   * with tokenizer.json and tokenizer_config.json; or a Hugging Face Hub name, which is read from
   * the download cache and fetched only with `allowNetwork`.
   */
  static async load(source?: string, options: TokenizerLoadOptions = {}): Promise<TextTokenizer> {
    const spec = source ?? DEFAULT_TOKENIZER;
    if (spec.startsWith(BUILTIN_PREFIX)) {
      const name = spec.slice(BUILTIN_PREFIX.length);
      if (!(SHIPPED_TOKENIZERS as readonly string[]).includes(name)) {
        fail(`no shipped tokenizer named ${name}; shipped: ${SHIPPED_TOKENIZERS.join(', ')}`);
      }
      return TextTokenizer.fromFolder(path.join(SHIPPED_TOKENIZER_DIR, name), spec);
    }
    const looksLikePath = spec.startsWith('.') || spec.startsWith('~') || path.isAbsolute(spec) || spec.includes('\\');
    if (existsSync(spec) || looksLikePath) {
      const folder = path.resolve(spec.startsWith('~') ? path.join(os.homedir(), spec.slice(1)) : spec);
      return TextTokenizer.fromFolder(folder, folder);
    }
    if (!HUB_NAME.test(spec)) {
      fail(`tokenizer ${JSON.stringify(spec)} is neither an existing folder nor a Hugging Face Hub name (like bert-base-uncased)`);
    }
    return TextTokenizer.fromHub(spec, options);
  }

  /** Reads tokenizer.json + tokenizer_config.json from a folder and builds the library's tokenizer for them. */
  static async fromFolder(folder: string, source: string = folder): Promise<TextTokenizer> {
    let stat;
    try {
      stat = statSync(folder);
    } catch {
      fail(`tokenizer folder ${folder} does not exist; give a folder with ${FILES.join(' and ')}, or a Hub name`);
    }
    if (!stat.isDirectory()) {
      fail(`${folder} is a file; the tokenizer must be a folder with ${FILES.join(' and ')}`);
    }
    const what = `tokenizer folder ${folder}`;
    // Name every missing file at once, and read in a fixed order so the message never depends on which read ends first.
    const missing = FILES.filter((file) => !existsSync(path.join(folder, file)));
    if (missing.length > 0) {
      fail(`${what} has no ${missing.join(' and no ')}; a tokenizer folder needs ${FILES.join(' and ')} (as saved by Hugging Face tokenizers)`);
    }
    const tokenizerJson = await readJsonFile(folder, FILES[0], what);
    const config = await readJsonFile(folder, FILES[1], what);
    const { Tokenizer } = await tokenizers();
    let tokenizer: Tokenizer;
    try {
      if (!Array.isArray(tokenizerJson.added_tokens)) throw new Error('added_tokens is missing');
      const model = tokenizerJson.model as JsonObject | undefined;
      if (!model || typeof model !== 'object' || typeof model.type !== 'string') throw new Error('model.type is missing');
      // The library keeps parts of what it is given; our copies stay as read, for save().
      tokenizer = new Tokenizer(structuredClone(tokenizerJson), structuredClone(config));
    } catch (err) {
      if (err instanceof RevcolError) throw err;
      fail(`${path.join(folder, FILES[0])} is not a tokenizer @huggingface/tokenizers can load (${firstLine(err)})`);
    }
    return new TextTokenizer(source, tokenizer, { tokenizer: tokenizerJson, config });
  }

  private static async fromHub(name: string, options: TokenizerLoadOptions): Promise<TextTokenizer> {
    const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
    const cached = path.join(cacheDir, name);
    const isCached = FILES.every((f) => existsSync(path.join(cached, f)));
    if (!isCached) {
      if (!options.allowNetwork) {
        const optionName = options.optionName ?? ((o: string) => o);
        const shipped = (SHIPPED_TOKENIZERS as readonly string[]).includes(name)
          ? ` (a copy ships with revcol: leave out ${optionName('tokenizer')}, or give ${BUILTIN_PREFIX}${name})`
          : '';
        fail(
          `tokenizer ${name} is not a folder here and has not been downloaded; pass ${optionName('allowNetwork')} to fetch it from the Hugging Face Hub, or give a folder with ${FILES.join(' and ')}${shipped}`,
        );
      }
      await downloadFromHub(name, cached);
    }
    return TextTokenizer.fromFolder(cached, name);
  }

  /** Writes tokenizer.json and tokenizer_config.json into a folder (a model folder keeps its tokenizer beside it). */
  async save(folder: string): Promise<void> {
    await writeFileAtomic(path.join(folder, FILES[0]), `${JSON.stringify(this.files.tokenizer)}\n`);
    await writeFileAtomic(path.join(folder, FILES[1]), `${JSON.stringify(this.files.config, null, 2)}\n`);
  }

  /**
   * Tokenizes, adds special tokens, truncates to maxLength and pads to maxLength on the right with
   * the padding token. Truncation cuts the finished sequence, special tokens included, so a cut
   * text ends without its final [SEP]: the rule of @xenova/transformers 2.17, which revcol used
   * before, kept so that models trained then see the same ids. Returns int32 [B, maxLength] ids and mask.
   */
  encode(texts: string[], maxLength: number): EncodedBatch {
    const rows = this.encodeRows(texts, maxLength);
    const ids = new Int32Array(texts.length * maxLength);
    const mask = new Int32Array(texts.length * maxLength);
    let truncated = 0;
    rows.forEach((row, i) => {
      ids.set(row.ids, i * maxLength);
      mask.set(row.mask, i * maxLength);
      if (row.truncated) truncated++;
    });
    return {
      inputIds: tf.tensor2d(ids, [texts.length, maxLength], 'int32'),
      attentionMask: tf.tensor2d(mask, [texts.length, maxLength], 'int32'),
      truncated,
    };
  }

  /**
   * Token counts with special tokens, before truncation. With `cap`, counts above cap come back as
   * cap + 1 (enough to tell a text would be cut at cap), which is much cheaper on long texts.
   */
  countTokens(texts: string[], cap?: number): number[] {
    if (cap !== undefined) {
      return this.encodeRows(texts, cap).map((row) => (row.truncated ? cap + 1 : row.mask.reduce((a, b) => a + b, 0)));
    }
    return texts.map((text) => this.ids(text).length);
  }

  /**
   * Sentence pairs as BERT reads them, `[CLS] a [SEP] b [SEP]`, padded to maxLength, with token
   * types 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`. Too long a pair is cut longest-first (as
   * Hugging Face does): a token at a time from whichever text is longer (from b on a tie), so
   * both keep as much as they can and the closing [SEP]s stay. Int32 rows of [pairs, maxLength].
   */
  encodePairs(a: string[], b: string[], maxLength: number): { ids: Int32Array; mask: Int32Array; types: Int32Array; truncated: number } {
    if (a.length !== b.length) fail(`encodePairs takes as many second texts as first texts (${a.length} and ${b.length})`);
    const [cls, sep1, sep2] = this.pairSpecials();
    if (!Number.isInteger(maxLength) || maxLength < 5) fail(`max length of sentence pairs must be an integer of at least 5 (got ${maxLength})`);
    const n = a.length;
    const ids = new Int32Array(n * maxLength).fill(this.padTokenId);
    const mask = new Int32Array(n * maxLength);
    const types = new Int32Array(n * maxLength);
    let truncated = 0;
    const room = maxLength - 3;
    for (let i = 0; i < n; i++) {
      const pa = this.pieces(a[i]!);
      const pb = this.pieces(b[i]!);
      let keepA = pa.length;
      let keepB = pb.length;
      if (keepA + keepB > room) {
        truncated++;
        // Longest-first in closed form: the shorter text keeps all it has up to half the room.
        const half = Math.floor(room / 2);
        if (keepA <= keepB) {
          keepA = Math.min(keepA, Math.ceil(room / 2));
          keepB = room - keepA;
        } else {
          keepB = Math.min(keepB, half);
          keepA = room - keepB;
        }
      }
      const row = [cls, ...pa.slice(0, keepA), sep1, ...pb.slice(0, keepB), sep2];
      const at = i * maxLength;
      row.forEach((id, j) => { ids[at + j] = id; });
      mask.fill(1, at, at + row.length);
      types.fill(1, at + keepA + 2, at + row.length);
    }
    return { ids, mask, types, truncated };
  }

  /**
   * Rows as `encode` gives them, except that a text too long keeps its first and last tokens:
   * the closing special tokens stay, a quarter of the room goes to the text's start and the rest
   * to its end (Sun et al. 2019 found head 128 + tail 382 of 510 best on long reviews; the end of
   * a message, past its headers, is what tells most). A text that fits is encoded exactly as by
   * `encode`. Int32 rows of [texts, maxLength].
   */
  encodeHeadTail(texts: string[], maxLength: number): { ids: Int32Array; mask: Int32Array; truncated: number } {
    const [before, after] = this.singleSpecials();
    if (!Number.isInteger(maxLength) || maxLength < before + after + 2) fail(`max length with head+tail truncation must be an integer of at least ${before + after + 2} (got ${maxLength})`);
    const rows = this.encodeRows(texts, maxLength);
    const ids = new Int32Array(texts.length * maxLength);
    const mask = new Int32Array(texts.length * maxLength);
    let truncated = 0;
    const room = maxLength - before - after;
    const head = Math.max(1, Math.floor(room / 4));
    rows.forEach((row, i) => {
      const at = i * maxLength;
      if (!row.truncated) {
        ids.set(row.ids, at);
        mask.set(row.mask, at);
        return;
      }
      truncated++;
      const all = this.ids(texts[i]!);
      const inner = all.slice(before, all.length - after);
      const kept = [...all.slice(0, before), ...inner.slice(0, head), ...inner.slice(inner.length - (room - head)), ...all.slice(all.length - after)];
      ids.set(kept, at);
      mask.fill(1, at, at + maxLength);
    });
    return { ids, mask, truncated };
  }

  /**
   * Each text as up to `windows` overlapping windows of maxLength tokens, each framed by the
   * special tokens ([CLS] … [SEP]); a window starts half a window's text tokens after the one
   * before (the last one ends at the text's end, when the cap allows). A text that fits is one
   * window, encoded exactly as by `encode`. Returns the rows (window rows of [rows, maxLength]),
   * where each text's windows start (`first`, texts + 1 offsets), and per text how many of its
   * text tokens the windows cover and how many it has.
   */
  encodeWindows(texts: string[], maxLength: number, windows: number): { ids: Int32Array; mask: Int32Array; first: Int32Array; covered: Int32Array; tokens: Int32Array } {
    const [before, after] = this.singleSpecials();
    if (!Number.isInteger(maxLength) || maxLength < before + after + 2) fail(`max length with windows must be an integer of at least ${before + after + 2} (got ${maxLength})`);
    const room = maxLength - before - after;
    const stride = Math.max(1, Math.floor(room / 2));
    const rows = this.encodeRows(texts, maxLength);
    const first = new Int32Array(texts.length + 1);
    const covered = new Int32Array(texts.length);
    const tokens = new Int32Array(texts.length);
    const out: number[][] = [];
    rows.forEach((row, i) => {
      first[i] = out.length;
      if (!row.truncated) {
        out.push(Array.from(row.ids.subarray(0, row.mask.reduce((a, b) => a + b, 0))));
        tokens[i] = covered[i] = Math.max(0, out[out.length - 1]!.length - before - after);
        return;
      }
      const all = this.ids(texts[i]!);
      const inner = all.slice(before, all.length - after);
      const starts: number[] = [];
      for (let s = 0; starts.length < windows; s += stride) {
        starts.push(Math.min(s, inner.length - room));
        if (s + room >= inner.length) break;
      }
      for (const s of starts) out.push([...all.slice(0, before), ...inner.slice(s, s + room), ...all.slice(all.length - after)]);
      tokens[i] = inner.length;
      covered[i] = Math.min(inner.length, starts[starts.length - 1]! + room);
    });
    first[texts.length] = out.length;
    const ids = new Int32Array(out.length * maxLength).fill(this.padTokenId);
    const mask = new Int32Array(out.length * maxLength);
    out.forEach((w, k) => {
      ids.set(w, k * maxLength);
      mask.fill(1, k * maxLength, k * maxLength + w.length);
    });
    return { ids, mask, first, covered, tokens };
  }

  /** Whether head+tail truncation can cut this tokenizer's texts (it keeps a one-piece text whole between its special tokens). */
  cutsHeadTail(): boolean {
    try {
      this.singleSpecials();
      return true;
    } catch {
      return false;
    }
  }

  /** How many special tokens the tokenizer puts before and after a single text ([CLS] … [SEP]: 1 and 1). */
  private singleSpecials(): [number, number] {
    if (!this.singleIds) {
      const ids = this.ids('a');
      const piece = this.pieces('a');
      const before = ids.indexOf(piece[0]!);
      if (piece.length !== 1 || before < 0) fail(`tokenizer ${this.source} does not keep a one-piece text whole: head+tail truncation needs a BERT-style tokenizer`);
      this.singleIds = [before, ids.length - before - 1];
    }
    return this.singleIds;
  }

  private singleIds: [number, number] | null = null;

  /** The [CLS], middle [SEP] and final [SEP] ids of the tokenizer's pair template; a tokenizer without one is an error. */
  private pairSpecials(): [number, number, number] {
    if (!this.pairIds) {
      // Where the template puts its special tokens, read off a pair of one-piece texts.
      const ids = this.tokenizer.encode('a', { text_pair: 'a' }).ids;
      const piece = this.pieces('a');
      if (ids.length !== 2 * piece.length + 3 || piece.length !== 1) fail(`tokenizer ${this.source} has no [CLS] a [SEP] b [SEP] pair template: sentence pairs need a BERT-style tokenizer`);
      this.pairIds = [ids[0]!, ids[2]!, ids[4]!];
    }
    return this.pairIds;
  }

  private pairIds: [number, number, number] | null = null;

  /** A text's ids without special tokens, untruncated. */
  private pieces(text: string): number[] {
    if (typeof text !== 'string') fail('a sentence pair\'s texts must be strings');
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Token strings of one text, special tokens included (for inspection and docs). */
  tokens(text: string): string[] {
    return this.tokenizer.encode(text).tokens;
  }

  /** The underlying @huggingface/tokenizers Tokenizer. */
  get library(): Tokenizer {
    return this.tokenizer;
  }

  /** A text's ids with special tokens, untruncated. */
  private ids(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }

  private encodeRows(texts: string[], maxLength: number): Row[] {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      fail(`max length must be an integer of at least 2 (got ${maxLength})`);
    }
    for (const [i, t] of texts.entries()) {
      if (typeof t !== 'string') fail(`text ${i} is not a string`);
    }
    let cache = this.rows.get(maxLength);
    if (!cache) {
      cache = new Map();
      this.rows.set(maxLength, cache);
    }
    let missing = [...new Set(texts.filter((t) => !cache.has(t)))];
    if (missing.length > 0) {
      if (this.cachedRows + missing.length > this.cacheLimit) {
        for (const m of this.rows.values()) m.clear();
        this.cachedRows = 0;
        missing = [...new Set(texts)];
      }
      for (const t of missing) {
        cache.set(t, this.prefixStable ? this.encodeByPrefix(t, maxLength) : toRow(this.ids(t), maxLength, this.padTokenId));
      }
      this.cachedRows += missing.length;
    }
    return texts.map((t) => cache.get(t)!);
  }

  /**
   * Same row as encoding the whole text, faster on long texts: with a BERT-style normaliser and
   * pre-tokeniser nothing crosses whitespace, so a prefix cut just before whitespace yields a
   * prefix of the full token sequence, followed by the closing special tokens. When the prefix
   * alone has maxLength + 2 tokens or more (special tokens included), its first maxLength + 1 are
   * the text's, which settles the row and that it was cut; otherwise the prefix grows.
   */
  private encodeByPrefix(text: string, maxLength: number): Row {
    for (let budget = (maxLength + 2) * 8; ; budget *= 4) {
      const prefix = prefixAtWhitespace(text, budget);
      const ids = this.ids(prefix);
      if (prefix.length === text.length || ids.length >= maxLength + 2) return toRow(ids, maxLength, this.padTokenId);
    }
  }
}

/** A full id sequence cut to maxLength and padded on the right; `truncated` when it was longer. */
function toRow(ids: number[], maxLength: number, padId: number): Row {
  const n = Math.min(ids.length, maxLength);
  const row = { ids: new Int32Array(maxLength).fill(padId), mask: new Int32Array(maxLength), truncated: ids.length > maxLength };
  for (let i = 0; i < n; i++) row.ids[i] = ids[i]!;
  row.mask.fill(1, 0, n);
  return row;
}

/** Fetches a Hub tokenizer's two files into `folder` (HF_ENDPOINT overrides https://huggingface.co). */
async function downloadFromHub(name: string, folder: string): Promise<void> {
  const endpoint = (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const texts: string[] = [];
  for (const file of FILES) {
    const url = `${endpoint}/${name}/resolve/main/${file}`;
    let text: string;
    try {
      const response = await fetch(url);
      if (!response.ok) {
        const why = response.status === 404 ? 'not found (the repository may not exist, or has no such file)' : `HTTP ${response.status}`;
        fail(`could not download tokenizer ${name} from the Hugging Face Hub: ${file}: ${why}`);
      }
      text = await response.text();
    } catch (err) {
      if (err instanceof RevcolError) throw err;
      const cause = (err as { cause?: unknown }).cause;
      fail(`could not download tokenizer ${name} from the Hugging Face Hub: ${firstLine(cause ?? err)}`);
    }
    try {
      JSON.parse(text);
    } catch {
      fail(`could not download tokenizer ${name} from the Hugging Face Hub: ${file} is not JSON`);
    }
    texts.push(text);
  }
  // Both files or neither: a half-written folder would count as not downloaded anyway.
  for (const [i, file] of FILES.entries()) await writeFileAtomic(path.join(folder, file), texts[i]!);
}

/** The longest prefix of at most about `budget` characters that ends just before a whitespace character. */
function prefixAtWhitespace(text: string, budget: number): string {
  if (text.length <= budget) return text;
  for (let i = budget; i > budget / 2; i--) {
    if (/\s/.test(text[i]!)) return text.slice(0, i);
  }
  const after = text.slice(budget).search(/\s/);
  return after < 0 ? text : text.slice(0, budget + after);
}
