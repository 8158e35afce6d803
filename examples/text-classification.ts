// Text classification through the API: fine-tune a (very small) RevCol text classifier on a CSV,
// load the folder it wrote, classify new texts and score it on held-out data — what
// `revcol fine-tune`, `revcol predict` and `revcol eval` do, from code.
//
// Run it: npx tsx examples/text-classification.ts   (a few seconds: 120 made-up texts, a model
// of a few thousand weights above the embeddings; real data wants the default presets)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fineTune, readTextExamples, TextClassifier, useBackend } from 'revcol';

// Made-up data: the topic shows in one or two cue words among common ones.
const CUES: Record<string, string[]> = {
  sport: ['goal', 'match', 'team', 'score', 'coach', 'league'],
  music: ['song', 'guitar', 'album', 'concert', 'melody', 'band'],
};
const FILLER = ['the', 'new', 'was', 'today', 'and', 'a', 'big', 'after', 'we', 'saw', 'last', 'night'];

function writeCsv(file: string, rows: number, seed: number): void {
  let s = seed;
  const pick = <T>(a: T[]): T => a[(s = (s * 1103515245 + 12345) % 2147483648) % a.length]!;
  const lines = ['text,label'];
  for (let i = 0; i < rows; i++) {
    const label = i % 2 === 0 ? 'sport' : 'music';
    const words = Array.from({ length: 4 + (i % 5) }, () => pick(FILLER));
    words.splice(i % words.length, 0, pick(CUES[label]!), pick(CUES[label]!));
    lines.push(`${words.join(' ')},${label}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-example-text-'));
try {
  const train = path.join(work, 'train.csv');
  const test = path.join(work, 'test.csv');
  writeCsv(train, 120, 1);
  writeCsv(test, 40, 2);

  const backend = await useBackend('auto');
  const out = path.join(work, 'model');
  const result = await fineTune({
    train, // no eval file: 10% of the training texts are held out and scored every epoch
    out,
    preset: 'text-micro', // the smallest model: 2 columns, widths 16/16, one block a level
    maxLength: 16,
    epochs: 10,
    keep: 'last', // the last epoch's weights (the held-out texts are too few to choose well)
    batchSize: 16,
    lr: 3e-3,
    progress: false,
    log: () => {},
  });
  console.log(`fine-tuned on ${result.trainExamples} texts (${result.epochs} epochs, ${backend.name} backend): accuracy ${(result.summary.bestAccuracy * 100).toFixed(1)}% on ${result.evalExamples} held-out training texts; saved in ${out}`);

  const classifier = await TextClassifier.load(out);
  try {
    for (const [i, r] of (await classifier.classify(['a big match for the team last night', 'the band played a new song today'])).entries()) {
      console.log(`text ${i + 1}: ${r.label} (${(r.score * 100).toFixed(1)}%; ${Object.entries(r.probabilities).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')})`);
    }
    const report = await classifier.evaluateAsync(await readTextExamples(test));
    console.log(`evaluated on ${report.examples} test texts: accuracy ${(report.accuracy * 100).toFixed(1)}%, macro-F1 ${report.macroF1.toFixed(3)}`);
  } finally {
    classifier.dispose();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
