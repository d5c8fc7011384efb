/**
 * CPython 3.14+: `_Py_AsyncioModuleDebugOffsets`, the table `_asyncio` exports for readers
 * outside the process (ELF section `.AsyncioDebug` of the `_asyncio` extension module, or of
 * libpython when the module is built in). Thirteen u64: the task object's size and fields,
 * and where the per-interpreter and per-thread task lists (`struct llist_node` heads) are.
 * Read from the mapped file's section bytes (initialised data: the file holds the values),
 * validated before use, like `_Py_DebugOffsets` (debug-offsets.ts).
 */
import type { Layout } from './layouts/types.ts';
import { binaryFor, findLibpython, readMaps, type MapRecord, type PythonBinary } from './maps.ts';
import type { Address } from './memory.ts';
import { readBinaryElf } from './runtime.ts';

export interface AsyncioDebugOffsets {
  task: {
    /** sizeof(TaskObj) */
    size: number;
    name: number;
    awaitedBy: number;
    /** char fut_is_task; `fut_state` (an int enum) is the field before it */
    isTask: number;
    awaitedByIsSet: number;
    /** PyObject *task_coro; `task_fut_waiter` is the field before it */
    coro: number;
    /** struct llist_node task_node: {next, prev}, linked into a thread's (or the interpreter's) list */
    node: number;
  };
  interp: { size: number; tasksHead: number };
  tstate: { size: number; runningLoop: number; runningTask: number; tasksHead: number };
}

/** the table's size: 7 + 2 + 4 u64 */
export const ASYNCIO_DEBUG_BYTES = 13 * 8;

export class AsyncioDebugError extends Error {
  readonly where: string;
  constructor(where: string, detail: string) {
    super(`${where}: the _Py_AsyncioModuleDebugOffsets table does not hold together: ${detail} (a build pylens does not know; asyncio tasks are not read)`);
    this.name = 'AsyncioDebugError';
    this.where = where;
  }
}

/**
 * The table from its bytes, checked: sizes in range, every field inside its struct, the
 * fields pylens derives from neighbours where they must be (fut_state 4 bytes before
 * fut_is_task, task_fut_waiter 8 before task_coro), and the struct sizes agreeing with the
 * interpreter's own layout where both say (PyInterpreterState; _PyThreadStateImpl ⊇ PyThreadState).
 */
export function parseAsyncioDebugOffsets(bytes: Uint8Array, where: string, layout?: Layout): AsyncioDebugOffsets {
  if (bytes.length < ASYNCIO_DEBUG_BYTES) throw new AsyncioDebugError(where, `${bytes.length} bytes, not ${ASYNCIO_DEBUG_BYTES}`);
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w: number[] = [];
  for (let i = 0; i < 13; i++) {
    const v = d.getBigUint64(i * 8, true);
    if (v > 1n << 30n) throw new AsyncioDebugError(where, `word ${i} is ${v}`);
    w.push(Number(v));
  }
  const t: AsyncioDebugOffsets = {
    task: { size: w[0]!, name: w[1]!, awaitedBy: w[2]!, isTask: w[3]!, awaitedByIsSet: w[4]!, coro: w[5]!, node: w[6]! },
    interp: { size: w[7]!, tasksHead: w[8]! },
    tstate: { size: w[9]!, runningLoop: w[10]!, runningTask: w[11]!, tasksHead: w[12]! },
  };
  const bad = (detail: string) => new AsyncioDebugError(where, detail);
  const T = t.task;
  if (T.size < 64 || T.size > 4096) throw bad(`sizeof(TaskObj) ${T.size}`);
  const inside = (what: string, off: number, len: number, size: number, min = 16) => {
    if (off < min || off + len > size) throw bad(`${what} at ${off} is outside 16..${size - len}`);
  };
  for (const [k, len] of [['name', 8], ['awaitedBy', 8], ['coro', 8], ['node', 16], ['isTask', 1], ['awaitedByIsSet', 1]] as const) inside(`task ${k}`, T[k], len, T.size);
  // FutureObj_HEAD: the object head, fut_loop and ten more pointers, then fut_state and fut_is_task
  if (T.isTask < 24 + 4) throw bad(`fut_is_task at ${T.isTask} leaves no room for fut_loop and fut_state`);
  if (T.coro - 8 <= T.isTask) throw bad(`task_coro at ${T.coro} leaves no room for task_fut_waiter after fut_is_task at ${T.isTask}`);
  if (t.interp.size < 256 || t.interp.size > 64 << 20) throw bad(`sizeof(PyInterpreterState) ${t.interp.size}`);
  inside('interpreter asyncio_tasks_head', t.interp.tasksHead, 16, t.interp.size);
  if (t.tstate.size < 64 || t.tstate.size > 1 << 20) throw bad(`sizeof(_PyThreadStateImpl) ${t.tstate.size}`);
  for (const [k, len] of [['runningLoop', 8], ['runningTask', 8], ['tasksHead', 16]] as const) inside(`thread ${k}`, t.tstate[k], len, t.tstate.size);
  if (layout) {
    if (layout.interp.size !== t.interp.size) throw bad(`sizeof(PyInterpreterState) ${t.interp.size}, the interpreter's _Py_DebugOffsets say ${layout.interp.size}`);
    if (t.tstate.size < layout.tstate.size) throw bad(`sizeof(_PyThreadStateImpl) ${t.tstate.size} is less than sizeof(PyThreadState) ${layout.tstate.size}`);
  }
  return t;
}

/** `_asyncio.cpython-314-x86_64-linux-gnu.so` and the like */
const ASYNCIO_MODULE = /(?:^|\/)_asyncio[.-][^/]*\.so(?: \(deleted\))?$/;

/**
 * The mapped files that may hold `_asyncio`: its extension module (`_asyncio.cpython-3XY…so`)
 * first, then libpython (a build with the module built in).
 */
export function asyncioBinaries(maps: MapRecord[]): PythonBinary[] {
  const module = maps.find((m) => ASYNCIO_MODULE.test(m.path));
  return [module && binaryFor(maps, module.path, 'library', ASYNCIO_MODULE), findLibpython(maps)].filter((b) => b !== undefined);
}

/**
 * The target's table, read from the `.AsyncioDebug` section of the file mapped for `_asyncio`;
 * null when no mapped file has one (asyncio not imported yet, or built without it). Throws
 * AsyncioDebugError for a table that does not validate.
 */
export function findAsyncioDebugOffsets(pid: number, layout?: Layout): { offsets: AsyncioDebugOffsets; file: string; address: Address } | null {
  for (const bin of asyncioBinaries(readMaps(pid))) {
    let elf;
    try {
      elf = readBinaryElf(pid, bin);
    } catch {
      continue; // unreadable here: another candidate may do
    }
    const sec = elf.section('.AsyncioDebug');
    if (!sec) continue;
    const where = `${bin.path.replace(/ \(deleted\)$/, '')} section .AsyncioDebug`;
    return { offsets: parseAsyncioDebugOffsets(elf.sectionBytes(sec), where, layout), file: bin.path, address: sec.addr };
  }
  return null;
}
