/**
 * Compute backends: find out which work on this machine and switch TensorFlow.js to one.
 *
 * Order of preference for 'auto' (fastest first): tensorflow-gpu (libtensorflow with CUDA, from
 * the optional @tensorflow/tfjs-node-gpu), webgpu (Dawn through the `webgpu` package), tensorflow
 * (libtensorflow on the CPU, from a user-installed @tensorflow/tfjs-node), wasm (XNNPACK), cpu
 * (plain JS). Probing never throws: it reports why a backend is not usable instead.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { registerResizeGradFixes } from './kernel-fixes.js';
import { registerWasmTrainingKernels } from './wasm-kernels.js';
import { registerWebgpuKernelFixes } from './webgpu-kernels.js';

export type BackendName = 'auto' | 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

/** The concrete backends, in the order 'auto' tries them. */
export const BACKEND_ORDER: readonly ConcreteBackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];
export const BACKEND_NAMES: readonly BackendName[] = ['auto', ...BACKEND_ORDER];

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

async function probeLibtensorflow(gpu: boolean): Promise<BackendStatus> {
  const name: ConcreteBackendName = gpu ? 'tensorflow-gpu' : 'tensorflow';
  const spec = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
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

async function loadDawn(): Promise<DawnModule> {
  // Dawn's Vulkan start-up wants a private runtime folder; without one it warns or stalls.
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'revcol-xdg-'));
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

async function probeWebgpu(): Promise<BackendStatus> {
  const name = 'webgpu';
  if (!vulkanLoaderPresent()) {
    return { name, usable: false, reason: 'no GPU adapter found: the Vulkan loader (libvulkan.so.1) is not installed' };
  }
  let dawn: DawnModule;
  try {
    dawn = await loadDawn();
  } catch (err) {
    return { name, usable: false, reason: `the webgpu (Dawn) module failed to load: ${firstLine(err)}` };
  }
  try {
    if (!dawnGpu) {
      Object.assign(globalThis, dawn.globals);
      dawnGpu = dawn.create([]);
    }
    const adapter = await withTimeout(
      dawnGpu.requestAdapter({ powerPreference: 'high-performance' }),
      GPU_PROBE_TIMEOUT_MS,
      'the GPU adapter request',
    );
    if (!adapter) return { name, usable: false, reason: 'no GPU adapter found (Vulkan/Dawn)' };
    const adapterLabel = adapterName(adapter);
    if (isSoftwareAdapter(adapter, adapterLabel)) {
      if (softwareGpuAllowed()) {
        return { name, usable: true, software: true, reason: `WebGPU through Dawn on a software adapter, ${adapterLabel} (${SOFTWARE_GPU_ENV}=1; 'auto' skips it)`, adapter: adapterLabel };
      }
      return { name, usable: false, software: true, reason: `only a software (CPU) adapter found: ${adapterLabel} (${SOFTWARE_GPU_ENV}=1 allows it by name, for tests)`, adapter: adapterLabel };
    }
    // The adapter holds no device; the backend requests its own when it is selected.
    return { name, usable: true, reason: `WebGPU through Dawn on ${adapterLabel}`, adapter: adapterLabel };
  } catch (err) {
    return { name, usable: false, reason: `WebGPU probe failed: ${firstLine(err)}` };
  }
}

/** Registers the tfjs webgpu backend; it only registers itself if navigator.gpu exists when imported. */
async function loadWebgpuBackend(): Promise<void> {
  if (!dawnGpu) fail("backend 'webgpu' was not probed; call useBackend('webgpu')");
  installNavigatorGpu(dawnGpu);
  const module = await import('@tensorflow/tfjs-backend-webgpu');
  registerWebgpuKernelFixes(); // the module's import registered its kernels
  if (tf.engine().registryFactory.webgpu !== undefined) return;
  // The module was imported earlier, before navigator.gpu existed: register it here.
  const gpu = dawnGpu;
  tf.registerBackend(
    'webgpu',
    async () => {
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (!adapter) throw new Error('no GPU adapter found');
      const limits = adapter.limits;
      const device = await adapter.requestDevice({
        requiredLimits: {
          maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new module.WebGPUBackend(device, (adapter as { info?: GPUAdapterInfo }).info);
    },
    3,
  );
}

// --- wasm, cpu -------------------------------------------------------------------------------

async function probeWasm(): Promise<BackendStatus> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmTrainingKernels();
    return { name: 'wasm', usable: true, reason: 'WebAssembly with XNNPACK on the CPU (SIMD where available)' };
  } catch (err) {
    return { name: 'wasm', usable: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${firstLine(err)}` };
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
  // one at a time: the libtensorflow packages must not load concurrently
  for (const name of BACKEND_ORDER) statuses.push(await probeBackend(name));
  return statuses;
}

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

function unknownBackend(name: string): never {
  fail(`unknown backend '${name}': choose auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu`);
}

async function activate(status: BackendStatus): Promise<void> {
  const { name } = status;
  if (name === 'webgpu') await loadWebgpuBackend();
  if (name === 'wasm') registerWasmTrainingKernels();
  if (name === 'cpu') registerResizeGradFixes('cpu');
  const ok = await tf.setBackend(TFJS_NAME[name]);
  if (!ok) fail(`backend '${name}' could not be started; use --backend wasm or cpu, or see 'revcol info'`);
  await tf.ready();
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
      } catch {
        continue; // e.g. a GPU that fails at device creation: fall through to the next backend
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
