/**
 * One snapshot of every Python thread of a live process, as `py-spy dump` prints it:
 * thread identity, OS run state, who holds the GIL, and the stack (leaf first).
 *
 * - `dumpProcess` is one `ProcessSampler.snapshot()` (session.ts); this file keeps the
 *   helpers it and the sampler share.
 * - State: `/proc/PID/task/TID/stat`, the state letter after the last ')': 'R' = running
 *   (unless the innermost frame is a stdlib waiting function), anything else idle. Needs the OS TID: 3.11+ `native_thread_id`; 3.8–3.10 only have the
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
import { readdirSync } from 'node:fs';
import type { Layout } from './layouts/types.ts';
import { BadReadError, type Address, type ProcessMemory } from './memory.ts';
// session.ts imports this file's helpers too; the cycle is only between functions
import { ProcessSampler } from './session.ts';
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
}

/**
 * The state letter in the first `n` bytes of a /proc stat line: the first non-space after
 * the last ')' (comm may contain ')'); undefined when there is none.
 */
export function statStateLetter(stat: Uint8Array, n = stat.length): string | undefined {
  let i = stat.lastIndexOf(0x29, n - 1);
  if (i < 0) return undefined;
  for (i++; i < n && stat[i] === 0x20; i++);
  return i < n ? String.fromCharCode(stat[i]!) : undefined;
}

export function taskIds(pid: number, procRoot = '/proc'): number[] {
  try {
    return readdirSync(`${procRoot}/${pid}/task`).map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

const PTHREAD_SCAN_BYTES = 2048;
/** glibc 2.36 on x86-64 (the machine's); tried first */
const PTHREAD_TID_GUESS = 720;

/**
 * The offset of `tid` in glibc's `struct pthread` (pthread_t is its address): the 4-aligned
 * offset at which every thread's struct holds a distinct TID from `tids`, one equal to `pid`
 * (the main thread). Undefined when no such offset (or a struct is unreadable).
 */
export function findPthreadTidOffset(mem: ProcessMemory, pthreads: bigint[], tids: number[], pid: number): number | undefined {
  if (pthreads.length === 0 || !tids.includes(pid)) return undefined;
  const set = new Set(tids);
  const views: DataView[] = [];
  for (const p of pthreads) {
    if (p === 0n || p >= 1n << 47n) return undefined;
    try {
      const b = mem.read(Number(p), PTHREAD_SCAN_BYTES);
      views.push(new DataView(b.buffer, b.byteOffset, b.byteLength));
    } catch (e) {
      if (e instanceof BadReadError) return undefined;
      throw e;
    }
  }
  const fits = (off: number) => {
    const seen = new Set<number>();
    for (const v of views) {
      const t = v.getInt32(off, true);
      if (!set.has(t) || seen.has(t)) return false;
      seen.add(t);
    }
    return seen.has(pid);
  };
  if (fits(PTHREAD_TID_GUESS)) return PTHREAD_TID_GUESS;
  for (let off = 0; off + 4 <= PTHREAD_SCAN_BYTES; off += 4) if (fits(off)) return off;
  return undefined;
}

/**
 * 3.12+: the address of the GIL struct `interp->ceval.gil` points to (it does not move while
 * the interpreter lives, so a sampler may keep it); null when unreadable or before 3.12.
 */
export function gilStructOf(mem: ProcessMemory, layout: Layout, runtimeAddress: Address, interp?: Address): Address | null {
  if (layout.interp.ceval_gil === null) return null;
  const i = interp ?? mem.readPtr(runtimeAddress + layout.runtime.interpreters_head);
  if (i === 0) return null;
  return mem.readPtr(i + layout.interp.ceval_gil);
}

/**
 * The address of the main interpreter's GIL struct (`struct _gil_runtime_state`: its mutexes
 * and condition variables are what a thread waiting for the GIL sleeps on): 3.8–3.11
 * `_PyRuntime.ceval.gil`, 3.12+ what `interp->ceval.gil` points to. null when unreadable.
 */
export function gilStructAddress(mem: ProcessMemory, layout: Layout, runtimeAddress: Address, minor: number): Address | null {
  try {
    if (minor <= 11) {
      if (layout.runtime.gil_last_holder === null) return null;
      return runtimeAddress + layout.runtime.gil_last_holder - layout.gil.last_holder;
    }
    const gil = gilStructOf(mem, layout, runtimeAddress);
    return gil === null || gil === 0 ? null : gil;
  } catch (e) {
    if (e instanceof BadReadError) return null;
    throw e;
  }
}

/**
 * The tstate holding the GIL, 0 when nobody holds it, null when it cannot be read.
 * `gilStruct` (3.12+): the GIL struct's address, if the caller keeps it (see gilStructOf).
 */
export function gilHolder(mem: ProcessMemory, layout: Layout, runtimeAddress: Address, minor: number, gilStruct?: Address): Address | null {
  try {
    if (minor <= 11) {
      if (layout.runtime.gil_last_holder === null || layout.runtime.gil_locked === null) return null;
      const locked = mem.readI32(runtimeAddress + layout.runtime.gil_locked);
      return locked ? mem.readPtr(runtimeAddress + layout.runtime.gil_last_holder) : 0;
    }
    const gil = gilStruct ?? gilStructOf(mem, layout, runtimeAddress);
    if (gil === null || gil === 0) return null;
    const locked = mem.readI32(gil + layout.gil.locked);
    return locked ? mem.readPtr(gil + layout.gil.last_holder) : 0;
  } catch (e) {
    if (e instanceof BadReadError) return null;
    throw e;
  }
}

/**
 * Snapshot process `pid`. Throws the sampler's typed errors (ProcessGoneError,
 * PermissionError, RuntimeNotFoundError, UnsupportedVersionError); the CLI explains them.
 */
export function dumpProcess(pid: number): DumpResult {
  const s = ProcessSampler.attach(pid);
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
    return { pid, python: { version: s.version.text, library: s.runtime.libraryPath }, threads };
  } finally {
    s.close();
  }
}
