import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';
import { useBackend } from '../src/backends/index.js';
import { loadModelDir } from '../src/train/checkpoint.js';
import { TextClassifier } from '../src/text/classifier.js';
import { fineTune } from '../src/text/fine-tune.js';
import { maskingFor, maskTokens, pretrain } from '../src/text/pretrain.js';
import { TextTokenizer } from '../src/text/tokenizer.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-pretrain-'));
const topics = path.join(work, 'topics.csv');

beforeAll(async () => {
  await useBackend('wasm');
  writeTopics(topics, 80, 3);
});

describe('maskTokens', () => {
  const special = new Set([0, 101, 102]);
  // Rows of [CLS] w w … [SEP] then padding; word ids 1000..1999.
  function rows(n: number, width: number, real: number) {
    const ids = new Int32Array(n * width);
    const mask = new Int32Array(n * width);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < real; c++) {
        ids[r * width + c] = c === 0 ? 101 : c === real - 1 ? 102 : 1000 + ((r * 31 + c * 7) % 1000);
        mask[r * width + c] = 1;
      }
    }
    return { ids, mask };
  }
  const options = { fraction: 0.15, maskTokenId: 103, vocabSize: 30522, specialTokenIds: special, seed: 5 };

  it('chooses about 15% of the real, non-special tokens, BERT\'s 80/10/10 way, and records what was there', () => {
    const { ids, mask } = rows(200, 64, 50);
    const m = maskTokens(ids, mask, options);
    const eligible = 200 * 48;
    expect(m.positions.length / eligible).toBeGreaterThan(0.13);
    expect(m.positions.length / eligible).toBeLessThan(0.17);
    let masked = 0;
    let kept = 0;
    m.positions.forEach((p, k) => {
      expect(mask[p]).toBe(1);
      expect(special.has(ids[p]!)).toBe(false);
      expect(m.targets[k]).toBe(ids[p]);
      if (m.ids[p] === 103) masked += 1;
      else if (m.ids[p] === ids[p]) kept += 1;
    });
    expect(masked / m.positions.length).toBeGreaterThan(0.75);
    expect(masked / m.positions.length).toBeLessThan(0.85);
    expect(kept / m.positions.length).toBeGreaterThan(0.06);
    expect(kept / m.positions.length).toBeLessThan(0.16);
    // Nothing outside the chosen positions changes.
    const chosen = new Set(m.positions);
    for (let i = 0; i < ids.length; i++) if (!chosen.has(i)) expect(m.ids[i]).toBe(ids[i]);
    // Seeded: the same seed gives the same masking, another seed another.
    expect(maskTokens(ids, mask, options)).toEqual(m);
    expect(maskTokens(ids, mask, { ...options, seed: 6 }).positions).not.toEqual(m.positions);
  });

  it('always chooses at least one token, and none when only special tokens are there', () => {
    const { ids, mask } = rows(1, 8, 3);
    const m = maskTokens(ids, mask, { ...options, fraction: 1e-9 });
    expect(Array.from(m.positions)).toEqual([1]);
    const only = rows(1, 8, 2);
    expect(maskTokens(only.ids, only.mask, options).positions.length).toBe(0);
  });
});

describe('pretrain', () => {
  it('learns which words fill the masks, keeps numTensors flat over steps, and saves a model fine-tune starts from', async () => {
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    const out = path.join(work, 'lm');
    const r = await pretrain({
      train: topics, out, preset: 'text-micro', epochs: 6, lr: 1e-2, maxLength: 24, progress: false, log: () => {},
      onStep: () => counts.push(tf.memory().numTensors),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(counts[counts.length - 1]).toBe(counts[1]);
    const epochs = r.summary.epochs;
    expect(epochs).toHaveLength(6);
    // The topic texts reuse a few dozen words: the masked-token loss falls far below ln(30522) ≈ 10.3.
    expect(epochs[5]!.maskedLoss).toBeLessThan(epochs[0]!.maskedLoss - 2);
    expect(r.trainTexts + r.heldOutTexts).toBe(80);

    // The checkpoint: embeddings and columns under a classifier's names, plus the masked-LM head.
    const saved = await loadModelDir(out);
    const names = [...saved.tensors.keys()];
    saved.tensors.forEach((t) => t.dispose());
    expect(saved.meta.objective).toBe('masked-lm');
    expect(names.some((n) => n.startsWith('embeddings.'))).toBe(true);
    expect(names.some((n) => n.startsWith('columns.'))).toBe(true);
    expect(names.some((n) => n.startsWith('mlm.'))).toBe(true);
    expect(names.some((n) => n.startsWith('head.'))).toBe(false);

    // It classifies nothing until fine-tuned: a one-line error that says so.
    await expect(TextClassifier.load(out)).rejects.toThrow(/pre-trained \(masked-LM\) model with no classifier: fine-tune it first/);

    // fine-tune --from it: the embedding carries over (a learning rate so small that the weights stay put).
    const ft = path.join(work, 'from-lm');
    await fineTune({ train: topics, from: out, out: ft, epochs: 1, lr: 1e-12, weightDecay: 0, progress: false, log: () => {} });
    const a = await loadModelDir(out);
    const b = await loadModelDir(ft);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a.tensors.get('embeddings.tokens')!, b.tensors.get('embeddings.tokens')!))).dataSync()[0]);
    [a, b].forEach((m) => m.tensors.forEach((t) => t.dispose()));
    expect(diff).toBeLessThan(1e-6);
  });

  it('fine-tune --pretrain-epochs pre-trains on the training texts only, then fine-tunes from that', async () => {
    const out = path.join(work, 'ft-pre');
    const lines: string[] = [];
    const r = await fineTune({ train: topics, out, preset: 'text-micro', epochs: 2, pretrainEpochs: 2, maxLength: 24, progress: false, log: (l) => lines.push(l) });
    expect(r.from?.dir).toBe(path.join(out, 'pretrained'));
    expect(existsSync(path.join(out, 'pretrained', 'best.safetensors'))).toBe(true);
    // 80 texts, 10% held out for evaluation: 72 left, of which pre-training holds out 5% for its own score.
    expect(lines.some((l) => /pre-training \(masked LM, 2 epochs\) on the 72 training texts/.test(l))).toBe(true);
    const pre = await loadModelDir(path.join(out, 'pretrained'));
    pre.tensors.forEach((t) => t.dispose());
    expect(pre.meta.objective).toBe('masked-lm');
    const classifier = await TextClassifier.load(out);
    expect(classifier.meta.objective).toBeUndefined();
    classifier.dispose();
    // --resume continues the fine-tuning, without pre-training again.
    const resumed: string[] = [];
    const again = await fineTune({ train: topics, out, preset: 'text-micro', epochs: 3, pretrainEpochs: 2, maxLength: 24, resume: true, progress: false, log: (l) => resumed.push(l) });
    expect(resumed.some((l) => l.startsWith(`resuming ${out} after epoch 2`))).toBe(true);
    expect(resumed.some((l) => l.startsWith('pre-training'))).toBe(false);
    expect(again.summary.epochs).toHaveLength(3);
    await expect(fineTune({ train: topics, out: path.join(work, 'bad'), from: out, pretrainEpochs: 2, progress: false, log: () => {} }))
      .rejects.toThrow(/leave out pretrainEpochs/);
  });

  it('needs a tokenizer with a mask token, and texts', async () => {
    const tokenizer = await TextTokenizer.load();
    expect(tokenizer.maskTokenId).toBe(103); // BERT uncased's [MASK]
    expect([...tokenizer.specialTokenIds].sort((x, y) => x - y)).toEqual([0, 100, 101, 102, 103]);
    await expect(pretrain({ texts: ['only one'], out: path.join(work, 'one'), progress: false, log: () => {} })).rejects.toThrow(/at least 2 texts/);
    expect(maskingFor(tokenizer, 0.2, 'x')).toEqual({ fraction: 0.2, maskTokenId: 103, vocabSize: 30522, specialTokenIds: tokenizer.specialTokenIds });
    // A tokenizer without a mask token: a one-line error that says what needs it and what to do.
    const noMask = Object.assign(Object.create(TextTokenizer.prototype) as TextTokenizer, { maskTokenId: null, source: 'my-tokenizer' });
    expect(() => maskingFor(noMask, 0.15, '--input-masking', ' or use --input-masking 0'))
      .toThrow('tokenizer my-tokenizer has no mask token, which --input-masking needs; set mask_token in its tokenizer_config.json or use --input-masking 0');
  });
});

describe('revcol pretrain (CLI)', () => {
  it('pre-trains from a file without labels and says how to fine-tune from it', async () => {
    const file = path.join(work, 'unlabelled.csv');
    writeFileSync(file, `body\n${Array.from({ length: 30 }, (_, i) => `"some mail number ${i} about the weekly meeting"`).join('\n')}\n`);
    const out = path.join(work, 'cli-lm');
    const r = await runCliCaptured(['pretrain', '--train', file, '--text-column', 'body', '--out', out, '--epochs', '1', '--preset', 'text-micro', '--no-progress']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pre-trained on \d+ texts for 1 epochs/);
    expect(r.stdout).toContain(`revcol fine-tune --from ${out}`);
    const bad = await runCliCaptured(['pretrain', '--train', file, '--out', out, '--overwrite']);
    expectOneLineError(bad, /no text column "text" \(columns found: "body"\)/);
    expectOneLineError(await runCliCaptured(['predict', '--model', out, 'hello']), /fine-tune it first/);
  });
});
