// The bound on tfjs-backend-webgpu's buffer pool (src/backends/webgpu-memory.ts): shapes that
// never repeat (masked-LM logits) no longer grow the pool without end, shapes that repeat keep
// every buffer, results stay right and no tensor is left behind. Runs on lavapipe; reported as
// skipped where no adapter can be had.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../src/backends/index.js';
import { boundBufferPool, reuseLowestBuffers } from '../src/backends/webgpu-memory.js';
import { objectId } from '../src/backends/webgpu-dispatch.js';
import { webgpu } from './helpers/webgpu.js';

/** tfjs's own BufferManager over a stand-in device that counts live buffers (no GPU needed). */
async function standInPool(): Promise<{ pool: { acquireBuffer(size: number, usage: number): GPUBuffer; releaseBuffer(b: GPUBuffer): void; numFreeBuffers: number }; live: () => number }> {
  const { BufferManager } = (await import('@tensorflow/tfjs-backend-webgpu/dist/buffer_manager.js')) as unknown as { BufferManager: new (d: unknown) => never };
  let live = 0;
  const device = { createBuffer: ({ size, usage }: { size: number; usage: number }) => (live++, { size, usage, destroy: () => live-- }) };
  return { pool: new BufferManager(device), live: () => live };
}

describe('buffer pool bound, on tfjs’s BufferManager with a stand-in device', () => {
  it('keeps its queue of idle buffers as short as the pool over many steps of repeating sizes', async () => {
    const { pool } = await standInPool();
    const { state } = boundBufferPool({ bufferManager: pool }, 1024);
    for (let step = 0; step < 300; step++) {
      const held = [100, 200, 300, 400].flatMap((size) => Array.from({ length: 25 }, () => pool.acquireBuffer(size, 1)));
      held.forEach((b) => pool.releaseBuffer(b));
      expect(state().queued).toBeLessThanOrEqual(2 * pool.numFreeBuffers + 4096);
    }
    expect(state().evicted).toBe(0); // 25 kB idle is within the high-water mark
  });

  it('frees idle buffers longest idle first, only as many as the bound needs', async () => {
    const { pool, live } = await standInPool();
    const { state } = boundBufferPool({ bufferManager: pool }, 1000, 0); // no minimum idle time
    const a = pool.acquireBuffer(600, 1);
    const b = pool.acquireBuffer(500, 1);
    pool.releaseBuffer(a); // idle 600 (high-water 1,100: within)
    const c = pool.acquireBuffer(700, 1); // used 1,200: high-water 1,200
    pool.releaseBuffer(b); // idle 1,100: within 1,200
    pool.releaseBuffer(c); // idle 1,800 > 1,200: a, released first, goes, and that is enough
    expect(state().evicted).toBe(1);
    expect(state().idleBytes).toBe(1200);
    expect(live()).toBe(2);
    expect(pool.acquireBuffer(500, 1)).toBe(b); // the ones kept are reused
    expect(pool.acquireBuffer(700, 1)).toBe(c);
    expect(pool.acquireBuffer(600, 1)).not.toBe(a); // a new one: a was freed
    expect(live()).toBe(3);
  });
});

describe('buffer pool bound: only buffers idle for a while go', () => {
  it('never frees a buffer a loop takes again every step, even with more idle bytes than its high water', async () => {
    const { pool, live } = await standInPool();
    const bound = boundBufferPool({ bufferManager: pool }, 0, 50);
    for (let step = 0; step < 200; step++) {
      // 4 buffers of one size at once, then 6 of another: 4×300 + 6×100 = 1,800 bytes allocated, high water 1,200
      const a = Array.from({ length: 4 }, () => pool.acquireBuffer(300, 1));
      a.forEach((b) => pool.releaseBuffer(b));
      const b = Array.from({ length: 6 }, () => pool.acquireBuffer(100, 1));
      b.forEach((x) => pool.releaseBuffer(x));
      bound.endStep();
    }
    expect(bound.state().evicted).toBe(0);
    expect(live()).toBe(10);
    // without the idle time, the same loop frees and re-makes buffers every step
    const other = await standInPool();
    const churn = boundBufferPool({ bufferManager: other.pool }, 0, 0);
    for (let step = 0; step < 20; step++) {
      const a = Array.from({ length: 4 }, () => other.pool.acquireBuffer(300, 1));
      a.forEach((x) => other.pool.releaseBuffer(x));
      const b = Array.from({ length: 6 }, () => other.pool.acquireBuffer(100, 1));
      b.forEach((x) => other.pool.releaseBuffer(x));
    }
    expect(churn.state().evicted).toBeGreaterThan(20);
  });

  it('frees sizes that stop coming back once they have been idle for two steps', async () => {
    const { pool, live } = await standInPool();
    const bound = boundBufferPool({ bufferManager: pool }, 0, 1000);
    const steady = (): void => {
      const held = Array.from({ length: 10 }, () => pool.acquireBuffer(100, 1));
      held.forEach((b) => pool.releaseBuffer(b));
    };
    steady();
    bound.endStep(); // a step of 10 acquisitions: buffers idle through 20 may go (1,000 no longer counts)
    const odd = pool.acquireBuffer(5000, 1); // a size used once
    pool.releaseBuffer(odd); // idle 6,000 bytes over a high water of 5,000, but idle for 0 acquisitions
    expect(bound.state().evicted).toBe(0);
    steady();
    expect(bound.state().evicted).toBe(0); // idle through 10: not yet
    steady();
    bound.endStep();
    expect(bound.state().evicted).toBe(1); // idle through 20: gone
    expect(live()).toBe(10);
  });

  it('before a step has ended, frees only buffers idle through minIdleAcquires acquisitions', async () => {
    const { pool } = await standInPool();
    const bound = boundBufferPool({ bufferManager: pool }, 0, 25);
    pool.releaseBuffer(pool.acquireBuffer(5000, 1)); // high water 5,000
    const loop = (): void => {
      const held = Array.from({ length: 10 }, () => pool.acquireBuffer(100, 1));
      held.forEach((b) => pool.releaseBuffer(b));
    };
    loop();
    loop(); // idle 6,000 over 5,000, the big buffer idle through 20 acquisitions
    expect(bound.state().evicted).toBe(0);
    loop(); // through 30
    expect(bound.state().evicted).toBe(1);
  });
});

describe('lowest-first reuse, on tfjs’s BufferManager with a stand-in device', () => {
  it('hands out the lowest-numbered idle buffer of a size, whatever order they came back in', async () => {
    const { pool } = await standInPool();
    reuseLowestBuffers({ bufferManager: pool });
    const held = Array.from({ length: 6 }, () => pool.acquireBuffer(64, 1));
    const ids = held.map((b) => objectId(b));
    for (const i of [3, 0, 5, 1, 4, 2]) pool.releaseBuffer(held[i]!);
    const again = Array.from({ length: 6 }, () => objectId(pool.acquireBuffer(64, 1)));
    expect(again).toEqual([...ids].sort((a, b) => a - b));
  });

  it('gives a repeated sequence of steps the same buffers at every point (tfjs’s own order does not)', async () => {
    // a "step": tensors made and freed in an order that mixes sizes and lifetimes
    const step = (pool: { acquireBuffer(size: number, usage: number): GPUBuffer; releaseBuffer(b: GPUBuffer): void }): number[] => {
      const got: GPUBuffer[] = [];
      const live: GPUBuffer[] = [];
      for (let k = 0; k < 40; k++) {
        const b = pool.acquireBuffer(k % 3 === 0 ? 128 : 64, 1);
        got.push(b);
        live.push(b);
        if (k % 4 === 3) pool.releaseBuffer(live.splice(k % 5 === 0 ? 0 : 1, 1)[0]!);
      }
      // the step ends: what is left goes back newest first
      while (live.length) pool.releaseBuffer(live.pop()!);
      return got.map((b) => objectId(b));
    };
    const sequences = async (lowest: boolean): Promise<number[][]> => {
      const { pool } = await standInPool();
      if (lowest) reuseLowestBuffers({ bufferManager: pool });
      return Array.from({ length: 5 }, () => step(pool));
    };
    const ours = await sequences(true);
    for (let s = 2; s < 5; s++) expect(ours[s]).toEqual(ours[1]);
    const tfjs = await sequences(false);
    expect(tfjs.slice(2).some((seq) => seq.join() !== tfjs[1]!.join())).toBe(true);
  });

  it('keeps the order under the pool bound’s evictions', async () => {
    const { pool } = await standInPool();
    reuseLowestBuffers({ bufferManager: pool });
    const { state } = boundBufferPool({ bufferManager: pool }, 64 * 3, 0);
    const held = Array.from({ length: 5 }, () => pool.acquireBuffer(64, 1));
    const ids = held.map((b) => objectId(b));
    for (const i of [2, 4, 0, 3, 1]) pool.releaseBuffer(held[i]!); // idle 320, within the high water (320)
    expect([objectId(pool.acquireBuffer(64, 1)), objectId(pool.acquireBuffer(64, 1))]).toEqual([ids[0], ids[1]]);
    pool.releaseBuffer(pool.acquireBuffer(200, 1)); // high water 328; idle 392: the longest idle (held[2]) goes
    expect(state().evicted).toBe(1);
    expect([objectId(pool.acquireBuffer(64, 1)), objectId(pool.acquireBuffer(64, 1))]).toEqual([ids[3], ids[4]]);
  });
});

const MiB = 1024 ** 2;

/** One "step": a product whose row count changes with m, read back, everything disposed. */
async function step(m: number, w: tf.Tensor2D): Promise<Float32Array> {
  const out = tf.tidy(() => tf.sum(tf.relu(tf.matMul(tf.fill([m, 64], 0.01 * (m % 7)), w)), 0));
  const values = (await out.data()) as Float32Array;
  out.dispose();
  return values;
}

describe.skipIf(!webgpu.available)(`webgpu buffer pool bound (${webgpu.adapter ?? webgpu.reason})`, () => {
  it('frees sizes that do not come back, keeps those that do, and computes the same', async () => {
    await useBackend('webgpu');
    const backend = tf.backend() as unknown as { bufferManager: { numBytesAllocated: number; numBytesUsed: number } };
    const w = tf.tidy(() => tf.div(tf.reshape(tf.range(0, 64 * 512), [64, 512]), 64 * 512)) as tf.Tensor2D;
    // a 2 MiB bound over the one backends get (1 GiB), so that a test-sized loop reaches it, and
    // no minimum idle time (the steps here are ~10 acquisitions)
    const { state } = boundBufferPool(backend, 2 * MiB, 0);
    const tensors = tf.memory().numTensors;

    // steady shapes: after the first step everything comes from the pool, nothing is freed
    for (let i = 0; i < 6; i++) await step(1000, w);
    expect(state().evicted).toBe(0);

    // a new size every step (~1-3 MiB of product each): without the bound the idle pool would
    // hold every one of them (over 60 MiB)
    let last: Float32Array | undefined;
    for (let i = 0; i < 40; i++) {
      last = await step(500 + 37 * i, w);
      const { idleBytes, highWater } = state();
      expect(idleBytes).toBeLessThanOrEqual(Math.max(2 * MiB, highWater));
    }
    expect(state().evicted).toBeGreaterThan(10);
    expect(backend.bufferManager.numBytesAllocated - backend.bufferManager.numBytesUsed).toBeLessThan(16 * MiB);
    expect(tf.memory().numTensors).toBe(tensors);

    // the last step against cpu
    const m = 500 + 37 * 39;
    const wValues = (await w.data()) as Float32Array;
    w.dispose();
    await useBackend('cpu');
    const cpuW = tf.tensor2d(wValues, [64, 512]);
    const expected = await step(m, cpuW);
    cpuW.dispose();
    let worst = 0;
    for (let j = 0; j < expected.length; j++) worst = Math.max(worst, Math.abs(last![j]! - expected[j]!) / Math.max(1, Math.abs(expected[j]!)));
    expect(worst).toBeLessThan(1e-5);
  });
});
