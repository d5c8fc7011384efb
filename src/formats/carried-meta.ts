/**
 * pylens's metadata carried through foreign formats that have room for it, so a profile
 * exported to speedscope or pprof and read back still says which lens and tool made it,
 * its mode, rate, duration, overhead, environment and quality — not "lens: import,
 * backend: unknown". speedscope: a top-level `"pylens": {"meta": …}` member (speedscope
 * ignores members it does not know); pprof: one `comment` string `pylens-meta:{…}`.
 * Read back, the carried fields replace what the format itself could say; the rest (the
 * format's own sample count, `source`) stays.
 */
import type { ProfileMeta } from '../model/profile.ts';

export const PPROF_META_PREFIX = 'pylens-meta:';

/** the meta worth carrying: everything but where this copy came from */
export function carriedMeta(m: ProfileMeta): Omit<ProfileMeta, 'source'> {
  const { source: _source, ...rest } = m;
  return rest;
}

/** `built` with the carried fields restored, when `carried` is a pylens meta object; else `built` */
export function restoreMeta(built: ProfileMeta, carried: unknown): ProfileMeta {
  if (typeof carried !== 'object' || carried === null || Array.isArray(carried)) return built;
  const c = carried as Record<string, unknown>;
  if (typeof c['lens'] !== 'string' || typeof c['backend'] !== 'string' || typeof c['mode'] !== 'string') return built;
  const out: ProfileMeta = { ...built };
  const str = (k: keyof ProfileMeta) => typeof c[k] === 'string' && ((out as unknown as Record<string, unknown>)[k] = c[k]);
  const num = (k: keyof ProfileMeta) => typeof c[k] === 'number' && Number.isFinite(c[k]) && ((out as unknown as Record<string, unknown>)[k] = c[k]);
  for (const k of ['lens', 'backend', 'mode', 'name', 'startTime'] as const) str(k);
  for (const k of ['rateHz', 'durationNs', 'pid', 'sampleCount', 'errorCount'] as const) num(k);
  if (Array.isArray(c['command']) && c['command'].every((x) => typeof x === 'string')) out.command = c['command'] as string[];
  const ov = c['overhead'] as Record<string, unknown> | undefined;
  if (ov && typeof ov === 'object' && typeof ov['method'] === 'string') out.overhead = { method: ov['method'], ...(typeof ov['fraction'] === 'number' ? { fraction: ov['fraction'] } : {}) };
  if (c['environment'] && typeof c['environment'] === 'object') out.environment = { ...built.environment, ...(c['environment'] as ProfileMeta['environment']) };
  const ex = c['extra'];
  if (ex && typeof ex === 'object' && !Array.isArray(ex)) {
    const extra: Record<string, string | number> = { ...(built.extra ?? {}) };
    for (const [k, v] of Object.entries(ex as Record<string, unknown>)) if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) extra[k] = v;
    out.extra = extra;
  }
  return out as ProfileMeta;
}
