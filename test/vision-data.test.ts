import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { defaultAugment, shuffledIndices, writeAffineNormalised, writeNormalised } from '../src/data/augment.js';
import { loadImageFolders } from '../src/data/images.js';
import { loadVisionData } from '../src/data/load.js';
import { loadMnist, MNIST_SIZE } from '../src/data/mnist.js';
import { imageClassificationReport as classificationReport } from '../src/vision/classifier.js';
import {
  channelStats,
  evaluationBatches,
  padImages,
  stratifiedSplit,
  trainingBatches,
} from '../src/data/vision-dataset.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Writes a size×size PNG of one flat colour with a lighter square whose place depends on `i`. */
async function writeImage(file: string, size: number, rgb: [number, number, number], i: number): Promise<void> {
  const buf = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inSquare = Math.abs(x - ((i * 3) % size)) < 3 && Math.abs(y - size / 2) < 3;
      for (let c = 0; c < 3; c++) buf[(y * size + x) * 3 + c] = inSquare ? 255 : rgb[c];
    }
  }
  await sharp(buf, { raw: { width: size, height: size, channels: 3 } }).png().toFile(file);
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'revcol-vision-data-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('MNIST', () => {
  const mnist = loadMnist();

  it('has the documented fixed split: 80% of each digit in package order trains, the rest tests', () => {
    expect(mnist.train.count).toBe(7996);
    expect(mnist.test.count).toBe(2004);
    expect(mnist.train.size).toBe(MNIST_SIZE);
    const perDigit = (labels: Int32Array) => Array.from({ length: 10 }, (_, d) => labels.filter((l) => l === d).length);
    const train = perDigit(mnist.train.labels);
    const test = perDigit(mnist.test.labels);
    train.forEach((n, d) => expect(n).toBe(Math.floor((n + test[d]) * 0.8)));
    // A second load gives the same split (no randomness).
    const again = loadMnist();
    expect(again.test.pixels.subarray(0, 5000)).toEqual(mnist.test.pixels.subarray(0, 5000));
  });

  it('is grey in three equal channels with pixels in [0, 1]', () => {
    const px = mnist.train.pixels;
    let max = 0;
    for (let i = 0; i < 784 * 3 * 50; i += 3) {
      expect(px[i]).toBe(px[i + 1]);
      expect(px[i]).toBe(px[i + 2]);
      max = Math.max(max, px[i]);
    }
    expect(max).toBeGreaterThan(0.9);
    expect(max).toBeLessThanOrEqual(1);
  });

  it('pads 28 to the model input 32 with a black border, digits centred', async () => {
    const data = await loadVisionData({ data: 'mnist', limit: 20 }, 32);
    expect(data.train.size).toBe(32);
    expect(data.train.count).toBe(20);
    // Round-robin limit keeps every digit.
    expect(new Set(data.train.labels).size).toBe(10);
    const img = data.train.pixels.subarray(0, 32 * 32 * 3);
    for (let x = 0; x < 32; x++) {
      expect(img[(0 * 32 + x) * 3]).toBe(0);
      expect(img[(31 * 32 + x) * 3]).toBe(0);
    }
    const small = loadMnist({ train: 20, test: 1 }).train;
    const padded = padImages(small, 32);
    expect(padded.pixels[((2 + 10) * 32 + 2 + 14) * 3]).toBe(small.pixels[(10 * 28 + 14) * 3]);
  });
});

describe('splits, normalisation and batches', () => {
  it('holds out a stratified fraction, fixed by the seed', () => {
    const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 70 ? 0 : 1));
    const a = stratifiedSplit(labels, 0.2, 7);
    const b = stratifiedSplit(labels, 0.2, 7);
    const c = stratifiedSplit(labels, 0.2, 8);
    expect(a).toEqual(b);
    expect(a.heldOut).not.toEqual(c.heldOut);
    expect(a.heldOut.filter((i) => labels[i] === 0).length).toBe(14);
    expect(a.heldOut.filter((i) => labels[i] === 1).length).toBe(6);
    expect(new Set([...a.train, ...a.heldOut]).size).toBe(100);
    expect(() => stratifiedSplit(labels, 1.5, 0)).toThrow(RevcolError);
  });

  it('normalises with the training set statistics and augments only in training', async () => {
    const data = await loadVisionData({ data: 'mnist', limit: 64 }, 32);
    const norm = channelStats(data.train);
    expect(norm.mean[0]).toBeGreaterThan(0.05);
    expect(norm.mean[0]).toBeLessThan(0.25);
    const before = tf.memory().numTensors;
    // Evaluation batches: exactly (pixel - mean) / std, same every time.
    const [evalBatch] = [...evaluationBatches(data.train, 64, norm)];
    const x = (await evalBatch.x.data()) as Float32Array;
    expect(x[100]).toBeCloseTo((data.train.pixels[100] - norm.mean[1]) / norm.std[1], 5);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
    expect(Math.abs(mean)).toBeLessThan(1e-3);
    expect(variance).toBeCloseTo(1, 2);
    evalBatch.x.dispose();
    evalBatch.labels.dispose();

    // Training batches: a seeded shuffle and random shifts; same seed, same batches.
    const aug = defaultAugment('digits', 32);
    expect(aug).toEqual({ pad: 2, flip: false, rotate: 10, scale: 0.1 });
    expect(defaultAugment('natural', 32)).toEqual({ pad: 4, flip: true, rotate: 10, scale: 0.1 });
    expect(defaultAugment('natural', 32).flip).toBe(true);
    const epoch = (seed: number) =>
      [...trainingBatches(data.train, 16, norm, aug, seed)].map((b) => {
        const out = { x: b.x.dataSync().slice(), labels: Array.from(b.labels.dataSync()) };
        b.x.dispose();
        b.labels.dispose();
        return out;
      });
    const a = epoch(1);
    const b = epoch(1);
    const c = epoch(2);
    expect(a.length).toBe(4);
    expect(a[0].x).toEqual(b[0].x);
    expect(a[0].labels).toEqual(b[0].labels);
    expect(a[0].labels).not.toEqual(c[0].labels);
    // Shifted, not the plain normalised images: some batch differs from its unaugmented twin.
    const order = shuffledIndices(64, 1);
    const [plain] = [...evaluationBatches({ ...data.train, pixels: data.train.pixels }, 64, norm)];
    const plainX = plain.x.dataSync();
    plain.x.dispose();
    plain.labels.dispose();
    const per = 32 * 32 * 3;
    let differing = 0;
    for (let i = 0; i < 16; i++) {
      const j = order[i];
      const mine = a[0].x.subarray(i * per, (i + 1) * per);
      const orig = plainX.subarray(j * per, (j + 1) * per);
      if (mine.some((v, k) => Math.abs(v - orig[k]) > 1e-6)) differing++;
    }
    expect(differing).toBeGreaterThan(8);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the affine augmentation: identity and integer shifts match the plain copy; a 90° turn moves pixels', () => {
    const size = 8;
    const src = Float32Array.from({ length: size * size * 3 }, (_, i) => ((i * 7) % 11) / 10);
    const mean = [0.1, 0.2, 0.3];
    const std = [0.5, 0.6, 0.7];
    const plain = new Float32Array(src.length);
    const affine = new Float32Array(src.length);
    for (const [dy, dx, flip] of [[0, 0, false], [1, -2, false], [-1, 1, true]] as const) {
      writeNormalised(src, 0, size, size, plain, 0, mean, std, dy, dx, flip);
      writeAffineNormalised(src, 0, size, size, affine, 0, mean, std, 0, 1, dy, dx, flip);
      for (let i = 0; i < src.length; i++) expect(affine[i]).toBeCloseTo(plain[i], 5);
    }
    // A quarter turn: the output pixel at (y, x) reads the source at a rotated position.
    writeAffineNormalised(src, 0, size, size, affine, 0, [0, 0, 0], [1, 1, 1], Math.PI / 2, 1, 0, 0);
    const at = (a: Float32Array, y: number, x: number) => a[(y * size + x) * 3];
    expect(at(affine, 0, 0)).toBeCloseTo(at(src, size - 1, 0), 5);
    expect(at(affine, 2, 5)).toBeCloseTo(at(src, size - 1 - 5, 2), 5);
  });

  it('reports accuracy, per-class accuracy and the confusion matrix', () => {
    const r = classificationReport([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ['a', 'b', 'c']);
    expect(r.accuracy).toBeCloseTo(3 / 5);
    expect(r.confusion).toEqual([
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 0],
    ]);
    expect(r.perClass.map((c) => c.accuracy)).toEqual([0.5, 1, 0]);
  });
});

describe('image folders', () => {
  it('decodes DIR/<class>/*.png|jpg, resizes, and skips corrupt or non-image files with a warning naming each', async () => {
    const dir = tempDir();
    for (const [cls, rgb] of [['cat', [200, 40, 40]], ['dog', [40, 40, 200]]] as const) {
      mkdirSync(path.join(dir, cls));
      for (let i = 0; i < 5; i++) await writeImage(path.join(dir, cls, `${i}.png`), 48, [...rgb], i);
    }
    await sharp(path.join(dir, 'dog', '0.png')).jpeg().toFile(path.join(dir, 'dog', 'extra.JPG'));
    writeFileSync(path.join(dir, 'cat', 'broken.png'), 'this is not a png');
    writeFileSync(path.join(dir, 'dog', 'notes.txt'), 'hello');
    const warnings: string[] = [];
    const data = await loadImageFolders({ train: dir, size: 32, heldOutFraction: 0.4, splitSeed: 3, warn: (m) => warnings.push(m) });
    expect(data.classNames).toEqual(['cat', 'dog']);
    expect(warnings.some((w) => w.includes(path.join(dir, 'cat', 'broken.png')))).toBe(true);
    expect(warnings.some((w) => w.includes(path.join(dir, 'dog', 'notes.txt')))).toBe(true);
    expect(warnings.length).toBe(2);
    expect(data.train.count + data.test.count).toBe(11);
    expect(data.test.count).toBe(4);
    expect(data.train.size).toBe(32);
    expect(data.source).toMatchObject({ type: 'folder', heldOutFraction: 0.4, splitSeed: 3 });
    // Colours survive decoding: a cat image is mostly red, a dog image mostly blue.
    const catIndex = data.train.labels.indexOf(0);
    const px = data.train.pixels.subarray(catIndex * 32 * 32 * 3, (catIndex + 1) * 32 * 32 * 3);
    expect(px[0]).toBeCloseTo(200 / 255, 2);
    expect(px[2]).toBeCloseTo(40 / 255, 2);
  });

  it('a separate test folder must use the training classes', async () => {
    const train = tempDir();
    const test = tempDir();
    for (const cls of ['a', 'b']) {
      mkdirSync(path.join(train, cls));
      mkdirSync(path.join(test, cls));
      for (let i = 0; i < 2; i++) {
        await writeImage(path.join(train, cls, `${i}.png`), 20, [cls === 'a' ? 0 : 255, 0, 0], i);
        await writeImage(path.join(test, cls, `${i}.png`), 20, [cls === 'a' ? 0 : 255, 0, 0], i);
      }
    }
    const data = await loadImageFolders({ train, eval: test, size: 16, warn: () => {} });
    expect(data.train.count).toBe(4);
    expect(data.test.count).toBe(4);
    mkdirSync(path.join(test, 'zebra'));
    await writeImage(path.join(test, 'zebra', 'z.png'), 20, [0, 0, 0], 0);
    await expect(loadImageFolders({ train, eval: test, size: 16, warn: () => {} })).rejects.toThrow(/zebra/);
  });

  it('one class, no images, or no class folders: a one-line RevcolError', async () => {
    const one = tempDir();
    mkdirSync(path.join(one, 'only'));
    await writeImage(path.join(one, 'only', 'a.png'), 16, [1, 2, 3], 0);
    await writeImage(path.join(one, 'only', 'b.png'), 16, [1, 2, 3], 1);
    const empty = tempDir();
    mkdirSync(path.join(empty, 'x'));
    mkdirSync(path.join(empty, 'y'));
    const bare = tempDir();
    const cases: Array<[string, RegExp]> = [
      [one, /single class/],
      [empty, /no readable/],
      [bare, /no class folders/],
      [path.join(bare, 'missing'), /cannot read/],
    ];
    for (const [dir, pattern] of cases) {
      const err = await loadImageFolders({ train: dir, size: 16, warn: () => {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RevcolError);
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
