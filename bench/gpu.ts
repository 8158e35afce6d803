/**
 * GPU check: switches to the webgpu backend (Dawn; from DAWN_NODE when set, as in the GPU
 * bundle) and times a square fp32 matmul. Prints one JSON line:
 *   {"backend", "adapter", "size", "ms", "gflops", "maxAbsError"}
 * usage: npx tsx bench/gpu.ts [--backend webgpu|wasm|cpu|...] [--size 4096] [--repeats 10]
 * On the accelerator machine: ../shared/tools/gpu-bundle.sh bench/gpu.ts, then
 *   timeout 300 bash .gpu/run.sh --size 4096
 */
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { RevcolError } from '../src/core/errors.js';
import { timeMatmul } from './lib/matmul.js';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const backendName = argument('backend', 'webgpu');
const size = Number(argument('size', '4096'));
const repeats = Number(argument('repeats', '10'));

async function main(): Promise<void> {
  const active = await useBackend(backendName);
  const timing = await timeMatmul(size, repeats);
  console.log(JSON.stringify({ backend: active.name, adapter: active.adapter ?? null, ...timing }));
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
