/**
 * CPython 3.13+ describes its own struct layout to out-of-process tools: `_Py_DebugOffsets`,
 * the first member of `_PyRuntime` (docs/cpython-internals.md §2). This file reads that
 * table out of the target, validates it, and turns it into the walker's `Layout`.
 *
 * Table format (Linux x86-64): `char cookie[8] = "xdebugpy"`, `u64 version`
 * (PY_VERSION_HEX), `u64 free_threaded`, then sections of `u64`s, most starting with the
 * struct's `size`. The list of sections and fields is fixed per minor version only:
 *
 * - 3.13: `Include/internal/pycore_runtime.h` (3.13 branch), 73 words = 584 bytes.
 * - 3.14: `Include/internal/pycore_debug_offsets.h` (3.14 branch), 95 words = 760 bytes:
 *   adds interpreter_state.threads_main / code_object_generation / tlbc_generation,
 *   interpreter_frame.stackpointer / tlbc_index, code_object.co_tlbc and the sections
 *   set_object, gen_object, llist_node (no size) and debugger_support (no size).
 *
 * Validation (`DebugOffsetsError` naming the table's address and the field): cookie,
 * version equal to the library's `Py_Version`, every section size inside a plausible
 * range, every offset below its section's size (cross-section fields against the struct
 * they point into), every `_PyRuntime` field after the table itself, and the constants the
 * table does not carry agreeing with the offsets it does carry.
 *
 * Constants the table does not carry (frame-owner enum, unicode state bits, struct sizes
 * that follow from the carried ones, `_co_firsttraceable`, the GIL struct's size, dict
 * internals) come from the generated 3.13 layout for 3.13 and from `CONSTANTS_314` below
 * (each cited to its 3.14 header) for 3.14.
 *
 * Free-threaded builds (`free_threaded` = 1) are refused: their object headers and
 * per-thread bytecode (`co_tlbc`) need a walker that does not exist yet.
 */
import { layoutFor } from './layouts/index.ts';
import { layout as generated313 } from './layouts/cpython-3.13.ts';
import type { Layout } from './layouts/types.ts';
import { ProcMemory, type Address, type ProcessMemory } from './memory.ts';
import {
  DebugOffsetsError,
  isSupported,
  readDebugOffsetsHeader,
  UnsupportedVersionError,
  type DebugOffsetsHeader,
  type PythonVersion,
} from './runtime.ts';

// ---- the table's shape per minor version ----------------------------------------------

/**
 * How a field is checked: `off` an offset inside its own section's struct (< size);
 * `size` a size no larger than the section's (unicode asciiobject_size);
 * `in:<section>` an offset inside another section's struct (< that section's size);
 * `small` an offset/size in a struct the table gives no size for (< SMALL_LIMIT);
 * `zero` must be 0 on a default (GIL) build (free-threaded-only fields).
 */
type Check = 'off' | 'size' | 'small' | 'zero' | `in:${string}`;
type FieldSpec = string | readonly [string, Check];
interface SectionSpec {
  name: string;
  /** plausible [min, max] of the section's `size`; absent: the section has no size word */
  size?: readonly [number, number];
  fields: readonly FieldSpec[];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const SMALL_LIMIT = 64 * KiB;

const OBJ: readonly [number, number] = [16, 4 * KiB];

/** 3.13: `struct _Py_DebugOffsets` in Include/internal/pycore_runtime.h (3.13 branch). */
const SECTIONS_313: readonly SectionSpec[] = [
  { name: 'runtime_state', size: [1 * KiB, 64 * MiB], fields: ['finalizing', 'interpreters_head'] },
  {
    name: 'interpreter_state',
    size: [1 * KiB, 64 * MiB],
    fields: [
      'id', 'next', 'threads_head', 'gc', 'imports_modules', 'sysdict', 'builtins', 'ceval_gil',
      'gil_runtime_state', ['gil_runtime_state_enabled', 'zero'], 'gil_runtime_state_locked', 'gil_runtime_state_holder',
    ],
  },
  { name: 'thread_state', size: [64, 1 * MiB], fields: ['prev', 'next', 'interp', 'current_frame', 'thread_id', 'native_thread_id', 'datastack_chunk', 'status'] },
  { name: 'interpreter_frame', size: [32, 4 * KiB], fields: ['previous', 'executable', 'instr_ptr', 'localsplus', 'owner'] },
  {
    name: 'code_object',
    size: [64, 4 * KiB],
    fields: ['filename', 'name', 'qualname', 'linetable', 'firstlineno', 'argcount', 'localsplusnames', 'localspluskinds', 'co_code_adaptive'],
  },
  { name: 'pyobject', size: [16, 64], fields: ['ob_type'] },
  { name: 'type_object', size: [128, 4 * KiB], fields: ['tp_name', 'tp_repr', 'tp_flags'] },
  { name: 'tuple_object', size: OBJ, fields: ['ob_item', 'ob_size'] },
  { name: 'list_object', size: OBJ, fields: ['ob_item', 'ob_size'] },
  { name: 'dict_object', size: OBJ, fields: ['ma_keys', 'ma_values'] },
  { name: 'float_object', size: OBJ, fields: ['ob_fval'] },
  { name: 'long_object', size: OBJ, fields: ['lv_tag', 'ob_digit'] },
  { name: 'bytes_object', size: OBJ, fields: ['ob_size', 'ob_sval'] },
  { name: 'unicode_object', size: OBJ, fields: ['state', 'length', ['asciiobject_size', 'size']] },
  { name: 'gc', size: [16, 1 * MiB], fields: ['collecting'] },
];

/** 3.14: `struct _Py_DebugOffsets` in Include/internal/pycore_debug_offsets.h (3.14 branch). */
const SECTIONS_314: readonly SectionSpec[] = [
  { name: 'runtime_state', size: [1 * KiB, 64 * MiB], fields: ['finalizing', 'interpreters_head'] },
  {
    name: 'interpreter_state',
    size: [1 * KiB, 64 * MiB],
    fields: [
      'id', 'next', 'threads_head', 'threads_main', 'gc', 'imports_modules', 'sysdict', 'builtins', 'ceval_gil',
      'gil_runtime_state', ['gil_runtime_state_enabled', 'zero'], 'gil_runtime_state_locked', 'gil_runtime_state_holder',
      'code_object_generation', ['tlbc_generation', 'zero'],
    ],
  },
  { name: 'thread_state', size: [64, 1 * MiB], fields: ['prev', 'next', 'interp', 'current_frame', 'thread_id', 'native_thread_id', 'datastack_chunk', 'status'] },
  {
    name: 'interpreter_frame',
    size: [32, 4 * KiB],
    fields: ['previous', 'executable', 'instr_ptr', 'localsplus', 'owner', 'stackpointer', ['tlbc_index', 'zero']],
  },
  {
    name: 'code_object',
    size: [64, 4 * KiB],
    fields: ['filename', 'name', 'qualname', 'linetable', 'firstlineno', 'argcount', 'localsplusnames', 'localspluskinds', 'co_code_adaptive', ['co_tlbc', 'zero']],
  },
  { name: 'pyobject', size: [16, 64], fields: ['ob_type'] },
  { name: 'type_object', size: [128, 4 * KiB], fields: ['tp_name', 'tp_repr', 'tp_flags'] },
  { name: 'tuple_object', size: OBJ, fields: ['ob_item', 'ob_size'] },
  { name: 'list_object', size: OBJ, fields: ['ob_item', 'ob_size'] },
  { name: 'set_object', size: OBJ, fields: ['used', 'table', 'mask'] },
  { name: 'dict_object', size: OBJ, fields: ['ma_keys', 'ma_values'] },
  { name: 'float_object', size: OBJ, fields: ['ob_fval'] },
  { name: 'long_object', size: OBJ, fields: ['lv_tag', 'ob_digit'] },
  { name: 'bytes_object', size: OBJ, fields: ['ob_size', 'ob_sval'] },
  { name: 'unicode_object', size: OBJ, fields: ['state', 'length', ['asciiobject_size', 'size']] },
  { name: 'gc', size: [16, 1 * MiB], fields: ['collecting'] },
  { name: 'gen_object', size: OBJ, fields: ['gi_name', 'gi_iframe', 'gi_frame_state'] },
  { name: 'llist_node', fields: [['next', 'small'], ['prev', 'small']] },
  {
    name: 'debugger_support',
    fields: [
      ['eval_breaker', 'in:thread_state'],
      ['remote_debugger_support', 'in:thread_state'],
      ['remote_debugging_enabled', 'in:interpreter_state'],
      ['debugger_pending_call', 'small'],
      ['debugger_script_path', 'small'],
      // MAX_SCRIPT_PATH_SIZE: a buffer size, not an offset
      ['debugger_script_path_size', 'small'],
    ],
  },
];

const HEADER_BYTES = 24;

function fieldName(f: FieldSpec): string {
  return typeof f === 'string' ? f : f[0];
}
function fieldCheck(f: FieldSpec): Check {
  return typeof f === 'string' ? 'off' : f[1];
}

/** Bytes of the table for a section list (header + one u64 per size word and field). */
export function tableBytes(sections: readonly SectionSpec[]): number {
  return HEADER_BYTES + 8 * sections.reduce((n, s) => n + (s.size ? 1 : 0) + s.fields.length, 0);
}

/** The section lists by minor version; a table of any other version cannot be parsed. */
const SECTIONS: ReadonlyMap<number, readonly SectionSpec[]> = new Map([
  [13, SECTIONS_313],
  [14, SECTIONS_314],
]);

/** Minor versions of 3.x whose `_Py_DebugOffsets` this file can read. */
export const DEBUG_OFFSETS_MINORS: readonly number[] = [...SECTIONS.keys()];

/** sizeof(_Py_DebugOffsets) of CPython 3.`minor` (584 for 3.13, 760 for 3.14), or undefined. */
export function debugOffsetsSize(minor: number): number | undefined {
  const s = SECTIONS.get(minor);
  return s ? tableBytes(s) : undefined;
}

// ---- reading and validating -----------------------------------------------------------

/** A parsed `_Py_DebugOffsets`: `sections[section][field]`, every value a byte count. */
export interface DebugOffsets {
  /** where the table is (= `_PyRuntime`) */
  address: Address;
  header: DebugOffsetsHeader;
  /** sizeof(_Py_DebugOffsets) for this version */
  bytes: number;
  sections: Record<string, Record<string, number>>;
}

/** `t.sections[section][field]`; a missing one is a DebugOffsetsError (a bug, or a table of another version). */
export function dbgField(t: DebugOffsets, section: string, field: string): number {
  const v = t.sections[section]?.[field];
  if (v === undefined) throw new DebugOffsetsError(t.address, `the ${t.header.version.text} table has no field ${section}.${field}`);
  return v;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Read and validate the whole `_Py_DebugOffsets` at `address` (the start of `_PyRuntime`).
 * `expected`: the library's version (`Py_Version`); the table's version must equal it.
 */
export function readDebugOffsets(mem: ProcessMemory, address: Address, expected?: PythonVersion): DebugOffsets {
  const header = readDebugOffsetsHeader(mem, address, expected);
  const v = header.version;
  const sections = v.major === 3 ? SECTIONS.get(v.minor) : undefined;
  if (!sections) {
    throw new DebugOffsetsError(
      address,
      `the table is for Python ${v.text}, an unsupported version: pylens reads _Py_DebugOffsets of ` +
        `${DEBUG_OFFSETS_MINORS.map((m) => `3.${m}`).join(' and ')} only (their section lists differ per minor version)`,
    );
  }
  if (header.freeThreaded) {
    throw new DebugOffsetsError(address, `free_threaded = 1: Python ${v.text} is a free-threaded (Py_GIL_DISABLED) build, which pylens cannot sample yet`);
  }
  const bytes = tableBytes(sections);
  const raw = mem.read(address, bytes);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: DebugOffsets = { address, header, bytes, sections: {} };
  let pos = HEADER_BYTES;
  const word = (name: string): number => {
    const at = pos;
    const x = dv.getBigUint64(at, true);
    pos += 8;
    if (x > BigInt(256 * MiB)) throw new DebugOffsetsError(address, `${name} = ${hex2(x)} is not a plausible offset or size (field at ${hex(address + at)})`);
    return Number(x);
  };
  const where = new Map<string, number>();
  for (const s of sections) {
    const sec: Record<string, number> = {};
    if (s.size) {
      where.set(`${s.name}.size`, address + pos);
      sec['size'] = word(`${s.name}.size`);
    }
    for (const f of s.fields) {
      const name = fieldName(f);
      where.set(`${s.name}.${name}`, address + pos);
      sec[name] = word(`${s.name}.${name}`);
    }
    out.sections[s.name] = sec;
  }
  validate(out, sections, where);
  return out;
}

function hex2(x: bigint): string {
  return `0x${x.toString(16)}`;
}

function validate(t: DebugOffsets, sections: readonly SectionSpec[], where: Map<string, number>): void {
  const fail = (key: string, why: string) => {
    const at = where.get(key);
    throw new DebugOffsetsError(t.address, `${key} ${why}${at !== undefined ? ` (field at ${hex(at)})` : ''}`);
  };
  for (const s of sections) {
    const sec = t.sections[s.name]!;
    if (s.size) {
      const [lo, hi] = s.size;
      if (sec['size']! < lo || sec['size']! > hi) fail(`${s.name}.size`, `= ${sec['size']} is not a plausible struct size (expected ${lo}..${hi})`);
    }
    for (const f of s.fields) {
      const name = fieldName(f);
      const value = sec[name]!;
      const key = `${s.name}.${name}`;
      const check = fieldCheck(f);
      if (check === 'off') {
        if (value >= sec['size']!) fail(key, `= ${value} is not inside the struct (${s.name}.size = ${sec['size']})`);
      } else if (check === 'size') {
        if (value > sec['size']! || value === 0) fail(key, `= ${value} is not a size within ${s.name}.size = ${sec['size']}`);
      } else if (check === 'small') {
        if (value >= SMALL_LIMIT) fail(key, `= ${value} is not plausible (limit ${SMALL_LIMIT})`);
      } else if (check === 'zero') {
        if (value !== 0) fail(key, `= ${value}, but only a free-threaded build has this field (must be 0 here)`);
      } else {
        const other = check.slice(3);
        const size = t.sections[other]?.['size'];
        if (size === undefined || value >= size) fail(key, `= ${value} is not inside ${other} (size ${size})`);
      }
    }
  }
  // _Py_DebugOffsets is the first member of _PyRuntimeState: every runtime field lies after it.
  for (const name of ['finalizing', 'interpreters_head']) {
    const v = t.sections['runtime_state']![name]!;
    if (v < t.bytes) fail(`runtime_state.${name}`, `= ${v} lies inside the ${t.bytes}-byte _Py_DebugOffsets at the start of _PyRuntime`);
  }
  // The GIL fields are offsets into the interpreter's embedded _gil (a struct _gil_runtime_state).
  const is = t.sections['interpreter_state']!;
  for (const name of ['gil_runtime_state_locked', 'gil_runtime_state_holder']) {
    if (is[name]! < is['gil_runtime_state']! || is[name]! >= is['gil_runtime_state']! + 1024) {
      fail(`interpreter_state.${name}`, `= ${is[name]} is not inside interpreter_state.gil_runtime_state (${is['gil_runtime_state']})`);
    }
  }
}

// ---- constants the table does not carry -----------------------------------------------

/** The part of a Layout that `_Py_DebugOffsets` does not describe, for one minor version. */
interface Constants {
  /** `_co_firsttraceable` (int) in PyCodeObject */
  firsttraceable: number;
  /** sizeof(struct _gil_runtime_state) */
  gilSize: number;
  /** sizeof(PyCompactUnicodeObject) (where a compact non-ASCII string's characters start) */
  unicodeCompactSize: number;
  /** PyUnicodeObject's data pointer (non-compact strings) */
  unicodeData: number;
  /** sizeof(PyVarObject) */
  varObjectSize: number;
  /** PyDictObject.ma_used */
  dictMaUsed: number;
  dictKeys: Layout['dict_keys'];
  frameOwner: NonNullable<Layout['frame_owner']>;
  /** low bits of f_executable to clear (a tagged _PyStackRef in 3.14) */
  executableTagBits: number;
}

/** 3.13: from the layout generated from 3.13.0's headers (plus the enum, which it does not hold). */
const CONSTANTS_313: Constants = {
  firsttraceable: generated313.code.firsttraceable!,
  gilSize: generated313.gil.size,
  unicodeCompactSize: generated313.unicode.compact_size,
  unicodeData: generated313.unicode.data,
  varObjectSize: generated313.var_object.size,
  dictMaUsed: generated313.dict.ma_used,
  dictKeys: generated313.dict_keys,
  // Include/internal/pycore_frame.h (3.13): enum _frameowner
  frameOwner: { thread: 0, generator: 1, frame_object: 2, interpreter: null, cstack: 3 },
  executableTagBits: 0,
};

/** 3.14 (default GIL build, Linux x86-64), written down from the 3.14 branch's headers. */
const CONSTANTS_314: Constants = {
  // Include/cpython/code.h: ... `Py_ssize_t _co_unique_id; int _co_firsttraceable; void *co_extra;
  // _PyCode_DEF_THREAD_LOCAL_BYTECODE() char co_code_adaptive[]` — the thread-local bytecode
  // pointer exists only with Py_GIL_DISABLED, so _co_firsttraceable = co_code_adaptive − 16
  // (int + 4 bytes padding, then the co_extra pointer). 3.14.0: co_code_adaptive 208 → 192.
  firsttraceable: 192,
  // Include/internal/pycore_gil.h: struct _gil_runtime_state { unsigned long interval;
  // PyThreadState *last_holder; int locked; unsigned long switch_number; PyCOND_T cond;
  // PyMUTEX_T mutex; PyCOND_T switch_cond; PyMUTEX_T switch_mutex; } (FORCE_SWITCHING is
  // defined by default): 8 + 8 + 8 + 8 + 48 + 40 + 48 + 40 = 208, as in 3.13.
  gilSize: 208,
  // Include/cpython/unicodeobject.h: PyCompactUnicodeObject = PyASCIIObject (40) +
  // Py_ssize_t utf8_length + char *utf8 = 56; PyUnicodeObject adds the data union at 56.
  // state bits (same header): interned 0–1, kind 2–4, compact 5, ascii 6 (default build).
  unicodeCompactSize: 56,
  unicodeData: 56,
  // Include/object.h: PyVarObject = PyObject (16) + Py_ssize_t ob_size.
  varObjectSize: 24,
  // Include/cpython/dictobject.h: PyObject_HEAD; Py_ssize_t ma_used; ...
  dictMaUsed: 16,
  // Include/internal/pycore_dict.h: struct _dictkeysobject { Py_ssize_t dk_refcnt;
  // uint8_t dk_log2_size; uint8_t dk_log2_index_bytes; uint8_t dk_kind; uint32_t dk_version;
  // Py_ssize_t dk_usable; Py_ssize_t dk_nentries; char dk_indices[]; };
  // PyDictKeyEntry { hash, key, value } = 24, PyDictUnicodeEntry { key, value } = 16.
  dictKeys: { dk_log2_size: 8, dk_log2_index_bytes: 9, dk_kind: 10, dk_nentries: 24, dk_indices: 32, entry_size: 24, unicode_entry_size: 16 },
  // Include/internal/pycore_interpframe_structs.h (3.14): enum _frameowner { THREAD 0,
  // GENERATOR 1, FRAME_OBJECT 2, INTERPRETER 3, CSTACK 4 } — owner ≥ INTERPRETER is an
  // entry/shim frame (_PyFrame_IsIncomplete in pycore_interpframe.h treats it as incomplete).
  frameOwner: { thread: 0, generator: 1, frame_object: 2, interpreter: 3, cstack: 4 },
  // Include/internal/pycore_interpframe_structs.h: `_PyStackRef f_executable`;
  // pycore_stackref.h: the object pointer is `bits & ~Py_TAG_BITS`, Py_TAG_BITS = 3.
  executableTagBits: 3,
};

const CONSTANTS: ReadonlyMap<number, Constants> = new Map([
  [13, CONSTANTS_313],
  [14, CONSTANTS_314],
]);

/**
 * The walker's Layout from a validated table: every field the table carries comes from it;
 * the rest from the per-version constants, which must agree with what follows from the
 * table (else DebugOffsetsError: a build whose layout differs from what the constants assume).
 */
export function layoutFromDebugOffsets(t: DebugOffsets): Layout {
  const v = t.header.version;
  const K = CONSTANTS.get(v.minor);
  if (v.major !== 3 || !K) throw new DebugOffsetsError(t.address, `no constants for Python ${v.text}`);
  const f = (s: string, name: string) => dbgField(t, s, name);
  const agree = (what: string, constant: number, fromTable: number, how: string) => {
    if (constant !== fromTable) {
      throw new DebugOffsetsError(t.address, `${what}: pylens assumes ${constant} for Python 3.${v.minor}, but the table implies ${fromTable} (${how})`);
    }
  };
  const codeAdaptive = f('code_object', 'co_code_adaptive');
  agree('code _co_firsttraceable', K.firsttraceable, codeAdaptive - 16, 'code_object.co_code_adaptive − 16');
  agree('sizeof(PyCompactUnicodeObject)', K.unicodeCompactSize, f('unicode_object', 'asciiobject_size') + 16, 'unicode_object.asciiobject_size + 16');
  agree('PyUnicodeObject data', K.unicodeData, f('unicode_object', 'size') - 8, 'unicode_object.size − 8');
  agree('sizeof(PyVarObject)', K.varObjectSize, f('tuple_object', 'ob_size') + 8, 'tuple_object.ob_size + 8');
  for (const s of ['list_object', 'bytes_object']) agree(`${s}.ob_size`, f('tuple_object', 'ob_size'), f(s, 'ob_size'), 'PyVarObject.ob_size is the same in every var object');
  agree('PyVarObject.ob_size', f('pyobject', 'size'), f('tuple_object', 'ob_size'), 'ob_size follows the PyObject header');

  const gil = f('interpreter_state', 'gil_runtime_state');
  const owner = K.frameOwner;
  const layout: Layout = {
    // 3.13: the generated layout's optional sections (dict/long/module internals) are
    // constants too; every field the table carries is overwritten below.
    ...(v.minor === 13 ? generated313 : {}),
    version: v.text,
    hexversion: t.header.versionHex,
    runtime: {
      interpreters_head: f('runtime_state', 'interpreters_head'),
      gilstate_tstate_current: null,
      gil_last_holder: null,
      gil_locked: null,
      debug_offsets: 0,
      finalizing: f('runtime_state', 'finalizing'),
      size: f('runtime_state', 'size'),
    },
    interp: {
      next: f('interpreter_state', 'next'),
      id: f('interpreter_state', 'id'),
      threads_head: f('interpreter_state', 'threads_head'),
      modules: f('interpreter_state', 'imports_modules'),
      ceval_gil: f('interpreter_state', 'ceval_gil'),
      sysdict: f('interpreter_state', 'sysdict'),
      builtins: f('interpreter_state', 'builtins'),
      size: f('interpreter_state', 'size'),
      ...(v.minor >= 14
        ? { threads_main: f('interpreter_state', 'threads_main'), code_object_generation: f('interpreter_state', 'code_object_generation') }
        : {}),
    },
    gil: {
      last_holder: f('interpreter_state', 'gil_runtime_state_holder') - gil,
      locked: f('interpreter_state', 'gil_runtime_state_locked') - gil,
      size: K.gilSize,
    },
    tstate: {
      prev: f('thread_state', 'prev'),
      next: f('thread_state', 'next'),
      interp: f('thread_state', 'interp'),
      frame: null,
      cframe: null,
      current_frame: f('thread_state', 'current_frame'),
      thread_id: f('thread_state', 'thread_id'),
      native_thread_id: f('thread_state', 'native_thread_id'),
      status: f('thread_state', 'status'),
      datastack_chunk: f('thread_state', 'datastack_chunk'),
      size: f('thread_state', 'size'),
    },
    cframe: { current_frame: null, size: null },
    frame: {
      code: f('interpreter_frame', 'executable'),
      previous: f('interpreter_frame', 'previous'),
      instr_ptr: f('interpreter_frame', 'instr_ptr'),
      lasti: null,
      owner: f('interpreter_frame', 'owner'),
      is_entry: null,
      // not in the table; 3.13's is a header constant, 3.14 detects code-object reuse by its generation counter
      globals: v.minor === 13 ? (generated313.frame.globals ?? null) : null,
      localsplus: f('interpreter_frame', 'localsplus'),
      executing: null,
      state: null,
      size: f('interpreter_frame', 'size'),
      ...(K.executableTagBits ? { executable_tag_bits: K.executableTagBits } : {}),
      ...(v.minor >= 14 ? { stackpointer: f('interpreter_frame', 'stackpointer') } : {}),
    },
    ...(v.minor >= 14
      ? {
          gen: { gi_name: f('gen_object', 'gi_name'), gi_iframe: f('gen_object', 'gi_iframe'), gi_frame_state: f('gen_object', 'gi_frame_state') },
          // Include/cpython/longintrepr.h (3.12+): lv_tag = ndigits << 3 | sign bits (0 positive,
          // 1 zero, 2 negative); 30-bit digits in uint32
          long: { ob_size: null, lv_tag: f('long_object', 'lv_tag'), ob_digit: f('long_object', 'ob_digit'), non_size_bits: 3, sign_mask: 3, digit_size: 4, shift: 30 },
        }
      : {}),
    frame_owner: { ...owner },
    code: {
      argcount: f('code_object', 'argcount'),
      // not in the table (the walker reads co_flags before 3.11 only)
      ...(v.minor === 13 && generated313.code.flags !== undefined ? { flags: generated313.code.flags } : {}),
      firstlineno: f('code_object', 'firstlineno'),
      filename: f('code_object', 'filename'),
      name: f('code_object', 'name'),
      qualname: f('code_object', 'qualname'),
      linetable: f('code_object', 'linetable'),
      code: null,
      firsttraceable: K.firsttraceable,
      code_adaptive: codeAdaptive,
      size: f('code_object', 'size'),
    },
    object: { ob_type: f('pyobject', 'ob_type'), size: f('pyobject', 'size') },
    var_object: { ob_size: f('tuple_object', 'ob_size'), size: K.varObjectSize },
    type: { tp_name: f('type_object', 'tp_name'), tp_flags: f('type_object', 'tp_flags'), size: f('type_object', 'size') },
    tuple: { ob_size: f('tuple_object', 'ob_size'), ob_item: f('tuple_object', 'ob_item') },
    list: { ob_size: f('list_object', 'ob_size'), ob_item: f('list_object', 'ob_item') },
    dict: { ma_used: K.dictMaUsed, ma_keys: f('dict_object', 'ma_keys'), ma_values: f('dict_object', 'ma_values'), size: f('dict_object', 'size') },
    dict_keys: { ...K.dictKeys },
    bytes: { ob_size: f('bytes_object', 'ob_size'), ob_sval: f('bytes_object', 'ob_sval') },
    unicode: {
      length: f('unicode_object', 'length'),
      state: f('unicode_object', 'state'),
      ascii_size: f('unicode_object', 'asciiobject_size'),
      compact_size: K.unicodeCompactSize,
      data: K.unicodeData,
      size: f('unicode_object', 'size'),
    },
    source: 'debug-offsets',
  };
  return layout;
}

// ---- the one entry point for the attach path ------------------------------------------

/** What `layoutForRuntime` needs from `locateRuntime`'s answer. */
export interface RuntimeForLayout {
  pid: number;
  runtimeAddress: Address;
  version: PythonVersion;
}

/**
 * The Layout for any supported CPython: 3.8–3.12 the generated per-version layout
 * (`layoutFor`), 3.13+ the target's own validated `_Py_DebugOffsets`. `mem` defaults to
 * `/proc/PID/mem` (opened and closed here). Throws UnsupportedVersionError outside
 * 3.8–3.14 and DebugOffsetsError for a table that does not validate.
 */
export function layoutForRuntime(rt: RuntimeForLayout, mem?: ProcessMemory): Layout {
  const v = rt.version;
  if (!isSupported(v)) throw new UnsupportedVersionError(rt.pid, v);
  if (v.major === 3 && v.minor <= 12) {
    const l = layoutFor(v.major, v.minor);
    if (!l) throw new UnsupportedVersionError(rt.pid, v);
    return l;
  }
  const m = mem ?? ProcMemory.open(rt.pid);
  try {
    return layoutFromDebugOffsets(readDebugOffsets(m, rt.runtimeAddress, v));
  } finally {
    if (!mem) m.close();
  }
}

/**
 * 3.14+: the main interpreter's `_code_object_generation` (u64), bumped by CPython when code
 * objects are freed, so a code cache keyed by address must be flushed when it changes.
 * null when the layout has no such field (before 3.14, or generated layouts).
 */
export function readCodeObjectGeneration(mem: ProcessMemory, layout: Layout, runtimeAddress: Address): bigint | null {
  const off = layout.interp.code_object_generation;
  if (off === undefined || off === null) return null;
  const interp = mem.readPtr(runtimeAddress + layout.runtime.interpreters_head);
  if (interp === 0) return null;
  return mem.readU64(interp + off);
}

