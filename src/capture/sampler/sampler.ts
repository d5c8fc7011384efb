/**
 * The core of `pylens record`: sample live CPython processes at a fixed rate into a Profile.
 *
 * - Attach (`ProcessSampler` in session.ts): runtime, layout, memory, OS TIDs.
 * - Schedule (`runSchedule`): ABSOLUTE deadlines, each interval drawn uniformly within ±50 %
 *   of the period (mean kept: no aliasing with periodic work). When a tick is late by more
 *   than one period the missed ticks are skipped and counted (`missedTicks`), never caught up
 *   in a burst; one wake-up per tick (`realClock`: clock_nanosleep to the deadline, the event
 *   loop turned every 100 ms).
 * - Each tick (`Recorder.tick`): every attached process's `ProcessSampler.tick`; idle samples
 *   are dropped unless `idle`; `gilOnly` keeps only the GIL holder's sample. The GIL holder
 *   keeps its on-cpu/idle state (the model's 'gil' state is not used); holder samples are
 *   counted in `extra.gilSamples`.
 * - Subprocesses (`subprocesses`): ten times a second the descendants of the root process are
 *   listed from /proc; each one that is CPython is attached and sampled under its own pid.
 * - A thread whose walk failed counts one error and is dropped; the root process exiting
 *   ends sampling normally (after its followed children are gone too); so does the
 *   AbortSignal (Ctrl-C flushes through it).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ProfileBuilder } from '../../model/builder.ts';
import { hostEnvironment } from '../../model/environment.ts';
import type { Profile } from '../../model/profile.ts';
import type { RecordProgress } from '../../model/progress.ts';
import { TASK_ROOT_PREFIX, withThreadRoots } from '../../model/query.ts';
import { ProcessGoneError, PermissionError, type Address } from './memory.ts';
import { statStateLetter } from './threads.ts';
import { syscalls } from './syscalls.ts';
import { addCounts, CPU_RULE, emptyCounts, ProcessSampler, readCmdline, TickStart, readCwd, readExe, readExecMark, type SamplerCounts, type ThreadSample } from './session.ts';
import type { AsyncTask, AsyncTasks } from './asyncio.ts';
import type { Frame } from './walker.ts';

export interface SamplerClock {
  /** monotonic nanoseconds (any origin) */
  nowNs(): number;
  /** resolve at (or after) time `t` of `nowNs`; may resolve early when `signal` aborts */
  sleepUntilNs(t: number, signal?: AbortSignal): Promise<void>;
  /**
   * block the thread until time `t` of `nowNs` (the event loop does not run meanwhile);
   * where a clock has it, `runSchedule` uses it and turns the event loop only every
   * YIELD_EVERY_MS
   */
  sleepUntilSyncNs?(t: number): void;
  /**
   * asked before each wait where `sleepUntilSyncNs` is there: true while the event loop has
   * work that needs many turns (the agent's sends), so this wait goes through timers
   */
  preferAsync?(): boolean;
}

/** Absolute CLOCK_MONOTONIC ns minus `performance.now()` in ns (the best of a few readings). */
export function monotonicOffsetNs(): number {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 5; i++) {
    const a = performance.now();
    const h = process.hrtime.bigint();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      offset = Number(h) - ((a + b) / 2) * 1e6;
    }
  }
  return offset;
}

/**
 * How often a schedule that sleeps synchronously lets the event loop run (signals, child
 * exits, pipes, progress): one turn of Node's event loop costs ~110 µs of CPU on a VM here,
 * more than a tick, so it is not taken at every tick.
 */
export const YIELD_EVERY_MS = 100;

/**
 * `record`'s turns (sampleAttached): a recording needs the event loop for little but signals
 * (Ctrl-C ends it within this), its companions' exits and the progress line (redrawn every
 * 250 ms anyway), so it turns it less often than `top`, which reads keys. At 100 Hz a turn
 * every 100 ms cost ~11 µs a tick; every 250 ms, ~4.
 */
export const RECORD_YIELD_MS = 250;

/** waits shorter than this are spun, not slept */
const SPIN_BELOW_MS = 0.15;

/** for Atomics.wait: a sleep that burns no CPU (where clock_nanosleep cannot be called) */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * The real clock, with ONE wake-up per tick. A timer wake-up of Node's event loop costs
 * ~130 µs of CPU per tick on a VM here and even `Atomics.wait` from a setImmediate ~170 µs
 * (the event-loop turn is most of it), against ~30–55 µs for a C sampler's
 * clock_nanosleep. So `sleepUntilSyncNs` blocks in clock_nanosleep to the absolute deadline
 * (koffi; `Atomics.wait` where it cannot be called), and `runSchedule` turns the event loop
 * only every YIELD_EVERY_MS. Waits under 0.15 ms are spun.
 */
let monoOffset: number | undefined;
export const realClock: SamplerClock = {
  nowNs: () => performance.now() * 1e6,
  sleepUntilNs(t, signal) {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const finish = () => {
        if (!signal?.aborted) realClock.sleepUntilSyncNs!(t);
        resolve();
      };
      const coarse = (t - performance.now() * 1e6) / 1e6 - 1.2;
      if (coarse < 1) return finish();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        finish();
      };
      const timer = setTimeout(done, Math.floor(coarse));
      signal?.addEventListener('abort', done, { once: true });
    });
  },
  sleepUntilSyncNs(t) {
    const ms = (t - performance.now() * 1e6) / 1e6;
    if (ms <= SPIN_BELOW_MS) {
      while (performance.now() * 1e6 < t);
      return;
    }
    const sys = syscalls();
    if (sys) {
      monoOffset ??= monotonicOffsetNs();
      sys.sleepUntilMonotonic(t + monoOffset);
    } else Atomics.wait(sleepCell, 0, 0, ms);
  },
};

export interface ScheduleResult {
  ticks: number;
  missedTicks: number;
  /** clock time of the first deadline */
  startNs: number;
  /** clock time when the loop ended */
  endNs: number;
}

/**
 * How far each interval between ticks may stray from the period: intervals are drawn
 * uniformly from [period·(1 − j), period·(1 + j)] (mean: the period, so the rate is kept).
 * A fixed period locks onto periodic work (a loop of two 5 ms halves sampled at 100 Hz sees
 * the same half again and again); a random phase cannot.
 */
export const DEFAULT_JITTER = 0.5;

/** The distribution of sampling intervals in words, for the profile's metadata. */
export function intervalDistribution(rateHz: number, jitter: number): string {
  const p = 1e3 / rateHz;
  if (jitter <= 0) return `fixed ${p.toPrecision(3)} ms`;
  return `uniform ${(p * (1 - jitter)).toPrecision(3)}–${(p * (1 + jitter)).toPrecision(3)} ms (1/rate ± ${Math.round(jitter * 100)} %, mean 1/rate)`;
}

/**
 * Run `tick` at absolute deadlines until `durationNs` has passed (if given), the signal
 * aborts, or `tick` returns 'stop'. `tick` gets the ns since start. Deadline k+1 = deadline
 * k + an interval drawn around `periodNs` (`jitter`, default DEFAULT_JITTER; 0: a fixed
 * period). A tick late by more than one period skips the deadlines it missed (counted as
 * `missedTicks`), never catching up in a burst. With a clock that sleeps synchronously the
 * event loop turns every `yieldEveryMs` (YIELD_EVERY_MS), or at every tick while the clock
 * `preferAsync`.
 */
export async function runSchedule(
  clock: SamplerClock,
  periodNs: number,
  tick: (sinceStartNs: number) => 'stop' | void,
  opts: { durationNs?: number; signal?: AbortSignal; jitter?: number; random?: () => number; yieldEveryMs?: number } = {},
): Promise<ScheduleResult> {
  const start = clock.nowNs();
  const end = opts.durationNs !== undefined ? start + opts.durationNs : undefined;
  const jitter = Math.min(Math.max(opts.jitter ?? DEFAULT_JITTER, 0), 1);
  const random = opts.random ?? Math.random;
  let due = start;
  let ticks = 0;
  let missed = 0;
  const sync = clock.sleepUntilSyncNs?.bind(clock);
  const yieldNs = (opts.yieldEveryMs ?? YIELD_EVERY_MS) * 1e6;
  let yieldAt = start + yieldNs;
  /** the event loop has had its turn since the last tick */
  let turned = false;
  for (;;) {
    if (opts.signal?.aborted) break;
    // a clock may ask for timer waits for a while (its event loop busy): then no sync sleeps;
    // nor at rates of 10 Hz and less, where a timer's wake-up per tick costs little and
    // sleeping in the event loop serves signals at once, with no turns of its own
    const useSync = sync !== undefined && periodNs < yieldNs && clock.preferAsync?.() !== true;
    if (useSync && clock.nowNs() >= yieldAt) {
      await new Promise<void>((r) => setImmediate(r));
      yieldAt = clock.nowNs() + yieldNs;
      turned = true;
      if (opts.signal?.aborted) break;
    }
    const now = clock.nowNs();
    const late = now - due;
    if (late > periodNs) {
      const skip = Math.floor(late / periodNs);
      missed += skip;
      due += skip * periodNs;
    }
    if (end !== undefined && due >= end) break;
    if (due > now) {
      if (!useSync) {
        await clock.sleepUntilNs(due, opts.signal);
        yieldAt = clock.nowNs() + yieldNs; // the loop just turned
      }
      // a deadline past the next turn of the event loop: right after a tick, the turn is
      // taken at once when it is due within this interval (no wake-up of its own); else the
      // wait goes in steps of a turn, so signals stay served (periods over YIELD_EVERY_MS)
      else if (due > yieldAt) {
        if (!turned && yieldAt - now < periodNs) yieldAt = now;
        else sync!(yieldAt);
        continue;
      } else sync!(due);
    }
    if (opts.signal?.aborted) break;
    turned = false;
    ticks++;
    if (tick(clock.nowNs() - start) === 'stop') break;
    due += jitter > 0 ? periodNs * (1 - jitter + 2 * jitter * random()) : periodNs;
  }
  return { ticks, missedTicks: missed, startNs: start, endNs: clock.nowNs() };
}

export interface SampleOptions {
  rateHz?: number;
  /** samples carry weights (`Recorder.recordWeighted`: the kernel walk's counts) */
  weighted?: boolean;
  /** stop after this many seconds; absent = until the process exits or the signal aborts */
  durationS?: number;
  /** keep samples of threads that are not running (wall-clock mode) */
  idle?: boolean;
  /** keep only the sample of the thread holding the GIL */
  gilOnly?: boolean;
  /**
   * asyncio too: each tick, a sample per task waiting on something (asyncio.ts), its await
   * chain under a `task NAME` marker root on the process's main thread, state idle (use with
   * `idle`: wall-clock time)
   */
  async?: boolean;
  /** stop each running thread while its stack is read (exact stacks; the cost is measured) */
  blocking?: boolean;
  /**
   * wall-clock mode: a thread that has not run since its last read (its task clock unchanged)
   * is not read again, its last stack is given (session.ts `reuseUnrun`; default true; false
   * only for comparisons)
   */
  reuseUnrun?: boolean;
  /** how a runnable thread is judged on a CPU (session.ts CPU_RULE); 'runnable' only for comparisons */
  cpuRule?: 'moving' | 'runnable';
  signal?: AbortSignal;
  clock?: SamplerClock;
  maxDepth?: number;
  /**
   * what a frame's line is: the line being executed ('line', default), the function's first
   * line, so each function is one frame ('function', py-spy's --function), or none ('none',
   * --nolineno)
   */
  lines?: 'line' | 'function' | 'none';
  /** 'full' (default) keeps paths as the target has them; 'short' drops site-packages, stdlib and cwd prefixes */
  filenames?: 'full' | 'short';
  /** also sample descendant processes that run CPython */
  subprocesses?: boolean;
  /** seconds between scans for new subprocesses (default 0.1) */
  subprocessScanS?: number;
  /** put a `thread TID (name)` frame at the root of every stack (py-spy --threads) */
  threadRoots?: boolean;
  /** put a `process PID (command)` frame at the root of every stack (default: with `subprocesses`) */
  processRoots?: boolean;
  /** called after every tick */
  onProgress?: (p: RecordProgress) => void;
  /** intervals drawn uniformly within ± this share of the period (default DEFAULT_JITTER; 0: fixed) */
  jitter?: number;
  /**
   * CPU mode: skip a process's tick when none of its threads is on a CPU or runnable at that
   * moment (task clocks unchanged since the last tick, or not moving with the thread asleep:
   * one to three small reads per thread instead of a stack walk); the agent's mostly idle
   * services. Needs perf events (task clocks); without them every tick is full.
   */
  skipStill?: boolean;
}

export type { RecordProgress } from '../../model/progress.ts';

/**
 * `file` as py-spy shows it by default: the part after `site-packages/` or `dist-packages/`,
 * after the stdlib directory `lib/python3.X/`, or relative to the target's working
 * directory; anything else unchanged.
 */
export function shortenFilename(file: string, cwd?: string): string {
  const pkg = /.*\/(?:site|dist)-packages\//.exec(file);
  if (pkg) return file.slice(pkg[0].length);
  const std = /.*\/lib\/python3\.\d+t?\//.exec(file);
  if (std) return file.slice(std[0].length);
  if (cwd && cwd !== '/' && file.startsWith(cwd + '/')) return file.slice(cwd.length + 1);
  return file;
}

/**
 * Lists the descendants of a process (children, grandchildren, …) from the ppid field of
 * /proc/N/stat. A scan lists /proc and reads the stat of pids it has not seen before: the
 * parent of a live process only changes when it is reparented (its parent died), so known
 * pids are re-read only every `refreshMs` (default 5 s). ~2 ms for a full scan of 100
 * processes, ~0.1 ms for an incremental one.
 */
export class DescendantScanner {
  private procRoot: string;
  private ppid = new Map<number, number>();
  private lastFullMs = -Infinity;
  private refreshMs: number;
  constructor(procRoot = '/proc', refreshMs = 5000) {
    this.procRoot = procRoot;
    this.refreshMs = refreshMs;
  }

  private readPpid(pid: number): number | undefined {
    let stat: string;
    try {
      stat = readFileSync(`${this.procRoot}/${pid}/stat`, 'latin1');
    } catch {
      return undefined;
    }
    const close = stat.lastIndexOf(')');
    const ppid = Number(stat.slice(close + 2).split(' ', 2)[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  }

  /** the parent of `pid` as of the last scan */
  parentOf(pid: number): number | undefined {
    return this.ppid.get(pid);
  }

  scan(root: number): number[] {
    let entries: string[];
    try {
      entries = readdirSync(this.procRoot);
    } catch {
      return [];
    }
    const now = Date.now();
    const full = now - this.lastFullMs >= this.refreshMs;
    if (full) this.lastFullMs = now;
    const live = new Map<number, number>();
    for (const e of entries) {
      const c = e.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(e);
      let pp = full ? undefined : this.ppid.get(pid);
      if (pp === undefined) pp = this.readPpid(pid);
      if (pp !== undefined) live.set(pid, pp);
    }
    this.ppid = live;
    const children = new Map<number, number[]>();
    for (const [pid, pp] of live) {
      let list = children.get(pp);
      if (!list) children.set(pp, (list = []));
      list.push(pid);
    }
    const out: number[] = [];
    const queue = [root];
    const seen = new Set<number>([root]);
    while (queue.length) {
      for (const c of children.get(queue.shift()!) ?? []) {
        if (seen.has(c)) continue;
        seen.add(c);
        out.push(c);
        queue.push(c);
      }
    }
    return out.sort((a, b) => a - b);
  }
}

/** Every descendant of `root` (children, grandchildren, …), from the ppid field of /proc/N/stat. */
export function descendants(root: number, procRoot = '/proc'): number[] {
  return new DescendantScanner(procRoot).scan(root);
}

/** the process exists and is not a zombie */
function alive(pid: number): boolean {
  try {
    const st = statStateLetter(readFileSync(`/proc/${pid}/stat`));
    return st !== undefined && st !== 'Z' && st !== 'X';
  } catch {
    return false;
  }
}

interface Attached {
  s: ProcessSampler;
  cwd: string | undefined;
  /** the walker's shared Frame objects → builder frame index (weak: the code cache is flushed now and then) */
  frameIdx: WeakMap<Frame, number>;
  /** tid → builder thread index, whether its name is in, and its last stack (see `record`) */
  threadIdx: Map<number, ThreadMemo>;
  /** `readExecMark` before the attach: a change means the process exec'd since */
  execMark: string | undefined;
}

interface ThreadMemo {
  idx: number;
  named: boolean;
  /** the thread's last sample: its frames (leaf first), whether marked, and the builder stack of each root-first prefix */
  frames: readonly Frame[];
  truncated: boolean;
  stacks: number[];
}

/**
 * Turns ticks of one or more `ProcessSampler`s into a Profile. Used by `sampleProcess`; `top`
 * and tests drive it directly.
 */
export class Recorder {
  /** where this recording's samples go (a new one after each `takeWindow`) */
  builder: ProfileBuilder;
  private procs = new Map<number, Attached>();
  private rootPid: number;
  private opts: SampleOptions;
  private frameCache = new Map<string, number>();
  private shortCache = new Map<string, string>();
  /** the folders short file names were cut from (site-packages, the stdlib, the target's cwd), for finding sources later */
  readonly pathRoots = new Set<string>();
  /** pid → exe path of a descendant that is not (yet) CPython; not retried while its exe stays the same */
  private notPython = new Map<number, string>();
  private lastScanNs = -Infinity;
  /** this tick's start, shared by its processes (session.ts TickStart) */
  private tickStart = new TickStart();
  private scanner = new DescendantScanner();
  /** when a descendant that could not be attached yet was first seen (ms) */
  private firstSeen = new Map<number, number>();
  rows = 0;
  errors = 0;
  /** samples recorded under the `[truncated]` marker (with `weighted`, their weights) */
  truncatedSamples = 0;
  /** the counts of processes no longer attached */
  private pastCounts = emptyCounts();
  gilSamples = 0;
  ticks = 0;
  lastThreads = 0;
  /** pids ever sampled, with their command lines */
  readonly seen = new Map<number, string[] | undefined>();

  /** the first process attached (the root, when it is Python): its version describes the profile */
  first: ProcessSampler | undefined;

  /**
   * `root`: an attached process, or (with `subprocesses`) the pid of any process — a shell,
   * `make`, a launcher — whose Python descendants, and itself once it runs Python, are found
   * and sampled.
   */
  constructor(root: ProcessSampler | number, opts: SampleOptions = {}) {
    this.rootPid = typeof root === 'number' ? root : root.pid;
    this.opts = opts;
    this.builder = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: opts.idle ? 'wall' : 'cpu' }, unitValues: !opts.async && !opts.weighted });
    if (typeof root !== 'number') this.add(root);
  }

  private add(s: ProcessSampler, execMark: string | undefined = readExecMark(s.pid)): void {
    this.first ??= s;
    if (this.opts.maxDepth !== undefined) s.maxDepth = this.opts.maxDepth;
    if (this.opts.blocking) s.blocking = true;
    if (this.opts.cpuRule) s.cpuRule = this.opts.cpuRule;
    // CPU mode without tasks: a process none of whose threads ran since the last tick gives no sample
    if (this.opts.skipStill && !this.opts.idle && !this.opts.async) s.skipStill = true;
    // CPU mode: the stacks of threads asleep at the picture would be dropped; they are not read
    if (!this.opts.idle && !this.opts.async && (this.opts.cpuRule ?? 'moving') === 'moving') s.skipAsleep = true;
    // wall-clock samples of a thread that has not run since its last read: its last stack
    if (this.opts.idle && this.opts.reuseUnrun !== false) s.reuseUnrun = true;
    this.procs.set(s.pid, { s, cwd: readCwd(s.pid), frameIdx: new WeakMap(), threadIdx: new Map(), execMark });
    this.seen.set(s.pid, s.command);
  }

  get root(): ProcessSampler | undefined {
    return this.procs.get(this.rootPid)?.s;
  }

  get processCount(): number {
    return this.procs.size;
  }

  /** attach to new CPython descendants of the root */
  scanSubprocesses(nowMs = Date.now()): void {
    // A child attached between fork and exec is a copy of its parent; after exec its old
    // memory is gone. A changed command line, or a new address space laid out (the same
    // program exec'd again with the same arguments, as reloaders do), means exec: attach to
    // the new program.
    for (const [pid, a] of this.procs) {
      if (pid === this.rootPid) continue;
      const now = readCmdline(pid);
      const mark = a.execMark !== undefined ? readExecMark(pid) : undefined;
      if ((now !== undefined && now.join('\0') !== (a.s.command ?? []).join('\0')) || (mark !== undefined && mark !== a.execMark)) {
        this.detach(pid, a);
        this.seen.delete(pid);
      }
    }
    const rootPending = !this.procs.has(this.rootPid) && !this.seen.has(this.rootPid);
    for (const pid of [...(rootPending ? [this.rootPid] : []), ...this.scanner.scan(this.rootPid)]) {
      if (this.procs.has(pid) || this.seen.has(pid)) continue;
      const exe = readExe(pid);
      if (exe === undefined || this.notPython.get(pid) === exe) continue;
      const first = this.firstSeen.get(pid) ?? nowMs;
      this.firstSeen.set(pid, first);
      // A child that still has its parent's command line has not exec'd yet. If it was made
      // by vfork (subprocess does), it shares its parent's memory until exec, and a
      // /proc/PID/mem opened now would keep reading the parent's: wait (a real exec comes
      // within milliseconds). A fork that never execs (multiprocessing, gunicorn's workers)
      // has memory of its own — kcmp says so — and is attached at once; where kcmp cannot
      // tell, after 0.3 s.
      const parent = this.scanner.parentOf(pid);
      if (parent !== undefined && nowMs - first < 300) {
        const mine = readCmdline(pid);
        const theirs = readCmdline(parent);
        if (mine !== undefined && theirs !== undefined && mine.join('\0') === theirs.join('\0') && syscalls()?.sameMemory(pid, parent) !== 0) continue;
      }
      try {
        const mark = readExecMark(pid); // before the attach: an exec during it shows at the next scan
        this.add(ProcessSampler.attach(pid), mark);
        this.notPython.delete(pid);
        this.firstSeen.delete(pid);
      } catch (e) {
        if (e instanceof PermissionError) throw e;
        // Not CPython, or not initialised yet (just exec'd: libpython not mapped, no
        // version yet), or gone. Retried on every scan for 2 s, then only once its
        // executable changes.
        // (The root gets 10 s: a launched interpreter may be slow to start on a loaded machine.)
        if (!(e instanceof ProcessGoneError) && nowMs - first > (pid === this.rootPid ? 10_000 : 2000)) this.notPython.set(pid, exe);
      }
    }
  }

  private frameOf(f: Frame, cwd: string | undefined): number {
    const mode = this.opts.lines ?? 'line';
    const line = mode === 'none' ? 0 : mode === 'function' ? f.firstLine : (f.line ?? 0);
    let file = f.file;
    if (this.opts.filenames === 'short') {
      const k = `${cwd ?? ''}\0${file}`;
      let sh = this.shortCache.get(k);
      if (sh === undefined) {
        this.shortCache.set(k, (sh = shortenFilename(file, cwd)));
        if (sh !== file && file.endsWith(sh)) this.pathRoots.add(file.slice(0, file.length - sh.length));
      }
      file = sh;
    }
    const key = `${f.qualname}\0${file}\0${line}`;
    let fi = this.frameCache.get(key);
    if (fi === undefined) {
      fi = this.builder.frame({ kind: 'python', name: f.name, qualname: f.qualname, file, line });
      this.frameCache.set(key, fi);
    }
    return fi;
  }

  /** the profile's frame for a walker Frame of process `a` (the walker shares Frame objects: memoised per object) */
  private frameIndex(a: Attached, f: Frame): number {
    let fi = a.frameIdx.get(f);
    if (fi === undefined) a.frameIdx.set(f, (fi = this.frameOf(f, a.cwd)));
    return fi;
  }

  /** `process PID (command line)`, for process root frames */
  processLabel(pid: number): string {
    const cmd = this.seen.get(pid);
    if (!cmd || cmd.length === 0) return `process ${pid}`;
    const text = cmd.join(' ').replace(/\s+/g, ' ').trim();
    return `process ${pid} (${text.length > 120 ? text.slice(0, 117) + '...' : text})`;
  }

  private truncatedFrame = -1;
  /** `task NAME` marker frames by name */
  private taskMarkers = new Map<string, number>();
  /** per task (address): its last chain and the stack it was recorded under */
  private taskStacks = new Map<Address, { task: AsyncTask; awaited: AsyncTask[]; children: string; stack: number }>();

  /** a marker frame by name (`task NAME`, `awaits task NAME`), made once */
  private markerFrame(name: string): number {
    let m = this.taskMarkers.get(name);
    if (m === undefined) this.taskMarkers.set(name, (m = this.builder.frame({ name, kind: 'marker' })));
    return m;
  }
  /** task samples recorded (their weight: a task read every Nth tick counts N), and ticks where the tasks could not be read */
  taskSamples = 0;
  taskReadErrors = 0;
  /** tasks read, reads made and their strides summed (tasks read in turn to stay within ASYNC_BUDGET) */
  taskReads = 0;
  /** why the tasks could not be read at all (an unknown version), when so */
  taskUnreadable: string | undefined;
  /** samples of running tasks (their thread's stack joined under the task's root) */
  runningTaskSamples = 0;
  /** task reads that did not hold together twice (a task finishing under the read): left out */
  taskTorn = 0;
  taskTicks = 0;
  strideSum = 0;
  /** this tick's waiting tasks: stack × 2^20 + thread index → summed weight (one sample per stack, thread and tick) */
  private tickTasks = new Map<number, number>();

  /** One sample per waiting asyncio task of process `pid` (SampleOptions.async). */
  private recordTasks(pid: number, a: Attached, sinceStartNs: number, threads: readonly ThreadSample[]): void {
    let read;
    try {
      read = tickTasks(a.s, this.opts.rateHz ?? 100);
    } catch {
      this.taskReadErrors++;
      return;
    }
    if (read === null) return; // not this tick's
    if (read.unreadable !== undefined) this.taskUnreadable = read.unreadable;
    const tasks = read.tasks;
    const weight = read.stride;
    this.taskTicks++;
    this.strideSum += weight;
    this.taskReads += tasks.length;
    this.taskTorn += read.torn;
    if (tasks.length === 0) return;
    const byStack = this.tickTasks;
    byStack.clear();
    // threading ident → the profile's thread index, for tasks of loops in other threads
    let idents: Map<string, number> | undefined;
    const loopThreadIdx = (ident: string): number | undefined => {
      if (idents === undefined) {
        idents = new Map();
        for (const x of threads) {
          const i = a.threadIdx.get(x.tid)?.idx;
          if (i !== undefined) idents.set(String(x.ident), i);
        }
      }
      return idents.get(ident);
    };
    let th = a.threadIdx.get(pid);
    if (th === undefined) a.threadIdx.set(pid, (th = { idx: this.builder.thread(pid, pid), named: false, frames: [], truncated: false, stacks: [] }));
    for (const t of tasks) {
      if (t.state !== 'pending') continue;
      const label = TASK_ROOT_PREFIX + taskLabel(t);
      // running: its chain is its thread's stack from the task's coroutine inwards, in the thread's state
      if (t.running) {
        this.recordRunningTask(a, t, label, weight, threads, sinceStartNs);
        continue;
      }
      // ready (waiting for nothing but the loop): left to the thread's own sample
      if (t.waitsOn === null) continue;
      // a task awaiting another task (`await task`, wait_for): the awaited task's chain goes
      // on under the parent's, after an `awaits task NAME` marker, and so on down
      const awaited: AsyncTask[] = [];
      for (let c = t.awaits; c !== undefined && awaited.length < MAX_AWAITED && c !== t && !awaited.includes(c); c = c.awaits) awaited.push(c);
      // a task waiting on its gather's or TaskGroup's children: a marker saying so
      const children = t.children ? `awaits its ${t.children.kind} of ${t.children.count}` : '';
      // a waiting task's chain rarely changes from one tick to the next (the Frame objects
      // are shared): the last tick's stack index, when the reader gave the same objects
      const last = this.taskStacks.get(t.address);
      let stack: number;
      if (last !== undefined && last.task === t && last.children === children && last.awaited.length === awaited.length && last.awaited.every((c, i) => c === awaited[i])) stack = last.stack;
      else {
        stack = this.builder.stack(-1, this.markerFrame(label));
        for (let j = t.stack.length - 1; j >= 0; j--) stack = this.builder.stack(stack, this.frameIndex(a, t.stack[j]!));
        for (const c of awaited) {
          stack = this.builder.stack(stack, this.markerFrame(`awaits ${TASK_ROOT_PREFIX}${taskLabel(c)}`));
          for (let j = c.stack.length - 1; j >= 0; j--) stack = this.builder.stack(stack, this.frameIndex(a, c.stack[j]!));
        }
        if (children) stack = this.builder.stack(stack, this.markerFrame(children));
        if (this.taskStacks.size > 4 * MAX_TASKS_PER_TICK) this.taskStacks.clear();
        this.taskStacks.set(t.address, { task: t, awaited, children, stack });
      }
      // on the thread whose loop runs it (the main thread when not known)
      const on = t.loopThread !== undefined ? (loopThreadIdx(t.loopThread) ?? th.idx) : th.idx;
      const key = stack * 1048576 + on;
      byStack.set(key, (byStack.get(key) ?? 0) + weight);
      this.taskSamples += weight;
    }
    for (const [key, w] of byStack) {
      this.builder.sample(Math.floor(key / 1048576), w, key % 1048576, 'idle', sinceStartNs);
      this.rows++;
    }
  }

  /**
   * A running task's sample: the stack of the thread it runs on, from its coroutine's frame
   * (the same function, outermost occurrence) inwards, under its `task NAME` root, in the
   * thread's state — so a task's view holds its CPU time (or a loop blocked in it) with its
   * waits. Not found on any thread (it finished or suspended between the reads): none.
   */
  private recordRunningTask(a: Attached, t: AsyncTask, label: string, weight: number, threads: readonly ThreadSample[], sinceStartNs: number): void {
    const own = t.stack.at(-1);
    if (own === undefined) return;
    for (const th of threads) {
      let at = -1;
      for (let i = th.frames.length - 1; i >= 0; i--) {
        const f = th.frames[i]!;
        if (f === own || (f.name === own.name && f.file === own.file && f.firstLine === own.firstLine)) {
          at = i;
          break;
        }
      }
      if (at < 0) continue;
      let stack = this.builder.stack(-1, this.markerFrame(label));
      for (let j = at; j >= 0; j--) stack = this.builder.stack(stack, this.frameIndex(a, th.frames[j]!));
      const idx = a.threadIdx.get(th.tid)?.idx ?? a.threadIdx.get(a.s.pid)!.idx;
      this.builder.sample(stack, weight, idx, th.state, sinceStartNs);
      this.rows++;
      this.taskSamples += weight;
      this.runningTaskSamples += weight;
      return;
    }
  }

  /**
   * One stack counted `weight` times (the kernel walk's counts, capture/ebpf/pywalk.ts; needs
   * `weighted`). False when `pid` is not attached.
   */
  recordWeighted(pid: number, t: ThreadSample, sinceStartNs: number, weight: number): boolean {
    const a = this.procs.get(pid);
    if (a === undefined) return false;
    this.record(pid, a, t, sinceStartNs, weight);
    return true;
  }

  private record(pid: number, a: Attached, t: ThreadSample, sinceStartNs: number, weight = 1): void {
    let th = a.threadIdx.get(t.tid);
    if (th === undefined || !th.named) {
      const name = a.s.threadName(t.ident);
      if (th === undefined || name !== undefined) {
        const idx = this.builder.thread(pid, t.tid, name);
        if (th === undefined) a.threadIdx.set(t.tid, (th = { idx, named: name !== undefined, frames: [], truncated: false, stacks: [] }));
        else (th.idx = idx), (th.named = name !== undefined);
      }
    }
    if (t.truncated) this.truncatedSamples += weight;
    const frames = t.frames;
    const n = frames.length;
    // A thread's stacks change little from one sample to the next: the part from the root
    // that equals its last sample's (the walker's Frame objects are shared) takes that
    // sample's stack index instead of being interned again, frame by frame.
    const last = th.frames;
    const stacks = th.stacks;
    let same = 0;
    if (t.truncated === th.truncated) {
      const m = Math.min(n, last.length);
      while (same < m && frames[n - 1 - same] === last[last.length - 1 - same]) same++;
    }
    let stack = -1;
    if (same > 0) stack = stacks[same - 1]!;
    // a stack that does not reach its thread's base (torn on every read, or past the depth
    // cap) hangs under a marker root instead of passing for a stack with another root
    else if (t.truncated) {
      if (this.truncatedFrame < 0) this.truncatedFrame = this.builder.frame({ name: '[truncated]', kind: 'marker' });
      stack = this.builder.stack(-1, this.truncatedFrame);
    }
    for (let j = same; j < n; j++) {
      stack = this.builder.stack(stack, this.frameIndex(a, frames[n - 1 - j]!));
      stacks[j] = stack;
    }
    stacks.length = n;
    th.frames = frames;
    th.truncated = t.truncated;
    this.builder.sample(stack, weight, th.idx, t.state, sinceStartNs);
    this.rows++;
    if (t.holdsGil) this.gilSamples++;
  }

  /**
   * One tick of every attached process. Returns 'stop' once the root process is gone and no
   * followed subprocess is left.
   */
  tick(sinceStartNs: number, nowNs = sinceStartNs, shared?: TickStart): 'stop' | void {
    this.ticks++;
    if (this.opts.subprocesses && nowNs - this.lastScanNs >= (this.opts.subprocessScanS ?? 0.1) * 1e9) {
      this.lastScanNs = nowNs;
      this.scanSubprocesses();
    }
    let threads = 0;
    // several processes: the sampler's own tick start is read once for all of them
    if (shared === undefined && this.procs.size > 1) shared = this.tickStart.restart();
    for (const [pid, a] of this.procs) {
      const r = a.s.tick(shared);
      if (r.errors > 0 && pid !== this.rootPid && a.execMark !== undefined) {
        // a followed process that exec'd since the last scan is read with its old program's
        // layout: not an error of the sampler's; the next tick's scan attaches to the new program
        const mark = readExecMark(pid);
        if (mark !== undefined && mark !== a.execMark) {
          this.detach(pid, a);
          this.seen.delete(pid);
          if (this.lastScanNs !== Infinity) this.lastScanNs = -Infinity;
          continue;
        }
      }
      this.errors += r.errors;
      if (r.gone) {
        this.detach(pid, a);
        continue;
      }
      threads += r.threads.length + (r.asleep ?? 0);
      for (const t of r.threads) {
        if (this.opts.gilOnly && !t.holdsGil) continue;
        if (t.state === 'idle' && !this.opts.idle) continue;
        this.record(pid, a, t, sinceStartNs);
      }
      if (this.opts.async) this.recordTasks(pid, a, sinceStartNs, r.threads);
    }
    this.lastThreads = threads;
    if (!this.procs.has(this.rootPid)) {
      if (!this.opts.subprocesses) return 'stop';
      if (!alive(this.rootPid)) {
        if (this.procs.size === 0) return 'stop';
        // the root exited: keep following its children, which are reparented (not our descendants any more)
        this.lastScanNs = Infinity;
      }
      // else: a root that is not (yet) Python; its Python descendants are what we sample
    }
  }

  /** the samplers' own counts (walk quality, stops, CPU judgements) summed over every process sampled */
  counts(): SamplerCounts {
    const c = { ...this.pastCounts };
    for (const a of this.procs.values()) addCounts(c, a.s.counts());
    return c;
  }

  private detach(pid: number, a: Attached): void {
    addCounts(this.pastCounts, a.s.counts());
    a.s.close();
    this.procs.delete(pid);
  }

  close(): void {
    for (const [pid, a] of [...this.procs]) this.detach(pid, a);
  }

  /**
   * Hand over what was recorded since the last call and go on into a fresh builder (the
   * agent's windows): every index into the old builder — frames, threads, stacks, markers —
   * is forgotten. Returns the old builder (its meta is the caller's to fill) and its row count.
   */
  takeWindow(): { builder: ProfileBuilder; rows: number; truncated: number } {
    const b = this.builder;
    const out = { builder: b, rows: this.rows, truncated: this.truncatedSamples };
    this.builder = new ProfileBuilder({ meta: { lens: b.meta.lens, backend: b.meta.backend, mode: b.meta.mode }, unitValues: !this.opts.async && !this.opts.weighted });
    this.frameCache.clear();
    this.truncatedFrame = -1;
    this.taskMarkers.clear();
    this.taskStacks.clear();
    for (const a of this.procs.values()) {
      a.frameIdx = new WeakMap();
      a.threadIdx = new Map();
    }
    this.rows = 0;
    this.truncatedSamples = 0;
    return out;
  }


  /** the processes attached now */
  get pids(): number[] {
    return [...this.procs.keys()];
  }
}

/** a task's name, unless it is asyncio's default ("Task-12"): then its coroutine's */
function taskLabel(t: AsyncTask): string {
  return /^Task-\d+$/.test(t.name) && t.coroutine ? t.coroutine : t.name;
}

/** tasks awaited in turn (a awaits b awaits c…) followed under a task's chain at most */
const MAX_AWAITED = 8;

/** tasks read per process and tick at most (record and top --async) */
const MAX_TASKS_PER_TICK = 2000;
/**
 * the share of each tick's interval that reading asyncio tasks may take (record and top
 * --async): past it, tasks are read in turn, each every Nth tick with weight N
 */
const ASYNC_BUDGET = 0.015;

/** tasks read at least this often when read in turn (ASYNC_BUDGET): fewer, larger reads up to it */
const ASYNC_READ_EVERY_S = 0.1;

/**
 * One tick's read of a process's asyncio tasks at `rateHz`, within ASYNC_BUDGET (record and
 * top --async), or null when this tick reads none. Throws as asyncTasks does.
 */
export function tickTasks(s: ProcessSampler, rateHz: number): AsyncTasks | null {
  const maxEvery = 2 ** Math.max(0, Math.floor(Math.log2(rateHz * ASYNC_READ_EVERY_S)));
  return s.budgetedAsyncTasks((ASYNC_BUDGET * 1e9) / rateHz, { max: MAX_TASKS_PER_TICK, maxEvery });
}

/** Sample process `pid` into a Profile. Attach errors (gone, permission, unsupported) throw. */
export async function sampleProcess(pid: number, opts: SampleOptions = {}): Promise<Profile> {
  return sampleAttached(ProcessSampler.attach(pid, { ...(opts.maxDepth !== undefined ? { maxDepth: opts.maxDepth } : {}), ...(opts.blocking ? { blocking: true } : {}) }), opts);
}

/**
 * Sample an already attached process (and, with `subprocesses`, its descendants) into a
 * Profile. With `subprocesses`, `root` may also be the pid of a process that is not Python.
 */
export async function sampleAttached(root: ProcessSampler | number, opts: SampleOptions = {}): Promise<Profile> {
  const rateHz = opts.rateHz ?? 100;
  if (!(rateHz > 0 && Number.isFinite(rateHz))) throw new RangeError(`rateHz must be a positive number, not ${rateHz}`);
  if (typeof root === 'number' && !opts.subprocesses) throw new RangeError('sampling a pid that is not attached needs `subprocesses`');
  const clock = opts.clock ?? realClock;
  const pid = typeof root === 'number' ? root : root.pid;
  const command = typeof root === 'number' ? readCmdline(root) : root.command;
  const rec = new Recorder(root, opts);
  const startTime = new Date().toISOString();
  const cpu0 = process.cpuUsage();
  let sched: ScheduleResult;
  const onProgress = opts.onProgress;
  try {
    sched = await runSchedule(
      clock,
      1e9 / rateHz,
      (sinceStart) => {
        const r = rec.tick(sinceStart);
        onProgress?.({ elapsedNs: sinceStart, ticks: rec.ticks, samples: rec.rows, errors: rec.errors, threads: rec.lastThreads, processes: rec.processCount });
        return r;
      },
      {
        ...(opts.durationS !== undefined ? { durationNs: opts.durationS * 1e9 } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        jitter: opts.jitter ?? DEFAULT_JITTER,
        yieldEveryMs: RECORD_YIELD_MS,
      },
    );
  } finally {
    rec.close();
  }
  const counts = rec.counts();
  const cpu = process.cpuUsage(cpu0);
  const durationNs = Math.max(0, sched.endNs - sched.startNs);
  const cpuNs = (cpu.user + cpu.system) * 1000;

  const b = rec.builder;
  b.meta = {
    ...b.meta,
    rateHz,
    durationNs,
    startTime,
    pid,
    sampleCount: rec.rows,
    errorCount: rec.errors,
    overhead: { fraction: durationNs > 0 ? cpuNs / durationNs : 0, method: 'sampler CPU time / wall time' },
    environment: {
      ...hostEnvironment(),
      ...(rec.first ? { python: { version: rec.first.version.text, implementation: 'CPython', ...(rec.first.executable ? { executable: rec.first.executable } : {}) } } : {}),
    },
    extra: {
      achievedRateHz: durationNs > 0 ? Math.round((100 * sched.ticks) / (durationNs / 1e9)) / 100 : 0,
      missedTicks: sched.missedTicks,
      ticks: sched.ticks,
      intervals: intervalDistribution(rateHz, opts.jitter ?? DEFAULT_JITTER),
      cpuRule: (opts.cpuRule ?? 'moving') === 'moving' ? CPU_RULE : 'on-CPU = runnable (state R)',
      gilSamples: rec.gilSamples,
      ...(opts.async
        ? {
            asyncTaskSamples: rec.taskSamples,
            asyncTaskReads: rec.taskReads,
            asyncTaskTorn: rec.taskTorn,
            asyncRunningTaskSamples: rec.runningTaskSamples,
            ...(rec.taskUnreadable !== undefined ? { asyncTasksUnreadable: rec.taskUnreadable } : {}),
            asyncTaskReadErrors: rec.taskReadErrors,
            asyncTaskStride: rec.taskTicks > 0 ? Math.round((10 * rec.strideSum) / rec.taskTicks) / 10 : 1,
            asyncTasks: `a sample per waiting asyncio task each tick: its await chain under a \`task NAME\` root on the main thread, state idle; a running task's: its thread's stack from its coroutine in, in the thread's state; past ${100 * ASYNC_BUDGET} % of the interval on average, tasks are read in turn, each every Nth tick with weight N (a read at most every ${1000 * ASYNC_READ_EVERY_S} ms, of one turn)`,
          }
        : {}),
      truncatedSamples: rec.truncatedSamples,
      ...(rec.pathRoots.size ? { pathRoots: JSON.stringify([...rec.pathRoots]) } : {}),
      ...counts,
      pausedNs: Math.round(counts.pausedNs),
      stackReads: opts.blocking ? 'blocking: each running thread stopped (ptrace) while read' : 'lock-free, validated; torn reads read again, then with the thread stopped (within 1 % of wall time)',
      ...(opts.subprocesses ? { processes: rec.seen.size } : {}),
      ...(opts.lines && opts.lines !== 'line' ? { lines: opts.lines } : {}),
    },
  };
  if (command) b.meta.command = command;
  const profile = b.build();
  // Root frames are added at the end, when every thread's name is known (a thread is often
  // sampled before `threading` has named it).
  const processes = opts.processRoots ?? opts.subprocesses ?? false;
  if (!opts.threadRoots && !processes) return profile;
  return withThreadRoots(profile, { threads: opts.threadRoots ?? false, processes, processLabel: (p) => rec.processLabel(p) });
}
