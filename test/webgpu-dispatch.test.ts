// Cheaper launches on webgpu (src/backends/webgpu-dispatch.ts): uniforms packed exactly as
// tfjs packs them, one shared uniform buffer written once per submitted batch, the same results
// bit for bit as tfjs's own per-launch uniform buffers, a batch that outgrows one buffer,
// bind-group layouts remembered per pipeline, and bind groups kept for launches that bind the
// same buffers (training steps: the same losses, no bind group made once steps repeat). The
// packing and cache-key tests need no GPU; the rest run on lavapipe and are reported as skipped
// where no adapter can be had.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { releaseGpuBackend, useBackend, webgpuBindGroupStats } from '../src/backends/index.js';
import { cacheBindGroups, packUniforms, setBindGroupCaching, setUniformBatching, type UniformField, uniformLayout } from '../src/backends/webgpu-dispatch.js';
import { AdamW } from '../src/train/optimizer.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { gelu, layerNorm } from '../src/ops/fused.js';
import { webgpu } from './helpers/webgpu.js';

/** tfjs's own makeUniforms, run on a stand-in backend that records the bytes it would upload. */
async function tfjsPacking(fields: UniformField[]): Promise<Uint8Array> {
  const globals = globalThis as unknown as { GPUBufferUsage?: Record<string, number> };
  globals.GPUBufferUsage ??= { COPY_DST: 8, UNIFORM: 64 }; // tfjs reads the flags; values do not matter here
  const { WebGPUBackend } = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as {
    WebGPUBackend: { prototype: { makeUniforms(f: UniformField[]): unknown } };
  };
  let written: Uint8Array | undefined;
  const standIn = Object.assign(Object.create(WebGPUBackend.prototype) as { makeUniforms(f: UniformField[]): unknown }, {
    bufferManager: { acquireBuffer: () => ({}) },
    queue: {
      writeBuffer: (_b: unknown, _o: number, data: ArrayBuffer, offset: number, size: number) => {
        written = new Uint8Array(data.slice(offset, offset + size));
      },
    },
    uniformPendingDisposal: [] as unknown[],
  });
  standIn.makeUniforms(fields.map((f) => ({ type: f.type, data: [...f.data] })));
  return written!;
}

function ours(fields: UniformField[]): Uint8Array {
  const bytes = new ArrayBuffer(1024);
  const size = packUniforms(fields, bytes, 256);
  return new Uint8Array(bytes.slice(256, 256 + size));
}

/** Deterministic pseudo-random integers. */
function generator(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

describe('uniform packing', () => {
  it('matches tfjs byte for byte on the lists its programs pass', async () => {
    const lists: UniformField[][] = [
      // NaN, Infinity, then shape and strides of two rank-4 inputs and the output, size
      [
        { type: 'float32', data: [NaN] },
        { type: 'float32', data: [Infinity] },
        { type: 'int32', data: [2, 56, 56, 64] },
        { type: 'int32', data: [200704, 3584, 64] },
        { type: 'int32', data: [64] },
        { type: 'int32', data: [] },
        { type: 'int32', data: [2, 56, 56, 64] },
        { type: 'int32', data: [200704, 3584, 64] },
        { type: 'int32', data: [401408] },
        { type: 'float32', data: [1e-6] },
      ],
      // rank-5 and rank-6 shapes (tfjs's vec5/vec6) and the field after each
      [
        { type: 'int32', data: [1, 2, 3, 4, 5] },
        { type: 'int32', data: [7] },
        { type: 'int32', data: [1, 2, 3, 4, 5, 6] },
        { type: 'int32', data: [8, 9] },
        { type: 'uint32', data: [4000000000] },
        { type: 'float32', data: [0.5, -2, 3.25] },
      ],
    ];
    const next = generator(7);
    for (let k = 0; k < 200; k++) {
      const list: UniformField[] = [];
      const count = 1 + next(12);
      for (let f = 0; f < count; f++) {
        const type = (['int32', 'uint32', 'float32'] as const)[next(3)]!;
        const length = next(7); // 0 to 6 components
        list.push({ type, data: Array.from({ length }, () => (type === 'float32' ? next(2000) / 7 - 100 : next(100000))) });
      }
      lists.push(list);
    }
    for (const list of lists) {
      const theirs = await tfjsPacking(list);
      expect(uniformLayout(list).size).toBe(theirs.length);
      expect([...ours(list)]).toEqual([...theirs]);
    }
  });

  it('refuses a field of more than 6 components with a revcol error', () => {
    expect(() => uniformLayout([{ type: 'int32', data: [1, 2, 3, 4, 5, 6, 7] }])).toThrow(/^revcol: .*at most 6/);
  });
});

/** A little of everything: products, a convolution, reductions, element-wise chains, fused ops, a softmax. */
function workload(): tf.Tensor[] {
  return tf.tidy(() => {
    const x = tf.randomNormal([4, 12, 12, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 8, 16], 0, 0.2, 'float32', 2) as tf.Tensor4D;
    const y = tf.conv2d(x, w, 1, 'same');
    const flat = tf.reshape(y, [4 * 144, 16]);
    const normed = layerNorm(flat, tf.ones([16]), tf.zeros([16]), 1e-6);
    const h = gelu(tf.matMul(normed, tf.randomNormal([16, 40], 0, 0.3, 'float32', 3)));
    const logits = tf.matMul(h, tf.randomNormal([40, 5], 0, 0.3, 'float32', 4));
    let z = h;
    for (let i = 0; i < 40; i++) z = i % 2 ? tf.add(z, tf.scalar(0.01 * i)) : tf.mul(z, tf.scalar(0.99));
    return [tf.softmax(logits), tf.sum(z, 0), tf.mean(y, [1, 2]), tf.max(flat, 1)];
  });
}

describe('bind-group cache, on a stand-in device', () => {
  /** A device whose createBindGroup makes a numbered object. */
  function standIn(): { device: GPUDevice; made: () => number } {
    let made = 0;
    const device = { createBindGroup: () => ({ n: made++ }) } as unknown as GPUDevice;
    return { device, made: () => made };
  }
  const layout = {} as GPUBindGroupLayout;
  const [out, a, b, u] = [{}, {}, {}, {}] as GPUBuffer[];
  const group = (input: GPUBuffer, offset: number): GPUBindGroupDescriptor => ({
    layout,
    entries: [
      { binding: 0, resource: { buffer: out!, offset: 0, size: 64 } },
      { binding: 1, resource: { buffer: input, offset: 0, size: 64 } },
      { binding: 2, resource: { buffer: u!, offset, size: 32 } },
    ],
  });

  it('hands out the same bind group for the same buffers, offsets and sizes, and a new one for any other', () => {
    const { device, made } = standIn();
    const stats = cacheBindGroups(device)!;
    const first = device.createBindGroup(group(a!, 0));
    expect(device.createBindGroup(group(a!, 0))).toBe(first); // new descriptor objects, same binding
    expect(device.createBindGroup(group(b!, 0))).not.toBe(first);
    expect(device.createBindGroup(group(a!, 256))).not.toBe(first); // the uniforms at another offset
    const otherLayout = { ...group(a!, 0), layout: {} as GPUBindGroupLayout };
    expect(device.createBindGroup(otherLayout)).not.toBe(first);
    expect(made()).toBe(4);
    expect(stats()).toEqual({ created: 4, reused: 1, entries: 4 });
  });

  it('passes bind groups of anything but buffers through, and starts over past its limit', () => {
    const { device, made } = standIn();
    const stats = cacheBindGroups(device, 2)!;
    const sampler = { layout, entries: [{ binding: 0, resource: {} as GPUSampler }] };
    device.createBindGroup(sampler);
    device.createBindGroup(sampler);
    expect(made()).toBe(2);
    expect(stats().entries).toBe(0);
    const first = device.createBindGroup(group(a!, 0));
    device.createBindGroup(group(b!, 0));
    device.createBindGroup(group(a!, 256)); // the third: the cache starts over with it
    expect(stats().entries).toBe(1);
    expect(device.createBindGroup(group(a!, 0))).not.toBe(first);
  });

  it('is not installed when turned off', () => {
    const previous = setBindGroupCaching(false);
    try {
      const { device } = standIn();
      const own = device.createBindGroup;
      expect(cacheBindGroups(device)).toBeUndefined();
      expect(device.createBindGroup).toBe(own);
    } finally {
      setBindGroupCaching(previous);
    }
  });
});

async function run(job: () => tf.Tensor[]): Promise<Float32Array[]> {
  const outs = job();
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return values;
}

describe.skipIf(!webgpu.available)(`webgpu launches with a shared uniform buffer (${webgpu.adapter ?? webgpu.reason})`, () => {
  afterAll(() => {
    setUniformBatching(true);
  });

  it('gives the same bits as tfjs’s own uniform buffers, leaks nothing, and writes uniforms once per submit', async () => {
    // tfjs's own uniforms: a backend started with batching off
    releaseGpuBackend();
    setUniformBatching(false);
    await useBackend('webgpu');
    const plainBackend = tf.backend() as unknown as { makeUniforms: unknown };
    expect(Object.hasOwn(plainBackend, 'makeUniforms')).toBe(false);
    const plain = await run(workload);
    releaseGpuBackend();

    setUniformBatching(true);
    await useBackend('webgpu');
    const backend = tf.backend() as unknown as { makeUniforms: unknown; queue: GPUQueue };
    expect(Object.hasOwn(backend, 'makeUniforms')).toBe(true);
    await run(workload); // compile and fill the pools first
    const before = tf.memory().numTensors;
    const queue = backend.queue;
    const counts = { writes: 0, submits: 0 };
    const write = queue.writeBuffer;
    const submit = queue.submit;
    queue.writeBuffer = function (this: GPUQueue, ...a: Parameters<GPUQueue['writeBuffer']>) {
      counts.writes++;
      return write.apply(this, a);
    };
    queue.submit = function (this: GPUQueue, ...a: Parameters<GPUQueue['submit']>) {
      counts.submits++;
      return submit.apply(this, a);
    };
    let batched: Float32Array[];
    try {
      batched = await run(workload);
    } finally {
      queue.writeBuffer = write;
      queue.submit = submit;
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(batched.length).toBe(plain.length);
    batched.forEach((v, i) => expect([...v]).toEqual([...plain[i]!]));
    // tfjs writes one uniform buffer per launch (over 60 here); batched, uniforms take at most
    // one write per submit, besides a few small uploads
    expect(counts.submits).toBeGreaterThan(0);
    expect(counts.writes).toBeLessThanOrEqual(counts.submits + 5);
  });

  it('goes on in a second buffer when a batch outgrows one, with the right results', async () => {
    await useBackend('webgpu');
    const batchSize = tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE');
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 5000); // 700 launches in one batch: about 175 KiB of uniforms
    const chain = (): tf.Tensor[] =>
      tf.tidy(() => {
        const a = tf.div(tf.range(0, 4096), 4096);
        const b = tf.mul(tf.range(0, 4096), -1 / 8192);
        let x: tf.Tensor = a;
        for (let i = 0; i < 700; i++) x = i % 2 ? tf.add(x, b) : tf.mul(x, tf.scalar(1.001));
        return [x];
      });
    let gpu: Float32Array;
    try {
      [gpu] = (await run(chain)) as [Float32Array];
    } finally {
      tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batchSize);
    }
    await useBackend('cpu');
    const [cpu] = (await run(chain)) as [Float32Array];
    let worst = 0;
    for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(gpu[i]! - cpu[i]!));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.abs(cpu[4095]!)).toBeGreaterThan(1); // the chain did something
  });

  it('keeps training steps’ bind groups: the same losses as without, none made once steps repeat, nothing leaked', async () => {
    /** Six reversible training steps of a small vision model with drop path, the loss read every third step, as the trainer does. */
    const train = async (): Promise<{ losses: number[]; made: number[]; cached: boolean }> => {
      await useBackend('webgpu');
      const cached = webgpuBindGroupStats() !== undefined;
      const model = new RevColVision(VISION_PRESETS['revcol-micro-32']!, 3);
      const optimizer = new AdamW(model);
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
      const labels = tf.tensor1d([1, 7], 'int32');
      let before = 0;
      const losses: number[] = [];
      const made: number[] = [];
      for (let step = 0; step < 6; step++) {
        const start = webgpuBindGroupStats()?.created ?? 0;
        const { loss, grads } = model.lossAndGradients(x, labels, { seed: step, mode: 'reversible' });
        optimizer.applyGradients(grads, 1e-3);
        grads.forEach((g) => g.dispose());
        if (step % 3 === 2) losses.push((await loss.data())[0]!);
        loss.dispose();
        made.push((webgpuBindGroupStats()?.created ?? 0) - start);
        if (step === 0) before = tf.memory().numTensors; // the optimizer's moments exist from the first step on
      }
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, labels]);
      optimizer.dispose();
      model.dispose();
      releaseGpuBackend();
      return { losses, made, cached };
    };
    releaseGpuBackend();
    setBindGroupCaching(false);
    let plain: { losses: number[]; cached: boolean };
    try {
      plain = await train();
    } finally {
      setBindGroupCaching(true);
    }
    expect(plain.cached).toBe(false);
    const cached = await train();
    expect(cached.cached).toBe(true);
    expect(cached.losses).toEqual(plain.losses);
    expect(cached.made[0]).toBeGreaterThan(500); // a step of this model launches ~1,000 kernels
    expect(cached.made[4]).toBe(0);
    expect(cached.made[5]).toBe(0);
  }, 120_000);

  it('remembers each pipeline’s bind-group layout', async () => {
    await useBackend('webgpu');
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: {
        module: device.createShaderModule({ code: '@group(0) @binding(0) var<storage, read_write> o: array<f32>; @compute @workgroup_size(1) fn main() { o[0] = 1.0; }' }),
        entryPoint: 'main',
      },
    });
    expect(pipeline.getBindGroupLayout(0)).toBe(pipeline.getBindGroupLayout(0));
  });
});
