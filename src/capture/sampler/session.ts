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
import { readFileSync, readlinkSync } from 'node:fs';
import type { SampleState } from '../../model/profile.ts';
import { findPthreadTidOffset, gilHolder, taskIds, taskStateLetter } from './dump.ts';
import { layoutFor } from './layouts/index.ts';
import type { Layout } from './layouts/types.ts';
import { BadReadError, ProcessGoneError, ProcMemory } from './memory.ts';
import { locateRuntime, UnsupportedVersionError, type PythonVersion, type RuntimeLocation } from './runtime.ts';
import { walkThreads, type CodeCache, type Frame, type ThreadStack } from './walker.ts';

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
  truncated: boolean;
}

export interface TickResult {
  threads: ThreadSample[];
  /** threads (or the whole tick) that could not be read */
  errors: number;
  /** the process has exited */
  gone: boolean;
}

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

  private constructor(pid: number, runtime: RuntimeLocation, layout: Layout, mem: ProcMemory) {
    this.pid = pid;
    this.runtime = runtime;
    this.version = runtime.version;
    this.layout = layout;
    this.mem = mem;
    this.nativeTid = layout.tstate.native_thread_id !== null;
    this.command = readCmdline(pid);
    this.executable = readExe(pid);
  }

  static attach(pid: number, opts: { maxDepth?: number } = {}): ProcessSampler {
    const rt = locateRuntime(pid);
    const v = rt.version;
    const layout = layoutFor(v.major, v.minor);
    if (!layout) throw new UnsupportedVersionError(pid, v);
    const s = new ProcessSampler(pid, rt, layout, ProcMemory.open(pid));
    s.maxDepth = opts.maxDepth;
    return s;
  }

  /** the threads of the last walk, raw (for callers that need more than `tick` keeps) */
  walk(): ThreadStack[] {
    return walkThreads(this.mem, this.runtime, this.layout, this.version, {
      cache: this.codeCache,
      ...(this.maxDepth !== undefined ? { maxDepth: this.maxDepth } : {}),
    });
  }

  private osTid(t: ThreadStack): number | undefined {
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

  tick(): TickResult {
    const out: TickResult = { threads: [], errors: 0, gone: false };
    if (this.closed) return { ...out, gone: true };
    try {
      const walked = this.walk();
      if (!this.nativeTid && this.pthreadTidOffset === undefined && walked.length > 0) {
        this.pthreadTidOffset = findPthreadTidOffset(this.mem, walked.map((t) => t.pthreadId), taskIds(this.pid), this.pid);
      }
      const holder = gilHolder(this.mem, this.layout, this.runtime.runtimeAddress, this.version.minor);
      for (const t of walked) {
        if (t.error !== undefined) {
          out.errors++;
          continue;
        }
        if (!t.frames || t.frames.length === 0) continue;
        const tid = this.osTid(t);
        const letter = tid !== undefined ? taskStateLetter(this.pid, tid) : undefined;
        out.threads.push({
          tid: tid ?? t.tid,
          tidIsOs: tid !== undefined,
          ident: t.pthreadId,
          frames: t.frames,
          state: letter === undefined ? 'unknown' : letter === 'R' ? 'on-cpu' : 'idle',
          holdsGil: holder !== null && holder !== 0 && holder === t.tstate,
          truncated: t.truncated === true,
        });
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
    }
    return out;
  }

  /** the `threading` name of the thread with this ident, when known */
  threadName(ident: bigint): string | undefined {
    if (this.names === undefined) return undefined;
    return this.names(ident);
  }

  /** set by whoever can read thread names (threadnames.ts) */
  names: ((ident: bigint) => string | undefined) | undefined;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mem.close();
  }
}
