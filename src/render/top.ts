/**
 * Text top table, py-spy `top` style: %Own, %Total, Own, Total, function (file[:line]).
 * Built on aggregate() from src/model/query.ts (sorted by own, then total, then label);
 * values in the value type's unit. Used by `pylens top` and the `top` exporter.
 */
import type { Profile } from '../model/profile.ts';
import { aggregate, type AggregateBy } from '../model/query.ts';
import type { StateSplit, WideBottom } from '../analysis/report.ts';
import { shortestUniquePaths } from '../model/labels.ts';
import type { ExportOptions, Exporter } from '../formats/types.ts';
import { formatPercent, formatValue, formatValueShort } from './page/units.ts';

export interface TopOptions {
  /** Aggregate by function (default) or by line. */
  by?: AggregateBy;
  /** Show at most this many rows (default, and 0: all). */
  limit?: number;
  /** Value column (default: profile.defaultValue). */
  valueIndex?: number;
  fullFilenames?: boolean;
  /** each row's value by state (analysis/report.ts stateSplits): adds a "State split" column */
  splits?: ReadonlyMap<string, StateSplit>;
}

const STATE_NAMES: Record<string, string> = { 'on-cpu': 'cpu', idle: 'idle', gil: 'gil', 'off-cpu': 'off-cpu', unknown: '?' };

/** `cpu 72% · off-cpu 28% (lock 20%, sleep 8%)`: the shares of a row's value by state */
export function splitText(s: StateSplit | undefined): string {
  if (!s || !(s.total > 0)) return '';
  const parts: string[] = [];
  for (const [st, v] of Object.entries(s.states).sort((a, b) => b[1]! - a[1]!)) {
    if (!v || v / s.total < 0.005) continue;
    let t = `${STATE_NAMES[st] ?? st} ${Math.round((100 * v) / s.total)}%`;
    if (st === 'off-cpu') {
      const waits = Object.entries(s.waits).filter(([w, x]) => w !== 'GIL' && x / s.total >= 0.005).sort((a, b) => b[1] - a[1]);
      if (waits.length) t += ` (${waits.map(([w, x]) => `${w} ${Math.round((100 * x) / s.total)}%`).join(', ')})`;
    }
    parts.push(t);
  }
  return parts.join(' · ');
}

/** The table as text, one row per line, ending with a newline. Deterministic. */
export function renderTopTable(p: Profile, o: TopOptions = {}): string {
  const vi = o.valueIndex ?? p.defaultValue;
  const vt = p.valueTypes[vi];
  if (!vt) throw new Error(`value index ${vi} out of range (the profile has ${p.valueTypes.length} value types)`);
  const by = o.by ?? 'function';
  const { rows, grandTotal, keys } = aggregate(p, { by, valueIndex: vi, fullFilenames: o.fullFilenames });
  const shown = o.limit !== undefined && o.limit > 0 ? rows.slice(0, o.limit) : rows;
  const split = o.splits;
  const cells = shown.map((r, i) => [formatPercent(r.selfPct / 100), formatPercent(r.totalPct / 100), formatValueShort(r.self, vt.unit), formatValueShort(r.total, vt.unit), ...(split ? [splitText(split.get(keys[i]!))] : []), r.label]);
  const header = ['%Own', '%Total', 'Own', 'Total', ...(split ? ['State split'] : []), by === 'line' ? 'Function (file:line)' : by === 'file' ? 'File' : by === 'module' ? 'Module' : 'Function (file)'];
  const nums = split ? 5 : 4;
  const widths = header.slice(0, nums).map((_, c) => Math.max(header[c]!.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: string[]) => `${row.slice(0, 4).map((s, c) => s.padStart(widths[c]!)).join('  ')}  ${split ? `${row[4]!.padEnd(widths[4]!)}  ` : ''}${row[nums]}`.trimEnd();
  const unit = vt.unit === vt.name ? '' : ` (${vt.name}, ${vt.unit})`;
  const what = by === 'line' ? 'lines' : by === 'file' ? 'files' : by === 'module' ? 'modules' : 'functions';
  const more = shown.length < rows.length ? `, showing the top ${shown.length}` : '';
  const out = [`Total: ${formatValue(grandTotal, vt.unit)}${unit} · ${rows.length} ${what}${more}`, line(header), ...cells.map(line)];
  if (shown.length < rows.length) out.push(`… ${rows.length - shown.length} more ${what}`);
  return `${out.join('\n')}\n`;
}

/** "Wide bottoms": where the time fans out into many callees; fix these first (analysis/report.ts). Empty when none. */
export function renderWideBottoms(list: readonly WideBottom[]): string {
  if (list.length === 0) return '';
  const short = shortestUniquePaths(list.map((w) => w.file).filter((f): f is string => !!f));
  const rows = list.map((w) => `  ${formatPercent(w.share).padStart(7)}  ${w.name}${w.file ? ` (${short.get(w.file) ?? w.file})` : ''} — ${w.callees} callees, the largest ${Math.round(100 * w.largestCallee)}% of it, ${formatPercent(w.selfShare)} in itself`);
  return `Wide bottoms (where the time fans out; fix these first):\n${rows.join("\n")}\n\n`;
}

export const topExporter: Exporter = {
  id: 'top',
  extension: '.top.txt',
  lossless: false,
  write: (p: Profile, o: ExportOptions = {}) => renderTopTable(p, { valueIndex: o.valueIndex, fullFilenames: o.fullFilenames, by: 'function' }),
};
