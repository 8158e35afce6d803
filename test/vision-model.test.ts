import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import {
  RevColVision, VISION_PRESETS, depthwiseConvSame, dropPathRates, fitToModel, headColumns, pixelShuffle, releaseShape,
  upsampleNearest2x, visionConfig, visionParameterCount, type VisionConfig,
} from '../src/vision/index.js';
import { relativeError } from './helpers/numerics.js';

// The release's reference data sits beside the repository (../shared/reference).
const REFERENCE = fileURLToPath(new URL('../../shared/reference/', import.meta.url));
const tsvPath = (name: string) => path.join(REFERENCE, name);

/** name<TAB>shape lines of a release state-dict listing. */
function tsvLines(file: string): string[] {
  return readFileSync(tsvPath(file), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
}

function releaseListing(model: RevColVision): string[] {
  return model.namedParameters().map(([n, v]) => `${n}\t${releaseShape(n, v.shape).join('x')}`);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('presets', () => {
  const published: Record<string, number> = {
    'revcol-t': 30.5e6, 'revcol-s': 60.6e6, 'revcol-b': 138.6e6, 'revcol-l': 273.1e6, 'revcol-xl': 833.8e6,
  };
  it.each(Object.entries(published))('%s has the published parameter count (within 1%)', (name, count) => {
    const config = VISION_PRESETS[name];
    expect(config.numClasses).toBe(1000);
    expect(config.interSupervision).toBe(false);
    expect(Math.abs(visionParameterCount(config) - count) / count).toBeLessThan(0.01);
  });

  it('revcol-t built for real: count, names, shapes and order are the release state dict', () => {
    const model = new RevColVision(VISION_PRESETS['revcol-t']);
    expect(model.parameterCount()).toBe(visionParameterCount(VISION_PRESETS['revcol-t']));
    expect(releaseListing(model)).toEqual(tsvLines('revcol-tiny-state-dict-plain.tsv'));
    model.dispose();
  });

  it('revcol-t with intermediate supervision matches the inter-supv state dict', () => {
    const config = { ...VISION_PRESETS['revcol-t'], interSupervision: true };
    const model = new RevColVision(config);
    const listing = releaseListing(model);
    const reference = tsvLines('revcol-tiny-state-dict-inter-supv.tsv');
    // Same set of names and shapes (the order of top-level groups may differ).
    expect([...listing].sort()).toEqual([...reference].sort());
    expect(model.parameterCount()).toBe(visionParameterCount(config));
    model.dispose();
  });

  it('every preset states an input size the network accepts, and small ones exist for 32 px', async () => {
    for (const [name, c] of Object.entries(VISION_PRESETS)) {
      const config = await visionConfig(name);
      expect(config.inputSize % (config.stemPatch * 2 ** (config.channels.length - 1))).toBe(0);
    }
    expect(Object.values(VISION_PRESETS).filter((c) => c.inputSize === 32).length).toBeGreaterThanOrEqual(2);
  });

  it('heads sit at columns N/4, 2N/4, 3N/4, N with intermediate supervision', () => {
    expect(headColumns({ columns: 8, interSupervision: true })).toEqual([1, 3, 5, 7]);
    expect(headColumns({ columns: 4, interSupervision: true })).toEqual([0, 1, 2, 3]);
    expect(headColumns({ columns: 5, interSupervision: false })).toEqual([4]);
  });
});

describe('custom configs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'revcol-vision-config-'));
  const write = (name: string, value: unknown) => {
    const file = path.join(dir, name);
    writeFileSync(file, JSON.stringify(value));
    return file;
  };
  const base = { channels: [8, 16], layers: [1, 1], columns: 2, numClasses: 3 };

  it('reads a JSON file, fills release defaults, and applies overrides', async () => {
    const config = await visionConfig(write('ok.json', base), { numClasses: 4 });
    expect(config).toMatchObject({ ...base, numClasses: 4, kernelSize: 3, stemPatch: 4, inputSize: 224, interSupervision: false });
    const fromPreset = await visionConfig(write('preset.json', { preset: 'revcol-nano-32', numClasses: 2 }));
    expect(fromPreset.channels).toEqual(VISION_PRESETS['revcol-nano-32'].channels);
    expect(fromPreset.numClasses).toBe(2);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['unknown key', { ...base, chanels: [1] }, /unknown key chanels/],
    ['wrong lengths', { ...base, layers: [1, 1, 1] }, /layers has 3 entries but channels has 2/],
    ['missing field', { channels: [8], layers: [1], columns: 1 }, /missing numClasses/],
    ['even kernel', { ...base, kernelSize: 4 }, /kernelSize must be odd/],
    ['inter-supervision columns', { ...base, columns: 6, interSupervision: true }, /multiple of 4/],
    ['input size', { ...base, inputSize: 30 }, /inputSize 30 is not a multiple of .* 8/],
    ['bad mean', { ...base, mean: [0.5, 0.5] }, /mean must list 3/],
    ['not an object', [1, 2], /must be a JSON object/],
  ];
  it.each(bad)('rejects %s with one line', async (_, value, message) => {
    const err = await visionConfig(write('bad.json', value)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('an unknown preset lists the presets', async () => {
    const err = await visionConfig('revcol-huge').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect((err as Error).message).toMatch(/unknown vision preset 'revcol-huge'.*revcol-t.*revcol-nano-32/);
  });
});

describe('building blocks', () => {
  it('the portable depthwise gradient equals the backend\'s own', () => {
    const x = tf.randomNormal([2, 7, 6, 5], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 5, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const dy = tf.randomNormal([2, 7, 6, 5], 0, 1, 'float32', 3);
    const native = tf.grads((a, b) => depthwiseConvSame(a as tf.Tensor4D, b as tf.Tensor4D, 'native'))([x, w], dy);
    const portable = tf.grads((a, b) => depthwiseConvSame(a as tf.Tensor4D, b as tf.Tensor4D, 'portable'))([x, w], dy);
    expect(relativeError(portable[0], native[0])).toBeLessThan(1e-5);
    expect(relativeError(portable[1], native[1])).toBeLessThan(1e-5);
    tf.dispose([x, w, dy, ...native, ...portable]);
  });

  it('pixel shuffle and nearest upsampling follow PyTorch\'s index rules', () => {
    // 1×1×1×(3·2²) -> 1×2×2×3: channel c·4 + i·2 + j lands at (i, j), channel c.
    const x = tf.range(0, 12).reshape([1, 1, 1, 12]);
    const y = pixelShuffle(x, 2).arraySync();
    for (let c = 0; c < 3; c++) for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) expect(y[0][i][j][c]).toBe(c * 4 + i * 2 + j);
    const up = upsampleNearest2x(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1])).arraySync();
    expect(up[0].map((r) => r.map((v) => v[0]))).toEqual([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]);
    x.dispose();
  });

  it('drop-path rates rise linearly over one column\'s blocks', () => {
    expect(dropPathRates([1, 2, 1], 0.3).flat().map((r) => +r.toFixed(6))).toEqual([0, 0.1, 0.2, 0.3]);
    expect(dropPathRates([1], 0.5)).toEqual([[0]]);
  });

  it('fitToModel pads small inputs centred and resizes large ones; the model rejects sizes it cannot take', () => {
    const config = VISION_PRESETS['revcol-nano-32'];
    const model = new RevColVision(config, 3);
    const digits = tf.ones([2, 28, 28, 3]) as tf.Tensor4D;
    expect(() => model.logits(digits)).toThrow(/multiples of 16.*fitToModel/);
    const padded = fitToModel(digits, config);
    expect(padded.shape).toEqual([2, 32, 32, 3]);
    expect(tf.sum(padded).dataSync()[0]).toBe(2 * 28 * 28 * 3);
    expect(padded.slice([0, 2, 2, 0], [1, 1, 1, 1]).dataSync()[0]).toBe(1);
    expect(padded.slice([0, 1, 1, 0], [1, 1, 1, 1]).dataSync()[0]).toBe(0);
    const big = fitToModel(tf.zeros([1, 50, 40, 3]) as tf.Tensor4D, config);
    expect(big.shape).toEqual([1, 32, 32, 3]);
    const logits = model.logits(padded);
    expect(logits.shape).toEqual([2, 10]);
    tf.dispose([digits, padded, big, logits]);
    model.dispose();
  });
});

describe('training', () => {
  const small = (interSupervision: boolean): VisionConfig => ({
    ...VISION_PRESETS['revcol-nano-32'], channels: [8, 12, 16, 20], columns: 4, numClasses: 5, dropPath: 0.2, interSupervision,
  });

  /** Moves layer scales and shortcut scales away from their initial values so that every weight matters. */
  function perturb(model: RevColVision): void {
    tf.tidy(() => {
      model.namedParameters().forEach(([n, v], i) => {
        if (/gamma|alpha/.test(n)) v.assign(tf.randomUniform(v.shape, 0.3, 1, 'float32', 100 + i));
      });
    });
  }

  it.each([false, true])('reversible and plain gradients agree (inter-supervision %s)', (inter) => {
    const model = new RevColVision(small(inter), 5);
    perturb(model);
    const x = tf.randomNormal([3, 32, 32, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const labels = tf.tensor1d([0, 3, 4], 'int32');
    const opts = { seed: 17, labelSmoothing: 0.1 };
    const plain = model.lossAndGradients(x, labels, { ...opts, mode: 'plain' });
    const rev = model.lossAndGradients(x, labels, { ...opts, mode: 'reversible' });
    expect(relativeError(rev.loss, plain.loss)).toBeLessThan(1e-5);
    const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
    // Every parameter but column 0's shortcut scales (they multiply x[-1] = 0) gets a gradient.
    expect(plain.grads.size).toBe(model.parameters().length - 4);
    expect(rev.grads.size).toBe(plain.grads.size);
    for (const [v, g] of plain.grads) {
      expect(relativeError(rev.grads.get(v)!, g), names.get(v)).toBeLessThan(1e-4);
    }
    if (inter) {
      // The decoders and every head learn: their gradients are not zero.
      for (const prefix of ['decoder_blocks.0.', 'decoder_blocks.2.', 'cls_blocks.0.', 'cls_blocks.3.']) {
        const [, v] = model.namedParameters().find(([n]) => n.startsWith(prefix) && n.endsWith('weight'))!;
        expect(tf.max(tf.abs(plain.grads.get(v)!)).dataSync()[0], prefix).toBeGreaterThan(0);
      }
    }
    for (const r of [plain, rev]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
    tf.dispose([x, labels]);
    model.dispose();
  });

  it('a few SGD steps lower the loss and leak no tensors', () => {
    const model = new RevColVision({ ...small(true), dropPath: 0 }, 2);
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
    const losses: number[] = [];
    let tensors = -1;
    for (let step = 0; step < 4; step++) {
      const { loss, grads } = model.lossAndGradients(x, labels, { seed: step });
      losses.push(loss.dataSync()[0]);
      tf.tidy(() => grads.forEach((g, v) => v.assign(tf.sub(v, tf.mul(g, 0.05)))));
      loss.dispose();
      grads.forEach((g) => g.dispose());
      const outs = model.outputs(x);
      expect(outs.headLogits).toHaveLength(4);
      expect(outs.reconstructions!.map((r) => r.shape)).toEqual([[4, 32, 32, 3], [4, 32, 32, 3], [4, 32, 32, 3]]);
      tf.dispose([outs.logits, ...outs.headLogits!, ...outs.reconstructions!]);
      if (step === 0) tensors = tf.memory().numTensors;
      else expect(tf.memory().numTensors).toBe(tensors);
    }
    expect(losses[3]).toBeLessThan(losses[0]);
    tf.dispose([x, labels]);
    model.dispose();
  });
});
