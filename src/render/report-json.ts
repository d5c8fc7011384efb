/**
 * `report --json`'s document, one home for it: the CLI prints it and `pylens serve` returns it
 * from /api/profiles/ID/report. Rows of the chosen aggregation with their state splits, where
 * the time fans out, asyncio waits, and pstats rows for call-counting profiles.
 */
import { stateSplits, statesPresent, wideBottoms } from '../analysis/report.ts';
import { asyncWaits } from '../analysis/tasks.ts';
import { functionStats } from '../formats/pstats.ts';
import type { Profile } from '../model/profile.ts';
import { aggregate, type AggregateBy } from '../model/query.ts';
import { pstatsRows, type PstatsSort } from './pstats-table.ts';

/** A profile that counts calls (pstats, trace, yappi): it has a `calls` column and whole-call times. */
export function countsCalls(p: Profile): boolean {
  return p.meta.mode === 'calls' && p.valueTypes.some((v) => v.name === 'calls' && v.unit === 'calls') && p.valueTypes.some((v) => v.unit === 'nanoseconds');
}

export interface ReportOptions {
  by?: AggregateBy;
  /** rows kept (0: all; default 20) */
  limit?: number;
  sort?: PstatsSort;
  fullFilenames?: boolean;
  /** pstats columns for a call-counting profile (default: yes unless `by` is given) */
  pstats?: boolean;
}

export function reportDoc(p: Profile, o: ReportOptions = {}): object {
  const by = o.by ?? 'function';
  const limit = o.limit ?? 20;
  const sort = o.sort ?? 'cumulative';
  const stats = countsCalls(p) && (o.pstats ?? o.by === undefined) ? functionStats(p) : undefined;
  const states = statesPresent(p).filter((s) => s !== 'unknown');
  const splits = states.length >= 2 ? stateSplits(p, { by }) : undefined;
  const bottoms = stats || by === 'file' || by === 'module' ? [] : wideBottoms(p);
  const waits = stats ? null : asyncWaits(p);
  const agg = aggregate(p, { by, fullFilenames: Boolean(o.fullFilenames) });
  const vt = p.valueTypes[p.defaultValue]!;
  const rows = (limit ? agg.rows.slice(0, limit) : agg.rows).map((r, i) => {
    const sp = splits?.get(agg.keys[i]!);
    return sp ? { ...r, states: sp.states, ...(Object.keys(sp.waits).length ? { waits: sp.waits } : {}) } : r;
  });
  return {
    meta: p.meta,
    value: vt,
    by,
    grandTotal: agg.grandTotal,
    rows,
    wideBottoms: bottoms,
    ...(waits ? { asyncio: waits } : {}),
    ...(stats ? { pstats: pstatsRows(stats, sort, limit) } : {}),
  };
}
