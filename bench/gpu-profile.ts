// GPU profile of one reversible training step on the webgpu backend (Dawn): a warm-up step,
// then --steps measured steps of lossAndGradients + AdamW.applyGradients, as bench/train-step.ts.
// Reports dispatches per step (all, and the part before the optimizer), per program its
// dispatches and threads per dispatch (avg/min), revcol's own kernels one by one
// (dispatchesByKernel), wall ms per step and samples/s, V8's collections in the measured steps
// (gcMsPerStep); where the adapter has 'timestamp-query', one more step under tf.time gives GPU
// ms per program (each program then runs in a compute pass of its own, so that step's wall time
// is not reported).
//   npm run bench -- gpu-profile [--model text-tiny|revcol-t|revcol-nano-32|...] [--batch B] [--mode reversible|plain] [--config JSON]
//     [--steps N] [--length L (text)] [--json] [--software] [--no-timing] [--cpu-profile FILE] [--flags JSON]
//     [--no-uniform-batch] [--no-bind-group-cache] [--warmup N] [--gemm on|off] [--row-lanes N|auto] [--vec4 on|off] [--dawn-flags LIST] [--gpu-wait spin|yield]
// --cpu-profile FILE: V8's sampling profile of the measured steps only (written to FILE, for
//   Chrome's DevTools), and the functions with the most self time in the JSON (cpuTop): where the
//   CPU time of a step goes when the GPU waits for it.
// --flags JSON: tfjs flags to set first, e.g. '{"WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE":64}'.
// --warmup N: steps before the measured ones (default 3: bind groups repeat from the third step on,
//   src/backends/webgpu-dispatch.ts); --no-bind-group-cache makes every launch a new bind group, as tfjs.
// --gemm on|off: large products on the 64 × 64-tile kernel of src/backends/webgpu-gemm.ts or on
//   tfjs's (default: REVCOL_WEBGPU_GEMM, else what the backend's start-up timing chose), to compare.
// --row-lanes N|auto: threads per row of revcol's row programs (LayerNorm, softmax rows;
//   src/ops/kernels-webgpu.ts): 64 is the first design (a workgroup per row), auto chooses by row length.
// --vec4 on|off: revcol's element-wise programs take four elements a thread where the sizes allow
//   (on, the default) or one (off, the first design; src/ops/kernels-webgpu.ts), to compare.
// --dawn-flags LIST: extra options for Dawn's instance (REVCOL_DAWN_FLAGS: ';'-separated key=value,
//   e.g. enable-dawn-features=disable_robustness,disable_workgroup_init), to compare Dawn's toggles.
// --gpu-wait spin|yield: how the host waits for a read: Dawn's own polling (a core at 100%) or
//   revcol's (src/backends/dawn-polling.ts: a short spin, then a 1 ms timer), to compare.
// --software (or REVCOL_WEBGPU_SOFTWARE=1) accepts a software adapter such as lavapipe.
// --json prints one JSON object, ready to append to bench/results/gpu-profile.jsonl.
// On the accelerator machine: ../shared/tools/gpu-bundle.sh bench/gpu-profile.ts, then
//   REVCOL_COMMIT=$(git rev-parse --short HEAD) timeout 300 bash .gpu/run.sh --model revcol-t --batch 2
//
// Counting: every GPUComputePassEncoder.dispatchWorkgroups call is a dispatch, so kernels that
// bypass tfjs's runWebGPUProgram are counted too (as "(other)", threads unknown); dispatches
// made inside runWebGPUProgram are named by the program's class, with its workgroup size.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import * as tf from '@tensorflow/tfjs-core';
import { DAWN_FLAGS_ENV, dawnFlags, probeBackend, releaseGpuBackend, SOFTWARE_GPU_ENV, useBackend, webgpuBindGroupStats, webgpuPoolStats } from '../src/backends/index.js';
import { gpuWaitTimedPolls, gpuWaitYielding, setGpuWaitYielding } from '../src/backends/dawn-polling.js';
import { setBindGroupCaching, setUniformBatching } from '../src/backends/webgpu-dispatch.js';
import { setWebgpuGemm, webgpuGemmEnabled, webgpuGemmTuning } from '../src/backends/webgpu-gemm.js';
import { RevcolError } from '../src/core/errors.js';
import { rowLanes, setWebgpuRowLanes, setWebgpuVec4, webgpuVec4 } from '../src/ops/kernels-webgpu.js';
import { RevColText } from '../src/text/model.js';
import { getPreset, type TextConfig, validateConfig } from '../src/text/presets.js';
import { AdamW } from '../src/train/optimizer.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { args, flag } from './lib/args.js';

const modelName = flag('model', 'text-tiny');
const isText = modelName.startsWith('text-');
const batch = Number(flag('batch', isText ? '8' : '2'));
const steps = Number(flag('steps', '2'));
const length = Number(flag('length', '256'));
const json = args.includes('--json');
/** reversible (the default) or plain autodiff, to compare speed and peak memory. */
const mode = flag('mode', 'reversible') as 'reversible' | 'plain';
/** A vision config's changes over the preset, JSON (e.g. the release's nano network: '{"channels":[32,64,96,128],"blocks":[1,1,2,1],"columns":4}'). */
const configJson = flag('config', '');
const timing = !args.includes('--no-timing');
const cpuProfileFile = flag('cpu-profile', '');
const flagsJson = flag('flags', '');
if (args.includes('--software')) process.env[SOFTWARE_GPU_ENV] = '1';
/** --no-uniform-batch: tfjs's own uniform buffer per launch (src/backends/webgpu-dispatch.ts), to compare. */
const uniformBatch = !args.includes('--no-uniform-batch');
setUniformBatching(uniformBatch);
/** --no-bind-group-cache: a new bind group for every launch, as tfjs does (src/backends/webgpu-dispatch.ts), to compare. */
const bindGroupCache = !args.includes('--no-bind-group-cache');
setBindGroupCaching(bindGroupCache);
const gemmFlag = flag('gemm', '');
if (gemmFlag !== '' && gemmFlag !== 'on' && gemmFlag !== 'off') throw new Error(`--gemm takes on or off, got ${gemmFlag}`);
if (gemmFlag) setWebgpuGemm(gemmFlag === 'on');
const rowLanesFlag = flag('row-lanes', '');
if (rowLanesFlag !== '' && rowLanesFlag !== 'auto') setWebgpuRowLanes(Number(rowLanesFlag));
const dawnFlagsFlag = flag('dawn-flags', '');
if (dawnFlagsFlag) process.env[DAWN_FLAGS_ENV] = dawnFlagsFlag; // read when Dawn opens, below
const vec4Flag = flag('vec4', '');
if (vec4Flag !== '' && vec4Flag !== 'on' && vec4Flag !== 'off') throw new Error(`--vec4 takes on or off, got ${vec4Flag}`);
if (vec4Flag) setWebgpuVec4(vec4Flag === 'on');
const warmup = Number(flag('warmup', '3'));
/** --gpu-wait spin|yield: Dawn's own polling while a read waits, or revcol's (src/backends/dawn-polling.ts; default yield, or REVCOL_GPU_WAIT). */
const gpuWait = flag('gpu-wait', '');
if (gpuWait !== '' && gpuWait !== 'spin' && gpuWait !== 'yield') throw new Error(`--gpu-wait takes spin or yield, got ${gpuWait}`);
if (gpuWait) setGpuWaitYielding(gpuWait === 'yield');

interface ProgramStats {
  gradient: number;
  optimizer: number;
  /** Sum and minimum of threads per dispatch, over the dispatches whose workgroup size is known. */
  threads: number;
  known: number;
  minThreads: number;
}

type Phase = 'off' | 'gradient' | 'optimizer';

function commit(): string | null {
  if (process.env.REVCOL_COMMIT) return process.env.REVCOL_COMMIT;
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null; // no git here (the GPU bundle): pass REVCOL_COMMIT
  }
}

/** Each program class's name, worked out once: the hooks run on every launch, and their own cost is in the step's wall time. */
const programNames = new WeakMap<object, string>();

/** A bundler may rename a class (BinaryOpProgram2); tfjs's program classes all end in "Program". */
function programName(program: object): string {
  const ctor = program.constructor as { name?: string } | undefined;
  if (!ctor) return 'anonymous program';
  let name = programNames.get(ctor);
  if (name === undefined) {
    name = (ctor.name || 'anonymous program').replace(/(Program)\d+$/, '$1');
    programNames.set(ctor, name);
  }
  return name;
}

/** "FusedProgram[layer_norm_l8]" for each of revcol's own program keys, made once per key (the hooks run on every launch). */
const kernelNames = new Map<string, string>();

function revcolKernelName(className: string, shaderKey: string | undefined): string | undefined {
  if (typeof shaderKey !== 'string' || !shaderKey.startsWith('revcol_')) return undefined;
  let kernel = kernelNames.get(shaderKey);
  if (kernel === undefined) {
    kernel = `${className}[${shaderKey.slice('revcol_'.length)}]`;
    kernelNames.set(shaderKey, kernel);
  }
  return kernel;
}

function stop(message: string): never {
  process.stderr.write(`gpu-profile: ${message}\n`);
  process.exit(1);
}

async function openWebgpu(): Promise<string> {
  try {
    const active = await useBackend('webgpu');
    return active.adapter ?? 'unknown GPU adapter';
  } catch (err) {
    if (!(err instanceof RevcolError)) throw err;
    const status = await probeBackend('webgpu');
    if (status.software && !status.usable) {
      stop(`only a software adapter is here (${status.adapter}); pass --software (or set ${SOFTWARE_GPU_ENV}=1) to profile on it`);
    }
    stop(err.message);
  }
}

async function main(): Promise<void> {
  if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(steps) || steps < 1) stop('--batch and --steps take whole numbers ≥ 1');
  if (!Number.isInteger(warmup) || warmup < 1) stop('--warmup takes a whole number ≥ 1');
  if (mode !== 'reversible' && mode !== 'plain') stop(`--mode is reversible or plain, got '${mode}'`);
  const adapter = await openWebgpu();
  let tfFlags: Record<string, number | boolean> = {};
  if (flagsJson) {
    try {
      tfFlags = JSON.parse(flagsJson) as Record<string, number | boolean>;
    } catch {
      stop(`--flags must be JSON, got ${flagsJson}`);
    }
    for (const [name, value] of Object.entries(tfFlags)) tf.env().set(name, value);
  }
  const software = (await probeBackend('webgpu')).software === true;
  const backend = tf.backend() as unknown as {
    device: GPUDevice;
    supportTimestampQuery: boolean;
    bufferManager?: { numBytesUsed: number };
    runWebGPUProgram: (program: { workgroupSize?: number[] }, ...rest: unknown[]) => unknown;
  };
  const timestampQuery = backend.supportTimestampQuery === true;

  // --- counting hooks ------------------------------------------------------------------------
  const stats = new Map<string, ProgramStats>();
  /** The most GPU memory in live tensors (tfjs's buffer manager: bytes in use, not its pool) at any launch of a step. */
  let peakBytes = 0;
  let phase: Phase = 'off';
  let counting = true; // off for the timed step
  const programs: Array<{ name: string; workgroup: number; kernel?: string }> = []; // runWebGPUProgram calls in progress
  /** Dispatches of each of revcol's own kernels (FusedProgram[layer_norm_l8], …), which the class counts lump together. */
  const kernelDispatches = new Map<string, number>();
  const webgpuModule = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as {
    WebGPUBackend: { prototype: { runWebGPUProgram: (...a: unknown[]) => unknown } };
  };
  const proto = webgpuModule.WebGPUBackend.prototype;
  const run = proto.runWebGPUProgram;
  /** While the timed step runs: revcol's own programs are timed per kernel (FusedProgram[layer_norm]), not only per class. */
  let namingKernels = false;
  proto.runWebGPUProgram = function (this: unknown, program: unknown, ...rest: unknown[]) {
    const p = program as { workgroupSize?: number[]; shaderKey?: string };
    const w = p.workgroupSize ?? [1, 1, 1];
    const name = programName(p);
    const kernel = revcolKernelName(name, p.shaderKey);
    programs.push({ name, workgroup: (w[0] ?? 1) * (w[1] ?? 1) * (w[2] ?? 1), kernel });
    let launched: unknown = program;
    if (namingKernels && kernel) {
      // tfjs names a timed launch by program.constructor.name: a stand-in whose constructor says which kernel
      launched = Object.create(p as object);
      Object.defineProperty(launched, 'constructor', { value: { name: kernel } });
    }
    try {
      return run.call(this, launched, ...rest);
    } finally {
      programs.pop();
    }
  };
  const passProto = (globalThis as unknown as { GPUComputePassEncoder: { prototype: GPUComputePassEncoder } }).GPUComputePassEncoder.prototype;
  const dispatch = passProto.dispatchWorkgroups;
  passProto.dispatchWorkgroups = function (this: GPUComputePassEncoder, x: number, y?: number, z?: number) {
    if (counting && phase !== 'off') {
      const current = programs[programs.length - 1];
      const name = current?.name ?? '(other)';
      const e = stats.get(name) ?? { gradient: 0, optimizer: 0, threads: 0, known: 0, minThreads: Infinity };
      e[phase]++;
      if (current) {
        const threads = x * (y ?? 1) * (z ?? 1) * current.workgroup;
        e.threads += threads;
        e.known++;
        e.minThreads = Math.min(e.minThreads, threads);
      }
      stats.set(name, e);
      if (current?.kernel) kernelDispatches.set(current.kernel, (kernelDispatches.get(current.kernel) ?? 0) + 1);
    }
    const result = dispatch.call(this, x, y, z);
    if (phase !== 'off') peakBytes = Math.max(peakBytes, backend.bufferManager?.numBytesUsed ?? 0);
    return result;
  };

  // --- the model and one step ----------------------------------------------------------------
  let build: () => { step: (seed: number) => tf.Scalar; dispose: () => void; note: Record<string, unknown> };
  if (isText) {
    build = () => {
      const config = validateConfig({ ...getPreset(modelName), vocabSize: 30522, numLabels: 2, maxLength: Math.max(length, getPreset(modelName).maxLength) } as TextConfig);
      const model = new RevColText(config, 1);
      const optimizer = new AdamW(model);
      const inputIds = tf.tensor2d(Int32Array.from({ length: batch * length }, (_, i) => (i * 7919) % 30522), [batch, length], 'int32');
      const attentionMask = tf.ones([batch, length], 'int32') as tf.Tensor2D;
      const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32');
      return {
        note: { length },
        step: (seed) => {
          phase = 'gradient';
          const { loss, grads } = model.lossAndGradients({ inputIds, attentionMask, labels }, { seed, mode });
          phase = 'optimizer';
          optimizer.applyGradients(grads, 1e-3);
          phase = 'off';
          grads.forEach((g) => g.dispose());
          return loss;
        },
        dispose: () => {
          tf.dispose([inputIds, attentionMask, labels]);
          optimizer.dispose();
          model.dispose();
        },
      };
    };
  } else {
    const preset = VISION_PRESETS[modelName];
    if (!preset) stop(`unknown model '${modelName}': choose a vision preset (${Object.keys(VISION_PRESETS).join(', ')}) or a text one (text-micro, text-tiny, ...)`);
    build = () => {
      let changes: Record<string, unknown> = {};
      try {
        changes = configJson ? (JSON.parse(configJson) as Record<string, unknown>) : {};
      } catch {
        stop(`--config must be JSON, got ${configJson}`);
      }
      const model = new RevColVision({ ...preset, ...changes } as typeof preset, 1);
      const optimizer = new AdamW(model);
      const size = preset.inputSize;
      const x = tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % preset.numClasses), 'int32');
      return {
        note: { inputSize: size, ...(configJson ? { config: changes } : {}) },
        step: (seed) => {
          phase = 'gradient';
          const { loss, grads } = model.lossAndGradients(x, labels, { seed, mode });
          phase = 'optimizer';
          optimizer.applyGradients(grads, 1e-3);
          phase = 'off';
          grads.forEach((g) => g.dispose());
          return loss;
        },
        dispose: () => {
          tf.dispose([x, labels]);
          optimizer.dispose();
          model.dispose();
        },
      };
    };
  }
  const job = build();
  /** One step to its end on the GPU: the loss read back, then the queue drained. */
  const finish = async (loss: tf.Scalar): Promise<number> => {
    const value = (await loss.data())[0]!;
    loss.dispose();
    await backend.device.queue.onSubmittedWorkDone();
    return value;
  };

  // warm-up: shader compilation, buffer pools, bind groups
  for (let s = 0; s < warmup; s++) await finish(job.step(1000 * s));
  stats.clear();
  kernelDispatches.clear();
  const timedPollsBefore = gpuWaitTimedPolls();
  const groupsBefore = webgpuBindGroupStats();
  const poolBefore = webgpuPoolStats();
  const times: number[] = [];
  /** Host time to record each step's launches (until the step returns, before its loss is read). */
  const recordTimes: number[] = [];
  let lastLoss = NaN;
  const profiler = cpuProfileFile ? new Session() : null;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
  }
  // V8's collections during the measured steps: the host's recording allocates per launch
  let gcMs = 0;
  let gcCount = 0;
  const gcWatch = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcMs += entry.duration;
      gcCount++;
    }
  });
  gcWatch.observe({ entryTypes: ['gc'] });
  const cpuStart = process.cpuUsage();
  for (let s = 1; s <= steps; s++) {
    const start = performance.now();
    const loss = job.step(s);
    recordTimes.push(performance.now() - start);
    lastLoss = await finish(loss);
    times.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuStart);
  await new Promise((resolve) => setImmediate(resolve)); // the observer hears of the last collections
  gcWatch.disconnect();
  const groupsAfter = webgpuBindGroupStats();
  const poolAfter = webgpuPoolStats();
  counting = false;
  let cpuTop: Array<{ fn: string; selfMs: number }> | null = null;
  if (profiler) {
    const { profile } = (await profiler.post('Profiler.stop')) as { profile: CpuProfile };
    profiler.disconnect();
    writeFileSync(cpuProfileFile, JSON.stringify(profile));
    cpuTop = topSelfTime(profile, 30, steps);
  }

  // GPU time per program: one more step with every program timed by its own timestamp queries
  const gpuMs = new Map<string, number>();
  /** GPU ms per kernel: revcol's programs by their kernel (FusedProgram[gelu]), tfjs's by class. */
  const gpuMsByKernel = new Map<string, number>();
  let gpuTotalMs: number | null = null;
  if (timing && timestampQuery) {
    let loss: tf.Scalar | undefined;
    namingKernels = true;
    const info = await tf.time(() => {
      loss = job.step(steps + 1);
    });
    namingKernels = false;
    await finish(loss!);
    const extra = (info as { getExtraProfileInfo?: () => string }).getExtraProfileInfo?.() ?? '';
    for (const item of extra.split(', ')) {
      const at = item.lastIndexOf(': ');
      if (at < 0) continue;
      const kernel = item.slice(0, at).replace(/(Program)\d+/, '$1');
      const ms = Number(item.slice(at + 2));
      gpuMsByKernel.set(kernel, (gpuMsByKernel.get(kernel) ?? 0) + ms);
      const name = kernel.replace(/\[.*\]$/, ''); // the class, as the dispatch counts name it
      gpuMs.set(name, (gpuMs.get(name) ?? 0) + ms);
    }
    gpuTotalMs = info.kernelMs as number;
  }
  job.dispose();

  const rows = [...stats]
    .map(([name, e]) => ({
      name,
      dispatches: (e.gradient + e.optimizer) / steps,
      gradient: e.gradient / steps,
      optimizer: e.optimizer / steps,
      threadsAvg: e.known ? Math.round(e.threads / e.known) : null,
      threadsMin: e.known ? e.minThreads : null,
      ...(gpuMs.size ? { gpuMs: round3(gpuMs.get(name) ?? 0) } : {}),
    }))
    .sort((a, b) => b.dispatches - a.dispatches || a.name.localeCompare(b.name));
  const total = rows.reduce((s, r) => s + r.dispatches, 0);
  const gradientTotal = rows.reduce((s, r) => s + r.gradient, 0);
  const allThreads = [...stats.values()].reduce((s, e) => s + e.threads, 0);
  const allKnown = [...stats.values()].reduce((s, e) => s + e.known, 0);
  const sorted = [...times].sort((a, b) => a - b);
  const msPerStep = sorted[Math.floor(sorted.length / 2)]!;
  const result = {
    bench: 'gpu-profile',
    date: new Date().toISOString(),
    commit: commit(),
    adapter,
    software,
    model: modelName,
    batch,
    ...job.note,
    steps,
    mode,
    peakGpuBytes: peakBytes,
    loss: round3(lastLoss),
    dispatchesPerStep: total,
    gradientDispatchesPerStep: gradientTotal,
    optimizerDispatchesPerStep: total - gradientTotal,
    threadsPerDispatchAvg: allKnown ? Math.round(allThreads / allKnown) : null,
    msPerStep: Math.round(msPerStep),
    /** Median host time recording a step (the step's call, before the read): the wall time's floor when the GPU keeps up. */
    recordMsPerStep: round3([...recordTimes].sort((a, b) => a - b)[Math.floor(recordTimes.length / 2)]!),
    samplesPerSecond: round3((batch * 1000) / msPerStep),
    timestampQuery,
    gpuMsPerStep: gpuTotalMs === null ? null : round3(gpuTotalMs),
    /** CPU time of the whole process per measured step (all threads: JS, Dawn, the driver). */
    cpuMsPerStep: round3((cpu.user + cpu.system) / 1000 / steps),
    /** V8's garbage collections in the measured steps (pauses of the main thread), and the young generation's size after them (it grows as needed, up to --max-semi-space-size × 2). */
    gcMsPerStep: round3(gcMs / steps),
    gcPerStep: round3(gcCount / steps),
    youngGenerationMb: round3((v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0) / 2 ** 20),
    /** How the host waited for reads (spin: Dawn's polling; yield: revcol's), and the polls it put on a timer in the measured steps. */
    gpuWait: gpuWaitYielding() ? 'yield' : 'spin',
    gpuWaitTimedPollsPerStep: round3((gpuWaitTimedPolls() - timedPollsBefore) / steps),
    /** Node's own flags for this run (e.g. --max-semi-space-size), from the command line or NODE_OPTIONS. */
    nodeFlags: [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter((f) => f.startsWith('--') && !f.startsWith('--import') && !f.startsWith('--require') && !f.startsWith('--loader')),
    ...(flagsJson ? { flags: tfFlags } : {}),
    uniformBatch,
    bindGroupCache,
    gemm: webgpuGemmEnabled(),
    /** What the start-up timing found (null where it did not run: software adapter, or --gemm / REVCOL_WEBGPU_GEMM decided). */
    gemmTuning: webgpuGemmTuning(),
    /** Threads per row of the row programs, for 64-wide rows (RevCol-T's first stage) and 512-wide ones. */
    rowLanes: { 64: rowLanes(64), 512: rowLanes(512) },
    /** Whether element-wise programs took four elements a thread where the sizes allow. */
    vec4: webgpuVec4(),
    /** The options Dawn's instance was opened with (REVCOL_DAWN_FLAGS added to revcol's own). */
    dawnFlags: dawnFlags(),
    warmupSteps: warmup,
    ...(groupsBefore && groupsAfter
      ? {
          bindGroupsMadePerStep: round3((groupsAfter.created - groupsBefore.created) / steps),
          bindGroupsReusedPerStep: round3((groupsAfter.reused - groupsBefore.reused) / steps),
        }
      : {}),
    ...(poolBefore && poolAfter
      ? { poolBuffersFreedPerStep: round3((poolAfter.evicted - poolBefore.evicted) / steps), poolIdleBytes: poolAfter.idleBytes, poolHighWaterBytes: poolAfter.highWater }
      : {}),
    ...(cpuTop ? { cpuTop } : {}),
    /** Per step, each of revcol's own kernels (the programs' rows above count them by class). */
    dispatchesByKernel: Object.fromEntries([...kernelDispatches].sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, round3(v / steps)])),
    ...(gpuMsByKernel.size ? { gpuMsByKernel: Object.fromEntries([...gpuMsByKernel].sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, round3(v)])) } : {}),
    programs: rows,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`adapter: ${adapter}${software ? ' (software)' : ''}   commit: ${result.commit ?? 'unknown'}`);
  out(`model: ${modelName}${configJson ? ` ${configJson}` : ''}, batch ${batch}${isText ? ` × ${length} tokens` : ''}, ${mode}; median of ${steps} step(s) after ${warmup} warm-up step(s)`);
  out(`dispatches per step: ${total} (before the optimizer ${gradientTotal}, optimizer ${total - gradientTotal}); threads per dispatch avg ${result.threadsPerDispatchAvg ?? '?'}`);
  if (groupsBefore && groupsAfter) out(`bind groups per step: ${result.bindGroupsMadePerStep} made, ${result.bindGroupsReusedPerStep} kept from earlier steps`);
  out(`recording a step: ${result.recordMsPerStep} ms (median)`);
  if (poolBefore && poolAfter) out(`buffer pool: ${result.poolBuffersFreedPerStep} buffers freed per step; ${(poolAfter.idleBytes / 2 ** 20).toFixed(1)} MiB idle, high water ${(poolAfter.highWater / 2 ** 20).toFixed(1)} MiB in tensors`);
  out(`wall: ${result.msPerStep} ms per step, ${result.samplesPerSecond} samples/s; CPU ${result.cpuMsPerStep} ms per step; peak GPU memory in tensors ${(peakBytes / 2 ** 30).toFixed(2)} GiB`);
  if (cpuTop) out(`most CPU self time (ms per step): ${cpuTop.slice(0, 8).map((t) => `${t.fn} ${t.selfMs}`).join('; ')}`);
  out(
    gpuTotalMs !== null
      ? `GPU time (timestamp queries, one extra step): ${result.gpuMsPerStep} ms`
      : `GPU time: ${timestampQuery ? 'not measured (--no-timing)' : "the adapter has no 'timestamp-query'"}`,
  );
  out('');
  out(`${'dispatches'.padStart(10)} ${'grad'.padStart(7)} ${'optim'.padStart(7)}  ${'threads avg'.padStart(11)} ${'min'.padStart(9)}${gpuMs.size ? `  ${'GPU ms'.padStart(9)}` : ''}  program`);
  for (const r of rows) {
    out(
      `${fmt(r.dispatches, 10)} ${fmt(r.gradient, 7)} ${fmt(r.optimizer, 7)}  ${fmt(r.threadsAvg, 11)} ${fmt(r.threadsMin, 9)}${gpuMs.size ? `  ${fmt(r.gpuMs ?? 0, 9)}` : ''}  ${r.name}`,
    );
  }
  if (gpuMsByKernel.size) {
    out('');
    out(`GPU ms per kernel (revcol's by kernel): ${[...gpuMsByKernel].sort((x, y) => y[1] - x[1]).slice(0, 20).map(([k, v]) => `${k} ${round3(v)}`).join('; ')}`);
  }
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/**
 * The functions with the most self time in a V8 CPU profile, in ms per step. Native functions
 * (Dawn's bindings: no script) are named with the script function that called them.
 */
function topSelfTime(profile: CpuProfile, count: number, perSteps: number): Array<{ fn: string; selfMs: number }> {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const label = (id: number): string => {
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  };
  const names = new Map<number, string>();
  for (const n of profile.nodes) {
    let name = label(n.id);
    if (!n.callFrame.url && !n.callFrame.functionName.startsWith('(')) {
      let up = parent.get(n.id);
      while (up !== undefined && !byId.get(up)!.callFrame.url) up = parent.get(up);
      name = `${n.callFrame.functionName || '(native)'} in ${up === undefined ? '?' : label(up)}`;
    }
    names.set(n.id, name);
  }
  const self = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const name = names.get(id) ?? '?';
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([fn, us]) => ({ fn, selfMs: round3(us / 1000 / perSteps) }));
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function fmt(x: number | null | undefined, width: number): string {
  return (x === null || x === undefined ? '?' : String(Number.isInteger(x) ? x : round3(x))).padStart(width);
}

main().then(
  () => {
    releaseGpuBackend();
    process.exit(0); // a GPU device can keep the event loop alive
  },
  (err: unknown) => {
    process.stderr.write(`gpu-profile: ${err instanceof RevcolError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
