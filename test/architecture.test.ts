/**
 * The direction of imports between src/'s folders (src/README.md): model ← formats ←
 * analysis ← render ← cli; capture feeds the model (model, formats, analysis) and never
 * imports render or cli; store depends on model and formats only; server and agent sit
 * beside cli. Type-only imports count too. And no two files of src import each other,
 * directly or around a loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/format-checks.ts';

const SRC = join(ROOT, 'src');

/** folder → the folders its files may import (itself always; `.` is src/'s own files, version.ts) */
const ALLOWED: Record<string, readonly string[]> = {
  model: ['.'],
  formats: ['.', 'model'],
  analysis: ['.', 'model', 'formats'],
  render: ['.', 'model', 'formats', 'analysis'],
  capture: ['.', 'model', 'formats', 'analysis'],
  store: ['.', 'model', 'formats'],
  server: ['.', 'model', 'formats', 'analysis', 'render', 'capture', 'store'],
  agent: ['.', 'model', 'formats', 'analysis', 'render', 'capture', 'store'],
  cli: ['.', 'model', 'formats', 'analysis', 'render', 'capture', 'store', 'server', 'agent'],
  '.': [],
};

/** relative imports of a source text: static, re-exports and dynamic, type-only included */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*'(\.{1,2}\/[^']+)'/gm)) out.push(m[1]!);
  for (const m of text.matchAll(/^\s*import\s*'(\.{1,2}\/[^']+)'/gm)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) out.push(m[1]!);
  return out;
}

/** `src/<folder>/…` → folder; src/'s own files → '.' */
function folderOf(rel: string): string {
  const i = rel.indexOf('/');
  return i < 0 ? '.' : rel.slice(0, i);
}

/** Imports against the direction, as "from → to" lines, for a graph of src-relative paths. */
export function violations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph) {
    const a = folderOf(from);
    const ok = ALLOWED[a];
    for (const to of tos) {
      const b = folderOf(to);
      if (b === a) continue;
      if (ok === undefined) out.push(`${from} → ${to} (src/${a}/ has no place in the direction)`);
      else if (!ok.includes(b)) out.push(`${from} → ${to} (${a} may import ${ok.filter((x) => x !== '.').join(', ') || 'nothing else'})`);
    }
  }
  return out;
}

/** Import loops (strongly connected sets of more than one file), each as a list of paths. */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) out.push(group.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

function sourceGraph(): Map<string, string[]> {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(SRC);
  const graph = new Map<string, string[]>();
  for (const f of files) graph.set(relative(SRC, f), importsOf(readFileSync(f, 'utf8')).map((i) => relative(SRC, resolve(dirname(f), i))));
  return graph;
}

test('the checks themselves: a render import from capture, a formats → render import and a loop are caught; allowed ones pass', () => {
  const g = new Map<string, string[]>([
    ['capture/perf/x.ts', ['render/html.ts', 'model/profile.ts', 'analysis/interpreter.ts']],
    ['formats/index.ts', ['render/svg.ts', 'model/profile.ts']],
    ['analysis/a.ts', ['analysis/b.ts', 'capture/perf/x.ts']],
    ['analysis/b.ts', ['analysis/a.ts']],
    ['cli/main.ts', ['render/html.ts', 'capture/perf/x.ts', 'version.ts']],
    ['model/profile.ts', ['version.ts']],
    ['render/html.ts', ['model/profile.ts']],
    ['render/svg.ts', []],
    ['version.ts', []],
  ]);
  assert.deepEqual(violations(g), [
    'capture/perf/x.ts → render/html.ts (capture may import model, formats, analysis)',
    'formats/index.ts → render/svg.ts (formats may import model)',
    'analysis/a.ts → capture/perf/x.ts (analysis may import model, formats)',
  ]);
  assert.deepEqual(cycles(g), [['analysis/a.ts', 'analysis/b.ts']]);
  assert.deepEqual(importsOf(`import type { A } from '../a.ts';\nexport { b } from './b.ts';\nimport './c.ts';\nconst d = await import('../d/e.ts');\nimport x from 'node:fs';\n// from '../not-an-import.ts'\n`), ['../a.ts', './b.ts', './c.ts', '../d/e.ts']);
});

test('src/ imports follow the direction model ← formats ← analysis ← render ← cli (capture beside, never importing render)', () => {
  const g = sourceGraph();
  assert.ok(g.size > 50, `${g.size} source files`);
  assert.deepEqual(violations(g), []);
});

test('no import loops between the files of src/', () => {
  assert.deepEqual(cycles(sourceGraph()), []);
});
