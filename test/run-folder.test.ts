import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ToyNet } from '../examples/gated-mlp-columns.js';
import { RevcolError } from '../src/core/errors.js';
import { evalContext, lossAndGradients } from '../src/index.js';
import { accuracy } from '../src/train/losses.js';
import { disposeCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import {
  dataPrint, LOCK_FILE, openRunFolder, type OpenRunOptions, probeWritable, RUN_FILE, type RunIdentity, RunStopped, withRunFolder,
} from '../src/train/run-folder.js';
import { flagName } from '../src/train/options.js';
import { train, type TrainOptions, type TrainTask } from '../src/train/trainer.js';
import { oneLineError } from './helpers/errors.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'revcol-run-folder-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let n = 0;
const fresh = () => path.join(root, `run-${++n}`);
// As the CLI opens it (messages name flags); `openLib` as the library does (they name options).
const open = (out: string, more: Partial<OpenRunOptions> = {}, logs: string[] = []) =>
  openRunFolder({ out, command: 'fine-tune', identity: {}, log: (l) => logs.push(l), optionName: flagName, ...more });
const openLib = (out: string, more: Partial<OpenRunOptions> = {}, logs: string[] = []) =>
  openRunFolder({ out, command: 'fine-tune', identity: {}, log: (l) => logs.push(l), ...more });

/** A folder as a finished run leaves it (the files need not be real checkpoints to count). */
function finishedRun(dir: string, identity: RunIdentity = {}, extra: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'best.safetensors'), 'model');
  writeFileSync(path.join(dir, 'last.ckpt.safetensors'), 'checkpoint');
  writeFileSync(path.join(dir, 'metrics.jsonl'), '{}\n');
  writeFileSync(path.join(dir, RUN_FILE), JSON.stringify({ format: 'revcol-run/1', command: 'fine-tune', status: 'finished', identity, started: 'x', pid: 1, ...extra }));
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('the lock', () => {
  it('a second run into a live run\'s folder is refused, naming the process; closing releases it', async () => {
    const out = fresh();
    const first = await open(out);
    expect(JSON.parse(readFileSync(path.join(out, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    const message = await oneLineError(() => open(out));
    expect(message).toMatch(new RegExp(`^${out} is in use by a live run \\(fine-tune, this process, started .*\\): wait for it to end, stop it, or choose another --out$`));
    // Another live process (the test runner's parent) holding it: named by its pid.
    await first.close();
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
    mkdirSync(out, { recursive: true }); // (closed without writing, the folder it made is gone)
    writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: os.hostname(), started: 'then', command: 'vision train' }));
    expect(await oneLineError(() => open(out))).toContain(`in use by a live run (vision train, process ${process.ppid}, started then)`);
    expect(JSON.parse(readFileSync(path.join(out, LOCK_FILE), 'utf8')).pid).toBe(process.ppid); // left alone
  });

  it('a lock left by a process that is gone is taken over, with a note', async () => {
    const out = fresh();
    mkdirSync(out);
    const pid = deadPid();
    writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid, host: os.hostname(), started: 'yesterday', command: 'pretrain' }));
    const logs: string[] = [];
    const folder = await open(out, {}, logs);
    expect(logs).toEqual([`note: ${out} was locked by a run that is no longer running (process ${pid}, started yesterday); taking the folder over`]);
    expect(JSON.parse(readFileSync(path.join(out, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    expect(readdirSync(out).filter((f) => f.includes('stale'))).toEqual([]);
    await folder.close();
    // An empty lock (a crash while writing it) is taken over too.
    writeFileSync(path.join(out, LOCK_FILE), '');
    await (await open(out, {}, logs)).close();
    expect(logs.at(-1)).toMatch(/an unreadable lock/);
  });

  it('a lock from another host cannot be judged: refused, saying which file to delete', async () => {
    const out = fresh();
    mkdirSync(out);
    writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', started: 's', command: 'fine-tune' }));
    expect(await oneLineError(() => open(out))).toBe(`${out} is locked by a run on host elsewhere (process 1, started s): if that run has ended, delete ${path.join(out, LOCK_FILE)}; or choose another --out`);
  });
});

describe('an earlier run in the folder', () => {
  it('is refused without --resume or --overwrite; --overwrite removes only run files, and only at begin()', async () => {
    const out = fresh();
    finishedRun(out);
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    mkdirSync(path.join(out, 'member-2'));
    writeFileSync(path.join(out, 'member-2', 'last.ckpt.safetensors'), 'member');
    mkdirSync(path.join(out, 'data'));
    writeFileSync(path.join(out, 'data', 'best.safetensors'), 'not a run: kept');

    expect(await oneLineError(() => open(out))).toBe(`${out} already holds a finished fine-tune run: add --resume to continue it (with more --epochs to train longer), --overwrite to replace it, or choose another --out`);
    expect(await oneLineError(() => open(out, { resume: true, overwrite: true }))).toMatch(/give --resume or --overwrite, not both/);

    const logs: string[] = [];
    const folder = await open(out, { overwrite: true }, logs);
    // Opened, not begun: a mistake found now leaves the earlier run whole.
    expect(existsSync(path.join(out, 'best.safetensors'))).toBe(true);
    await folder.begin();
    expect(logs).toEqual([`note: --overwrite: a finished fine-tune run in ${out} is replaced by this run`]);
    expect(readdirSync(out).sort()).toEqual([LOCK_FILE, 'data', 'notes.txt', RUN_FILE].sort());
    expect(readFileSync(path.join(out, 'data', 'best.safetensors'), 'utf8')).toBe('not a run: kept');
    expect(JSON.parse(readFileSync(path.join(out, RUN_FILE), 'utf8')).status).toBe('running');
    await folder.end('finished');
    await folder.close();
    expect(JSON.parse(readFileSync(path.join(out, RUN_FILE), 'utf8')).status).toBe('finished');
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
  });

  it('called from the library, the messages name its options (out, resume, overwrite), not flags', async () => {
    const out = fresh();
    finishedRun(out, { data: null, task: 'spam', preset: 'text-micro', config: null });
    expect(await oneLineError(() => openLib(out))).toBe(`${out} already holds a finished fine-tune run: add resume to continue it (with more epochs to train longer), overwrite to replace it, or choose another out`);
    expect(await oneLineError(() => openLib(out, { resume: true, overwrite: true }))).toBe(`give resume or overwrite, not both: resume continues the run in ${out}, overwrite replaces it`);
    const config = path.join(root, 'lib-config.json');
    writeFileSync(config, '{}');
    const printed = await dataPrint(config);
    expect(await oneLineError(() => openLib(out, { resume: true, identity: { task: 'spam', config: printed } })))
      .toBe(`cannot resume ${out}: its run was started with preset text-micro, not config ${config}; resume with the run's own settings (options left out are taken from the run), or start a new run with overwrite (or another out)`);
    const file = path.join(root, 'lib-a-file');
    writeFileSync(file, 'x');
    expect(await oneLineError(() => openLib(file))).toBe(`the output folder ${file} is a file: choose another out`);
    expect(await oneLineError(() => probeWritable(file))).toBe(`the output folder ${file} is a file: choose another out`);
    const logs: string[] = [];
    const folder = await openLib(out, { overwrite: true }, logs);
    await folder.begin();
    await folder.close();
    expect(logs).toEqual([`note: overwrite: a finished fine-tune run in ${out} is replaced by this run`]);
  });

  it('an unfinished run says so; a record without any model or checkpoint is no run', async () => {
    const out = fresh();
    finishedRun(out, {}, { status: 'stopped' });
    expect(await oneLineError(() => open(out))).toMatch(/already holds an unfinished fine-tune run: add --resume to continue it, --overwrite/);
    const failed = fresh();
    mkdirSync(failed);
    writeFileSync(path.join(failed, RUN_FILE), JSON.stringify({ format: 'revcol-run/1', command: 'pretrain', status: 'failed', identity: {}, started: 'x', pid: 1 }));
    await (await open(failed)).close();
  });

  it('temporary files of an interrupted save are removed on opening (the run\'s and its sub-runs\'), others kept', async () => {
    const out = fresh();
    mkdirSync(path.join(out, 'member-1', 'pretrained'), { recursive: true });
    const temps = [path.join(out, 'best.safetensors.4242.0badf00d.tmp'), path.join(out, 'member-1', 'pretrained', 'last.ckpt.safetensors.7.deadbeef.tmp')];
    temps.forEach((f) => writeFileSync(f, 'half'));
    writeFileSync(path.join(out, 'notes.tmp'), 'mine');
    const logs: string[] = [];
    await (await open(out, {}, logs)).close();
    expect(temps.map((f) => existsSync(f))).toEqual([false, false]);
    expect(existsSync(path.join(out, 'notes.tmp'))).toBe(true);
    expect(logs).toEqual([`note: removed 2 temporary files left in ${out} by an interrupted save`]);
  });
});

describe('--resume must match the run', () => {
  const data = path.join(root, 'data.csv');
  const other = path.join(root, 'other.csv');
  const config = path.join(root, 'config.json');

  beforeAll(() => {
    writeFileSync(data, 'text,label\na,b\n');
    writeFileSync(other, 'text,label\nc,d\n');
    writeFileSync(config, '{"preset": "text-micro"}');
  });

  it('refuses other data, an edited data file, another task, preset, config or tokenizer; accepts the same, and flags left out', async () => {
    const out = fresh();
    finishedRun(out, { data: await dataPrint(data), eval: null, task: null, preset: 'text-micro', config: null, tokenizer: 'builtin:bert-base-uncased' });
    const resume = async (identity: RunIdentity) => oneLineError(() => open(out, { resume: true, identity }));
    const same = { data: await dataPrint(data) };

    await (await open(out, { resume: true, identity: same })).close();
    await (await open(out, { resume: true, identity: { ...same, preset: 'text-micro' } })).close();
    // A moved copy is the same data.
    const copy = path.join(root, 'copy.csv');
    fs.copyFileSync(data, copy);
    await (await open(out, { resume: true, identity: { data: await dataPrint(copy) } })).close();

    expect(await resume({ data: await dataPrint(other) })).toBe(`cannot resume ${out}: its run's training data was ${data}, not ${other}; resume with the data the run started on, or start a new run with --overwrite (or another --out)`);
    expect(await resume({ ...same, task: 'spam' })).toMatch(/its run trained on .*data\.csv, not on task spam/);
    expect(await resume({ ...same, eval: await dataPrint(other) })).toMatch(/its run had no evaluation file \(it held out part of the training data\), and this command gives .*other\.csv/);
    expect(await resume({ ...same, preset: 'text-tiny' })).toMatch(/its run was started with preset text-micro, not text-tiny; resume with the run's own settings/);
    expect(await resume({ ...same, config: await dataPrint(config) })).toMatch(/its run was started with --preset text-micro, not --config .*config\.json/);
    expect(await resume({ ...same, tokenizer: 'bert-base-cased' })).toMatch(/started with tokenizer builtin:bert-base-uncased, not bert-base-cased/);
    await (await open(out, { resume: true, identity: { ...same, tokenizer: 'builtin:bert-base-uncased' } })).close();

    writeFileSync(data, 'text,label\na,b\nmore,rows\n');
    expect(await resume({ data: await dataPrint(data) })).toBe(`cannot resume ${out}: ${data} has changed since the run started (its contents differ from the training data the run trained on); resume with the data the run started on, or start a new run with --overwrite (or another --out)`);
  });

  it('an edited config file is refused too', async () => {
    const out = fresh();
    finishedRun(out, { data: null, task: 'spam', config: await dataPrint(config) });
    await (await open(out, { resume: true, identity: { task: 'spam', config: await dataPrint(config) } })).close();
    writeFileSync(config, '{"preset": "text-tiny"}');
    const edited = await dataPrint(config);
    expect(await oneLineError(() => open(out, { resume: true, identity: { task: 'spam', config: edited } }))).toMatch(/the config .*config\.json has changed since the run started/);
  });
});

describe('the write probe', () => {
  it('a path under a file, a file as the folder: one line, before anything is written', async () => {
    const file = path.join(root, 'a-file');
    writeFileSync(file, 'x');
    expect(await oneLineError(() => open(path.join(file, 'run')))).toBe(`cannot create the output folder ${path.join(file, 'run')}: a part of its path is a file, not a folder (ENOTDIR); choose another --out`);
    expect(await oneLineError(() => open(file))).toBe(`the output folder ${file} is a file: choose another --out`);
    expect(await oneLineError(() => probeWritable(path.join(file, 'run')))).toMatch(/ENOTDIR/);
  });

  it('a read-only or full file system (injected): one line naming the folder; a folder it made is removed again', async () => {
    for (const [code, words] of [['EROFS', 'the file system is read-only'], ['EACCES', 'permission denied'], ['ENOSPC', 'no space left on the device']]) {
      const out = path.join(fresh(), 'deeper');
      const spy = vi.spyOn(fs.promises, 'writeFile').mockRejectedValue(Object.assign(new Error(`${code}: injected`), { code, syscall: 'open', path: path.join(out, LOCK_FILE) }));
      expect(await oneLineError(() => open(out))).toBe(`cannot write in the output folder ${out}: ${words} (${code}); choose another --out, or make it writable`);
      expect(existsSync(path.dirname(out))).toBe(false);
      expect(await oneLineError(() => probeWritable(out))).toContain(`(${code})`);
      spy.mockRestore();
    }
  });

  it('withRunFolder records how the run ended and always releases the lock', async () => {
    const out = fresh();
    await expect(withRunFolder({ out, command: 'pretrain', identity: {}, log: () => {} }, async (folder) => {
      await folder.begin();
      throw new RunStopped('stopped (Ctrl-C) in epoch 1', true);
    })).rejects.toMatchObject({ runDir: out, resumable: true });
    expect(JSON.parse(readFileSync(path.join(out, RUN_FILE), 'utf8')).status).toBe('stopped');
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
    // Failing before begin(): the folder it created is gone again.
    const never = fresh();
    await expect(withRunFolder({ out: never, command: 'pretrain', identity: {}, log: () => {} }, async () => { throw new RevcolError('bad data'); })).rejects.toThrow('bad data');
    expect(existsSync(never)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// The trainer: stopping inside an epoch, resuming exactly; a failed save is one line.

interface Batch { x: tf.Tensor2D; y: tf.Tensor2D }
const FEATURES = 5;
const CLASSES = 3;

function toyTask(net: ToyNet): TrainTask<Batch> & { dispose(): void } {
  const make = (count: number, seed: number) => tf.tidy(() => {
    const x = tf.randomNormal([count, FEATURES], 0, 1, 'float32', seed) as tf.Tensor2D;
    const labels = tf.argMax(tf.matMul(x, tf.randomNormal([FEATURES, CLASSES], 0, 1, 'float32', 4242)), 1) as tf.Tensor1D;
    return { x: tf.keep(x), labels: tf.keep(labels) };
  });
  const trainSet = make(48, 1);
  const testSet = make(24, 2);
  return {
    model: net,
    trainSize: 48,
    *trainBatches(_epoch, seed) {
      const order = Array.from({ length: 48 }, (_, i) => i).sort((a, b) => ((a * 7919 + seed) % 97) - ((b * 7919 + seed) % 97) || a - b);
      for (let i = 0; i < 48; i += 8) {
        const idx = tf.tensor1d(order.slice(i, i + 8), 'int32');
        const batch = tf.tidy(() => ({ x: tf.gather(trainSet.x, idx) as tf.Tensor2D, y: tf.oneHot(tf.gather(trainSet.labels, idx), CLASSES) as tf.Tensor2D }));
        idx.dispose();
        yield batch;
      }
    },
    batchSize: (b) => b.x.shape[0],
    lossAndGradients: (b, step) => lossAndGradients(net.columns, net.stem(), net.headsFor(b.y), b.x, { mode: 'reversible', training: true, seed: 7 + step }),
    disposeBatch: (b) => tf.dispose([b.x, b.y]),
    async evaluate() {
      const logits = tf.tidy(() => {
        const [outs] = net.columns.forward(net.stem().forward(testSet.x, evalContext()), { training: false, keep: 'last' });
        const l = net.heads[net.heads.length - 1]!.forward(outs[net.columns.levels - 1]!);
        outs.forEach((t) => t.dispose());
        return l;
      });
      const acc = accuracy(logits, testSet.labels);
      logits.dispose();
      return { accuracy: acc };
    },
    dispose: () => tf.dispose([trainSet.x, trainSet.labels, testSet.x, testSet.labels]),
  };
}

const weights = (net: ToyNet) => net.namedParameters().map(([name, v]) => [name, Array.from(v.dataSync())] as const);
const options = (outDir: string, more: Partial<TrainOptions> = {}): TrainOptions => ({
  outDir, epochs: 2, lr: 3e-3, warmupEpochs: 0.5, clipNorm: 1, seed: 3, progress: false, meta: { family: 'toy' }, log: () => {}, ema: 0.9, ...more,
});

describe('train() with a stop signal', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('stops after the step in progress with a checkpoint; a resume continues inside the epoch exactly', async () => {
    const straightNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 9);
    const straight = toyTask(straightNet);
    const straightSummary = await train(straight, options(fresh()));

    const out = fresh();
    const stoppedNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 9);
    const stopping = toyTask(stoppedNet);
    const controller = new AbortController();
    const tensors = tf.memory().numTensors;
    // Asked to stop during the 8th step (epoch 2, its 2nd batch of 6).
    const err = await train(stopping, options(out, { signal: controller.signal, onStep: ({ epoch, seen }) => { if (epoch === 2 && seen === 16) controller.abort('Ctrl-C'); } })).catch((e) => e);
    expect(err).toBeInstanceOf(RunStopped);
    expect(err.resumable).toBe(true);
    expect(err.message).toBe(`stopped (Ctrl-C) in epoch 2 of 2 at step 8 (16 of 48 samples); checkpoint saved: ${path.join(out, 'last.ckpt.safetensors')}`);
    expect(tf.memory().numTensors).toBe(tensors);
    const ckpt = await loadCheckpoint(path.join(out, 'last.ckpt.safetensors'));
    expect([ckpt.epoch, ckpt.step, ckpt.partial?.batches, ckpt.partial?.seen]).toEqual([1, 8, 2, 16]);
    disposeCheckpoint(ckpt);

    const resumedNet = new ToyNet(FEATURES, [6, 8], 2, CLASSES, 1234);
    const resumed = toyTask(resumedNet);
    const lines: string[] = [];
    const summary = await train(resumed, options(out, { resume: true, log: (l) => lines.push(l) }));
    expect(lines[0]).toBe(`resuming ${out} in epoch 2, after 16 of its 48 samples (step 8)`);
    expect(summary.epochs.map((r) => [r.epoch, r.step, r.loss])).toEqual(straightSummary.epochs.map((r) => [r.epoch, r.step, r.loss]));
    expect(weights(resumedNet)).toEqual(weights(straightNet));
    const last = await loadCheckpoint(path.join(out, 'last.ckpt.safetensors'));
    expect(last.partial).toBeUndefined();
    disposeCheckpoint(last);
    [straight, stopping, resumed].forEach((t) => t.dispose());
    [straightNet, stoppedNet, resumedNet].forEach((m) => m.dispose());
  });

  it('stopped before the first step: nothing saved, not resumable', async () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 2);
    const task = toyTask(net);
    const controller = new AbortController();
    controller.abort('Ctrl-C');
    const err = await train(task, options(fresh(), { signal: controller.signal })).catch((e) => e);
    expect(err).toBeInstanceOf(RunStopped);
    expect([err.resumable, err.message]).toEqual([false, 'stopped (Ctrl-C) before training began: nothing was saved']);
    task.dispose();
    net.dispose();
  });

  it('a save that fails for want of space is one line naming the file and --resume', async () => {
    const net = new ToyNet(FEATURES, [6], 1, CLASSES, 2);
    const task = toyTask(net);
    const out = fresh();
    const realOpen = fsp.open;
    vi.spyOn(fs.promises, 'open').mockImplementation(async (file, ...rest) => {
      if (String(file).includes('last.ckpt.safetensors')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', syscall: 'open', path: String(file) });
      return realOpen(file, ...(rest as [])) as never;
    });
    const message = await oneLineError(() => train(task, options(out, { ema: undefined })));
    expect(message).toBe(`cannot write ${path.join(out, 'last.ckpt.safetensors')}: no space left on the device (ENOSPC); free some space or choose another place; the last checkpoint saved is whole: continue from it with --resume`);
    task.dispose();
    net.dispose();
  });
});
