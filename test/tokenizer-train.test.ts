import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { BPE_SPECIALS, byteLevelAlphabet, trainTokenizer, WORDPIECE_SPECIALS, wordCounter, wordSplitter, type TokenizerType } from '../src/text/tokenizer-train.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { PROBE_SENTENCES, tokenizerCorpus } from './helpers/tokenizer-corpus.js';

// tfjs's "install tfjs-node" banner is noise here; PROD silences its notes and nothing else.
tf.env().set('PROD', true);
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-tok-train-'));
const sha = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * What @xenova/transformers 2.17.2 (AutoTokenizer.from_pretrained on the folder, offline) gave for
 * the tokenizers trained on the test corpus with these settings; written by
 * scripts/tokenizer-train-xenova-fixture.ts. The tokenizer.json hashes tie the ids to the very
 * files trained here, so a change to the trainer shows up as a hash mismatch first.
 */
interface FixtureTokenizer {
  settings: { type: TokenizerType; vocabSize: number; lowercase: boolean };
  tokenizerJsonHash: string;
  ids: number[][];
  decoded: string[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/trained-tokenizers-xenova-2.17.json', import.meta.url), 'utf8')) as {
  library: string;
  corpusHash: string;
  sentences: string[];
  tokenizers: Record<'wordpiece' | 'bpe', FixtureTokenizer>;
};

/** The probe sentence on which the two libraries differ (see the wordpiece fixture test). */
const VARIATION_SELECTOR_SENTENCE = 'Smiles 😀😀 and ❤️';

let corpus: string[];
const dirs: Record<'wordpiece' | 'bpe', string> = { wordpiece: path.join(work, 'wordpiece'), bpe: path.join(work, 'bpe') };

beforeAll(async () => {
  corpus = await tokenizerCorpus();
  for (const name of ['wordpiece', 'bpe'] as const) {
    await trainTokenizer({ texts: corpus, ...fixture.tokenizers[name].settings, out: dirs[name] });
  }
}, 60_000);

afterEach(() => vi.restoreAllMocks());

describe('trained tokenizers load in @xenova/transformers and revcol alike', () => {
  it('trains on the fixture corpus to exactly the files the fixture was made from', () => {
    expect(sha(corpus.join('\n'))).toBe(fixture.corpusHash);
    expect(fixture.sentences).toEqual(PROBE_SENTENCES);
    for (const name of ['wordpiece', 'bpe'] as const) {
      expect(sha(readFileSync(path.join(dirs[name], 'tokenizer.json'))), name).toBe(fixture.tokenizers[name].tokenizerJsonHash);
    }
  });

  for (const name of ['wordpiece', 'bpe'] as const) {
    it(`${name}: TextTokenizer gives the ids and decoded texts @xenova/transformers 2.17 gave`, async () => {
      const tok = await TextTokenizer.load(dirs[name]);
      const want = structuredClone(fixture.tokenizers[name]);
      const allIds = PROBE_SENTENCES.map((s) => tok.library.encode(s).ids);
      const ids = [...allIds];
      if (name === 'wordpiece') {
        // One known difference between the two libraries, not the trainer's: stripping accents,
        // @xenova/transformers 2.17 drops only U+0300-U+036F, @huggingface/tokenizers (like Python's
        // tokenizers) every nonspacing mark, so the emoji variation selector U+FE0F goes and "❤️"
        // becomes "❤" (in the vocabulary) where 2.17 keeps "❤\uFE0F" (not in it: [UNK]).
        const k = PROBE_SENTENCES.indexOf(VARIATION_SELECTOR_SENTENCE);
        expect(want.ids[k]!.at(-2)).toBe(1);
        expect(tok.tokens(PROBE_SENTENCES[k]!).at(-2)).toBe('❤');
        expect(ids[k]!.slice(0, -2)).toEqual(want.ids[k]!.slice(0, -2));
        ids.splice(k, 1);
        want.ids.splice(k, 1);
        want.decoded.splice(k, 1);
      }
      expect(ids).toEqual(want.ids);
      expect(want.ids.map((ids) => tok.library.decode(ids, { skip_special_tokens: true }))).toEqual(want.decoded);
      // And the padded rows fine-tune feeds the model are those ids, cut and padded.
      const batch = tok.encode(PROBE_SENTENCES, 12);
      const rows = (await batch.inputIds.array()) as number[][];
      batch.inputIds.dispose();
      batch.attentionMask.dispose();
      rows.forEach((row, i) => {
        const full = allIds[i]!.slice(0, 12);
        expect(row.slice(0, full.length)).toEqual(full);
        expect(row.slice(full.length).every((id) => id === tok.padTokenId)).toBe(true);
      });
    });
  }

  // Live check against the library itself, where a copy is installed beside revcol (see the fixture script).
  it.runIf(process.env.REVCOL_XENOVA_DIR)('gives the same ids as a live @xenova/transformers', async () => {
    const base = path.join(path.resolve(process.env.REVCOL_XENOVA_DIR!), 'node_modules', '@xenova', 'transformers', 'src');
    const { AutoTokenizer } = await import(pathToFileURL(path.join(base, 'tokenizers.js')).href);
    const { env } = await import(pathToFileURL(path.join(base, 'env.js')).href);
    env.allowRemoteModels = false;
    env.localModelPath = `${work}/`;
    for (const name of ['wordpiece', 'bpe'] as const) {
      const xenova = await AutoTokenizer.from_pretrained(name);
      const ours = await TextTokenizer.load(dirs[name]);
      for (const s of PROBE_SENTENCES) if (name === 'bpe' || s !== VARIATION_SELECTOR_SENTENCE) expect(Array.from(xenova.encode(s) as number[]), `${name}: ${s}`).toEqual(ours.library.encode(s).ids);
    }
  });
});

describe('special tokens, unknown characters and round trips', () => {
  it('wordpiece: [PAD] [UNK] [CLS] [SEP] [MASK] are ids 0-4, named in tokenizer_config.json, and frame every text', async () => {
    const tok = await TextTokenizer.load(dirs.wordpiece);
    WORDPIECE_SPECIALS.forEach((t, i) => expect(tok.library.token_to_id(t)).toBe(i));
    expect(tok.padTokenId).toBe(0);
    expect(tok.maskTokenId).toBe(4);
    expect([...tok.specialTokenIds].sort()).toEqual([0, 1, 2, 3, 4]);
    const config = JSON.parse(readFileSync(path.join(dirs.wordpiece, 'tokenizer_config.json'), 'utf8'));
    expect(config).toMatchObject({ tokenizer_class: 'BertTokenizer', pad_token: '[PAD]', unk_token: '[UNK]', cls_token: '[CLS]', sep_token: '[SEP]', mask_token: '[MASK]', do_lower_case: true });
    const tokens = tok.tokens('the jury');
    expect(tokens[0]).toBe('[CLS]');
    expect(tokens.at(-1)).toBe('[SEP]');
    // A pair: [CLS] a [SEP] b [SEP], segments 0 then 1.
    const pair = tok.library.encode('the jury', { text_pair: 'said' });
    expect(pair.tokens).toEqual(['[CLS]', 'the', 'jury', '[SEP]', 'said', '[SEP]']);
    // vocab.txt: line n is token n.
    const lines = readFileSync(path.join(dirs.wordpiece, 'vocab.txt'), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(tok.vocabSize);
    lines.forEach((t, i) => expect(tok.library.token_to_id(t), t).toBe(i));
  });

  it('bpe: <s> <pad> </s> <unk> <mask> are ids 0-4 and the 256 bytes follow in byte order', async () => {
    const tok = await TextTokenizer.load(dirs.bpe);
    BPE_SPECIALS.forEach((t, i) => expect(tok.library.token_to_id(t)).toBe(i));
    expect(tok.padTokenId).toBe(1);
    expect(tok.maskTokenId).toBe(4);
    byteLevelAlphabet().forEach((c, b) => expect(tok.library.token_to_id(c)).toBe(5 + b));
    expect(byteLevelAlphabet()[0x20]).toBe('Ġ'); // space, as GPT-2 spells it
    expect(tok.library.encode('hello', { text_pair: 'world' }).tokens.filter((t: string) => t.startsWith('<'))).toEqual(['<s>', '</s>', '</s>', '</s>']);
  });

  it('wordpiece: characters never seen in training become [UNK], seen ones never do', async () => {
    const tok = await TextTokenizer.load(dirs.wordpiece);
    expect(tok.tokens('unseen ☃ ж here')).toEqual(['[CLS]', ...tok.tokens('unseen').slice(1, -1), '[UNK]', '[UNK]', ...tok.tokens('here').slice(1, -1), '[SEP]']);
    // A seen word with an unseen character inside is one [UNK] (WordPiece's rule).
    expect(tok.tokens('jury☃jury').slice(1, -1)).toEqual(['[UNK]']);
    for (const line of corpus.slice(0, 300)) expect(tok.library.encode(line).ids).not.toContain(1);
  });

  it('bpe round-trips any text exactly, unseen characters included (byte-level: no [UNK])', async () => {
    const tok = await TextTokenizer.load(dirs.bpe);
    const texts = [...PROBE_SENTENCES, 'tabs\tand\nnew lines\r\n  ', 'ᚠᛇᚻ ☃☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 nul', corpus[5]!];
    for (const t of texts) {
      const ids = tok.library.encode(t).ids;
      expect(ids).not.toContain(3);
      expect(tok.library.decode(ids, { skip_special_tokens: true })).toBe(t);
    }
  });

  it('wordpiece round-trips lower-cased text of seen characters (up to BERT spacing of punctuation)', async () => {
    const tok = await TextTokenizer.load(dirs.wordpiece);
    for (const line of corpus.slice(0, 200)) {
      const words = line.toLowerCase().split(/\s+/).filter((w) => /^[a-z0-9]+$/.test(w));
      const text = words.join(' ');
      expect(tok.library.decode(tok.library.encode(text).ids, { skip_special_tokens: true })).toBe(text);
    }
    expect(tok.library.decode(tok.library.encode('Crème Brûlée').ids, { skip_special_tokens: true })).toBe('creme brulee');
  });
});

describe('training', () => {
  it('fills the vocabulary to the size asked, and stops short (never over) when the texts run out of pairs', async () => {
    for (const type of ['wordpiece', 'bpe'] as const) {
      for (const vocabSize of [700, 1000]) {
        const t = await trainTokenizer({ texts: corpus, type, vocabSize, lowercase: true });
        expect(t.vocabSize).toBe(vocabSize);
        expect(Object.keys((t.tokenizerJson.model as { vocab: object }).vocab)).toHaveLength(vocabSize);
        expect(new Set(t.vocab).size).toBe(vocabSize);
      }
      const small = await trainTokenizer({ texts: ['abc abc abd'], type, vocabSize: 5000 });
      expect(small.vocabSize).toBeLessThan(5000);
      // Merges need a pair seen twice by default: "ab" (3 times) and then "abc" (twice), no more.
      expect(small.merges.length).toBe(2);
      expect((await trainTokenizer({ texts: ['abc abc abd'], type, vocabSize: 5000, minFrequency: 1 })).merges.length).toBeGreaterThan(2);
    }
  });

  it('is deterministic, and files give what the same lines as texts give', async () => {
    const file = path.join(work, 'corpus.txt');
    writeFileSync(file, corpus.slice(0, 400).join('\n'));
    for (const type of ['wordpiece', 'bpe'] as const) {
      const a = await trainTokenizer({ texts: corpus.slice(0, 400), type, vocabSize: 900 });
      const b = await trainTokenizer({ files: [file], type, vocabSize: 900 });
      expect(JSON.stringify(b.tokenizerJson)).toBe(JSON.stringify(a.tokenizerJson));
      expect(b.merges).toEqual(a.merges);
    }
  });

  it('breaks ties between equally frequent pairs by a fixed rule, not by input order', async () => {
    const texts = ['ab cd', 'cd ab', 'ab cd'];
    const a = await trainTokenizer({ texts, vocabSize: 14, type: 'wordpiece' });
    const b = await trainTokenizer({ texts: [...texts].reverse(), vocabSize: 14, type: 'wordpiece' });
    // a, b, c, d and their ## forms: 5 + 8 = 13; one merge; "ab" and "cd" tie at 3, the smaller ids win.
    expect(a.vocab.slice(-1)).toEqual(['ab']);
    expect(b.vocab).toEqual(a.vocab);
  });

  it('limitAlphabet keeps the most frequent characters; words with the others encode as [UNK]', async () => {
    const t = await trainTokenizer({ texts: ['aaa bbb aaa bbb c', 'ab ba'], vocabSize: 20, limitAlphabet: 2, out: path.join(work, 'limited') });
    expect(t.alphabet).toBe(2);
    expect(t.droppedCharacters).toBe(1);
    const tok = await TextTokenizer.load(path.join(work, 'limited'));
    expect(tok.tokens('ab c')).toEqual(['[CLS]', ...tok.tokens('ab').slice(1, -1), '[UNK]', '[SEP]']);
  });

  it('counts words exactly as the library splits them (its fast path checked against the reference one)', async () => {
    const texts = [...corpus.slice(0, 500), ...PROBE_SENTENCES, 'A\u000bB\u0085C\u00a0D\u2028E\ufeffF \u3000 G\u200bH ΑΣ ΟΔΟΣ İstanbul ǅ', 'x\r\ny\t\tz  ', '  '];
    for (const type of ['wordpiece', 'bpe'] as const) {
      for (const lowercase of [false, true]) {
        const counter = await wordCounter(type, lowercase);
        for (const t of texts) counter.add(t);
        const split = await wordSplitter(type, lowercase);
        const want = new Map<string, number>();
        for (const t of texts) for (const w of split(t)) want.set(w, (want.get(w) ?? 0) + 1);
        expect(new Map([...counter.finish()].sort()), `${type} lowercase=${lowercase}`).toEqual(new Map([...want].sort()));
      }
    }
  });

  it('refuses bad input with one clear message each', async () => {
    const err = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(RevcolError);
    await expect(trainTokenizer({ texts: corpus, vocabSize: 100 })).rejects.toThrow(/vocab size 100 is too small: the 5 special tokens and the \d+ characters .* need at least \d+/);
    await expect(trainTokenizer({ texts: corpus, vocabSize: 200, type: 'bpe' })).rejects.toThrow(/vocab size 200 is too small: byte-level BPE needs 5 special tokens and 256 byte tokens, at least 261/);
    await expect(trainTokenizer({ files: [path.join(work, 'missing.txt')], vocabSize: 500 })).rejects.toThrow(/missing\.txt/);
    await expect(trainTokenizer({ texts: ['', '   '], vocabSize: 500 })).rejects.toThrow(/no words to learn from/);
    await expect(trainTokenizer({ texts: corpus, vocabSize: 0 })).rejects.toThrow(/vocab size must be a whole number/);
    await expect(trainTokenizer({ texts: corpus, vocabSize: 500, type: 'unigram' as TokenizerType })).rejects.toThrow(/type "unigram" is unknown; use wordpiece or bpe/);
    await err(trainTokenizer({ texts: [42 as unknown as string], vocabSize: 500 }));
    const full = path.join(work, 'full');
    mkdirSync(full);
    writeFileSync(path.join(full, 'notes.txt'), 'mine');
    await expect(trainTokenizer({ texts: corpus, vocabSize: 800, out: full })).rejects.toThrow(/full is not empty; .*--overwrite/);
    expect(readFileSync(path.join(full, 'notes.txt'), 'utf8')).toBe('mine');
    await trainTokenizer({ texts: corpus, vocabSize: 800, out: full, overwrite: true });
    expect(existsSync(path.join(full, 'tokenizer.json'))).toBe(true);
    await expect(trainTokenizer({ texts: corpus, vocabSize: 800, out: path.join(full, 'notes.txt') })).rejects.toThrow(/notes\.txt is a file/);
  });
});

describe('revcol tokenizer train', () => {
  const corpusFile = path.join(work, 'cli-corpus.txt');
  beforeAll(() => writeFileSync(corpusFile, `${corpus.join('\n')}\n`));

  it('writes a folder that loads, prints a summary, and --json gives the figures', async () => {
    const out = path.join(work, 'cli-wp');
    const r = await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', '1500', '--lowercase', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*cli-wp: wordpiece, 1500 tokens \(5 special, \d+ characters ×2 \(start and ##continuation\), \d+ merged\) from \d+ distinct words in [\d.]+ s$/m);
    expect(r.stdout).toMatch(/use it: revcol fine-tune --train FILE --tokenizer .*cli-wp/);
    expect(r.stderr).toMatch(/^merging: \d+\/\d+ tokens learnt$/m);
    // The same settings as the fixture's WordPiece tokenizer, and the same file.
    expect(sha(readFileSync(path.join(out, 'tokenizer.json')))).toBe(fixture.tokenizers.wordpiece.tokenizerJsonHash);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'vocab.txt']) expect(existsSync(path.join(out, f))).toBe(true);

    const bpe = path.join(work, 'cli-bpe');
    const j = await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, corpusFile, '--type', 'bpe', '--vocab-size', '600', '--json', '--out', bpe]);
    expect(j.code, j.stderr).toBe(0);
    const summary = JSON.parse(j.stdout);
    expect(summary).toMatchObject({ type: 'bpe', vocabSize: 600, alphabet: 256, specialTokens: 5, mergedTokens: 600 - 261 });
    expect(j.stderr).toBe('');
    expect((await TextTokenizer.load(bpe)).vocabSize).toBe(600);
    expect(existsSync(path.join(bpe, 'vocab.txt'))).toBe(false);
  });

  it('registers without loading the trainer: its only value import at the top is commander', () => {
    const source = readFileSync(new URL('../src/cli/tokenizer.ts', import.meta.url), 'utf8');
    const imports = source.split('\n').filter((l) => /^import /.test(l));
    expect(imports.filter((l) => !/^import type /.test(l)).map((l) => l.match(/from '([^']+)'/)?.[1])).toEqual(['commander']);
    expect(source).toMatch(/await import\('\.\.\/text\/tokenizer-train\.js'\)/);
  });

  it('help lists the options with examples', async () => {
    const r = await runCliCaptured(['tokenizer', 'train', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--train', '--vocab-size', '--type', '--lowercase', '--min-frequency', '--limit-alphabet', '--out', '--overwrite']) expect(r.stdout).toContain(flag);
    expect(r.stdout).toMatch(/Examples:\n {2}revcol tokenizer train/);
  });

  it('bad inputs are one-line revcol: errors', async () => {
    const out = (name: string) => path.join(work, name);
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', out('nope.txt'), '--out', out('e1')]), /nope\.txt/);
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', '50', '--out', out('e2')]), /vocab size 50 is too small/);
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', 'lots', '--out', out('e3')]), /--vocab-size must be a whole number/);
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--type', 'unigram', '--out', out('e4')]), /wordpiece, bpe/);
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile]), /--out/);
    const full = out('e5');
    mkdirSync(full);
    writeFileSync(path.join(full, 'keep.txt'), 'x');
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', '800', '--out', full]), /e5 is not empty; choose a new folder, or pass --overwrite/);
    // A path through a file cannot be created (root included): refused before any training.
    expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', '800', '--out', path.join(corpusFile, 'tok')]), /cannot create the folder .*cli-corpus\.txt\/tok: a part of the path is a file/);
    if (process.getuid?.() !== 0) {
      // Root writes anywhere; elsewhere a read-only parent is refused before any training.
      const locked = out('locked');
      mkdirSync(locked);
      chmodSync(locked, 0o500);
      expectOneLineError(await runCliCaptured(['tokenizer', 'train', '--train', corpusFile, '--vocab-size', '800', '--out', path.join(locked, 'tok')]), /permission denied/);
    }
    // Created before training (to refuse an unwritable place early), removed when training is refused.
    expect(existsSync(out('e2'))).toBe(false);
    expect(existsSync(full)).toBe(true);
  });

  it('fine-tune and pretrain --tokenizer DIR train with the trained vocabularies and keep them with the model', async () => {
    const csv = path.join(work, 'reviews.csv');
    const rows = ['text,label'];
    for (let i = 0; i < 40; i++) rows.push(`${corpus[i]!.replaceAll(',', ' ').replaceAll('"', '')},${i % 2 ? 'news' : 'other'}`);
    writeFileSync(csv, `${rows.join('\n')}\n`);
    const model = path.join(work, 'model');
    const r = await runCliCaptured(['fine-tune', '--train', csv, '--tokenizer', dirs.wordpiece, '--epochs', '1', '--max-length', '32', '--out', model, '--backend', 'cpu', '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(model, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(dirs.wordpiece, 'tokenizer.json'), 'utf8'));
    const p = await runCliCaptured(['predict', '--model', model, 'the jury said', '--json', '--backend', 'cpu']);
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)[0].label).toMatch(/^(news|other)$/);
    // Masked-LM pre-training needs the mask token: byte-level BPE's <mask>.
    const lm = path.join(work, 'lm');
    const pre = await runCliCaptured(['pretrain', '--train', csv, '--tokenizer', dirs.bpe, '--epochs', '1', '--max-length', '32', '--out', lm, '--backend', 'cpu', '--no-progress']);
    expect(pre.code, pre.stderr).toBe(0);
    expect(readFileSync(path.join(lm, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(dirs.bpe, 'tokenizer.json'), 'utf8'));
  }, 180_000);
});
