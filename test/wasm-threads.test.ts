import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { RevcolError } from '../src/core/errors.js';
import { configureWasmThreads, describeWasmThreads, requestedWasmThreads, THREADS_ENV } from '../src/backends/wasm-threads.js';

// The wasm backend is started in child processes (one per thread count): a process holds one
// wasm backend, and each child must also exit by itself with its pthread workers running.

interface StepRecord {
  losses: number[];
  /** Gradients of the first step, by parameter name (same weights and batch in every run). */
  grads: Record<string, number[]>;
  /** sha256 of every parameter after the last step. */
  weights: string;
}

interface ChildResult {
  info: { threads: number; threaded: boolean; requested: number; source: string; fallback?: string };
  reason: string;
  text: StepRecord;
  vision: StepRecord;
  /** Threaded build: whether HEAPU8 and typedArrayFromHeap see memory grown without the module knowing. */
  heapFollows: boolean | null;
}

/** Three AdamW steps of a small text model and of revcol-nano-32 on wasm, with fixed seeds. */
const TRAIN_SCRIPT = `
const tf = await import('@tensorflow/tfjs-core');
const { createHash } = await import('node:crypto');
const { useBackend, wasmThreadsInfo, probeBackend } = await import('./src/backends/index.ts');
const { RevColText } = await import('./src/text/model.ts');
const { RevColVision } = await import('./src/vision/model.ts');
const { TEXT_PRESETS } = await import('./src/text/presets.ts');
const { VISION_PRESETS } = await import('./src/vision/presets.ts');
const { AdamW } = await import('./src/train/optimizer.ts');
await useBackend('wasm');

function train(model, lossAndGradients) {
  const optimizer = new AdamW(model);
  const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
  const record = { losses: [], grads: {}, weights: '' };
  for (let step = 0; step < 3; step++) {
    const { loss, grads } = lossAndGradients(step);
    if (step === 0) for (const [v, g] of grads) record.grads[names.get(v)] = Array.from(g.dataSync());
    record.losses.push(loss.dataSync()[0]);
    optimizer.applyGradients(grads, 1e-2);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  }
  const hash = createHash('sha256');
  for (const [, v] of model.namedParameters()) hash.update(new Uint8Array(v.dataSync().buffer.slice(0)));
  record.weights = hash.digest('hex');
  optimizer.dispose();
  model.dispose();
  return record;
}

const config = { ...TEXT_PRESETS['text-tiny'], hidden: [64, 64], vocabSize: 1000, numLabels: 2, maxLength: 64, dropout: 0.1, dropPath: 0.1 };
const [batch, length] = [8, 64];
const inputIds = tf.tensor2d(Int32Array.from({ length: batch * length }, (_, i) => (i * 7919) % 1000), [batch, length], 'int32');
const attentionMask = tf.tensor2d(Int32Array.from({ length: batch * length }, (_, i) => (i % length < 48 ? 1 : 0)), [batch, length], 'int32');
const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32');
const textModel = new RevColText(config, 1);
const text = train(textModel, (seed) => textModel.lossAndGradients({ inputIds, attentionMask, labels }, { seed }));

const visionModel = new RevColVision({ ...VISION_PRESETS['revcol-nano-32'], numClasses: 10 }, 1);
const x = tf.randomNormal([8, 32, 32, 3], 0, 1, 'float32', 3);
const visionLabels = tf.tensor1d(Array.from({ length: 8 }, (_, i) => i % 10), 'int32');
const vision = train(visionModel, (seed) => visionModel.lossAndGradients(x, visionLabels, { seed }));

// memory grown behind the module's back (as by another thread): its views follow
const backend = tf.backend();
const memory = backend.wasm.wasmMemory;
let heapFollows = null;
if (memory) {
  memory.grow(16);
  const t = tf.tensor1d([1, 2, 3]);
  heapFollows = backend.wasm.HEAPU8.length === memory.buffer.byteLength && Array.from(backend.typedArrayFromHeap(t)).join() === '1,2,3';
}

const reason = (await probeBackend('wasm')).reason;
process.stdout.write(JSON.stringify({ info: wasmThreadsInfo(), reason, text, vision, heapFollows }) + '\\n');
`;

function runChild(script: string, env: Record<string, string | undefined>): { status: number | null; signal: string | null; stdout: string; stderr: string; ms: number } {
  const start = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: process.cwd(),
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 << 20,
    env: { ...process.env, ...env },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - start };
}

function train(threads: number): ChildResult {
  const r = runChild(TRAIN_SCRIPT, { [THREADS_ENV]: String(threads) });
  // exits by itself, promptly, with the pthread workers still there
  expect(r.signal, r.stderr).toBeNull();
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

function maxAbs(xs: number[]): number {
  return xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

describe('wasm threads', () => {
  const saved = process.env[THREADS_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[THREADS_ENV];
    else process.env[THREADS_ENV] = saved;
    configureWasmThreads();
  });

  it('takes the count from configureWasmThreads, else REVCOL_THREADS, else one thread (measured faster here); rejects non-counts', () => {
    delete process.env[THREADS_ENV];
    expect(requestedWasmThreads()).toEqual({ threads: 1, source: 'default' });
    expect(describeWasmThreads()).toMatch(/^SIMD, 1 thread \(the default; REVCOL_THREADS=\d+ for every core\)$/);
    process.env[THREADS_ENV] = '3';
    expect(requestedWasmThreads()).toEqual({ threads: 3, source: 'env' });
    configureWasmThreads(1);
    expect(requestedWasmThreads()).toEqual({ threads: 1, source: 'argument' });
    expect(describeWasmThreads()).toBe('SIMD, 1 thread (asked for)');
    configureWasmThreads();
    expect(requestedWasmThreads()).toEqual({ threads: 3, source: 'env' });
    for (const bad of [0, -1, 1.5, Number.NaN, 10_000]) expect(() => configureWasmThreads(bad)).toThrow(RevcolError);
    for (const bad of ['0', 'two', '2.5', '-4']) {
      process.env[THREADS_ENV] = bad;
      expect(() => requestedWasmThreads()).toThrow(/REVCOL_THREADS must be a whole number/);
    }
    process.env[THREADS_ENV] = '1';
    expect(describeWasmThreads()).toBe('SIMD, 1 thread (REVCOL_THREADS=1)');
    process.env[THREADS_ENV] = '2';
    expect(describeWasmThreads()).toBe('SIMD, 2 threads');
  });

  it('trains deterministically with 2 threads, and as with 1 thread within float tolerance', () => {
    const a = train(2);
    const b = train(2);
    const single = train(1);
    expect(a.info).toMatchObject({ threads: 2, threaded: true, requested: 2, source: 'env' });
    expect(a.reason).toBe('WebAssembly with XNNPACK, SIMD, 2 threads');
    expect(a.heapFollows).toBe(true);
    expect(single.info).toMatchObject({ threads: 1, threaded: false, requested: 1 });
    expect(single.reason).toBe('WebAssembly with XNNPACK, SIMD, 1 thread (REVCOL_THREADS=1)');
    for (const model of ['text', 'vision'] as const) {
      // same seed, same thread count: the same losses and weights, bit for bit
      expect(b[model].losses).toEqual(a[model].losses);
      expect(b[model].weights).toBe(a[model].weights);
      // 2 threads against 1: the same gradients within float tolerance
      expect(Object.keys(a[model].grads).sort()).toEqual(Object.keys(single[model].grads).sort());
      const bad: string[] = [];
      for (const [name, g1] of Object.entries(single[model].grads)) {
        const g2 = a[model].grads[name]!;
        const scale = Math.max(1e-3, maxAbs(g1));
        const diff = g1.reduce((m, x, i) => Math.max(m, Math.abs(x - g2[i]!)), 0);
        if (g2.length !== g1.length || diff > 1e-4 * scale) bad.push(`${name}: ${diff} (scale ${scale})`);
      }
      expect(bad, model).toEqual([]);
      a[model].losses.forEach((loss, i) => expect(Math.abs(loss - single[model].losses[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(loss))));
    }
  });

  it('falls back to the single-threaded build, without an error, when the pthread workers fail', () => {
    // every worker_threads Worker made after this fails as it starts
    const script = `
const { createRequire, syncBuiltinESMExports } = await import('node:module');
const threads = createRequire(process.cwd() + '/')('node:worker_threads');
const Real = threads.Worker;
threads.Worker = class extends Real { constructor(_, options) { super('throw new Error("no workers here")', { ...options, eval: true }); } };
syncBuiltinESMExports();
const tf = await import('@tensorflow/tfjs-core');
const { useBackend, wasmThreadsInfo, probeBackend } = await import('./src/backends/index.ts');
await useBackend('wasm');
const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]));
process.stdout.write(JSON.stringify({ info: wasmThreadsInfo(), reason: (await probeBackend('wasm')).reason, backend: tf.getBackend(), y: y.dataSync()[0] }) + '\\n');
`;
    const r = runChild(script, { [THREADS_ENV]: '2' });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { info: ChildResult['info']; reason: string; backend: string; y: number };
    expect(out.backend).toBe('wasm');
    expect(out.y).toBe(64);
    expect(out.info).toMatchObject({ threads: 1, threaded: false, requested: 2 });
    expect(out.info.fallback).toMatch(/no workers here/);
    expect(out.reason).toMatch(/^WebAssembly with XNNPACK, SIMD, 1 thread \(the threaded build did not start: .*no workers here/);
    expect(r.stderr).not.toMatch(/Initialization of backend wasm failed|worker sent an error/);
  });
});
