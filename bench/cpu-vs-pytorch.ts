// revcol (wasm backend) against the RevCol release's own PyTorch code on the CPU: the same
// training step (loss, backward, AdamW) of the same "nano" network, in one run.
//
// The network: channels 32,64,96,128; blocks 1,1,2,1; 4 columns; depthwise kernel 3; the
// release's 4×4 stride-4 stem; one classification head on the last column (no intermediate
// supervision unless --inter-supv); drop path 0; 10 classes; 32×32 inputs, batch 32. No
// revcol preset has this shape (revcol-micro-32 is the nearest: channels 24,48,96,192 and a
// 2×2 stem), so revcol builds it from a custom config; the parameter counts of both sides are
// printed and must agree.
//
// PyTorch runs bench/cpu-vs-pytorch.py, which imports the release's models/revcol.py from
// --release at run time (a checkout of megvii-research/RevCol; nothing of it is in this
// repository), at each of --threads (torch.set_num_threads), in the release's reversible mode
// (save_memory=True) and in plain autograd; revcol runs lossAndGradients in 'reversible' and
// 'plain' mode. Median step time of --steps steps after --warmup untimed ones.
// With --workers N (N ≥ 2) revcol's step is also timed data-parallel (src/vision/data-parallel-vision.ts:
// the batch in N shards, the main thread and N-1 worker threads, gradients summed, then AdamW),
// and the runs alternate so that each variant sees the same machine: per mode, revcol with 1 and
// with N workers, then PyTorch at each thread count, then revcol with N and with 1 workers
// (revcol's figure is the median over both of its blocks).
// The table gives samples/s and revcol / PyTorch, against PyTorch's best thread count.
// Appends the result to bench/results/cpu-vs-pytorch.jsonl (with the date, the commit and
// the machine's load) unless --no-record.
//
//   npm run bench -- cpu-vs-pytorch --release /work/revcol-release [--batch 32] [--steps 5]
//       [--warmup 1] [--threads 1,2] [--modes reversible,plain] [--inter-supv]
//       [--anchor-every 2] [--python /usr/bin/python3] [--release-commit SHA] [--note TEXT]
//       [--workers N] [--revcol-only] [--json] [--no-record]
//
// A bench, not a test: where python3, torch or the release is missing it says so in one line
// and exits 0 (with --revcol-only, revcol's side runs alone and needs neither). Debian's torch (apt-get install python3-torch) is visible to /usr/bin/python3
// only, so that is tried after `python3` on the PATH.
import { nativeBlasStatus } from '../src/backends/native-blas.js';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import type { TrainingMode } from '../src/core/gradients.js';
import type { DataParallel } from '../src/train/data-parallel.js';
import { AdamW } from '../src/train/optimizer.js';
import { startVisionWorkers, type VisionShard, visionShards } from '../src/vision/data-parallel-vision.js';
import { RevColVision } from '../src/vision/model.js';
import { IMAGENET_MEAN, IMAGENET_STD, type VisionConfig, validateVisionConfig } from '../src/vision/presets.js';
import { args, flag } from './lib/args.js';
import { recordResult } from './lib/record.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const driver = path.join(here, 'cpu-vs-pytorch.py');

const release = flag('release', '');
const batch = Number(flag('batch', '32'));
const steps = Number(flag('steps', '5'));
const warmup = Number(flag('warmup', '1'));
const threads = flag('threads', '1,2').split(',').map(Number);
const modes = flag('modes', 'reversible,plain').split(',') as TrainingMode[];
const interSupervision = args.includes('--inter-supv');
const anchorEvery = flag('anchor-every', '');
const note = flag('note', '');
const workers = Number(flag('workers', '1'));
const revcolOnly = args.includes('--revcol-only');
const json = args.includes('--json');
const record = !args.includes('--no-record');

/** One line and exit 0: this is a bench, a missing piece is not a failure. */
function skip(why: string): never {
  process.stdout.write(`cpu-vs-pytorch: skipped: ${why}\n`);
  process.exit(0);
}

for (const [what, v] of [['--batch', batch], ['--steps', steps]] as const) {
  if (!Number.isInteger(v) || v < 1) skip(`${what} must be a whole number ≥ 1, got ${v}`);
}
if (!Number.isInteger(warmup) || warmup < 0) skip(`--warmup must be a whole number ≥ 0, got ${warmup}`);
if (!Number.isInteger(workers) || workers < 1) skip(`--workers must be a whole number ≥ 1, got ${workers}`);
if (!threads.length || !threads.every((t) => Number.isInteger(t) && t >= 1)) skip(`--threads must list whole numbers ≥ 1, e.g. 1,2`);
if (!modes.length || !modes.every((m) => m === 'reversible' || m === 'plain')) skip(`--modes must list reversible and/or plain`);
if (!revcolOnly && !release) skip('no --release PATH given (a checkout of github.com/megvii-research/RevCol); --revcol-only times revcol alone');
if (!revcolOnly && !existsSync(path.join(release, 'models', 'revcol.py'))) skip(`release path ${release} is missing or has no models/revcol.py`);

const config: VisionConfig = validateVisionConfig({
  channels: [32, 64, 96, 128],
  layers: [1, 1, 2, 1],
  columns: 4,
  kernelSize: 3,
  numClasses: 10,
  dropPath: 0,
  interSupervision,
  inputSize: 32,
  stemPatch: 4,
  mean: [...IMAGENET_MEAN],
  std: [...IMAGENET_STD],
  ...(anchorEvery ? { anchorEvery: Number(anchorEvery) } : {}),
}, 'nano config');

/** The driver's arguments that fix the network (the same shape as `config`). */
const shapeArgs = [
  '--channels', config.channels.join(','), '--layers', config.layers.join(','), '--columns', String(config.columns),
  '--kernel', String(config.kernelSize), '--classes', String(config.numClasses), '--size', String(config.inputSize),
  '--batch', String(batch), ...(interSupervision ? ['--inter-supv'] : []),
];

interface DriverResult {
  error?: string;
  torch?: string;
  python?: string;
  timm?: string;
  blas?: string;
  threads?: number;
  mode?: string;
  parameters?: number;
  stepMs?: number[];
  medianMs?: number;
  cpuMs?: number;
  samplesPerSec?: number;
  lossFinite?: boolean;
}

/** Runs the driver; its last stdout line is JSON. Rejects with ENOENT when the interpreter is not there. */
function runDriver(python: string, extra: string[], env: NodeJS.ProcessEnv = process.env): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    execFile(python, [driver, '--release', release, ...extra], { env, maxBuffer: 1 << 24, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      try {
        resolve(JSON.parse(last) as DriverResult);
      } catch {
        resolve({ error: `${python} ${path.basename(driver)} failed: ${(stderr.trim().split('\n').pop() ?? '') || (err?.message ?? 'no output')}` });
      }
    });
  });
}

/** The first interpreter that imports torch and the release. */
async function findPython(): Promise<{ python: string; info: DriverResult }> {
  const given = flag('python', '');
  const candidates = given ? [given] : ['python3', '/usr/bin/python3'];
  const problems: string[] = [];
  for (const python of candidates) {
    try {
      const info = await runDriver(python, ['--check']);
      if (!info.error) return { python, info };
      problems.push(`${python}: ${info.error}`);
    } catch {
      problems.push(`${python}: not found`);
    }
  }
  const noTorch = problems.some((p) => /torch is not installed/.test(p));
  skip(`${noTorch ? 'PyTorch is not available' : 'python3 is not available'} (${problems.join('; ')})${noTorch ? '; on Debian: apt-get install python3-torch' : ''}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function commit(): string | null {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

function releaseCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: release, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return flag('release-commit', '') || null; // an exported tree (git archive) has no history: say it with --release-commit
  }
}

interface RevcolTiming {
  workers: number;
  parameters: number;
  stepMs: number[];
  medianMs: number;
  cpuMs: number;
  samplesPerSec: number;
  lossFinite: boolean;
  /** With workers: the main thread's ms per step writing the parameters, on its own shard, waiting for the workers, summing. */
  mainThreadMs?: { publish: number; ownShard: number; wait: number; sum: number };
}

/**
 * revcol's step in one mode on the wasm backend, on one thread or (workers > 1) data-parallel:
 * one model, its AdamW and (workers > 1) its pool of worker threads; `time(n)` runs a block of
 * `warmup` untimed then `steps` timed steps with n workers (1 or `workers`).
 */
async function revcolBench(mode: TrainingMode) {
  const model = new RevColVision(config, 1);
  const parameters = model.namedParameters().reduce((n, [, v]) => n + v.size, 0);
  // The release's recipe: AdamW, lr 1e-3, weight decay 0.05 (not on norms, biases, scales).
  const optimizer = new AdamW(model, { weightDecay: 0.05 });
  const x = tf.randomNormal([batch, config.inputSize, config.inputSize, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % config.numClasses), 'int32');
  const pool: DataParallel<VisionShard> | null = workers > 1 ? await startVisionWorkers(model, workers, { mode, labelSmoothing: 0 }) : null;
  const timed: Record<number, { ms: number[]; cpu: number[]; lossFinite: boolean }> = { 1: { ms: [], cpu: [], lossFinite: true }, [workers]: { ms: [], cpu: [], lossFinite: true } };
  let seed = 0;
  const step = async (n: number): Promise<void> => {
    // The data-parallel step cuts the batch every time, as training does.
    const { loss, grads } = n > 1 ? await pool!.lossAndGradients(visionShards(x, labels, pool!.shards), seed) : model.lossAndGradients(x, labels, { seed, mode });
    seed++;
    optimizer.applyGradients(grads, 1e-3);
    timed[n]!.lossFinite &&= Number.isFinite(loss.dataSync()[0]);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  };
  return {
    parameters,
    async time(n: number): Promise<void> {
      for (let s = 0; s < warmup; s++) await step(n);
      for (let s = 0; s < steps; s++) {
        const start = performance.now();
        const startCpu = process.cpuUsage(); // the process's: the main thread and the workers
        await step(n);
        timed[n]!.ms.push(performance.now() - start);
        const used = process.cpuUsage(startCpu);
        timed[n]!.cpu.push((used.user + used.system) / 1000);
      }
    },
    result(n: number): RevcolTiming {
      const t = timed[n]!;
      const m = median(t.ms);
      const p = pool?.timings;
      const per = (v: number) => round1(v / Math.max(p!.steps, 1));
      return {
        workers: n, parameters, stepMs: t.ms.map(round1), medianMs: round1(m), cpuMs: round1(median(t.cpu)),
        samplesPerSec: Math.round((batch * 100000) / m) / 100, lossFinite: t.lossFinite,
        ...(n > 1 && p ? { mainThreadMs: { publish: per(p.publish), ownShard: per(p.own), wait: per(p.wait), sum: per(p.sum) } } : {}),
      };
    },
    async dispose(): Promise<void> {
      await pool?.close();
      tf.dispose([x, labels]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

const found = revcolOnly ? null : await findPython();
await useBackend('wasm');
const loadBefore = os.loadavg()[0]!;
const loadSeen: number[] = [loadBefore];

/** Variants in order, alternating: revcol 1, N; PyTorch at each thread count; revcol N, 1 (with --workers 1: revcol, PyTorch, revcol). */
const revcol: Record<string, RevcolTiming> = {};
const revcolWorkers: Record<string, RevcolTiming> = {};
const pytorch: Record<string, Record<string, DriverResult>> = {};
for (const mode of modes) {
  const bench = await revcolBench(mode);
  const counts = workers > 1 ? [1, workers] : [1];
  try {
    for (const n of counts) await bench.time(n);
    loadSeen.push(os.loadavg()[0]!);
    if (found) {
      pytorch[mode] = {};
      for (const t of threads) {
        const env = { ...process.env, OMP_NUM_THREADS: String(t), MKL_NUM_THREADS: String(t) };
        const r = await runDriver(found.python, [...shapeArgs, '--threads', String(t), '--mode', mode, '--steps', String(steps), '--warmup', String(warmup)], env);
        if (r.error) skip(`PyTorch run failed: ${r.error}`);
        pytorch[mode][t] = r;
        loadSeen.push(os.loadavg()[0]!);
      }
    }
    for (const n of [...counts].reverse()) await bench.time(n);
    revcol[mode] = bench.result(1);
    if (workers > 1) revcolWorkers[mode] = bench.result(workers);
  } finally {
    await bench.dispose();
  }
}
const revcolParameters = revcol[modes[0]!]!.parameters;
const loadAfter = os.loadavg()[0]!;
loadSeen.push(loadAfter);
const cores = os.cpus().length;
const load = Math.max(...loadSeen);
const loaded = load > 0.5 * cores;
const torchParameters = found ? Object.values(Object.values(pytorch)[0]!)[0]!.parameters : null;

const rows = modes.map((mode) => {
  const own = revcol[mode]!;
  const dp = revcolWorkers[mode];
  if (!found) return { mode, revcolSamplesPerSec: own.samplesPerSec, revcolMedianMs: own.medianMs, revcolCpuMs: own.cpuMs, ...(dp ? { revcolWorkers: { workers, samplesPerSec: dp.samplesPerSec, medianMs: dp.medianMs, cpuMs: dp.cpuMs } } : {}) };
  const best = threads.reduce((b, t) => ((pytorch[mode]![t]!.samplesPerSec ?? 0) > (pytorch[mode]![b]!.samplesPerSec ?? 0) ? t : b), threads[0]!);
  const bestSps = pytorch[mode]![best]!.samplesPerSec!;
  return {
    mode,
    revcolSamplesPerSec: own.samplesPerSec,
    revcolMedianMs: own.medianMs,
    revcolCpuMs: own.cpuMs,
    ...(dp ? { revcolWorkers: { workers, samplesPerSec: dp.samplesPerSec, medianMs: dp.medianMs, cpuMs: dp.cpuMs } } : {}),
    pytorch: Object.fromEntries(threads.map((t) => [t, { samplesPerSec: pytorch[mode]![t]!.samplesPerSec, medianMs: pytorch[mode]![t]!.medianMs, cpuMs: pytorch[mode]![t]!.cpuMs }])),
    pytorchBestThreads: best,
    /** revcol on one thread / PyTorch's best. */
    ratio: Math.round((own.samplesPerSec / bestSps) * 1000) / 1000,
    /** revcol with N workers / PyTorch's best. */
    ...(dp ? { ratioWorkers: Math.round((dp.samplesPerSec / bestSps) * 1000) / 1000 } : {}),
  };
});

const result = {
  date: new Date().toISOString(),
  commit: commit(),
  release: found ? { path: path.resolve(release), commit: releaseCommit() } : null,
  note: `${loaded ? `machine loaded (load average up to ${load.toFixed(1)} on ${cores} cores): timings are noisy` : `load average up to ${load.toFixed(1)} on ${cores} cores`}${found ? '' : '; revcol only (--revcol-only)'}${note ? `; ${note}` : ''}`,
  loadAverage: { before: Math.round(loadBefore * 100) / 100, after: Math.round(loadAfter * 100) / 100, max: Math.round(load * 100) / 100, cores },
  config: {
    channels: config.channels, layers: config.layers, columns: config.columns, kernelSize: config.kernelSize, stemPatch: config.stemPatch,
    inputSize: config.inputSize, numClasses: config.numClasses, dropPath: config.dropPath, interSupervision: config.interSupervision,
    revcolAnchorEvery: config.anchorEvery ?? 2,
  },
  batch, steps, warmup, workers,
  order: `per mode: revcol${workers > 1 ? ` 1, ${workers} workers` : ''}${found ? `; PyTorch ${threads.join(', ')} threads` : ''}; revcol${workers > 1 ? ` ${workers}, 1 workers` : ' again'}`,
  parameters: { revcol: revcolParameters, pytorch: torchParameters },
  revcol: { backend: tf.getBackend(), products: nativeBlasStatus(), node: process.version, ...revcol },
  ...(workers > 1 ? { revcolWorkers } : {}),
  pytorch: found ? { python: `${found.python} (${found.info.python})`, torch: found.info.torch, timm: found.info.timm, blas: found.info.blas, runs: pytorch } : null,
  table: rows,
};

if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  const info = found?.info;
  out(`RevCol nano (channels ${config.channels.join(',')}; blocks ${config.layers.join(',')}; ${config.columns} columns; kernel ${config.kernelSize}; `
    + `${config.inputSize}×${config.inputSize}, stem ${config.stemPatch}; ${config.interSupervision ? 'intermediate supervision' : 'one head'}), batch ${batch}, `
    + `one training step = loss + backward + AdamW; median of ${steps} after ${warmup} warm-up${workers > 1 ? ` (revcol: of both its blocks, ${2 * steps} steps)` : ''}`);
  out(`parameters: revcol ${revcolParameters}${found ? `, PyTorch release ${torchParameters}${revcolParameters === torchParameters ? ' (same)' : ' (DIFFERENT: the configs do not match)'}` : ''}`);
  out(`revcol ${tf.getBackend()} (one thread${workers > 1 ? `, and ${workers} data-parallel workers of one thread each` : ''}; products: ${nativeBlasStatus()}), node ${process.version}`
    + (info ? `; PyTorch ${info.torch} on ${found!.python} (Python ${info.python}); timm: ${info.timm}; BLAS: ${info.blas ?? 'not reported'}` : '; PyTorch not run (--revcol-only)'));
  out(`commit ${result.commit ?? 'unknown'}; ${result.note}; order: ${result.order}`);
  out('');
  const head = ['mode', 'revcol 1 thread', ...(workers > 1 ? [`revcol ${workers} workers`] : []), ...(found ? threads.map((t) => `PyTorch ${t} thread${t > 1 ? 's' : ''}`) : []), ...(found ? ['revcol / PyTorch best'] : [])];
  const body = rows.map((r) => {
    const p = 'pytorch' in r ? r : null;
    const ratio = p ? `${p.ratio.toFixed(2)}${'ratioWorkers' in p ? `; ${workers} workers ${p.ratioWorkers!.toFixed(2)}` : ''} (vs ${p.pytorchBestThreads} thread${p.pytorchBestThreads > 1 ? 's' : ''})` : '';
    return [
      r.mode,
      `${r.revcolSamplesPerSec.toFixed(1)} (${r.revcolMedianMs} ms)`,
      ...(r.revcolWorkers ? [`${r.revcolWorkers.samplesPerSec.toFixed(1)} (${r.revcolWorkers.medianMs} ms)`] : []),
      ...(p ? threads.map((t) => `${p.pytorch[t]!.samplesPerSec!.toFixed(1)} (${p.pytorch[t]!.medianMs} ms)`) : []),
      ...(p ? [ratio] : []),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  out(line(head));
  out(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  body.forEach((b) => out(line(b)));
  out('');
  out(`process CPU ms per step (all threads; less disturbed by other jobs than wall time): `
    + rows.map((r) => `${r.mode}: revcol ${r.revcolCpuMs}${r.revcolWorkers ? `, revcol ${workers} workers ${r.revcolWorkers.cpuMs}` : ''}`
      + ('pytorch' in r ? `, ${threads.map((t) => `PyTorch ${t}t ${r.pytorch[t]!.cpuMs}`).join(', ')}` : '')).join('; '));
  if (workers > 1) {
    out(`revcol ${workers} workers, the main thread's ms per step (writing the parameters, its own shard, waiting for the workers, summing the gradients): `
      + modes.map((m) => { const t = revcolWorkers[m]!.mainThreadMs!; return `${m}: ${t.publish}, ${t.ownShard}, ${t.wait}, ${t.sum}`; }).join('; '));
  }
}
if (record) await recordResult('cpu-vs-pytorch', JSON.stringify(result));
