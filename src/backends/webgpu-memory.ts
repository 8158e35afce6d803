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
 * Here the pool's idle bytes (allocated but held by no tensor) are brought back to at most the
 * most bytes tensors have held at once so far (and at least MIN_POOL_BYTES) by destroying the
 * buffers idle longest, as long as they have been idle for a while: sizes that stop coming back
 * go, while a loop whose shapes repeat takes every buffer again within a step and keeps them all.
 */

import { objectId } from './webgpu-dispatch.js';

/** Idle pool bytes always allowed (1 GiB). */
export const MIN_POOL_BYTES = 1024 ** 3;

/**
 * Buffer acquisitions a buffer must have stayed idle through before it may be freed, until the
 * first training step has ended; from then on, two steps' worth (see endStep). A buffer that a
 * loop takes again every step is never freed.
 */
export const MIN_IDLE_ACQUIRES = 8192;

/** The parts of tfjs's BufferManager used here. */
interface BufferPool {
  freeBuffers: Map<string, GPUBuffer[]>;
  numFreeBuffers: number;
  numBytesUsed: number;
  numBytesAllocated: number;
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
}

/** The key under which tfjs's pool files a buffer's idle list (its getBufferKey). */
function poolKey(buffer: GPUBuffer): string {
  return `${buffer.size}_${buffer.usage}`;
}

/** A bounded pool: its state, and the call that marks the end of a training step. */
export interface PoolBound {
  state(): { idleBytes: number; highWater: number; evicted: number; queued: number };
  /** A training step ended: buffers idle for two steps' acquisitions may go. */
  endStep(): void;
}

/**
 * Bounds one backend's pool (its bufferManager) as above. Only buffers idle for a while can go:
 * through two training steps' acquisitions (the last step's count, from endStep), or through
 * `minIdleAcquires` before a step has ended. Two steps, not more: masked-LM logits of a size
 * that does not come back (hundreds of MB each) go after two steps, which a GPU smaller than an
 * H200 needs. Without that, a network whose steady pool holds more idle bytes than its
 * tensors' high-water mark (RevCol-T at batch 64 on an H200, 2026-12-04: the bound freed and
 * re-made buffers every step, at half the speed) would lose buffers it takes again a moment
 * later. `minBytes` and `minIdleAcquires` replace the defaults (tests).
 */
export function boundBufferPool(backendObject: object, minBytes = MIN_POOL_BYTES, minIdleAcquires = MIN_IDLE_ACQUIRES): PoolBound {
  const pool = (backendObject as { bufferManager: BufferPool }).bufferManager;
  let highWater = pool.numBytesUsed;
  let evicted = 0;
  /** Acquisitions so far: the pool's clock. */
  let clock = 0;
  let stepStart = 0;
  let stepAcquires = 0;
  /** When each idle buffer was released (an entry of the queue counts only if it is this one). */
  const releasedAt = new Map<GPUBuffer, number>();
  // idle buffers in the order they were released (an entry whose buffer was taken again since is
  // skipped when reached): eviction costs O(1) a buffer, however many sizes the pool has seen
  const released: Array<{ buffer: GPUBuffer; at: number }> = [];
  let head = 0;
  /** Keeps only the entries of buffers still idle since then: the queue stays as long as the pool. */
  const compact = (): void => {
    const kept = released.slice(head).filter((entry) => releasedAt.get(entry.buffer) === entry.at);
    released.length = 0;
    released.push(...kept);
    head = 0;
  };
  const acquire = pool.acquireBuffer.bind(pool);
  pool.acquireBuffer = (size, usage, mappedAtCreation, reuse) => {
    const buffer = acquire(size, usage, mappedAtCreation, reuse);
    clock++;
    releasedAt.delete(buffer);
    if (pool.numBytesUsed > highWater) highWater = pool.numBytesUsed;
    return buffer;
  };
  const release = pool.releaseBuffer.bind(pool);
  pool.releaseBuffer = (buffer, reuse = true) => {
    const idleBefore = pool.numFreeBuffers;
    release(buffer, reuse);
    if (pool.numFreeBuffers > idleBefore) {
      releasedAt.set(buffer, clock);
      released.push({ buffer, at: clock });
    }
    const cap = Math.max(minBytes, highWater);
    const minAge = stepAcquires > 0 ? 2 * stepAcquires : minIdleAcquires;
    while (pool.numBytesAllocated - pool.numBytesUsed > cap && head < released.length) {
      const { buffer: old, at } = released[head]!;
      if (releasedAt.get(old) !== at) {
        released[head++] = undefined as never; // taken again since
        continue;
      }
      if (clock - at < minAge) break; // the rest were released later still
      released[head++] = undefined as never;
      releasedAt.delete(old);
      const idle = pool.freeBuffers.get(poolKey(old))!;
      idle.splice(idle.indexOf(old), 1);
      pool.numFreeBuffers--;
      pool.numBytesAllocated -= old.size;
      old.destroy(); // idle: no tensor holds it; work already submitted keeps it alive until done
      evicted++;
    }
    if (released.length - head > 2 * pool.numFreeBuffers + 4096) compact();
  };
  return {
    state: () => ({ idleBytes: pool.numBytesAllocated - pool.numBytesUsed, highWater, evicted, queued: released.length - head }),
    endStep: () => {
      stepAcquires = clock - stepStart;
      stepStart = clock;
    },
  };
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
    const idle = pool.freeBuffers.get(poolKey(buffer));
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
