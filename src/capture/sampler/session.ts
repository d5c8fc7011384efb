/**
 * One attached CPython process, sampled one tick at a time. `record` (through `Recorder`),
 * `top` and subprocess following all sit on this.
 *
 * - `attach(pid)`: `locateRuntime`, the struct layout, `ProcMemory`. Throws the sampler's
 *   typed errors (ProcessGoneError, PermissionError, RuntimeNotFoundError,
 *   UnsupportedVersionError).
 * - `tick()`: one walk of every thread. Each thread with frames becomes a `ThreadSample`
 *   with its OS TID (3.11+ `native_thread_id`; 3.8–3.10 through glibc's struct pthread, the
 *   offset found on the first tick that can), its OS state from /proc/PID/task/TID/stat
 *   ('R' → on-cpu, else idle, unreadable → unknown) and whether it holds the GIL. A thread
 *   whose walk failed counts one error; an unreadable thread list counts one error for the
 *   tick; a vanished process sets `gone`. `tick` never throws for a running target's
 *   torn state.
 */
import { closeSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import type { SampleState } from '../../model/profile.ts';
import { findPthreadTidOffset, gilHolder, gilStructAddress, gilStructOf, statProcessor, statStateLetter, TaskIds } from './threads.ts';
import { layoutForRuntime, readCodeObjectGeneration } from './debug-offsets.ts';
import type { Layout } from './layouts/types.ts';
import { BadReadError, ProcessGoneError, ProcMemory, WordList, type Address, type PagePool, type ProcessMemory } from './memory.ts';
import { locateRuntime, type PythonVersion, type RuntimeLocation } from './runtime.ts';
import { isTorn, mainInterpreter, ThreadNames } from './threadnames.ts';
import { CodeTypeCheck, DEFAULT_MAX_DEPTH, framesFromWords, keepPlan, leafMarkWords, listInterpreters, listThreadStates, PAGE_SIZE, PageCacheMemory, walkStackWith, walkThreads, type CodeCache, type StackWalk, type Frame, type InterpreterRef, type ThreadStack, type WalkOptions, type WordsWalk } from './walker.ts';
import { ThreadPauser } from './pause.ts';
import { newAsyncReadState, readAsyncTasks, type AsyncTasks } from './asyncio.ts';
import { AsyncioDebugError, findAsyncioDebugOffsets, type AsyncioDebugOffsets } from './asyncio-debug.ts';
import { ERRNO, SyscallError, syscalls } from './syscalls.ts';
import { GATE_DIR } from '../session/gate.ts';

const GATE_FILE = `${GATE_DIR}/sitecustomize.py`;

/**
 * Where a thread's stack (leaf first) stands against pylens's start gate:
 * - `held`: inside the gate, its time pylens's and not the program's — a frame of the gate is
 *   the leaf, or leads to it through the gate's own helpers (`_wait`, `_unshadow`), or `_gate`
 *   is still searching for the sitecustomize it shadows (the import system's finders, a
 *   `.pth`-installed meta path finder);
 * - `through`: running the sitecustomize the gate shadows (a user's, a distribution's — a
 *   `<module>` frame leafward of `_gate`): the program's time, as it would be without pylens,
 *   though the gate's frames are under it (`withoutGate` takes them out of the sample);
 * - `none`: no frame of the gate.
 */
export function gatePart(frames: readonly Frame[]): 'held' | 'through' | 'none' {
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    if (f.file !== GATE_FILE) continue;
    if (i === 0 || f.name !== '_gate') return 'held';
    for (let j = 0; j < i; j++) if (frames[j]!.name === '<module>') return 'through';
    return 'held';
  }
  return 'none';
}

/** `gatePart(frames) === 'held'` */
export function inGate(frames: readonly Frame[]): boolean {
  return gatePart(frames) === 'held';
}

/** the stack without the gate's frames (a new array; `frames` is left as it is) */
export function withoutGate(frames: readonly Frame[]): Frame[] {
  return frames.filter((f) => f.file !== GATE_FILE);
}

/** a thread a steady tick expects (`ProcessSampler.steady`) */
interface SteadyThread {
  tstate: Address;
  /** its pthread id, and as two 32-bit halves (compared with the thread state's) */
  ident: bigint;
  lo: number;
  hi: number;
  /** its OS TID */
  tid: number;
}

export interface ThreadSample {
  /** OS thread id when known, else the interpreter's own id for the thread */
  tid: number;
  tidIsOs: boolean;
  /** threading ident (pthread_self) */
  ident: bigint;
  /** leaf first */
  frames: Frame[];
  state: SampleState;
  holdsGil: boolean;
  /** the stack does not reach the thread's base (depth cap, or `torn`) */
  truncated: boolean;
  /** every read of this stack this tick was torn: `frames` is the leaf part that was read */
  torn: boolean;
  /** subinterpreter id (absent for the main interpreter) */
  interp?: number;
}

/**
 * What a sampler counted about its own reads, named as in the profile's metadata: how whole
 * the stacks were, the thread stops and their cost, and runnable threads not counted as CPU.
 */
export interface SamplerCounts {
  /** thread walks that were torn at first and read again (the stack then validated or was marked) */
  retriedWalks: number;
  /** extra reads those took */
  walkRereads: number;
  /** stacks that never validated: kept, marked truncated */
  tornStacks: number;
  /** stacks cut at the depth cap */
  depthCutStacks: number;
  /** stacks read with their thread stopped */
  pausedWalks: number;
  /** threads stopped and resumed */
  pauses: number;
  /** time threads were held stopped, ns */
  pausedNs: number;
  /** stops that failed */
  pauseFailures: number;
  /** torn stacks not stopped and read again because the stop budget was spent */
  pauseBudgetSkips: number;
  /** samples of runnable threads judged waiting for a CPU (not on it) */
  runnableWaiting: number;
  /** runnable threads whose Python did not move, judged by their task clock (perf_event: exact) */
  clockJudged: number;
  /** … judged by their scheduler accounting (/proc/…/sched: where perf events are not allowed) */
  schedJudged: number;
  /** runnable threads not running at the clock's reads but no longer runnable right after: they ran in between (on) */
  ranThenBlocked: number;
  /** thread samples not read at all: asleep at the picture, in CPU mode (`skipAsleep`) */
  asleepNotWalked: number;
  /** wall-clock samples whose stack was given again, not read: the thread had not run since its last read (`reuseUnrun`) */
  unrunReused: number;
  /** samples dropped because the thread was still inside pylens's start gate (python/gate) */
  gateSamples: number;
  /** threads seen moving during the picture itself (their words read before and after its pages: `bracket`), not read again */
  movedInPicture: number;
  /** ticks made the short way (`ProcessSampler.steady`): the same moving threads, walked whole from the picture */
  steadyTicks: number;
  /** stacks given from an unsteady walk: the thread kept calling or returning over every read (walker.ts `StackWalk.unsteady`) */
  unsteadyStacks: number;
}

export function emptyCounts(): SamplerCounts {
  return { retriedWalks: 0, walkRereads: 0, tornStacks: 0, depthCutStacks: 0, pausedWalks: 0, pauses: 0, pausedNs: 0, pauseFailures: 0, pauseBudgetSkips: 0, runnableWaiting: 0, clockJudged: 0, schedJudged: 0, ranThenBlocked: 0, asleepNotWalked: 0, unrunReused: 0, gateSamples: 0, movedInPicture: 0, steadyTicks: 0, unsteadyStacks: 0 };
}

/** `into` += `c`, field by field */
export function addCounts(into: SamplerCounts, c: SamplerCounts): void {
  for (const k of Object.keys(into) as (keyof SamplerCounts)[]) into[k] += c[k];
}

export interface TickResult {
  threads: ThreadSample[];
  /** threads not walked: asleep at the picture, in CPU mode (`skipAsleep`) */
  asleep?: number;
  /** threads (or the whole tick) that could not be read */
  errors: number;
  /** the process has exited */
  gone: boolean;
}

/** what a tick skipped by skipStill gives (one object for all: nothing to allocate) */
const STILL_TICK: TickResult = Object.freeze({ threads: Object.freeze([]) as unknown as ThreadSample[], errors: 0, gone: false });

export function readCmdline(pid: number): string[] | undefined {
  try {
    const parts = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (parts.at(-1) === '') parts.pop();
    return parts.length ? parts : undefined;
  } catch {
    return undefined;
  }
}

export function readExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/**
 * What changes when process `pid` execs, even into the same program with the same command
 * line: its code and stack addresses (/proc/PID/stat start_code and startstack, fields 26
 * and 28; a new address space is laid out anew, randomized). Undefined when unreadable.
 */
export function readExecMark(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state)
    const code = f[26 - 3];
    const stack = f[28 - 3];
    // zeros: an exiting process (its address space gone), or one not ours to look into
    if (code === undefined || stack === undefined || (code === '0' && stack === '0')) return undefined;
    return `${code}:${stack}`;
  } catch {
    return undefined;
  }
}

/** the process's working directory, when readable */
export function readCwd(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/**
 * OS run state of a process's threads and when each last left a CPU, from
 * /proc/PID/task/TID/stat and .../sched. The files of each thread stay open and are re-read at offset 0 (the kernel
 * regenerates them on every read): one syscall per file and tick instead of three. Files of
 * threads not asked about for `pruneAfter` calls are closed.
 */
export class TaskStates {
  private pid: number;
  private fds = new Map<number, { fd: number; used: number }>();
  private debugFds = new Map<number, { fd: number; used: number }>();
  private clockFds = new Map<number, { fd: number; used: number }>();
  /** why task clocks cannot be opened (then `onCpuNow` is undefined); set on the first failure that is not the thread's own */
  clockError: string | undefined;
  private clockBuf: Buffer;
  private buf: Buffer;
  /** native buffers read through libc (syscalls.ts readFile), where koffi loads */
  private clockHandle: unknown;
  private bufHandle: unknown;
  private sys = syscalls();
  private calls = 0;
  private pruneAfter: number;
  constructor(pid: number, pruneAfter = 200) {
    this.pid = pid;
    this.pruneAfter = pruneAfter;
    if (this.sys !== undefined) {
      const f = this.sys.fileBuffer(4096);
      const c = this.sys.fileBuffer(8);
      this.buf = f.buf;
      this.bufHandle = f.handle;
      this.clockBuf = c.buf;
      this.clockHandle = c.handle;
    } else {
      this.buf = Buffer.alloc(4096);
      this.clockBuf = Buffer.alloc(8);
    }
  }

  /** read(2) (offset < 0) or pread(2) into one of the buffers; throws on an error */
  private readInto(fd: number, clock: boolean, offset: number): number {
    if (this.sys !== undefined) {
      const n = this.sys.readFile(fd, clock ? this.clockHandle : this.bufHandle, clock ? 8 : 4096, offset);
      if (n < 0) throw new SyscallError(offset < 0 ? 'read' : 'pread', -n);
      return n;
    }
    return clock ? readSync(fd, this.clockBuf, 0, 8, null) : readSync(fd, this.buf, 0, this.buf.length, offset);
  }

  /** the last `readFile` failed because the thread is gone (ENOENT on open, ESRCH on read) */
  private gone = false;

  private readFile(map: Map<number, { fd: number; used: number }>, tid: number, file: string): number | undefined {
    this.gone = false;
    let e = map.get(tid);
    if (e === undefined) {
      try {
        e = { fd: openSync(`/proc/${this.pid}/task/${tid}/${file}`, 'r'), used: this.calls };
      } catch (err) {
        this.gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
        return undefined;
      }
      map.set(tid, e);
    }
    e.used = this.calls;
    try {
      return this.readInto(e.fd, false, 0);
    } catch (err) {
      this.gone = (err instanceof SyscallError && err.errno === ERRNO.ESRCH) || (err as NodeJS.ErrnoException).code === 'ESRCH';
      this.drop(map, tid);
      return undefined;
    }
  }

  /** 'R', 'S', 'D', …; 'X' (dead, as /proc says it) when the thread has ended; undefined when unreadable */
  letter(tid: number): string | undefined {
    const n = this.readFile(this.fds, tid, 'stat');
    this.cpuOfLast = undefined;
    // a thread that has ended (its tstate not yet unlinked when the walk saw it) is on no CPU
    if (n === undefined) return this.gone ? 'X' : undefined;
    const letter = statStateLetter(this.buf, n);
    if (letter === 'R') this.cpuOfLast = statProcessor(this.buf, n);
    return letter;
  }

  private cpuOfLast: number | undefined;

  /** the CPU the thread of the last `letter` call last ran on, when it was runnable (undefined otherwise) */
  lastCpu(): number | undefined {
    return this.cpuOfLast;
  }

  /**
   * The thread's scheduler accounting (/proc/PID/task/TID/sched, `SchedInfo`); undefined
   * when unreadable (no CONFIG_SCHED_DEBUG, gone).
   */
  sched(tid: number): SchedInfo | undefined {
    const n = this.readFile(this.debugFds, tid, 'sched');
    return n === undefined ? undefined : parseSched(this.buf, n);
  }

  /**
   * Is the thread on a CPU right now? Its task clock (perf_event_open, kept open) read twice:
   * a read asks the thread's CPU for the time it has run up to that moment, so the second
   * read is ahead of the first exactly when the thread is running. Undefined when task
   * clocks cannot be opened here (`clockError` says why) or the thread is gone.
   */
  onCpuNow(tid: number): boolean | undefined {
    if (this.clockError !== undefined) return undefined;
    let e = this.clockFds.get(tid);
    if (e === undefined) {
      const sys = syscalls();
      if (!sys) {
        this.clockError = 'no system calls (koffi)';
        return undefined;
      }
      const fd = sys.openTaskClock(tid);
      if (fd < 0) {
        // ESRCH: this thread is gone; EMFILE/ENFILE: no descriptor free now (thousands of
        // threads), and unused ones are closed as time goes on; anything else holds for every thread
        if (fd !== -ERRNO.ESRCH && fd !== -ERRNO.EMFILE && fd !== -ERRNO.ENFILE) this.clockError = `perf_event_open failed (errno ${-fd}${-fd === ERRNO.EACCES || -fd === ERRNO.EPERM ? ': needs CAP_PERFMON or kernel.perf_event_paranoid ≤ 1' : ''})`;
        return undefined;
      }
      this.clockFds.set(tid, (e = { fd, used: this.calls }));
    }
    e.used = this.calls;
    try {
      if (this.readInto(e.fd, true, -1) !== 8) return undefined;
      const a = this.clockBuf.readBigUInt64LE(0);
      if (this.readInto(e.fd, true, -1) !== 8) return undefined;
      return this.clockBuf.readBigUInt64LE(0) > a;
    } catch {
      this.drop(this.clockFds, tid);
      return undefined;
    }
  }

  /**
   * The thread's CPU time so far in ns (its task clock, one read: up to date at this moment
   * even while it runs; a number, no BigInt to allocate: 2^53 ns is 104 days of CPU); -1 when
   * task clocks cannot be opened here or the thread is gone.
   */
  clockNum(tid: number): number {
    if (this.clockError !== undefined) return -1;
    let e = this.clockFds.get(tid);
    if (e === undefined) {
      if (this.onCpuNow(tid) === undefined) return -1;
      e = this.clockFds.get(tid);
      if (e === undefined) return -1;
    }
    e.used = this.calls;
    try {
      if (this.readInto(e.fd, true, -1) !== 8) return -1;
      return this.clockBuf.readUInt32LE(0) + this.clockBuf.readUInt32LE(4) * 4294967296;
    } catch {
      this.drop(this.clockFds, tid);
      return -1;
    }
  }

  /** call once per tick */
  endTick(): void {
    if (++this.calls % this.pruneAfter !== 0) return;
    for (const map of [this.fds, this.debugFds, this.clockFds]) for (const [tid, e] of map) if (this.calls - e.used > this.pruneAfter) this.drop(map, tid);
  }

  private drop(map: Map<number, { fd: number; used: number }>, tid: number): void {
    const e = map.get(tid);
    if (!e) return;
    map.delete(tid);
    try {
      closeSync(e.fd);
    } catch {
      /* already closed */
    }
  }

  close(): void {
    for (const map of [this.fds, this.debugFds, this.clockFds]) for (const tid of [...map.keys()]) this.drop(map, tid);
    if (this.sys !== undefined && this.bufHandle !== undefined) {
      this.sys.freeNative(this.bufHandle);
      this.sys.freeNative(this.clockHandle);
      this.bufHandle = this.clockHandle = undefined;
      this.sys = undefined; // reads after close go through fs (and fail on the closed files)
      this.buf = Buffer.alloc(4096);
      this.clockBuf = Buffer.alloc(8);
    }
  }
}

/**
 * A thread's scheduler accounting, all on the scheduler's clock (ns):
 * - `execStartNs` (se.exec_start): when its CPU time was last brought up to date — when it
 *   got its CPU, when it left it, and at every scheduler tick while it runs;
 * - `sumNs` (se.sum_exec_runtime): its CPU time so far, as of `execStartNs`;
 * - `switches` (nr_switches): how many times it has left a CPU (blocking or preempted).
 */
export interface SchedInfo {
  execStartNs: number;
  sumNs: number;
  switches: number;
}

/**
 * The number after `key … :` in a /proc/…/sched text, times 10^6 (times there are ms with six
 * decimals: this gives ns exactly), or NaN.
 */
function schedField(text: Buffer, n: number, key: Buffer, from = 0): { value: number; end: number } {
  let i = text.indexOf(key, from);
  if (i < 0 || i >= n) return { value: NaN, end: from };
  i = text.indexOf(0x3a, i); // ':'
  if (i < 0 || i >= n) return { value: NaN, end: from };
  for (i++; i < n && (text[i] === 0x20 || text[i] === 0x09); i++);
  let whole = 0;
  let frac = 0;
  let scale = 1;
  let digits = 0;
  for (; i < n && text[i]! >= 0x30 && text[i]! <= 0x39; i++, digits++) whole = whole * 10 + (text[i]! - 0x30);
  if (text[i] === 0x2e) for (i++; i < n && text[i]! >= 0x30 && text[i]! <= 0x39; i++) (frac = frac * 10 + (text[i]! - 0x30)), (scale *= 10);
  return { value: digits ? whole * 1e6 + Math.round((frac * 1e6) / scale) : NaN, end: i };
}

const EXEC_START = Buffer.from('se.exec_start');
const SUM_EXEC = Buffer.from('se.sum_exec_runtime');
const NR_SWITCHES = Buffer.from('\nnr_switches');

/** `SchedInfo` of a /proc/…/sched text; undefined when se.exec_start is absent */
export function parseSched(buf: Buffer, n = buf.length): SchedInfo | undefined {
  const e = schedField(buf, n, EXEC_START);
  if (Number.isNaN(e.value)) return undefined;
  const sum = schedField(buf, n, SUM_EXEC, e.end);
  const sw = schedField(buf, n, NR_SWITCHES, sum.end);
  return { execStartNs: e.value, sumNs: sum.value, switches: sw.value / 1e6 };
}

/** what the sampler last read of a thread's scheduler accounting, and what it judged then */
export interface SchedSeen extends SchedInfo {
  on: boolean;
}

/**
 * A thread pushed off its CPU by the sampler's wake-up leaves it as the sampler gets it (its
 * accounting is brought up to date when the wake-up preempts it, a moment before the switch:
 * 0.1–0.3 ms earlier seen on this VM). One that left more than this after the sampler's tick
 * start (ns) ran during a long tick (hundreds of threads walked), after the picture was taken;
 * one that left more than this before was preempted by something else, and waits. Neither is
 * counted. (se.exec_start is its CPU's task clock: between CPUs the clocks differ by their
 * steal and IRQ time, by ms on a VM; the rule is about the sampler's own CPU.)
 */
export const PUSHED_OFF_WINDOW_NS = 300_000;

/**
 * Was a thread on a CPU at the moment of the tick, from what the tick saw of it?
 * - `moved`: its innermost frame or instruction changed between the stack read and a read a
 *   moment later: it is running Python code. On.
 * - Not runnable (asleep, blocked): off.
 * - Runnable and not moving: it is either running a long C call or waiting in the run queue
 *   (woken from a sleep with its frame still on the sleeping call, or preempted).
 *   - `clock`: its task clock (perf_event) read twice a few µs apart moved: it is running. On.
 *   - It left its CPU (or had its accounting brought up to date) after the sampler got its
 *     own CPU this tick, at that moment (`now.execStartNs` − `tickStartNs`, the sampler
 *     thread's se.exec_start, within ±PUSHED_OFF_WINDOW_NS): pushed off by the sampler's
 *     own wake-up, on a machine with every CPU busy. On.
 *   - With the task clock read (`clock` false): off, it waits.
 *   - Without it (perf events not allowed): on when it has not left a CPU since the sampler
 *     last read it (`now.switches` = `prev.switches`) and was on one then or has got one
 *     since (its accounting moved): a thread that never leaves its CPU is still on it. This
 *     misses a C call that was preempted for a moment since the last tick (a few % of its
 *     samples on a busy machine).
 *   An earlier rule that counted any thread that left its CPU up to 2.5 scheduler ticks
 *   before the tick gave the place where a busy machine preempts a thread the whole wait that
 *   follows: 10–20 points of error on 3.11 (bench/sampler-saturation.ts).
 * Without the scheduler's accounting either: on (state R).
 */
export function judgeOnCpu(moved: boolean, letter: string | undefined, clock: boolean | undefined, now: SchedInfo | undefined, prev: SchedSeen | undefined, tickStartNs: number | undefined, sameCpu?: boolean): boolean {
  if (moved) return true;
  if (letter !== 'R') return false;
  if (clock === true) return true;
  if (now === undefined || tickStartNs === undefined) return clock === undefined;
  if (sameCpu !== false && Math.abs(now.execStartNs - tickStartNs) <= PUSHED_OFF_WINDOW_NS) return true;
  if (clock === false) return false;
  if (prev === undefined || Number.isNaN(now.switches) || now.switches !== prev.switches) return false;
  return prev.on || now.sumNs > prev.sumNs || now.execStartNs !== prev.execStartNs;
}

/**
 * A thread read runnable (`first`, its state letter) whose task clock then did not move, read
 * again (`again`): when it is no longer runnable — asleep, blocked, ended — it ran between the
 * two reads (the run queue is left only through a CPU) and was on a CPU at the first. One
 * still runnable waits; one unreadable is not known to have run.
 */
export function ranThenBlocked(first: string | undefined, again: string | undefined): boolean {
  return first === 'R' && again !== undefined && again !== 'R';
}

/** The CPU rule in words, for the README and the profile's metadata. */
export const CPU_RULE =
  'on-CPU = running Python (its innermost frame or instruction changed between the stack read and a re-read a moment later, within 1 ms, or during the picture\'s own read: for threads moving at the last tick, read right before and right after the picture\'s pages in one call), or runnable (state R) and either its task clock (perf_event task-clock, read twice a few µs apart) moved (a long C call), or it left its CPU within 0.3 ms of the moment the sampler got its own this tick (se.exec_start: pushed off by the sampler), or its clock did not move but it was no longer runnable a moment later (it ran in between: a burst of µs, such as a sleeper taking the GIL); without perf events, a runnable thread that has not left its CPU since the last tick (nr_switches) and was on it then counts; a runnable thread waiting in the run queue (woken from a sleep, or preempted) is not on a CPU and counts as idle; the states of threads judged by their state last tick are read right after the picture, before the walk, and such a state comes before a move; of those, the thread holding the GIL in the picture comes first, its frames fetched at once, and found asleep having let go of the GIL since, it ran then';

/**
 * Stdlib functions whose only job is to block (the wait itself is a C call under them). A
 * thread with one of these as its innermost Python frame is waiting even when the OS shows
 * it runnable for a moment (woken up, queueing for the GIL), as py-spy also judges.
 */
const WAITING_LEAVES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['threading.py', new Set(['wait', '_wait_for_tstate_lock'])],
  ['selectors.py', new Set(['select'])],
]);

export function isWaitingLeaf(f: Frame): boolean {
  // by the whole file name, whose hash the string keeps: no slice and no new hash per sample
  let names = waitingByFile.get(f.file);
  if (names === undefined) {
    const slash = f.file.lastIndexOf('/');
    names = WAITING_LEAVES.get(slash >= 0 ? f.file.slice(slash + 1) : f.file) ?? null;
    if (waitingByFile.size >= 4096) waitingByFile.clear(); // bounded: files come and go
    waitingByFile.set(f.file, names);
  }
  return names !== null && names.has(f.name);
}
/** file → its waiting leaves (`WAITING_LEAVES` by base name), null for none */
const waitingByFile = new Map<string, ReadonlySet<string> | null>();

/** the sampler thread's own scheduler file, for its se.exec_start (one for the process) */
let selfStates: TaskStates | undefined;

/**
 * skipStill's backstop: at least this often while the thread count can be watched (threads
 * starting or ending, and the process ending, bring a full tick at once), the process's
 * Python threads are listed again (the thread states, no stack) and a full tick follows only
 * when they are not the watched ones — a thread that replaced an ended one between two asks of
 * the count. The listing is one read; a full tick of an idle target in the agent is a cold
 * walk of ~450 µs (once every 5 s for 20 targets: ~0.15 points of a core).
 */
export const STILL_FULL_TICK_MS = 5000;

/**
 * skipStill: the thread count is asked every this many ticks of a still process (a new
 * thread is seen within a fifth of a second at 19 Hz): a statx per target and tick cost
 * nearly as much as the task clock read
 */
const LINKS_EVERY = 4;
/**
 * How long after the picture a moved leaf says "on a CPU" (ms): the re-read follows the walk,
 * which takes tens of µs a thread; past this, a move is not looked at.
 */
const MOVED_TRUST_MS = 1;

/**
 * When the sampler thread got its CPU for a tick: its se.exec_start, the scheduler's clock
 * (judgeOnCpu: a thread that left its CPU after it was pushed off by the sampler). One is
 * shared by every process a tick samples; `restart` at each tick.
 *
 * It must be read at the start of the tick: se.exec_start moves on while the sampler runs
 * (every scheduler tick brings it up to date), and read late it would no longer tell a
 * thread pushed off by the sampler's wake-up. But a read costs ~6 µs, and only a runnable
 * thread whose Python did not move and whose task clock did not run needs it (a busy
 * machine). So it is read at the start while ticks have needed it lately (within
 * EAGER_TICKS), else on first need (late, in a tick that follows a quiet spell).
 */
export class TickStart {
  private value: number | undefined;
  private read = false;
  private ticks = 0;
  private neededAt = -Infinity;
  /**
   * ticks after a need during which the start is read eagerly: a busy machine needs it tick
   * after tick and stays eager; the agent's mostly idle targets need it now and then, and
   * 200 ticks (10 s at 19 Hz) after each need had it read at nearly every tick
   */
  static readonly EAGER_TICKS = 16;
  restart(): this {
    this.read = false;
    if (++this.ticks - this.neededAt <= TickStart.EAGER_TICKS) this.readNow();
    return this;
  }
  ns(): number | undefined {
    this.neededAt = this.ticks;
    if (!this.read) this.readNow();
    return this.value;
  }
  /** reads made (for tests) */
  reads = 0;
  private readNow(): void {
    this.reads++;
    this.read = true;
    this.value = (selfStates ??= new TaskStates(process.pid)).sched(process.pid)?.execStartNs;
    const cpu = syscalls()?.currentCpu();
    this.cpuValue = cpu !== undefined && cpu >= 0 ? cpu : undefined;
  }
  private cpuValue: number | undefined;
  /** the CPU the sampler ran on when its start was read (undefined: unknown) */
  cpu(): number | undefined {
    if (!this.read) this.ns();
    return this.cpuValue;
  }
}

export class ProcessSampler {
  readonly pid: number;
  readonly runtime: RuntimeLocation;
  readonly version: PythonVersion;
  readonly layout: Layout;
  readonly command: string[] | undefined;
  readonly executable: string | undefined;
  maxDepth: number | undefined;
  private mem: ProcMemory;
  private codeCache: CodeCache = new Map();
  private nativeTid: boolean;
  private pthreadTidOffset: number | undefined;
  private tidOfPthread = new Map<bigint, number>();
  private closed = false;
  /** a tick has found a thread outside pylens's start gate (see tick) */
  private pastGate = false;
  /** called once by the first tick that finds a thread held at the gate (see `onGate`) */
  private gateArrival: (() => void) | undefined;
  /** the thread last found in the gate (its name is read while warming up) */
  private gateIdent: bigint | undefined;
  /** how whole the stacks were (walker.ts validates every walk and re-reads torn ones), stops, CPU judgements; `counts()` adds the stops */
  private readonly tally: SamplerCounts = emptyCounts();
  /**
   * stop each running thread (ptrace) while its stack is read: exact stacks, at a cost to
   * the target (`counts()`). Off: threads are stopped only after torn reads, within
   * `pauseBudget`.
   */
  blocking = false;
  /** the share of wall time threads may be held stopped after torn reads (not in blocking mode) */
  pauseBudget = 0.01;
  /**
   * how a thread is judged on a CPU: 'moving' (default; CPU_RULE, `judgeOnCpu`) or
   * 'runnable' (state R alone, as before: kept for side-by-side benchmarks)
   */
  cpuRule: 'moving' | 'runnable' = 'moving';
  /**
   * CPU mode only (the agent): skip a tick when none of the process's Python threads is on
   * a CPU or runnable at that moment — every task clock unchanged since the last tick, or
   * not moving now with the thread asleep — since such a tick gives no on-CPU sample. The
   * threads of the last full tick are watched; a thread starting or ending (the process's
   * thread count, from its /proc task directory kept open: one statx) brings a full tick at
   * once, a count of none ends the process's ticks (gone), and every STILL_FULL_TICK_MS (every
   * second where the thread count cannot be asked) the thread list is read again: a full tick
   * when it is not the watched threads.
   */
  skipStill = false;
  /**
   * CPU mode, the samples of threads off a CPU dropped (the Recorder without `idle` or
   * `async`): a thread whose state, read at the picture (`judgeEarly`), is asleep or blocked
   * is not walked. Hundreds of sleeping threads then cost a state read each, not a stack
   * read. Not before the start gate has been passed (the gate's thread waits asleep).
   */
  skipAsleep = false;
  /**
   * Wall-clock mode (the Recorder with `idle`): a thread that has not run since the read
   * before its last walk — its task clock (perf_event, exact to the ns, kept open) the same —
   * has the same stack, so it is not walked: its last frames are given again, off a CPU. Only
   * threads off a CPU at the last tick are asked (a running thread's clock read would cost an
   * interrupt of its CPU), each with one 8-byte read instead of a stack read; their pages drop
   * out of the next tick's prefetch. Idle thread pools cost little then. Not before the start
   * gate has been passed; without perf events, every thread is walked.
   */
  reuseUnrun = false;
  /** OS TID → its task clock read at the picture of the tick that last walked it (or found it unrun) */
  private unrunClock = new Map<number, number>();
  /** the threads off a CPU at the last tick: asked whether they ran since (`reuseUnrun`) */
  private unrunAsk: number[] = [];
  private nextUnrunAsk: number[] = [];
  /** this tick's threads found unrun, by OS TID */
  private unrunNow = new Set<number>();
  /** `reuseUnrun` holds for this read (a tick past the start gate; set by `readThreads`) */
  private reuseNow = false;
  /** the last tick's thread of each OS TID (its tstate and pthread id: what `skip` checks) */
  private lastOfTid = new Map<number, ThreadStack>();
  /** this tick's threads not to walk (tstate → pthread id) */
  private asleepSkip = new Map<Address, bigint>();
  /** ticks skipped that way */
  stillTicks = 0;
  private stillTids: number[] = [];
  private stillClocks = new Map<number, number>();
  private fullTickAt = -Infinity;
  /** the thread count (link count of /proc/PID/task) when the last full tick began; -1: unknown */
  private stillLinks = -1;
  private linkTicks = 0;
  /** /proc/PID/task, kept open for its link count (undefined: not opened yet; -1: cannot be) */
  private taskDirFd: number | undefined;

  /** the process's thread count + 2 now (2 once it is gone), or -1 where it cannot be asked */
  private taskLinks(): number {
    const sys = syscalls();
    if (sys === undefined || this.taskDirFd === -1) return -1;
    if (this.taskDirFd === undefined) {
      try {
        this.taskDirFd = openSync(`/proc/${this.pid}/task`, 'r');
      } catch {
        this.taskDirFd = -1;
        return -1;
      }
    }
    const n = sys.linkCount(this.taskDirFd);
    return n >= 0 ? n : -1;
  }

  /**
   * is no watched thread on a CPU, or runnable, at this moment (and was the last full tick
   * recent)? A thread whose task clock has not moved since the last tick costs one 8-byte
   * read; one that ran since, one more (its state).
   */
  private still(links: number): boolean {
    if (this.stillTids.length === 0) return false;
    const due = performance.now() - this.fullTickAt > (this.stillLinks >= 0 ? this.stillBackstopMs : 1000);
    // a thread started or ended, or the process is gone (a task clock keeps its count after
    // its thread exits, so only this tells): a full tick sees to it
    if (this.stillLinks >= 0 && links !== this.stillLinks) {
      this.stillClocks.clear();
      return false;
    }
    let still = true;
    for (const tid of this.stillTids) {
      const c = this.states.clockNum(tid);
      if (c < 0) {
        this.stillClocks.clear();
        return false;
      }
      const prev = this.stillClocks.get(tid);
      this.stillClocks.set(tid, c);
      // not run since the last tick, or the tick is already full: the clock is kept up to date
      if (prev === c || !still) continue;
      // it ran since the last tick: is it on a CPU, or runnable, now? Its state says both at
      // once (R): the full tick's CPU rule judges it then (running, pushed off by the
      // sampler, or waiting). Asleep (S, D), it gives no on-CPU sample. (A second read of
      // its clock would tell running apart, but a thread that ran lately is mostly asleep
      // again by the next tick — 1 ms of work every 100 ms — and then paid both reads.)
      const letter = this.states.letter(tid);
      if (letter === undefined || letter === 'R') still = false;
    }
    if (this.stillClocks.size > 2 * this.stillTids.length) {
      const keep = new Set(this.stillTids);
      for (const tid of this.stillClocks.keys()) if (!keep.has(tid)) this.stillClocks.delete(tid);
    }
    // the backstop: the process's Python threads listed again (no stack read), and a full tick
    // only when they are not the watched ones (one that replaced an ended one between two asks
    // of the thread count). A walk costs ~450 µs of a cold agent; the listing, one read.
    if (still && due) {
      if (!this.sameThreads()) {
        this.stillClocks.clear();
        return false;
      }
      this.fullTickAt = performance.now();
      this.backstops++;
    }
    return still;
  }

  /** skipStill backstops that found the watched threads unchanged (no walk) */
  backstops = 0;
  /** skipStill: how often the backstop lists the threads while the thread count is watched (STILL_FULL_TICK_MS; tests shorten it) */
  stillBackstopMs = STILL_FULL_TICK_MS;

  /** skipStill's backstop: are the process's Python threads the watched ones? One read of the pages of the thread list */
  private sameThreads(): boolean {
    try {
      const mem = this.tickPages();
      const listed = listThreadStates(mem, this.layout, this.interpreters(mem).list);
      if (listed.length !== this.stillTids.length) return false;
      for (const t of listed) {
        const tid = t.error === undefined ? this.osTid(t) : undefined;
        if (tid === undefined || !this.stillTids.includes(tid)) return false;
      }
      return true;
    } catch {
      return false; // unreadable, or gone: a full tick finds out
    }
  }

  /** when the sampler got its CPU for this tick (`tick`'s `shared`, else its own) */
  private tickStart: TickStart = new TickStart();
  private readonly ownTickStart = this.tickStart;

  private pauser: ThreadPauser | undefined;
  /** per OS thread: its scheduler accounting as last read, and the judgement then (judgeOnCpu) */
  private schedSeen = new Map<number, SchedSeen>();
  /** tstate → pages of its last walk (fetched together for a re-read); dropped with the code cache */
  private plans = new Map<Address, Address[]>();
  /** tstate → the frames of its last walk (walker.ts `lastFrames`); dropped with the code cache */
  private lastFrames = new Map<Address, Frame[]>();
  private readonly pauseHook = { first: false, pause: (t: ThreadStack, torn: boolean) => this.pauseThread(t, torn) };
  /** every page the last tick read: fetched together at the start of the next */
  private tickPlan: Address[] = [];
  private attachedAt = performance.now();
  private states: TaskStates;
  /** the target's TIDs ↔ /proc's (a target in another PID namespace) */
  private tids: TaskIds;
  /** page buffers reused by every tick's page cache */
  private pagesA: PagePool;

  private constructor(pid: number, runtime: RuntimeLocation, layout: Layout, mem: ProcMemory) {
    this.pid = pid;
    this.runtime = runtime;
    this.version = runtime.version;
    this.layout = layout;
    this.mem = mem;
    this.pagesA = mem.newPagePool(PAGE_SIZE);
    this.nativeTid = layout.tstate.native_thread_id !== null;
    this.states = new TaskStates(pid);
    this.tids = new TaskIds(pid);
    this.names = new ThreadNames(mem, layout, () => mainInterpreter(mem, layout, runtime.runtimeAddress), runtime.version.minor);
    this.command = readCmdline(pid);
    this.executable = readExe(pid);
    const sys = syscalls();
    if (sys) this.pauser = new ThreadPauser(sys);
  }

  /** what this sampler counted so far (SamplerCounts) */
  counts(): SamplerCounts {
    const c = { ...this.tally };
    if (this.pauser) {
      c.pauses = this.pauser.stats.pauses;
      c.pausedNs = this.pauser.stats.pausedNs;
      c.pauseFailures = this.pauser.stats.failures;
    }
    return c;
  }

  private pauseThread(t: ThreadStack, torn: boolean): (() => void) | undefined {
    if (!this.pauser) return undefined;
    const tid = this.osTid(t);
    if (tid === undefined) return undefined;
    // A thread asleep in a system call cannot change its stack until it wakes, and one in
    // an uninterruptible sleep would hold the sampler until it ends: only running threads
    // are stopped — except, in blocking mode, one whose reads were torn (it was waking:
    // the stop interrupts its call, which the kernel restarts).
    const letter = this.states.letter(tid);
    if (letter !== 'R' && !(this.blocking && torn && letter !== undefined && letter !== 'D')) return undefined;
    if (!this.blocking) {
      const allowedNs = this.pauseBudget * (performance.now() - this.attachedAt) * 1e6 + 2e6;
      if (this.pauser.stats.pausedNs > allowedNs) {
        this.tally.pauseBudgetSkips++;
        return undefined;
      }
    }
    return this.pauser.pause(tid);
  }

  static attach(pid: number, opts: { maxDepth?: number; blocking?: boolean } = {}): ProcessSampler {
    const rt = locateRuntime(pid);
    const layout = layoutForRuntime(rt); // throws UnsupportedVersionError outside 3.8–3.14
    const s = new ProcessSampler(pid, rt, layout, ProcMemory.open(pid));
    s.maxDepth = opts.maxDepth;
    if (opts.blocking) s.blocking = true;
    return s;
  }

  /**
   * The interpreter list and (3.12+) the main interpreter's GIL struct change rarely (a
   * subinterpreter created or ended): they are re-read every `interpRefreshMs`, which saves
   * two page reads per tick.
   */
  interpRefreshMs = 100;
  private interps: { at: number; list: InterpreterRef[]; gil: Address | null } | undefined;

  private interpreters(mem: ProcessMemory): { list: InterpreterRef[]; gil: Address | null } {
    const now = performance.now();
    if (this.interps === undefined || now - this.interps.at >= this.interpRefreshMs) {
      const list = listInterpreters(mem, this.runtime, this.layout);
      let gil: Address | null = null;
      const main = list.at(-1);
      if (main !== undefined && this.version.minor >= 12) {
        try {
          gil = gilStructOf(mem, this.layout, this.runtime.runtimeAddress, main.address);
        } catch (e) {
          if (!(e instanceof BadReadError)) throw e;
        }
      }
      // an empty list (interpreter not up yet) is not kept
      if (list.length === 0) return { list, gil };
      this.interps = { at: now, list, gil };
    }
    return this.interps;
  }

  /**
   * one raw walk of every thread (for callers that need more than `tick` keeps); `skip`:
   * threads not to walk (`WalkOptions.skip`); `pictureGil`: the GIL's holder in the tick's
   * picture (`gilHolder`), whose unsteady walk alone is read again (`WalkOptions.running`)
   */
  walk(mem: ProcessMemory = new PageCacheMemory(this.mem), skip?: ReadonlyMap<Address, bigint>, pictureGil?: Address | null): ThreadStack[] {
    this.pauseHook.first = this.blocking;
    // the tick's memory is the same object at every tick: its type checks are kept (until the code cache is dropped)
    if (mem === this.tickMem) this.codeCheck ??= new CodeTypeCheck(mem, this.layout);
    // one options object, its fields set for each walk (a tick makes none)
    const o = this.walkOpts;
    o.interpreters = this.interpreters(mem).list;
    o.cache = this.codeCache;
    o.maxDepth = this.maxDepth;
    o.pause = this.pauseHook;
    o.plans = this.plans;
    o.lastFrames = this.lastFrames;
    o.skip = skip;
    o.running = undefined;
    if (mem === this.tickMem && pictureGil != null) {
      // the thread that could run Python in the picture, if it was on a CPU at the last tick:
      // a thread just woken (a pool worker given an item) is read as found — read again, its
      // burst was half under-counted
      this.pictureHolder.length = 0;
      if (pictureGil !== 0 && this.onCpuLast.includes(pictureGil)) this.pictureHolder.push(pictureGil);
      o.running = this.pictureHolder;
    }
    o.codeCheck = mem === this.tickMem ? this.codeCheck : undefined;
    return walkThreads(mem, this.runtime, this.layout, this.version, o);
  }
  private walkOpts: WalkOptions = { pageCache: false, interpreters: [], cache: undefined, maxDepth: undefined, pause: undefined, plans: undefined, lastFrames: undefined, skip: undefined, running: undefined, codeCheck: undefined };
  private codeCheck: CodeTypeCheck | undefined;

  /**
   * Code objects are cached by address; a freed code object's address can be reused by
   * another one, which the cache would misname. 3.14 counts code-object frees
   * (`code_object_generation`): the cache is dropped whenever that moves. Older versions
   * have no such counter: the cache is dropped every `codeCacheTtlMs` (default 10 s) and
   * when it grows past `codeCacheMax` entries, which bounds both the damage and the memory.
   */
  codeCacheTtlMs = 10_000;
  codeCacheMax = 50_000;
  private codeCacheBorn = Date.now();
  private codeGeneration: bigint | null = null;
  /** times the code cache was dropped */
  codeCacheFlushes = 0;

  private maybeFlushCodeCache(mem: ProcessMemory): void {
    let flush = this.codeCache.size > this.codeCacheMax;
    if (this.layout.interp.code_object_generation != null) {
      try {
        const g = readCodeObjectGeneration(mem, this.layout, this.runtime.runtimeAddress);
        if (g !== null && this.codeGeneration !== null && g !== this.codeGeneration) flush = true;
        this.codeGeneration = g;
      } catch (e) {
        if (!(e instanceof BadReadError)) throw e;
      }
    } else if (Date.now() - this.codeCacheBorn > this.codeCacheTtlMs) flush = true;
    if (flush) {
      this.plans.clear();
      this.lastFrames.clear();
      this.tickPlan = [];
    }
    if (flush) {
      // its page pool goes on to the fresh state (native memory, given back at close)
      const pages = this.asyncState.pages;
      this.asyncState = newAsyncReadState();
      this.asyncState.pages = pages;
    }
    if (flush) this.codeCheck = undefined;
    if (flush && this.codeCache.size > 0) {
      this.codeCache.clear();
      this.codeCacheFlushes++;
    }
    if (flush) this.codeCacheBorn = Date.now();
  }

  /** the thread's TID as /proc here names it (the target's own, translated when it is in another PID namespace) */
  private osTid(t: ThreadStack): number | undefined {
    const own = this.ownTid(t);
    return own === undefined ? undefined : this.tids.ours(own);
  }

  /** the thread's TID in the target's own PID namespace */
  private ownTid(t: ThreadStack): number | undefined {
    if (this.nativeTid) return t.tid > 0 ? t.tid : undefined;
    const hit = this.tidOfPthread.get(t.pthreadId);
    if (hit !== undefined) return hit;
    if (this.pthreadTidOffset === undefined) return undefined;
    try {
      const tid = this.mem.readI32(Number(t.pthreadId) + this.pthreadTidOffset);
      if (tid <= 0) return undefined;
      this.tidOfPthread.set(t.pthreadId, tid);
      return tid;
    } catch (e) {
      if (e instanceof BadReadError) return undefined;
      throw e;
    }
  }

  /**
   * One walk of every thread (retried once when a thread's read was torn), with the OS TID,
   * run state and GIL holder of each. Throws like `walkThreads` (and ProcessGoneError).
   */
  private readThreads(skipAsleep = false, reuseUnrun = false): { walked: ThreadStack[]; holder: Address | null; described: (t: ThreadStack, i: number) => ThreadSample } {
    // a torn thread walk refreshes the tick's pages and reads that thread again (walker.ts);
    // a steady tick that handed over has fetched them already
    const mem = this.fetched ? this.tickMem! : this.tickPages();
    this.fetched = false;
    // the states of the threads judged by their state last tick, read at the picture
    const early = this.earlyTids;
    this.earlyTids = this.nextEarlyTids;
    this.nextEarlyTids = early;
    this.nextEarlyTids.length = 0;
    // before the threads not to walk are chosen: a stack given again is its last walk's (lastFrames)
    this.maybeFlushCodeCache(mem);
    // per thread state: threads come and go (and 3.14 keeps its code cache for long), so
    // what is kept per tstate is bounded — above the live threads' count (thousands of threads
    // would otherwise lose their plans and last stacks at every tick)
    const keep = 1024 + 2 * this.walkedLast;
    if (this.plans.size > keep || this.lastFrames.size > keep) {
      this.plans.clear();
      this.lastFrames.clear();
    }
    if (this.asleepSkip.size > 0) this.asleepSkip.clear(); // (a clear makes a new table even when empty)
    // (describe reads it: a snapshot, which gives no unrun stack, leaves the watch alone)
    this.reuseNow = reuseUnrun;
    if (reuseUnrun) this.askUnrun();
    else if (this.unrunNow.size > 0) this.unrunNow.clear();
    // the GIL's holder in the picture: judged first (CPU mode), and the one thread whose unsteady walks are read again
    const pictureGil = gilHolder(mem, this.layout, this.runtime.runtimeAddress, this.version.minor, this.gilStruct());
    if (this.cpuRule === 'moving') this.judgeEarly(mem, skipAsleep ? this.tidHolding(pictureGil) : -1);
    else if (this.early.size > 0) this.early.clear();
    if (skipAsleep) {
      for (const [tid, judged] of this.early) {
        const t = judged === 0 ? this.lastOfTid.get(tid) : undefined;
        if (t !== undefined) this.asleepSkip.set(t.tstate, t.pthreadId);
      }
    }
    if (this.tidOfPthread.size > 4096) this.tidOfPthread.clear();
    // the picture's time: the pages were fetched at the start of the tick (tickPages)
    const pictureAt = performance.now();
    const walked = this.walk(mem, this.asleepSkip.size > 0 ? this.asleepSkip : undefined, pictureGil);
    this.walkedLast = walked.length;
    for (const t of walked) {
      if (t.retries) {
        this.tally.retriedWalks++;
        this.tally.walkRereads += t.retries;
      }
      if (t.paused) this.tally.pausedWalks++;
      if (t.unsteady) this.tally.unsteadyStacks++;
      if (t.torn) this.tally.tornStacks++;
      else if (t.truncated) this.tally.depthCutStacks++;
    }
    if (!this.nativeTid && this.pthreadTidOffset === undefined && walked.length > 0) {
      this.pthreadTidOffset = findPthreadTidOffset(this.mem, walked.map((t) => t.pthreadId), this.tids.own(), this.tids.ownPid);
    }
    const holder = gilHolder(mem, this.layout, this.runtime.runtimeAddress, this.version.minor, this.gilStruct());
    mem.allTouchedInto(this.tickPlan);
    const moved = this.cpuRule === 'moving' ? this.movedSinceRead(walked) : undefined;
    this.describeMoved = moved;
    // a leaf that moved within a fraction of a millisecond of its read was running then; over
    // a longer walk (hundreds of threads, or the sampler preempted) a sleeping thread may wake,
    // run a few lines and sleep again in between: a move then says nothing, and a runnable
    // thread is judged by its task clock and accounting like one that did not move
    this.describeMovedTrusted = performance.now() - pictureAt <= MOVED_TRUST_MS;
    this.describeHolder = holder;
    return { walked, holder, described: this.describe };
  }

  /** the page cache every tick reads through (restarted at each) */
  private tickMem: PageCacheMemory | undefined;

  /**
   * The tick's page cache (one for the whole tick, kept, its page buffers reused: the walk,
   * the GIL read and the backstop's thread list share pages), started afresh with every page
   * the last tick read (interpreter, thread states, frames, GIL) fetched in one call: one
   * near-instant picture of the target.
   */
  private tickPages(): PageCacheMemory {
    let mem = this.tickMem;
    if (mem === undefined) {
      mem = this.tickMem = new PageCacheMemory(this.mem, this.pagesA);
      // each page copied twice in the picture's call: a chain that changed while it was copied is read again (walker.ts, Torn pictures)
      mem.twins = true;
    }
    mem.restart();
    const bracket = this.bracket;
    this.bracketMoved.length = 0;
    if (this.tickPlan.length > 0) {
      mem.prefetch(this.tickPlan, bracket.n > 0 ? bracket : undefined);
      mem.prefetched = true;
      for (let k = 0; k < bracket.n; k++) {
        const tstate = bracket.owner[k]!;
        if (bracket.changed(k) && !this.bracketMoved.includes(tstate)) this.bracketMoved.push(tstate);
      }
    }
    bracket.clear();
    const last = this.onCpuLast;
    this.onCpuLast = this.onCpuNow;
    this.onCpuNow = last;
    last.length = 0;
    return mem;
  }
  /**
   * CPU mode: the innermost-frame words (`leafMarkWords`, owner: the thread state) of the
   * threads that moved at the last tick, read right before and right after the picture's
   * pages in the same call (`PageCacheMemory.prefetch`). A thread whose words differ ran
   * during the picture: it is on a CPU, with no read after the walk (`movedSinceRead`). A busy
   * thread is judged by the tick's one system call.
   */
  private bracket = new WordList();
  /** the thread states whose bracket words moved during this tick's picture */
  private bracketMoved: Address[] = [];
  /**
   * the thread holding the GIL in this tick's picture (one thread state, none when it cannot
   * be read): only its unsteady walks are read again (`WalkOptions.running`)
   */
  private pictureHolder: Address[] = [];
  /** the thread states judged on a CPU at the last tick (`onCpuNow`: this tick's) */
  private onCpuLast: Address[] = [];
  private onCpuNow: Address[] = [];
  /** threads bracketed at most (their words and the pages share one call's 64 ranges) */
  static readonly MAX_BRACKETED = 4;
  private describeMoved: Int8Array | undefined;
  private describeMovedTrusted = true;
  private describeHolder: Address | null = null;

  /**
   * Is thread `tid` on a CPU, judged by its OS state alone (no move seen): not runnable → off;
   * runnable → its task clock, else its scheduler accounting (`judgeOnCpu`). Tallies what it
   * used. -1: its state is unreadable; 0: off; 1: on; 2: runnable and waiting (off).
   */
  private judgeByState(tid: number): -1 | 0 | 1 | 2 {
    const letter = this.states.letter(tid);
    if (letter === undefined) return -1;
    if (letter !== 'R') {
      this.schedSeen.delete(tid); // it left its CPU: nothing to carry over
      return 0;
    }
    const clock = this.states.onCpuNow(tid);
    if (clock !== undefined) this.tally.clockJudged++;
    else this.tally.schedJudged++;
    // runnable, not running at the clock's reads, and no longer runnable right after: it ran
    // in between (a thread leaves the run queue only through a CPU), so it was running at the
    // state read and its burst ended before the clock was read — a sleeper taking the GIL, a
    // thread between two waits: bursts of µs that the clock alone misses. Read at once: a
    // thread waiting at the state read that runs and blocks before this read counts too, so
    // the moment between the reads is kept to the clock's two
    if (clock === false && ranThenBlocked(letter, this.states.letter(tid))) {
      this.schedSeen.delete(tid);
      this.tally.ranThenBlocked++;
      return 1;
    }
    const now = clock !== true ? this.states.sched(tid) : undefined;
    const prev = this.schedSeen.get(tid);
    // pushed off by the sampler: only a thread that last ran on the sampler's CPU, whose
    // clock (se.exec_start, per CPU) the sampler's own start can be compared with; the
    // sampler's own tick start is read only when the judgement compares with it (TickStart)
    let sameCpu: boolean | undefined;
    if (now !== undefined && clock !== true) {
      const mine = this.tickStart.cpu();
      const theirs = this.states.lastCpu();
      sameCpu = mine === undefined || theirs === undefined ? undefined : mine === theirs;
    }
    const on = judgeOnCpu(false, letter, clock, now, prev, now !== undefined ? this.tickStart.ns() : undefined, sameCpu);
    if (now !== undefined && clock === undefined) {
      if (this.schedSeen.size > 4096) this.schedSeen.clear(); // threads come and go: keep it bounded
      this.schedSeen.set(tid, { ...now, on });
    }
    return on ? 1 : 2;
  }

  /**
   * The threads whose OS state is read at the picture, before the walk (`judgeEarly`): those
   * the last tick judged by their state, not by a move (asleep, waiting, in a long C call).
   */
  private earlyTids: number[] = [];
  private nextEarlyTids: number[] = [];
  /** this tick's judgements made at the picture, by OS TID (`judgeByState`) */
  private early = new Map<number, -1 | 0 | 1 | 2>();

  /**
   * Right after the picture, before the walk: the state of each thread the last tick judged by
   * its state. A walk of many threads takes ms; a thread that runs in brief bursts (a sleeper
   * waking, a thread taking the GIL) is rarely still running when its state is read after it,
   * and was under-counted (200 sleepers beside 2 busy threads: 4–9 % of the CPU samples for a
   * true 15–23 %). Read here, its state is as near the picture as its stack.
   */
  private judgeEarly(mem: PageCacheMemory, first: number): void {
    if (this.early.size > 0) this.early.clear();
    const tids = this.earlyTids;
    // the thread holding the GIL in the picture first: it was running Python then, most
    // likely, and a burst of a ms (a pool worker's task) may be over by the time the states
    // of 200 sleepers have been read before it. Asleep or waiting at the last tick, its frames
    // were not in the picture (their pages not fetched): they are fetched now, µs after it,
    // while it most likely still runs that burst (the walk finds them in the tick's cache)
    if (first >= 0 && tids.includes(first)) {
      const t = this.lastOfTid.get(first);
      // (all of them read anew together, those of the picture too: its walk reads one moment)
      if (t !== undefined) mem.reload(this.plans.get(t.tstate) ?? [t.tstate - (t.tstate % PAGE_SIZE)]);
      let judged = this.judgeByState(first);
      // asleep now, it has let go of the GIL since the picture, which takes a CPU: it ran
      // then (as ranThenBlocked), unless it sleeps holding the GIL still (a C call that keeps it)
      if (judged === 0 && t !== undefined && this.gilHeldNowBy(t.tstate) === false) {
        judged = 1;
        this.tally.ranThenBlocked++;
      }
      this.early.set(first, judged);
    }
    for (let i = 0; i < tids.length; i++) {
      const tid = tids[i]!;
      if (tid !== first && !this.unrunNow.has(tid)) this.early.set(tid, this.judgeByState(tid));
    }
  }

  /** OS TID of the thread whose state is `holder` (the GIL's, as `gilHolder` gives it), or -1 */
  private tidHolding(holder: Address | null): number {
    return holder === null || holder === 0 ? -1 : (this.tidOfTstate.get(holder) ?? -1);
  }
  /** does thread state `tstate` hold the GIL now (read from the target, not the picture)? undefined: unreadable */
  private gilHeldNowBy(tstate: Address): boolean | undefined {
    const holder = gilHolder(this.mem, this.layout, this.runtime.runtimeAddress, this.version.minor, this.gilStruct());
    return holder === null ? undefined : holder === tstate;
  }
  /** 3.12+: the main interpreter's GIL struct as the interpreter list last found it (else gilHolder finds it) */
  private gilStruct(): Address | undefined {
    return this.version.minor >= 12 ? (this.interps?.gil ?? undefined) : undefined;
  }
  /** threads the last walk listed (walked or not) */
  private walkedLast = 0;
  /** tstate → OS TID, as the last tick's threads had them (with `skipAsleep`) */
  private tidOfTstate = new Map<Address, number>();

  /**
   * `reuseUnrun`, right after the picture: each thread off a CPU at the last tick whose task
   * clock has not moved since the read before its last walk has not run since, so its stack
   * is the same: it goes to `asleepSkip`, not to be walked. The others' clocks, read now,
   * before this tick's walk, are what the next tick compares with.
   */
  private askUnrun(): void {
    if (this.unrunNow.size > 0) this.unrunNow.clear();
    // the threads the last tick found off a CPU are asked; this tick's go to the other list
    const ask = this.nextUnrunAsk;
    this.nextUnrunAsk = this.unrunAsk;
    this.unrunAsk = ask;
    this.nextUnrunAsk.length = 0;
    if (this.unrunClock.size > 4096) this.unrunClock.clear(); // threads come and go: keep it bounded
    for (let i = 0; i < ask.length; i++) {
      const tid = ask[i]!;
      const clock = this.states.clockNum(tid);
      if (clock < 0) {
        this.unrunClock.delete(tid);
        continue;
      }
      const t = this.lastOfTid.get(tid);
      if (clock === this.unrunClock.get(tid) && t !== undefined && this.lastFrames.has(t.tstate)) {
        this.unrunNow.add(tid);
        this.asleepSkip.set(t.tstate, t.pthreadId);
      } else this.unrunClock.set(tid, clock);
    }
  }

  /** thread `t` (`walked[i]` of this tick) as a sample: OS TID, on a CPU or not, GIL */
  private readonly describe = (t: ThreadStack, i: number): ThreadSample => {
    const tid = this.osTid(t);
    const frames = t.frames ?? [];
    const moved = this.describeMoved;
    const holder = this.describeHolder;
    let on: boolean | undefined;
    if (tid === undefined) on = undefined;
    else if (this.unrunNow.has(tid)) on = false; // it has not run since its last read (reuseUnrun)
    else if (moved === undefined) {
      const letter = this.states.letter(tid);
      on = letter === undefined ? undefined : letter === 'R';
    } else {
      // a state read at the picture comes first: a move says only that the thread ran some
      // time between the picture and the re-read after the walk, and over that long a sleeper
      // that woke after the picture counts too (200 sleepers: up to 10 points too many)
      const early = this.early.get(tid);
      const judged = early ?? (moved[i] === 1 && this.describeMovedTrusted ? 1 : this.judgeByState(tid));
      on = judged === -1 ? undefined : judged === 1;
      if (judged === 2) this.tally.runnableWaiting++;
      // judged by its state at the next picture, unless it is running Python (a move, read
      // together for all threads, then says so for less)
      if (judged !== 1 || moved[i] !== 1) this.nextEarlyTids.push(tid);
    }
    if (this.reuseNow && tid !== undefined) {
      // off a CPU: asked at the next picture whether it ran since; else its clock is not kept
      if (on === false) this.nextUnrunAsk.push(tid);
      else this.unrunClock.delete(tid);
    }
    if (on === true) this.onCpuNow.push(t.tstate);
    const running = on === true && !(frames.length > 0 && isWaitingLeaf(frames[0]!));
    const out: ThreadSample = {
      tid: tid ?? t.tid,
      tidIsOs: tid !== undefined,
      ident: t.pthreadId,
      frames,
      state: on === undefined ? 'unknown' : running ? 'on-cpu' : 'idle',
      holdsGil: holder !== null && holder !== 0 && holder === t.tstate,
      truncated: t.truncated === true,
      torn: t.torn === true,
    };
    if (t.interp !== undefined) out.interp = t.interp;
    return out;
  };

  /**
   * Has each thread's innermost frame moved since its stack was read? One read of every
   * thread's current-frame pointer, instruction and first local slots (`leafMarkWords`; a
   * single process_vm_readv where available), a moment after the walk. Sets `moved[i]` for
   * `walked[i]`: 1 moved, 0 not, -1 unknown (no validated walk, or its words unreadable).
   */
  private movedSinceRead(walked: ThreadStack[]): Int8Array {
    if (this.moved.length < walked.length) this.moved = new Int8Array(Math.max(walked.length, 2 * this.moved.length));
    const moved = this.moved;
    moved.fill(-1, 0, walked.length);
    const words = this.markWords;
    words.clear();
    const early = this.bracketMoved;
    for (let i = 0; i < walked.length; i++) {
      const t = walked[i]!;
      if (!t.leaf) continue;
      // moved during the picture (its words read around the pages): no read again
      if (early.length > 0 && early.includes(t.tstate)) {
        moved[i] = 1;
        this.tally.movedInPicture++;
      } else leafMarkWords(this.layout, this.version.minor, t.tstate, t.leaf, words, i);
    }
    if (words.n > 0) {
      this.mem.readWordList(words);
      for (let k = 0; k < words.n; k++) {
        if (Number.isNaN(words.value[k]!)) continue;
        const i = words.owner[k]!;
        if (words.changed(k)) moved[i] = 1;
        else if (moved[i] === -1) moved[i] = 0;
      }
    }
    // the next picture brackets the threads moving now, the likeliest to be moving then
    const bracket = this.bracket;
    bracket.clear();
    for (let i = 0, n = 0; i < walked.length && n < ProcessSampler.MAX_BRACKETED; i++) {
      const t = walked[i]!;
      if (moved[i] !== 1 || !t.leaf) continue;
      leafMarkWords(this.layout, this.version.minor, t.tstate, t.leaf, bracket, t.tstate);
      n++;
    }
    return moved;
  }
  private moved = new Int8Array(8);
  private markWords = new WordList();

  /**
   * The steady tick (CPU mode: `skipAsleep`). A busy process's ticks are alike: the same few
   * threads, each running Python, each seen moving in the picture's own read (the bracket).
   * After a full tick that found exactly that, the next tick first tries the short way: the
   * picture (one call: the last tick's pages, the threads' leaf words around them), the same
   * thread states in the same order (address and pthread id), each thread's words moved, each
   * stack walked whole and validated (`walkStackWith`, as the full tick walks it), within
   * MOVED_TRUST_MS of the picture. Each thread is then on a CPU (a move read in the picture:
   * `movedInPicture`), as the full tick would judge it, with no judgement to make, no thread
   * object, no re-read. Anything else — a thread that did not move, a thread more or less, a
   * torn or cut walk, the code cache due to be dropped, the interpreter list due to be read
   * again and changed — hands over to the full tick, over the pages already fetched (no call
   * made twice). `steady`: the threads of the last full tick that allowed it.
   */
  private steady: SteadyThread[] | undefined;
  /** this tick's pages are fetched already (a steady tick handed over: `readThreads` uses them) */
  private fetched = false;
  private steadyWalks: (StackWalk | undefined)[] = [];

  /** the threads a steady tick expects, when this full tick allows the next to be one (see `steady`) */
  private steadyFrom(walked: ThreadStack[], out: TickResult): SteadyThread[] | undefined {
    if (!this.skipAsleep || this.cpuRule !== 'moving' || this.skipStill || this.reuseUnrun || this.blocking || !this.pastGate) return undefined;
    // 3.14 reads its code generation at every tick; the tick's type checks exist from the first walk
    if (this.layout.interp.code_object_generation != null || this.codeCheck === undefined) return undefined;
    const n = walked.length;
    const moved = this.describeMoved;
    if (n === 0 || n > ProcessSampler.MAX_BRACKETED || out.threads.length !== n || moved === undefined || this.early.size > 0 || !this.describeMovedTrusted) return undefined;
    if (this.interps === undefined || this.interps.list.length !== 1) return undefined;
    const last = this.steady;
    let same = last !== undefined && last.length === n;
    for (let i = 0; i < n; i++) {
      const t = walked[i]!;
      const s = out.threads[i]!;
      if (moved[i] !== 1 || t.error !== undefined || t.retries || t.torn || t.truncated || t.paused || t.asleep || t.interp !== undefined || t.leaf === undefined) return undefined;
      if (!s.tidIsOs || s.ident !== t.pthreadId || s.frames !== t.frames || s.frames.length === 0) return undefined;
      if (same && (last![i]!.tstate !== t.tstate || last![i]!.ident !== t.pthreadId || last![i]!.tid !== s.tid)) same = false;
    }
    if (same) return last;
    const st: SteadyThread[] = [];
    for (let i = 0; i < n; i++) {
      const t = walked[i]!;
      st.push({ tstate: t.tstate, ident: t.pthreadId, lo: Number(t.pthreadId & 0xffffffffn), hi: Number(t.pthreadId >> 32n), tid: out.threads[i]!.tid });
    }
    return st;
  }

  /** a steady tick (see `steady`), or undefined: the full tick goes on from here */
  private steadyTick(st: SteadyThread[]): TickResult | undefined {
    this.steady = undefined;
    // the full tick drops the code cache when due
    if (this.codeCache.size > this.codeCacheMax || Date.now() - this.codeCacheBorn >= this.codeCacheTtlMs) return undefined;
    const mem = this.tickPages();
    this.fetched = true;
    const n = st.length;
    if (this.bracketMoved.length !== n) return undefined;
    const L = this.layout;
    const minor = this.version.minor;
    const interps = this.interpreters(mem).list;
    if (interps.length !== 1) return undefined;
    let tstate = mem.readPtr(interps[0]!.address + L.interp.threads_head);
    for (let k = 0; k < n; k++) {
      const s = st[k]!;
      if (tstate !== s.tstate || mem.readU32(tstate + L.tstate.thread_id) !== s.lo || mem.readU32(tstate + L.tstate.thread_id + 4) !== s.hi) return undefined;
      tstate = mem.readPtr(tstate + L.tstate.next);
    }
    if (tstate !== 0) return undefined;
    const pictureAt = performance.now();
    const walks = this.steadyWalks;
    const maxDepth = this.maxDepth ?? DEFAULT_MAX_DEPTH;
    for (let k = 0; k < n; k++) {
      const s = st[k]!;
      mem.resetTouched();
      const w = walkStackWith(mem, L, minor, s.tstate, maxDepth, this.codeCache, this.codeCheck, this.lastFrames.get(s.tstate));
      keepPlan(this.plans, mem, s.tstate);
      if (!w.complete || w.unsteady !== undefined || w.truncated || w.leaf === undefined || w.frames.length === 0) return undefined;
      walks[k] = w;
    }
    if (performance.now() - pictureAt > MOVED_TRUST_MS) return undefined;
    const holder = gilHolder(mem, L, this.runtime.runtimeAddress, minor, this.gilStruct());
    mem.allTouchedInto(this.tickPlan);
    // as the full tick: each thread on a CPU (its move read in the picture), the next picture brackets it again
    this.fetched = false;
    this.walkedLast = n;
    const out: TickResult = { threads: [], errors: 0, gone: false };
    for (let k = 0; k < n; k++) {
      const s = st[k]!;
      const w = walks[k]!;
      walks[k] = undefined;
      this.lastFrames.set(s.tstate, w.frames);
      leafMarkWords(L, minor, s.tstate, w.leaf!, this.bracket, s.tstate);
      this.tally.movedInPicture++;
      this.onCpuNow.push(s.tstate);
      out.threads.push({
        tid: s.tid,
        tidIsOs: true,
        ident: s.ident,
        frames: w.frames,
        state: isWaitingLeaf(w.frames[0]!) ? 'idle' : 'on-cpu',
        holdsGil: holder !== null && holder !== 0 && holder === s.tstate,
        truncated: false,
        torn: false,
      });
    }
    this.tally.steadyTicks++;
    this.steady = st;
    return out;
  }

  /**
   * One read of the process. `shared`: the sampler thread's tick start for a tick that
   * samples several processes (the Recorder's children, the agent's targets): read once, when
   * a CPU judgement of any of them first needs it, for all of them.
   */
  tick(shared?: TickStart): TickResult {
    if (this.closed) return { threads: [], errors: 0, gone: true };
    // the thread count: asked every LINKS_EVERY ticks of a still process, and before every
    // full tick (before the walk: a thread that starts during it changes the count again)
    let links = -1;
    if (this.skipStill) {
      const asked = ++this.linkTicks % LINKS_EVERY === 0;
      links = asked ? this.taskLinks() : this.stillLinks;
      // no thread left in the process this directory was opened for: it has ended (its PID
      // may already be another process's, whose memory is not to be read as this one's)
      if (links === 2) return { threads: [], errors: 0, gone: true };
      if (this.still(links)) {
        this.stillTicks++;
        return STILL_TICK;
      }
      if (!asked) {
        links = this.taskLinks();
        if (links === 2) return { threads: [], errors: 0, gone: true };
      }
    }
    let atGate = false;
    let throughGate = false;
    this.tickStart = shared ?? this.ownTickStart.restart();
    this.pauser?.settle();
    this.fetched = false;
    if (this.steady !== undefined) {
      try {
        const r = this.steadyTick(this.steady);
        if (r !== undefined) {
          this.states.endTick();
          return r;
        }
      } catch (e) {
        if (e instanceof ProcessGoneError) return { threads: [], errors: 0, gone: true };
        // anything else: the full tick reads it again, and says what it finds
      }
    }
    const out: TickResult = { threads: [], errors: 0, gone: false };
    try {
      const skipAsleep = this.skipAsleep && this.pastGate;
      const reuse = this.reuseUnrun && this.pastGate && !skipAsleep;
      if (!reuse && this.unrunClock.size > 0) {
        this.unrunClock.clear();
        this.nextUnrunAsk.length = 0;
      }
      const { walked, described } = this.readThreads(skipAsleep, reuse);
      if (this.skipStill) this.stillTids.length = 0;
      if ((skipAsleep || reuse) && this.lastOfTid.size > 4096) this.lastOfTid.clear();
      if (this.tidOfTstate.size > 4096) this.tidOfTstate.clear(); // threads come and go: keep it bounded
      for (let i = 0; i < walked.length; i++) {
        const t = walked[i]!;
        if (this.skipStill || skipAsleep || reuse) {
          const tid = this.osTid(t);
          // every Python thread is watched, with a stack or not (one between calls now may run next)
          if (this.skipStill && tid !== undefined) this.stillTids.push(tid);
          if ((skipAsleep || reuse) && tid !== undefined) this.lastOfTid.set(tid, t);
          if (skipAsleep && tid !== undefined) {
            this.tidOfTstate.set(t.tstate, tid);
            if (t.asleep) {
              // asleep at this picture: judged by its state again at the next
              this.nextEarlyTids.push(tid);
              out.asleep = (out.asleep ?? 0) + 1;
              this.tally.asleepNotWalked++;
              continue;
            }
          }
          if (reuse && t.asleep) {
            // not walked: it has not run since its last read, so its stack is that read's
            const frames = this.lastFrames.get(t.tstate);
            if (frames !== undefined) t.frames = frames;
            if (frames !== undefined && frames.length >= (this.maxDepth ?? DEFAULT_MAX_DEPTH)) t.truncated = true;
            this.tally.unrunReused++;
          }
        }
        if (t.error !== undefined) {
          out.errors++;
          continue;
        }
        if (!t.frames || t.frames.length === 0) continue;
        if (!this.pastGate) {
          const part = gatePart(t.frames);
          if (part === 'held') {
            this.tally.gateSamples++;
            atGate = true;
            this.gateIdent = t.pthreadId;
            continue;
          }
          if (part === 'through') {
            // the shadowed sitecustomize's run: the program's, shown as site runs it
            t.frames = withoutGate(t.frames);
            throughGate = true;
          }
        }
        out.threads.push(described(t, i));
      }
      // a launched program leaves the gate before any of its own code runs, and never
      // comes back: once a tick finds no thread with a frame of it, stacks are no longer
      // searched (a program still starting while it is awaited there is searched until it
      // has come; one still in the sitecustomize the gate imports has gate frames under it)
      if (!this.pastGate && out.threads.length > 0 && !atGate && !throughGate && this.gateArrival === undefined) this.pastGate = true;
      this.steady = this.steadyFrom(walked, out);
      if (this.skipStill) {
        this.stillLinks = links;
        this.fullTickAt = performance.now();
      }
    } catch (e) {
      if (e instanceof ProcessGoneError) {
        out.gone = true;
        return out;
      }
      // The thread list itself was unreadable (e.g. mid-shutdown): one error for the tick.
      if (e instanceof BadReadError || (e instanceof Error && e.name === 'WalkError')) {
        out.errors++;
        return out;
      }
      throw e;
    } finally {
      this.states.endTick();
    }
    if (atGate && this.gateArrival) {
      const arrived = this.gateArrival;
      this.gateArrival = undefined;
      this.warmAtGate();
      arrived();
    }
    return out;
  }

  /**
   * For a launched program that is to wait at pylens's start gate: `arrived` is called by
   * the first tick that finds it there (after a few ticks more, to warm up: see
   * warmAtGate), once; until then, stacks are searched for the gate at every tick. The
   * caller lets the program go from `arrived`; undefined stops the wait.
   */
  onGate(arrived: (() => void) | undefined): void {
    this.gateArrival = this.pastGate ? undefined : arrived;
  }

  /**
   * Ticks on a process held at the start gate, their samples the gate's and dropped
   * uncounted. A run's first ticks read every code object and thread name for the first
   * time and take the JIT's cold paths (measured: ~4 ms for the first tick's read on 3.13,
   * ~1 ms for the next, 0.4 ms once warm); made while the program waits, they are not paid
   * during its first moments. Bounded by `maxMs`; stops once a tick costs little.
   */
  warmAtGate(maxMs = 20): void {
    const dropped = this.tally.gateSamples;
    const until = performance.now() + maxMs;
    try {
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        const r = this.tick();
        if (this.gateIdent !== undefined) this.threadName(this.gateIdent);
        const took = performance.now() - t0;
        if (r.gone || r.threads.length > 0 || took < 0.3 || performance.now() >= until) break;
      }
    } finally {
      this.tally.gateSamples = dropped;
    }
  }

  /** a launched program has left pylens's start gate (a tick found its threads without the gate's frames) */
  get gatePassed(): boolean {
    return this.pastGate;
  }

  private wordsCheck: CodeTypeCheck | undefined;

  /**
   * A stack read in the kernel (frame words, leaf first: capture/ebpf/pywalk.ts), named
   * through this process's memory; `cache` is the caller's (it decides how long names live).
   */
  wordsWalk(words: readonly bigint[], cut: boolean, cache: CodeCache): WordsWalk {
    this.wordsCheck ??= new CodeTypeCheck(this.mem, this.layout);
    return framesFromWords(this.mem, this.layout, this.version.minor, words, cut, cache, this.wordsCheck);
  }

  /**
   * Every thread as it is now, for `dump`: threads without Python frames and threads whose
   * stack could not be read included (`error`), with names; `holdsGil` is null when the GIL
   * could not be read. Throws ProcessGoneError and unreadable-thread-list errors.
   */
  snapshot(): (ThreadSample & { name?: string; error?: string; gilKnown: boolean })[] {
    this.tickStart = this.ownTickStart.restart();
    try {
      const { walked, holder, described } = this.readThreads();
      return walked.map((t, i) => {
        const d = described(t, i);
        const name = this.threadName(t.pthreadId);
        return { ...d, ...(name !== undefined ? { name } : {}), ...(t.error !== undefined ? { error: t.error } : {}), gilKnown: holder !== null };
      });
    } finally {
      this.states.endTick();
    }
  }

  /**
   * The `threading` name of the thread with this ident, when known (threading._active,
   * re-read at most once a second or when a new ident shows up; threadnames.ts).
   */
  threadName(ident: bigint): string | undefined {
    if (this.closed) return undefined;
    try {
      return this.names.get(ident);
    } catch {
      return undefined; // gone or unreadable: the next tick finds out
    }
  }

  private names: ThreadNames;

  /** kept between reads of the asyncio tasks; dropped with the code cache */
  private asyncState = newAsyncReadState();

  /**
   * The live asyncio tasks of the main interpreter (asyncio.ts); throws on unreadable memory.
   * With `stride`, the tasks of one turn of that many (`AsyncTasks.stride`).
   */
  asyncTasks(opts: { max?: number; stride?: number } = {}): AsyncTasks {
    const asyncioDebug = this.version.minor >= 14 ? this.asyncioDebug() : undefined;
    if (typeof asyncioDebug === 'string') return { asyncio: false, tasks: [], unsupported: 0, skipped: 0, torn: 0, stride: opts.stride ?? 1, registered: 0, unreadable: asyncioDebug };
    // the registry changes under the read while tasks come and go: a torn read is read again
    for (let attempt = 1; ; attempt++) {
      try {
        return readAsyncTasks(this.mem, this.layout, mainInterpreter(this.mem, this.layout, this.runtime.runtimeAddress), this.version.minor, { ...(opts.max !== undefined ? { max: opts.max } : {}), codeCache: this.codeCache, state: this.asyncState, stride: opts.stride ?? 1, ...(asyncioDebug !== undefined ? { asyncioDebug } : {}) });
      } catch (e) {
        if (attempt >= 5 || !isTorn(e)) throw e;
      }
    }
  }

  /** 3.14+: _asyncio's table (null: not loaded yet, looked for again after a second; a string: why it is unusable) */
  private asyncioTable: AsyncioDebugOffsets | null | string = null;
  private asyncioTableAt = -Infinity;
  private asyncioDebug(): AsyncioDebugOffsets | null | string {
    const now = performance.now();
    if (this.asyncioTable !== null || now - this.asyncioTableAt < 1000) return this.asyncioTable;
    this.asyncioTableAt = now;
    try {
      this.asyncioTable = findAsyncioDebugOffsets(this.pid, this.layout)?.offsets ?? null;
    } catch (e) {
      if (!(e instanceof AsyncioDebugError)) throw e;
      this.asyncioTable = e.message;
    }
    return this.asyncioTable;
  }

  /** ticks between two reads of one task (a power of two: `maxEvery` × the stride at most) */
  private taskPeriod = 1;
  /** what reading the tasks costs a tick, ns (a moving average) */
  private taskTickNs = 0;
  private taskTicks = 0;
  private taskReads = 0;
  private periodChangedAt = 0;
  /** the fewest tasks a strided read should still read (past that the registry's scan is what costs) */
  static readonly MIN_TASKS_PER_READ = 16;

  /**
   * This tick's read of the asyncio tasks within `budgetNs` a tick on average, or null when
   * this tick reads none (record and top --async). Past the budget each task is read once every
   * P ticks (P a power of two, following the measured cost: doubled over the budget while a
   * read keeps MIN_TASKS_PER_READ tasks, halved well under it; ten reads between changes), and
   * `AsyncTasks.stride` is P, the weight of each task read. The reads come every E ticks
   * (`taskEvery`), each taking one turn of P/E: fewer, larger reads, because a read after the
   * sampler's sleep costs about as much before its first task (cold caches, the registry's
   * table) as for a hundred tasks after — but not too few, as tasks that wait together are
   * then seen at fewer moments.
   */
  budgetedAsyncTasks(budgetNs: number, opts: { max?: number; maxEvery?: number } = {}): AsyncTasks | null {
    const maxEvery = opts.maxEvery ?? 1;
    const every = taskEvery(this.taskPeriod, maxEvery);
    if (++this.taskTicks % every !== 0) return null;
    const stride = this.taskPeriod / every;
    const t0 = performance.now();
    const out = this.asyncTasks({ ...(opts.max !== undefined ? { max: opts.max } : {}), stride });
    out.stride = this.taskPeriod;
    const ns = (performance.now() - t0) * 1e6;
    const n = ++this.taskReads;
    if (n <= 3) return out; // cold: code objects decoded, the JIT warming up
    this.taskTickNs = this.taskTickNs === 0 ? ns / every : 0.8 * this.taskTickNs + 0.2 * (ns / every);
    if (n - this.periodChangedAt < 10) return out;
    const next = 2 * this.taskPeriod;
    // a few tasks are read at every tick whatever it costs (a read of them is cheap anyway)
    if (this.taskTickNs > budgetNs && out.registered >= 2 * ProcessSampler.MIN_TASKS_PER_READ && out.registered / (next / taskEvery(next, maxEvery)) >= ProcessSampler.MIN_TASKS_PER_READ) this.taskPeriod = next;
    else if (this.taskTickNs < budgetNs / 2.5 && this.taskPeriod > 1) this.taskPeriod /= 2;
    else return out;
    this.periodChangedAt = n;
    // the new period's reads start on a tick of their own
    this.taskTicks = 0;
    return out;
  }

  /** The main interpreter's GIL struct: where its waiters sleep (see gilStructAddress). */
  gilRange(): { address: Address; size: number } | null {
    const a = gilStructAddress(this.mem, this.layout, this.runtime.runtimeAddress, this.version.minor);
    return a === null ? null : { address: a, size: this.layout.gil.size };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.taskDirFd !== undefined && this.taskDirFd >= 0) {
      try {
        closeSync(this.taskDirFd);
      } catch {
        /* already closed */
      }
    }
    this.taskDirFd = -1;
    this.pauser?.close();
    this.states.close();
    this.mem.close();
    this.tickMem = undefined;
    this.pagesA.free();
    this.asyncState.pages?.free();
  }
}

/**
 * Ticks between two reads of asyncio tasks when each task is read once every `period` ticks
 * (both powers of two): about √period (rounded down), at most `maxEvery` — a read's fixed cost spread over
 * E ticks against the moments at which tasks are seen (P = 64: a read every 8 ticks of one
 * turn of 8; P = 8: every 2 ticks, a turn of 4).
 */
export function taskEvery(period: number, maxEvery: number): number {
  return Math.max(1, Math.min(maxEvery, 2 ** Math.floor(Math.log2(period) / 2)));
}
