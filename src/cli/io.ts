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
import { BlockLatency, type IoReport } from '../analysis/io.ts';
import { recordBlockIo, recordBlockIoTracefs, scriptBlockIo, sysDeviceName, sysHardwareQueues } from '../capture/perf/io.ts';
import { renderIoReport } from '../render/io.ts';
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
  const latency = new BlockLatency({ ...(pid !== undefined ? { pid } : {}), top, flushSlots: sysHardwareQueues });
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
    report = latency.report(sysDeviceName);
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
