// `revcol baseline`: TF-IDF + logistic regression trained on one file and scored on another,
// beside a revcol model with --model; the same numbers as the library's, one-line errors.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTextExamples } from '../src/data/text.js';
import { evaluateBaseline, trainBaseline } from '../src/text/baseline.js';
import { TextClassifier } from '../src/text/classifier.js';
import { RevColText } from '../src/text/model.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { saveWeights } from '../src/train/checkpoint.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { cueTextRows, writeTopics, type CueVocabulary } from './helpers/text-data.js';

const root = path.resolve(__dirname, '..');
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-cli-baseline-'));
const train = path.join(work, 'train.csv');
const test = path.join(work, 'test.csv');
const model = path.join(work, 'model');
const LABELS = ['sport', 'music', 'food'];
const cli = runCliCaptured;

beforeAll(async () => {
  writeTopics(train, 60, 1, LABELS);
  writeTopics(test, 30, 2, LABELS);
  // A revcol model folder with untrained weights (fast to make; --model only needs a model that loads).
  await useBackend('wasm');
  const tokenizer = await TextTokenizer.load();
  const config = {
    vocabSize: tokenizer.vocabSize, maxLength: 16, hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2,
    columns: 2, dropout: 0, dropPath: 0, pooling: 'mean' as const, numLabels: 3,
  };
  const net = new RevColText(config, 7);
  await saveWeights(path.join(model, 'best.safetensors'), net, { family: 'text', config, labels: ['food', 'music', 'sport'], tokenizer: tokenizer.source, maxLength: 16 });
  await tokenizer.save(model);
  net.dispose();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** The library's baseline on the same files: what the command must print. */
async function libraryBaseline(options: Parameters<typeof trainBaseline>[2] = {}) {
  const [tr, te] = [await readTextExamples(train), await readTextExamples(test)];
  const m = trainBaseline(tr.texts, tr.labels, options);
  return { model: m, report: evaluateBaseline(m, te.texts, te.labels) };
}

describe('revcol baseline --train FILE --data FILE', () => {
  it('prints the recipe, the C search, accuracy and macro-F1 on the test file, per-class scores; no backend needed', async () => {
    const r = await cli(['baseline', '--train', train, '--data', test]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(''); // no "using backend" line: no tfjs without --model
    const { model: m, report } = await libraryBaseline();
    expect(r.stdout).toContain(`baseline: ${m.info.recipe}\n`);
    expect(r.stdout).toContain(`trained on 60 texts of ${train} (food 20, music 20, sport 20); ${m.info.features} terms\n`);
    expect(r.stdout).toMatch(/^C chosen on 12 held-out training texts \(fitted on 48\): C=0\.1 [\d.]+%, C=1 [\d.]+%, C=10 [\d.]+%, C=100 [\d.]+%, C=1000 [\d.]+%$/m);
    expect(r.stdout).toContain(`scored on 30 texts of ${test}:\n`);
    const row = /^TF-IDF \+ logistic\s+([\d.]+)%\s+([\d.]+)\s+(\d+)$/m.exec(r.stdout);
    expect(row, r.stdout).not.toBeNull();
    expect(Number(row![1])).toBeCloseTo(report.accuracy * 100, 2);
    expect(Number(row![2])).toBeCloseTo(report.macroF1, 4);
    expect(Number(row![3])).toBe(Math.round((1 - report.accuracy) * 30));
    expect(report.accuracy).toBeGreaterThanOrEqual(0.9); // cue words: an easy set for TF-IDF
    for (const label of ['food', 'music', 'sport']) {
      const c = report.perClass[label]!;
      expect(r.stdout).toMatch(new RegExp(`^${label}\\s+${c.precision.toFixed(4)}\\s+${c.recall.toFixed(4)}\\s+${c.f1.toFixed(4)}\\s+10$`, 'm'));
    }
    expect(r.stdout).not.toMatch(/revcol model/);
  });

  it('--json: one object with the baseline\'s report and how C was chosen; --c 10 fits that C alone', async () => {
    const r = await cli(['baseline', '--train', train, '--data', test, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    const { model: m, report } = await libraryBaseline();
    expect(json).toMatchObject({ train, data: test, trainExamples: 60, skipped: { train: 0, test: 0 } });
    expect(json.baseline).toMatchObject({ ...report, C: m.info.C, features: m.info.features, recipe: m.info.recipe });
    expect(json.baseline.candidates.map((c: { C: number }) => c.C)).toEqual([0.1, 1, 10, 100, 1000]);
    expect(json.model).toBeUndefined();

    const single = JSON.parse((await cli(['baseline', '--train', train, '--data', test, '--json', '--c', '10'])).stdout);
    const lib = await libraryBaseline({ C: 10 });
    expect(single.baseline.C).toBe(10);
    expect(single.baseline.candidates).toEqual([]);
    expect(single.baseline.accuracy).toBe(lib.report.accuracy);
    expect(single.baseline.recipe).toMatch(/C=10, L-BFGS/);
  });

  it('--model DIR: the revcol model scored on the same test file, side by side', async () => {
    const r = await cli(['baseline', '--train', train, '--data', test, '--model', model, '--backend', 'wasm', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('revcol: using backend wasm\n');
    const json = JSON.parse(r.stdout);
    const classifier = await TextClassifier.load(model);
    const want = classifier.evaluate(await readTextExamples(test));
    classifier.dispose();
    expect(json.model).toMatchObject({ dir: model, accuracy: want.accuracy, macroF1: want.macroF1, examples: 30 });
    expect(json.model.confusion).toEqual(want.confusion);
    expect(json.difference.accuracy).toBeCloseTo(want.accuracy - json.baseline.accuracy, 12);
    expect(json.difference.macroF1).toBeCloseTo(want.macroF1 - json.baseline.macroF1, 12);

    const text = await cli(['baseline', '--train', train, '--data', test, '--model', model, '--backend', 'wasm']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`scored on 30 texts of ${test}, beside the revcol model in ${model}:\n`);
    const modelRow = /^revcol model\s+([\d.]+)%\s+([\d.]+)\s+(\d+)$/m.exec(text.stdout);
    expect(modelRow, text.stdout).not.toBeNull();
    expect(Number(modelRow![1])).toBeCloseTo(want.accuracy * 100, 2);
    expect(Number(modelRow![3])).toBe(Math.round((1 - want.accuracy) * 30));
    const diff = /^revcol − baseline\s+([+−])([\d.]+) pt\s+([+−])([\d.]+)$/m.exec(text.stdout);
    expect(diff, text.stdout).not.toBeNull();
    const points = (diff![1] === '−' ? -1 : 1) * Number(diff![2]);
    expect(points).toBeCloseTo((want.accuracy - json.baseline.accuracy) * 100, 2);
    // Per class: support, the baseline's F1 and the model's F1.
    expect(text.stdout).toContain('F1 per class:\nlabel  support  baseline  revcol\n');
    for (const label of ['food', 'music', 'sport']) {
      expect(text.stdout).toMatch(new RegExp(`^${label}\\s+10\\s+${json.baseline.perClass[label].f1.toFixed(4)}\\s+${want.perClass[label]!.f1.toFixed(4)}$`, 'm'));
    }
  });

  it('the training file given as --data too: scored, with a warning that this is no test', async () => {
    const r = await cli(['baseline', '--train', train, '--data', train, '--c', '10']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^revcol: warning: --data is the training file: /);
    expect(r.stdout).toContain(`scored on 60 texts of ${train}:`);
  });

  it('--text-column and --label-column read other columns, as fine-tune does (JSONL here)', async () => {
    const vocab: CueVocabulary = {
      cue: { yes: ['refund', 'invoice', 'payment', 'receipt'], no: ['holiday', 'beach', 'sunset', 'hotel'] },
      filler: ['the', 'my', 'was', 'about', 'and', 'a', 'this', 'week'],
      minWords: 3,
      extraWords: 5,
    };
    const jsonl = (file: string, rows: number, seed: number) =>
      writeFileSync(file, `${cueTextRows(rows, seed, ['yes', 'no'], vocab).map((r) => JSON.stringify({ body: r.text, topic: r.label })).join('\n')}\n`);
    const [a, b] = [path.join(work, 'a.jsonl'), path.join(work, 'b.jsonl')];
    jsonl(a, 40, 3);
    jsonl(b, 20, 4);
    const r = await cli(['baseline', '--train', a, '--data', b, '--text-column', 'body', '--label-column', 'topic', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json.baseline.labels).toEqual(['no', 'yes']);
    expect(json.baseline.examples).toBe(20);
    expect(json.baseline.accuracy).toBeGreaterThanOrEqual(0.9);
    // Without the flags, the missing column is named, with the columns found.
    expectOneLineError(await cli(['baseline', '--train', a, '--data', b]), /has no text field "text" \(fields found: "body", "topic"\); name it with --text-column$/);
  });
});

describe('bad input: one revcol: line, exit 1', () => {
  it('a missing training or test file, before anything is trained', async () => {
    expectOneLineError(await cli(['baseline', '--train', path.join(work, 'nope.csv'), '--data', test]), new RegExp(`^revcol: data file ${path.join(work, 'nope.csv')} does not exist$`));
    expectOneLineError(await cli(['baseline', '--train', train, '--data', path.join(work, 'gone.csv')]), /^revcol: data file .*gone\.csv does not exist$/);
  });

  it('in a real process: exit code 1, one stderr line, nothing on stdout', () => {
    const missing = path.join(work, 'missing.csv');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'baseline', '--train', missing, '--data', test], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`revcol: data file ${missing} does not exist\n`);
    expect(r.stdout).toBe('');
  });

  it('wrong combinations of flags, an unknown task, a bad --c', async () => {
    expectOneLineError(await cli(['baseline', '--data', test]), /^revcol: baseline needs exactly one of --train FILE \(with --data TEST_FILE\) or --task NAME$/);
    expectOneLineError(await cli(['baseline', '--train', train, '--task', 'spam']), /exactly one of --train FILE/);
    expectOneLineError(await cli(['baseline', '--train', train]), /^revcol: baseline needs a test file to score on: --data TEST_FILE/);
    expectOneLineError(await cli(['baseline', '--task', 'spam', '--data', test]), /^revcol: --task brings its own test split: leave out --data$/);
    expectOneLineError(await cli(['baseline', '--task', 'no-such-task']), /^revcol: unknown task "no-such-task"; built-in tasks: /);
    expectOneLineError(await cli(['baseline', '--train', train, '--data', test, '--c', '0,1']), /--c must be a number > 0, or numbers > 0 separated by commas.*; see revcol baseline --help$/);
  });

  it('test labels the training data lacks, a one-label training file, too few texts to choose C', async () => {
    const other = path.join(work, 'other.csv');
    writeFileSync(other, 'text,label\nthe match today,sport\nrain and wind,weather\n');
    expectOneLineError(await cli(['baseline', '--train', train, '--data', other]), new RegExp(`^revcol: the test file ${other} has label not seen in training: "weather" \\(training labels: food, music, sport\\)$`));
    const one = path.join(work, 'one.csv');
    writeFileSync(one, 'text,label\nthe match,sport\na goal,sport\n');
    expectOneLineError(await cli(['baseline', '--train', one, '--data', test]), /only one label/);
    const tiny = path.join(work, 'tiny.csv');
    writeFileSync(tiny, 'text,label\nthe match,sport\na song,music\n');
    const tinyTest = path.join(work, 'tiny-test.csv');
    writeFileSync(tinyTest, 'text,label\nthe goal,sport\n');
    expectOneLineError(await cli(['baseline', '--train', tiny, '--data', tinyTest]), /give a single C with --c, e\.g\. --c 10$/);
    const ok = await cli(['baseline', '--train', tiny, '--data', tinyTest, '--c', '10', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).baseline.examples).toBe(1);
  });

  it('a --model folder that is not there fails before the baseline is trained', async () => {
    const r = await cli(['baseline', '--train', train, '--data', test, '--model', path.join(work, 'no-model'), '--backend', 'wasm']);
    expectOneLineError(r, /^revcol: model folder .*no-model does not exist/);
    expect(r.stdout).toBe('');
  });

  it('--help shows examples', async () => {
    const help = await cli(['baseline', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: revcol baseline/);
    expect(help.stdout).toContain('revcol baseline --task spam --model runs/spam');
  });
});
