/**
 * The core of `pylens record`: sample a live CPython process at a fixed rate into a Profile.
 *
 * - Attach once: `locateRuntime`, `layoutFor`, `ProcMemory`, and (3.8–3.10) the offset of the
 *   OS TID inside glibc's `struct pthread` (`findPthreadTidOffset`, retried until found).
 * - Schedule (`runSchedule`): ABSOLUTE deadlines, tick k is due at start + k·period. When a
 *   tick is late by more than one period the missed ticks are skipped and counted
 *   (`missedTicks`), never caught up in a burst; waiting is setTimeout-based (no busy loop).
 * - Each tick: `walkThreads`; per thread with frames, the OS state from
 *   /proc/PID/task/TID/stat ('R' → on-cpu, else idle, unmappable → unknown); idle samples are
 *   dropped unless `idle`; `gilOnly` keeps only the GIL holder's sample. The GIL holder keeps
 *   its on-cpu/idle state (the model's 'gil' state is not used); holder samples are counted
 *   in `extra.gilSamples`.
 * - A thread whose walk failed counts one error and is dropped; ProcessGoneError ends
 *   sampling normally; so does the AbortSignal (Ctrl-C flushes through it).
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { ProfileBuilder } from '../../model/builder.ts';
import { hostEnvironment } from '../../model/environment.ts';
import type { Profile, SampleState } from '../../model/profile.ts';
import { findPthreadTidOffset, gilHolder, taskIds, taskStateLetter } from './dump.ts';
import { layoutFor } from './layouts/index.ts';
import { BadReadError, ProcessGoneError, ProcMemory } from './memory.ts';
import { locateRuntime, UnsupportedVersionError } from './runtime.ts';
import { walkThreads, type CodeCache, type ThreadStack } from './walker.ts';

export interface SamplerClock {
  /** monotonic nanoseconds (any origin) */
  nowNs(): number;
  /** resolve at (or after) time `t` of `nowNs`; may resolve early when `signal` aborts */
  sleepUntilNs(t: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: SamplerClock = {
  nowNs: () => performance.now() * 1e6,
  sleepUntilNs(t, signal) {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const ms = Math.max(0, (t - performance.now() * 1e6) / 1e6);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.ceil(ms));
      signal?.addEventListener('abort', done, { once: true });
    });
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
 * Run `tick` at absolute deadlines start + k·period until `durationNs` has passed (if given),
 * the signal aborts, or `tick` returns 'stop'. `tick` gets the ns since start.
 */
export async function runSchedule(
  clock: SamplerClock,
  periodNs: number,
  tick: (sinceStartNs: number) => 'stop' | void,
  opts: { durationNs?: number; signal?: AbortSignal } = {},
): Promise<ScheduleResult> {
  const start = clock.nowNs();
  const end = opts.durationNs !== undefined ? start + opts.durationNs : undefined;
  let k = 0;
  let ticks = 0;
  let missed = 0;
  for (;;) {
    if (opts.signal?.aborted) break;
    let due = start + k * periodNs;
    const now = clock.nowNs();
    const late = now - due;
    if (late > periodNs) {
      const skip = Math.floor(late / periodNs);
      missed += skip;
      k += skip;
      due = start + k * periodNs;
    }
    if (end !== undefined && due >= end) break;
    if (due > now) await clock.sleepUntilNs(due, opts.signal);
    if (opts.signal?.aborted) break;
    ticks++;
    k++;
    if (tick(clock.nowNs() - start) === 'stop') break;
  }
  return { ticks, missedTicks: missed, startNs: start, endNs: clock.nowNs() };
}

export interface SampleOptions {
  rateHz?: number;
  /** stop after this many seconds; absent = until the process exits or the signal aborts */
  durationS?: number;
  /** keep samples of threads that are not running (wall-clock mode) */
  idle?: boolean;
  /** keep only the sample of the thread holding the GIL */
  gilOnly?: boolean;
  signal?: AbortSignal;
  clock?: SamplerClock;
  maxDepth?: number;
}

function readCmdline(pid: number): string[] | undefined {
  try {
    const parts = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (parts.at(-1) === '') parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

function readExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Sample process `pid` into a Profile. Attach errors (gone, permission, unsupported) throw. */
export async function sampleProcess(pid: number, opts: SampleOptions = {}): Promise<Profile> {
  const rateHz = opts.rateHz ?? 100;
  if (!(rateHz > 0 && Number.isFinite(rateHz))) throw new RangeError(`rateHz must be a positive number, not ${rateHz}`);
  const idle = opts.idle ?? false;
  const gilOnly = opts.gilOnly ?? false;
  const clock = opts.clock ?? realClock;

  // ---- attach ----
  const rt = locateRuntime(pid);
  const v = rt.version;
  const layout = layoutFor(v.major, v.minor);
  if (!layout) throw new UnsupportedVersionError(pid, v);
  const command = readCmdline(pid);
  const executable = readExe(pid);
  const mem = ProcMemory.open(pid);
  const nativeTid = layout.tstate.native_thread_id !== null;
  let pthreadTidOffset: number | undefined;
  const tidOfPthread = new Map<bigint, number>();
  const osTid = (t: ThreadStack): number | undefined => {
    if (nativeTid) return t.tid > 0 ? t.tid : undefined;
    const hit = tidOfPthread.get(t.pthreadId);
    if (hit !== undefined) return hit;
    if (pthreadTidOffset === undefined) return undefined;
    try {
      const tid = mem.readI32(Number(t.pthreadId) + pthreadTidOffset);
      if (tid <= 0) return undefined;
      tidOfPthread.set(t.pthreadId, tid);
      return tid;
    } catch (e) {
      if (e instanceof BadReadError) return undefined;
      throw e;
    }
  };

  const b = new ProfileBuilder({ meta: { lens: 'sampling', backend: 'pylens-sampler', mode: idle ? 'wall' : 'cpu' } });
  const frameCache = new Map<string, number>();
  const codeCache: CodeCache = new Map();
  let rows = 0;
  let errors = 0;
  let gilSamples = 0;

  const tick = (sinceStart: number): 'stop' | void => {
    try {
      const walked = walkThreads(mem, rt, layout, v, { cache: codeCache, ...(opts.maxDepth !== undefined ? { maxDepth: opts.maxDepth } : {}) });
      if (!nativeTid && pthreadTidOffset === undefined && walked.length > 0) {
        pthreadTidOffset = findPthreadTidOffset(mem, walked.map((t) => t.pthreadId), taskIds(pid), pid);
      }
      const holder = gilHolder(mem, layout, rt.runtimeAddress, v.minor);
      for (const t of walked) {
        if (t.error !== undefined) {
          errors++;
          continue;
        }
        const frames = t.frames;
        if (!frames || frames.length === 0) continue;
        const holds = holder !== null && holder !== 0 && holder === t.tstate;
        if (gilOnly && !holds) continue;
        const tid = osTid(t);
        const letter = tid !== undefined ? taskStateLetter(pid, tid) : undefined;
        const state: SampleState = letter === undefined ? 'unknown' : letter === 'R' ? 'on-cpu' : 'idle';
        if (state === 'idle' && !idle) continue;
        let stack = -1;
        for (let i = frames.length - 1; i >= 0; i--) {
          const f = frames[i]!;
          const line = f.line ?? 0;
          const key = `${f.qualname}\0${f.file}\0${line}`;
          let fi = frameCache.get(key);
          if (fi === undefined) {
            fi = b.frame({ kind: 'python', name: f.name, qualname: f.qualname, file: f.file, line });
            frameCache.set(key, fi);
          }
          stack = b.stack(stack, fi);
        }
        b.sample(stack, 1, b.thread(pid, tid ?? t.tid), state, sinceStart);
        rows++;
        if (holds) gilSamples++;
      }
    } catch (e) {
      if (e instanceof ProcessGoneError) return 'stop';
      // The thread list itself was unreadable (e.g. mid-shutdown): one error for the tick.
      if (e instanceof BadReadError || (e instanceof Error && e.name === 'WalkError')) {
        errors++;
        return;
      }
      throw e;
    }
  };

  const startTime = new Date().toISOString();
  const cpu0 = process.cpuUsage();
  let sched: ScheduleResult;
  try {
    sched = await runSchedule(clock, 1e9 / rateHz, tick, {
      ...(opts.durationS !== undefined ? { durationNs: opts.durationS * 1e9 } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } finally {
    mem.close();
  }
  const cpu = process.cpuUsage(cpu0);
  const durationNs = Math.max(0, sched.endNs - sched.startNs);
  const cpuNs = (cpu.user + cpu.system) * 1000;

  b.meta = {
    ...b.meta,
    rateHz,
    durationNs,
    startTime,
    pid,
    sampleCount: rows,
    errorCount: errors,
    overhead: { fraction: durationNs > 0 ? cpuNs / durationNs : 0, method: 'sampler CPU time / wall time' },
    environment: { ...hostEnvironment(), python: { version: v.text, implementation: 'CPython', ...(executable ? { executable } : {}) } },
    extra: {
      achievedRateHz: durationNs > 0 ? sched.ticks / (durationNs / 1e9) : 0,
      missedTicks: sched.missedTicks,
      ticks: sched.ticks,
      gilSamples,
    },
  };
  if (command) b.meta.command = command;
  return b.build();
}
