import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A small named-entity lexicon (BIO tags): each word has one tag, so a tagger learns it in a few
 * epochs. Persons and places are one word (B-) or two (B- then I-).
 */
export const NER_WORDS = {
  person: ['john', 'mary', 'anna'],
  surname: ['smith', 'jones'],
  place: ['paris', 'rome', 'london'],
  city: ['york'],
  other: ['the', 'dog', 'park', 'sees', 'likes', 'visits', 'in', 'a', 'and'],
};

/** Seeded sentences of persons, places and other words, with their BIO tags. */
export function nerSentences(count: number, seed: number): { words: string[][]; tags: string[][] } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const person = (): Array<[string, string]> => (rnd() < 0.5
    ? [[pick(NER_WORDS.person), 'B-PER'], [pick(NER_WORDS.surname), 'I-PER']]
    : [[pick(NER_WORDS.person), 'B-PER']]);
  const place = (): Array<[string, string]> => (rnd() < 0.3 ? [['new', 'B-LOC'], ['york', 'I-LOC']] : [[pick(NER_WORDS.place), 'B-LOC']]);
  const o = (...w: string[]): Array<[string, string]> => w.map((x) => [x, 'O']);
  const templates: Array<() => Array<[string, string]>> = [
    () => [...person(), ...o('visits'), ...place()],
    () => [...person(), ...o('likes', 'the', 'dog', 'in'), ...place()],
    () => [...o('the', 'dog', 'sees'), ...person(), ...o('and'), ...person()],
    () => [...person(), ...o('sees', 'a', 'park', 'in'), ...place()],
  ];
  const words: string[][] = [];
  const tags: string[][] = [];
  for (let i = 0; i < count; i++) {
    const pairs = pick(templates)();
    words.push(pairs.map((p) => p[0]));
    tags.push(pairs.map((p) => p[1]));
  }
  return { words, tags };
}

/**
 * A BERT-style WordPiece tokenizer over the lexicon (a tiny vocabulary: fast steps). "visits",
 * "likes" and "sees" are two pieces each (visit ##s …), so only a word's first piece is scored.
 */
export function writeTinyNerTokenizer(dir: string): void {
  const whole = [...NER_WORDS.person, ...NER_WORDS.surname, ...NER_WORDS.place, ...NER_WORDS.city, 'new', 'the', 'dog', 'park', 'in', 'a', 'and'];
  writeWordPieceTokenizer(dir, ['.', ',', '##s', 'visit', 'like', 'see', ...whole]);
}

/**
 * A BERT-style WordPiece tokenizer (tokenizer.json + tokenizer_config.json) over the given
 * tokens after BERT's five special ones: a tiny vocabulary makes training steps fast.
 */
export function writeWordPieceTokenizer(dir: string, words: string[]): void {
  const tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...words];
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const special = (content: string) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  const config = { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512, unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]' };
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
}
