/**
 * `pylens top [-p PID | -- python app.py …]`: a live view of where a Python process spends
 * its time, like `py-spy top`. The I/O half: sampling, timers, the terminal, the target.
 * Everything that can be pure (aggregation, sorting, the frame's text, keys) is in
 * src/render/top-live.ts.
 *
 * - Terminal (stdout is a TTY, no --once): alternate screen, hidden cursor, a full redraw
 *   every --interval seconds and on resize; keys in raw mode when stdin is a TTY too. The
 *   terminal is restored on every way out: quit, -d, target exit, errors, signals, and
 *   uncaught exceptions (`uncaughtExceptionMonitor` / `exit` handlers, synchronously).
 * - Not a terminal: one plain table per interval, tables separated by blank lines, no
 *   escape codes; `--once` prints a single table after one interval, `-d S` ends after S
 *   seconds with a last table.
 * - Launch mode: the target is started with pylens's stdio; quitting (q, Ctrl-C, -d) stops
 *   it with SIGINT, then SIGKILL after 2 s, and top exits 0; when the target exits on its own
 *   top shows a last table, says so on stderr and exits with the target's exit code.
 *   Attach mode leaves the target running.
 */
import { writeSync } from 'node:fs';
import { realClock, runSchedule, shortenFilename, tickTasks } from '../capture/sampler/sampler.ts';
import { readCwd, type ProcessSampler } from '../capture/sampler/session.ts';
import { frameToAnsi, frameToText, INITIAL_VIEW, parseKeys, TopController, TopStats, type LiveFrame, type LiveTick, type TopInfo } from '../render/top-live.ts';
import type { AsyncTask } from '../capture/sampler/asyncio.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { processCommandLine } from './dump.ts';
import { captureTarget, durationArg, startSession, targetArgs } from './target.ts';

export const topSpec: CommandSpec = {
  name: 'top',
  summary: 'Live top-like view of the functions a Python process (running, or launched after --) spends its time in.',
  usage: 'pylens top [-p PID | -- python app.py ...] [-r HZ] [--interval S] [-d S] [--once] [--idle] [--async]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running Python process to watch' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second (default 100)', aliases: ['frequency'] },
    { name: 'interval', type: 'number', value: 'SECONDS', help: 'seconds between redraws / printed tables (default 1)' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'stop after this long and print the final table' },
    { name: 'once', type: 'boolean', help: 'sample for one interval, print one plain table and exit' },
    { name: 'idle', short: 'i', type: 'boolean', help: 'include idle (not running) threads in the table' },
    { name: 'async', type: 'boolean', help: "count every waiting asyncio task's await chain too: where the tasks wait (main interpreter)" },
    { name: 'nolineno', type: 'boolean', help: 'start with line numbers off (aggregate by function; key l toggles)' },
    { name: 'full-filenames', type: 'boolean', help: 'keep full paths (default: shorten site-packages, stdlib and cwd paths)' },
  ],
  examples: ['pylens top -p 4242', 'pylens top -- python app.py', 'pylens top -p 4242 --once > top.txt', 'pylens top -p 4242 -d 10 --idle | less', 'pylens top -p 4242 --async      # where the asyncio tasks wait'],
};

/** how long a launched target gets to end after SIGINT before SIGKILL */
const KILL_AFTER_MS = 2000;

/**
 * The full-screen terminal: alternate screen and hidden cursor on `enter`, raw-mode keys
 * (when stdin is a TTY), resize events; `restore` undoes all of it, synchronously and at
 * most once, and is also hooked to process exit and uncaught exceptions.
 */
class Screen {
  private active = false;
  private raw = false;
  private onData: ((d: string | Buffer) => void) | undefined;
  private onResize: (() => void) | undefined;
  private readonly restoreHook = () => this.restore();

  get width(): number {
    return process.stdout.columns || 80;
  }

  get height(): number {
    return process.stdout.rows || 24;
  }

  enter(onKeys: (data: string) => void, onResize: () => void): void {
    if (this.active) return;
    this.active = true;
    process.on('exit', this.restoreHook);
    process.on('uncaughtExceptionMonitor', this.restoreHook);
    writeSync(process.stdout.fd, '\x1b[?1049h\x1b[?25l\x1b[H\x1b[J');
    this.onResize = onResize;
    process.stdout.on('resize', onResize);
    const stdin = process.stdin;
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      this.raw = true;
      this.onData = (d) => onKeys(typeof d === 'string' ? d : d.toString('utf8'));
      stdin.on('data', this.onData);
      stdin.resume();
    }
  }

  write(s: string): void {
    if (this.active) process.stdout.write(s);
  }

  restore(): void {
    if (!this.active) return;
    this.active = false;
    process.off('exit', this.restoreHook);
    process.off('uncaughtExceptionMonitor', this.restoreHook);
    if (this.onResize) process.stdout.off('resize', this.onResize);
    const stdin = process.stdin;
    if (this.onData) stdin.off('data', this.onData);
    if (this.raw) {
      try {
        stdin.setRawMode(false);
      } catch {
        /* the terminal is gone */
      }
      stdin.pause();
    }
    try {
      writeSync(process.stdout.fd, '\x1b[0m\x1b[?25h\x1b[?1049l');
    } catch {
      /* the terminal is gone */
    }
  }
}

export async function runTop(args: Parsed): Promise<number> {
  const o = args.options;
  const { pid: pidOpt, argv = [] } = targetArgs('top', args);
  const rate = (o.rate as number | undefined) ?? 100;
  if (!(rate > 0 && rate <= 100_000)) throw new UsageError('top', `--rate must be between 0 and 100000 Hz, got ${rate}`);
  const interval = (o.interval as number | undefined) ?? 1;
  if (!(interval >= 0.05 && interval <= 3600)) throw new UsageError('top', `--interval must be between 0.05 and 3600 seconds, got ${interval}`);
  const once = Boolean(o.once);
  let duration = durationArg('top', args);
  if (once && duration !== undefined) throw new UsageError('top', '--once and --duration are alternatives; pick one');
  if (once) duration = interval;
  const idle = Boolean(o.idle);
  const withTasks = Boolean(o.async);
  const plain = once || !process.stdout.isTTY;

  const session = await startSession('top', {
    target: captureTarget(pidOpt !== undefined ? { pid: pidOpt } : { argv }),
    sampler: true,
    ...(duration !== undefined ? { durationS: duration } : {}),
    // launch mode: Ctrl-C quits at once (the target got it too); attached, SIGHUP quits as well
    interruptsToStop: 1,
    stopOnHangup: true,
  });
  if (typeof session === 'number') return session;
  const target = session.target;
  const sampler = session.sampler!;
  const quit = () => session.stop({ kind: 'caller', why: 'quit' });

  // as record does: in CPU mode a thread asleep at the picture is not read (its sample would
  // be dropped), in wall-clock mode one that has not run since its last read gives that stack again
  sampler.skipAsleep = !idle && !withTasks;
  sampler.reuseUnrun = idle;
  const pid = sampler.pid;
  const cwd = readCwd(pid);
  const full = Boolean(o['full-filenames']);
  const startNs = realClock.nowNs();
  const stats = new TopStats({ idle, startNs, fileName: full ? (f) => f : (f) => shortenFilename(f, cwd) });
  const command = processCommandLine(pid);
  const info: TopInfo = { pid, rateHz: rate, idle, version: sampler.version.text, ...(command !== undefined ? { command } : {}) };
  const ctl = new TopController(info, stats, { ...INITIAL_VIEW, lines: !o.nolineno });

  const screen = plain ? undefined : new Screen();
  const envCols = Number(process.env.COLUMNS);
  const plainWidth = Number.isInteger(envCols) && envCols > 0 ? envCols : Infinity;
  let printed = 0;
  const printPlain = (width = plainWidth, maxRows?: number) => {
    const text = frameToText(ctl.frame(realClock.nowNs(), { width, ...(maxRows !== undefined ? { maxRows } : {}) }));
    process.stdout.write((printed++ > 0 ? '\n' : '') + text);
  };
  const draw = () => {
    if (!screen) return;
    const w = screen.width;
    screen.write(frameToAnsi(ctl.frame(realClock.nowNs(), { width: w, height: screen.height, footer: Boolean(process.stdin.isTTY) }), w));
  };
  const onKeys = (data: string) => {
    for (const k of parseKeys(data)) {
      const eff = ctl.key(k, realClock.nowNs());
      if (eff === 'quit') {
        quit();
        return;
      }
      if (eff === 'redraw') draw();
    }
  };

  const timer = once
    ? undefined
    : setInterval(() => {
        if (session.signal.aborted) return;
        if (!plain) {
          if (!ctl.view.paused) draw();
          return;
        }
        // the last table is printed at the end; don't print one just before it
        const elapsed = (realClock.nowNs() - startNs) / 1e9;
        if (duration !== undefined && elapsed + interval / 2 >= duration) return;
        printPlain();
      }, interval * 1000);

  // `pylens top … | head`: a closed pipe ends top like a quit, not with an EPIPE crash (the
  // listener stays: the error of the last write arrives after runTop has returned)
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    quit();
  };
  process.stdout.on('error', onStdoutError);

  let gone = false;
  let failed = false;
  let failure: unknown;
  try {
    screen?.enter(onKeys, draw);
    draw();
    await runSchedule(
      realClock,
      1e9 / rate,
      () => {
        if (target?.hasExited()) {
          gone = true;
          return 'stop';
        }
        const r = sampler.tick();
        if (r.gone) {
          gone = true;
          return 'stop';
        }
        ctl.add(withTasks ? { ...r, ...waitingTasks(sampler, rate) } : r, realClock.nowNs());
      },
      { signal: session.signal },
    );
  } catch (e) {
    failed = true;
    failure = e;
  } finally {
    if (timer) clearInterval(timer);
    screen?.restore();
    sampler.close();
  }
  if (failed) {
    await session.abandon();
    throw failure;
  }

  const why = session.reason;
  const quitRequested = why?.kind === 'signal' || why?.kind === 'caller';
  const endedOnItsOwn = (gone || why?.kind === 'exit') && !quitRequested;
  if (!process.stdout.writableEnded && !process.stdout.destroyed) {
    if (plain) printPlain();
    else if (!quitRequested) {
      // -d ran out or the target exited: leave the last table on the normal screen
      const rows = process.stdout.rows || 24;
      printPlain(process.stdout.columns || 80, Math.max(5, rows - 8));
    }
  }
  // quitting (q, Ctrl-C, -d) stops a launched target: SIGINT, SIGKILL 2 s later; top then exits 0
  const code = await session.finish({ graceMs: 0, killAfterMs: KILL_AFTER_MS });
  if (target) {
    if (!endedOnItsOwn) return 0;
    process.stderr.write(`pylens top: process ${pid} exited (${target.howEnded() ?? 'unknown status'})\n`);
    return code;
  }
  if (endedOnItsOwn) process.stderr.write(`pylens top: process ${pid} exited\n`);
  return 0;
}

/** This tick's waiting asyncio tasks for the live table (a torn or failed read gives none). */
function waitingTasks(sampler: ProcessSampler, rateHz: number): Pick<LiveTick, 'tasks' | 'taskCount'> {
  let read;
  try {
    read = tickTasks(sampler, rateHz);
  } catch {
    return { tasks: [] };
  }
  if (read === null) return { tasks: [] }; // none read this tick (tasks read in turn)
  const stride = read.stride;
  const tasks = read.tasks.filter((t) => t.state === 'pending' && t.waitsOn !== null).map((t) => ({ frames: liveFrames(t), weight: stride }));
  return { tasks, taskCount: read.registered };
}

/** a task's chain as live frames; the reader gives the same task object while nothing moved */
const liveChains = new WeakMap<AsyncTask, LiveFrame[]>();
function liveFrames(t: AsyncTask): LiveFrame[] {
  let f = liveChains.get(t);
  if (f === undefined) liveChains.set(t, (f = t.stack.map((x) => ({ name: x.name, qualname: x.qualname, file: x.file ?? '?', line: x.line ?? null, firstLine: x.firstLine ?? 0 }))));
  return f;
}
