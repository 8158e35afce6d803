import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import cliProgress from 'cli-progress';
import { fail, RevcolError } from '../core/errors.js';
import { RunStopped } from '../train/run-folder.js';
import type { TextExamples } from '../data/text.js';
import type { StepProgress } from '../train/trainer.js';
import type { TrainSummary } from '../train/trainer.js';
import { TextClassifier } from './classifier.js';
import type { OptionName } from '../train/options.js';
import { PRETRAINED_DIR } from './model-meta.js';
import { checkWhole, namer, nameTable } from './run-options.js';
import { writeEnsembleManifest } from './ensemble-manifest.js';
import { TextTokenizer } from './tokenizer.js';

/**
 * Seed ensembles: N models that differ only in their seed (initialisation, batch order,
 * dropout), each trained as a plain fine-tune into DIR/member-k, and one manifest that makes
 * DIR load as their average. On the cpu and wasm backends, which use one core each, members
 * train side by side in child processes.
 */

/** Messages from a member's process. */
type WorkerMessage =
  | { type: 'log'; line: string }
  | ({ type: 'step' } & StepProgress)
  | { type: 'done'; result: MemberResult }
  | { type: 'error'; message: string; stack?: string; user: boolean; stopped?: boolean };

type Log = (line: string) => void;

/**
 * What the ensemble needs of a member's options and result. The members are trained by the
 * fine-tune passed in (fine-tune.ts hands over its own), so this module imports no recipe and
 * fine-tune.ts can load it without an import cycle.
 */
export interface MemberOptions {
  out: string;
  seed?: number;
  splitSeed?: number;
  resume?: boolean;
  overwrite?: boolean;
  nestedIn?: string;
  ensemble?: number;
  parallel?: number;
  backend?: string;
  progress?: boolean;
  signal?: AbortSignal;
  log?: Log;
  onStep?: (p: StepProgress) => void;
  optionName?: OptionName;
}
export interface MemberResult {
  outDir: string;
  summary: TrainSummary;
  labels: string[];
  maxLength: number;
  tokenizer: string;
}
/** What an ensemble's result adds to its first member's. */
export interface EnsembleSummary<R> {
  members: R[];
  accuracy: number;
  macroF1: number;
  seeds: number[];
}
type TrainOne<O, R> = (options: O) => Promise<R>;

/** Member k (from 1) trains with seed + k - 1, so member 1 is the single model of the same seed. */
export function memberSeeds(seed: number, members: number): number[] {
  return Array.from({ length: members }, (_, k) => seed + k);
}

/** The backend's name as --backend spells it when it computes on one core, so that members can train side by side. */
function oneCoreBackend(): 'wasm' | 'cpu' | null {
  const name = tf.getBackend();
  return name === 'wasm' || name === 'cpu' ? name : null;
}

/**
 * Trains the members into OUT/member-k and writes the manifest. `begin` is called once the
 * settings are checked, right before the members start writing (see RunFolder.begin).
 */
export async function fineTuneEnsemble<O extends MemberOptions, R extends MemberResult>(
  options: O & { log: Log },
  members: number,
  evalSet: TextExamples,
  trainOne: TrainOne<O, R>,
  begin: () => Promise<void> = async () => {},
): Promise<R & { ensemble: EnsembleSummary<R> }> {
  const { log } = options;
  const started = performance.now();
  const seed = options.seed ?? 0;
  const backend = oneCoreBackend();
  const parallel = options.parallel ?? (backend ? Math.min(members, os.availableParallelism()) : 1);
  const name = namer(options);
  checkWhole(parallel, 1, 'parallel', name);
  if (parallel > 1 && !backend) {
    fail(`${name('parallel')} trains members in processes side by side, which needs the cpu or wasm backend (this run uses ${tf.getBackend()}): leave out ${name('parallel')}, and the members train one after another`);
  }
  const atOnce = Math.min(parallel, members);
  const seeds = memberSeeds(seed, members);
  const names = seeds.map((_, k) => `member-${k + 1}`);
  log(`ensemble of ${members} models (seeds ${seeds.join(', ')}), ${atOnce > 1 ? `${atOnce} at a time, each in its own process` : 'one after another'}`);

  const memberOptions = names.map((name, k): O => {
    // The signal stays here (the parent stops its members); members write inside the guarded folder.
    const { log: _log, onStep: _onStep, parallel: _parallel, signal: _signal, overwrite: _overwrite, ...rest } = options;
    const out = path.join(options.out, name);
    return {
      ...rest,
      nestedIn: options.nestedIn ?? options.out,
      ensemble: 1,
      seed: seeds[k],
      splitSeed: options.splitSeed ?? seed,
      out,
      // A member not started yet starts afresh; one already done has nothing left to do; one
      // stopped while pre-training (--pretrain-epochs) continues its pre-training.
      resume: Boolean(options.resume) && [out, path.join(out, PRETRAINED_DIR)].some((dir) => existsSync(path.join(dir, 'last.ckpt.safetensors'))),
      ...(backend ? { backend } : {}),
      // Members side by side already take the cores: no worker threads of their own by default.
      ...(atOnce > 1 && (rest as { workers?: number }).workers === undefined ? { workers: 1 } : {}),
    } as O;
  });
  await begin();
  const results = atOnce > 1
    ? await trainInProcesses<O, R>(memberOptions, atOnce, log, options.progress !== false, options.signal)
    : await trainInTurn(memberOptions, trainOne, log, options.onStep, options.signal);

  // The ensemble's folder: the tokenizer (shared by all members), the manifest, its own score.
  const first = results[0]!;
  const tokenizer = await TextTokenizer.fromFolder(path.resolve(memberOptions[0]!.out), first.tokenizer);
  await tokenizer.save(options.out);
  const manifest = { members: names, seeds, labels: first.labels, maxLength: first.maxLength };
  await writeEnsembleManifest(options.out, manifest);
  const classifier = await TextClassifier.load(options.out);
  let report;
  try {
    report = await classifier.evaluateAsync(evalSet, 'the evaluation data');
  } finally {
    classifier.dispose();
  }
  await writeEnsembleManifest(options.out, { ...manifest, eval: { accuracy: report.accuracy, macroF1: report.macroF1, examples: report.examples } });
  const seconds = (performance.now() - started) / 1000;
  log(`ensemble of ${members}: accuracy ${(report.accuracy * 100).toFixed(2)}%, macro-F1 ${report.macroF1.toFixed(4)} on ${report.examples} evaluation texts (members: ${results.map((r) => `${(r.summary.bestAccuracy * 100).toFixed(2)}%`).join(', ')})`);
  return {
    ...first,
    outDir: options.out,
    summary: { ...first.summary, outDir: options.out, seconds },
    ensemble: { members: results, accuracy: report.accuracy, macroF1: report.macroF1, seeds },
  };
}

async function trainInTurn<O extends MemberOptions, R>(list: O[], trainOne: TrainOne<O, R>, log: Log, onStep?: (p: StepProgress) => void, signal?: AbortSignal): Promise<R[]> {
  const results: R[] = [];
  for (const [k, options] of list.entries()) {
    const prefix = `member ${k + 1}/${list.length}: `;
    try {
      results.push(await trainOne({ ...options, log: (line: string) => log(prefix + line), ...(onStep ? { onStep } : {}), ...(signal ? { signal } : {}) }));
    } catch (err) {
      if (err instanceof RunStopped) throw new RunStopped(`member ${k + 1} of ${list.length} ${err.message}`, true);
      throw err;
    }
  }
  return results;
}

/**
 * The member process's script and its arguments. Compiled, it is the .js file beside this one;
 * from the TypeScript sources (tests, benches), a small .mjs starter registers tsx first.
 */
function workerCommand(): { script: string; args: string[] } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { script: fileURLToPath(new URL('./ensemble-worker.js', here)), args: [] };
  return { script: fileURLToPath(new URL('./ensemble-worker-tsx.mjs', here)), args: [new URL('./ensemble-worker.ts', here).href] };
}

/**
 * Trains the members `processes` at a time; the first failure stops the others and is thrown.
 * When `signal` aborts, each running member is asked to stop after its step (it saves a
 * checkpoint), no other member starts, and once they have all stopped RunStopped is thrown.
 */
function trainInProcesses<O extends MemberOptions, R>(list: O[], processes: number, log: Log, progress: boolean, signal?: AbortSignal): Promise<R[]> {
  const { script, args } = workerCommand();
  const results: R[] = new Array(list.length);
  const bars = progress && process.stderr.isTTY
    ? new cliProgress.MultiBar({
        stream: process.stderr,
        format: 'member {member} epoch {epoch}/{epochs} {bar} {percentage}% | loss {loss} | {speed} samples/s | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      }, cliProgress.Presets.shades_classic)
    : null;
  const say = (line: string) => (bars ? bars.log(`${line}\n`) : log(line));
  const running = new Set<ChildProcess>();
  let next = 0;
  let finished = 0;
  let failed = false;
  // Ctrl-C: members asked to stop, and what each said when it stopped.
  let stopping = false;
  const stops: string[] = [];
  return new Promise<R[]>((resolve, reject) => {
    const stopAll = (err: Error) => {
      if (failed) return;
      failed = true;
      bars?.stop();
      signal?.removeEventListener('abort', askToStop);
      for (const child of running) child.kill();
      reject(err);
    };
    const settleStopped = () => {
      if (failed || running.size > 0) return;
      failed = true;
      bars?.stop();
      const why = typeof signal?.reason === 'string' ? ` (${signal.reason})` : '';
      const said = stops.length ? `: ${stops.join('; ')}` : ` before any member started`;
      reject(new RunStopped(`stopped${why}${said}`, stops.length > 0 || finished > 0));
    };
    function askToStop() {
      if (stopping) return;
      stopping = true;
      for (const child of running) child.send({ type: 'stop', reason: signal?.reason });
      settleStopped();
    }
    signal?.addEventListener('abort', askToStop, { once: true });
    const start = (k: number) => {
      const prefix = `member ${k + 1}/${list.length}: `;
      // 'advanced': structured clone, so typed arrays and nested results cross intact.
      const child = fork(script, args, { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      running.add(child);
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
      let bar: cliProgress.SingleBar | null = null;
      let barEpoch = 0;
      let epochStarted = 0;
      let done = false;
      child.on('message', (m: WorkerMessage) => {
        if (m.type === 'log') say(prefix + m.line);
        else if (m.type === 'step') {
          if (!bars) return;
          bar ??= bars.create(m.total, 0, { member: k + 1, epoch: m.epoch, epochs: m.epochs, loss: '-', speed: '-' });
          if (m.epoch !== barEpoch) {
            barEpoch = m.epoch;
            epochStarted = performance.now();
            bar.setTotal(m.total);
          }
          const seconds = (performance.now() - epochStarted) / 1000;
          bar.update(m.seen, { epoch: m.epoch, loss: m.loss.toFixed(4), speed: seconds > 0 ? (m.seen / seconds).toFixed(1) : '-' });
        } else if (m.type === 'done') {
          done = true;
          results[k] = m.result as R;
        } else if (m.type === 'error') {
          done = true;
          if (m.stopped) {
            stops.push(`member ${k + 1} ${m.message.replace(/^stopped \([^)]*\) /, 'stopped ')}`);
            return;
          }
          const err = m.user ? new RevcolError(m.message) : Object.assign(new Error(`${prefix}${m.message}`), { stack: m.stack });
          stopAll(err);
        }
      });
      child.on('error', (err) => stopAll(err));
      child.on('exit', (code, how) => {
        running.delete(child);
        if (bar) bars?.remove(bar);
        if (failed) return;
        if (!done) {
          const last = stderr.trim().split('\n').slice(-3).join(' | ');
          return stopAll(new Error(`${prefix}its process ended (${how ?? `exit code ${code}`}) without a result${last ? `: ${last}` : ''}`));
        }
        if (results[k] !== undefined) finished += 1;
        if (stopping) return settleStopped();
        if (next < list.length) start(next++);
        else if (finished === list.length) {
          bars?.stop();
          signal?.removeEventListener('abort', askToStop);
          resolve(results);
        }
      });
      // A naming function cannot cross to the process: it goes as a table of names.
      const { optionName, ...options } = list[k]!;
      child.send({ options, names: nameTable(optionName) });
    };
    if (signal?.aborted) return askToStop();
    while (next < Math.min(processes, list.length)) start(next++);
  });
}
