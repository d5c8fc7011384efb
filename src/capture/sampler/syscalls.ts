/**
 * The Linux system calls the sampler needs that Node has no binding for, called through
 * koffi (an FFI whose npm package ships prebuilt binaries; nothing is compiled at install):
 *
 * - `process_vm_readv`: read the target's memory in one system call, several ranges at
 *   once; measured here 2.7 µs for a 4 KiB page against 4.4 µs for a `pread` of
 *   /proc/PID/mem, and 3.5 µs for four pages in one call.
 * - `clock_nanosleep` to an absolute CLOCK_MONOTONIC deadline: the sampler's one wake-up per
 *   tick (a Node timer costs 2–3× more CPU per wake-up here, an event-loop turn ~110 µs).
 * - `ptrace` (PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH) and `waitid`/`waitpid`: stop
 *   one thread of the target for the length of one stack read (`ThreadPauser`), for exact
 *   stacks. SEIZE (unlike ATTACH) sends no SIGSTOP, and nothing reaches the target's parent.
 * - `perf_event_open` of a thread's task clock (`openTaskClock`): its CPU time, brought up to
 *   date at the moment of the read (the kernel asks the thread's CPU), so two reads a few µs
 *   apart tell a thread on a CPU from one waiting for it (session.ts, the CPU rule).
 *
 * Everything is loaded on first use; where koffi or libc cannot be loaded `syscalls()` is
 * undefined and the sampler reads /proc/PID/mem and cannot pause (it says so).
 */
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
type Fn = (...args: unknown[]) => number;

const PTRACE_PEEKUSER = 3;
const PTRACE_DETACH = 17;
const PTRACE_SYSCALL = 24;
/** x86-64 user area: the words of a system call's first three arguments (rdi, rsi, rdx) */
const ARG_REGS_X64 = [14, 13, 12] as const;
const PTRACE_SEIZE = 0x4206;
const PTRACE_INTERRUPT = 0x4207;
const PTRACE_EVENT_STOP = 128;
const P_PID = 1;
const WNOHANG = 1;
const WSTOPPED = 2;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
const __WALL = 0x40000000;
const CLD_TRAPPED = 4;
const AT_EMPTY_PATH = 0x1000;
const STATX_NLINK = 0x4;
const CLOCK_MONOTONIC = 1;
const TIMER_ABSTIME = 1;
const EINTR = 4;
const CLD_STOPPED = 5;
const SYS_PERF_EVENT_OPEN = 298; // x86-64
/** kcmp(2): x86-64 312, arm64 272 */
const SYS_KCMP: Partial<Record<string, number>> = { x64: 312, arm64: 272 };
const KCMP_VM = 1; // enum kcmp_type: KCMP_FILE 0, KCMP_VM 1
const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_TASK_CLOCK = 1;
const PERF_ATTR_SIZE = 128;
const PERF_FLAG_FD_CLOEXEC = 8;

export const ERRNO = { EPERM: 1, ESRCH: 3, EFAULT: 14, EINVAL: 22, EIO: 5, EACCES: 13, ENFILE: 23, EMFILE: 24 } as const;

/** A failed system call: its errno. */
export class SyscallError extends Error {
  readonly errno: number;
  constructor(call: string, errno: number) {
    super(`${call} failed: errno ${errno}`);
    this.name = 'SyscallError';
    this.errno = errno;
  }
}

const SCRATCH = 256 * 1024;
const MAX_IOV = 64;

export class Syscalls {
  private k: Koffi;
  private pvr: Fn;
  private ptraceFn: Fn;
  private peekFn: Fn;
  private waitidFn: Fn;
  private waitpidFn: Fn;
  private local: unknown;
  private remote: unknown;
  private localW: Uint32Array;
  private remoteW: Uint32Array;
  private scratch: unknown;
  private scratchLo: number;
  private scratchHi: number;
  /** the scratch buffer's bytes (native memory): where `readv` puts what it read */
  readonly scratchBytes: Uint8Array;
  /** a DataView of the scratch buffer */
  readonly scratchView: DataView;
  private info: unknown;
  private infoW: Int32Array;
  private status: unknown;
  private statusW: Int32Array;
  private nanosleepFn: Fn;
  private syscallFn: Fn;
  private readFn: Fn;
  private preadFn: Fn;
  private perfAttr: unknown;
  private timespec: unknown;
  private timespecW: Int32Array;
  private statxFn: Fn;
  private getcpuFn: Fn;
  private statxBuf: unknown;
  private statxW: Uint32Array;
  private emptyPath: string | null = null;

  constructor(k: Koffi) {
    this.k = k;
    const libc = k.load('libc.so.6');
    this.pvr = libc.func('long process_vm_readv(int pid, void *local, unsigned long liovcnt, void *remote, unsigned long riovcnt, unsigned long flags)') as Fn;
    // data is a signal number (PTRACE_DETACH) or unused: declared as a long
    this.ptraceFn = libc.func('long ptrace(long request, int pid, void *addr, long data)') as Fn;
    // PTRACE_PEEKUSER: addr is an offset into the tracee's user area
    this.peekFn = libc.func('long ptrace(long request, int pid, long addr, long data)') as Fn;
    this.waitidFn = libc.func('int waitid(int idtype, int id, void *infop, int options)') as Fn;
    this.waitpidFn = libc.func('int waitpid(int pid, void *status, int options)') as Fn;
    this.nanosleepFn = libc.func('int clock_nanosleep(int clockid, int flags, void *request, void *remain)') as Fn;
    this.syscallFn = libc.func('long syscall(long number, ...)') as Fn;
    this.readFn = libc.func('long read(int fd, void *buf, unsigned long count)') as Fn;
    this.preadFn = libc.func('long pread(int fd, void *buf, unsigned long count, long offset)') as Fn;
    this.statxFn = libc.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)') as Fn;
    this.getcpuFn = libc.func('int sched_getcpu()') as Fn;
    this.statxBuf = k.alloc('uint8_t', 256);
    this.statxW = new Uint32Array(k.view(this.statxBuf, 256));
    // perf_event_attr: a software task-clock counter, counting from the open, nothing excluded
    this.perfAttr = k.alloc('uint8_t', PERF_ATTR_SIZE);
    const attr = new DataView(k.view(this.perfAttr, PERF_ATTR_SIZE));
    for (let i = 0; i < PERF_ATTR_SIZE; i++) attr.setUint8(i, 0);
    attr.setUint32(0, PERF_TYPE_SOFTWARE, true);
    attr.setUint32(4, PERF_ATTR_SIZE, true);
    attr.setUint32(8, PERF_COUNT_SW_TASK_CLOCK, true);
    this.timespec = k.alloc('uint8_t', 16);
    this.timespecW = new Int32Array(k.view(this.timespec, 16));
    const words = (p: unknown, bytes: number) => new Uint32Array(k.view(p, bytes));
    this.local = k.alloc('uint8_t', 16 * MAX_IOV);
    this.remote = k.alloc('uint8_t', 16 * MAX_IOV);
    this.localW = words(this.local, 16 * MAX_IOV);
    this.remoteW = words(this.remote, 16 * MAX_IOV);
    this.scratch = k.alloc('uint8_t', SCRATCH);
    this.scratchBytes = new Uint8Array(k.view(this.scratch, SCRATCH));
    this.scratchView = new DataView(this.scratchBytes.buffer, this.scratchBytes.byteOffset, this.scratchBytes.byteLength);
    const a = k.address(this.scratch);
    this.scratchLo = Number(a & 0xffffffffn);
    this.scratchHi = Number(a >> 32n);
    this.info = k.alloc('uint8_t', 128);
    this.infoW = new Int32Array(k.view(this.info, 128));
    this.status = k.alloc('int', 1);
    this.statusW = new Int32Array(k.view(this.status, 4));
  }

  get maxRead(): number {
    return SCRATCH;
  }

  errno(): number {
    return this.k.errno();
  }

  private setLocal(i: number, off: number, len: number): void {
    // scratch + off, as two 32-bit halves (no BigInt per call)
    const lo = this.scratchLo + off;
    this.localW[4 * i] = lo >>> 0;
    this.localW[4 * i + 1] = this.scratchHi + (lo > 0xffffffff ? 1 : 0);
    this.localW[4 * i + 2] = len;
    this.localW[4 * i + 3] = 0;
  }

  private setRemote(i: number, addr: number, len: number): void {
    this.remoteW[4 * i] = addr >>> 0;
    this.remoteW[4 * i + 1] = Math.floor(addr / 4294967296);
    this.remoteW[4 * i + 2] = len;
    this.remoteW[4 * i + 3] = 0;
  }

  /** process_vm_readv of the first `n` iovecs set up in `local`/`remote`: the bytes read, or throws SyscallError */
  private vm(pid: number, n: number): number {
    const got = this.pvr(pid, this.local, n, this.remote, n, 0);
    if (got < 0) throw new SyscallError('process_vm_readv', this.k.errno());
    return got;
  }

  /**
   * Read `len` bytes (at most `maxRead`) at `addr` of process `pid` into the scratch buffer
   * (from offset 0). Returns the bytes read, short when the range runs into unmapped
   * memory; throws SyscallError (ESRCH gone, EPERM/EACCES no permission, EFAULT unmapped).
   */
  read(pid: number, addr: number, len: number): number {
    this.setLocal(0, 0, len);
    this.setRemote(0, addr, len);
    return this.vm(pid, 1);
  }

  /**
   * Native memory of `bytes` bytes that `readvInto` can read straight into: its bytes, its
   * address as two 32-bit halves, and the handle to `freeNative` it with.
   */
  allocNative(bytes: number): { bytes: Uint8Array; lo: number; hi: number; handle: unknown } {
    const p = this.k.alloc('uint8_t', bytes);
    const a = this.k.address(p);
    return { bytes: new Uint8Array(this.k.view(p, bytes)), lo: Number(a & 0xffffffffn), hi: Number(a >> 32n), handle: p };
  }

  /** give back memory of `allocNative` or `fileBuffer` (its views must not be used after) */
  freeNative(handle: unknown): void {
    this.k.free(handle);
  }

  /**
   * Read the `n` pages `addrs[from…]` (`size` bytes each) straight into native memory
   * (`allocNative`): page i to the address `lo[at + i]`/`hi[at + i]`. One system call, no
   * copy, nothing allocated. Returns the bytes read (short: the pages after that point were
   * not read).
   */
  readvInto(pid: number, addrs: readonly number[], from: number, n: number, size: number, lo: readonly number[], hi: readonly number[], at: number): number {
    n = Math.min(n, MAX_IOV);
    this.setPages(0, addrs, from, n, size, lo, hi, at);
    return this.vm(pid, n);
  }

  /** iovecs `k…k+n−1`: the pages `addrs[from…]` (`size` bytes each) into native memory at `lo`/`hi[at…]` */
  private setPages(k: number, addrs: readonly number[], from: number, n: number, size: number, lo: readonly number[], hi: readonly number[], at: number): void {
    const w = this.localW;
    for (let i = 0; i < n; i++, k++) {
      w[4 * k] = lo[at + i]!;
      w[4 * k + 1] = hi[at + i]!;
      w[4 * k + 2] = size;
      w[4 * k + 3] = 0;
      this.setRemote(k, addrs[from + i]!, size);
    }
  }

  /**
   * `readvInto` with `nw` words (addresses and sizes, at most 8 bytes each) read right before
   * and right after the pages, in the same call: the words into the scratch buffer, before at
   * offset 8·i, after at 8·(nw + i). The pages take as long to copy as a thread needs to run
   * a few lines: a word that differs says its thread ran during the read. At most
   * 64 − 2·(ranges of words) pages. Returns the bytes read in all (words included); short or throws like
   * `readvInto`.
   */
  readvIntoBracketed(pid: number, addrs: readonly number[], from: number, n: number, size: number, lo: readonly number[], hi: readonly number[], at: number, wAddr: readonly number[], wBytes: readonly number[], nw: number): number {
    // the words as ranges: a run of 8-byte words at consecutive addresses (a frame's
    // instruction and first locals) is one range (each range costs the kernel a page pin)
    let ranges = 0;
    for (let i = 0; i < nw; ranges++) {
      let j = i + 1;
      while (j < nw && wBytes[j - 1] === 8 && wBytes[j] === 8 && wAddr[j] === wAddr[j - 1]! + 8) j++;
      this.rangeStart[ranges] = i;
      this.rangeEnd[ranges] = j;
      i = j;
    }
    n = Math.min(n, MAX_IOV - 2 * ranges);
    for (let r = 0; r < ranges; r++) {
      const i = this.rangeStart[r]!;
      const len = (this.rangeEnd[r]! - 1 - i) * 8 + wBytes[this.rangeEnd[r]! - 1]!;
      this.setLocal(r, 8 * i, len);
      this.setRemote(r, wAddr[i]!, len);
      this.setLocal(ranges + n + r, 8 * (nw + i), len);
      this.setRemote(ranges + n + r, wAddr[i]!, len);
    }
    this.setPages(ranges, addrs, from, n, size, lo, hi, at);
    return this.vm(pid, n + 2 * ranges);
  }
  private rangeStart = new Int32Array(MAX_IOV);
  private rangeEnd = new Int32Array(MAX_IOV);

  /**
   * Read the first `n` ranges (at most 64; addresses and lengths in parallel arrays) in one
   * system call, laid end to end in the scratch buffer in the order given; nothing allocated.
   * Returns the bytes read in total: the kernel stops at the first range it cannot read, so
   * a short count means the ranges after that point were not read.
   */
  readv(pid: number, addrs: readonly number[], lens: readonly number[], n: number, from = 0): number {
    let off = 0;
    n = Math.min(n, MAX_IOV);
    for (let i = 0; i < n; i++) {
      const len = lens[from + i]!;
      if (off + len > SCRATCH) throw new RangeError(`readv: ${off + len} bytes do not fit the ${SCRATCH}-byte buffer`);
      this.setLocal(i, off, len);
      this.setRemote(i, addrs[from + i]!, len);
      off += len;
    }
    return this.vm(pid, n);
  }

  /**
   * Sleep until CLOCK_MONOTONIC reads `ns` (clock_nanosleep, TIMER_ABSTIME): one kernel
   * wake-up, exactly what a C sampler pays. Blocks the calling thread.
   */
  sleepUntilMonotonic(ns: number): void {
    const sec = Math.floor(ns / 1e9);
    const nsec = Math.floor(ns - sec * 1e9);
    const w = this.timespecW;
    w[0] = sec >>> 0;
    w[1] = Math.floor(sec / 4294967296);
    w[2] = nsec;
    w[3] = 0;
    // returns EINTR when a signal handler ran: the deadline is absolute, so just go on waiting
    for (let i = 0; i < 1000 && this.nanosleepFn(CLOCK_MONOTONIC, TIMER_ABSTIME, this.timespec, null) === EINTR; i++);
  }

  /**
   * A counter of thread `tid`'s CPU time (perf_event_open, PERF_COUNT_SW_TASK_CLOCK): a file
   * descriptor whose 8-byte read is the ns the thread has run since the open, up to date at
   * the moment of the read; or -errno (EACCES/EPERM: no CAP_PERFMON and perf_event_paranoid
   * too high; ESRCH: gone; ENOSYS: no perf events). The x86-64 system call number: elsewhere
   * -ENOSYS.
   */
  openTaskClock(tid: number): number {
    if (process.arch !== 'x64') return -38;
    const fd = this.syscallFn(SYS_PERF_EVENT_OPEN, 'void *', this.perfAttr, 'int', tid, 'int', -1, 'int', -1, 'unsigned long', PERF_FLAG_FD_CLOEXEC);
    return fd >= 0 ? fd : -this.k.errno();
  }

  /** The CPU the calling thread runs on now (sched_getcpu, a vDSO call), or -1. */
  currentCpu(): number {
    return this.getcpuFn() as number;
  }

  /**
   * Do processes `a` and `b` share one address space (kcmp KCMP_VM)? 1 yes — a child made by
   * vfork that has not exec'd yet runs in its parent's memory —, 0 no (a fork's copy, or
   * unrelated), or -errno (ENOSYS: no kcmp here; EPERM; ESRCH: one is gone).
   */
  sameMemory(a: number, b: number): number {
    const nr = SYS_KCMP[process.arch];
    if (nr === undefined) return -38;
    const r = this.syscallFn(nr, 'int', a, 'int', b, 'int', KCMP_VM, 'unsigned long', 0, 'unsigned long', 0);
    return r === 0 ? 1 : r > 0 ? 0 : -this.k.errno();
  }

  /**
   * The link count of the open file `fd` (statx, AT_EMPTY_PATH, STATX_NLINK), or -errno. For
   * an open /proc/PID/task directory it is the process's thread count + 2, asked at this
   * moment (2 once the process is gone): one system call, nothing allocated.
   */
  linkCount(fd: number): number {
    // a null path with AT_EMPTY_PATH: no string to convert, and no path for the kernel to copy in (Linux 6.11+)
    let r = this.statxFn(fd, this.emptyPath, AT_EMPTY_PATH, STATX_NLINK, this.statxBuf);
    if (r !== 0 && this.emptyPath === null && this.k.errno() === ERRNO.EFAULT) {
      this.emptyPath = ''; // a kernel before 6.11 wants the empty string
      r = this.statxFn(fd, this.emptyPath, AT_EMPTY_PATH, STATX_NLINK, this.statxBuf);
    }
    if (r !== 0) return -this.k.errno();
    return this.statxW[4]!; // stx_nlink: u32 at offset 16
  }

  /**
   * A file buffer of `bytes` native bytes for `readFile`: its bytes as a Buffer (for parsing)
   * and the handle the read is given (`freeNative` when done).
   */
  fileBuffer(bytes: number): { buf: Buffer; handle: unknown } {
    const m = this.allocNative(bytes);
    return { buf: Buffer.from(m.bytes.buffer, m.bytes.byteOffset, bytes), handle: m.handle };
  }

  /**
   * read(2) (`offset` < 0) or pread(2) of up to `len` bytes of `fd` into a `fileBuffer`: the
   * bytes read, or -errno. Node's fs.readSync costs a few µs more per call; the sampler reads
   * kept-open /proc files and task clocks every tick.
   */
  readFile(fd: number, handle: unknown, len: number, offset: number): number {
    const n = offset < 0 ? this.readFn(fd, handle, len) : this.preadFn(fd, handle, len, offset);
    return n >= 0 ? n : -this.k.errno();
  }

  /** ptrace(PTRACE_SEIZE, tid): 0 or an errno */
  seize(tid: number): number {
    return this.ptraceFn(PTRACE_SEIZE, tid, null, 0) === 0 ? 0 : this.k.errno();
  }

  /** ptrace(PTRACE_SEIZE, pid, 0, options): 0 or an errno */
  seizeWith(pid: number, options: number): number {
    return this.ptraceFn(PTRACE_SEIZE, pid, null, options) === 0 ? 0 : this.k.errno();
  }

  /** ptrace(PTRACE_SYSCALL, pid, 0, signal): resume a stopped tracee to its next system call's entry or exit; 0 or an errno */
  resumeToSyscall(pid: number, signal = 0): number {
    return this.ptraceFn(PTRACE_SYSCALL, pid, null, signal) === 0 ? 0 : this.k.errno();
  }

  /**
   * The number of the system call a tracee stopped at a syscall stop is in (x86-64:
   * `orig_rax` of its user area, PTRACE_PEEKUSER at offset 15 × 8), or -1 (another
   * architecture, or it could not be read).
   */
  syscallNumber(pid: number): number {
    if (process.arch !== 'x64') return -1;
    const n = Number(this.peekFn(PTRACE_PEEKUSER, pid, 15 * 8, 0));
    return n >= 0 && n < 4096 ? n : -1;
  }

  /** argument `i` (0–2) of the system call a stopped tracee is in (x86-64: rdi, rsi, rdx), or -1 */
  syscallArg(pid: number, i: 0 | 1 | 2): number {
    if (process.arch !== 'x64') return -1;
    const n = Number(this.peekFn(PTRACE_PEEKUSER, pid, ARG_REGS_X64[i]! * 8, 0));
    return Number.isFinite(n) && n > 0 ? n : -1;
  }

  /**
   * Wait (sleeping in the kernel) until the traced process `pid` stops or ends. Like
   * `pollStop` it never reaps an exit (Node waits for its child); a ptrace stop is consumed.
   * 'stopped' gives the raw stop: `signal` (SIGTRAP | 0x80 at a syscall stop with
   * PTRACE_O_TRACESYSGOOD) and `event` (PTRACE_EVENT_*, 0 for none).
   */
  waitTraced(pid: number): { state: 'stopped'; signal: number; event: number } | { state: 'gone' } {
    for (;;) {
      const s = this.takeStop(pid, true);
      if (s.state === 'stopped' || s.state === 'gone') return s;
      // interrupted by a signal, or the stop was taken by another waiter: wait again
    }
  }

  /** ptrace(PTRACE_INTERRUPT, tid): 0 or an errno */
  interrupt(tid: number): number {
    return this.ptraceFn(PTRACE_INTERRUPT, tid, null, 0) === 0 ? 0 : this.k.errno();
  }

  /** ptrace(PTRACE_DETACH, tid, 0, signal): 0 or an errno */
  detach(tid: number, signal = 0): number {
    return this.ptraceFn(PTRACE_DETACH, tid, null, signal) === 0 ? 0 : this.k.errno();
  }

  /**
   * Has the traced thread `tid` stopped? Looks without reaping (waitid WNOWAIT), so an
   * exit is left for whoever waits for the process (Node's own child handling, in launch
   * mode); a ptrace stop is then consumed with waitpid. 'stopped' carries the signal of a
   * signal-delivery stop (to deliver at detach; 0 for our interrupt's event stop). `block`:
   * sleep in the kernel until the thread stops or ends (polling with WNOHANG is far slower
   * here: a spinning waiter delays the very stop it waits for).
   */
  pollStop(tid: number, block = false): { state: 'stopped'; signal: number } | { state: 'running' } | { state: 'gone' } {
    const s = this.takeStop(tid, block);
    if (s.state === 'interrupted') return { state: 'gone' };
    // an event stop (our interrupt, or a group stop seen as one) carries no signal to deliver
    return s.state === 'stopped' ? { state: 'stopped', signal: s.event === PTRACE_EVENT_STOP ? 0 : s.signal } : s;
  }

  /**
   * The stop of traced thread `tid`, consumed, as the kernel reports it (`pollStop`,
   * `waitTraced`): looked at first without reaping (waitid WNOWAIT), so an exit is left to
   * whoever waits for the process; 'running' when nothing is waitable yet (or another waiter
   * took it), 'interrupted' when a signal broke a blocking wait.
   */
  private takeStop(tid: number, block: boolean): { state: 'stopped'; signal: number; event: number } | { state: 'running' } | { state: 'gone' } | { state: 'interrupted' } {
    this.infoW.fill(0);
    const r = this.waitidFn(P_PID, tid, this.info, WSTOPPED | WEXITED | WNOWAIT | __WALL | (block ? 0 : WNOHANG));
    // ECHILD: not traced by us any more (it exited and was reaped)
    if (r < 0) return this.k.errno() === EINTR ? { state: 'interrupted' } : { state: 'gone' };
    const pid = this.infoW[4]!; // si_pid (offset 16): 0 when nothing is waitable yet
    if (pid === 0) return { state: 'running' };
    const code = this.infoW[2]!; // si_code (offset 8)
    if (code !== CLD_TRAPPED && code !== CLD_STOPPED) return { state: 'gone' };
    const got = this.waitpidFn(tid, this.status, WNOHANG | __WALL);
    if (got !== tid) return { state: 'running' };
    const st = this.statusW[0]!;
    if ((st & 0xff) !== 0x7f) return { state: 'gone' };
    return { state: 'stopped', signal: (st >> 8) & 0xff, event: (st >> 16) & 0xff };
  }
}

let loaded: Syscalls | null | undefined;
let loadError: string | undefined;

/** The system calls, or undefined where they cannot be loaded (`syscallsError()` says why). */
export function syscalls(): Syscalls | undefined {
  if (loaded === undefined) {
    if (process.platform !== 'linux' || process.env.PYLENS_NO_FFI === '1') {
      loaded = null;
      loadError = process.platform !== 'linux' ? `not Linux (${process.platform})` : 'PYLENS_NO_FFI=1';
    } else {
      try {
        const require = createRequire(import.meta.url);
        loaded = new Syscalls(require('koffi') as Koffi);
      } catch (e) {
        loaded = null;
        loadError = `koffi could not be loaded: ${(e as Error).message}`;
      }
    }
  }
  return loaded ?? undefined;
}

export function syscallsError(): string | undefined {
  syscalls();
  return loadError;
}
