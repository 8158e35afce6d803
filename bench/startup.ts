// Start-up time of the installed command: `node bin/revcol.js ARGS` (what `npx revcol` runs,
// the compiled dist/), spawned again and again, timed from spawn to exit.
//   npm run bench -- startup [--runs 10] [--build] [--record]
// --build runs the build first (the command runs dist/, not src/); --record appends the figures
// to bench/results/startup.jsonl. Targets (issue #15): --help within 0.3 s, info within 1 s.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { args, flag } from './lib/args.js';
import { recordResult } from './lib/record.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'revcol.js');
const runs = Number(flag('runs', '10'));

const COMMANDS: { name: string; argv: string[]; target: number }[] = [
  { name: '--help', argv: ['--help'], target: 0.3 },
  { name: 'info', argv: ['info'], target: 1 },
  { name: 'info --json', argv: ['info', '--json'], target: 1 },
  { name: 'fine-tune --help', argv: ['fine-tune', '--help'], target: 0.3 },
];

if (args.includes('--build')) {
  const built = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
  process.stderr.write('dist/ is not built: run `npm run build` (or pass --build)\n');
  process.exit(1);
}

/** Seconds from spawn to exit of one run; throws when the command fails. */
function once(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, [bin, ...argv], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) reject(new Error(`revcol ${argv.join(' ')} exited ${code}: ${stderr.trim().split('\n').at(-1)}`));
      else resolve(seconds);
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// Node itself, for scale: what no command can go below.
const bare: number[] = [];
for (let i = 0; i < runs; i++) {
  const start = process.hrtime.bigint();
  spawnSync(process.execPath, ['-e', '0']);
  bare.push(Number(process.hrtime.bigint() - start) / 1e9);
}
const results: Record<string, { median: number; min: number; max: number; target: number }> = {};
console.log(`node -e 0: median ${median(bare).toFixed(3)} s (${runs} runs; ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)})`);
for (const command of COMMANDS) {
  await once(command.argv); // warm the file cache
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once(command.argv));
  const r = { median: median(times), min: Math.min(...times), max: Math.max(...times), target: command.target };
  results[command.name] = r;
  const verdict = r.median <= r.target ? 'within' : 'OVER';
  console.log(
    `revcol ${command.name}: median ${r.median.toFixed(3)} s, min ${r.min.toFixed(3)}, max ${r.max.toFixed(3)} (${runs} runs; target ${r.target} s: ${verdict})`,
  );
}
if (args.includes('--record')) {
  await recordResult(
    'startup',
    JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: os.cpus().length, load: os.loadavg()[0], runs, bare: median(bare), results }),
  );
}
