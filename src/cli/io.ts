/**
 * `pylens io`: block-layer I/O latency, system-wide, from perf recording the kernel's
 * block tracepoints (`block_rq_insert`/`issue`/`complete`/`requeue`) on every CPU.
 *
 * Records for -d seconds, until Ctrl-C (what was collected is reported), or while a command
 * given after `--` runs (started once perf records; its stdio passes through; pylens exits
 * with its exit code). Then
 * prints latency histograms (log2 µs buckets), percentiles by device and by op, the slowest
 * requests and the processes behind them; `--json` gives the same data.
 */
import { existsSync } from 'node:fs';
import { Companion } from '../capture/session/session.ts';
import type { Launched } from '../capture/session/target.ts';
import { BlockLatency, recordBlockIo, recordBlockIoTracefs, scriptBlockIo, type IoReport, type LatencyStats } from '../capture/perf/io.ts';
import { checkPerfAccess, findPerf, readPerfAccess } from '../capture/perf/tool.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError } from './errors.ts';
import { durationArg, startSession } from './target.ts';

export const ioSpec: CommandSpec = {
  name: 'io',
  summary: 'Block I/O latency (perf block tracepoints, system-wide): histograms, percentiles by device and op, the slowest requests and who issued them.',
  usage: 'pylens io [-d SECONDS] [-p PID] [--json] [--top N] [--tracefs] [-- cmd args...]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'record this long (default: until Ctrl-C, or until the command after -- exits)' },
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'only requests issued (or queued) by this process and its threads' },
    { name: 'top', short: 'n', type: 'number', value: 'N', help: 'how many of the slowest requests and busiest processes to list (default 10)' },
    { name: 'json', type: 'boolean', help: 'print the report as JSON' },
    { name: 'tracefs', type: 'boolean', help: 'record through a private ftrace instance instead of perf (where perf loses completions; needs root)' },
  ],
  examples: [
    'pylens io -d 10                                # every disk, 10 seconds',
    'pylens io                                      # until Ctrl-C',
    'pylens io -p 4242 -d 30                        # only what process 4242 issues',
    'pylens io -- python etl.py                     # while a command runs',
    'pylens io --json -d 5 > io.json',
    'pylens io --tracefs -d 10                      # without perf, through ftrace',
  ],
};

export async function runIo(args: Parsed): Promise<number> {
  const o = args.options;
  const duration = durationArg('io', args);
  const pid = o.pid as number | undefined;
  if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) throw new UsageError('io', `-p expects a process id (a whole number > 0), got ${pid}`);
  const top = (o.top as number | undefined) ?? 10;
  if (!(Number.isInteger(top) && top >= 0)) throw new UsageError('io', `--top expects a whole number >= 0, got ${top}`);
  const json = Boolean(o.json);
  const argv = args.rest;
  if (pid !== undefined && !existsSync(`/proc/${pid}`)) throw new CliError(`no process ${pid}`, 'check the PID with `ps -p PID`');

  const access = readPerfAccess();
  const latency = new BlockLatency({ ...(pid !== undefined ? { pid } : {}), top });
  const backend = o.tracefs ? 'tracefs' : 'perf';
  type Recorder = { ended?: Promise<unknown>; stop(): Promise<{ perfCpuNs?: number | undefined; warnings: string[] }>; cleanup(): void };
  let cleanup: (() => void) | undefined;
  // recording the whole machine from before the command starts: its first request is in
  const recorderC = new Companion('perf record', async () => {
    let recorder: Recorder;
    if (backend === 'tracefs') {
      if (!access.tracefs) {
        throw new CliError('tracefs is not mounted (no /sys/kernel/tracing/events)', 'mount it: `mount -t tracefs tracefs /sys/kernel/tracing` (as root)');
      }
      recorder = await recordBlockIoTracefs(access.tracefs, latency);
    } else {
      const perf = findPerf();
      const { warnings: accessWarnings } = checkPerfAccess(access, { systemWide: true, tracepoints: true });
      for (const w of accessWarnings) process.stderr.write(`pylens io: ${w}\n`);
      const rec = await recordBlockIo(perf);
      recorder = {
        ended: rec.ended,
        async stop() {
          const { perfCpuNs } = await rec.stop();
          const warnings = await scriptBlockIo(perf, rec.dataFile, latency);
          return { perfCpuNs, warnings: warnings.map((w) => `perf: ${w}`) };
        },
        cleanup: rec.cleanup,
      };
    }
    cleanup = recorder.cleanup;
    return { ...(recorder.ended ? { ended: recorder.ended } : {}), stop: () => recorder.stop() };
  }, { before: true });
  let target: Launched | undefined;
  let wallS: number;
  let exitCode: number;
  let stopReason: string;
  let perfCpuNs: number | undefined;
  let recWarnings: string[];
  let report: IoReport;
  try {
    // a Ctrl-C at the terminal reached the command (and perf) too; the others were forwarded
    const session = await startSession('io', {
      ...(argv.length > 0 ? { target: { argv } } : {}),
      companions: [recorderC],
      ...(duration !== undefined ? { durationS: duration } : {}),
      interruptsToStop: 1,
    });
    if (typeof session === 'number') return session;
    if (argv.length === 0) process.stderr.write(`pylens io: recording block I/O on every device${duration !== undefined ? ` for ${duration} s` : ''}; Ctrl-C to stop\n`);
    const t0 = performance.now();
    const reason = await session.stopped();
    wallS = (performance.now() - t0) / 1000;
    stopReason =
      reason.kind === 'duration' ? `${reason.seconds} s`
      : reason.kind === 'signal' ? (reason.signal === 'SIGINT' ? 'Ctrl-C' : reason.signal)
      : reason.kind === 'exit' ? `${argv[0]} ended (${reason.how})`
      : reason.kind === 'companion' ? 'perf ended'
      : reason.why;
    target = session.target;
    await session.stopCompanions();
    ({ perfCpuNs, warnings: recWarnings } = await recorderC.stop());
    report = latency.report();
    exitCode = await session.finish();
  } finally {
    cleanup?.();
  }
  const perfInfo = perfCpuNs !== undefined ? { cpuMs: Math.round(perfCpuNs / 1e6), cpuPercentOfOneCpu: Math.round((1000 * perfCpuNs) / 1e9 / wallS) / 10 } : undefined;
  const warnings = [...report.warnings, ...recWarnings];
  if (report.completionsLost && backend === 'perf') {
    warnings.push(
      'perf drops tracepoint samples on some kernels and VMs, notably of device interrupts taken while a CPU is idle (compare `perf stat -e block:block_rq_issue,block:block_rq_complete -a`); `pylens io --tracefs` records the same tracepoints through ftrace, which keeps them',
    );
  }
  if (json) {
    const out = {
      durationS: Math.round(wallS * 1000) / 1000,
      stoppedBy: stopReason,
      backend,
      ...(target ? { command: { argv, pid: target.pid, exitCode } } : {}),
      perf: perfInfo ?? null,
      ...report,
      warnings,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(renderIoReport(report, { wallS, stopReason, perfInfo, warnings, ...(target ? { command: `${argv.join(' ')} (pid ${target.pid})` } : {}) }));
  }
  return exitCode;
}


// ---------------------------------------------------------------------------------------
// Text

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
