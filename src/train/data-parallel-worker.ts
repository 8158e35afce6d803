/**
 * One data-parallel worker thread (started by data-parallel.ts): starts the main thread's backend
 * single-threaded, builds a replica of the model from its spec, then per step copies the shared
 * parameters into the replica, computes its shard's loss and gradients and writes the flat
 * gradient into its own shared slot. Errors go back as messages: a RevcolError's one line stays
 * one line in the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { configureWasmThreads, float32Values, useBackend } from '../backends/index.js';
import { fail, RevcolError } from '../core/errors.js';
import type { Replica, WorkerInit, WorkerMessage } from './data-parallel.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (m: WorkerMessage) => port.postMessage(m);
const failed = (err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  send({ type: 'error', message: e.message, ...(e.stack ? { stack: e.stack } : {}), user: err instanceof RevcolError });
};

async function start(): Promise<Replica<unknown>> {
  if (init.backend === 'wasm') configureWasmThreads(1);
  await useBackend(init.backend);
  const mod = (await import(init.spec.module)) as Record<string, unknown>;
  const factory = mod[init.spec.factory];
  if (typeof factory !== 'function') fail(`data-parallel worker: ${init.spec.module} has no function ${init.spec.factory}`);
  const replica = (await (factory as (o: unknown) => Replica<unknown> | Promise<Replica<unknown>>)(init.spec.options));
  const named = replica.model.namedParameters();
  const same = named.length === init.layout.length && named.every(([name, v], k) => name === init.layout[k]!.name && v.size === init.layout[k]!.size && v.shape.join() === init.layout[k]!.shape.join());
  if (!same) fail('data-parallel worker: the replica\'s parameters differ from the trained model\'s (names, shapes or order)');
  return replica;
}

const params = new Float32Array(init.params);
const grads = new Float32Array(init.grads);
const flags = new Uint8Array(init.flags);

function step(replica: Replica<unknown>, shard: unknown, seed: number): number {
  const variables = replica.model.namedParameters().map(([, v]) => v);
  // the cpu backend may keep the array it is given: a copy of its own (slice); wasm copies it
  // into its heap anyway (subarray)
  const copy = tf.getBackend() !== 'wasm';
  variables.forEach((v, k) => {
    const e = init.layout[k]!;
    const values = copy ? params.slice(e.offset, e.offset + e.size) : params.subarray(e.offset, e.offset + e.size);
    tf.tidy(() => v.assign(tf.tensor(values, e.shape, 'float32')));
  });
  flags.fill(0);
  const { loss, grads: g } = replica.lossAndGradients(shard, seed);
  try {
    variables.forEach((v, k) => {
      const t = g.get(v);
      if (!t) return;
      grads.set(float32Values(t), init.layout[k]!.offset);
      flags[k] = 1;
    });
    return (loss.dataSync() as Float32Array)[0]!;
  } finally {
    loss.dispose();
    g.forEach((t) => t.dispose());
  }
}

try {
  const replica = await start();
  port.on('message', (m: { type: 'step'; shard: unknown; seed: number }) => {
    if (m.type !== 'step') return;
    try {
      send({ type: 'done', loss: step(replica, m.shard, m.seed) });
    } catch (err) {
      failed(err);
    }
  });
  send({ type: 'ready' });
} catch (err) {
  failed(err);
}
