/**
 * Writes the evaluation sets as the text-quality bench splits them (seed 0), for runs away from
 * this machine (bench/gpu-cli.ts --only english): DIR/SET/test.csv, and the train split as
 * DIR/SET/fit.csv and DIR/SET/val.csv (10% held out for fine-tune's choice of epoch, by
 * document for brown-genre), exactly the files `npm run bench -- text-quality --revcol` uses.
 *   npx tsx bench/gpu-english-data.ts DIR [--limit N]
 * --limit N: at most N texts per split, evenly spaced through it (a quick check of the wiring).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildEvalSet, EVAL_SET_NAMES, validationPart, writeEvalSet, type EvalSet } from '../src/text/eval-sets.js';
import { flag } from './lib/args.js';

const dir = process.argv[2];
if (!dir || dir.startsWith('-')) {
  process.stderr.write('usage: npx tsx bench/gpu-english-data.ts DIR [--limit N]\n');
  process.exit(1);
}
const limit = flag('limit', '') ? Number(flag('limit', '')) : undefined;

/** About n of each split's texts, evenly spaced (the splits are sorted by nothing that matters here). */
function spaced(set: EvalSet, n: number): EvalSet {
  const pick = <T>(a: T[], step: number) => a.filter((_, i) => i % step === 0);
  const trainStep = Math.max(1, Math.floor(set.train.texts.length / n));
  const testStep = Math.max(1, Math.floor(set.test.texts.length / n));
  return {
    ...set,
    train: { ...set.train, texts: pick(set.train.texts, trainStep), labels: pick(set.train.labels, trainStep) },
    test: { ...set.test, texts: pick(set.test.texts, testStep), labels: pick(set.test.labels, testStep) },
    trainGroups: set.trainGroups && pick(set.trainGroups, trainStep),
    testGroups: set.testGroups && pick(set.testGroups, testStep),
  };
}

for (const name of EVAL_SET_NAMES) {
  let set = await buildEvalSet(name, { seed: 0 });
  if (limit !== undefined) set = spaced(set, limit);
  const out = path.join(dir, name);
  const files = await writeEvalSet(set, out);
  const parts = await validationPart(set, 0.1, 0, out);
  await fs.rm(files.train); // fit.csv + val.csv hold it
  console.log(`${name}: ${parts.fitTexts} fit, ${parts.valTexts} val (${parts.split}), ${set.test.texts.length} test`);
}
