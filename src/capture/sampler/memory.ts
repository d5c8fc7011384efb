/**
 * Reading another process's memory. Everything above this file sees only the
 * `ProcessMemory` interface, so unit tests run against a synthetic `ImageMemory`.
 * Addresses are JS numbers: user-space addresses on x86-64 are below 2^47, so exact.
 */
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { ERRNO, SyscallError, syscalls, type Syscalls } from './syscalls.ts';

/** An address in the target's address space (below 2^47, exact as a number). */
export type Address = number;

export interface ProcessMemory {
  /** Exactly `len` bytes at `addr`, or a typed error. */
  read(addr: Address, len: number): Uint8Array;
  readU64(addr: Address): bigint;
  /** A pointer-sized word as a number (throws BadReadError if it is not a user-space address). */
  readPtr(addr: Address): Address;
  readI32(addr: Address): number;
  readU32(addr: Address): number;
  close(): void;
}

/** The target process no longer exists. */
export class ProcessGoneError extends Error {
  readonly pid: number;
  constructor(pid: number, detail = '') {
    super(`process ${pid} is gone (it has exited, or never existed)${detail ? `: ${detail}` : ''}`);
    this.name = 'ProcessGoneError';
    this.pid = pid;
  }
}

/** The initial PID namespace's link (its inode is PROC_PID_INIT_INO on every kernel): the host's. */
export const HOST_PID_NAMESPACE = 'pid:[4026531836]';

/**
 * Do we run in a PID namespace below the host's (a container's own)? There a host PID, or
 * another container's process, does not exist. undefined when /proc/self/ns/pid is unreadable.
 */
export function inChildPidNamespace(procRoot = '/proc'): boolean | undefined {
  try {
    return readlinkSync(`${procRoot}/self/ns/pid`) !== HOST_PID_NAMESPACE;
  } catch {
    return undefined;
  }
}

/** How to reach a process of another PID namespace (a container's): the fix for a PID not visible here. */
export const OTHER_PID_NAMESPACE_FIX =
  'from a container, share the target\'s PID namespace: `docker run --pid=container:APP` (or `--pid=host`), ' +
  'Kubernetes `shareProcessNamespace: true` or `kubectl debug --target=CONTAINER`; from the host, pass the host PID ' +
  '(`pylens record -p HOST_PID`) or enter the target\'s namespaces: `nsenter -t HOST_PID -p -m pylens record -p PID_INSIDE` ' +
  '(pylens installed in its image)';

/** The kernel refused ptrace-level access to the target's memory. */
export class PermissionError extends Error {
  readonly pid: number;
  constructor(pid: number, detail = '') {
    super(
      `permission denied reading the memory of process ${pid}${detail ? ` (${detail})` : ''}. ` +
        'Reading /proc/PID/mem needs ptrace access: run as the same user as the target with ' +
        'Yama allowing it (`sudo sysctl kernel.yama.ptrace_scope=0`; 1 only allows descendants), ' +
        'or run with CAP_SYS_PTRACE (`sudo pylens ...`), or in a container start it with ' +
        '`docker run --cap-add SYS_PTRACE ...` (Kubernetes: securityContext.capabilities.add: ["SYS_PTRACE"]).',
    );
    this.name = 'PermissionError';
    this.pid = pid;
  }
}

/** A read of memory that is not mapped (or not in the synthetic image). */
export class BadReadError extends Error {
  readonly address: Address;
  readonly length: number;
  constructor(address: Address, length: number, detail = '') {
    super(`cannot read ${length} bytes at 0x${address.toString(16)}${detail ? `: ${detail}` : ''}`);
    this.name = 'BadReadError';
    this.address = address;
    this.length = length;
  }
}

const USER_SPACE_END = 2 ** 47;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A little-endian u64 at `off` as a Number (exact below 2^53; user-space pointers are below 2^47). */
export function u64(d: DataView, off: number): number {
  return d.getUint32(off, true) + d.getUint32(off + 4, true) * 4294967296;
}

/**
 * A NUL-terminated C string (latin1) at `addr`: its first `max` characters at most (a string
 * that many long or longer is cut there), read page by page no further than needed; a read
 * that fails at the end of a region (synthetic images) goes on a byte at a time.
 */
export function readCString(mem: ProcessMemory, addr: Address, max: number): string {
  let out = '';
  while (out.length < max) {
    const n = Math.min(max - out.length, 4096 - (addr % 4096));
    let b: Uint8Array;
    try {
      b = mem.read(addr, n);
    } catch (e) {
      if (!(e instanceof BadReadError)) throw e;
      b = mem.read(addr, 1);
    }
    const z = b.indexOf(0);
    if (z >= 0) return out + Buffer.from(b.subarray(0, z)).toString('latin1');
    out += Buffer.from(b).toString('latin1');
    addr += b.length;
  }
  return out;
}

/** An i32 or a u64 (as `u64`) at `off`. */
function wordAt(d: DataView, off: number, bytes: 4 | 8): number {
  return bytes === 4 ? d.getInt32(off, true) : u64(d, off);
}

/** The typed helpers shared by every implementation: subclasses supply `read`. */
export abstract class BaseMemory implements ProcessMemory {
  abstract read(addr: Address, len: number): Uint8Array;
  abstract close(): void;
  readU64(addr: Address): bigint {
    return view(this.read(addr, 8)).getBigUint64(0, true);
  }
  readPtr(addr: Address): Address {
    const v = this.readU64(addr);
    if (v >= BigInt(USER_SPACE_END)) throw new BadReadError(addr, 8, `word 0x${v.toString(16)} is not a user-space pointer`);
    return Number(v);
  }
  readI32(addr: Address): number {
    return view(this.read(addr, 4)).getInt32(0, true);
  }
  readU32(addr: Address): number {
    return view(this.read(addr, 4)).getUint32(0, true);
  }
}

/**
 * Words to read again, kept as parallel arrays so that a tick fills and reads them without
 * allocating: each word's address, size (4 or 8 bytes), what it held, whether it is
 * compared on its low 52 bits (tagged 3.14 stack refs, values past 2^53), and whose it is.
 */
export class WordList {
  n = 0;
  readonly addr: number[] = [];
  readonly bytes: (4 | 8)[] = [];
  readonly expected: number[] = [];
  readonly low52: boolean[] = [];
  readonly owner: number[] = [];
  /** the words as read (`ProcMemory.readWordList`; `ImageMemory` and pread: one at a time); NaN where unreadable */
  readonly value: number[] = [];
  clear(): void {
    this.n = 0;
  }
  push(addr: number, bytes: 4 | 8, expected: number, low52: boolean, owner: number): void {
    const i = this.n++;
    this.addr[i] = addr;
    this.bytes[i] = bytes;
    this.expected[i] = expected;
    this.low52[i] = low52;
    this.owner[i] = owner;
  }
  /** did word `i` change (false when it could not be read) */
  changed(i: number): boolean {
    const w = this.value[i]!;
    if (Number.isNaN(w)) return false;
    return (this.low52[i] ? w % 2 ** 52 : w) !== this.expected[i];
  }
}

/**
 * Page buffers a page cache reuses from tick to tick. Where process_vm_readv can be called
 * they are native memory (allocated 16 pages at a time and kept), so a prefetch reads the
 * target's pages straight into them, with no copy; else plain buffers.
 */
export class PagePool {
  readonly size: number;
  readonly bufs: Uint8Array[] = [];
  /** each page's native address, low and high 32 bits (native pools) */
  readonly lo: number[] = [];
  readonly hi: number[] = [];
  private sys: Syscalls | undefined;
  private chunks: unknown[] = [];
  constructor(size: number, sys?: Syscalls) {
    this.size = size;
    this.sys = sys;
  }
  /** give the native memory back (when its sampler closes); the pool is empty after */
  free(): void {
    for (const c of this.chunks) this.sys?.freeNative(c);
    this.chunks.length = 0;
    this.bufs.length = 0;
    this.lo.length = 0;
    this.hi.length = 0;
  }
  get native(): boolean {
    return this.sys !== undefined;
  }
  /** at least `n` pages */
  ensure(n: number): void {
    while (this.bufs.length < n) {
      if (this.sys === undefined) {
        this.bufs.push(new Uint8Array(this.size));
        continue;
      }
      const chunk = this.sys.allocNative(16 * this.size);
      this.chunks.push(chunk.handle);
      for (let i = 0; i < 16; i++) {
        this.bufs.push(chunk.bytes.subarray(i * this.size, (i + 1) * this.size));
        // the chunk's address plus i pages, as two 32-bit halves
        const lo = chunk.lo + i * this.size;
        this.lo.push(lo >>> 0);
        this.hi.push(chunk.hi + (lo > 0xffffffff ? 1 : 0));
      }
    }
  }
}

/**
 * The live process: `process_vm_readv` (syscalls.ts) where it can be called, else a pread of
 * /proc/PID/mem at the address. /proc/PID/mem is opened either way: opening it checks the
 * ptrace permission up front, with the error that explains it.
 */
export class ProcMemory extends BaseMemory {
  readonly pid: number;
  private fd: number;
  private sys: Syscalls | undefined;

  private constructor(pid: number, fd: number, sys: Syscalls | undefined) {
    super();
    this.pid = pid;
    this.fd = fd;
    this.sys = sys;
  }



  static open(pid: number, procRoot = '/proc'): ProcMemory {
    let fd: number;
    const sys = procRoot === '/proc' ? syscalls() : undefined;
    try {
      fd = openSync(`${procRoot}/${pid}/mem`, 'r');
    } catch (e) {
      // /proc/PID/mem is mode 0600, its owner the target's user: root with CAP_SYS_PTRACE
      // alone (a container with capabilities drop ALL, add SYS_PTRACE) may not open another
      // user's, yet process_vm_readv (a ptrace check only) reads it
      const code = (e as NodeJS.ErrnoException).code;
      if (sys !== undefined && (code === 'EACCES' || code === 'EPERM') && canReadVm(sys, pid)) return new ProcMemory(pid, -1, sys);
      throw mapOsError(pid, e, procRoot);
    }
    return new ProcMemory(pid, fd, sys);
  }

  read(addr: Address, len: number): Uint8Array {
    return this.readInto(new Uint8Array(len), addr, len);
  }

  /** `read` into the first `len` bytes of `buf` (no allocation); returns that view of `buf` */
  readInto(buf: Uint8Array, addr: Address, len: number): Uint8Array {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr + len > USER_SPACE_END) throw new BadReadError(addr, len, 'not a user-space address');
    if (this.sys !== undefined && len > 0) return this.readVm(this.sys, buf, addr, len);
    let n: number;
    try {
      n = readSync(this.fd, buf, 0, len, addr);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EIO' || code === 'EFAULT') throw new BadReadError(addr, len, 'not mapped in the target');
      throw mapOsError(this.pid, e);
    }
    // A read of 0 bytes means the process has exited (its mm is gone), reaped or a zombie.
    if (n === 0 && isGone(this.pid)) throw new ProcessGoneError(this.pid);
    if (n !== len) throw new BadReadError(addr, len, `short read (${n} bytes)`);
    return buf.length === len ? buf : buf.subarray(0, len);
  }

  /**
   * Several small words (4 or 8 bytes, little-endian; values below 2^53) read together: one
   * process_vm_readv for up to 64 where it is available, else one at a time; nothing
   * allocated. The results go to `list.value` (NaN: unreadable).
   */
  readWordList(list: WordList): void {
    const sys = this.sys;
    const n = list.n;
    let i = 0;
    while (i < n) {
      // up to 64 words a call (hundreds of threads give hundreds of words); a word that cannot
      // be read ends a call's result: it is read alone, and the next call starts after it
      if (sys !== undefined) {
        let got = -1;
        try {
          got = sys.readv(this.pid, list.addr, list.bytes, Math.min(64, n - i), i);
        } catch {
          /* the first word cannot be read: alone below */
        }
        const d = sys.scratchView;
        const end = Math.min(n, i + 64);
        for (let off = 0; i < end && off + list.bytes[i]! <= got; off += list.bytes[i]!, i++) list.value[i] = wordAt(d, off, list.bytes[i]!);
        if (i === end) continue; // the whole call's words read: on to the next call
      }
      try {
        list.value[i] = wordAt(view(this.read(list.addr[i]!, list.bytes[i]!)), 0, list.bytes[i]!);
      } catch (e) {
        if (e instanceof ProcessGoneError) throw e;
        list.value[i] = NaN;
      }
      i++;
    }
  }

  /**
   * Read the `n` pages `addrs[from…]` into pages `at…` of `pool` in one system call, with no
   * copy (the pool's pages are native memory). Returns how many pages, from the first, were
   * read; 0 when there is no `process_vm_readv` here or the first cannot be read.
   */
  readPagesToPool(addrs: readonly Address[], from: number, n: number, pool: PagePool, at: number, bracket?: WordList): number {
    pool.ensure(at + Math.max(n, 1));
    const sys = this.sys;
    if (sys === undefined || n <= 0 || !pool.native) return 0;
    if (bracket !== undefined) {
      const got = this.bracketed(sys, addrs, from, n, pool, at, bracket);
      if (got >= 0) return got;
    }
    let got: number;
    try {
      got = sys.readvInto(this.pid, addrs, from, Math.min(n, 64), pool.size, pool.lo, pool.hi, at);
    } catch {
      return 0;
    }
    return Math.floor(got / pool.size);
  }

  /**
   * `readPagesToPool` with `bracket`'s words read right before and right after the pages, in
   * the same call: each word's value before goes to `expected`, after to `value`, so
   * `changed(i)` says the word moved during the read (NaN, not changed, where either read
   * failed). Returns the pages read, or -1 when the call could not be made that way (too many
   * words, or a word that cannot be read: the kernel stops at the first range it cannot
   * read, and then reads no page either; more than 64 ranges in all) — the caller reads the
   * pages alone.
   */
  private bracketed(sys: Syscalls, addrs: readonly Address[], from: number, n: number, pool: PagePool, at: number, bracket: WordList): number {
    const nw = bracket.n;
    if (nw === 0 || n + 2 * nw > 64) return -1;
    let wordBytes = 0;
    for (let i = 0; i < nw; i++) wordBytes += bracket.bytes[i]!;
    let got: number;
    try {
      got = sys.readvIntoBracketed(this.pid, addrs, from, n, pool.size, pool.lo, pool.hi, at, bracket.addr, bracket.bytes, nw);
    } catch {
      return -1;
    }
    if (got < wordBytes) return -1;
    const pages = Math.min(n, Math.floor((got - wordBytes) / pool.size));
    // the words after: all read only when every page was
    const after = pages === n && got === 2 * wordBytes + n * pool.size;
    const d = sys.scratchView;
    for (let i = 0; i < nw; i++) {
      const before = wordAt(d, 8 * i, bracket.bytes[i]!);
      bracket.expected[i] = bracket.low52[i] ? before % 2 ** 52 : before;
      bracket.value[i] = after ? wordAt(d, 8 * (nw + i), bracket.bytes[i]!) : NaN;
    }
    return pages;
  }

  /** the pool that suits this memory: native pages where process_vm_readv is there */
  newPagePool(size: number): PagePool {
    return new PagePool(size, this.sys);
  }

  private readVm(sys: Syscalls, buf: Uint8Array, addr: Address, len: number): Uint8Array {
    for (let done = 0; done < len; ) {
      const want = Math.min(len - done, sys.maxRead);
      let n: number;
      try {
        n = sys.read(this.pid, addr + done, want);
      } catch (e) {
        if (!(e instanceof SyscallError)) throw e;
        if (e.errno === ERRNO.EFAULT || e.errno === ERRNO.EIO) throw new BadReadError(addr, len, 'not mapped in the target');
        if (e.errno === ERRNO.EPERM || e.errno === ERRNO.EACCES) throw new PermissionError(this.pid, `process_vm_readv: ${e.errno === ERRNO.EPERM ? 'EPERM' : 'EACCES'}`);
        // ESRCH: no such process; EINVAL: its memory is gone (a zombie)
        if (e.errno === ERRNO.ESRCH || isGone(this.pid)) throw new ProcessGoneError(this.pid);
        throw new BadReadError(addr, len, `process_vm_readv errno ${e.errno}`);
      }
      if (n < want) throw new BadReadError(addr, len, `short read (${done + n} bytes)`);
      buf.set(n === sys.scratchBytes.length ? sys.scratchBytes : sys.scratchBytes.subarray(0, n), done);
      done += n;
    }
    return buf.length === len ? buf : buf.subarray(0, len);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function isGone(pid: number): boolean {
  try {
    return /^State:\s+[ZX]/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** Can process_vm_readv read `pid`'s memory: one byte of its first readable mapping. */
function canReadVm(sys: Syscalls, pid: number): boolean {
  try {
    const line = readFileSync(`/proc/${pid}/maps`, 'utf8')
      .split('\n')
      .find((l) => /^[0-9a-f]+-[0-9a-f]+ r/.test(l));
    if (!line) return false;
    sys.read(pid, parseInt(line.slice(0, line.indexOf('-')), 16), 1);
    return true;
  } catch {
    return false;
  }
}

/** Turn an OS error about /proc/PID/... into ProcessGoneError / PermissionError. */
export function mapOsError(pid: number, e: unknown, procRoot = '/proc'): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT' || err.code === 'ESRCH') return new ProcessGoneError(pid, err.message);
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    if (!existsSync(`${procRoot}/${pid}`)) return new ProcessGoneError(pid, err.message);
    return new PermissionError(pid, [err.code, ...accessFacts(pid, procRoot)].join('; '));
  }
  return err instanceof Error ? err : new Error(String(e));
}

/** What decides ptrace access, as far as we can see it: both uids and the Yama setting. */
function accessFacts(pid: number, procRoot: string): string[] {
  const facts: string[] = [];
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const uid = /^Uid:\s+(\d+)/m.exec(read(`${procRoot}/${pid}/status`) ?? '')?.[1];
  if (process.getuid) facts.push(`we run as uid ${process.getuid()}${uid !== undefined ? `, the target as uid ${uid}` : ''}`);
  const yama = read('/proc/sys/kernel/yama/ptrace_scope')?.trim();
  facts.push(yama === undefined ? 'no Yama ptrace_scope on this kernel' : `Yama ptrace_scope is ${yama}`);
  return facts;
}

/** A synthetic address space: a sparse set of (address, bytes) regions. For unit tests. */
export class ImageMemory extends BaseMemory {
  private regions: { start: Address; bytes: Uint8Array }[] = [];

  constructor(regions: Iterable<readonly [Address, Uint8Array]> = []) {
    super();
    for (const [a, b] of regions) this.add(a, b);
  }

  add(start: Address, bytes: Uint8Array): this {
    this.regions.push({ start, bytes });
    this.regions.sort((x, y) => x.start - y.start);
    return this;
  }

  read(addr: Address, len: number): Uint8Array {
    for (const r of this.regions) {
      if (addr >= r.start && addr + len <= r.start + r.bytes.length) {
        return r.bytes.slice(addr - r.start, addr - r.start + len);
      }
    }
    throw new BadReadError(addr, len, 'outside every region of the image');
  }

  /** The `size` bytes from `start` with every region's bytes in them, holes zero; undefined when no region touches them. */
  span(start: Address, size: number): Uint8Array | undefined {
    const out = new Uint8Array(size);
    let any = false;
    for (const r of this.regions) {
      const from = Math.max(start, r.start);
      const to = Math.min(start + size, r.start + r.bytes.length);
      if (from >= to) continue;
      out.set(r.bytes.subarray(from - r.start, to - r.start), from - start);
      any = true;
    }
    return any ? out : undefined;
  }

  close(): void {}
}
