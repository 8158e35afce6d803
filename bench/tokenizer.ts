/**
 * Tokenizer training on the spam task (tasks/spam.json: the SpamAssassin corpus, as fine-tune sees
 * it, runs of one symbol collapsed to 3): a 16k WordPiece vocabulary (lower-cased, like BERT's)
 * and a 16k byte-level BPE one, trained on the task's train split, against BERT's shipped
 * 30,522-token vocabulary (tokenizers/bert-base-uncased). Reports the training time and, on the
 * test split, tokens per message (mean, median, 95th percentile), the share of messages longer
 * than the task's max length (they get cut) and the share of [UNK] tokens.
 *
 * With --fine-tune-epochs N, also fine-tunes the task's model for N epochs with each of BERT's
 * and the trained WordPiece tokenizer (one seed, no pre-training: a comparison, not the task's
 * recipe) through the CLI and reports test accuracy. Off by default: an epoch takes minutes.
 *
 * Run: npm run bench -- tokenizer [--vocab-size 16000] [--fine-tune-epochs N] [--out DIR] [--backend B]
 * Appends one line to bench/results/tokenizer.jsonl.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collapseSymbolRuns } from '../src/data/text.js';
import { loadTask } from '../src/text/tasks.js';
import { TextTokenizer } from '../src/text/tokenizer.js';
import { trainTokenizer, type TokenizerType } from '../src/text/tokenizer-train.js';
import { flag } from './lib/args.js';
import { recordResult } from './lib/record.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const vocabSize = Number(flag('vocab-size', '16000'));
const fineTuneEpochs = Number(flag('fine-tune-epochs', '0'));
const out = path.resolve(root, flag('out', path.join('runs', `tokenizer-bench-${process.pid}`)));
const backend = flag('backend', 'auto');

const task = await loadTask('spam');
const collapse = (t: string) => (task.hyper.collapseRuns ? collapseSymbolRuns(t, task.hyper.collapseRuns) : t);
const train = task.train.texts.map(collapse);
const test = task.test.texts.map(collapse);
const maxLength = task.hyper.maxLength;
process.stderr.write(`spam task: ${train.length} training and ${test.length} test messages, max length ${maxLength}\n`);

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function measure(name: string, dir: string, seconds: number | null) {
  const tok = await TextTokenizer.load(dir);
  const unkId = tok.library.token_to_id(tok.library.get_vocab(true).has('[UNK]') ? '[UNK]' : '<unk>');
  let unk = 0;
  const counts = test.map((t) => {
    const ids = tok.library.encode(t).ids;
    for (const id of ids) if (id === unkId) unk++;
    return ids.length;
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const sorted = [...counts].sort((a, b) => a - b);
  const row = {
    tokenizer: name,
    vocabSize: tok.vocabSize,
    trainSeconds: seconds === null ? null : Number(seconds.toFixed(2)),
    tokensPerMessage: Number((total / counts.length).toFixed(1)),
    medianTokens: quantile(sorted, 0.5),
    p95Tokens: quantile(sorted, 0.95),
    truncatedShare: Number((counts.filter((n) => n > maxLength).length / counts.length).toFixed(4)),
    unkShare: Number((unk / total).toFixed(5)),
  };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

const rows = [await measure('bert-base-uncased (shipped)', 'builtin:bert-base-uncased', null)];
const dirs: Record<string, string> = {};
for (const type of ['wordpiece', 'bpe'] as TokenizerType[]) {
  const dir = path.join(out, `${type}-${vocabSize}`);
  const trained = await trainTokenizer({ texts: train, type, vocabSize, lowercase: type === 'wordpiece', out: dir, overwrite: true });
  dirs[type] = dir;
  rows.push(await measure(`trained ${type} ${vocabSize}${type === 'wordpiece' ? ' (lowercase)' : ''}`, dir, trained.seconds));
}

/** `revcol ARGS` in a child process, as a user would run it; its stdout. */
function revcol(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--backend', backend], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`revcol ${args.join(' ')} exited ${code}`))));
  });
}

const accuracy: Record<string, { accuracy: number; seconds: number }> = {};
if (fineTuneEpochs > 0) {
  for (const [name, tokenizer] of [['bert-base-uncased', 'builtin:bert-base-uncased'], [`wordpiece-${vocabSize}`, dirs.wordpiece!]] as const) {
    const model = path.join(out, `model-${name}`);
    const started = performance.now();
    await revcol(['fine-tune', '--task', 'spam', '--tokenizer', tokenizer, '--epochs', String(fineTuneEpochs), '--ensemble', '1', '--pretrain-epochs', '0', '--out', model, '--overwrite', '--no-progress']);
    const report = JSON.parse(await revcol(['eval', '--model', model, '--task', 'spam', '--json']));
    accuracy[name] = { accuracy: report.accuracy, seconds: Math.round((performance.now() - started) / 1000) };
    process.stderr.write(`${name}: accuracy ${report.accuracy} after ${fineTuneEpochs} epoch(s)\n`);
  }
}

const line = {
  bench: 'tokenizer',
  date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  task: 'spam',
  trainMessages: train.length,
  testMessages: test.length,
  maxLength,
  vocabSize,
  cpus: os.cpus().length,
  rows,
  fineTune: fineTuneEpochs > 0 ? { epochs: fineTuneEpochs, note: 'one seed, no pre-training, the task preset otherwise', accuracy } : 'not run (pass --fine-tune-epochs N)',
  command: `npm run bench -- tokenizer${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
};
process.stdout.write(`${JSON.stringify(line)}\n`);
await recordResult('tokenizer', JSON.stringify(line));
