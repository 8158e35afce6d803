import { expect, vi } from 'vitest';
import { runCli } from '../../src/cli/main.js';

/** Runs the CLI in this process, as `revcol ARGS` would; returns its exit code and what it wrote. */
export async function runCliCaptured(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => { stdout += String(chunk); return true; });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { stderr += String(chunk); return true; });
  try {
    return { code: await runCli(args), stdout, stderr };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
  }
}

/** A user mistake: exit 1 and exactly one line `revcol: ...` on stderr (after the backend line), no stack. */
export function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('revcol: using backend'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^revcol: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}
