/**
 * The `count` lens's result (python/pylens/_lens_count.py) → report, table and profile.
 *
 * Result `data` written by the lens:
 *   { mechanism: 'sys.monitoring' | 'sys.setprofile', time: boolean,
 *     functions: [{ spec: 'mod:qual', module, qualname, resolved: boolean,
 *                   how: 'import' | 'main' | 'loaded' | 'attribute' | null,
 *                   calls: number, total_ns: number | null,   // null without --time
 *                   codes: [{ file, line, name }], error: string | null }] }
 * calls: exact starts of the function's code (a generator counts once, when it starts);
 * total_ns: wall time inside it summed over threads, a recursive call inside an activation of
 * the same function counted once (like cProfile's cumulative time).
 *
 * The profile (written only with -o): one sample per resolved function, a single frame
 * (name = last part of the qualname, qualname = module:qualname, file and first line), values
 * calls [, total ns]; mode 'calls', lens 'interpreter', untimed.
 */
import { ProfileBuilder } from '../../model/builder.ts';
import type { Profile, ProfileMeta, ValueType } from '../../model/profile.ts';

export interface CountCode {
  file: string;
  line: number;
  name: string;
}

export interface CountFunction {
  spec: string;
  module: string;
  qualname: string;
  resolved: boolean;
  how: 'import' | 'main' | 'loaded' | 'attribute' | null;
  calls: number;
  total_ns: number | null;
  codes: CountCode[];
  error: string | null;
}

export interface CountData {
  mechanism: 'sys.monitoring' | 'sys.setprofile';
  time: boolean;
  functions: CountFunction[];
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const QUAL_PART = /^(?:[A-Za-z_][A-Za-z0-9_]*|<locals>|<lambda>|<genexpr>|<listcomp>|<dictcomp>|<setcomp>)$/;

/**
 * Check one `module:qualname`; returns an error message naming it, or null when it is fine.
 * Module: dotted identifiers (`__main__` included); qualname: dotted names, `<locals>` between.
 */
export function checkFunctionSpec(spec: string): string | null {
  const colon = spec.indexOf(':');
  if (colon < 0) return `--function ${JSON.stringify(spec)} has no ':'; write module:qualname, e.g. app.handlers:Handler.get or __main__:main`;
  const mod = spec.slice(0, colon);
  const qual = spec.slice(colon + 1);
  if (!mod) return `--function ${JSON.stringify(spec)} has no module before ':' (use __main__ for the script itself)`;
  if (!qual) return `--function ${JSON.stringify(spec)} has no function name after ':'`;
  if (!mod.split('.').every((p) => IDENT.test(p))) return `--function ${JSON.stringify(spec)}: ${JSON.stringify(mod)} is not a module name (dotted identifiers, e.g. pkg.mod)`;
  const parts = qual.split('.');
  if (!parts.every((p) => QUAL_PART.test(p))) return `--function ${JSON.stringify(spec)}: ${JSON.stringify(qual)} is not a qualified name (e.g. Class.method or outer.<locals>.inner)`;
  if (parts[0] === '<locals>' || parts[parts.length - 1] === '<locals>') return `--function ${JSON.stringify(spec)}: <locals> goes between two names, e.g. outer.<locals>.inner`;
  return null;
}

export interface CountRow {
  function: string;
  calls: number;
  totalNs: number | null;
  meanNs: number | null;
  file: string | null;
  line: number | null;
  error: string | null;
}

export function countRows(data: CountData): CountRow[] {
  return data.functions.map((f) => ({
    function: f.spec,
    calls: f.calls,
    totalNs: data.time && f.resolved ? (f.total_ns ?? 0) : null,
    meanNs: data.time && f.resolved && f.calls > 0 ? (f.total_ns ?? 0) / f.calls : null,
    file: f.codes[0]?.file ?? null,
    line: f.codes[0]?.line ?? null,
    error: f.resolved ? null : (f.error ?? `${f.spec} was never resolved`),
  }));
}

/** A duration for the table: ns, µs, ms or s with 3 significant digits. */
export function formatNs(ns: number): string {
  if (ns < 1e3) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`;
  return `${(ns / 1e9).toPrecision(3)} s`;
}

/** The text table: function, calls [, total, mean], where; unresolved names say so. */
export function formatCountTable(data: CountData): string {
  const rows = countRows(data);
  const head = ['function', 'calls', ...(data.time ? ['total', 'mean'] : []), 'where'];
  const body = rows.map((r) => [
    r.function,
    r.error ? '-' : r.calls.toLocaleString('en-US'),
    ...(data.time ? [r.totalNs === null ? '-' : formatNs(r.totalNs), r.meanNs === null ? '-' : formatNs(r.meanNs)] : []),
    r.error ? 'not resolved' : r.file ? `${r.file}:${r.line}` : '',
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((row) => [...row[i]!].length)));
  const right = (i: number) => i > 0 && i < head.length - 1;
  const line = (row: string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : right(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n') + '\n';
}

/** The profile of a count run: one sample per resolved function. */
export function buildCountProfile(data: CountData, meta: Partial<ProfileMeta>): Profile {
  const valueTypes: ValueType[] = [{ name: 'calls', unit: 'calls' }, ...(data.time ? [{ name: 'total', unit: 'nanoseconds' as const }] : [])];
  const b = new ProfileBuilder({
    meta: { ...meta, lens: 'interpreter', backend: `pylens-count (${data.mechanism})`, mode: 'calls', extra: { ...(meta.extra ?? {}), functions: data.functions.length } },
    valueTypes,
    defaultValue: 0,
    timed: false,
  });
  const thread = b.thread(meta.pid ?? 0, meta.pid ?? 0, 'all threads');
  for (const f of data.functions) {
    if (!f.resolved) continue;
    const code = f.codes[0];
    const parts = f.qualname.split('.');
    const frame = b.frame({ name: parts[parts.length - 1]!, qualname: `${f.module}:${f.qualname}`, ...(code ? { file: code.file, line: code.line } : {}) });
    b.sample(b.stackOf([frame]), data.time ? [f.calls, f.total_ns ?? 0] : f.calls, thread, 'unknown');
  }
  const p = b.build();
  p.meta.sampleCount = data.functions.reduce((s, f) => s + f.calls, 0);
  return p;
}
