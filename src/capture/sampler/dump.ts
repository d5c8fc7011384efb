/**
 * One snapshot of every Python thread of a live process, as `py-spy dump` prints it:
 * thread identity, OS run state, who holds the GIL, and the stack (leaf first).
 *
 * - `dumpProcess` is one `ProcessSampler.snapshot()` (session.ts); the thread-level reads
 *   it and the sampler share (state letter, TIDs, GIL holder) are in threads.ts.
 * - State: `/proc/PID/task/TID/stat`, the state letter after the last ')': 'R' = running
 *   (runnable included: the sampler's stricter CPU rule is for profiles; unless the innermost
 *   frame is a stdlib waiting function), anything else idle. Needs the OS TID: 3.11+ `native_thread_id`; 3.8–3.10 only have the
 *   pthread_t, which is the address of glibc's `struct pthread`, whose `tid` field is found
 *   by `findPthreadTidOffset` (the one offset at which every thread's struct holds a distinct
 *   TID of /proc/PID/task, one of them the PID). Unmappable → state 'unknown'.
 * - GIL (docs/cpython-internals.md §7): 3.8–3.11 `_PyRuntime.ceval.gil`, 3.12+ the struct
 *   `interp->ceval.gil` points to; holder tstate = locked ? last_holder : none. The two
 *   words are read without synchronisation, so a dump racing a GIL hand-off may show none.
 * - Names: `threading._active` (ident → Thread, its `_name`) read by threadnames.ts and
 *   matched on the pthread ident ("MainThread" for the main thread). Absent when the
 *   process has not imported `threading`, for threads not started through it, or when the
 *   objects could not be read.
 */
import { ProcessSampler } from './session.ts';
import type { AsyncTasks } from './asyncio.ts';
import type { Frame } from './walker.ts';

export type ThreadRunState = 'running' | 'idle' | 'unknown';

export interface DumpThread {
  /** OS TID when known (3.11+, or mapped from the pthread on 3.8–3.10); else the pthread_t as a number */
  tid: number;
  /** pthread_self() of the thread, as a decimal string (JSON has no bigint) */
  pthreadId: string;
  /** true when `tid` is a real OS TID */
  tidIsOs: boolean;
  /** `threading` name (`Thread._name`), absent when unknown */
  name?: string;
  state: ThreadRunState;
  /** null when the GIL state could not be read */
  holdsGil: boolean | null;
  /** leaf first; empty when `error` is set */
  frames: Frame[];
  error?: string;
  truncated?: boolean;
}

export interface DumpResult {
  pid: number;
  python: { version: string; library: string };
  threads: DumpThread[];
  /** with `async`: the live asyncio tasks (asyncio.ts), or why they could not be read */
  asyncio?: AsyncTasks | { error: string };
}

/**
 * Snapshot process `pid`. Throws the sampler's typed errors (ProcessGoneError,
 * PermissionError, RuntimeNotFoundError, UnsupportedVersionError); the CLI explains them.
 */
export function dumpProcess(pid: number, opts: { async?: boolean } = {}): DumpResult {
  const s = ProcessSampler.attach(pid);
  // a dump says what each thread is doing: a runnable thread waiting for a CPU on a busy
  // machine is running work (py-spy's "active"), not idle — the profile's CPU rule is about
  // whose CPU time a sample is, which one snapshot cannot weigh
  s.cpuRule = 'runnable';
  try {
    const threads = s.snapshot().map((t): DumpThread => {
      const out: DumpThread = {
        tid: t.tid,
        pthreadId: t.ident.toString(),
        tidIsOs: t.tidIsOs,
        ...(t.name !== undefined ? { name: t.name } : {}),
        state: t.state === 'on-cpu' ? 'running' : t.state === 'idle' ? 'idle' : 'unknown',
        holdsGil: t.gilKnown ? t.holdsGil : null,
        frames: t.frames,
      };
      if (t.error !== undefined) out.error = t.error;
      if (t.truncated) out.truncated = true;
      return out;
    });
    const out: DumpResult = { pid, python: { version: s.version.text, library: s.runtime.libraryPath }, threads };
    if (opts.async) {
      try {
        out.asyncio = s.asyncTasks();
      } catch (e) {
        out.asyncio = { error: (e as Error).message };
      }
    }
    return out;
  } finally {
    s.close();
  }
}
