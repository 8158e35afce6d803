import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LOCK_FILE, RUN_FILE } from '../src/train/run-folder.js';
import { expectOneLineError, runCliCaptured } from './helpers/cli.js';
import { writeTopics } from './helpers/text-data.js';

const root = path.resolve(__dirname, '..');
const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-run-guard-'));
const train = path.join(work, 'topics.csv');
const other = path.join(work, 'other.csv');
const small = path.join(work, 'small.csv');
const cli = runCliCaptured;
const tiny = ['--preset', 'text-micro', '--epochs', '1', '--no-progress', '--backend', 'wasm'];

beforeAll(() => {
  writeTopics(train, 60, 1);
  writeTopics(other, 60, 2);
  writeTopics(small, 30, 3);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const runRecord = (dir: string) => JSON.parse(readFileSync(path.join(dir, RUN_FILE), 'utf8'));

describe('guarded output folders (fine-tune, pretrain, vision train)', () => {
  it('a finished run is not replaced without --overwrite; --resume must match its data and preset', async () => {
    const out = path.join(work, 'finished');
    expect((await cli(['fine-tune', '--train', train, '--out', out, ...tiny])).code).toBe(0);
    expect(runRecord(out)).toMatchObject({ command: 'fine-tune', status: 'finished', identity: { preset: 'text-micro', task: null } });
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);

    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', out, ...tiny]),
      new RegExp(`^revcol: ${out} already holds a finished fine-tune run \\(1 epoch\\): add --resume to continue it \\(with more --epochs to train longer\\), --overwrite to replace it, or choose another --out$`));
    expectOneLineError(await cli(['fine-tune', '--train', other, '--out', out, '--resume', ...tiny]), /cannot resume .*: its run's training data was .*topics\.csv, not .*other\.csv/);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', out, '--resume', ...tiny, '--preset', 'text-tiny']), /its run was started with preset text-micro, not text-tiny/);
    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', out, '--resume', '--overwrite', ...tiny]), /'--resume' cannot be used with option '--overwrite'/);
    expectOneLineError(await cli(['pretrain', '--train', train, '--out', out, '--epochs', '1', '--no-progress']), /already holds a finished fine-tune run/);

    const before = readFileSync(path.join(out, 'best.safetensors'));
    const again = await cli(['fine-tune', '--train', other, '--out', out, '--overwrite', ...tiny]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`note: --overwrite: a finished fine-tune run (1 epoch) in ${out} is replaced by this run`);
    expect(readFileSync(path.join(out, 'best.safetensors')).equals(before)).toBe(false);
    expect(runRecord(out).identity.data.path).toBe(other);
  });

  it('a live run\'s folder is refused, naming its process', async () => {
    const out = path.join(work, 'live');
    mkdirSync(out);
    writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: os.hostname(), started: '2025-01-01T00:00:00Z', command: 'vision train' }));
    expectOneLineError(await cli(['fine-tune', '--train', train, '--out', out, ...tiny]), new RegExp(`in use by a live run \\(vision train, process ${process.ppid}, started 2025-01-01T00:00:00Z\\)`));
    expectOneLineError(await cli(['vision', 'train', '--data', 'mnist', '--out', out, '--limit', '16', '--epochs', '1', '--no-progress']), new RegExp(`process ${process.ppid}`));
  });

  it('an existing read-only --out is one line before any training (run as an unprivileged user)', (ctx) => {
    const setpriv = spawnSync('setpriv', ['--version']).status === 0;
    if (process.getuid?.() !== 0 || !setpriv) ctx.skip(); // root ignores permissions; needs setpriv to drop them
    const out = path.join(work, 'read-only');
    mkdirSync(out);
    chmodSync(out, 0o555);
    chmodSync(work, 0o755);
    const started = performance.now();
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '--import', 'tsx', 'src/cli/main.ts',
      'fine-tune', '--train', train, '--out', out, ...tiny], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, HOME: work } });
    expectOneLineError({ code: r.status, stderr: r.stderr }, new RegExp(`^revcol: cannot write in the output folder ${out}: permission denied \\(EACCES\\); choose another --out, or make it writable$`));
    expect(r.stderr).not.toMatch(/epoch 1/);
    expect(performance.now() - started).toBeLessThan(60_000);
  });
});

describe('Ctrl-C', () => {
  it('stops after the current step, saves a checkpoint, prints the --resume command and exits 130; that command finishes the run', async () => {
    const out = path.join(work, 'stopped');
    const args = ['fine-tune', '--train', small, '--out', out, '--preset', 'text-micro', '--epochs', '2', '--batch-size', '2', '--no-progress', '--backend', 'wasm'];
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // After the first progress output (epoch 1's line): Ctrl-C, inside epoch 2.
      if (!sent && /epoch 1\/2/.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(sent).toBe(true);
    expect(code, stderr).toBe(130);
    const lines = stderr.trim().split('\n');
    expect(lines.at(-2)).toBe('revcol: Ctrl-C: stopping after the current step and saving a checkpoint (Ctrl-C again quits at once)');
    const last = lines.at(-1)!;
    const command = `revcol ${args.join(' ')} --resume`;
    expect(last).toMatch(new RegExp(`^revcol: stopped \\(Ctrl-C\\) in epoch 2 of 2 at step \\d+ \\(\\d+ of 26 samples\\); checkpoint saved: ${path.join(out, 'last.ckpt.safetensors')}; continue with: `));
    expect(last.endsWith(`continue with: ${command}`)).toBe(true);
    expect(stderr).not.toMatch(/epoch 2\/2/);
    expect(existsSync(path.join(out, LOCK_FILE))).toBe(false);
    expect(runRecord(out).status).toBe('stopped');

    // Without --resume the stopped run is not replaced; the printed command continues it inside epoch 2.
    expectOneLineError(await cli(args), /already holds an unfinished fine-tune run \(stopped in epoch 2, at step \d+\)/);
    const resumed = await cli(command.split(' ').slice(1));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming ${out} in epoch 2, after \\d+ of its 26 samples`));
    const rows = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((r) => r.epoch)).toEqual([1, 2]);
    expect(rows[1].step).toBe(2 * rows[0].step);
    expect(runRecord(out).status).toBe('finished');
  });
});
