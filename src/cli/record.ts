/**
 * `pylens record`: sample a CPython process — a running one (`-p PID`) or one it launches
 * (`-- python app.py`) — and write the profile (format from the output's extension).
 *
 * - Attach mode: Ctrl-C or SIGTERM stops sampling and writes what was collected; the target
 *   keeps running.
 * - Launch mode: stdio passes through, signals are forwarded (launch.ts), sampling starts as
 *   soon as the interpreter is up and ends when the target exits; pylens exits with the
 *   target's exit code. A second Ctrl-C stops sampling at once and writes the profile.
 * - On a terminal, a progress line on stderr: elapsed, samples, achieved rate, errors,
 *   threads (and processes with -s).
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Profile } from '../model/profile.ts';
import type { Launched } from '../capture/sampler/launch.ts';
import { sampleAttached, type RecordProgress, type SampleOptions } from '../capture/sampler/sampler.ts';
import { ProcessSampler } from '../capture/sampler/session.ts';
import { exporterById } from '../formats/index.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { attachError } from './dump.ts';
import { pickExporter, writeOutput } from './commands.ts';
import { launchAndAttach, launchTarget, targetArgs } from './target.ts';

export const recordSpec: CommandSpec = {
  name: 'record',
  summary: 'Sample a Python process (running, or launched after --) and write a profile (HTML flamegraph by default).',
  usage: 'pylens record [-p PID | -- python app.py ...] [-r HZ] [-d SECONDS] [-o OUT] [options]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running Python process to sample' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second (default 100)' },
    { name: 'frequency', short: 'F', type: 'number', value: 'HZ', help: 'same as --rate (perf’s spelling)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the target exits or Ctrl-C)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file; format from its extension (default <program>-<time>.html)' },
    { name: 'format', short: 'f', type: 'string', value: 'FORMAT', help: 'output format (overrides the extension)' },
    { name: 'idle', short: 'i', type: 'boolean', help: 'include idle (not running) threads, marked as idle' },
    { name: 'gil', short: 'g', type: 'boolean', help: 'only samples of the thread holding the GIL' },
    { name: 'threads', short: 't', type: 'boolean', help: 'a root frame per thread (thread id and name)' },
    { name: 'subprocesses', short: 's', type: 'boolean', help: 'also sample child processes that run Python, each under its own process root' },
    { name: 'function', type: 'boolean', help: 'aggregate by function (its first line) instead of the line being run' },
    { name: 'nolineno', type: 'boolean', help: 'no line numbers at all' },
    { name: 'full-filenames', type: 'boolean', help: 'keep full paths (default: shorten site-packages, stdlib and cwd paths)' },
    { name: 'quiet', short: 'q', type: 'boolean', help: 'no progress line' },
  ],
  examples: [
    'pylens record -- python app.py --port 8080',
    'pylens record -p 4242 -d 30',
    'pylens record -p 4242 -r 250 -o app.pylens',
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
  return `${name}-${stamp}.${fmt ? (exporterById(fmt)?.extension ?? '.html').replace(/^\./, '') : 'html'}`;
}

/** The progress line, e.g. "pylens record: 12.3 s, 1,230 samples, 100.0 Hz, 0 errors, 3 threads". */
export function progressLine(p: RecordProgress, withProcesses: boolean): string {
  const s = p.elapsedNs / 1e9;
  // a rate over the first fraction of a second says nothing
  const hz = s >= 0.2 ? p.ticks / s : 0;
  return (
    `pylens record: ${s.toFixed(1)} s, ${p.samples.toLocaleString('en-US')} samples, ${hz.toFixed(1)} Hz, ` +
    `${p.errors} error${p.errors === 1 ? '' : 's'}, ${p.threads} thread${p.threads === 1 ? '' : 's'}` +
    (withProcesses ? `, ${p.processes} process${p.processes === 1 ? '' : 'es'}` : '')
  );
}

export async function runRecord(args: Parsed): Promise<number> {
  const o = args.options;
  const { pid: pidOpt, argv = [] } = targetArgs('record', args);
  const rate = (o.rate as number | undefined) ?? (o.frequency as number | undefined) ?? 100;
  if (!(rate > 0 && rate <= 100_000)) throw new UsageError('record', `--rate must be between 0 and 100000 Hz, got ${rate}`);
  const duration = o.duration as number | undefined;
  if (duration !== undefined && !(duration > 0)) throw new UsageError('record', `--duration must be a positive number of seconds, got ${duration}`);
  if (o.function && o.nolineno) throw new UsageError('record', '--function and --nolineno are alternatives; pick one');
  const fmt = o.format as string | undefined;
  const outOpt = o.output as string | undefined;
  if (outOpt !== undefined || fmt !== undefined) pickExporter('record', outOpt ?? defaultOutput('x', fmt), fmt); // fail fast on a bad format

  const abort = new AbortController();
  const quiet = Boolean(o.quiet) || !process.stderr.isTTY;
  const subprocesses = Boolean(o.subprocesses);
  let lastDraw = 0;
  const opts: SampleOptions = {
    rateHz: rate,
    ...(duration !== undefined ? { durationS: duration } : {}),
    idle: Boolean(o.idle),
    gilOnly: Boolean(o.gil),
    threadRoots: Boolean(o.threads),
    subprocesses,
    lines: o.function ? 'function' : o.nolineno ? 'none' : 'line',
    filenames: o['full-filenames'] ? 'full' : 'short',
    signal: abort.signal,
    ...(quiet
      ? {}
      : {
          onProgress: (p: RecordProgress) => {
            const now = performance.now();
            if (now - lastDraw < 250) return;
            lastDraw = now;
            process.stderr.write(`\r\x1b[K${progressLine(p, subprocesses)}`);
          },
        }),
  };

  let target: Launched | undefined;
  /** an attached process, or with -s a launched one that may not be Python (a shell, make, …) */
  let root: ProcessSampler | number;
  let interrupts = 0;
  /** sampling was stopped by a signal the target also got: give it time to exit on its own */
  let forwardedStop = false;
  if (pidOpt !== undefined) {
    const stop = () => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    abort.signal.addEventListener('abort', () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    });
    try {
      root = ProcessSampler.attach(pidOpt);
    } catch (e) {
      throw attachError(e, pidOpt, 'record');
    }
  } else {
    const onSignal = (sig: NodeJS.Signals) => {
      // the target got the signal too; sampling goes on until it exits, unless asked twice
      if (sig === 'SIGINT' && ++interrupts < 2) return;
      if (sig === 'SIGINT' || sig === 'SIGTERM' || sig === 'SIGHUP') {
        forwardedStop = sig !== 'SIGINT';
        abort.abort();
      }
    };
    if (subprocesses) {
      // the program itself need not be Python: its Python descendants are found as they start
      target = await launchTarget(argv, onSignal);
      root = target.pid;
    } else {
      const r = await launchAndAttach('record', argv, { onSignal, signal: abort.signal, stop: (t) => finishTarget(t, 0, 'SIGTERM') });
      if ('ended' in r) return r.ended;
      ({ target, sampler: root } = r);
    }
  }

  const rootPid = typeof root === 'number' ? root : root.pid;
  const name = programName(rootPid, (typeof root === 'number' ? undefined : root.command) ?? argv);
  let profile: Profile;
  try {
    profile = await sampleAttached(root, opts);
  } finally {
    if (!quiet) process.stderr.write('\r\x1b[K');
  }
  profile.meta.name = profile.meta.name ?? name;
  const out = outOpt ?? defaultOutput(name, fmt);
  const exporter = pickExporter('record', out, fmt);
  const abs = writeOutput(out, exporter.write(profile, { title: `${name} (pid ${rootPid})` }));
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
  if (procs === 0) process.stderr.write(`pylens record: no Python process ran under ${argv[0] ?? `PID ${rootPid}`}; the profile is empty\n`);
  process.stdout.write(`${abs}\n`);
  if (!target) return 0;
  const code = await finishTarget(target, forwardedStop ? 3000 : 0);
  target.dispose();
  return code;
}

/**
 * Wait for a launched target. Sampling normally ends because it exited. When it is still
 * running it gets `graceMs` to exit on its own (it was sent SIGTERM/SIGHUP already), then
 * SIGINT (as after -d), then SIGKILL 5 s later.
 */
async function finishTarget(t: Launched, graceMs = 0, signal: NodeJS.Signals = 'SIGINT'): Promise<number> {
  if (!t.hasExited() && graceMs > 0) await Promise.race([t.exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (!t.hasExited()) {
    t.child.kill(signal);
    const timer = setTimeout(() => t.child.kill('SIGKILL'), 5000);
    const code = await t.exited;
    clearTimeout(timer);
    return code;
  }
  return t.exited;
}
