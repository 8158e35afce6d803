/**
 * A bound on tfjs-backend-webgpu's buffer pool (tfjs 4.22).
 *
 * tfjs keeps every released GPU buffer for reuse by a later tensor of exactly the same byte
 * size, and never frees one. With shapes that repeat (a vision batch, a text batch padded to one
 * length) the pool is as large as one step's tensors. With shapes that do not, it only grows:
 * masked-LM pre-training draws a different number of masked tokens every step, so its logits
 * ([masked tokens, 30,522] for the BERT vocabulary, ~370 MB at batch 64) and their gradients get
 * new sizes each time, and on an H200 text-small ran out of the GPU's 139 GiB early in its
 * second epoch (2026-12-04), after which every result was garbage.
 *
 * Here the pool's idle bytes (allocated but held by no tensor) are kept at most at the most
 * bytes tensors have held at once so far, and at least MIN_POOL_BYTES: a loop whose shapes repeat
 * finds everything it needs in a pool of that size and is not touched, while sizes that stop
 * coming back are destroyed, longest idle first.
 */

import { objectId } from './webgpu-dispatch.js';

/** Idle pool bytes always allowed (1 GiB). */
export const MIN_POOL_BYTES = 1024 ** 3;

/** The parts of tfjs's BufferManager used here. */
interface BufferPool {
  freeBuffers: Map<string, GPUBuffer[]>;
  numFreeBuffers: number;
  numBytesUsed: number;
  numBytesAllocated: number;
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
}

/**
 * Bounds one backend's pool (its bufferManager) as above; `minBytes` replaces MIN_POOL_BYTES
 * (tests). Returns a function that reads the pool's state.
 */
export function boundBufferPool(backendObject: object, minBytes = MIN_POOL_BYTES): () => { idleBytes: number; highWater: number; evicted: number; queued: number } {
  const pool = (backendObject as { bufferManager: BufferPool }).bufferManager;
  let highWater = pool.numBytesUsed;
  let evicted = 0;
  // idle buffers in the order they were released (an entry whose buffer was reused since is
  // skipped when reached): eviction costs O(1) a buffer, however many sizes the pool has seen
  const released: Array<{ buffer: GPUBuffer; key: string }> = [];
  let head = 0;
  /** Keeps only the entries whose buffer is still idle, each buffer once (at its latest release): the queue stays as long as the pool. */
  const compact = (): void => {
    const kept: typeof released = [];
    const seen = new Set<GPUBuffer>();
    for (let i = released.length - 1; i >= head; i--) {
      const entry = released[i]!;
      if (seen.has(entry.buffer) || !pool.freeBuffers.get(entry.key)?.includes(entry.buffer)) continue;
      seen.add(entry.buffer);
      kept.push(entry);
    }
    released.length = 0;
    for (let i = kept.length - 1; i >= 0; i--) released.push(kept[i]!);
    head = 0;
  };
  const acquire = pool.acquireBuffer.bind(pool);
  pool.acquireBuffer = (size, usage, mappedAtCreation, reuse) => {
    const buffer = acquire(size, usage, mappedAtCreation, reuse);
    if (pool.numBytesUsed > highWater) highWater = pool.numBytesUsed;
    return buffer;
  };
  const release = pool.releaseBuffer.bind(pool);
  pool.releaseBuffer = (buffer, reuse = true) => {
    const idleBefore = pool.numFreeBuffers;
    release(buffer, reuse);
    if (pool.numFreeBuffers > idleBefore) released.push({ buffer, key: `${buffer.size}_${buffer.usage}` }); // tfjs's key
    const cap = Math.max(minBytes, highWater);
    while (pool.numBytesAllocated - pool.numBytesUsed > cap && head < released.length) {
      const { buffer: old, key } = released[head]!;
      released[head++] = undefined as never;
      const idle = pool.freeBuffers.get(key);
      const at = idle ? idle.indexOf(old) : -1;
      if (at < 0) continue; // taken again by a tensor since
      idle!.splice(at, 1);
      pool.numFreeBuffers--;
      pool.numBytesAllocated -= old.size;
      old.destroy(); // idle: no tensor holds it; work already submitted keeps it alive until done
      evicted++;
    }
    if (released.length - head > 2 * pool.numFreeBuffers + 4096) compact();
  };
  return () => ({ idleBytes: pool.numBytesAllocated - pool.numBytesUsed, highWater, evicted, queued: released.length - head });
}

/**
 * Makes one backend's pool hand out the lowest-numbered idle buffer of a size (by objectId),
 * where tfjs hands out the one released last. tfjs's choice depends on the order buffers came
 * back, which shifts from step to step, so a step's launches bind other buffers each time (33
 * of 1,198 bind groups repeated a step, nano network on lavapipe). Lowest-first depends only on
 * which buffers are idle, and a training step that does the same thing as the one before finds
 * the same idle buffers at each point: its launches bind the same buffers, and their bind groups
 * can be kept (webgpu-dispatch.ts, `cacheBindGroups`). Each idle list is kept in descending
 * order, so tfjs's pop() takes the lowest; call before boundBufferPool, whose evictions keep
 * the order.
 */
export function reuseLowestBuffers(backendObject: object): void {
  const pool = (backendObject as { bufferManager: BufferPool }).bufferManager;
  const release = pool.releaseBuffer.bind(pool);
  pool.releaseBuffer = (buffer, reuse = true) => {
    release(buffer, reuse);
    const idle = pool.freeBuffers.get(`${buffer.size}_${buffer.usage}`); // tfjs's key
    if (!idle || idle[idle.length - 1] !== buffer) return; // destroyed, not kept
    const id = objectId(buffer);
    let at = idle.length - 1;
    while (at > 0 && objectId(idle[at - 1]!) < id) {
      idle[at] = idle[at - 1]!;
      at--;
    }
    idle[at] = buffer;
  };
}
