/**
 * The webgpu training kernels of src/backends/webgpu-conv.ts and webgpu-reduce.ts against
 * tfjs-backend-webgpu's own (the kernels they replace), on revcol-t's shapes: threads per
 * dispatch of every program each runs, and milliseconds per call (median of timed calls after
 * a warm-up that also compiles the shaders; each call waits for its result). The forward
 * depthwise convolution is listed for scale.
 *   REVCOL_WEBGPU_SOFTWARE=1 npx tsx bench/webgpu-kernels.ts [--batch N] [--sizes 56,28] [--k 3] [--repeats 5] [--json]
 * Without a GPU, REVCOL_WEBGPU_SOFTWARE=1 runs it on a software adapter (lavapipe).
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : fallback;
};
const json = args.includes('--json');
const batches = option('--batch', '8').split(',').map(Number);
const sizes = option('--sizes', '56,28,14,7').split(',').map(Number);
const kernelSizes = option('--k', '3').split(',').map(Number);
const repeats = Number(option('--repeats', '5'));
const skipOld = args.includes('--new-only');
const CHANNELS: Record<number, number> = { 56: 64, 28: 128, 14: 256, 7: 512 };

// tfjs's kernels, taken before revcol's replace them (importing the package registers them)
await import('@tensorflow/tfjs-backend-webgpu');
const originals = {
  filter: tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'webgpu')!,
  input: tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'webgpu')!,
  sum: tf.getKernel('Sum', 'webgpu')!,
};
const active = await useBackend('webgpu');
const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };

interface Dispatch {
  program: string;
  threads: number;
}
let census: Dispatch[] | undefined;
const run = backend.runWebGPUProgram;
backend.runWebGPUProgram = function (this: unknown, program: { constructor: { name: string }; dispatch: number[]; workgroupSize: number[] }, ...rest: unknown[]) {
  const out = run.call(this, program, ...rest);
  // after the call: the backend may reshape the dispatch to fit the device's limits
  const d = program.dispatch;
  const w = program.workgroupSize;
  census?.push({ program: program.constructor.name, threads: d[0]! * d[1]! * d[2]! * w[0]! * w[1]! * w[2]! });
  return out;
} as typeof run;

function kernelTensor(config: tf.KernelConfig, inputs: tf.NamedTensorInfoMap, attrs: object): tf.Tensor {
  const info = config.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend: tf.backend() }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(info);
}

async function measure(fn: () => tf.Tensor): Promise<{ ms: number; firstMs: number; dispatches: Dispatch[] }> {
  census = [];
  const first = performance.now();
  const warm = fn();
  await warm.data();
  const firstMs = performance.now() - first;
  warm.dispose();
  const dispatches = census;
  census = undefined;
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    const out = fn();
    await out.data();
    out.dispose();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, firstMs, dispatches };
}

interface Row {
  kernel: string;
  shape: string;
  version: 'tfjs' | 'revcol';
  ms: number;
  firstMs: number;
  dispatches: string;
}
const rows: Row[] = [];
const describeDispatches = (d: Dispatch[]) => d.map((x) => `${x.program}:${x.threads}`).join(' + ');

for (const batch of batches) {
  for (const size of sizes) {
    const channels = CHANNELS[size] ?? 64;
    for (const k of kernelSizes) {
      const x = tf.randomNormal([batch, size, size, channels]) as tf.Tensor4D;
      const dy = tf.randomNormal([batch, size, size, channels]) as tf.Tensor4D;
      const w = tf.randomNormal([k, k, channels, 1]) as tf.Tensor4D;
      const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1], filterShape: w.shape };
      const shape = `[${batch},${size},${size},${channels}] k${k}`;
      const versions: Array<['tfjs' | 'revcol', () => tf.Tensor]> = [
        ['revcol', () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs) as tf.Tensor],
      ];
      if (!skipOld) versions.unshift(['tfjs', () => kernelTensor(originals.filter, { x, dy }, attrs)]);
      for (const [version, fn] of versions) {
        const m = await measure(fn);
        rows.push({ kernel: 'DepthwiseConv2dNativeBackpropFilter', shape, version, ms: m.ms, firstMs: m.firstMs, dispatches: describeDispatches(m.dispatches) });
      }
      const inputAttrs = { ...attrs, inputShape: x.shape };
      const inputVersions: Array<['tfjs' | 'revcol', () => tf.Tensor]> = [
        ['revcol', () => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, inputAttrs) as tf.Tensor],
      ];
      if (!skipOld) inputVersions.unshift(['tfjs', () => kernelTensor(originals.input, { dy, filter: w }, inputAttrs)]);
      for (const [version, fn] of inputVersions) {
        const m = await measure(fn);
        rows.push({ kernel: 'DepthwiseConv2dNativeBackpropInput', shape, version, ms: m.ms, firstMs: m.firstMs, dispatches: describeDispatches(m.dispatches) });
      }
      const fwd = await measure(() => tf.depthwiseConv2d(x, w, 1, 'same'));
      rows.push({ kernel: 'DepthwiseConv2dNative (forward)', shape, version: 'tfjs', ms: fwd.ms, firstMs: fwd.firstMs, dispatches: describeDispatches(fwd.dispatches) });
      x.dispose();
      dy.dispose();
      w.dispose();
    }
    const t = tf.randomNormal([batch, size, size, channels]);
    const sumAttrs = { axis: [0, 1, 2], keepDims: false };
    const versions: Array<['tfjs' | 'revcol', () => tf.Tensor]> = [['revcol', () => tf.sum(t, [0, 1, 2])]];
    if (!skipOld) versions.unshift(['tfjs', () => kernelTensor(originals.sum, { x: t }, sumAttrs)]);
    for (const [version, fn] of versions) {
      const m = await measure(fn);
      rows.push({ kernel: 'Sum [0,1,2]', shape: `[${batch},${size},${size},${channels}]`, version, ms: m.ms, firstMs: m.firstMs, dispatches: describeDispatches(m.dispatches) });
    }
    t.dispose();
  }
}

console.log(`backend webgpu on ${active.adapter ?? 'unknown adapter'}; ms per call, median of ${repeats}`);
for (const r of rows) {
  console.log(`${r.kernel.padEnd(36)} ${r.shape.padEnd(22)} ${r.version.padEnd(6)} ${r.ms.toFixed(2).padStart(9)} ms (first ${r.firstMs.toFixed(0)} ms)  ${r.dispatches}`);
}
if (json) console.log(JSON.stringify(rows));
releaseGpuBackend();
process.exit(0);
