// Saving and loading the largest presets' files, which Node cannot read or build in one piece
// (one read stops at 2 GiB, one buffer at 4 GiB): release weights, and with --checkpoint a
// training checkpoint (weights + AdamW's two moments). Reports seconds, file sizes and the
// process's peak resident memory after each stage (it only grows), and checks that what is loaded equals what was saved.
//   npm run bench -- large-weights [--preset revcol-xl] [--checkpoint] [--dir DIR] [--keep]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { AdamW } from '../src/train/optimizer.js';
import { disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { loadReleaseWeights, saveReleaseWeights } from '../src/vision/weights.js';
import { recordResult } from './lib/record.js';
import { args, flag } from './lib/args.js';

const preset = flag('preset', 'revcol-xl');
const withCheckpoint = args.includes('--checkpoint');
const dir = args.includes('--dir') ? flag('dir', '') : mkdtempSync(path.join(os.tmpdir(), 'revcol-large-'));
const config = VISION_PRESETS[preset];
if (!config) throw new Error(`unknown preset ${preset}`);

// The wasm backend's memory stops at 4 GiB; these models live on the cpu backend.
await useBackend('cpu');
const gib = (bytes: number) => Number((bytes / 2 ** 30).toFixed(2));
const peakRss = () => gib(process.resourceUsage().maxRSS * 1024);
/** Runs one stage; returns its value, its seconds and the process's peak memory at its end. */
const timed = async <T>(what: string, fn: () => Promise<T> | T): Promise<[T, number, number]> => {
  const start = performance.now();
  const value = await fn();
  const seconds = Number(((performance.now() - start) / 1000).toFixed(1));
  process.stderr.write(`${what}: ${seconds} s (peak RSS so far ${peakRss()} GiB)\n`);
  return [value, seconds, peakRss()];
};
/** Every parameter's sum and sum of squares: a change to any value shows. */
const fingerprint = (model: RevColVision) => model.namedParameters().map(([, v]) => tf.tidy(() => [tf.sum(v).dataSync()[0], tf.sum(tf.square(v)).dataSync()[0]]));

const [model, buildSeconds, buildPeakRssGiB] = await timed(`build ${preset}`, () => new RevColVision(config, 1));
const parameters = model.namedParameters().reduce((n, [, v]) => n + v.size, 0);
const before = fingerprint(model);
const weightsFile = path.join(dir, `${preset}.safetensors`);
const [, saveSeconds, savePeakRssGiB] = await timed('saveReleaseWeights', () => saveReleaseWeights(model, weightsFile));
// Overwrite every value, so that equal fingerprints after loading mean the file gave them back.
for (const [, v] of model.namedParameters()) tf.tidy(() => v.assign(tf.zerosLike(v)));
const [, loadSeconds, loadPeakRssGiB] = await timed('loadReleaseWeights', () => loadReleaseWeights(model, weightsFile));
const weightsEqual = JSON.stringify(fingerprint(model)) === JSON.stringify(before);
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  preset,
  parameters,
  buildSeconds,
  buildPeakRssGiB,
  weightsFileGiB: gib(statSync(weightsFile).size),
  saveSeconds,
  savePeakRssGiB,
  loadSeconds,
  loadPeakRssGiB,
  weightsEqual,
};
if (!args.includes('--keep')) rmSync(weightsFile, { force: true });

if (withCheckpoint) {
  const optimizer = new AdamW(model);
  const ckptFile = path.join(dir, `${preset}.ckpt.safetensors`);
  const [, ckptSaveSeconds, ckptSavePeak] = await timed('saveCheckpoint', () => saveCheckpoint(ckptFile, { model, optimizer, step: 1, epoch: 1, meta: { preset }, best: null }));
  result.checkpointFileGiB = gib(statSync(ckptFile).size);
  optimizer.dispose(); // the moments are 2× the weights: free them before reading them back
  const [ckpt, ckptLoadSeconds, ckptLoadPeak] = await timed('loadCheckpoint', () => loadCheckpoint(ckptFile));
  result.checkpointSaveSeconds = ckptSaveSeconds;
  result.checkpointSavePeakRssGiB = ckptSavePeak;
  result.checkpointLoadSeconds = ckptLoadSeconds;
  result.checkpointLoadPeakRssGiB = ckptLoadPeak;
  result.checkpointTensors = ckpt.weights.size + ckpt.optimizer.tensors.size;
  disposeCheckpoint(ckpt);
  if (!args.includes('--keep')) rmSync(ckptFile, { force: true });
}
result.peakRssGiB = peakRss();
model.dispose();
if (!args.includes('--dir') && !args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
const line = JSON.stringify(result);
process.stdout.write(`${line}\n`);
await recordResult('large-weights', line);
if (!weightsEqual) process.exitCode = 1;
