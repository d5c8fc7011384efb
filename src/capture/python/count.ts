/**
 * The `count` lens's result (python/pylens/_lens_count.py) → profile; its rows are
 * analysis/count.ts's, its table render/count.ts's.
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

import type { CountData } from '../../analysis/count.ts';

export type { CountCode, CountData, CountFunction } from '../../analysis/count.ts';

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
