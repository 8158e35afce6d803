// Compiles src/ops/wasm-simd.wat into src/ops/wasm-simd-module.ts (base64), once for
// each memory the wasm backend may have: the single-threaded build's, and the threaded build's
// shared one. `npm run build:wasm`; `--check` exits 1 when the committed file is out of date.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const dir = fileURLToPath(new URL('../src/ops/', import.meta.url));
const source = readFileSync(`${dir}wasm-simd.wat`, 'utf8');
const wabt = await wabtInit();
// The threaded build's memory is shared and at most 4 GiB; a shared import must state a maximum.
const memories = { plain: '(memory 1)', shared: '(memory 1 65536 shared)' };
const encoded = {};
for (const [name, memory] of Object.entries(memories)) {
  const module = wabt.parseWat(`wasm-simd.wat (${name})`, source.replace('"memory" MEMORY)', `"memory" ${memory})`), { simd: true, threads: true });
  module.validate({ simd: true, threads: true });
  encoded[name] = Buffer.from(module.toBinary({}).buffer).toString('base64');
  module.destroy();
}
const text = `// Generated from wasm-simd.wat by \`npm run build:wasm\` (scripts/build-wasm-simd.mjs): do not edit.
export const WASM_SIMD_MODULE = {
  plain: '${encoded.plain}',
  shared: '${encoded.shared}',
} as const;
`;
const out = `${dir}wasm-simd-module.ts`;
if (process.argv.includes('--check')) {
  let current = '';
  try { current = readFileSync(out, 'utf8'); } catch { /* missing: out of date */ }
  if (current !== text) {
    process.stderr.write('revcol: src/ops/wasm-simd-module.ts is out of date with wasm-simd.wat: run npm run build:wasm\n');
    process.exit(1);
  }
} else {
  writeFileSync(out, text);
}
