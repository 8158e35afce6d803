import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { readTextExamples } from '../src/data/text.js';
import { TextClassifier } from '../src/text/classifier.js';
import { EncodedTexts } from '../src/text/encoded.js';
import { fineTune } from '../src/text/fine-tune.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { oneLineError } from './helpers/errors.js';
import { HEAD_WORDS, writeHeadTokenizer } from './helpers/head-data.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-long-'));
const tokenizerDir = path.join(work, 'tok');
const CONFIG = { hidden: [16, 16], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 2, dropout: 0, dropPath: 0, maxLength: 32 };
const quiet = { progress: false, log: () => {} } as const;
let tokenizer: TextTokenizer;

/** Long texts whose topic word comes last, after many fillers: only a model that reads the end can tell. */
function longRows(count: number): Array<{ text: string; label: string }> {
  return Array.from({ length: count }, (_, i) => {
    const label = i % 2 ? 'sport' : 'music';
    const fill = Array.from({ length: 20 + (i % 7) }, (_, j) => HEAD_WORDS.filler[(i + j) % HEAD_WORDS.filler.length]);
    return { text: [...fill, HEAD_WORDS[label][i % 3]].join(' '), label };
  });
}

function writeCsv(file: string, rows: Array<{ text: string; label: string }>): string {
  writeFileSync(file, `text,label\n${rows.map((r) => `${r.text},${r.label}`).join('\n')}\n`);
  return file;
}

beforeAll(async () => {
  await useBackend('cpu');
  writeHeadTokenizer(tokenizerDir);
  tokenizer = await TextTokenizer.fromFolder(tokenizerDir);
});

describe('head+tail truncation', () => {
  it('keeps [CLS], the first quarter and the last three quarters of the room, and [SEP]; a text that fits is encoded as before', () => {
    const words = Array.from({ length: 30 }, (_, i) => HEAD_WORDS.filler[i % HEAD_WORDS.filler.length]);
    const long = words.join(' ');
    const short = words.slice(0, 5).join(' ');
    const all = tokenizer.library.encode(long).ids;
    const cls = all[0]!;
    const sep = all[all.length - 1]!;
    const inner = all.slice(1, -1);
    expect(inner).toHaveLength(30);
    // maxLength 12: room 10, head 2, tail 8.
    const enc = tokenizer.encodeHeadTail([long, short], 12);
    expect(enc.truncated).toBe(1);
    expect(Array.from(enc.ids.subarray(0, 12))).toEqual([cls, ...inner.slice(0, 2), ...inner.slice(22), sep]);
    expect(Array.from(enc.mask.subarray(0, 12))).toEqual(new Array(12).fill(1));
    const plain = tokenizer.encode([short], 12);
    expect(Array.from(enc.ids.subarray(12))).toEqual(Array.from(plain.inputIds.dataSync()));
    expect(Array.from(enc.mask.subarray(12))).toEqual(Array.from(plain.attentionMask.dataSync()));
    plain.inputIds.dispose();
    plain.attentionMask.dispose();
    // The default stays the head: the same rows as encode.
    const head = new EncodedTexts(tokenizer, [long], 12);
    expect(Array.from(head.ids)).toEqual(all.slice(0, 12));
    expect(Array.from(new EncodedTexts(tokenizer, [long], 12, undefined, undefined, 'head+tail').ids)).toEqual(Array.from(enc.ids.subarray(0, 12)));
  });

  it('is recorded in the meta; eval after load reproduces the run\'s figures; head+tail reads what head cannot', async () => {
    const train = writeCsv(path.join(work, 'long-train.csv'), longRows(48));
    const evalFile = writeCsv(path.join(work, 'long-eval.csv'), longRows(20));
    const run = (truncation: 'head' | 'head+tail', out: string) => fineTune({
      train, eval: evalFile, tokenizer: tokenizerDir, config: CONFIG, maxLength: 12, epochs: 6, batchSize: 8, lr: 3e-3, keep: 'last', truncation, out, seed: 1, ...quiet,
    });
    const ht = await run('head+tail', path.join(work, 'ht'));
    expect(ht.truncation).toBe('head+tail');
    expect(ht.truncated.train).toBe(48);
    const c = await TextClassifier.load(path.join(work, 'ht'));
    try {
      expect(c.meta.truncation).toBe('head+tail');
      const report = await c.evaluateAsync(await readTextExamples(evalFile));
      expect(report.accuracy).toBeCloseTo(ht.summary.bestAccuracy, 10);
      expect(report.accuracy).toBeGreaterThanOrEqual(0.9);
    } finally {
      c.dispose();
    }
    // Cut to its head, every text is fillers only: no better than chance.
    const head = await run('head', path.join(work, 'head'));
    expect(head.truncation).toBe('head');
    expect(head.summary.bestAccuracy).toBeLessThanOrEqual(0.7);
    const h = await TextClassifier.load(path.join(work, 'head'));
    expect(h.meta.truncation).toBeUndefined();
    h.dispose();
  }, 120_000);

  it('refuses sentence pairs and unknown values in one line', async () => {
    const pairs = path.join(work, 'pairs.csv');
    writeFileSync(pairs, 'text,second,label\ngoal team,song album,music\nsong guitar,match goal,sport\n');
    expect(await oneLineError(() => fineTune({ train: pairs, eval: pairs, textPairColumn: 'second', tokenizer: tokenizerDir, config: CONFIG, truncation: 'head+tail', out: path.join(work, 'p'), ...quiet })))
      .toMatch(/truncation head\+tail is for single texts.*textPairColumn/);
    expect(await oneLineError(() => fineTune({ train: pairs, eval: pairs, tokenizer: tokenizerDir, config: CONFIG, truncation: 'tail' as never, out: path.join(work, 'p2'), ...quiet })))
      .toMatch(/truncation must be head or head\+tail/);
  });

  it('CLI: --truncation head+tail trains, says so, and eval reads the same way', async () => {
    const train = writeCsv(path.join(work, 'cli-train.csv'), longRows(24));
    const out = path.join(work, 'cli-ht');
    const cfg = path.join(work, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(CONFIG));
    const ft = await runCliCaptured(['fine-tune', '--train', train, '--eval', train, '--tokenizer', tokenizerDir, '--config', cfg, '--max-length', '12', '--truncation', 'head+tail', '--epochs', '1', '--out', out, '--no-progress']);
    expect(ft.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/truncated to 12 tokens \(head\+tail: first quarter and last three quarters kept\): 24 of 24 training texts/);
    const ev = await runCliCaptured(['eval', '--model', out, '--data', train]);
    expect(ev.code, ev.stderr).toBe(0);
    expect(ev.stdout).toMatch(/24 texts, 24 truncated/);
    const pairs = path.join(work, 'cli-pairs.csv');
    writeFileSync(pairs, 'text,second,label\ngoal team,song album,music\nsong guitar,match goal,sport\n');
    expectOneLineError(await runCliCaptured(['fine-tune', '--train', pairs, '--eval', pairs, '--text-pair-column', 'second', '--tokenizer', tokenizerDir, '--config', cfg, '--truncation', 'head+tail', '--out', path.join(work, 'cli-p'), '--no-progress']),
      /--truncation head\+tail is for single texts.*--text-pair-column/);
  }, 60_000);
});
