import { describe, expect, it } from 'vitest';
import { detectEntityScheme, entityMetrics, entitySpans, mostFrequentTagBaseline, tokenClassificationMetrics } from '../src/text/token-metrics.js';
import { oneLineError } from './helpers/errors.js';

const spans = (tags: string[]) => entitySpans(tags).map((e) => `${e.type}:${e.start}-${e.end}`);

describe('entity spans', () => {
  it('BIO / IOB2: B starts, I continues the same type, O ends', () => {
    expect(spans(['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC', 'I-LOC'])).toEqual(['PER:0-2', 'LOC:3-4', 'LOC:4-6']);
  });

  it('I- without B- starts an entity (IOB1, or a broken prediction), and I- of another type starts a new one', () => {
    expect(spans(['I-ORG', 'I-ORG', 'O', 'I-PER'])).toEqual(['ORG:0-2', 'PER:3-4']);
    expect(spans(['B-PER', 'I-LOC', 'I-LOC'])).toEqual(['PER:0-1', 'LOC:1-3']);
    expect(spans(['O', 'I-MISC'])).toEqual(['MISC:1-2']);
  });

  it('BIOES: S- is an entity of one word, E- ends one, E- without B- is an entity by itself; BILOU alike', () => {
    expect(spans(['S-PER', 'B-ORG', 'I-ORG', 'E-ORG', 'S-LOC', 'S-LOC'])).toEqual(['PER:0-1', 'ORG:1-4', 'LOC:4-5', 'LOC:5-6']);
    expect(spans(['E-PER', 'O', 'B-LOC', 'E-LOC'])).toEqual(['PER:0-1', 'LOC:2-4']);
    // An entity left open by a B- with no E- is closed by the next tag.
    expect(spans(['B-ORG', 'S-PER'])).toEqual(['ORG:0-1', 'PER:1-2']);
    expect(spans(['U-PER', 'B-ORG', 'L-ORG'])).toEqual(['PER:0-1', 'ORG:1-3']);
  });

  it('detects the scheme, and none for part-of-speech tags', () => {
    expect(detectEntityScheme(['O', 'B-PER', 'I-PER'])).toBe('BIO');
    expect(detectEntityScheme(['O', 'S-PER', 'E-LOC'])).toBe('BIOES');
    expect(detectEntityScheme(['NOUN', 'VERB', '.'])).toBeNull();
    expect(detectEntityScheme(['O'])).toBeNull();
  });
});

describe('entity metrics: exact span matching', () => {
  it('counts an entity right only with the same type, start and end', () => {
    const gold = [['B-PER', 'I-PER', 'O', 'B-LOC'], ['B-ORG', 'I-ORG', 'I-ORG']];
    const pred = [['B-PER', 'I-PER', 'O', 'B-ORG'], ['B-ORG', 'I-ORG', 'O']];
    // gold: PER 0-2, LOC 3-4, ORG 0-3; predicted: PER 0-2 (right), ORG 3-4 (wrong type), ORG 0-2 (wrong end)
    const m = entityMetrics(gold, pred);
    expect([m.gold, m.predicted, m.correct]).toEqual([3, 3, 1]);
    expect(m.precision).toBeCloseTo(1 / 3, 12);
    expect(m.recall).toBeCloseTo(1 / 3, 12);
    expect(m.f1).toBeCloseTo(1 / 3, 12);
    expect(m.perType.PER).toEqual({ precision: 1, recall: 1, f1: 1, support: 1 });
    expect(m.perType.LOC).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(m.perType.ORG).toEqual({ precision: 0, recall: 0, f1: 0, support: 1 });
  });

  it('a predicted I- without B- matches a gold B- span of the same words (lenient, as conlleval)', () => {
    const m = entityMetrics([['B-PER', 'I-PER', 'O']], [['I-PER', 'I-PER', 'O']]);
    expect(m.correct).toBe(1);
    expect(m.f1).toBe(1);
  });

  it('BIOES singletons and multi-word entities', () => {
    const gold = [['S-PER', 'O', 'B-LOC', 'E-LOC', 'S-ORG']];
    const pred = [['S-PER', 'O', 'B-LOC', 'I-LOC', 'S-MISC']];
    const m = entityMetrics(gold, pred, 'BIOES');
    // PER right; LOC 2-4 predicted as B I (no E): still the span 2-4, right; ORG vs MISC wrong.
    expect([m.gold, m.predicted, m.correct]).toEqual([3, 3, 2]);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
  });
});

describe('token metrics', () => {
  it('word accuracy, per-tag precision/recall/F1, macro-F1; entity scores only for entity tags', () => {
    const gold = [['DET', 'NOUN', 'VERB'], ['NOUN', '.']];
    const pred = [['DET', 'VERB', 'VERB'], ['NOUN', '.']];
    const m = tokenClassificationMetrics(gold, pred);
    expect(m.accuracy).toBeCloseTo(4 / 5, 12);
    expect(m.words).toBe(5);
    expect(m.sentences).toBe(2);
    expect(m.perTag.NOUN).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(m.perTag.VERB).toEqual({ precision: 0.5, recall: 1, f1: 2 / 3, support: 1 });
    expect(m.perTag.DET!.f1).toBe(1);
    expect(m.macroF1).toBeCloseTo((1 + 2 / 3 + 2 / 3 + 1) / 4, 12);
    expect(m.entities).toBeNull();
    // Tags of the model that never occur are listed with zero support and leave macro-F1 alone.
    const withAll = tokenClassificationMetrics(gold, pred, { tags: ['NOUN', 'VERB', 'DET', '.', 'X'] });
    expect(Object.keys(withAll.perTag)).toEqual(['NOUN', 'VERB', 'DET', '.', 'X']);
    expect(withAll.perTag.X).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(withAll.macroF1).toBeCloseTo(m.macroF1, 12);
    const ner = tokenClassificationMetrics([['B-PER', 'O']], [['B-PER', 'O']]);
    expect(ner.entities?.f1).toBe(1);
    expect(ner.entities?.scheme).toBe('BIO');
  });

  it('sentences or words that do not line up are a one-line error', async () => {
    expect(await oneLineError(() => tokenClassificationMetrics([['A']], []))).toMatch(/1 gold/);
    expect(await oneLineError(() => tokenClassificationMetrics([['A', 'B']], [['A']]))).toMatch(/sentence 0 has 2 gold tags but 1 predicted/);
  });

  it('most-frequent-tag baseline: each word its commonest training tag, unseen words the commonest tag', () => {
    const train = {
      sentences: [['the', 'can', 'can', 'run'], ['a', 'can']],
      tags: [['DET', 'NOUN', 'VERB', 'VERB'], ['DET', 'NOUN']],
    };
    const test = { sentences: [['the', 'can', 'jumps', 'run']], tags: [['DET', 'NOUN', 'VERB', 'NOUN']] };
    // can: NOUN 2, VERB 1 -> NOUN; jumps unseen -> the commonest training tag (DET, NOUN and VERB 2 each... NOUN 2, VERB 2, DET 2: tie, by name: DET)
    const b = mostFrequentTagBaseline(train, test);
    expect(b.fallback).toBe('DET');
    expect(b.words).toBe(4);
    expect(b.unknownWords).toBe(1);
    expect(b.accuracy).toBeCloseTo(2 / 4, 12);
    expect(b.knownAccuracy).toBeCloseTo(2 / 3, 12);
    expect(b.unknownAccuracy).toBe(0);
  });
});
