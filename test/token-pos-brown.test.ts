import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTokenExamples } from '../src/data/token-data.js';
import { brownToUniversal, buildBrownPos, loadPosBrownTask, UNIVERSAL_TAGS } from '../src/text/datasets/brown-pos.js';
import { TASKS_DIR } from '../src/text/tasks.js';

describe('Brown tags to the 12 universal tags', () => {
  it('maps base tags, position suffixes, contractions, negation, possessives and foreign words', () => {
    const cases: Array<[string, string | null]> = [
      ['nn', 'NOUN'], ['nns-tl', 'NOUN'], ['np$', 'NOUN'], ['nn-tl-hl', 'NOUN'], ['nr', 'NOUN'],
      ['vbd', 'VERB'], ['bedz', 'VERB'], ['hvz', 'VERB'], ['md', 'VERB'], ['do*', 'VERB'], ['md*', 'VERB'],
      ['jj', 'ADJ'], ['jjt', 'ADJ'], ['od', 'ADJ'],
      ['rb', 'ADV'], ['ql', 'ADV'], ['wrb', 'ADV'], ['*', 'ADV'], ['abl', 'ADV'],
      ['pps', 'PRON'], ['pp$', 'PRON'], ['pp$$', 'PRON'], ['wps', 'PRON'], ['pps+bez', 'PRON'], ['ppss+md', 'PRON'],
      ['at', 'DET'], ['abn', 'DET'], ['ap', 'DET'], ['wdt', 'DET'], ['ex', 'DET'], ['dt+bez', 'DET'],
      ['in', 'ADP'], ['cs', 'ADP'], ['in-tl', 'ADP'],
      ['cd', 'NUM'], ['cd-hl', 'NUM'],
      ['cc', 'CONJ'],
      ['rp', 'PRT'], ['to', 'PRT'],
      ['.', '.'], [',', '.'], ['``', '.'], ["''", '.'], ['--', '.'], ['---hl', '.'], ['(-hl', '.'],
      ['fw-nn', 'X'], ['fw-in+at-t', 'X'], ['nil', 'X'], ['uh', 'X'], ['NN-TL', 'NOUN'],
      ['zz', null],
    ];
    for (const [brown, universal] of cases) expect(brownToUniversal(brown), brown).toBe(universal);
  });
});

describe('pos-brown task data', () => {
  it('a fixed split by document, every tag mapped, the documented sizes and most-frequent-tag baseline', async () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'revcol-pos-brown-'));
    const data = await buildBrownPos({ outDir: out });
    const spec = JSON.parse(readFileSync(path.join(TASKS_DIR, 'pos-brown.json'), 'utf8'));
    expect(data.unmapped).toEqual({});
    expect(data.documents.train).toHaveLength(spec.split.documents.train);
    expect(data.documents.test).toHaveLength(spec.split.documents.test);
    expect(data.documents.test.filter((d) => data.documents.train.includes(d))).toEqual([]);
    // Every genre (the letter after "c") has documents on both sides.
    const genres = (ids: string[]) => new Set(ids.map((d) => d[1]));
    expect(genres(data.documents.test)).toEqual(genres(data.documents.train));
    expect(genres(data.documents.test).size).toBe(15);
    const words = (s: string[][]) => s.reduce((n, w) => n + w.length, 0);
    expect({ train: data.train.sentences.length, test: data.test.sentences.length }).toEqual(spec.split.sentences);
    expect({ train: words(data.train.sentences), test: words(data.test.sentences) }).toEqual(spec.split.words);
    expect(words(data.train.sentences) + words(data.test.sentences)).toBe(1_161_192);
    const used = new Set([...data.train.tags, ...data.test.tags].flat());
    expect([...used].sort()).toEqual([...UNIVERSAL_TAGS].sort());
    // The baseline figure recorded in tasks/pos-brown.json and docs/token-classification.md.
    expect(data.baseline.accuracy).toBeCloseTo(spec.baseline.accuracy, 4);
    expect(data.baseline.unknownWords).toBe(spec.baseline.unknownWords);
    expect(data.baseline.fallback).toBe('NOUN');

    // Written as CoNLL, read back the same (with the same line numbers).
    const test = await readTokenExamples(data.files!.test);
    expect(test.sentences).toEqual(data.test.sentences);
    expect(test.tags).toEqual(data.test.tags);
    expect(test.lines).toEqual(data.test.lines);

    // The same seed gives the same split; another seed another.
    expect((await buildBrownPos()).documents.test).toEqual(data.documents.test);
    expect((await buildBrownPos({ seed: 1 })).documents.test).not.toEqual(data.documents.test);
  });

  it('loadPosBrownTask: the task file\'s split and recipe, tags in the universal order', async () => {
    const task = await loadPosBrownTask();
    expect(task.name).toBe('pos-brown');
    expect(task.tags).toEqual([...UNIVERSAL_TAGS]);
    expect(task.test.sentences).toHaveLength(5610);
    expect(task.hyper?.maxLength).toBe(96);
    expect(task.preset).toBe('text-tiny');
    expect(task.split).toBe('by document, stratified by genre, 10% test, seed 0');
  });
});
