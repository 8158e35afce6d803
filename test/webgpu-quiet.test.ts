// Quiet probing: Dawn's own notices (written from C++ to fd 2 when it opens a Vulkan adapter)
// must not reach the terminal of a command that only probes backends, such as `revcol info`;
// what Dawn says about a real failure comes back as the backend's one-line reason instead.
// These run `info` in real child processes: the notices bypass process.stderr.write.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { webgpu } from './helpers/webgpu.js';

const NOTICE = 'artificially reduced';

function info(env: NodeJS.ProcessEnv, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.REVCOL_WEBGPU_SOFTWARE; // the helper sets it in this process: info runs as a user's would
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
