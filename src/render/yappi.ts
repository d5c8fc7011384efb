/**
 * `pylens yappi` as text: the per-thread table (each thread's CPU next to its wall time and
 * yappi's own total). The rows come from capture/python/yappi.ts (`yappiThreadRows`); this
 * file only formats them.
 */
import { formatPercent, formatValueShort } from './page/units.ts';

/** what the table shows of a thread (capture's YappiThreadRow has these fields) */
export interface YappiThreadLine {
  name: string;
  tid: number;
  daemon: boolean;
  aliveAtExit: boolean;
  cpuNs: number | null;
  wallNs: number | null;
  cpuShare: number | null;
  yappiNs: number | null;
  calls: number;
}

const ms = (v: number | null): string => (v === null ? '-' : formatValueShort(v, 'nanoseconds'));

/** The per-thread table as text. */
export function formatThreadTable(rows: YappiThreadLine[], clock: 'cpu' | 'wall'): string {
  const header = ['Thread', 'TID', 'CPU', 'Wall', 'CPU/Wall', `yappi ${clock}`, 'Calls'];
  const cells = rows.map((r) => [
    `${r.name}${r.daemon ? ' (daemon)' : ''}${r.aliveAtExit ? ' (running at exit)' : ''}`,
    String(r.tid),
    ms(r.cpuNs),
    ms(r.wallNs),
    r.cpuShare === null ? '-' : formatPercent(r.cpuShare),
    ms(r.yappiNs),
    r.calls.toLocaleString('en-US'),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ').trimEnd();
  return [`Threads (CPU: time.thread_time; Wall: lifetime while profiled; yappi ${clock}: yappi's per-thread total)`, line(header), ...cells.map(line)].join('\n') + '\n';
}
