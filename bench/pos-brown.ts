/**
 * The part-of-speech goal (issue #12): `revcol fine-tune --task pos-brown --out DIR` with the
 * defaults, then `revcol eval --model DIR --task pos-brown --json`; prints the test split's token
 * accuracy and the wall time next to the most-frequent-tag baseline the task records, as one
 * JSON line appended to bench/results/pos-brown.jsonl. Goal: accuracy ≥ 0.97 in ≤ 30 min here.
 *
 * Run: npm run bench -- pos-brown [--out DIR] [--backend B] [-- extra fine-tune flags]
 * Both commands run as separate processes, exactly as a user types them; their progress goes
 * to stderr. The per-epoch accuracies come from the run's metrics.jsonl.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { recordResult } from './lib/record.js';
import { repoRoot, runRevcol } from './lib/cli.js';

const root = repoRoot;
const args = process.argv.slice(2);
const flag = (name: string, fallback?: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const out = flag('--out', path.join('runs', `bench-pos-brown-${process.pid}`))!;
const backend = flag('--backend');
const extra = args.includes('--') ? args.slice(args.indexOf('--') + 1) : [];
const backendArgs = backend ? ['--backend', backend] : [];


const baseline = JSON.parse(await fs.readFile(path.join(root, 'tasks', 'pos-brown.json'), 'utf8')).baseline as { accuracy: number; unknownWordAccuracy: number };
const load = os.loadavg()[0];
const fineTune = await runRevcol(['fine-tune', '--task', 'pos-brown', '--out', out, '--overwrite', '--no-progress', ...backendArgs, ...extra], false);
if (fineTune.code !== 0) {
  process.stderr.write(`bench pos-brown: fine-tune failed with exit code ${fineTune.code}\n`);
  process.exit(1);
}
const evaluation = await runRevcol(['eval', '--model', out, '--task', 'pos-brown', '--json', ...backendArgs], true);
if (evaluation.code !== 0) {
  process.stderr.write(`bench pos-brown: eval failed with exit code ${evaluation.code}\n`);
  process.exit(1);
}
const report = JSON.parse(evaluation.stdout.trim().split('\n').pop()!) as { accuracy: number; macroF1?: number };
const perEpoch = (await fs.readFile(path.resolve(root, out, 'metrics.jsonl'), 'utf8'))
  .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { epoch?: number; accuracy?: number })
  .filter((r) => typeof r.epoch === 'number' && typeof r.accuracy === 'number')
  .map((r) => r.accuracy!);
const line = JSON.stringify({
  bench: 'pos-brown',
  date: new Date().toISOString(),
  command: `revcol fine-tune --task pos-brown --out ${out}${extra.length ? ` ${extra.join(' ')}` : ''}${backend ? ` --backend ${backend}` : ''}`,
  accuracy: report.accuracy,
  macroF1: report.macroF1,
  goal: 0.97,
  baselineAccuracy: baseline.accuracy,
  perEpochAccuracy: perEpoch,
  fineTuneSeconds: Math.round(fineTune.seconds),
  evalSeconds: Math.round(evaluation.seconds),
  timeGoalSeconds: 1800,
  machine: `${os.cpus().length} cores, load ${load.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end`,
});
process.stdout.write(`${line}\n`);
await recordResult('pos-brown', line);
