import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { type CueVocabulary, cueTextRows } from './helpers/text-data.js';

const root = path.resolve(__dirname, '..');
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-text-cli-'));

const REVIEWS: CueVocabulary = {
  cue: {
    good: ['great', 'wonderful', 'loved', 'excellent', 'superb'],
    bad: ['terrible', 'awful', 'hated', 'boring', 'dreadful'],
    meh: ['fine', 'okay', 'average'],
  },
  filler: ['the', 'movie', 'was', 'plot', 'acting', 'and', 'a', 'film', 'story', 'really'],
  minWords: 4,
  extraWords: 8,
};

/** A small two-class CSV with quoted fields, embedded commas and newlines, and a UTF-8 BOM. */
function writeReviews(file: string, rows = 80, seed = 1, labels = ['good', 'bad']): void {
  const quoted = (text: string, label: string, i: number, pick: <T>(a: T[]) => T) =>
    (i % 7 === 0 ? `"He said, ""${pick(REVIEWS.cue[label]!)}""\nthen ${text}"` : text);
  const lines = cueTextRows(rows, seed, labels, REVIEWS, quoted).map((r) => `${r.text},${r.label}`);
  writeFileSync(file, `\uFEFF${['text,label', ...lines].join('\n')}\n`);
}

const cli = runCliCaptured;

/** Runs the CLI as a user would: a separate node process. */
function spawnCli(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const train = path.join(work, 'reviews.csv');
const evalFile = path.join(work, 'reviews-eval.csv');
const modelDir = path.join(work, 'model');

beforeAll(() => {
  writeReviews(train, 80, 1);
  writeReviews(evalFile, 30, 2);
});

afterEach(() => vi.restoreAllMocks());

describe('fine-tune, eval, predict on a CSV with default flags', () => {
  it('trains, evaluates and predicts end to end', async () => {
    const ft = await cli(['fine-tune', '--train', train, '--epochs', '1', '--out', modelDir, '--no-progress']);
    expect(ft.code, ft.stderr).toBe(0);
    // The summary: preset chosen for the data size, truncation, label counts, best epoch.
    expect(ft.stdout).toMatch(/model: text-micro/);
    expect(ft.stdout).toMatch(/truncated to \d+ tokens: 0 of 72 training texts/);
    expect(ft.stdout).toMatch(/labels \(train\): bad 36, good 36/);
    expect(ft.stdout).toMatch(/best epoch: 1 of 1/);
    expect(ft.stderr).toMatch(/holding out 8 of 80 texts/);
    for (const f of ['best.safetensors', 'last.ckpt.safetensors', 'metrics.jsonl', 'curves.png', 'curves.html', 'tokenizer.json']) {
      expect(existsSync(path.join(modelDir, f)), f).toBe(true);
    }
    const metrics = readFileSync(path.join(modelDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toHaveLength(1);
    expect(metrics[0]).toHaveProperty('macroF1');

    const ev = await cli(['eval', '--model', modelDir, '--data', evalFile, '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout.trim());
    expect(report.accuracy).toBeGreaterThanOrEqual(0);
    expect(report.accuracy).toBeLessThanOrEqual(1);
    expect(typeof report.macroF1).toBe('number');
    expect(report.examples).toBe(30);
    expect(report.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(30);
    expect(Object.keys(report.perClass).sort()).toEqual(['bad', 'good']);

    const text = await cli(['eval', '--model', modelDir, '--data', evalFile]);
    expect(text.stdout).toMatch(/accuracy .*macro-F1/);
    expect(text.stdout).toMatch(/confusion/);

    const pr = await cli(['predict', '--model', modelDir, 'a wonderful film', 'awful, boring plot', '--json']);
    expect(pr.code, pr.stderr).toBe(0);
    const preds = JSON.parse(pr.stdout.trim());
    expect(preds).toHaveLength(2);
    for (const p of preds) {
      expect(['good', 'bad']).toContain(p.label);
      const total = Object.values(p.probabilities as Record<string, number>).reduce((a, b) => a + b, 0);
      expect(total).toBeCloseTo(1, 5);
      expect(p.score).toBe(Math.max(...Object.values(p.probabilities as Record<string, number>)));
    }
    // --file with a plain text file (one text per line; BOM, CRLF and blank lines allowed) gives the same as arguments.
    const lines = path.join(work, 'lines.txt');
    writeFileSync(lines, '\uFEFFa wonderful film\r\n\r\nawful, boring plot\n');
    const fromFile = await cli(['predict', '--model', modelDir, '--file', lines, '--json']);
    expect(JSON.parse(fromFile.stdout.trim())).toEqual(preds);
    const missing = await cli(['predict', '--model', modelDir, '--file', path.join(work, 'no-such.txt')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n').at(-1)).toBe(`revcol: cannot read ${path.join(work, 'no-such.txt')}: no such file; check the path`);
  });

  it('with the default epochs it learns the data', async () => {
    const out = path.join(work, 'model-default');
    const ft = await cli(['fine-tune', '--train', train, '--eval', evalFile, '--out', out, '--no-progress']);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/training: 80 texts, 30 epochs/);
    const ev = await cli(['eval', '--model', out, '--data', evalFile, '--json']);
    expect(JSON.parse(ev.stdout.trim()).accuracy).toBeGreaterThanOrEqual(0.9);
  });
});

describe('config files and resume', () => {
  it('--config takes a JSON config that starts from a preset', async () => {
    const config = path.join(work, 'config.json');
    writeFileSync(config, JSON.stringify({ preset: 'text-micro', columns: 3, pooling: 'first' }));
    const out = path.join(work, 'model-config');
    const r = await cli(['fine-tune', '--train', train, '--config', config, '--epochs', '1', '--out', out, '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/model: custom config \(3 columns, widths 16\/16/);
    writeFileSync(config, JSON.stringify({ preset: 'text-micro', colums: 3 }));
    // --overwrite gets past the finished run in the folder; the mistake stops the run before it replaces anything.
    expectOneLineError(await cli(['fine-tune', '--train', train, '--config', config, '--out', out, '--overwrite']), /unknown keys colums/);
    expect(existsSync(path.join(out, 'best.safetensors'))).toBe(true);
  });

  it('--resume continues a run from its last checkpoint', async () => {
    const out = path.join(work, 'model-resume');
    expect((await cli(['fine-tune', '--train', train, '--epochs', '1', '--out', out, '--no-progress'])).code).toBe(0);
    const r = await cli(['fine-tune', '--train', train, '--epochs', '2', '--out', out, '--resume', '--no-progress']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming .* after epoch 1/);
    const rows = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((row) => row.epoch)).toEqual([1, 2]);
  });
});

describe('bad input: one line, non-zero exit', () => {
  it('a missing column lists the columns found (spawned CLI)', () => {
    const file = path.join(work, 'wrong.csv');
    writeFileSync(file, 'body,category\nhello there,a\nbye now,b\n');
    const r = spawnCli(['fine-tune', '--train', file, '--out', path.join(work, 'x'), '--backend', 'cpu']);
    expectOneLineError(r, /"body", "category"/);
  });

  it('a hub tokenizer name without --allow-network (spawned CLI)', () => {
    const r = spawnCli(['fine-tune', '--train', train, '--tokenizer', 'someone/not-downloaded-tokenizer', '--out', path.join(work, 'x'), '--backend', 'cpu']);
    expectOneLineError(r, /--allow-network/);
  });

  it('the library\'s checks name the flags', async () => {
    expectOneLineError(await cli(['fine-tune', '--train', train, '--max-length', '1', '--out', path.join(work, 'x'), '--backend', 'cpu']), /^revcol: --max-length must be a whole number ≥ 2, got 1$/m);
    expectOneLineError(await cli(['pretrain', '--train', train, '--preset', 'text-micro', '--max-length', '999', '--out', path.join(work, 'x'), '--backend', 'cpu']), /--max-length 999 is longer than the 128 positions of preset text-micro: use 128 or less, or a --config with "maxLength": 999/);
  });

  it('a one-class training set', async () => {
    const file = path.join(work, 'one.csv');
    writeReviews(file, 20, 3, ['good']);
    expectOneLineError(await cli(['fine-tune', '--train', file, '--out', path.join(work, 'x'), '--backend', 'cpu']), /only one label/);
  });

  it('evaluation labels unseen in training', async () => {
    const file = path.join(work, 'unseen.csv');
    writeReviews(file, 12, 4, ['good', 'bad', 'meh']);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--eval', file, '--out', path.join(work, 'x'), '--backend', 'cpu']), /not seen in training: "meh"/);
    expectOneLineError(await cli(['eval', '--model', modelDir, '--data', file, '--backend', 'cpu']), /not seen in training: "meh"/);
  });

  it('an unreadable tokenizer folder', async () => {
    const folder = path.join(work, 'broken-tokenizer');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'tokenizer.json'), '{ not json');
    writeFileSync(path.join(folder, 'tokenizer_config.json'), '{}');
    expectOneLineError(await cli(['fine-tune', '--train', train, '--tokenizer', folder, '--out', path.join(work, 'x'), '--backend', 'cpu']), /tokenizer\.json/);
    const empty = path.join(work, 'empty-tokenizer');
    mkdirSync(empty, { recursive: true });
    expectOneLineError(await cli(['fine-tune', '--train', train, '--tokenizer', empty, '--out', path.join(work, 'x'), '--backend', 'cpu']), /has no tokenizer\.json/);
  });

  it('a folder that is not a text model, an unknown preset, both --data and --task', async () => {
    expectOneLineError(await cli(['predict', '--model', path.join(work, 'nowhere'), 'hi', '--backend', 'cpu']), /does not exist/);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--preset', 'text-huge', '--out', path.join(work, 'x'), '--backend', 'cpu']), /unknown text preset 'text-huge'.*text-tiny/);
    expectOneLineError(await cli(['eval', '--model', modelDir, '--data', train, '--task', 'spam', '--backend', 'cpu']), /exactly one of --data FILE or --task NAME/);
  });

  it('--help shows examples', async () => {
    for (const cmd of ['fine-tune', 'eval', 'predict']) {
      const r = await cli([cmd, '--help']);
      expect(r.stdout).toMatch(/Examples:\n\s+revcol /);
    }
  });
});
