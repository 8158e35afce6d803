import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runCliCaptured as cli } from './helpers/cli.js';
import { writeHeadTokenizer, writeMultiLabelCsv, writePairTsv, writeRegressionCsv } from './helpers/head-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-heads-cli-'));
const tok = path.join(work, 'tok');
const config = path.join(work, 'tiny.json');
const common = () => ['--tokenizer', tok, '--config', config, '--lr', '3e-3', '--batch-size', '16', '--no-progress', '--backend', 'cpu'];

beforeAll(() => {
  writeHeadTokenizer(tok);
  writeFileSync(config, JSON.stringify({ hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, pooling: 'mean', maxLength: 32 }));
});

describe('revcol fine-tune, eval and predict with each head', () => {
  it('regression: detected with a note, eval --json reports mse/mae/pearson/spearman, predict prints the number', async () => {
    const train = path.join(work, 'reg.csv');
    writeRegressionCsv(train, 150, 1);
    const test = path.join(work, 'reg-test.csv');
    writeRegressionCsv(test, 30, 2);
    const out = path.join(work, 'reg');
    const ft = await cli(['fine-tune', '--train', train, '--label-column', 'score', '--out', out, '--epochs', '12', '--mode', 'plain', ...common()]);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout + ft.stderr).toMatch(/every label of .* is a number, with \d+ distinct values .* give --task-type text-classification to treat them as classes/);
    expect(ft.stdout).toMatch(/target: mean 2\.\d+, std 1\.\d+/);
    expect(ft.stdout).toMatch(/best epoch: \d+ of 12, R² 0\.\d+/);
    // The label column it was trained on is the default.
    const ev = await cli(['eval', '--model', out, '--data', test, '--json', '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout);
    expect(report.problem).toBe('regression');
    expect(report.examples).toBe(30);
    expect(report.pearson).toBeGreaterThan(0.8);
    expect(report.mse).toBeGreaterThan(0);
    for (const k of ['mae', 'spearman']) expect(typeof report[k]).toBe('number');
    const pr = await cli(['predict', '--model', out, 'the new was', 'great fine nice great', '--backend', 'cpu']);
    expect(pr.code, pr.stderr).toBe(0);
    const values = pr.stdout.trim().split('\n').map((l) => Number(l.split('\t')[0]));
    expect(values[0]!).toBeLessThan(values[1]!);
    // A non-numeric label: one line naming file and line.
    const bad = path.join(work, 'bad.csv');
    writeFileSync(bad, 'text,label\ngoal,1.5\nsong,x\n');
    expectOneLineError(await cli(['fine-tune', '--train', bad, '--task-type', 'regression', '--out', path.join(work, 'bad'), ...common()]), new RegExp(`${bad}: line 3 has the label "x", which is not a number`));
    expectOneLineError(await cli(['fine-tune', '--train', train, '--label-column', 'score', '--out', path.join(work, 'ens'), '--ensemble', '2', ...common()]), /--ensemble averages .* a regression model is trained alone/);
  }, 120_000);

  it('multi-label: eval --json reports microF1/macroF1/subsetAccuracy, predict prints labels above the threshold', async () => {
    const train = path.join(work, 'ml.csv');
    writeMultiLabelCsv(train, 140, 3);
    const test = path.join(work, 'ml-test.csv');
    writeMultiLabelCsv(test, 28, 4);
    const out = path.join(work, 'ml');
    const ft = await cli(['fine-tune', '--train', train, '--multi-label', '--out', out, '--epochs', '16', ...common()]);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/best epoch: \d+ of 16, micro-F1 0\.\d+, threshold 0\.\d+/);
    const ev = await cli(['eval', '--model', out, '--data', test, '--json', '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout);
    expect(report.problem).toBe('multi-label');
    expect(report.microF1).toBeGreaterThan(0.85);
    expect(report.labels).toEqual(['food', 'music', 'sport']);
    for (const k of ['macroF1', 'subsetAccuracy', 'threshold']) expect(typeof report[k]).toBe('number');
    const pr = await cli(['predict', '--model', out, 'song', '--json', '--backend', 'cpu']);
    expect(pr.code, pr.stderr).toBe(0);
    const [one] = JSON.parse(pr.stdout);
    expect(one.labels.map((l: { label: string }) => l.label)).toContain('music');
    expect(Object.keys(one.probabilities)).toEqual(['food', 'music', 'sport']);
    const empty = path.join(work, 'empty-set.csv');
    writeFileSync(empty, 'text,label\ngoal,sport\nsong,|\n');
    expectOneLineError(await cli(['fine-tune', '--train', empty, '--multi-label', '--out', path.join(work, 'bad2'), ...common()]), new RegExp(`${empty}: line 3 has an empty label set`));
  }, 120_000);

  it('sentence pairs: --text-pair-column trains, eval reads the recorded column, predict takes --pair', async () => {
    const train = path.join(work, 'pairs.tsv');
    writePairTsv(train, 160, 5);
    const test = path.join(work, 'pairs-test.tsv');
    writePairTsv(test, 30, 6);
    const out = path.join(work, 'pairs');
    const ft = await cli(['fine-tune', '--train', train, '--text-column', 'premise', '--text-pair-column', 'hypothesis', '--out', out, '--epochs', '16', ...common()]);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/sentence pairs: \[CLS\] text \[SEP\] second text \[SEP\]/);
    const ev = await cli(['eval', '--model', out, '--data', test, '--text-column', 'premise', '--json', '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).accuracy).toBeGreaterThanOrEqual(0.85);
    const pr = await cli(['predict', '--model', out, 'the goal', '--pair', 'a song today', '--json', '--backend', 'cpu']);
    expect(pr.code, pr.stderr).toBe(0);
    const [one] = JSON.parse(pr.stdout);
    expect(one).toMatchObject({ text: 'the goal', pair: 'a song today', label: 'music' });
    const file = await cli(['predict', '--model', out, '--file', test, '--text-column', 'premise', '--backend', 'cpu']);
    expect(file.code, file.stderr).toBe(0);
    expect(file.stdout.trim().split('\n')).toHaveLength(30);
    expectOneLineError(await cli(['predict', '--model', out, 'the goal', '--backend', 'cpu']), /reads sentence pairs: give one text and its second text .*--pair/);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--text-column', 'premise', '--text-pair-column', 'nope', '--out', path.join(work, 'bad3'), ...common()]), /has no text pair column "nope" .* name it with --text-pair-column/);
  }, 180_000);
});
