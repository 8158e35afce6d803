import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, vi } from 'vitest';
import { BACKEND_ORDER, isWasmOutOfMemory, probeBackends, useBackend } from '../src/backends/index.js';
import { backendFromOptions, fitBackendToModel } from '../src/backends/choose.js';
import { flagName } from '../src/train/options.js';
import { WASM_TRAINING_KERNELS } from '../src/backends/wasm-kernels.js';
import { RevcolError } from '../src/core/errors.js';

describe('backends', () => {
  it('probes the five backends in auto order, each with a one-line reason', async () => {
    const start = performance.now();
    const statuses = await probeBackends();
    expect(performance.now() - start).toBeLessThan(20_000);
    expect(statuses.map((s) => s.name)).toEqual([...BACKEND_ORDER]);
    for (const status of statuses) {
      expect(status.reason.length).toBeGreaterThan(0);
      expect(status.reason).not.toContain('\n');
      if (status.adapter !== undefined) expect(typeof status.adapter).toBe('string');
    }
    const byName = Object.fromEntries(statuses.map((s) => [s.name, s]));
    expect(byName.wasm!.usable).toBe(true);
    expect(byName.cpu!.usable).toBe(true);
    if (!byName['tensorflow-gpu']!.usable) expect(byName['tensorflow-gpu']!.reason).toMatch(/tfjs-node-gpu/);
    if (!byName.tensorflow!.usable) expect(byName.tensorflow!.reason).toMatch(/tfjs-node/);
    // a second probe answers from the cache, the same
    expect(await probeBackends()).toEqual(statuses);
  });

  it('tfjs-node-gpu installed without its native addon: the reason its import gives, told without importing it', async (ctx) => {
    const status = (await probeBackends()).find((s) => s.name === 'tensorflow-gpu')!;
    if (status.usable || !status.reason.includes('native addon')) ctx.skip(); // not this machine's case
    // (probeBackends ran above without loading the package into this process)
    expect(Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('tfjs-node-gpu'))).toBe(false);
    const imported = spawnSync(process.execPath, ['-e', "import('@tensorflow/tfjs-node-gpu').then(() => console.log('loaded'), (e) => console.log(e.message.split('\\n')[0].trim()))"], { encoding: 'utf8', timeout: 60_000 });
    expect(status.reason).toBe(`@tensorflow/tfjs-node-gpu failed to load: ${imported.stdout.trim()}`);
  });

  it('switches to wasm (with the training kernels), to cpu, and back; twice works', async () => {
    expect(await useBackend('wasm')).toEqual({ name: 'wasm' });
    expect(tf.getBackend()).toBe('wasm');
    for (const kernel of WASM_TRAINING_KERNELS) expect(tf.getKernel(kernel, 'wasm')).toBeDefined();
    expect(await useBackend('wasm')).toEqual({ name: 'wasm' });
    expect((await useBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    // a computation works after switching back
    await useBackend('wasm');
    const sum = tf.sum(tf.tensor1d([1, 2, 3]));
    expect(sum.dataSync()[0]).toBe(6);
    sum.dispose();
  });

  it('auto takes the first usable backend in order', async () => {
    const statuses = await probeBackends();
    const expected = statuses.find((s) => s.usable)!;
    const active = await useBackend('auto');
    expect(active.name).toBe(expected.name);
    expect((await useBackend()).name).toBe(expected.name);
  });

  it('an unknown backend is a one-line RevcolError naming the choices', async () => {
    const err = await useBackend('foo').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevcolError);
    expect((err as Error).message).toBe("unknown backend 'foo': choose auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu");
  });

  it('an unusable backend asked for by name is a one-line RevcolError saying what to do', async () => {
    const unusable = (await probeBackends()).filter((s) => !s.usable);
    for (const status of unusable) {
      const err = await useBackend(status.name).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RevcolError);
      const message = (err as Error).message;
      expect(message).toContain(`backend '${status.name}' is not usable here: ${status.reason}`);
      expect(message).toMatch(/use --backend (wasm or cpu|cpu)/);
      expect(message).not.toContain('\n');
    }
    // the failed attempts left a working backend in place
    await useBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('a process that probes every backend exits by itself (no GPU handle keeps it alive)', () => {
    const script =
      "const m = await import('./src/backends/index.ts'); const s = await m.probeBackends(); console.log(JSON.stringify(s.map((b) => b.name)));";
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.signal).toBeNull();
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').pop()!)).toEqual([...BACKEND_ORDER]);
  });

  it('loads Dawn from DAWN_NODE (as the GPU bundle does), answers quickly and exits by itself', () => {
    const dawn = join(dirname(createRequire(import.meta.url).resolve('webgpu/package.json')), 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
    if (!existsSync(dawn)) return; // no Dawn build for this platform
    const script =
      "const m = await import('./src/backends/index.ts'); const s = await m.probeBackend('webgpu'); console.log(JSON.stringify(s));";
    const start = performance.now();
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DAWN_NODE: dawn },
    });
    expect(result.signal).toBeNull();
    expect(result.status).toBe(0);
    expect(performance.now() - start).toBeLessThan(30_000);
    const status = JSON.parse(result.stdout.trim().split('\n').pop()!) as { name: string; usable: boolean; reason: string; adapter?: string };
    expect(status.name).toBe('webgpu');
    if (status.usable) expect(status.adapter).toBeTruthy();
    else expect(status.reason).toMatch(/adapter/);
  });

  it('a model too large for wasm memory: an error with --backend wasm, the cpu backend with auto', async () => {
    let written = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written += String(chunk);
      return true;
    });
    try {
      await backendFromOptions({ backend: 'wasm', quiet: true });
      await fitBackendToModel(100e6, 'inference', 'small');
      await fitBackendToModel(100e6, 'training', 'small');
      expect(tf.getBackend()).toBe('wasm');
      await expect(fitBackendToModel(1e9, 'inference', 'big')).rejects.toThrow(
        /^big has 3\.7 GiB of weights and inference needs about 7\.5 GiB, more than the wasm backend's 4 GiB; use backend cpu/,
      );
      // the CLI's naming: the same message speaks of the flag
      await backendFromOptions({ backend: 'wasm', quiet: true, optionName: flagName });
      await expect(fitBackendToModel(1e9, 'inference', 'big')).rejects.toThrow(/4 GiB; use --backend cpu \(slower/);
      await expect(fitBackendToModel(200e6, 'training', 'mid')).rejects.toThrow(/training needs about 3\.7 GiB/);
      expect(tf.getBackend()).toBe('wasm');
      const auto = await backendFromOptions({ backend: 'auto', quiet: true });
      if (auto.name === 'wasm') {
        // auto chose wasm (no GPU and no libtensorflow here): the large model moves it to cpu
        await fitBackendToModel(1e9, 'inference', 'big');
        expect(tf.getBackend()).toBe('cpu');
        expect(written).toBe("revcol: big has 3.7 GiB of weights and inference needs about 7.5 GiB, more than the wasm backend's 4 GiB; using the cpu backend instead\n");
      }
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('recognises the wasm backend running out of memory, and nothing else', async () => {
    const oom = new WebAssembly.RuntimeError('memory access out of bounds');
    await useBackend('wasm');
    expect(isWasmOutOfMemory(oom)).toBe(true);
    expect(isWasmOutOfMemory(new WebAssembly.RuntimeError('unreachable'))).toBe(false);
    expect(isWasmOutOfMemory(new TypeError('memory access out of bounds'))).toBe(false);
    await useBackend('cpu');
    expect(isWasmOutOfMemory(oom)).toBe(false);
  });

  it('ensureBackend picks auto when nothing chose a backend yet, and keeps one that was set', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join('test', 'helpers', 'ensure-backend.ts')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // No GPU and no libtensorflow in CI: auto is wasm; tfjs on its own would have taken cpu.
    expect(out.before).toBeNull();
    expect(['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm']).toContain(out.chosen);
    expect(out.kept).toBe('cpu');
  });

  it('the API on the cpu backend prints no "install tfjs-node" banner', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join('test', 'helpers', 'cpu-banner.ts')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('[1,1]');
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/Hi, looks like you are running TensorFlow\.js in Node\.js/);
  });
});
