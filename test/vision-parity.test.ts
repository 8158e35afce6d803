import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { readNpy } from '../src/io/npy.js';
import { oneLineError } from './helpers/errors.js';
import { type RawTensor, type SafetensorsReader, openSafetensors, readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { RevColVision, loadReleaseTensors, loadReleaseWeights, saveReleaseWeights, toReleaseLayout, visionConfig } from '../src/vision/index.js';

// The release's PyTorch code run on seeded weights (../shared/reference/parity/README in REVCOL.md's folder).
const PARITY = fileURLToPath(new URL('../../shared/reference/parity/', import.meta.url));
const tmp = mkdtempSync(path.join(tmpdir(), 'revcol-vision-parity-'));

async function npyTensor(file: string): Promise<tf.Tensor> {
  const a = await readNpy(file);
  return tf.tensor(a.data, a.shape);
}

/** max |ours - ref| and the tolerance 1e-4 · (1 + max |ref|). */
function compare(ours: tf.Tensor, ref: tf.Tensor): { diff: number; tolerance: number } {
  return tf.tidy(() => ({
    diff: tf.max(tf.abs(tf.sub(ours, ref))).dataSync()[0],
    tolerance: 1e-4 * (1 + tf.max(tf.abs(ref)).dataSync()[0]),
  }));
}

async function loadCase(name: string): Promise<{ model: RevColVision; x: tf.Tensor4D }> {
  const dir = path.join(PARITY, name);
  const model = new RevColVision(await visionConfig(path.join(dir, 'config.json')));
  await loadReleaseWeights(model, path.join(dir, 'weights.safetensors'));
  const input = await npyTensor(path.join(dir, 'input.npy'));
  const x = tf.transpose(input, [0, 2, 3, 1]) as tf.Tensor4D; // N×3×H×W -> NHWC
  input.dispose();
  return { model, x };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('parity with the release', () => {
  it('dev-plain: logits', async () => {
    const { model, x } = await loadCase('dev-plain');
    expect(model.config.interSupervision).toBe(false);
    const logits = model.logits(x);
    const ref = await npyTensor(path.join(PARITY, 'dev-plain', 'logits.npy'));
    expect(logits.shape).toEqual(ref.shape);
    const { diff, tolerance } = compare(logits, ref);
    console.log(`dev-plain logits: max abs diff ${diff.toExponential(2)} (tolerance ${tolerance.toExponential(2)})`);
    expect(diff).toBeLessThanOrEqual(tolerance);
    tf.dispose([logits, ref, x]);
    model.dispose();
  });

  it('dev-inter-supv: logits, every head and the reconstructions', async () => {
    const { model, x } = await loadCase('dev-inter-supv');
    const outs = model.outputs(x);
    const dir = path.join(PARITY, 'dev-inter-supv');
    const refLogits = await npyTensor(path.join(dir, 'logits.npy'));
    const refHeads = await npyTensor(path.join(dir, 'head-logits.npy'));
    const refRecon = await npyTensor(path.join(dir, 'reconstructions.npy'));
    const heads = tf.stack(outs.headLogits!);
    const recon = tf.transpose(tf.stack(outs.reconstructions!), [0, 1, 4, 2, 3]); // NHWC -> N×3×H×W
    expect(heads.shape).toEqual(refHeads.shape);
    expect(recon.shape).toEqual(refRecon.shape);
    for (const [what, ours, ref] of [['logits', outs.logits, refLogits], ['heads', heads, refHeads], ['reconstructions', recon, refRecon]] as const) {
      const { diff, tolerance } = compare(ours, ref);
      console.log(`dev-inter-supv ${what}: max abs diff ${diff.toExponential(2)} (tolerance ${tolerance.toExponential(2)})`);
      expect(diff, what).toBeLessThanOrEqual(tolerance);
    }
    tf.dispose([outs.logits, ...outs.headLogits!, ...outs.reconstructions!, heads, recon, refLogits, refHeads, refRecon, x]);
    model.dispose();
  });

  it.each(['dev-plain', 'dev-inter-supv'])('%s: saving gives back the release file, tensor for tensor', async (name) => {
    const { model, x } = await loadCase(name);
    const file = path.join(tmp, `${name}.safetensors`);
    await saveReleaseWeights(model, file);
    const original = (await readSafetensors(path.join(PARITY, name, 'weights.safetensors'))).tensors;
    const saved = await readSafetensors(file);
    expect(saved.metadata.format).toBe('pt');
    expect([...saved.tensors.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [n, t] of original) {
      const s = saved.tensors.get(n)!;
      expect(s.shape, n).toEqual(t.shape);
      expect(Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), n).toBe(true);
    }
    // And a fresh model loads the saved file to the same outputs.
    const again = new RevColVision(model.config, 99);
    await loadReleaseWeights(again, file);
    const a = model.logits(x);
    const b = again.logits(x);
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    tf.dispose([a, b, x]);
    model.dispose();
    again.dispose();
  });
});

describe('weights that do not fit', () => {
  let tensors: Map<string, RawTensor>;
  let model: RevColVision;
  beforeAll(async () => {
    tensors = (await readSafetensors(path.join(PARITY, 'dev-plain', 'weights.safetensors'))).tensors;
    model = new RevColVision(await visionConfig(path.join(PARITY, 'dev-plain', 'config.json')));
  });

  function failure(edit: (m: Map<string, RawTensor>) => void, target = model): Promise<string> {
    const copy = new Map(tensors);
    edit(copy);
    return oneLineError(() => loadReleaseTensors(target, copy, 'weights.safetensors'));
  }

  it('names missing, extra and mis-shaped tensors (in PyTorch layout)', async () => {
    expect(await failure((m) => m.delete('subnet1.level2.fusion.up.channel_reschedule.0.weight'))).toMatch(/missing subnet1\.level2\.fusion\.up\.channel_reschedule\.0\.weight/);
    expect(await failure((m) => m.set('subnet9.alpha0', { shape: [1, 16, 1, 1], data: new Float32Array(16) }))).toMatch(/unexpected subnet9\.alpha0/);
    expect(await failure((m) => m.set('stem.0.weight', { shape: [16, 3, 2, 2], data: new Float32Array(16 * 12) })))
      .toMatch(/mis-shaped stem\.0\.weight \(expected \[16, 3, 4, 4\], got \[16, 3, 2, 2\]\)/);
  });

  it('says when intermediate supervision is set the wrong way', async () => {
    const inter = new RevColVision({ ...model.config, columns: 4, interSupervision: true });
    expect(await failure(() => {}, inter)).toMatch(/single head \(cls\): set interSupervision to false/);
    inter.dispose();
  });

  it('accepts a DistributedDataParallel "module." prefix', () => {
    const prefixed = new Map([...tensors].map(([n, t]) => [`module.${n}`, t]));
    expect(() => loadReleaseTensors(model, prefixed)).not.toThrow();
  });

  it('from a file, checks every name and shape before reading any tensor, then reads each once', async () => {
    const file = path.join(tmp, 'prefixed.safetensors');
    await writeSafetensors(file, [...tensors].map(([n, t]): [string, RawTensor] => [`module.${n}`, t]));
    const count = (reader: SafetensorsReader) => {
      const reads: string[] = [];
      const read = reader.read.bind(reader);
      reader.read = (name) => { reads.push(name); return read(name); };
      return reads;
    };
    const fresh = new RevColVision(model.config, 7);
    const reader = await openSafetensors(file);
    const reads = count(reader);
    await loadReleaseWeights(fresh, reader);
    await reader.close();
    expect(reads.sort()).toEqual([...tensors.keys()].map((n) => `module.${n}`).sort());
    for (const [n, v] of fresh.namedParameters()) expect(tf.tidy(() => Array.from(toReleaseLayout(n, v).dataSync())), n).toEqual(Array.from(tensors.get(n)!.data));

    const bad = path.join(tmp, 'mis-shaped.safetensors');
    await writeSafetensors(bad, [...tensors].map(([n, t]): [string, RawTensor] => [n, n === 'cls.classifier.1.bias' ? { shape: [3], data: new Float32Array(3) } : t]));
    const badReader = await openSafetensors(bad);
    const badReads = count(badReader);
    await expect(loadReleaseWeights(fresh, badReader)).rejects.toThrow(/mis-shaped cls\.classifier\.1\.bias/);
    await badReader.close();
    expect(badReads).toEqual([]);
    fresh.dispose();
  });

  it('a file that is not safetensors is a one-line error', async () => {
    const file = path.join(tmp, 'not-weights.safetensors');
    writeFileSync(file, 'hello');
    await expect(loadReleaseWeights(model, file)).rejects.toThrow(RevcolError);
    await writeSafetensors(path.join(tmp, 'empty.safetensors'), []);
    await expect(loadReleaseWeights(model, path.join(tmp, 'empty.safetensors'))).rejects.toThrow(/missing stem\.0\.weight/);
  });
});
