/**
 * The shared option resolution of text runs (src/text/run-options.ts): precedence of the
 * user's options, the task's recipe and the recipe's defaults; checks; and errors that name
 * options as the library spells them, or as the CLI's flags when it passes flagName.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeTopics } from './helpers/text-data.js';
import { useBackend } from '../src/backends/index.js';
import { flagName, optionAsIs } from '../src/train/options.js';
import { fineTune } from '../src/text/fine-tune.js';
import { getPreset } from '../src/text/presets.js';
import { pretrain } from '../src/text/pretrain.js';
import {
  fromNameTable, nameTable, resolveArchitecture, resolveMaxLength, resolveTrainingSettings, type TrainingDefaults,
} from '../src/text/run-options.js';
import { fineTuneTokens } from '../src/text/token-classification.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-run-options-'));
const trainFile = path.join(work, 'topics.csv');

beforeAll(async () => {
  await useBackend('cpu');
  writeTopics(trainFile, 30, 1);
});

const defaults: TrainingDefaults = { batchSize: 32, epochs: (batch) => 640 / batch, lr: 1e-3, keep: 'best' };

describe('resolveTrainingSettings', () => {
  it('takes the option, else the task\'s, else the default', () => {
    expect(resolveTrainingSettings({}, {}, defaults, optionAsIs)).toEqual({
      epochs: 20, batchSize: 32, lr: 1e-3, weightDecay: 0.01, warmupEpochs: 1, labelSmoothing: 0, ema: 0, keep: 'best',
    });
    const task = { batchSize: 16, epochs: 5, lr: 2e-3, ema: 0.99, labelSmoothing: 0.1 };
    expect(resolveTrainingSettings({}, task, defaults, optionAsIs)).toMatchObject({ batchSize: 16, epochs: 5, lr: 2e-3, ema: 0.99, labelSmoothing: 0.1, warmupEpochs: 0.5 });
    // Default epochs follow the batch size in force (the task's here).
    expect(resolveTrainingSettings({}, { batchSize: 64 }, defaults, optionAsIs).epochs).toBe(10);
    expect(resolveTrainingSettings({ batchSize: 8, lr: 5e-4, keep: 'last', ema: 0 }, task, defaults, optionAsIs)).toMatchObject({ batchSize: 8, epochs: 5, lr: 5e-4, keep: 'last', ema: 0 });
  });

  it('refuses bad values in one line naming the option, as the library or the CLI spells it', () => {
    const bad = (o: object, name = optionAsIs) => () => resolveTrainingSettings(o, {}, defaults, name);
    expect(bad({ batchSize: 0 })).toThrow('batchSize must be a whole number ≥ 1, got 0');
    expect(bad({ batchSize: 0 }, flagName)).toThrow('--batch-size must be a whole number ≥ 1, got 0');
    expect(bad({ epochs: 1.5 }, flagName)).toThrow('--epochs must be a whole number ≥ 1, got 1.5');
    expect(bad({ lr: -1 })).toThrow('lr must be a number > 0, got -1');
    expect(bad({ labelSmoothing: 1 }, flagName)).toThrow('--label-smoothing must be in [0, 1), got 1');
    expect(bad({ ema: 1 })).toThrow('ema must be in [0, 1) (0: no weight average), got 1');
    expect(bad({ keep: 'first' }, flagName)).toThrow('--keep must be best or last, got first');
  });
});

describe('resolveArchitecture and resolveMaxLength', () => {
  const sizes = { dataSize: 100, vocabSize: 500, numLabels: 3 };

  it('applies a task\'s preset changes unless the user names a preset; an earlier model\'s config wins', async () => {
    const task = await resolveArchitecture({ ...sizes, taskPreset: 'text-micro', taskPresetChanges: { dropout: 0.3 } });
    expect(task.preset).toBe('text-micro');
    expect(task.config).toMatchObject({ ...getPreset('text-micro'), dropout: 0.3, vocabSize: 500, numLabels: 3 });
    expect(task.taskChanges).toEqual({ dropout: 0.3 });
    const mine = await resolveArchitecture({ ...sizes, preset: 'text-tiny', taskPreset: 'text-micro', taskPresetChanges: { dropout: 0.3 } });
    expect(mine.config.dropout).toBe(getPreset('text-tiny').dropout);
    expect(mine.taskChanges).toBeNull();
    const base = await resolveArchitecture({ ...sizes, preset: 'text-tiny', base: { config: { ...task.config, numLabels: 2 }, preset: 'text-micro' }, mode: 'plain' });
    expect(base).toMatchObject({ preset: 'text-micro', fromBase: true });
    expect(base.config).toMatchObject({ numLabels: 3, reversible: false, hidden: getPreset('text-micro').hidden });
  });

  it('sizes the positions to the max length, and says in options or flags when it does not fit', async () => {
    const arch = await resolveArchitecture({ ...sizes, preset: 'text-micro' });
    expect(resolveMaxLength(arch, { min: 2, choose: () => 48 }, optionAsIs)).toBe(48);
    expect(arch.config.maxLength).toBe(48);
    const fresh = () => resolveArchitecture({ ...sizes, preset: 'text-micro' });
    const cap = getPreset('text-micro').maxLength;
    expect(resolveMaxLength(await fresh(), { given: 64, task: 32, min: 2, choose: () => 16 }, optionAsIs)).toBe(64);
    expect(resolveMaxLength(await fresh(), { task: 32, min: 2, choose: () => 16 }, optionAsIs)).toBe(32);
    const tooLong = async (name = optionAsIs) => resolveMaxLength(await fresh(), { given: cap + 1, min: 2, choose: () => 16 }, name);
    await expect(tooLong()).rejects.toThrow(`maxLength ${cap + 1} is longer than the ${cap} positions of preset text-micro: use ${cap} or less, or a config with "maxLength": ${cap + 1}`);
    await expect(tooLong(flagName)).rejects.toThrow(`--max-length ${cap + 1} is longer than the ${cap} positions of preset text-micro: use ${cap} or less, or a --config with "maxLength": ${cap + 1}`);
    await expect(async () => resolveMaxLength(await fresh(), { task: cap * 2, taskName: 'spam', min: 2, choose: () => 16 }, flagName)).rejects.toThrow(`task spam's maxLength ${cap * 2} is longer`);
    await expect(async () => resolveMaxLength(await fresh(), { given: 1, min: 2, choose: () => 16 }, flagName)).rejects.toThrow('--max-length must be a whole number ≥ 2, got 1');
    const base = await resolveArchitecture({ ...sizes, base: { config: { ...arch.config } } });
    expect(() => resolveMaxLength(base, { given: 64, min: 2, choose: () => 16 }, optionAsIs)).toThrow('maxLength 64 is longer than the earlier model\'s 48 positions: use 48 or less');
  });
});

describe('the recipes share the checks', () => {
  const quiet = { progress: false, log: () => {} };

  it('fineTune, fineTuneTokens and pretrain name options; with flagName, flags', async () => {
    const out = path.join(work, 'never');
    await expect(fineTune({ train: trainFile, out, maxLength: 1, ...quiet })).rejects.toThrow(/^maxLength must be a whole number ≥ 2, got 1$/);
    await expect(fineTune({ train: trainFile, out, maxLength: 1, optionName: flagName, ...quiet })).rejects.toThrow(/^--max-length must be a whole number ≥ 2, got 1$/);
    await expect(fineTune({ train: trainFile, out, batchSize: 0, optionName: flagName, ...quiet })).rejects.toThrow(/^--batch-size must be a whole number ≥ 1, got 0$/);
    await expect(fineTune({ train: trainFile, out, preset: 'text-micro', config: 'x.json', ...quiet })).rejects.toThrow(/^give either preset or config, not both/);
    await expect(fineTune({ train: trainFile, out: '', ...quiet })).rejects.toThrow(/^fine-tuning needs an output folder \(out\)$/);
    await expect(pretrain({ train: trainFile, out, batchSize: 0, optionName: flagName, ...quiet })).rejects.toThrow(/^--batch-size must be a whole number ≥ 1, got 0$/);
    await expect(pretrain({ train: trainFile, task: 'spam', out, ...quiet })).rejects.toThrow(/^give one source of data \(train or task\), not 2$/);
    await expect(fineTuneTokens({ out, ...quiet })).rejects.toThrow(/^token fine-tuning needs training data: a CoNLL or JSONL file of tagged words \(train\), or a task \(task: pos-brown\)$/);
    await expect(fineTuneTokens({ train: trainFile, out, from: work, preset: 'text-micro', optionName: flagName, ...quiet })).rejects.toThrow(/^--from takes the architecture of the earlier model: leave out --preset and --config$/);
  });

  it('the data readers name the column options too', async () => {
    const { readTextExamples } = await import('../src/data/text.js');
    await expect(readTextExamples(trainFile, { textColumn: 'body' })).rejects.toThrow(/has no text column "body" \(columns found: "text", "label"\); name it with textColumn$/);
    await expect(readTextExamples(trainFile, { labelColumn: 'topic', optionName: flagName })).rejects.toThrow(/has no label column "topic" .*; name it with --label-column$/);
    await expect(fineTune({ train: trainFile, out: path.join(work, 'never'), textColumn: 'body', optionName: flagName, ...quiet })).rejects.toThrow(/name it with --text-column$/);
  });

  it('a naming crosses to another process as a table', () => {
    const table = nameTable(flagName)!;
    expect(table.maxLength).toBe('--max-length');
    expect(fromNameTable(table)!('pretrainEpochs')).toBe('--pretrain-epochs');
    expect(fromNameTable(table)!('somethingElse')).toBe('somethingElse');
    expect(nameTable(undefined)).toBeUndefined();
  });
});
