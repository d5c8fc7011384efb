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
  /** where the offsets came from: absent = generated from headers; 'debug-offsets' = the target's `_Py_DebugOffsets` (3.13+) */
  source?: 'debug-offsets';
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
    /** threads.main, 3.14+ (only in layouts read from `_Py_DebugOffsets`) */
    threads_main?: FieldOffset | null;
    /** _code_object_generation (u64, bumped by every code_dealloc), 3.14+ (only in layouts read from `_Py_DebugOffsets`) */
    code_object_generation?: FieldOffset | null;
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
    /**
     * f_globals: the frame's globals dict, used to tell a cached code object from a new one
     * allocated at the same address (absent in layouts built from 3.14's debug offsets)
     */
    globals?: FieldOffset | null;
    /** is_entry (bool), 3.11 only */
    is_entry: FieldOffset | null;
    /** localsplus, 3.11+ */
    localsplus: FieldOffset | null;
    /** f_executing (char, 1 while the frame runs), 3.8–3.9 (generated layouts only) */
    executing?: FieldOffset | null;
    /** f_state (char; FRAME_EXECUTING = 0, FRAME_UNWINDING = 2 while it runs), 3.10 (generated layouts only) */
    state?: FieldOffset | null;
    size: StructSize;
    /** low tag bits to clear from `f_executable` (3.14+: a tagged _PyStackRef, 3); absent = untagged */
    executable_tag_bits?: number;
    /** `_PyStackRef *stackpointer` (3.14+, only in layouts read from `_Py_DebugOffsets`; 3.11–3.13 keep an int stacktop) */
    stackpointer?: FieldOffset | null;
  };
  /**
   * PyGenObject / PyCoroObject (3.14+, only in layouts read from `_Py_DebugOffsets`; the asyncio
   * reader knows 3.8–3.13's): name (the qualname follows it), the frame inside the object and
   * its state (int8: SUSPENDED_YIELD_FROM −1, EXECUTING 0)
   */
  gen?: { gi_name: FieldOffset; gi_iframe: FieldOffset; gi_frame_state: FieldOffset };
  /**
   * `enum _frameowner` values, 3.11+ (only in layouts read from `_Py_DebugOffsets`; the
   * walker knows the 3.11–3.13 values). Frames with owner ≥ `interpreter` (3.14) or ≥
   * `cstack` (3.12/3.13) are entry/shim frames.
   */
  frame_owner?: { thread: number; generator: number; frame_object: number; interpreter: number | null; cstack: number };
  /** PyCodeObject */
  code: {
    argcount: FieldOffset;
    /** co_flags (int; CO_GENERATOR 0x20, CO_COROUTINE 0x80, CO_ASYNC_GENERATOR 0x200), generated layouts only */
    flags?: FieldOffset;
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

  // ---- Optional sections (absent from layouts generated before they existed). Reading
  // objects by value: dicts, ints, modules and instance attributes (thread names). ----

  /**
   * PyDictKeysObject in every version: 3.8–3.10 from a mirror of Objects/dict-common.h in
   * tools/layouts.c (the struct is not in those installed headers), 3.11+ from pycore_dict.h.
   * Entries start at dk_indices + index bytes: 3.8–3.10 dk_size × (1, 2, 4 or 8 by
   * dk_size ≤ 0xff / 0xffff / 0xffffffff); 3.11+ 1 << dk_log2_index_bytes.
   */
  dict_table?: {
    /** dk_size (Py_ssize_t, the hash table size), 3.8–3.10 */
    dk_size: FieldOffset | null;
    /** u8, 3.11+ */
    dk_log2_size: FieldOffset | null;
    /** u8, 3.11+ */
    dk_log2_index_bytes: FieldOffset | null;
    /** u8, 3.11+: kind_general (PyDictKeyEntry) or else PyDictUnicodeEntry */
    dk_kind: FieldOffset | null;
    /** Py_ssize_t: entries used so far (including deleted ones) */
    dk_nentries: FieldOffset;
    dk_indices: FieldOffset;
    /** sizeof(PyDictKeyEntry): hash, key, value */
    entry_size: StructSize;
    /** sizeof(PyDictUnicodeEntry): key, value; 3.11+ */
    unicode_entry_size: StructSize | null;
    /** DICT_KEYS_GENERAL / _UNICODE / _SPLIT, 3.11+ */
    kind_general: number | null;
    kind_unicode: number | null;
    kind_split: number | null;
  };
  /**
   * The values of a split dict (`ma_values`, also an instance's managed/inline values):
   * 3.8–3.10 a bare PyObject *[]; 3.11+ PyDictValues. Value i belongs to key entry i of
   * the shared keys; NULL = absent.
   */
  dict_values?: {
    /** offset of the PyObject *values[] array */
    values: FieldOffset;
    /** u8 `capacity` (values the array holds), 3.13+ */
    capacity: FieldOffset | null;
    /** u8 `valid`, 3.13+ (inline values: 0 once the object's dict was materialised) */
    valid: FieldOffset | null;
  };
  /** PyLongObject: |value| = Σ digit[i] << (shift × i) */
  long?: {
    /** ob_size, 3.8–3.11: sign of the value, |ob_size| digits */
    ob_size: FieldOffset | null;
    /** long_value.lv_tag, 3.12+: digits = tag >> non_size_bits; sign = 1 − (tag & sign_mask) */
    lv_tag: FieldOffset | null;
    /** ob_digit (3.8–3.11) / long_value.ob_digit (3.12+) */
    ob_digit: FieldOffset;
    non_size_bits: number | null;
    sign_mask: number | null;
    /** sizeof(digit) */
    digit_size: StructSize;
    /** PyLong_SHIFT: bits per digit */
    shift: number;
  };
  /** PyModuleObject (3.8/3.9 from a mirror of Objects/moduleobject.c) */
  module?: { md_dict: FieldOffset; size: StructSize };
  /** More of PyTypeObject / PyHeapTypeObject, and the tp_flags bits about instance dicts */
  type_ext?: {
    tp_basicsize: FieldOffset;
    /** Py_ssize_t: > 0 = offset of the instance's dict pointer (3.8–3.10 style) */
    tp_dictoffset: FieldOffset;
    /** PyHeapTypeObject.ht_cached_keys: the shared keys of split instance dicts */
    ht_cached_keys: FieldOffset;
    flag_heaptype: number;
    /** Py_TPFLAGS_MANAGED_DICT, 3.11+ */
    flag_managed_dict: number | null;
    /** Py_TPFLAGS_INLINE_VALUES, 3.13+ */
    flag_inline_values: number | null;
  };
  /** Where an instance of a Py_TPFLAGS_MANAGED_DICT type keeps its attributes (offsets from the object; negative = pre-header) */
  instance_dict?: {
    /** PyObject *dict (3.11, 3.13) / PyDictOrValues (3.12) */
    managed_dict: number | null;
    /** PyDictValues *values, 3.11 (NULL once a dict was made) */
    managed_values: number | null;
    /** 3.12: the managed_dict word holds values − 1 (low bit set) instead of a dict */
    tagged_values: boolean;
    /** 3.13: PyDictValues inline after the object header (type flag_inline_values) */
    inline_values: number | null;
  };
}
