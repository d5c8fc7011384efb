/*
 * Prints, as JSON, the offsets and sizes of the CPython structures the out-of-process
 * stack walker reads. Compiled by tools/gen-layouts.sh once per installed CPython against
 * that build's own headers (-DPy_BUILD_CORE, include/python3.X and .../internal).
 * A field that does not exist in a version is printed as null.
 */
#include <stddef.h>
#include <stdio.h>
#include "Python.h"
#if PY_MINOR_VERSION <= 10
#  include "longintrepr.h"
#endif
#if PY_MINOR_VERSION >= 10
#  include "pycore_moduleobject.h"
#endif
#if PY_MINOR_VERSION >= 11
#  include "pycore_object.h"
#endif
#if PY_MINOR_VERSION == 8
#  include "pycore_pystate.h"
#  include "frameobject.h"
#  include "code.h"
#else
#  include "pycore_runtime.h"
#  if PY_MINOR_VERSION >= 11
#    include "pycore_dict.h"
#  endif
#  include "pycore_interp.h"
#  if PY_MINOR_VERSION <= 10
#    include "frameobject.h"
#  else
#    include "pycore_frame.h"
#  endif
#  if PY_MINOR_VERSION <= 10
#    include "code.h"
#  endif
#endif

#if PY_MINOR_VERSION <= 10
/*
 * Before 3.11 the dict keys table is private to Objects/dict-common.h (3.8–3.10 share it)
 * and, before 3.10, the module object to Objects/moduleobject.c: neither is in the
 * installed headers. These mirrors copy CPython's declarations (same member types, same
 * order) so offsetof/sizeof below are the compiler's, not hand-counted.
 */
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} mirror_PyDictKeyEntry;
struct mirror_dictkeysobject {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;            /* dict_lookup_func */
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
};
#endif
#if PY_MINOR_VERSION <= 9
typedef struct {
    PyObject_HEAD
    PyObject *md_dict;
    struct PyModuleDef *md_def;
    void *md_state;
    PyObject *md_weaklist;
    PyObject *md_name;
} mirror_PyModuleObject;
#  define PYLENS_MODULE mirror_PyModuleObject
#else
#  define PYLENS_MODULE PyModuleObject
#endif

#if PY_MINOR_VERSION >= 11
/* A fake instance of a fake type, to ask the header's own inline helpers where an object
 * keeps its managed dict / values (their asserts read the type's flags and basicsize). */
static PyTypeObject fake_type;
static _Alignas(16) char fake_mem[256];
static PyObject *fake_object(unsigned long flags) {
    PyObject *o = (PyObject *)(fake_mem + 128);
    fake_type.tp_flags = flags;
    fake_type.tp_basicsize = sizeof(PyObject);
    o->ob_type = &fake_type;
    return o;
}
#endif

static int first;
static void open_(const char *name) { printf("%s\n  \"%s\": {", first ? "" : ",", name); first = 0; }
static int ffirst;
static void begin(const char *name) { open_(name); ffirst = 1; }
static void end(void) { printf("\n  }"); }
static void num(const char *name, size_t v) { printf("%s\n    \"%s\": %zu", ffirst ? "" : ",", name, v); ffirst = 0; }
static void none(const char *name) { printf("%s\n    \"%s\": null", ffirst ? "" : ",", name); ffirst = 0; }
static void snum(const char *name, long v) { printf("%s\n    \"%s\": %ld", ffirst ? "" : ",", name, v); ffirst = 0; }
static void flag(const char *name, int v) { printf("%s\n    \"%s\": %s", ffirst ? "" : ",", name, v ? "true" : "false"); ffirst = 0; }
#define OFF(name, type, member) num(name, offsetof(type, member))
#define SIZE(type) num("size", sizeof(type))

int main(void) {
  first = 1;
  printf("{\n  \"version\": \"%s\",", PY_VERSION);
  printf("\n  \"hexversion\": %lu,", (unsigned long)PY_VERSION_HEX);
  first = 1;

  begin("runtime");
  OFF("interpreters_head", _PyRuntimeState, interpreters.head);
#if PY_MINOR_VERSION <= 11
  OFF("gilstate_tstate_current", _PyRuntimeState, gilstate.tstate_current);
  OFF("gil_last_holder", _PyRuntimeState, ceval.gil.last_holder);
  OFF("gil_locked", _PyRuntimeState, ceval.gil.locked);
#else
  none("gilstate_tstate_current"); none("gil_last_holder"); none("gil_locked");
#endif
#if PY_MINOR_VERSION >= 13
  OFF("debug_offsets", _PyRuntimeState, debug_offsets);
  OFF("finalizing", _PyRuntimeState, _finalizing);
#else
  none("debug_offsets"); none("finalizing");
#endif
  SIZE(_PyRuntimeState);
  end();

  begin("interp");
  OFF("next", PyInterpreterState, next);
  OFF("id", PyInterpreterState, id);
#if PY_MINOR_VERSION <= 10
  OFF("threads_head", PyInterpreterState, tstate_head);
#else
  OFF("threads_head", PyInterpreterState, threads.head);
#endif
#if PY_MINOR_VERSION >= 12
  OFF("modules", PyInterpreterState, imports.modules);
  OFF("ceval_gil", PyInterpreterState, ceval.gil);
#else
  OFF("modules", PyInterpreterState, modules);
  none("ceval_gil");
#endif
  OFF("sysdict", PyInterpreterState, sysdict);
  OFF("builtins", PyInterpreterState, builtins);
  SIZE(PyInterpreterState);
  end();

  begin("gil");
#if PY_MINOR_VERSION >= 12
  OFF("last_holder", struct _gil_runtime_state, last_holder);
  OFF("locked", struct _gil_runtime_state, locked);
#else
  OFF("last_holder", struct _gil_runtime_state, last_holder);
  OFF("locked", struct _gil_runtime_state, locked);
#endif
  SIZE(struct _gil_runtime_state);
  end();

  begin("tstate");
  OFF("prev", PyThreadState, prev);
  OFF("next", PyThreadState, next);
  OFF("interp", PyThreadState, interp);
#if PY_MINOR_VERSION <= 10
  OFF("frame", PyThreadState, frame);
#else
  none("frame");
#endif
#if PY_MINOR_VERSION == 11 || PY_MINOR_VERSION == 12
  OFF("cframe", PyThreadState, cframe);
#else
  none("cframe");
#endif
#if PY_MINOR_VERSION >= 13
  OFF("current_frame", PyThreadState, current_frame);
#else
  none("current_frame");
#endif
  OFF("thread_id", PyThreadState, thread_id);
#if PY_MINOR_VERSION >= 11
  OFF("native_thread_id", PyThreadState, native_thread_id);
#else
  none("native_thread_id");
#endif
#if PY_MINOR_VERSION >= 12
  OFF("status", PyThreadState, _status);
#else
  none("status");
#endif
#if PY_MINOR_VERSION >= 11
  OFF("datastack_chunk", PyThreadState, datastack_chunk);
#else
  none("datastack_chunk");
#endif
  SIZE(PyThreadState);
  end();

  begin("cframe");
#if PY_MINOR_VERSION == 11 || PY_MINOR_VERSION == 12
  OFF("current_frame", _PyCFrame, current_frame);
  SIZE(_PyCFrame);
#else
  none("current_frame"); none("size");
#endif
  end();

  begin("frame");
#if PY_MINOR_VERSION <= 10
  OFF("code", PyFrameObject, f_code);
  OFF("previous", PyFrameObject, f_back);
  none("instr_ptr");
  OFF("lasti", PyFrameObject, f_lasti);
  OFF("globals", PyFrameObject, f_globals);
  none("owner");
  none("is_entry");
  none("localsplus");
#  if PY_MINOR_VERSION <= 9
  OFF("executing", PyFrameObject, f_executing);
  none("state");
#  else
  none("executing");
  OFF("state", PyFrameObject, f_state);
#  endif
  SIZE(PyFrameObject);
#else
#  if PY_MINOR_VERSION <= 12
  OFF("code", _PyInterpreterFrame, f_code);
  OFF("previous", _PyInterpreterFrame, previous);
  OFF("instr_ptr", _PyInterpreterFrame, prev_instr);
#  else
  OFF("code", _PyInterpreterFrame, f_executable);
  OFF("previous", _PyInterpreterFrame, previous);
  OFF("instr_ptr", _PyInterpreterFrame, instr_ptr);
#  endif
  none("lasti");
  OFF("globals", _PyInterpreterFrame, f_globals);
  OFF("owner", _PyInterpreterFrame, owner);
#  if PY_MINOR_VERSION == 11
  OFF("is_entry", _PyInterpreterFrame, is_entry);
#  else
  none("is_entry");
#  endif
  OFF("localsplus", _PyInterpreterFrame, localsplus);
  none("executing");
  none("state");
  SIZE(_PyInterpreterFrame);
#endif
  end();

  begin("code");
  OFF("argcount", PyCodeObject, co_argcount);
  OFF("flags", PyCodeObject, co_flags);
  OFF("firstlineno", PyCodeObject, co_firstlineno);
  OFF("filename", PyCodeObject, co_filename);
  OFF("name", PyCodeObject, co_name);
#if PY_MINOR_VERSION >= 11
  OFF("qualname", PyCodeObject, co_qualname);
#else
  none("qualname");
#endif
#if PY_MINOR_VERSION <= 9
  OFF("linetable", PyCodeObject, co_lnotab);
#else
  OFF("linetable", PyCodeObject, co_linetable);
#endif
#if PY_MINOR_VERSION <= 10
  OFF("code", PyCodeObject, co_code);
  none("firsttraceable");
  none("code_adaptive");
#else
  none("code");
  OFF("firsttraceable", PyCodeObject, _co_firsttraceable);
  OFF("code_adaptive", PyCodeObject, co_code_adaptive);
#endif
  SIZE(PyCodeObject);
  end();

  begin("object");
  OFF("ob_type", PyObject, ob_type);
  SIZE(PyObject);
  end();

  begin("var_object");
  OFF("ob_size", PyVarObject, ob_size);
  SIZE(PyVarObject);
  end();

  begin("type");
  OFF("tp_name", PyTypeObject, tp_name);
  OFF("tp_flags", PyTypeObject, tp_flags);
  SIZE(PyTypeObject);
  end();

  begin("tuple");
  OFF("ob_size", PyTupleObject, ob_base.ob_size);
  OFF("ob_item", PyTupleObject, ob_item);
  end();

  begin("list");
  OFF("ob_size", PyListObject, ob_base.ob_size);
  OFF("ob_item", PyListObject, ob_item);
  end();

  begin("dict");
  OFF("ma_used", PyDictObject, ma_used);
  OFF("ma_keys", PyDictObject, ma_keys);
  OFF("ma_values", PyDictObject, ma_values);
  SIZE(PyDictObject);
  end();

  /* PyDictKeysObject: in the installed headers only from 3.11 (before: Objects/dict-common.h) */
  begin("dict_keys");
#if PY_MINOR_VERSION >= 11
  OFF("dk_log2_size", PyDictKeysObject, dk_log2_size);
  OFF("dk_log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
  OFF("dk_kind", PyDictKeysObject, dk_kind);
  OFF("dk_nentries", PyDictKeysObject, dk_nentries);
  OFF("dk_indices", PyDictKeysObject, dk_indices);
  num("entry_size", sizeof(PyDictKeyEntry));
  num("unicode_entry_size", sizeof(PyDictUnicodeEntry));
#else
  none("dk_log2_size"); none("dk_log2_index_bytes"); none("dk_kind"); none("dk_nentries");
  none("dk_indices"); none("entry_size"); none("unicode_entry_size");
#endif
  end();

  begin("bytes");
  OFF("ob_size", PyBytesObject, ob_base.ob_size);
  OFF("ob_sval", PyBytesObject, ob_sval);
  end();

  begin("unicode");
  OFF("length", PyASCIIObject, length);
  OFF("state", PyASCIIObject, state);
  num("ascii_size", sizeof(PyASCIIObject));
  num("compact_size", sizeof(PyCompactUnicodeObject));
  OFF("data", PyUnicodeObject, data);
  SIZE(PyUnicodeObject);
  end();


  /* ---- optional sections for reading objects (thread names: threading._active) ---- */

  begin("dict_table");
#if PY_MINOR_VERSION <= 10
  OFF("dk_size", struct mirror_dictkeysobject, dk_size);
  none("dk_log2_size"); none("dk_log2_index_bytes"); none("dk_kind");
  OFF("dk_nentries", struct mirror_dictkeysobject, dk_nentries);
  OFF("dk_indices", struct mirror_dictkeysobject, dk_indices);
  num("entry_size", sizeof(mirror_PyDictKeyEntry));
  none("unicode_entry_size");
  none("kind_general"); none("kind_unicode"); none("kind_split");
#else
  none("dk_size");
  OFF("dk_log2_size", PyDictKeysObject, dk_log2_size);
  OFF("dk_log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
  OFF("dk_kind", PyDictKeysObject, dk_kind);
  OFF("dk_nentries", PyDictKeysObject, dk_nentries);
  OFF("dk_indices", PyDictKeysObject, dk_indices);
  num("entry_size", sizeof(PyDictKeyEntry));
  num("unicode_entry_size", sizeof(PyDictUnicodeEntry));
  num("kind_general", DICT_KEYS_GENERAL); num("kind_unicode", DICT_KEYS_UNICODE); num("kind_split", DICT_KEYS_SPLIT);
#endif
  end();

  begin("dict_values");
#if PY_MINOR_VERSION <= 10
  num("values", 0);   /* ma_values is the PyObject *[] itself */
#else
  OFF("values", PyDictValues, values);
#endif
#if PY_MINOR_VERSION >= 13
  OFF("capacity", PyDictValues, capacity);
  OFF("valid", PyDictValues, valid);
#else
  none("capacity"); none("valid");
#endif
  end();

  begin("long");
#if PY_MINOR_VERSION <= 11
  OFF("ob_size", PyLongObject, ob_base.ob_size);
  none("lv_tag");
  OFF("ob_digit", PyLongObject, ob_digit);
  none("non_size_bits"); none("sign_mask");
#else
  none("ob_size");
  OFF("lv_tag", PyLongObject, long_value.lv_tag);
  OFF("ob_digit", PyLongObject, long_value.ob_digit);
  num("non_size_bits", _PyLong_NON_SIZE_BITS);
  num("sign_mask", _PyLong_SIGN_MASK);
#endif
  num("digit_size", sizeof(digit));
  num("shift", PyLong_SHIFT);
  end();

  begin("module");
  OFF("md_dict", PYLENS_MODULE, md_dict);
  SIZE(PYLENS_MODULE);
  end();

  begin("type_ext");
  OFF("tp_basicsize", PyTypeObject, tp_basicsize);
  OFF("tp_dictoffset", PyTypeObject, tp_dictoffset);
  OFF("ht_cached_keys", PyHeapTypeObject, ht_cached_keys);
  num("flag_heaptype", Py_TPFLAGS_HEAPTYPE);
#ifdef Py_TPFLAGS_MANAGED_DICT
  num("flag_managed_dict", Py_TPFLAGS_MANAGED_DICT);
#else
  none("flag_managed_dict");
#endif
#ifdef Py_TPFLAGS_INLINE_VALUES
  num("flag_inline_values", Py_TPFLAGS_INLINE_VALUES);
#else
  none("flag_inline_values");
#endif
  end();

  begin("instance_dict");
#if PY_MINOR_VERSION <= 10
  none("managed_dict"); none("managed_values"); flag("tagged_values", 0); none("inline_values");
#elif PY_MINOR_VERSION == 11
  {
    PyObject *o = fake_object(Py_TPFLAGS_MANAGED_DICT);
    snum("managed_dict", (long)((char *)_PyObject_ManagedDictPointer(o) - (char *)o));
    snum("managed_values", (long)((char *)_PyObject_ValuesPointer(o) - (char *)o));
    flag("tagged_values", 0);
    none("inline_values");
  }
#elif PY_MINOR_VERSION == 12
  {
    PyObject *o = fake_object(Py_TPFLAGS_MANAGED_DICT);
    snum("managed_dict", (long)((char *)_PyObject_DictOrValuesPointer(o) - (char *)o));
    none("managed_values");
    /* the word holds values-1 (odd) for values, else the dict: check the helpers agree */
    PyDictOrValues dv; dv.values = (char *)0x1000 - 1;
    flag("tagged_values", _PyDictOrValues_IsValues(dv) && (char *)_PyDictOrValues_GetValues(dv) == (char *)0x1000);
    none("inline_values");
  }
#else
  {
    PyObject *o = fake_object(Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_INLINE_VALUES);
    snum("managed_dict", (long)((char *)_PyObject_ManagedDictPointer(o) - (char *)o));
    none("managed_values");
    flag("tagged_values", 0);
    snum("inline_values", (long)((char *)_PyObject_InlineValues(o) - (char *)o));
  }
#endif
  end();

  printf("\n}\n");
  return 0;
}
