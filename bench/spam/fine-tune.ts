/**
 * The spam goal: `revcol fine-tune --task spam --out DIR` with the defaults, then
 * `revcol eval --model DIR --task spam --json`; prints the test accuracy and the wall time
 * as one JSON line (goal: accuracy ≥ 0.99 on the task's test split, on the CPU), and appends it
 * to bench/results/spam.jsonl.
 *
 * Run: npx tsx bench/spam/fine-tune.ts [--out DIR] [--backend B] [-- extra fine-tune flags]
 * Both commands run as separate processes, exactly as a user types them; their progress
 * goes to stderr. For an ensemble (the task's default) it also records each member's
 * per-epoch test accuracy and the accuracy of the average of the members' last checkpoints.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { useBackend } from '../../src/backends/index.js';
import { TextClassifier } from '../../src/text/classifier.js';
import { readEnsembleManifest } from '../../src/text/ensemble-manifest.js';
import { loadTask } from '../../src/text/tasks.js';
import { recordResult } from '../lib/record.js';
import { repoRoot, runRevcol } from '../lib/cli.js';

const root = repoRoot;
const args = process.argv.slice(2);
const flag = (name: string, fallback?: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const out = flag('--out', path.join('runs', `bench-spam-${process.pid}`))!;
const backend = flag('--backend');
const extra = args.includes('--') ? args.slice(args.indexOf('--') + 1) : [];
const backendArgs = backend ? ['--backend', backend] : [];


// --overwrite: a rerun into the same --out replaces the bench's earlier model.
const fineTune = await runRevcol(['fine-tune', '--task', 'spam', '--out', out, '--overwrite', '--no-progress', ...backendArgs, ...extra], false);
if (fineTune.code !== 0) {
  process.stderr.write(`bench spam: fine-tune failed with exit code ${fineTune.code}\n`);
  process.exit(1);
}
const evaluation = await runRevcol(['eval', '--model', out, '--task', 'spam', '--json', ...backendArgs], true);
if (evaluation.code !== 0) {
  process.stderr.write(`bench spam: eval failed with exit code ${evaluation.code}\n`);
  process.exit(1);
}
const report = JSON.parse(evaluation.stdout.trim().split('\n').pop()!);
// eval scores best.safetensors: with --task, the last epoch (before, the epoch with the best
// test accuracy). An ensemble's per-member epochs are recorded too, and the average of its
// members' last checkpoints is scored here whichever epoch they kept.
const perEpoch = async (dir: string) => (await fs.readFile(path.resolve(root, dir, 'metrics.jsonl'), 'utf8'))
  .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { epoch?: number; accuracy?: number })
  .filter((r) => typeof r.epoch === 'number' && typeof r.accuracy === 'number');
const manifest = await readEnsembleManifest(path.resolve(root, out));
const epochs = await perEpoch(manifest ? path.join(out, manifest.members[0]!) : out);
let ensemble: Record<string, unknown> = {};
if (manifest) {
  await useBackend(backend ?? 'auto');
  const test = (await loadTask('spam')).test;
  let sum: Float32Array | null = null;
  let labels: string[] = [];
  const members: { bestAccuracy?: number; lastEpochAccuracy?: number; perEpochAccuracy: number[] }[] = [];
  for (const member of manifest.members) {
    const rows = await perEpoch(path.join(out, member));
    members.push({ bestAccuracy: Math.max(...rows.map((r) => r.accuracy!)), lastEpochAccuracy: rows.at(-1)?.accuracy, perEpochAccuracy: rows.map((r) => r.accuracy!) });
    const classifier = await TextClassifier.load(path.resolve(root, out, member, 'last.ckpt.safetensors'));
    labels = classifier.labels.names;
    const p = classifier.probabilities(test.texts);
    classifier.dispose();
    if (!sum) sum = p;
    else for (let i = 0; i < p.length; i++) sum[i] += p[i]!;
  }
  const k = labels.length;
  let right = 0;
  test.labels.forEach((label, i) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (sum![i * k + c]! > sum![i * k + best]!) best = c;
    if (labels[best] === label) right += 1;
  });
  // lastCheckpointsAccuracy: the members' average alone, without the baseline a recipe may mix in.
  ensemble = { members: manifest.members.length, seeds: manifest.seeds, lastCheckpointsAccuracy: right / test.labels.length, memberResults: members };
}
const line = JSON.stringify({
  bench: 'spam',
  date: new Date().toISOString(),
  accuracy: report.accuracy,
  macroF1: report.macroF1,
  testExamples: report.examples,
  errors: report.examples - Math.round(report.accuracy * report.examples),
  ...(typeof report.baselineWeight === 'number' ? { baselineWeight: report.baselineWeight } : {}),
  ...(manifest ? ensemble : { lastEpochAccuracy: epochs.at(-1)?.accuracy, perEpochAccuracy: epochs.map((r) => r.accuracy) }),
  goal: 0.99,
  reached: report.accuracy >= 0.99,
  fineTuneSeconds: Math.round(fineTune.seconds),
  evalSeconds: Math.round(evaluation.seconds),
  totalSeconds: Math.round(fineTune.seconds + evaluation.seconds),
  out,
  command: `revcol fine-tune --task spam --out ${out}${backend ? ` --backend ${backend}` : ''}${extra.length ? ` ${extra.join(' ')}` : ''} && revcol eval --model ${out} --task spam --json`,
});
process.stdout.write(`${line}\n`);
await recordResult('spam', line);
