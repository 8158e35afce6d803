import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { fineTune, readTextExamples, TextClassifier } from '../src/index.js';
import { runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-text-ensemble-'));
const trainFile = path.join(work, 'topics.csv');
const evalFile = path.join(work, 'topics-eval.csv');
const texts = ['the team scored a late goal', 'a new album and a concert', 'we saw the big match and a song'];
const quiet = { progress: false, log: () => {} };
const common = { train: trainFile, eval: evalFile, epochs: 3, lr: 3e-3, preset: 'text-micro', ...quiet };

beforeAll(async () => {
  await useBackend('wasm');
  writeTopics(trainFile, 60, 1);
  writeTopics(evalFile, 24, 2);
});

async function probabilities(dir: string): Promise<Float32Array> {
  const classifier = await TextClassifier.load(dir);
  try {
    return classifier.probabilities(texts);
  } finally {
    classifier.dispose();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

const cli = runCliCaptured;

describe('seed ensembles', () => {
  const inTurn = path.join(work, 'in-turn');

  it('load as the mean of their members; member 1 is the single model of the same seed', async () => {
    const result = await fineTune({ ...common, out: inTurn, ensemble: 3, parallel: 1 });
    expect(result.ensemble!.seeds).toEqual([0, 1, 2]);
    expect(result.ensemble!.members).toHaveLength(3);
    expect(['member-1', 'member-2', 'member-3', 'ensemble.json', 'tokenizer.json'].every((f) => existsSync(path.join(inTurn, f)))).toBe(true);

    const ensemble = await TextClassifier.load(inTurn);
    expect(ensemble.models).toHaveLength(3);
    const got = ensemble.probabilities(texts);
    const members = await Promise.all([1, 2, 3].map((k) => probabilities(path.join(inTurn, `member-${k}`))));
    const mean = got.map((_, i) => (members[0]![i]! + members[1]![i]! + members[2]![i]!) / 3);
    expect(maxDiff(got, mean)).toBeLessThan(1e-6);
    // The seeds make different models.
    expect(maxDiff(members[0]!, members[1]!)).toBeGreaterThan(1e-4);

    // The reported score is the averaged model's, and the manifest records it.
    const report = ensemble.evaluate(await readTextExamples(evalFile));
    ensemble.dispose();
    expect(report.accuracy).toBeCloseTo(result.ensemble!.accuracy, 10);
    const manifest = JSON.parse(readFileSync(path.join(inTurn, 'ensemble.json'), 'utf8'));
    expect(manifest.eval.accuracy).toBeCloseTo(report.accuracy, 10);
    expect(manifest.seeds).toEqual([0, 1, 2]);

    const single = path.join(work, 'single');
    await fineTune({ ...common, out: single, seed: 0 });
    expect(maxDiff(await probabilities(single), members[0]!)).toBeLessThan(1e-7);
  });

  it('members trained side by side in processes equal those trained in turn', async () => {
    const side = path.join(work, 'side-by-side');
    const result = await fineTune({ ...common, out: side, ensemble: 2, parallel: 2 });
    expect(result.ensemble!.members.map((m) => m.summary.epochs.length)).toEqual([3, 3]);
    for (const k of [1, 2]) {
      expect(maxDiff(await probabilities(path.join(side, `member-${k}`)), await probabilities(path.join(inTurn, `member-${k}`)))).toBeLessThan(1e-7);
    }
  });

  it('--resume continues every member; a single run in the folder replaces the ensemble', async () => {
    const dir = path.join(work, 'resume');
    await fineTune({ ...common, out: dir, epochs: 1, ensemble: 2, parallel: 1 });
    // No --ensemble: the folder's manifest says how many members to continue.
    const resumed = await fineTune({ ...common, out: dir, epochs: 2, resume: true, parallel: 1 });
    expect(resumed.ensemble!.members.map((m) => m.summary.epochs.length)).toEqual([2, 2]);
    expect(resumed.ensemble!.members.map((m) => m.summary.resumedFromEpoch)).toEqual([1, 1]);

    const logs: string[] = [];
    await expect(fineTune({ ...common, out: dir, epochs: 1 })).rejects.toThrow(/already holds a finished fine-tune run \(an ensemble of 2\): add resume to continue it.*, overwrite to replace it/);
    await fineTune({ ...common, out: dir, epochs: 1, overwrite: true, progress: false, log: (l) => logs.push(l) });
    expect(existsSync(path.join(dir, 'ensemble.json'))).toBe(false);
    expect(existsSync(path.join(dir, 'member-1'))).toBe(false);
    expect(logs.some((l) => l.startsWith('note: overwrite: a finished fine-tune run (an ensemble of 2)'))).toBe(true);
    const classifier = await TextClassifier.load(dir);
    expect(classifier.models).toHaveLength(1);
    classifier.dispose();
  });

  it('--resume of a member stopped in its pre-training continues the pre-training', async () => {
    const dir = path.join(work, 'resume-pre');
    await fineTune({ ...common, out: dir, epochs: 1, pretrainEpochs: 1, maxLength: 24, ensemble: 2, parallel: 1 });
    // As if member 2 had stopped after its pre-training's first epoch, before fine-tuning.
    for (const file of ['last.ckpt.safetensors', 'best.safetensors', 'metrics.jsonl']) rmSync(path.join(dir, 'member-2', file));
    rmSync(path.join(dir, 'ensemble.json'));
    const logs: string[] = [];
    const resumed = await fineTune({ ...common, out: dir, epochs: 1, pretrainEpochs: 2, maxLength: 24, ensemble: 2, parallel: 1, resume: true, log: (l) => logs.push(l) });
    const member2 = logs.filter((l) => l.startsWith('member 2/2: '));
    expect(member2.some((l) => l.includes(`resuming ${path.join(dir, 'member-2', 'pretrained')} after epoch 1`))).toBe(true);
    expect(resumed.ensemble!.members.map((m) => m.summary.epochs.length)).toEqual([1, 1]);
  });

  it('bad input: --from an ensemble, a damaged manifest, a bad member count', async () => {
    await expect(fineTune({ train: trainFile, out: path.join(work, 'x'), from: inTurn, ...quiet }))
      .rejects.toThrow(`from takes one model, and ${inTurn} is an ensemble of 3: pass one of its members, e.g. from ${path.join(inTurn, 'member-1')}`);
    const damaged = path.join(work, 'damaged');
    cpSync(inTurn, damaged, { recursive: true });
    writeFileSync(path.join(damaged, 'ensemble.json'), '{ not json');
    await expect(TextClassifier.load(damaged)).rejects.toThrow(/ensemble\.json is not valid JSON: the ensemble's folder is damaged/);
    writeFileSync(path.join(damaged, 'ensemble.json'), JSON.stringify({ format: 'revcol-text-ensemble', members: ['../elsewhere'] }));
    await expect(TextClassifier.load(damaged)).rejects.toThrow(/is not a revcol ensemble manifest/);
    await expect(fineTune({ ...common, out: path.join(work, 'x'), ensemble: 0 })).rejects.toThrow('ensemble must be a whole number ≥ 1, got 0');
    await expect(fineTune({ ...common, out: path.join(work, 'x'), ensemble: 2, parallel: 0 })).rejects.toThrow('parallel must be a whole number ≥ 1, got 0');
  });

  it('from the CLI: a member process\'s mistake is one line and exit 1; eval and predict take the folder', async () => {
    const config = path.join(work, 'bad-heads.json');
    writeFileSync(config, JSON.stringify({ preset: 'text-micro', heads: 3 }));
    const bad = await cli(['fine-tune', '--train', trainFile, '--config', config, '--ensemble', '2', '--parallel', '2', '--out', path.join(work, 'bad'), '--no-progress']);
    expect(bad.code).toBe(1);
    const lines = bad.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^revcol: .*heads/);
    // The member's own checks name the flags too (its process gets the CLI's naming as a table).
    const long = await cli(['fine-tune', '--train', trainFile, '--preset', 'text-micro', '--max-length', '300', '--ensemble', '2', '--parallel', '2', '--out', path.join(work, 'bad'), '--no-progress']);
    expect(long.code).toBe(1);
    expect(long.stderr.trim().split('\n').at(-1)).toBe('revcol: --max-length 300 is longer than the 128 positions of preset text-micro: use 128 or less, or a --config with "maxLength": 300');
    expect(bad.stderr).not.toMatch(/\n\s+at /);

    const ev = await cli(['eval', '--model', inTurn, '--data', evalFile, '--json']);
    expect(ev.code).toBe(0);
    expect(JSON.parse(ev.stdout).examples).toBe(24);
    const pred = await cli(['predict', '--model', inTurn, '--json', ...texts]);
    expect(pred.code).toBe(0);
    const rows = JSON.parse(pred.stdout) as { probabilities: Record<string, number> }[];
    const want = await probabilities(inTurn);
    expect(Math.abs(rows[0]!.probabilities.music! - want[0]!)).toBeLessThan(1e-6);
  });
});
