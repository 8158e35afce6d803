/**
 * The backends' names, apart from src/backends/index.ts so that the CLI can declare --backend
 * without loading TensorFlow.js (index.ts re-exports them).
 */
export type BackendName = 'auto' | 'tensorflow-gpu' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

/** The concrete backends, in the order 'auto' tries them. */
export const BACKEND_ORDER: readonly ConcreteBackendName[] = ['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'];
export const BACKEND_NAMES: readonly BackendName[] = ['auto', ...BACKEND_ORDER];
