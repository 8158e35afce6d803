/**
 * GPU check: switches to the webgpu backend (Dawn; from DAWN_NODE when set, as in the GPU
 * bundle) and times a square fp32 matmul. Prints one JSON line:
 *   {"backend", "adapter", "size", "ms", "gflops", "maxAbsError"}
 * usage: npx tsx bench/gpu.ts [--backend webgpu|wasm|cpu|...] [--size 4096] [--repeats 10]
 * On the accelerator machine: ../shared/tools/gpu-bundle.sh bench/gpu.ts, then
 *   timeout 300 bash .gpu/run.sh --size 4096
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { RevcolError } from '../src/core/errors.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const backendName = argument('backend', 'webgpu');
const size = Number(argument('size', '4096'));
const repeats = Number(argument('repeats', '10'));

async function main(): Promise<void> {
  const active = await useBackend(backendName);
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 1);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 2);

  // correctness: a few entries of the product against a float64 dot product on the host
  const product = tf.matMul(a, b);
  const [av, bv, pv] = await Promise.all([a.data(), b.data(), product.data()]);
  let maxAbsError = 0;
  for (let k = 0; k < 16; k++) {
    const row = (k * 977) % size;
    const col = (k * 613) % size;
    let expected = 0;
    for (let i = 0; i < size; i++) expected += av[row * size + i]! * bv[i * size + col]!;
    maxAbsError = Math.max(maxAbsError, Math.abs(expected - pv[row * size + col]!));
  }
  product.dispose();

  // timing: queue `repeats` products, then wait for the last (the GPU queue runs in order)
  const run = async (count: number) => {
    let last: tf.Tensor | undefined;
    for (let i = 0; i < count; i++) {
      last?.dispose();
      last = tf.matMul(a, b);
    }
    const corner = tf.slice(last!, [0, 0], [1, 1]);
    await corner.data();
    tf.dispose([corner, last!]);
  };
  await run(2); // warm-up: shader compilation, buffer pools
  const start = performance.now();
  await run(repeats);
  const ms = (performance.now() - start) / repeats;
  const gflops = (2 * size ** 3) / (ms * 1e6);
  tf.dispose([a, b]);
  console.log(
    JSON.stringify({
      backend: active.name,
      adapter: active.adapter ?? null,
      size,
      ms: Number(ms.toFixed(3)),
      gflops: Number(gflops.toFixed(1)),
      maxAbsError: Number(maxAbsError.toExponential(2)),
    }),
  );
}

main().then(
  () => {
    releaseGpuBackend();
    process.exit(0); // a GPU device can keep the event loop alive
  },
  (err: unknown) => {
    process.stderr.write(`gpu bench: ${err instanceof RevcolError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
