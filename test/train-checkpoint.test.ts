import { promises as fsPromises } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AdamW, Linear, Module, RandomStream, RevcolError, disposeCheckpoint, loadCheckpoint, loadModelDir, saveCheckpoint, saveWeights,
} from '../src/index.js';
import { writeSafetensors } from '../src/io/safetensors.js';

class TwoLayers extends Module {
  readonly a: Linear;
  readonly b: Linear;
  constructor(seed: number) {
    super();
    const rng = new RandomStream(seed);
    this.a = this.child('a', new Linear(3, 4, rng));
    this.b = this.child('b', new Linear(4, 2, rng));
  }
}

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await fsPromises.mkdtemp(path.join(os.tmpdir(), 'revcol-ckpt-'));
});
afterAll(async () => {
  await fsPromises.rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

const snapshot = (m: Module) => new Map(m.namedParameters().map(([n, v]) => [n, Array.from(v.dataSync())]));

/** A model and optimizer that have taken `steps` steps, so that the moments are non-zero. */
function trained(seed: number, steps: number) {
  const model = new TwoLayers(seed);
  const opt = new AdamW(model, { weightDecay: 0.05 });
  for (let s = 0; s < steps; s++) {
    const grads = new Map(model.trainableParameters().map((v) => [v, tf.randomNormal(v.shape, 0, 1, 'float32', 10 * seed + s)] as [tf.Variable, tf.Tensor]));
    opt.applyGradients(grads, 1e-2);
    grads.forEach((g) => g.dispose());
  }
  return { model, opt };
}

describe('checkpoints', () => {
  it('round-trips weights, optimizer state, step, epoch, meta and best', async () => {
    const { model, opt } = trained(1, 3);
    const file = path.join(dir, 'roundtrip', 'last.ckpt.safetensors');
    const meta = { family: 'toy', config: { width: 4 }, labels: ['a', 'b'] };
    await saveCheckpoint(file, { model, optimizer: opt, step: 3, epoch: 1, samples: 48, meta, best: { epoch: 1, accuracy: 0.75 } });
    const ckpt = await loadCheckpoint(file);
    expect([ckpt.step, ckpt.epoch, ckpt.samples, ckpt.optimizer.step]).toEqual([3, 1, 48, 3]);
    expect(ckpt.meta).toEqual(meta);
    expect(ckpt.best).toEqual({ epoch: 1, accuracy: 0.75 });
    const fresh = new TwoLayers(2);
    fresh.loadStateDict(ckpt.weights);
    expect(snapshot(fresh)).toEqual(snapshot(model));
    const freshOpt = new AdamW(fresh);
    freshOpt.setState(ckpt.optimizer);
    for (const [k, t] of opt.getState().tensors) expect(Array.from(freshOpt.getState().tensors.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
    disposeCheckpoint(ckpt);
    [model, fresh].forEach((m) => m.dispose());
    [opt, freshOpt].forEach((o) => o.dispose());
  });

  it('a save that fails midway leaves the previous checkpoint whole and no temp file behind', async () => {
    const sub = path.join(dir, 'crash');
    const file = path.join(sub, 'last.ckpt.safetensors');
    const first = trained(3, 2);
    await saveCheckpoint(file, { model: first.model, optimizer: first.opt, step: 2, epoch: 1, meta: { run: 'good' }, best: null });
    const good = snapshot(first.model);
    const later = trained(4, 5);

    // The disk fills up half-way through the file: the first writes land, a later one fails.
    const realOpen = fsPromises.open.bind(fsPromises);
    const failingOpen = (writesBeforeFailure: number) => {
      let writes = 0;
      return vi.spyOn(fsPromises, 'open').mockImplementation((async (p: string, flags?: string) => {
        const handle = await realOpen(p, flags);
        return {
          write: async (data: Uint8Array, offset = 0, length = data.length - offset) => {
            if (writes++ >= writesBeforeFailure) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
            return handle.write(data, offset, length);
          },
          sync: () => handle.sync(),
          close: () => handle.close(),
        };
      }) as unknown as typeof fsPromises.open);
    };
    failingOpen(3);
    await expect(saveCheckpoint(file, { model: later.model, optimizer: later.opt, step: 5, epoch: 2, meta: { run: 'bad' }, best: null })).rejects.toThrow(/ENOSPC/);
    vi.restoreAllMocks();

    // A save that dies before writing anything must not matter either.
    failingOpen(0);
    await expect(saveCheckpoint(file, { model: later.model, optimizer: later.opt, step: 5, epoch: 2, meta: { run: 'bad' }, best: null })).rejects.toThrow(/ENOSPC/);
    vi.restoreAllMocks();

    const ckpt = await loadCheckpoint(file);
    expect(ckpt.meta).toEqual({ run: 'good' });
    expect(ckpt.step).toBe(2);
    const check = new TwoLayers(9);
    check.loadStateDict(ckpt.weights);
    expect(snapshot(check)).toEqual(good);
    expect((await fsPromises.readdir(sub)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    disposeCheckpoint(ckpt);
    [first, later].forEach(({ model, opt }) => { model.dispose(); opt.dispose(); });
    check.dispose();
  });

  it('loadModelDir reads best.safetensors, falls back to the last checkpoint, and says what is wrong', async () => {
    const { model, opt } = trained(5, 1);
    const meta = { family: 'toy', classes: 2 };
    const onlyLast = path.join(dir, 'only-last');
    await saveCheckpoint(path.join(onlyLast, 'last.ckpt.safetensors'), { model, optimizer: opt, step: 1, epoch: 1, meta, best: null });
    const fromLast = await loadModelDir(onlyLast);
    expect(fromLast.file.endsWith('last.ckpt.safetensors')).toBe(true);
    expect(fromLast.meta).toEqual(meta);
    expect([...fromLast.tensors.keys()].sort()).toEqual(model.namedParameters().map(([n]) => n).sort());

    const withBest = path.join(dir, 'with-best');
    await saveCheckpoint(path.join(withBest, 'last.ckpt.safetensors'), { model, optimizer: opt, step: 1, epoch: 1, meta, best: null });
    await saveWeights(path.join(withBest, 'best.safetensors'), model, meta, { epoch: 1, metrics: { accuracy: 0.5 } });
    const fromBest = await loadModelDir(withBest);
    expect(fromBest.file.endsWith('best.safetensors')).toBe(true);
    expect(fromBest.epoch).toBe(1);
    expect(fromBest.metrics).toEqual({ accuracy: 0.5 });
    const copy = new TwoLayers(7);
    copy.loadStateDict(fromBest.tensors);
    expect(snapshot(copy)).toEqual(snapshot(model));
    // The weights file may be given directly.
    expect((await loadModelDir(path.join(withBest, 'best.safetensors'))).meta).toEqual(meta);

    await expect(loadModelDir(path.join(dir, 'nowhere'))).rejects.toThrow(RevcolError);
    await fsPromises.mkdir(path.join(dir, 'empty'), { recursive: true });
    await expect(loadModelDir(path.join(dir, 'empty'))).rejects.toThrow(/no best\.safetensors or last\.ckpt\.safetensors/);
    const foreign = path.join(dir, 'foreign');
    await writeSafetensors(path.join(foreign, 'best.safetensors'), [['w', { shape: [1], data: new Float32Array([1]) }]]);
    await expect(loadModelDir(foreign)).rejects.toThrow(/not written by revcol/);
    await expect(loadCheckpoint(path.join(foreign, 'best.safetensors'))).rejects.toThrow(RevcolError);

    [fromLast, fromBest].forEach((m) => m.tensors.forEach((t) => t.dispose()));
    model.dispose(); copy.dispose(); opt.dispose();
  });
});
