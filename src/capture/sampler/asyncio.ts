/**
 * The live asyncio tasks of a CPython process, read from outside (issue 14's first step:
 * `pylens dump --async`). Facts and how they were verified: docs/asyncio/facts.md.
 *
 * - The registry: `sys.modules['asyncio.tasks']`'s `_all_tasks` WeakSet (3.8–3.11), or
 *   `_scheduled_tasks` (a WeakSet) and `_eager_tasks` (a set of the tasks running their
 *   eager first step) on 3.12+. The C accelerator rebinds those names to its own objects, so
 *   the route holds with or without `_asyncio` and on stripped builds.
 * - A WeakSet keeps its members in `self.data`, a set of weakrefs: set table entries
 *   {key, hash} (a deleted slot's key is the dummy object, of type "<dummy key> type"), weakref
 *   `wr_object` (+16; a dead one points at None).
 * - A task of the C type `_asyncio.Task` (or a subclass of it: same C layout) gives its name
 *   (a str; 3.12+ keeps an int counter until the name is asked for: shown as "Task-N"), its
 *   state, its coroutine (qualname) and what it waits on (`task_fut_waiter`'s type).
 *   Other task objects (pure-Python `_PyTask`, third-party classes) are counted, not read.
 */
import type { Layout } from './layouts/types.ts';
import type { Address, ProcessMemory } from './memory.ts';
import { hasObjectLayout, isTorn, ObjectReader, type HintCache, type TypeInfo } from './threadnames.ts';
import { detachedFrame, PageCacheMemory, type CodeCache, type Frame } from './walker.ts';

/** byte offsets in TaskObj (Modules/_asynciomodule.c as compiled; docs/asyncio/facts.md §1) and of cr_qualname (§4) */
interface TaskOffsets {
  state: number;
  futWaiter: number;
  coro: number;
  name: number;
  coroQualname: number;
}

const OFFSETS: Record<number, TaskOffsets> = {
  8: { state: 72, futWaiter: 104, coro: 112, name: 120, coroQualname: 56 },
  9: { state: 80, futWaiter: 144, coro: 152, name: 160, coroQualname: 56 },
  10: { state: 88, futWaiter: 152, coro: 160, name: 168, coroQualname: 48 },
  11: { state: 88, futWaiter: 128, coro: 136, name: 144, coroQualname: 40 },
  12: { state: 88, futWaiter: 128, coro: 136, name: 144, coroQualname: 32 },
  13: { state: 96, futWaiter: 112, coro: 120, name: 128, coroQualname: 32 },
};

const SET_MASK = 32;
/** tp_name of the set's deleted-slot marker (Objects/setobject.c `_PySetDummy_Type`) */
const DUMMY_TYPE = '<dummy key> type';
const SET_TABLE = 40;
const WR_OBJECT = 16;
const STATES = ['pending', 'cancelled', 'finished'] as const;

export interface AsyncTask {
  address: Address;
  name: string;
  state: (typeof STATES)[number];
  /** the task's coroutine's qualname (or the type of what it runs) */
  coroutine: string | null;
  /** the type of the future the task waits on (`_asyncio.Future`, `_asyncio.Task`, …), null when it waits on nothing (ready or running) */
  waitsOn: string | null;
  /** when it waits on another task: that task's name */
  awaitsTask?: string;
  /**
   * its await chain, innermost first (as thread stacks are): the coroutine awaited last
   * down to the task's own coroutine, each at the line it is suspended on. Only the task's
   * own coroutine for a task running now (its live chain is on its thread's stack) or not
   * yet started.
   */
  stack: Frame[];
  /** in `_eager_tasks`: running its eager first step (3.12+) */
  eager: boolean;
}

export interface AsyncTasks {
  /** `asyncio.tasks` is imported (else there are no tasks to find) */
  asyncio: boolean;
  tasks: AsyncTask[];
  /** task objects of a type this reader does not know (pure-Python tasks, third-party classes) */
  unsupported: number;
  /** members past `max` */
  skipped: number;
  /** members that changed while being read (a task finishing, a weakref dying): left out */
  torn: number;
}

/**
 * The members of a set object, empty and deleted slots skipped: a deleted slot holds the
 * dummy object, whose type is "<dummy key> type" (a NULL type is taken as a dummy too); a
 * member freed meanwhile is skipped.
 */
function setMembers(r: ObjectReader, mem: ProcessMemory, set: Address, max: number, typeName: (t: Address) => string): Address[] {
  const mask = Number(mem.readU64(set + SET_MASK));
  if (mask < 7 || mask > 1 << 24 || ((mask + 1) & mask) !== 0) return [];
  const table = mem.readPtr(set + SET_TABLE);
  const bytes = mem.read(table, (mask + 1) * 16);
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Address[] = [];
  for (let i = 0; i <= mask && out.length < max; i++) {
    const key = Number(d.getBigUint64(i * 16, true));
    if (key === 0) continue;
    try {
      const type = mem.readPtr(key + r.L.object.ob_type);
      if (type === 0 || typeName(type) === DUMMY_TYPE) continue;
    } catch (e) {
      if (isTorn(e)) continue;
      throw e;
    }
    out.push(key);
  }
  return out;
}

/**
 * Every task in the registry of the interpreter at `interpAddress`. Throws on unreadable
 * memory (the caller decides); an interpreter without asyncio gives `asyncio: false`.
 */
/**
 * What a sampler keeps from one read of the tasks to the next (it drops it when it drops its
 * code cache: objects may be freed and their addresses reused): builtin types, where dict keys
 * were found (sys.modules is large), type names and which types are tasks.
 */
export interface AsyncReadState {
  staticTypes: Map<Address, TypeInfo>;
  hints: HintCache;
  typeNames: Map<Address, string>;
  taskTypes: Map<Address, boolean>;
  /** the pages the last read touched: fetched together (one system call per 64) at the start of the next */
  plan: Address[];
  /** page buffers reused from read to read */
  pages: Uint8Array[];
  /** per task: its last await chain and what proves it unchanged (see `awaitChainMemo`) */
  chains: Map<Address, ChainMemo>;
}

/**
 * A task's await chain as last read. Outer coroutines of a chain only move when control comes
 * back to them, which needs the innermost one to resume: while the task, its coroutine, its
 * waiter and the innermost coroutine's position (frame state and instruction) are the same,
 * so is the whole chain.
 */
interface ChainMemo {
  coro: Address;
  waiter: Address;
  inner: Address;
  mark: string;
  stack: Frame[];
}

export function newAsyncReadState(): AsyncReadState {
  return { staticTypes: new Map(), hints: new Map(), typeNames: new Map(), taskTypes: new Map(), plan: [], pages: [], chains: new Map() };
}

export function readAsyncTasks(mem: ProcessMemory, layout: Layout, interpAddress: Address, minor: number, opts: { max?: number; codeCache?: CodeCache; state?: AsyncReadState } = {}): AsyncTasks {
  const out: AsyncTasks = { asyncio: false, tasks: [], unsupported: 0, skipped: 0, torn: 0 };
  const off = OFFSETS[minor];
  if (!off || !hasObjectLayout(layout) || interpAddress === 0) return out;
  const max = opts.max ?? 10_000;
  const state = opts.state ?? newAsyncReadState();
  const cached = new PageCacheMemory(mem, state.pages);
  if (state.plan.length > 0) cached.prefetch(state.plan);
  mem = cached;
  const r = new ObjectReader(mem, layout, { staticTypes: state.staticTypes, hints: state.hints });
  const typeName = (type: Address): string => {
    let n = state.typeNames.get(type);
    if (n === undefined) state.typeNames.set(type, (n = r.typeName(type)));
    return n;
  };
  // code objects: the caller's cache when it keeps one (the sampler's, flushed as it flushes)
  const cache: CodeCache = opts.codeCache ?? new Map();
  const modules = mem.readPtr(interpAddress + layout.interp.modules);
  if (modules === 0) return out;
  const mod = r.dictGetStr(modules, 'asyncio.tasks');
  if (mod === 0 || !r.isBuiltin(mod, 'module')) return out;
  out.asyncio = true;
  const md = mem.readPtr(mod + layout.module.md_dict);
  // (task address, eager?) from each registry
  const found: { task: Address; eager: boolean }[] = [];
  const weakSets = minor >= 12 ? ['_scheduled_tasks'] : ['_all_tasks'];
  for (const name of weakSets) {
    const ws = r.dictGetStr(md, name);
    if (ws === 0) continue;
    const data = r.instanceAttr(ws, 'data');
    if (data === 0) continue;
    for (const ref of setMembers(r, mem, data, max + 1, typeName)) {
      try {
        const obj = mem.readPtr(ref + WR_OBJECT);
        if (obj === 0 || r.typeOf(obj).info.name === 'NoneType') continue; // a dead weakref
        found.push({ task: obj, eager: false });
      } catch (e) {
        if (!isTorn(e)) throw e;
        out.torn++;
      }
    }
  }
  if (minor >= 12) {
    const eager = r.dictGetStr(md, '_eager_tasks');
    if (eager !== 0) for (const t of setMembers(r, mem, eager, max + 1, typeName)) found.push({ task: t, eager: true });
  }
  if (found.length > max) {
    out.skipped = found.length - max;
    found.length = max;
  }
  for (const { task, eager } of found) {
    try {
      readTask(task, eager);
    } catch (e) {
      if (!isTorn(e)) throw e;
      out.torn++;
    }
  }
  function readTask(task: Address, eager: boolean): void {
    const type = r.typeOf(task);
    let isTask = state.taskTypes.get(type.addr);
    if (isTask === undefined) state.taskTypes.set(type.addr, (isTask = isCTask(r, type.addr)));
    if (!isTask) {
      out.unsupported++;
      return;
    }
    const stateWord = mem.readU32(task + off.state);
    const nameObj = mem.readPtr(task + off.name);
    let name = nameObj ? r.readStr(nameObj, 200) : null;
    if (name === null && nameObj) {
      const n = r.readInt(nameObj);
      name = n !== null ? `Task-${n}` : null;
    }
    const coro = mem.readPtr(task + off.coro);
    let coroutine: string | null = null;
    if (coro !== 0) {
      const ct = r.typeOf(coro);
      coroutine = ct.info.name === 'coroutine' ? r.readStr(mem.readPtr(coro + off.coroQualname), 300) : typeName(ct.addr);
    }
    const waiter = mem.readPtr(task + off.futWaiter);
    let stack: Frame[] = [];
    if (coro !== 0) {
      const memo = state.chains.get(task);
      if (memo !== undefined && memo.coro === coro && memo.waiter === waiter && positionMark(mem, layout, minor, memo.inner) === memo.mark) stack = memo.stack;
      else {
        const chain = awaitChain(r, layout, minor, coro, cache);
        stack = chain.frames;
        if (state.chains.size > 4 * max) state.chains.clear();
        state.chains.set(task, { coro, waiter, inner: chain.inner, mark: positionMark(mem, layout, minor, chain.inner), stack });
      }
    }
    out.tasks.push({
      address: task,
      name: name ?? '?',
      state: STATES[stateWord] ?? 'pending',
      coroutine,
      waitsOn: waiter === 0 ? null : typeName(r.typeOf(waiter).addr),
      ...(waiter !== 0 ? { waiter } : {}),
      eager,
      stack,
    } as AsyncTask & { waiter?: Address });
  }
  state.plan = cached.allTouched();
  // a task awaiting another task: name it ("awaited by", seen from the parent)
  const byAddress = new Map(out.tasks.map((t) => [t.address, t.name]));
  for (const t of out.tasks as (AsyncTask & { waiter?: Address })[]) {
    const w = t.waiter;
    delete t.waiter;
    if (w !== undefined && byAddress.has(w)) t.awaitsTask = byAddress.get(w)!;
  }
  return out;
}

/** `_asyncio.Task` or a class deriving from it (tp_base chain, at most 16 deep) */
function isCTask(r: ObjectReader, type: Address): boolean {
  for (let t = type, i = 0; t !== 0 && i < 16; i++) {
    if (r.typeName(t) === '_asyncio.Task') return true;
    t = r.mem.readPtr(t + TP_BASE);
  }
  return false;
}

/** PyTypeObject.tp_base, the same in 3.8–3.13 */
const TP_BASE = 256;

/** where a coroutine's (or generator's) own frame is: cr_frame (3.8–3.10, a pointer), cr_iframe (3.11+, inside the object) */
const CR_FRAME_PTR = 16;
const CR_IFRAME: Record<number, number> = { 11: 80, 12: 72, 13: 72 };
/** gi_frame_state (int8), 3.11+ */
const CR_FRAME_STATE: Record<number, number> = { 11: 75, 12: 67, 13: 67 };
const YIELD_FROM = 72;
const RESUME_OPS: Record<number, ReadonlySet<number>> = { 11: new Set([150, 151]), 12: new Set([151, 240]) };
const MAX_AWAIT_DEPTH = 64;

/** The frame of a coroutine or generator object, or 0 when it has none (finished). */
function coroFrame(mem: ProcessMemory, minor: number, coro: Address): Address {
  return minor <= 10 ? mem.readPtr(coro + CR_FRAME_PTR) : coro + CR_IFRAME[minor]!;
}

/**
 * What a suspended coroutine awaits (CPython's `_PyGen_yf`, per version: docs/asyncio/facts.md
 * §5), or 0: running, not started, finished, or suspended on a plain yield.
 */
function awaited(mem: ProcessMemory, layout: Layout, minor: number, coro: Address): Address {
  if (minor <= 10) {
    const f = mem.readPtr(coro + CR_FRAME_PTR);
    if (f === 0) return 0;
    const lasti = mem.readI32(f + layout.frame.lasti!);
    if (lasti < 0) return 0;
    const bytes = mem.readPtr(mem.readPtr(f + layout.frame.code) + layout.code.code!);
    const data = bytes + BYTES_DATA;
    if (minor <= 9) {
      const top = mem.readPtr(f + F_STACKTOP_39);
      if (top === 0) return 0;
      if (mem.read(data + lasti + 2, 1)[0] !== YIELD_FROM) return 0;
      return mem.readPtr(top - 8);
    }
    if (mem.read(data + (lasti + 1) * 2, 1)[0] !== YIELD_FROM) return 0;
    const depth = mem.readI32(f + F_STACKDEPTH_310);
    if (depth < 1) return 0;
    return mem.readPtr(mem.readPtr(f + F_VALUESTACK_310) + 8 * (depth - 1));
  }
  const frame = coro + CR_IFRAME[minor]!;
  const state = (mem.read(coro + CR_FRAME_STATE[minor]!, 1)[0]! << 24) >> 24; // int8
  if (minor >= 13) {
    if (state !== -1) return 0; // FRAME_SUSPENDED_YIELD_FROM
  } else {
    if (state === -2 || state > 3) return 0; // created, cleared
    const prev = mem.readPtr(frame + layout.frame.instr_ptr!);
    const next = mem.read(prev + 2, 2);
    if (!RESUME_OPS[minor]!.has(next[0]!) || next[1]! < 2) return 0;
  }
  const stacktop = mem.readI32(frame + IFRAME_STACKTOP);
  if (stacktop < 1) return 0;
  return mem.readPtr(frame + layout.frame.localsplus! + 8 * (stacktop - 1));
}

/** PyBytesObject.ob_sval */
const BYTES_DATA = 32;
/** PyFrameObject.f_stacktop, 3.8–3.9 */
const F_STACKTOP_39 = 72;
/** PyFrameObject.f_valuestack / f_stackdepth, 3.10 */
const F_VALUESTACK_310 = 64;
const F_STACKDEPTH_310 = 80;
/** _PyInterpreterFrame.stacktop (int), 3.11–3.13 */
const IFRAME_STACKTOP = 64;

/** A task's await chain from its coroutine inwards, innermost first (AsyncTask.stack), and its innermost coroutine. */
function awaitChain(r: ObjectReader, layout: Layout, minor: number, coro: Address, cache: CodeCache): { frames: Frame[]; inner: Address } {
  const mem = r.mem;
  const outward: Frame[] = [];
  let inner = coro;
  for (let c = coro, depth = 0; c !== 0 && depth < MAX_AWAIT_DEPTH; depth++) {
    const kind = r.typeOf(c).info.name;
    if (kind !== 'coroutine' && kind !== 'generator') break; // a FutureIter (awaiting a future), or something else awaitable
    const frame = coroFrame(mem, minor, c);
    if (frame === 0) break;
    outward.push(detachedFrame(mem, layout, minor, frame, cache));
    inner = c;
    c = awaited(mem, layout, minor, c);
  }
  return { frames: outward.reverse(), inner };
}

/** Where a coroutine stands: its frame and instruction (3.8–3.10), or frame state and instruction (3.11+). */
function positionMark(mem: ProcessMemory, layout: Layout, minor: number, coro: Address): string {
  if (minor <= 10) {
    const f = mem.readPtr(coro + CR_FRAME_PTR);
    return f === 0 ? 'done' : `${f}:${mem.readI32(f + layout.frame.lasti!)}`;
  }
  const st = mem.read(coro + CR_FRAME_STATE[minor]!, 1)[0]!;
  return `${st}:${mem.readPtr(coro + CR_IFRAME[minor]! + layout.frame.instr_ptr!)}`;
}
