/**
 * Text top table, py-spy `top` style: %Own, %Total, Own, Total, function (file[:line]).
 * Built on aggregate() from src/model/query.ts (sorted by own, then total, then label);
 * values in the value type's unit. Used by `pylens top` and the `top` exporter.
 */
import type { Profile } from '../model/profile.ts';
import { aggregate } from '../model/query.ts';
import type { ExportOptions, Exporter } from '../formats/types.ts';
import { formatPercent, formatValue, formatValueShort } from './page/units.ts';

export interface TopOptions {
  /** Aggregate by function (default) or by line. */
  by?: 'function' | 'line';
  /** Show at most this many rows (default, and 0: all). */
  limit?: number;
  /** Value column (default: profile.defaultValue). */
  valueIndex?: number;
  fullFilenames?: boolean;
}

/** The table as text, one row per line, ending with a newline. Deterministic. */
export function renderTopTable(p: Profile, o: TopOptions = {}): string {
  const vi = o.valueIndex ?? p.defaultValue;
  const vt = p.valueTypes[vi];
  if (!vt) throw new Error(`value index ${vi} out of range (the profile has ${p.valueTypes.length} value types)`);
  const by = o.by ?? 'function';
  const { rows, grandTotal } = aggregate(p, { by, valueIndex: vi, fullFilenames: o.fullFilenames });
  const shown = o.limit !== undefined && o.limit > 0 ? rows.slice(0, o.limit) : rows;
  const cells = shown.map((r) => [formatPercent(r.selfPct / 100), formatPercent(r.totalPct / 100), formatValueShort(r.self, vt.unit), formatValueShort(r.total, vt.unit), r.label]);
  const header = ['%Own', '%Total', 'Own', 'Total', by === 'line' ? 'Function (file:line)' : 'Function (file)'];
  const widths = [0, 1, 2, 3].map((c) => Math.max(header[c]!.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: string[]) => `${row.slice(0, 4).map((s, c) => s.padStart(widths[c]!)).join('  ')}  ${row[4]}`.trimEnd();
  const unit = vt.unit === vt.name ? '' : ` (${vt.name}, ${vt.unit})`;
  const what = by === 'line' ? 'lines' : 'functions';
  const more = shown.length < rows.length ? `, showing the top ${shown.length}` : '';
  const out = [`Total: ${formatValue(grandTotal, vt.unit)}${unit} · ${rows.length} ${what}${more}`, line(header), ...cells.map(line)];
  if (shown.length < rows.length) out.push(`… ${rows.length - shown.length} more ${what}`);
  return `${out.join('\n')}\n`;
}

export const topExporter: Exporter = {
  id: 'top',
  extension: '.top.txt',
  lossless: false,
  write: (p: Profile, o: ExportOptions = {}) => renderTopTable(p, { valueIndex: o.valueIndex, fullFilenames: o.fullFilenames, by: 'function' }),
};
