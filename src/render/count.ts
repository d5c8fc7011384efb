/** `pylens count` as text: function, calls [, total, mean], where. */
import { countRows, type CountData } from '../analysis/count.ts';

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
