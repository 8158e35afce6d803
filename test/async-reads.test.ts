/**
 * Training and prediction read tensors only asynchronously, as the webgpu backend needs (its
 * dataSync throws `OffscreenCanvas is not defined` in Node). Checked on cpu: a backend that is
 * the cpu backend, except that, like webgpu, it refuses synchronous reads of anything a kernel
 * computed (what JavaScript wrote, such as a tokenizer's ids, stays readable, as on webgpu).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTopics } from './helpers/text-data.js';
import { ToyNet } from '../examples/gated-mlp-columns.js';
import { evaluateVision, predictVision } from '../src/vision/classifier.js';
import { trainVision } from '../src/vision/train.js';
import { writeNpy } from '../src/io/npy.js';
import {
  checkModelScales, fineTune, lossAndGradients, markAsyncReadBackend, readsSynchronously, readTextExamples, RevcolError, TextClassifier,
} from '../src/index.js';

const NAME = 'cpu-async-reads';
/** The same kernels on a backend that reads synchronously: what the trainer's lagged reads are compared with. */
const SYNC_NAME = 'cpu-sync-reads';

class AsyncReadsCpu extends MathBackendCPU {
  /** dataIds of kernel outputs: refused by readSync. */
  private readonly computed = new WeakSet<object>();
  syncReadsRefused = 0;

  override makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues | string[]): tf.TensorInfo {
    const info = super.makeTensorInfo(shape, dtype, values);
    this.computed.add(info.dataId);
    return info;
  }

  /** What tensor.dataSync() and arraySync() end in. */
  override readSync(dataId: object): tf.backend_util.BackendValues {
    if (this.computed.has(dataId)) {
      this.syncReadsRefused++;
      throw new Error('synchronous read of a computed tensor (webgpu cannot do this in Node)');
    }
    return super.readSync(dataId);
  }

  /** tensor.data(); the cpu backend's own answers through readSync. */
  override async read(dataId: object): Promise<tf.backend_util.BackendValues> {
    return MathBackendCPU.prototype.readSync.call(this, dataId);
  }

  /** The cpu kernels' own access to their inputs, not a read back to JavaScript. */
  override bufferSync<R extends tf.Rank, D extends tf.DataType>(t: tf.TensorInfo): tf.TensorBuffer<R, D> {
    const values = MathBackendCPU.prototype.readSync.call(this, t.dataId) as tf.DataTypeMap[D];
    return tf.buffer(t.shape, t.dtype as D, values) as unknown as tf.TensorBuffer<R, D>;
  }
}

let backend: AsyncReadsCpu;
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-async-reads-'));
const quiet = { progress: false, log: () => {} };

beforeAll(async () => {
  // The cpu kernels (with revcol's fixes, registered when the engine is imported) under another name.
  for (const kernel of tf.getKernelsForBackend('cpu')) {
    if (kernel.kernelName === 'UnsortedSegmentSum') continue;
    tf.registerKernel({ ...kernel, backendName: NAME });
    tf.registerKernel({ ...kernel, backendName: SYNC_NAME });
  }
  // The embeddings' gradient: the cpu backend's own kernel runs tensor ops for each of the
  // 30,522 segments (12 s a step); a plain loop gives the same sums.
  for (const backendName of [NAME, SYNC_NAME]) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName,
      kernelFunc: ({ inputs, attrs, backend: b }) => {
        const cpu = b as AsyncReadsCpu;
        const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
        const segments = (attrs as { numSegments: number }).numSegments;
        const values = cpu.data.get(x.dataId).values as Float32Array;
        const ids = cpu.data.get(segmentIds.dataId).values as Int32Array;
        const inner = values.length / Math.max(1, ids.length);
        const out = new Float32Array(segments * inner);
        ids.forEach((id, i) => {
          if (id < 0 || id >= segments) return;
          for (let j = 0; j < inner; j++) out[id * inner + j] += values[i * inner + j]!;
        });
        return cpu.makeTensorInfo([segments, ...x.shape.slice(segmentIds.shape.length)], x.dtype, out);
      },
    });
  }
  tf.registerBackend(NAME, () => new AsyncReadsCpu(), -1);
  tf.registerBackend(SYNC_NAME, () => new MathBackendCPU(), -1);
  markAsyncReadBackend(NAME);
  await tf.setBackend(NAME);
  backend = tf.backend() as AsyncReadsCpu;
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('a backend that reads asynchronously only', () => {
  it('refuses dataSync of computed tensors, as webgpu does', async () => {
    expect(readsSynchronously()).toBe(false);
    const written = tf.tensor1d([1, 2]);
    const sum = tf.add(written, written);
    expect(Array.from(written.dataSync())).toEqual([1, 2]);
    expect(() => sum.dataSync()).toThrow(/synchronous read/);
    expect(Array.from(await sum.data())).toEqual([2, 4]);
    tf.dispose([written, sum]);
    backend.syncReadsRefused = 0;
  });

  it('a zero shortcut scale is reported by checkScales (which the trainer awaits) instead of clampScales', async () => {
    const net = new ToyNet(3, [4, 6], 3, 2, 1);
    net.columns.scale(2, 1).assign(tf.tensor1d([0.5, 0, 0.5, 0.5, 0.5, 0.5]));
    const input = tf.ones([2, 3]);
    const labels = tf.oneHot(tf.tensor1d([0, 1], 'int32'), 2);
    const before = tf.memory().numTensors;
    const out = lossAndGradients(net.columns, net.stem(), net.headsFor(labels), input, { mode: 'reversible' });
    out.loss.dispose();
    out.grads.forEach((g) => g.dispose());
    let caught: unknown;
    await checkModelScales(net).catch((err: unknown) => { caught = err; });
    expect(caught).toBeInstanceOf(RevcolError);
    expect((caught as Error).message).toMatch(/^shortcut scale 1 of column 2 has 1 entries equal to 0: the reversible unit divides by it/);
    await checkModelScales(net); // nothing pending any more
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([input, labels]);
    net.dispose();
    expect(backend.syncReadsRefused).toBe(0);
  });

  it('reads each step\'s loss only after the next step is queued, and trains exactly as a backend that reads at once', async () => {
    const train = path.join(work, 'topics-lag.csv');
    writeTopics(train, 48, 3);
    const run = async (name: string) => {
      await tf.setBackend(name);
      const seenAtStep: number[] = [];
      const result = await fineTune({
        train, out: path.join(work, `lag-${name}`), epochs: 2, batchSize: 16, maxLength: 16,
        config: { hidden: [16, 24], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 3, dropout: 0.1, dropPath: 0.1, pooling: 'first' },
        ...quiet,
        onStep: ({ seen }) => seenAtStep.push(seen),
      });
      return { losses: result.summary.epochs.map((e) => [e.step, e.loss]), seenAtStep };
    };
    const lagged = await run(NAME);
    const atOnce = await run(SYNC_NAME);
    await tf.setBackend(NAME);
    expect(lagged.losses).toEqual(atOnce.losses);
    expect(lagged.seenAtStep).toEqual(atOnce.seenAtStep);
    expect(backend.syncReadsRefused).toBe(0);
  });

  it('fine-tunes, evaluates and classifies text without a synchronous read', async () => {
    const train = path.join(work, 'topics.csv');
    const evalFile = path.join(work, 'topics-eval.csv');
    writeTopics(train, 48, 1);
    writeTopics(evalFile, 16, 2);
    const out = path.join(work, 'text');
    const before = tf.memory().numTensors;
    const result = await fineTune({
      train, out, epochs: 1, batchSize: 16, maxLength: 16,
      config: { hidden: [16, 24], layers: [1, 1], heads: 2, mlpRatio: 2, columns: 3, dropout: 0.1, dropPath: 0.1, pooling: 'first' },
      ...quiet,
    });
    expect(result.summary.epochs).toHaveLength(1);
    expect(tf.memory().numTensors).toBe(before);
    const classifier = await TextClassifier.load(out);
    try {
      const texts = ['the team scored a goal', 'a new song on the guitar'];
      const probs = await classifier.probabilitiesAsync(texts);
      expect(probs).toHaveLength(2 * classifier.labels.size);
      expect((await classifier.classify(texts)).map((r) => r.score)).toEqual([0, 1].map((i) => Math.max(probs[2 * i]!, probs[2 * i + 1]!)));
      const report = await classifier.evaluateAsync(await readTextExamples(evalFile));
      expect(report.examples).toBe(16);
      // The synchronous APIs say what to use instead, in one line.
      expect(() => classifier.probabilities(texts)).toThrow(RevcolError);
      expect(() => classifier.probabilities(texts)).toThrow(/cannot read tensors synchronously: use await classifier\.probabilitiesAsync\(texts\)$/);
      await expect(readTextExamples(evalFile).then((ex) => classifier.evaluate(ex))).rejects.toThrow(/use await classifier\.evaluateAsync/);
    } finally {
      classifier.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(backend.syncReadsRefused).toBe(0);
  });

  it('trains, evaluates and predicts a vision model without a synchronous read', async () => {
    const out = path.join(work, 'vision');
    const before = tf.memory().numTensors;
    const result = await trainVision({ data: 'mnist', limit: 32, preset: 'revcol-nano-32', epochs: 1, batchSize: 16, out, ...quiet });
    expect(result.summary.epochs).toHaveLength(1);
    const report = await evaluateVision({ model: out, data: 'mnist', limit: 32 });
    expect(report.count).toBe(32);
    const npy = path.join(work, 'batch.npy');
    await writeNpy(npy, [2, 3, 32, 32], new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i)));
    const predicted = await predictVision({ model: out, inputs: [npy], warn: () => {} });
    expect(predicted.logits).toHaveLength(2);
    expect(tf.memory().numTensors).toBe(before);
    expect(backend.syncReadsRefused).toBe(0);
  });
});
