/**
 * Host cost of one kernel launch on the webgpu backend: records a chain of small element-wise
 * ops (4,096 floats each, too large for tfjs's CPU forwarding) without reading anything back,
 * and reports the CPU microseconds per launch spent recording, and where they go (each Dawn call
 * and tfjs step that runs per launch, timed by wrapping it). Compares, each in a fresh backend,
 * rounds alternating: tfjs's own uniform buffer per launch, revcol's shared uniform buffer
 * (src/backends/webgpu-dispatch.ts), both with a new bind group per launch as tfjs makes them,
 * and the shared buffer with bind groups kept (the chain binds the same few pooled buffers over
 * and over, as a training step does from one step to the next).
 *   npm run bench -- webgpu-launch [--software] [--launches N] [--rounds R] [--json]
 * On a fast GPU a small network's training step is mostly this cost (docs/kernels.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseGpuBackend, SOFTWARE_GPU_ENV, useBackend } from '../src/backends/index.js';
import { setBindGroupCaching, setUniformBatching } from '../src/backends/webgpu-dispatch.js';
import { args, flag } from './lib/args.js';

if (args.includes('--software')) process.env[SOFTWARE_GPU_ENV] = '1';
const launches = Number(flag('launches', '3000'));
const rounds = Number(flag('rounds', '4'));
const json = args.includes('--json');

type Timings = Map<string, { ms: number; calls: number }>;
const timings: Timings = new Map();
let timing = false;

/** Times every call of obj[name] (while timing) under `label`. */
function timeCalls(obj: Record<string, unknown>, name: string, label: string): void {
  const own = obj[name] as (...a: unknown[]) => unknown;
  if (typeof own !== 'function') return;
  obj[name] = function (this: unknown, ...a: unknown[]) {
    if (!timing) return own.apply(this, a);
    const t = performance.now();
    try {
      return own.apply(this, a);
    } finally {
      const e = timings.get(label) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t;
      e.calls++;
      timings.set(label, e);
    }
  };
}

const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>;
let wrapped = false;
function wrapDawn(): void {
  if (wrapped) return;
  wrapped = true;
  timeCalls(g.GPUDevice!.prototype, 'createBindGroup', 'Dawn createBindGroup');
  timeCalls(g.GPUComputePipeline!.prototype, 'getBindGroupLayout', 'Dawn getBindGroupLayout');
  timeCalls(g.GPUComputePassEncoder!.prototype, 'setPipeline', 'Dawn setPipeline');
  timeCalls(g.GPUComputePassEncoder!.prototype, 'setBindGroup', 'Dawn setBindGroup');
  timeCalls(g.GPUComputePassEncoder!.prototype, 'dispatchWorkgroups', 'Dawn dispatchWorkgroups');
  timeCalls(g.GPUQueue!.prototype, 'submit', 'Dawn queue.submit');
  timeCalls(g.GPUQueue!.prototype, 'writeBuffer', 'Dawn queue.writeBuffer');
  timeCalls(g.GPUCommandEncoder!.prototype, 'finish', 'Dawn encoder.finish');
}

type Mode = 'tfjs' | 'shared' | 'kept';
const MODE_LABEL: Record<Mode, string> = { tfjs: "tfjs's uniform buffer per launch", shared: 'shared uniform buffer', kept: 'shared uniform buffer, bind groups kept' };

async function measure(mode: Mode): Promise<{ usPerLaunch: number; parts: Record<string, number> }> {
  releaseGpuBackend();
  setUniformBatching(mode !== 'tfjs');
  setBindGroupCaching(mode === 'kept');
  await useBackend('webgpu');
  const backend = tf.backend() as unknown as Record<string, unknown>;
  // the cache wraps the device's createBindGroup: its lookups on this device, Dawn's calls (misses) on the prototype
  if (mode === 'kept') timeCalls(backend.device as Record<string, unknown>, 'createBindGroup', 'createBindGroup (revcol cache, lookups and misses)');
  // the backend's own per-launch steps, wrapped on this instance (revcol's where it replaced tfjs's)
  for (const name of ['makeUniforms', 'submitQueue']) timeCalls(backend, name, `tfjs ${name}${Object.hasOwn(backend, name) ? ' (revcol)' : ''}`);
  const a = tf.randomNormal([4096], 0, 1, 'float32', 1);
  const b = tf.randomNormal([4096], 0, 1, 'float32', 2);
  const chain = () => tf.tidy(() => {
    let x = a;
    for (let i = 0; i < launches; i++) x = i % 2 ? tf.add(x, b) : tf.mul(x, b);
    return tf.sum(x);
  });
  for (let w = 0; w < 2; w++) {
    const out = chain(); // compile and fill the pools
    await out.data();
    out.dispose();
  }
  timings.clear();
  timing = true;
  const t0 = performance.now();
  const out = chain();
  const recordMs = performance.now() - t0;
  timing = false;
  await out.data();
  out.dispose();
  tf.dispose([a, b]);
  const parts: Record<string, number> = {};
  for (const [label, e] of [...timings].sort((x, y) => y[1].ms - x[1].ms)) parts[label] = Math.round((e.ms * 1000 * 100) / launches) / 100;
  return { usPerLaunch: Math.round((recordMs * 1000 * 10) / launches) / 10, parts };
}

// Dawn's classes exist once it is loaded: wrap their prototypes before the measured devices are made
await useBackend('webgpu');
wrapDawn();
const results: Array<{ mode: Mode; usPerLaunch: number; parts: Record<string, number> }> = [];
const modes: Mode[] = ['shared', 'tfjs', 'kept'];
for (let r = 0; r < rounds; r++) {
  for (let m = 0; m < modes.length; m++) {
    const mode = modes[(m + r) % modes.length]!;
    results.push({ mode, ...(await measure(mode)) });
  }
}
setUniformBatching(true);
setBindGroupCaching(true);
const adapter = ((await import('../src/backends/index.js')).probeBackend);
const status = await adapter('webgpu');
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const summary = {
  bench: 'webgpu-launch',
  date: new Date().toISOString(),
  adapter: status.adapter,
  launches,
  rounds,
  usPerLaunchBatched: median(results.filter((x) => x.mode === 'shared').map((x) => x.usPerLaunch)),
  usPerLaunchTfjsUniforms: median(results.filter((x) => x.mode === 'tfjs').map((x) => x.usPerLaunch)),
  usPerLaunchBindGroupsKept: median(results.filter((x) => x.mode === 'kept').map((x) => x.usPerLaunch)),
  runs: results,
};
if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
else {
  console.log(`adapter: ${summary.adapter}; ${launches} element-wise launches recorded, ${rounds} rounds each`);
  console.log(
    `host µs per launch (median): ${MODE_LABEL.tfjs} ${summary.usPerLaunchTfjsUniforms}, ${MODE_LABEL.shared} ${summary.usPerLaunchBatched}, ${MODE_LABEL.kept} ${summary.usPerLaunchBindGroupsKept}`,
  );
  for (const x of results) console.log(`  ${x.mode.padEnd(6)} ${x.usPerLaunch} µs: ${Object.entries(x.parts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}
releaseGpuBackend();
process.exit(0);
