/**
 * `pylens io` as text: the summary line, biolatency-style histograms, tables by op, device,
 * slowest request and process. The report is analysis/io.ts's.
 */
import type { IoReport, LatencyStats } from '../analysis/io.ts';

/** "850 µs", "12.3 ms", "1.20 s" */
export function fmtUs(v: number): string {
  if (v < 1000) return `${v < 10 ? v.toFixed(1) : Math.round(v)} µs`;
  if (v < 1e6) return `${(v / 1000).toFixed(v < 1e4 ? 2 : 1)} ms`;
  return `${(v / 1e6).toFixed(2)} s`;
}

export function fmtBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 ** 2) return `${+(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${+(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${+(b / 1024 ** 3).toFixed(2)} GiB`;
}

/** biolatency-style histogram rows. */
export function histogramLines(s: LatencyStats, indent = '  '): string[] {
  if (s.histogram.length === 0) return [];
  const max = Math.max(...s.histogram.map((b) => b.count));
  const W = 40;
  const rangeW = Math.max(...s.histogram.map((b) => `${b.fromUs} -> ${b.toUs}`.length), 12);
  const countW = Math.max(5, ...s.histogram.map((b) => `${b.count}`.length));
  const lines = [`${indent}${'µs'.padStart(rangeW)} : ${'count'.padEnd(countW)}  distribution`];
  for (const b of s.histogram) {
    const bar = '*'.repeat(b.count === 0 ? 0 : Math.max(1, Math.round((W * b.count) / max)));
    lines.push(`${indent}${`${b.fromUs} -> ${b.toUs}`.padStart(rangeW)} : ${`${b.count}`.padEnd(countW)}  |${bar.padEnd(W)}|`);
  }
  return lines;
}

function summaryLine(s: LatencyStats): string {
  return `${s.count} request${s.count === 1 ? '' : 's'}, ${fmtBytes(s.bytes)}; p50 ${fmtUs(s.p50Us)}, p90 ${fmtUs(s.p90Us)}, p99 ${fmtUs(s.p99Us)}, max ${fmtUs(s.maxUs)}`;
}

function table(head: string[], rows: string[][], rightAlign: boolean[]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => '  ' + r.map((c, i) => (rightAlign[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

const proc = (comm: string, pid: number | undefined) => `${comm}${pid !== undefined ? ` (${pid})` : ''}`;

export function renderIoReport(
  r: IoReport,
  ctx: { wallS: number; stopReason: string; perfInfo?: { cpuMs: number; cpuPercentOfOneCpu: number } | undefined; warnings: string[]; command?: string },
): string {
  const L: string[] = [];
  const devs = r.devices.length;
  L.push(
    `pylens io: ${ctx.wallS.toFixed(1)} s (stopped: ${ctx.stopReason}), ${r.overall.count} request${r.overall.count === 1 ? '' : 's'} (${fmtBytes(r.overall.bytes)}) on ${devs} device${devs === 1 ? '' : 's'}` +
      (r.filterPid !== undefined ? `, issued by process ${r.filterPid}` : '') +
      (ctx.perfInfo ? `; perf used ${ctx.perfInfo.cpuMs} ms CPU (${ctx.perfInfo.cpuPercentOfOneCpu} % of one CPU)` : ''),
  );
  if (ctx.command) L.push(`command: ${ctx.command}`);
  if (r.overall.count === 0) {
    L.push('', 'No block I/O requests completed while recording.');
  } else {
    L.push('', `All devices: ${summaryLine(r.overall)}`, ...histogramLines(r.overall));
    L.push('', 'By op:');
    L.push(
      ...table(
        ['op', 'requests', 'bytes', 'mean', 'p50', 'p90', 'p99', 'max', 'queued p50'],
        r.ops.map((o) => [o.op, `${o.count}`, fmtBytes(o.bytes), fmtUs(o.meanUs), fmtUs(o.p50Us), fmtUs(o.p90Us), fmtUs(o.p99Us), fmtUs(o.maxUs), o.queue ? fmtUs(o.queue.p50Us) : '-']),
        [false, true, true, true, true, true, true, true, true],
      ),
    );
    L.push('', 'By device:');
    L.push(
      ...table(
        ['device', 'op', 'requests', 'bytes', 'mean', 'p50', 'p90', 'p99', 'max'],
        r.devices.flatMap((d) => [
          [`${d.name} (${d.dev})`, 'all', `${d.count}`, fmtBytes(d.bytes), fmtUs(d.meanUs), fmtUs(d.p50Us), fmtUs(d.p90Us), fmtUs(d.p99Us), fmtUs(d.maxUs)],
          ...(d.ops.length > 1 ? d.ops.map((o) => ['', o.op, `${o.count}`, fmtBytes(o.bytes), fmtUs(o.meanUs), fmtUs(o.p50Us), fmtUs(o.p90Us), fmtUs(o.p99Us), fmtUs(o.maxUs)]) : []),
        ]),
        [false, false, true, true, true, true, true, true, true],
      ),
    );
    if (devs > 1) {
      for (const d of r.devices) L.push('', `${d.name} (${d.dev}): ${summaryLine(d)}`, ...histogramLines(d));
    }
    if (r.slowest.length) {
      L.push('', `Slowest ${r.slowest.length} request${r.slowest.length === 1 ? '' : 's'}:`);
      L.push(
        ...table(
          ['latency', 'at', 'device', 'op', 'rwbs', 'bytes', 'sector', 'issued by', 'queued by'],
          r.slowest.map((s) => [fmtUs(s.latencyUs), `${s.atS.toFixed(3)} s`, s.device, s.op, s.rwbs, fmtBytes(s.bytes), s.sector === null ? '-' : `${s.sector}`, proc(s.comm, s.pid), s.queuedBy ? proc(s.queuedBy.comm, s.queuedBy.pid) : '']),
          [true, true, false, false, false, true, true, false, false],
        ),
      );
    }
    if (r.processes.length) {
      const shown = r.processes.slice(0, Math.max(1, r.slowest.length || 10));
      L.push('', `Processes behind the requests (${shown.length} of ${r.processes.length}; kernel threads marked *):`);
      L.push(
        ...table(
          ['process', 'requests', 'bytes', 'mean', 'max'],
          shown.map((p) => [`${proc(p.comm, p.pid)}${p.kernelThread ? ' *' : ''}`, `${p.count}`, fmtBytes(p.bytes), fmtUs(p.meanUs), fmtUs(p.maxUs)]),
          [false, true, true, true, true],
        ),
      );
    }
  }
  if (r.notes.length) L.push('', ...r.notes.map((n) => `note: ${n}`));
  if (ctx.warnings.length) L.push('', ...ctx.warnings.map((w) => `warning: ${w}`));
  return `${L.join('\n')}\n`;
}
