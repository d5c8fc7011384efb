/**
 * `pylens perf`: Linux perf with Python frame names, driven the right way for the target's
 * CPython, brought into the pylens model (python / native / kernel frame kinds) with
 * CPython's own frames folded away by default.
 *
 * Launch mode holds the program before exec (the capture session's exec gate) until
 * `perf record -p` records it, so perf sees it from its first instruction, and turns on
 * CPython's perf support through the environment (the same switches
 * as -X perf / -X perf_jit, but they also reach `pytest`-style launchers and child
 * processes), picks frame-pointer or dwarf unwinding from the build's CFLAGS and says what
 * it chose. Attach mode works with what the process was started with and says what is
 * missing. perf's CPU time is measured against the target's and kept in the profile.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { hideInterpreter } from '../analysis/interpreter.ts';
import { perfDataToProfile, removeDir, removePerfFiles, startPerfRecording, type PerfRecordResult } from '../capture/perf/perf-record.ts';
import { Companion } from '../capture/session/session.ts';
import { commandPath, planAttach, planLaunch, probePython, pythonOfCommand, runningPython, type PerfPlan, type PythonBuild } from '../capture/perf/python.ts';
import { checkPerfAccess, cpuEvent, findPerf, readPerfAccess } from '../capture/perf/tool.ts';
import { interpreterSymbolsExtra, interpreterSymbolsOf, strippedWarning, type InterpreterSymbols } from '../capture/perf/symbols.ts';
import { hostEnvironment } from '../model/environment.ts';
import { samplerQuality } from '../render/page/quality.ts';
import type { Profile } from '../model/profile.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { checkSaveArgs, saveIfAsked, saveOptions } from './store.ts';
import { CliError } from './errors.ts';
import { defaultOutput, programName } from './record.ts';
import { durationArg, startSession, targetArgs } from './target.ts';

export const perfSpec: CommandSpec = {
  name: 'perf',
  summary: 'Record with Linux perf: Python, native and kernel frames in one profile (HTML flamegraph by default).',
  usage: 'pylens perf [-p PID | -- python app.py ...] [-F HZ] [-d SECONDS] [-o OUT] [--call-graph auto|fp|dwarf] [options]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'a running process (Python frames need it started with -X perf / -X perf_jit)' },
    { name: 'frequency', short: 'F', type: 'number', value: 'HZ', help: 'samples per second per CPU (default 999)', aliases: ['rate'] },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the command exits or Ctrl-C)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default perf-<program>-<time>.html)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
    ...saveOptions,
    { name: 'call-graph', type: 'string', value: 'MODE', choices: ['auto', 'fp', 'dwarf'], help: 'stack unwinding: auto (fp for frame-pointer builds, else dwarf), fp, dwarf' },
    { name: 'kernel', type: 'boolean', help: 'kernel frames (default on; --no-kernel for user space only)' },
    { name: 'event', short: 'e', type: 'string', value: 'EVENT', help: 'perf event (default cycles, or cpu-clock where there is no cycle counter, as in most VMs)' },
    { name: 'hide-interpreter', type: 'boolean', help: "fold CPython's own frames (eval loop, call machinery, startup) away (default on; --no-hide-interpreter keeps them)" },
    { name: 'perf-data', type: 'string', value: 'FILE', help: 'keep perf.data here (default: a temporary file, removed)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'only errors and the output path' },
  ],
  examples: [
    'pylens perf -- python app.py                 # CPython 3.13: -X perf_jit + perf inject --jit, dwarf',
    'pylens perf -d 30 -p 4242                    # a process started with python -X perf',
    'pylens perf -F 99 --no-kernel -o app.pb.gz -- python -m pytest',
    'pylens perf --no-hide-interpreter -o raw.html -- python bench.py',
  ],
};

const say = (quiet: boolean, line: string) => {
  if (!quiet) process.stderr.write(`pylens perf: ${line}\n`);
};

export async function runPerf(args: Parsed): Promise<number> {
  const o = args.options;
  const t = targetArgs('perf', args);
  const pid = t.pid;
  const argv = t.argv ?? [];
  const freq = (o.frequency as number | undefined) ?? 999;
  if (!(Number.isFinite(freq) && freq >= 1 && freq <= 100_000)) throw new UsageError('perf', `-F must be between 1 and 100000 Hz, got ${freq}`);
  const duration = durationArg('perf', args);
  const fmt = o.format as string | undefined;
  const outOpt = o.output as string | undefined;
  if (outOpt !== undefined || fmt !== undefined) pickExporter('perf', outOpt ?? defaultOutput('x', fmt), fmt);
  checkSaveArgs('perf', args);
  const quiet = Boolean(o.quiet);
  const want = ((o['call-graph'] as string | undefined) ?? 'auto') as 'auto' | 'fp' | 'dwarf';

  if (pid === undefined && !commandPath(argv[0]!)) {
    throw new CliError(`cannot run ${JSON.stringify(argv[0])}: ${argv[0]!.includes('/') ? 'no such file, or not executable by this user' : 'no such program on PATH'}`, 'check the command after --; it is run as given, looked up on PATH');
  }
  if (pid !== undefined && runningPython(pid).executable === undefined) {
    throw new CliError(`process ${pid} is not running (or its /proc entry cannot be read)`, 'check the PID with `ps -p PID`; another user\'s process needs root or CAP_PERFMON + CAP_SYS_PTRACE');
  }
  const perf = findPerf();
  const access = checkPerfAccess(readPerfAccess(), { kernel: o.kernel !== false });
  for (const w of access.warnings) say(false, `warning: ${w}`);
  const { event, note } = cpuEvent(perf, o.event as string | undefined);
  if (note) say(quiet, note);

  let plan: PerfPlan;
  let build: PythonBuild | undefined;
  if (pid !== undefined) {
    const run = runningPython(pid);
    const exe = run.executable;
    build = exe !== undefined && /python[\d.]*[a-z]*$/.test(basename(exe)) ? probePython(exe) : undefined;
    plan = planAttach(run, build, want);
  } else {
    const py = pythonOfCommand(argv);
    build = py ? probePython(py) : undefined;
    plan = planLaunch(build, want);
  }
  say(quiet, plan.summary);
  for (const n of plan.notes) say(false, `note: ${n}`);

  const workdir = mkdtempSync(join(tmpdir(), 'pylens-perf-'));
  let rec: PerfRecordResult | undefined;
  let interpreter: InterpreterSymbols | undefined;
  const perfC = new Companion('perf record', ({ pid: p }) => {
    // perf script below reads its own build-id dir, not ~/.debug: only debug files elsewhere count
    interpreter = interpreterSymbolsOf(p!, { buildIdDir: join(workdir, 'buildid') });
    if (interpreter?.verdict === 'stripped') say(false, `warning: ${strippedWarning(interpreter)}`);
    return startPerfRecording({ perf, pid: p!, event, freqHz: freq, callGraph: plan.callGraph, kernel: access.kernel, dataFile: (o['perf-data'] as string | undefined) ?? join(workdir, 'perf.data') });
  });
  let targetPid: number | undefined = pid;
  try {
    // launched: held at the start gate until perf records it. A Python waits inside `site`
    // (its image final, so perf's DWARF unwinding knows its libraries); anything else waits
    // in a shell before exec (same PID; perf 6.1 then unwinds through libc poorly).
    const session = await startSession('perf', {
      target: pid !== undefined ? { pid } : { argv, env: { ...process.env, ...plan.env } },
      ...(pid === undefined ? { gate: pythonOfCommand(argv) ? ('python' as const) : ('exec' as const) } : {}),
      companions: [perfC],
      ...(duration !== undefined ? { durationS: duration } : {}),
      interruptsToStop: 1,
    });
    if (typeof session === 'number') return session;
    targetPid = session.pid;
    await session.stopped();
    const exitCode = await session.finish({ graceMs: 0 });
    rec = await perfC.stop();
    const t0 = performance.now();
    let sr;
    try {
      sr = perfDataToProfile(perf, rec.dataFile, { jit: plan.jit, workdir });
    } finally {
      // files CPython wrote for the processes we launched; after attaching only what inject made
      if (pid === undefined) removePerfFiles([...(targetPid !== undefined ? [targetPid] : []), ...(sr?.pids ?? [])]);
      else removePerfFiles(sr?.pids ?? [pid], { jittedOnly: true });
    }
    let profile: Profile = sr.profile;
    const raw = profile.meta;
    const name = programName(targetPid ?? pid ?? 0, argv);
    const overhead = rec.targetCpuNs && rec.targetCpuNs > 0 ? rec.perfCpuNs / rec.targetCpuNs : undefined;
    profile.meta = {
      ...raw,
      name: `perf ${name}`,
      lens: 'perf',
      backend: 'perf',
      mode: 'cpu',
      rateHz: freq,
      ...(targetPid !== undefined ? { pid: targetPid } : {}),
      ...(argv.length ? { command: argv } : {}),
      ...(overhead !== undefined
        ? {
            overhead: {
              fraction: overhead,
              method: `perf record's CPU time / the target's CPU time while it ran (${plan.callGraph} unwinding at ${freq} Hz; the kernel's sampling and ${plan.callGraph === 'dwarf' ? 'stack copies' : 'frame-pointer walks'} in the target's context are not in it: bench/perf-overhead.ts measures the slowdown)`,
            },
          }
        : {}),
      environment: {
        ...hostEnvironment(),
        ...(build ? { python: { version: build.version, implementation: 'CPython', executable: build.executable, buildFlags: `${build.framePointers ? 'frame pointers' : 'no frame pointers'}${build.perfTrampoline ? ', perf trampoline' : ''}; CFLAGS ${build.cflags}` } } : {}),
      },
      extra: {
        ...(raw.extra ?? {}),
        event: access.kernel ? event : `${event}:u`,
        callGraph: plan.callGraph,
        pythonSupport: plan.summary,
        pythonFrames: plan.pythonFrames,
        perfCpuMs: Math.round(rec.perfCpuNs / 1e6),
        ...(rec.targetCpuNs !== undefined ? { targetCpuMs: Math.round(rec.targetCpuNs / 1e6) } : {}),
        injectMs: Math.round(sr.injectMs),
        scriptMs: Math.round(sr.scriptMs),
        parseMs: Math.round(sr.parseMs),
        ...(interpreter ? interpreterSymbolsExtra(interpreter, profile) : {}),
      },
    };
    if (o['hide-interpreter'] !== false) profile = hideInterpreter(profile);
    const out = outOpt ?? defaultOutput(`perf-${name}`, fmt);
    const exporter = pickExporter('perf', out, fmt);
    const abs = writeOutput(out, exporter.write(profile, { title: `perf ${name}${targetPid !== undefined ? ` (pid ${targetPid})` : ''}` }));
    saveIfAsked('perf', args, profile);
    const m = profile.meta;
    say(
      quiet,
      `${m.sampleCount.toLocaleString('en-US')} samples of ${m.extra!.event} at ${freq} Hz, ${profile.threads.length} thread${profile.threads.length === 1 ? '' : 's'}, ` +
        `${plan.callGraph} unwinding` +
        (overhead !== undefined ? `; perf record used ${(100 * overhead).toFixed(1)} % of the target's CPU time` : '') +
        `; ${(sr.scriptBytes / 1e6).toFixed(1)} MB of perf script read in ${Math.round(performance.now() - t0)} ms`,
    );
    const quality = samplerQuality(m);
    if (quality) say(quiet, `quality: ${quality}`);
    if (plan.callGraph === 'dwarf' && freq > 2000) say(quiet, `note: dwarf unwinding copies the stack on every sample; at ${freq} Hz that slows the target noticeably (bench/perf-overhead.ts has figures)`);
    process.stdout.write(`${abs}\n`);
    return pid === undefined ? exitCode : 0;
  } finally {
    removeDir(workdir);
  }
}
