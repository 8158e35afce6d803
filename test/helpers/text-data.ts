import { writeFileSync } from 'node:fs';

/** A small seeded CSV of short texts whose label shows in two cue words (sport, music, food). */
export function writeTopics(file: string, rows: number, seed: number, labels = ['sport', 'music']): void {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
  const cue: Record<string, string[]> = {
    sport: ['goal', 'match', 'team', 'score', 'coach'],
    music: ['song', 'guitar', 'album', 'concert', 'melody'],
    food: ['pasta', 'recipe', 'bread', 'spicy', 'dinner'],
  };
  const filler = ['the', 'new', 'was', 'today', 'and', 'a', 'big', 'after', 'we', 'saw'];
  const lines = ['text,label'];
  for (let i = 0; i < rows; i++) {
    const label = labels[i % labels.length];
    const words = Array.from({ length: 3 + Math.floor(rnd() * 6) }, () => pick(filler));
    words.splice(Math.floor(rnd() * words.length), 0, pick(cue[label]), pick(cue[label]));
    lines.push(`"${words.join(' ')}",${label}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}
