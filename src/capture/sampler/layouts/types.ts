/**
 * Offsets (bytes from the start of the struct) and sizes of the CPython structures the
 * out-of-process stack walker reads, for one minor version on Linux x86-64. Generated
 * from each build's own headers by tools/gen-layouts.sh (see tools/layouts.c); `null`
 * means the field does not exist in that version. Names follow CPython's where one name
 * covers all versions; where CPython renamed a field, the comment gives every spelling.
 */

/** Byte offset of a field inside its struct. */
export type FieldOffset = number;
/** sizeof(struct), bytes. */
export type StructSize = number;

export interface Layout {
  /** exact CPython version the headers came from, e.g. "3.11.7" */
  version: string;
  /** PY_VERSION_HEX of those headers */
  hexversion: number;
  /** _PyRuntimeState (the exported `_PyRuntime`) */
  runtime: {
    interpreters_head: FieldOffset;
    /** gilstate.tstate_current, 3.8–3.11 (NULL while the GIL is released) */
    gilstate_tstate_current: FieldOffset | null;
    /** ceval.gil.last_holder, 3.8–3.11 (3.12+: per interpreter, see `interp.ceval_gil`) */
    gil_last_holder: FieldOffset | null;
    /** ceval.gil.locked, 3.8–3.11 */
    gil_locked: FieldOffset | null;
    /** _Py_DebugOffsets, 3.13+ */
    debug_offsets: FieldOffset | null;
    /** _finalizing, 3.13+ */
    finalizing: FieldOffset | null;
    size: StructSize;
  };
  /** PyInterpreterState */
  interp: {
    next: FieldOffset;
    id: FieldOffset;
    /** tstate_head (3.8–3.10) / threads.head (3.11+) */
    threads_head: FieldOffset;
    /** modules (3.8–3.11) / imports.modules (3.12+) */
    modules: FieldOffset;
    /** ceval.gil: pointer to struct _gil_runtime_state, 3.12+ */
    ceval_gil: FieldOffset | null;
    sysdict: FieldOffset;
    builtins: FieldOffset;
    size: StructSize;
  };
  /** struct _gil_runtime_state */
  gil: {
    last_holder: FieldOffset;
    locked: FieldOffset;
    size: StructSize;
  };
  /** PyThreadState */
  tstate: {
    prev: FieldOffset;
    next: FieldOffset;
    interp: FieldOffset;
    /** frame: PyFrameObject*, 3.8–3.10 */
    frame: FieldOffset | null;
    /** cframe: _PyCFrame*, 3.11–3.12 */
    cframe: FieldOffset | null;
    /** current_frame: _PyInterpreterFrame*, 3.13+ */
    current_frame: FieldOffset | null;
    /** pthread_self() of the thread */
    thread_id: FieldOffset;
    /** OS thread id (TID), 3.11+ */
    native_thread_id: FieldOffset | null;
    /** _status bit field, 3.12+ */
    status: FieldOffset | null;
    /** datastack_chunk, 3.11+ */
    datastack_chunk: FieldOffset | null;
    size: StructSize;
  };
  /** _PyCFrame, 3.11–3.12 (all null otherwise) */
  cframe: {
    current_frame: FieldOffset | null;
    size: StructSize | null;
  };
  /** PyFrameObject (3.8–3.10) / _PyInterpreterFrame (3.11+) */
  frame: {
    /** f_code (3.8–3.12) / f_executable (3.13+) */
    code: FieldOffset;
    /** f_back (3.8–3.10) / previous (3.11+) */
    previous: FieldOffset;
    /** prev_instr (3.11–3.12, last started instruction) / instr_ptr (3.13+, current) */
    instr_ptr: FieldOffset | null;
    /** f_lasti (int), 3.8–3.10: byte offset in 3.8/3.9, code-unit index in 3.10; −1 = not started */
    lasti: FieldOffset | null;
    /** owner (char), 3.11+ */
    owner: FieldOffset | null;
    /** is_entry (bool), 3.11 only */
    is_entry: FieldOffset | null;
    /** localsplus, 3.11+ */
    localsplus: FieldOffset | null;
    size: StructSize;
  };
  /** PyCodeObject */
  code: {
    argcount: FieldOffset;
    /** co_firstlineno (int) */
    firstlineno: FieldOffset;
    filename: FieldOffset;
    name: FieldOffset;
    /** co_qualname, 3.11+ */
    qualname: FieldOffset | null;
    /** co_lnotab (3.8–3.9) / co_linetable (3.10+): a bytes object */
    linetable: FieldOffset;
    /** co_code (bytes object), 3.8–3.10 */
    code: FieldOffset | null;
    /** _co_firsttraceable (int, code units), 3.11+ */
    firsttraceable: FieldOffset | null;
    /** co_code_adaptive (inline bytecode), 3.11+ */
    code_adaptive: FieldOffset | null;
    size: StructSize;
  };
  /** PyObject */
  object: { ob_type: FieldOffset; size: StructSize };
  /** PyVarObject */
  var_object: { ob_size: FieldOffset; size: StructSize };
  /** PyTypeObject */
  type: { tp_name: FieldOffset; tp_flags: FieldOffset; size: StructSize };
  /** PyTupleObject */
  tuple: { ob_size: FieldOffset; ob_item: FieldOffset };
  /** PyListObject (ob_item is a pointer to the item array) */
  list: { ob_size: FieldOffset; ob_item: FieldOffset };
  /** PyDictObject */
  dict: { ma_used: FieldOffset; ma_keys: FieldOffset; ma_values: FieldOffset; size: StructSize };
  /**
   * PyDictKeysObject, 3.11+ only (before 3.11 the struct is private to
   * Objects/dict-common.h and not in the installed headers: all null).
   * Entries start at dk_indices + (1 << dk_log2_index_bytes); dk_kind 0 = general
   * (PyDictKeyEntry: hash, key, value), else unicode keys (PyDictUnicodeEntry: key, value).
   */
  dict_keys: {
    dk_log2_size: FieldOffset | null;
    dk_log2_index_bytes: FieldOffset | null;
    dk_kind: FieldOffset | null;
    dk_nentries: FieldOffset | null;
    dk_indices: FieldOffset | null;
    entry_size: StructSize | null;
    unicode_entry_size: StructSize | null;
  };
  /** PyBytesObject */
  bytes: { ob_size: FieldOffset; ob_sval: FieldOffset };
  /** PyASCIIObject / PyCompactUnicodeObject / PyUnicodeObject */
  unicode: {
    length: FieldOffset;
    /** state bit field (u32): kind bits 2–4, compact bit 5, ascii bit 6 */
    state: FieldOffset;
    /** sizeof(PyASCIIObject): where the characters of a compact ASCII string start */
    ascii_size: StructSize;
    /** sizeof(PyCompactUnicodeObject): where the characters of a compact non-ASCII string start */
    compact_size: StructSize;
    /** data pointer of a non-compact string */
    data: FieldOffset;
    size: StructSize;
  };
}
