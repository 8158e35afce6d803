import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliCaptured } from './helpers/cli.js';
import { ImageClassifier, predictVision } from '../src/vision/classifier.js';
import { imageBatch } from '../src/vision/input.js';
import { readNpy, serializeNpy } from '../src/io/npy.js';
import { saveWeights } from '../src/train/checkpoint.js';
import { RevColVision, VISION_PRESETS } from '../src/vision/index.js';

const PARITY = fileURLToPath(new URL('../../shared/reference/parity/', import.meta.url));
const tmp = mkdtempSync(path.join(tmpdir(), 'revcol-vision-predict-'));

/** `revcol vision predict --backend cpu ARGS`, in this process. */
const cli = (...args: string[]) => runCliCaptured(['vision', 'predict', '--backend', 'cpu', ...args]);

/** The one `revcol: ...` line of a failed run (the backend line aside). */
function errorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l && !l.startsWith('revcol: using backend'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^revcol: /);
  return lines[0];
}

interface PredictJson {
  logits: number[][];
  top: Array<Array<{ index: number; label?: string; prob: number }>>;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('revcol vision predict', () => {
  it('reproduces the release\'s logits from --config, --weights and a .npy batch', async () => {
    const dir = path.join(PARITY, 'dev-plain');
    const { code, stdout } = await cli('--config', path.join(dir, 'config.json'), '--weights', path.join(dir, 'weights.safetensors'), path.join(dir, 'input.npy'), '--json', '--top', '3');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as PredictJson;
    const ref = await readNpy(path.join(dir, 'logits.npy'));
    const refRows = Array.from({ length: ref.shape[0] }, (_, i) => Array.from(ref.data.slice(i * ref.shape[1], (i + 1) * ref.shape[1])));
    const maxRef = Math.max(...ref.data.map(Math.abs));
    expect(result.logits).toHaveLength(refRows.length);
    result.logits.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - refRows[i][j])).toBeLessThanOrEqual(1e-4 * (1 + maxRef))));
    // Top entries: 3 per row, sorted, the first one the arg-max.
    result.top.forEach((top, i) => {
      expect(top).toHaveLength(3);
      expect(top[0].index).toBe(refRows[i].indexOf(Math.max(...refRows[i])));
      expect(top[0].prob).toBeGreaterThanOrEqual(top[1].prob);
    });
  });

  it('ImageClassifier.fromRelease gives the same logits from the library, and names options in its errors', async () => {
    const dir = path.join(PARITY, 'dev-plain');
    const before = tf.memory().numTensors;
    const classifier = await ImageClassifier.fromRelease({ config: path.join(dir, 'config.json'), weights: path.join(dir, 'weights.safetensors') });
    const { inputs, logits } = await classifier.logits(path.join(dir, 'input.npy'));
    const ref = await readNpy(path.join(dir, 'logits.npy'));
    const maxRef = Math.max(...ref.data.map(Math.abs));
    expect(inputs).toEqual(Array.from({ length: ref.shape[0] }, (_, i) => `${path.join(dir, 'input.npy')}[${i}]`));
    logits.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - ref.data[i * ref.shape[1] + j])).toBeLessThanOrEqual(1e-4 * (1 + maxRef))));
    // no labels in a release file: the class indices stand in
    const [top] = await classifier.classify(path.join(dir, 'input.npy'), { topK: 1 });
    expect(top[0].label).toBe(String(logits[0].indexOf(Math.max(...logits[0]))));
    classifier.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(ImageClassifier.fromRelease({})).rejects.toThrow(/^give one of preset or config$/);
    await expect(predictVision({ inputs: ['x.png'] })).rejects.toThrow(/^give exactly one of model DIR, preset NAME or config FILE\.json$/);
  });

  it('takes image files, padded or resized to the input size, rows in input order', async () => {
    const small = path.join(tmp, 'digit.png');
    const large = path.join(tmp, 'photo.jpg');
    const digit = Buffer.alloc(28 * 28, 0);
    for (let y = 6; y < 22; y++) digit[y * 28 + 14] = 255;
    await sharp(digit, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(small);
    await sharp({ create: { width: 90, height: 60, channels: 3, background: { r: 200, g: 30, b: 30 } } }).jpeg().toFile(large);
    const { code, stdout, stderr } = await cli('--preset', 'revcol-nano-32', small, large, small, '--json');
    expect(code).toBe(0);
    expect(stderr).toMatch(/random weights/);
    const result = JSON.parse(stdout) as PredictJson;
    expect(result.logits).toHaveLength(3);
    expect(result.logits[0]).toHaveLength(10);
    expect(result.logits[2]).toEqual(result.logits[0]);
    expect(result.logits[1]).not.toEqual(result.logits[0]);
    expect(result.top[0]).toHaveLength(5);

    // The 28×28 digit sits centred on a black 32×32 canvas, normalised with the preset's mean/std.
    const config = VISION_PRESETS['revcol-nano-32'];
    const batch = await imageBatch(small, config);
    expect(batch.shape).toEqual([1, 32, 32, 3]);
    const px = batch.arraySync()[0];
    expect(px[0][0][0]).toBeCloseTo(-config.mean[0] / config.std[0], 5);
    expect(px[8][16][1]).toBeCloseTo((1 - config.mean[1]) / config.std[1], 5); // the stroke at column 14 + 2
    batch.dispose();
  });

  it('loads a training run\'s folder with --model, with its labels', async () => {
    const config = { ...VISION_PRESETS['revcol-nano-32'], numClasses: 3 };
    const model = new RevColVision(config, 4);
    const run = path.join(tmp, 'run');
    mkdirSync(run, { recursive: true });
    await saveWeights(path.join(run, 'best.safetensors'), model, { family: 'vision', config, labels: ['cat', 'dog', 'eel'] }, { epoch: 1 });
    const data = Float32Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => Math.sin(i));
    const npy = path.join(tmp, 'batch.npy');
    writeFileSync(npy, serializeNpy([2, 3, 32, 32], data));
    const { code, stdout } = await cli('--model', run, npy, '--json');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as PredictJson;
    const expected = tf.tidy(() => model.logits(tf.transpose(tf.tensor4d(data, [2, 3, 32, 32]), [0, 2, 3, 1]) as tf.Tensor4D).arraySync());
    result.logits.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], 5)));
    expect(result.top[0].map((t) => t.label).sort()).toEqual(['cat', 'dog', 'eel']);
    model.dispose();

    const text = await cli('--model', run, npy);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(text.stdout).toMatch(/batch\.npy\[1\]: (cat|dog|eel) \d+\.\d%/);
  });

  it('a --model folder too large for wasm: one line, exit 1', async () => {
    // A header that says revcol-xl over a nano's tensors (the size check reads the config from
    // the file's header, before any tensor is loaded), so the test needs no 3 GiB file.
    const run = path.join(tmp, 'run-xl');
    mkdirSync(run, { recursive: true });
    const nanoModel = new RevColVision({ ...VISION_PRESETS['revcol-nano-32'], numClasses: 3 }, 4);
    await saveWeights(path.join(run, 'best.safetensors'), nanoModel, { family: 'vision', config: { ...VISION_PRESETS['revcol-xl'] }, labels: ['a', 'b', 'c'] });
    nanoModel.dispose();
    const { code, stderr } = await runCliCaptured(['vision', 'predict', '--backend', 'wasm', '--model', run, npyFile('xl2.npy', '<f4', [1, 3, 224, 224])]);
    expect(code).toBe(1);
    expect(errorLine(stderr)).toMatch(/the model in .*run-xl has 3\.1 GiB of weights and inference needs about 6\.2 GiB, more than the wasm backend's 4 GiB/);
  });

  const nano = ['--preset', 'revcol-nano-32'];
  const badCases: Array<[string, () => string[], RegExp]> = [
    ['a float64 .npy', () => [...nano, npyFile('f64.npy', '<f8', [1, 3, 32, 32])], /dtype float64.*float32/],
    ['a channels-last .npy', () => [...nano, npyFile('nhwc.npy', '<f4', [1, 32, 32, 3])], /shape \[1, 32, 32, 3\].*N×3×H×W/],
    ['a .npy of the wrong size', () => [...nano, npyFile('size.npy', '<f4', [1, 3, 28, 28])], /28×28.*multiples of 16/],
    ['no model source', () => [npyFile('ok.npy', '<f4', [1, 3, 32, 32])], /exactly one of --model/],
    ['an unknown preset', () => ['--preset', 'revcol-zz', 'x.png'], /unknown vision preset 'revcol-zz'/],
    ['a file that is not an image', () => [...nano, textFile('notes.png')], /cannot read .*notes\.png as an image/],
    ['a missing weights file', () => [...nano, '--weights', path.join(tmp, 'nope.safetensors'), 'x.png'], /cannot read .*nope\.safetensors/],
    // Checked from the config before anything is built: 3.1 GiB of weights and XNNPACK's packed copy do not fit in 4 GiB.
    ['revcol-xl on the wasm backend', () => ['--backend', 'wasm', '--preset', 'revcol-xl', npyFile('xl.npy', '<f4', [1, 3, 224, 224])],
      /revcol-xl has 3\.1 GiB of weights and inference needs about 6\.2 GiB, more than the wasm backend's 4 GiB; use --backend cpu/],
  ];
  it.each(badCases)('%s: one line, exit 1', async (_, args, message) => {
    const { code, stderr } = await cli(...args());
    expect(code).toBe(1);
    expect(errorLine(stderr)).toMatch(message);
  });
});

function npyFile(name: string, descr: '<f4' | '<f8', shape: number[]): string {
  const file = path.join(tmp, name);
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = serializeNpy(shape, new Float32Array(count));
  if (descr === '<f8') {
    // Same header with an f8 descr (padded to the same length) and 8-byte values.
    const header = Buffer.from(bytes.subarray(0, bytes.length - count * 4)).toString('latin1').replace("'<f4'", "'<f8'");
    writeFileSync(file, Buffer.concat([Buffer.from(header, 'latin1'), Buffer.alloc(count * 8)]));
  } else {
    writeFileSync(file, bytes);
  }
  return file;
}

function textFile(name: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, 'not an image');
  return file;
}
