import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { fineTune, readTextExamples, TextClassifier } from '../src/index.js';
import { BLEND_FILE, readBaselineBlend } from '../src/text/baseline-blend.js';
import { AUTO_BLEND_TEXTS, AUTO_BLEND_WEIGHTS, chooseBlendWeight } from '../src/text/fine-tune.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-text-blend-'));
const trainFile = path.join(work, 'topics.csv');
const evalFile = path.join(work, 'topics-eval.csv');
const texts = ['the team scored a late goal', 'a new album and a concert', 'we saw the big match and a song', 'pasta for dinner'];
const quiet = { progress: false, log: () => {} };
const common = { train: trainFile, eval: evalFile, epochs: 2, lr: 3e-3, preset: 'text-micro', ...quiet };

beforeAll(async () => {
  await useBackend('wasm');
  writeTopics(trainFile, 60, 1);
  writeTopics(evalFile, 24, 2);
});

async function probabilities(dir: string): Promise<{ probs: Float32Array; labels: string[] }> {
  const classifier = await TextClassifier.load(dir);
  try {
    return { probs: classifier.probabilities(texts), labels: classifier.labels.names };
  } finally {
    classifier.dispose();
  }
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe('a TF-IDF + logistic regression baseline mixed into a text classifier (--baseline-weight)', () => {
  const dir = path.join(work, 'single');

  it('is stored beside the model and mixed in by every load of the folder, at its weight', async () => {
    const before = tf.memory().numTensors;
    const result = await fineTune({ ...common, out: dir, baselineWeight: 0.4 });
    expect(existsSync(path.join(dir, BLEND_FILE))).toBe(true);
    expect(result.blend!.weight).toBe(0.4);

    const blend = (await readBaselineBlend(dir))!;
    expect(blend.weight).toBe(0.4);
    const mixed = await probabilities(dir);
    // The weights file alone is the model alone.
    const alone = await probabilities(path.join(dir, 'best.safetensors'));
    const fromBaseline = blend.baseline.probabilities(texts);
    const k = mixed.labels.length;
    const expected = alone.probs.map((p, j) => 0.6 * p + 0.4 * fromBaseline[Math.floor(j / k)]![blend.baseline.labels.indexOf(mixed.labels[j % k]!)]!);
    expect(maxDiff(mixed.probs, expected)).toBeLessThan(1e-6);
    expect(maxDiff(mixed.probs, alone.probs)).toBeGreaterThan(1e-3);
    for (let i = 0; i < texts.length; i++) expect(mixed.probs.subarray(i * k, (i + 1) * k).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);

    // The score fine-tune reports is the mix's on the evaluation data.
    const classifier = await TextClassifier.load(dir);
    const report = classifier.evaluate(await readTextExamples(evalFile));
    classifier.dispose();
    expect(report.accuracy).toBeCloseTo(result.blend!.accuracy, 10);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a run without it replaces the folder\'s blend; an ensemble gets one blend, its members none', async () => {
    const lines: string[] = [];
    await fineTune({ ...common, out: dir, epochs: 1, overwrite: true, log: (l) => lines.push(l) });
    expect(existsSync(path.join(dir, BLEND_FILE))).toBe(false);
    expect(lines.some((l) => l.includes(BLEND_FILE))).toBe(true);

    const ensemble = path.join(work, 'ensemble');
    const result = await fineTune({ ...common, epochs: 1, out: ensemble, ensemble: 2, parallel: 1, baselineWeight: 0.25 });
    expect(result.ensemble!.members).toHaveLength(2);
    expect(result.blend!.weight).toBe(0.25);
    expect(existsSync(path.join(ensemble, BLEND_FILE))).toBe(true);
    expect([1, 2].some((m) => existsSync(path.join(ensemble, `member-${m}`, BLEND_FILE)))).toBe(false);
    const classifier = await TextClassifier.load(ensemble);
    expect(classifier.blend?.weight).toBe(0.25);
    classifier.dispose();
  });

  it('the CLI prints the mix; eval says it is mixed in; bad weights and other heads are one-line errors', async () => {
    const out = path.join(work, 'cli');
    const r = await runCliCaptured(['fine-tune', '--train', trainFile, '--eval', evalFile, '--preset', 'text-micro', '--epochs', '1', '--baseline-weight', '0.3', '--out', out, '--no-progress', '--backend', 'wasm']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/with TF-IDF \+ logistic regression mixed in at weight 0\.3 .*accuracy \d+\.\d\d%/);
    const e = await runCliCaptured(['eval', '--model', out, '--data', evalFile, '--json', '--backend', 'wasm']);
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout.trim().split('\n').pop()!).baselineWeight).toBe(0.3);

    expectOneLineError(await runCliCaptured(['fine-tune', '--train', trainFile, '--baseline-weight', '1', '--out', path.join(work, 'bad')]), /--baseline-weight must be a number in \[0, 1\)/);
    const pairs = path.join(work, 'pairs.csv');
    writeFileSync(pairs, 'text,text_pair,label\n' + Array.from({ length: 20 }, (_, i) => `a ${i},b ${i},${i % 2 ? 'yes' : 'no'}`).join('\n') + '\n');
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', pairs, '--text-pair-column', 'text_pair', '--baseline-weight', '0.3', '--out', path.join(work, 'pairs'), '--backend', 'wasm']), /--baseline-weight mixes in .* on sentence pairs/);
    expect(existsSync(path.join(work, 'pairs', 'best.safetensors'))).toBe(false);
  });

  it('a damaged blend file is a one-line error that says how to go on', async () => {
    const out = path.join(work, 'cli');
    const file = path.join(out, BLEND_FILE);
    const kept = readFileSync(file, 'utf8');
    writeFileSync(file, '{"format": "revcol-baseline-blend", "weight": 2}');
    try {
      expectOneLineError(await runCliCaptured(['predict', '--model', out, 'a goal', '--backend', 'wasm']), /not a revcol baseline blend .*delete baseline-blend\.json/);
    } finally {
      writeFileSync(file, kept);
    }
  });
});

describe('the mix fine-tune chooses by itself (no --baseline-weight, 1,000 or more training texts)', () => {
  it('chooseBlendWeight takes the weight of least log-loss on the evaluation texts, 0 when the model alone is best, the first on a tie', () => {
    // Two texts, two classes: the model right but unsure, the baseline sure on one and wrong on the other.
    const labels = Int32Array.from([0, 1]);
    const model = Float32Array.from([0.6, 0.4, 0.4, 0.6]);
    // The baseline's rows in its own label order, here the model's.
    const rows = (...ps: number[][]) => ps.map((p) => Float64Array.from(p));
    const baseline = rows([0.99, 0.01], [0.3, 0.7]);
    const same = [0, 1];
    const { weight, logLoss } = chooseBlendWeight(model, baseline, same, labels);
    const mixed = (w: number) => -(Math.log(0.6 * (1 - w) + 0.99 * w) + Math.log(0.6 * (1 - w) + 0.7 * w)) / 2;
    expect(logLoss).toHaveLength(AUTO_BLEND_WEIGHTS.length);
    logLoss.forEach((l, i) => expect(l).toBeCloseTo(mixed(AUTO_BLEND_WEIGHTS[i]!), 6));
    // Both terms rise with w: the largest weight tried wins.
    expect(weight).toBe(0.95);
    // A perfect model needs no baseline; equal inputs tie everywhere: the first weight, 0.
    expect(chooseBlendWeight(Float32Array.from([1, 0, 0, 1]), baseline, same, labels).weight).toBe(0);
    expect(chooseBlendWeight(Float32Array.from([0.6, 0.4, 0.4, 0.6]), rows([0.6, 0.4], [0.4, 0.6]), same, labels).weight).toBe(0);
    // In between: log(0.5 + 0.4w) + log(0.5 − 0.3w) is largest at w = 5/24 ≈ 0.208, and on the grid at 0.2.
    expect(chooseBlendWeight(Float32Array.from([0.5, 0.5, 0.5, 0.5]), rows([0.9, 0.1], [0.8, 0.2]), same, labels).weight).toBe(0.2);
    // The columns map the baseline's label order onto the model's: swapped rows, swapped columns, the same choice.
    expect(chooseBlendWeight(Float32Array.from([0.5, 0.5, 0.5, 0.5]), rows([0.1, 0.9], [0.2, 0.8]), [1, 0], labels).weight).toBe(0.2);
  });

  it('trains the baseline, chooses its weight on the held-out texts, says what each scored, and eval mixes it in; --baseline-weight 0 and smaller sets keep the model alone', async () => {
    const big = path.join(work, 'big.csv');
    writeTopics(big, AUTO_BLEND_TEXTS.min + 120, 5);
    const lines: string[] = [];
    const config = { train: big, epochs: 1, preset: 'text-micro', maxLength: 16, progress: false } as const;
    const dir = path.join(work, 'auto');
    const result = await fineTune({ ...config, out: dir, log: (l: string) => lines.push(l) });
    const said = lines.join('\n');
    expect(said).toMatch(/training TF-IDF \+ logistic regression on the \d+ training texts, to choose how much of it to mix in on the \d+ evaluation texts \(baselineWeight 0: none\)/);
    expect(said).toMatch(/on the evaluation texts the model alone \d+\.\d\d%, the baseline \(C=[\d.e+]+, \d+ terms\) alone \d+\.\d\d%/);
    // Cue words decide the topic: the bag of words is right where one epoch of a micro model is not sure.
    const blend = result.blend!;
    expect(blend.weight).toBeGreaterThan(0);
    expect(AUTO_BLEND_WEIGHTS).toContain(blend.weight);
    expect(blend.chosen!.baselineAccuracy).toBeGreaterThanOrEqual(0.95);
    expect((await readBaselineBlend(dir))!.weight).toBe(blend.weight);
    // eval of the folder on the evaluation texts repeats the mix's accuracy.
    const held = (await readTextExamples(big)).texts.length - result.trainExamples;
    expect(blend.examples).toBe(held);
    const cli = await runCliCaptured(['eval', '--model', dir, '--data', big, '--json']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/"baselineWeight":/);

    // revcol baseline --model shows the mix and the model alone, each against the baseline.
    const side = await runCliCaptured(['baseline', '--train', big, '--data', big, '--model', dir, '--json', '--c', '10']);
    expect(side.code, side.stderr).toBe(0);
    const json = JSON.parse(side.stdout);
    const alone = await TextClassifier.load(path.join(dir, 'best.safetensors'));
    const want = alone.evaluate(await readTextExamples(big));
    alone.dispose();
    expect(json.model.baselineWeight).toBe(blend.weight);
    expect(json.modelAlone).toMatchObject({ accuracy: want.accuracy, macroF1: want.macroF1 });
    expect(json.differenceAlone.accuracy).toBeCloseTo(want.accuracy - json.baseline.accuracy, 12);
    const table = await runCliCaptured(['baseline', '--train', big, '--data', big, '--model', dir, '--c', '10']);
    expect(table.stdout).toMatch(new RegExp(`^revcol model \\+ baseline \\(${blend.weight}\\)\\s+[\\d.]+%`, 'm'));
    expect(table.stdout).toMatch(/^revcol model alone\s+[\d.]+%/m);
    expect(table.stdout).toMatch(/^revcol alone − baseline\s+[+−][\d.]+ pt/m);
    expect(table.stdout).toContain('label  support  baseline  revcol  revcol alone\n');

    const none = await fineTune({ ...config, out: path.join(work, 'auto-none'), baselineWeight: 0, log: () => {} });
    expect(none.blend).toBeUndefined();
    expect(existsSync(path.join(work, 'auto-none', BLEND_FILE))).toBe(false);
    // Fewer training texts than AUTO_BLEND_TEXTS.min: no baseline either.
    const small = await fineTune({ ...config, train: trainFile, eval: evalFile, out: path.join(work, 'auto-small'), log: () => {} });
    expect(small.blend).toBeUndefined();
  }, 240_000);
});
