import { writeFileSync } from 'node:fs';
import { writeWordPieceTokenizer } from './token-data.js';

/** Words of the synthetic head tasks: cue words per topic, fillers, and "good" words a regression counts. */
export const HEAD_WORDS = {
  sport: ['goal', 'match', 'team'],
  music: ['song', 'guitar', 'album'],
  food: ['pasta', 'bread', 'dinner'],
  good: ['great', 'fine', 'nice'],
  filler: ['the', 'new', 'was', 'today', 'and', 'a', 'big', 'we', 'saw'],
};

/** A tiny WordPiece tokenizer over HEAD_WORDS: fast steps. */
export function writeHeadTokenizer(dir: string): void {
  writeWordPieceTokenizer(dir, Object.values(HEAD_WORDS).flat());
}

function random(seed: number): { rnd: () => number; pick: <T>(a: readonly T[]) => T } {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return { rnd, pick: (a) => a[Math.floor(rnd() * a.length)]! };
}

const fillers = (pick: <T>(a: readonly T[]) => T, n: number): string[] => Array.from({ length: n }, () => pick(HEAD_WORDS.filler));

/** Regression rows: the label is 0.5 + the number of "good" words (0–4) plus a little seeded noise, not whole. */
export function regressionRows(count: number, seed: number): Array<{ text: string; score: number }> {
  const { rnd, pick } = random(seed);
  return Array.from({ length: count }, (_, i) => {
    const good = i % 5;
    const words = fillers(pick, 2 + Math.floor(rnd() * 3));
    for (let g = 0; g < good; g++) words.splice(Math.floor(rnd() * (words.length + 1)), 0, pick(HEAD_WORDS.good));
    return { text: words.join(' '), score: Number((0.5 + good + (rnd() - 0.5) * 0.2).toFixed(3)) };
  });
}

/** Multi-label rows: a non-empty subset of sport/music/food, each shown by a cue word among fillers. */
export function multiLabelRows(count: number, seed: number): Array<{ text: string; labels: string[] }> {
  const { rnd, pick } = random(seed);
  const topics = ['sport', 'music', 'food'] as const;
  return Array.from({ length: count }, (_, i) => {
    const mask = (i % 7) + 1; // every non-empty subset in turn
    const labels = topics.filter((_, t) => mask & (1 << t));
    const words = fillers(pick, 2 + Math.floor(rnd() * 3));
    for (const t of labels) words.splice(Math.floor(rnd() * (words.length + 1)), 0, pick(HEAD_WORDS[t]));
    return { text: words.join(' '), labels: [...labels] };
  });
}

/**
 * Pair rows whose label is the topic of the second text; the first shows another topic, so only
 * a model that tells the two texts apart (the segment embedding) gets them right.
 */
export function pairRows(count: number, seed: number): Array<{ a: string; b: string; label: string }> {
  const { rnd, pick } = random(seed);
  const topics = ['sport', 'music'] as const;
  return Array.from({ length: count }, (_, i) => {
    const label = topics[i % 2]!;
    const other = topics[(i + 1) % 2]!;
    const text = (t: 'sport' | 'music') => {
      const words = fillers(pick, 1 + Math.floor(rnd() * 3));
      words.splice(Math.floor(rnd() * (words.length + 1)), 0, pick(HEAD_WORDS[t]));
      return words.join(' ');
    };
    return { a: text(other), b: text(label), label };
  });
}

export function writeRegressionCsv(file: string, count: number, seed: number): void {
  writeFileSync(file, `text,score\n${regressionRows(count, seed).map((r) => `${r.text},${r.score}`).join('\n')}\n`);
}

export function writeMultiLabelCsv(file: string, count: number, seed: number): void {
  writeFileSync(file, `text,label\n${multiLabelRows(count, seed).map((r) => `${r.text},${r.labels.join('|')}`).join('\n')}\n`);
}

export function writeMultiLabelJsonl(file: string, count: number, seed: number): void {
  writeFileSync(file, `${multiLabelRows(count, seed).map((r) => JSON.stringify({ text: r.text, label: r.labels })).join('\n')}\n`);
}

export function writePairTsv(file: string, count: number, seed: number): void {
  writeFileSync(file, `premise\thypothesis\tlabel\n${pairRows(count, seed).map((r) => `${r.a}\t${r.b}\t${r.label}`).join('\n')}\n`);
}
