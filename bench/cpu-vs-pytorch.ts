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
// The table gives samples/s and revcol / PyTorch, against PyTorch's best thread count.
// Appends the result to bench/results/cpu-vs-pytorch.jsonl (with the date, the commit and
// the machine's load) unless --no-record.
//
//   npm run bench -- cpu-vs-pytorch --release /work/revcol-release [--batch 32] [--steps 5]
//       [--warmup 1] [--threads 1,2] [--modes reversible,plain] [--inter-supv]
//       [--anchor-every 2] [--python /usr/bin/python3] [--release-commit SHA] [--note TEXT]
//       [--json] [--no-record]
//
// A bench, not a test: where python3, torch or the release is missing it says so in one line
// and exits 0. Debian's torch (apt-get install python3-torch) is visible to /usr/bin/python3
// only, so that is tried after `python3` on the PATH.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import type { TrainingMode } from '../src/core/gradients.js';
import { AdamW } from '../src/train/optimizer.js';
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
if (!threads.length || !threads.every((t) => Number.isInteger(t) && t >= 1)) skip(`--threads must list whole numbers ≥ 1, e.g. 1,2`);
if (!modes.length || !modes.every((m) => m === 'reversible' || m === 'plain')) skip(`--modes must list reversible and/or plain`);
if (!release) skip('no --release PATH given (a checkout of github.com/megvii-research/RevCol)');
if (!existsSync(path.join(release, 'models', 'revcol.py'))) skip(`release path ${release} is missing or has no models/revcol.py`);

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

/** revcol's step on the wasm backend: median ms of `steps` after `warmup`. */
function revcolStep(mode: TrainingMode): { parameters: number; stepMs: number[]; medianMs: number; cpuMs: number; samplesPerSec: number; lossFinite: boolean } {
  const model = new RevColVision(config, 1);
  const parameters = model.namedParameters().reduce((n, [, v]) => n + v.size, 0);
  // The release's recipe: AdamW, lr 1e-3, weight decay 0.05 (not on norms, biases, scales).
  const optimizer = new AdamW(model, { weightDecay: 0.05 });
  const x = tf.randomNormal([batch, config.inputSize, config.inputSize, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % config.numClasses), 'int32');
  let lossFinite = true;
  const step = (seed: number): void => {
    const { loss, grads } = model.lossAndGradients(x, labels, { seed, mode });
    optimizer.applyGradients(grads, 1e-3);
    lossFinite &&= Number.isFinite(loss.dataSync()[0]);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  };
  for (let s = 0; s < warmup; s++) step(s);
  const times: number[] = [];
  const cpu: number[] = [];
  for (let s = 0; s < steps; s++) {
    const start = performance.now();
    const startCpu = process.cpuUsage();
    step(warmup + s);
    times.push(performance.now() - start);
    const used = process.cpuUsage(startCpu);
    cpu.push((used.user + used.system) / 1000);
  }
  tf.dispose([x, labels]);
  optimizer.dispose();
  model.dispose();
  const m = median(times);
  return { parameters, stepMs: times.map((t) => Math.round(t * 10) / 10), medianMs: Math.round(m * 10) / 10, cpuMs: Math.round(median(cpu) * 10) / 10, samplesPerSec: Math.round((batch * 100000) / m) / 100, lossFinite };
}

const { python, info } = await findPython();
await useBackend('wasm');
const loadBefore = os.loadavg()[0]!;

const revcol: Record<string, ReturnType<typeof revcolStep>> = {};
for (const mode of modes) revcol[mode] = revcolStep(mode);
const revcolParameters = revcol[modes[0]!]!.parameters;

const pytorch: Record<string, Record<string, DriverResult>> = {};
for (const mode of modes) {
  pytorch[mode] = {};
  for (const t of threads) {
    const env = { ...process.env, OMP_NUM_THREADS: String(t), MKL_NUM_THREADS: String(t) };
    const r = await runDriver(python, [...shapeArgs, '--threads', String(t), '--mode', mode, '--steps', String(steps), '--warmup', String(warmup)], env);
    if (r.error) skip(`PyTorch run failed: ${r.error}`);
    pytorch[mode][t] = r;
  }
}
const loadAfter = os.loadavg()[0]!;
const cores = os.cpus().length;
const load = Math.max(loadBefore, loadAfter);
const loaded = load > 0.5 * cores;
const torchParameters = Object.values(Object.values(pytorch)[0]!)[0]!.parameters;

const rows = modes.map((mode) => {
  const best = threads.reduce((b, t) => ((pytorch[mode][t]!.samplesPerSec ?? 0) > (pytorch[mode][b]!.samplesPerSec ?? 0) ? t : b), threads[0]!);
  const bestSps = pytorch[mode][best]!.samplesPerSec!;
  return {
    mode,
    revcolSamplesPerSec: revcol[mode]!.samplesPerSec,
    revcolMedianMs: revcol[mode]!.medianMs,
    revcolCpuMs: revcol[mode]!.cpuMs,
    pytorch: Object.fromEntries(threads.map((t) => [t, { samplesPerSec: pytorch[mode][t]!.samplesPerSec, medianMs: pytorch[mode][t]!.medianMs, cpuMs: pytorch[mode][t]!.cpuMs }])),
    pytorchBestThreads: best,
    ratio: Math.round((revcol[mode]!.samplesPerSec / bestSps) * 1000) / 1000,
  };
});

const result = {
  date: new Date().toISOString(),
  commit: commit(),
  release: { path: path.resolve(release), commit: releaseCommit() },
  note: `${loaded ? `machine loaded (load average ${load.toFixed(1)} on ${cores} cores): timings are noisy` : `load average ${load.toFixed(1)} on ${cores} cores`}${note ? `; ${note}` : ''}`,
  loadAverage: { before: Math.round(loadBefore * 100) / 100, after: Math.round(loadAfter * 100) / 100, cores },
  config: {
    channels: config.channels, layers: config.layers, columns: config.columns, kernelSize: config.kernelSize, stemPatch: config.stemPatch,
    inputSize: config.inputSize, numClasses: config.numClasses, dropPath: config.dropPath, interSupervision: config.interSupervision,
    revcolAnchorEvery: config.anchorEvery ?? 2,
  },
  batch, steps, warmup,
  parameters: { revcol: revcolParameters, pytorch: torchParameters },
  revcol: { backend: tf.getBackend(), node: process.version, ...revcol },
  pytorch: { python: `${python} (${info.python})`, torch: info.torch, timm: info.timm, runs: pytorch },
  table: rows,
};

if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(`RevCol nano (channels ${config.channels.join(',')}; blocks ${config.layers.join(',')}; ${config.columns} columns; kernel ${config.kernelSize}; `
    + `${config.inputSize}×${config.inputSize}, stem ${config.stemPatch}; ${config.interSupervision ? 'intermediate supervision' : 'one head'}), batch ${batch}, `
    + `one training step = loss + backward + AdamW; median of ${steps} after ${warmup} warm-up`);
  out(`parameters: revcol ${revcolParameters}, PyTorch release ${torchParameters}${revcolParameters === torchParameters ? ' (same)' : ' (DIFFERENT: the configs do not match)'}`);
  out(`revcol ${tf.getBackend()} (single-threaded), node ${process.version}; PyTorch ${info.torch} on ${python} (Python ${info.python}); timm: ${info.timm}`);
  out(`commit ${result.commit ?? 'unknown'}; ${result.note}`);
  out('');
  const head = ['mode', 'revcol samples/s', ...threads.map((t) => `PyTorch ${t} thread${t > 1 ? 's' : ''}`), 'revcol / PyTorch best'];
  const body = rows.map((r) => [
    r.mode,
    `${r.revcolSamplesPerSec.toFixed(1)} (${r.revcolMedianMs} ms)`,
    ...threads.map((t) => `${r.pytorch[t]!.samplesPerSec!.toFixed(1)} (${r.pytorch[t]!.medianMs} ms)`),
    `${r.ratio.toFixed(2)} (vs ${r.pytorchBestThreads} thread${r.pytorchBestThreads > 1 ? 's' : ''})`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  out(line(head));
  out(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  body.forEach((b) => out(line(b)));
  out('');
  out(`process CPU ms per step (all threads; less disturbed by other jobs than wall time): `
    + rows.map((r) => `${r.mode}: revcol ${r.revcolCpuMs}, ${threads.map((t) => `PyTorch ${t}t ${r.pytorch[t]!.cpuMs}`).join(', ')}`).join('; '));
}
if (record) await recordResult('cpu-vs-pytorch', JSON.stringify(result));
