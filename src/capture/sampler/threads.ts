/**
 * Thread-level reads the sampler (session.ts) and `dump` share: a thread's state letter from
 * /proc, the OS TIDs of a process, glibc's `struct pthread` TID offset (3.8–3.10 map a
 * pthread_t to its TID through it), and the GIL and its holder (see dump.ts for the rules).
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import type { Layout } from './layouts/types.ts';
import { BadReadError, type Address, type ProcessMemory } from './memory.ts';
import { syscalls } from './syscalls.ts';

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

/** The CPU the task last ran on (field 39 of /proc/…/stat, `processor`), or undefined. */
export function statProcessor(stat: Uint8Array, n = stat.length): number | undefined {
  let i = stat.lastIndexOf(0x29, n - 1);
  if (i < 0) return undefined;
  // after ") " comes field 3; field 39 is 36 spaces further
  let field = 2;
  for (i++; i < n && field < 39; i++) if (stat[i] === 0x20) field++;
  let v = 0;
  let digits = 0;
  for (; i < n && stat[i]! >= 0x30 && stat[i]! <= 0x39; i++, digits++) v = v * 10 + (stat[i]! - 0x30);
  return field === 39 && digits > 0 ? v : undefined;
}

/**
 * Whether one process still exists and is not a zombie, asked often (a capture session's
 * watch, several times a second): its /proc/PID/stat opened once and read again at each
 * ask (pread, into a native buffer where the system calls load), a few µs where opening and
 * reading the file afresh costs tens and wakes cold code. The open file stays tied to the
 * process it was opened for: once that process is reaped, reads fail, so a recycled PID is
 * never taken for it. Closed once it answers false, or by `close`.
 */
export class AliveWatch {
  private fd: number | undefined;
  private buf: Buffer;
  private handle: unknown;
  private sys = syscalls();
  constructor(pid: number, procRoot = '/proc') {
    if (this.sys !== undefined) {
      const f = this.sys.fileBuffer(512);
      this.buf = f.buf;
      this.handle = f.handle;
    } else this.buf = Buffer.alloc(512);
    try {
      this.fd = openSync(`${procRoot}/${pid}/stat`, 'r');
    } catch {
      this.fd = undefined;
    }
  }
  alive(): boolean {
    if (this.fd === undefined) return false;
    let n: number;
    try {
      n = this.sys !== undefined ? this.sys.readFile(this.fd, this.handle, this.buf.length, 0) : readSync(this.fd, this.buf, 0, this.buf.length, 0);
    } catch {
      n = -1;
    }
    const state = n > 0 ? statStateLetter(this.buf, n) : undefined;
    if (state === undefined || state === 'Z' || state === 'X') {
      this.close();
      return false;
    }
    return true;
  }
  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    this.fd = undefined;
    if (this.sys !== undefined) this.sys.freeNative(this.handle);
    this.handle = undefined;
  }
}

export function taskIds(pid: number, procRoot = '/proc'): number[] {
  try {
    return readdirSync(`${procRoot}/${pid}/task`).map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

/** The NSpid line of a /proc status file: a task's ID in each PID namespace it is in, /proc's first, its own last. */
export function parseNsPid(status: string): number[] | undefined {
  const m = /^NSpid:\s*([\d\s]+)$/m.exec(status);
  if (!m) return undefined;
  const ids = m[1]!.trim().split(/\s+/).map(Number);
  return ids.length > 0 && ids.every((n) => Number.isInteger(n) && n > 0) ? ids : undefined;
}

/**
 * A process's thread IDs as it knows them and as /proc here names them. A target in another
 * PID namespace (a container seen from the host) writes its own namespace's TIDs into
 * `native_thread_id` and glibc's struct pthread (1 for the main thread of a container's
 * first process), while /proc/PID/task names them by /proc's namespace: `ours` turns one into
 * the other through each task's NSpid (re-read for a TID it does not know, at most every
 * 100 ms). In the same namespace both are the same number and nothing is read.
 */
export class TaskIds {
  readonly pid: number;
  /** the process's PID in its own namespace (= pid when not nested) */
  readonly ownPid: number;
  /** the target is in a PID namespace below /proc's */
  readonly nested: boolean;
  private readonly procRoot: string;
  private map = new Map<number, number>();
  private readAt = -Infinity;

  constructor(pid: number, procRoot = '/proc') {
    this.pid = pid;
    this.procRoot = procRoot;
    let ids: number[] | undefined;
    try {
      ids = parseNsPid(readFileSync(`${procRoot}/${pid}/status`, 'utf8'));
    } catch {
      ids = undefined;
    }
    this.nested = ids !== undefined && ids.length > 1;
    this.ownPid = this.nested ? ids![ids!.length - 1]! : pid;
    if (this.nested) this.refresh();
  }

  private refresh(): void {
    this.readAt = performance.now();
    const next = new Map<number, number>();
    for (const tid of taskIds(this.pid, this.procRoot)) {
      try {
        const ids = parseNsPid(readFileSync(`${this.procRoot}/${this.pid}/task/${tid}/status`, 'utf8'));
        if (ids && ids[0] === tid) next.set(ids[ids.length - 1]!, tid);
      } catch {
        // the thread ended
      }
    }
    this.map = next;
  }

  /** /proc's TID for the target's own TID `own`; undefined when no such thread is seen */
  ours(own: number): number | undefined {
    if (!this.nested) return own;
    let t = this.map.get(own);
    if (t === undefined && performance.now() - this.readAt >= 100) {
      this.refresh();
      t = this.map.get(own);
    }
    return t;
  }

  /** the process's TIDs as it knows them (its own namespace's) */
  own(): number[] {
    if (!this.nested) return taskIds(this.pid, this.procRoot);
    this.refresh();
    return [...this.map.keys()];
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
