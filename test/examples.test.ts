// Every file in examples/ runs end to end as a user runs it — `node --import tsx examples/X.ts`,
// a process of its own, 'revcol' resolved to src/ through tsconfig.json's paths — exits 0 and
// prints what it did. A new example needs an entry in EXPECTED, or this test fails.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const examples = readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.ts') && !f.endsWith('.tmp.ts')).sort();

/** Runs one example in its own process; resolves with its exit code and output. */
function runExample(file: string, timeoutMs = 150_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // One wasm thread: the examples share two cores with the rest of the suite, where waiting
    // threads cost more than they bring.
    const child = spawn(process.execPath, ['--import', 'tsx', path.join('examples', file)], {
      cwd: root,
      env: { ...process.env, REVCOL_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Per example: checks on what it printed (each can fail: numbers are read back and judged). */
const EXPECTED: Record<string, (stdout: string) => void> = {
  'gated-mlp-columns.ts': (stdout) => {
    expect(stdout).toMatch(/^gated-MLP RevCol: 4 columns, channels 16\/24\/32, [\d,]+ parameters, on the \w[\w-]* backend$/m);
    const loss = /loss ([\d.]+) -> ([\d.]+)/.exec(stdout);
    expect(loss, stdout).not.toBeNull();
    expect(Number(loss![2])).toBeLessThan(Number(loss![1]) / 2);
    const acc = /accuracy: ([\d.]+)% on the 96 training points, ([\d.]+)% on 60 new ones/.exec(stdout);
    expect(acc, stdout).not.toBeNull();
    expect(Number(acc![2])).toBeGreaterThanOrEqual(80);
    const diff = /reversible vs plain autodiff: (\d+) gradients, worst relative difference ([\d.e+-]+)/.exec(stdout);
    expect(diff, stdout).not.toBeNull();
    expect(Number(diff![1])).toBeGreaterThan(0);
    expect(Number(diff![2])).toBeLessThanOrEqual(1e-4);
  },
  'text-classification.ts': (stdout) => {
    expect(stdout).toMatch(/^fine-tuned on 108 texts \(10 epochs, \w[\w-]* backend\): accuracy [\d.]+% on 12 held-out training texts; saved in /m);
    expect(stdout).toMatch(/^text 1: (sport|music) \([\d.]+%; music [\d.]+, sport [\d.]+\)$/m);
    expect(stdout).toMatch(/^text 2: (sport|music) /m);
    const report = /evaluated on 40 test texts: accuracy ([\d.]+)%, macro-F1 ([\d.]+)/.exec(stdout);
    expect(report, stdout).not.toBeNull();
    expect(Number(report![1])).toBeGreaterThanOrEqual(75);
  },
  'vision-predict.ts': (stdout) => {
    expect(stdout).toMatch(/^revcol-nano-32: 2 columns, channels 16\/32\/48\/64, [\d,]+ parameters, on the \w[\w-]* backend$/m);
    const loss = /first 4 steps ([\d.]+), of the last 4 ([\d.]+)/.exec(stdout);
    expect(loss, stdout).not.toBeNull();
    expect(Number(loss![2])).toBeLessThan(Number(loss![1]));
    expect(stdout).toMatch(/^saved and loaded .*red-blue\.safetensors$/m);
    expect(stdout.match(/^new-\d\.png: (red|blue) [\d.]+% \(drawn (red|blue)\)$/gm)).toHaveLength(8);
    const right = /^(\d) of 8 new images classified right$/m.exec(stdout);
    expect(right, stdout).not.toBeNull();
    expect(Number(right![1])).toBeGreaterThanOrEqual(6);
  },
};

describe('examples/ run end to end', () => {
  it('every example has its checks here', () => {
    expect(examples.length).toBeGreaterThan(0);
    expect(examples).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(examples.filter((f) => f in EXPECTED))('%s', async (file) => {
    const r = await runExample(file);
    expect(r.signal, `${file} was stopped (timeout?)\n${r.stderr}`).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    // No stack traces or tfjs notes on stderr; stdout says what happened.
    expect(r.stderr).not.toMatch(/\n\s+at |Error/);
    EXPECTED[file]!(r.stdout);
  }, 180_000);
});
