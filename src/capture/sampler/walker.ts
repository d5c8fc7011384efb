/**
 * The stack walker: every thread of the main interpreter of a CPython 3.8–3.14 process,
 * each with its Python stack, read through `ProcessMemory` (docs/cpython-internals.md §3–6).
 *
 * - Threads: `interp = *(rt + interpreters.head)`, `tstate = *(interp + threads.head)`, then
 *   `tstate->next` (newest thread first, main thread last — the order CPython keeps).
 * - Frames are returned LEAF FIRST (innermost call at index 0, `<module>` last).
 * - 3.8–3.10: `tstate->frame`, `f_back`, `f_code`, `f_lasti` (3.8/3.9 byte offset, 3.10
 *   code-unit index ×2; −1 = not started → `co_firstlineno`).
 * - 3.11/3.12: `*(*(tstate + cframe) + current_frame)`, `previous`, `f_code`, `prev_instr`
 *   (offset = ptr − (code + co_code_adaptive); −2 = not started → `co_firstlineno`).
 *   3.12 skips CSTACK shim frames (owner ≥ 3).
 * - 3.13: `tstate->current_frame`; `f_executable` may be `Py_None` (shims) or another
 *   non-code object: frames whose executable's type is not named "code" are skipped.
 * - 3.14 (layout from the target's `_Py_DebugOffsets`, debug-offsets.ts): as 3.13, but
 *   `f_executable` is a tagged `_PyStackRef` (low `executable_tag_bits` cleared) and the
 *   frame-owner values come from `layout.frame_owner` (INTERPRETER 3 and CSTACK 4 skipped).
 * - 3.11+: incomplete frames (owner ≠ GENERATOR and instr_ptr < first traceable
 *   instruction) are hidden, as CPython's `_PyFrame_IsIncomplete`.
 * - `tid` is `native_thread_id` (the OS TID) on 3.11+; on 3.8–3.10 it is the pthread_t
 *   (`thread_id`) for now — the TID lives inside glibc's struct pthread (not read yet).
 *
 * Robustness: depth is capped (`maxDepth`), cycles in the frame chain end the walk with an
 * error, and any read error inside one thread makes that thread carry `error` instead of
 * frames; `walkThreads` throws only when the interpreter/thread list itself is unreadable.
 */
import { lineInRanges, lineRanges, type LineRange } from './linetable.ts';
import { BadReadError, BaseMemory, ProcMemory, readCString, u64, type Address, type PagePool, type ProcessMemory, type WordList } from './memory.ts';
import type { Layout } from './layouts/types.ts';

export interface Frame {
  name: string;
  /** `co_qualname` on 3.11+; equal to `name` before */
  qualname: string;
  file: string;
  /** null when the instruction has no line */
  line: number | null;
  firstLine: number;
}

export interface ThreadStack {
  /** OS TID (`native_thread_id`) on 3.11+; the pthread_t (`thread_id`) on 3.8–3.10; −1 if unreadable */
  tid: number;
  /** pthread_self() of the thread */
  pthreadId: bigint;
  /** thread state address */
  tstate: Address;
  /** leaf (innermost) first; absent when `error` is set */
  frames?: Frame[];
  /** why this thread's stack could not be read */
  error?: string;
  /**
   * true when the stack does not reach the thread's base: cut at `maxDepth`, or every read
   * of it was torn (`torn`); `frames` then holds the leaf part that was read
   */
  truncated?: boolean;
  /** the walk never validated (every attempt torn): `frames` is the longest partial read */
  torn?: boolean;
  /** walks of this thread that were torn and read again this tick (0: the first read was whole) */
  retries?: number;
  /** the thread was stopped (ptrace) while its stack was read */
  paused?: boolean;
  /** its innermost frame and instruction as read (absent when the walk did not validate) */
  leaf?: LeafMark;
  /** the interpreter's id when it is a subinterpreter (absent: the main interpreter, id 0) */
  interp?: number;
  /** not walked: the caller knew the thread asleep (`WalkOptions.skip`); no frames */
  asleep?: boolean;
  /** its stack is an unsteady walk (`StackWalk.unsteady`): the same functions in both copies of the picture, its depth from the first */
  unsteady?: boolean;
}

export interface WalkerRuntime {
  runtimeAddress: Address;
}

export interface WalkOptions {
  maxDepth?: number;
  maxThreads?: number;
  /**
   * reuse across walks: code object address → decoded info. A code object freed and its
   * address reused by another code object would be misnamed; callers that keep a cache
   * for long should bound or flush it.
   */
  cache?: CodeCache;
  /** read whole 4 KiB pages once per walk (default true): one pread per page instead of per field */
  pageCache?: boolean;
  /** the interpreters to walk (from `listInterpreters`, cached by the caller); default: read them now */
  interpreters?: readonly InterpreterRef[];
  /**
   * how many times a thread's torn walk is read again (default 8). Only memories that can be
   * re-read (`RefreshableMemory`: the page cache) are retried; others are read once.
   */
  maxRetries?: number;
  /** stopping a thread while its stack is read (pause.ts, through the session) */
  pause?: PauseHook;
  /**
   * tstate → the pages its last walk read, kept by the caller across walks: a re-read of a
   * torn walk fetches them in one system call first (`PageCacheMemory.prefetch`); a first
   * read uses the pages the caller prefetched for the whole tick when `prefetched` is set
   */
  plans?: Map<Address, Address[]>;
  /**
   * tstate → the frames of its last whole walk: a walk that finds the same frames gives that
   * array again (no allocation; the caller keeps it, and drops it with its code cache)
   */
  lastFrames?: Map<Address, Frame[]>;
  /**
   * tstate → pthread id of threads not to walk (known asleep, whose stacks the caller does
   * not need): listed with `asleep` set and no frames, when the tstate still has that thread
   */
  skip?: ReadonlyMap<Address, bigint>;
  /**
   * the thread states that could run Python during the picture (the session's: the GIL's
   * holder in it): only their unsteady walks are read again (`StackWalk.unsteady`). Another
   * thread waits for the GIL or runs C code without it, and its frames do not change: its
   * walk is taken as read (read again, a pool of threads woken by a queue, each runnable and
   * waiting for the GIL, cost the tick so many reads that the woken worker's burst of work
   * was half under-counted). Undefined: every thread could.
   */
  running?: readonly Address[] | undefined;
  /**
   * the type checks' cache (`CodeTypeCheck` over this walk's memory), kept by a caller that
   * walks the same memory at every tick; dropped with its code cache (a type's address could
   * be reused)
   */
  codeCheck?: CodeTypeCheck;
}

export interface PauseHook {
  /** stop every thread `pause` accepts before its first read (blocking mode); else only after torn reads */
  first: boolean;
  /**
   * stop the thread of `t` (`torn`: after torn reads, else before the first read); the
   * function resumes it; undefined: not stopped (not needed, not allowed or failed)
   */
  pause(t: ThreadStack, torn: boolean): (() => void) | undefined;
}

/**
 * A memory whose cached view of the target can be dropped, so that the next reads see the
 * target as it is now: the page cache of a tick (and synthetic images in tests).
 */
export interface RefreshableMemory extends ProcessMemory {
  refresh(): void;
}

export function isRefreshable(m: ProcessMemory): m is RefreshableMemory {
  return typeof (m as Partial<RefreshableMemory>).refresh === 'function';
}

export const MAX_STRING_CHARS = 4096;
const MAX_BYTES = 1 << 20;
const OWNER_GENERATOR = 1;
const OWNER_CSTACK = 3;

export interface CodeInfo {
  name: string;
  qualname: string;
  file: string;
  firstLine: number;
  /** `_co_firsttraceable` in code units (3.11+; 0 before) */
  firstTraceable: number;
  /** `co_flags` (0 when the layout does not know where they are) */
  flags: number;
  /**
   * the globals of the frame it was first seen in: a frame running this address with other
   * globals means the code object was freed and a new one allocated at its address
   */
  globals?: Address;
  ranges: LineRange[];
  /**
   * Frame objects already made for this code object, by bytecode offset (−1: not started).
   * A walk returns these shared objects, so consumers can key on identity; never mutate them.
   */
  frames?: Map<number, Frame>;
}

export type CodeCache = Map<Address, CodeInfo>;

export class WalkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalkError';
  }
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A PyUnicode object as a JS string (compact ASCII, compact latin-1/UCS2/UCS4, or non-compact). */
export function readUnicode(mem: ProcessMemory, layout: Layout, addr: Address, maxChars = MAX_STRING_CHARS): string {
  const U = layout.unicode;
  const head = mem.read(addr, U.state + 4);
  const d = dv(head);
  const length = Number(d.getBigInt64(U.length, true));
  const state = d.getUint32(U.state, true);
  if (length < 0 || length > maxChars) throw new WalkError(`string at 0x${addr.toString(16)} has length ${length} (limit ${maxChars})`);
  const kind = (state >> 2) & 7;
  const compact = (state >> 5) & 1;
  const ascii = (state >> 6) & 1;
  if (kind !== 1 && kind !== 2 && kind !== 4) throw new WalkError(`string at 0x${addr.toString(16)} has kind ${kind}`);
  if (ascii && kind !== 1) throw new WalkError(`string at 0x${addr.toString(16)}: ascii with kind ${kind}`);
  let data: Address;
  if (compact) data = addr + (ascii ? U.ascii_size : U.compact_size);
  else data = mem.readPtr(addr + U.data);
  if (length === 0) return '';
  const bytes = mem.read(data, length * kind);
  if (kind === 1) return Buffer.from(bytes).toString('latin1');
  if (kind === 2) return Buffer.from(bytes).toString('utf16le');
  const v = dv(bytes);
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCodePoint(Math.min(v.getUint32(i * 4, true), 0x10ffff));
  return s;
}

/** The contents of a PyBytes object (bounded). */
export function readBytes(mem: ProcessMemory, layout: Layout, addr: Address, maxBytes = MAX_BYTES): Uint8Array {
  const size = Number(mem.readU64(addr + layout.bytes.ob_size));
  if (size < 0 || size > maxBytes) throw new WalkError(`bytes at 0x${addr.toString(16)} has size ${size} (limit ${maxBytes})`);
  return size === 0 ? new Uint8Array(0) : mem.read(addr + layout.bytes.ob_sval, size);
}

/** Decode a code object (name, qualname, file, first line, line ranges), cached by address. */
export function readCode(mem: ProcessMemory, layout: Layout, minor: number, addr: Address, cache?: CodeCache, globals?: Address, types?: CodeTypeCheck): CodeInfo {
  const hit = cache?.get(addr);
  if (hit && (globals === undefined || hit.globals === undefined || hit.globals === globals)) return hit;
  return decodeCode(mem, layout, minor, addr, cache, globals, types);
}

/**
 * `readCode`'s miss: kept apart so that a cache hit, at every frame of every tick, allocates
 * nothing (a function with a closure allocates its context on every call, hit or not).
 */
function decodeCode(mem: ProcessMemory, layout: Layout, minor: number, addr: Address, cache: CodeCache | undefined, globals: Address | undefined, types: CodeTypeCheck | undefined): CodeInfo {
  const C = layout.code;
  const str = (field: number, what: string): string => {
    const p = mem.readPtr(addr + field);
    types?.expect(p, 'str', what);
    return readUnicode(mem, layout, p);
  };
  types?.expect(addr, 'code', 'the frame\'s code object');
  const name = str(C.name, 'co_name');
  const qualname = C.qualname !== null ? str(C.qualname, 'co_qualname') : name;
  const file = str(C.filename, 'co_filename');
  const firstLine = mem.readI32(addr + C.firstlineno);
  const tablePtr = mem.readPtr(addr + C.linetable);
  types?.expect(tablePtr, 'bytes', 'the line table');
  const table = readBytes(mem, layout, tablePtr);
  const firstTraceable = C.firsttraceable !== null ? mem.readI32(addr + C.firsttraceable) : 0;
  const flags = C.flags != null ? mem.readI32(addr + C.flags) : 0;
  const info: CodeInfo = { name, qualname, file, firstLine, firstTraceable, flags, ranges: lineRanges(minor, table, firstLine) };
  if (globals !== undefined) info.globals = globals;
  cache?.set(addr, info);
  return info;
}

export const PAGE_SIZE = 4096;

/** frames kept of one stack at most, innermost first (a deeper one is cut and marked truncated) */
export const DEFAULT_MAX_DEPTH = 4096;

/**
 * A read-through page cache over another `ProcessMemory`, for the duration of one walk:
 * each 4 KiB page is read at most once. Reads longer than two pages, and reads touching a
 * page whose whole-page read failed (live mappings are page-aligned, so that is rare; a
 * synthetic `ImageMemory` has unaligned regions), go straight to the inner memory.
 * Use a fresh one per walk, or `restart` it: the target keeps running, so pages go stale.
 *
 * Kept flat, as a sampler restarts it at every tick: pages sit in numbered slots (address,
 * bytes, view) found through an open-addressing table of page numbers, and the pages touched
 * are lists with per-slot marks. Every "clear" is a generation count going up: a tick
 * allocates nothing here and goes through few heap objects (a cold tick pays for each page
 * of memory it touches: bench/README.md, part 5).
 */
export class PageCacheMemory extends BaseMemory implements RefreshableMemory {
  private inner: ProcessMemory;
  private pool: PagePool | undefined;
  /** pool buffers in use since the last refresh */
  private used = 0;
  /** pages looked up since the last refresh: address, bytes (null: unreadable), view */
  private nSlots = 0;
  private slotAddr = new Float64Array(64);
  private slotBuf: (Uint8Array | null)[] = [];
  private slotView: (DataView | undefined)[] = [];
  /** the page's second copy, made in the same call right after the first (`twins`), else undefined */
  private slotTwin: (DataView | undefined)[] = [];
  /** the read (`twinRead`) a slot's copies come from: copies of an earlier read are not compared with a later one's */
  private slotRead = new Int32Array(64);
  private twinRead = 1;
  /**
   * `prefetch` copies each page twice in its one call: all the pages, then all of them again
   * (`sameInTwin` compares the two). A running thread's chain that differs between the copies
   * changed while the picture was taken. Only where pages go to a native pool (process_vm_readv).
   */
  twins = false;
  private twinList: Address[] = [];
  /** page number → slot + 1, valid where `hashGen` holds the current `gen` (refresh: gen + 1) */
  private hashSlot = new Int32Array(256);
  private hashGen = new Int32Array(256);
  private gen = 1;
  /** pages touched since the last refresh or resetTouched, first touch first (`touchMark[slot]` = `touchGen`) */
  private touchList: Address[] = [];
  private nTouched = 0;
  private touchMark = new Int32Array(64);
  private touchGen = 1;
  /** every page touched since the last restart, first touch first (an address set of its own: slots do not outlive a refresh) */
  private everList: Address[] = [];
  private nEver = 0;
  private everKey = new Float64Array(256);
  private everMark = new Int32Array(256);
  private everGen = 1;
  /** a view per pool buffer, made once (`poolViewOf`: the buffer it was made for) */
  private poolViews: DataView[] = [];
  private poolViewOf: Uint8Array[] = [];
  /** pages were fetched together before the walk (`prefetch`): a first read of a thread need not refresh */
  prefetched = false;
  /**
   * `pool`: page buffers to reuse instead of allocating (a sampler passes the same pool to
   * the page cache of each tick; nothing a walk returns points into page bytes). Only used
   * when `inner` is a `ProcMemory`.
   */
  constructor(inner: ProcessMemory, pool?: PagePool) {
    super();
    this.inner = inner;
    if (inner instanceof ProcMemory) this.pool = pool;
  }

  /** hash of a page address (a multiple of 4096 below 2^47) for a table of 2^bits entries */
  private static hash(p: Address, mask: number): number {
    const n = p / PAGE_SIZE;
    return Math.imul((n >>> 0) ^ ((n / 4294967296) >>> 0), 0x9e3779b1) & mask;
  }

  /** the slot of page `p`, or -1 when it has not been looked up since the last refresh */
  private slotOf(p: Address): number {
    const mask = this.hashSlot.length - 1;
    for (let h = PageCacheMemory.hash(p, mask); ; h = (h + 1) & mask) {
      if (this.hashGen[h] !== this.gen) return -1;
      const s = this.hashSlot[h]! - 1;
      if (this.slotAddr[s] === p) return s;
    }
  }

  /** a new slot for page `p` (not in the table) holding `b` */
  private addSlot(p: Address, b: Uint8Array | null, view: DataView | undefined): number {
    const s = this.nSlots++;
    if (s >= this.slotAddr.length) {
      const a = new Float64Array(2 * this.slotAddr.length);
      a.set(this.slotAddr);
      this.slotAddr = a;
      const m = new Int32Array(2 * this.touchMark.length);
      m.set(this.touchMark);
      this.touchMark = m;
      const r = new Int32Array(2 * this.slotRead.length);
      r.set(this.slotRead);
      this.slotRead = r;
    }
    this.slotAddr[s] = p;
    this.slotBuf[s] = b;
    this.slotView[s] = view;
    this.slotTwin[s] = undefined;
    this.touchMark[s] = 0;
    if (2 * this.nSlots > this.hashSlot.length) this.growHash();
    else this.insert(p, s);
    return s;
  }
  private insert(p: Address, s: number): void {
    const mask = this.hashSlot.length - 1;
    let h = PageCacheMemory.hash(p, mask);
    while (this.hashGen[h] === this.gen) h = (h + 1) & mask;
    this.hashGen[h] = this.gen;
    this.hashSlot[h] = s + 1;
  }
  private growHash(): void {
    const size = 2 * this.hashSlot.length;
    this.hashSlot = new Int32Array(size);
    this.hashGen = new Int32Array(size);
    this.gen = 1;
    for (let s = 0; s < this.nSlots; s++) this.insert(this.slotAddr[s]!, s);
  }

  /** page `p` as touched (since refresh/resetTouched, and since restart) */
  private touch(s: number, p: Address): void {
    if (this.touchMark[s] === this.touchGen) return;
    this.touchMark[s] = this.touchGen;
    this.touchList[this.nTouched++] = p;
    // the page set since restart: an address table of its own
    let mask = this.everKey.length - 1;
    if (2 * (this.nEver + 1) > this.everKey.length) {
      const keys = this.everList;
      const size = 2 * this.everKey.length;
      this.everKey = new Float64Array(size);
      this.everMark = new Int32Array(size);
      this.everGen = 1;
      mask = size - 1;
      for (let i = 0; i < this.nEver; i++) {
        let h = PageCacheMemory.hash(keys[i]!, mask);
        while (this.everMark[h] === this.everGen) h = (h + 1) & mask;
        this.everMark[h] = this.everGen;
        this.everKey[h] = keys[i]!;
      }
    }
    let h = PageCacheMemory.hash(p, mask);
    for (; this.everMark[h] === this.everGen; h = (h + 1) & mask) if (this.everKey[h] === p) return;
    this.everMark[h] = this.everGen;
    this.everKey[h] = p;
    this.everList[this.nEver++] = p;
  }

  /** the view of pool buffer `i` (made once) */
  private poolView(i: number, b: Uint8Array): DataView {
    if (this.poolViewOf[i] !== b) {
      this.poolViewOf[i] = b;
      this.poolViews[i] = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    return this.poolViews[i]!;
  }

  /** the slot of page `p`, read now when it has not been; touched */
  private pageSlot(p: Address): number {
    let s = this.slotOf(p);
    if (s < 0) {
      let b: Uint8Array | null;
      let view: DataView | undefined;
      try {
        if (this.pool !== undefined) {
          const pool = this.pool;
          const i = this.used;
          this.one[0] = p;
          b = (this.inner as ProcMemory).readPagesToPool(this.one, 0, 1, pool, i) === 1 ? pool.bufs[i]! : (this.inner as ProcMemory).readInto(pool.bufs[i]!, p, PAGE_SIZE);
          this.used++;
          view = b === pool.bufs[i] ? this.poolView(i, b) : undefined;
        } else b = this.inner.read(p, PAGE_SIZE);
      } catch (e) {
        if (!(e instanceof BadReadError)) throw e;
        b = null;
      }
      if (b !== null && view === undefined) view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      s = this.addSlot(p, b, view);
    }
    this.touch(s, p);
    return s;
  }

  /** where the bytes start in the view `viewFor` gave last */
  at = 0;
  /**
   * A DataView holding the `len` bytes at `addr`, from offset `this.at`: the cached page's own
   * view when the bytes lie inside one page (no copy, no allocation), else a view of a fresh
   * read (offset 0). The hot path of every read: a run of reads on one page (an object's
   * fields) needs no lookup.
   */
  viewFor(addr: Address, len: number): DataView {
    // the offset in the page from the address's low 32 bits (ToUint32 is exact for integers)
    const off = (addr >>> 0) & (PAGE_SIZE - 1);
    const first = addr - off;
    if (off + len <= PAGE_SIZE && addr >= 0) {
      if (first === this.lastPage) {
        this.at = off;
        return this.lastView!;
      }
      const slot = this.pageSlot(first);
      const v = this.slotView[slot];
      if (v !== undefined) {
        this.lastPage = first;
        this.lastView = v;
        this.lastTwin = this.slotRead[slot] === this.twinRead ? this.slotTwin[slot] : undefined;
        this.at = off;
        return v;
      }
    }
    this.lastTwin = undefined;
    const b = this.read(addr, len);
    this.at = 0;
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  /** `viewFor` as a pair: the view and the offset in it */
  viewAt(addr: Address, len: number): [DataView, number] {
    const v = this.viewFor(addr, len);
    return [v, this.at];
  }
  override readU64(addr: Address): bigint {
    const v = this.viewFor(addr, 8);
    return v.getBigUint64(this.at, true);
  }
  override readPtr(addr: Address): Address {
    const v = this.viewFor(addr, 8);
    const o = this.at;
    const hi = v.getUint32(o + 4, true);
    if (hi >= 0x8000) throw new BadReadError(addr, 8, `word 0x${v.getBigUint64(o, true).toString(16)} is not a user-space pointer`);
    return v.getUint32(o, true) + hi * 4294967296;
  }
  override readI32(addr: Address): number {
    return this.viewFor(addr, 4).getInt32(this.at, true);
  }
  override readU32(addr: Address): number {
    return this.viewFor(addr, 4).getUint32(this.at, true);
  }
  readU8(addr: Address): number {
    return this.viewFor(addr, 1).getUint8(this.at);
  }
  read(addr: Address, len: number): Uint8Array {
    if (len > 2 * PAGE_SIZE || !Number.isSafeInteger(addr) || addr < 0) return this.inner.read(addr, len);
    const first = addr - (addr % PAGE_SIZE);
    const off = addr - first;
    if (off + len <= PAGE_SIZE) {
      const b = this.slotBuf[this.pageSlot(first)]!;
      return b ? b.subarray(off, off + len) : this.inner.read(addr, len);
    }
    const out = new Uint8Array(len);
    let done = 0;
    for (let p = first; done < len; p += PAGE_SIZE) {
      const b = this.slotBuf[this.pageSlot(p)]!;
      if (!b) return this.inner.read(addr, len);
      const from = p === first ? off : 0;
      const n = Math.min(PAGE_SIZE - from, len - done);
      out.set(b.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }
  /**
   * `read`, into `buf` (at least `len` bytes) where it goes straight to the target (reads
   * longer than two pages of a live process): a large read each tick (asyncio's registry
   * table) allocates nothing. Returns the bytes, which may be `buf`'s.
   */
  readInto(buf: Uint8Array, addr: Address, len: number): Uint8Array {
    if (len > 2 * PAGE_SIZE && this.inner instanceof ProcMemory && len <= buf.length) return this.inner.readInto(buf, addr, len);
    return this.read(addr, len);
  }
  /** the page `viewFor` gave last (-1: none), already touched */
  private lastPage = -1;
  private lastView: DataView | undefined;
  private lastTwin: DataView | undefined;
  /** the second copy of the page `viewFor` gave last, at the same offsets (`twins`); undefined: none (or bytes across pages) */
  get twin(): DataView | undefined {
    return this.lastTwin;
  }

  /** forget every page: the next reads go to the target again (page buffers are reused) */
  refresh(): void {
    this.lastPage = -1;
    this.lastView = undefined;
    this.lastTwin = undefined;
    this.nSlots = 0;
    this.used = 0;
    this.nTouched = 0;
    // (the slots' arrays keep their entries until overwritten: only `nSlots` of them count)
    if (++this.gen > 0x3fffffff) {
      this.hashGen.fill(0);
      this.gen = 1;
    }
    this.touchGen = 1; // every slot is new: its mark was set to 0 when it was added
  }

  /** the pages touched since the last `refresh` or `resetTouched`, in the order first touched */
  touched(): Address[] {
    return this.touchList.slice(0, this.nTouched);
  }

  /** `touched()` written into `out` (resized; no allocation when it is big enough) */
  touchedInto(out: Address[]): Address[] {
    return fillFrom(out, this.touchList, this.nTouched);
  }

  /** `allTouched()` written into `out` (resized; no allocation when it is big enough) */
  allTouchedInto(out: Address[]): Address[] {
    return fillFrom(out, this.everList, this.nEver);
  }

  /** forget every page and what was touched, for a new tick (the page buffers are reused) */
  restart(): void {
    this.refresh();
    this.nEver = 0;
    if (++this.everGen > 0x3fffffff) {
      this.everMark.fill(0);
      this.everGen = 1;
    }
    this.prefetched = false;
  }

  /** start a new `touched` list, keeping the pages */
  resetTouched(): void {
    this.lastPage = -1;
    this.nTouched = 0;
    if (++this.touchGen > 0x3fffffff) {
      this.touchMark.fill(0);
      this.touchGen = 1;
    }
  }

  /** every page touched since this cache was made or restarted, in the order first touched */
  allTouched(): Address[] {
    return this.everList.slice(0, this.nEver);
  }

  /**
   * Read these pages now, all in one system call where the memory can (`ProcMemory` over
   * process_vm_readv): a walk whose pages were fetched together sees the target at nearly
   * one instant, and costs one call instead of one per page. Pages already cached, and any
   * the call could not read, are left to be read on demand. `bracket`: words read right
   * before and after the pages in the same call (`ProcMemory.readPagesToPool`); its values
   * are NaN when that could not be done.
   */
  prefetch(pages: readonly Address[], bracket?: WordList): void {
    if (bracket !== undefined) for (let i = 0; i < bracket.n; i++) bracket.value[i] = NaN;
    if (this.pool === undefined || pages.length === 0) return;
    const want = this.want;
    want.length = 0;
    for (let i = 0; i < pages.length; i++) if (this.slotOf(pages[i]!) < 0) want.push(pages[i]!);
    this.fetch(want, bracket);
  }

  /**
   * Read these pages again now, together (as `prefetch`, twinned where `twins`), in place of
   * the copies held; every other page is kept, and counts from now on as read apart (its
   * copies are not compared with these). The session reads the GIL holder's pages so, right
   * after the picture: its walk reads one moment, the others keep the picture. (A torn walk's
   * re-read refreshes the whole cache instead: kept pages of an earlier moment, read by the
   * re-read walk, left churn.py's stacks torn on every read, 3–8 % marked.) Starts a new
   * `touched` list. Without a page pool: `refresh`.
   */
  reload(pages: readonly Address[]): void {
    if (this.pool === undefined) return this.refresh();
    this.resetTouched();
    this.lastView = undefined;
    this.lastTwin = undefined;
    // the pages kept are of an earlier moment: read by a walk of these, they count as read apart
    this.twinRead++;
    const want = this.want;
    want.length = 0;
    for (let i = 0; i < pages.length; i++) want.push(pages[i]!);
    this.fetch(want, undefined);
  }

  /** read `want` (pages, each once) into new pool buffers: a cached page's slot takes the new copy, another gets a slot */
  private fetch(want: readonly Address[], bracket: WordList | undefined): void {
    const pool = this.pool!;
    // twins: each call copies its pages, then the same pages again (with the bracket's ranges, 64 at most)
    const per = this.twins ? PAGES_PER_TWIN_CALL : 64;
    const list = this.twinList;
    for (let from = 0; from < want.length; from += per) {
      const count = Math.min(per, want.length - from);
      let n: number;
      if (this.twins) {
        for (let i = 0; i < count; i++) list[i] = list[count + i] = want[from + i]!;
        list.length = 2 * count;
        n = (this.inner as ProcMemory).readPagesToPool(list, 0, 2 * count, pool, this.used, from === 0 ? bracket : undefined);
      } else n = (this.inner as ProcMemory).readPagesToPool(want, from, count, pool, this.used, from === 0 ? bracket : undefined);
      const first = Math.min(n, count);
      const slots = this.fetchSlots;
      for (let i = 0; i < first; i++) {
        const b = pool.bufs[this.used + i]!;
        const p = want[from + i]!;
        let s = this.slotOf(p);
        if (s < 0) s = this.addSlot(p, b, this.poolView(this.used + i, b));
        else {
          this.slotBuf[s] = b;
          this.slotView[s] = this.poolView(this.used + i, b);
          this.slotTwin[s] = undefined;
        }
        slots[i] = s;
      }
      // the second copies (a call cut short by a page it could not read leaves some without one)
      for (let i = count; i < n; i++) {
        this.slotTwin[slots[i - count]!] = this.poolView(this.used + i, pool.bufs[this.used + i]!);
        this.slotRead[slots[i - count]!] = this.twinRead;
      }
      this.used += n;
      if (first < count) return; // a page that cannot be read: the rest on demand
    }
  }
  private fetchSlots = new Int32Array(64);

  /**
   * Do the `len` bytes at `addr` (inside one page) read the same in the page's two copies
   * (`twins`)? 1 yes, 0 no, -1 the page has no second copy (read on demand, or not cached).
   */
  sameInTwin(addr: Address, len: number): -1 | 0 | 1 {
    const off = (addr >>> 0) & (PAGE_SIZE - 1);
    if (off + len > PAGE_SIZE) return -1;
    const s = this.slotOf(addr - off);
    if (s < 0) return -1;
    const a = this.slotView[s];
    const b = this.slotTwin[s];
    if (a === undefined || b === undefined || this.slotRead[s] !== this.twinRead) return -1;
    let i = 0;
    for (; i + 4 <= len; i += 4) if (a.getUint32(off + i, true) !== b.getUint32(off + i, true)) return 0;
    for (; i < len; i++) if (a.getUint8(off + i) !== b.getUint8(off + i)) return 0;
    return 1;
  }

  /** can pages be read with a second copy here (`twins` set, and a native page pool)? */
  get twinning(): boolean {
    return this.twins && this.pool !== undefined && this.pool.native;
  }
  private want: Address[] = [];
  private one: Address[] = [0];
  close(): void {}
}

function fillFrom(out: Address[], from: readonly Address[], n: number): Address[] {
  for (let i = 0; i < n; i++) out[i] = from[i]!;
  out.length = n;
  return out;
}

/**
 * Checks an object's type by its type's `tp_name` ("code", "str", "bytes"), caching per type
 * address. A torn read of a running target can hand the walker a pointer to anything; a
 * code object is only decoded (and cached) when it and its strings have the right types.
 * (3.13: `f_executable` may legitimately be another object, e.g. None for shim frames.)
 */
export class CodeTypeCheck {
  private types = new Map<Address, string>();
  private mem: ProcessMemory;
  private layout: Layout;
  constructor(mem: ProcessMemory, layout: Layout) {
    this.mem = mem;
    this.layout = layout;
  }
  /** does it read through `mem`? */
  over(mem: ProcessMemory): boolean {
    return this.mem === mem;
  }
  /** the tp_name of `obj`'s type (first 16 bytes) */
  typeName(obj: Address): string {
    const type = this.mem.readPtr(obj + this.layout.object.ob_type);
    let name = this.types.get(type);
    if (name === undefined) {
      // (16 characters tell the types it checks apart: "code", "str", "bytes")
      name = readCString(this.mem, this.mem.readPtr(type + this.layout.type.tp_name), 16);
      this.types.set(type, name);
    }
    return name;
  }
  isCode(obj: Address): boolean {
    return this.typeName(obj) === 'code';
  }
  /** throws WalkError unless `obj` is of type `want` */
  expect(obj: Address, want: string, what: string): void {
    const got = this.typeName(obj);
    if (got !== want) throw new WalkError(`${what} at 0x${obj.toString(16)} is a ${JSON.stringify(got)} object, not ${want}`);
  }
}

const MAX_FRAMES_PER_CODE = 4096;
/** pages a twinned prefetch call copies (twice each: 40 ranges, and 24 left for the bracket's words) */
const PAGES_PER_TWIN_CALL = 20;

/** The (shared, immutable) Frame for `info` at bytecode `offset`; `notStarted` → its first line. */
function frameOf(info: CodeInfo, offset: number, notStarted: boolean): Frame {
  const key = notStarted ? -1 : offset;
  let memo = info.frames;
  if (memo === undefined) info.frames = memo = new Map();
  let f = memo.get(key);
  if (f === undefined) {
    const line = notStarted ? info.firstLine : lineInRanges(info.ranges, offset);
    f = { name: info.name, qualname: info.qualname, file: info.file, line, firstLine: info.firstLine };
    if (memo.size < MAX_FRAMES_PER_CODE) memo.set(key, f);
  }
  return f;
}


/**
 * One suspended (or created) frame outside any thread's chain — a coroutine's or generator's
 * own frame, for the asyncio await chains (asyncio.ts): PyFrameObject at `frame` (3.8–3.10)
 * or `_PyInterpreterFrame` (3.11+). Its code object and line, as the walker names them.
 */
export function detachedFrame(mem: ProcessMemory, layout: Layout, minor: number, frame: Address, cache?: CodeCache): Frame {
  const F = layout.frame;
  // 3.14: f_executable is a tagged _PyStackRef
  const code = minor >= 14 ? untagExecutable(mem.readU64(frame + F.code), F.executable_tag_bits ?? 0) : mem.readPtr(frame + F.code);
  // its globals tell a cached code object from a new one at a freed one's address (readCode)
  const globals = F.globals != null ? mem.readPtr(frame + F.globals) : undefined;
  const info = readCode(mem, layout, minor, code, cache, globals);
  if (minor <= 10) {
    const lasti = mem.readI32(frame + F.lasti!);
    return frameOf(info, minor === 10 ? lasti * 2 : lasti, lasti < 0);
  }
  const offset = mem.readPtr(frame + F.instr_ptr!) - (code + layout.code.code_adaptive!);
  return frameOf(info, offset, offset < 0);
}

/** 3.14+: the object pointer of a tagged `_PyStackRef` (`bits & ~tagBits`). */
export function untagExecutable(bits: bigint, tagBits: number): Address {
  return Number(bits & ~BigInt(tagBits));
}

/** 3.14+: the frame-owner values the walker needs, from the layout (`_Py_DebugOffsets` layouts carry them). */
function owners314Of(layout: Layout): { generator: number; firstShim: number } {
  const o = layout.frame_owner;
  if (!o) throw new WalkError(`the Python ${layout.version} layout has no frame-owner values (3.14+ layouts come from the target's _Py_DebugOffsets)`);
  return { generator: o.generator, firstShim: o.interpreter ?? o.cstack };
}

/** A walk of one thread's frame chain. */
export interface StackWalk {
  frames: Frame[];
  /** cut at `maxDepth` */
  truncated: boolean;
  /**
   * the chain ended where a thread's stack ends: its base frame (see `walkStack`). False: the
   * target changed the chain while it was read (a torn walk), `why` says how it showed.
   */
  complete: boolean;
  why?: string;
  /**
   * whole, with the same functions in both copies of the picture, but `moved`: the thread
   * called or returned while it was copied (its current-frame pointer, 3.8–3.10 a frame's
   * state, differs between the copies), so the innermost frames may be ones it had just left —
   * read again `UNSTEADY_REREADS` times; or `apart`: a frame lies on a page read on its own,
   * after the picture, compared with nothing — read again up to the walk's retries, its
   * pages fetched together. A thread that never holds still (a tight recursion) is given its
   * last such read
   */
  unsteady?: 'moved' | 'apart';
  /** where the thread was, to tell later whether it has moved on (`leafMarkWords`) */
  leaf?: LeafMark;
}

/**
 * The thread's innermost frame and its instruction when its stack was read: read again a
 * moment later, a thread running Python will have moved on (a new instruction or frame); a
 * sleeping or waiting one, or one inside a long C call, will not.
 */
export interface LeafMark {
  /** 3.11/3.12: the `_PyCFrame` the current frame was read from (else 0) */
  cframe: Address;
  /** the current frame (tstate->frame / cframe->current_frame / tstate->current_frame); 0: none */
  frame: Address;
  /** its f_lasti (3.8–3.10) or instruction pointer (3.11+) */
  instr: number;
  /**
   * its first local-variable slots (pointers): a running loop stores into them, where the
   * saved instruction may not move (3.12+ specialized instructions do not save it)
   */
  locals: number[];
}

/** how many local slots of the innermost frame the mark keeps */
const MARK_LOCALS = 4;

/** offset of the local-variable slots in a frame: localsplus (3.11+), or f_localsplus, PyFrameObject's last member (3.8–3.10) */
function localsOffset(layout: Layout): number {
  return layout.frame.localsplus ?? layout.frame.size - 8;
}

/**
 * The words to read again for `mark` (into `out`, tagged `owner`): the current-frame pointer
 * (through the cframe on 3.11/3.12), the frame's instruction and its first local slots. Read
 * them together (one process_vm_readv) and compare: any difference means the thread moved.
 */
export function leafMarkWords(layout: Layout, minor: number, tstate: Address, mark: LeafMark, out: WordList, owner: number): void {
  if (mark.frame === 0) return;
  if (minor <= 10) out.push(tstate + layout.tstate.frame!, 8, mark.frame, false, owner);
  else if (minor <= 12) {
    out.push(tstate + layout.tstate.cframe!, 8, mark.cframe, false, owner);
    out.push(mark.cframe + layout.cframe.current_frame!, 8, mark.frame, false, owner);
  } else out.push(tstate + layout.tstate.current_frame!, 8, mark.frame, false, owner);
  if (minor <= 10) out.push(mark.frame + layout.frame.lasti!, 4, mark.instr, false, owner);
  else out.push(mark.frame + layout.frame.instr_ptr!, 8, mark.instr, false, owner);
  const at = mark.frame + localsOffset(layout);
  for (let i = 0; i < mark.locals.length; i++) out.push(at + 8 * i, 8, mark.locals[i]!, true, owner);
}

/**
 * The first frame address met twice in the first `count` links of the chain from `first`
 * (following the pointer at offset `previous`), or undefined: each link read again.
 */
function chainLoopsAt(mem: ProcessMemory, previous: number, first: Address, count: number): Address | undefined {
  const seen = new Set<Address>();
  let f = first;
  for (let i = 0; i < count && f !== 0; i++) {
    if (seen.has(f)) return f;
    seen.add(f);
    try {
      f = mem.readPtr(f + previous);
    } catch (e) {
      if (e instanceof BadReadError) return undefined;
      throw e;
    }
  }
  return undefined;
}

const FRAME_EXECUTING_310 = 0;
/** CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR */
const CO_GENERATOR_LIKE = 0x20 | 0x80 | 0x100 | 0x200;
const FRAME_UNWINDING_310 = 2;

/**
 * The Python stack of one thread state, leaf first, and whether the chain was read whole.
 *
 * The target runs while its frames are read, so a walk can be torn: a generator that yields
 * between two reads has its `previous` cleared (3.11+; `f_back` before), and a frame that
 * returned is freed or reused. A torn walk ends early, and without a check its stack would
 * read as a shorter one with a wrong root. So every walk is validated:
 * - 3.8/3.9: every frame is executing (`f_executing` = 1); 3.10: every frame's `f_state` is
 *   EXECUTING or UNWINDING. A returned or suspended frame (free-list, zombie or yielded
 *   generator frame) fails it.
 * - 3.11: the last frame (`previous` = NULL) is not owned by a generator (a suspended
 *   generator's frame has no `previous`).
 * - 3.12/3.13: the last frame is the C-stack entry frame `_PyEval_EvalFrameDefault` puts at the
 *   base of every thread (owner FRAME_OWNED_BY_CSTACK); 3.14: owner ≥ INTERPRETER.
 */
export function walkStack(
  mem: ProcessMemory,
  layout: Layout,
  minor: number,
  tstate: Address,
  opts: { maxDepth?: number | undefined; cache?: CodeCache; codeCheck?: CodeTypeCheck; last?: readonly Frame[] | undefined } = {},
): StackWalk {
  return walkStackWith(mem, layout, minor, tstate, opts.maxDepth ?? DEFAULT_MAX_DEPTH, opts.cache ?? new Map(), opts.codeCheck, opts.last);
}

/** `walkStack` with its options as arguments (no object made per walk) */
export function walkStackWith(mem: ProcessMemory, layout: Layout, minor: number, tstate: Address, maxDepth: number, cache: CodeCache, codeCheck: CodeTypeCheck | undefined, last: readonly Frame[] | undefined): StackWalk {
  const F = layout.frame;
  // frames are gathered in a reused array and copied out at the end, or, when they are the
  // thread's last walk's frames (`opts.last`: the Frame objects are shared), that array is
  // given again: a thread whose stack did not change costs no allocation
  const frames = SCRATCH_FRAMES;
  frames.length = 0;
  try {
    const w = walkInto(frames, mem, layout, minor, tstate, maxDepth, cache, F, codeCheck);
    let same = last !== undefined && last.length === frames.length;
    for (let i = 0; same && i < frames.length; i++) same = frames[i] === last![i];
    w.frames = same ? (last as Frame[]) : frames.slice();
    return w;
  } finally {
    frames.length = 0;
  }
}

/** reused by every `walkStack` (walks are synchronous, one at a time) */
const SCRATCH_FRAMES: Frame[] = [];

/*
 * Torn pictures. The target runs while the picture's pages are copied, one after another: a
 * thread that calls or returns meanwhile can leave a chain that mixes two moments — a caller's
 * frame from before a return, above it its callee's from after a new call at the same place
 * (3.11+ frames reuse their slots in the data stack; 3.8–3.10 frame objects come back from
 * free lists) —, every frame of it executing and the chain ending at the thread's base, so no
 * other check sees it: `a > leaf > b` for a program in which a and b never call each other
 * (5–10 % of the samples of such a loop on 3.8–3.10, 0.3–1.4 % on 3.11/3.12, before this).
 * So the picture copies each page twice in its one call (`PageCacheMemory.twins`), and the
 * walk compares, frame by frame, the two copies:
 * - a frame whose function (its code; 3.11+ its owner) differs held another function at some
 *   moment of the picture: the walk is torn, read again (`heldAnother`);
 * - links alone that differ — the current frame (`currentFrameSame`), 3.8–3.10 a frame's
 *   state, with the same function at every place — are a thread calling and returning while
 *   it was copied: its innermost frames may be ones it had just left (`unsteady: 'moved'`),
 *   read again `UNSTEADY_REREADS` times. A thread deep in a recursion never holds still: its
 *   last such read is given, the functions in it the ones that were there;
 * - a frame on a page read on its own, after the picture (the chain went to pages the last
 *   read did not), is compared with nothing (`unsteady: 'apart'`): read again, its pages
 *   fetched together, up to the walk's retries.
 */

/**
 * Is the thread's current-frame pointer (3.11/3.12: and the cframe it is read through) the same
 * in both copies of the picture? 1 yes; 0 no — the thread called or returned while it was
 * copied, and the innermost frames read may be ones it had left, their slots not yet reused
 * (`StackWalk.unsteady`); -1 no second copy.
 */
function currentFrameSame(pc: PageCacheMemory, layout: Layout, minor: number, tstate: Address, cframe: Address): -1 | 0 | 1 {
  if (minor <= 10) return pc.sameInTwin(tstate + layout.tstate.frame!, 8);
  if (minor <= 12) {
    const r = pc.sameInTwin(tstate + layout.tstate.cframe!, 8);
    return r !== 1 || cframe === 0 ? r : pc.sameInTwin(cframe + layout.cframe.current_frame!, 8);
  }
  return pc.sameInTwin(tstate + layout.tstate.current_frame!, 8);
}

/** a walk that met a frame holding another function in the picture's second copy: torn (see Torn pictures above) */
function heldAnother(frames: Frame[], frame: Address): StackWalk {
  return { frames, truncated: false, complete: false, why: `frame 0x${frame.toString(16)} held another function while the picture was copied` };
}

function walkInto(frames: Frame[], mem: ProcessMemory, layout: Layout, minor: number, tstate: Address, maxDepth: number, cache: CodeCache, F: Layout['frame'], codeCheck: CodeTypeCheck | undefined): StackWalk {
  let frame: Address;
  let cframe = 0;
  if (minor <= 10) frame = mem.readPtr(tstate + layout.tstate.frame!);
  else if (minor <= 12) {
    cframe = mem.readPtr(tstate + layout.tstate.cframe!);
    frame = cframe === 0 ? 0 : mem.readPtr(cframe + layout.cframe.current_frame!);
  } else frame = mem.readPtr(tstate + layout.tstate.current_frame!);
  const leaf: LeafMark = { cframe, frame, instr: 0, locals: [] };
  if (frame !== 0) {
    try {
      // each slot's low 52 bits (as `leafMarkWords` compares them), from two 32-bit reads
      const at = frame + localsOffset(layout);
      for (let i = 0; i < MARK_LOCALS; i++) leaf.locals.push(mem.readU32(at + 8 * i) + (mem.readU32(at + 8 * i + 4) & 0xfffff) * 4294967296);
    } catch (e) {
      if (!(e instanceof BadReadError)) throw e;
    }
  }

  const owners314 = minor >= 14 ? owners314Of(layout) : undefined;
  const generatorOwner = minor >= 14 ? owners314!.generator : OWNER_GENERATOR;
  const executingAt = minor <= 9 ? F.executing : minor === 10 ? F.state : null;
  // Walk budget: visited frames (including skipped shims) are bounded too.
  const maxVisited = maxDepth * 2 + 64;
  let truncated = false;
  /** owner of the last frame visited (3.11+); −1: no frame */
  let lastOwner = -1;
  /** the last frame visited runs a generator, coroutine or async generator (3.8–3.10) */
  let lastGenerator = false;
  const pc = mem instanceof PageCacheMemory ? mem : undefined;
  // the picture's second copies (Torn pictures, above): a frame's function in both, its state (3.8–3.10), pages read apart
  const twinning = pc !== undefined && pc.twinning;
  const ownerAt = minor >= 11 ? F.owner : null;
  const stateAt = minor <= 9 ? F.executing : minor === 10 ? F.state : null;
  let apart = false;
  /** a frame was read from the picture (twinned): the thread was in it */
  let inPicture = false;
  let stateMoved = false;
  /** frames visited (including skipped shims) */
  let visited = 0;
  while (frame !== 0) {
    visited++;
    if (frames.length >= maxDepth || visited > maxVisited) {
      // a chain this long is deep or loops (a torn read can link a frame back to an inner
      // one): only now are the addresses checked, so a normal walk keeps no set of them
      const loop = chainLoopsAt(mem, F.previous, leaf.frame, visited);
      if (loop !== undefined) throw new WalkError(`frame chain loops at 0x${loop.toString(16)}`);
      truncated = true;
      break;
    }
    let d: DataView;
    let o = 0;
    if (pc !== undefined) {
      d = pc.viewFor(frame, F.size);
      o = pc.at;
      if (twinning) {
        // the frame's function the same in the picture's second copy
        const tw = pc.twin;
        if (tw === undefined) {
          // (a frame across two pages: word by word)
          const sameCode = pc.sameInTwin(frame + F.code, 8);
          if (sameCode === 0 || (ownerAt != null && pc.sameInTwin(frame + ownerAt, 1) === 0)) return heldAnother(frames, frame);
          if (sameCode === -1) apart = true;
          else inPicture = true;
        } else {
          inPicture = true;
          if (tw.getUint32(o + F.code, true) !== d.getUint32(o + F.code, true) || tw.getUint32(o + F.code + 4, true) !== d.getUint32(o + F.code + 4, true)) return heldAnother(frames, frame);
          if (ownerAt != null && tw.getUint8(o + ownerAt) !== d.getUint8(o + ownerAt)) return heldAnother(frames, frame);
          if (stateAt != null && tw.getUint8(o + stateAt) !== d.getUint8(o + stateAt)) stateMoved = true;
        }
      }
    } else d = dv(mem.read(frame, F.size));
    // 3.14: f_executable is a _PyStackRef whose low bits are tags (layout.frame.executable_tag_bits)
    const code = minor >= 14 ? untagExecutable(d.getBigUint64(o + F.code, true), F.executable_tag_bits ?? 0) : u64(d, o + F.code);
    const previous = u64(d, o + F.previous);
    const globals = F.globals != null ? u64(d, o + F.globals) : undefined;
    if (minor <= 10) {
      if (executingAt != null) {
        const st = d.getInt8(o + executingAt);
        const running = frameExecuting(minor, st);
        // The innermost frame may be caught entering or leaving (created, or a generator
        // being resumed or just suspended, still linked to its caller): the thread's frame
        // then, and a real stack when everything under it runs. Any other frame must run.
        const enteringOrLeaving = frames.length === 0 && previous !== 0;
        if (!running && !enteringOrLeaving) return { frames, truncated: false, complete: false, why: `frame 0x${frame.toString(16)} is not executing (${minor === 10 ? 'f_state' : 'f_executing'} ${st})` };
      }
      const lasti = d.getInt32(o + F.lasti!, true);
      if (visited === 1) leaf.instr = lasti;
      const info = readCode(mem, layout, minor, code, cache, globals, codeCheck);
      lastGenerator = (info.flags & CO_GENERATOR_LIKE) !== 0;
      frames.push(frameOf(info, minor === 10 ? lasti * 2 : lasti, lasti < 0));
    } else {
      const owner = d.getUint8(o + F.owner!);
      lastOwner = owner;
      const instr = u64(d, o + F.instr_ptr!);
      if (visited === 1) leaf.instr = instr;
      // 3.14: owner ≥ FRAME_OWNED_BY_INTERPRETER (3; CSTACK is 4) is an entry/shim frame
      let skip = minor >= 14 ? owner >= owners314!.firstShim : minor >= 12 && owner >= OWNER_CSTACK;
      // 3.13: f_executable may be Py_None (shims) or another non-code object; a cached
      // address was checked when it was cached.
      if (!skip && minor >= 13 && !cache.has(code)) {
        const check = codeCheck ?? new CodeTypeCheck(mem, layout);
        skip = code === 0 || !check.isCode(code);
      }
      if (!skip) {
        const info = readCode(mem, layout, minor, code, cache, globals, codeCheck);
        const first = code + layout.code.code_adaptive!;
        // incomplete frame (CPython's _PyFrame_IsIncomplete): hidden
        if (owner === generatorOwner || instr >= first + info.firstTraceable * 2) {
          const offset = instr - first;
          frames.push(frameOf(info, offset, offset < 0));
          lastGenerator = (info.flags & CO_GENERATOR_LIKE) !== 0;
        }
      }
    }
    frame = previous;
  }
  // the functions of the chain as read are the ones that were there: the same in the pages' second copies
  let unsteady: 'moved' | 'apart' | undefined;
  // a thread none of whose frames was in the picture (asleep at the last tick, its pages not
  // fetched with the others: a pool worker woken for a burst) is read as it is found: read
  // again later, it would more often be found back asleep, and its burst under-counted
  if (twinning && inPicture) {
    // a frame or the current frame on a page read apart from the picture (its chain went to
    // pages the last read did not: a recursion's frame objects on 3.8–3.10) is compared with
    // nothing: unsteady, read again, and given if no read holds still
    const r = currentFrameSame(pc!, layout, minor, tstate, cframe);
    if (apart || r === -1) unsteady = 'apart';
    else if (r === 0 || stateMoved) unsteady = 'moved';
  }
  const w = complete(frames, truncated, leaf, minor, lastOwner, lastGenerator, generatorOwner, owners314);
  if (unsteady !== undefined && w.complete) w.unsteady = unsteady;
  return w;
}

/** the end of `walkInto`: does the chain end where a thread's stack ends (see `walkStack`)? */
function complete(frames: Frame[], truncated: boolean, leaf: LeafMark, minor: number, lastOwner: number, lastGenerator: boolean, generatorOwner: number, owners314: { generator: number; firstShim: number } | undefined): StackWalk {
  if (truncated) return { frames, truncated, complete: true, leaf };
  const why = chainEndFault(minor, lastOwner, lastGenerator, generatorOwner, owners314?.firstShim);
  return why === undefined ? { frames, truncated, complete: true, leaf } : { frames, truncated, complete: false, why };
}

/**
 * Why a chain read to its end does not end where a thread's stack ends (undefined: it does),
 * from its outermost frame: its owner (3.11+; −1: no frame) and whether the outermost Python
 * frame runs a generator. `walkInto` and `framesFromWords` share it.
 */
function chainEndFault(minor: number, lastOwner: number, lastGenerator: boolean, generatorOwner: number, firstShim314: number | undefined): string | undefined {
  // A generator's code never starts a thread's stack. 3.8–3.10: a running generator's frame
  // is linked to its caller (f_back) before it is marked executing and unlinked after it is
  // marked suspended, and one read of the frame can see half of a resume. 3.12+: the entry
  // shim a generator resumed from C code runs under ends the chain as the thread's base does,
  // when its link to the caller was read while the C stack it lives on was reused (seen:
  // `<genexpr>` alone, under churn).
  if (lastGenerator) return 'the chain ends at a generator frame with no caller';
  if (minor <= 10 || lastOwner < 0) return undefined;
  // 3.11+: the chain must end at the thread's base
  if (minor === 11) return lastOwner === generatorOwner ? 'the chain ends at a suspended generator frame' : undefined;
  const base = minor >= 14 ? lastOwner >= firstShim314! : lastOwner === OWNER_CSTACK;
  return base ? undefined : `the chain ends at a frame owned by ${lastOwner}, not the thread's entry frame`;
}

/** 3.8/3.9 `f_executing` is 1, 3.10 `f_state` EXECUTING or UNWINDING, while the frame runs (the low 3 bits of the state tell the same) */
function frameExecuting(minor: number, state: number): boolean {
  return minor === 10 ? state === FRAME_EXECUTING_310 || state === FRAME_UNWINDING_310 : state === 1;
}

/**
 * Every thread of every interpreter with its stack (leaf first). One thread's read error
 * becomes that thread's `error`; only an unreadable interpreter or thread list throws.
 */
export function walkThreads(
  mem: ProcessMemory,
  rt: WalkerRuntime,
  layout: Layout,
  version: { major: number; minor: number },
  opts: WalkOptions = {},
): ThreadStack[] {
  const minor = version.minor;
  if (version.major !== 3 || minor < 8 || minor > 14) throw new WalkError(`no stack walker for Python ${version.major}.${minor}`);
  if (minor >= 14) owners314Of(layout); // a 3.14 walk needs the layout's frame-owner values: fail once, not per thread
  const cache = opts.cache ?? new Map();
  if (opts.pageCache !== false) mem = new PageCacheMemory(mem);
  const codeCheck = opts.codeCheck !== undefined && opts.codeCheck.over(mem) ? opts.codeCheck : new CodeTypeCheck(mem, layout);
  const maxThreads = opts.maxThreads ?? 4096;
  const out: ThreadStack[] = [];
  const seen = new ThreadStateSet();
  const ctx: WalkContext = { mem, layout, minor, maxDepth: opts.maxDepth, cache, codeCheck, maxRetries: opts.maxRetries ?? 8, pause: opts.pause, plans: opts.plans, lastFrames: opts.lastFrames, skip: opts.skip, running: opts.running };
  const interps = opts.interpreters ?? listInterpreters(mem, rt, layout);
  for (let i = 0; i < interps.length; i++) walkInterpreterThreads(ctx, interps[i]!.address, interps[i]!.id, out, seen, maxThreads);
  return out;
}

/**
 * The thread states met so far in one listing (a torn list can link back): a short list is
 * searched (a process has few threads, and a tick then makes no Set), a set made past that.
 */
class ThreadStateSet {
  private list: Address[] = [];
  private set: Set<Address> | undefined;
  has(a: Address): boolean {
    if (this.set !== undefined) return this.set.has(a);
    const l = this.list;
    for (let i = 0; i < l.length; i++) if (l[i] === a) return true;
    return false;
  }
  add(a: Address): void {
    if (this.set !== undefined) this.set.add(a);
    else if (this.list.length < 32) this.list.push(a);
    else this.set = new Set([...this.list, a]);
  }
}

export interface InterpreterRef {
  address: Address;
  /** 0 for the main interpreter */
  id: number;
}

/**
 * Every interpreter, newest first (`interpreters.head` is the newest; the main one is
 * last). Bounded and cycle-safe.
 */
export function listInterpreters(mem: ProcessMemory, rt: WalkerRuntime, layout: Layout): InterpreterRef[] {
  const out: InterpreterRef[] = [];
  const seen = new Set<Address>();
  let interp = mem.readPtr(rt.runtimeAddress + layout.runtime.interpreters_head);
  for (; interp !== 0 && !seen.has(interp) && seen.size < MAX_INTERPRETERS; interp = mem.readPtr(interp + layout.interp.next)) {
    seen.add(interp);
    out.push({ address: interp, id: Number(mem.readU64(interp + layout.interp.id)) });
  }
  return out;
}

const MAX_INTERPRETERS = 256;
/**
 * Reads again of a thread whose walks are whole but unsteady (it called or returned while its
 * picture was copied) before its last such walk is taken: a thread between two calls holds
 * still for the next read most often; one in a tight recursion never does, and costs two reads more.
 */
const UNSTEADY_REREADS = 2;
/** times one thread may be stopped in one tick */
const MAX_STOPS = 3;

/** What every thread's walk of one `walkThreads` shares. */
interface WalkContext {
  mem: ProcessMemory;
  layout: Layout;
  minor: number;
  maxDepth: number | undefined;
  cache: CodeCache;
  codeCheck: CodeTypeCheck;
  maxRetries: number;
  pause: PauseHook | undefined;
  plans: Map<Address, Address[]> | undefined;
  lastFrames: Map<Address, Frame[]> | undefined;
  skip: ReadonlyMap<Address, bigint> | undefined;
  running: readonly Address[] | undefined;
}

function walkInterpreterThreads(ctx: WalkContext, interp: Address, interpId: number, out: ThreadStack[], seen: ThreadStateSet, maxThreads: number): void {
  eachThreadState(ctx.mem, ctx.layout, interp, interpId, seen, () => out.length < maxThreads, (t) => {
    if (t.error === undefined) {
      if (ctx.skip !== undefined && ctx.skip.get(t.tstate) === t.pthreadId) t.asleep = true;
      else readThreadStack(ctx, t);
    }
    out.push(t);
  });
}

/**
 * The thread states of one interpreter, newest first, each with its pthread id and TID (or
 * `error` when they cannot be read), no stack; bounded by `more` and cycle-safe (`seen`).
 */
function eachThreadState(mem: ProcessMemory, layout: Layout, interp: Address, interpId: number, seen: ThreadStateSet, more: () => boolean, visit: (t: ThreadStack) => void): void {
  let tstate = mem.readPtr(interp + layout.interp.threads_head);
  while (tstate !== 0 && !seen.has(tstate) && more()) {
    seen.add(tstate);
    const t: ThreadStack = { tid: -1, pthreadId: 0n, tstate };
    if (interpId !== 0) t.interp = interpId;
    try {
      t.pthreadId = mem.readU64(tstate + layout.tstate.thread_id);
      t.tid = layout.tstate.native_thread_id !== null ? Number(mem.readU64(tstate + layout.tstate.native_thread_id)) : Number(t.pthreadId);
    } catch (e) {
      t.error = e instanceof Error ? e.message : String(e);
    }
    visit(t);
    tstate = mem.readPtr(tstate + layout.tstate.next);
  }
}

/**
 * Every thread of these interpreters as `walkThreads` lists them (thread state, pthread id,
 * TID), without reading a stack: what a skipStill backstop compares with the watched threads.
 */
export function listThreadStates(mem: ProcessMemory, layout: Layout, interpreters: readonly InterpreterRef[], maxThreads = 4096): ThreadStack[] {
  const out: ThreadStack[] = [];
  const seen = new ThreadStateSet();
  for (const { address, id } of interpreters) eachThreadState(mem, layout, address, id, seen, () => out.length < maxThreads, (t) => out.push(t));
  return out;
}

/**
 * Walk one thread's stack into `t`; a torn walk (or a read error, often the same tear seen
 * earlier) is read again from fresh pages, up to `maxRetries` times, and then once more with
 * the thread stopped when `pause` allows it (with `pause.first`, stopped before the first
 * read). When no read validates, the longest partial stack is kept with `truncated` and
 * `torn` set, so it is shown under a marker, never as a stack with a wrong root; only a
 * thread that gave no frames at all carries `error`.
 */
function readThreadStack(ctx: WalkContext, t: ThreadStack): void {
  const mem = ctx.mem;
  // the common case first, with no closure made: a first read from the pages the tick
  // fetched together (session.ts), not stopped first, that holds together
  if (mem instanceof PageCacheMemory && mem.prefetched && ctx.pause?.first !== true) {
    mem.resetTouched();
    let w: StackWalk | undefined;
    let error: string | undefined;
    try {
      w = walkStackWith(mem, ctx.layout, ctx.minor, t.tstate, ctx.maxDepth ?? DEFAULT_MAX_DEPTH, ctx.cache, ctx.codeCheck, ctx.lastFrames?.get(t.tstate));
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    keepPlan(ctx.plans, mem, t.tstate, w?.complete === true);
    if (w !== undefined && w.complete && holds(w, ctx, t)) return keepWalk(ctx.lastFrames, t, w);
    return readThreadStackAgain(ctx, t, { best: w, error });
  }
  readThreadStackAgain(ctx, t);
}

/** a whole walk that need not be read again: steady, or unsteady for a thread that was not running Python (`WalkOptions.running`) */
function holds(w: StackWalk, ctx: WalkContext, t: ThreadStack): boolean {
  if (w.unsteady === undefined) return true;
  // a thread that does not hold the GIL runs no Python: its frames cannot have changed
  if (ctx.running !== undefined && !ctx.running.includes(t.tstate)) {
    w.unsteady = undefined;
    return true;
  }
  return false;
}

/** a whole walk as `t`'s stack (and as its thread state's last frames) */
function keepWalk(lastFrames: Map<Address, Frame[]> | undefined, t: ThreadStack, w: StackWalk): void {
  t.frames = w.frames;
  if (w.unsteady !== undefined) t.unsteady = true;
  lastFrames?.set(t.tstate, w.frames);
  if (w.leaf) t.leaf = w.leaf;
  if (w.truncated) t.truncated = true;
}

/**
 * the pages the read of `tstate` went to, kept as its plan (`WalkOptions.plans`). A read that
 * did not reach the thread's base (`whole` false: torn, cut) adds its pages to the plan
 * instead: the frames under the tear are most likely where they were, and a re-read that
 * fetched only the torn read's pages met them on pages read apart (read again once more)
 */
export function keepPlan(plans: Map<Address, Address[]> | undefined, pc: PageCacheMemory, tstate: Address, whole = true): void {
  if (plans === undefined) return;
  const plan = plans.get(tstate);
  if (plan === undefined) plans.set(tstate, pc.touched());
  else if (whole || plan.length >= MAX_PLAN_PAGES) pc.touchedInto(plan);
  else {
    const more = pc.touched();
    for (let i = 0; i < more.length && plan.length < MAX_PLAN_PAGES; i++) if (!plan.includes(more[i]!)) plan.push(more[i]!);
  }
}
/** a plan grown by torn reads stops growing here (a whole read sets it anew) */
const MAX_PLAN_PAGES = 256;

/** `readThreadStack` from the start, or after a first read (`first`) that did not hold together */
function readThreadStackAgain(ctx: WalkContext, t: ThreadStack, first?: { best: StackWalk | undefined; error: string | undefined }): void {
  const { mem, layout, minor, maxDepth, cache, codeCheck, maxRetries, pause, plans, lastFrames } = ctx;
  // a whole walk of a thread that called or returned while it was copied: given if no read holds still
  let unsteady: StackWalk | undefined = first?.best?.complete ? first.best : undefined;
  let best: StackWalk | undefined = unsteady === undefined ? first?.best : undefined;
  let error: string | undefined = first?.error;
  const refreshable = isRefreshable(mem);
  const retries = refreshable ? maxRetries : 0;
  const pc = mem instanceof PageCacheMemory ? mem : undefined;
  /** before each read: fresh pages, and the pages this thread's last read went to fetched together */
  const begin = (attempt: number) => {
    if (pc) {
      // the first read of a running thread uses the pages the tick fetched together
      // (session.ts); a thread stopped first (blocking) is read as it is now, stopped
      if (attempt === 0 && pc.prefetched && !t.paused) return pc.resetTouched();
      pc.refresh();
      pc.prefetch(plans?.get(t.tstate) ?? [t.tstate - (t.tstate % PAGE_SIZE)]);
    } else if (refreshable) (mem as RefreshableMemory).refresh();
  };
  const end = (whole: boolean) => {
    if (pc) keepPlan(plans, pc, t.tstate, whole);
  };
  let resume: (() => void) | undefined;
  /** stops made; a thread stopped in the middle of a call, return or yield shows a torn chain too: it runs on and is stopped again */
  let stops = 0;
  /** a stop after torn reads was refused or failed: not asked again this tick */
  let refused = false;
  const stop = (torn = true): boolean => {
    if (resume !== undefined) {
      resume();
      resume = undefined;
    }
    if (refused || stops >= MAX_STOPS || pause === undefined || !refreshable) return false;
    resume = pause.pause(t, torn);
    if (resume === undefined) {
      refused = torn;
      return false;
    }
    stops++;
    t.paused = true;
    return true;
  };
  try {
    if (pause?.first && first === undefined) stop(false);
    for (let attempt = 0; ; attempt++) {
      // (a first read made already, by readThreadStack, is not made again)
      const read = attempt > 0 || first === undefined;
      if (read && (attempt > 0 || pc)) begin(attempt);
      if (read) try {
        const w = walkStackWith(mem, layout, minor, t.tstate, maxDepth ?? DEFAULT_MAX_DEPTH, cache, codeCheck, lastFrames?.get(t.tstate));
        end(w.complete);
        if (w.complete && (holds(w, ctx, t) || attempt >= (w.unsteady === 'moved' ? UNSTEADY_REREADS : retries))) {
          keepWalk(lastFrames, t, w);
          if (attempt > 0) t.retries = attempt;
          return;
        }
        if (w.complete) unsteady = w;
        else if (best === undefined || w.frames.length > best.frames.length) best = w;
      } catch (e) {
        end(false);
        error = e instanceof Error ? e.message : String(e);
      }
      // lock-free reads up to `retries`; then (and after every read while stopped) a stop
      const last = attempt >= retries || resume !== undefined;
      if (last && unsteady !== undefined) {
        // torn reads after one that was whole (unsteady): that one
        keepWalk(lastFrames, t, unsteady);
        if (attempt > 0) t.retries = attempt;
        return;
      }
      if (last && !stop()) {
        if (attempt > 0) t.retries = attempt;
        if (best !== undefined && best.frames.length > 0) {
          t.frames = best.frames;
          t.truncated = true;
          t.torn = true;
        } else t.error = error ?? best?.why ?? 'torn walk';
        return;
      }
    }
  } finally {
    resume?.();
  }
}

/**
 * Frame words: a stack read in the kernel (capture/ebpf/pywalk.ts) packs each frame in one
 * u64 without a branch — the code object's address (8-aligned) in bits 3–46, a tag in bits
 * 0–2 (3.11+: the frame's owner; 3.8–3.10: the low 3 bits of `f_executing`/`f_state`), and in
 * bits 47–63 the instruction: 3.11+ (instruction pointer − code object) / 2, 3.8–3.10
 * `f_lasti` + 1 (0: not started); both modulo 2^17.
 */
export const FRAME_WORD_CODE_MASK = 0x7ffffffffff8n;
export const FRAME_WORD_OFFSET_SHIFT = 47;
/** `WordsWalk.why` of a stack the reader stopped at its depth bound */
export const DEPTH_BOUND_WHY = 'the depth bound';

/** One stack from its frame words, as `walkInto` would name it from the frames themselves. */
export interface WordsWalk {
  /** leaf first */
  frames: Frame[];
  /** the stack does not reach the thread's base: cut at `why` (frames holds what is above the cut) */
  truncated: boolean;
  why?: string;
}

/**
 * Name a stack given as frame words (leaf first; see FRAME_WORD_CODE_BITS): code objects read
 * through `mem` (cached in `cache`, type-checked by `check`), shim and incomplete frames left
 * out, and the chain's end checked as `walkStack` checks it. `cut`: the reader stopped before
 * the chain's end (its depth bound, or a frame it could not read).
 */
export function framesFromWords(mem: ProcessMemory, layout: Layout, minor: number, words: readonly bigint[], cut: boolean, cache: CodeCache, check: CodeTypeCheck): WordsWalk {
  const frames: Frame[] = [];
  let lastOwner = -1;
  let lastGenerator = false;
  const n = words.length;
  const adaptive = layout.code.code_adaptive ?? 0;
  for (let i = 0; i < n; i++) {
    const w = words[i]!;
    const code = Number(w & FRAME_WORD_CODE_MASK);
    const tag = Number(w & 7n);
    const units = Number(w >> BigInt(FRAME_WORD_OFFSET_SHIFT));
    if (code === 0) return { frames, truncated: true, why: 'a frame with no code object (the chain could not be read on)' };
    let info: CodeInfo;
    if (minor <= 10) {
      // a frame caught entering or leaving is the leaf of a longer chain; any other must run
      if (!frameExecuting(minor, tag) && !(i === 0 && n > 1)) return { frames, truncated: true, why: `frame ${i} is not executing` };
      try {
        info = readCode(mem, layout, minor, code, cache, undefined, check);
      } catch (e) {
        if (e instanceof WalkError || e instanceof BadReadError) return { frames, truncated: true, why: (e as Error).message };
        throw e;
      }
      lastGenerator = (info.flags & CO_GENERATOR_LIKE) !== 0;
      frames.push(frameOf(info, minor === 10 ? (units - 1) * 2 : units - 1, units === 0));
      continue;
    }
    lastOwner = tag;
    if (minor >= 12 && tag >= OWNER_CSTACK) continue; // entry shim
    try {
      // 3.13: f_executable may be None (shims) or another non-code object
      if (minor >= 13 && !cache.has(code) && !check.isCode(code)) continue;
      info = readCode(mem, layout, minor, code, cache, undefined, check);
    } catch (e) {
      if (e instanceof WalkError || e instanceof BadReadError) return { frames, truncated: true, why: (e as Error).message };
      throw e;
    }
    const offset = units * 2 - adaptive;
    // incomplete frame (CPython's _PyFrame_IsIncomplete): hidden
    if (tag === OWNER_GENERATOR || offset >= info.firstTraceable * 2) {
      frames.push(frameOf(info, offset, offset < 0));
      lastGenerator = (info.flags & CO_GENERATOR_LIKE) !== 0;
    }
  }
  if (cut) return { frames, truncated: true, why: DEPTH_BOUND_WHY };
  const why = chainEndFault(minor, lastOwner, lastGenerator, OWNER_GENERATOR, undefined);
  return why === undefined ? { frames, truncated: false } : { frames, truncated: true, why };
}
