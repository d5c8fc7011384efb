/**
 * `pylens record`: sample a CPython process — a running one (`-p PID`) or one it launches
 * (`-- python app.py`) — and write the profile (format from the output's extension).
 *
 * - Attach mode: Ctrl-C or SIGTERM stops sampling and writes what was collected; the target
 *   keeps running.
 * - Launch mode: stdio passes through, signals are forwarded; the program waits at the start
 *   gate (capture/session/) until the sampler — and perf or bpftrace — are attached, so its
 *   first line is sampled; sampling ends when the target exits; pylens exits with the
 *   target's exit code. A second Ctrl-C stops sampling at once and writes the profile.
 * - On a terminal, a progress line on stderr: elapsed, samples, achieved rate, errors,
 *   threads (and processes with -s).
 * - `--native`: perf records the same process alongside (DWARF unwinding, CLOCK_MONOTONIC
 *   timestamps) and each sample gets the native and kernel frames of perf's sample of the
 *   same thread nearest in time, under its Python leaf (capture/perf/native.ts). Where
 *   tracepoints are allowed perf also records switch-outs: of runnable threads (samples of
 *   a thread kept off the CPU by a busy machine), and with --idle all of them (idle samples
 *   get the stack where their thread last left the CPU). perf is checked before anything
 *   starts (missing, not allowed: exit 1); if it fails later the Python-only profile is
 *   still written, with a warning.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Profile } from '../model/profile.ts';
import { sampleAttached, type RecordProgress, type SampleOptions } from '../capture/sampler/sampler.ts';
import { progressLine } from '../render/progress.ts';
import { syscallsError, syscalls } from '../capture/sampler/syscalls.ts';
import { samplerQuality } from '../render/page/quality.ts';
import { nativeWindowNs, NativeRecording, perfRecordArgs, planNative, spliceNative, type NativePlan } from '../capture/perf/native.ts';
import { PerfError } from '../capture/perf/tool.ts';
import { interpreterSymbolsExtra, interpreterSymbolsOf, strippedWarning } from '../capture/perf/symbols.ts';
import type { ProcessSampler } from '../capture/sampler/session.ts';
import { Companion } from '../capture/session/session.ts';
import { CPU_BUCKET_NS, startCpuSampling } from '../capture/ebpf/cpu.ts';
import { joinEbpfSamples } from '../capture/ebpf/join.ts';
import { KERNEL_OVERSAMPLE, sampleInKernel, startKernelWalkOn, type KernelWalk } from '../capture/ebpf/pywalk.ts';
import { hostEnvironment } from '../model/environment.ts';
import { outputById } from '../render/outputs.ts';
import { CliError } from './errors.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { checkSaveArgs, saveIfAsked, saveOptions } from './store.ts';
import { captureTarget, durationArg, startSession, targetArgs } from './target.ts';

export const recordSpec: CommandSpec = {
  name: 'record',
  summary: 'Sample a Python process (running, or launched after --) and write a profile (HTML flamegraph by default).',
  usage: 'pylens record [-p PID | -- python app.py ...] [-r HZ] [-d SECONDS] [-o OUT] [--native | --backend ebpf [--all]] [options]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running Python process to sample' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second (default 100)' },
    { name: 'frequency', short: 'F', type: 'number', value: 'HZ', help: 'same as --rate (perf’s spelling)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the target exits or Ctrl-C)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default <program>-<time>.html)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
    ...saveOptions,
    { name: 'idle', short: 'i', type: 'boolean', help: 'include idle (not running) threads, marked as idle' },
    { name: 'async', type: 'boolean', help: 'asyncio: also a sample per waiting task each tick, its await chain under a "task NAME" root (CPython 3.8–3.14; implies --idle)' },
    { name: 'gil', short: 'g', type: 'boolean', help: 'only samples of the thread holding the GIL' },
    { name: 'threads', short: 't', type: 'boolean', help: 'a root frame per thread (thread id and name)' },
    {
      name: 'native',
      short: 'n',
      type: 'boolean',
      help: 'C and kernel frames under the Python ones, from perf running alongside (any CPython 3.8+; needs perf; with --idle, where idle threads left the CPU)',
    },
    { name: 'subprocesses', short: 's', type: 'boolean', help: 'also sample child processes that run Python, each under its own process root' },
    { name: 'function', type: 'boolean', help: 'aggregate by function (its first line) instead of the line being run' },
    { name: 'nolineno', type: 'boolean', help: 'no line numbers at all' },
    { name: 'full-filenames', type: 'boolean', help: 'keep full paths (default: shorten site-packages, stdlib and cwd paths)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no progress line' },
    {
      name: 'blocking',
      type: 'boolean',
      help: 'stop each running thread (ptrace) while its stack is read: exact stacks, at a cost to the target that the summary prints (default: lock-free reads, validated; a thread is stopped only after torn reads, within 1 % of wall time)',
    },
    {
      name: 'backend',
      type: 'string',
      value: 'NAME',
      choices: ['sampler', 'ebpf', 'kernel'],
      help: "sampler (default): pylens reads the target's memory; kernel: the kernel walks the Python stack of the thread its timer interrupts (bpftrace; CPU samples only, CPython 3.8–3.13 on x86-64, a fraction of the sampler's cost); ebpf: the kernel samples CPU (bpftrace profile:hz, user and kernel stacks) and the sampler lends the Python frames",
    },
    { name: 'all', short: 'a', type: 'boolean', help: 'with --backend ebpf: every process on the machine (noisy neighbours); the target, if any, gets Python frames' },
  ],
  examples: [
    'pylens record -- python app.py --port 8080',
    'pylens record -p 4242 -d 30',
    'pylens record -p 4242 -r 250 -o app.pylens',
    'pylens record --native -d 10 -p 4242',
    'pylens record --backend ebpf --all -d 10 -p 4242   # the whole machine; 4242 with Python frames',
    'pylens record --backend kernel -r 1000 -p 4242     # CPU samples walked in the kernel, at little cost',
    'pylens record -s -t --idle -o wall.speedscope.json -- python -m pytest',
  ],
};

export function programName(pid: number, argv?: string[]): string {
  // for `python app.py` the script is the interesting name
  const script = argv?.slice(1).find((a) => /\.py$/.test(a));
  if (script) return basename(script, '.py').replace(/[^\w.-]+/g, '_');
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().replace(/[^\w.-]+/g, '_') || 'python';
  } catch {
    return 'python';
  }
}

export function defaultOutput(name: string, fmt: string | undefined): string {
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  return `${name}-${stamp}.${fmt ? (outputById(fmt)?.extension ?? '.html').replace(/^\./, '') : 'html'}`;
}

/** why threads cannot be stopped (ptrace through koffi) on this machine, or undefined */
function pauseUnavailable(): string | undefined {
  return syscalls() ? undefined : (syscallsError() ?? 'unknown');
}

export async function runRecord(args: Parsed): Promise<number> {
  const o = args.options;
  const rate = (o.rate as number | undefined) ?? (o.frequency as number | undefined) ?? 100;
  const ebpf = o.backend === 'ebpf';
  const kernel = o.backend === 'kernel';
  if (kernel) {
    // what the kernel walk cannot do: it sees a thread only while it runs, in one process
    const alone = (['idle', 'async', 'gil', 'blocking', 'native', 'all', 'subprocesses'] as const).filter((k) => o[k]);
    if (alone.length) throw new UsageError('record', `--backend kernel samples running threads of one process in the kernel: it cannot be combined with ${alone.map((k) => `--${k}`).join(', ')} (use the default backend)`);
  }
  if (o.all && !ebpf) throw new UsageError('record', '--all samples every process in the kernel: it needs --backend ebpf');
  if (ebpf && o.native) throw new UsageError('record', '--native and --backend ebpf are alternatives (both add native and kernel frames); pick one');
  if (ebpf && o.subprocesses) throw new UsageError('record', '--backend ebpf follows one process (or --all): it cannot be combined with -s yet');
  if (ebpf && o.all && o.pid === undefined && args.rest.length === 0) return recordMachine(args, rate);
  const { pid: pidOpt, argv = [] } = targetArgs('record', args);
  if (!(rate > 0 && rate <= 100_000)) throw new UsageError('record', `--rate must be between 0 and 100000 Hz, got ${rate}`);
  const duration = durationArg('record', args);
  if (o.function && o.nolineno) throw new UsageError('record', '--function and --nolineno are alternatives; pick one');
  const fmt = o.format as string | undefined;
  const outOpt = o.output as string | undefined;
  if (outOpt !== undefined || fmt !== undefined) pickExporter('record', outOpt ?? defaultOutput('x', fmt), fmt); // fail fast on a bad format
  checkSaveArgs('record', args);

  if (o.blocking && ebpf) throw new UsageError('record', '--blocking stops threads for the sampler; with --backend ebpf the kernel samples: pick one');
  if (o.blocking) {
    const why = pauseUnavailable();
    if (why) throw new CliError(`--blocking cannot stop threads here: ${why}`, 'run without --blocking (lock-free reads, validated and re-read), or install pylens where its koffi dependency loads (Linux x86-64/arm64)');
  }
  const native = Boolean(o.native);
  if (native && o.subprocesses) throw new UsageError('record', '--native follows one process: it cannot be combined with -s yet');
  // perf missing or not allowed: fail before anything is launched or attached
  const plan = native ? planNative(rate, { idle: Boolean(o.idle) }) : undefined;

  const quiet = Boolean(o.quiet) || !process.stderr.isTTY;
  const subprocesses = Boolean(o.subprocesses);
  let lastDraw = 0;
  const opts: SampleOptions = {
    rateHz: rate,
    // with --backend ebpf the kernel decides what was on a CPU; the sampler keeps every
    // thread's stack at every tick, so a kernel sample of a thread that waited in the run
    // queue at the sampler's tick still finds the stack it resumed with
    idle: Boolean(o.idle) || Boolean(o.async) || ebpf,
    ...(o.async ? { async: true } : {}),
    gilOnly: Boolean(o.gil),
    threadRoots: Boolean(o.threads),
    subprocesses,
    lines: o.function ? 'function' : o.nolineno ? 'none' : 'line',
    filenames: o['full-filenames'] ? 'full' : 'short',
    ...(o.blocking ? { blocking: true } : {}),
    ...(quiet
      ? {}
      : {
          onProgress: (p: RecordProgress) => {
            const now = performance.now();
            if (now - lastDraw < 250) return;
            lastDraw = now;
            const perfMb = nat ? `, perf ${(nat.dataBytes() / 1e6).toFixed(1)} MB` : '';
            process.stderr.write(`\r\x1b[K${progressLine(p, subprocesses)}${perfMb}`);
          },
        }),
  };

  let nat: NativeRecording | undefined;
  const perfC = plan
    ? new Companion('perf', async ({ pid }) => {
        nat = await startNative(plan, pid!);
        const n = nat;
        return { ended: n.exited, stop: () => n.stop() };
      }, { endsRecording: false })
    : undefined;
  const cpuC = ebpf
    ? new Companion('bpftrace', async ({ pid }) => {
        const cpu = await startCpuSampling({ pid: pid!, all: Boolean(o.all), hz: rate });
        process.stderr.write(`pylens record: the kernel samples ${o.all ? 'every process' : `PID ${pid}`} at ${rate} Hz (bpftrace profile:hz, user and kernel stacks); the sampler lends the Python frames\n`);
        return cpu;
      }, { endsRecording: false })
    : undefined;
  let walk: KernelWalk | undefined;
  const walkC = kernel
    ? new Companion('bpftrace', async ({ sampler }) => {
        const s = sampler!;
        walk = await startKernelWalkOn(s, rate);
        const w = walk;
        process.stderr.write(`pylens record: the kernel walks PID ${s.pid}'s Python stacks at ${rate} Hz (bpftrace profile:hz, ${KERNEL_OVERSAMPLE}× thinned at random)\n`);
        return { ended: w.ended, stop: () => w.stop(), kill: () => w.tracer.child.kill('SIGKILL') };
      }, { endsRecording: false })
    : undefined;
  // with -s the program itself need not be Python: its Python descendants are found as they start
  const session = await startSession('record', {
    target: captureTarget(pidOpt !== undefined ? { pid: pidOpt } : { argv }),
    sampler: pidOpt !== undefined || !subprocesses,
    companions: [perfC, cpuC, walkC].filter((c) => c !== undefined),
    ...(duration !== undefined ? { durationS: duration } : {}),
    ...(subprocesses ? { gate: 'none' as const, stopOnExit: false, samplesDescendants: true } : {}),
    // the kernel walk's bpftrace ends with the target (and each wake-up of pylens costs ~0.2 ms here)
    ...(kernel ? { exitPollMs: 10_000 } : {}),
  });
  if (typeof session === 'number') return session;
  /** an attached process, or with -s a launched one that may not be Python (a shell, make, …) */
  const root: ProcessSampler | number = session.sampler ?? session.pid!;
  const rootPid = typeof root === 'number' ? root : root.pid;
  const name = programName(rootPid, (typeof root === 'number' ? undefined : root.command) ?? argv);
  let profile: Profile;
  try {
    profile = walk ? await sampleInKernel(session.sampler!, walk, { ...opts, signal: session.signal, launched: pidOpt === undefined }) : await sampleAttached(root, { ...opts, signal: session.signal, clock: session.clock });
  } catch (e) {
    await session.abandon();
    throw e;
  } finally {
    if (!quiet) process.stderr.write('\r\x1b[K');
  }
  await session.stopCompanions();
  const origin = session.clock.originNs();
  if (nat) profile = await finishNative(nat, plan!, profile, origin, rate);
  if (cpuC?.started) profile = await finishEbpf(await cpuC.stop(), profile, origin, rate);
  profile.meta.name = profile.meta.name ?? name;
  // a python -I/-E/-S program held with ptrace until the sampler attached (capture/session/ptrace-hold.ts)
  if (session.held) profile.meta.extra = { ...profile.meta.extra, launchHeldBy: session.held.how, launchHeldMs: Math.round(session.held.heldMs * 10) / 10, launchHeldStops: session.held.stops };
  const out = outOpt ?? defaultOutput(name, fmt);
  const exporter = pickExporter('record', out, fmt);
  const abs = writeOutput(out, exporter.write(profile, { title: `${name} (pid ${rootPid})` }));
  saveIfAsked('record', args, profile);
  const m = profile.meta;
  const achieved = m.extra?.achievedRateHz;
  const procs = m.extra?.processes;
  process.stderr.write(
    `pylens record: ${m.sampleCount} samples, ${m.errorCount} error${m.errorCount === 1 ? '' : 's'}` +
      (typeof achieved === 'number' ? `, ${achieved.toFixed(1)} Hz achieved` : '') +
      (typeof procs === 'number' ? `, ${procs} process${procs === 1 ? '' : 'es'}` : '') +
      (m.overhead?.fraction !== undefined ? `, sampler CPU ${(100 * m.overhead.fraction).toFixed(1)} % of wall time` : '') +
      '\n',
  );
  const quality = samplerQuality(m);
  if (quality) process.stderr.write(`pylens record: quality: ${quality}\n`);
  if (procs === 0) process.stderr.write(`pylens record: no Python process ran under ${argv[0] ?? `PID ${rootPid}`}; the profile is empty\n`);
  process.stdout.write(`${abs}\n`);
  return session.finish();
}

/**
 * `record --native` on a running process for `secs` seconds, CPU samples only: the sampler's
 * stacks with perf's native and kernel frames under them (diagnose's second recording).
 * Undefined when the process ended first.
 */
export async function captureNative(command: string, pid: number, rate: number, secs: number): Promise<Profile | undefined> {
  const plan = planNative(rate, { idle: false });
  let nat: NativeRecording | undefined;
  const perfC = new Companion('perf', async ({ pid: p }) => {
    nat = await startNative(plan, p!);
    const n = nat;
    return { ended: n.exited, stop: () => n.stop() };
  }, { endsRecording: false });
  const session = await startSession(command, { target: { pid }, sampler: true, companions: [perfC], durationS: secs });
  if (typeof session === 'number') return undefined;
  let profile: Profile;
  try {
    profile = await sampleAttached(session.sampler!, { rateHz: rate, signal: session.signal, clock: session.clock });
  } catch (e) {
    await session.abandon();
    throw e;
  }
  await session.stopCompanions();
  if (nat) profile = await finishNative(nat, plan, profile, session.clock.originNs(), rate);
  await session.finish();
  return profile;
}

/** What on-CPU means in a `--backend ebpf` profile (its meta's `cpuRule`). */
export const EBPF_CPU_RULE =
  "on-CPU = the kernel's sample (bpftrace profile:hz fires on each CPU and records the thread running there); the sampler reads every thread's stack at every tick, and the stack of the same thread nearest in time lends its Python frames";

function withoutKeys<T extends object>(o: T, keys: readonly string[]): T {
  const r = { ...o } as Record<string, unknown>;
  for (const k of keys) delete r[k];
  return r as T;
}

type CpuSampling = Awaited<ReturnType<typeof startCpuSampling>>;

/** The kernel's samples joined with the sampler's Python stacks (capture/ebpf/join.ts). */
async function finishEbpf(cpu: Awaited<ReturnType<CpuSampling['stop']>>, py: Profile, originNs: number | undefined, rate: number): Promise<Profile> {
  const { samples, warnings } = cpu;
  for (const w of warnings) process.stderr.write(`pylens record: warning: ${w}\n`);
  const { profile, stats } = joinEbpfSamples(samples, originNs !== undefined ? py : undefined, {
    samplerOriginNs: originNs ?? Number.NaN,
    // the sampler's period, plus half a kernel aggregation bucket (a record's time is its bucket's middle)
    windowNs: 1e9 / rate + CPU_BUCKET_NS / 2,
    // a sampler pushed off its CPU misses ticks: across up to 5 periods, a thread found in
    // the same functions on both sides lends the nearer stack
    bridgeNs: 5e9 / rate,
  });
  const m = py.meta;
  profile.meta = {
    ...m,
    lens: 'ebpf',
    backend: 'bpftrace+pylens-sampler',
    mode: 'cpu',
    rateHz: rate,
    sampleCount: profile.meta.sampleCount,
    errorCount: m.errorCount,
    ...(m.overhead ? { overhead: { ...m.overhead, method: `${m.overhead.method} (the sampler's; bpftrace's in-kernel sampling is not in it)` } } : {}),
    extra: {
      ...withoutKeys(m.extra ?? {}, ['runnableWaiting', 'clockJudged', 'schedJudged', 'ranThenBlocked', 'asleepNotWalked', 'unrunReused', 'movedInPicture', 'steadyTicks', 'unsteadyStacks']),
      cpuRule: EBPF_CPU_RULE,
      samplerSamples: m.sampleCount,
      ebpfMatched: stats.matched,
      ebpfBridged: stats.bridged,
      ebpfUnmatched: stats.unmatched,
      ebpfOtherProcesses: stats.foreign,
    },
  };
  const total = stats.matched + stats.unmatched;
  process.stderr.write(`pylens record: ${profile.meta.sampleCount} kernel samples; ${stats.matched} of ${total} of the target's with Python frames${stats.bridged ? ` (${stats.bridged} across a gap in the sampler's ticks, between two samples in the same functions)` : ''}${stats.foreign ? `, ${stats.foreign} of other processes` : ''}\n`);
  return profile;
}

/** `record --backend ebpf --all` without a target: the whole machine, native and kernel frames, until -d or Ctrl-C. */
async function recordMachine(args: Parsed, rate: number): Promise<number> {
  const o = args.options;
  const duration = durationArg('record', args);
  const fmt = o.format as string | undefined;
  const outOpt = o.output as string | undefined;
  const out = outOpt ?? defaultOutput('machine', fmt);
  const exporter = pickExporter('record', out, fmt);
  checkSaveArgs('record', args);
  const t0 = Date.now();
  const cpuC = new Companion('bpftrace', () => startCpuSampling({ all: true, hz: rate }));
  const session = await startSession('record', { companions: [cpuC], ...(duration !== undefined ? { durationS: duration } : {}) });
  if (typeof session === 'number') return session;
  process.stderr.write(`pylens record: the kernel samples every process at ${rate} Hz${duration ? ` for ${duration} s` : ' until Ctrl-C'}\n`);
  await session.stopped();
  await session.finish();
  const { samples, warnings } = await cpuC.stop();
  for (const w of warnings) process.stderr.write(`pylens record: warning: ${w}\n`);
  const { profile } = joinEbpfSamples(samples, undefined, { samplerOriginNs: Number.NaN, windowNs: 0 });
  profile.meta = { ...profile.meta, name: 'machine', lens: 'ebpf', backend: 'bpftrace', mode: 'cpu', rateHz: rate, durationNs: (Date.now() - t0) * 1e6, startTime: new Date(t0).toISOString(), environment: hostEnvironment() };
  const abs = writeOutput(out, exporter.write(profile, { title: 'every process (eBPF)' }));
  saveIfAsked('record', args, profile);
  process.stderr.write(`pylens record: ${profile.meta.sampleCount} kernel samples of ${new Set(profile.threads.pid).size} processes\n`);
  process.stdout.write(`${abs}\n`);
  return 0;
}

/** Start perf next to the sampler and say so (the line tells scripts that recording is on). */
async function startNative(plan: NativePlan, pid: number): Promise<NativeRecording> {
  for (const w of plan.warnings) process.stderr.write(`pylens record: warning: ${w}\n`);
  // a stripped interpreter: its own C functions will be [unknown]; say so once, with the fix
  const interpreter = interpreterSymbolsOf(pid);
  if (interpreter?.verdict === 'stripped') process.stderr.write(`pylens record: warning: ${strippedWarning(interpreter)}\n`);
  let nat: NativeRecording;
  try {
    nat = await NativeRecording.start(plan, pid);
  } catch (e) {
    // a kernel whose tracepoint filter or sched_switch differs: CPU samples still work
    if (!(e instanceof PerfError) || plan.switches === 'none') throw e;
    process.stderr.write(`pylens record: warning: perf could not record switch-outs (${e.message}); CPU samples only\n`);
    plan.switches = 'none';
    nat = await NativeRecording.start(plan, pid);
  }
  nat.interpreter = interpreter;
  process.stderr.write(
    `pylens record: perf records native stacks of PID ${pid} alongside (${plan.event}, ${plan.rateHz} Hz${plan.switches === 'all' ? ', all switch-outs for idle samples' : plan.switches === 'preempted' ? ', switch-outs of runnable threads' : ''}, DWARF unwinding, ${plan.kernel ? 'with' : 'without'} kernel frames)\n`,
  );
  return nat;
}

/**
 * Stop perf, read its samples and splice them into `profile`. Any failure here leaves the
 * Python-only profile, with a warning: the recording is never lost to perf.
 */
async function finishNative(nat: NativeRecording, plan: NativePlan, profile: Profile, originNs: number | undefined, rate: number): Promise<Profile> {
  const warn = (what: string) => process.stderr.write(`pylens record: warning: ${what}; the profile has Python frames only\n`);
  try {
    const end = await nat.stop();
    const cpu = nat.cpu();
    if (end.code !== 0 && end.code !== 130) {
      const last = end.stderr.trim().split('\n').filter((l) => l.trim() && !/^\[ perf record:|Events (en|dis)abled/.test(l)).slice(-1)[0] ?? '';
      process.stderr.write(`pylens record: warning: perf record ended with exit ${end.code}${last ? ` (${last.trim()})` : ''}; using what it wrote\n`);
    }
    const lost = end.stderr.split('\n').find((l) => /\blost\b/i.test(l));
    if (lost) process.stderr.write(`pylens record: warning: perf: ${lost.trim()} (a lower --rate helps)\n`);
    if (originNs === undefined) {
      warn('sampling never started');
      return profile;
    }
    if (nat.dataBytes() > 50e6) process.stderr.write(`pylens record: running perf script on ${(nat.dataBytes() / 1e6).toFixed(0)} MB of perf data…\n`);
    let perf;
    try {
      perf = await nat.script();
    } catch (e) {
      warn(e instanceof PerfError ? `${e.message} (${e.fix})` : `perf script failed: ${(e as Error).message}`);
      return profile;
    }
    const windowNs = nativeWindowNs(rate);
    const perfOffsetNs = perf.originNs - originNs;
    const { profile: out, stats } = spliceNative(profile, perf.profile, { perfOffsetNs, windowNs });
    const m = out.meta;
    m.backend = 'pylens-sampler+perf';
    const perfOverhead = cpu && cpu.targetNs > 0 ? cpu.perfNs / cpu.targetNs : undefined;
    if (m.overhead) {
      m.overhead = {
        ...m.overhead,
        method: `${m.overhead.method}; perf: its CPU time / the target's CPU time while recording, in extra.perfOverhead`,
      };
    }
    m.extra = {
      ...(m.extra ?? {}),
      native: 'perf',
      perfCommand: ['perf', ...perfRecordArgs(plan, nat.pid)].join(' '),
      perfEvent: plan.event,
      perfRateHz: plan.rateHz,
      perfUnwinding: 'dwarf',
      perfKernelFrames: plan.kernel ? 'yes' : 'no',
      perfSamples: perf.profile.samples.length,
      nativeWindowNs: Math.round(windowNs),
      nativeMatched: stats.matched,
      nativeUnmatched: stats.unmatched,
      nativeIdle: stats.idle,
      nativeIdleMatched: stats.idleMatched,
      nativeNoEvalFrame: stats.noEvalFrame,
      nativeMedianOffsetNs: Math.round(stats.medianOffsetNs),
      perfSwitchOuts: plan.switches,
      nativeMatchedSwitch: stats.matchedSwitch,
      nativeIdleSamples: plan.switches === 'all'
        ? 'the stack at the thread\u2019s last switch-out (sched:sched_switch)'
        : 'Python frames only (perf\u2019s CPU clock has no sample for a thread off the CPU)',
      ...(cpu ? { perfCpuNs: Math.round(cpu.perfNs), targetCpuNs: Math.round(cpu.targetNs) } : {}),
      ...(perfOverhead !== undefined ? { perfOverhead: Math.round(perfOverhead * 1e4) / 1e4 } : {}),
    };
    if (nat.interpreter) Object.assign(m.extra, interpreterSymbolsExtra(nat.interpreter, out));
    const running = stats.matched + stats.unmatched;
    process.stderr.write(
      `pylens record: native frames: ${stats.matched.toLocaleString('en-US')} of ${running.toLocaleString('en-US')} running samples matched a perf sample` +
        (running > 0 ? ` (${((100 * stats.matched) / running).toFixed(1)} %${stats.matchedSwitch ? `; ${stats.matchedSwitch.toLocaleString('en-US')} of them kept off the CPU, from the switch-out` : ''})` : '') +
        `, ${stats.unmatched.toLocaleString('en-US')} unmatched (Python frames only)` +
        (stats.idle
          ? plan.switches === 'all'
            ? `, ${stats.idleMatched.toLocaleString('en-US')} of ${stats.idle.toLocaleString('en-US')} idle samples got the stack of their thread\u2019s last switch-out`
            : `, ${stats.idle.toLocaleString('en-US')} idle (Python frames only)`
          : '') +
        (perfOverhead !== undefined ? `; perf CPU ${(100 * perfOverhead).toFixed(1)} % of the target's` : '') +
        '\n',
    );
    if (perf.profile.samples.length === 0) process.stderr.write('pylens record: warning: perf recorded no samples (was the target on the CPU?)\n');
    return out;
  } catch (e) {
    warn(`perf failed: ${(e as Error).message}`);
    return profile;
  } finally {
    nat.dispose();
  }
}

