/**
 * The text commands' files load nothing heavy when the CLI registers them (revcol --help must
 * start fast, issue #15 part 6): following only the imports that run at load time (static,
 * not type-only; `await import()` inside actions is left out) from src/cli/text.ts, token.ts,
 * baseline.ts and text-flags.ts, no file reaches TensorFlow.js, a tokenizer library, a CSV or
 * MIME reader or the progress bars.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '..', 'src');
const HEAVY = [/^@tensorflow\//, /^@huggingface\//, /^@xenova\//, /^csv-parse/, /^postal-mime/, /^html-to-text/, /^cli-progress/, /^seedrandom/, /^pngjs/];

/** Module specifiers a file imports when it loads (static, value imports and re-exports). */
function loadTimeImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  for (const node of source.statements) {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      if (clause?.isTypeOnly) continue;
      const named = clause?.namedBindings;
      const onlyTypes = clause && !clause.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) out.push((node.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly) {
      const named = node.exportClause;
      const onlyTypes = named && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) out.push((node.moduleSpecifier as ts.StringLiteral).text);
    }
  }
  return out;
}

/** Every package reached at load time from `entry`, with the chain of files that reaches it. */
function packagesReached(entry: string): Map<string, string[]> {
  const reached = new Map<string, string[]>();
  const seen = new Set<string>();
  const walk = (file: string, chain: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of loadTimeImports(file)) {
      if (spec.startsWith('.')) walk(path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'), [...chain, path.relative(SRC, file)]);
      else if (!spec.startsWith('node:') && !reached.has(spec)) reached.set(spec, [...chain, path.relative(SRC, file)]);
    }
  };
  walk(entry, []);
  return reached;
}

describe('the text commands register light', () => {
  it('reads load-time imports only: type-only and dynamic imports are left out', () => {
    const reached = packagesReached(path.join(SRC, 'cli', 'text.ts'));
    expect(reached.has('commander')).toBe(true);
  });

  for (const file of ['text.ts', 'token.ts', 'baseline.ts', 'text-flags.ts']) {
    it(`src/cli/${file} loads no heavy package at registration`, () => {
      const heavy = [...packagesReached(path.join(SRC, 'cli', file))].filter(([pkg]) => HEAVY.some((h) => h.test(pkg)));
      expect(heavy.map(([pkg, chain]) => `${pkg} via ${chain.join(' → ')}`)).toEqual([]);
    });
  }

  it('and the check would see a heavy one: the recipes it loads lazily are heavy', () => {
    const heavy = [...packagesReached(path.join(SRC, 'text', 'fine-tune.ts'))].filter(([pkg]) => HEAVY.some((h) => h.test(pkg)));
    expect(heavy.map(([pkg]) => pkg)).toContain('@tensorflow/tfjs-core');
  });
});
