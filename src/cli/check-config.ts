/**
 * `pylens check`'s configuration: `[[tool.pylens.check]]` tables in pyproject.toml, or
 * `[[check]]` in pylens.toml, parsed with smol-toml. Every error names the file, the line and
 * the key, and says how to fix it (exit 2).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseQuantity } from '../analysis/budgets.ts';
import { checkFunctionSpec } from '../capture/python/count.ts';
import { HELPER_BOOT } from '../capture/python/helper.ts';
import { CliError, EXIT_USAGE } from './errors.ts';

export interface CheckSpec {
  name: string;
  /** the command, as argv */
  run: string[];
  repeat: number;
  file: string;
  line: number;
  calls: { fn: string; max: number; line: number }[];
  /** an absolute maximum, and/or a slowdown allowed against the baseline's runs (0.1 = 10 %) */
  wallTime?: { max?: number; regression?: number; line: number };
  /** no function's sampled share may grow significantly by more than this many points against the baseline */
  noRegression?: { points: number; line: number };
  /** sampled CPU shares (inclusive) of functions, 0–1 */
  cpuShare: { fn: string; max: number; line: number }[];
  /** tracemalloc's peak, bytes */
  peakMemory?: { max: number; line: number; text: string };
  /** memory-growth = false: the mem lens's steady-growth rule must not fire */
  noMemoryGrowth?: { line: number };
  /** the largest overhead a lens of this check may report about itself (0–1) */
  maxOverhead?: { max: number; line: number };
  /** pytest = "ARGS": `run` is `PYTHON -m pytest -p pylens.pytest ARGS`; the tests' @pytest.mark.pylens budgets are measured too */
  pytest?: { args: string[]; line: number };
  /** the environment every run of the command gets on top of pylens's (pytest checks: the plugin's folder on PYTHONPATH) */
  env?: Record<string, string>;
}

/** keys a check may have, and which this version enforces */
const KEYS = new Set(['name', 'run', 'pytest', 'python', 'repeat', 'calls', 'wall-time', 'cpu-share', 'peak-memory', 'memory-growth', 'no-regression', 'max-overhead']);

/** the folder holding the `pylens` Python package (the pytest plugin is pylens.pytest) */
export const PYTHON_PACKAGE_DIR = dirname(HELPER_BOOT);

export class ConfigError extends CliError {
  constructor(file: string, line: number, key: string | undefined, message: string, fix: string) {
    super(`${file}:${line}: ${key !== undefined ? `${key}: ` : ''}${message}`, fix, EXIT_USAGE);
  }
}

/** The config file: --config, else ./pylens.toml, else ./pyproject.toml with a [tool.pylens] table. */
export function findConfig(explicit: string | undefined, cwd = process.cwd()): string {
  if (explicit !== undefined) {
    const p = resolve(cwd, explicit);
    if (!existsSync(p)) throw new CliError(`check: no config file '${explicit}'`, 'pass the path of a pyproject.toml or pylens.toml', EXIT_USAGE);
    return p;
  }
  for (const name of ['pylens.toml', 'pyproject.toml']) {
    const p = resolve(cwd, name);
    if (existsSync(p)) return p;
  }
  throw new CliError('check: no pyproject.toml or pylens.toml here', 'add [[tool.pylens.check]] tables to pyproject.toml (see pylens check --help), or pass --config FILE', EXIT_USAGE);
}

/** Split a command line like a POSIX shell would for plain words and quotes (no expansions). */
export function splitCommand(s: string): string[] | null {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") (q = c), (has = true);
    else if (c === '\\' && i + 1 < s.length) (cur += s[++i]), (has = true);
    else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else (cur += c), (has = true);
  }
  if (q) return null;
  if (has) out.push(cur);
  return out;
}

export async function readChecks(path: string): Promise<CheckSpec[]> {
  const text = readFileSync(path, 'utf8');
  const file = path;
  // loaded here, not at startup: only check reads TOML
  const { parse } = await import('smol-toml');
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const err = e as Error & { line?: number; column?: number };
    throw new ConfigError(file, err.line ?? 1, undefined, `not valid TOML: ${err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '')}${err.column ? ` (column ${err.column})` : ''}`, 'fix the TOML syntax at that line');
  }
  const inPyproject = !/pylens\.toml$/.test(path);
  const root = inPyproject ? ((doc.tool as Record<string, unknown> | undefined)?.pylens as Record<string, unknown> | undefined) : doc;
  const header = inPyproject ? '[[tool.pylens.check]]' : '[[check]]';
  const raw = root?.check;
  if (raw === undefined) throw new ConfigError(file, 1, undefined, `no ${header} tables`, `add one, e.g.\n  ${header}\n  name = "orders"\n  run = "python -m app.bench orders"\n  calls = { "app.db:query" = { max = 3 } }`);
  const lines = text.split('\n');
  if (!Array.isArray(raw)) throw new ConfigError(file, lineOf(lines, /check\s*=/, 0) ?? 1, 'check', 'must be an array of tables', `write each check as a ${header} table`);
  // where each table starts, for line numbers
  const starts: number[] = [];
  const headerRe = inPyproject ? /^\s*\[\[\s*tool\.pylens\.check\s*\]\]/ : /^\s*\[\[\s*check\s*\]\]/;
  lines.forEach((l, i) => headerRe.test(l) && starts.push(i + 1));
  const names = new Set<string>();
  return raw.map((t, i) => {
    const line = starts[i] ?? 1;
    const end = starts[i + 1] ?? lines.length + 1;
    const keyLine = (key: string) => {
      const k = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return lineOf(lines, new RegExp(`^\\s*"?${k}"?\\s*=`), line, end) ?? lineOf(lines, new RegExp(`"${k}"`), line, end) ?? line;
    };
    if (typeof t !== 'object' || t === null || Array.isArray(t)) throw new ConfigError(file, line, undefined, 'a check must be a table', `write it as ${header}`);
    const tab = t as Record<string, unknown>;
    for (const k of Object.keys(tab)) {
      if (KEYS.has(k)) continue;
      throw new ConfigError(file, keyLine(k), k, `unknown key '${k}'`, `a check takes ${[...KEYS].join(', ')}${nearest(k, [...KEYS])}`);
    }
    const name = tab.name;
    if (typeof name !== 'string' || name.trim() === '') throw new ConfigError(file, name === undefined ? line : keyLine('name'), 'name', 'every check needs a name (a non-empty string)', 'add name = "…"');
    if (names.has(name)) throw new ConfigError(file, keyLine('name'), 'name', `two checks are named "${name}"`, 'give each check its own name');
    names.add(name);
    const argvOf = (v: unknown): string[] | null => (typeof v === 'string' ? splitCommand(v) : Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null);
    if (tab.run !== undefined && tab.pytest !== undefined) throw new ConfigError(file, keyLine('pytest'), 'pytest', `check "${name}" has both run and pytest`, 'a check runs one command: keep run = "…" or pytest = "ARGS" (which runs python -m pytest ARGS)');
    if (tab.python !== undefined && tab.pytest === undefined) throw new ConfigError(file, keyLine('python'), 'python', 'python names the interpreter of a pytest check', 'add pytest = "ARGS", or put the interpreter in run');
    let run: string[] | null = null;
    let pytest: CheckSpec['pytest'];
    let env: CheckSpec['env'];
    if (tab.pytest !== undefined) {
      const args = argvOf(tab.pytest);
      if (args === null) throw new ConfigError(file, keyLine('pytest'), 'pytest', "must be pytest's arguments (a string) or an argv array of strings", 'e.g. pytest = "tests/perf -k orders" (or "" for every test)');
      const python = tab.python === undefined ? ['python3'] : argvOf(tab.python);
      if (python === null || python.length === 0) throw new ConfigError(file, keyLine('python'), 'python', 'must be an interpreter command (a string) or an argv array', 'e.g. python = ".venv/bin/python"');
      pytest = { args, line: keyLine('pytest') };
      run = [...python, '-m', 'pytest', '-p', 'pylens.pytest', ...args];
      env = { PYTHONPATH: [PYTHON_PACKAGE_DIR, process.env.PYTHONPATH].filter(Boolean).join(':') };
    } else run = argvOf(tab.run);
    if (run === null || run.length === 0) throw new ConfigError(file, tab.run === undefined ? line : keyLine('run'), 'run', tab.run === undefined ? `check "${name}" has no run command` : 'must be a command line (a string) or an argv array of strings', 'e.g. run = "python -m app.bench orders", or pytest = "tests/perf"');
    let repeat = 5;
    if (tab.repeat !== undefined) {
      if (typeof tab.repeat !== 'number' || !Number.isInteger(tab.repeat) || tab.repeat < 1 || tab.repeat > 1000) throw new ConfigError(file, keyLine('repeat'), 'repeat', `must be a whole number 1–1000, got ${JSON.stringify(tab.repeat)}`, 'e.g. repeat = 5');
      repeat = tab.repeat;
    }
    const calls: CheckSpec['calls'] = [];
    if (tab.calls !== undefined) {
      if (typeof tab.calls !== 'object' || tab.calls === null || Array.isArray(tab.calls)) throw new ConfigError(file, keyLine('calls'), 'calls', 'must be a table of "module:qualname" = { max = N }', 'e.g. calls = { "app.db:query" = { max = 3 } }');
      for (const [fn, b] of Object.entries(tab.calls as Record<string, unknown>)) {
        const at = keyLine(fn);
        const bad = checkFunctionSpec(fn);
        if (bad) throw new ConfigError(file, at, `calls."${fn}"`, bad, 'name it module:qualname, e.g. "app.db:query" or "__main__:main"');
        const max = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>).max : b;
        const extra = typeof b === 'object' && b !== null && !Array.isArray(b) ? Object.keys(b).filter((k) => k !== 'max') : [];
        if (extra.length) throw new ConfigError(file, at, `calls."${fn}"`, `unknown key '${extra[0]}'`, 'a call budget takes max');
        const q = parseQuantity(max, 'count');
        if (typeof q === 'string') throw new ConfigError(file, at, `calls."${fn}".max`, q, 'e.g. { max = 3 }');
        calls.push({ fn, max: q.value, line: at });
      }
    }
    let wallTime: CheckSpec['wallTime'];
    if (tab['wall-time'] !== undefined) {
      const w = tab['wall-time'];
      const at = keyLine('wall-time');
      const obj = typeof w === 'object' && w !== null && !Array.isArray(w) ? (w as Record<string, unknown>) : { max: w };
      for (const k of Object.keys(obj)) if (k !== 'max' && k !== 'regression') throw new ConfigError(file, at, `wall-time.${k}`, `unknown key '${k}'`, 'wall-time takes max and regression (e.g. wall-time = { max = "1.5 s", regression = "10%" })');
      wallTime = { line: at };
      if (obj.max !== undefined) {
        const q = parseQuantity(obj.max, 'seconds');
        if (typeof q === 'string') throw new ConfigError(file, at, 'wall-time.max', q, 'e.g. wall-time = { max = "1.5 s" }');
        wallTime.max = q.value;
      }
      if (obj.regression !== undefined) {
        const q = parseQuantity(obj.regression, 'share');
        if (typeof q === 'string') throw new ConfigError(file, at, 'wall-time.regression', q, 'the slowdown allowed against the baseline, e.g. regression = "10%"');
        wallTime.regression = q.value;
      }
      if (wallTime.max === undefined && wallTime.regression === undefined) throw new ConfigError(file, at, 'wall-time', 'needs max or regression', 'e.g. wall-time = { max = "1.5 s", regression = "10%" }');
    }
    const cpuShare: CheckSpec['cpuShare'] = [];
    if (tab['cpu-share'] !== undefined) {
      const t2 = tab['cpu-share'];
      if (typeof t2 !== 'object' || t2 === null || Array.isArray(t2)) throw new ConfigError(file, keyLine('cpu-share'), 'cpu-share', 'must be a table of "module:qualname" = { max = "N%" }', 'e.g. cpu-share = { "app.serialize:encode" = { max = "25%" } }');
      for (const [fn, b] of Object.entries(t2 as Record<string, unknown>)) {
        const at = keyLine(fn);
        const bad = checkFunctionSpec(fn);
        if (bad) throw new ConfigError(file, at, `cpu-share."${fn}"`, bad, 'name it module:qualname, e.g. "app.serialize:encode"');
        const max = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>).max : b;
        const q = parseQuantity(max, 'share');
        if (typeof q === 'string') throw new ConfigError(file, at, `cpu-share."${fn}".max`, q, 'e.g. { max = "25%" }');
        cpuShare.push({ fn, max: q.value, line: at });
      }
    }
    let noRegression: CheckSpec['noRegression'];
    if (tab['no-regression'] !== undefined) {
      const w = tab['no-regression'];
      const at = keyLine('no-regression');
      const pts = typeof w === 'object' && w !== null && !Array.isArray(w) ? (w as Record<string, unknown>).points : undefined;
      if (typeof pts !== 'number' || !(pts > 0 && pts < 100)) throw new ConfigError(file, at, 'no-regression', 'must be { points = N }: the share (in points) a function may grow by against the baseline', 'e.g. no-regression = { points = 3 }');
      noRegression = { points: pts, line: at };
    }
    let maxOverhead: CheckSpec['maxOverhead'];
    if (tab['max-overhead'] !== undefined) {
      const q = parseQuantity(tab['max-overhead'], 'share');
      if (typeof q === 'string') throw new ConfigError(file, keyLine('max-overhead'), 'max-overhead', q, 'e.g. max-overhead = "10%"');
      maxOverhead = { max: q.value, line: keyLine('max-overhead') };
    }
    let peakMemory: CheckSpec['peakMemory'];
    if (tab['peak-memory'] !== undefined) {
      const w = tab['peak-memory'];
      const max = typeof w === 'object' && w !== null && !Array.isArray(w) ? (w as Record<string, unknown>).max : w;
      const q = parseQuantity(max, 'bytes');
      if (typeof q === 'string') throw new ConfigError(file, keyLine('peak-memory'), 'peak-memory', q, 'e.g. peak-memory = "50 MB"');
      peakMemory = { max: q.value, line: keyLine('peak-memory'), text: String(max) };
    }
    let noMemoryGrowth: CheckSpec['noMemoryGrowth'];
    if (tab['memory-growth'] !== undefined) {
      if (typeof tab['memory-growth'] !== 'boolean') throw new ConfigError(file, keyLine('memory-growth'), 'memory-growth', `must be true or false, got ${JSON.stringify(tab['memory-growth'])}`, 'memory-growth = false fails the check when memory grows steadily');
      if (tab['memory-growth'] === false) noMemoryGrowth = { line: keyLine('memory-growth') };
    }
    // a pytest check's tests carry their own budgets (@pytest.mark.pylens)
    if (!pytest && calls.length === 0 && !wallTime && cpuShare.length === 0 && !peakMemory && !noMemoryGrowth && !noRegression) throw new ConfigError(file, line, undefined, `check "${name}" has no budget`, 'add calls, wall-time, cpu-share, peak-memory, memory-growth or no-regression');
    return { name, run, repeat, file, line, calls, cpuShare, ...(wallTime ? { wallTime } : {}), ...(peakMemory ? { peakMemory } : {}), ...(noMemoryGrowth ? { noMemoryGrowth } : {}), ...(noRegression ? { noRegression } : {}), ...(maxOverhead ? { maxOverhead } : {}), ...(pytest ? { pytest } : {}), ...(env ? { env } : {}) };
  });
}

/** the 1-based line of the first match of `re` in lines [from, to) (1-based), if any */
export function lineOf(lines: readonly string[], re: RegExp, from: number, to = Infinity): number | undefined {
  for (let i = Math.max(0, from - 1); i < Math.min(lines.length, to - 1); i++) if (re.test(lines[i]!)) return i + 1;
  return undefined;
}

/** "; did you mean 'x'?" for a close key */
export function nearest(k: string, keys: string[]): string {
  let best = '';
  let bestD = 3;
  for (const c of keys) {
    const d = distance(k, c);
    if (d < bestD) (bestD = d), (best = c);
  }
  return best ? `; did you mean '${best}'?` : '';
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return dp[b.length]!;
}
