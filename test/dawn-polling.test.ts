// How the host waits for the GPU (src/backends/dawn-polling.ts): dawn.node's polls (anonymous
// native functions given to setImmediate) run at once for a short spin, then on a 1 ms timer;
// every other setImmediate is left alone. The scheduling is checked without a GPU, with a
// stand-in poll (a Proxy of an anonymous function: a native function without a name, as dawn.node's
// are); a real read is checked on lavapipe, and reported as skipped where no adapter can be had.
import * as tf from '@tensorflow/tfjs-core';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpuWaitTimedPolls, installGpuWaitYielding, setGpuWaitYielding, SPIN_POLLS } from '../src/backends/dawn-polling.js';
import { releaseGpuBackend, useBackend } from '../src/backends/index.js';
import { webgpu } from './helpers/webgpu.js';

/** A poll loop as dawn.node runs one: each call schedules the next through setImmediate, `count` in all. */
function pollLoop(count: number): Promise<number> {
  return new Promise((resolve) => {
    let left = count;
    const started = performance.now();
    const poll = new Proxy(function () {}, {
      apply() {
        if (--left > 0) setImmediate(poll);
        else resolve(performance.now() - started);
      },
    });
    setImmediate(poll);
  });
}

/** Longer than the gap that starts a new wait. */
const pause = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('waits for the GPU', () => {
  installGpuWaitYielding();
  let was = true;
  beforeAll(() => {
    was = setGpuWaitYielding(true); // whatever REVCOL_GPU_WAIT says here
  });
  afterAll(() => {
    setGpuWaitYielding(was);
  });

  it('recognise dawn.node polls only: a native function without a name', async () => {
    const stand = new Proxy(function () {}, {});
    expect(stand.name).toBe('');
    expect(Function.prototype.toString.call(stand)).toBe('function () { [native code] }');
    await pause();
    const before = gpuWaitTimedPolls();
    await pollLoop(SPIN_POLLS + 40);
    expect(gpuWaitTimedPolls() - before).toBe(40);
    // arrows, named functions, bound functions (named "bound …") and named native functions pass through as they are
    const others: Array<() => unknown> = [() => 0, function named() {}, (() => 0).bind(null), Math.random];
    for (const f of others) {
      await pause();
      for (let i = 0; i < SPIN_POLLS + 10; i++) setImmediate(f);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(gpuWaitTimedPolls() - before).toBe(40);
  });

  it('spin for the first polls of a wait, then go on a 1 ms timer; a pause starts a new wait; off keeps every poll immediate', async () => {
    await pause();
    let before = gpuWaitTimedPolls();
    await pollLoop(SPIN_POLLS);
    expect(gpuWaitTimedPolls() - before).toBe(0); // a short wait never leaves the spin
    await pause(); // a new wait
    before = gpuWaitTimedPolls();
    const ms = await pollLoop(SPIN_POLLS + 20);
    expect(gpuWaitTimedPolls() - before).toBe(20);
    expect(ms).toBeGreaterThanOrEqual(19); // 20 timer turns of at least 1 ms (timers may fire a little early)
    setGpuWaitYielding(false);
    try {
      await pause();
      before = gpuWaitTimedPolls();
      await pollLoop(SPIN_POLLS + 20);
      expect(gpuWaitTimedPolls() - before).toBe(0);
    } finally {
      setGpuWaitYielding(true);
    }
  });

  it('keep one wait one wait when the timer fires late (a busy event loop): the spin does not start again', async () => {
    await pause();
    // every turn of the event loop blocked for 3 ms: each timed poll runs later than 1 ms after it was asked for
    const busy = setInterval(() => {
      const until = performance.now() + 3;
      while (performance.now() < until) {
        // a busy host
      }
    }, 0);
    try {
      const before = gpuWaitTimedPolls();
      await pollLoop(SPIN_POLLS + 20);
      expect(gpuWaitTimedPolls() - before).toBe(20);
    } finally {
      clearInterval(busy);
    }
  });
});

describe.skipIf(!webgpu.available)(`a GPU read on lavapipe (${webgpu.adapter ?? webgpu.reason})`, () => {
  let was = true;
  beforeAll(() => {
    was = setGpuWaitYielding(true);
  });
  afterAll(async () => {
    setGpuWaitYielding(was);
    await useBackend('cpu');
    releaseGpuBackend();
  });

  it('leaves the event loop mostly idle while it waits, with the same values as the cpu backend', async () => {
    await useBackend('cpu');
    const a = tf.tidy(() => tf.reshape(tf.sin(tf.range(0, 512 * 512, 1, 'float32')), [512, 512]));
    const expected = tf.tidy(() => tf.matMul(tf.matMul(a, a), a).dataSync());
    const values = a.dataSync().slice();
    a.dispose();
    await useBackend('webgpu');
    const x = tf.tensor2d(values, [512, 512]);
    await x.data(); // uploaded, shaders compiled, before the timed wait
    const warm = tf.matMul(tf.matMul(x, x), x);
    await warm.data();
    warm.dispose();
    const before = gpuWaitTimedPolls();
    const y = tf.matMul(tf.matMul(x, x), x);
    const elu0 = performance.eventLoopUtilization();
    const got = (await y.data()) as Float32Array;
    const busy = performance.eventLoopUtilization(elu0).utilization;
    tf.dispose([x, y]);
    expect(gpuWaitTimedPolls()).toBeGreaterThan(before);
    expect(busy).toBeLessThan(0.5); // Dawn's own polling keeps it at 1.00
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!) / (1 + Math.abs(expected[i]!)));
    expect(worst).toBeLessThan(1e-3);
  });
});
