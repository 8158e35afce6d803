import { spawnSync } from 'node:child_process';
import fs, { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readTextExamples, readTextLines, Utf8LineCheck } from '../src/data/text.js';
import { fsErrorLine, isUserFsError } from '../src/io/atomic.js';
import { writeNpy } from '../src/io/npy.js';
import { fineTune } from '../src/text/fine-tune.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';
import { webgpu } from './helpers/webgpu.js';

const root = path.resolve(__dirname, '..');
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-cli-errors-'));
const train = path.join(work, 'topics.csv');
const model = path.join(work, 'model');
const cli = runCliCaptured;

beforeAll(async () => {
  writeTopics(train, 40, 1);
  await fineTune({ train, out: model, preset: 'text-micro', epochs: 1, backend: 'wasm', progress: false, log: () => {} });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** The CLI in a child process, with `env` added to this process's environment. */
const spawnCli = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('commander\'s parse errors are one revcol: line, exit 1', () => {
  it('a bad number, an unknown option, a missing argument or option, an unknown command, a bad choice', async () => {
    const cases: Array<[string[], string]> = [
      [['fine-tune', '--epochs', 'abc'], "revcol: option '--epochs <n>' argument 'abc' is invalid. --epochs must be a whole number ≥ 1; see revcol fine-tune --help"],
      [['fine-tune', '--fro', 'x'], "revcol: unknown option '--fro' (Did you mean --from?); see revcol fine-tune --help"],
      [['pretrain', '--out'], "revcol: option '--out <dir>' argument missing; see revcol pretrain --help"],
      [['vision', 'train', '--mode', 'fast'], "revcol: option '--mode <mode>' argument 'fast' is invalid. Allowed choices are reversible, plain; see revcol vision train --help"],
      [['eval', '--data', train], "revcol: required option '--model <dir>' not specified; see revcol eval --help"],
      [['info', 'extra'], "revcol: too many arguments for 'info'. Expected 0 arguments but got 1; see revcol info --help"],
      [['fine-tun'], "revcol: unknown command 'fine-tun' (Did you mean fine-tune?); see revcol --help"],
    ];
    for (const [args, line] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toBe(`${line}\n`);
      expect(r.stdout).toBe('');
    }
    // Help is still help.
    const help = await cli(['fine-tune', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: revcol fine-tune/);
  });

  it('in a real process: exit code 1 and one stderr line', () => {
    const r = spawnCli(['vision', 'train', '--epochs']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("revcol: option '--epochs <n>' argument missing; see revcol vision train --help\n");
  });
});

describe('file-system errors on what the user named are one line', () => {
  it('--out under a file, --file that is a folder, an unreadable data file (injected EACCES)', async () => {
    const file = path.join(work, 'plain-file');
    writeFileSync(file, 'x');
    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', path.join(file, 'run'), '--backend', 'wasm']), /^revcol: cannot create the output folder .*plain-file\/run: a part of its path is a file, not a folder \(ENOTDIR\); choose another --out$/);
    expectOneLineError(await cli(['predict', '--model', model, '--file', work, '--backend', 'wasm']), new RegExp(`^revcol: ${work} is a folder, not a file$`));
    const realOpen = fs.promises.open;
    vi.spyOn(fs.promises, 'open').mockImplementation(async (p, ...rest) => {
      if (String(p) === train) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', syscall: 'open', path: train });
      return realOpen(p, ...(rest as [])) as never;
    });
    expectOneLineError(await cli(['eval', '--model', model, '--data', train, '--backend', 'wasm']), new RegExp(`^revcol: cannot read ${train}: permission denied \\(EACCES\\); check its permissions$`));
  });

  it('an fs error the command does not handle itself (a read-only file system while saving, injected) is one line, exit 1, no stack', async () => {
    const realRename = fs.promises.rename;
    vi.spyOn(fs.promises, 'rename').mockImplementation(async (from, to) => {
      if (String(to).endsWith('tokenizer.json')) throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS', syscall: 'rename', path: String(from) });
      return realRename(from, to);
    });
    const r = await cli(['pretrain', '--train', train, '--out', path.join(work, 'lm'), '--preset', 'text-micro', '--epochs', '1', '--no-progress', '--backend', 'wasm']);
    expectOneLineError(r, new RegExp(`^revcol: cannot write ${path.join(work, 'lm', 'tokenizer.json')}: the file system is read-only \\(EROFS\\); choose a writable place$`));
    // The mapping: which errors count, and the words for them.
    const enospc = Object.assign(new Error('x'), { code: 'ENOSPC', syscall: 'write', path: '/d/f' });
    expect(isUserFsError(enospc)).toBe(true);
    expect(isUserFsError(Object.assign(new Error('x'), { code: 'ERR_ASSERTION' }))).toBe(false);
    expect(fsErrorLine(enospc)).toBe('cannot write /d/f: no space left on the device (ENOSPC); free some space or choose another place');
    expect(fsErrorLine(Object.assign(new Error('x'), { code: 'EISDIR', syscall: 'open', path: '/d' }))).toBe('cannot open /d: it is a folder, not a file (EISDIR); give a file');
  });
});

describe('other mistakes', () => {
  it('--max-length past the preset\'s positions is one line (fine-tune and pretrain)', async () => {
    expectOneLineError(await cli(['fine-tune', '--train', train, '--preset', 'text-micro', '--max-length', '512', '--out', path.join(work, 'long'), '--backend', 'wasm']),
      /^revcol: --max-length 512 is longer than the 128 positions of preset text-micro: use 128 or less, or a --config with "maxLength": 512$/);
    expectOneLineError(await cli(['pretrain', '--train', train, '--preset', 'text-micro', '--max-length', '200', '--out', path.join(work, 'long'), '--backend', 'wasm']),
      /^revcol: --max-length 200 is longer than the 128 positions of preset text-micro/);
    const config = path.join(work, 'long.json');
    writeFileSync(config, JSON.stringify({ preset: 'text-micro', maxLength: 64 }));
    expectOneLineError(await cli(['fine-tune', '--train', train, '--config', config, '--max-length', '96', '--out', path.join(work, 'long'), '--backend', 'wasm']),
      /^revcol: --max-length 96 is longer than the 64 positions of the config/);
  });

  it('predict "" warns that an empty text has nothing to classify, and still answers for every text', async () => {
    const r = await cli(['predict', '--model', model, '', 'a new album and a concert', '--backend', 'wasm']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('revcol: warning: text 1 is empty: with no words, its label says only which class the model leans to by default\n');
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
    const fine = await cli(['predict', '--model', model, 'a song', '--backend', 'wasm']);
    expect(fine.stderr).not.toContain('warning');
  });

  it('a file that is not UTF-8 warns once: how many lines, and the first', async () => {
    const lines = path.join(work, 'latin1.txt');
    writeFileSync(lines, Buffer.concat([Buffer.from('a new song\n'), Buffer.from('caf\xe9 and a match\n', 'latin1'), Buffer.from('fine\n'), Buffer.from([0xff, 0xfe, 0x0a])]));
    const r = await cli(['predict', '--model', model, '--file', lines, '--backend', 'wasm']);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('warning'));
    expect(warnings).toEqual([`revcol: warning: ${lines} is not valid UTF-8: 2 lines have (the first: line 2) bytes that are not UTF-8, read as \uFFFD; save the file as UTF-8`]);
    expect(r.stdout.trim().split('\n')).toHaveLength(4);

    // Tables (CSV, JSONL) and plain lines, through the reader functions.
    const csv = path.join(work, 'latin1.csv');
    writeFileSync(csv, Buffer.concat([Buffer.from('text,label\ngood one,a\n'), Buffer.from('na\xefve,b\n', 'latin1')]));
    const seen: string[] = [];
    expect((await readTextExamples(csv, { warn: (m) => seen.push(m) })).texts).toEqual(['good one', 'na\uFFFDve']);
    const jsonl = path.join(work, 'latin1.jsonl');
    writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text": "fine", "label": "a"}\n{"text": "'), Buffer.from('\xe9', 'latin1'), Buffer.from('", "label": "b"}\n')]));
    await readTextExamples(jsonl, { warn: (m) => seen.push(m) });
    await readTextLines(train, (m) => seen.push(m));
    expect(seen).toEqual([
      `${csv} is not valid UTF-8: line 3 has bytes that are not UTF-8, read as \uFFFD; save the file as UTF-8`,
      `${jsonl} is not valid UTF-8: line 2 has bytes that are not UTF-8, read as \uFFFD; save the file as UTF-8`,
    ]);
    // The checker across chunk boundaries: a sequence split between chunks is valid; a cut one is not.
    const check = (chunks: number[][]) => {
      const c = new Utf8LineCheck();
      chunks.forEach((k) => c.push(Uint8Array.from(k)));
      c.finish();
      return [c.badLines, c.firstBadLine];
    };
    expect(check([[0x61, 0xc3], [0xa9, 0x0a, 0x62]])).toEqual([0, 0]);
    expect(check([[0x0a, 0x0a, 0xe2, 0x82], [0x0a, 0x63]])).toEqual([1, 3]);
    expect(check([[0xed, 0xa0, 0x80]])).toEqual([1, 1]); // a UTF-16 surrogate is not UTF-8
  });

  it('an empty .npy batch (0×3×32×32) to vision predict says it holds no images', async () => {
    const empty = path.join(work, 'empty.npy');
    await writeNpy(empty, [0, 3, 32, 32], new Float32Array(0));
    expectOneLineError(await cli(['vision', 'predict', '--preset', 'revcol-nano-32', empty, '--backend', 'wasm']),
      new RegExp(`^revcol: ${empty} holds no images \\(shape \\[0, 3, 32, 32\\]\\): give a batch of at least one N×3×H×W image$`));
  });

  it('info --backend webgpu lists it, usable or not', async () => {
    const r = await cli(['info', '--backend', 'webgpu']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^webgpu\s+(usable|not usable)\s+\S/);
    expect(r.stderr).not.toMatch(/revcol:/);
  });

  /** `predict` on the webgpu backend (lavapipe allowed) with `env` added. */
  const predictOnWebgpu = (env: NodeJS.ProcessEnv) => spawnCli(['predict', '--model', model, '--backend', 'webgpu', 'a match'], { REVCOL_WEBGPU_SOFTWARE: '1', ...env });

  it.skipIf(!webgpu.available)(`a bad REVCOL_WEBGPU_ROW_LANES, REVCOL_WEBGPU_VEC4 or REVCOL_GPU_WAIT is one revcol: line when webgpu starts${webgpu.available ? '' : ` (skipped: ${webgpu.reason})`}`, () => {
    const r = predictOnWebgpu({ REVCOL_WEBGPU_ROW_LANES: '12' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("revcol: REVCOL_WEBGPU_ROW_LANES must be one of 1, 2, 4, 8, 16, 32, 64 or auto, got '12'\n");
    const vec4 = predictOnWebgpu({ REVCOL_WEBGPU_VEC4: 'off' });
    expect(vec4.code).toBe(1);
    expect(vec4.stderr).toBe("revcol: REVCOL_WEBGPU_VEC4 must be 1 (four elements a thread where the sizes allow, the default) or 0 (one), got 'off'\n");
    const wait = predictOnWebgpu({ REVCOL_GPU_WAIT: 'off' });
    expect(wait.code).toBe(1);
    expect(wait.stderr).toBe("revcol: REVCOL_GPU_WAIT must be yield (the default) or spin (dawn.node's own polling), got 'off'\n");
  });

  it.skipIf(!webgpu.available)(`REVCOL_DAWN_FLAGS reaches Dawn: a malformed entry, or an adapter it does not have, is one revcol: line naming what to fix${webgpu.available ? '' : ` (skipped: ${webgpu.reason})`}`, () => {
    const malformed = predictOnWebgpu({ REVCOL_DAWN_FLAGS: 'bogus' });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toBe(
      "revcol: backend 'webgpu' is not usable here: REVCOL_DAWN_FLAGS takes ';'-separated key=value entries (e.g. adapter=NAME, or enable-dawn-features=a,b), got 'bogus'; use --backend wasm or cpu, or see 'revcol info'\n",
    );
    // dawn.node's adapter=NAME picks one of several GPUs; a wrong name lists those it has, on the same line
    const missing = predictOnWebgpu({ REVCOL_DAWN_FLAGS: 'adapter=no-such-gpu' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^revcol: backend 'webgpu' is not usable here: WebGPU probe failed: no suitable backends found Available adapters: .*llvmpipe.*; use --backend wasm or cpu, or see 'revcol info'\n$/);
  });

  it('an off switch (REVCOL_FUSED and the like) with a value other than 0 or 1 is one revcol: line, on any backend', () => {
    const r = spawnCli(['predict', '--model', model, '--backend', 'cpu', 'a match'], { REVCOL_FUSED: 'off' });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("revcol: REVCOL_FUSED must be 0 (off) or 1 (on, the default), got 'off'\n");
  });

  it('the cpu backend\'s "Hi, looks like you are running TensorFlow.js in Node.js" banner is not printed by the CLI', () => {
    mkdirSync(path.join(work, 'npy'), { recursive: true });
    const r = spawnCli(['predict', '--model', model, '--backend', 'cpu', 'a match']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('revcol: using backend cpu\n');
  });
});
