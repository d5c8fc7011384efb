/**
 * Turns the page modules (src/render/page/*.ts, type-checked with the rest of the
 * project) into one inline script, without a bundler:
 *
 *   1. read each module — the .ts source, or the .js tsc emitted next to it in dist/;
 *   2. strip types with Node's module.stripTypeScriptTypes (erasable TypeScript only);
 *   3. drop the `import { a, b } from './x.ts'` lines between listed modules and the
 *      `export` keywords, and concatenate in dependency order inside one function scope.
 *
 * Conventions this relies on (checked here; the page tests catch the rest): page modules
 * import only from each other, with plain named imports (no renames, no namespace or
 * default imports), and top-level names are unique across the modules.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';

interface StripModule {
  stripTypeScriptTypes?: (code: string, options?: { mode?: 'strip' | 'transform' }) => string;
}

/** stripTypeScriptTypes, without its one-time ExperimentalWarning on stderr. */
function stripTypes(code: string, file: string): string {
  const strip = (nodeModule as StripModule).stripTypeScriptTypes;
  if (!strip) throw new Error(`cannot load ${file}: this Node has no module.stripTypeScriptTypes (needs Node >= 22.13)`);
  const original = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    const text = typeof warning === 'string' ? warning : warning.message;
    if (text.includes('stripTypeScriptTypes')) return;
    return (original as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return strip(code, { mode: 'strip' });
  } finally {
    process.emitWarning = original;
  }
}

const IMPORT_RE = /^[ \t]*import\s*\{([^}]*)\}\s*from\s*['"]\.\/([\w-]+)\.(?:ts|js)['"];?[ \t]*$/gm;

/** Read one page module as JavaScript. `base` is the module's URL without its extension. */
function moduleSource(base: URL): { code: string; file: string } {
  const ts = new URL(`${base.href}.ts`);
  if (existsSync(ts)) return { code: stripTypes(readFileSync(ts, 'utf8'), ts.pathname), file: ts.pathname };
  const js = new URL(`${base.href}.js`);
  if (existsSync(js)) return { code: readFileSync(js, 'utf8'), file: js.pathname };
  throw new Error(`page module ${base.pathname}.ts is missing`);
}

/** One page module, with its imports of earlier modules removed and its exports made local. */
function linkModule(name: string, code: string, file: string, earlier: Set<string>): string {
  let out = code.replace(IMPORT_RE, (_m, names: string, from: string) => {
    if (!earlier.has(from)) throw new Error(`${file}: imports './${from}', which is not an earlier page module`);
    if (/\bas\b/.test(names)) throw new Error(`${file}: renamed imports are not supported in page modules`);
    return '';
  });
  out = out.replace(/^export\s*\{\s*\};?[ \t]*$/gm, '');
  out = out.replace(/^export\s+(?=(?:async\s+)?function\b|const\b|let\b|class\b)/gm, '');
  const left = /^[ \t]*(import|export)\b.*$/m.exec(out);
  if (left) throw new Error(`${file}: unsupported module syntax in a page module: ${left[0].trim()}`);
  if (out.includes('</script')) throw new Error(`${file}: page modules must not contain "</script"`);
  return `// --- ${name} ---\n${out.replace(/\n{3,}/g, '\n\n').trim()}\n`;
}

const cache = new Map<string, string>();

/**
 * Bundle page modules (names relative to src/render/page/, in dependency order) into the
 * body of one script: `(() => { 'use strict'; ... })();`. Cached per process.
 */
export function pageScript(modules: readonly string[]): string {
  const key = modules.join(',');
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const earlier = new Set<string>();
  const parts: string[] = [];
  for (const name of modules) {
    const { code, file } = moduleSource(new URL(`./page/${name}`, import.meta.url));
    parts.push(linkModule(name, code, file, earlier));
    earlier.add(name);
  }
  const script = `(() => {\n'use strict';\n${parts.join('\n')}})();\n`;
  cache.set(key, script);
  return script;
}
