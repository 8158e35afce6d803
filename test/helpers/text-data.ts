import { writeFileSync } from 'node:fs';

/** Words of seeded synthetic texts: `minWords` + up to `extraWords` fillers, and two cue words of the label. */
export interface CueVocabulary {
  cue: Record<string, string[]>;
  filler: string[];
  minWords: number;
  extraWords: number;
}

type Pick = <T>(a: T[]) => T;

/**
 * Seeded rows whose label shows only in two cue words among fillers, labels taken in turn.
 * `decorate` may rewrite a text, drawing from the same random stream.
 */
export function cueTextRows(
  rows: number,
  seed: number,
  labels: string[],
  vocab: CueVocabulary,
  decorate: (text: string, label: string, row: number, pick: Pick) => string = (text) => text,
): Array<{ text: string; label: string }> {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick: Pick = (a) => a[Math.floor(rnd() * a.length)]!;
  return Array.from({ length: rows }, (_, i) => {
    const label = labels[i % labels.length]!;
    const words = Array.from({ length: vocab.minWords + Math.floor(rnd() * vocab.extraWords) }, () => pick(vocab.filler));
    words.splice(Math.floor(rnd() * words.length), 0, pick(vocab.cue[label]!), pick(vocab.cue[label]!));
    return { text: decorate(words.join(' '), label, i, pick), label };
  });
}

const TOPICS: CueVocabulary = {
  cue: {
    sport: ['goal', 'match', 'team', 'score', 'coach'],
    music: ['song', 'guitar', 'album', 'concert', 'melody'],
    food: ['pasta', 'recipe', 'bread', 'spicy', 'dinner'],
  },
  filler: ['the', 'new', 'was', 'today', 'and', 'a', 'big', 'after', 'we', 'saw'],
  minWords: 3,
  extraWords: 6,
};

/** A small seeded CSV of short texts whose label shows in two cue words (sport, music, food). */
export function writeTopics(file: string, rows: number, seed: number, labels = ['sport', 'music']): void {
  const lines = cueTextRows(rows, seed, labels, TOPICS).map((r) => `"${r.text}",${r.label}`);
  writeFileSync(file, `${['text,label', ...lines].join('\n')}\n`);
}
