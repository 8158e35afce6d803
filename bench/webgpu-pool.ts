/**
 * Cost of the buffer-pool bound (src/backends/webgpu-memory.ts) when sizes never repeat: tfjs's
 * own BufferManager with a stand-in device (no GPU), 500 buffers of random sizes acquired and
 * released per "step", the bound at 64 MiB, and the time per acquire + release.
 *   npm run bench -- webgpu-pool [--steps N]
 */
import { BufferManager } from '@tensorflow/tfjs-backend-webgpu/dist/buffer_manager.js';
import { boundBufferPool } from '../src/backends/webgpu-memory.js';
import { flag } from './lib/args.js';

const steps = Number(flag('steps', '400'));
const device = { createBuffer: ({ size, usage }: { size: number; usage: number }) => ({ size, usage, destroy() {} }) };
const pool = new BufferManager(device as unknown as GPUDevice) as unknown as {
  acquireBuffer(size: number, usage: number): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer): void;
  freeBuffers: Map<string, GPUBuffer[]>;
};
const { state } = boundBufferPool({ bufferManager: pool }, 64 * 1024 ** 2);
let seed = 1;
const random = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const started = performance.now();
let ops = 0;
for (let s = 0; s < steps; s++) {
  const live: GPUBuffer[] = [];
  for (let i = 0; i < 500; i++, ops++) live.push(pool.acquireBuffer(4 * Math.floor(1000 + random() * 2e6), 140));
  for (const b of live) pool.releaseBuffer(b);
}
const { evicted } = state();
console.log(`${((performance.now() - started) * 1000 / ops).toFixed(2)} µs per acquire + release; ${pool.freeBuffers.size} sizes seen, ${evicted} buffers freed by the bound`);
