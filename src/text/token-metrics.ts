/**
 * Scores of word-level tagging: word (token) accuracy, per-tag precision/recall/F1, and for
 * entity tags (BIO/IOB1/IOB2, BIOES/BILOU) entity-level precision/recall/F1 with exact span
 * matching, as conlleval and seqeval's default mode count them. Plus the most-frequent-tag
 * baseline every tagger should beat.
 */
import { fail } from '../core/errors.js';
import { classScores } from '../train/metrics.js';

export interface TagScores {
  precision: number;
  recall: number;
  f1: number;
  /** Gold words (or, for entities, gold spans) of this tag. */
  support: number;
}

/** Entity tags: BIO covers IOB1 and IOB2 (B-/I- prefixes), BIOES also BILOU (E-/S- or L-/U-). */
export type EntityScheme = 'BIO' | 'BIOES';

/** An entity span over words [start, end) of one sentence. */
export interface EntitySpan {
  type: string;
  start: number;
  end: number;
}

export interface EntityMetrics {
  scheme: EntityScheme;
  precision: number;
  recall: number;
  f1: number;
  /** Spans in the gold tags, in the predicted tags, and found exactly (same type, same start and end). */
  gold: number;
  predicted: number;
  correct: number;
  perType: Record<string, TagScores>;
}

export interface TokenMetrics {
  /** Share of words whose predicted tag is the gold tag. */
  accuracy: number;
  words: number;
  sentences: number;
  /** Mean F1 over the tags that occur in the gold or the predicted tags. */
  macroF1: number;
  perTag: Record<string, TagScores>;
  /** Entity-level scores when the tags are entity tags (see detectEntityScheme), else null. */
  entities: EntityMetrics | null;
}

const PREFIXED = /^([BIESLU])-(.+)$/;

/**
 * Whether tags are entity tags, and of which scheme: every tag is `O` or a prefix B-, I-, E-,
 * S- (or L-, U-) and a type, and at least one is prefixed. BIOES when any tag has an E-, S-,
 * L- or U- prefix, else BIO. Null for other tag sets (part-of-speech tags).
 */
export function detectEntityScheme(tags: Iterable<string>): EntityScheme | null {
  let prefixed = false;
  let bioes = false;
  for (const tag of tags) {
    if (tag === 'O') continue;
    const m = PREFIXED.exec(tag);
    if (!m) return null;
    prefixed = true;
    if (m[1] !== 'B' && m[1] !== 'I') bioes = true;
  }
  return prefixed ? (bioes ? 'BIOES' : 'BIO') : null;
}

/**
 * The entity spans of one sentence's tags. Lenient, as conlleval: an I- (or E-) that does not
 * continue an entity of its type starts one (so IOB1 and broken predictions still count); B-
 * starts an entity; E- (L-) ends one; S- (U-) is an entity of one word; O and tags without a
 * prefix end any open entity.
 */
export function entitySpans(tags: readonly string[]): EntitySpan[] {
  const spans: EntitySpan[] = [];
  let open: { type: string; start: number } | null = null;
  const close = (end: number) => {
    if (open) spans.push({ type: open.type, start: open.start, end });
    open = null;
  };
  tags.forEach((tag, i) => {
    const m = PREFIXED.exec(tag);
    if (!m) {
      close(i);
      return;
    }
    const prefix = m[1]!;
    const type = m[2]!;
    const continues = open !== null && open.type === type;
    if (prefix === 'B') {
      close(i);
      open = { type, start: i };
    } else if (prefix === 'I') {
      if (!continues) {
        close(i);
        open = { type, start: i };
      }
    } else if (prefix === 'E' || prefix === 'L') {
      if (!continues) {
        close(i);
        open = { type, start: i };
      }
      close(i + 1);
    } else {
      // S- or U-: an entity of this word alone
      close(i);
      spans.push({ type, start: i, end: i + 1 });
    }
  });
  close(tags.length);
  return spans;
}

const scores = classScores;

function checkAligned(gold: readonly (readonly string[])[], predicted: readonly (readonly string[])[]): void {
  if (gold.length !== predicted.length) fail(`cannot score ${predicted.length} predicted sentences against ${gold.length} gold ones: give one prediction per sentence`);
  gold.forEach((g, s) => {
    if (g.length !== predicted[s]!.length) fail(`sentence ${s} has ${g.length} gold tags but ${predicted[s]!.length} predicted ones: give one tag per word`);
  });
}

/** Entity-level precision, recall and F1 with exact span matching (type, start and end). */
export function entityMetrics(gold: readonly (readonly string[])[], predicted: readonly (readonly string[])[], scheme: EntityScheme = 'BIO'): EntityMetrics {
  checkAligned(gold, predicted);
  const types = new Map<string, { tp: number; predicted: number; gold: number }>();
  const count = (type: string) => {
    let c = types.get(type);
    if (!c) types.set(type, (c = { tp: 0, predicted: 0, gold: 0 }));
    return c;
  };
  let correct = 0;
  let goldCount = 0;
  let predictedCount = 0;
  gold.forEach((g, s) => {
    const goldSpans = entitySpans(g);
    const predSpans = entitySpans(predicted[s]!);
    const key = (e: EntitySpan) => `${e.start}:${e.end}:${e.type}`;
    const goldKeys = new Set(goldSpans.map(key));
    for (const e of goldSpans) count(e.type).gold++;
    for (const e of predSpans) {
      const c = count(e.type);
      c.predicted++;
      if (goldKeys.has(key(e))) {
        c.tp++;
        correct++;
      }
    }
    goldCount += goldSpans.length;
    predictedCount += predSpans.length;
  });
  const perType: Record<string, TagScores> = {};
  for (const type of [...types.keys()].sort()) {
    const c = types.get(type)!;
    perType[type] = scores(c.tp, c.predicted, c.gold);
  }
  const all = scores(correct, predictedCount, goldCount);
  return { scheme, precision: all.precision, recall: all.recall, f1: all.f1, gold: goldCount, predicted: predictedCount, correct, perType };
}

/**
 * Word accuracy, per-tag precision/recall/F1 (tags in `tags` order when given, else sorted) and,
 * for entity tags, entity-level scores (`scheme`: detected from the gold tags unless given; null
 * turns them off).
 */
export function tokenClassificationMetrics(
  gold: readonly (readonly string[])[],
  predicted: readonly (readonly string[])[],
  options: { tags?: readonly string[]; scheme?: EntityScheme | null } = {},
): TokenMetrics {
  checkAligned(gold, predicted);
  const counts = new Map<string, { tp: number; predicted: number; gold: number }>();
  const count = (tag: string) => {
    let c = counts.get(tag);
    if (!c) counts.set(tag, (c = { tp: 0, predicted: 0, gold: 0 }));
    return c;
  };
  for (const tag of options.tags ?? []) count(tag);
  let right = 0;
  let words = 0;
  gold.forEach((g, s) => {
    const p = predicted[s]!;
    for (let i = 0; i < g.length; i++) {
      count(g[i]!).gold++;
      count(p[i]!).predicted++;
      if (g[i] === p[i]) {
        right++;
        count(g[i]!).tp++;
      }
    }
    words += g.length;
  });
  const order = options.tags ? [...options.tags, ...[...counts.keys()].filter((t) => !options.tags!.includes(t)).sort()] : [...counts.keys()].sort();
  const perTag: Record<string, TagScores> = {};
  let f1Sum = 0;
  let present = 0;
  for (const tag of order) {
    const c = counts.get(tag)!;
    perTag[tag] = scores(c.tp, c.predicted, c.gold);
    if (c.gold || c.predicted) {
      f1Sum += perTag[tag]!.f1;
      present++;
    }
  }
  const scheme = options.scheme === undefined ? detectEntityScheme(gold.flat()) : options.scheme;
  return {
    accuracy: words ? right / words : 0,
    words,
    sentences: gold.length,
    macroF1: present ? f1Sum / present : 0,
    perTag,
    entities: scheme ? entityMetrics(gold, predicted, scheme) : null,
  };
}

/** The most-frequent-tag tagger: each known word gets the tag it had most often in training. */
export interface MostFrequentTagModel {
  /** Word → its most frequent training tag (ties: the tag more frequent overall). */
  byWord: Map<string, string>;
  /** The most frequent training tag, given to words not seen in training. */
  fallback: string;
}

export interface BaselineReport {
  /** Word accuracy on the test sentences. */
  accuracy: number;
  /** On words seen in training, and on the others. */
  knownAccuracy: number;
  unknownAccuracy: number;
  words: number;
  unknownWords: number;
  fallback: string;
}

/** Fits the most-frequent-tag baseline on training sentences (word forms as written). */
export function fitMostFrequentTag(sentences: readonly (readonly string[])[], tags: readonly (readonly string[])[]): MostFrequentTagModel {
  checkAligned(tags, sentences);
  const overall = new Map<string, number>();
  const perWord = new Map<string, Map<string, number>>();
  sentences.forEach((words, s) => {
    words.forEach((word, i) => {
      const tag = tags[s]![i]!;
      overall.set(tag, (overall.get(tag) ?? 0) + 1);
      let m = perWord.get(word);
      if (!m) perWord.set(word, (m = new Map()));
      m.set(tag, (m.get(tag) ?? 0) + 1);
    });
  });
  if (overall.size === 0) fail('the most-frequent-tag baseline needs tagged training words');
  // Tags ranked by overall frequency, then by name: the tie-break, and the fallback.
  const rank = [...overall.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([t]) => t);
  const position = new Map(rank.map((t, i) => [t, i]));
  const byWord = new Map<string, string>();
  for (const [word, m] of perWord) {
    let best = '';
    let bestCount = -1;
    for (const [tag, c] of m) {
      if (c > bestCount || (c === bestCount && position.get(tag)! < position.get(best)!)) {
        best = tag;
        bestCount = c;
      }
    }
    byWord.set(word, best);
  }
  return { byWord, fallback: rank[0]! };
}

/** The baseline's tags for sentences. */
export function predictMostFrequentTag(model: MostFrequentTagModel, sentences: readonly (readonly string[])[]): string[][] {
  return sentences.map((words) => words.map((w) => model.byWord.get(w) ?? model.fallback));
}

/** Fits the most-frequent-tag baseline on train and scores it on test (overall, known and unknown words). */
export function mostFrequentTagBaseline(
  train: { sentences: readonly (readonly string[])[]; tags: readonly (readonly string[])[] },
  test: { sentences: readonly (readonly string[])[]; tags: readonly (readonly string[])[] },
): BaselineReport {
  const model = fitMostFrequentTag(train.sentences, train.tags);
  checkAligned(test.tags, test.sentences);
  let right = 0;
  let words = 0;
  let unknown = 0;
  let unknownRight = 0;
  test.sentences.forEach((ws, s) => {
    ws.forEach((w, i) => {
      const known = model.byWord.get(w);
      const ok = (known ?? model.fallback) === test.tags[s]![i];
      words++;
      if (ok) right++;
      if (known === undefined) {
        unknown++;
        if (ok) unknownRight++;
      }
    });
  });
  return {
    accuracy: words ? right / words : 0,
    knownAccuracy: words - unknown ? (right - unknownRight) / (words - unknown) : 0,
    unknownAccuracy: unknown ? unknownRight / unknown : 0,
    words,
    unknownWords: unknown,
    fallback: model.fallback,
  };
}
