import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RevcolError, accuracy, evalContext, loadCheckpoint, disposeCheckpoint, lossAndGradients, mixSeed, train,
  WeightAverage, type TrainOptions, type TrainTask,
} from '../src/index.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';
import { reportDeviceFailure, takeDeviceFailure } from '../src/core/reads.js';

interface Batch { x: tf.Tensor2D; y: tf.Tensor2D }

const FEATURES = 5;
const CLASSES = 3;

/** A learnable synthetic problem: the label is the arg-max of a fixed linear map of the input. */
function makeData(count: number, seed: number) {
  return tf.tidy(() => {
    const x = tf.randomNormal([count, FEATURES], 0, 1, 'float32', seed) as tf.Tensor2D;
    const map = tf.randomNormal([FEATURES, CLASSES], 0, 1, 'float32', 424242);
    const labels = tf.argMax(tf.matMul(x, map), 1) as tf.Tensor1D;
    return { x: tf.keep(x), labels: tf.keep(labels) };
  });
}

/** Seeded Fisher–Yates (mulberry32 steps over mixSeed). */
function permutation(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = mixSeed(seed, i) % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function toyTask(net: ToyNet, options: { failAtEpoch?: number; batch?: number } = {}): TrainTask<Batch> & { dispose(): void } {
  const trainSet = makeData(64, 1);
  const testSet = makeData(48, 2);
  const batch = options.batch ?? 16;
  const top = net.columns.levels - 1;
  return {
    model: net,
    trainSize: 64,
    *trainBatches(epoch, seed) {
      if (epoch === options.failAtEpoch) throw new Error('simulated crash');
      const order = permutation(64, seed);
      for (let i = 0; i < order.length; i += batch) {
        const idx = tf.tensor1d(order.slice(i, i + batch), 'int32');
        const b = tf.tidy(() => ({ x: tf.gather(trainSet.x, idx) as tf.Tensor2D, y: tf.oneHot(tf.gather(trainSet.labels, idx), CLASSES) as tf.Tensor2D }));
        idx.dispose();
        yield b;
      }
    },
    batchSize: (b) => b.x.shape[0],
    lossAndGradients: (b, step) => lossAndGradients(net.columns, net.stem(), net.headsFor(b.y), b.x, { mode: 'reversible', training: true, seed: 77 + step }),
    disposeBatch: (b) => { b.x.dispose(); b.y.dispose(); },
    async evaluate() {
      const logits = tf.tidy(() => {
        const s = net.stem().forward(testSet.x, evalContext());
        const [outs] = net.columns.forward(s, { training: false, keep: 'last' });
        const l = net.heads[net.heads.length - 1].forward(outs[top]);
        outs.forEach((t) => t.dispose());
        return l;
      });
      const acc = accuracy(logits, testSet.labels);
      logits.dispose();
      return { accuracy: acc, macroF1: acc * 0.9 };
    },
    dispose() { tf.dispose([trainSet.x, trainSet.labels, testSet.x, testSet.labels]); },
  };
}

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'revcol-train-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const weights = (net: ToyNet) => new Map(net.namedParameters().map(([n, v]) => [n, Float32Array.from(v.dataSync())]));
const options = (outDir: string, more: Partial<TrainOptions> = {}): TrainOptions => ({
  outDir, epochs: 2, lr: 3e-3, warmupEpochs: 0.5, weightDecay: 0.05, clipNorm: 1, seed: 5, progress: false,
  meta: { family: 'toy', config: { channels: [6, 8] } }, log: () => {}, ...more,
});

describe('train()', () => {
  it('trains, writes metrics.jsonl, best and last checkpoints and the curves, without leaking tensors', async () => {
    const net = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 11);
    const task = toyTask(net);
    const before = weights(net);
    const outDir = path.join(root, 'run');
    const lines: string[] = [];
    const tensorsBefore = tf.memory().numTensors;
    const summary = await train(task, options(outDir, { epochs: 3, log: (l) => lines.push(l) }));
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    expect(summary.epochs.map((r) => r.epoch)).toEqual([1, 2, 3]);
    expect(summary.epochs.map((r) => r.step)).toEqual([4, 8, 12]);
    const best = summary.epochs.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    expect(summary.bestEpoch).toBe(best.epoch);
    expect(summary.bestAccuracy).toBe(best.accuracy);
    expect(lines.filter((l) => l.startsWith('epoch ')).length).toBe(3);
    // The weights moved.
    const after = weights(net);
    expect([...before].some(([n, w]) => w.some((x, i) => x !== after.get(n)![i]))).toBe(true);

    const files = await fs.readdir(outDir);
    for (const f of ['metrics.jsonl', 'best.safetensors', 'last.ckpt.safetensors', 'curves.png', 'curves.html']) expect(files).toContain(f);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const rows = (await fs.readFile(path.join(outDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.length).toBe(3);
    for (const r of rows) for (const k of ['epoch', 'step', 'loss', 'lr', 'accuracy', 'macroF1', 'seconds']) expect(typeof r[k], k).toBe('number');
    // Cosine: the lr at the end of each epoch falls.
    expect(rows[0].lr).toBeGreaterThan(rows[1].lr);
    expect(rows[1].lr).toBeGreaterThan(rows[2].lr);
    const png = await sharp(path.join(outDir, 'curves.png')).metadata();
    expect(png.format).toBe('png');
    expect(png.width).toBeGreaterThan(600);
    const html = await fs.readFile(path.join(outDir, 'curves.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // self-contained
    const ckpt = await loadCheckpoint(path.join(outDir, 'last.ckpt.safetensors'));
    expect([ckpt.epoch, ckpt.step, ckpt.samples]).toEqual([3, 12, 192]);
    expect(ckpt.best?.epoch).toBe(summary.bestEpoch);
    disposeCheckpoint(ckpt);
    task.dispose();
    net.dispose();
  });

  it('2 epochs in one go equal 1 epoch, a crash, and a resume for the 2nd', async () => {
    const straightNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 21);
    const straight = toyTask(straightNet);
    const straightSummary = await train(straight, options(path.join(root, 'straight')));

    const crashNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 21);
    const crashing = toyTask(crashNet, { failAtEpoch: 1 });
    const resumeDir = path.join(root, 'resumed');
    await expect(train(crashing, options(resumeDir))).rejects.toThrow('simulated crash');

    // Different initial weights: everything must come from the checkpoint.
    const resumedNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 999);
    const resumed = toyTask(resumedNet);
    const resumedSummary = await train(resumed, options(resumeDir, { resume: true }));
    expect(resumedSummary.resumedFromEpoch).toBe(1);

    const a = weights(straightNet);
    const b = weights(resumedNet);
    let worst = 0;
    for (const [n, w] of a) w.forEach((x, i) => { worst = Math.max(worst, Math.abs(x - b.get(n)![i])); });
    expect(worst).toBeLessThanOrEqual(1e-6);
    expect(resumedSummary.epochs.map((r) => r.epoch)).toEqual([1, 2]);
    expect(resumedSummary.epochs.map((r) => r.loss)).toEqual(straightSummary.epochs.map((r) => r.loss));
    // The optimizer moments match too.
    const [ca, cb] = await Promise.all([loadCheckpoint(path.join(root, 'straight', 'last.ckpt.safetensors')), loadCheckpoint(path.join(resumeDir, 'last.ckpt.safetensors'))]);
    for (const [k, t] of ca.optimizer.tensors) {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(t, cb.optimizer.tensors.get(k)!))).dataSync()[0]);
      expect(d, k).toBeLessThanOrEqual(1e-6);
    }
    expect(cb.step).toBe(ca.step);
    [ca, cb].forEach(disposeCheckpoint);
    [straight, crashing, resumed].forEach((t) => t.dispose());
    [straightNet, crashNet, resumedNet].forEach((n) => n.dispose());
  });

  it('with a weight average: evaluates and saves the average, and a resume continues it exactly', async () => {
    const straightNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 31);
    const straight = toyTask(straightNet);
    const straightDir = path.join(root, 'ema-straight');
    await train(straight, options(straightDir, { ema: 0.9 }));
    const crashNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 31);
    const crashing = toyTask(crashNet, { failAtEpoch: 1 });
    const resumeDir = path.join(root, 'ema-resumed');
    await expect(train(crashing, options(resumeDir, { ema: 0.9 }))).rejects.toThrow('simulated crash');
    const resumedNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 999);
    const resumed = toyTask(resumedNet);
    await train(resumed, options(resumeDir, { ema: 0.9, resume: true }));

    const [ca, cb] = await Promise.all([loadCheckpoint(path.join(straightDir, 'last.ckpt.safetensors')), loadCheckpoint(path.join(resumeDir, 'last.ckpt.safetensors'))]);
    expect(ca.average && cb.average).toBeTruthy();
    expect(cb.average!.updates).toBe(ca.average!.updates);
    expect(ca.average!.updates).toBe(ca.step);
    let averageVsWeights = 0;
    for (const [k, t] of ca.average!.tensors) {
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(t, cb.average!.tensors.get(k)!))).dataSync()[0]);
      expect(d, k).toBeLessThanOrEqual(1e-6);
      averageVsWeights = Math.max(averageVsWeights, tf.tidy(() => tf.max(tf.abs(tf.sub(t, ca.weights.get(k)!))).dataSync()[0]));
    }
    // The average is not the trained weights, and the model keeps its trained weights after evaluation.
    expect(averageVsWeights).toBeGreaterThan(1e-4);
    const trained = weights(straightNet);
    for (const [k, t] of ca.weights) {
      const d = Math.max(...Array.from(t.dataSync()).map((x, i) => Math.abs(x - trained.get(k)![i])));
      expect(d, k).toBeLessThanOrEqual(1e-7);
    }
    [ca, cb].forEach(disposeCheckpoint);
    [straight, crashing, resumed].forEach((t) => t.dispose());
    [straightNet, crashNet, resumedNet].forEach((n) => n.dispose());
  });

  it('a weight average follows d = min(decay, (1+n)/(10+n)) and swaps in and out without leaks', () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 41);
    const [name, v] = net.namedParameters()[0];
    const start = Float32Array.from(v.dataSync());
    const before = tf.memory().numTensors;
    const avg = new WeightAverage(net, 0.5);
    expect(tf.memory().numTensors).toBe(before + net.parameters().length);
    const numTensors = tf.memory().numTensors;
    let expected = Float64Array.from(start);
    for (let n = 1; n <= 3; n++) {
      tf.tidy(() => v.assign(tf.add(v, 1)));
      avg.update();
      const d = Math.min(0.5, (1 + n) / (10 + n));
      const w = v.dataSync();
      expected = expected.map((e, i) => d * e + (1 - d) * w[i]);
    }
    const got = avg.tensors().get(name)!.dataSync();
    got.forEach((g, i) => expect(g).toBeCloseTo(expected[i], 5));
    const trained = Float32Array.from(v.dataSync());
    avg.swapIn();
    expect(Array.from(v.dataSync())).toEqual(Array.from(got));
    avg.swapOut();
    expect(Array.from(v.dataSync())).toEqual(Array.from(trained));
    expect(tf.memory().numTensors).toBe(numTensors);
    avg.dispose();
    expect(tf.memory().numTensors).toBe(before);
    net.dispose();
  });

  it('stops with one line when the loss is not finite; async batch sources work', async () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 4);
    const base = toyTask(net);
    const task: TrainTask<number> = {
      model: net,
      trainSize: 4,
      async *trainBatches() { yield 1; yield 2; },
      batchSize: () => 2,
      lossAndGradients: (_b, step) => ({ loss: tf.scalar(step === 1 ? Number.NaN : 1), grads: new Map() }),
      evaluate: () => base.evaluate(),
    };
    const tensorsBefore = tf.memory().numTensors;
    const err = await train(task, options(path.join(root, 'nan'))).catch((e) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect(err.message).toMatch(/loss became NaN at step 2 \(epoch 1\): lower the learning rate/);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    base.dispose();
    net.dispose();
  });

  it('stops with one line when the device reported a failure (a GPU out of memory) during the run', async () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 4);
    const base = toyTask(net);
    const task: TrainTask<number> = {
      model: net,
      trainSize: 6,
      async *trainBatches() { yield 1; yield 2; yield 3; },
      batchSize: () => 2,
      lossAndGradients: (_b, step) => {
        // what the GPU error watcher does when the device runs out of memory in this step
        if (step === 1) reportDeviceFailure('GPU out of memory: vkAllocateMemory failed');
        return { loss: tf.scalar(1), grads: new Map() };
      },
      evaluate: () => base.evaluate(),
    };
    const tensorsBefore = tf.memory().numTensors;
    const err = await train(task, options(path.join(root, 'oom'))).catch((e) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect(err.message).toMatch(/training stopped at step 2 \(epoch 1\): GPU out of memory: vkAllocateMemory failed; .*lower the batch size/);
    expect(err.message).not.toContain('\n');
    expect(takeDeviceFailure()).toBeUndefined(); // taken by the trainer
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    base.dispose();
    net.dispose();
  });

  it('refuses a resume without a checkpoint, and bad options, with one line', async () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 3);
    const task = toyTask(net);
    const err = await train(task, options(path.join(root, 'fresh'), { resume: true })).catch((e) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect(err.message).toMatch(/run without --resume/);
    expect(err.message).not.toContain('\n');
    await expect(train(task, options(path.join(root, 'x'), { epochs: 0 }))).rejects.toThrow(/epochs must be/);
    await expect(train(task, options(path.join(root, 'x'), { lr: -1 }))).rejects.toThrow(/learning rate/);
    task.dispose();
    net.dispose();
  });
});
