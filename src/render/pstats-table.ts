/**
 * The pstats table (`python -m pstats` / `Stats.print_stats()` columns): ncalls (total/primitive
 * when they differ), tottime, percall, cumtime, percall, filename:lineno(function), in
 * seconds; ordered by cumulative time, internal time or call count. Printed by `trace` and by
 * `report` for profiles that count calls (pstats, trace, yappi).
 */
import type { FunctionStat } from '../formats/pstats.ts';

export const PSTATS_SORTS = ['cumulative', 'self', 'calls'] as const;
export type PstatsSort = (typeof PSTATS_SORTS)[number];

/** pstats-style table (ncalls tottime percall cumtime percall filename:lineno(function)). */
function sortStats(stats: readonly FunctionStat[], sort: PstatsSort): FunctionStat[] {
  return [...stats].sort((a, b) => (sort === 'self' ? b.tt - a.tt || b.ct - a.ct : sort === 'calls' ? b.nc - a.nc || b.ct - a.ct : b.ct - a.ct || b.tt - a.tt));
}

export function renderPstatsTable(stats: readonly FunctionStat[], o: { sort: PstatsSort; top?: number }): string {
  const sorted = sortStats(stats, o.sort);
  const totalCalls = stats.reduce((s, x) => s + x.nc, 0);
  const prim = stats.reduce((s, x) => s + x.cc, 0);
  const shown = o.top ? sorted.slice(0, o.top) : sorted;
  const f3 = (x: number) => (x >= 100 ? x.toFixed(1) : x.toFixed(3));
  const where = (st: FunctionStat) => (st.key[0] === '~' ? `{${st.key[2]}}` : `${st.key[0]}:${st.key[1]}(${st.frame.qualname || st.key[2]})`);
  const rows = shown.map((st) => [st.nc === st.cc ? String(st.nc) : `${st.nc}/${st.cc}`, f3(st.tt), st.nc ? f3(st.tt / st.nc) : '-', f3(st.ct), st.cc ? f3(st.ct / st.cc) : '-', where(st)]);
  const head = ['ncalls', 'tottime', 'percall', 'cumtime', 'percall', 'filename:lineno(function)'];
  const w = [0, 1, 2, 3, 4].map((c) => Math.max(head[c]!.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `${r.slice(0, 5).map((x, c) => x.padStart(w[c]!)).join('  ')}  ${r[5]}`;
  const out = [
    `${totalCalls} function calls${prim !== totalCalls ? ` (${prim} primitive calls)` : ''} in ${stats.length} functions`,
    `Ordered by: ${o.sort === 'self' ? 'internal time' : o.sort === 'calls' ? 'call count' : 'cumulative time'}${shown.length < sorted.length ? `; top ${shown.length} of ${sorted.length}` : ''} (times in seconds)`,
    '',
    line(head),
    ...rows.map(line),
  ];
  return `${out.join('\n')}\n`;
}

/** The table's rows as data (seconds), in the table's order: for JSON. */
export function pstatsRows(stats: readonly FunctionStat[], sort: PstatsSort, top = 0): Array<{ function: string; file: string; line: number; ncalls: number; primitiveCalls: number; tottime: number; cumtime: number; percallTottime: number | null; percallCumtime: number | null }> {
  return sortStats(stats, sort)
    .slice(0, top || undefined)
    .map((st) => ({
      function: st.frame.qualname || st.key[2],
      file: st.key[0],
      line: st.key[1],
      ncalls: st.nc,
      primitiveCalls: st.cc,
      tottime: st.tt,
      cumtime: st.ct,
      percallTottime: st.nc ? st.tt / st.nc : null,
      percallCumtime: st.cc ? st.ct / st.cc : null,
    }));
}
