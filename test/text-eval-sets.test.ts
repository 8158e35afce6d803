import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { countLabels, readTextExamples } from '../src/data/text.js';
import {
  brownGenreSet,
  buildEvalSet,
  csvField,
  EVAL_SET_NAMES,
  examplesToCsv,
  passages,
  spamRawSet,
  untagSentence,
  validationPart,
  writeEvalSet,
} from '../src/text/eval-sets.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-eval-sets-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('spam-raw', () => {
  it('all 6,046 raw messages, 80/20 stratified by label, seed 0, the same every time', () => {
    const set = spamRawSet();
    expect(set.train.texts.length).toBe(4837);
    expect(set.test.texts.length).toBe(1209);
    expect(countLabels(set.train.labels)).toEqual({ ham: 3320, spam: 1517 });
    expect(countLabels(set.test.labels)).toEqual({ ham: 830, spam: 379 });
    // Whole messages: headers (routing ones too) and body as stored.
    expect(set.train.texts.filter((t) => /^Received: /m.test(t)).length).toBeGreaterThan(4000);
    const all = new Set([...set.train.texts, ...set.test.texts]);
    expect(all.size).toBe(6046);
    const again = spamRawSet();
    expect(again.test.texts).toEqual(set.test.texts);
    expect(spamRawSet({ seed: 1 }).test.texts).not.toEqual(set.test.texts);
    expect(set.split).toBe('stratified by label, 20% test, seed 0');
  });

  it('raw messages survive the CSV round trip exactly (quotes, commas, CR, LF)', async () => {
    const set = spamRawSet();
    // Every 20th message, and every message with a carriage return or a quote at its start.
    const pick = set.train.texts.map((t, i) => i).filter((i) => i % 20 === 0 || set.train.texts[i]!.includes('\r') || set.train.texts[i]!.startsWith('"'));
    const ex = { texts: pick.map((i) => set.train.texts[i]!), labels: pick.map((i) => set.train.labels[i]!), skipped: 0, columns: ['text', 'label'] };
    expect(ex.texts.some((t) => t.includes('\r'))).toBe(true);
    const file = path.join(tmp, 'spam.csv');
    const { writeFileAtomic } = await import('../src/io/atomic.js');
    await writeFileAtomic(file, examplesToCsv(ex));
    const back = await readTextExamples(file);
    expect(back.skipped).toBe(0);
    expect(back.labels).toEqual(ex.labels);
    expect(back.texts).toEqual(ex.texts);
  });
});

describe('brown-genre', () => {
  it('untags sentences: tags dropped at the last slash, quotes and punctuation joined', () => {
    expect(untagSentence("\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc Atlanta's/np$ 1/2/cd test/nn ./."))
      .toBe('The jury said "no evidence", and Atlanta\'s 1/2 test.');
    expect(untagSentence('(/( see/vb below/rb )/) ;/. --/-- and/cc')).toBe('(see below); -- and');
  });

  it('cuts passages at sentence ends; a short remainder joins the last passage', () => {
    const sentences = ['one two three.', 'four five.', 'six seven eight nine.', 'ten.'];
    expect(passages(sentences, 5)).toEqual(['one two three. four five.', 'six seven eight nine. ten.']);
    expect(passages(['a b c.', 'd e f.', 'g h.'], 3)).toEqual(['a b c.', 'd e f.', 'g h.']);
    expect(passages(['a b'], 100)).toEqual(['a b']);
  });

  it('500 documents, 13 genres, split by document, stratified, seeded', async () => {
    const set = await brownGenreSet();
    const trainDocs = new Set(set.trainGroups);
    const testDocs = new Set(set.testGroups);
    expect(trainDocs.size + testDocs.size).toBe(500);
    expect([...testDocs].filter((d) => trainDocs.has(d))).toEqual([]);
    expect(testDocs.size).toBe(100);
    const genres = Object.keys(countLabels(set.train.labels)).sort();
    expect(genres).toEqual(['adventure', 'belles_lettres', 'editorial', 'fiction', 'government', 'hobbies', 'learned', 'lore', 'mystery', 'news', 'religion', 'reviews', 'romance']);
    expect(Object.keys(countLabels(set.test.labels)).sort()).toEqual(genres);
    // Science fiction (cm*) and humor (cr*) documents are fiction; news are the ca* files.
    set.train.labels.forEach((label, i) => {
      const doc = set.trainGroups![i]!;
      if (doc.startsWith('cm') || doc.startsWith('cr') || doc.startsWith('ck')) expect(label).toBe('fiction');
      if (doc.startsWith('ca')) expect(label).toBe('news');
    });
    // Passages of about 200 words, plain text.
    const words = set.train.texts.map((t) => t.split(/\s+/).length);
    words.sort((a, b) => a - b);
    expect(words[Math.floor(words.length / 2)]).toBeGreaterThan(200);
    expect(words[Math.floor(words.length / 2)]).toBeLessThan(260);
    expect(set.train.texts.filter((t) => /\w\/(?:at|nn|nns|vbd|in|jj|np|cc)(?:-tl|-hl)?(?=\s|$)/.test(t))).toEqual([]);
    expect(set.train.texts.length + set.test.texts.length).toBeGreaterThan(4500);
    const again = await brownGenreSet();
    expect(again.test.texts).toEqual(set.test.texts);
    const other = await brownGenreSet({ seed: 1 });
    expect(other.testGroups).not.toEqual(set.testGroups);
  });

  it("genres: 'all' keeps Brown's 15", async () => {
    const set = await brownGenreSet({ genres: 'all' });
    const labels = new Set([...set.train.labels, ...set.test.labels]);
    expect(labels.size).toBe(15);
    expect(labels.has('science_fiction') && labels.has('humor')).toBe(true);
  });

  it('writes train.csv and test.csv that the CSV reader gives back unchanged', async () => {
    const set = await buildEvalSet('brown-genre');
    const dir = path.join(tmp, 'brown');
    const files = await writeEvalSet(set, dir);
    expect(files).toEqual({ train: path.join(dir, 'train.csv'), test: path.join(dir, 'test.csv') });
    const train = await readTextExamples(files.train);
    expect(train.columns).toEqual(['text', 'label', 'document']);
    expect(train.texts).toEqual(set.train.texts);
    expect(train.labels).toEqual(set.train.labels);
    const test = await readTextExamples(files.test);
    expect(test.texts).toEqual(set.test.texts);
    expect(test.labels).toEqual(set.test.labels);
  });
});

describe('validationPart', () => {
  it('brown-genre: 10% of the train part by document, stratified by genre; fit + val is the train part', async () => {
    const set = await buildEvalSet('brown-genre');
    const part = await validationPart(set, 0.1, 0, path.join(tmp, 'val-brown'));
    const fit = await readTextExamples(part.fit);
    const val = await readTextExamples(part.val);
    expect(fit.texts.length + val.texts.length).toBe(set.train.texts.length);
    expect([part.fitTexts, part.valTexts]).toEqual([fit.texts.length, val.texts.length]);
    expect(new Set([...fit.texts, ...val.texts])).toEqual(new Set(set.train.texts));
    // The document column ends each row (document ids: ca01 … cr09).
    const docsOf = (file: string) => new Set(readFileSync(file, 'utf8').match(/,c[a-r]\d\d$/gm)!.map((m) => m.slice(1)));
    const fitDocs = docsOf(part.fit);
    const valDocs = docsOf(part.val);
    expect([...valDocs].filter((d) => fitDocs.has(d))).toEqual([]);
    expect(valDocs.size).toBeGreaterThanOrEqual(35);
    expect(valDocs.size).toBeLessThanOrEqual(45);
    expect(Object.keys(countLabels(val.labels)).length).toBe(13);
    expect(part.split).toMatch(/split by document, seed 0/);
    // Seeded: the same part again.
    const again = await validationPart(set, 0.1, 0, path.join(tmp, 'val-brown-2'));
    expect((await readTextExamples(again.val)).texts).toEqual(val.texts);
  });

  it('spam-raw: 10% of the texts, stratified by label', async () => {
    const set = spamRawSet();
    const part = await validationPart(set, 0.1, 0, path.join(tmp, 'val-spam'));
    const val = await readTextExamples(part.val);
    expect(part.valTexts).toBe(484);
    expect(countLabels(val.labels)).toEqual({ ham: 332, spam: 152 });
    expect(part.fitTexts).toBe(set.train.texts.length - 484);
  });
});

describe('sets by name', () => {
  it('names both sets; an unknown name is a one-line error', async () => {
    expect([...EVAL_SET_NAMES]).toEqual(['spam-raw', 'brown-genre']);
    const err = await buildEvalSet('imdb').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect((err as Error).message).toMatch(/unknown evaluation set "imdb"; sets: spam-raw, brown-genre/);
  });

  it('CSV fields are quoted only when needed', () => {
    expect(csvField('plain text')).toBe('plain text');
    expect(csvField('a, b')).toBe('"a, b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(' padded')).toBe('" padded"');
  });
});
