// Quiet probing: Dawn's own notices (written from C++ to fd 2 when it opens a Vulkan adapter)
// must not reach the terminal of a command that only probes backends, such as `revcol info`;
// what Dawn says about a real failure comes back as the backend's one-line reason instead.
// These run `info` in real child processes: the notices bypass process.stderr.write.
// GPU errors of an open device: dawn.node prints them on stdout; revcol makes each one line on
// stderr (src/backends/quiet-dawn.ts), checked with a fake device here and on lavapipe below.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAWN_LIMIT_NOTICE, dawnStderrNotes, watchGpuDevice } from '../src/backends/quiet-dawn.js';
import { stderrCaptureAvailable } from '../src/backends/native-stderr.js';
import { webgpu } from './helpers/webgpu.js';

const NOTICE = 'artificially reduced';

function info(env: NodeJS.ProcessEnv, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.REVCOL_WEBGPU_SOFTWARE; // the helper sets it in this process: info runs as a user's would
  Object.assign(childEnv, env);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info', ...args], {
    encoding: 'utf8',
    timeout: 90_000,
    env: childEnv,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!webgpu.adapter)(`quiet webgpu probing (${webgpu.adapter ? `adapter: ${webgpu.adapter}` : `skipped: ${webgpu.reason}`})`, () => {
  it('revcol info finds the adapter and prints none of Dawn\'s notices', () => {
    const r = info({});
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`GPU adapter: ${webgpu.adapter}`);
    expect(r.stderr).not.toContain(NOTICE);
    expect(r.stderr).not.toMatch(/^Warning: /m);
  });

  it('Dawn failing to find a driver is one line in the webgpu reason, nothing on stderr', () => {
    const r = info({ VK_DRIVER_FILES: '/nonexistent/revcol-no-driver.json', VK_ICD_FILENAMES: '/nonexistent/revcol-no-driver.json' }, '--json');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout.trim()) as { backends: Array<{ name: string; usable: boolean; reason: string }> };
    const status = report.backends.find((b) => b.name === 'webgpu')!;
    expect(status.usable).toBe(false);
    expect(status.reason).toMatch(/^no GPU adapter found \(Vulkan\/Dawn\)/);
    expect(status.reason).not.toContain('\n');
  });
});

/** An object with what watchGpuDevice uses of a GPUDevice: events and the lost promise. */
function fakeDevice() {
  let lose!: (info: { reason: string; message: string }) => void;
  const target = new EventTarget();
  const device = Object.assign(target, { lost: new Promise<{ reason: string; message: string }>((r) => (lose = r)) });
  const raise = (kind: string, message: string) => {
    // what watchGpuDevice reads of a GPUError: its class name and message
    const event = Object.assign(new Event('uncapturederror', { cancelable: true }), { error: { message, constructor: { name: kind } } });
    device.dispatchEvent(event);
    return event.defaultPrevented;
  };
  return { device: device as unknown as GPUDevice, raise, lose };
}

describe('GPU errors as one line (no adapter needed)', () => {
  it('each distinct uncaptured error is one revcol line, Dawn\'s own print (stdout) prevented; a flood is cut short', () => {
    const lines: string[] = [];
    const { device, raise } = fakeDevice();
    watchGpuDevice(device, (line) => lines.push(line));
    watchGpuDevice(device, (line) => lines.push(line)); // twice: still one listener
    const message = 'Buffer usages (BufferUsage::(MapRead|Storage)) is invalid.\n - While calling [Device].CreateBuffer([BufferDescriptor ""]).\n';
    expect(raise('GPUValidationError', message)).toBe(true);
    raise('GPUValidationError', message);
    expect(lines).toEqual(['revcol: GPU validation error: Buffer usages (BufferUsage::(MapRead|Storage)) is invalid. - While calling [Device].CreateBuffer([BufferDescriptor ""]).']);
    raise('GPUOutOfMemoryError', 'Out of memory\n');
    expect(lines[1]).toBe('revcol: GPU out of memory: Out of memory');
    for (let i = 0; i < 20; i++) raise('GPUValidationError', `error ${i}`);
    expect(lines).toHaveLength(11);
    expect(lines[10]).toMatch(/^revcol: further GPU errors are not shown \(REVCOL_DAWN_LOG=1/);
  });

  it('a lost device is one line; one destroyed on purpose says nothing', async () => {
    const lines: string[] = [];
    const lost = fakeDevice();
    watchGpuDevice(lost.device, (line) => lines.push(line));
    lost.lose({ reason: 'unknown', message: 'Device lost: driver reset\n(more)' });
    const destroyed = fakeDevice();
    watchGpuDevice(destroyed.device, (line) => lines.push(line));
    destroyed.lose({ reason: 'destroyed', message: 'device was destroyed' });
    await new Promise((r) => setTimeout(r, 10));
    expect(lines).toEqual(['revcol: the GPU device was lost: Device lost: driver reset (more)']);
  });

  it('the probe keeps Dawn\'s other lines, drops the limit notices and stack frames', () => {
    const stderr = [
      'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.',
      'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.',
      'Warning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER',
      '    at foo (bar.js:1:1)',
      '',
    ].join('\n');
    expect(stderr.split('\n').filter((l) => DAWN_LIMIT_NOTICE.test(l))).toHaveLength(2);
    expect(dawnStderrNotes(stderr)).toEqual(['vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER']);
  });
});

/** Opens webgpu through revcol in a child, makes the same invalid buffer 3 times, sums [1,2,3] on the GPU. */
const GPU_ERROR_SCRIPT = `
import * as tf from '@tensorflow/tfjs-core';
import { releaseGpuBackend, useBackend } from './src/backends/index.ts';
await useBackend('webgpu');
const device = tf.backend().device;
for (let i = 0; i < 3; i++) device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
const sum = tf.sum(tf.tensor([1, 2, 3]));
process.stdout.write(JSON.stringify({ sum: (await sum.data())[0] }) + '\\n');
releaseGpuBackend();
`;

function gpuErrorRun(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', GPU_ERROR_SCRIPT], {
    encoding: 'utf8',
    timeout: 90_000,
    env: { ...process.env, REVCOL_WEBGPU_SOFTWARE: '1', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!webgpu.adapter)(`GPU errors on a real device (${webgpu.adapter ? `adapter: ${webgpu.adapter}` : `skipped: ${webgpu.reason}`})`, () => {
  it('a validation error is one revcol line on stderr; stdout keeps only the output', () => {
    const r = gpuErrorRun({});
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('{"sum":6}\n');
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.startsWith('revcol: GPU validation error: Buffer usages'))).toHaveLength(1);
    // Opening the device in this process: Dawn's two limit notices are held back where native/stderr.c
    // is built (docs/backends.md), and are the one thing left where it is not
    expect(lines.filter((l) => !l.startsWith('revcol: ') && !DAWN_LIMIT_NOTICE.test(l))).toEqual([]);
    if (stderrCaptureAvailable()) expect(r.stderr).not.toContain(NOTICE);
  });

  it.skipIf(!stderrCaptureAvailable())(`opening webgpu in the process (info --backend webgpu starts it) prints none of Dawn's notices${stderrCaptureAvailable() ? '' : ' (skipped: native/build/revcol-stderr.node is not built: no C compiler)'}`, () => {
    const r = info({ REVCOL_WEBGPU_SOFTWARE: '1' }, '--backend', 'webgpu');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`GPU adapter: ${webgpu.adapter}`);
    expect(r.stderr).toBe('');
  });

  it('REVCOL_DAWN_LOG=1 shows Dawn\'s own messages again', () => {
    const r = gpuErrorRun({ REVCOL_DAWN_LOG: '1' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^validation:$/m);
    expect(r.stdout).toContain('{"sum":6}\n');
    expect(r.stderr).toContain(NOTICE); // the probe's, passed through
    const i = info({ REVCOL_DAWN_LOG: '1' });
    expect(i.status).toBe(0);
    expect(i.stderr).toContain(NOTICE);
  });
});

/**
 * A DAWN_NODE module: the `webgpu` package's dawn.node with every device request asking for far
 * more bind groups than any adapter has, so that Dawn itself refuses to create the device; with
 * `hardware`, its adapter also passes for a hardware GPU ('Stand-in GPU'), so that 'auto' tries it.
 */
function refusingDawn(hardware: boolean): string {
  const dawnNode = join(dirname(createRequire(import.meta.url).resolve('webgpu')), 'dist', `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`, 'dawn.node');
  const file = join(mkdtempSync(join(tmpdir(), 'revcol-dawn-')), 'refusing-dawn.cjs');
  const standIn = [
    'const requestAdapter = dawn.globals.GPU.prototype.requestAdapter;',
    'dawn.globals.GPU.prototype.requestAdapter = async function (options) {',
    '  const adapter = await requestAdapter.call(this, options);',
    "  if (adapter) Object.defineProperty(adapter, 'info', { value: { ...adapter.info, description: 'Stand-in GPU', isFallbackAdapter: false } });",
    '  return adapter;',
    '};',
  ];
  writeFileSync(
    file,
    [
      `const dawn = require(${JSON.stringify(dawnNode)});`,
      'const requestDevice = dawn.globals.GPUAdapter.prototype.requestDevice;',
      'dawn.globals.GPUAdapter.prototype.requestDevice = function (desc = {}) {',
      '  return requestDevice.call(this, { ...desc, requiredLimits: { ...(desc.requiredLimits ?? {}), maxBindGroups: 1 << 20 } });',
      '};',
      ...(hardware ? standIn : []),
      'exports.create = dawn.create;',
      'exports.globals = dawn.globals;',
      '',
    ].join('\n'),
  );
  return file;
}

/** Dawn's refusal of the device above, as revcol words it on one line. */
const REFUSED = /Required limit \(1048576\) is greater than the supported limit \(\d+\)\. - While validating maxBindGroups/;

describe.skipIf(!webgpu.adapter)(`a GPU device Dawn refuses to create (${webgpu.adapter ? `adapter: ${webgpu.adapter}` : `skipped: ${webgpu.reason}`})`, () => {
  it('asked for by name: the one-line error says Dawn\'s reason', () => {
    const r = info({ DAWN_NODE: refusingDawn(false), REVCOL_WEBGPU_SOFTWARE: '1' }, '--backend', 'webgpu', '--json');
    expect(r.status).toBe(0);
    const status = (JSON.parse(r.stdout.trim()) as { backends: Array<{ usable: boolean; reason: string }> }).backends[0];
    expect(status.usable).toBe(false);
    expect(status.reason).toMatch(/^backend 'webgpu' could not be started: /);
    expect(status.reason).toMatch(REFUSED);
    expect(status.reason).not.toContain('\n');
    expect(r.stderr.split('\n').filter((l) => l !== '' && !DAWN_LIMIT_NOTICE.test(l))).toEqual([]);
  });

  it('under auto: one line saying why, then the next backend (tfjs\'s own warning and stack not printed)', () => {
    const script = "import { useBackend } from './src/backends/index.ts'; process.stdout.write(JSON.stringify(await useBackend('auto')) + '\\n');";
    const env: NodeJS.ProcessEnv = { ...process.env, DAWN_NODE: refusingDawn(true) };
    delete env.REVCOL_WEBGPU_SOFTWARE;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 90_000, env });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim()).name).not.toBe('webgpu');
    const lines = r.stderr.split('\n').filter((l) => l !== '' && !DAWN_LIMIT_NOTICE.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^revcol: backend 'webgpu' could not be started \(Required limit/);
    expect(lines[0]).toMatch(REFUSED);
    expect(lines[0]).toMatch(/'auto' goes on to the next one$/);
  });
});
