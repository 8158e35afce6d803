import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The real CLI in a child process: proves a user mistake gives one line and exit 1, no stack.
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: path.resolve(__dirname, '..'),
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr without the "using backend" and warning lines: what is left must be one error line. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() && !l.startsWith('revcol: using backend') && !l.startsWith('revcol: warning:'));
}

let root: string;
beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'revcol-vision-cli-'));
  const png = (rgb: number[]) =>
    sharp(Buffer.from(Array.from({ length: 16 * 16 }, () => rgb).flat()), { raw: { width: 16, height: 16, channels: 3 } }).png();
  mkdirSync(path.join(root, 'one', 'cats'), { recursive: true });
  await png([10, 20, 30]).toFile(path.join(root, 'one', 'cats', 'a.png'));
  await png([10, 20, 30]).toFile(path.join(root, 'one', 'cats', 'b.png'));
  mkdirSync(path.join(root, 'empty', 'a'), { recursive: true });
  mkdirSync(path.join(root, 'empty', 'b'), { recursive: true });
  // Two classes, but one holds only a corrupt file and a text file.
  mkdirSync(path.join(root, 'bad', 'good'), { recursive: true });
  mkdirSync(path.join(root, 'bad', 'broken'), { recursive: true });
  await png([200, 0, 0]).toFile(path.join(root, 'bad', 'good', 'a.png'));
  writeFileSync(path.join(root, 'bad', 'broken', 'x.png'), 'not an image');
  writeFileSync(path.join(root, 'bad', 'broken', 'readme.txt'), 'hello');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('revcol vision: registration', () => {
  it('declares its commands without loading TensorFlow.js, sharp or the model (a fast --help)', () => {
    // tfjs-core sets globalThis._tfengine when loaded; sharp, a CommonJS package, shows in require's cache.
    const script = [
      "import { createRequire } from 'node:module';",
      "import { Command } from 'commander';",
      "const { registerVisionCommands } = await import('./src/cli/vision.ts');",
      "await import('./src/cli/common.ts');",
      'const vision = registerVisionCommands(new Command());',
      'const cache = Object.keys(createRequire(import.meta.url).cache);',
      "console.log(JSON.stringify({ commands: vision.commands.map((c) => c.name()), tfjs: '_tfengine' in globalThis, sharp: cache.some((f) => f.includes('/sharp/')) }));",
    ].join('\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: path.resolve(__dirname, '..'), encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({ commands: ['train', 'eval', 'predict'], tfjs: false, sharp: false });
  });
});

describe('revcol vision train / eval: bad input', () => {
  it('shows examples in --help', () => {
    const train = cli('vision', 'train', '--help');
    expect(train.code).toBe(0);
    expect(train.stdout).toContain('Examples:');
    expect(train.stdout).toContain('--data mnist');
    expect(train.stdout).toContain('--backend');
    const evalHelp = cli('vision', 'eval', '--help');
    expect(evalHelp.stdout).toContain('Examples:');
    expect(evalHelp.stdout).toContain('--json');
  });

  const cases: Array<[string, () => string[], RegExp]> = [
    ['missing --data', () => ['vision', 'train', '--backend', 'cpu'], /--data is required/],
    ['unknown preset', () => ['vision', 'train', '--data', 'mnist', '--preset', 'revcol-huge', '--backend', 'cpu'], /unknown vision preset 'revcol-huge'.*revcol-t/],
    ['one-class folder', () => ['vision', 'train', '--data', path.join(root, 'one'), '--backend', 'cpu'], /single class \(cats\)/],
    ['folder without images', () => ['vision', 'train', '--data', path.join(root, 'empty'), '--backend', 'cpu'], /no readable/],
    ['missing folder', () => ['vision', 'train', '--data', path.join(root, 'nope'), '--backend', 'cpu'], /cannot read the data folder/],
    // the library's message names the option (batchSize); the CLI's names the flag
    ['a zero batch size', () => ['vision', 'train', '--data', 'mnist', '--limit', '16', '--batch-size', '0', '--out', path.join(root, 'bs0'), '--backend', 'cpu'], /^revcol: --batch-size must be a whole number ≥ 1, got 0$/],
    ['eval of a missing model', () => ['vision', 'eval', '--model', path.join(root, 'nope'), '--data', 'mnist', '--backend', 'cpu'], /does not exist/],
  ];
  for (const [name, args, message] of cases) {
    it(`${name}: one line, exit 1`, () => {
      const r = cli(...args());
      expect(r.code).toBe(1);
      const lines = errorLines(r.stderr);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^revcol: /);
      expect(lines[0]).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it('corrupt and non-image files: a warning naming each, then the class left empty is an error', () => {
    const r = cli('vision', 'train', '--data', path.join(root, 'bad'), '--backend', 'cpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`revcol: warning: skipping ${path.join(root, 'bad', 'broken', 'x.png')}: not a readable image`);
    expect(r.stderr).toContain(`revcol: warning: skipping ${path.join(root, 'bad', 'broken', 'readme.txt')}: not a .png, .jpg or .jpeg file`);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/broken holds no readable images/);
  });
});
