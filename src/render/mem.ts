/**
 * The text report of `pylens mem` (a MemReport from capture/python/mem.ts): current and
 * peak traced memory, RSS, the top lines alive at exit (and at the largest snapshot), the
 * snapshots with their diffs, and the growth verdicts with the lines responsible.
 */
import { basename } from 'node:path';
import type { MemLineRow, MemReport } from '../analysis/mem.ts';
import { formatBytes, groupDigits } from './page/units.ts';

const where = (l: { file: string; line: number; function: string }, full: boolean) => `${l.function} (${full ? l.file : basename(l.file)}:${l.line})`;
const signed = (b: number) => (b > 0 ? `+${formatBytes(b)}` : b < 0 ? `-${formatBytes(-b)}` : '0 B');

function table(header: string[], rows: string[][], right: number[]): string[] {
  const w = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: string[]) => r.map((s, c) => (c === r.length - 1 ? s : right.includes(c) ? s.padStart(w[c]!) : s.padEnd(w[c]!))).join('  ').trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

function lineTable(rows: MemLineRow[], full: boolean): string[] {
  return table(
    ['Bytes', '%', 'Blocks', 'Line'],
    rows.map((r) => [formatBytes(r.bytes), `${(r.share * 100).toFixed(1)}%`, groupDigits(r.blocks), where(r, full)]),
    [0, 1, 2],
  );
}

export function renderMemReport(r: MemReport, o: { fullFilenames?: boolean; maxSnapshots?: number } = {}): string {
  const full = o.fullFilenames === true;
  const out: string[] = [];
  const rss = r.rss !== null ? formatBytes(r.rss) : 'n/a';
  out.push(`Traced memory: ${r.current !== null ? formatBytes(r.current) : 'n/a'} alive at exit${r.currentBlocks !== null ? ` (${groupDigits(r.currentBlocks)} blocks)` : ''}, peak ${formatBytes(r.peak)}${r.peakExact ? '' : ' (at least)'}`);
  out.push(`RSS: ${rss} at exit, peak ${r.rssPeak !== null ? formatBytes(r.rssPeak) : 'n/a'}${r.tracemallocBytes !== null ? ` · tracemalloc's own bookkeeping ${formatBytes(r.tracemallocBytes)}` : ''}`);
  out.push('');
  out.push(r.topLines.length ? `Alive at exit, top ${r.topLines.length} lines:` : 'Nothing of the program was alive at exit.');
  if (r.topLines.length) out.push(...lineTable(r.topLines, full));
  if (r.peakSnapshot) {
    out.push('');
    out.push(`At the largest snapshot seen while running (t=${r.peakSnapshot.t.toFixed(2)} s, ${formatBytes(r.peakSnapshot.traced)} traced):`);
    out.push(...lineTable(r.peakSnapshot.topLines, full));
  }
  const snaps = r.snapshots;
  if (snaps.length > 1) {
    out.push('');
    const max = o.maxSnapshots ?? 20;
    const shown = snaps.length > max ? [...snaps.slice(0, max / 2), ...snaps.slice(-max / 2)] : snaps;
    out.push(`Snapshots (every ${r.interval} s${snaps.length > max ? `, ${max} of ${snaps.length} shown` : ''}):`);
    out.push(
      ...table(
        ['t (s)', 'Traced', 'ΔTraced', 'RSS', 'ΔRSS', 'Biggest change'],
        shown.map((s) => [
          s.t.toFixed(2) + (s.kind === 'exit' ? ' exit' : ''),
          formatBytes(s.traced),
          s.deltaTraced === null ? '' : signed(s.deltaTraced),
          s.rss === null ? 'n/a' : formatBytes(s.rss),
          s.deltaRss === null ? '' : signed(s.deltaRss),
          s.changes[0] ? `${signed(s.changes[0].delta)} ${where(s.changes[0], full)}` : '',
        ]),
        [1, 2, 3, 4],
      ),
    );
  }
  out.push('');
  const g = r.growth;
  const verdict = (v: { growing: boolean; reason: string; growth: number; rate: number }) => (v.growing ? `GROWING ${signed(v.growth)} (${formatBytes(v.rate)}/s)` : `steady (${v.reason})`);
  out.push(`Growth: traced memory ${verdict(g.traced)}; RSS ${g.rss ? verdict(g.rss) : 'n/a'}`);
  if (g.lines.length) {
    out.push(`Lines growing steadily (${g.lines.length}):`);
    out.push(
      ...table(
        ['Growth', 'Rate', 'Rose in', 'Line'],
        g.lines.slice(0, 20).map((l) => [signed(l.growth), `${formatBytes(l.rate)}/s`, `${l.up}/${l.intervals}`, where(l, full)]),
        [0, 1, 2],
      ),
    );
  } else out.push('No line grows steadily.');
  out.push(`(rule: ${g.rule}; min bytes ${formatBytes(g.minBytes)})`);
  return out.join('\n') + '\n';
}
