/**
 * `pylens sched`: who runs and who waits. Records the kernel scheduler's events with perf
 * (system-wide, see capture/perf/sched.ts), keeps the target's threads — a running process
 * (`-p PID`), or a command it launches (`-- cmd args…`) with every process and thread it
 * starts — and prints per-thread run time, scheduler delay, sleeping/blocked time and
 * context switches, then the longest waits with their switch-out stacks. An HTML timeline
 * goes to `-o` (default sched-<program>-<time>.html); `--json` prints the data as JSON.
 *
 * perf records the whole machine before a command is launched, so its first moments are in.
 * Stopping: -d, Ctrl-C / SIGTERM, or the target exiting (attach mode); the command
 * exiting (launch mode, where pylens then exits with its exit code). Whatever was recorded
 * until then is reported.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Companion } from '../capture/session/session.ts';
import {
  processTids,
  readSchedData,
  selectTids,
  startSchedRecord,
  summarize,
  type SchedRecorder,
  type SchedSummary,
  type SchedTarget,
} from '../capture/perf/sched.ts';
import { checkPerfAccess, findPerf, readPerfAccess } from '../capture/perf/tool.ts';
import { renderSchedHtml } from '../render/sched-html.ts';
import { fmtDuration, renderSchedText } from '../render/sched.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { writeOutput } from './commands.ts';
import { CliError } from './errors.ts';
import { captureTarget, durationArg, startSession, targetArgs } from './target.ts';

export const schedSpec: CommandSpec = {
  name: 'sched',
  summary: 'Scheduler timeline (perf): per-thread run time, scheduler delay, waits and their stacks; HTML timeline.',
  usage: 'pylens sched [-p PID | -- cmd args...] [-d SECONDS] [-o OUT.html] [--json] [--top N]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running process to watch (all its threads)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long (default: until the target exits or Ctrl-C)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT.html', help: 'the HTML timeline (default sched-<program>-<time>.html)' },
    { name: 'json', type: 'boolean', help: 'print the summary as JSON instead of text' },
    { name: 'top', short: 'n', type: 'number', value: 'N', help: 'how many of the longest waits to show (default 10)' },
    { name: 'stacks', type: 'boolean', help: 'record switch-out stacks (default on; --no-stacks records less)' },
  ],
  examples: [
    'pylens sched -- python app.py',
    'pylens sched -p 4242 -d 10',
    'pylens sched -p 4242 -d 5 --json --top 20 > sched.json',
    'pylens sched -o worker.html -- python -m worker',
  ],
};

const STACK_NOTE =
  'Stacks are taken at the switch-out with frame pointers: kernel frames are exact; CPython builds without frame pointers give short or broken user-space stacks (Python 3.12+ built with -fno-omit-frame-pointer, or the distro\'s frame-pointer builds, give full ones).';

function programName(pid: number, argv?: string[]): string {
  const script = argv?.slice(1).find((a) => /\.py$/.test(a));
  if (script) return basename(script, '.py').replace(/[^\w.-]+/g, '_');
  if (argv?.[0]) return basename(argv[0]).replace(/[^\w.-]+/g, '_') || 'program';
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().replace(/[^\w.-]+/g, '_') || 'process';
  } catch {
    return 'process';
  }
}

function commandLine(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    return s || undefined;
  } catch {
    return undefined;
  }
}

function pidExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

function defaultOutput(name: string): string {
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  return `sched-${name}-${stamp}.html`;
}

export async function runSched(args: Parsed): Promise<number> {
  const o = args.options;
  const { pid: pidOpt, argv = [] } = targetArgs('sched', args);
  const duration = durationArg('sched', args);
  const top = (o.top as number | undefined) ?? 10;
  if (!(Number.isInteger(top) && top >= 0)) throw new UsageError('sched', `--top must be a whole number >= 0, got ${top}`);
  const outOpt = o.output as string | undefined;
  if (outOpt !== undefined && !/\.html?$/i.test(outOpt)) throw new UsageError('sched', `-o writes an HTML timeline: give a file name ending in .html, got '${outOpt}'`);
  const json = Boolean(o.json);
  const callGraph = o.stacks !== false;

  if (pidOpt !== undefined && !pidExists(pidOpt)) {
    throw new CliError(`process ${pidOpt} does not exist (it has exited, or never existed)`, 'check the PID with ps; the process may have exited');
  }
  const perf = findPerf();
  const access = checkPerfAccess(readPerfAccess(), { kernel: true, systemWide: true, tracepoints: true });
  for (const w of access.warnings) process.stderr.write(`pylens sched: ${w}\n`);

  const tmp = mkdtempSync(join(tmpdir(), 'pylens-sched-'));
  const dataFile = join(tmp, 'sched.data');
  try {
    return await recordAndReport();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  async function recordAndReport(): Promise<number> {
    const name = pidOpt !== undefined ? programName(pidOpt, commandLine(pidOpt)?.split(' ')) : programName(0, argv);
    // perf records the whole machine from before the command starts: its first moments are in
    const recorderC = new Companion('perf record', async () => {
      const r: SchedRecorder = await startSchedRecord(perf, dataFile, { callGraph });
      return { ended: r.ended, stop: () => r.stop(), kill: () => r.run.child.kill('SIGKILL') };
    }, { before: true });
    let tidsSeen: number[] = [];
    const cmdline = pidOpt !== undefined ? commandLine(pidOpt) : argv.join(' ');
    // Ctrl-C at a terminal reaches the command (and perf) too: the recording ends, and the
    // command gets time to exit on its own
    const session = await startSession('sched', {
      target: captureTarget(pidOpt !== undefined ? { pid: pidOpt } : { argv }),
      companions: [recorderC],
      ...(duration !== undefined ? { durationS: duration } : {}),
      interruptsToStop: 1,
    });
    if (typeof session === 'number') return session;
    const startedAt = Date.now();
    const target = session.target;
    if (pidOpt !== undefined) {
      tidsSeen = processTids(pidOpt);
      if (!pidExists(pidOpt)) {
        await session.finish();
        throw new CliError(`process ${pidOpt} does not exist (it has exited, or never existed)`, 'check the PID with ps; the process may have exited');
      }
    }
    const tidWatch = pidOpt !== undefined
      ? setInterval(() => {
          for (const t of processTids(pidOpt)) if (!tidsSeen.includes(t)) tidsSeen.push(t);
        }, 100)
      : undefined;
    process.stderr.write(`pylens sched: recording ${pidOpt !== undefined ? `pid ${pidOpt}` : `pid ${target!.pid} (${argv[0]})`}${duration !== undefined ? ` for ${duration} s` : ''}… (Ctrl-C to stop)\n`);
    const reason = await session.stopped();
    clearInterval(tidWatch);
    const why =
      reason.kind === 'duration' ? `${reason.seconds} s passed`
      : reason.kind === 'signal' ? (reason.signal === 'SIGINT' ? 'Ctrl-C' : reason.signal)
      : reason.kind === 'exit' ? (target ? `${argv[0]} exited (${reason.how})` : `process ${pidOpt} exited`)
      : reason.kind === 'companion' ? 'perf record ended'
      : reason.why;
    const recordedS = (Date.now() - startedAt) / 1000;
    const exitCode = await session.finish({ graceMs: reason.kind === 'signal' ? 3000 : 0 });
    await recorderC.stop(); // perf's failure to write its file, if any

    const trace = await readSchedData(perf, dataFile);
    const sel: SchedTarget = pidOpt !== undefined ? { pid: pidOpt, tids: tidsSeen } : { root: target!.pid };
    const tids = [...selectTids(trace, sel)];
    const summary = summarize(trace, tids, top);
    const rootPid = pidOpt ?? target!.pid;
    const what = `pid ${rootPid}${cmdline ? ` (${cmdline.length > 80 ? `${cmdline.slice(0, 77)}...` : cmdline})` : ''}${pidOpt === undefined ? ' and its children' : ''}`;
    const notes = [STACK_NOTE];
    if (tids.length === 0) notes.unshift(`No scheduler event of ${pidOpt !== undefined ? `process ${pidOpt}` : argv[0]} was recorded (it may have exited before the recording started).`);
    if (trace.lost > 0) notes.push(`perf lost ${trace.lost.toLocaleString('en-US')} events (its buffers filled up): times near the losses are approximate; a busy machine may need a shorter recording.`);
    if (summary.totals.inferredNs > 0.001 * summary.wallNs) notes.push(`${fmtDuration(summary.totals.inferredNs)} of run time had no recorded switch-in (perf records no events in some contexts, e.g. an idle CPU in some VMs); its start was taken from the kernel's runtime accounting (sched_stat_runtime).`);
    if (trace.skipped > 0) notes.push(`${trace.skipped} line(s) of perf script output were not understood, e.g. ${JSON.stringify(trace.skippedSample[0])}.`);

    const rows = tids
      .map((tid) => trace.tasks.get(tid)!)
      .sort((a, b) => (a.pid === rootPid ? -1 : 0) - (b.pid === rootPid ? -1 : 0) || a.pid - b.pid || a.tid - b.tid)
      .map((t) => t.tid);
    const out = outOpt ?? defaultOutput(name);
    const t0 = performance.now();
    const html = renderSchedHtml({ title: `sched: ${name}`, subtitle: `${what} · ${fmtDuration(summary.wallNs)} recorded, stopped: ${why} · ${new Date().toISOString()}`, trace, tids: rows, summary, notes });
    const abs = writeOutput(out, html);
    const renderMs = performance.now() - t0;

    if (json) {
      const doc = {
        target: { pid: rootPid, command: cmdline ?? null, mode: pidOpt !== undefined ? 'attach' : 'launch', exitCode: target ? exitCode : null },
        stoppedBy: why,
        wallNs: summary.wallNs,
        recordedSeconds: recordedS,
        events: trace.events,
        threads: summary.threads,
        totals: summary.totals,
        waits: summary.waits,
        html: abs,
        notes,
      };
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    } else {
      process.stdout.write(renderSchedText(summary, what, notes));
      process.stdout.write(`\n${abs}\n`);
    }
    process.stderr.write(`pylens sched: ${trace.events.toLocaleString('en-US')} scheduler events, ${tids.length} thread${tids.length === 1 ? '' : 's'} kept; timeline ${(html.length / 1024).toFixed(0)} KiB in ${renderMs.toFixed(0)} ms: ${abs}\n`);
    return target ? exitCode : 0;
  }
}

