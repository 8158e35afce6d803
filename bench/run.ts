// `npm run bench -- NAME [ARGS...]` runs bench/NAME.ts with ARGS.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3));
const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [ARGS...]; NAME is one of: ${available.join(', ')}\n`);
  process.exit(name ? 1 : 0);
}
process.argv = [process.argv[0], path.join(here, `${name}.ts`), ...rest];
await import(`./${name}.ts`);
