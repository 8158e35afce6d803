// Token classification from the command line: fine-tune on a CoNLL file, eval and predict with
// the model it writes, the kind of data and model told apart, and bad input as one line.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { detectDataKind, parseTagNames } from '../src/cli/token.js';
import { toConll } from '../src/data/token-data.js';
import { TextClassifier } from '../src/text/classifier.js';
import { taskKind, taskNames } from '../src/text/tasks.js';
import { expectOneLineError, runCliCaptured as cli } from './helpers/cli.js';
import { oneLineError } from './helpers/errors.js';
import { nerSentences, writeTinyNerTokenizer } from './helpers/token-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-token-cli-'));
const tokenizer = path.join(work, 'tokenizer');
const config = path.join(work, 'config.json');
const train = path.join(work, 'train.conll');
const test = path.join(work, 'test.conll');
const model = path.join(work, 'ner');
const at = (name: string) => path.join(work, name);

/** A tiny model and vocabulary: a few seconds an epoch on the cpu backend. */
const SMALL = ['--tokenizer', tokenizer, '--config', config, '--batch-size', '16', '--lr', '1e-2', '--backend', 'cpu', '--no-progress'];

beforeAll(() => {
  writeTinyNerTokenizer(tokenizer);
  writeFileSync(config, JSON.stringify({ hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0 }));
  const a = nerSentences(96, 1);
  writeFileSync(train, toConll(a.words, a.tags));
  const b = nerSentences(24, 2);
  writeFileSync(test, toConll(b.words, b.tags));
});

afterEach(() => vi.restoreAllMocks());

describe('a CoNLL file from fine-tune to predict', () => {
  it('fine-tune --train f.conll trains a token classifier; eval --json scores it; predict tags words', async () => {
    const ft = await cli(['fine-tune', '--train', train, '--out', model, '--epochs', '3', ...SMALL]);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/token classification/);
    expect(ft.stdout).toMatch(/training: 86 sentences \(\d+ words\), 3 epochs, batch 16/);
    expect(ft.stdout).toMatch(/tags \(5\): O, B-LOC, B-PER, I-LOC, I-PER; entity scheme BIO/);
    expect(ft.stdout).toMatch(/best epoch: \d of 3, word accuracy/);
    expect(ft.stderr).toMatch(/holding out 10 of 96 sentences/);
    for (const f of ['best.safetensors', 'last.ckpt.safetensors', 'metrics.jsonl', 'tokenizer.json', 'run.json']) expect(existsSync(path.join(model, f)), f).toBe(true);
    const run = JSON.parse(readFileSync(path.join(model, 'run.json'), 'utf8'));
    expect(run).toMatchObject({ command: 'token fine-tune', status: 'finished' });
    const metrics = readFileSync(path.join(model, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toHaveLength(3);
    expect(metrics[0]).toHaveProperty('entityF1');

    // The folder is guarded as fine-tune's: a second run into it is refused without --overwrite.
    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', model, ...SMALL]), /already holds a finished token fine-tune run \(3 epochs\): add --resume/);

    const ev = await cli(['eval', '--model', model, '--data', test, '--json', '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    const report = JSON.parse(ev.stdout.trim());
    // Tags are a function of the word here: 3 epochs learn them.
    expect(report.accuracy).toBeGreaterThan(0.9);
    expect(report.accuracy).toBeLessThanOrEqual(1);
    expect(report.objective).toBe('token-classification');
    expect(report.sentences).toBe(24);
    expect(Object.keys(report.perTag).sort()).toEqual(['B-LOC', 'B-PER', 'I-LOC', 'I-PER', 'O']);
    for (const s of Object.values(report.perTag) as Array<Record<string, number>>) expect(Object.keys(s).sort()).toEqual(['f1', 'precision', 'recall', 'support']);
    expect(report.entities).toMatchObject({ scheme: 'BIO' });
    expect(report.entities.gold).toBeGreaterThan(24);
    for (const k of ['precision', 'recall', 'f1']) expect(report.entities[k]).toBeGreaterThan(0.5);
    expect(Object.keys(report.entities.perType).sort()).toEqual(['LOC', 'PER']);

    const table = await cli(['eval', '--model', model, '--data', test, '--backend', 'cpu']);
    expect(table.stdout).toMatch(/^word accuracy \d+\.\d\d%  macro-F1/);
    expect(table.stdout).toMatch(/entities \(BIO, exact spans\): precision/);

    // Multi-column CoNLL: --tag-column picks the tag (counted from 0, the word); the same tags score the same.
    const wide = at('wide.conll');
    writeFileSync(wide, readFileSync(test, 'utf8').replace(/^(\S+)\t(\S+)$/gm, '$1\t$2\tNN'));
    const picked = await cli(['eval', '--model', model, '--data', wide, '--tag-column', '1', '--json', '--backend', 'cpu']);
    expect(JSON.parse(picked.stdout.trim()).accuracy).toBe(report.accuracy);
    expectOneLineError(await cli(['eval', '--model', model, '--data', wide, '--backend', 'cpu']), /line 1 has the tag "NN", which the model does not have/);

    const pr = await cli(['predict', '--model', model, 'John Smith visits New York.', 'mary likes the dog', '--json', '--backend', 'cpu']);
    expect(pr.code, pr.stderr).toBe(0);
    const tagged = JSON.parse(pr.stdout.trim());
    expect(tagged).toHaveLength(2);
    expect(tagged[0].map((w: { word: string }) => w.word)).toEqual(['John', 'Smith', 'visits', 'New', 'York', '.']);
    expect(tagged[0][1]).toMatchObject({ word: 'Smith', start: 5, end: 10 });
    for (const w of tagged.flat()) {
      expect(Object.keys(w).sort()).toEqual(['end', 'entity', 'index', 'score', 'start', 'word']);
      expect(w.score).toBeGreaterThan(0);
      expect(w.score).toBeLessThanOrEqual(1);
    }
    expect(tagged[1].map((w: { entity: string }) => w.entity)).toEqual(['B-PER', 'O', 'O', 'O']);

    const plain = await cli(['predict', '--model', model, 'mary likes the dog', '--backend', 'cpu']);
    expect(plain.stdout.split('\n').slice(0, 4).map((l) => l.split('\t').slice(0, 2).join(' '))).toEqual(['mary B-PER', 'likes O', 'the O', 'dog O']);
    // --file: a CoNLL file gives sentences already split into words; a plain file, texts.
    const fromConll = await cli(['predict', '--model', model, '--file', test, '--json', '--backend', 'cpu']);
    expect(JSON.parse(fromConll.stdout.trim())).toHaveLength(24);
    const lines = at('lines.txt');
    writeFileSync(lines, 'John Smith visits New York.\nmary likes the dog\n');
    expect(JSON.parse((await cli(['predict', '--model', model, '--file', lines, '--json', '--backend', 'cpu'])).stdout.trim())).toEqual(tagged);

    // A text classifier's loader refuses the folder in one line.
    expect(await oneLineError(() => TextClassifier.load(model))).toMatch(/holds a token classifier \(a tag per word\), not a text classifier/);
    expectOneLineError(await cli(['eval', '--model', model, '--task', 'spam', '--backend', 'cpu']), /holds a token classifier .* task spam labels texts/);
  });
});

describe('bad input from the command line: one line, exit 1', () => {
  it('a CoNLL line without a tag, a JSONL row with more tokens than tags', async () => {
    const noTag = at('no-tag.conll');
    writeFileSync(noTag, 'the\tO\ndog\n\njohn\tB-PER\n');
    const out = at('bad-run');
    expectOneLineError(await cli(['fine-tune', '--train', noTag, '--out', out, '--backend', 'cpu']), new RegExp(`no-tag\\.conll: line 2 has a word but no tag \\("dog"\\)`));
    expect(existsSync(out)).toBe(false);
    const uneven = at('uneven.jsonl');
    writeFileSync(uneven, '{"tokens": ["the", "dog"], "tags": ["O", "O"]}\n{"tokens": ["john", "smith", "sees"], "tags": ["B-PER", "I-PER"]}\n');
    expectOneLineError(await cli(['fine-tune', '--train', uneven, '--out', out, '--backend', 'cpu']), /uneven\.jsonl: line 2 has 3 tokens but 2 tags in "tags"; give one tag per token/);
    expect(existsSync(out)).toBe(false);
  });

  it('flags of the other kind, a task of the other kind, a bad tag column', async () => {
    expectOneLineError(await cli(['fine-tune', '--train', train, '--ensemble', '2', '--out', at('x'), '--backend', 'cpu']), /--ensemble is for text classification, and .*train\.conll holds tagged words/);
    expectOneLineError(await cli(['fine-tune', '--task', 'pos-brown', '--task-type', 'text-classification', '--backend', 'cpu']), /--task-type text-classification does not fit: task pos-brown tags words/);
    expectOneLineError(await cli(['fine-tune', '--task', 'spam', '--tag-column', '2', '--backend', 'cpu']), /--tag-column is for token classification/);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--tag-column', '0']), /--tag-column must be a whole number other than 0/);
    expectOneLineError(await cli(['pretrain', '--task', 'pos-brown', '--out', at('lm'), '--backend', 'cpu']), /task pos-brown tags words \(token classification\)/);
    expect(existsSync(at('lm'))).toBe(false);
    expectOneLineError(await cli(['fine-tune', '--task', 'nope', '--backend', 'cpu']), /unknown task "nope"; built-in tasks: pos-brown \(tags words\), spam \(labels texts\)/);
    expect(() => parseTagNames('O')).toThrow(/at least two/);
    expect(parseTagNames('O,B-PER, I-PER')).toEqual(['O', 'B-PER', 'I-PER']);
    expect(parseTagNames('[",", "."]')).toEqual([',', '.']);
  });
});

describe('telling the kinds apart', () => {
  it('tasks by their kind; data files by extension, else content', async () => {
    expect(taskNames()).toEqual(expect.arrayContaining(['pos-brown', 'spam']));
    expect(taskNames('token-classification')).toEqual(['pos-brown']);
    expect(taskNames('text-classification')).not.toContain('pos-brown');
    expect(taskKind('pos-brown')).toBe('token-classification');
    expect(taskKind('spam')).toBe('text-classification');

    const file = (name: string, text: string) => {
      writeFileSync(at(name), text);
      return at(name);
    };
    const kind = async (f: string, textColumn?: string) => (await detectDataKind(f, { textColumn })).kind;
    expect(await kind(file('a.conll', 'text\tlabel\n'))).toBe('token-classification');
    expect(await kind(file('a.csv', 'EU,B-ORG\n'))).toBe('text-classification');
    expect(await detectDataKind(file('t.jsonl', '{"tokens": ["EU"], "ner_tags": [3]}\n'))).toEqual({ kind: 'token-classification', format: 'jsonl' });
    expect(await kind(file('l.jsonl', '{"text": "a b", "label": "x"}\n'))).toBe('text-classification');
    expect(await kind(file('w.data', '\n{"words": ["a"], "tags": ["X"]}\n'))).toBe('token-classification');
    expect(await kind(file('f.jsonl', '{"body": ["a"], "tags": ["X"]}\n'), 'body')).toBe('token-classification');
    expect(await kind(file('h.tsv', 'text\tlabel\nhello there\tgood\n'))).toBe('text-classification');
    expect(await kind(file('c.tsv', 'EU\tNNP\tB-ORG\nrejects\tVBZ\tO\n\nPeter\tNNP\tB-PER\n'))).toBe('token-classification');
    expect(await kind(file('d.txt', '-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n'))).toBe('token-classification');
    expect(await kind(file('n.tsv', 'body\ttopic\nhello there\tgood\n'))).toBe('text-classification');
    expect(await kind(at('missing.tsv'))).toBe('text-classification');
  });
});
