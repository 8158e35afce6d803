import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../src/io/atomic.js';

const resultsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Appends one JSON line to bench/results/NAME.jsonl (whatever the working folder), atomically. */
export async function recordResult(name: string, line: string): Promise<void> {
  const file = path.join(resultsDir, `${name}.jsonl`);
  const previous = await fs.readFile(file, 'utf8').catch(() => '');
  await writeFileAtomic(file, `${previous}${line}\n`);
}
