/**
 * Compute backends: find out which work on this machine and switch TensorFlow.js to one.
 *
 * Order of preference for 'auto' (fastest first): tensorflow-gpu (libtensorflow with CUDA, from
 * the optional @tensorflow/tfjs-node-gpu), webgpu (Dawn through the `webgpu` package), tensorflow
 * (libtensorflow on the CPU, from a user-installed @tensorflow/tfjs-node), wasm (XNNPACK), cpu
 * (plain JS). Probing never throws: it reports why a backend is not usable instead.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { takeDeviceFailure } from '../core/reads.js';
import { rowLanesEnvironmentProblem, vec4EnvironmentProblem } from '../ops/kernels-webgpu.js';
import { installGpuWaitYielding } from './dawn-polling.js';
import { registerResizeGradFixes } from './kernel-fixes.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { describeWasmThreads, installWasmThreads, wasmThreadsInfo } from './wasm-threads.js';
import { type BindGroupCacheStats, batchUniforms, cacheBindGroups, rememberBindGroupLayouts, submitRecorded } from './webgpu-dispatch.js';
import { boundBufferPool, type PoolBound, reuseLowestBuffers } from './webgpu-memory.js';
import { tuneWebgpuGemm } from './webgpu-gemm.js';
import { registerWebgpuKernelFixes } from './webgpu-kernels.js';
import { dawnLogWanted, dawnStderrNotes, oneLine, watchGpuDevice } from './quiet-dawn.js';
import { withDawnNoticesHeld } from './native-stderr.js';

export { DAWN_LOG_ENV } from './quiet-dawn.js';
export { configureWasmThreads, MAX_WASM_THREADS, THREADS_ENV, type WasmThreadsInfo, wasmThreadsInfo } from './wasm-threads.js';
export { nativeBlasStatus, setNativeBlas } from './native-blas.js';
export { type GemmTuning, setWebgpuGemm, webgpuGemmEnabled, webgpuGemmTuning } from './webgpu-gemm.js';
export { gpuWaitYielding, setGpuWaitYielding } from './dawn-polling.js';
// the webgpu element-wise and row programs' forms, to compare on a GPU (docs/kernels.md)
export { setWebgpuRowLanes, setWebgpuVec4, webgpuVec4 } from '../ops/kernels-webgpu.js';

import { BACKEND_NAMES, BACKEND_ORDER, type BackendName, type ConcreteBackendName } from './names.js';

export { BACKEND_NAMES, BACKEND_ORDER, type BackendName, type ConcreteBackendName } from './names.js';

export interface BackendStatus {
  name: ConcreteBackendName;
  usable: boolean;
  /** One line: why it is not usable, or what it is. */
  reason: string;
  /** The GPU adapter's name, for GPU backends that found one. */
  adapter?: string;
  /** A software (CPU) GPU adapter, usable only when asked for by name with REVCOL_WEBGPU_SOFTWARE=1; 'auto' skips it. */
  software?: boolean;
}

export interface ActiveBackend {
  name: ConcreteBackendName;
  adapter?: string;
}

/** The tfjs registry name each backend runs under (both libtensorflow packages register 'tensorflow'). */
const TFJS_NAME: Record<ConcreteBackendName, string> = {
  'tensorflow-gpu': 'tensorflow',
  webgpu: 'webgpu',
  tensorflow: 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

const GPU_PROBE_TIMEOUT_MS = 15_000;

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n').find((line) => line.trim() !== '') ?? 'unknown error').trim();
}

function isModuleNotFound(err: unknown, spec: string): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (!e) return false;
  if (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'MODULE_NOT_FOUND') return false;
  return (e.message ?? '').includes(spec);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** import() of a package that may not be installed; the specifier is a variable so tsc does not resolve it. */
async function importOptional(spec: string): Promise<unknown> {
  return import(spec);
}

// --- libtensorflow (tfjs-node, tfjs-node-gpu) ------------------------------------------------

/**
 * Where the package's native addon must be, by node-pre-gyp's rule (its package.json `binary`:
 * module_path with the highest of its N-API versions this Node has); null when that cannot be
 * told (not installed, another layout), and the package is then imported to find out.
 */
function libtensorflowAddon(spec: string): string | null {
  try {
    const pkgFile = createRequire(import.meta.url).resolve(`${spec}/package.json`);
    const binary = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { binary?: { module_name?: string; module_path?: string; napi_versions?: number[] } }).binary;
    const napi = Number(process.versions.napi);
    const versions = (binary?.napi_versions ?? []).filter((v) => v <= napi);
    if (!binary?.module_name || !binary.module_path || versions.length === 0) return null;
    const dir = binary.module_path.replace('{napi_build_version}', String(Math.max(...versions)));
    return dir.includes('{') ? null : join(dirname(pkgFile), dir, `${binary.module_name}.node`);
  } catch {
    return null;
  }
}

async function probeLibtensorflow(gpu: boolean): Promise<BackendStatus> {
  const name: ConcreteBackendName = gpu ? 'tensorflow-gpu' : 'tensorflow';
  const spec = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  // Installed without its addon (its install script skipped or failed, the usual case for the
  // optional tfjs-node-gpu): say so as its own import would, without the ~0.4 s that import
  // spends loading all of @tensorflow/tfjs before it finds the addon missing.
  const addon = libtensorflowAddon(spec);
  if (addon && !existsSync(addon)) {
    return { name, usable: false, reason: `${spec} failed to load: The Node.js native addon module (tfjs_binding.node) can not be found at path: ${addon}.` };
  }
  try {
    await importOptional(spec);
  } catch (err) {
    const reason = isModuleNotFound(err, spec)
      ? gpu
        ? `${spec} is not installed (its install downloads libtensorflow; needs CUDA)`
        : `${spec} is not installed (npm install ${spec}; its install downloads libtensorflow)`
      : `${spec} failed to load: ${firstLine(err)}`;
    return { name, usable: false, reason };
  }
  if (tf.engine().registryFactory.tensorflow === undefined) {
    return {
      name,
      usable: false,
      reason: `${spec} loaded but registered with another copy of @tensorflow/tfjs-core; install the version matching @tensorflow/tfjs-core ${tf.version_core}`,
    };
  }
  if (!gpu) return { name, usable: true, reason: `libtensorflow on the CPU (${spec})` };
  try {
    // findBackend initializes the (synchronous) node backend without switching to it
    const backend = tf.findBackend('tensorflow') as unknown as { isUsingGpuDevice?: boolean } | null;
    if (backend?.isUsingGpuDevice) return { name, usable: true, reason: `libtensorflow with CUDA (${spec})` };
    return { name, usable: false, reason: `${spec} loaded but sees no CUDA GPU (check the driver, CUDA and cuDNN)` };
  } catch (err) {
    return { name, usable: false, reason: `${spec} failed to start: ${firstLine(err)}` };
  }
}

// --- WebGPU (Dawn) ---------------------------------------------------------------------------

interface DawnModule {
  create(options: string[]): GPU;
  globals: object;
}

let dawnGpu: GPU | undefined;

/** Set to 1 to let `--backend webgpu` (never 'auto') run on a software adapter such as lavapipe: for tests and kernel work. */
export const SOFTWARE_GPU_ENV = 'REVCOL_WEBGPU_SOFTWARE';

function softwareGpuAllowed(): boolean {
  return process.env[SOFTWARE_GPU_ENV] === '1';
}

/** Dawn's Vulkan start-up wants a private runtime folder; without one it warns or stalls. */
function ensureXdgRuntimeDir(): void {
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'revcol-xdg-'));
}

async function loadDawn(): Promise<DawnModule> {
  ensureXdgRuntimeDir();
  const path = process.env.DAWN_NODE;
  if (path) return createRequire(import.meta.url)(path) as DawnModule;
  return (await import('webgpu')) as unknown as DawnModule;
}

/** Dawn on Linux needs the Vulkan loader; without it Dawn only prints warnings and finds nothing. */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux' || process.env.DAWN_NODE) return true;
  const lib = 'libvulkan.so.1';
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/lib64',
    '/lib',
    '/usr/local/lib',
  ];
  try {
    for (const file of readdirSync('/etc/ld.so.conf.d')) {
      for (const line of readFileSync(join('/etc/ld.so.conf.d', file), 'utf8').split('\n')) {
        if (line.startsWith('/')) dirs.push(line.trim());
      }
    }
  } catch {
    // no ld.so.conf.d: the standard directories above are enough
  }
  if (dirs.some((dir) => existsSync(join(dir, lib)))) return true;
  for (const ldconfig of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      const out = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] });
      return out.includes(lib);
    } catch {
      // try the next location
    }
  }
  return false;
}

/** Makes `navigator.gpu` available; in Node 21+ `navigator` exists as a getter without `gpu`. */
function installNavigatorGpu(gpu: GPU): void {
  const g = globalThis as { navigator?: { gpu?: GPU } };
  const current = g.navigator;
  if (current && typeof current === 'object') {
    try {
      Object.defineProperty(current, 'gpu', { value: gpu, configurable: true, writable: true });
      if (current.gpu === gpu) return;
    } catch {
      // a frozen or exotic navigator: replace it below
    }
  }
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

function adapterName(adapter: GPUAdapter): string {
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  if (!info) return 'unknown GPU adapter';
  const parts = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ');
  return parts.trim() || 'unknown GPU adapter';
}

function isSoftwareAdapter(adapter: GPUAdapter, name: string): boolean {
  const fallback =
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ||
    (adapter as { info?: { isFallbackAdapter?: boolean } }).info?.isFallbackAdapter;
  return Boolean(fallback) || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
}

// Quiet probing. Dawn writes some notices from C++ straight to the process's stderr (fd 2):
// finding a Vulkan driver that reports more dynamic buffers than Dawn supports (lavapipe, recent
// NVIDIA drivers) it prints "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially
// reduced from 1000000 to 16 …" (and the same for storage buffers) on the first adapter request
// of each instance, and a machine without a Vulkan driver gets "Warning: vkCreateInstance …"
// lines. They come through dawn::WarningLog (fprintf to stderr), not through a logging callback
// JavaScript could set, and neither `create([...])` options nor Dawn toggles turn them off;
// Node cannot point its own fd 2 elsewhere and back (no dup2) without a native addon, and
// closing and reopening fd 2 would race with other threads and lose a redirected file's offset.
// So the probe asks for the adapter in a short-lived child Node process whose stderr is piped
// back here: the known notices are dropped, and any other line Dawn wrote becomes part of the
// one-line reason instead of reaching the terminal. It costs one Node start (~0.1 s) on top of
// Dawn's adapter discovery, and only where a Vulkan loader is installed. Should the child not
// start at all (an embedder whose process.execPath is not Node), the probe runs here as before.
// The backend itself opens Dawn in this process when webgpu is chosen: there the adapter request
// runs inside native-stderr.ts's capture (a small addon built at install where a C compiler is,
// pointing fd 2 at a file for that one synchronous call); without the addon Dawn's notice
// appears once per process.
// GPU errors of the device opened here are reported by watchGpuDevice (./quiet-dawn.ts), one line
// each on stderr. REVCOL_DAWN_LOG=1 passes the probe's stderr through unfiltered.

/** What the probing child reports about the adapter Dawn offers. */
interface ProbedAdapter {
  info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter: boolean;
  features: string[];
}

type ChildAnswer = { adapter: ProbedAdapter | null } | { loadError: string } | { error: string };

/** Runs in the child (CommonJS, `node -e`): loads Dawn, asks for an adapter, prints one JSON line. */
const PROBE_CHILD_SCRIPT = `
const spec = process.env.REVCOL_DAWN_MODULE;
const reply = (answer) => process.stdout.write(JSON.stringify(answer) + '\\n', () => process.exit(0));
(async () => {
  let dawn;
  try { dawn = spec.endsWith('.node') ? require(spec) : await import(spec); }
  catch (e) { return reply({ loadError: String((e && e.message) || e) }); }
  try {
    Object.assign(globalThis, dawn.globals);
    const adapter = await dawn.create(JSON.parse(process.env.REVCOL_DAWN_CREATE_FLAGS || '[]')).requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return reply({ adapter: null });
    const i = adapter.info || {};
    const info = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter };
    reply({ adapter: { info, isFallbackAdapter: Boolean(adapter.isFallbackAdapter), features: [...adapter.features] } });
  } catch (e) { reply({ error: String((e && e.message) || e) }); }
})();
`;

/** Where the child loads Dawn from: DAWN_NODE (the GPU bundle) or the `webgpu` package's entry. */
function dawnModuleSpec(): string {
  const path = process.env.DAWN_NODE;
  if (path) return path;
  return pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
}

/** Resolves with the child's answer and its filtered stderr; rejects only when no child could be started. */
function probeAdapterInChild(): Promise<{ answer: ChildAnswer; notes: string[] }> {
  ensureXdgRuntimeDir();
  let spec: string;
  try {
    spec = dawnModuleSpec();
  } catch (err) {
    return Promise.resolve({ answer: { loadError: firstLine(err) }, notes: [] });
  }
  const env: NodeJS.ProcessEnv = { ...process.env, REVCOL_DAWN_MODULE: spec, REVCOL_DAWN_CREATE_FLAGS: JSON.stringify(dawnFlags()) };
  delete env.NODE_OPTIONS; // a plain script: no loaders (tsx, vitest) to start
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['-e', PROBE_CHILD_SCRIPT],
      { env, encoding: 'utf8', timeout: GPU_PROBE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20, windowsHide: true },
      (err, stdout, stderr) => {
        if (dawnLogWanted()) process.stderr.write(stderr); // asked for: Dawn's lines as it wrote them
        const notes = dawnStderrNotes(stderr);
        const line = stdout.trim().split('\n').pop() ?? '';
        if (line.startsWith('{')) {
          try {
            resolve({ answer: JSON.parse(line) as ChildAnswer, notes });
            return;
          } catch {
            // fall through: report what went wrong below
          }
        }
        if (err && (err as { code?: unknown }).code === 'ENOENT') {
          reject(err);
          return;
        }
        const timedOut = err && (err as { killed?: boolean }).killed;
        const why = timedOut
          ? `the GPU adapter request did not answer within ${GPU_PROBE_TIMEOUT_MS / 1000} s`
          : `the probing process ended without an answer (${notes[notes.length - 1] ?? firstLine(err ?? 'no output')})`;
        resolve({ answer: { error: why }, notes: [] });
      },
    );
    child.on('error', reject);
  });
}

/** The old way, in this process (Dawn's notices reach stderr): for when no child process can be started. */
async function probeAdapterInProcess(): Promise<ChildAnswer> {
  let dawn: DawnModule;
  try {
    dawn = await loadDawn();
  } catch (err) {
    return { loadError: firstLine(err) };
  }
  try {
    if (!dawnGpu) {
      Object.assign(globalThis, dawn.globals);
      dawnGpu = dawn.create(dawnFlags());
      installGpuWaitYielding(); // Dawn's waits for the GPU poll on a timer after a short spin
    }
    const adapter = await withTimeout(
      withDawnNoticesHeld(() => dawnGpu!.requestAdapter({ powerPreference: 'high-performance' })),
      GPU_PROBE_TIMEOUT_MS,
      'the GPU adapter request',
    );
    if (!adapter) return { adapter: null };
    const info = (adapter as { info?: ProbedAdapter['info'] }).info ?? {};
    const fallback = Boolean((adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter);
    return { adapter: { info, isFallbackAdapter: fallback, features: [...adapter.features] } };
  } catch (err) {
    return { error: firstLine(err) };
  }
}

async function probeWebgpu(): Promise<BackendStatus> {
  const name = 'webgpu';
  if (!vulkanLoaderPresent()) {
    return { name, usable: false, reason: 'no GPU adapter found: the Vulkan loader (libvulkan.so.1) is not installed' };
  }
  const flagsProblem = dawnFlagsProblem();
  if (flagsProblem) return { name, usable: false, reason: flagsProblem };
  let answer: ChildAnswer;
  let notes: string[] = [];
  try {
    ({ answer, notes } = await probeAdapterInChild());
  } catch {
    answer = await probeAdapterInProcess();
  }
  const said = notes.length > 0 ? ` (Dawn: ${notes[notes.length - 1]})` : '';
  if ('loadError' in answer) return { name, usable: false, reason: `the webgpu (Dawn) module failed to load: ${answer.loadError}` };
  // one line: dawn.node lists the adapters it has, one a line, after a wrong adapter=NAME
  if ('error' in answer) return { name, usable: false, reason: `WebGPU probe failed: ${answer.error.replace(/\s*\n\s*/g, ' ')}` };
  if (!answer.adapter) {
    return { name, usable: false, reason: `no GPU adapter found (Vulkan/Dawn)${notes.length > 0 ? `: ${notes[notes.length - 1]}` : ''}` };
  }
  // adapterName and isSoftwareAdapter read only `info` and `isFallbackAdapter`
  const adapter = answer.adapter as unknown as GPUAdapter;
  const adapterLabel = adapterName(adapter);
  if (isSoftwareAdapter(adapter, adapterLabel)) {
    if (softwareGpuAllowed()) {
      return { name, usable: true, software: true, reason: `WebGPU through Dawn on a software adapter, ${adapterLabel} (${SOFTWARE_GPU_ENV}=1; 'auto' skips it)${said}`, adapter: adapterLabel };
    }
    return { name, usable: false, software: true, reason: `only a software (CPU) adapter found: ${adapterLabel} (${SOFTWARE_GPU_ENV}=1 allows it by name, for tests)${said}`, adapter: adapterLabel };
  }
  // No device is held: the backend opens Dawn in this process when it is selected.
  return { name, usable: true, reason: `WebGPU through Dawn on ${adapterLabel}${said}`, adapter: adapterLabel };
}

/** Extra options for Dawn's instance: `;`-separated key=value entries, as dawn.node's create() takes them. */
export const DAWN_FLAGS_ENV = 'REVCOL_DAWN_FLAGS';

/** What is wrong with REVCOL_DAWN_FLAGS, if anything (a one-line reason). */
export function dawnFlagsProblem(): string | undefined {
  const bad = extraDawnFlags().find((f) => !/^[a-z-]+=./.test(f));
  return bad === undefined
    ? undefined
    : `${DAWN_FLAGS_ENV} takes ';'-separated key=value entries (e.g. adapter=NAME, or enable-dawn-features=a,b), got '${bad}'`;
}

function extraDawnFlags(): string[] {
  return (process.env[DAWN_FLAGS_ENV] ?? '').split(';').map((f) => f.trim()).filter(Boolean);
}

/**
 * Options for the Dawn instance this process opens (and the probe's). Timestamp queries come
 * back rounded to 65.536 µs by default (a browser's guard against timing attacks, with no use in
 * Node), which would blur the GPU time of short kernels in bench/gpu-profile.ts. REVCOL_DAWN_FLAGS
 * adds dawn.node's own: `adapter=NAME` picks one of several GPUs (a wrong name lists them),
 * `enable-dawn-features=…` / `disable-dawn-features=…` set Dawn's toggles (docs/kernels.md says
 * which were measured).
 */
export function dawnFlags(): string[] {
  return ['disable-dawn-features=timestamp_quantization', ...extraDawnFlags()];
}

/** Whether the 'webgpu' factory in tfjs's registry is the one below (not the module's own). */
let ownWebgpuFactory = false;

/** The bind-group cache of the webgpu device revcol opened last (undefined: none, or caching off). */
let bindGroupStats: (() => BindGroupCacheStats) | undefined;

/** The buffer pool of the webgpu backend revcol started last. */
let poolBound: PoolBound | undefined;

/** The webgpu buffer pool's state (benches): idle bytes, the high-water mark of bytes in tensors, buffers freed so far. */
export function webgpuPoolStats(): { idleBytes: number; highWater: number; evicted: number } | undefined {
  const state = poolBound?.state();
  return state && { idleBytes: state.idleBytes, highWater: state.highWater, evicted: state.evicted };
}

/** Bind groups the current webgpu device has made and handed out again (benches); undefined when not caching. */
export function webgpuBindGroupStats(): BindGroupCacheStats | undefined {
  return bindGroupStats?.();
}

/**
 * A float32 tensor's values read at once, without a copy where the backend allows: on wasm a
 * view of its heap, valid only until the next tensor is made (copy it on straight away); a copy
 * (dataSync) elsewhere. Data-parallel steps move every parameter and gradient this way.
 */
export function float32Values(t: tf.Tensor): Float32Array {
  if (tf.getBackend() === 'wasm' && t.dtype === 'float32') {
    return (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(t);
  }
  return t.dataSync() as Float32Array;
}

/** At the end of a training step: the webgpu backend submits what it has recorded (see submitRecorded); other backends have nothing to do. */
export function endGpuStep(): void {
  if (tf.getBackend() !== 'webgpu') return;
  submitRecorded(tf.backend());
  poolBound?.endStep();
}

/** Why revcol's webgpu factory last failed (adapter or device request), for the one-line error. */
let webgpuStartError: string | undefined;

/**
 * Opens Dawn in this process and registers revcol's factory for the tfjs webgpu backend (the
 * module registers its own only if navigator.gpu exists when first imported; revcol's replaces
 * it so that the device request is always this one). The device asks for 'timestamp-query'
 * where the adapter has it: tfjs then times each program on the GPU inside tf.time/tf.profile
 * (bench/gpu-profile.ts); outside them the feature costs nothing.
 */
async function loadWebgpuBackend(): Promise<void> {
  if (!dawnGpu) {
    try {
      const dawn = await loadDawn();
      Object.assign(globalThis, dawn.globals);
      dawnGpu = dawn.create(dawnFlags());
      installGpuWaitYielding(); // Dawn's waits for the GPU poll on a timer after a short spin
    } catch (err) {
      fail(`backend 'webgpu' could not be started: the webgpu (Dawn) module failed to load: ${firstLine(err)}`);
    }
  }
  installNavigatorGpu(dawnGpu);
  const module = await import('@tensorflow/tfjs-backend-webgpu');
  registerWebgpuKernelFixes(); // the module's import registered its kernels
  if (tf.engine().registry.webgpu !== undefined) return; // already started: keep its device
  if (tf.engine().registryFactory.webgpu !== undefined) {
    if (ownWebgpuFactory) return;
    tf.removeBackend('webgpu'); // the module's own factory, not started yet
  }
  const gpu = dawnGpu;
  tf.registerBackend(
    'webgpu',
    async () => {
      webgpuStartError = undefined;
      try {
        // Dawn prints its limit notices to fd 2 inside this call: held back where the module is built
        const adapter = await withDawnNoticesHeld(() => gpu.requestAdapter({ powerPreference: 'high-performance' }));
        if (!adapter) throw new Error('no GPU adapter found');
        const limits = adapter.limits;
        const requiredFeatures: GPUFeatureName[] = adapter.features.has('timestamp-query') ? ['timestamp-query'] : [];
        const device = await adapter.requestDevice({
          requiredFeatures,
          requiredLimits: {
            maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
            maxBufferSize: limits.maxBufferSize,
            maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
            // AdamW binds 3 buffers per parameter and updates up to 16 in one dispatch (src/ops/kernels-webgpu-adam.ts)
            maxStorageBuffersPerShaderStage: Math.min(limits.maxStorageBuffersPerShaderStage, 64),
          },
        });
        // before tfjs makes its first buffer: GPU errors go to stderr as one line, not to stdout
        watchGpuDevice(device);
        rememberBindGroupLayouts(device); // before tfjs compiles its first pipeline
        bindGroupStats = cacheBindGroups(device); // launches that bind the same buffers share one bind group
        const backend = new module.WebGPUBackend(device, (adapter as { info?: GPUAdapterInfo }).info);
        batchUniforms(backend); // one uniform buffer and one write per submitted batch of launches
        reuseLowestBuffers(backend); // the same buffers each step, so that bind groups repeat
        poolBound = boundBufferPool(backend); // sizes that do not come back are freed (masked-LM logits change size every step)
        return backend;
      } catch (err) {
        // tfjs swallows a factory's error (a warning it does not print in PROD): keep it for activate's message
        webgpuStartError = oneLine(err instanceof Error ? err.message : String(err));
        throw err;
      }
    },
    3,
  );
  ownWebgpuFactory = true;
}

// --- wasm, cpu -------------------------------------------------------------------------------

async function probeWasm(): Promise<BackendStatus> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmTrainingKernels();
    installWasmThreads(); // the threaded build with every core (or --threads / REVCOL_THREADS), else tfjs's own
  } catch (err) {
    return { name: 'wasm', usable: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${firstLine(err)}` };
  }
  try {
    return { name: 'wasm', usable: true, reason: `WebAssembly with XNNPACK, ${describeWasmThreads()}` };
  } catch (err) {
    return { name: 'wasm', usable: false, reason: firstLine(err) }; // REVCOL_THREADS is not a thread count
  }
}

async function probeCpu(): Promise<BackendStatus> {
  try {
    await import('@tensorflow/tfjs-backend-cpu');
    return { name: 'cpu', usable: true, reason: 'plain JavaScript on the CPU (slowest, always there)' };
  } catch (err) {
    return { name: 'cpu', usable: false, reason: `@tensorflow/tfjs-backend-cpu failed to load: ${firstLine(err)}` };
  }
}

// --------------------------------------------------------------------------------------------

const probes: Record<ConcreteBackendName, () => Promise<BackendStatus>> = {
  'tensorflow-gpu': () => probeLibtensorflow(true),
  webgpu: probeWebgpu,
  tensorflow: () => probeLibtensorflow(false),
  wasm: probeWasm,
  cpu: probeCpu,
};

// A probe's answer does not change within a process (and re-importing would not retry anyway).
const probeCache = new Map<ConcreteBackendName, Promise<BackendStatus>>();

export function probeBackend(name: ConcreteBackendName): Promise<BackendStatus> {
  let status = probeCache.get(name);
  if (!status) {
    status = probes[name]().catch((err: unknown) => ({ name, usable: false, reason: `probe failed: ${firstLine(err)}` }));
    probeCache.set(name, status);
  }
  return status;
}

/** Probes every concrete backend, in the order 'auto' tries them. Never throws. */
export async function probeBackends(): Promise<BackendStatus[]> {
  const statuses: BackendStatus[] = [];
  // The webgpu probe runs in a child process (Dawn's adapter discovery): start it first so that
  // it overlaps the others. Those go one at a time: the libtensorflow packages must not load
  // concurrently.
  void probeBackend('webgpu');
  for (const name of BACKEND_ORDER) statuses.push(await probeBackend(name));
  return statuses;
}

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

function unknownBackend(name: string): never {
  fail(`unknown backend '${name}': choose auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu`);
}

/** The backend revcol last switched to (both libtensorflow packages run as tfjs's 'tensorflow'). */
let activated: ConcreteBackendName | undefined;

/**
 * The backend tfjs runs on now, by revcol's name: the one revcol switched to, else tfjs's own
 * name for it (a backend set with tf.setBackend); undefined when none is set yet.
 */
export function activeBackendName(): string | undefined {
  const current = tf.engine().backendName;
  if (!current) return undefined;
  return activated && TFJS_NAME[activated] === current ? activated : current;
}

const OFF_SWITCH = '0 (off) or 1 (on, the default)';

/**
 * revcol's environment variables that take a few values: the variable, the values, how the error
 * says them, and whether only webgpu reads it. Another value (REVCOL_FUSED=off, REVCOL_GPU_WAIT=off)
 * would otherwise pass for the default unnoticed.
 */
const SETTINGS: ReadonlyArray<[string, readonly string[], string, boolean]> = [
  ['REVCOL_FUSED', ['0', '1'], OFF_SWITCH, false],
  ['REVCOL_GROUPED_ADAM', ['0', '1'], OFF_SWITCH, false],
  ['REVCOL_WASM_SIMD', ['0', '1'], OFF_SWITCH, false],
  ['REVCOL_NATIVE', ['0', '1'], OFF_SWITCH, false],
  ['REVCOL_WEBGPU_GEMM', ['0', '1'], "1 (revcol's 64 × 64-tile products), 0 (tfjs's) or unset (chosen by timing)", true],
  ['REVCOL_GPU_WAIT', ['spin', 'yield'], "yield (the default) or spin (dawn.node's own polling)", true],
  ['REVCOL_BIND_GROUP_CACHE', ['0', '1'], '1 (the default) or 0', true],
  ['REVCOL_UNIFORM_BATCH', ['0', '1'], '1 (the default) or 0', true],
];

/** What is wrong with those variables for backend `name`, if anything: one line. Checked when a backend starts. */
function settingsProblem(name: ConcreteBackendName): string | undefined {
  for (const [variable, allowed, says, webgpuOnly] of SETTINGS) {
    if (webgpuOnly && name !== 'webgpu') continue;
    const v = process.env[variable];
    if (v !== undefined && v !== '' && !allowed.includes(v)) return `${variable} must be ${says}, got '${v}'`;
  }
  return name === 'webgpu' ? (rowLanesEnvironmentProblem() ?? vec4EnvironmentProblem()) : undefined;
}

async function activate(status: BackendStatus): Promise<void> {
  const { name } = status;
  const settingProblem = settingsProblem(name);
  if (settingProblem) fail(settingProblem);
  if (name === 'webgpu') await loadWebgpuBackend();
  if (name === 'wasm') {
    registerWasmTrainingKernels();
    installWasmThreads();
  }
  if (name === 'cpu') registerResizeGradFixes('cpu');
  // A failing webgpu factory makes tfjs print a warning and a stack unless PROD is set; its reason
  // is in revcol's own one line (webgpuStartError), so tfjs stays quiet for that one call.
  const prod = tf.env().getBool('PROD');
  if (name === 'webgpu' && !prod) tf.env().set('PROD', true);
  let ok: boolean;
  try {
    ok = await tf.setBackend(TFJS_NAME[name]);
  } finally {
    if (name === 'webgpu' && !prod) tf.env().set('PROD', false);
  }
  if (!ok) {
    const why = name === 'webgpu' && webgpuStartError ? `: ${webgpuStartError}` : '';
    fail(`backend '${name}' could not be started${why}; use --backend wasm or cpu, or see 'revcol info'`);
  }
  await tf.ready();
  activated = name;
  // which product kernel is faster on this GPU (src/backends/webgpu-gemm.ts): timed once per start
  if (name === 'webgpu') await tuneWebgpuGemm({ software: status.software });
  // tfjs's cpu backend prints an "install tfjs-node" banner on its first tensor: revcol chose
  // this backend knowingly, so mute that one message (tfjs's other warnings stay on)
  if (name === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  // what the wasm backend actually got: its threads, or why the threaded build did not start
  if (name === 'wasm' && wasmThreadsInfo()) status.reason = `WebAssembly with XNNPACK, ${describeWasmThreads()}`;
}

/**
 * Switches TensorFlow.js to the named backend ('auto': the first usable one in BACKEND_ORDER).
 * An unknown or unusable backend throws a RevcolError with one line saying what to do.
 */
export async function useBackend(name: string = 'auto'): Promise<ActiveBackend> {
  if (!isBackendName(name)) unknownBackend(name);
  if (name === 'auto') {
    for (const candidate of BACKEND_ORDER) {
      const status = await probeBackend(candidate);
      if (!status.usable || status.software) continue;
      try {
        await activate(status);
      } catch (err) {
        // e.g. a GPU that fails at device creation: one line saying why, then the next backend
        const why = candidate === 'webgpu' && webgpuStartError ? webgpuStartError : firstLine(err);
        process.stderr.write(`revcol: backend '${candidate}' could not be started (${why}); 'auto' goes on to the next one\n`);
        continue;
      }
      return status.adapter ? { name: candidate, adapter: status.adapter } : { name: candidate };
    }
    fail('no backend is usable here; see \'revcol info\'');
  }
  const status = await probeBackend(name);
  if (!status.usable) {
    const others = name === 'cpu' ? 'reinstall the package' : name === 'wasm' ? 'use --backend cpu' : 'use --backend wasm or cpu';
    fail(`backend '${name}' is not usable here: ${status.reason}; ${others}, or see 'revcol info'`);
  }
  await activate(status);
  return status.adapter ? { name, adapter: status.adapter } : { name };
}

/** Which backend 'auto' would pick, without switching to it. */
export async function autoBackend(): Promise<BackendStatus | undefined> {
  for (const candidate of BACKEND_ORDER) {
    const status = await probeBackend(candidate);
    if (status.usable && !status.software) return status;
  }
  return undefined;
}

/**
 * Frees a GPU device held by the webgpu backend so the process can exit promptly.
 * Safe to call when webgpu was never used.
 */
export function releaseGpuBackend(): void {
  if (!tf.engine().registry.webgpu) return;
  const backend = tf.engine().registry.webgpu as unknown as { device?: GPUDevice };
  const device = backend.device;
  if (tf.getBackend() === 'webgpu') {
    // leave tfjs on a backend that still works
    void tf.setBackend(tf.engine().registryFactory.wasm ? 'wasm' : 'cpu');
  }
  tf.removeBackend('webgpu');
  device?.destroy();
  takeDeviceFailure(); // a failure of the device let go says nothing about the next one
  bindGroupStats = undefined; // its cache and pool went with it
  poolBound = undefined;
}

/**
 * Whether an error is the wasm backend running out of memory: WebAssembly's memory stops at
 * 4 GiB, and tfjs-backend-wasm then fails with a RuntimeError rather than a message of its own.
 */
export function isWasmOutOfMemory(err: unknown): boolean {
  if (tf.getBackend() !== 'wasm' || !(err instanceof Error)) return false;
  const runtime = err instanceof WebAssembly.RuntimeError || err.name === 'RuntimeError';
  return runtime && /memory access out of bounds|out of memory|\bOOM\b|enlarge memory/i.test(err.message);
}

/**
 * The library's entry points call this when not told a backend: if nothing has chosen one yet
 * (no useBackend, no tf.setBackend, no tensor made), take 'auto'. Left alone, tfjs would
 * settle on its synchronous default, the plain-JavaScript cpu backend, about 25 times slower
 * than wasm here for matmuls; a backend someone already set is kept.
 */
export async function ensureBackend(): Promise<void> {
  if (!tf.engine().backendName) await useBackend('auto');
}
