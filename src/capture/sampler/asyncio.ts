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
import type { AsyncioDebugOffsets } from './asyncio-debug.ts';
import type { Layout } from './layouts/types.ts';
import { ProcMemory, readCString, type Address, type PagePool, type ProcessMemory } from './memory.ts';
import { hasObjectLayout, Implausible, isTorn, ObjectReader, readLong, type HintCache, type TypeInfo } from './threadnames.ts';
import { detachedFrame, PAGE_SIZE, PageCacheMemory, readUnicode, untagExecutable, type CodeCache, type Frame } from './walker.ts';

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

/**
 * 3.14: the fields from `_Py_AsyncioModuleDebugOffsets` (asyncio-debug.ts), and the two it
 * does not carry from their neighbours in Modules/_asynciomodule.c's TaskObj: `fut_state` (an
 * int enum) right before `fut_is_task`, `task_fut_waiter` right before `task_coro`; the
 * coroutine's qualname right after its name (`_PyGenObject_HEAD`).
 */
function offsets314(D: AsyncioDebugOffsets, layout: Layout): TaskOffsets | undefined {
  if (!layout.gen || layout.frame.stackpointer == null || !layout.frame_owner || layout.frame.owner == null) return undefined;
  return { state: D.task.isTask - 4, futWaiter: D.task.coro - 8, coro: D.task.coro, name: D.task.name, coroQualname: layout.gen.gi_name + 8 };
}

/** What the task reader needs of an object reader: ObjectReader (3.8–3.13), Reader314 (3.14+, no dict layouts) */
interface TaskReader {
  readonly mem: ProcessMemory;
  typeName(type: Address): string;
  readStr(obj: Address, maxChars: number): string | null;
  readInt(obj: Address): bigint | null;
}

/**
 * 3.14+: type names, str and int objects from the `_Py_DebugOffsets` layout alone (its
 * layouts have no dict or type-object internals; the task reader needs none on 3.14).
 */
class Reader314 implements TaskReader {
  readonly mem: ProcessMemory;
  private readonly layout: Layout;
  private readonly names: Map<Address, string>;
  constructor(mem: ProcessMemory, layout: Layout, names: Map<Address, string>) {
    this.mem = mem;
    this.layout = layout;
    this.names = names;
  }
  typeName(type: Address): string {
    let n = this.names.get(type);
    if (n === undefined) this.names.set(type, (n = readCString(this.mem, this.mem.readPtr(type + this.layout.type.tp_name), 64)));
    return n;
  }
  private is(obj: Address, name: string): boolean {
    return this.typeName(this.mem.readPtr(obj + this.layout.object.ob_type)) === name;
  }
  readStr(obj: Address, maxChars: number): string | null {
    return this.is(obj, 'str') ? readUnicode(this.mem, this.layout, obj, maxChars) : null;
  }
  readInt(obj: Address): bigint | null {
    const L = this.layout.long;
    return L && this.is(obj, 'int') ? readLong(this.mem, L, obj) : null;
  }
}

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
  /** that task as last read (its own chain, and what it awaits in turn): not in JSON output */
  awaits?: AsyncTask;
  /**
   * its await chain, innermost first (as thread stacks are): the coroutine awaited last
   * down to the task's own coroutine, each at the line it is suspended on. Only the task's
   * own coroutine for a task running now (its live chain is on its thread's stack) or not
   * yet started.
   */
  stack: Frame[];
  /** in `_eager_tasks`: running its eager first step (3.12+) */
  eager: boolean;
  /** its coroutine is executing now: the task runs, its chain is on its thread's stack */
  running: boolean;
  /** the threading ident (pthread_self, decimal) of the thread running its event loop (the loop's `_thread_id`), when known */
  loopThread?: string;
  /**
   * waiting on its children: a gather (`_GatheringFuture._children`) or a TaskGroup (the
   * group's `_tasks`, from `TaskGroup.__aexit__`'s self): how many, and the tasks among them by name
   */
  children?: { kind: 'gather' | 'TaskGroup'; count: number; tasks: string[] };
}

export interface AsyncTasks {
  /** `asyncio.tasks` is imported (else there are no tasks to find) */
  asyncio: boolean;
  tasks: AsyncTask[];
  /** task objects of a type this reader does not know (pure-Python tasks, third-party classes) */
  unsupported: number;
  /** members past `max` */
  skipped: number;
  /**
   * tasks are read in turn (opts.stride): each task once every `stride` reads, so a task read
   * now stands for `stride` reads (its sample weight); 1 when every task was read. (Through
   * `ProcessSampler.budgetedAsyncTasks`: the ticks a read of a task stands for.)
   */
  stride: number;
  /** tasks in the registry, read or not (weakrefs of tasks just gone included) */
  registered: number;
  /** why no task could be read at all on this Python (a version whose task layout pylens does not know) */
  unreadable?: string;
  /** members that changed while being read (a task finishing, a weakref dying): left out */
  torn: number;
}

/**
 * What a sampler keeps from one read of the tasks to the next (it drops it when it drops its
 * code cache: objects may be freed and their addresses reused): builtin types, where dict keys
 * were found (sys.modules is large), type names and which types are tasks, where the registry
 * sets are, and each task as last read.
 */
export interface AsyncReadState {
  staticTypes: Map<Address, TypeInfo>;
  hints: HintCache;
  typeNames: Map<Address, string>;
  taskTypes: Map<Address, boolean>;
  /** the pages the last read touched: fetched together (one system call per 64) at the start of the next */
  plan: Address[];
  /** page buffers reused from read to read (made at the first read of a live process) */
  pages: PagePool | undefined;
  /** a registry set's table, read into this buffer (kept, grown as needed) */
  tableBuf: Uint8Array;
  /** with a stride: the pages of each turn (plan is then unused), by turn */
  turnPlans: Map<number, Address[]>;
  turnStride: number;
  /** reads made: which turn is next */
  reads: number;
  /** per task: what it was last read as, and what proves it unchanged (see `TaskMemo`) */
  chains: Map<Address, TaskMemo>;
  /** the registry sets, found through sys.modules: looked up again every REGISTRY_REFRESH_MS or when one stops being a set */
  registry: Registry | undefined;
  /** the set's deleted-slot marker object and None, once seen (0 until then) */
  dummy: Address;
  none: Address;
  /** coroutine / generator types by address: 'coroutine', 'generator' or '' (anything else) */
  coroKinds: Map<Address, string>;
  /** types that are asyncio's pure-Python Task or derive from it (`isPyTask`) */
  pyTaskTypes: Map<Address, boolean>;
  /** event loop → the threading ident of the thread running it (its `_thread_id`), null when not running or unreadable; with when it was read */
  loopThreads: Map<Address, { ident: string | null; at: number }>;
}

interface Registry {
  at: number;
  interp: Address;
  asyncio: boolean;
  /** the set objects: a WeakSet's `data` (members are weakrefs) or `_eager_tasks` (members are tasks) */
  sets: { set: Address; weak: boolean }[];
  setType: Address;
}

const REGISTRY_REFRESH_MS = 1000;

/**
 * A task as last read. Outer coroutines of a chain only move when control comes back to them,
 * which needs the innermost one to resume: while the task's type, state, name, coroutine and
 * waiter and the innermost coroutine's position (frame and instruction) are the same, so is
 * the whole task, and its last `AsyncTask` object is given again.
 */
interface TaskMemo {
  type: Address;
  stateWord: number;
  nameObj: Address;
  coro: Address;
  waiter: Address;
  /** the waiter is a task: its name is looked up among this read's tasks */
  waiterIsTask: boolean;
  /** the read that last gave it: memos of tasks not read for a while are dropped */
  seen: number;
  /** per coroutine of the chain, outermost first: its address and position (positionMark), four numbers each */
  marks: number[];
  task: AsyncTask;
}

export function newAsyncReadState(): AsyncReadState {
  return { staticTypes: new Map(), hints: new Map(), typeNames: new Map(), taskTypes: new Map(), plan: [], pages: undefined, tableBuf: new Uint8Array(0), chains: new Map(), registry: undefined, dummy: 0, none: 0, coroKinds: new Map(), pyTaskTypes: new Map(), loopThreads: new Map(), turnPlans: new Map(), turnStride: 1, reads: 0 };
}

/**
 * Every task in the registry of the interpreter at `interpAddress`. Throws on unreadable
 * memory (the caller decides); an interpreter without asyncio gives `asyncio: false`.
 *
 * Made to be called every tick on thousands of tasks: the pages the last call read are
 * fetched together first, and a task whose fields and innermost position did not change costs
 * three small reads (its weakref, itself, its innermost coroutine) and gives the same object.
 */
export function readAsyncTasks(mem: ProcessMemory, layout: Layout, interpAddress: Address, minor: number, opts: { max?: number; codeCache?: CodeCache; state?: AsyncReadState; stride?: number; asyncioDebug?: AsyncioDebugOffsets | null } = {}): AsyncTasks {
  const stride = Math.max(1, Math.floor(opts.stride ?? 1));
  const out: AsyncTasks = { asyncio: false, tasks: [], unsupported: 0, skipped: 0, torn: 0, stride, registered: 0 };
  // 3.14+: the task lists and fields from _asyncio's own table (null: no _asyncio loaded yet)
  const v314 = minor >= 14;
  const D = v314 ? opts.asyncioDebug : undefined;
  if (v314 && D === null) return out;
  const off = v314 ? (D !== undefined && D !== null ? offsets314(D, layout) : undefined) : OFFSETS[minor];
  if (!off) {
    out.unreadable =
      minor > 14 || minor < 8
        ? `pylens reads asyncio tasks on CPython 3.8–3.14; this is 3.${minor}`
        : D === undefined
          ? `asyncio tasks on 3.${minor} are read through _asyncio's _Py_AsyncioModuleDebugOffsets (section .AsyncioDebug), which were not found`
          : `the Python 3.${minor} layout lacks the coroutine and frame fields the task reader needs (3.14 layouts come from the target's _Py_DebugOffsets)`;
    return out;
  }
  if (interpAddress === 0 || (!v314 && !hasObjectLayout(layout))) return out;
  const max = opts.max ?? 10_000;
  const state = opts.state ?? newAsyncReadState();
  const now = ++state.reads;
  // with a stride, this read takes the tasks whose turn it is: those whose address hashes to it
  const turn = now % stride;
  if (stride !== state.turnStride) {
    state.turnPlans.clear();
    state.turnStride = stride;
  }
  const plan = stride === 1 ? state.plan : (state.turnPlans.get(turn) ?? []);
  if (state.pages === undefined && mem instanceof ProcMemory) state.pages = mem.newPagePool(PAGE_SIZE);
  const m = new PageCacheMemory(mem, state.pages);
  if (plan.length > 0) m.prefetch(plan);
  // 3.8–3.13: dicts, instance attributes and the registry sets through ObjectReader; 3.14: none needed
  const or = !v314 && hasObjectLayout(layout) ? new ObjectReader(m, layout, { staticTypes: state.staticTypes, hints: state.hints }) : undefined;
  const r: TaskReader = or ?? new Reader314(m, layout, state.typeNames);
  const typeName = (type: Address): string => {
    let n = state.typeNames.get(type);
    if (n === undefined) state.typeNames.set(type, (n = r.typeName(type)));
    return n;
  };
  // code objects: the caller's cache when it keeps one (the sampler's, flushed as it flushes)
  const cache: CodeCache = opts.codeCache ?? new Map();
  const reg = or ? registry(or, m, layout, minor, interpAddress, state) : undefined;
  if (reg && !reg.asyncio) return out;
  out.asyncio = true;
  const OB_TYPE = layout.object.ob_type;
  // the tasks of every registry set; those from `_eager_tasks` (last) from eagerFrom on
  const found: Address[] = [];
  let eagerFrom = -1;
  // 3.14: every thread's task list and the interpreter's; the running loop of each thread
  const loopIdents = new Map<Address, string>();
  if (D !== undefined && D !== null) out.registered += listTasks314(m, layout, D, interpAddress, stride, turn, max, found, loopIdents);
  for (const { set, weak } of reg?.sets ?? []) {
    if (!weak) eagerFrom = found.length;
    const st = setTable(m, set, 1 << 24, state);
    if (st === null) continue;
    const { d, mask } = st;
    for (let i = 0; i <= mask && found.length <= max; i++) {
      const key = u64(d, i * 16);
      if (key === 0 || key === state.dummy) continue;
      out.registered++;
      if (stride > 1 && turnOf(key, stride) !== turn) continue;
      try {
        if (!weak) {
          if (isDummy(key)) {
            out.registered--;
            continue;
          }
          found.push(key);
          continue;
        }
        // a weakref: its type and wr_object, one read
        const v = m.viewFor(key, WR_OBJECT + 8);
        const o = m.at;
        const type = u64(v, o + OB_TYPE);
        if (type === 0) continue;
        if (state.dummy === 0 && typeName(type) === DUMMY_TYPE) {
          state.dummy = key;
          out.registered--;
          continue;
        }
        const obj = u64(v, o + WR_OBJECT);
        if (obj === 0 || obj === state.none) continue; // a dead weakref
        if (state.none === 0 && typeName(m.readPtr(obj + OB_TYPE)) === 'NoneType') {
          state.none = obj;
          continue;
        }
        found.push(obj);
      } catch (e) {
        if (!isTorn(e)) throw e;
        out.torn++;
      }
    }
  }
  function isDummy(key: Address): boolean {
    const type = m.readPtr(key + OB_TYPE);
    if (type === 0) return true;
    if (typeName(type) !== DUMMY_TYPE) return false;
    state.dummy = key;
    return true;
  }
  if (found.length > max) {
    out.skipped = found.length - max;
    found.length = max;
  }
  let waitingOnTasks = false;
  let gathering = false;
  for (let i = 0; i < found.length; i++) {
    const task = found[i]!;
    try {
      const t = readTask(task, eagerFrom >= 0 && i >= eagerFrom);
      if (t === undefined) continue;
      out.tasks.push(t);
    } catch (e) {
      if (!isTorn(e)) throw e;
      out.torn++;
    }
  }
  // a task awaiting another task: name it ("awaited by", seen from the parent), as last read
  if (waitingOnTasks) {
    for (const t of out.tasks) {
      const memo = state.chains.get(t.address)!;
      const child = memo.waiterIsTask ? state.chains.get(memo.waiter)?.task : undefined;
      if (child !== undefined) {
        t.awaitsTask = child.name;
        // not enumerable: JSON output names the task (awaitsTask) without nesting it
        Object.defineProperty(t, 'awaits', { value: child, enumerable: false, configurable: true, writable: true });
      } else {
        delete t.awaitsTask;
        delete t.awaits;
      }
    }
  }
  // a task waiting on a gather or a TaskGroup: its children, the tasks by name (as last read)
  if (gathering && or) {
    for (const t of out.tasks) {
      const memo = state.chains.get(t.address)!;
      try {
        let c: AsyncTask['children'];
        if (t.waitsOn === '_GatheringFuture') c = gathered(memo.waiter);
        else if (t.stack[0]?.qualname === 'TaskGroup.__aexit__' && minor >= 11 && memo.marks.length >= 4) c = grouped(memo.marks[memo.marks.length - 4]!);
        if (c !== undefined) t.children = c;
      } catch (e) {
        if (!isTorn(e)) throw e;
      }
    }
  }
  // forget the tasks not read for two turns: gone (their addresses will be reused)
  if (now % 64 === 0) for (const [a, memo] of state.chains) if (now - memo.seen > 2 * stride + 64) state.chains.delete(a);
  if (stride === 1) state.plan = m.allTouched();
  else state.turnPlans.set(turn, m.allTouched());
  return out;

  /**
   * A task as it is now: given again when nothing moved (TaskMemo), else read afresh and
   * checked — a task finishing while read frees its coroutines and future, whose memory is
   * reused at once, so a read that does not hold together is read again, then counted torn.
   */
  function readTask(task: Address, eager: boolean): AsyncTask | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      const t = readTaskOnce(task, eager, attempt === 0);
      if (t !== null) return t;
    }
    out.torn++;
    return undefined;
  }
  function readTaskOnce(task: Address, eager: boolean, useMemo: boolean): AsyncTask | undefined | null {
    // the fields, one read (TaskOffsets are in ascending order up to `name`)
    const v = m.viewFor(task, off!.name + 8);
    const o = m.at;
    const type = u64(v, o + OB_TYPE);
    let isTask = state.taskTypes.get(type);
    if (isTask === undefined) state.taskTypes.set(type, (isTask = isCTask(r, type)));
    if (!isTask && !or) {
      out.unsupported++;
      return undefined;
    }
    let stateWord: number;
    let nameObj: Address;
    let coro: Address;
    let waiter: Address;
    let loop = 0;
    if (isTask) {
      loop = u64(v, o + FUT_LOOP);
      stateWord = v.getUint32(o + off!.state, true);
      nameObj = u64(v, o + off!.name);
      coro = u64(v, o + off!.coro);
      waiter = u64(v, o + off!.futWaiter);
    } else {
      // asyncio's pure-Python Task (no _asyncio module), or a class deriving from it: its attributes
      let py = state.pyTaskTypes.get(type);
      if (py === undefined) state.pyTaskTypes.set(type, (py = isPyTask(or!, type, task)));
      if (!py) {
        out.unsupported++;
        return undefined;
      }
      const f = pyTaskFields(task);
      ({ stateWord, nameObj, coro, waiter } = f);
      loop = or!.instanceAttr(task, '_loop');
    }
    const memo = useMemo ? state.chains.get(task) : undefined;
    if (memo !== undefined && memo.type === type && memo.coro === coro && memo.waiter === waiter && memo.nameObj === nameObj && memo.stateWord === stateWord && memo.task.eager === eager) {
      if (unmoved(m, layout, minor, memo.marks)) {
        if (memo.waiterIsTask) waitingOnTasks = true;
        if (memo.task.children !== undefined) gathering = true;
        memo.seen = now;
        setLoopThread(memo.task, loop);
        return memo.task;
      }
    }
    let name: string | null;
    const last = state.chains.get(task);
    if (last !== undefined && last.nameObj === nameObj && last.type === type) name = last.task.name;
    else {
      name = nameObj ? r.readStr(nameObj, 200) : null;
      if (name === null && nameObj) {
        const n = r.readInt(nameObj);
        name = n !== null ? `Task-${n}` : null;
      }
    }
    let coroutine: string | null = null;
    if (last !== undefined && last.coro === coro && last.type === type) coroutine = last.task.coroutine;
    else if (coro !== 0) {
      const ct = m.readPtr(coro + OB_TYPE);
      coroutine = coroKind(ct) === 'coroutine' ? r.readStr(m.readPtr(coro + off!.coroQualname), 300) : typeName(ct);
    }
    let waiterType = 0;
    if (waiter !== 0) waiterType = m.readPtr(waiter + OB_TYPE);
    const waiterIsTask = waiter !== 0 && ((state.taskTypes.get(waiterType) ?? isCTaskCached(waiterType)) || state.pyTaskTypes.get(waiterType) === true);
    if (waiterIsTask) waitingOnTasks = true;
    let stack: Frame[] = [];
    let marks: number[] = [];
    if (coro !== 0) {
      const chain = awaitChain(m, layout, minor, coro, cache, coroKind);
      if (chain === null) return null;
      stack = chain.frames;
      marks = chain.marks;
      // the chain ends at what the task waits on: a FutureIter of its waiter
      if (chain.end !== 0 && waiter !== 0 && typeName(m.readPtr(chain.end + OB_TYPE)) === '_asyncio.FutureIter' && m.readPtr(chain.end + FUTURE_ITER_FUTURE) !== waiter) return null;
      // its outermost frame is the task's coroutine
      if (coroutine !== null && stack.length > 0 && coroKind(m.readPtr(coro + OB_TYPE)) === 'coroutine' && !coroutine.endsWith(stack.at(-1)!.name)) return null;
    }
    // and the task did not change meanwhile
    if (isTask ? m.readPtr(task + off!.coro) !== coro || m.readPtr(task + off!.futWaiter) !== waiter : pyTaskFields(task).waiter !== waiter) return null;
    const t: AsyncTask = {
      address: task,
      name: name ?? '?',
      state: STATES[stateWord] ?? 'pending',
      coroutine,
      waitsOn: waiter === 0 ? null : typeName(waiterType),
      eager,
      stack,
      running: coro !== 0 && executing(m, layout, minor, coro),
    };
    setLoopThread(t, loop);
    if (t.waitsOn === '_GatheringFuture' || t.stack[0]?.qualname === 'TaskGroup.__aexit__') gathering = true;
    state.chains.set(task, { type, stateWord, nameObj, coro, waiter, waiterIsTask, seen: now, marks, task: t });
    return t;
  }
  /** a pure-Python task's fields from its attributes (_state, _name, _coro, _fut_waiter; None as 0; no instance _state: pending) */
  function pyTaskFields(task: Address): { stateWord: number; nameObj: Address; coro: Address; waiter: Address } {
    const attr = (name: string) => {
      const a = or!.instanceAttr(task, name);
      return a === 0 || a === state.none || or!.typeOf(a).info.name === 'NoneType' ? 0 : a;
    };
    const st = attr('_state');
    const word = st === 0 ? 0 : PY_STATES.indexOf(r.readStr(st, 16) ?? '');
    return { stateWord: Math.max(0, word), nameObj: attr('_name'), coro: attr('_coro'), waiter: attr('_fut_waiter') };
  }
  /** the thread running the task's loop: the loop's `_thread_id`, re-read once a second per loop */
  function setLoopThread(t: AsyncTask, loop: Address): void {
    if (loop === 0) return;
    if (!or) {
      // 3.14: the thread whose running loop it is (read with the task lists)
      const ident = loopIdents.get(loop);
      if (ident !== undefined) t.loopThread = ident;
      else delete t.loopThread;
      return;
    }
    const nowMs = performance.now();
    let e = state.loopThreads.get(loop);
    if (e === undefined || nowMs - e.at > 1000) {
      let ident: string | null = null;
      try {
        const id = or.instanceAttr(loop, '_thread_id');
        const n = id === 0 ? null : or.readInt(id);
        ident = n === null ? null : String(n);
      } catch (err) {
        if (!isTorn(err)) throw err;
      }
      if (state.loopThreads.size > 256) state.loopThreads.clear();
      state.loopThreads.set(loop, (e = { ident, at: nowMs }));
    }
    if (e.ident !== null) t.loopThread = e.ident;
    else delete t.loopThread;
  }
  /** the tasks of a TaskGroup waiting in `__aexit__` (3.11+): its frame's first local is the group */
  function grouped(aexit: Address): AsyncTask['children'] {
    const self = m.readPtr(aexit + CR_IFRAME[minor]! + layout.frame.localsplus!);
    if (self === 0) return undefined;
    const set = or!.instanceAttr(self, '_tasks');
    if (set === 0 || !or!.isBuiltin(set, 'set')) return undefined;
    const st = setTable(m, set, 1 << 20, state);
    if (st === null) return undefined;
    const tasks: string[] = [];
    let count = 0;
    for (let i = 0; i <= st.mask; i++) {
      const key = u64(st.d, i * 16);
      if (key === 0 || key === state.dummy) continue;
      const memo = state.chains.get(key);
      if (memo === undefined) continue; // the dummy, or a task not read yet
      count++;
      if (tasks.length < 64) tasks.push(memo.task.name);
    }
    return { kind: 'TaskGroup', count, tasks };
  }
  /** what a `_GatheringFuture` gathers (its `_children` list): how many, and which tasks by name */
  function gathered(fut: Address): AsyncTask['children'] {
    const list = or!.instanceAttr(fut, '_children');
    if (list === 0 || !or!.isBuiltin(list, 'list')) return undefined;
    const n = Number(m.readU64(list + 16)); // ob_size
    if (n < 0 || n > 100_000) return undefined;
    const items = m.readPtr(list + 24); // ob_item
    const tasks: string[] = [];
    for (let i = 0; i < Math.min(n, 64); i++) {
      const child = m.readPtr(items + 8 * i);
      const memo = state.chains.get(child);
      if (memo !== undefined) tasks.push(memo.task.name);
    }
    return { kind: 'gather', count: n, tasks };
  }
  function isCTaskCached(type: Address): boolean {
    const is = isCTask(r, type);
    state.taskTypes.set(type, is);
    return is;
  }
  function coroKind(type: Address): string {
    let k = state.coroKinds.get(type);
    if (k === undefined) {
      const n = typeName(type);
      state.coroKinds.set(type, (k = n === 'coroutine' || n === 'generator' ? n : ''));
    }
    return k;
  }
}

/** the most tasks one list is followed for (a list that does not end there is torn or not a list) */
const MAX_LIST_TASKS = 1 << 17;

/**
 * 3.14+: the tasks of the interpreter at `interp`, from each thread state's task list and the
 * interpreter's (tasks of threads that are gone): `struct llist_node` rings through each task's
 * `task_node`. Pushes this turn's tasks (of `stride`, as `turnOf` says) onto `found`, up to
 * `max` + 1, and each thread's running loop → its threading ident (`thread_id`) onto
 * `loops`; returns how many tasks the lists hold.
 */
function listTasks314(m: PageCacheMemory, layout: Layout, D: AsyncioDebugOffsets, interp: Address, stride: number, turn: number, max: number, found: Address[], loops: Map<Address, string>): number {
  const heads: Address[] = [];
  let ts = m.readPtr(interp + layout.interp.threads_head);
  for (let n = 0; ts !== 0 && n < 4096; n++) {
    heads.push(ts + D.tstate.tasksHead);
    const loop = untagExecutable(m.readU64(ts + D.tstate.runningLoop), 7);
    if (loop !== 0) loops.set(loop, m.readU64(ts + layout.tstate.thread_id).toString());
    ts = m.readPtr(ts + layout.tstate.next);
  }
  heads.push(interp + D.interp.tasksHead);
  let registered = 0;
  for (const head of heads) {
    let node = m.readPtr(head);
    // (a zeroed head is a list not set up yet: no tasks)
    for (let k = 0; node !== head && !(k === 0 && node === 0); k++) {
      if (node === 0 || k >= MAX_LIST_TASKS) throw new Implausible(`the task list at 0x${head.toString(16)} does not come back to its head`); // torn: read again
      registered++;
      const task = node - D.task.node;
      if (found.length <= max && (stride === 1 || turnOf(task, stride) === turn)) found.push(task);
      node = m.readPtr(node);
    }
  }
  return registered;
}


/**
 * A set object's hash table in one read (Objects/setobject.c: `mask` at +32, `table` at +40,
 * entries {key, hash} of 16 bytes), or null when the mask is not a plausible one (2^k − 1,
 * at least 7, at most `maxMask`).
 */
function setTable(m: PageCacheMemory, set: Address, maxMask: number, state: AsyncReadState): { d: DataView; mask: number } | null {
  const hv = m.viewFor(set + SET_MASK, 16);
  const ho = m.at;
  const mask = Number(hv.getBigUint64(ho, true));
  if (mask < 7 || mask > maxMask || ((mask + 1) & mask) !== 0) return null;
  // the table's bytes (32 KiB for 1,000 tasks) in a buffer kept from read to read: each use
  // takes its keys before the next
  const len = (mask + 1) * 16;
  if (state.tableBuf.length < len) state.tableBuf = new Uint8Array(Math.max(len, 2 * state.tableBuf.length));
  const bytes = m.readInto(state.tableBuf, Number(hv.getBigUint64(ho + SET_TABLE - SET_MASK, true)), len);
  return { d: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), mask };
}

/** a little-endian word below 2^53 (an address) */
function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 4294967296;
}

/**
 * which turn of `stride` the weakref (or task) at `addr` is read on: its 1 KiB block hashed, so
 * that a turn's objects share pages (fewer to fetch) while turns stay about the same size
 */
function turnOf(addr: Address, stride: number): number {
  let h = Math.imul(Math.floor(addr / 1024) >>> 0, 0x9e3779b1);
  h ^= h >>> 15;
  return (Math.imul(h, 0x85ebca6b) >>> 0) % stride;
}

/**
 * Where the registry sets are: `asyncio.tasks` in sys.modules, then its `_all_tasks` WeakSet's
 * `data` (3.8–3.11), or `_scheduled_tasks`' `data` and `_eager_tasks` (3.12+). Kept for
 * REGISTRY_REFRESH_MS while each set object still has the set type.
 */
function registry(r: ObjectReader, m: ProcessMemory, layout: Layout, minor: number, interp: Address, state: AsyncReadState): Registry {
  const now = performance.now();
  const last = state.registry;
  // (a process without asyncio yet is looked at again sooner: it may be starting up)
  if (last !== undefined && last.interp === interp && now - last.at < (last.asyncio ? REGISTRY_REFRESH_MS : REGISTRY_REFRESH_MS / 10)) {
    if (!last.asyncio) return last;
    if (last.sets.every(({ set }) => m.readPtr(set + layout.object.ob_type) === last.setType)) return last;
  }
  const reg: Registry = { at: now, interp, asyncio: false, sets: [], setType: 0 };
  state.registry = reg;
  const modules = m.readPtr(interp + layout.interp.modules);
  if (modules === 0) return reg;
  const mod = r.dictGetStr(modules, 'asyncio.tasks');
  if (mod === 0 || !r.isBuiltin(mod, 'module')) return reg;
  reg.asyncio = true;
  const md = m.readPtr(mod + layout.module!.md_dict);
  for (const name of minor >= 12 ? ['_scheduled_tasks'] : ['_all_tasks']) {
    const ws = r.dictGetStr(md, name);
    if (ws === 0) continue;
    const data = r.instanceAttr(ws, 'data');
    if (data !== 0 && r.isBuiltin(data, 'set')) reg.sets.push({ set: data, weak: true });
  }
  if (minor >= 12) {
    const eager = r.dictGetStr(md, '_eager_tasks');
    if (eager !== 0 && r.isBuiltin(eager, 'set')) reg.sets.push({ set: eager, weak: false });
  }
  if (reg.sets.length > 0) reg.setType = m.readPtr(reg.sets[0]!.set + layout.object.ob_type);
  return reg;
}

/** `_asyncio.Task` or a class deriving from it (tp_base chain, at most 16 deep) */
function isCTask(r: TaskReader, type: Address): boolean {
  for (let t = type, i = 0; t !== 0 && i < 16; i++) {
    if (r.typeName(t) === '_asyncio.Task') return true;
    t = r.mem.readPtr(t + TP_BASE);
  }
  return false;
}

/** futures.py's state strings, in the order of STATES */
const PY_STATES = ['PENDING', 'CANCELLED', 'FINISHED'];

/**
 * asyncio's pure-Python `Task` (a class named Task in its tp_base chain, at most 16 deep)
 * whose instance has the attributes a task's __init__ sets (`_coro`, `_fut_waiter`; `_state`
 * stays the class's 'PENDING' until the task is done).
 */
function isPyTask(r: ObjectReader, type: Address, obj: Address): boolean {
  let named = false;
  for (let t = type, i = 0; t !== 0 && i < 16 && !named; i++) {
    named = r.typeName(t) === 'Task';
    t = r.mem.readPtr(t + TP_BASE);
  }
  return named && r.instanceAttr(obj, '_coro') !== 0 && r.instanceAttr(obj, '_fut_waiter') !== 0;
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
function coroFrame(mem: PageCacheMemory, layout: Layout, minor: number, coro: Address): Address {
  return minor <= 10 ? mem.readPtr(coro + CR_FRAME_PTR) : coro + iframeAt(layout, minor);
}

/** where a coroutine's own frame (gi_iframe) is in the object, 3.11+ (3.14+: from the layout) */
function iframeAt(layout: Layout, minor: number): number {
  return minor >= 14 ? layout.gen!.gi_iframe : CR_IFRAME[minor]!;
}
/** where its frame state (int8) is, 3.11+ */
function frameStateAt(layout: Layout, minor: number): number {
  return minor >= 14 ? layout.gen!.gi_frame_state : CR_FRAME_STATE[minor]!;
}

/**
 * What a suspended coroutine awaits (CPython's `_PyGen_yf`, per version: docs/asyncio/facts.md
 * §5), or 0: running, not started, finished, or suspended on a plain yield.
 */
function awaited(mem: PageCacheMemory, layout: Layout, minor: number, coro: Address): Address {
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
      if (mem.readU8(data + lasti + 2) !== YIELD_FROM) return 0;
      return mem.readPtr(top - 8);
    }
    if (mem.readU8(data + (lasti + 1) * 2) !== YIELD_FROM) return 0;
    const depth = mem.readI32(f + F_STACKDEPTH_310);
    if (depth < 1) return 0;
    return mem.readPtr(mem.readPtr(f + F_VALUESTACK_310) + 8 * (depth - 1));
  }
  const frame = coro + iframeAt(layout, minor);
  const state = (mem.readU8(coro + frameStateAt(layout, minor)) << 24) >> 24; // int8
  if (minor >= 14) {
    // FRAME_SUSPENDED_YIELD_FROM, in a frame the coroutine owns: what it awaits is the top of
    // its value stack, one tagged _PyStackRef below `stackpointer`
    if (state !== -1) return 0;
    if (mem.readU8(frame + layout.frame.owner!) !== layout.frame_owner!.generator) return 0;
    const sp = untagExecutable(mem.readU64(frame + layout.frame.stackpointer!), 7);
    if (sp <= frame) return 0;
    return untagExecutable(mem.readU64(sp - 8), layout.frame.executable_tag_bits ?? 3);
  }
  if (minor >= 13) {
    if (state !== -1) return 0; // FRAME_SUSPENDED_YIELD_FROM
  } else {
    if (state === -2 || state > 3) return 0; // created, cleared
    const prev = mem.readPtr(frame + layout.frame.instr_ptr!);
    if (!RESUME_OPS[minor]!.has(mem.readU8(prev + 2)) || mem.readU8(prev + 3) < 2) return 0;
  }
  const stacktop = mem.readI32(frame + IFRAME_STACKTOP);
  if (stacktop < 1) return 0;
  return mem.readPtr(frame + layout.frame.localsplus! + 8 * (stacktop - 1));
}

/** FutureObj's loop (Modules/_asynciomodule.c FutureObj_HEAD: the object head, then fut_loop), 3.8–3.13 */
const FUT_LOOP = 16;
/** FutureIter.future (Modules/_asynciomodule.c: the head, then the future) */
const FUTURE_ITER_FUTURE = 16;
/** PyBytesObject.ob_sval */
const BYTES_DATA = 32;
/** PyFrameObject.f_stacktop, 3.8–3.9 */
const F_STACKTOP_39 = 72;
/** PyFrameObject.f_valuestack / f_stackdepth, 3.10 */
const F_VALUESTACK_310 = 64;
const F_STACKDEPTH_310 = 80;
/** _PyInterpreterFrame.stacktop (int), 3.11–3.13 */
const IFRAME_STACKTOP = 64;

/**
 * A task's await chain from its coroutine inwards, innermost first (AsyncTask.stack), each
 * coroutine's position (`unmoved`), and what the innermost awaits (0: nothing); null when the
 * chain does not hold together (a cycle, a finished coroutine inside it, too deep).
 */
function awaitChain(mem: PageCacheMemory, layout: Layout, minor: number, coro: Address, cache: CodeCache, kindOf: (type: Address) => string): { frames: Frame[]; marks: number[]; end: Address } | null {
  const outward: Frame[] = [];
  const marks: number[] = [];
  let c = coro;
  for (let depth = 0; c !== 0; depth++) {
    if (depth >= MAX_AWAIT_DEPTH) return null;
    if (kindOf(mem.readPtr(c + layout.object.ob_type)) === '') break; // a FutureIter (awaiting a future), or something else awaitable
    const frame = coroFrame(mem, layout, minor, c);
    // a finished coroutine inside a chain, or one seen twice: memory reused under the read
    if (frame === 0) {
      if (depth === 0) break;
      return null;
    }
    for (let i = 0; i < marks.length; i += 4) if (marks[i] === c) return null;
    outward.push(detachedFrame(mem, layout, minor, frame, cache));
    positionMark(mem, layout, minor, c);
    marks.push(c, markA, markB, markC);
    c = awaited(mem, layout, minor, c);
  }
  return { frames: outward.reverse(), marks, end: c };
}

/**
 * Whether every coroutine of a chain as last read (`marks`) still stands where it stood. The
 * innermost alone does not prove it: a coroutine that finished and one created after it can
 * share an address (pymalloc), and on 3.8–3.10 a frame (the code object's zombie frame) and
 * instruction — an outer coroutine whose callee changed shows it by its own position.
 */
function unmoved(mem: PageCacheMemory, layout: Layout, minor: number, marks: number[]): boolean {
  for (let i = 0; i < marks.length; i += 4) {
    positionMark(mem, layout, minor, marks[i]!);
    if (markA !== marks[i + 1] || markB !== marks[i + 2] || markC !== marks[i + 3]) return false;
  }
  return true;
}

/** Whether a coroutine's frame is executing (FRAME_EXECUTING, or 3.10's unwinding; 3.8–3.9 f_executing). */
function executing(mem: PageCacheMemory, layout: Layout, minor: number, coro: Address): boolean {
  if (minor >= 11) return mem.readU8(coro + frameStateAt(layout, minor)) === 0;
  const f = mem.readPtr(coro + CR_FRAME_PTR);
  if (f === 0) return false;
  if (minor === 10) {
    const at = layout.frame.state;
    if (at == null) return false;
    const st = (mem.readU8(f + at) << 24) >> 24;
    return st === 0 || st === 2;
  }
  const at = layout.frame.executing;
  return at != null && mem.readU8(f + at) !== 0;
}

/** `positionMark`'s answer (three numbers, no allocation on the hot path) */
let markA = 0;
let markB = 0;
let markC = 0;

/**
 * Where a coroutine stands, into markA/B/C: its frame, instruction and code object (3.8–3.10:
 * frames are reused from a free list and per-code zombie slots, so the code tells one
 * coroutine's frame from another's), or frame state, instruction and code (3.11+); 0s for none.
 */
function positionMark(mem: PageCacheMemory, layout: Layout, minor: number, coro: Address): void {
  markA = markB = markC = 0;
  if (coro === 0) return;
  if (minor <= 10) {
    const f = mem.readPtr(coro + CR_FRAME_PTR);
    markA = f;
    if (f !== 0) {
      markB = mem.readI32(f + layout.frame.lasti!);
      markC = mem.readPtr(f + layout.frame.code);
    }
    return;
  }
  const frame = coro + iframeAt(layout, minor);
  markA = mem.readU8(coro + frameStateAt(layout, minor));
  markB = mem.readPtr(frame + layout.frame.instr_ptr!);
  markC = mem.readPtr(frame + layout.frame.code);
}
