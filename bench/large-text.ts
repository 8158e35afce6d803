// Reading a text-classification file larger than one JavaScript string can hold (V8 stops at
// 512 MiB), as `revcol fine-tune --train FILE` does: the file is streamed and only each row's
// text and label are kept. Writes a CSV (or JSONL) of --mib MiB of review-like rows, reads it
// with readTextExamples, checks the row count and a sample of rows, reports seconds and peak memory.
//   npm run bench -- large-text [--mib 700] [--format csv|jsonl]
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { readTextExamples } from '../src/data/text.js';
import { recordResult } from './lib/record.js';
import { flag } from './lib/args.js';

const mib = Number(flag('mib', '700'));
const format = flag('format', 'csv');
if (format !== 'csv' && format !== 'jsonl') throw new Error('--format is csv or jsonl');

const dir = mkdtempSync(path.join(os.tmpdir(), 'revcol-large-text-'));
const file = path.join(dir, `reviews.${format}`);
const words = ['good', 'bad', 'great', 'awful', 'fine', 'the', 'product', 'arrived', 'late', 'early', 'works', 'broke', 'again', 'would', 'buy', 'never'];
/** Row i's text: deterministic, ~150 bytes, with a quote and a comma every few rows. */
const textOf = (i: number) => {
  const n = 20 + (i % 13);
  const parts = Array.from({ length: n }, (_, k) => words[(i * 7 + k * 3) % words.length]);
  return i % 5 === 0 ? `${parts.join(' ')}, said "${i}"` : parts.join(' ');
};
const labelOf = (i: number) => (i % 3 === 0 ? 'negative' : 'positive');

const writeStart = performance.now();
const out = createWriteStream(file);
if (format === 'csv') out.write('id,text,label\n');
let rows = 0;
let bytes = 0;
while (bytes < mib * 2 ** 20) {
  const line = format === 'csv'
    ? `${rows},"${textOf(rows).replace(/"/g, '""')}",${labelOf(rows)}\n`
    : `${JSON.stringify({ id: rows, text: textOf(rows), label: labelOf(rows) })}\n`;
  bytes += Buffer.byteLength(line);
  rows++;
  if (!out.write(line)) await once(out, 'drain');
}
out.end();
await once(out, 'finish');
const writeSeconds = (performance.now() - writeStart) / 1000;
process.stderr.write(`wrote ${rows} rows, ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB in ${writeSeconds.toFixed(1)} s\n`);

const readStart = performance.now();
const examples = await readTextExamples(file);
const readSeconds = (performance.now() - readStart) / 1000;
const sample = [0, 1, 5, Math.floor(rows / 2), rows - 1];
const correct = examples.texts.length === rows && sample.every((i) => examples.texts[i] === textOf(i) && examples.labels[i] === labelOf(i));
const result = {
  date: new Date().toISOString(),
  format,
  fileMiB: Math.round(statSync(file).size / 2 ** 20),
  rows,
  readSeconds: Number(readSeconds.toFixed(1)),
  rowsPerSecond: Math.round(rows / readSeconds),
  peakRssGiB: Number((process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)),
  correct,
};
rmSync(dir, { recursive: true, force: true });
const line = JSON.stringify(result);
process.stdout.write(`${line}\n`);
await recordResult('large-text', line);
if (!correct) process.exitCode = 1;
