import * as tf from '@tensorflow/tfjs-core';
import { fail } from './errors.js';

/**
 * Reading tensors back: synchronously (dataSync) or not (await data()).
 *
 * tfjs-backend-webgpu cannot read synchronously in Node (its readSync copies through an
 * OffscreenCanvas, which Node lacks), and on any GPU backend a synchronous read stalls the
 * queue. Code on the training and prediction paths reads with `await data()`, or, where a
 * synchronous API must stay (RevColumns.clampScales, TextClassifier.probabilities), asks
 * readsSynchronously() first.
 */
const ASYNC_READ_BACKENDS = new Set(['webgpu', 'webgl']);

/** Whether tensors of this backend (default: the active one) may be read with dataSync(). */
export function readsSynchronously(backend: string = tf.getBackend()): boolean {
  return !ASYNC_READ_BACKENDS.has(backend);
}

/** Declares a tfjs backend (by its registry name) whose tensors must be read asynchronously only. */
export function markAsyncReadBackend(name: string): void {
  ASYNC_READ_BACKENDS.add(name);
}

/**
 * A computation written once for both kinds of read: a generator that yields each tensor it
 * needs the values of and receives them back (it keeps ownership of the tensor). readNow runs
 * it with dataSync(), readLater with `await data()`.
 */
export type Reads<T> = Generator<tf.Tensor, T, tf.TypedArray>;

/** Runs `reads` with synchronous reads; on a backend that cannot, fails with one line naming `instead`. */
export function readNow<T>(reads: Reads<T>, instead: string): T {
  if (!readsSynchronously()) {
    reads.return(undefined as T);
    fail(`the ${tf.getBackend()} backend cannot read tensors synchronously: use ${instead}`);
  }
  let ok = false;
  try {
    let step = reads.next();
    while (!step.done) step = reads.next(step.value.dataSync() as tf.TypedArray);
    ok = true;
    return step.value;
  } finally {
    if (!ok) reads.return(undefined as T); // runs the generator's finally blocks (disposal)
  }
}

/** Runs `reads` with asynchronous reads (any backend). */
export async function readLater<T>(reads: Reads<T>): Promise<T> {
  let ok = false;
  try {
    let step = reads.next();
    while (!step.done) step = reads.next((await step.value.data()) as tf.TypedArray);
    ok = true;
    return step.value;
  } finally {
    if (!ok) reads.return(undefined as T);
  }
}

/**
 * A failure the compute device reported outside any call (a GPU out of memory, a validation
 * error, a lost device): the work after it computed nothing valid, so a training loop that
 * reads its loss asks for it and stops rather than train on garbage. Set by the backend's
 * error watcher (src/backends/quiet-dawn.ts); the first one counts until it is taken.
 */
let deviceFailure: string | undefined;

export function reportDeviceFailure(message: string): void {
  deviceFailure ??= message;
}

/** The first failure reported since the last call, if any; clears it. */
export function takeDeviceFailure(): string | undefined {
  const failure = deviceFailure;
  deviceFailure = undefined;
  return failure;
}
