import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { probeBackends } from '../src/backends/index.js';
import { nativeBlas, nativeBlasStatus } from '../src/backends/native-blas.js';
import { runCli } from '../src/cli/main.js';

/** Runs the CLI in-process and returns its exit code and what it wrote to stdout and stderr. */
async function capture(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await runCli(argv);
    return { code, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('revcol info', () => {
  it('--json prints one JSON object: every backend, the auto choice, the adapter when there is one', async () => {
    const { code, stdout } = await capture(['info', '--json']);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]!) as {
      backends: Array<{ name: string; usable: boolean; reason: string; adapter?: string }>;
      auto: string;
      adapter?: string;
      wasmProducts: string;
    };
    expect(report.backends.map((b) => b.name)).toEqual(['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu']);
    expect(report.auto).toBe(report.backends.find((b) => b.usable)!.name);
    const gpu = report.backends.find((b) => b.adapter !== undefined);
    expect(report.adapter).toBe(gpu?.adapter);
    expect(report.backends).toEqual(await probeBackends());
    expect(report.wasmProducts).toBe(nativeBlasStatus());
  });

  it('prints one line per backend, what auto picks and the GPU adapter', async () => {
    const { code, stdout } = await capture(['info']);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(8);
    expect(lines[3]).toMatch(/^wasm\s+usable\s+\S/);
    expect(lines[4]).toMatch(/^cpu\s+usable\s+\S/);
    const auto = (await probeBackends()).find((b) => b.usable)!.name;
    expect(lines[5]).toBe(`auto picks: ${auto}`);
    expect(lines.filter((l) => l.endsWith('<- auto'))).toHaveLength(1);
    expect(lines[6]).toMatch(/^GPU adapter: /);
    // OpenBLAS where native/build holds the module (native-blas.test.ts), else why not
    expect(lines[7]).toBe(`wasm products: ${nativeBlasStatus()}`);
    expect(lines[7]).toMatch(nativeBlas() ? /^wasm products: OpenBLAS \(OpenBLAS \d/ : /^wasm products: revcol's wasm kernels \(/);
  });

  it('--backend wasm adds what runs its products', async () => {
    const { code, stdout } = await capture(['info', '--backend', 'wasm']);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toEqual([expect.stringMatching(/^wasm\s+usable/), `wasm products: ${nativeBlasStatus()}`]);
  });

  it('--backend validates and reports that backend alone', async () => {
    const { code, stdout, stderr } = await capture(['info', '--backend', 'cpu', '--json']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const report = JSON.parse(stdout) as { backends: Array<{ name: string; usable: boolean }> };
    expect(report.backends).toEqual([expect.objectContaining({ name: 'cpu', usable: true })]);
  });

  it('an unusable backend by name is listed, not an error: its line says why', async () => {
    const unusable = (await probeBackends()).find((b) => !b.usable);
    if (!unusable) return; // every backend works on this machine
    const { code, stdout, stderr } = await capture(['info', '--backend', unusable.name]);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout.split('\n')[0]).toBe(`${unusable.name.padEnd(15)}not usable  ${unusable.reason}`);
    const json = await capture(['info', '--backend', unusable.name, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).backends).toEqual([unusable]);
  });

  it('an unknown backend in a real process: exit code 1, a single stderr line, no stack trace', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info', '--backend', 'nope'], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe("revcol: unknown backend 'nope': choose auto, tensorflow-gpu, webgpu, tensorflow, wasm or cpu\n");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
