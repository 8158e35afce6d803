/**
 * Data-parallel training on the CPU: a batch is cut into N contiguous shards; the main thread
 * computes one, N-1 worker threads (worker_threads, each with its own single-threaded backend and
 * a replica of the model) compute the others, and their gradients are summed through shared
 * memory. See docs/threads.md ("Data-parallel workers").
 *
 * Per step: the main thread writes every parameter into one shared Float32Array (the order of
 * model.namedParameters()), posts each worker its shard, computes its own shard, and waits; each
 * worker copies the parameters into its replica, computes its shard's loss and gradients and
 * writes the flat gradient into its own shared slot. The main thread then sums the shards in
 * shard order, each weighted by its share of the batch's rows (or of the items its mean loss is
 * over, Shard.weight), so the sum is the full batch's mean, one float64 sum per element: the
 * same bits for a given seed and worker count.
 *
 * Generic: a model family supplies a module (by URL) exporting a factory that builds a replica
 * from plain, cloneable options, and cuts its batches into plain, cloneable shards.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { fail, RevcolError } from '../core/errors.js';
import type { LossAndGradients } from '../core/gradients.js';
import type { Module } from '../core/module.js';
import { mixSeed } from '../core/random.js';
import { float32Values } from '../backends/index.js';
import { wasmThreadsInfo } from '../backends/wasm-threads.js';

/** A model that computes one shard's loss and gradients: a worker's replica, or the main thread's own model. */
export interface Replica<Shard> {
  /** Its namedParameters() must match the trained model's, in names, shapes and order. */
  model: Module;
  /** Mean loss over the shard's rows and its gradients (`seed`: the shard's dropout seed); the caller disposes. */
  lossAndGradients(shard: Shard, seed: number): LossAndGradients;
  dispose?(): void;
}

/**
 * What a worker builds its replica from: an ES module (a file: URL) whose export `factory` takes
 * `options` (anything structuredClone copies) and returns a Replica (or a promise of one).
 */
export interface ReplicaSpec {
  module: string;
  factory: string;
  options: unknown;
}

/** One shard of a batch: its plain data (sent to a worker as is) and how many of the batch's rows (samples) it holds. */
export interface Shard<Data> {
  data: Data;
  rows: number;
  /**
   * How many items the shard's mean loss is over, when not its rows: the masked or scored tokens
   * of a masked-LM or token-classification shard. Shards are weighted by it (default `rows`), so
   * the sum is the full batch's mean over those items; a shard with weight 0 is skipped.
   */
  weight?: number;
}

/** A shard's share of the batch's mean loss: its weight, else its rows. */
const shardWeight = (s: Shard<unknown>): number => s.weight ?? s.rows;

export interface DataParallelOptions<Data> {
  /** Shards per batch: the main thread and workers - 1 worker threads (≥ 2). */
  workers: number;
  spec: ReplicaSpec;
  /** The main thread's replica: the model being trained (its variables get the summed gradients). */
  local: Replica<Data>;
  /** The backend the workers start ('cpu' or 'wasm'; default: the current one). */
  backend?: string;
}

/** [start, end) of n contiguous, near-equal parts of `count` rows (the first count % n parts one longer); empty parts at the end when count < n. */
export function shardRanges(count: number, n: number): Array<[number, number]> {
  const base = Math.floor(count / n);
  const extra = count % n;
  const out: Array<[number, number]> = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push([at, at + size]);
    at += size;
  }
  return out;
}

/** Shard i's dropout seed, from the step's seed. */
export const shardSeed = (stepSeed: number, shard: number): number => mixSeed(stepSeed, 7919, shard);

interface Entry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  trainable: boolean;
}

/** What a worker gets in workerData. */
export interface WorkerInit {
  entry: string | null;
  spec: ReplicaSpec;
  backend: string;
  index: number;
  layout: Entry[];
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  flags: SharedArrayBuffer;
}

/** Messages from a worker. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'done'; loss: number }
  | { type: 'error'; message: string; stack?: string; user: boolean };

/** The worker script: the compiled .js, or under tsx/vitest a small .mjs that registers tsx and loads the .ts. */
function workerScript(): { script: string; entry: string | null } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { script: fileURLToPath(new URL('./data-parallel-worker.js', here)), entry: null };
  return { script: fileURLToPath(new URL('./data-parallel-worker-tsx.mjs', here)), entry: new URL('./data-parallel-worker.ts', here).href };
}

interface Pending {
  resolve: (message: WorkerMessage) => void;
  reject: (err: Error) => void;
}

class WorkerHandle {
  pending: Pending | null = null;
  failure: Error | null = null;
  exited = false;
  constructor(readonly worker: Worker, readonly index: number) {
    worker.on('message', (m: WorkerMessage) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      this.idle();
      if (m.type === 'error') p.reject(m.user ? new RevcolError(m.message) : Object.assign(new Error(`data-parallel worker ${index}: ${m.message}`), { stack: m.stack }));
      else p.resolve(m);
    });
    worker.on('error', (err) => this.die(err instanceof Error ? err : new Error(String(err))));
    worker.on('exit', (code) => {
      this.exited = true;
      this.die(new Error(`data-parallel worker ${index} exited (code ${code})`));
    });
  }
  private die(err: Error): void {
    this.failure ??= err;
    const p = this.pending;
    this.pending = null;
    p?.reject(this.failure);
  }
  /** A worker waited on keeps the process alive; an idle one does not (a pool left open never holds up the exit). */
  private idle(): void {
    this.worker.unref();
  }
  /** Resolves with the worker's next message. */
  next(): Promise<WorkerMessage> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }
}

/** A pool of worker threads holding replicas of one model; see the file's comment. */
export class DataParallel<Data> {
  private closed = false;
  /**
   * Milliseconds spent so far in each part of the steps, on the main thread: writing the
   * parameters, its own shard, waiting for the workers after it, summing and making the gradients.
   */
  readonly timings = { publish: 0, own: 0, wait: 0, sum: 0, steps: 0 };
  private constructor(
    private readonly local: Replica<Data>,
    private readonly handles: WorkerHandle[],
    private readonly layout: Entry[],
    private readonly variables: tf.Variable[],
    private readonly params: Float32Array,
    private readonly grads: Float32Array[],
    private readonly flags: Uint8Array[],
  ) {}

  /** Shards per batch (workers + the main thread). */
  get shards(): number {
    return this.handles.length + 1;
  }

  /** Starts `workers - 1` worker threads and waits until each has built its replica. */
  static async start<Data>(options: DataParallelOptions<Data>): Promise<DataParallel<Data>> {
    const n = options.workers;
    if (!Number.isInteger(n) || n < 2) fail(`data-parallel training needs at least 2 workers, got ${n}`);
    const backend = options.backend ?? tf.getBackend();
    if (backend !== 'cpu' && backend !== 'wasm') fail(`data-parallel workers run on the cpu and wasm backends, not ${backend}: use --backend wasm (or cpu), or one worker`);
    const named = options.local.model.namedParameters();
    let total = 0;
    const layout: Entry[] = named.map(([name, v]) => {
      if (v.dtype !== 'float32') fail(`data-parallel training takes float32 parameters; ${name} is ${v.dtype}`);
      const e = { name, shape: [...v.shape], offset: total, size: v.size, trainable: v.trainable };
      total += v.size;
      return e;
    });
    const paramsBuffer = new SharedArrayBuffer(total * 4);
    const { script, entry } = workerScript();
    const handles: WorkerHandle[] = [];
    const gradBuffers: SharedArrayBuffer[] = [];
    const flagBuffers: SharedArrayBuffer[] = [];
    try {
      for (let i = 1; i < n; i++) {
        const grads = new SharedArrayBuffer(total * 4);
        const flags = new SharedArrayBuffer(layout.length);
        gradBuffers.push(grads);
        flagBuffers.push(flags);
        const init: WorkerInit = { entry, spec: options.spec, backend, index: i, layout, params: paramsBuffer, grads, flags };
        const worker = new Worker(script, {
          workerData: init,
          // Each worker is one core: its backend runs single-threaded, and no test runner or loader flags are inherited.
          env: { ...process.env, REVCOL_THREADS: '1' },
          execArgv: [],
        });
        const handle = new WorkerHandle(worker, i);
        handles.push(handle);
      }
      const ready = await Promise.allSettled(handles.map((h) => h.next()));
      const failed = ready.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (err) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw err;
    }
    return new DataParallel(
      options.local,
      handles,
      layout,
      named.map(([, v]) => v),
      new Float32Array(paramsBuffer),
      gradBuffers.map((b) => new Float32Array(b)),
      flagBuffers.map((b) => new Uint8Array(b)),
    );
  }

  /**
   * Loss and gradients of one batch given as its shards (one per worker, shard 0 computed here;
   * empty shards are skipped): their sums weighted by rows (or by each shard's `weight`), so the full batch's mean loss and its
   * gradients. Shard i's dropout seed is shardSeed(seed, i). The caller disposes the result.
   */
  async lossAndGradients(shards: Array<Shard<Data>>, seed: number): Promise<LossAndGradients> {
    if (this.closed) fail('the data-parallel workers were closed');
    if (shards.length !== this.shards) fail(`data-parallel step: got ${shards.length} shards for ${this.shards} workers`);
    const rows = shards.reduce((n, s) => n + shardWeight(s), 0);
    if (!(rows > 0)) fail('data-parallel step: the batch is empty');
    const t0 = performance.now();
    // The current parameters, for the workers.
    for (let k = 0; k < this.layout.length; k++) {
      this.params.set(float32Values(this.variables[k]!), this.layout[k]!.offset);
    }
    const waits: Array<Promise<WorkerMessage> | null> = this.handles.map((h, j) => {
      const shard = shards[j + 1]!;
      if (shardWeight(shard) === 0) return null;
      const wait = h.next();
      h.worker.postMessage({ type: 'step', shard: shard.data, seed: shardSeed(seed, j + 1) });
      return wait;
    });
    // Rejections are taken below, after the main thread's own shard.
    waits.forEach((w) => w?.catch(() => {}));
    const t1 = performance.now();
    let ownLoss = 0;
    let own: Float32Array | null = null;
    let ownFlags: Uint8Array | null = null;
    let ownError: unknown = null;
    if (shardWeight(shards[0]!) > 0) {
      try {
        const { loss, grads } = this.local.lossAndGradients(shards[0]!.data, shardSeed(seed, 0));
        try {
          ownLoss = (loss.dataSync() as Float32Array)[0]!;
          own = new Float32Array(this.params.length);
          ownFlags = new Uint8Array(this.layout.length);
          this.variables.forEach((v, k) => {
            const g = grads.get(v);
            if (!g) return;
            own!.set(float32Values(g), this.layout[k]!.offset);
            ownFlags![k] = 1;
          });
        } finally {
          loss.dispose();
          grads.forEach((g) => g.dispose());
        }
      } catch (err) {
        ownError = err;
      }
    }
    const t2 = performance.now();
    const settled = await Promise.allSettled(waits.map((w) => w ?? Promise.resolve(null)));
    const t3 = performance.now();
    if (ownError) throw ownError;
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    // Weighted sum in shard order: the same bits every run.
    const parts: Array<{ grads: Float32Array; flags: Uint8Array; weight: number }> = [];
    let loss = 0;
    if (own) {
      parts.push({ grads: own, flags: ownFlags!, weight: shardWeight(shards[0]!) / rows });
      loss += ownLoss * (shardWeight(shards[0]!) / rows);
    }
    settled.forEach((r, j) => {
      const m = (r as PromiseFulfilledResult<WorkerMessage | null>).value;
      if (!m || m.type !== 'done') return;
      const weight = shardWeight(shards[j + 1]!) / rows;
      parts.push({ grads: this.grads[j]!, flags: this.flags[j]!, weight });
      loss += m.loss * weight;
    });
    const grads = new Map<tf.Variable, tf.Tensor>();
    this.layout.forEach((e, k) => {
      const from = parts.filter((p) => p.flags[k]);
      if (!from.length || !e.trainable) return;
      grads.set(this.variables[k]!, tf.tensor(weightedSum(from, e.offset, e.size), e.shape, 'float32'));
    });
    const t4 = performance.now();
    Object.assign(this.timings, {
      publish: this.timings.publish + (t1 - t0),
      own: this.timings.own + (t2 - t1),
      wait: this.timings.wait + (t3 - t2),
      sum: this.timings.sum + (t4 - t3),
      steps: this.timings.steps + 1,
    });
    return { loss: tf.scalar(loss), grads };
  }

  /** Stops the workers (idempotent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.handles.map((h) => (h.exited ? Promise.resolve() : h.worker.terminate())));
  }
}

/**
 * Σ weight·grads[offset + j] over the parts, in their order, each element summed in float64 and
 * rounded once: the same bits every run. (Two parts, the usual case, get a loop of their own.)
 */
function weightedSum(parts: Array<{ grads: Float32Array; weight: number }>, offset: number, size: number): Float32Array {
  const out = new Float32Array(size);
  if (parts.length === 2) {
    const a = parts[0]!.grads.subarray(offset, offset + size);
    const b = parts[1]!.grads.subarray(offset, offset + size);
    const wa = parts[0]!.weight;
    const wb = parts[1]!.weight;
    for (let j = 0; j < size; j++) out[j] = wa * a[j]! + wb * b[j]!;
    return out;
  }
  for (let j = 0; j < size; j++) {
    let s = 0;
    for (let p = 0; p < parts.length; p++) s += parts[p]!.weight * parts[p]!.grads[offset + j]!;
    out[j] = s;
  }
  return out;
}

/** A one-line error unless the current backend can run data-parallel workers (cpu, wasm); `flag` names the option. */
/** Training sets from this size up get every core by default (see defaultWorkers). */
export const AUTO_WORKERS_MIN_EXAMPLES = 1000;
/** At most this many workers by default. */
export const AUTO_WORKERS_MAX = 8;

/**
 * The worker count when none is given: every core (at most AUTO_WORKERS_MAX) on the cpu and wasm
 * backends for a training set of AUTO_WORKERS_MIN_EXAMPLES or more, else 1. Smaller sets finish
 * in seconds, where starting the workers (a backend and a replica each, 1–3 s) would not pay; a
 * wasm backend already running XNNPACK threads (REVCOL_THREADS) keeps the cores for those.
 * Measured on 2 idle cores: a text-tiny step 1.68× and a masked-LM step 1.64× faster with 2
 * workers, `vision train` on a 1,438-image folder 1.63× (docs/threads.md). Results depend on the count (sums in another order), so the run's
 * log says how many ran; --workers 1 gives the single-thread result anywhere.
 */
export function defaultWorkers(trainExamples: number): number {
  const backend = tf.getBackend();
  if (backend !== 'cpu' && backend !== 'wasm') return 1;
  if (backend === 'wasm' && (wasmThreadsInfo()?.threads ?? 1) > 1) return 1;
  if (trainExamples < AUTO_WORKERS_MIN_EXAMPLES) return 1;
  return Math.max(1, Math.min(os.availableParallelism(), AUTO_WORKERS_MAX));
}

/** The run's log line for a worker pool: how many, and whether by default. */
export function workersLine(workers: number, byDefault: boolean, what: string): string {
  const line = `data-parallel: each batch in ${workers} shards, on the main thread and ${workers - 1} worker thread${workers > 2 ? 's' : ''}`;
  return byDefault ? `${line} (the default on ${os.availableParallelism()} cores for ${AUTO_WORKERS_MIN_EXAMPLES.toLocaleString('en-US')} or more ${what}; --workers 1 for one thread)` : line;
}

export function checkWorkersBackend(flag: string): void {
  const backend = tf.getBackend();
  if (backend !== 'cpu' && backend !== 'wasm') fail(`${flag} runs worker threads on the cpu and wasm backends, and this run uses ${backend}: add --backend wasm (or cpu), or leave out ${flag}`);
}
