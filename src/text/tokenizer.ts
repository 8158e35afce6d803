import * as tf from '@tensorflow/tfjs-core';
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PreTrainedTokenizer } from '@xenova/transformers';
import { fail, RevcolError } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';

/** A batch ready for a text model: ids and mask are [B, maxLength], padded and truncated by the tokenizer library. */
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

type Transformers = typeof import('@xenova/transformers');
let transformersModule: Promise<Transformers> | undefined;
/** Loaded on first use: the library pulls in onnxruntime and sharp, which other commands never need. */
function transformers(): Promise<Transformers> {
  transformersModule ??= import('@xenova/transformers');
  return transformersModule;
}

/**
 * A text tokenizer backed by @xenova/transformers: the library does normalisation, word pieces,
 * special tokens, padding, truncation and attention masks; this class loads it offline, turns
 * its output into tfjs tensors, and caches rows so that re-encoding a data set every epoch is free.
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
  private readonly tokenizer: PreTrainedTokenizer;
  private readonly files: { tokenizer: JsonObject; config: JsonObject };
  /** Whether a prefix of a text cut at whitespace tokenizes to a prefix of the text's tokens (true for BERT-style pipelines). */
  private readonly prefixStable: boolean;
  /** Beyond this many cached rows the encode cache starts over, bounding its memory (~1 KB a row at length 256). */
  cacheLimit = 200_000;
  private readonly rows = new Map<number, Map<string, Row>>();
  private cachedRows = 0;

  private constructor(source: string, tokenizer: PreTrainedTokenizer, files: { tokenizer: JsonObject; config: JsonObject }) {
    this.source = source;
    this.tokenizer = tokenizer;
    this.files = files;
    const padId = tokenizer.pad_token_id;
    if (typeof padId !== 'number') {
      fail(`tokenizer ${source} has no padding token; set pad_token in its tokenizer_config.json`);
    }
    this.padTokenId = padId;
    this.maskTokenId = typeof tokenizer.mask_token_id === 'number' ? tokenizer.mask_token_id : null;
    this.specialTokenIds = new Set([padId, ...(tokenizer.all_special_ids ?? [])]);
    this.vocabSize = tokenizer.model.vocab.length;
    const max = Number(tokenizer.model_max_length);
    this.modelMaxLength = Number.isFinite(max) && max > 0 ? max : Number.POSITIVE_INFINITY;
    // The library clamps max_length to model_max_length; lift the clamp on our own instance only.
    tokenizer.model_max_length = Number.MAX_SAFE_INTEGER;
    const normalizer = (files.tokenizer.normalizer as JsonObject | null)?.type;
    const preTokenizer = (files.tokenizer.pre_tokenizer as JsonObject | null)?.type;
    this.prefixStable =
      (normalizer === undefined || normalizer === 'BertNormalizer') &&
      (preTokenizer === 'BertPreTokenizer' || preTokenizer === 'Whitespace' || preTokenizer === 'WhitespaceSplit') &&
      tokenizer.padding_side === 'right';
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

  /** Reads tokenizer.json + tokenizer_config.json from a folder and builds the library's tokenizer class for them. */
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
    const { AutoTokenizer, PreTrainedTokenizer } = await transformers();
    // The same choice AutoTokenizer.from_pretrained makes, on JSON we have read and checked ourselves.
    const className = typeof config.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : '';
    const mapping = AutoTokenizer.TOKENIZER_CLASS_MAPPING as unknown as Record<string, typeof PreTrainedTokenizer>;
    const TokenizerClass = mapping[className] ?? PreTrainedTokenizer;
    let tokenizer: PreTrainedTokenizer;
    try {
      if (!Array.isArray(tokenizerJson.added_tokens)) throw new Error('added_tokens is missing');
      const model = tokenizerJson.model as JsonObject | undefined;
      if (!model || typeof model !== 'object' || typeof model.type !== 'string') throw new Error('model.type is missing');
      tokenizer = new TokenizerClass(tokenizerJson, config);
    } catch (err) {
      if (err instanceof RevcolError) throw err;
      fail(`${path.join(folder, FILES[0])} is not a tokenizer @xenova/transformers can load (${firstLine(err)})`);
    }
    return new TextTokenizer(source, tokenizer, { tokenizer: tokenizerJson, config });
  }

  private static async fromHub(name: string, options: TokenizerLoadOptions): Promise<TextTokenizer> {
    const cacheDir = path.resolve(options.cacheDir ?? defaultCacheDir());
    const cached = path.join(cacheDir, name);
    const isCached = FILES.every((f) => existsSync(path.join(cached, f)));
    if (!isCached) {
      if (!options.allowNetwork) {
        const shipped = (SHIPPED_TOKENIZERS as readonly string[]).includes(name)
          ? ` (a copy ships with revcol: leave out --tokenizer, or give ${BUILTIN_PREFIX}${name})`
          : '';
        fail(
          `tokenizer ${name} is not a folder here and has not been downloaded; pass --allow-network to fetch it from the Hugging Face Hub, or give a folder with ${FILES.join(' and ')}${shipped}`,
        );
      }
      const { AutoTokenizer, env } = await transformers();
      const saved = { ...env };
      env.allowRemoteModels = true;
      env.allowLocalModels = false;
      env.useFSCache = true;
      env.cacheDir = cacheDir;
      try {
        await AutoTokenizer.from_pretrained(name);
      } catch (err) {
        fail(`could not download tokenizer ${name} from the Hugging Face Hub: ${firstLine(err)}`);
      } finally {
        Object.assign(env, saved);
      }
      if (!FILES.every((f) => existsSync(path.join(cached, f)))) {
        fail(`downloaded tokenizer ${name}, but ${FILES.join(' and ')} did not appear in ${cached}`);
      }
    }
    return TextTokenizer.fromFolder(cached, name);
  }

  /** Writes tokenizer.json and tokenizer_config.json into a folder (a model folder keeps its tokenizer beside it). */
  async save(folder: string): Promise<void> {
    await writeFileAtomic(path.join(folder, FILES[0]), `${JSON.stringify(this.files.tokenizer)}\n`);
    await writeFileAtomic(path.join(folder, FILES[1]), `${JSON.stringify(this.files.config, null, 2)}\n`);
  }

  /**
   * Tokenizes, adds special tokens, truncates to maxLength and pads to maxLength, all by the
   * library's rules (note: @xenova/transformers 2.17 truncates after adding special tokens, so
   * a cut text ends without its final [SEP]). Returns int32 [B, maxLength] ids and mask.
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
    return texts.map((text) => (this.call([text], null, false).input_ids[0] ?? []).length);
  }

  /** Token strings of one text, special tokens included (for inspection and docs). */
  tokens(text: string): string[] {
    const ids = this.call([text], null, false).input_ids[0] ?? [];
    return this.tokenizer.model.convert_ids_to_tokens(ids);
  }

  /** The underlying @xenova/transformers tokenizer. */
  get library(): PreTrainedTokenizer {
    return this.tokenizer;
  }

  private call(texts: string[], maxLength: number | null, pad: boolean): { input_ids: number[][]; attention_mask: number[][] } {
    const out = this.tokenizer._call(texts, {
      padding: pad,
      truncation: maxLength !== null,
      max_length: maxLength ?? undefined,
      return_tensor: false,
    });
    return out as { input_ids: number[][]; attention_mask: number[][] };
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
      const fresh = this.prefixStable ? this.encodeByPrefix(missing, maxLength) : this.encodeWhole(missing, maxLength);
      missing.forEach((t, i) => cache.set(t, fresh[i]!));
      this.cachedRows += missing.length;
    }
    return texts.map((t) => cache.get(t)!);
  }

  /**
   * The library truncates by cutting the finished sequence to max_length and pads on the right,
   * so its result at maxLength is the first maxLength entries of its result at maxLength + 1;
   * the extra entry tells whether the text was cut.
   */
  private encodeWhole(texts: string[], maxLength: number): Row[] {
    const out = this.call(texts, maxLength + 1, true);
    return texts.map((_, i) => toRow(out.input_ids[i]!, out.attention_mask[i]!, maxLength));
  }

  /**
   * Same result as encodeWhole, faster on long texts: with a BERT-style normaliser and
   * pre-tokeniser nothing crosses whitespace, so a prefix cut just before whitespace yields a
   * prefix of the full token sequence. When the prefix alone overflows maxLength + 1 tokens
   * (special tokens included) the visible part is settled; otherwise the prefix grows.
   */
  private encodeByPrefix(texts: string[], maxLength: number): Row[] {
    const result: Row[] = new Array(texts.length);
    let pending = texts.map((_, i) => i);
    let budget = (maxLength + 2) * 8;
    while (pending.length > 0) {
      const prefixes = pending.map((i) => prefixAtWhitespace(texts[i]!, budget));
      const out = this.call(prefixes, maxLength + 2, true);
      const next: number[] = [];
      pending.forEach((textIndex, j) => {
        const ids = out.input_ids[j]!;
        const mask = out.attention_mask[j]!;
        const whole = prefixes[j]!.length === texts[textIndex]!.length;
        // A full row at maxLength + 2 means the prefix has at least maxLength + 2 tokens, so the text does too.
        if (whole || mask[maxLength + 1] === 1) result[textIndex] = toRow(ids, mask, maxLength);
        else next.push(textIndex);
      });
      pending = next;
      budget *= 4;
    }
    return result;
  }
}

function toRow(ids: number[], mask: number[], maxLength: number): Row {
  return {
    ids: Int32Array.from(ids.slice(0, maxLength)),
    mask: Int32Array.from(mask.slice(0, maxLength)),
    truncated: mask[maxLength] === 1,
  };
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
