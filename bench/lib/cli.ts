import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root, whatever the bench's own folder. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs the CLI from source as a separate process, exactly as a user would type
 * `npx tsx src/cli/main.ts ARGS` in the checkout: its progress goes to this terminal's stderr;
 * stdout too unless `captureStdout`, then it comes back. Resolves with the exit code and the wall time.
 */
export function runRevcol(cliArgs: string[], captureStdout: boolean): Promise<{ code: number; stdout: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...cliArgs], {
      cwd: repoRoot,
      stdio: ['ignore', captureStdout ? 'pipe' : 'inherit', 'inherit'],
    });
    let stdout = '';
    child.stdout?.on('data', (chunk) => {
      stdout += String(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, seconds: (performance.now() - started) / 1000 }));
  });
}
