import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { oneLineError } from './helpers/errors.js';
import { countLabels, detectFormat, LabelMap, readTextExamples, splitHeldOut, type TextExamples } from '../src/data/text.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-textdata-'));
function file(name: string, content: string): string {
  const full = path.join(tmp, name);
  writeFileSync(full, content);
  return full;
}

describe('readTextExamples', () => {
  it('reads CSV with quotes, embedded newlines and commas, doubled quotes and a BOM', async () => {
    const csv = file(
      'a.csv',
      '\uFEFFid,text,label\r\n' +
        '1,"Hello, world",greeting\r\n' +
        '2,"line one\nline two, with comma",multi line\r\n' +
        '3,"she said ""hi""",quote\r\n' +
        '4,unquoted with a stray " quote,quote\r\n' +
        '\r\n' +
        '5,,missing text\r\n' +
        '6,   ,blank text\r\n' +
        '7,no label,\r\n' +
        '8,short row\r\n',
    );
    const ex = await readTextExamples(csv);
    expect(ex.columns).toEqual(['id', 'text', 'label']);
    expect(ex.texts).toEqual(['Hello, world', 'line one\nline two, with comma', 'she said "hi"', 'unquoted with a stray " quote']);
    expect(ex.labels).toEqual(['greeting', 'multi line', 'quote', 'quote']);
    expect(ex.skipped).toBe(4);
  });

  it('reads TSV and JSONL, with configurable columns or fields', async () => {
    const tsv = file('b.tsv', 'body\tcategory\nfirst text\tx\n"quoted\ttab"\ty\nhe said "no"\tx\n');
    const a = await readTextExamples(tsv, { textColumn: 'body', labelColumn: 'category' });
    expect(a.texts).toEqual(['first text', 'quoted\ttab', 'he said "no"']);
    expect(a.labels).toEqual(['x', 'y', 'x']);
    const jsonl = file(
      'c.jsonl',
      '{"review": "good", "stars": 5}\n\n{"review": "bad", "stars": 1, "extra": true}\n{"review": null, "stars": 3}\n{"review": "meh"}\n',
    );
    const b = await readTextExamples(jsonl, { textColumn: 'review', labelColumn: 'stars' });
    expect(b.texts).toEqual(['good', 'bad']);
    expect(b.labels).toEqual(['5', '1']);
    expect(b.skipped).toBe(2);
    expect(b.columns).toEqual(['review', 'stars', 'extra']);
    // Case-insensitive column match, and texts only when labels are not required.
    const upper = file('d.csv', 'Text,Label\nhi,a\n');
    expect((await readTextExamples(upper)).labels).toEqual(['a']);
    const textsOnly = file('e.csv', 'text\nfirst\nsecond\n');
    const c = await readTextExamples(textsOnly, { requireLabels: false });
    expect(c.texts).toEqual(['first', 'second']);
    expect(c.labels).toEqual([]);
  });

  it('detects formats from extension or content', () => {
    expect(detectFormat('x.csv', '')).toBe('csv');
    expect(detectFormat('x.TSV', '')).toBe('tsv');
    expect(detectFormat('x.ndjson', '')).toBe('jsonl');
    expect(detectFormat('x.txt', '\uFEFF{"text": 1}')).toBe('jsonl');
    expect(detectFormat('x.txt', 'text\tlabel\n')).toBe('tsv');
    expect(detectFormat('x.dat', 'text,label\n')).toBe('csv');
  });

  it('fails with one line on bad files', async () => {
    const csv = file('f.csv', 'message,class\nhi,a\n');
    const missing = await oneLineError(() => readTextExamples(csv));
    expect(missing).toContain('no text column "text"');
    expect(missing).toContain('"message", "class"');
    expect(await oneLineError(() => readTextExamples(csv, { textColumn: 'message' }))).toContain('no label column "label"');
    expect(await oneLineError(() => readTextExamples(file('g.csv', '')))).toContain('is empty');
    expect(await oneLineError(() => readTextExamples(file('h.csv', '\uFEFF\n  \n')))).toContain('is empty');
    expect(await oneLineError(() => readTextExamples(file('i.csv', 'text,label\n,a\nb,\n')))).toContain('no usable rows');
    expect(await oneLineError(() => readTextExamples(path.join(tmp, 'absent.csv')))).toContain('does not exist');
    mkdirSync(path.join(tmp, 'dir.csv'));
    expect(await oneLineError(() => readTextExamples(path.join(tmp, 'dir.csv')))).toContain('is a folder');
    expect(await oneLineError(() => readTextExamples(file('j.jsonl', '{"text": "a", "label": "b"}\nnot json\n')))).toContain('line 2');
    expect(await oneLineError(() => readTextExamples(file('k.csv', 'text,label\n"unterminated,a\n')))).toContain('not a readable CSV');
    expect(await oneLineError(() => readTextExamples(file('l.csv', 'text,label\na,b,c\n')))).toContain('has 3 fields');
  });

  // Files are streamed in 64 KiB chunks: rows, quoted newlines and multi-byte characters
  // that straddle chunk boundaries must read as they would from one string.
  it('reads files of many chunks the same as small ones, and names a bad row far in', async () => {
    const rows = Array.from({ length: 4000 }, (_, i) => ({
      text: i % 7 === 0 ? `multi\nline "${i}", with comma ✓ héllo 日本語` : `row ${i} ${'é'.repeat(i % 50)} 🙂`,
      label: `l${i % 3}`,
    }));
    const quote = (t: string) => `"${t.replace(/"/g, '""')}"`;
    const csv = file('big.csv', `\uFEFFid,Text,label\n${rows.map((r, i) => `${i},${quote(r.text)},${r.label}`).join('\r\n')}\n`);
    expect(Buffer.byteLength(rows.map((r) => r.text).join(''))).toBeGreaterThan(3 * 64 * 1024);
    const fromCsv = await readTextExamples(csv);
    expect(fromCsv.texts).toEqual(rows.map((r) => r.text));
    expect(fromCsv.labels).toEqual(rows.map((r) => r.label));
    expect(fromCsv.columns).toEqual(['id', 'Text', 'label']);
    const jsonl = file('big.jsonl', `\uFEFF${rows.map((r, i) => JSON.stringify(i === 5 ? { Label: r.label, TEXT: r.text, extra: 1 } : { TEXT: r.text, Label: r.label })).join('\n')}\n`);
    const fromJsonl = await readTextExamples(jsonl);
    expect(fromJsonl.texts).toEqual(rows.map((r) => r.text));
    expect(fromJsonl.labels).toEqual(rows.map((r) => r.label));
    expect(fromJsonl.columns).toEqual(['TEXT', 'Label', 'extra']);
    const badLate = file('bad-late.csv', `text,label\n${rows.map((r) => `${quote(r.text)},${r.label}`).join('\n')}\nx,y,z\n`);
    expect(await oneLineError(() => readTextExamples(badLate))).toMatch(/data row 4001 has 3 fields but the header has 2/);
    const badJson = file('bad-late.jsonl', `${rows.map((r) => JSON.stringify(r)).join('\n')}\n{"text": \n`);
    expect(await oneLineError(() => readTextExamples(badJson))).toMatch(/line 4001 is not valid JSON/);
  });
});

describe('LabelMap', () => {
  it('maps any strings to stable ids and names unseen labels', async () => {
    const map = LabelMap.fromLabels(['spam', 'ham', 'spam', 'maybe spam']);
    expect(map.names).toEqual(['ham', 'maybe spam', 'spam']);
    expect(LabelMap.fromLabels(['spam', 'maybe spam', 'ham']).names).toEqual(map.names);
    expect(map.id('spam')).toBe(2);
    expect(Array.from(map.ids(['ham', 'spam']))).toEqual([0, 2]);
    expect(LabelMap.fromLabels(['10', '9', '2']).names).toEqual(['2', '9', '10']);
    expect(LabelMap.fromJSON(map.toJSON()).names).toEqual(map.names);
    expect(JSON.parse(JSON.stringify(map))).toEqual(map.names);
    const unseen = await oneLineError(() => map.ids(['ham', 'eggs', 'bacon', 'eggs']));
    expect(unseen).toContain('"eggs", "bacon"');
    expect(unseen).toContain('training labels: ham, maybe spam, spam');
    expect(await oneLineError(() => map.id('toast'))).toContain('"toast"');
    expect(countLabels(['spam', 'ham', 'spam'], map)).toEqual({ ham: 1, 'maybe spam': 0, spam: 2 });
  });

  it('refuses a one-class or empty training set', async () => {
    expect(await oneLineError(() => LabelMap.fromLabels(['a', 'a', 'a']))).toContain('only one label ("a")');
    expect(await oneLineError(() => LabelMap.fromLabels([]))).toContain('no labelled examples');
    expect(await oneLineError(() => LabelMap.fromJSON(['x']))).toContain('at least two');
  });
});

describe('splitHeldOut', () => {
  const ex: TextExamples = {
    texts: Array.from({ length: 103 }, (_, i) => `t${i}`),
    labels: Array.from({ length: 103 }, (_, i) => (i < 80 ? 'big' : i < 100 ? 'mid' : 'rare')),
    skipped: 0,
    columns: ['text', 'label'],
  };

  it('is stratified, disjoint, complete and fixed by the seed', () => {
    const { train, eval: held } = splitHeldOut(ex, 0.2, 0);
    expect(countLabels(held.labels)).toEqual({ big: 16, mid: 4, rare: 1 });
    expect(countLabels(train.labels)).toEqual({ big: 64, mid: 16, rare: 2 });
    expect(new Set([...train.texts, ...held.texts]).size).toBe(103);
    // Pairs stay aligned and the file order is kept.
    held.texts.forEach((t, i) => expect(held.labels[i]).toBe(ex.labels[Number(t.slice(1))]));
    expect([...held.texts].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))).toEqual(held.texts);
    expect(splitHeldOut(ex, 0.2, 0).eval.texts).toEqual(held.texts);
    expect(splitHeldOut(ex, 0.2, 1).eval.texts).not.toEqual(held.texts);
  });

  it('rejects a fraction outside (0, 1)', async () => {
    expect(await oneLineError(() => splitHeldOut(ex, 1, 0))).toContain('between 0 and 1');
    expect(await oneLineError(() => splitHeldOut(ex, 0, 0))).toContain('between 0 and 1');
  });
});
