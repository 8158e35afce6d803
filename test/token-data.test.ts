import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectTokenFormat, readTokenExamples, toConll, wordLine } from '../src/data/token-data.js';
import { oneLineError } from './helpers/errors.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-token-data-'));
let n = 0;
function file(name: string, content: string): string {
  const p = path.join(work, `${n++}-${name}`);
  writeFileSync(p, content);
  return p;
}

describe('CoNLL files', () => {
  it('reads word<TAB>tag lines, blank lines between sentences, -DOCSTART- skipped, CRLF and a BOM', async () => {
    const f = file('a.conll', '\uFEFF-DOCSTART- -X- O O\r\n\r\nEU\tB-ORG\r\nrejects\tO\r\n\r\n\r\nPeter\tB-PER\r\nBlackburn\tI-PER');
    const ex = await readTokenExamples(f);
    expect(ex.format).toBe('conll');
    expect(ex.sentences).toEqual([['EU', 'rejects'], ['Peter', 'Blackburn']]);
    expect(ex.tags).toEqual([['B-ORG', 'O'], ['B-PER', 'I-PER']]);
    expect(ex.lines).toEqual([3, 7]);
    expect(wordLine(ex, 1, 1)).toBe(8);
  });

  it('space-separated columns: the last is the tag by default, tagColumn picks another', async () => {
    const text = 'EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nGerman JJ B-NP B-MISC\n';
    const f = file('conll2003.txt', text);
    expect((await readTokenExamples(f)).tags).toEqual([['B-ORG', 'O'], ['B-MISC']]);
    expect((await readTokenExamples(f, { tagColumn: 1 })).tags).toEqual([['NNP', 'VBZ'], ['JJ']]);
    expect((await readTokenExamples(f, { tagColumn: -2 })).tags).toEqual([['B-NP', 'B-VP'], ['B-NP']]);
    // Tabs split columns when there are any, so a word may hold a space.
    const tabbed = file('t.conll', 'New York\tB-LOC\n');
    expect((await readTokenExamples(tabbed)).sentences).toEqual([['New York']]);
  });

  it('one-line errors naming file and line: a word without a tag, a missing column, an empty file', async () => {
    const missing = file('m.conll', 'EU\tB-ORG\nrejects\n');
    expect(await oneLineError(() => readTokenExamples(missing))).toMatch(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: line 2 has a word but no tag \\("rejects"\\)`));
    const short = file('s.conll', 'EU NNP B-ORG\nrejects O\n');
    expect(await oneLineError(() => readTokenExamples(short, { tagColumn: 2 }))).toMatch(/: line 2 has 2 columns, no column 2/);
    expect(await oneLineError(() => readTokenExamples(file('e.conll', '\n\n-DOCSTART- O\n\n')))).toMatch(/e\.conll is empty: it needs one word and its tag per line/);
    expect(await oneLineError(() => readTokenExamples(file('z.conll', '')))).toMatch(/is empty/);
    expect(await oneLineError(() => readTokenExamples(path.join(work, 'nope.conll')))).toMatch(/nope\.conll/);
    expect(await oneLineError(() => readTokenExamples(file('c.conll', 'a\tB\n'), { tagColumn: 0 }))).toMatch(/tag column/);
  });

  it('without tags (prediction input) words alone are read', async () => {
    const ex = await readTokenExamples(file('w.conll', 'EU\nrejects\n\nhello\n'), { requireTags: false });
    expect(ex.sentences).toEqual([['EU', 'rejects'], ['hello']]);
    expect(ex.tags).toEqual([]);
  });

  it('toConll writes what readTokenExamples reads back', async () => {
    const sentences = [['The', 'jury', '.'], ['Yes']];
    const tags = [['DET', 'NOUN', '.'], ['X']];
    const ex = await readTokenExamples(file('round.conll', toConll(sentences, tags)));
    expect(ex.sentences).toEqual(sentences);
    expect(ex.tags).toEqual(tags);
  });
});

describe('JSONL files', () => {
  it('reads tokens and tags, and Hugging Face ner_tags / pos_tags by name through the tag names', async () => {
    const rows = [
      JSON.stringify({ id: '0', tokens: ['EU', 'rejects'], ner_tags: [3, 0], pos_tags: [22, 42] }),
      '',
      JSON.stringify({ id: '1', tokens: [], ner_tags: [] }),
      JSON.stringify({ id: '2', tokens: ['Peter'], ner_tags: [1], pos_tags: [22] }),
    ].join('\n');
    const f = file('hf.jsonl', rows);
    const names = ['O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG'];
    const ex = await readTokenExamples(f, { tagNames: names });
    expect(ex.sentences).toEqual([['EU', 'rejects'], ['Peter']]);
    expect(ex.tags).toEqual([['B-ORG', 'O'], ['B-PER']]);
    expect(ex.lines).toEqual([1, 4]);
    expect(ex.skipped).toBe(1);
    const plain = file('p.jsonl', `${JSON.stringify({ tokens: ['a', 'b'], tags: ['X', 'Y'] })}\n`);
    expect((await readTokenExamples(plain)).tags).toEqual([['X', 'Y']]);
    const pos = file('pos.jsonl', `${JSON.stringify({ words: ['a'], pos_tags: ['DET'] })}\n`);
    expect((await readTokenExamples(pos)).tags).toEqual([['DET']]);
  });

  it('one-line errors naming file and line: lengths differ, numeric tags without names, bad JSON, no tags field, empty', async () => {
    const mismatch = file('len.jsonl', `${JSON.stringify({ tokens: ['a'], tags: ['X'] })}\n${JSON.stringify({ tokens: ['a', 'b', 'c'], tags: ['X', 'Y'] })}\n`);
    expect(await oneLineError(() => readTokenExamples(mismatch))).toMatch(/len\.jsonl: line 2 has 3 tokens but 2 tags in "tags"; give one tag per token/);
    const numeric = file('num.jsonl', `${JSON.stringify({ tokens: ['a'], ner_tags: [2] })}\n`);
    expect(await oneLineError(() => readTokenExamples(numeric))).toMatch(/num\.jsonl: line 1 has numeric tags .*give the tag names/);
    expect(await oneLineError(() => readTokenExamples(numeric, { tagNames: ['O', 'B-X'] }))).toMatch(/line 1: tag 2 \(token 0\) has no name/);
    expect(await oneLineError(() => readTokenExamples(file('bad.jsonl', '{"tokens": ["a"], "tags": ["X"]}\n{oops\n')))).toMatch(/bad\.jsonl: line 2 is not valid JSON/);
    expect(await oneLineError(() => readTokenExamples(file('nt.jsonl', '{"tokens": ["a"]}\n')))).toMatch(/nt\.jsonl: line 1 has no "tags" \(or "ner_tags", "pos_tags"\) field/);
    expect(await oneLineError(() => readTokenExamples(file('empty.jsonl', '\n\n')))).toMatch(/empty\.jsonl is empty/);
  });
});

describe('format detection', () => {
  it('by extension, else by the first non-blank line', async () => {
    expect(detectTokenFormat('x.jsonl', '')).toBe('jsonl');
    expect(detectTokenFormat('x.conll', '{')).toBe('conll');
    expect(detectTokenFormat('x.data', '\n  {"tokens": []}')).toBe('jsonl');
    expect(detectTokenFormat('x.data', 'EU B-ORG')).toBe('conll');
    const sniffed = await readTokenExamples(file('rows.data', `\n${JSON.stringify({ tokens: ['a'], tags: ['X'] })}\n`));
    expect(sniffed.format).toBe('jsonl');
  });
});
