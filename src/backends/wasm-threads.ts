/**
 * Every core for the wasm backend: tfjs-backend-wasm's threaded SIMD build in Node.
 *
 * tfjs-backend-wasm ships a build whose XNNPACK runs matmuls and convolutions on a pthread pool
 * (Emscripten pthreads over worker_threads), but turns it off in Node: its start-up hands
 * Emscripten a `blob:` URL for the pthread worker script and a Blob for the main script, and
 * neither can be loaded by Node's worker_threads (`new Worker('blob:…')` is ERR_WORKER_PATH; a
 * worker cannot read a blob: URL made in another thread). revcol starts that build itself:
 *
 * - The Emscripten factory of the threaded build and the pthread worker script are read from the
 *   installed package's Node bundle (dist/tf-backend-wasm.node.js), where both are plain text;
 *   the few names the factory takes from the bundle around it (its `require$$N` modules, three
 *   tslib helpers) are supplied in a prelude of our own. Anything unexpected there (another
 *   package version laid out differently) leaves the single-threaded build in charge.
 * - The factory is evaluated here with its `Worker` bound to a worker_threads Worker that runs the
 *   worker script from a string (`eval: true`, no loader flags inherited) and, when Emscripten
 *   asks the worker to load the main script, evaluates the factory text it got as workerData:
 *   nothing is written to disk, no global (URL, Blob, Worker) is patched.
 * - The module is then wrapped by tfjs's own BackendWasm (exported by the package), after
 *   setThreadsCount(n): XNNPACK's pthreadpool gets n threads, this one included.
 *
 * Whatever fails on the way (no SharedArrayBuffer, workers refused, a worker that dies loading)
 * is caught before the backend exists, and tfjs's own factory, the single-threaded SIMD build,
 * starts instead; the reason is kept for the backend's status line.
 *
 * The memory of the threaded build is a growable SharedArrayBuffer. Growth made by this thread
 * refreshes the module's HEAP views (as in the single-threaded build); growth made by another
 * thread would leave them short, so the module's HEAP* properties are made to check the current
 * buffer on each read. revcol's kernels and tfjs's own code, which take views through
 * `typedArrayFromHeap` and `HEAPU8.buffer`, thus always see the whole memory.
 *
 * The pthread workers are unref'd once running: they only work while this thread waits for
 * them inside a kernel, so they must not keep the process alive after the last task.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Worker as NodeWorker, type WorkerOptions } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';

/** Environment variable with the number of threads for the wasm backend (1: the single-threaded build). */
export const THREADS_ENV = 'REVCOL_THREADS';

/** The most threads asked for that revcol accepts (far above any CPU it runs on). */
export const MAX_WASM_THREADS = 256;

/** The most threads tfjs-backend-wasm's pool takes (backend.cc caps it at the 8 workers Emscripten starts with). */
export const XNNPACK_MAX_THREADS = 8;

/** How long the threaded build may take to start (its workers compile the module's JS) before revcol gives up on it. */
const START_TIMEOUT_MS = 60_000;

type ThreadSource = 'argument' | 'env' | 'default';

interface ThreadRequest {
  threads: number;
  source: ThreadSource;
}

/** What the wasm backend got once started. */
export interface WasmThreadsInfo {
  /** Threads XNNPACK uses (this one included). */
  threads: number;
  /** Whether the threaded build runs (false: the single-threaded SIMD build). */
  threaded: boolean;
  /** Threads that were asked for, and who asked. */
  requested: number;
  source: ThreadSource;
  /** Why the threaded build is not running, when more than one thread was asked for. */
  fallback?: string;
}

let configured: number | undefined;
let started: WasmThreadsInfo | undefined;
let installed = false;

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n').find((line) => line.trim() !== '') ?? 'unknown error').trim();
}

function parseThreads(value: string, what: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS) {
    fail(`${what} must be a whole number of threads from 1 to ${MAX_WASM_THREADS}, not '${value}'`);
  }
  return n;
}

/**
 * The thread count the wasm backend will start with: configureWasmThreads(n), else
 * REVCOL_THREADS, else 1. One thread stays the default because more measured slower on the
 * 2-core machine this is developed on: `npm run bench -- train-step` with REVCOL_THREADS=2
 * against 1, alternating, took 3.5–4.3 s against 1.5–1.8 s a text-tiny step and 1.0 s against
 * 0.46–0.69 s a revcol-nano-32 step (XNNPACK's pool waits on the cores the main thread's JS
 * kernels and everything else need). Ask for threads where cores are spare.
 */
export function requestedWasmThreads(): ThreadRequest {
  if (configured !== undefined) return { threads: configured, source: 'argument' };
  const env = process.env[THREADS_ENV];
  if (env !== undefined && env.trim() !== '') return { threads: parseThreads(env, THREADS_ENV), source: 'env' };
  return { threads: 1, source: 'default' };
}

/** The machine's cores (at most the wasm backend's limit): what to ask for with REVCOL_THREADS on an idle machine. */
export function availableWasmThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), MAX_WASM_THREADS));
}

/**
 * Sets how many threads the wasm backend uses (default: REVCOL_THREADS, else 1); 1 runs the
 * single-threaded build. Call it before the wasm backend
 * starts (before useBackend('wasm'|'auto')); afterwards only the count it started with is
 * accepted. A count that is not a whole number from 1 to 256 is a RevcolError.
 */
export function configureWasmThreads(n?: number): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS)) {
    fail(`the number of threads must be a whole number from 1 to ${MAX_WASM_THREADS}, not '${n}'`);
  }
  const previous = configured;
  configured = n;
  const want = requestedWasmThreads().threads;
  // started by revcol with another count, or by tfjs's own factory (tf.setBackend('wasm') before any probe): single-threaded
  const running = started ?? (tf.engine().registry.wasm !== undefined ? { threads: 1, requested: 1 } : undefined);
  if (running && want !== running.requested) {
    configured = previous;
    fail(`the wasm backend has already started with ${running.threads} thread${running.threads === 1 ? '' : 's'}; set the number of threads before it starts`);
  }
}

/** What the started wasm backend runs with; undefined before it starts (or when revcol did not start it). */
export function wasmThreadsInfo(): WasmThreadsInfo | undefined {
  return started;
}

/** One phrase for the backend's status line: "SIMD, 2 threads", "SIMD, 1 thread (REVCOL_THREADS=1)"... */
export function describeWasmThreads(info: WasmThreadsInfo | undefined = started): string {
  const plural = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
  if (info) {
    if (info.threaded) return `SIMD, ${plural(info.threads)}${info.requested > info.threads ? ` (of ${info.requested} asked for: tfjs-backend-wasm takes at most ${XNNPACK_MAX_THREADS})` : ''}`;
    if (info.requested === 1) return `SIMD, 1 thread (${info.source === 'env' ? `${THREADS_ENV}=1` : info.source === 'argument' ? 'asked for' : `the default; ${THREADS_ENV}=${availableWasmThreads()} for every core`})`;
    return `SIMD, 1 thread (the threaded build did not start: ${info.fallback ?? 'unknown reason'})`;
  }
  const want = requestedWasmThreads();
  if (want.threads === 1) return describeWasmThreads({ threads: 1, threaded: false, requested: 1, source: want.source });
  const problem = threadedBuildProblem();
  if (problem) return describeWasmThreads({ threads: 1, threaded: false, requested: want.threads, source: want.source, fallback: problem });
  return describeWasmThreads({ threads: Math.min(want.threads, XNNPACK_MAX_THREADS), threaded: true, requested: want.threads, source: want.source });
}

// --- what the threaded build needs -----------------------------------------------------------

const require = createRequire(import.meta.url);

interface ThreadedSources {
  /** The package's dist folder (the .wasm files). */
  dist: string;
  /** `var WasmBackendModuleThreadedSimd = (function () {...})();`, the Emscripten factory. */
  factory: string;
  /** Declarations of the names the factory takes from the bundle around it. */
  prelude: string;
  /** Emscripten's pthread worker script (for Node and browsers alike). */
  worker: string;
}

let sources: ThreadedSources | Error | undefined;

/** The config entry with the number of workers Emscripten starts with (one per thread besides this one). */
const POOL_SIZE_KEY = 'revcolPthreadPoolSize';

/** Our own versions of the tslib helpers the bundled factory calls (all it needs of them). */
const HELPERS: Record<string, string> = {
  __values: 'function __values(o) { return o[Symbol.iterator](); }',
  __read:
    'function __read(o, n) { var out = []; var it = o[Symbol.iterator](); for (var r; (n === undefined || n-- > 0) && !(r = it.next()).done;) out.push(r.value); return out; }',
  __spreadArray: 'function __spreadArray(to, from) { return to.concat(Array.prototype.slice.call(from)); }',
};

function readThreadedSources(): ThreadedSources {
  const main = require.resolve('@tensorflow/tfjs-backend-wasm');
  const dist = dirname(main);
  const bundle = readFileSync(main, 'utf8');
  const start = bundle.indexOf('var WasmBackendModuleThreadedSimd = (function () {');
  const end = start < 0 ? -1 : bundle.indexOf('module.exports = WasmBackendModuleThreadedSimd;', start);
  if (start < 0 || end < 0) throw new Error(`the threaded factory was not found in ${main}`);
  // Emscripten starts a fixed pool of workers (8) whatever the count: let the config say how many
  const factory = bundle
    .slice(start, end)
    .trim()
    .replace(/\bvar pthreadPoolSize = (\d+);/, `var pthreadPoolSize = Module[${JSON.stringify(POOL_SIZE_KEY)}] ?? $1;`);
  if (!factory.endsWith('})();')) throw new Error(`the threaded factory in ${main} does not end as expected`);
  const workerLiteral = /^var wasmWorkerContents = ("(?:[^"\\\n]|\\.)*");$/m.exec(bundle);
  if (!workerLiteral) throw new Error(`the pthread worker script was not found in ${main}`);
  // as tfjs does before making its Blob: the text's escaped newlines ("\n" in string literals) stay escaped
  const worker = (JSON.parse(workerLiteral[1]) as string).replace(/\n/g, '\\n');

  const lines: string[] = [];
  const modules = new Map([...bundle.matchAll(/^var (require\$\$\d+) = require\('([^']+)'\);$/gm)].map((m) => [m[1], m[2]]));
  for (const name of new Set(factory.match(/\brequire\$\$\d+\b/g) ?? [])) {
    const spec = modules.get(name);
    if (!spec) throw new Error(`the threaded factory uses ${name}, which the bundle does not declare as a module`);
    lines.push(`var ${name} = require(${JSON.stringify(spec)});`);
  }
  const bundleHelpers = new Set([...bundle.matchAll(/^function (__[A-Za-z]+)\(/gm)].map((m) => m[1]));
  for (const name of bundleHelpers) {
    if (!new RegExp(`\\b${name}\\(`).test(factory)) continue;
    const helper = HELPERS[name];
    if (!helper) throw new Error(`the threaded factory uses the helper ${name}, which revcol does not provide`);
    lines.push(helper);
  }
  return { dist, factory, prelude: lines.join('\n'), worker };
}

function threadedSources(): ThreadedSources {
  if (sources === undefined) {
    try {
      sources = readThreadedSources();
    } catch (err) {
      sources = err instanceof Error ? err : new Error(String(err));
    }
  }
  if (sources instanceof Error) throw sources;
  return sources;
}

/** Why the threaded build cannot run here, or undefined when it may (whether it starts is known only by starting it). */
export function threadedBuildProblem(): string | undefined {
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return 'no SharedArrayBuffer';
  const permission = (process as { permission?: { has(scope: string): boolean } }).permission;
  if (permission && !permission.has('worker')) return 'worker threads are not permitted (--allow-worker)';
  try {
    // a shared memory as large as the threaded build's (up to 4 GiB) must be possible
    new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true } as WebAssembly.MemoryDescriptor);
  } catch (err) {
    return `no shared WebAssembly memory: ${firstLine(err)}`;
  }
  try {
    threadedSources();
  } catch (err) {
    return firstLine(err);
  }
  return undefined;
}

// --- starting it -----------------------------------------------------------------------------

/** What mainScriptUrlOrBlob names: the worker evaluates its workerData instead of loading a file. */
const MAIN_SCRIPT = 'revcol:tfjs-backend-wasm-threaded-simd.js';
const MAIN_SCRIPT_KEY = 'revcolWasmMainScript';

/** Runs after Emscripten's worker script in each worker: load the main script from workerData. */
const WORKER_EPILOGUE = `
;(function () {
  var mainScript = require('node:worker_threads').workerData[${JSON.stringify(MAIN_SCRIPT_KEY)}];
  var load = globalThis.importScripts;
  globalThis.importScripts = function (file) {
    if (file !== ${JSON.stringify(MAIN_SCRIPT)}) return load(file);
    (0, eval)(mainScript + '\\n//# sourceURL=' + file);
  };
})();
//# sourceURL=revcol:tfjs-backend-wasm-threaded-simd.worker.js
`;

interface PThreadApi {
  unusedWorkers: NodeWorker[];
  runningWorkers: NodeWorker[];
  allocateUnusedWorker(): void;
  loadWasmModuleToWorker(worker: NodeWorker, onFinishedLoading?: (worker: NodeWorker) => void): void;
  terminateAllThreads(): void;
}

/** The Emscripten module, as BackendWasm wants it. */
interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  PThread: PThreadApi;
  wasmMemory?: WebAssembly.Memory;
  tfjs?: Record<string, (...args: number[]) => number>;
  [key: string]: unknown;
}

type EmscriptenFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;

/**
 * One attempt to start: an error in any of its workers before the backend exists fails the
 * attempt instead of the process (and after a failed attempt, its workers' errors go nowhere).
 */
interface Attempt {
  started: boolean;
  fail(err: unknown): void;
}

function workerClass(src: ThreadedSources, attempt: Attempt): new (path: string) => NodeWorker {
  const mainScript = `${src.prelude}\nvar commonjsGlobal = globalThis;\n${src.factory}\n`;
  const options: WorkerOptions = {
    eval: true,
    workerData: { [MAIN_SCRIPT_KEY]: mainScript },
    // no --import/--require loaders (tsx, test runners): the script needs none, and each worker would start them
    execArgv: [],
    name: 'revcol-wasm-pthread',
  };
  const script = src.worker + WORKER_EPILOGUE;
  return class PthreadWorker extends NodeWorker {
    constructor(_path: string) {
      super(script, options);
    }

    // Emscripten rethrows a worker's error on this thread; until the backend has started, the attempt fails instead.
    override on(event: string | symbol, listener: (...args: any[]) => void): this {
      if (event !== 'error') return super.on(event, listener);
      return super.on(event, (err: unknown) => {
        if (attempt.started) listener(err);
        else attempt.fail(new Error(`a pthread worker failed: ${firstLine(err)}`));
      });
    }
  };
}

/**
 * The factory, evaluated in a scope of its own: `Worker` is the class above; `commonjsGlobal` is an
 * object of its own (the factory sets `commonjsGlobal.Worker`, which would replace globalThis.Worker);
 * its `os` counts 2 × `threads` logical cores. The C++ side (backend.cc) caps the pool it creates
 * at half the logical cores Emscripten reports (taking them for hyper-threads), and at 8: the
 * count asked for is thus the count it gets, up to 8.
 */
function makeFactory(src: ThreadedSources, Worker: new (path: string) => NodeWorker, threads: number): EmscriptenFactory {
  const os = require('node:os') as typeof import('node:os');
  const cores = os.cpus();
  const logicalCores = Array.from({ length: 2 * threads }, (_, i) => cores[i % Math.max(1, cores.length)]);
  const osForFactory = { ...os, cpus: () => logicalCores };
  const requireForFactory = (spec: string): unknown => (spec === 'os' || spec === 'node:os' ? osForFactory : require(spec));
  const body = `${src.prelude}\n${src.factory}\nreturn WasmBackendModuleThreadedSimd;`;
  const make = new Function('require', 'Worker', 'commonjsGlobal', '__dirname', '__filename', body) as (...args: unknown[]) => EmscriptenFactory;
  return make(requireForFactory, Worker, {}, src.dist, join(src.dist, 'tf-backend-wasm.node.js'));
}

/** Makes the HEAP* views of the module follow its memory when another thread has grown it. */
function keepHeapViewsCurrent(module: EmscriptenModule): void {
  const memory = module.wasmMemory;
  if (!memory) return;
  const kinds = {
    HEAP8: Int8Array,
    HEAPU8: Uint8Array,
    HEAP16: Int16Array,
    HEAPU16: Uint16Array,
    HEAP32: Int32Array,
    HEAPU32: Uint32Array,
    HEAPF32: Float32Array,
    HEAPF64: Float64Array,
  } as const;
  for (const [name, View] of Object.entries(kinds)) {
    let view = module[name] as ArrayBufferView;
    Object.defineProperty(module, name, {
      configurable: true,
      enumerable: true,
      get() {
        const buffer = memory.buffer;
        if (view.buffer !== buffer) view = new View(buffer);
        return view;
      },
      set(value: ArrayBufferView) {
        view = value;
      },
    });
  }
}

function loadWorker(pthread: PThreadApi, worker: NodeWorker): Promise<void> {
  return new Promise((resolve) => pthread.loadWasmModuleToWorker(worker, () => resolve()));
}

type ProcessListeners = Record<'uncaughtException' | 'unhandledRejection', Function[]>;

function processListeners(): ProcessListeners {
  return { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') };
}

/** Removes the process listeners Emscripten added during a failed attempt. */
function removeAddedListeners(before: ProcessListeners): void {
  for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
    for (const listener of process.listeners(event as 'uncaughtException')) {
      if (!before[event].includes(listener)) process.removeListener(event as 'uncaughtException', listener as NodeJS.UncaughtExceptionListener);
    }
  }
}

/** Starts the threaded build with `threads` threads; rejects (leaving nothing running) when it cannot. */
async function startThreaded(threads: number): Promise<tf.KernelBackend> {
  const src = threadedSources();
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const listenersBefore = processListeners();
  let reject!: (err: unknown) => void;
  const failed = new Promise<never>((_, r) => {
    reject = r;
  });
  failed.catch(() => undefined);
  const attempt: Attempt = {
    started: false,
    fail: (err) => reject(err),
  };
  const config: Record<string, unknown> = {
    locateFile: (path: string, prefix: string) => {
      if (path.endsWith('.worker.js')) return path; // the worker class ignores it
      if (path.endsWith('.wasm')) return join(src.dist, 'tfjs-backend-wasm-threaded-simd.wasm');
      return prefix + path;
    },
    mainScriptUrlOrBlob: MAIN_SCRIPT,
    [POOL_SIZE_KEY]: threads - 1,
    onAbort: (what: unknown) => attempt.fail(new Error(`Emscripten aborted: ${String(what)}`)),
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, r) => {
    timer = setTimeout(() => r(new Error(`it did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    timer.unref();
  });
  timeout.catch(() => undefined);
  try {
    const factory = makeFactory(src, workerClass(src, attempt), threads);
    const module = await Promise.race([factory(config), failed, timeout]);
    module.tfjs = {
      init: module.cwrap('init', null, []),
      initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: module.cwrap('get_threads_count', 'number', []),
      registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: module.cwrap('dispose_data', null, ['number']),
      dispose: module.cwrap('dispose', null, []),
    };
    // pthreadpool waits (blocking this thread) for its threads to start: each needs a worker that has already loaded
    const pthread = module.PThread;
    const loading: Promise<void>[] = [];
    while (pthread.unusedWorkers.length < threads - 1) {
      pthread.allocateUnusedWorker();
      loading.push(loadWorker(pthread, pthread.unusedWorkers[pthread.unusedWorkers.length - 1]));
    }
    await Promise.race([Promise.all(loading), failed, timeout]);
    wasm.setThreadsCount(threads);
    const backend = new wasm.BackendWasm(module as never);
    attempt.started = true;
    // workers XNNPACK's pool did not take (where the pool size could not be set): let them go
    for (const worker of pthread.unusedWorkers.splice(0)) void worker.terminate();
    for (const worker of pthread.runningWorkers) worker.unref();
    keepHeapViewsCurrent(module);
    return backend as unknown as tf.KernelBackend;
  } catch (err) {
    const pthread = (config.PThread as PThreadApi | undefined) ?? undefined;
    try {
      pthread?.terminateAllThreads();
      for (const worker of pthread?.unusedWorkers.splice(0) ?? []) void worker.terminate();
    } catch {
      // nothing more to stop
    }
    removeAddedListeners(listenersBefore);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Puts revcol's factory for the 'wasm' backend in place of tfjs-backend-wasm's own (which it
 * keeps, for the single-threaded build): the threaded build with the configured thread count
 * when more than one thread is asked for and it starts, else tfjs's. Call after importing
 * @tensorflow/tfjs-backend-wasm; does nothing once done, or when the backend has already started.
 */
export function installWasmThreads(): void {
  if (installed) return;
  const engine = tf.engine();
  const entry = engine.registryFactory.wasm as { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number } | undefined;
  if (!entry || engine.registry.wasm !== undefined) return;
  installed = true;
  const original = entry.factory;
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      const want = requestedWasmThreads();
      let fallback: string | undefined;
      if (want.threads > 1) {
        fallback = threadedBuildProblem();
        if (!fallback) {
          try {
            const backend = await startThreaded(Math.min(want.threads, XNNPACK_MAX_THREADS));
            const wasm = await import('@tensorflow/tfjs-backend-wasm');
            started = { threads: wasm.getThreadsCount(), threaded: true, requested: want.threads, source: want.source };
            return backend;
          } catch (err) {
            fallback = firstLine(err);
          }
        }
      }
      const backend = await original();
      started = { threads: 1, threaded: false, requested: want.threads, source: want.source, ...(fallback ? { fallback } : {}) };
      return backend;
    },
    entry.priority,
  );
}
