/**
 * The shape of src/ as a test (docs/architecture.md): the imports between its files form no
 * cycle, and none points up the layer order below. Every relative import counts: static,
 * `export … from`, side-effect, dynamic `import()`, and type-only ones too (tsc keeps those in
 * the .d.ts files, so a type-only arrow still ties the two modules together for users).
 * Workers started by URL (`new URL('./x.js', import.meta.url)`) run in another process and are
 * not imports, so they are not counted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Bottom first. A file may import files of its own layer and of layers listed before it; layers
 * sharing a row are siblings and import neither each other. `index.ts` is src/index.ts.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['ops'], // fused ops and their kernels: tfjs alone
  ['core'], // engine, modules, layers, random streams, errors
  ['io'], // files: atomic writes, .npy, safetensors
  ['backends'], // choosing and setting up tfjs backends, their kernels and kernel fixes
  // losses, optimizers, checkpoints, the trainer | datasets: text, images, MNIST, token data;
  // independent: the trainer takes batches from its caller, datasets know nothing of training
  ['train', 'data'],
  ['text', 'vision'], // the two model families, independent of each other
  ['pipeline.ts'], // one-line inference over both families
  ['cli', 'index.ts'], // the command line and the library's entry
];

type Graph = Map<string, string[]>;

/** Module specifiers a source file names, in order, comments and strings aside. */
function importSpecifiers(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

/** The layer of a path relative to src/: its first folder, or the file name at the top. */
function layerOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? file : file.slice(0, slash);
}

function rankOf(layers: readonly (readonly string[])[]): Map<string, number> {
  return new Map(layers.flatMap((row, rank) => row.map((layer) => [layer, rank] as const)));
}

/** Arrows that leave their layer for one not below it ("a → b (a's layer → b's layer)"). */
function upwardArrows(graph: Graph, layers: readonly (readonly string[])[]): string[] {
  const rank = rankOf(layers);
  const found: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const [a, b] = [layerOf(from), layerOf(to)];
      if (a === b) continue;
      const [ra, rb] = [rank.get(a), rank.get(b)];
      // a layer missing from LAYERS counts as a violation: a new folder must be placed first
      if (ra === undefined || rb === undefined || ra <= rb) found.push(`${from} → ${to} (${a} → ${b})`);
    }
  }
  return found.sort();
}

interface Cycle {
  /** A shortest cycle through the component's first file: [a, b, …, a]. */
  path: string[];
  /** Every file of the strongly connected component (more than the path when cycles overlap). */
  files: string[];
}

/** One cycle per strongly connected component that has one. */
function findCycles(graph: Graph): Cycle[] {
  // Tarjan's algorithm, iterative over an explicit stack of [node, next-edge index]
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const next = (n: string) => graph.get(n) ?? [];
  for (const root of [...graph.keys()].sort()) {
    if (index.has(root)) continue;
    const work: [string, number][] = [[root, 0]];
    index.set(root, index.size); low.set(root, index.get(root)!); stack.push(root); onStack.add(root);
    while (work.length) {
      const top = work[work.length - 1]!;
      const [node, i] = top;
      const targets = next(node);
      if (i < targets.length) {
        top[1]++;
        const to = targets[i]!;
        if (!index.has(to)) {
          index.set(to, index.size); low.set(to, index.get(to)!); stack.push(to); onStack.add(to);
          work.push([to, 0]);
        } else if (onStack.has(to)) low.set(node, Math.min(low.get(node)!, index.get(to)!));
        continue;
      }
      work.pop();
      if (work.length) { const parent = work[work.length - 1]![0]; low.set(parent, Math.min(low.get(parent)!, low.get(node)!)); }
      if (low.get(node) === index.get(node)) {
        const component: string[] = [];
        let n: string;
        do { n = stack.pop()!; onStack.delete(n); component.push(n); } while (n !== node);
        if (component.length > 1 || next(node).includes(node)) components.push(component);
      }
    }
  }
  // a concrete cycle through each component's first file (breadth first: a shortest one)
  const shortest = (component: string[]): string[] => {
    const members = new Set(component);
    const start = [...component].sort()[0]!;
    const cameFrom = new Map<string, string>();
    const queue = [start];
    while (queue.length) {
      const n = queue.shift()!;
      for (const to of next(n)) {
        if (!members.has(to)) continue;
        if (to === start) return cyclePath(start, n, cameFrom);
        if (!cameFrom.has(to) && to !== start) { cameFrom.set(to, n); queue.push(to); }
      }
    }
    return component; // unreachable: a component with a cycle has one through every member
  };
  return components.map((c) => ({ path: shortest(c), files: [...c].sort() })).sort((a, b) => a.path[0]!.localeCompare(b.path[0]!));
}

function cyclePath(start: string, last: string, cameFrom: Map<string, string>): string[] {
  const back: string[] = [];
  for (let m: string | undefined = last; m !== undefined && m !== start; m = cameFrom.get(m)) back.push(m);
  return [start, ...back.reverse(), start];
}

/** Resolves a relative specifier the way NodeNext does for our sources ('./x.js' names x.ts). */
function resolveImport(from: string, spec: string, files: ReadonlySet<string>): string | undefined {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  const candidates = [target, target.replace(/\.js$/, '.ts'), target.replace(/\.mjs$/, '.mts'), `${target}.ts`, `${target}/index.ts`];
  return candidates.find((c) => files.has(c));
}

/** src/'s files (paths relative to it) with their relative imports; `unresolved` lists the rest. */
function readSourceGraph(srcDir: string): { graph: Graph; unresolved: string[] } {
  const files = (readdirSync(srcDir, { recursive: true }) as string[])
    .map((f) => f.split(path.sep).join('/'))
    .filter((f) => /\.(ts|mts|js|mjs)$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
  const known = new Set(files);
  const graph: Graph = new Map();
  const unresolved: string[] = [];
  for (const file of files) {
    const targets = new Set<string>();
    for (const spec of importSpecifiers(readFileSync(path.join(srcDir, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins are not layers of ours
      const to = resolveImport(file, spec, known);
      if (to === undefined) unresolved.push(`${file}: '${spec}'`);
      else targets.add(to);
    }
    graph.set(file, [...targets].sort());
  }
  return { graph, unresolved };
}

const describeCycle = (c: Cycle) => `${c.path.join(' → ')}${c.files.length > c.path.length - 1 ? ` (component: ${c.files.join(', ')})` : ''}`;

describe('the import-graph check itself', () => {
  it('reads every kind of import, and not comments or strings', () => {
    const source = [
      "import * as tf from '@tensorflow/tfjs-core';",
      "import { a, type B } from './a.js';",
      "import type { C } from '../core/c.js';",
      "import './side-effect.js';",
      "export * from './re-export.js';",
      "export { d } from './d.js';",
      "export type { E } from './e.js';",
      'const lazy = () => import(\'../cli/lazy.js\');',
      "// import { no } from './commented.js';",
      "/* export * from './block-commented.js'; */",
      "const text = \"import { no } from './in-a-string.js'\";",
      'const dynamic = (spec: string) => import(spec);', // not a literal: nothing to check
    ].join('\n');
    expect(importSpecifiers(source)).toEqual([
      '@tensorflow/tfjs-core', './a.js', '../core/c.js', './side-effect.js', './re-export.js', './d.js', './e.js', '../cli/lazy.js',
    ]);
  });

  it('finds a cycle and an upward arrow in a small graph, and nothing in a clean one', () => {
    const layers = [['core'], ['backends'], ['text', 'vision'], ['cli']];
    const bad: Graph = new Map([
      ['core/engine.ts', ['core/module.ts', 'backends/fixes.ts']], // up: core → backends
      ['core/module.ts', []],
      ['backends/fixes.ts', ['core/module.ts']],
      ['text/classifier.ts', ['text/ensemble.ts', 'vision/model.ts']], // sideways: siblings
      ['text/ensemble.ts', ['text/worker.ts']],
      ['text/worker.ts', ['text/classifier.ts']], // closes classifier → ensemble → worker → classifier
      ['vision/model.ts', ['vision/model.ts', 'core/module.ts']], // a self-import is a cycle too
      ['cli/main.ts', ['text/classifier.ts', 'nowhere/x.ts']], // a folder not in the order
    ]);
    expect(findCycles(bad).map((c) => c.path)).toEqual([
      ['text/classifier.ts', 'text/ensemble.ts', 'text/worker.ts', 'text/classifier.ts'],
      ['vision/model.ts', 'vision/model.ts'],
    ]);
    expect(upwardArrows(bad, layers)).toEqual([
      'cli/main.ts → nowhere/x.ts (cli → nowhere)',
      'core/engine.ts → backends/fixes.ts (core → backends)',
      'text/classifier.ts → vision/model.ts (text → vision)',
    ]);

    const clean: Graph = new Map([
      ['core/engine.ts', ['core/module.ts']],
      ['core/module.ts', []],
      ['backends/index.ts', ['core/module.ts', 'backends/fixes.ts']],
      ['backends/fixes.ts', []],
      ['text/classifier.ts', ['backends/index.ts', 'core/engine.ts']],
      ['cli/main.ts', ['text/classifier.ts', 'core/engine.ts']],
    ]);
    expect(findCycles(clean)).toEqual([]);
    expect(upwardArrows(clean, layers)).toEqual([]);
  });

  it('reports the files of a component when it holds more than one cycle', () => {
    const graph: Graph = new Map([['a/x.ts', ['a/y.ts', 'a/z.ts']], ['a/y.ts', ['a/x.ts']], ['a/z.ts', ['a/x.ts']]]);
    const [cycle, ...rest] = findCycles(graph);
    expect(rest).toEqual([]);
    expect(cycle!.path).toEqual(['a/x.ts', 'a/y.ts', 'a/x.ts']);
    expect(cycle!.files).toEqual(['a/x.ts', 'a/y.ts', 'a/z.ts']);
    expect(describeCycle(cycle!)).toBe('a/x.ts → a/y.ts → a/x.ts (component: a/x.ts, a/y.ts, a/z.ts)');
  });
});

describe('the import graph of src/', () => {
  const srcDir = fileURLToPath(new URL('../src/', import.meta.url));
  const { graph, unresolved } = readSourceGraph(srcDir);

  it('is read: every relative import resolves to a file, and the known arrows are there', () => {
    expect(unresolved).toEqual([]);
    // guards against a reader that sees nothing (and so would pass everything below)
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('core/engine.ts')).toContain('core/module.ts');
    expect(graph.get('core/engine.ts')).toContain('ops/fused.ts');
    expect(graph.get('index.ts')).toContain('core/engine.ts');
  });

  it('places every folder of src/ in the layer order', () => {
    const placed = new Set(LAYERS.flat());
    expect([...new Set([...graph.keys()].map(layerOf))].filter((l) => !placed.has(l))).toEqual([]);
  });

  it('has no import cycle', () => {
    expect(findCycles(graph).map(describeCycle)).toEqual([]);
  });

  it('has no arrow up (or across) the layer order', () => {
    expect(upwardArrows(graph, LAYERS)).toEqual([]);
  });
});
