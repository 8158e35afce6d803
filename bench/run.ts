// `npm run bench -- NAME [ARGS...]` runs bench/NAME.ts with ARGS. Benches of one task live in a
// folder of their own (bench/spam/): name them `spam/validation` or `spam validation`.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// folders that hold helpers and records, not benches
const NOT_GROUPS = new Set(['lib', 'results']);

const scripts = (dir: string) => readdirSync(path.join(here, dir)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').map((f) => f.slice(0, -3)).sort();
const groups = readdirSync(here, { withFileTypes: true }).filter((e) => e.isDirectory() && !NOT_GROUPS.has(e.name)).map((e) => e.name).sort();
const available = [...scripts('.'), ...groups.flatMap((g) => scripts(g).map((s) => `${g}/${s}`))];

let [name, ...rest] = process.argv.slice(2);
// `spam validation` is `spam/validation`
if (name && groups.includes(name) && rest[0] && available.includes(`${name}/${rest[0]}`)) name = `${name}/${rest.shift()}`;
if (!name || !available.includes(name)) {
  const inGroup = name && groups.includes(name) ? ` (${name}: ${available.filter((a) => a.startsWith(`${name}/`)).join(', ')})` : '';
  process.stderr.write(`usage: npm run bench -- NAME [ARGS...]; NAME is one of: ${available.join(', ')}${inGroup}\n`);
  process.exit(name ? 1 : 0);
}
const file = path.join(here, `${name}.ts`);
process.argv = [process.argv[0]!, file, ...rest];
await import(`./${name}.ts`);
