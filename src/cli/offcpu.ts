/**
 * `pylens offcpu`: where a Python program waits, for how long, and on what.
 *
 * The eBPF capture (capture/ebpf/offcpu.ts) measures each thread's off-CPU time at
 * `sched_switch`, with the kernel stack it left the CPU with; the pylens sampler runs
 * alongside in wall-clock mode (idle threads sampled too) and gives each thread's Python
 * stack over time. analysis/offcpu.ts joins the two: root → Python frames → `[wait: CLASS]`
 * → kernel frames, weighted in nanoseconds, and the report by function and thread.
 *
 * Order (the capture session, capture/session/). A launched program waits at the start gate
 * while the sampler attaches and the probes are attached (startOffCpu resolves then); then
 * it runs from its first line and sampling starts; it ends on -d, Ctrl-C / SIGTERM, the
 * target's exit, or the capture ending on its own. The probes are always detached and what
 * was gathered is written.
 *
 * Clocks. The capture's times are CLOCK_MONOTONIC ns; the sampler's are `performance.now()`
 * (the same clock) relative to its first deadline, turned absolute by the session's clock
 * (`originNs`) as `record --native` does.
 */
import { existsSync } from 'node:fs';
import { CliError } from './errors.ts';
import { sampleAttached, realClock, type SampleOptions } from '../capture/sampler/sampler.ts';
import type { ProcessSampler } from '../capture/sampler/session.ts';
import { monotonicOffsetNs } from '../capture/session/clock.ts';
import { Companion } from '../capture/session/session.ts';
import { startOffCpu, type OffCpuRecording, type OffCpuResult } from '../capture/ebpf/offcpu.ts';
import { buildOffCpu, formatOffCpuReport, WAIT_CLASSES } from '../analysis/offcpu.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { checkSaveArgs, saveIfAsked, saveOptions } from './store.ts';
import { defaultOutput, programName } from './record.ts';
import { captureTarget, durationArg, startSession, targetArgs } from './target.ts';

const BACKENDS = ['auto', 'bpftrace', 'bcc', 'perf-sched'] as const;

export const offcpuSpec: CommandSpec = {
  name: 'offcpu',
  summary: 'Where a Python program waits: off-CPU time by Python stack and wait reason (lock, network, disk, sleep, GIL…), via eBPF.',
  usage: 'pylens offcpu [-p PID | -- python app.py ...] [-d SECONDS] [--min-block-us N] [-o OUT] [--with-cpu] [--json]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running Python process to watch' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the target exits or Ctrl-C)' },
    { name: 'min-block-us', type: 'number', value: 'N', help: 'ignore waits shorter than N microseconds (default: the capture’s, 1)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default <program>-offcpu-<time>.html)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
    ...saveOptions,
    { name: 'with-cpu', type: 'boolean', help: 'one graph of on-CPU samples and off-CPU waits of the same run (states on-cpu / off-cpu)' },
    { name: 'json', type: 'boolean', help: 'the report as JSON on stdout' },
    { name: 'backend', type: 'string', value: 'NAME', choices: BACKENDS, help: 'capture: bpftrace, bcc offcputime or perf sched (default auto: the first that works)' },
    { name: 'gil', type: 'boolean', help: 'tell GIL waits apart (default on; --no-gil: GIL waits show as lock waits)' },
    { name: 'gil-method', type: 'string', value: 'HOW', choices: ['futex', 'uprobe'], help: 'futex: a switch-out in futex(2) on the GIL struct is a GIL wait, no probe (default on x86-64); uprobe: take_gil probes, about 3 µs per GIL hand-over' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'Python stack samples per second (default 100)' },
    { name: 'top', type: 'number', value: 'N', help: 'functions and threads in the text report (default 15)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no report on stdout (the output file and its path only)' },
  ],
  examples: [
    'pylens offcpu -p 4242 -d 10',
    'pylens offcpu -- python app.py',
    'pylens offcpu --with-cpu -o app.html -p 4242 -d 30',
    'pylens offcpu --json --min-block-us 100 -p 4242 -d 5 > waits.json',
    'pylens offcpu -o waits.speedscope.json -- python -m pytest tests/test_io.py',
  ],
};

/** The GIL struct the attached sampler sees; undefined (let the capture look) when unreadable. */
function gilRangeOf(sampler: ProcessSampler): { address: number; size: number } | null | undefined {
  try {
    return sampler.gilRange();
  } catch {
    return undefined;
  }
}

export interface OffCpuCapture {
  target: { pid: number } | { argv: string[] };
  rate: number;
  withCpu: boolean;
  backend: (typeof BACKENDS)[number];
  gil?: boolean;
  gilMethod?: 'futex' | 'uprobe';
  minBlockUs?: number;
  durationS?: number;
  /** more tools beside the program (diagnose --mem's RSS poller) */
  companions?: Companion<unknown>[];
}

/**
 * Record off-CPU time with Python stacks (and on-CPU samples with `withCpu`) of a launched
 * or running program: the capture of `offcpu`, also used by `diagnose`. Notes go to stderr
 * as `pylens COMMAND: …`; a number is an exit code (the session ended before recording).
 */
export async function captureOffCpu(command: string, c: OffCpuCapture) {
  const { rate, withCpu, backend, minBlockUs } = c;
  const duration = c.durationS;
  // the capture ending by itself (its tool died, the target's exit seen first) ends sampling
  let samplingDone = false;
  let captureEndedEarly = false;
  let tracedPid = 0;
  const capture = new Companion('off-CPU capture', async ({ pid, sampler }) => {
    tracedPid = pid!;
    const rec = await startOffCpu({ pid: pid!, backend, gil: c.gil ?? true, gilRange: gilRangeOf(sampler!), ...(c.gilMethod ? { gilMethod: c.gilMethod } : {}), ...(minBlockUs !== undefined ? { minBlockUs } : {}) });
    const onEnd = () => {
      if (!samplingDone && existsSync(`/proc/${tracedPid}`)) captureEndedEarly = true;
    };
    void rec.ended.then(onEnd, onEnd);
    process.stderr.write(`pylens ${command}: recording off-CPU time of PID ${pid} with ${rec.backend}, Python stacks at ${rate} Hz${duration ? ` for ${duration} s` : ''}; Ctrl-C to stop\n`);
    return { ended: rec.ended, stop: async () => ({ rec, result: await rec.stop() }) };
  });
  const session = await startSession(command, {
    target: captureTarget(c.target),
    sampler: true,
    companions: [capture, ...(c.companions ?? [])],
    ...(duration !== undefined ? { durationS: duration } : {}),
  });
  if (typeof session === 'number') return session;
  const launched = session.target !== undefined;
  const sampler = session.sampler!;
  const pid = sampler.pid;
  const name = programName(pid, sampler.command ?? ('argv' in c.target ? c.target.argv : []));

  const opts: SampleOptions = { rateHz: rate, idle: true, signal: session.signal, clock: session.clock };
  let py;
  try {
    py = await sampleAttached(sampler, opts);
  } catch (e) {
    await session.abandon();
    throw e;
  } finally {
    samplingDone = true;
  }
  // probes off whatever happened to sampling
  await session.stopCompanions();
  const { rec, result } = (await capture.stop()) as { rec: OffCpuRecording; result: OffCpuResult };
  const originNs = session.clock.originNs() ?? realClock.nowNs() + monotonicOffsetNs();
  if (!launched && py.samples.length === 0 && result.intervals.length === 0 && !existsSync(`/proc/${pid}`)) {
    // the target was gone before the first sample: an empty profile would read as "no waits"
    throw new CliError(`process ${pid} ended before anything was recorded (no Python sample, no off-CPU interval)`, `attach to a process that keeps running, or start the program under pylens: \`pylens ${command} -- python app.py\``);
  }
  for (const w of result.warnings) {
    // the backend choice is news, not a warning; the target's exit ending the tracer is expected
    if (/^off-CPU backend: \S+$/.test(w) || (launched && /ended before stop\(\)/.test(w))) continue;
    process.stderr.write(`pylens ${command}: ${/^off-CPU backend:/.test(w) ? 'note' : 'warning'}: ${w}\n`);
  }
  if (captureEndedEarly) process.stderr.write(`pylens ${command}: warning: ${rec.backend} ended while the target was still running; the profile covers the time until then\n`);
  if (result.lostEvents > 0) process.stderr.write(`pylens ${command}: warning: ${result.lostEvents.toLocaleString('en-US')} events lost (a larger --min-block-us helps)\n`);
  if (!result.gilProbe && c.gil !== false && !result.warnings.some((w) => /GIL/.test(w))) process.stderr.write(`pylens ${command}: note: no GIL probe; GIL waits show as lock waits\n`);

  // an on-CPU sample stands for the time between ticks actually achieved (a loaded machine delays ticks)
  const ticks = Number(py.meta.extra?.ticks ?? 0);
  const periodNs = ticks > 0 && py.meta.durationNs ? py.meta.durationNs / ticks : 1e9 / rate;
  const { profile, report } = buildOffCpu(py, result.intervals, {
    originNs,
    // a wait between two samples of its thread: its nearest sample, up to five periods away
    boundNs: Math.max(50e6, 5 * periodNs),
    ...(withCpu ? { withCpu: { periodNs } } : {}),
    meta: {
      name,
      backend: `${result.backend}+pylens-sampler`,
    },
  });
  profile.meta.extra = {
    ...(profile.meta.extra ?? {}),
    offCpuBackend: result.backend,
    lostEvents: result.lostEvents,
    gilProbe: result.gilProbe ? (result.gilMethod ?? 'yes') : 'no',
    ...(minBlockUs !== undefined ? { minBlockUs } : {}),
    waitClasses: WAIT_CLASSES.join(', '),
  };
  return { session, profile, report, result, rec, py, pid, name };
}

export async function runOffcpu(args: Parsed): Promise<number> {
  const o = args.options;
  const { pid: pidOpt, argv = [] } = targetArgs('offcpu', args);
  const duration = durationArg('offcpu', args);
  const rate = (o.rate as number | undefined) ?? 100;
  if (!(rate > 0 && rate <= 10_000)) throw new UsageError('offcpu', `--rate must be between 0 and 10000 Hz, got ${rate}`);
  const minBlockUs = o['min-block-us'] as number | undefined;
  if (minBlockUs !== undefined && !(minBlockUs >= 0)) throw new UsageError('offcpu', `--min-block-us must be 0 or more, got ${minBlockUs}`);
  const top = (o.top as number | undefined) ?? 15;
  if (!(Number.isInteger(top) && top > 0)) throw new UsageError('offcpu', `--top must be a whole number > 0, got ${top}`);
  const fmt = o.format as string | undefined;
  const outOpt = o.output as string | undefined;
  if (outOpt !== undefined || fmt !== undefined) pickExporter('offcpu', outOpt ?? defaultOutput('x', fmt), fmt);
  checkSaveArgs('offcpu', args);
  const withCpu = Boolean(o['with-cpu']);
  const backend = (o.backend as (typeof BACKENDS)[number] | undefined) ?? 'auto';

  const cap = await captureOffCpu('offcpu', { target: pidOpt !== undefined ? { pid: pidOpt } : { argv }, rate, withCpu, backend, gil: o.gil !== false, ...(o['gil-method'] ? { gilMethod: o['gil-method'] as 'futex' | 'uprobe' } : {}), ...(minBlockUs !== undefined ? { minBlockUs } : {}), ...(duration !== undefined ? { durationS: duration } : {}) });
  if (typeof cap === 'number') return cap;
  const { session, profile, report, result, py, pid, name } = cap;
  const out = outOpt ?? defaultOutput(`${name}-offcpu`, fmt);
  const exporter = pickExporter('offcpu', out, fmt);
  const abs = writeOutput(out, exporter.write(profile, { title: `${name} (pid ${pid}): ${withCpu ? 'on-CPU and off-CPU time' : 'off-CPU time'}` }));
  saveIfAsked('offcpu', args, profile);
  if (o.json) {
    process.stdout.write(JSON.stringify({ output: abs, pid, backend: result.backend, lostEvents: result.lostEvents, gilProbe: result.gilProbe, gilMethod: result.gilMethod ?? null, warnings: result.warnings, ...report }, null, 2) + '\n');
  } else if (!o.quiet) {
    process.stdout.write(formatOffCpuReport(report, { top }));
  }
  process.stderr.write(`pylens offcpu: ${result.intervals.length.toLocaleString('en-US')} off-CPU records (${result.backend}), ${py.meta.sampleCount.toLocaleString('en-US')} Python samples; wrote ${abs}\n`);
  return session.finish();
}

